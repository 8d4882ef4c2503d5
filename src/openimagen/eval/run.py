"""Run a text-alignment suite: generate images with a pipeline (or read a folder of them), score, summarise.

Reporting follows GenEval (Ghosh et al. 2023): an image is correct when every object, count, colour and
relation of its prompt is right; a category's accuracy is the share of its images that are correct; the
overall score is the mean of the category accuracies (so small categories weigh as much as large ones).

Seeds: image j of the i-th case of a prompt set gets seed ``seed + i * images_per_prompt + j`` (the
pipeline gives image k of a call ``seed + k``, and calls are made in order), so results do not depend on the
batch size and a ``--limit`` run reproduces a prefix of the full run's images.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional, Union

from openimagen.errors import InvalidArgumentError, check_choice, is_int_at_least
from openimagen.eval.prompts import CATEGORIES, PromptCase, load_prompt_set, load_split
from openimagen.eval.segment import WORK

SUITES = ("shapes",)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


@dataclass(frozen=True)
class PromptSet:
    name: str             # "seen", "heldout" or the prompt file's stem
    cases: tuple          # of PromptCase


@dataclass
class EvalSettings:
    images_per_prompt: int = 4      # images generated per prompt (GenEval uses 4)
    steps: Optional[int] = None     # sampling steps for every stage (None: each stage's default)
    sampler: Optional[str] = None   # sampler name for every stage (None: each stage's default)
    guidance: Union[float, tuple, None] = None  # classifier-free guidance weight, one or one per stage (None: defaults)
    seed: int = 0                   # seed of the first image of every prompt set
    limit: Optional[int] = None     # at most this many prompts per category (None: all)
    batch_size: int = 8             # prompts per pipeline call (does not change the images)
    aug_level: Union[float, tuple, None] = None  # SR noise-augmentation level, one or one per stage (None: defaults)

    def validate(self) -> "EvalSettings":
        for name in ("images_per_prompt", "batch_size"):
            v = getattr(self, name)
            if not is_int_at_least(v, 1):
                raise InvalidArgumentError(f"{name.replace('_', '-')} must be an integer >= 1, got {v!r}")
        if self.limit is not None and not is_int_at_least(self.limit, 1):
            raise InvalidArgumentError(f"limit must be an integer >= 1 prompts per category, got {self.limit!r}")
        if self.steps is not None and not is_int_at_least(self.steps, 1):
            raise InvalidArgumentError(f"steps must be an integer >= 1, got {self.steps!r}")
        for name, lo, hi in (("guidance", 0.0, float("inf")), ("aug_level", 0.0, 1.0)):
            v = getattr(self, name)
            values = () if v is None else tuple(v) if isinstance(v, (tuple, list)) else (v,)
            if any(isinstance(x, bool) or not isinstance(x, (int, float)) or not lo <= x < hi for x in values):
                raise InvalidArgumentError(f"{name.replace('_', '-')} must be a number in [{lo:g}, {hi:g}) or one "
                                           f"per stage, got {v!r}")
        return self


@dataclass
class EvalResult:
    suite: str
    settings: dict
    sets: dict                                   # set name -> summary (see :func:`summarize`)
    overall: dict                                # summary over every set together
    samples: list = field(default_factory=list)  # one dict per image
    speed: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)


def prompt_sets(suite: str, split: str = "seen", prompts: Optional[str] = None, limit: Optional[int] = None) -> list:
    """The prompt sets to run: the shipped ``split`` ("seen" | "heldout" | "both") or the cases of ``prompts``."""
    check_choice("suite", suite, SUITES)
    if prompts is not None:
        sets = [PromptSet(Path(prompts).stem, tuple(load_prompt_set(prompts)))]
    else:
        check_choice("split", split, ("seen", "heldout", "both"))
        sets = [PromptSet(s, tuple(load_split(s))) for s in (("seen", "heldout") if split == "both" else (split,))]
    if limit is not None:
        sets = [PromptSet(s.name, _limit(s.cases, limit)) for s in sets]
    return sets


def _limit(cases: tuple, limit: int) -> tuple:
    seen: dict = {}
    out = []
    for c in cases:
        seen[c.category] = seen.get(c.category, 0) + 1
        if seen[c.category] <= limit:
            out.append(c)
    return tuple(out)


def summarize(samples: list) -> dict:
    """GenEval summary of scored samples: per category accuracy, correct, images, prompts; overall = mean over
    the categories present; also the plain share of correct images."""
    cats = {}
    for c in CATEGORIES:
        rows = [s for s in samples if s["category"] == c]
        if rows:
            correct = sum(s["correct"] for s in rows)
            cats[c] = {"accuracy": correct / len(rows), "correct": correct, "images": len(rows),
                       "prompts": len({s["id"] for s in rows})}
    overall = sum(v["accuracy"] for v in cats.values()) / len(cats) if cats else 0.0
    return {"overall": overall, "categories": cats, "images": len(samples),
            "prompts": len({(s["set"], s["id"]) for s in samples}),
            "image_accuracy": sum(s["correct"] for s in samples) / len(samples) if samples else 0.0}


def _sample_row(set_name: str, case: PromptCase, k: int, seed: Optional[int], image_path: str, verdict) -> dict:
    return {"set": set_name, "id": case.id, "category": case.category, "prompt": case.prompt, "k": k, "seed": seed,
            "image": image_path, "correct": verdict.correct, "reasons": verdict.reasons,
            "detections": [d.to_json() for d in verdict.detections]}


def _result(suite: str, settings: dict, samples: list, speed: dict) -> EvalResult:
    from openimagen import __version__

    settings = {**settings, "openimagen": __version__}
    names = list(dict.fromkeys(s["set"] for s in samples))
    sets = {n: summarize([s for s in samples if s["set"] == n]) for n in names}
    return EvalResult(suite, settings, sets, summarize(samples), samples, speed)


def generate_batches(pipe, prompts: list, settings: EvalSettings, timings: dict) -> Iterator[tuple]:
    """Generate ``settings.images_per_prompt`` images of every prompt, ``settings.batch_size`` prompts per pipeline
    call; yields ``(start, output)`` per call, image ``j`` of ``output.images`` being image ``j % n`` of prompt
    ``start + j // n``. Prompt i's image k gets seed ``settings.seed + i * n + k`` (the same images in any batch
    size, up to the batched mode's one 8-bit step, README "Reproducibility"); the pipeline's ``timings`` are added into ``timings``."""
    n = settings.images_per_prompt
    for start in range(0, len(prompts), settings.batch_size):
        res = pipe(list(prompts[start:start + settings.batch_size]), num_images_per_prompt=n, steps=settings.steps,
                   guidance=settings.guidance, sampler=settings.sampler, seed=settings.seed + start * n,
                   aug_level=settings.aug_level)
        for key, v in res.timings.items():
            timings[key] = timings.get(key, 0.0) + v
        yield start, res


def evaluate_pipeline(pipe, sets: list, settings: EvalSettings, out: Path,
                      progress: Optional[Callable] = None, classify: Optional[Callable] = None) -> EvalResult:
    """Generate ``images_per_prompt`` images per case with ``pipe``, save them under ``out/images``, score them.

    ``progress(n)`` is called after every batch with the number of images it made. ``classify(features) -> shape``
    replaces the scorer's shape classifier (the concept measurement's, which knows a fifth shape)."""
    from openimagen.eval.shapes_scorer import check, detect

    def score(image, case):
        return check(case, detect(image) if classify is None else detect(image, classify))

    settings.validate()
    n = settings.images_per_prompt
    (out / "images").mkdir(parents=True, exist_ok=True)
    samples, timings, score_s = [], {}, 0.0
    for ps in sets:
        for start, res in generate_batches(pipe, [c.prompt for c in ps.cases], settings, timings):
            t0 = time.perf_counter()
            for idx, (image, seed) in enumerate(zip(res.images, res.seeds)):
                case, k = ps.cases[start + idx // n], idx % n
                rel = f"images/{ps.name}/{case.id}_{k}.png"
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                image.save(out / rel)
                samples.append(_sample_row(ps.name, case, k, seed, rel, score(image, case)))
            score_s += time.perf_counter() - t0
            if progress is not None:
                progress(len(res.images))
    return _result("shapes", {**asdict(settings), "resolution": pipe.resolutions[-1], "eval_resolution": WORK},
                   samples, speed_summary(timings, score_s, len(samples)))


def speed_summary(timings: dict, score_s: float, images: int) -> dict:
    """The report's speed block: generation seconds in all, per image and per stage, and scoring time per image."""
    total = timings.get("total", 0.0)
    return {"images": images, "generation_seconds": total, "seconds_per_image": total / max(images, 1),
            "images_per_second": images / total if total > 0 else None,
            "stage_seconds_per_image": {k: v / max(images, 1) for k, v in timings.items() if k != "total"},
            "scoring_seconds_per_image": score_s / max(images, 1)}


