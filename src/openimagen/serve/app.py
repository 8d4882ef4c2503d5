"""The HTTP service: a FastAPI app around one :class:`~openimagen.serve.worker.Batcher` (docs/SERVING.md).

Routes: ``POST /v1/images/generations`` (OpenAI images API shapes), ``POST /v1/images/generations/stream``
(Server-Sent Events: progress, previews, images), ``GET /v1/images/{id}.png``, ``GET /v1/models``,
``GET /healthz``, ``GET /readyz``, ``GET /metrics`` and the web page at ``/``. Every error body has the OpenAI
API's shape ``{"error": {"message", "type", "param", "code"}}`` with a one-line message; no traceback ever
reaches a client.
"""
import asyncio
import base64
import logging
import sys
import time
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Optional, Sequence, Union

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response
from fastapi.sse import EventSourceResponse, format_sse_event
from fastapi.staticfiles import StaticFiles
from limits import RateLimitItemPerMinute, storage, strategies
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException

from openimagen.errors import InvalidArgumentError, OpenImagenError, PolicyError
from openimagen.pipeline import GenerationRequest, Pipeline
from openimagen.pipeline.provenance import image_metadata, png_bytes
from openimagen.safety import PromptPolicy, Watermark
from openimagen.serve.auth import ApiKeys
from openimagen.serve.config import ServeConfig
from openimagen.serve.middleware import RequestMetrics
from openimagen.serve.requests import ApiError, _param, to_generation_request
from openimagen.serve.metrics import Metrics
from openimagen.serve.schemas import ErrorResponse, ImagesRequest, ImagesResponse, service_models
from openimagen.serve.store import ImageStore
from openimagen.serve.worker import Batcher, Cancelled, QueueFull
from openimagen.validation import errors_one_line

log = logging.getLogger("openimagen.serve")
STATIC = Path(__file__).resolve().parent / "static"
ERRORS = {**{s: {"model": ErrorResponse} for s in (400, 401, 404, 422, 429, 500, 503, 504)},
          413: {"description": "the body is larger than --max-body-bytes (Starlette's own plain-text answer)",
                "content": {"text/plain": {}}}}


