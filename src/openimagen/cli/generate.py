"""``openimagen generate``: prompts in, PNGs out, each PNG carrying the record that re-creates it.

The flags build one :class:`~openimagen.pipeline.request.GenerationRequest` (validated before the model loads);
every written image stores its own request, with each stage's resolved settings made explicit, plus the model's
name and hash and the openimagen version, in a PNG text chunk ``openimagen`` (JSON). ``--from-png IMG`` reads
that record back and makes the image again.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from openimagen.cli.values import add_variant_flag, on_off, per_stage, read_image
from openimagen.errors import InvalidArgumentError, ModelLoadError
from openimagen.pipeline.provenance import image_metadata, png_info, read_record

DTYPES = ("float32", "float16", "bfloat16")
# request field -> (flag, parser of one value); per-stage flags take "a" or "a,b" (base, then each SR stage)
PER_STAGE_FLAGS = {"sampler": ("--sampler", str), "steps": ("--steps", int), "guidance": ("--guidance", float),
                   "threshold": ("--threshold", str), "percentile": ("--percentile", float),
                   "spacing": ("--spacing", str), "aug_level": ("--aug-level", float),
                   "sr_strength": ("--sr-strength", float), "lowres_consistency": ("--lowres-consistency", on_off)}
PER_STAGE_HELP = {
    "sampler": "ddpm, ddim, dpmpp_2m, euler or heun", "steps": "sampling steps >= 1",
    "guidance": "classifier-free guidance weight >= 0", "threshold": "none, static or dynamic thresholding",
    "percentile": "dynamic-thresholding percentile in (0, 1]", "spacing": "sampling grid: time, logsnr or karras",
    "aug_level": "SR stages: noise-augmentation level of the low-res input, in [0, 1)",
    "sr_strength": "SR stages: start at this schedule time in (0, 1] from the upsampled low-res image noised to it "
                   "(1: from pure noise)",
    "lowres_consistency": "SR stages: on or off; on keeps the output's downsample equal to the low-res input "
                          "(only detail above its resolution is added)"}


def add_generate_parser(subparsers) -> None:
    p = subparsers.add_parser("generate", help="generate images from text prompts",
                              description="Generate images from prompts with a cascade. One image is written to "
                                          "OUT; several are written as OUT-000.png, OUT-001.png, ... plus a grid at "
                                          "OUT. Per-stage settings take one value for every stage or one per stage, "
                                          "base first (e.g. --steps 32,16); unset ones are each stage's default.")
    p.add_argument("prompts", nargs="*", help="one or more prompts (\"\" asks for an unconditional image)")
    add_common_flags(p)
    p.add_argument("--stop-at-stage", type=int, default=None, help="stop after this stage index (0 = base only)")
    p.add_argument("--from-png", type=Path, default=None,
                   help="re-create the image recorded in this openimagen PNG (its prompt, seed and settings)")
    p.add_argument("--image", type=Path, default=None,
                   help="image-to-image (SDEdit): edit this image toward the prompt(s) instead of starting from noise")
    p.add_argument("--strength", type=float, default=0.6,
                   help="with --image: how far to move from it, 0 (unchanged) .. 1 (text-to-image) (default 0.6)")
    p.set_defaults(func=run_generate)


def add_common_flags(p) -> None:
    """Output, model, sampling, seed, device and safety flags: shared by ``generate`` and ``edit``."""
    p.add_argument("-o", "--out", type=Path, default=Path("out.png"), help="output PNG path (default: out.png)")
    p.add_argument("--model", default=None, help="model directory (default: the shipped default model)")
    add_variant_flag(p)
    p.add_argument("--negative-prompt", default=None,
                   help="guide away from this text (instead of the null text), for every prompt")
    for name, (flag, _) in PER_STAGE_FLAGS.items():
        p.add_argument(flag, dest=name, default=None, help=f"{PER_STAGE_HELP[name]} (default: each stage's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first image; image k uses seed + k (default 0)")
    p.add_argument("--num-images", type=int, default=1, help="images per prompt (default 1)")
    p.add_argument("--batch-invariant", action="store_true",
                   help="bit-exact mode: an image's bits do not depend on its batch (slower; see README)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    p.add_argument("--dtype", default="float32", help="network precision: float32, float16 or bfloat16 "
                   "(the sampler state stays float32; default float32)")
    p.add_argument("--lora", action="append", default=[], metavar="PATH[:SCALE]",
                   help="apply this LoRA adapter folder (from `openimagen export LORA_RUN`) with SCALE (default 1; "
                        "0 = off); repeat for several adapters")
    p.add_argument("--onnx", type=Path, default=None, metavar="DIR",
                   help="run the networks through ONNX Runtime from DIR (openimagen export-onnx of this model)")
    p.add_argument("--fast", action="store_true",
                   help="run the networks through ONNX Runtime (float32, the same images to 1e-4), built "
                        "once per model into the cache (about 20 s the first time; see docs/BENCHMARKS.md)")
    p.add_argument("--no-progress", action="store_true", help="do not show progress bars")
    add_safety_flags(p)


def add_safety_flags(p) -> None:
    """--policy/--no-policy and --no-watermark, shared by ``generate`` and ``serve``."""
    p.add_argument("--policy", type=Path, default=None,
                   help="prompt deny-list file, one term per line (default: openimagen's built-in list)")
    p.add_argument("--no-policy", action="store_true", help="do not check prompts against any deny-list (warns)")
    p.add_argument("--no-watermark", action="store_true",
                   help="do not put the invisible watermark on images (warns; PNG provenance text is kept)")


def safety_from_args(args):
    """The prompt policy (or None) the flags ask for; warns on stderr for each safeguard turned off."""
    from openimagen.safety import PromptPolicy

    if args.no_policy and args.policy is not None:
        raise InvalidArgumentError("--policy and --no-policy contradict each other; give one")
    if args.no_policy:
        print("WARNING: the prompt policy is OFF (--no-policy): prompts are not checked against any deny-list",
              file=sys.stderr)
    if args.no_watermark:
        print("WARNING: the invisible watermark is OFF (--no-watermark): images will not be detectable as "
              "generated by `openimagen watermark detect`", file=sys.stderr)
    if args.no_policy:
        return None
    return PromptPolicy.default() if args.policy is None else PromptPolicy.from_file(args.policy)


def _progress(disabled: bool, pipe, settings):
    """A tqdm bar per stage, driven by the pipeline's per-step callback."""
    if disabled:
        return None, lambda: None
    from tqdm import tqdm

    bars = {}

    def close(b):
        if b.total != b.n:                              # an edit may run fewer steps than the stage's setting
            b.total = b.n
            b.refresh()
        b.close()

    def callback(stage, step, sigma, x, x0):
        if stage not in bars or step == 0:              # a new stage, or the same stage for the next chunk
            for b in bars.values():
                close(b)
            bars.clear()
            res = pipe.stages[stage].config.resolution
            bars[stage] = tqdm(total=settings[stage].steps, desc=f"stage {stage} ({res}px)", unit="step", leave=True)
        bars[stage].update(1)

    return callback, lambda: [close(b) for b in bars.values()]


