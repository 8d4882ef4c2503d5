"""``openimagen info DIR``: what a model directory holds."""
from __future__ import annotations

from pathlib import Path

from openimagen.cli.values import add_variant_flag


def add_info_parser(subparsers) -> None:
    p = subparsers.add_parser("info", help="describe a model directory",
                              description="Print a cascade's stages, resolutions, parameter counts and text encoder.")
    p.add_argument("model", nargs="?", default=None, help="model directory (default: the shipped default model)")
    add_variant_flag(p)
    p.set_defaults(func=run_info)


def describe(pipe, root=None) -> str:
    """The model's summary; ``root`` (its directory) lets a variant whose stage folder is missing be flagged."""
    enc = pipe.text_encoder
    lines = [f"text encoder: {pipe.config.text_encoder} (id {enc.encoder_id}, width {enc.dim}, "
             f"max {pipe.config.max_length} tokens)"]
    for i, (name, st) in enumerate(zip(pipe.config.stages, pipe.stages)):
        c = st.config
        kind = f"super-resolution {c.lowres_resolution}->{c.resolution}" if c.is_super_resolution else f"base {c.resolution}"
        s = c.sampling
        lines.append(f"stage {i} {name}: {kind}px, {st.num_parameters:,} parameters, {c.param.name}-prediction"
                     f"{' of the residual over the upsampled low-res image' if c.param.residual else ''}, "
                     f"{c.schedule.name} schedule; defaults {s.sampler} {s.steps} steps, guidance {s.guidance}, "
                     f"{s.threshold} thresholding" + (f", aug level {s.aug_level}, sr strength {s.sr_strength}"
                                                f"{', low-res consistency' if s.lowres_consistency else ''}"
                                                if c.is_super_resolution else ""))
    lines.append(f"output: {pipe.resolutions[-1]}x{pipe.resolutions[-1]}")
    if len(pipe.stages) > 1:
        lines.append("edits: upscale runs its SR stages with low-res consistency from pure noise (sr strength 1) "
                     "unless told otherwise; img2img and restore turn consistency off at their first stage")
    if pipe.variant is None and pipe.config.variants:
        lines.append("a variant's stage defaults: openimagen info --variant NAME")
    for name, stages in pipe.config.variants.items():
        missing = [] if root is None else [s for s in stages if not (Path(root) / s).is_dir()]
        own = [f"{stage} " + ", ".join(f"{k} {v}" for k, v in defaults.items())
               for stage, defaults in zip(stages, pipe.config.stage_sampling(name)) if defaults]
        lines.append(f"variant {name!r} (--variant {name}): stages {', '.join(stages)}"
                     + (f"; its own sampling defaults: {'; '.join(own)}" if own else "")
                     + (f" (missing: {', '.join(missing)}; it cannot load)" if missing else ""))
    if pipe.config.description:
        lines.append(f"description: {pipe.config.description}")
    return "\n".join(lines)


def run_info(args) -> int:
    from openimagen.pipeline import Pipeline

    from openimagen.pipeline import DEFAULT_MODEL_DIR

    pipe = Pipeline.from_pretrained(args.model, variant=args.variant)
    print(describe(pipe, DEFAULT_MODEL_DIR if args.model is None else args.model))
    return 0
