"""Folder and manifest datasets, format detection, errors, caption variants, image cache."""
import csv
import json

import numpy as np
import pytest
import torch

from openimagen.data import (CachedImageDataset, CaptionedImageDataset, build_image_cache, choose_caption,
                             detect_format, open_dataset)
from openimagen.errors import InvalidArgumentError, OpenImagenError

from .conftest import save_image


def test_folder_skips_and_reports_bad_files(messy_folder, tmp_path):
    ds = open_dataset(messy_folder, size=16, min_size=8)
    assert ds.format == "folder"
    assert [r.key for r in ds.records] == ["good_alpha", "good_red", "sub/good_jpg"]
    report = json.loads(ds.report.write(tmp_path / "report.json").read_text())
    reasons = {item["key"]: item["reason"] for item in report["items"]}
    assert report["loaded"] == 3 and report["skipped"] == 5
    assert reasons["truncated"].startswith("corrupt or truncated")
    assert reasons["text"].startswith("not an image")
    assert reasons["no_caption"].startswith("no caption")
    assert reasons["empty_caption"].startswith("no caption")
    assert reasons["tiny"].startswith("too small")


def test_folder_items_are_tensors_with_normalised_captions(messy_folder):
    ds = open_dataset(messy_folder, size=16, min_size=8)
    item = ds[1]
    assert item["image"].shape == (3, 16, 16) and item["image"].dtype == torch.float32
    assert item["caption"] == "a red rectangle" and item["key"] == "good_red" and item["index"] == 1
    blue_on_white = ds[0]["image"][:, 8, 8]  # 50% alpha blue on white
    assert torch.allclose(blue_on_white, torch.tensor([0.0, 0.0, 1.0]), atol=0.02)
    pil = ds.pil(2)
    assert pil["image"].mode == "RGB" and pil["image"].size == (50, 50)
    assert len(list(ds)) == 3  # IndexError ends plain iteration
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert batch["image"].shape == (3, 3, 16, 16) and len(batch["caption"]) == 3


def test_file_broken_after_scan_is_reported_and_replaced(messy_folder):
    ds = open_dataset(messy_folder, size=8, min_size=8)
    (messy_folder / "good_red.png").write_bytes(b"broken")
    item = ds[1]
    assert item["key"] == "sub/good_jpg"
    assert ds.report.skipped[-1]["key"] == "good_red"


def test_manifest_jsonl_and_csv(tmp_path):
    save_image(tmp_path / "imgs" / "a.png", color=(255, 0, 0))
    save_image(tmp_path / "imgs" / "b.png", color=(0, 255, 0))
    jsonl = tmp_path / "m.jsonl"
    jsonl.write_text(json.dumps({"path": "imgs/a.png", "caption": "red", "captions": ["red", "crimson"],
                                 "labels": {"c": 1}}) + "\n\n"
                     + json.dumps({"path": "imgs/b.png", "caption": " green "}) + "\n"
                     + json.dumps({"path": "imgs/missing.png", "caption": "gone"}) + "\n")
    ds = open_dataset(jsonl, size=8)
    assert ds.format == "manifest" and len(ds) == 2
    assert ds.records[0].captions == ("red", "crimson") and ds.labels(0) == {"c": 1}
    assert ds[1]["caption"] == "green"
    assert ds.report.skipped[0]["reason"] == "file not found"
    assert ds.all_captions() == ["red", "crimson", "green"]

    with open(tmp_path / "m.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "caption"])
        w.writerow(["imgs/a.png", "red, with a comma"])
        w.writerow(["imgs/b.png", "green"])
    ds = open_dataset(tmp_path / "m.csv", size=8)
    assert [ds[i]["caption"] for i in range(2)] == ["red, with a comma", "green"]


def test_bad_manifests(tmp_path):
    (tmp_path / "bad.csv").write_text("file,text\na.png,x\n")
    with pytest.raises(InvalidArgumentError, match="path and caption"):
        open_dataset(tmp_path / "bad.csv", size=8)
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(OpenImagenError, match="no usable images.*1 bad manifest row"):
        open_dataset(tmp_path / "bad.jsonl", size=8)


def test_missing_and_empty_paths_are_clear_errors(tmp_path):
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        open_dataset(tmp_path / "nope", size=8)
    (tmp_path / "empty").mkdir()
    with pytest.raises(OpenImagenError, match="no usable images"):
        open_dataset(tmp_path / "empty", size=8)
    (tmp_path / "notes.md").write_text("x")
    with pytest.raises(InvalidArgumentError, match="cannot tell the dataset format"):
        open_dataset(tmp_path / "notes.md", size=8)


def test_detect_format(tmp_path):
    (tmp_path / "m.jsonl").write_text("")
    assert detect_format(tmp_path) == "folder"
    assert detect_format(tmp_path / "m.jsonl") == "manifest"
    assert detect_format("shards/train-{000..009}.tar") == "webdataset"
    assert detect_format(["a.tar", "b.tar"]) == "webdataset"


def test_caption_variants_per_epoch_are_deterministic():
    caps = ("a", "b", "c", "d")
    assert choose_caption(caps, "primary", 0, 5, 3) == "a"
    picks = [choose_caption(caps, "per_epoch", 0, 5, e) for e in range(20)]
    assert picks == [choose_caption(caps, "per_epoch", 0, 5, e) for e in range(20)]
    assert len(set(picks)) > 1


def test_image_cache_matches_on_the_fly(messy_folder, tmp_path):
    ds = open_dataset(messy_folder, size=16, min_size=8)
    build_image_cache(ds, tmp_path / "cache")
    cached = CachedImageDataset(tmp_path / "cache")
    assert isinstance(cached.images, np.memmap)
    assert len(cached) == len(ds)
    for i in range(len(ds)):
        a, b = ds[i], cached[i]
        assert torch.equal(a["image"], b["image"]) and a["caption"] == b["caption"] and a["key"] == b["key"]


def test_dataset_from_records_validates_caption_mode(messy_folder):
    with pytest.raises(InvalidArgumentError, match="caption mode"):
        CaptionedImageDataset([], size=8, caption_mode="random")


def test_header_only_scan_defers_decode_errors(messy_folder):
    ds = open_dataset(messy_folder, size=16, min_size=8, verify=False)
    keys = [r.key for r in ds.records]
    assert "truncated" in keys and "text" not in keys and "tiny" not in keys
    got = [ds[i]["key"] for i in range(len(ds))]
    assert "truncated" not in got
    assert any(s["key"] == "truncated" and "at load time" in s["reason"] for s in ds.report.skipped)


def test_max_pixels_skips_before_decoding(messy_folder):
    ds = open_dataset(messy_folder, size=16, max_pixels=40 * 30 - 1)
    assert "good_red" not in [r.key for r in ds.records]
    assert any(s["key"] == "good_red" and s["reason"].startswith("too large") for s in ds.report.skipped)