def _check_device(device: str) -> str:
    """``device`` if this machine can run models on it (cpu, cuda[:N], mps), else InvalidArgumentError."""
    from openimagen.text.hf import resolve_device

    try:
        resolve_device(device)
    except InvalidArgumentError as e:
        raise InvalidArgumentError(f"--device: {e}") from None
    return device


def check_dtype_flag(dtype: str) -> str:
    """``--dtype`` if it is one of :data:`DTYPES`, else InvalidArgumentError naming them (generate, serve, bench)."""
    if dtype not in DTYPES:
        raise InvalidArgumentError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return dtype


def compile_mode(compile: bool, cuda_graphs: bool, device: str):
    """The ``torch.compile`` mode the flags ask for: "reduce-overhead" (CUDA graphs) with ``--cuda-graphs``, else
    None (the default mode). InvalidArgumentError when ``--cuda-graphs`` comes without ``--compile`` or with a
    device that is not CUDA."""
    if not cuda_graphs:
        return None
    if not compile:
        raise InvalidArgumentError("--cuda-graphs is a way of compiling: add --compile")
    if not device.startswith("cuda"):
        raise InvalidArgumentError(f"--cuda-graphs needs a CUDA --device (cuda or cuda:N), got {device!r}")
    return "reduce-overhead"