class Service:
    """What the routes share: the pipeline, its batcher, settings, keys, policy, store, metrics, rate limiter."""

    def __init__(self, pipe: Pipeline, config: ServeConfig, api_keys: Optional[ApiKeys],
                 policy: Optional[PromptPolicy], model_label: str):
        self.pipe, self.config, self.api_keys, self.policy, self.model_label = pipe, config, api_keys, policy, model_label
        self.metrics = Metrics()
        self.store = ImageStore(config.store_size, config.store_ttl)
        self.batcher = Batcher(pipe, max_queue=config.max_queue, max_batch=config.max_batch,
                               batch_wait=config.batch_wait_ms / 1000, metrics=self.metrics)
        self.limiter = strategies.MovingWindowRateLimiter(storage.MemoryStorage())
        self.rate = RateLimitItemPerMinute(config.rate_limit) if config.rate_limit else None
        self.model_hash = pipe.model_hash
        self.ImagesRequest, self.StreamRequest = service_models(config, len(pipe.stages),
                                                                [f"{r}x{r}" for r in pipe.resolutions],
                                                                list(pipe.loras.loaded))

    def reject(self, reason: str, error: ApiError) -> ApiError:
        self.metrics.rejections.labels(reason).inc()
        return error

    # --- dependencies ------------------------------------------------------------------------------------------
    def authorize(self, request: Request) -> Optional[str]:
        """The caller's key id (None without keys); 401 for a missing or wrong key."""
        if self.api_keys is None:
            return None
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        key_id = self.api_keys.check(token.strip()) if scheme.lower() == "bearer" else None
        if key_id is None:
            raise self.reject("unauthorized", ApiError(
                401, "missing or wrong API key: send 'Authorization: Bearer KEY'", kind="authentication_error",
                code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"}))
        return key_id

    def rate_limited(self, request: Request) -> Optional[str]:
        """:meth:`authorize`, then the per-key (or per-address) requests-per-minute limit: 429 beyond it."""
        key_id = self.authorize(request)
        if self.rate is not None:
            who = key_id or (request.client.host if request.client else "unknown")
            if not self.limiter.hit(self.rate, who):
                reset = self.limiter.get_window_stats(self.rate, who).reset_time
                retry = max(1, int(reset - time.time()) + 1)
                raise self.reject("rate_limited", ApiError(
                    429, f"rate limit: at most {self.config.rate_limit} requests per minute per key",
                    kind="rate_limit_error", code="rate_limit_exceeded", headers={"Retry-After": str(retry)}))
        return key_id

    # --- generation --------------------------------------------------------------------------------------------
    def submit(self, body: ImagesRequest, progress=None, preview_every: int = 0):
        try:
            request = to_generation_request(body, self.pipe, self.config)
        except ApiError as e:
            raise self.reject("invalid", e) from None
        return self.enqueue(request, progress, preview_every)

    def enqueue(self, request: GenerationRequest, progress=None, preview_every: int = 0, run=None):
        """Check ``request``'s prompts against the policy and queue it (``run``: an edit job, see Batcher.submit);
        400 for a refused prompt, 429 when the queue is full."""
        if self.policy is not None:
            try:
                self.policy.check(request.prompts)
            except PolicyError as e:
                raise self.reject("policy", ApiError(400, str(e), param="prompt", code="prompt_refused")) from None
        try:
            return self.batcher.submit(request, progress, preview_every, run)
        except QueueFull as e:
            retry = max(1, round(self.config.batch_wait_ms / 1000 + self.batcher.depth * 0.5))
            raise self.reject("queue_full", ApiError(429, f"{e}; retry later", kind="rate_limit_error",
                                                     code="queue_full", headers={"Retry-After": str(retry)})) from None

    def remaining(self, job) -> float:
        return job.enqueued + self.config.timeout - time.monotonic()

    def failure(self, job, error: BaseException) -> ApiError:
        """The ApiError for a job that failed (worker error, cancelled, or timed out)."""
        job.cancel()
        if isinstance(error, (TimeoutError, asyncio.TimeoutError)):
            return self.reject("timeout", ApiError(504, f"the request took longer than the service's timeout of "
                                                        f"{self.config.timeout:g} s; its work was dropped",
                                                   kind="timeout_error", code="timeout"))
        if isinstance(error, (Cancelled, asyncio.CancelledError)):
            return self.reject("cancelled", ApiError(503, f"the request was cancelled: {error or 'shutting down'}",
                                                     kind="server_error", code="cancelled"))
        if isinstance(error, InvalidArgumentError):      # found while running (an edit's mask, border): the input's
            return self.reject("invalid", ApiError(422, str(error), param=_param(str(error))))
        if isinstance(error, OpenImagenError):
            return ApiError(500, str(error), kind="server_error", code="generation_failed")
        log.error("generation failed: %s: %s", type(error).__name__, error)
        return ApiError(500, "generation failed inside the service (see its log)", kind="server_error")

    def image_items(self, out, request: Request, response_format: str) -> list[dict]:
        items = []
        for k, image in enumerate(out.images):
            png = png_bytes(image, image_metadata(out, k, self.model_label))
            item = {"revised_prompt": out.request.image_prompts[k], "seed": out.seeds[k]}
            if response_format == "url":
                item["url"] = f"{str(request.base_url).rstrip('/')}/v1/images/{self.store.put(png)}.png"
            else:
                item["b64_json"] = base64.b64encode(png).decode()
            items.append(item)
        return items

    def summary(self, out) -> dict:
        return {"model": self.config.model_name, "model_hash": out.model_hash,
                "settings": [asdict(s) for s in out.settings],
                "timings": {k: round(v, 4) for k, v in out.timings.items()}}


async def await_job(svc: "Service", job, request: Request):
    """The job's PipelineOutput, or a 499 Response when the client left first (its work is dropped); raises the
    ApiError of a failed or timed-out job (504 after the service's timeout)."""
    waiter = asyncio.ensure_future(asyncio.wrap_future(job.future))
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait({waiter, gone}, timeout=max(0.0, svc.remaining(job)),
                                     return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if waiter not in done:
        waiter.cancel()
        if gone in done:                            # the client left: drop its work; nobody reads the answer
            job.cancel()
            svc.metrics.rejections.labels("cancelled").inc()
            return Response(status_code=499)
        raise svc.failure(job, TimeoutError())
    try:
        return waiter.result()
    except BaseException as e:                     # noqa: BLE001 - every failure becomes an ApiError
        raise svc.failure(job, e) from None


async def _disconnected(request: Request) -> None:
    """Returns when the client has gone (the body is already read, so the next message is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def create_app(pipe: Pipeline, config: Optional[ServeConfig] = None, *, api_keys: Optional[ApiKeys] = None,
               policy: Union[PromptPolicy, None, str] = "default", model_label: str = "default") -> FastAPI:
    """The service for ``pipe``. ``api_keys`` None: no auth. ``policy``: the prompt policy ("default": the built-in
    deny-list; None: none). The worker starts and stops with the app's lifespan."""
    config = config or ServeConfig()
    policy = PromptPolicy.default() if policy == "default" else policy
    for i, st in enumerate(pipe.stages):
        if st.config.sampling.steps > config.max_steps:
            raise InvalidArgumentError(f"--max-steps {config.max_steps} is below stage {i}'s default of "
                                       f"{st.config.sampling.steps} steps: requests without steps would be refused")
    pipe.watermark = (pipe.watermark or Watermark()) if config.watermark else None    # the service owns ``pipe``
    svc = Service(pipe, config, api_keys, policy, model_label)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        svc.batcher.start()
        yield
        await asyncio.to_thread(svc.batcher.stop, config.timeout)

    app = FastAPI(title="openimagen", version=_version(), lifespan=lifespan, max_body_size=config.max_body_bytes,
                  description="Imagen-style text-to-image service. OpenAI images API compatible; see docs/SERVING.md.")
    app.state.service = svc
    app.add_middleware(RequestMetrics, metrics=svc.metrics)
    _add_error_handlers(app, svc)
    _add_routes(app, svc)
    from openimagen.serve.edits import add_edit_route

    add_edit_route(app, svc)
    return app


def _version() -> str:
    from openimagen import __version__

    return __version__


def _add_error_handlers(app: FastAPI, svc: Service) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError):
        return e.response()

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError):
        errors = [{**err, "loc": tuple(err.get("loc", ()))[1:]} for err in e.errors()]   # drop the leading "body"
        body = e.body if isinstance(e.body, dict) else None
        message, _ = errors_one_line(errors, body) if errors else ("invalid request", None)
        if errors and errors[0].get("type") == "json_invalid":
            message = "the request body is not valid JSON"
        elif errors and errors[0].get("type") == "missing" and not errors[0]["loc"]:
            message = "the request needs a JSON body"
        svc.metrics.rejections.labels("invalid").inc()
        return ApiError(422, message, param=_param(message)).response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException):
        kind = "not_found_error" if e.status_code == 404 else "invalid_request_error"
        return ApiError(e.status_code, str(e.detail), kind=kind, headers=getattr(e, "headers", None)).response()

    @app.exception_handler(Exception)
    async def unexpected(request: Request, e: Exception):
        log.error("unexpected error on %s: %s: %s", request.url.path, type(e).__name__, e)
        return ApiError(500, "internal error (see the service's log)", kind="server_error").response()


