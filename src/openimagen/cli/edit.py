"""``openimagen edit img2img|inpaint|outpaint|upscale|restore IN.png -o OUT.png``: edit a user's image with the cascade.

The sampling flags, seed rules and safety flags are ``generate``'s; the output PNGs carry the same record (with
an ``edit`` entry saying how they were made from the input). Inputs of any mode are converted to RGB, alpha
composited on white (as training does).
"""
from __future__ import annotations

from pathlib import Path

from openimagen.cli.generate import add_common_flags, check_strength_flag, finish, prepare
from openimagen.cli.values import read_image
from openimagen.errors import InvalidArgumentError

MODES = {"img2img": "move an image toward a prompt (SDEdit; --strength 0 keeps it, 1 ignores it)",
         "inpaint": "repaint the masked part of an image (--mask PNG, white = repaint, or --rect)",
         "outpaint": "shrink an image into the centre and paint a border around it (--border)",
         "upscale": "super-resolve an image with the cascade's super-resolution stages (--aug-level)",
         "restore": "repair noise, blur, JPEG artefacts or scratches (--kind)"}


def add_edit_parser(subparsers) -> None:
    p = subparsers.add_parser("edit", help="edit, repaint, extend, upscale or restore your own image",
                              description="Edit a user's image with the cascade (README, Editing).")
    sub = p.add_subparsers(dest="edit_mode", required=True, metavar="{" + ",".join(MODES) + "}")
    for mode, text in MODES.items():
        e = sub.add_parser(mode, help=text, description=text)
        e.add_argument("image", type=Path, help="the input image (any mode and size)")
        e.add_argument("--prompt", default="", help="the text to move toward (default \"\": unconditional)")
        add_common_flags(e)
        if mode == "img2img":
            e.add_argument("--strength", type=float, default=0.6, help="0 (unchanged) .. 1 (text-to-image), "
                                                                       "default 0.6")
        if mode == "inpaint":
            e.add_argument("--mask", type=Path, default=None, help="mask PNG of the image's size, white = repaint")
            e.add_argument("--rect", default=None, help="or a rectangle to repaint: left,top,right,bottom (pixels)")
            e.add_argument("--resample-jumps", type=int, default=1, metavar="N",
                           help="RePaint resampling: sample every --jump-length steps N times (default 1: off; "
                                "costs N times the steps)")
            e.add_argument("--jump-length", type=int, default=10, metavar="J",
                           help="steps between resampling jumps (default 10)")
        if mode == "restore":
            e.add_argument("--kind", required=True, choices=("denoise", "deblur", "jpeg", "scratches"),
                           help="the damage: noise (the photo is the sampler's start at its noise level), blur or "
                                "JPEG artefacts (SDEdit from a small noise level), or scratches (found, filled and "
                                "repainted); at the image's own resolution by the stage that makes it. The output "
                                "has the last stage's size (64 px for the default model), except scratches, which "
                                "keeps the input's")
            e.add_argument("--noise-level", type=float, default=None, metavar="S",
                           help="noise level to start from, 0..2 in [-1, 1] image units (denoise: the image's own "
                                "noise, estimated by default, and at least 0.02; deblur 0.05, jpeg and scratches "
                                "0.1)")
            e.add_argument("--no-debias-clipping", dest="debias_clipping", action="store_false",
                           help="denoise: keep the grey bias that noise clipped at black and white leaves (by default "
                                "it is undone, Foi 2009)")
            e.add_argument("--scratch-threshold", type=float, default=None,
                           help="scratches: how far (0..2) a pixel must be from its 3x3 median to count (default 0.3)")
            e.add_argument("--mask", type=Path, default=None,
                           help="scratches: a mask PNG of the image's size (white = repaint) instead of detecting")
        if mode == "outpaint":
            e.add_argument("--border", type=int, default=8, help="border to paint, in output pixels (default 8)")
        if mode == "upscale":
            e.add_argument("--stage", type=int, default=1, help="first super-resolution stage to run (default 1)")
        if mode in ("img2img", "upscale", "restore"):
            e.add_argument("--fit", default="center_crop", choices=("center_crop", "pad"),
                           help="how a non-square image becomes square: keep the central square (default) or "
                                "pad it with white (inpaint and outpaint always pad and keep the image's size)")
        e.set_defaults(func=run_edit, from_png=None, stop_at_stage=None)


def _mask(args, image):
    if (args.mask is None) == (args.rect is None):
        raise InvalidArgumentError("inpaint needs exactly one of --mask PNG or --rect left,top,right,bottom")
    if args.rect is not None:
        try:
            rect = tuple(int(v) for v in args.rect.split(","))
        except ValueError:
            rect = ()
        if len(rect) != 4:
            raise InvalidArgumentError(f"--rect must be four integers left,top,right,bottom, got {args.rect!r}")
        return rect
    return _mask_file(args.mask, image)


def _mask_file(path, image):
    """The ``--mask`` PNG, which must have the image's size."""
    mask = read_image(path, "--mask: ")
    if mask.size != image.size:
        raise InvalidArgumentError(f"--mask is {mask.size[0]}x{mask.size[1]} but the image is "
                                   f"{image.size[0]}x{image.size[1]}; give a mask of the image's size")
    return mask


def run_edit(args) -> int:
    args.prompts = [args.prompt]
    image = read_image(args.image)
    mode = args.edit_mode
    if mode == "img2img":
        check_strength_flag(args.strength)
    mask = _mask(args, image) if mode == "inpaint" else None
    if mode == "restore" and args.mask is not None:       # read for scratches; any other kind refuses a mask
        mask = _mask_file(args.mask, image) if args.kind == "scratches" else args.mask
    if mode == "inpaint":
        from openimagen.samplers.resampling import check_resampling

        try:
            check_resampling(args.jump_length, args.resample_jumps)
        except InvalidArgumentError as e:
            name = "--jump-length" if str(e).startswith("jump_length") else "--resample-jumps"
            raise InvalidArgumentError(f"{name}: {e}") from None
    request, _, pipe, model = prepare(args)
    calls = {"img2img": lambda cb: pipe.img2img(image, request, strength=args.strength, fit=args.fit, callback=cb),
             "inpaint": lambda cb: pipe.inpaint(image, mask, request, callback=cb,
                                                resample_jumps=args.resample_jumps, jump_length=args.jump_length),
             "outpaint": lambda cb: pipe.outpaint(image, request, border=args.border, callback=cb),
             "upscale": lambda cb: pipe.upscale(image, request, stage=args.stage, fit=args.fit, callback=cb),
             "restore": lambda cb: pipe.restore(image, args.kind, request, mask=mask, noise_level=args.noise_level,
                                                debias_clipping=args.debias_clipping,
                                                scratch_threshold=args.scratch_threshold, fit=args.fit, callback=cb)}
    try:
        return finish(args, pipe, request, model, calls[mode])
    except InvalidArgumentError as e:
        flag = {"stage": "--stage", "border": "--border", "the mask": "--rect", "mask is": "--mask",
                "noise_level": "--noise-level",
                "scratch_threshold": "--scratch-threshold"}
        for word, name in flag.items():
            if str(e).startswith(word):
                raise InvalidArgumentError(f"{name}: {e}") from None
        raise
