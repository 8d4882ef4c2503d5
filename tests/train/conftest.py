"""Shared fixtures of the training tests: a tiny shapes data set, a tiny random text encoder, tiny run configs.

Every test runs on CPU with one intra-op thread (restored afterwards): on a busy 2-core machine two threads make small convolutions
10x slower, and one thread keeps results independent of the thread count (the DDP test compares processes).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from openimagen.data import build_shapes
from openimagen.train.config import RunConfig
from tests.text.tiny_models import make_bert_dir

TEXT_DIM = 16  # width of the tiny BERT below


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def assets(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("train_assets")
    build_shapes(root / "shapes", 12, seed=0, size=32, workers=1)
    return {"shapes": root / "shapes", "bert": make_bert_dir(root / "bert"), "text_cache": root / "text_cache"}


def run_config(assets: dict, out: Path, *, sr: bool = False, **sections) -> RunConfig:
    """A tiny run: base 16 px ("tiny") or SR 16 -> 32 px ("tiny-sr"); ``sections`` update the config's mappings."""
    d = {"seed": 3, "max_steps": 4, "out": str(out),
         "stage": {"resolution": 32 if sr else 16, "lowres_resolution": 16 if sr else None,
                   "unet": {"preset": "tiny-sr" if sr else "tiny", "overrides": {"text_dim": TEXT_DIM}},
                   "sampling": {"steps": 2}},
         "data": {"path": str(assets["shapes"])},
         "text": {"encoder": str(assets["bert"]), "max_length": 16, "cache_dir": str(assets["text_cache"])},
         "train": {"batch_size": 3, "grad_accum": 1, "ema_decay": 0.9, "text_drop_prob": 0.3},
         "optimiser": {"lr": 2e-3, "warmup_steps": 2, "decay": "cosine"},
         "log": {"log_every": 1, "sample_every": 0, "checkpoint_every": 100, "keep_last": 2, "tensorboard": False,
                 "progress": False, "sample_prompts": ["a red circle", "a blue square"]}}
    for key, value in sections.items():
        if isinstance(value, dict):
            d[key] = {**d.get(key, {}), **value}
        else:
            d[key] = value
    return RunConfig.from_dict(d)
