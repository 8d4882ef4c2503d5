"""``openimagen generate --lora PATH[:SCALE]``, and the size promise on the shipped model (rank 4 < 5%)."""
import copy
import json

import pytest
from PIL import Image

from openimagen.cli.main import main
from openimagen.lora import LoraSettings, layers
from openimagen.pipeline import Pipeline
from openimagen.pipeline.io import save_weights
from tests.lora.test_adapters import make_adapter
from tests.pipeline.fixtures import encoder, tiny_pipeline


@pytest.mark.parametrize("stage", [0, 1])
def test_a_rank4_adapter_of_the_shipped_model_is_under_5_percent_of_its_stage(stage, tmp_path):
    pipe = Pipeline.from_pretrained(watermark=None)
    from openimagen.pipeline.pipeline import DEFAULT_MODEL_DIR

    net = copy.deepcopy(pipe.stages[stage].denoiser.net)
    layers.add_adapter(net, "x", LoraSettings(rank=4, alpha=4.0, targets=("attention", "text")))
    save_weights(tmp_path / "a.safetensors", layers.adapter_state(net, "x"))
    stage_bytes = (DEFAULT_MODEL_DIR / pipe.config.stages[stage] / "model.safetensors").stat().st_size
    assert (tmp_path / "a.safetensors").stat().st_size < 0.05 * stage_bytes


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora_cli")
    model = tiny_pipeline().save_pretrained(root / "m")
    pipe = Pipeline.from_pretrained(model, watermark=None, text_encoder=encoder())
    return model, make_adapter(pipe, root / "style", seed=4)


def _run(args, capsys):
    steps = [] if "--from-png" in args else ["--steps", "2"]
    code = main(["generate", *args, *steps, "--no-progress", "--no-watermark"])
    return code, capsys.readouterr()


def test_generate_with_lora_records_it_and_from_png_needs_it_again(setup, tmp_path, capsys):
    model, adapter = setup
    code, _ = _run(["a red circle", "--model", str(model), "-o", str(tmp_path / "plain.png")], capsys)
    assert code == 0
    code, _ = _run(["a red circle", "--model", str(model), "--lora", f"{adapter}:0.5",
                    "-o", str(tmp_path / "lora.png")], capsys)
    assert code == 0
    record = json.loads(Image.open(tmp_path / "lora.png").text["openimagen"])
    assert record["request"]["loras"] == {"style": 0.5} and record["loras"][0]["name"] == "style"
    assert Image.open(tmp_path / "lora.png").tobytes() != Image.open(tmp_path / "plain.png").tobytes()
    code, err = _run(["--from-png", str(tmp_path / "lora.png"), "--model", str(model), "-o",
                      str(tmp_path / "again.png")], capsys)
    assert code == 2 and "made with LoRA adapter 'style'" in err.err and "--lora PATH" in err.err
    code, _ = _run(["--from-png", str(tmp_path / "lora.png"), "--model", str(model), "--lora", str(adapter),
                    "-o", str(tmp_path / "again.png")], capsys)
    assert code == 0
    assert Image.open(tmp_path / "again.png").tobytes() == Image.open(tmp_path / "lora.png").tobytes()


@pytest.mark.parametrize("flag, message", [("missing_dir", "--lora: LoRA adapter .* does not exist"),
                                           ("STYLE:99", "--lora .*:99: the scale should be less than or equal to 10")])
def test_bad_lora_flags_are_one_line_before_the_model_loads(setup, tmp_path, capsys, flag, message):
    import re

    model, adapter = setup
    flag = flag.replace("STYLE", str(adapter)).replace("missing_dir", str(tmp_path / "missing_dir"))
    code, out = _run(["x", "--model", str(model), "--lora", flag, "-o", str(tmp_path / "o.png")], capsys)
    assert code == 2 and re.search(message, out.err) and len(out.err.strip().splitlines()) == 1
    assert not (tmp_path / "o.png").exists()


def test_an_adapter_of_another_model_is_refused_by_the_cli(setup, tmp_path, capsys):
    _, adapter = setup
    other = tiny_pipeline(seed=9).save_pretrained(tmp_path / "other")
    code, out = _run(["x", "--model", str(other), "--lora", str(adapter), "-o", str(tmp_path / "o.png")], capsys)
    assert code == 2 and "trained on other weights than stage 0" in out.err
