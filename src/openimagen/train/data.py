"""Training batches as a pure function of (seed, step, rank): what makes resume and data parallelism exact.

Data order. The examples form one endless stream: epoch e is the permutation ``randperm(N)`` drawn from a
generator seeded with (seed, e), and epochs follow each other. Optimiser step s takes the next global batch
of B = batch_size x world_size x grad_accum stream positions, ``s * B ... s * B + B - 1``; the position
after step s, as (epoch, index in the epoch's permutation), is the checkpoint's data position.

Sharding (like ``DistributedSampler``, but by contiguous chunks of the global batch): global batch index
``j`` belongs to micro-batch ``j // (b * W)`` and rank ``(j // b) % W``. One process with grad_accum = W sees
the same examples in the same chunks as W ranks with grad_accum = 1.

Per-example randomness. Example j of step s draws its text drop, noise levels, noises and crop offset from
its own generators, seeded by (seed, s, j). They do not depend on how the batch is split, so W ranks draw
exactly what one process draws, and a resumed run draws what the uninterrupted run drew: there is no
training-generator state to restore.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from openimagen.data import (CachedImageDataset, EmbeddingTable, choose_caption, open_dataset,
                             precompute_text_embeddings)
from openimagen.errors import ConfigError
from openimagen.train.config import RunConfig

NOISE_STREAM, CROP_STREAM = 0, 1


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers (numpy's SeedSequence hashing, so nearby inputs give unrelated seeds)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0] >> 1)


@lru_cache(maxsize=4)
def epoch_permutation(seed: int, epoch: int, n: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(mix_seed(seed, epoch, 7919)))


@dataclass(frozen=True)
class Layout:
    """How a global batch is split: per-rank micro-batch ``b``, ``world`` ranks, ``accum`` micro-batches."""

    b: int
    world: int
    accum: int

    @property
    def global_batch(self) -> int:
        return self.b * self.world * self.accum

    def positions(self, micro: int, rank: int) -> range:
        """Global-batch indices j of (micro-batch, rank)."""
        start = (micro * self.world + rank) * self.b
        return range(start, start + self.b)


def data_position(step: int, global_batch: int, n: int) -> dict:
    """(epoch, index) in the stream after ``step`` optimiser steps."""
    pos = step * global_batch
    return {"epoch": pos // n, "index": pos % n}


def example_generators(seed: int, step: int, positions, stream: int, device="cpu") -> list[torch.Generator]:
    return [torch.Generator(device=device).manual_seed(mix_seed(seed, step, j, stream)) for j in positions]


def open_training_dataset(cfg: RunConfig):
    """The map-style dataset of ``cfg.data`` at the resolution of the stage (``data.path`` may be an image cache)."""
    path = Path(cfg.data.path).expanduser()
    if path.is_dir() and (path / "images.npy").is_file() and (path / "records.json").is_file():
        ds = CachedImageDataset(path, caption_mode=cfg.data.caption_mode, seed=cfg.seed)
        if ds.images.shape[1] != cfg.stage.resolution:
            raise ConfigError(f"image cache {path} holds {ds.images.shape[1]}px images but stage.resolution is "
                              f"{cfg.stage.resolution}")
        return ds
    ds = open_dataset(str(path), size=cfg.stage.resolution, resize=cfg.data.resize, min_size=cfg.data.min_size,
                      verify=cfg.data.verify, caption_mode=cfg.data.caption_mode, seed=cfg.seed)
    if not hasattr(ds, "records"):
        raise ConfigError(f"{path} is a streamed WebDataset; training needs a folder, a .jsonl/.csv manifest or "
                          f"an image cache (openimagen.data.build_image_cache) for its exact, resumable data order")
    return ds


class EpochItems(torch.utils.data.Dataset):
    """Items addressed by (dataset index, epoch), so the caption variant follows the epoch (``per_epoch`` mode)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        index, epoch = key
        item = self.dataset[index]
        ds, i = self.dataset, item["index"]
        item["caption"] = choose_caption(ds.records[i].captions, ds.caption_mode, ds.seed, i, epoch)
        return item


