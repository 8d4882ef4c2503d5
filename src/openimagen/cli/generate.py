"""``openimagen generate``: prompts in, PNGs out (with the prompt, seed and settings in their metadata)."""
from __future__ import annotations

import json
from pathlib import Path

from openimagen.cli.values import describe, per_stage_float
from openimagen.errors import InvalidArgumentError


def add_generate_parser(subparsers) -> None:
    p = subparsers.add_parser("generate", help="generate images from text prompts",
                              description="Generate images from prompts with a cascade. One image is written to "
                                          "OUT; several are written as OUT-000.png, OUT-001.png, ... plus a grid at OUT.")
    p.add_argument("prompts", nargs="+", help="one or more prompts (\"\" asks for an unconditional image)")
    p.add_argument("-o", "--out", type=Path, default=Path("out.png"), help="output PNG path (default: out.png)")
    p.add_argument("--model", default=None, help="model directory (default: the shipped default model)")
    p.add_argument("--steps", type=int, default=None, help="sampling steps for every stage (default: each stage's)")
    p.add_argument("--guidance", default=None, help="classifier-free guidance weight >= 0 for "
                   "every stage, or one per stage such as 4,1 (default: each stage's)")
    p.add_argument("--sampler", default=None, help="ddpm, ddim, dpmpp_2m, euler or heun (default: each stage's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first image; image k uses seed + k (default 0)")
    p.add_argument("--num-images", type=int, default=1, help="images per prompt (default 1)")
    p.add_argument("--stop-at-stage", type=int, default=None, help="stop after this stage index (0 = base only)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="do not show progress bars")
    p.set_defaults(func=run_generate)


def png_info(meta: dict):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for k, v in meta.items():
        info.add_text(k, v if isinstance(v, str) else json.dumps(v))
    return info


def _progress(disabled: bool, pipe, steps):
    """A tqdm bar per stage, driven by the pipeline's per-step callback."""
    if disabled:
        return None, lambda: None
    from tqdm import tqdm

    bars = {}

    def callback(stage, step, sigma, x, x0):
        if stage not in bars:
            for b in bars.values():
                b.close()
            st = pipe.stages[stage].config
            n = steps if steps is not None else st.sampling.steps
            bars[stage] = tqdm(total=n, desc=f"stage {stage} ({st.resolution}px)", unit="step", leave=True)
        bars[stage].update(1)

    return callback, lambda: [b.close() for b in bars.values()]


def _check_device(device: str) -> str:
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError:
        raise InvalidArgumentError(f"unknown device {device!r}; use cpu or cuda[:N]") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidArgumentError("device cuda was asked for but no CUDA GPU is available; use --device cpu")
    return device


def run_generate(args) -> int:
    args.guidance = per_stage_float(args.guidance, "--guidance")
    if args.steps is not None and args.steps < 1:
        raise InvalidArgumentError(f"--steps must be >= 1, got {args.steps}")
    if args.num_images < 1:
        raise InvalidArgumentError(f"--num-images must be >= 1, got {args.num_images}")
    if args.sampler is not None:
        from openimagen.errors import check_choice
        from openimagen.samplers import SAMPLERS

        check_choice("sampler", args.sampler, SAMPLERS)
    if args.out.suffix.lower() != ".png":
        raise InvalidArgumentError(f"--out must end in .png, got {args.out}")
    device = _check_device(args.device)
    from openimagen.pipeline import Pipeline, make_grid

    pipe = Pipeline.from_pretrained(args.model, device=device)
    callback, close = _progress(args.no_progress, pipe, args.steps)
    try:
        out = pipe(args.prompts, num_images_per_prompt=args.num_images, steps=args.steps, guidance=args.guidance,
                   sampler=args.sampler, seed=args.seed, stop_at_stage=args.stop_at_stage, callback=callback)
    finally:
        close()
    model = str(args.model) if args.model else "default"
    prompts = [p for p in args.prompts for _ in range(args.num_images)]
    settings = {"model": model, "sampler": args.sampler or "stage defaults", "steps": args.steps or "stage defaults",
                "guidance": describe(args.guidance) if args.guidance is not None else "stage defaults"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    if len(out.images) == 1:
        out.images[0].save(args.out, pnginfo=png_info({"prompt": prompts[0], "seed": str(out.seeds[0]), **settings}))
        paths.append(args.out)
    else:
        for k, (im, prompt, seed) in enumerate(zip(out.images, prompts, out.seeds)):
            path = args.out.with_name(f"{args.out.stem}-{k:03d}.png")
            im.save(path, pnginfo=png_info({"prompt": prompt, "seed": str(seed), **settings}))
            paths.append(path)
        make_grid(out.images).save(args.out, pnginfo=png_info({"prompts": prompts, "seeds": out.seeds, **settings}))
    timing = ", ".join(f"{k} {v:.2f}s" for k, v in out.timings.items())
    print(f"wrote {args.out}" + (f" and {len(paths)} images beside it" if len(paths) > 1 else "") + f" ({timing})")
    return 0
