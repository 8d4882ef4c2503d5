"""Run the GPU recipe from a bundle (``python -m openimagen.gpu run BUNDLE --out DIR``), on the GPU machine.

Steps, each timed in the log: rebuild the procedural scenes and check their captions against the bundle's
digest; mix them with the emoji set (``configs/default/data.sh``'s weights); decode every image once into
32 px and 64 px image caches; unpack the encoder and compute the embedding cache on the GPU (encoder id
``minilm-l6-v2``: the bundle measured the pack against the default encoder); train the base and the SR stage
as two ``openimagen.train`` processes side by side, each stopped by ``max_minutes`` (checkpointed, resumable:
a second call with the same ``--work`` continues both); export the fp16 EMA cascade.

What comes back (``--out``, four files, inside the device tool's limit of eight): ``model.tar`` (the exported
model directory), ``gpu_log.json`` (versions, device, phase times, per stage: steps, images seen, images/s,
the loss curve), ``base.log`` and ``sr.log`` (the trainers' output).
"""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
import yaml

from openimagen.errors import ConfigError
from openimagen.gpu.bundle import caption_digest, read_captions, recipe_prompts
from openimagen.pipeline.io import atomic_write, write_json

STAGES = ("base", "sr")


def _read_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def prepare_data(bundle: Path, work: Path, meta: dict, log=print) -> dict:
    """Build the scenes, mix, check the captions; returns the mix manifest and caption list."""
    from openimagen.data.mix import MixSource, mix_datasets
    from openimagen.data.shapes import build_shapes

    spec = meta["spec"]
    shapes = build_shapes(work / "shapes64", spec["scenes"], seed=spec["scene_seed"], size=spec["size"])
    emoji = bundle / "emoji64"
    captions = read_captions(shapes.manifest) + read_captions(emoji / "manifest.jsonl")
    if caption_digest(captions) != meta["caption_sha256"]:
        raise ConfigError("the rebuilt scenes' captions differ from the bundle's (a different openimagen "
                          "version?); make the bundle again from this checkout")
    mix_datasets(work / "mix", [MixSource(shapes.manifest), MixSource(emoji / "manifest.jsonl", spec["emoji_repeat"])])
    log(f"data: {spec['scenes']} scenes + {spec['emoji_repeat']} x emoji, {len(set(captions))} captions")
    return {"manifest": work / "mix" / "manifest.jsonl", "captions": captions}


def image_caches(manifest: Path, work: Path, sizes: dict, seeds: dict) -> dict:
    """Decode every image once per stage resolution (two threads); returns {stage: cache folder}."""
    from openimagen.data.dataset import build_image_cache
    from openimagen.data.formats import open_dataset

    def one(stage: str) -> Path:
        ds = open_dataset(str(manifest), size=sizes[stage], verify=False, caption_mode="per_epoch", seed=seeds[stage])
        return build_image_cache(ds, work / f"cache{sizes[stage]}")

    with ThreadPoolExecutor(len(sizes)) as pool:
        return dict(zip(sizes, pool.map(one, sizes)))


def text_cache(bundle: Path, work: Path, texts: list[str], max_length: int, device: str) -> Path:
    """The fp16 embedding cache of ``texts`` computed by the unpacked encoder (id ``minilm-l6-v2``)."""
    from openimagen.data.embeddings import precompute_text_embeddings
    from openimagen.gpu.encoder_pack import PackedVocabulary, unpack_encoder
    from openimagen.text.hf import HFTextEncoder
    from openimagen.text.registry import DEFAULT_ENCODER_ID

    enc_dir = unpack_encoder(bundle / "encoder", work / "encoder")
    encoder = HFTextEncoder(enc_dir, max_length=max_length, device=device, encoder_id=DEFAULT_ENCODER_ID)
    PackedVocabulary.read(bundle / "encoder").check(encoder.tokenizer, texts)
    out = work / f"text-minilm-{max_length}"
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # long emoji names are truncated to max_length, as in training
        precompute_text_embeddings(texts, encoder, out, progress=False)
    return out


def stage_config(cfg: dict, stage: str, work: Path, data: Path, cache: Path, minutes: float, tiny: bool) -> dict:
    """The bundle's run config ``cfg`` of ``stage`` filled in for this machine (a new dict), written to
    ``work/<stage>.yaml``."""
    cfg = copy.deepcopy(cfg)
    cfg["data"]["path"] = str(data)
    cfg["text"]["cache_dir"] = str(cache)
    cfg["out"] = str(work / "runs" / stage)
    cfg["max_minutes"] = minutes
    if tiny:                                  # the same path in seconds on a CPU
        cfg["max_steps"], cfg["train"]["batch_size"] = 2, 4
        cfg["data"]["num_workers"] = 0
        cfg["log"].update(log_every=1, checkpoint_every=1)
        cfg["optimiser"]["warmup_steps"] = 1
    atomic_write(work / f"{stage}.yaml",
                 lambda tmp: Path(tmp).write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8"))
    return cfg


def train_stages(configs: dict, work: Path, out: Path, threads: int) -> dict:
    """Train every stage in its own ``openimagen.train`` process, side by side; returns {stage: exit code}."""
    procs = {}
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    for stage, cfg in configs.items():
        run_dir = work / "runs" / stage
        resume = ["--resume", str(run_dir)] if any(run_dir.glob("step_*")) else []
        cmd = [sys.executable, "-m", "openimagen.train", str(cfg), *resume]
        log = open(out / f"{stage}.log", "a", encoding="utf-8")
        procs[stage] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log)
    codes = {}
    for stage, (proc, log) in procs.items():
        codes[stage] = proc.wait()
        log.close()
    return codes


