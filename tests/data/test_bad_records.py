"""Issue 10, kind 6: manifests and WebDataset samples with wrong types, invalid UTF-8, huge CSV fields, and folder
entries that are not images are skipped and reported (report.json), never a crash and never misread as text."""
import io
import json
import os
import tarfile

from hypothesis import HealthCheck, given, settings, strategies as st

from openimagen.data import open_dataset
from openimagen.data.formats import ManifestRow, parse_row
from openimagen.errors import InvalidArgumentError

from .conftest import save_image


def _reasons(ds) -> dict:
    return {item["key"]: item["reason"] for item in ds.report.to_dict()["items"]}


def test_manifest_rows_of_the_wrong_type_are_skipped_and_reported(tmp_path):
    save_image(tmp_path / "a.png")
    rows = [b'{"path": 5, "caption": "x"}', b'{"path": ["a.png"], "caption": "x"}',
            b'{"path": "a.png", "captions": 5}', b'{"path": "a.png", "caption": 7}',
            b'{"path": "a.png", "caption": "bad \\xff"}'.replace(b"\\xff", b"\xff"), b"[1, 2]", b"{oops",
            b'{"path": "a.png", "caption": "a red square", "key": "good"}']
    (tmp_path / "m.jsonl").write_bytes(b"\n".join(rows) + b"\n")
    ds = open_dataset(tmp_path / "m.jsonl", size=16)
    assert [r.key for r in ds.records] == ["good"] and ds.records[0].caption == "a red square"
    items = ds.report.to_dict()["items"]
    by_row = {int(i["reason"].rsplit("(row ", 1)[1].rstrip(")")): i["reason"] for i in items}
    assert sorted(by_row) == [1, 2, 3, 4, 5, 6, 7] and all(r.startswith("bad manifest row: ") for r in by_row.values())
    assert "path should be a valid string, got 5" in by_row[1] and "path should be a valid string" in by_row[2]
    assert "captions should be a valid list" in by_row[3] and "caption should be a valid string" in by_row[4]
    assert "not UTF-8" in by_row[5] and "a JSON list" in by_row[6] and "not valid JSON" in by_row[7]
    assert ds.report.reasons() == {"bad manifest row": 7}


def test_csv_with_invalid_utf8_and_a_huge_field(tmp_path):
    save_image(tmp_path / "a.png")
    long_caption = "a red square " + "very " * 40_000            # 200 KB: over the csv module's default limit
    data = b"path,caption\na.png,caf\xe9 latte\na.png," + long_caption.encode() + b"\n"
    (tmp_path / "m.csv").write_bytes(data)
    ds = open_dataset(tmp_path / "m.csv", size=16)
    assert len(ds.records) == 1 and ds.records[0].caption.startswith("a red square very")
    assert list(_reasons(ds).values()) == ["bad manifest row: not UTF-8 text (row 2)"]


def test_folder_entries_named_like_images_that_are_not_are_reported(tmp_path):
    save_image(tmp_path / "ok.png", caption="a red square")
    (tmp_path / "folder.png").mkdir()
    os.symlink(tmp_path / "nowhere.png", tmp_path / "dangling.png")
    os.symlink(tmp_path / "loop.png", tmp_path / "loop.png")
    ds = open_dataset(tmp_path, size=16)
    assert [r.key for r in ds.records] == ["ok"]
    reasons = _reasons(ds)
    assert reasons["folder"] == "a folder named like an image" and reasons["dangling"] == "a dangling symlink"
    assert reasons["loop"].startswith(("unreadable", "a dangling symlink"))


def test_webdataset_json_member_that_is_a_list_or_mistyped_is_skipped(tmp_path):
    from openimagen.data import WebDatasetStream

    save_image(tmp_path / "a.png")
    png = (tmp_path / "a.png").read_bytes()
    with tarfile.open(tmp_path / "s-000.tar", "w") as tar:
        for key, meta in (("k0", [1, 2]), ("k1", {"captions": 5}), ("k2", {"captions": ["x", "y"]})):
            for ext, payload in (("png", png), ("txt", b"a red square"), ("json", json.dumps(meta).encode())):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    stream = WebDatasetStream(str(tmp_path / "s-000.tar"), size=16)
    keys = [s["key"] for s in stream.iter_pil()]
    assert keys == ["k2"]
    reasons = {s["key"]: s["reason"] for s in stream.report.to_dict()["items"]}
    assert "a JSON list" in reasons["k0"] and "captions should be a valid list" in reasons["k1"]


# every field of a manifest row, with values of every JSON type: either a valid row or one clear error
_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
                     max_leaves=6)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(["path", "caption", "captions", "key", "labels", "extra"]), _json))
def test_any_row_parses_or_fails_in_one_line_naming_the_field(row):
    try:
        r = parse_row(ManifestRow, row, "")
    except InvalidArgumentError as e:
        msg = str(e)
        assert "\n" not in msg and any(f in msg for f in ("path", "caption", "captions", "key", "labels"))
        return
    assert isinstance(r.path, str) and r.path
    assert r.caption is None or isinstance(r.caption, str)
    assert r.captions is None or all(isinstance(c, str) for c in r.captions)
