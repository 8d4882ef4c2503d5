"""WebDataset shards: reading back, rank/worker sharding, bad samples."""
import io

import pytest
import torch
import webdataset as wds
from PIL import Image

from openimagen.data import WebDatasetStream, open_dataset, write_shards
from openimagen.errors import InvalidArgumentError


def _png(color) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (20, 12), color).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def shards(tmp_path):
    """Two shards of 6 samples each written with wds.TarWriter, plus one bad sample in shard 1."""
    paths = []
    for s in range(2):
        path = tmp_path / f"train-{s:03d}.tar"
        with wds.TarWriter(str(path)) as w:
            for i in range(6):
                w.write({"__key__": f"s{s}_{i:02d}", "png": _png((40 * i, 100, 200)), "txt": f"sample {s} {i}"})
            if s == 1:
                w.write({"__key__": "s1_bad", "png": b"not a png", "txt": "broken"})
        paths.append(str(path))
    return tmp_path, paths


def test_read_back_all_samples(shards):
    root, paths = shards
    ds = open_dataset(str(root / "train-{000..001}.tar"), size=8, resize="pad")
    assert isinstance(ds, WebDatasetStream)
    items = list(ds)
    assert len(items) == 12
    assert items[0]["image"].shape == (3, 8, 8) and items[0]["caption"] == "sample 0 0"
    assert ds.report.loaded == 12 and [s["key"] for s in ds.report.skipped] == ["s1_bad"]


def test_rank_sharding_is_disjoint_and_complete(shards):
    root, paths = shards
    keys = []
    for rank in range(2):
        ds = open_dataset(paths, size=8, rank=rank, world_size=2)
        assert ds.shards == [paths[rank]]
        keys.append({item["key"] for item in ds})
    assert keys[0].isdisjoint(keys[1])
    assert keys[0] | keys[1] == {f"s{s}_{i:02d}" for s in range(2) for i in range(6)}


def test_worker_sharding_in_a_dataloader(shards):
    root, paths = shards
    ds = open_dataset(paths, size=8)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    keys = [item["key"] for item in loader]
    assert sorted(keys) == sorted(f"s{s}_{i:02d}" for s in range(2) for i in range(6))


def test_bad_specs(tmp_path, shards):
    root, paths = shards
    with pytest.raises(InvalidArgumentError, match="shard does not exist"):
        open_dataset(str(tmp_path / "nope-{0..3}.tar"), size=8)
    with pytest.raises(InvalidArgumentError, match="rank"):
        open_dataset(paths, size=8, rank=2, world_size=2)


def test_write_shards_round_trip(tmp_path):
    samples = [{"key": f"k{i}", "image": Image.new("RGB", (10, 10), (i * 20, 0, 0)), "caption": f"c{i}",
                "captions": [f"c{i}", f"variant {i}"], "labels": {"i": i}} for i in range(5)]
    paths = write_shards(samples, str(tmp_path / "out-%03d.tar"), per_shard=2)
    assert len(paths) == 3
    ds = open_dataset(str(tmp_path / "out-{000..002}.tar"), size=10)
    got = list(ds.iter_pil())
    assert [g["caption"] for g in got] == [f"c{i}" for i in range(5)]
    assert got[3]["captions"] == ["c3", "variant 3"] and got[3]["labels"] == {"i": 3}
    assert got[2]["image"].getpixel((5, 5)) == (40, 0, 0)