CUDA_GRAPHS_HELP = ("with --compile on a CUDA device: capture each batch size's network call as a CUDA graph and "
                    "replay it (torch.compile mode reduce-overhead), which removes the per-kernel launch cost that "
                    "dominates small networks at small batches")


FLAG_OF = {**{name: flag for name, (flag, _) in PER_STAGE_FLAGS.items()}, "num_images_per_prompt": "--num-images",
           "stop_at_stage": "--stop-at-stage", "negative_prompt": "--negative-prompt", "seed": "--seed"}


def _flag_named(e: InvalidArgumentError) -> InvalidArgumentError:
    """The request's message with its field name written as the flag (``steps[1] ...`` -> ``--steps[1] ...``)."""
    head = re.match(r"[a-z_]+", str(e))
    if head and head.group(0) in FLAG_OF:
        e.args = (FLAG_OF[head.group(0)] + str(e)[head.end():],)
    return e


def request_from_args(args):
    """The generation request the flags describe (or the one recorded in ``--from-png``), and the model to use."""
    from openimagen.pipeline.request import GenerationRequest

    if args.from_png is not None:
        given = [f for f in ("negative_prompt", *PER_STAGE_FLAGS) if getattr(args, f) is not None]
        if args.prompts or given:
            raise InvalidArgumentError("--from-png takes its prompt and settings from the PNG; give no prompts or "
                                       f"sampling flags with it (got {', '.join(given) or 'prompts'})")
        record = read_record(args.from_png)
        if "edit" in record:
            raise InvalidArgumentError(f"--from-png: {args.from_png} was made by {record['edit'].get('mode')} from a "
                                       f"user's image, which the record does not hold; it cannot be re-created")
        request = GenerationRequest.from_dict(record["request"])
        return request.model_copy(update={"batch_invariant": request.batch_invariant or args.batch_invariant}), record
    if not args.prompts:
        raise InvalidArgumentError("give at least one prompt (\"\" asks for an unconditional image), or --from-png")
    settings = {name: per_stage(getattr(args, name), flag, parse) for name, (flag, parse) in PER_STAGE_FLAGS.items()}
    try:
        request = GenerationRequest(prompts=tuple(args.prompts), negative_prompt=args.negative_prompt,
                                    num_images_per_prompt=args.num_images, seed=args.seed,
                                    stop_at_stage=args.stop_at_stage, batch_invariant=args.batch_invariant,
                                    **{k: v for k, v in settings.items() if v is not None})
    except InvalidArgumentError as e:
        raise _flag_named(e) from None
    return request, None


def run_generate(args) -> int:
    if args.image is not None and args.from_png is not None:
        raise InvalidArgumentError("--image and --from-png contradict each other; give one")
    if args.image is not None:
        check_strength_flag(args.strength)
    request, record, pipe, model = prepare(args)

    def make(callback):
        if args.image is None:
            return pipe(request, callback=callback)
        return pipe.img2img(read_image(args.image, "--image: "), request, strength=args.strength, callback=callback)

    return finish(args, pipe, request, model, make)


def check_strength_flag(strength) -> float:
    """``--strength`` checked as image-to-image checks it, the message naming the flag."""
    from openimagen.edit.img2img import check_strength

    try:
        return check_strength(strength)
    except InvalidArgumentError as e:
        raise InvalidArgumentError(f"--{e}") from None


