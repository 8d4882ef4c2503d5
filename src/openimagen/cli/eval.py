"""``openimagen eval``: generate images for a prompt suite, score their text alignment, write a report.

    openimagen eval --model DIR --suite shapes --split both --images-per-prompt 4 --out runs/eval
    openimagen eval --suite shapes --score-folder my_images/ --out runs/eval-other
    openimagen eval --model DIR --suite emoji --data data/emoji64 --limit 200 --out runs/eval-emoji
    openimagen eval --model DIR --sweep-steps 4,8,16,32 --samplers ddim,dpmpp_2m --limit 2 --out runs/sweep

Writes ``results.json`` (every number), ``report.md`` and ``grid.png`` to ``--out``; generated images go to
``--out/images/<set>/<prompt id>_<k>.png``. With ``--sweep-steps`` every (sampler, steps) pair is one such run in
``--out/<sampler>-<steps>/``, and ``sweep.json``, ``sweep.md`` and ``sweep.png`` (quality against network
evaluations) go to ``--out``. See docs/EVALUATION.md.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from openimagen.cli.values import add_variant_flag, per_stage_float, progress_bar
from openimagen.errors import InvalidArgumentError


def add_eval_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="measure text alignment (GenEval-style), fidelity on real data and speed of a model",
        description="Generate images for a prompt suite with a cascade, score whether each shows every object, count, "
                    "colour and relation of its prompt, and write results.json, report.md and grid.png.")
    p.add_argument("--model", default=None, help="model directory to evaluate (not needed with --score-folder)")
    add_variant_flag(p)
    p.add_argument("--suite", default="shapes", help="shapes (text alignment, default), emoji (fidelity and prompt "
                                                     "agreement on --data, an emoji build) or folder (fidelity on any "
                                                     "captioned --data folder/manifest)")
    p.add_argument("--data", default=None, help="emoji/folder suites: the real data set (emoji default: data/emoji64, "
                                                "built by `openimagen data emoji data/emoji64 --size 64`)")
    p.add_argument("--inception", type=Path, default=None, help="emoji/folder suites: also report standard FID with "
                                                                "this pytorch-fid weights file "
                                                                "(pt_inception-2015-12-05-6726825d.pth)")
    p.add_argument("--split", default="seen", help="shipped prompt set: seen (combinations the training split has), "
                                                   "heldout (held-out combinations) or both (default seen)")
    p.add_argument("--prompts", default=None, help="a prompt-set JSON file to use instead of the shipped sets "
                                                   "(format: docs/EVALUATION.md)")
    p.add_argument("--images-per-prompt", type=int, default=4, help="images generated per prompt (default 4)")
    p.add_argument("--steps", type=int, default=None, help="sampling steps for every stage (default: each stage's)")
    p.add_argument("--sampler", default=None, help="sampler for every stage, e.g. ddim or dpmpp_2m (default: each stage's)")
    p.add_argument("--guidance", default=None, help="classifier-free guidance weight >= 0 for "
                   "every stage, or one per stage such as 4,1 (default: each stage's)")
    p.add_argument("--aug-level", default=None, help="noise-augmentation level of the low-res "
                   "input of super-resolution stages, schedule time in [0, 1), one value or one per stage "
                   "(default: each stage's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first image; image j of prompt i uses "
                                                       "seed + i * images-per-prompt + j (default 0)")
    p.add_argument("--out", type=Path, default=Path("eval-out"), help="output directory (default eval-out)")
    p.add_argument("--limit", type=int, default=None, help="shapes: at most this many prompts per category (default: "
                                                           "all); emoji/folder: number of prompts (default 200)")
    p.add_argument("--batch-size", type=int, default=8, help="prompts per pipeline call; does not change the images (default 8)")
    p.add_argument("--score-folder", type=Path, default=None, help="score the images in this folder, named "
                                                                   "<prompt id>.png or <prompt id>_<k>.png, instead of generating")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    p.add_argument("--onnx", type=Path, default=None, metavar="DIR",
                   help="run the networks through ONNX Runtime from DIR (openimagen export-onnx of --model, "
                        "float32 or --int8)")
    p.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    p.add_argument("--sweep-steps", default=None, help="quality versus steps: comma-separated step counts, e.g. "
                                                       "4,8,16,32; runs the evaluation for every (sampler, steps) pair")
    p.add_argument("--samplers", default=None, help="samplers of a --sweep-steps sweep, comma-separated, e.g. "
                                                    "ddim,dpmpp_2m (default: every registered sampler)")
    p.set_defaults(func=run_eval)


def _check_args(args) -> None:
    from openimagen.errors import check_choice
    from openimagen.eval.fidelity import REAL_SUITES
    from openimagen.eval.run import SUITES

    check_choice("suite", args.suite, SUITES + REAL_SUITES)
    check_choice("split", args.split, ("seen", "heldout", "both"))
    args.guidance = per_stage_float(args.guidance, "--guidance")
    args.aug_level = per_stage_float(args.aug_level, "--aug-level", 0.0, 1.0)
    if args.images_per_prompt < 1:
        raise InvalidArgumentError(f"--images-per-prompt must be >= 1, got {args.images_per_prompt}")
    if args.limit is not None and args.limit < 1:
        per = " per category" if args.suite == "shapes" else ""
        raise InvalidArgumentError(f"--limit must be >= 1 prompt{per}, got {args.limit}")
    if args.batch_size < 1:
        raise InvalidArgumentError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.steps is not None and args.steps < 1:
        raise InvalidArgumentError(f"--steps must be >= 1, got {args.steps}")
    if args.sampler is not None:
        from openimagen.samplers import SAMPLERS

        check_choice("sampler", args.sampler, SAMPLERS)
    if args.suite in REAL_SUITES:
        for flag, value in (("--prompts", args.prompts), ("--score-folder", args.score_folder)):
            if value is not None:
                raise InvalidArgumentError(f"{flag} is for the shapes suite; --suite {args.suite} takes --data")
        if args.model is None:
            raise InvalidArgumentError(f"--suite {args.suite} needs --model DIR (the model to evaluate)")
    elif args.data is not None or args.inception is not None:
        raise InvalidArgumentError("--data and --inception are for --suite emoji or folder")
    if args.score_folder is None and args.model is None:
        raise InvalidArgumentError("give --model DIR to generate and score, or --score-folder DIR to score existing images")
    if args.score_folder is not None and args.variant is not None:
        raise InvalidArgumentError("--variant picks the model's stages to generate with; --score-folder scores images "
                                   "already made (generate them with --variant, then score the folder)")
    _check_sweep_args(args)


def _check_sweep_args(args) -> None:
    """Parse ``--sweep-steps``/``--samplers`` into lists in place; they only go with a generating run."""
    from openimagen.eval.sweep import parse_samplers, parse_steps
    from openimagen.samplers import SAMPLERS

    if args.sweep_steps is None:
        if args.samplers is not None:
            raise InvalidArgumentError("--samplers is for a sweep; give --sweep-steps too (e.g. --sweep-steps 8,16,32)")
        return
    for flag, value in (("--steps", args.steps), ("--sampler", args.sampler), ("--score-folder", args.score_folder)):
        if value is not None:
            raise InvalidArgumentError(f"{flag} does not go with --sweep-steps (a sweep sets steps and samplers itself)")
    args.sweep_steps = parse_steps(args.sweep_steps, "--sweep-steps")
    args.samplers = parse_samplers(args.samplers, "--samplers") if args.samplers is not None else list(SAMPLERS)


def _prompt_sets(args) -> list:
    from openimagen.eval.run import prompt_sets

    return prompt_sets(args.suite, args.split, args.prompts, args.limit)


def images_per_run(args) -> int:
    """Images one generating evaluation makes (for progress bars)."""
    from openimagen.eval.fidelity import REAL_SUITES, planned_images

    if args.suite in REAL_SUITES:
        return planned_images(args.suite, args.data, args.limit, args.images_per_prompt)
    return sum(len(s.cases) for s in _prompt_sets(args)) * args.images_per_prompt


def evaluate_suite(args, pipe, out: Path, *, sampler: Optional[str] = None, steps: Optional[int] = None,
                   progress: Optional[Callable] = None) -> tuple:
    """One evaluation of ``pipe`` on ``args.suite``, images saved under ``out``: returns ``(result, headline)``.

    ``sampler``/``steps`` override ``args.sampler``/``args.steps`` (a sweep calls this once per pair).
    ``headline`` holds the numbers a sweep plots, metric name -> value: ``{"alignment": overall GenEval score}``
    for the shapes suite, :meth:`FidelityResult.headline` (``frechet``, ``agreement``, ...) for emoji/folder.
    ``progress(n)`` is called with the number of images made."""
    from openimagen.eval.fidelity import REAL_SUITES, evaluate_fidelity
    from openimagen.eval.run import EvalSettings, evaluate_pipeline

    settings = EvalSettings(args.images_per_prompt, args.steps if steps is None else steps,
                            args.sampler if sampler is None else sampler, args.guidance, args.seed,
                            args.limit, args.batch_size, args.aug_level).validate()
    if args.suite in REAL_SUITES:
        result = evaluate_fidelity(pipe, args.suite, settings, out, data=args.data, inception_path=args.inception,
                                   progress=progress, device=args.device)
        result.settings.update(_model_settings(args))
        return result, result.headline()
    result = evaluate_pipeline(pipe, _prompt_sets(args), settings, out, progress=progress)
    result.settings.update(_model_settings(args), suite=args.suite,
                           prompts=args.prompts or f"shipped:{args.split}")
    return result, {"alignment": result.overall["overall"]}


def _model_settings(args) -> dict:
    """What ran, for results.json: the model, its variant, the device and the ONNX export (or None)."""
    return dict(model=str(args.model), variant=args.variant, device=args.device, onnx=args.onnx and str(args.onnx))


def _load_pipeline(args):
    from openimagen.cli.generate import _check_device
    from openimagen.pipeline import Pipeline

    pipe = Pipeline.from_pretrained(args.model, device=_check_device(args.device), variant=args.variant)
    if args.onnx is not None:
        from openimagen.accel.onnx import use_onnx

        use_onnx(pipe, args.onnx)
    return pipe


def run_eval(args) -> int:
    from openimagen.eval.report import write_results

    _check_args(args)
    from openimagen.pipeline.io import check_output_dir

    check_output_dir(args.out, "--out")
    if args.sweep_steps is not None:
        return run_sweep(args)
    if args.score_folder is not None:
        from openimagen.eval.run import score_folder

        sets = _prompt_sets(args)
        with progress_bar(args.no_progress, sum(len(s.cases) for s in sets), "scoring") as update:
            result = score_folder(args.score_folder, sets, progress=update)
        result.settings.update(suite=args.suite, prompts=args.prompts or f"shipped:{args.split}")
    else:
        pipe = _load_pipeline(args)
        with progress_bar(args.no_progress, images_per_run(args), "generating + scoring") as update:
            result, headline = evaluate_suite(args, pipe, args.out, progress=update)
    paths = write_results(result, args.out)
    from openimagen.eval.fidelity import FidelityResult

    if isinstance(result, FidelityResult):             # emoji/folder suites
        print(f"{args.suite}: " + ", ".join(f"{k} {v:.4g}" for k, v in headline.items() if v is not None)
              + f" on {len(result.samples)} images; wrote {paths['json']}, {paths['markdown']}, {paths['grid']}")
        return 0
    names = list(result.sets)
    scores = ", ".join(f"{n} {result.sets[n]['overall']:.3f}" for n in names)
    print(f"{args.suite}: overall {result.overall['overall']:.3f} ({scores}) on {result.overall['images']} images; "
          f"wrote {paths['json']}, {paths['markdown']}, {paths['grid']}")
    return 0


def run_sweep(args) -> int:
    """``--sweep-steps``: :func:`evaluate_suite` for every (sampler, steps) pair; each run's files go to
    ``--out/<sampler>-<steps>/``, the sweep's table, JSON and plot to ``--out`` (see openimagen.eval.sweep)."""
    from openimagen.eval.report import write_results
    from openimagen.eval.sweep import nfe_per_image, sweep, write_sweep

    samplers, steps = args.samplers, args.sweep_steps
    pipe = _load_pipeline(args)
    per_run = images_per_run(args)

    def run(sampler: str, n: int) -> dict:
        with progress_bar(args.no_progress, per_run, f"{sampler} {n} steps", leave=False) as update:
            result, headline = evaluate_suite(args, pipe, args.out / f"{sampler}-{n}", sampler=sampler, steps=n,
                                              progress=update)
        write_results(result, args.out / f"{sampler}-{n}")
        return headline

    def nfe(sampler: str, n: int) -> int:
        return nfe_per_image(pipe.sampling_configs(sampler=sampler, steps=n, guidance=args.guidance,
                                                 aug_level=args.aug_level))

    with progress_bar(args.no_progress, len(samplers) * len(steps), "sweep", unit="run") as update:
        result = sweep(run, samplers, steps, nfe, progress=update)
    result.settings.update(_model_settings(args), suite=args.suite, seed=args.seed,
                           prompts=args.prompts or f"shipped:{args.split}", limit=args.limit,
                           images_per_prompt=args.images_per_prompt, images_per_run=per_run, guidance=args.guidance,
                           aug_level=args.aug_level)
    paths = write_sweep(result, args.out)
    print(f"{args.suite} sweep: {len(result.points)} runs ({', '.join(samplers)} x {', '.join(map(str, steps))} steps); "
          f"wrote {paths['json']}, {paths['markdown']}, {paths['plot']}")
    return 0