class MicroBatches(torch.utils.data.Sampler):
    """For one rank, from ``start_step`` on: the (index, epoch) keys of every micro-batch, in order."""

    def __init__(self, n: int, seed: int, layout: Layout, rank: int, start_step: int, max_steps: int):
        self.n, self.seed, self.layout, self.rank = n, seed, layout, rank
        self.start_step, self.max_steps = start_step, max_steps

    def __len__(self) -> int:
        return max(0, self.max_steps - self.start_step) * self.layout.accum

    def __iter__(self):
        B = self.layout.global_batch
        for step in range(self.start_step, self.max_steps):
            for micro in range(self.layout.accum):
                keys = []
                for j in self.layout.positions(micro, self.rank):
                    epoch, index = divmod(step * B + j, self.n)
                    keys.append((int(epoch_permutation(self.seed, epoch, self.n)[index]), epoch))
                yield keys


def collate(items: list[dict]) -> dict:
    return {"image": torch.stack([it["image"] for it in items]),             # (b, 3, R, R)
            "caption": [it["caption"] for it in items], "index": [it["index"] for it in items]}


def micro_batch_loader(dataset, cfg: RunConfig, layout: Layout, rank: int, start_step: int):
    sampler = MicroBatches(len(dataset), cfg.seed, layout, rank, start_step, cfg.max_steps)
    return torch.utils.data.DataLoader(EpochItems(dataset), batch_sampler=sampler, collate_fn=collate,
                                       num_workers=cfg.data.num_workers, pin_memory=torch.cuda.is_available())


def random_crops(images: torch.Tensor, size: int, generators: list[torch.Generator]) -> torch.Tensor:
    """One random ``size`` x ``size`` crop per image, its offset from that image's generator."""
    r = images.shape[-1]
    out = []
    for img, g in zip(images, generators):
        oy, ox = (int(v) for v in torch.randint(0, r - size + 1, (2,), generator=g))
        out.append(img[:, oy:oy + size, ox:ox + size])
    return torch.stack(out)                                                 # (b, 3, size, size)


def text_table(cfg: RunConfig, captions: list[str], cache_dir: Path, *, compute: bool, log=print) -> EmbeddingTable:
    """The fp16 embedding cache holding every caption; computed once (by the caller that has ``compute``).

    ``cache_dir`` may be shared by runs with different captions (issue 10, kind 7): a table already in
    ``cache_dir`` itself (precomputed, or an earlier layout) is used when it holds every caption, for this
    encoder and max_length; otherwise the table lives in ``cache_dir/sets/<digest>``, named by the sha256 of the
    encoder id, max_length and the sorted captions, written once (temporary folder, then rename) and never
    rewritten, so no run ever changes the embeddings another run is reading."""
    from openimagen.text.hf import model_dir_id
    from openimagen.text.registry import DEFAULT_ENCODER_ID, DEFAULT_NAMES

    spec = cfg.text.encoder
    encoder_id = DEFAULT_ENCODER_ID if spec.lower() in DEFAULT_NAMES else None
    if encoder_id is None and Path(spec).is_dir():
        encoder_id = model_dir_id(spec)
    L = cfg.text.max_length
    if _table_ok(cache_dir, encoder_id, L, captions):
        folder = cache_dir
    else:
        folder = cache_dir / "sets" / caption_set_digest(encoder_id or spec, L, captions)
        if compute and not _table_ok(folder, encoder_id, L, captions):
            from openimagen.text import load_text_encoder

            log(f"computing text embeddings of {len(set(captions))} captions into {folder}")
            encoder = load_text_encoder(spec, max_length=L)
            precompute_text_embeddings(captions, encoder, folder, progress=cfg.log.progress)
    table = EmbeddingTable(folder, encoder_id=encoder_id)
    if table.max_length != L:
        raise ConfigError(f"embedding cache {folder} has max_length {table.max_length}, text.max_length is {L}")
    missing = next((c for c in captions if c not in table), None)
    if missing is not None:
        raise ConfigError(f"embedding cache {folder} lacks the caption {missing[:60]!r}; delete the folder to "
                          f"recompute it")
    return table


def caption_set_digest(encoder: str, max_length: int, captions: list[str]) -> str:
    """16 hex digits naming a caption set's table: sha256 of the encoder id, max_length and the sorted captions."""
    text = json.dumps([str(encoder), int(max_length), sorted(set(captions))], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _table_ok(cache_dir: Path, encoder_id, max_length: int, captions: list[str]) -> bool:
    try:
        table = EmbeddingTable(cache_dir, encoder_id=encoder_id)
    except Exception:  # absent, interrupted or made by another encoder: recompute
        return False
    return table.max_length == max_length and all(c in table for c in captions)
