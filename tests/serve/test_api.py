"""The HTTP API through FastAPI's TestClient: 200, 401, 404, 413, 422, 429 and 400 paths, URL store, models,
health, metrics, streaming; every error in the OpenAI error shape with a one-line message."""
import base64
import io
import json
import threading

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image

from openimagen.pipeline import GenerationRequest
from openimagen.safety import Watermark
from openimagen.serve.auth import ApiKeys, digest

FAST = {"steps": 2}


def _png(item) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(item["b64_json"])))


def test_generation_returns_openai_shape_with_marked_pngs_and_their_record(make_client, pipe):
    c = make_client()
    r = c.post("/v1/images/generations", json={"prompt": "a red circle", "n": 2, "seed": 5, **FAST})
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body["created"], int) and len(body["data"]) == 2
    assert [d["seed"] for d in body["data"]] == [5, 6]
    assert body["openimagen"]["model_hash"] == pipe.model_hash
    for k, item in enumerate(body["data"]):
        im = _png(item)
        assert im.size == (32, 32) and im.format == "PNG"
        record = json.loads(im.text["openimagen"])
        assert GenerationRequest.from_dict(record["request"]).seed == 5 + k
        assert record["request"]["steps"] == [2, 2]


def test_service_images_carry_the_watermark_unless_turned_off():
    from tests.pipeline.fixtures import tiny_pipeline
    from openimagen.pipeline import to_pil
    from openimagen.serve.app import create_app
    from openimagen.serve.config import ServeConfig
    from fastapi.testclient import TestClient

    pipe = tiny_pipeline()
    raw = to_pil(pipe(["a"], seed=3, steps=2).stages[-1])[0]
    for on in (True, False):
        with TestClient(create_app(pipe, ServeConfig.build(watermark=on))) as c:
            item = c.post("/v1/images/generations", json={"prompt": "a", "seed": 3, **FAST}).json()["data"][0]
        want = Watermark().embed(raw) if on else raw
        assert np.array_equal(np.asarray(_png(item).convert("RGB")), np.asarray(want))


def test_service_image_equals_the_python_api_image(make_client, pipe):
    c = make_client()
    body = {"prompt": "two green stars", "seed": 11, "batch_invariant": True, **FAST}
    served = np.asarray(_png(c.post("/v1/images/generations", json=body).json()["data"][0]).convert("RGB"))
    direct = np.asarray(pipe(["two green stars"], seed=11, batch_invariant=True, steps=2).images[0])
    assert np.array_equal(served, direct)


def test_size_picks_the_stage_and_url_responses_are_served(make_client):
    c = make_client()
    r = c.post("/v1/images/generations", json={"prompt": "a", "size": "16x16", "response_format": "url", **FAST})
    url = r.json()["data"][0]["url"]
    assert url.startswith("http://testserver/v1/images/") and url.endswith(".png")
    got = c.get(url)
    assert got.status_code == 200 and got.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(got.content)).size == (16, 16)
    missing = c.get("/v1/images/0123456789abcdef.png")
    assert missing.status_code == 404 and "expire" in missing.json()["error"]["message"]


def test_url_store_is_bounded(make_client):
    c = make_client(store_size=2)
    urls = [c.post("/v1/images/generations", json={"prompt": "a", "response_format": "url", "size": "16x16",
                                                   **FAST}).json()["data"][0]["url"] for _ in range(3)]
    assert c.get(urls[0]).status_code == 404                   # the oldest went when a third arrived
    assert all(c.get(u).status_code == 200 for u in urls[1:])


