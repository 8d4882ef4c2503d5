"""``POST /v1/images/edits`` (issue 13, point 8): multipart uploads, each edit mode, OpenAI's transparent-mask
convention, the same records and limits as generation, one-line errors."""
import base64
import io
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from openimagen.serve.app import create_app
from openimagen.serve.config import ServeConfig
from tests.pipeline.fixtures import tiny_pipeline


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(tiny_pipeline(), ServeConfig.build(watermark=False, batch_wait_ms=1.0))) as c:
        yield c


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def photo(w=45, h=27, seed=0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def post(client, image, mask=None, **form):
    files = {"image": ("in.png", png(image), "image/png")}
    if mask is not None:
        files["mask"] = ("mask.png", png(mask), "image/png")
    return client.post("/v1/images/edits", files=files, data={"steps": "2", **{k: str(v) for k, v in form.items()}})


def decoded(item) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(item["b64_json"])))


def test_inpainting_an_upload_keeps_its_size_and_unmasked_pixels(client):
    image = photo()
    mask = Image.new("L", image.size, 0)
    mask.paste(255, (5, 5, 20, 15))
    r = post(client, image, mask, prompt="a red circle", seed=4)
    assert r.status_code == 200, r.text
    body = r.json()
    out = decoded(body["data"][0])
    assert out.size == image.size and body["openimagen"]["edit"]["mode"] == "inpaint"
    keep = np.asarray(mask) == 0
    assert np.array_equal(np.asarray(out.convert("RGB"))[keep], np.asarray(image)[keep])
    record = json.loads(out.text["openimagen"])
    assert record["edit"]["mode"] == "inpaint" and record["request"]["seed"] == 4


def test_an_openai_style_transparent_mask_marks_the_area_to_edit(client):
    image = photo(32, 32, seed=1)
    mask = Image.new("RGBA", (32, 32), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 16, 32))                          # left half transparent: edit it
    out = decoded(post(client, image, mask, prompt="x").json()["data"][0])
    got, orig = np.asarray(out.convert("RGB")), np.asarray(image)
    assert np.array_equal(got[:, 16:], orig[:, 16:]) and not np.array_equal(got[:, :16], orig[:, :16])


def test_inpainting_with_resampling_jumps(client):
    image, mask = photo(32, 32, seed=3), Image.new("L", (32, 32), 0)
    mask.paste(255, (8, 8, 24, 24))
    r = post(client, image, mask, prompt="x", resample_jumps=2, jump_length=1)
    assert r.status_code == 200, r.text
    got = np.asarray(decoded(r.json()["data"][0]).convert("RGB"))
    keep = np.ones((32, 32), bool)
    keep[8:24, 8:24] = False
    assert np.array_equal(got[keep], np.asarray(image)[keep]) and r.json()["openimagen"]["edit"]["resample_jumps"] == 2


@pytest.mark.parametrize("mode, form, size", [("img2img", {"strength": 0.0, "fit": "center_crop"}, (32, 32)),
                                              ("upscale", {}, (32, 32)), ("outpaint", {"border": 4}, (32, 32)),
                                              ("restore", {"kind": "denoise"}, (32, 32)),
                                              ("restore", {"kind": "scratches"}, (32, 32))])
def test_each_mode(client, mode, form, size):
    r = post(client, photo(32, 32, seed=2), mode=mode, n=2, **form)
    assert r.status_code == 200, r.text
    items = r.json()["data"]
    assert len(items) == 2 and all(decoded(i).size == size for i in items)
    if mode == "img2img":                                              # strength 0: the input back
        assert np.array_equal(np.asarray(decoded(items[0]).convert("RGB")), np.asarray(photo(32, 32, seed=2)))


@pytest.mark.parametrize("files, form, status, words", [
    ({"image": ("x.png", b"not an image", "image/png")}, {}, 422, "image is not a readable image"),
    ({}, {}, 422, "image"),
    ({"image": ("x.png", None, "image/png")}, {"mode": "inpaint"}, 422, "mode inpaint needs a mask file"),
    ({"image": ("x.png", None, "image/png")}, {"strength": "2"}, 422, "strength"),
    ({"image": ("x.png", None, "image/png")}, {"mode": "warp"}, 422, "mode"),
    ({"image": ("x.png", None, "image/png")}, {"mode": "restore"}, 422, "mode restore needs kind"),
    ({"image": ("x.png", None, "image/png")}, {"mode": "restore", "kind": "sharpen"}, 422, "kind"),
    ({"image": ("x.png", None, "image/png"), "mask": ("m.png", None, "image/png")}, {"resample_jumps": "50"}, 422,
     "resample_jumps"),
    ({"image": ("x.png", None, "image/png"), "mask": ("m.png", None, "image/png")}, {"mode": "restore",
                                                                                    "kind": "denoise"}, 422,
     "mask is only used by kind scratches"),
    ({"image": ("x.png", None, "image/png")}, {"steps": "100000"}, 422, "steps"),
    ({"image": ("x.png", None, "image/png"), "mask": ("m.png", "SQUARE", "image/png")}, {}, 422,
     "the mask is 10x10 but the image is 45x27"),
    ({"image": ("x.png", None, "image/png")}, {"prompt": "a nude child"}, 400, "nude child"),
])
def test_bad_uploads_are_one_line_errors(client, files, form, status, words):
    files = {k: (n, png(photo()) if d is None else png(Image.new("L", (10, 10))) if d == "SQUARE" else d, t)
             for k, (n, d, t) in files.items()}
    r = client.post("/v1/images/edits", files=files or None, data={"steps": "2", **form})
    assert r.status_code == status, r.text
    message = r.json()["error"]["message"]
    assert words in message and "\n" not in message
