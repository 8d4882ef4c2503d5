"""``openimagen eval``: generate images for a prompt suite, score their text alignment, write a report.

    openimagen eval --model DIR --suite shapes --split both --images-per-prompt 4 --out runs/eval
    openimagen eval --suite shapes --score-folder my_images/ --out runs/eval-other

Writes ``results.json`` (every number), ``report.md`` and ``grid.png`` to ``--out``; generated images go to
``--out/images/<set>/<prompt id>_<k>.png``. See docs/EVALUATION.md.
"""
from __future__ import annotations

from pathlib import Path

from openimagen.errors import InvalidArgumentError


def add_eval_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="measure text alignment (GenEval-style) and speed of a model",
        description="Generate images for a prompt suite with a cascade, score whether each shows every object, count, "
                    "colour and relation of its prompt, and write results.json, report.md and grid.png.")
    p.add_argument("--model", default=None, help="model directory to evaluate (not needed with --score-folder)")
    p.add_argument("--suite", default="shapes", help="prompt suite (default and only one so far: shapes)")
    p.add_argument("--split", default="seen", help="shipped prompt set: seen (combinations the training split has), "
                                                   "heldout (held-out combinations) or both (default seen)")
    p.add_argument("--prompts", default=None, help="a prompt-set JSON file to use instead of the shipped sets "
                                                   "(format: docs/EVALUATION.md)")
    p.add_argument("--images-per-prompt", type=int, default=4, help="images generated per prompt (default 4)")
    p.add_argument("--steps", type=int, default=None, help="sampling steps for every stage (default: each stage's)")
    p.add_argument("--sampler", default=None, help="sampler for every stage, e.g. ddim or dpmpp_2m (default: each stage's)")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance weight >= 0 (default: each stage's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first image; image j of prompt i uses "
                                                       "seed + i * images-per-prompt + j (default 0)")
    p.add_argument("--out", type=Path, default=Path("eval-out"), help="output directory (default eval-out)")
    p.add_argument("--limit", type=int, default=None, help="at most this many prompts per category (default: all)")
    p.add_argument("--batch-size", type=int, default=8, help="prompts per pipeline call; does not change the images (default 8)")
    p.add_argument("--score-folder", type=Path, default=None, help="score the images in this folder, named "
                                                                   "<prompt id>.png or <prompt id>_<k>.png, instead of generating")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    p.set_defaults(func=run_eval)


def _check_args(args) -> None:
    from openimagen.errors import check_choice
    from openimagen.eval.run import SUITES

    check_choice("suite", args.suite, SUITES)
    check_choice("split", args.split, ("seen", "heldout", "both"))
    if args.images_per_prompt < 1:
        raise InvalidArgumentError(f"--images-per-prompt must be >= 1, got {args.images_per_prompt}")
    if args.limit is not None and args.limit < 1:
        raise InvalidArgumentError(f"--limit must be >= 1 prompt per category, got {args.limit}")
    if args.batch_size < 1:
        raise InvalidArgumentError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.steps is not None and args.steps < 1:
        raise InvalidArgumentError(f"--steps must be >= 1, got {args.steps}")
    if args.guidance is not None and args.guidance < 0:
        raise InvalidArgumentError(f"--guidance must be >= 0, got {args.guidance}")
    if args.sampler is not None:
        from openimagen.samplers import SAMPLERS

        check_choice("sampler", args.sampler, SAMPLERS)
    if args.score_folder is None and args.model is None:
        raise InvalidArgumentError("give --model DIR to generate and score, or --score-folder DIR to score existing images")


def _bar(disabled: bool, total: int, desc: str):
    if disabled:
        return None, lambda: None
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="img")
    return bar.update, bar.close


def run_eval(args) -> int:
    from openimagen.eval.report import write_results
    from openimagen.eval.run import EvalSettings, evaluate_pipeline, prompt_sets, score_folder

    _check_args(args)
    sets = prompt_sets(args.suite, args.split, args.prompts, args.limit)
    if args.score_folder is not None:
        update, close = _bar(args.no_progress, sum(len(s.cases) for s in sets), "scoring")
        try:
            result = score_folder(args.score_folder, sets, progress=update)
        finally:
            close()
    else:
        from openimagen.cli.generate import _check_device
        from openimagen.pipeline import Pipeline

        settings = EvalSettings(args.images_per_prompt, args.steps, args.sampler, args.guidance, args.seed,
                                args.limit, args.batch_size).validate()
        pipe = Pipeline.from_pretrained(args.model, device=_check_device(args.device))
        total = sum(len(s.cases) for s in sets) * args.images_per_prompt
        update, close = _bar(args.no_progress, total, "generating + scoring")
        try:
            result = evaluate_pipeline(pipe, sets, settings, args.out, progress=update)
        finally:
            close()
        result.settings.update(model=str(args.model), device=args.device)
    result.settings.update(suite=args.suite, prompts=args.prompts or f"shipped:{args.split}")
    paths = write_results(result, args.out)
    names = list(result.sets)
    scores = ", ".join(f"{n} {result.sets[n]['overall']:.3f}" for n in names)
    print(f"{args.suite}: overall {result.overall['overall']:.3f} ({scores}) on {result.overall['images']} images; "
          f"wrote {paths['json']}, {paths['markdown']}, {paths['grid']}")
    return 0
