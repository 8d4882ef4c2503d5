"""Issue 10, kind 7: runs that share text.cache_dir with different caption sets never change each other's
embeddings: each set gets its own content-addressed table, written once; a table being read survives a
recompute of its folder; a torn table is refused in one line."""
import json

import numpy as np
import pytest

from openimagen.data import EmbeddingTable, build_shapes, precompute_text_embeddings
from openimagen.errors import ConfigError, InvalidArgumentError
from openimagen.text import load_text_encoder
from openimagen.train.trainer import train
from tests.train.conftest import run_config


def test_two_caption_sets_in_one_cache_dir_train_as_with_private_caches(assets, tmp_path):
    other = build_shapes(tmp_path / "other", 10, seed=7, size=32, workers=1).out
    shared = tmp_path / "shared"
    alone = train(run_config(assets, tmp_path / "alone", text={"cache_dir": str(tmp_path / "private")}))
    a1 = train(run_config(assets, tmp_path / "a1", text={"cache_dir": str(shared)}))
    b = train(run_config(assets, tmp_path / "b", data={"path": str(other)}, text={"cache_dir": str(shared)}))
    a2 = train(run_config(assets, tmp_path / "a2", text={"cache_dir": str(shared)}))
    assert a1.losses == alone.losses == a2.losses                      # bit for bit, whatever ran in between
    assert b.losses != a1.losses
    tables = sorted(p.name for p in (shared / "sets").iterdir())
    assert len(tables) == 2 and all(len(t) == 16 for t in tables)      # one table per caption set


def test_a_reader_keeps_its_table_when_the_folder_is_recomputed(assets, tmp_path):
    enc = load_text_encoder(str(assets["bert"]), max_length=8)
    folder = precompute_text_embeddings(["a red circle", "a blue square"], enc, tmp_path / "t", progress=False)
    reader = EmbeddingTable(folder)
    before = np.array(reader.tokens[reader.row("a red circle")])
    precompute_text_embeddings(["two green stars", "a red circle", "sky"], enc, folder, progress=False)
    assert np.array_equal(np.array(reader.tokens[reader.row("a red circle")]), before)   # no SIGBUS, same values
    fresh = EmbeddingTable(folder)
    assert len(fresh) == 3 and np.array_equal(np.array(fresh.tokens[fresh.row("a red circle")]), before)


def test_precompute_never_replaces_a_folder_holding_other_files(assets, tmp_path):
    enc = load_text_encoder(str(assets["bert"]), max_length=8)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(InvalidArgumentError, match="more than an embedding table"):
        precompute_text_embeddings(["a"], enc, tmp_path / "mine", progress=False)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_a_torn_table_is_refused_in_one_line(assets, tmp_path):
    enc = load_text_encoder(str(assets["bert"]), max_length=8)
    folder = precompute_text_embeddings(["a", "b", "c"], enc, tmp_path / "t", progress=False)
    index = json.loads((folder / "index.json").read_text())
    index["count"], index["captions"]["d"] = 4, 3
    (folder / "index.json").write_text(json.dumps(index))
    with pytest.raises(ConfigError, match="inconsistent"):
        EmbeddingTable(folder)


def test_a_table_in_use_is_untouched_while_another_caption_set_is_computed(assets, tmp_path):
    import torch

    from openimagen.train.data import text_table

    shared = tmp_path / "shared"
    cfg = run_config(assets, tmp_path / "r", text={"cache_dir": str(shared)})
    mine, theirs = ["a red circle", "a blue square"], ["two green stars", "a white triangle", "sky"]
    table = text_table(cfg, mine, shared, compute=True, log=lambda *_: None)
    before = table.lookup(mine)
    other = text_table(cfg, theirs, shared, compute=True, log=lambda *_: None)
    after = table.lookup(mine)
    assert other.dir != table.dir
    assert all(torch.equal(x, y) for x, y in zip(before, after))
