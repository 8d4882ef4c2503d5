"""The service as a real process on loopback: serve + curl-style use, SIGTERM drains, a client that leaves has
its work cancelled, and no traceback ever reaches a client."""
import base64
import io
import signal
import threading
import time

import httpx
import pytest
from PIL import Image

from tests.pipeline.fixtures import tiny_pipeline
from tests.serve.live import LiveServer


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_pipeline().save_pretrained(tmp_path_factory.mktemp("tiny_model"))


def _metric(url: str, name: str) -> float:
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_serve_then_a_plain_http_client_gets_a_png(model_dir):
    with LiveServer(["--model", str(model_dir)]) as srv:
        r = httpx.post(srv.url + "/v1/images/generations", json={"prompt": "a red circle", "steps": 2}, timeout=60)
        assert r.status_code == 200
        im = Image.open(io.BytesIO(base64.b64decode(r.json()["data"][0]["b64_json"])))
        assert im.format == "PNG" and im.size == (32, 32)
        page = httpx.get(srv.url + "/")
        assert page.status_code == 200 and "<title>openimagen</title>" in page.text
        bad = httpx.post(srv.url + "/v1/images/generations", content=b'{"prompt": ', timeout=10,
                         headers={"content-type": "application/json"})
        assert bad.status_code == 422 and "Traceback" not in bad.text


def test_a_client_that_leaves_has_its_work_cancelled(model_dir):
    with LiveServer(["--model", str(model_dir), "--max-batch", "1"]) as srv:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(srv.url + "/v1/images/generations", json={"prompt": "a", "steps": 250}, timeout=1.0)
        deadline = time.monotonic() + 60
        while _metric(srv.url, "openimagen_rejections_total") < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _metric(srv.url, 'openimagen_rejections_total{reason="cancelled"}') == 1
        ok = httpx.post(srv.url + "/v1/images/generations", json={"prompt": "a", "steps": 2}, timeout=60)
        assert ok.status_code == 200
        assert _metric(srv.url, "openimagen_images_generated_total") == 1     # the abandoned image was never made


def test_sigterm_finishes_running_requests_then_exits(model_dir):
    srv = LiveServer(["--model", str(model_dir)])
    with srv:
        result = {}

        def slow():
            result["r"] = httpx.post(srv.url + "/v1/images/generations", json={"prompt": "a", "steps": 150},
                                     timeout=120)

        t = threading.Thread(target=slow)
        t.start()
        deadline = time.monotonic() + 30
        while _metric(srv.url, "openimagen_queue_seconds_count") < 1 and time.monotonic() < deadline:
            time.sleep(0.05)                            # the request is running in the worker
        srv.proc.send_signal(signal.SIGTERM)
        t.join(120)
        assert result["r"].status_code == 200          # finished, not dropped
        assert srv.proc.wait(60) in (0, -signal.SIGTERM)   # uvicorn re-raises the signal after a clean shutdown
        out = srv.output()
        assert "Traceback" not in out and "Application shutdown complete" in out
        assert "Finished server process" in out
