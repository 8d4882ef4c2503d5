"""Issue 10: a real full disk and a real read-only folder (a small tmpfs, mounted when running as root where the
platform allows; skipped with the reason otherwise). Every command answers in one line with exit code 2, and
what the user had before (an earlier image, an earlier checkpoint) is intact, with no temporary files left."""
import os
import subprocess
from contextlib import contextmanager

import pytest

from openimagen.cli.main import main
from tests.pipeline.fixtures import tiny_pipeline


@contextmanager
def tmpfs(path, size_kb: int, readonly: bool = False):
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the full-disk and read-only cases are simulated in "
                    "tests/pipeline/test_outputs.py and tests/train/test_checkpoint.py")
    opts = f"size={size_kb}k" + (",ro" if readonly else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"this platform refuses to mount a tmpfs ({done.stderr.strip()[:120]})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(folder, leave: int) -> None:
    """Fill ``folder``'s file system until about ``leave`` bytes are free."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    with open(folder / "ballast", "wb") as f:
        try:
            f.write(b"\0" * max(0, free - leave))
            f.flush()
            os.fsync(f.fileno())
        except OSError:
            pass


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_pipeline().save_pretrained(tmp_path_factory.mktemp("disk") / "model")


def run(capsys, *argv):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, err


def test_full_disk_keeps_the_earlier_image(model, tmp_path, capsys):
    with tmpfs(tmp_path / "disk", 256) as disk:
        code, err = run(capsys, "generate", "a red circle", "--model", model, "--steps", 2, "-o", disk / "out.png",
                        "--no-progress")
        assert code == 0, err
        before = (disk / "out.png").read_bytes()
        fill(disk, leave=512)
        code, err = run(capsys, "generate", "a blue square", "--model", model, "--steps", 2, "-o",
                        disk / "out.png", "--no-progress", "--seed", 5)
        assert code == 2 and len([x for x in err.splitlines() if "error:" in x]) == 1 and "Traceback" not in err
        assert (disk / "out.png").read_bytes() == before
        assert sorted(p.name for p in disk.iterdir()) == ["ballast", "out.png"]


def test_read_only_folder_is_refused_before_any_work(model, tmp_path, capsys):
    with tmpfs(tmp_path / "ro", 64, readonly=True) as ro:
        code, err = run(capsys, "generate", "a red circle", "--model", model, "--steps", 2, "-o", ro / "x.png")
        assert code == 2 and err.count("error:") == 1 and "Traceback" not in err
        code, err = run(capsys, "export", model / "stage0_base", "-o", ro / "m")
        assert code == 2 and err.count("error:") == 1 and "Traceback" not in err
