"""The one worker that owns the model: a bounded queue of jobs, run in batches on a thread of its own.

Requests are queued as :class:`Job` s. The worker takes the oldest job, then waits up to ``batch_wait`` seconds
for more jobs with the same resolved sampling settings until the batch holds ``max_batch`` images, and runs them
as one ``Pipeline.generate_batch`` call (each image keeps its own prompt and seed). Jobs with other settings wait
for a later batch, in arrival order. The sampler stays a pure function; only this thread calls the pipeline.

A job can be cancelled (timeout, client gone): a queued one is dropped when reached; a running batch stops at
its next step once every job in it is cancelled. A failing batch fails its jobs, never the worker.
"""
from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Optional

from openimagen.errors import OpenImagenError
from openimagen.pipeline import GenerationRequest, Pipeline
from openimagen.serve.metrics import Metrics

log = logging.getLogger("openimagen.serve")


class QueueFull(Exception):
    """The queue holds ``max_queue`` jobs; the caller should retry later."""


class Cancelled(Exception):
    """The job was cancelled before it finished."""


@dataclass(eq=False)
class Job:
    """One request in the queue. ``progress(event: dict)`` is called from the worker thread (must be thread-safe);
    ``preview_every`` > 0 adds the x0 estimate as PNGs every that many steps."""

    request: GenerationRequest
    settings_key: tuple
    progress: Optional[Callable[[dict], None]] = None
    preview_every: int = 0
    run: Optional[Callable] = None      # an edit: run(callback) -> PipelineOutput, alone (never batched)
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)
    enqueued: float = field(default_factory=time.monotonic)
    _cancelled: threading.Event = field(default_factory=threading.Event)

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        self._cancelled.set()
        self.future.cancel()            # no-op once running; the worker checks ``cancelled`` at every step


class Batcher:
    """The queue and its worker thread. ``start()`` before ``submit``; ``stop()`` finishes the running batch and
    fails what is still queued with :class:`Cancelled`."""

    def __init__(self, pipe: Pipeline, *, max_queue: int, max_batch: int, batch_wait: float,
                 metrics: Optional[Metrics] = None):
        self.pipe, self.max_queue, self.max_batch, self.batch_wait = pipe, max_queue, max_batch, batch_wait
        self.metrics = metrics or Metrics()
        self._queue: deque[Job] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="openimagen-worker", daemon=True)

    # --- the caller's side -------------------------------------------------------------------------------------
    def start(self) -> "Batcher":
        self._thread.start()
        return self

    @property
    def depth(self) -> int:
        with self._cond:
            return len(self._queue)

    @property
    def accepting(self) -> bool:
        return not self._stopping and self._thread.is_alive()

    def submit(self, request: GenerationRequest, progress=None, preview_every: int = 0,
               run: Optional[Callable] = None) -> Job:
        """Queue ``request`` (already validated and resolvable on this pipeline); :class:`QueueFull` when full.
        ``run(callback) -> PipelineOutput`` makes it an edit job (img2img, inpaint, ...): it runs alone, through
        the same queue, limits and cancellation as generation."""
        key = self.pipe.batch_key(request)
        if run is not None:
            key = (key[0], ("edit", object()))           # equal to no other job's key: never batched
        job = Job(request, key, progress, preview_every, run)
        with self._cond:
            if self._stopping:
                raise QueueFull("the service is shutting down")
            if len(self._queue) >= self.max_queue:
                raise QueueFull(f"the queue is full ({self.max_queue} requests waiting)")
            self._queue.append(job)
            self.metrics.queue_depth.set(len(self._queue))
            self._cond.notify()
        return job

    def stop(self, timeout: Optional[float] = None) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # --- the worker's side -------------------------------------------------------------------------------------
    def _take_batch(self) -> list[Job]:
        """Block until a batch is ready (or stopping with an empty queue: [])."""
        with self._cond:
            while True:
                while self._queue and self._queue[0].cancelled:
                    self._queue.popleft()
                if self._queue or self._stopping:
                    break
                self._cond.wait()
            if not self._queue:
                return []
            first = self._queue.popleft()
            batch, images = [first], first.request.num_images
            deadline = time.monotonic() + self.batch_wait
            while images < self.max_batch:
                for job in list(self._queue):
                    if job.cancelled:
                        self._queue.remove(job)
                    elif job.settings_key == first.settings_key and images + job.request.num_images <= self.max_batch:
                        self._queue.remove(job)
                        batch.append(job)
                        images += job.request.num_images
                left = deadline - time.monotonic()
                if images >= self.max_batch or left <= 0 or self._stopping:
                    break
                self._cond.wait(left)
            self.metrics.queue_depth.set(len(self._queue))
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take_batch()
            if not batch:
                break
            self._run_batch(batch)
        with self._cond:                               # stopping: fail whatever is left
            while self._queue:
                job = self._queue.popleft()
                if not job.future.done():
                    job.future.set_exception(Cancelled("the service shut down"))

    def _run_batch(self, batch: list[Job]) -> None:
        live = [j for j in batch if j.future.set_running_or_notify_cancel()]
        if not live:
            return
        start = time.monotonic()
        for j in live:
            self.metrics.queue_seconds.observe(start - j.enqueued)
        self.metrics.batch_size.observe(sum(j.request.num_images for j in live))
        try:
            callback = self._callback(live)
            if live[0].run is not None:
                outs = [live[0].run(callback)]
            else:
                outs = self.pipe.generate_batch([j.request for j in live], callback=callback)
        except Exception as e:                         # never let a batch kill the worker
            if not isinstance(e, (OpenImagenError, Cancelled)):
                log.exception("batch failed")
            for j in live:
                j.future.set_exception(e)
            return
        finally:
            self.metrics.generation_seconds.observe(time.monotonic() - start)
        for j, out in zip(live, outs):
            self.metrics.images.inc(j.request.num_images)
            j.future.set_result(out)

    def _callback(self, jobs: list[Job]):
        """The pipeline's per-step callback: progress (and previews) to each job; stop when all are cancelled."""
        from openimagen.pipeline import to_pil

        spans, start = [], 0
        for j in jobs:
            spans.append(slice(start, start + j.request.num_images))
            start += j.request.num_images
        steps = [s.steps for s in jobs[0].settings_key[0]]

        def callback(stage, step, sigma, x, x0_hat):
            if all(j.cancelled for j in jobs):
                raise Cancelled("every request in the batch was cancelled")
            for j, sl in zip(jobs, spans):
                if j.progress is None or j.cancelled:
                    continue
                event = {"event": "progress", "stage": stage, "stages": len(steps), "step": step + 1,
                         "steps": steps[stage]}
                if j.preview_every and ((step + 1) % j.preview_every == 0 or step + 1 == steps[stage]):
                    event["preview"] = to_pil(x0_hat[sl])
                j.progress(event)
        return callback