def _add_routes(app: FastAPI, svc: Service) -> None:
    auth, limited = Depends(svc.authorize), Depends(svc.rate_limited)

    @app.post("/v1/images/generations", response_model=ImagesResponse, responses=ERRORS,
              summary="Generate images (OpenAI images API shapes, plus openimagen's fields)")
    async def generations(body: svc.ImagesRequest, request: Request, key: Optional[str] = limited):
        job = svc.submit(body)
        out = await await_job(svc, job, request)
        if isinstance(out, Response):
            return out
        return {"created": int(time.time()), "data": svc.image_items(out, request, body.response_format),
                "openimagen": svc.summary(out)}

    @app.post("/v1/images/generations/stream", responses={200: {"content": {"text/event-stream": {}}}, **ERRORS},
              summary="Generate images, streaming progress, previews and the images as Server-Sent Events")
    async def stream(body: svc.StreamRequest, request: Request, key: Optional[str] = limited):
        loop, events = asyncio.get_running_loop(), asyncio.Queue()
        job = svc.submit(body, progress=lambda ev: loop.call_soon_threadsafe(events.put_nowait, ev),
                         preview_every=body.preview_every)
        return EventSourceResponse(_events(svc, job, events, request, body.response_format))

    @app.get("/v1/images/{image_id}.png", response_class=Response, responses={
        200: {"content": {"image/png": {}}}, **ERRORS}, summary="An image made with response_format=url")
    async def image(image_id: str, key: Optional[str] = auth):
        png = svc.store.get(image_id)
        if png is None:
            raise ApiError(404, f"no image {image_id!r} here (images expire after {svc.config.store_ttl:g} s or "
                                f"when {svc.config.store_size} newer ones exist)", kind="not_found_error")
        return Response(png, media_type="image/png")

    @app.get("/v1/models", responses=ERRORS, summary="The loaded model: stages, resolutions, sampling defaults")
    async def models(key: Optional[str] = auth):
        stages = [{"name": name, "resolution": st.config.resolution, "super_resolution": st.config.is_super_resolution,
                   "sampling": asdict(st.config.sampling)}
                  for name, st in zip(svc.pipe.config.stages, svc.pipe.stages)]
        return {"object": "list", "data": [{
            "id": svc.config.model_name, "object": "model", "owned_by": "openimagen", "model_hash": svc.model_hash,
            "stages": stages, "sizes": [f"{r}x{r}" for r in svc.pipe.resolutions],
            "limits": {"max_images": svc.config.max_images, "max_batch": svc.config.max_batch,
                       "timeout_s": svc.config.timeout, "rate_limit_per_minute": svc.config.rate_limit},
            "watermark": svc.pipe.watermark is not None, "prompt_policy": svc.policy is not None,
            "adapters": [{"name": a["name"], "stage": a["stage"], "sha256": a["sha256"]}
                         for a in svc.pipe.loras.describe({n: 1.0 for n in svc.pipe.loras.loaded})]}]}

    @app.get("/healthz", summary="The process is alive")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", responses=ERRORS, summary="Model loaded, worker running, queue not full")
    async def readyz(key: Optional[str] = auth):
        depth = svc.batcher.depth
        if not svc.batcher.accepting or depth >= svc.config.max_queue:
            raise ApiError(503, "not ready: " + ("shutting down" if not svc.batcher.accepting else "queue full"),
                           kind="server_error", code="not_ready")
        return {"status": "ready", "queue_depth": depth, "max_queue": svc.config.max_queue}

    @app.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}, **ERRORS},
             summary="Prometheus metrics")
    async def metrics(key: Optional[str] = auth):
        return Response(svc.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")


def _sse(event: str, data) -> bytes:
    import json

    return format_sse_event(data_str=json.dumps(data), event=event)


async def _events(svc: Service, job, events: asyncio.Queue, request: Request, response_format: str):
    """The stream of one job: ``queued``, ``progress`` (with ``preview`` PNGs when asked), ``image`` for each image,
    then ``done``; or ``error`` with the status and message. A client that leaves cancels the job."""
    waiter, getter = asyncio.ensure_future(asyncio.wrap_future(job.future)), None
    try:
        yield _sse("queued", {"queue_depth": svc.batcher.depth})
        while not waiter.done() or not events.empty():
            getter = asyncio.ensure_future(events.get())
            done, _ = await asyncio.wait({waiter, getter}, timeout=max(0.0, svc.remaining(job)),
                                         return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
            else:
                yield _sse("progress", _progress_payload(getter.result()))
            if not done:
                raise TimeoutError()
        out = waiter.result()
        for k, item in enumerate(svc.image_items(out, request, response_format)):
            yield _sse("image", {"index": k, **item})
        yield _sse("done", {"created": int(time.time()), "openimagen": svc.summary(out)})
    except (asyncio.CancelledError, GeneratorExit):
        job.cancel()
        svc.metrics.rejections.labels("cancelled").inc()
        raise
    except BaseException as e:                         # noqa: BLE001 - reported in the stream, never raised
        err = svc.failure(job, e)
        yield _sse("error", {"status": err.status, "message": err.message, "code": err.code})
    finally:
        waiter.cancel()
        if getter is not None:
            getter.cancel()


def _progress_payload(event: dict) -> dict:
    payload = {k: v for k, v in event.items() if k not in ("event", "preview")}
    if "preview" in event:
        payload["preview"] = [base64.b64encode(png_bytes(im, {})).decode() for im in event["preview"]]
    return payload


def build_app(model: Optional[str] = None, device: str = "cpu", dtype: str = "float32", config: Optional[dict] = None,
              keys: Optional[ApiKeys] = None, policy: Union[PromptPolicy, None, str] = "default",
              loras: Sequence[str] = (), compile: Optional[str] = None, fast: bool = False,
              variant: Optional[str] = None, compile_mode: Optional[str] = None) -> FastAPI:
    """Load ``model`` (a directory; None: the shipped default) and make its app: what ``openimagen serve`` and the
    Ray Serve deployment run. ``config``: :class:`ServeConfig` values. ``loras``: LoRA adapter folders loaded
    onto the model (named by their folder), which a request picks with its ``adapter`` field; none runs unless
    asked for. ``compile``: a torch.compile backend ("inductor") to compile and warm up every stage with before
    serving (openimagen.accel.compile), or None; ``compile_mode`` its torch.compile mode ("reduce-overhead": CUDA
    graphs; None: the default). ``fast``: run the networks as ``generate --fast`` does (openimagen.accel.fast: ONNX
    Runtime, float32; built into the cache on first use). ``variant``: one of the model's named alternative
    cascades (Pipeline.from_pretrained)."""
    import torch

    pipe = Pipeline.from_pretrained(model, device=device, dtype=getattr(torch, dtype), variant=variant)
    for path in loras:
        pipe.load_lora(path)
    pipe.set_loras({})
    if compile is not None:
        from openimagen.accel.compile import compile_stages

        seconds = compile_stages(pipe, backend=compile, mode=compile_mode)
        print(f"openimagen: compiled every stage ({compile}{', ' + compile_mode if compile_mode else ''}) and "
              f"warmed up in {seconds:.0f} s", file=sys.stderr, flush=True)
    elif fast:
        from openimagen.accel.fast import use_fast

        use_fast(pipe)
    label = "default" if model is None else str(model)
    cfg = ServeConfig.build(**{"model_name": "openimagen-default" if model is None else Path(model).name,
                               **(config or {})})
    return create_app(pipe, cfg, api_keys=keys, policy=policy, model_label=label)