BAD = [
    ({"prompt": []}, "prompt", "valid string"),
    ({"prompt": ""}, "prompt", "at least 1 character"),
    ({}, "prompt", "prompt is required"),
    ({"prompt": "x", "n": 0}, "n", "greater than or equal to 1"),
    ({"prompt": "x", "n": 9}, "n", "less than or equal to 8"),
    ({"prompt": ["x", "y"]}, "prompt", "valid string"),
    ({"prompt": "x", "n": "2"}, "n", "valid integer"),
    ({"prompt": "x", "steps": 0}, "steps", "greater than or equal to 1"),
    ({"prompt": "x", "steps": 251}, "steps", "less than or equal to 250"),
    ({"prompt": "x", "steps": [1, 2, 3]}, "steps", "at most 2 items"),
    ({"prompt": "x", "guidance": 1e9}, "guidance", "less than or equal to 100"),
    ({"prompt": "x", "sampler": "foo"}, "sampler", "valid: ddim, ddpm, dpmpp_2m, euler, heun"),
    ({"prompt": "x", "guidance": "high"}, "guidance", "valid number"),
    ({"prompt": "x", "size": "10x10"}, "size", "'16x16' or '32x32'"),
    ({"prompt": "x", "response_format": "gif"}, "response_format", "'b64_json' or 'url'"),
    ({"prompt": "x", "seed": -1}, "seed", "greater than or equal to 0"),
    ({"prompt": "x", "bogus": 1}, "bogus", "unknown field 'bogus'"),
    ({"prompt": "x" * 1001}, "prompt", "at most 1000 characters"),
]


@pytest.mark.parametrize("body,param,words", BAD, ids=[f"{i}-{b[1]}" for i, b in enumerate(BAD)])
def test_bad_requests_are_422_naming_the_field(make_client, body, param, words):
    r = make_client().post("/v1/images/generations", json=body)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["param"] == param and words in err["message"] and "\n" not in err["message"]
    assert err["type"] == "invalid_request_error"


def test_malformed_and_oversize_bodies(make_client):
    c = make_client(max_body_bytes=1000)
    r = c.post("/v1/images/generations", content=b"{bad", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["message"] == "the request body is not valid JSON"
    r = c.post("/v1/images/generations", content=b"[1, 2]", headers={"content-type": "application/json"})
    assert r.status_code == 422
    r = c.post("/v1/images/generations", content=b'{"prompt": "a", "guidance": NaN}',
               headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["param"] == "guidance"
    assert c.post("/v1/images/generations", content=b"x" * 5000,
                  headers={"content-type": "application/json"}).status_code == 413


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.sampled_from(["prompt", "n", "steps", "guidance", "sampler", "size", "seed", "spacing",
                                        "percentile", "aug_level", "threshold", "negative_prompt"]),
                       st.one_of(st.none(), st.booleans(), st.integers(-5, 10**20), st.floats(allow_nan=False, allow_infinity=False),
                                 st.text(max_size=5), st.lists(st.integers(-1, 3), max_size=3)), max_size=5))
def test_any_json_body_gets_200_or_a_clean_4xx(pipe, body):
    from fastapi.testclient import TestClient

    from openimagen.serve.app import create_app
    from openimagen.serve.config import ServeConfig

    global _HYPO_CLIENT
    if "_HYPO_CLIENT" not in globals():
        _HYPO_CLIENT = TestClient(create_app(pipe, ServeConfig.build(batch_wait_ms=0.0, max_steps=12)))
        _HYPO_CLIENT.__enter__()
    r = _HYPO_CLIENT.post("/v1/images/generations", json=body)
    assert r.status_code in (200, 400, 422), r.text
    if r.status_code != 200:
        assert "\n" not in r.json()["error"]["message"]


def test_model_must_be_the_loaded_one(make_client):
    c = make_client(model_name="tiny")
    assert c.post("/v1/images/generations", json={"prompt": "a", "model": "tiny", **FAST}).status_code == 200
    r = c.post("/v1/images/generations", json={"prompt": "a", "model": "dall-e-3"})
    assert r.status_code == 422 and "'tiny'" in r.json()["error"]["message"]


