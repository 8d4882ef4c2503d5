"""The FID Inception-v3 network in plain torch, for standard FID (Heusel et al. 2017) from local weights.

FID's reference implementation (TTUR, TensorFlow) embeds images with the 2015-12-05 Inception-v3 graph and
takes the 2048-d output of its last average pool ("pool3"). pytorch-fid (mseitzer/pytorch-fid,
``src/pytorch_fid/inception.py``) ports those weights to ``pt_inception-2015-12-05-6726825d.pth``: the state
dict of torchvision's ``Inception3(num_classes=1008, aux_logits=False)`` with blocks 5b-5d, 6b-6e, 7b and 7c
replaced by ``FIDInceptionA/C/E_1/E_2``, which differ from torchvision only in their pooling branch (average
pools that exclude the zero padding, and a max pool in 7c). This module rebuilds that network with exactly
the same module names, so that file loads as is (torchvision is not needed). Input handling follows
pytorch-fid: images resized to 299 x 299 (bilinear, ``align_corners=False``) and scaled to [-1, 1].

Use :func:`load_inception` with the weights file's path, then :func:`inception_features`.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from openimagen.errors import ModelLoadError

WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
FEATURE_DIM = 2048
EXPECTED = (f"a pytorch-fid FID Inception-v3 state dict ({WEIGHTS_NAME} from "
            "https://github.com/mseitzer/pytorch-fid/releases/tag/fid_weights: torchvision Inception3 keys such as "
            "Conv2d_1a_3x3.conv.weight (32, 3, 3, 3), Mixed_7c.branch_pool.conv.weight (192, 2048, 1, 1), "
            "fc.weight (1008, 2048))")


class BasicConv2d(nn.Module):
    """Conv (no bias) + BatchNorm (eps 1e-3) + ReLU, as torchvision's."""

    def __init__(self, c_in: int, c_out: int, **kw):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, bias=False, **kw)
        self.bn = nn.BatchNorm2d(c_out, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x):  # FID patch: TensorFlow's average pool does not count the zero padding
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(nn.Module):
    def __init__(self, c_in: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(c_in, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(c_in, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(c_in, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(c_in, pool_features, kernel_size=1)

    def forward(self, x):
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_avg_pool(x))], 1)


class InceptionB(nn.Module):
    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(c_in, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(c_in, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class FIDInceptionC(nn.Module):
    def __init__(self, c_in: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(c_in, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(c_in, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(c_in, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(c_in, 192, kernel_size=1)

    def forward(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for i in range(1, 6):
            d = getattr(self, f"branch7x7dbl_{i}")(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_avg_pool(x))], 1)


class InceptionD(nn.Module):
    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(c_in, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(c_in, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x):
        b7 = x
        for i in range(1, 5):
            b7 = getattr(self, f"branch7x7x3_{i}")(b7)
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class FIDInceptionE(nn.Module):
    """Blocks 7b (``max_pool=False``: average pool without padding) and 7c (``max_pool=True``, pytorch-fid's
    FIDInceptionE_2: the TF graph max-pools here)."""

    def __init__(self, c_in: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(c_in, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(c_in, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(c_in, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(c_in, 192, kernel_size=1)

    def forward(self, x):
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        d = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        pool = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _avg_pool(x)
        return torch.cat([self.branch1x1(x), b3, d, self.branch_pool(pool)], 1)


class FIDInceptionV3(nn.Module):
    """``forward(x)``: (B, 3, H, W) in [-1, 1] -> (B, 2048) pool3 features. ``fc`` is kept only so that the
    state dict matches pytorch-fid's file; it is not used."""

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = FIDInceptionA(192, pool_features=32)
        self.Mixed_5c = FIDInceptionA(256, pool_features=64)
        self.Mixed_5d = FIDInceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        self.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = FIDInceptionE(1280, max_pool=False)
        self.Mixed_7c = FIDInceptionE(2048, max_pool=True)
        self.fc = nn.Linear(2048, 1008)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)      # (B, 3, 299, 299)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))               # (B, 64, 147, 147)
        x = F.max_pool2d(x, kernel_size=3, stride=2)                                     # (B, 64, 73, 73)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))                                    # (B, 192, 71, 71)
        x = F.max_pool2d(x, kernel_size=3, stride=2)                                     # (B, 192, 35, 35)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)                                       # ... (B, 2048, 8, 8)
        return x.mean((2, 3))                                                            # (B, 2048)


def check_state_dict(state: dict, source: str) -> dict:
    """``state`` without ``num_batches_tracked`` entries, or :class:`ModelLoadError` if a key or shape differs
    from :class:`FIDInceptionV3`'s."""
    expected = {k: tuple(v.shape) for k, v in FIDInceptionV3().state_dict().items() if "num_batches_tracked" not in k}
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"{source} does not hold a state dict of tensors; expected {EXPECTED}")
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or extra:
        raise ModelLoadError(f"{source} is not the FID Inception weights: {len(missing)} tensors missing "
                             f"(e.g. {missing[:2]}), {len(extra)} unexpected (e.g. {extra[:2]}); expected {EXPECTED}")
    wrong = [f"{k} {tuple(state[k].shape)} (expected {s})" for k, s in expected.items() if tuple(state[k].shape) != s]
    if wrong:
        raise ModelLoadError(f"{source} has tensors of the wrong shape: {', '.join(wrong[:3])}; expected {EXPECTED}")
    return state


def load_inception(path: Union[str, Path]) -> FIDInceptionV3:
    """The FID Inception network with the weights of ``path`` (see :data:`EXPECTED`), in eval mode."""
    return _load(str(Path(path).expanduser().resolve()))


@functools.lru_cache(maxsize=2)
def _load(path: str) -> FIDInceptionV3:
    p = Path(path)
    if not p.is_file():
        raise ModelLoadError(f"--inception {p}: no such file; expected {EXPECTED}")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds for a file that is not a checkpoint
        raise ModelLoadError(f"--inception {p} cannot be read as a torch state dict "
                             f"({type(e).__name__}); expected {EXPECTED}") from None
    net = FIDInceptionV3()
    net.load_state_dict(check_state_dict(state, str(p)), strict=False)
    return net.eval()


@torch.no_grad()
def inception_features(net: FIDInceptionV3, x: torch.Tensor, batch_size: int = 32, device="cpu") -> torch.Tensor:
    """(N, 2048) pool3 features (float64, on the CPU) of (N, 3, H, W) images in [-1, 1], computed on ``device``."""
    net = net.to(device)
    return torch.cat([net(x[i:i + batch_size].to(device).float()).double().cpu() for i in range(0, len(x), batch_size)])
