"""Issue 15, point 4: structured channel pruning of a trained stage (openimagen.accel.prune).

Closed forms: keeping every channel is the identity; removing groups the next convolution does not read is exact;
the kept groups are the important ones. Contract: the pruned stage is a stage of a config (saved, loaded, trained
from), narrower where it should be and nowhere else. CLI: one-line errors."""
import subprocess
import sys

import pytest
import torch

from openimagen.accel.prune import channel_importance, kept_channels, prune_model, prune_stage, pruned_widths
from openimagen.errors import InvalidArgumentError
from openimagen.nn import count_parameters
from openimagen.nn.blocks import ResBlock, hidden_width
from openimagen.pipeline import Pipeline
from tests.pipeline.fixtures import tiny_pipeline


def _inputs(stage, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    cfg = stage.config.unet
    n = cfg.image_size
    x = torch.randn(batch, cfg.in_channels, n, n, generator=g)
    text = torch.randn(batch, 5, cfg.text_dim, generator=g)
    kw = dict(c_noise=torch.rand(batch, generator=g), text=text, text_mask=torch.ones(batch, 5, dtype=torch.bool))
    if cfg.lowres_cond:
        kw.update(lowres=torch.randn(batch, cfg.in_channels, n // 2, n // 2, generator=g),
                  c_aug=torch.rand(batch, generator=g))
    return x, kw


def _forward(stage, seed=0):
    x, kw = _inputs(stage, seed=seed)
    with torch.no_grad():
        return stage.denoiser.net(x, **kw)


@pytest.mark.parametrize("index", [0, 1])
def test_fraction_one_is_the_identity(index):
    stage = tiny_pipeline().stages[index]
    same = prune_stage(stage, 1.0)
    assert torch.equal(_forward(same), _forward(stage))


@pytest.mark.parametrize("index", [0, 1])
def test_removing_groups_the_next_conv_ignores_is_exact(index):
    """Zero conv2's input weights of the second half of every block's hidden groups: those groups have importance 0,
    pruning to half removes exactly them, and (groups of 4 before and after) the output is unchanged."""
    stage = tiny_pipeline().stages[index]
    dropped = {}
    for name, block in stage.denoiser.net.named_modules():
        if isinstance(block, ResBlock):
            hidden = block.norm2.num_channels
            with torch.no_grad():
                block.conv2.weight[:, hidden // 2:] = 0
            dropped[name] = hidden // 2
            assert torch.all(channel_importance(block)[hidden // 2:] == 0)
            assert torch.equal(kept_channels(block, hidden // 2), torch.arange(hidden // 2))
    pruned = prune_stage(stage, 0.5)
    assert [w for _, w, _ in pruned_widths(pruned)] == list(dropped.values())
    torch.testing.assert_close(_forward(pruned), _forward(stage), rtol=1e-5, atol=1e-5)
    assert count_parameters(pruned.denoiser.net) < count_parameters(stage.denoiser.net)


def test_kept_groups_are_the_most_important_and_other_widths_stay():
    stage = tiny_pipeline().stages[0]
    block = next(m for m in stage.denoiser.net.modules() if isinstance(m, ResBlock))
    with torch.no_grad():                       # make group 1 (channels 4..7) by far the most important
        block.conv2.weight[:, 4:8] *= 100
    keep = kept_channels(block, 4)
    assert keep.tolist() == [4, 5, 6, 7]
    with pytest.raises(InvalidArgumentError, match="groups of 4"):
        kept_channels(block, 6)
    pruned = prune_stage(stage, 0.5)
    for (_, h_old, out_old), (_, h_new, out_new) in zip(pruned_widths(stage), pruned_widths(pruned)):
        assert out_new == out_old and h_new == hidden_width(out_old, 0.5) < h_old
    assert pruned.config.unet.res_hidden_fraction == 0.5
    # every weight outside the ResBlocks' hidden channels is copied unchanged
    old, new = stage.denoiser.net.state_dict(), pruned.denoiser.net.state_dict()
    for key in old:
        if ".res." not in key:
            assert torch.equal(old[key], new[key]), key


def test_bad_fractions_are_refused():
    stage = tiny_pipeline().stages[0]
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(InvalidArgumentError, match=r"\(0, 1\]"):
            prune_stage(stage, bad)
    half = prune_stage(stage, 0.5)
    with pytest.raises(InvalidArgumentError, match="widen"):
        prune_stage(half, 0.75)


def test_pruned_model_saves_loads_and_generates(tmp_path):
    src = tiny_pipeline().save_pretrained(tmp_path / "model")
    (pruned,) = prune_model(src, tmp_path / "pruned", 0.5, ["stage0_base"])
    pipe = Pipeline.from_pretrained(tmp_path / "pruned", watermark=None)
    assert pipe.stages[0].config.unet.res_hidden_fraction == 0.5
    assert pipe.stages[1].config.unet.res_hidden_fraction == 1.0
    torch.testing.assert_close(_forward(pipe.stages[0]), _forward(pruned))
    out = pipe(["a red circle"], steps=3, seed=0)
    assert torch.isfinite(out.stages[-1]).all()
    assert "channel-pruned to 0.5" in pipe.config.description


def test_cli_prunes_and_speaks_one_line_on_bad_input(tmp_path):
    src = tiny_pipeline().save_pretrained(tmp_path / "model")
    cli = [sys.executable, "-m", "openimagen.cli.main", "prune", str(src)]
    ok = subprocess.run(cli + ["-o", str(tmp_path / "p"), "--fraction", "0.5"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "parameters" in ok.stdout and (tmp_path / "p" / "stage1_sr" / "model.safetensors").is_file()
    for extra, message in [(["--fraction", "2"], "must be in (0, 1]"),
                           (["--fraction", "0.5", "--stage", "nope"], "unknown stage 'nope'"),
                           (["--fraction", "0.5"], "exists and is not empty")]:
        bad = subprocess.run(cli + ["-o", str(tmp_path / "p")] + extra, capture_output=True, text=True)
        assert bad.returncode != 0 and message in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
