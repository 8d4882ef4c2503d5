"""Train the emoji classifier (:mod:`openimagen.eval.emoji_classifier`) on a built emoji data set.

    python -m openimagen.eval.train_emoji_classifier data/emoji64 -o src/openimagen/eval/emoji_classifier.safetensors

(``openimagen data emoji data/emoji64 --size 64`` builds the data.) Labels are ``labels.group`` and
``labels.subgroup`` of ``DATA_DIR/manifest.jsonl``; every image is used for training (the classifier measures
images against this very set, so nothing is held out; the accuracy reported is on these images, clean and
augmented).

Augmentation, so that generated images (slightly shifted, soft, noisy) are classified like real ones, per image
and drawn from a seeded ``torch.Generator``: a random affine map (scale 0.85-1.1, shift up to 2.4 px of 32,
white outside), with probability 1/2 a Gaussian blur (sigma 0.3-1.2 px), brightness/contrast jitter (+-0.1,
x0.85-1.15) and Gaussian noise (std 0-0.12 of the [-1, 1] range). Loss: cross-entropy of the subgroup head plus
that of the group head, label smoothing 0.1; AdamW with a one-cycle learning rate. Each epoch draws N images
with replacement, an image of subgroup s with probability proportional to 1/sqrt(n_s), so subgroup s is seen in
proportion to sqrt(n_s): the 2,148 People & Body images (mostly skin-tone variants) no longer crowd out the
single-image emoji of Objects or Food & Drink. Runs on one CPU thread with
deterministic algorithms, so the same seed gives the same weights (about 4 minutes).
"""
from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from openimagen.errors import InvalidArgumentError
from openimagen.eval.emoji_classifier import WEIGHTS_PATH, EmojiClassifier, EmojiClassifierConfig, save_classifier


