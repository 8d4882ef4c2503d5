"""The batching worker: N concurrent single-image requests run as one batched call and give the Python API's
images; jobs with other settings wait for their own batch; cancelled and failing jobs never stop the worker."""
import threading
from collections import namedtuple

import numpy as np
import pytest

from openimagen.pipeline import GenerationRequest
from openimagen.serve.worker import Batcher, Cancelled, QueueFull

PROMPTS = ["a red circle", "two green stars", "pizza", "rocket"]


def test_concurrent_requests_share_one_batch_and_equal_the_api(make_client, pipe):
    c = make_client(max_batch=4, batch_wait_ms=3000)
    results = {}

    def post(k):
        body = {"prompt": PROMPTS[k], "seed": 100 + k, "steps": 3}
        results[k] = c.post("/v1/images/generations", json=body).json()

    threads = [threading.Thread(target=post, args=(k,)) for k in range(4)]
    [t.start() for t in threads]
    [t.join(60) for t in threads]
    metrics = c.get("/metrics").text
    assert "openimagen_batch_size_count 1.0" in metrics and "openimagen_batch_size_sum 4.0" in metrics
    from tests.serve.test_api import _png

    for k in range(4):
        served = np.asarray(_png(results[k]["data"][0]).convert("RGB"), np.int16)
        direct = np.asarray(pipe([PROMPTS[k]], seed=100 + k, steps=3).images[0], np.int16)
        assert np.abs(served - direct).max() <= 1          # README: batched mode, within one 8-bit step


Settings = namedtuple("Settings", "steps")


class FakePipe:
    """Resolves like a pipeline (settings = the steps asked for) and records each batch it runs."""

    def __init__(self, fail_on=None, gate=None):
        self.batches, self.fail_on, self.gate = [], fail_on, gate

    def resolve(self, request):
        return [Settings(request.steps or 1)]

    def batch_key(self, request):
        return tuple(self.resolve(request)), request.batch_invariant, ()

    def generate_batch(self, requests, callback=None):
        if self.gate is not None:
            self.gate.wait(30)
        self.batches.append([r.prompts[0] for r in requests])
        if any(r.prompts[0] == self.fail_on for r in requests):
            raise RuntimeError("broken weights")
        if callback is not None:
            callback(0, 0, 1.0, None, None)
        return [f"out:{r.prompts[0]}" for r in requests]


def _req(prompt, steps=1, n=1):
    return GenerationRequest(prompts=(prompt,), steps=steps, num_images_per_prompt=n)


def test_batches_group_equal_settings_in_arrival_order():
    gate = threading.Event()
    fake = FakePipe(gate=gate)
    b = Batcher(fake, max_queue=10, max_batch=3, batch_wait=0.0).start()
    blocker = b.submit(_req("first"))
    while not fake.batches and b.depth:                    # wait for the worker to take "first"
        threading.Event().wait(0.01)
    jobs = [b.submit(_req(p, s)) for p, s in [("a", 1), ("b", 2), ("c", 1), ("d", 1), ("e", 2)]]
    gate.set()
    assert blocker.future.result(10) == "out:first"
    assert [j.future.result(10) for j in jobs] == ["out:a", "out:b", "out:c", "out:d", "out:e"]
    b.stop(5)
    assert fake.batches == [["first"], ["a", "c", "d"], ["b", "e"]]


def test_a_batch_never_holds_more_than_max_batch_images():
    fake = FakePipe(gate=threading.Event())
    b = Batcher(fake, max_queue=10, max_batch=4, batch_wait=0.0)
    jobs = [b.submit(_req(p, n=n)) for p, n in [("a", 3), ("b", 2), ("c", 1)]]
    fake.gate.set()
    b.start()
    [j.future.result(10) for j in jobs]
    b.stop(5)
    assert fake.batches == [["a", "c"], ["b"]]


def test_full_queue_cancelled_jobs_failures_and_stop():
    gate = threading.Event()
    fake = FakePipe(fail_on="bad", gate=gate)
    b = Batcher(fake, max_queue=2, max_batch=1, batch_wait=0.0)
    dropped, bad = b.submit(_req("dropped")), b.submit(_req("bad"))
    with pytest.raises(QueueFull, match="2 requests waiting"):
        b.submit(_req("one too many"))
    dropped.cancel()
    b.start()
    gate.set()
    with pytest.raises(RuntimeError, match="broken weights"):
        bad.future.result(10)
    good = b.submit(_req("good"))                          # the worker lives on after a failed batch
    assert good.future.result(10) == "out:good"
    assert ["dropped"] not in fake.batches
    b.stop(5)
    with pytest.raises(QueueFull, match="shutting down"):
        b.submit(_req("late"))


def test_cancelling_every_job_of_a_running_batch_stops_it(pipe):
    b = Batcher(pipe, max_queue=4, max_batch=4, batch_wait=0.0)
    seen = threading.Event()
    job = b.submit(GenerationRequest(prompts=("a",), steps=200), progress=lambda ev: seen.set())
    b.start()
    assert seen.wait(30)
    job.cancel()
    with pytest.raises((Cancelled, Exception)) as err:
        job.future.result(30)
    assert isinstance(err.value, Cancelled) or "cancel" in type(err.value).__name__.lower()
    b.stop(10)
