"""Prepare the GPU recipe's bundle on the CPU (``python -m openimagen.gpu bundle OUT``; ``make gpu-bundle``).

The GPU machine has PyTorch, transformers, safetensors, Pillow and PyYAML but no package index and not this
project's other dependencies, and a call carries at most 64 MiB (the repository included). The bundle holds:

=====================  ==================================================================================
``bundle.json``        what is inside, the scenes' builder arguments, the sha256 of the sorted caption set,
                       the encoder pack's measured error, sizes (format in :func:`make_bundle`)
``emoji64/``           the Noto emoji data set at 64 px (``openimagen data emoji``): the one part that needs a
                       Debian font, so it travels built; the procedural scenes are rebuilt there (seconds)
``encoder/``           the default text encoder packed for these captions (:mod:`.encoder_pack`)
``configs/``           configs/gpu/base.yaml and sr.yaml as they were
``wheels/``            pydantic and its needs for CPython 3.12 on x86-64 (left out in tiny mode)
=====================  ==================================================================================
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import warnings
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Optional, Sequence

from openimagen.errors import ConfigError, InvalidArgumentError
from openimagen.pipeline.io import replace_folder

CARRY_LIMIT = 64 * 2**20                  # bytes a device call carries, the repository included
WHEELS = ("pydantic", "pydantic-core", "annotated-types", "typing-inspection", "typing-extensions")
REPO_ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class BundleSpec:
    """What a bundle holds. ``tiny``: a handful of images and no wheels, for tests on a CPU."""

    scenes: int = 40_000                  # procedural scenes (openimagen data shapes), rebuilt on the GPU machine
    scene_seed: int = 0
    emoji: Optional[int] = None           # emoji images (None: all 3,655)
    emoji_repeat: int = 3                 # mix weight of the emoji set (configs/default/data.sh: 21% emoji)
    size: int = 64
    max_length: int = 16
    wheels: bool = True

    @classmethod
    def tiny(cls) -> "BundleSpec":
        return cls(scenes=48, emoji=12, wheels=False)


def caption_digest(captions) -> str:
    """sha256 of the sorted, distinct captions (one per line): the GPU side checks its rebuilt data against it."""
    text = "\n".join(sorted(set(captions)))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_captions(manifest: Path) -> list[str]:
    caps = []
    with open(manifest, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                caps += row.get("captions") or [row["caption"]]
    return caps


def recipe_prompts(config_dir: Path) -> list[str]:
    """The sample prompts of the recipe's run configs (they go through the embedding cache too)."""
    from openimagen.train.config import read_config_file

    prompts = []
    for name in ("base.yaml", "sr.yaml"):
        prompts += list(read_config_file(config_dir / name).get("log", {}).get("sample_prompts", []))
    return prompts


def _tree_bytes(root: Path, skip=()) -> Optional[int]:
    """Bytes of the files git would carry from ``root`` (tracked plus untracked, not ignored), leaving out the
    folders ``skip`` (the bundle itself, carried on top); None outside a git checkout."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                             capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    skip = [Path(s).resolve() for s in skip]
    files = [(root / p).resolve() for p in out.decode().split("\0") if p]
    return sum(f.stat().st_size for f in files if f.is_file() and not any(f.is_relative_to(s) for s in skip))


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def download_wheels(out: Path, extra: Sequence[str] = ()) -> list[str]:
    """``pip download`` the installed versions of :data:`WHEELS`, and the pinned requirements ``extra``
    ("name==version"), for CPython 3.12 manylinux x86-64 into ``out``; the wheel file names there.
    ConfigError with pip's last line if a download fails."""
    out.mkdir(parents=True, exist_ok=True)
    pins = [f"{name}=={metadata.version(name)}" for name in WHEELS] + list(extra)
    platforms = [a for n in ("manylinux_2_28", "manylinux_2_27", "manylinux_2_17", "manylinux2014")
                 for a in ("--platform", f"{n}_x86_64")]
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
           "--python-version", "3.12", "--implementation", "cp", *platforms, "-d", str(out), *pins]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise ConfigError(f"pip download of {', '.join(pins)} failed: {done.stderr.strip().splitlines()[-1:]}")
    return sorted(p.name for p in out.glob("*.whl"))