def load_emoji_data(data_dir, size: int = 32) -> dict:
    """``{"x": (N, 3, size, size) in [-1, 1], "group": (N,), "subgroup": (N,), "groups", "subgroups",
    "subgroup_group"}`` from a built emoji data set (classes in CLDR order)."""
    from PIL import Image

    from openimagen.data.formats import read_manifest
    from openimagen.data.preprocess import SkipReport, composite_on_white, to_tensor

    manifest = Path(data_dir) / "manifest.jsonl"
    if not manifest.is_file():
        raise InvalidArgumentError(f"{manifest} not found; build the data with "
                                   f"openimagen data emoji {data_dir} --size 64")
    records = [r for r in read_manifest(manifest, SkipReport()) if "subgroup" in r.labels and "group" in r.labels]
    if not records:
        raise InvalidArgumentError(f"{manifest} has no rows with labels.group and labels.subgroup")
    groups = list(dict.fromkeys(r.labels["group"] for r in records))
    subgroups = list(dict.fromkeys(r.labels["subgroup"] for r in records))
    xs = []
    for r in records:
        with Image.open(r.path) as im:
            xs.append(to_tensor(composite_on_white(im)))
    x = F.interpolate(torch.stack(xs), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return {"x": x, "group": torch.tensor([groups.index(r.labels["group"]) for r in records]),
            "subgroup": torch.tensor([subgroups.index(r.labels["subgroup"]) for r in records]),
            "groups": groups, "subgroups": subgroups,
            "subgroup_group": {r.labels["subgroup"]: r.labels["group"] for r in records}}


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-image separable Gaussian blur; x (B, 3, H, W), sigma (B,) in px."""
    b, c, h, w = x.shape
    t = torch.arange(-2, 3, dtype=x.dtype)
    k = torch.exp(-t[None] ** 2 / (2 * sigma[:, None] ** 2))
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)                 # (B*3, 5)
    y = F.pad(x.reshape(1, b * c, h, w), (2, 2, 2, 2), mode="replicate")
    y = F.conv2d(y, k[:, None, :, None], groups=b * c)                       # vertical
    y = F.conv2d(y, k[:, None, None, :], groups=b * c)                       # horizontal
    return y.reshape(b, c, h, w)


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """The module docstring's augmentation of a batch (B, 3, H, W) in [-1, 1]."""
    b = x.shape[0]
    u = lambda lo, hi, *shape: lo + (hi - lo) * torch.rand(*(shape or (b,)), generator=g)  # noqa: E731
    scale, shift = u(0.85, 1.1), u(-0.15, 0.15, b, 2)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x - 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + 1  # white outside
    blurred = _blur(x, u(0.3, 1.2))
    x = torch.where((torch.rand(b, generator=g) < 0.5)[:, None, None, None], blurred, x)
    x = x * u(0.85, 1.15)[:, None, None, None] + u(-0.1, 0.1)[:, None, None, None]
    x = x + u(0.0, 0.12)[:, None, None, None] * torch.randn(x.shape, generator=g)
    return x.clamp(-1, 1)


@torch.no_grad()
def accuracy(model: EmojiClassifier, data: dict, g: torch.Generator = None) -> dict:
    """Share of images whose group / subgroup is predicted right (augmented first when ``g`` is given)."""
    model.eval()
    x = augment(data["x"], g) if g is not None else data["x"]
    logits_g, logits_s = model(x)
    return {"group": float((logits_g.argmax(1) == data["group"]).float().mean()),
            "subgroup": float((logits_s.argmax(1) == data["subgroup"]).float().mean())}


def train(data: dict, epochs: int = 35, batch_size: int = 128, lr: float = 3e-3, seed: int = 0,
          log=print) -> EmojiClassifier:
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    config = EmojiClassifierConfig(groups=tuple(data["groups"]), subgroups=tuple(data["subgroups"]),
                                   subgroup_group=data["subgroup_group"])
    model = EmojiClassifier(config)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    n = len(data["x"])
    counts = torch.bincount(data["subgroup"]).double()
    weights = counts[data["subgroup"]] ** -0.5          # (N,): subgroup s is drawn in proportion to sqrt(n_s)
    steps = epochs * math.ceil(n / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    for epoch in range(epochs):
        model.train()
        perm, total = torch.multinomial(weights, n, replacement=True, generator=g), 0.0
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            logits_g, logits_s = model(augment(data["x"][idx], g))
            loss = (F.cross_entropy(logits_s, data["subgroup"][idx], label_smoothing=0.1)
                    + F.cross_entropy(logits_g, data["group"][idx], label_smoothing=0.1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        log(f"epoch {epoch + 1}/{epochs}: loss {total / n:.4f}")
    return model.eval()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data_dir", help="a built emoji data set (openimagen data emoji DIR --size 64)")
    p.add_argument("-o", "--out", default=str(WEIGHTS_PATH),
                   help="weights file to write (.safetensors; the config goes to the same name .json)")
    p.add_argument("--epochs", type=int, default=35, help="passes over the data (default 35)")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation, order and augmentation (default 0)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    t0 = time.perf_counter()
    data = load_emoji_data(args.data_dir)
    model = train(data, epochs=args.epochs, seed=args.seed)
    seconds = time.perf_counter() - t0
    clean = accuracy(model, data)
    augmented = accuracy(model, data, torch.Generator().manual_seed(args.seed + 1))
    out = Path(args.out).with_suffix(".safetensors")
    command = "python -m openimagen.eval.train_emoji_classifier " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    trained = {"command": command, "data": str(args.data_dir), "images": len(data["x"]), "epochs": args.epochs,
               "seed": args.seed, "seconds": round(seconds, 1), "threads": 1, "torch": torch.__version__,
               "accuracy_clean": clean, "accuracy_augmented": augmented,
               "note": "accuracy on the training images (nothing is held out), clean and under the training "
                       "augmentation"}
    model.config = EmojiClassifierConfig(**{**model.config.__dict__, "trained": trained})
    weights, config = save_classifier(model, out)
    print(f"wrote {weights} and {config} in {seconds:.0f} s: subgroup accuracy {clean['subgroup']:.3f} clean, "
          f"{augmented['subgroup']:.3f} augmented; group {clean['group']:.3f} / {augmented['group']:.3f}")


if __name__ == "__main__":
    main()