def test_prompt_policy_refuses_with_400_and_can_be_off(make_client, tmp_path):
    deny = tmp_path / "deny.txt"
    deny.write_text("purple elephant\n")
    from openimagen.safety import PromptPolicy

    c = make_client(policy=PromptPolicy.from_file(deny))
    r = c.post("/v1/images/generations", json={"prompt": "A PURPLE-Elephant", **FAST})
    assert r.status_code == 400 and r.json()["error"]["code"] == "prompt_refused"
    assert "purple elephant" in r.json()["error"]["message"]
    assert make_client(policy=None).post("/v1/images/generations",
                                         json={"prompt": "purple elephant", **FAST}).status_code == 200


def test_api_keys_guard_every_route_but_healthz_and_the_page(make_client, tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_text(f"# team keys\nsecret-one\nsha256:{digest('secret-two')}\n")
    c = make_client(api_keys=ApiKeys.from_file(keys))
    assert c.get("/healthz").status_code == 200
    assert c.get("/").status_code == 200 and c.get("/static/app.js").status_code == 200
    for method, path in [("post", "/v1/images/generations"), ("get", "/v1/models"), ("get", "/metrics"),
                         ("get", "/readyz"), ("get", "/v1/images/abc.png"),
                         ("post", "/v1/images/generations/stream")]:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "secret-one"}):
            r = getattr(c, method)(path, headers=headers, **({"json": {"prompt": "a"}} if method == "post" else {}))
            assert r.status_code == 401, (path, headers, r.status_code)
            assert r.headers["www-authenticate"] == "Bearer"
            assert "secret" not in r.text
    for key in ("secret-one", "secret-two"):
        r = c.post("/v1/images/generations", json={"prompt": "a", **FAST}, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200


def test_key_file_errors_are_one_line(tmp_path):
    from openimagen.errors import ConfigError

    f = tmp_path / "keys.txt"
    f.write_text("sha256:abc\n")
    with pytest.raises(ConfigError, match="line 1: a sha256: line needs 64 hex digits"):
        ApiKeys.from_file(f)
    f.write_text("# nothing\n\n")
    with pytest.raises(ConfigError, match="has no keys"):
        ApiKeys.from_file(f)


def test_rate_limit_per_key_gives_429_with_retry_after(make_client, tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_text("k1\nk2\n")
    c = make_client(api_keys=ApiKeys.from_file(keys), rate_limit=2)
    h1, h2 = {"Authorization": "Bearer k1"}, {"Authorization": "Bearer k2"}
    body = {"prompt": "a", "size": "16x16", **FAST}
    assert [c.post("/v1/images/generations", json=body, headers=h1).status_code for _ in range(2)] == [200, 200]
    r = c.post("/v1/images/generations", json=body, headers=h1)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert r.json()["error"]["code"] == "rate_limit_exceeded"
    assert c.post("/v1/images/generations", json=body, headers=h2).status_code == 200   # another key: own budget


def test_full_queue_gives_429_and_never_hangs(make_client, pipe, monkeypatch):
    gate, entered = threading.Event(), threading.Event()
    real = pipe.generate_batch

    def blocked(requests, callback=None):
        entered.set()
        gate.wait(30)
        return real(requests, callback)

    monkeypatch.setattr(pipe, "generate_batch", blocked)
    c = make_client(max_queue=1, max_batch=1)
    body = {"prompt": "a", "size": "16x16", **FAST}
    results = []
    first = threading.Thread(target=lambda: results.append(c.post("/v1/images/generations", json=body).status_code))
    first.start()
    assert entered.wait(10)                                     # the worker holds request 1
    second = threading.Thread(target=lambda: results.append(c.post("/v1/images/generations", json=body).status_code))
    second.start()
    svc = c.app.state.service
    for _ in range(200):
        if svc.batcher.depth == 1:
            break
        threading.Event().wait(0.01)
    assert svc.batcher.depth == 1                               # request 2 waits in the queue
    r = c.post("/v1/images/generations", json=body)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert c.get("/readyz").status_code == 503
    gate.set()
    first.join(30)
    second.join(30)
    assert sorted(results) == [200, 200]
    assert 'openimagen_rejections_total{reason="queue_full"} 1.0' in c.get("/metrics").text


def test_timeout_gives_504_and_drops_the_work(make_client, pipe, monkeypatch):
    gate = threading.Event()
    real = pipe.generate_batch
    monkeypatch.setattr(pipe, "generate_batch", lambda rs, callback=None: (gate.wait(30), real(rs, callback))[1])
    c = make_client(timeout=0.3, max_batch=1)
    r = c.post("/v1/images/generations", json={"prompt": "a", **FAST})
    assert r.status_code == 504 and r.json()["error"]["code"] == "timeout"
    gate.set()


def test_models_health_and_metrics(make_client, pipe):
    c = make_client()
    m = c.get("/v1/models").json()["data"][0]
    assert m["model_hash"] == pipe.model_hash and m["sizes"] == ["16x16", "32x32"]
    assert [s["resolution"] for s in m["stages"]] == [16, 32] and m["stages"][0]["sampling"]["steps"] >= 1
    assert c.get("/healthz").json() == {"status": "ok"}
    assert c.get("/readyz").json()["status"] == "ready"
    c.post("/v1/images/generations", json={"prompt": "a", "n": 3, **FAST})
    c.post("/v1/images/generations", json={"prompt": "a", "n": 0})
    text = c.get("/metrics").text
    for line in ('openimagen_requests_total{route="/v1/images/generations",status="200"} 1.0',
                 'openimagen_requests_total{route="/v1/images/generations",status="422"} 1.0',
                 "openimagen_images_generated_total 3.0", 'openimagen_batch_size_bucket{le="4.0"} 1.0',
                 'openimagen_rejections_total{reason="invalid"} 1.0', "openimagen_queue_depth 0.0",
                 "openimagen_generation_seconds_count 1.0", "openimagen_queue_seconds_count 1.0"):
        assert line in text, line


def _events(response) -> list:
    out, event = [], None
    for line in response.iter_lines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            out.append((event, json.loads(line[5:])))
    return out


def test_stream_reports_every_step_previews_and_the_images(make_client):
    c = make_client()
    with c.stream("POST", "/v1/images/generations/stream",
                  json={"prompt": "a", "n": 2, "steps": [3, 2], "preview_every": 2}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = _events(r)
    kinds = [e for e, _ in events]
    assert kinds[0] == "queued" and kinds[-1] == "done" and kinds.count("image") == 2
    progress = [d for e, d in events if e == "progress"]
    assert [(d["stage"], d["step"]) for d in progress] == [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2)]
    previews = [(d["stage"], d["step"]) for d in progress if "preview" in d]
    assert previews == [(0, 2), (0, 3), (1, 2)]
    sizes = {Image.open(io.BytesIO(base64.b64decode(p))).size for d in progress for p in d.get("preview", [])}
    assert sizes == {(16, 16), (32, 32)}
    assert [d["seed"] for e, d in events if e == "image"] == [0, 1]


def test_stream_refusals_are_plain_http_errors(make_client):
    c = make_client()
    assert c.post("/v1/images/generations/stream", json={"prompt": "a", "steps": 0}).status_code == 422
    assert c.post("/v1/images/generations/stream", json={"prompt": "a", "preview_every": -1}).status_code == 422


def test_openapi_describes_the_routes(make_client):
    schema = make_client().get("/openapi.json").json()
    assert {"/v1/images/generations", "/v1/images/generations/stream", "/v1/models", "/healthz", "/readyz",
            "/metrics", "/v1/images/{image_id}.png"} <= set(schema["paths"])
    props = schema["components"]["schemas"]["ImagesRequest"]["properties"]
    assert {"prompt", "n", "size", "response_format", "seed", "steps", "guidance", "sampler",
            "negative_prompt"} <= set(props)
    assert props["n"]["maximum"] == 8 and props["size"]["anyOf"][0]["enum"] == ["16x16", "32x32"]
    samplers = [s for s in props["sampler"]["anyOf"] if s.get("type") == "string"][0]
    assert samplers["enum"] == ["ddim", "ddpm", "dpmpp_2m", "euler", "heun"]
