"""Issue 10, kinds 4-5: outputs are written atomically; a directory in the way, a path under a file or a failed
write (e.g. a full disk) is one line, and what was there before is kept."""
import errno

import pytest

from openimagen.errors import OutputError
from openimagen.pipeline.io import atomic_write, check_output_path
from tests.cli.test_cli import run


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"the good old image")

    def disk_full(tmp):
        with open(tmp, "wb") as f:
            f.write(b"half an ima")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutputError, match="cannot write .*out.png: No space left on device"):
        atomic_write(target, disk_full)
    assert target.read_bytes() == b"the good old image"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_output_paths_are_checked_before_any_work(tmp_path):
    (tmp_path / "adir.png").mkdir()
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputError, match="is a directory"):
        check_output_path(tmp_path / "adir.png")
    with pytest.raises(OutputError, match="is a file, so nothing can be written under it"):
        check_output_path(tmp_path / "afile" / "deeper" / "x.png")
    assert check_output_path(tmp_path / "new" / "deeper" / "x.png") == tmp_path / "new" / "deeper" / "x.png"


@pytest.mark.parametrize("target, words", [("adir.png", "is a directory"), ("afile/x.png", "is a file")])
def test_generate_refuses_bad_outputs_in_one_line_before_loading(tmp_path, capsys, target, words):
    (tmp_path / "adir.png").mkdir()
    (tmp_path / "afile").write_text("x")
    code, _, err = run(capsys, "generate", "a", "-o", tmp_path / target, "--model", tmp_path / "no_model_needed")
    assert code == 2 and words in err and err.count("\n") == 1
