"""A small CNN that openimagen trains on its emoji data: Unicode group and subgroup of a 32 px image.

It serves two measurements of generated emoji (docs/EVALUATION.md):

* **feature space for a Fréchet distance**: the penultimate vector (``feature_dim``, 128) is the embedding in
  which :mod:`openimagen.eval.frechet` compares generated with real images (the FID recipe of Heusel et al.
  2017, with this classifier in place of Inception-v3, as "FID in a domain classifier's space");
* **prompt agreement**: the subgroup head (99 classes such as ``face-smiling``, ``animal-mammal``) says whether
  an image shows an emoji of its prompt's subgroup; the group head (9 classes) does the same coarsely.

Network (VGG-style, ~55k parameters): input resized to ``input_size`` (bilinear, antialiased), then per stage
two 3x3 conv + BatchNorm + ReLU and a 2x2 max-pool, a last conv to ``feature_dim`` channels, global average
pool -> features -> two linear heads. The shipped weights (``emoji_classifier.safetensors``) and config
(``emoji_classifier.json``: class names, training command, measured accuracy) come from
:mod:`openimagen.eval.train_emoji_classifier`; rerun it to reproduce them.
"""
from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from openimagen.errors import InvalidArgumentError, ModelLoadError

WEIGHTS_PATH = Path(__file__).resolve().parent / "emoji_classifier.safetensors"
CONFIG_PATH = WEIGHTS_PATH.with_suffix(".json")


@dataclass(frozen=True)
class EmojiClassifierConfig:
    input_size: int = 32                # images are resized to this side before the network
    widths: tuple = (16, 32)            # channels of the two conv stages (each: 2 convs + max-pool)
    feature_dim: int = 128              # channels of the last conv = length of the feature vector
    groups: tuple = ()                  # group head's class names ("Smileys & Emotion", ...)
    subgroups: tuple = ()               # subgroup head's class names ("face-smiling", ...)
    subgroup_group: dict = field(default_factory=dict)   # subgroup -> its group
    trained: dict = field(default_factory=dict)          # training command, data, time, accuracy

    def to_json(self) -> dict:
        d = asdict(self)
        d["widths"], d["groups"], d["subgroups"] = list(self.widths), list(self.groups), list(self.subgroups)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "EmojiClassifierConfig":
        return cls(int(d["input_size"]), tuple(d["widths"]), int(d["feature_dim"]), tuple(d["groups"]),
                   tuple(d["subgroups"]), dict(d.get("subgroup_group", {})), dict(d.get("trained", {})))


def _conv(c_in: int, c_out: int) -> list:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


class EmojiClassifier(nn.Module):
    """``features(x)`` (B, feature_dim) and ``forward(x)`` -> (group logits, subgroup logits); x in [-1, 1]."""

    def __init__(self, config: EmojiClassifierConfig):
        super().__init__()
        self.config = config
        layers, c = [], 3
        for w in config.widths:
            layers += _conv(c, w) + _conv(w, w) + [nn.MaxPool2d(2)]
            c = w
        layers += _conv(c, config.feature_dim) + [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.group_head = nn.Linear(config.feature_dim, len(config.groups))
        self.subgroup_head = nn.Linear(config.feature_dim, len(config.subgroups))

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, 3, s, s), s = ``input_size``."""
        s = self.config.input_size
        if x.shape[-2:] == (s, s):
            return x
        return F.interpolate(x, size=(s, s), mode="bilinear", antialias=True, align_corners=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.resize(x))                                    # (B, feature_dim)

    def forward(self, x: torch.Tensor) -> tuple:
        f = self.features(x)
        return self.group_head(f), self.subgroup_head(f)                     # (B, G), (B, S)


def images_to_tensor(images: Sequence) -> torch.Tensor:
    """PIL images (any size, any mode) -> (B, 3, H, W) float32 in [-1, 1]; all must share one size."""
    from openimagen.data.preprocess import composite_on_white, to_tensor

    if not images:
        raise InvalidArgumentError("no images to classify")
    sizes = {im.size for im in images}
    if len(sizes) > 1:
        raise InvalidArgumentError(f"images of one batch must share a size, got {sorted(sizes)}")
    return torch.stack([to_tensor(composite_on_white(im)) for im in images])


@torch.no_grad()
def embed(model: EmojiClassifier, x: torch.Tensor, batch_size: int = 256) -> dict:
    """``{"features": (N, D), "group": (N,) int, "subgroup": (N,) int}`` for (N, 3, H, W) images in [-1, 1]."""
    model.eval()
    feats, groups, subs = [], [], []
    for i in range(0, len(x), batch_size):
        f = model.features(x[i:i + batch_size].float())
        feats.append(f)
        groups.append(model.group_head(f).argmax(1))
        subs.append(model.subgroup_head(f).argmax(1))
    return {"features": torch.cat(feats), "group": torch.cat(groups), "subgroup": torch.cat(subs)}


def save_classifier(model: EmojiClassifier, weights: Union[str, Path] = WEIGHTS_PATH,
                    config: Optional[Union[str, Path]] = None) -> tuple:
    """Write the weights (safetensors, float32) and the config JSON next to them."""
    from safetensors.torch import save_file

    weights = Path(weights)
    config = Path(config) if config else weights.with_suffix(".json")
    weights.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items() if "num_batches_tracked" not in k}
    save_file(state, str(weights))
    weights.chmod(0o644)                      # safetensors writes through a private temporary file
    config.write_text(json.dumps(model.config.to_json(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return weights, config


def load_classifier(weights: Union[str, Path, None] = None) -> EmojiClassifier:
    """The classifier from ``weights`` (default: the shipped one) and the ``.json`` config beside it; eval mode."""
    return _load(str(Path(weights) if weights else WEIGHTS_PATH))


@functools.lru_cache(maxsize=4)
def _load(weights: str) -> EmojiClassifier:
    from safetensors.torch import load_file

    path = Path(weights)
    retrain = "retrain it with python -m openimagen.eval.train_emoji_classifier data/emoji64"
    try:
        config = EmojiClassifierConfig.from_json(json.loads(path.with_suffix(".json").read_text(encoding="utf-8")))
        state = load_file(str(path))
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise ModelLoadError(f"emoji classifier {path} (and its .json config) is missing or broken ({e}); "
                             f"{retrain}") from None
    model = EmojiClassifier(config)
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as e:
        raise ModelLoadError(f"emoji classifier weights {path} do not match its config "
                             f"({str(e).splitlines()[-1].strip()}); {retrain}") from None
    missing = set(k for k in model.state_dict() if "num_batches_tracked" not in k) - set(state)
    if missing:
        raise ModelLoadError(f"emoji classifier weights {path} lack {len(missing)} tensors, e.g. "
                             f"{sorted(missing)[0]}; {retrain}")
    return model.eval()
