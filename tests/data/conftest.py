"""Shared fixtures of the data tests: tiny image folders and a fake text encoder."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from PIL import Image


def save_image(path: Path, size=(40, 30), color=(200, 30, 30), mode="RGB", caption: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fill = color + (128,) if mode == "RGBA" else color
    Image.new(mode, size, fill).save(path)
    if caption is not None:
        path.with_suffix(".txt").write_text(caption, encoding="utf-8")
    return path


@pytest.fixture
def messy_folder(tmp_path) -> Path:
    """3 good images (one RGBA, one nested) and 5 bad ones, each bad for a different reason."""
    root = tmp_path / "messy"
    save_image(root / "good_red.png", caption="  a red\n  rectangle ")
    save_image(root / "good_alpha.png", mode="RGBA", color=(0, 0, 255), caption="half transparent blue")
    save_image(root / "sub" / "good_jpg.jpg", size=(50, 50), color=(0, 200, 0), caption="green square")
    truncated = save_image(root / "truncated.png", size=(64, 64), caption="cut off")
    truncated.write_bytes(truncated.read_bytes()[:60])
    (root / "text.png").write_text("this is not a png")
    (root / "text.txt").write_text("caption of a fake image")
    save_image(root / "no_caption.png")
    save_image(root / "tiny.png", size=(4, 4), caption="too small")
    save_image(root / "empty_caption.png", caption="   ")
    return root


@dataclass
class FakeEmbedding:
    tokens: torch.Tensor
    mask: torch.Tensor
    encoder_id: str


class FakeEncoder:
    """Deterministic function of the text: token i of a caption depends on its characters."""

    encoder_id = "fake-encoder-v1"
    max_length = 8
    dim = 6

    def __init__(self):
        self.calls = 0

    def encode(self, texts: list[str]) -> FakeEmbedding:
        self.calls += 1
        B, L, D = len(texts), self.max_length, self.dim
        tokens = torch.zeros(B, L, D)
        mask = torch.zeros(B, L, dtype=torch.bool)
        for b, text in enumerate(texts):
            words = text.split()[:L]
            for i, w in enumerate(words):
                g = torch.Generator().manual_seed(sum(ord(c) * (k + 1) for k, c in enumerate(w)) + i)
                tokens[b, i] = torch.randn(D, generator=g) * 3.3
                mask[b, i] = True
        return FakeEmbedding(tokens, mask, self.encoder_id)


@pytest.fixture
def fake_encoder() -> FakeEncoder:
    return FakeEncoder()
