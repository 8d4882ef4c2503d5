"""Issue 14: the service takes an ``adapter`` per request; requests with the same adapter share a batch, requests
with different ones never see each other's weights, and each served image equals the Python API's."""
import base64
import io
import threading

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from openimagen.pipeline import Pipeline
from openimagen.serve.app import create_app
from openimagen.serve.config import ServeConfig
from tests.lora.test_adapters import make_adapter
from tests.pipeline.fixtures import encoder, tiny_pipeline

FAST = {"steps": 2, "batch_invariant": True}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora_serve")
    model = tiny_pipeline().save_pretrained(root / "m")
    pipe = Pipeline.from_pretrained(model, text_encoder=encoder())
    paths = {n: make_adapter(pipe, root / n, seed=s) for n, s in (("ink", 1), ("neon", 2))}
    for p in paths.values():
        pipe.load_lora(p)
    pipe.set_loras({})
    with TestClient(create_app(pipe, ServeConfig.build(max_batch=8, batch_wait_ms=500))) as client:
        yield client, pipe


def _pixels(item) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(item["b64_json"]))).convert("RGB"))


def test_each_request_gets_exactly_its_adapter_even_when_sent_together(served):
    client, pipe = served
    bodies = [{"prompt": "a red circle", "seed": 3, **FAST},
              {"prompt": "a red circle", "seed": 3, "adapter": "ink", **FAST},
              {"prompt": "a red circle", "seed": 3, "adapter": "neon", "adapter_scale": 0.5, **FAST},
              {"prompt": "a red circle", "seed": 3, "adapter": "ink", **FAST}]
    results = [None] * len(bodies)

    def send(i):
        results[i] = client.post("/v1/images/generations", json=bodies[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.status_code == 200 for r in results), [r.text for r in results]
    got = [_pixels(r.json()["data"][0]) for r in results]
    for body, image in zip(bodies, got):
        loras = {} if "adapter" not in body else {body["adapter"]: body.get("adapter_scale", 1.0)}
        want = np.asarray(pipe("a red circle", seed=3, steps=2, batch_invariant=True, loras=loras).images[0])
        assert np.array_equal(image, want), body
    assert not np.array_equal(got[0], got[1]) and not np.array_equal(got[1], got[2])
    assert np.array_equal(got[1], got[3])
    metrics = client.get("/metrics").text                 # 3 distinct adapter sets: at least 3 batches
    count = float(next(line.split()[-1] for line in metrics.splitlines()
                       if line.startswith("openimagen_batch_size_count")))
    assert count >= 3


def test_unknown_adapters_are_a_422_naming_the_field_and_models_lists_them(served):
    client, _ = served
    r = client.post("/v1/images/generations", json={"prompt": "x", "adapter": "nope", **FAST})
    assert r.status_code == 422 and r.json()["error"]["param"] == "adapter"
    r = client.post("/v1/images/generations", json={"prompt": "x", "adapter": "ink", "adapter_scale": 50, **FAST})
    assert r.status_code == 422 and r.json()["error"]["param"] == "adapter_scale"
    adapters = client.get("/v1/models").json()["data"][0]["adapters"]
    assert [a["name"] for a in adapters] == ["ink", "neon"] and all(len(a["sha256"]) == 64 for a in adapters)
    schema = client.get("/openapi.json").json()
    assert "ink" in str(schema) and "adapter_scale" in str(schema)