def find_images(folder: Path, cases: tuple) -> dict:
    """``{case id: [(k, path)]}`` for files named ``<id>.png`` or ``<id>_<k>.png`` (png/jpg/webp), anywhere
    under ``folder``."""
    ids = {c.id for c in cases}
    found: dict = {}
    for path in sorted(Path(folder).rglob("*")):
        if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            continue
        stem, k = path.stem, 0
        if stem not in ids and "_" in stem and stem.rsplit("_", 1)[1].isdigit():
            stem, k = stem.rsplit("_", 1)[0], int(stem.rsplit("_", 1)[1])
        if stem in ids:
            found.setdefault(stem, []).append((k, path))
    return found


def score_folder(folder, sets: list, progress: Optional[Callable] = None) -> EvalResult:
    """Score existing images (e.g. made by another system) named by prompt id; see :func:`find_images`."""
    from PIL import Image

    from openimagen.eval.shapes_scorer import score

    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidArgumentError(f"--score-folder {folder} is not a directory")
    samples, missing = [], []
    for ps in sets:
        found = find_images(folder, ps.cases)
        missing += [c.id for c in ps.cases if c.id not in found]
        for case in ps.cases:
            for k, path in sorted(found.get(case.id, [])):
                try:
                    with Image.open(path) as im:
                        verdict = score(im.convert("RGB"), case)
                except OSError as e:
                    raise InvalidArgumentError(f"cannot read image {path}: {e}") from None
                samples.append(_sample_row(ps.name, case, k, None, str(path.resolve()), verdict))
                if progress is not None:
                    progress(1)
    if not samples:
        raise InvalidArgumentError(f"no images in {folder} are named after a prompt id (expected e.g. "
                                   f"{sets[0].cases[0].id}_0.png)")
    settings = {"score_folder": str(folder), "missing_prompts": len(missing), "missing_ids": missing[:20],
                "eval_resolution": WORK}
    return _result("shapes", settings, samples, {"images": len(samples)})