def make_bundle(out, spec: BundleSpec = BundleSpec(), *, emoji_dir=None, config_dir=None, log=print) -> dict:
    """Write the bundle to ``out`` (replaced if it is an earlier bundle); returns its ``bundle.json``.

    ``emoji_dir``: an already built 64 px emoji data set to copy (default: build it, needs fonts-noto-color-emoji).
    Raises InvalidArgumentError if ``out`` exists and is not a bundle, ConfigError if the bundle and the
    repository together exceed :data:`CARRY_LIMIT` (full mode) or a step fails.
    """
    from openimagen.data.emojis import build_emoji
    from openimagen.data.shapes import build_shapes
    from openimagen.gpu.encoder_pack import check_pack, pack_encoder, unpack_encoder
    from openimagen.text.hf import HFTextEncoder
    from openimagen.text.registry import default_model_dir

    out = Path(out).expanduser()
    config_dir = Path(config_dir) if config_dir else REPO_ROOT / "configs" / "gpu"
    if out.exists() and not (out / "bundle.json").is_file() and any(out.iterdir()):
        raise InvalidArgumentError(f"{out} exists and is not a GPU bundle; choose an empty or new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="openimagen-bundle-"))                     # scratch: scenes, unpacked encoder
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))    # moved into place when complete
    try:
        log(f"building {spec.scenes} scenes to list their captions")
        shapes = build_shapes(tmp / "shapes64", spec.scenes, seed=spec.scene_seed, size=spec.size)
        emoji = stage / "emoji64"
        if emoji_dir is not None:
            shutil.copytree(emoji_dir, emoji)
            if spec.emoji is not None:
                _keep_first(emoji, spec.emoji)
        else:
            log("rendering the emoji data set")
            build_emoji(emoji, spec.size, limit=spec.emoji)
        captions = read_captions(shapes.manifest) + read_captions(emoji / "manifest.jsonl")
        texts = sorted(set(captions + recipe_prompts(config_dir)))
        log(f"packing the text encoder for {len(texts)} captions")
        src = default_model_dir()
        pack = pack_encoder(src, texts, stage / "encoder", max_length=spec.max_length)
        reference = HFTextEncoder(src, max_length=spec.max_length)
        packed = HFTextEncoder(unpack_encoder(stage / "encoder", tmp / "unpacked"), max_length=spec.max_length)
        sample = texts[:: max(1, len(texts) // 1024)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")          # long emoji names are truncated to max_length, as in training
            pack["check"] = check_pack(reference, packed, sample)
        if pack["check"]["max_abs_error"] > 4 * max(pack["check"]["max_abs_fp16_rounding"], 1e-4):
            raise ConfigError(f"the packed encoder differs from the default by {pack['check']['max_abs_error']:.2g}, "
                              f"more than 4x the embedding cache's own float16 rounding")
        shutil.copytree(config_dir, stage / "configs")
        wheels = download_wheels(stage / "wheels") if spec.wheels else []
        meta = {"format": 1, "spec": asdict(spec), "caption_sha256": caption_digest(captions),
                "captions": len(set(captions)), "encoder": pack, "wheels": wheels,
                "bytes": _dir_bytes(stage)}
        tree = _tree_bytes(REPO_ROOT, skip=(stage, out))
        meta["repository_bytes"] = tree
        if spec.wheels and tree is not None and tree + meta["bytes"] > CARRY_LIMIT:
            raise ConfigError(f"the bundle ({meta['bytes'] / 2**20:.1f} MiB) and the repository "
                              f"({tree / 2**20:.1f} MiB) exceed the {CARRY_LIMIT / 2**20:.0f} MiB a device call "
                              f"carries; use fewer emoji (--emoji N)")
        (stage / "bundle.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        replace_folder(stage, out)
        return meta
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(stage, ignore_errors=True)


def _keep_first(folder: Path, n: int) -> None:
    """Cut a built data set in ``folder`` down to its first ``n`` manifest rows (and their images)."""
    manifest = folder / "manifest.jsonl"
    rows = [line for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip()]
    keep = {json.loads(line)["path"] for line in rows[:n]}
    for line in rows[n:]:
        path = json.loads(line)["path"]
        if path not in keep:
            (folder / path).unlink(missing_ok=True)
            (folder / path).with_suffix(".txt").unlink(missing_ok=True)
    manifest.write_text("".join(line + "\n" for line in rows[:n]), encoding="utf-8")
