"""``openimagen serve``: the HTTP service and web page (docs/SERVING.md) under uvicorn, or Ray Serve with --ray."""
from __future__ import annotations

import sys
from pathlib import Path

from openimagen.cli.generate import (CUDA_GRAPHS_HELP, _check_device, add_safety_flags, check_dtype_flag,
                                     compile_mode, safety_from_args)
from openimagen.cli.values import add_variant_flag
from openimagen.errors import InvalidArgumentError

# flag -> (ServeConfig field, type, help)
LIMIT_FLAGS = {
    "--max-queue": ("max_queue", int, "requests that may wait; one more gets 429 (default 64)"),
    "--max-batch": ("max_batch", int, "images run in one batched call (default 8)"),
    "--max-images": ("max_images", int, "images one request may ask for, prompts x n (default 8)"),
    "--batch-wait-ms": ("batch_wait_ms", float, "how long the worker waits to fill a batch (default 20)"),
    "--timeout": ("timeout", float, "seconds a request may take, queueing included, then 504 (default 120)"),
    "--rate-limit": ("rate_limit", int, "requests per minute per API key (per address without keys); 0 = none "
                                        "(default 0)"),
    "--max-body-bytes": ("max_body_bytes", int, "largest request body; larger gets 413 (default 65536)"),
    "--max-steps": ("max_steps", int, "most sampling steps a request may ask of a stage; more gets 422 (default 250)"),
}


def add_serve_parser(subparsers) -> None:
    p = subparsers.add_parser("serve", help="serve the model over HTTP, with a web page",
                              description="Start the HTTP service (OpenAI images API shapes, streaming, metrics) and "
                                          "its web page. With no flags: the shipped default model on "
                                          "http://127.0.0.1:8000/. See docs/SERVING.md.")
    p.add_argument("--model", default=None, help="model directory (default: the shipped default model)")
    add_variant_flag(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--api-keys", type=Path, default=None,
                   help="file of API keys, one per line (or sha256:<hex>); then every route but /healthz and the "
                        "web page's files needs 'Authorization: Bearer KEY'")
    for flag, (field, kind, text) in LIMIT_FLAGS.items():
        p.add_argument(flag, dest=field, type=kind, default=None, help=text)
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    p.add_argument("--dtype", default="float32", help="network precision: float32, float16 or bfloat16")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile every stage and warm it up before serving (minutes at start; faster after)")
    p.add_argument("--cuda-graphs", action="store_true", help=CUDA_GRAPHS_HELP)
    p.add_argument("--fast", action="store_true",
                   help="serve through ONNX Runtime (float32), as generate --fast (built once per model "
                        "into the cache; about 20 s the first time)")
    p.add_argument("--ray", action="store_true", help="run on Ray Serve (a local Ray instance, or RAY_ADDRESS)")
    p.add_argument("--replicas", type=int, default=1, help="with --ray: the most replicas autoscaling may start")
    p.add_argument("--lora", action="append", default=[], metavar="PATH",
                   help="load this LoRA adapter folder; a request uses it with \"adapter\": \"<folder name>\" "
                        "(and \"adapter_scale\"); repeat for several")
    add_safety_flags(p)
    p.set_defaults(func=run_serve)


def serve_settings(args) -> dict:
    """The ServeConfig values the flags give (validated by ServeConfig; errors name the flag)."""
    from openimagen.serve.config import ServeConfig, flag_name

    values = {field: getattr(args, field) for field, _, _ in LIMIT_FLAGS.values() if getattr(args, field) is not None}
    values["watermark"] = not args.no_watermark
    try:
        ServeConfig.build(**values)
    except InvalidArgumentError as e:
        field = str(e).split(" ", 1)[0]
        raise InvalidArgumentError(f"{flag_name(field)} {str(e).split(' ', 1)[1]}") from None
    return values


def run_serve(args) -> int:
    if not 0 < args.port < 65536:
        raise InvalidArgumentError(f"--port must be in 1..65535, got {args.port}")
    check_dtype_flag(args.dtype)
    if args.replicas < 1:
        raise InvalidArgumentError(f"--replicas must be at least 1, got {args.replicas}")
    values = serve_settings(args)
    policy = safety_from_args(args)
    from openimagen.serve.auth import ApiKeys

    keys = ApiKeys.from_file(args.api_keys) if args.api_keys is not None else None
    device = _check_device(args.device)
    from openimagen.errors import ModelLoadError
    from openimagen.lora import read_adapter

    if args.fast and (args.compile or args.lora):
        raise InvalidArgumentError("--fast runs fixed ONNX graphs: it does not combine with --compile or --lora")
    if args.fast:
        from openimagen.accel.onnx import check_cpu_float32

        check_cpu_float32("--fast", device, args.dtype)
    mode = compile_mode(args.compile, args.cuda_graphs, device)
    if args.compile and args.lora:
        raise InvalidArgumentError("--compile and --lora do not combine: per-request adapters would recompile the "
                                   "graphs (fuse an always-on adapter into an exported model instead)")
    for path in args.lora:                       # checked before the model loads
        try:
            read_adapter(path)
        except ModelLoadError as e:
            raise ModelLoadError(f"--lora: {e}") from None
    spec = dict(model=args.model, variant=args.variant, device=device, dtype=args.dtype, config=values, keys=keys,
                policy=policy, loras=[str(p) for p in args.lora], compile="inductor" if args.compile else None,
                compile_mode=mode, fast=args.fast)
    if args.ray:
        from openimagen.serve.ray_app import run_ray

        return run_ray(spec, host=args.host, port=args.port, max_replicas=args.replicas)
    import uvicorn

    from openimagen.serve.app import build_app

    app = build_app(**spec)
    print(f"openimagen: serving {args.model or 'the default model'} at http://{args.host}:{args.port}/ (web page); "
          f"API: POST /v1/images/generations, docs: /docs" + ("" if keys is None else "; API keys required"),
          file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, timeout_graceful_shutdown=int(app.state.service.config.timeout),
                log_level="info")
    return 0
