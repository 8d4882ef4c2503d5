"""End to end: a tiny two-stage cascade trained for about a minute on CPU on three prompt/image pairs must,
for each prompt, generate an image measurably closer to its own target than to the others, at the base stage
and after super-resolution. This is the proof that text conditioning works through both stages."""
import numpy as np
import pytest
import torch
from PIL import Image

from openimagen.cli.main import main
from openimagen.pipeline import Pipeline
from openimagen.train.overfit import PROMPTS, render, train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("overfit") / "model"
    train(out, log=lambda *a: None)
    return out


def distances(images: torch.Tensor, size: int) -> torch.Tensor:
    targets = torch.stack([render(p, size) for p in PROMPTS])
    return ((images[:, None] - targets[None]) ** 2).mean((2, 3, 4))             # (generated, target)


def test_each_prompt_generates_its_own_image_through_both_stages(model_dir):
    pipe = Pipeline.from_pretrained(model_dir)
    out = pipe(list(PROMPTS), num_images_per_prompt=2, seed=0)
    for stage, size in ((0, 16), (1, 32)):
        d = distances(out.stages[stage], size)                                  # (6, 3)
        own = d[torch.arange(6), torch.arange(6) // 2]
        d_other = d.clone()
        d_other[torch.arange(6), torch.arange(6) // 2] = float("inf")
        margin = d_other.min(1).values - own
        assert (margin > 0.2).all(), f"stage {stage}: distances\n{d}"


def test_cli_generate_and_info_on_trained_model(model_dir, tmp_path, capsys):
    assert main(["generate", "a blue circle", "--model", str(model_dir), "-o", str(tmp_path / "c.png"),
                 "--no-progress"]) == 0
    img = torch.from_numpy(np.array(Image.open(tmp_path / "c.png"))).float()              # (32, 32, 3)
    r, g, b = img.mean((0, 1))
    assert b > r + 20, "a blue circle should be mostly blue"
    assert main(["info", str(model_dir)]) == 0
    assert "super-resolution 16->32px" in capsys.readouterr().out