def prepare(args):
    """Check the flags, build the request (policy-checked), load the model: (request, record, pipe, model)."""
    import torch

    if args.out.suffix.lower() != ".png":
        raise InvalidArgumentError(f"--out must end in .png, got {args.out}")
    from openimagen.pipeline.io import check_output_path

    check_output_path(args.out, "--out")
    check_dtype_flag(args.dtype)
    if args.fast and args.onnx is not None:
        raise InvalidArgumentError("--fast and --onnx both choose how the networks run; pass one of them")
    if args.fast or args.onnx is not None:
        from openimagen.accel.onnx import check_cpu_float32

        check_cpu_float32("--fast" if args.fast else "--onnx", args.device, args.dtype)
    request, record = request_from_args(args)
    adapters = _read_loras(args.lora, record)
    policy = safety_from_args(args)
    if policy is not None:
        policy.check(request.prompts)
    device = _check_device(args.device)
    from openimagen.pipeline import Pipeline

    model = args.model or (record or {}).get("model") or "default"
    variant = args.variant if args.variant is not None else (record or {}).get("variant")
    try:
        pipe = Pipeline.from_pretrained(None if model == "default" else model, device=device,
                                        dtype=getattr(torch, args.dtype),
                                        watermark=None if args.no_watermark else "default", variant=variant)
    except ModelLoadError as e:
        if record is not None and args.model is None and args.variant is None:
            raise ModelLoadError(f"{e} (the model recorded in {args.from_png}; pass --model DIR)") from None
        raise
    for adapter, scale in adapters:
        pipe.load_lora(adapter, scale)
    if args.onnx is not None:
        from openimagen.accel.onnx import use_onnx

        use_onnx(pipe, args.onnx)
    elif args.fast:
        from openimagen.accel.fast import use_fast

        use_fast(pipe)
    if record is not None and record.get("model_hash") != pipe.model_hash:
        print(f"warning: {args.from_png} was made by a model with hash {record.get('model_hash')}; this one is "
              f"{pipe.model_hash}, so the image may differ", file=sys.stderr)
    return request, record, pipe, model


def _read_loras(flags, record) -> list:
    """The ``--lora PATH[:SCALE]`` adapters, read and checked before the model loads: [(Adapter, scale)]. A record
    made with adapters needs them given again (its request names them)."""
    from openimagen.lora import parse_lora_flag, read_adapter

    adapters = []
    for flag in flags:
        path, scale = parse_lora_flag(flag)
        try:
            adapters.append((read_adapter(path), scale))
        except ModelLoadError as e:
            raise ModelLoadError(f"--lora: {e}") from None
    used = (record or {}).get("loras") or []
    given = {a.path.name for a, _ in adapters}
    missing = [u for u in used if u["name"] not in given]
    if missing:
        raise InvalidArgumentError(f"the recorded image was made with LoRA adapter {missing[0]['name']!r} (adapter "
                                   f"file sha256 {missing[0]['sha256'][:16]}); pass it with --lora PATH")
    return adapters


def finish(args, pipe, request, model, make) -> int:
    """``make(callback) -> PipelineOutput`` under progress bars, then write the PNGs and say where."""
    if request.num_images > pipe.max_batch_images:
        print(f"{request.num_images} images run in chunks of {pipe.max_batch_images} (bounded memory)",
              file=sys.stderr)
    try:
        callback, close = _progress(args.no_progress, pipe, pipe.resolve(request))
        try:
            out = make(callback)
        finally:
            close()
    except InvalidArgumentError as e:           # a per-stage setting that does not fit this cascade: name its flag
        raise _flag_named(e) from None
    paths = _write_images(out, args.out, model)
    timing = ", ".join(f"{k} {v:.2f}s" for k, v in out.timings.items())
    print(f"wrote {args.out}" + (f" and {len(paths)} images beside it" if len(paths) > 1 else "") + f" ({timing})")
    return 0


def _write_images(out, path: Path, model: str) -> list:
    """Write each image with its record (one image: at ``path``; several: ``path``-NNN.png plus a grid at ``path``).
    Every file is written through a temporary file and renamed, so an interrupted run leaves no half PNG."""
    from openimagen.pipeline import make_grid
    from openimagen.pipeline.io import atomic_write

    def save(image, target: Path, meta: dict):
        atomic_write(target, lambda tmp: image.save(tmp, format="PNG", pnginfo=png_info(meta)))

    if len(out.images) == 1:
        save(out.images[0], path, image_metadata(out, 0, model))
        return [path]
    paths = []
    for k, image in enumerate(out.images):
        target = path.with_name(f"{path.stem}-{k:03d}.png")
        save(image, target, image_metadata(out, k, model))
        paths.append(target)
    save(make_grid(out.images), path, {"prompts": out.request.image_prompts, "seeds": out.seeds, "model": model,
                                       "model_hash": out.model_hash})
    return paths