def run_bundle(bundle, out, *, work=None, minutes: float = 7.0, total_minutes=None, tiny: bool = False,
               log=print) -> dict:
    """The whole GPU-side recipe; returns the JSON log also written to ``out/gpu_log.json``.

    ``minutes``: each stage's training budget; ``total_minutes``: a limit on the whole call (the device
    tool's per-command limit), from which the data preparation's time and a minute for the export come off
    the training budget.

    Raises ConfigError for a bundle that does not match this checkout. A stage whose training process fails
    is reported in the log (exit code, its log file) and the export is skipped.
    """
    from openimagen.train.export import export_pipeline

    bundle, out = Path(bundle).expanduser(), Path(out).expanduser()
    work = Path(work).expanduser() if work else out.parent / "openimagen-gpu-work"
    meta = json.loads((bundle / "bundle.json").read_text(encoding="utf-8"))
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    report = {"torch": torch.__version__, "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
              "minutes": minutes, "tiny": tiny, "bundle": {k: meta[k] for k in ("spec", "caption_sha256")},
              "phases_s": {}, "stages": {}}
    t0 = time.perf_counter()

    def phase(name: str, t: float) -> float:
        now = time.perf_counter()
        report["phases_s"][name] = round(now - t, 2)
        log(f"{name}: {now - t:.1f} s")
        return now

    data = prepare_data(bundle, work, meta, log)
    t = phase("data", t0)
    cfgs = {s: yaml.safe_load((bundle / "configs" / f"{s}.yaml").read_text(encoding="utf-8")) for s in STAGES}
    caches = image_caches(data["manifest"], work, {s: cfgs[s]["stage"]["resolution"] for s in STAGES},
                          {s: cfgs[s].get("seed", 0) for s in STAGES})
    t = phase("image_caches", t)
    texts = sorted(set(data["captions"] + recipe_prompts(bundle / "configs")))
    cache = text_cache(bundle, work, texts, meta["spec"]["max_length"], device)
    t = phase("text_cache", t)
    if total_minutes is not None:
        left = total_minutes - (time.perf_counter() - t0) / 60 - 1.0
        if left <= 0:
            raise ConfigError(f"data preparation took {(time.perf_counter() - t0) / 60:.1f} of the "
                              f"{total_minutes:g} minutes; nothing left to train")
        minutes = min(minutes, left)
        report["minutes"] = round(minutes, 3)
    filled = {s: stage_config(cfgs[s], s, work, caches[s], cache, minutes, tiny) for s in STAGES}
    threads = max(1, (os.cpu_count() or 2) // len(STAGES))
    codes = train_stages({s: work / f"{s}.yaml" for s in STAGES}, work, out, threads)
    t = phase("train", t)
    for s in STAGES:
        rows = _read_metrics(work / "runs" / s)
        batch = filled[s]["train"]["batch_size"]
        last = rows[-1] if rows else {}
        report["stages"][s] = {
            "exit_code": codes[s], "steps": last.get("step", 0), "images_seen": last.get("step", 0) * batch,
            "batch_size": batch, "images_per_s": last.get("images_per_s"), "epochs": last.get("epoch"),
            "loss_curve": [[r.get("step"), round(r.get("loss_avg", float("nan")), 5)] for r in rows]}
    if all(c == 0 for c in codes.values()):
        model = work / "model"
        steps = ", ".join(f"{s} {report['stages'][s]['steps']} steps" for s in STAGES)
        export_pipeline([work / "runs" / s for s in STAGES], model, fp16=True, overwrite=model.exists(),
                        description=f"GPU recipe (openimagen.gpu) on {report['device']}, {minutes:g} min: {steps}")
        with tarfile.open(out / "model.tar", "w") as tar:
            tar.add(model, arcname="model")
        report["model_bytes"] = (out / "model.tar").stat().st_size
        phase("export", t)
    else:
        report["error"] = f"training failed (exit codes {codes}); see {', '.join(f'{s}.log' for s in STAGES)}"
    report["total_s"] = round(time.perf_counter() - t0, 2)
    write_json(out / "gpu_log.json", report)
    return report
