"""The web page in a real headless Chromium (Debian's package, driven by Playwright): submit a prompt, watch the
progress, get the images; with API keys, the key entered once is used for every call."""
import shutil

import pytest

from tests.pipeline.fixtures import tiny_pipeline
from tests.serve.live import LiveServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.fail("Debian's chromium is not installed: run `make setup` (it installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_pipeline().save_pretrained(tmp_path_factory.mktemp("tiny_model"))


def _generate(page, prompt: str, n: int):
    page.fill("#prompt", prompt)
    page.fill("#n", str(n))
    page.fill("#steps", "3")
    page.click("#generate")


def test_page_generates_images_of_the_right_size(browser, model_dir):
    with LiveServer(["--model", str(model_dir)]) as srv:
        page = browser.new_page()
        page.goto(srv.url + "/")
        page.wait_for_function("document.querySelector('#model-info').textContent.includes('hash')")
        _generate(page, "a red circle above a blue square", 2)
        page.wait_for_selector("#status:has-text('done')", timeout=60_000)
        images = page.query_selector_all(".card img")
        assert len(images) == 2
        sizes = [page.evaluate("(im) => [im.naturalWidth, im.naturalHeight]", im) for im in images]
        assert sizes == [[32, 32], [32, 32]]
        assert page.get_attribute(".card a", "download").endswith(".png")
        assert "steps" in page.inner_text(".card .settings")
        assert page.evaluate("document.querySelector('#progress').value") == 1


def test_page_with_api_keys_asks_once_and_reports_errors(browser, model_dir, tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_text("page-key\n")
    with LiveServer(["--model", str(model_dir), "--api-keys", str(keys)]) as srv:
        page = browser.new_page()
        page.goto(srv.url + "/")
        page.wait_for_function("document.querySelector('#model-info').textContent.includes('API key')")
        _generate(page, "pizza", 1)
        page.wait_for_selector("#status.error:has-text('401')", timeout=30_000)
        page.fill("#api-key", "page-key")
        _generate(page, "pizza", 1)
        page.wait_for_selector("#status:has-text('done')", timeout=60_000)
        assert len(page.query_selector_all(".card img")) == 1
        page.reload()                                  # the key is kept for the tab's session
        page.wait_for_function("document.querySelector('#model-info').textContent.includes('hash')")


def test_page_offers_the_loaded_adapters_and_uses_the_chosen_one(browser, model_dir, tmp_path):
    """serve --lora: the page lists the adapter; an image made with it differs from the base model's."""
    from openimagen.pipeline import Pipeline
    from tests.lora.test_adapters import make_adapter
    from tests.pipeline.fixtures import encoder

    adapter = make_adapter(Pipeline.from_pretrained(model_dir, text_encoder=encoder()), tmp_path / "ink", seed=1)
    with LiveServer(["--model", str(model_dir), "--lora", str(adapter)]) as srv:
        page = browser.new_page()
        page.goto(srv.url + "/")
        page.wait_for_function("document.querySelector('#model-info').textContent.includes('hash')")
        assert page.is_visible("#adapter") and page.inner_text("#adapter").splitlines()[-1].strip() == "ink"
        sources = []
        for choice in ("", "ink"):
            page.select_option("#adapter", choice)
            _generate(page, "a red circle", 1)
            page.wait_for_selector("#status:has-text('done')", timeout=60_000)
            sources.append(page.get_attribute(".card img", "src"))
            page.evaluate("document.querySelector('#status').textContent = ''")
        assert sources[0] != sources[1] and all(s.startswith("data:image/png;base64,") for s in sources)


def test_page_edits_an_uploaded_image(browser, model_dir, tmp_path):
    """The edit form: upload an image and a mask, inpaint, get a card with the image at the upload's size."""
    from PIL import Image

    Image.new("RGB", (40, 24), (30, 120, 200)).save(tmp_path / "in.png")
    mask = Image.new("L", (40, 24), 0)
    mask.paste(255, (10, 5, 30, 20))
    mask.save(tmp_path / "mask.png")
    with LiveServer(["--model", str(model_dir), "--no-watermark"]) as srv:
        page = browser.new_page()
        page.goto(srv.url + "/")
        page.wait_for_function("document.querySelector('#model-info').textContent.includes('hash')")
        page.click("#edit-box summary")
        page.fill("#prompt", "a red circle")
        page.fill("#n", "1")
        page.fill("#steps", "2")
        page.set_input_files("#edit-image", str(tmp_path / "in.png"))
        page.set_input_files("#edit-mask", str(tmp_path / "mask.png"))
        page.click("#edit")
        page.wait_for_selector("#status:has-text('done: inpaint')", timeout=60_000)
        size = page.evaluate("(im) => [im.naturalWidth, im.naturalHeight]", page.query_selector(".card img"))
        assert size == [40, 24]
