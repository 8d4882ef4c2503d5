"""Fidelity and prompt agreement on real data: the ``emoji`` and ``folder`` suites of ``openimagen eval``.

Metrics (docs/EVALUATION.md has the meaning of each and the commands):

* **Fréchet distance in the emoji classifier's feature space** (:mod:`.emoji_classifier`, 128-d): the FID
  recipe (Heusel et al. 2017; :mod:`.frechet`) with a small in-domain network, generated images vs half A of
  the real images (:mod:`.real_data`), **beside its real-vs-real floor**: the same distance for a real sample
  from half B of the same size and subgroup mix (FD is biased upwards for small samples, so only a floor
  measured at the same sample size says how far from "as good as real" a number is);
* the same pair in **Inception-v3 pool3 space (FID)** when a local pytorch-fid weights file is given
  (:mod:`.inception`);
* **prompt agreement**: the share of generated images whose predicted subgroup (group) is the prompt
  emoji's, beside the same share for the real images of the prompts (the classifier's training images, so an
  upper reference) and the share a constant guess of the most common subgroup would get (chance).

Seeds as in :mod:`.run`: image k of prompt i gets ``seed + i * images_per_prompt + k``.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

from openimagen.errors import InvalidArgumentError
from openimagen.eval.frechet import frechet_distance_features
from openimagen.eval.real_data import RealSet, floor_indices, load_real_set, prompt_indices
from openimagen.eval.run import generate_batches, speed_summary

REAL_SUITES = ("emoji", "folder")
DEFAULT_PROMPTS = 200          # prompts when --limit is not given


@dataclass
class FidelityResult:
    suite: str
    settings: dict
    metrics: dict                                  # see :func:`fidelity_metrics`
    samples: list = field(default_factory=list)    # one dict per generated image
    speed: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)

    def headline(self) -> dict:
        """The few numbers a sweep tabulates: ``frechet``, ``frechet_floor``, ``agreement``,
        ``agreement_group`` and, with Inception weights, ``fid`` and ``fid_floor`` (None where not measured)."""
        m = self.metrics
        a = m.get("agreement") or {}
        out = {"frechet": m["frechet"]["generated"], "frechet_floor": m["frechet"]["real_floor"],
               "agreement": a.get("subgroup", {}).get("generated"),
               "agreement_group": a.get("group", {}).get("generated")}
        if m.get("fid"):
            out.update(fid=m["fid"]["generated"], fid_floor=m["fid"]["real_floor"])
        return out


def planned_images(suite: str, data, limit: Optional[int], images_per_prompt: int) -> int:
    """Images an evaluation of ``suite`` will generate (reads the data set's record list)."""
    return len(prompt_indices(load_real_set(suite, data), limit or DEFAULT_PROMPTS)) * images_per_prompt


def real_tensor(real: RealSet, indices, size: int) -> torch.Tensor:
    """(N, 3, size, size) in [-1, 1]: the records' images, squared (centre crop) and resized to ``size``."""
    from openimagen.data.preprocess import Preprocessor

    pre = Preprocessor(size)
    try:
        return torch.stack([pre(real.records[i].path) for i in indices])
    except Exception as e:  # noqa: BLE001 - SkipImage and PIL errors: name the data set
        raise InvalidArgumentError(f"cannot read a real image of {real.source}: {e}") from None


def _agreement(pred: torch.Tensor, labels: list, names: tuple) -> Optional[float]:
    ok = [int(p) == names.index(t) for p, t in zip(pred.tolist(), labels) if t in names]
    return sum(ok) / len(ok) if ok else None


def _chance(labels: list) -> Optional[float]:
    return max(labels.count(x) for x in set(labels)) / len(labels) if labels else None


def fidelity_metrics(gen: dict, ref: dict, floor: dict, prompt_real: dict, gen_labels: list, prompt_labels: list,
                     classifier, inception: Optional[dict] = None) -> dict:
    """Every number of the report. ``gen``, ``ref`` (half A), ``floor`` (half B sample), ``prompt_real`` (the
    prompts' real images) are :func:`~.emoji_classifier.embed` outputs; ``*_labels`` are (group, subgroup) pairs
    (None where unknown); ``inception``: ``{"gen", "ref", "floor"}`` feature arrays, or None."""
    n_gen, n_floor = len(gen["features"]), len(floor["features"])
    m = {"frechet": {"generated": frechet_distance_features(gen["features"], ref["features"]),
                     "real_floor": frechet_distance_features(floor["features"], ref["features"]),
                     "generated_images": n_gen, "floor_images": n_floor, "reference_images": len(ref["features"]),
                     "feature_dim": int(gen["features"].shape[1]), "space": "emoji classifier penultimate layer"}}
    if inception is not None:
        m["fid"] = {"generated": frechet_distance_features(inception["gen"], inception["ref"]),
                    "real_floor": frechet_distance_features(inception["floor"], inception["ref"]),
                    "generated_images": n_gen, "floor_images": n_floor,
                    "reference_images": len(inception["ref"]), "feature_dim": 2048, "space": "Inception-v3 pool3"}
    if any(s is not None for _, s in gen_labels):
        cfg = classifier.config
        m["agreement"] = {}
        for head, pos, names in (("subgroup", 1, cfg.subgroups), ("group", 0, cfg.groups)):
            gl, pl = [x[pos] for x in gen_labels], [x[pos] for x in prompt_labels]
            m["agreement"][head] = {"generated": _agreement(gen[head], gl, names),
                                    "real": _agreement(prompt_real[head], pl, names),
                                    "chance": _chance([x for x in pl if x in names]),
                                    "classes": len(names), "prompt_classes": len(set(pl) & set(names)),
                                    "images": sum(x in names for x in gl)}
    return m


def _generate(pipe, prompts: list, settings, out: Path, progress) -> tuple:
    """Generate, save ``out/images/<key>_<k>.png``; returns (tensor (N, 3, H, W), rows, timings)."""
    from openimagen.data.preprocess import to_tensor

    n = settings.images_per_prompt
    (out / "images").mkdir(parents=True, exist_ok=True)
    xs, rows, timings = [], [], {}
    for start, res in generate_batches(pipe, [r.caption for r in prompts], settings, timings):
        for idx, (image, seed) in enumerate(zip(res.images, res.seeds)):
            r, k = prompts[start + idx // n], idx % n
            rel = f"images/{r.key.replace('/', '_')}_{k}.png"
            image.save(out / rel)
            xs.append(to_tensor(image.convert("RGB")))
            rows.append({"id": r.key, "prompt": r.caption, "k": k, "seed": seed, "image": rel,
                         "group": r.labels.get("group"), "subgroup": r.labels.get("subgroup")})
        if progress is not None:
            progress(len(res.images))
    return torch.stack(xs), rows, timings


def evaluate_fidelity(pipe, suite: str, settings, out: Path, data=None, inception_path=None,
                      progress: Optional[Callable] = None, device="cpu") -> FidelityResult:
    """Generate ``images_per_prompt`` images for each prompt of the ``emoji``/``folder`` suite, embed them and
    the real images, and compute :func:`fidelity_metrics`. ``settings`` is an :class:`~.run.EvalSettings`
    (``limit``: number of prompts, default :data:`DEFAULT_PROMPTS`); ``device`` runs the Inception network."""
    from openimagen.eval.emoji_classifier import embed, load_classifier

    settings.validate()
    real = load_real_set(suite, data)
    inception = _load_inception(inception_path)            # fail on a bad path before generating anything
    classifier = load_classifier()
    prompts_i = prompt_indices(real, settings.limit or DEFAULT_PROMPTS)
    prompts = [real.records[i] for i in prompts_i]
    if len(prompts) * settings.images_per_prompt < 2:
        raise InvalidArgumentError("a Fréchet distance needs at least 2 generated images; raise --limit or "
                                   "--images-per-prompt")
    x_gen, rows, timings = _generate(pipe, prompts, settings, Path(out), progress)
    t0 = time.perf_counter()
    size = x_gen.shape[-1]
    floor_i = floor_indices(real, len(x_gen))
    x_ref, x_floor = real_tensor(real, real.reference, size), real_tensor(real, floor_i, size)
    x_prompt = real_tensor(real, prompts_i, size)
    gen, ref, floor, prompt_real = (embed(classifier, x) for x in (x_gen, x_ref, x_floor, x_prompt))
    inc = None
    if inception is not None:
        from openimagen.eval.inception import inception_features

        inc = {k: inception_features(inception, x, device=device)
               for k, x in (("gen", x_gen), ("ref", x_ref), ("floor", x_floor))}
    labels = lambda recs: [(r.labels.get("group"), r.labels.get("subgroup")) for r in recs]  # noqa: E731
    metrics = fidelity_metrics(gen, ref, floor, prompt_real, [(r["group"], r["subgroup"]) for r in rows],
                               labels(prompts), classifier, inc)
    cfg = classifier.config
    for row, g, s in zip(rows, gen["group"].tolist(), gen["subgroup"].tolist()):
        row.update(pred_group=cfg.groups[g], pred_subgroup=cfg.subgroups[s],
                   correct=row["subgroup"] == cfg.subgroups[s] if row["subgroup"] is not None else None)
    score_s = time.perf_counter() - t0
    info = {"suite": suite, "data": real.source, "real_images": len(real.records), "prompts": len(prompts),
            "resolution": size, "classifier_input": cfg.input_size, "inception": str(inception_path or "") or None}
    return FidelityResult(suite, {**asdict(settings), **info}, metrics, rows,
                          speed_summary(timings, score_s, len(rows)))


def _load_inception(path):
    if path is None:
        return None
    from openimagen.eval.inception import load_inception

    return load_inception(path)
