"""``openimagen serve --ray``: the same app on a one-node local Ray Serve instance (slow: Ray takes ~40 s to start)."""
import base64
import io
import signal

import httpx
import pytest
from PIL import Image

from tests.pipeline.fixtures import tiny_pipeline
from tests.serve.live import LiveServer

pytest.importorskip("ray.serve", reason="Ray Serve is in the dev extras: run `make setup`")


@pytest.mark.slow
def test_ray_serve_deployment_serves_the_same_api(tmp_path):
    model = tiny_pipeline().save_pretrained(tmp_path / "model")
    with LiveServer(["--ray", "--replicas", "2", "--model", str(model), "--max-steps", "12"],
                    startup_timeout=300) as srv:
        r = httpx.post(srv.url + "/v1/images/generations", json={"prompt": "a red circle", "n": 2, "steps": 2},
                       timeout=120)
        assert r.status_code == 200, r.text
        images = [Image.open(io.BytesIO(base64.b64decode(d["b64_json"]))) for d in r.json()["data"]]
        assert [im.size for im in images] == [(32, 32), (32, 32)]
        from openimagen.pipeline import Pipeline

        assert r.json()["openimagen"]["model_hash"] == Pipeline.from_pretrained(model).model_hash
        assert httpx.post(srv.url + "/v1/images/generations", json={"prompt": "a", "n": 0}).status_code == 422
        assert httpx.get(srv.url + "/v1/models").json()["data"][0]["sizes"] == ["16x16", "32x32"]
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(120) == 0
        assert "stopping Ray Serve" in srv.output()
