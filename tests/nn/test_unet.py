import pytest
import torch

from openimagen.errors import InvalidArgumentError
from openimagen.nn import EfficientUNet, get_preset

from .helpers import build, make_inputs, select, tiny


@pytest.mark.parametrize("name", ["tiny", "tiny-sr", "small-cpu", "small-cpu-sr", "small-cpu-separable"])
def test_output_shape_small_presets(name):
    cfg = get_preset(name)
    kw = make_inputs(cfg, batch=2)
    with torch.no_grad():
        out = EfficientUNet(cfg)(**kw)
    assert out.shape == (2, cfg.out_channels, cfg.image_size, cfg.image_size)


@pytest.mark.parametrize("name", ["imagen-base-64", "imagen-sr-256"])
def test_output_shape_large_presets_on_meta(name):
    cfg = get_preset(name)
    with torch.device("meta"):
        model = EfficientUNet(cfg)
        B, s = 2, cfg.image_size  # meta tensors: shapes only, no memory
        kw = dict(x=torch.empty(B, 3, s, s), c_noise=torch.empty(B), text=torch.empty(B, 7, cfg.text_dim),
                  text_mask=torch.empty(B, 7, dtype=torch.bool))
        if cfg.lowres_cond:
            kw.update(lowres=torch.empty(B, 3, s // 4, s // 4), c_aug=torch.empty(B))
        out = model(**kw)
    assert out.is_meta and out.shape == (B, cfg.out_channels, s, s)


@pytest.mark.parametrize("name", ["tiny", "tiny-sr"])
def test_untrained_output_is_exactly_zero(name):
    cfg = tiny(name)
    out = build(cfg, nonzero=False)(**make_inputs(cfg))
    assert torch.equal(out, torch.zeros_like(out))


@pytest.mark.parametrize("name, pooling", [("tiny", "attention"), ("tiny", "mean"), ("tiny-sr", "attention")])
def test_padded_tokens_do_not_change_output(name, pooling):
    cfg = tiny(name, text_pooling=pooling, self_attn_levels=(1,))
    model = build(cfg)
    kw = make_inputs(cfg, lengths=[8, 3, 5])
    with torch.no_grad():
        ref = model(**kw)
        text = kw["text"].clone()
        text[~kw["text_mask"]] = torch.randn(int((~kw["text_mask"]).sum()), cfg.text_dim) * 100
        out = model(**kw | {"text": text})
    assert ref.abs().max() > 0
    assert torch.equal(out, ref)


def test_text_drop_uses_only_the_null_text():
    cfg = tiny()
    model = build(cfg)
    kw = make_inputs(cfg, lengths=[8, 3, 5])
    drop = torch.tensor([True, False, True])
    other_text = torch.randn_like(kw["text"])
    other_mask = torch.ones_like(kw["text_mask"])
    with torch.no_grad():
        ref = model(**kw, text_drop=drop)
        out = model(**kw | {"text": other_text, "text_mask": other_mask}, text_drop=drop)
    assert torch.equal(out[drop], ref[drop])          # dropped: independent of text and mask
    assert not torch.allclose(out[~drop], ref[~drop], atol=1e-4)  # kept: depends on its text


def test_empty_prompt_is_treated_as_dropped():
    cfg = tiny()
    model = build(cfg)
    kw = make_inputs(cfg, lengths=[8, 3, 5])
    empty = kw | {"text_mask": torch.zeros_like(kw["text_mask"])}
    with torch.no_grad():
        out = model(**empty)
        dropped = model(**kw, text_drop=torch.ones(3, dtype=torch.bool))
    assert torch.isfinite(out).all()
    assert torch.equal(out, dropped)


@pytest.mark.parametrize("name", ["tiny", "tiny-sr"])
def test_batch_consistency(name):
    cfg = tiny(name, self_attn_levels=(1,))
    model = build(cfg)
    kw = make_inputs(cfg, lengths=[8, 3, 5]) | {"text_drop": torch.tensor([False, True, False])}
    with torch.no_grad():
        full = model(**kw)
        for i in range(3):
            alone = model(**select(kw, slice(i, i + 1)))
            torch.testing.assert_close(alone, full[i:i + 1], atol=1e-5, rtol=1e-5)


def test_noise_level_changes_output():
    cfg = tiny()
    model = build(cfg)
    kw = make_inputs(cfg)
    with torch.no_grad():
        a = model(**kw)
        b = model(**kw | {"c_noise": kw["c_noise"] + 0.5})
    assert not torch.allclose(a, b, atol=1e-4)


def test_augmentation_level_and_lowres_change_sr_output():
    cfg = tiny("tiny-sr")
    model = build(cfg)
    kw = make_inputs(cfg)
    with torch.no_grad():
        a = model(**kw)
        b = model(**kw | {"c_aug": kw["c_aug"] + 0.5})
        c = model(**kw | {"lowres": kw["lowres"].flip(-1)})
    assert not torch.allclose(a, b, atol=1e-4)
    assert not torch.allclose(a, c, atol=1e-4)


def test_lowres_at_full_size_is_accepted():
    cfg = tiny("tiny-sr")
    kw = make_inputs(cfg)
    kw["lowres"] = torch.nn.functional.interpolate(kw["lowres"], scale_factor=2, mode="bilinear")
    with torch.no_grad():
        assert build(cfg)(**kw).shape == kw["x"].shape


def test_other_sizes_and_scalar_c_noise():
    cfg = tiny()
    model = build(cfg)
    kw = make_inputs(cfg, size=24) | {"c_noise": torch.tensor(0.3)}
    with torch.no_grad():
        assert model(**kw).shape == kw["x"].shape


def test_backward_gives_finite_gradients():
    cfg = tiny(self_attn_levels=(1,), dropout=0.1)
    model = build(cfg).train()
    kw = make_inputs(cfg, lengths=[8, 3, 5]) | {"text_drop": torch.tensor([False, True, False])}
    model(**kw).square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.text.null.grad.abs().sum() > 0


def test_input_errors():
    base, sr = build(tiny()), build(tiny("tiny-sr"))
    kw, kw_sr = make_inputs(base.config), make_inputs(sr.config)
    with pytest.raises(InvalidArgumentError, match="multiples of 2"):
        base(**make_inputs(base.config, size=15))
    with pytest.raises(InvalidArgumentError, match="lowres"):
        sr(**{k: v for k, v in kw_sr.items() if k != "lowres"})
    with pytest.raises(InvalidArgumentError, match="c_aug"):
        sr(**{k: v for k, v in kw_sr.items() if k != "c_aug"})
    with pytest.raises(InvalidArgumentError, match="lowres"):
        base(**kw, lowres=kw_sr["lowres"])
    with pytest.raises(InvalidArgumentError, match="text"):
        base(**kw | {"text": torch.randn(3, 8, 384)})
    with pytest.raises(InvalidArgumentError, match="text_mask"):
        base(**kw | {"text_mask": kw["text_mask"][:, :4]})
    with pytest.raises(InvalidArgumentError, match="x must be"):
        base(**kw | {"x": torch.randn(3, 4, 16, 16)})


def test_fullgraph_capture_matches_eager():
    """Dynamo traces the whole SR forward (every branch, self-attention and text drop) without a graph break;
    aot_eager needs no C++ build. The real inductor compile is tests/accel/test_compile.py's."""
    cfg = tiny("tiny-sr", self_attn_levels=(1,))
    model = build(cfg)
    kw = make_inputs(cfg, lengths=[8, 3, 5]) | {"text_drop": torch.tensor([False, True, False])}
    torch._dynamo.reset()
    with torch.no_grad():
        out = torch.compile(model, fullgraph=True, backend="aot_eager")(**kw)
        ref = model(**kw)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)


def test_separable_convs_are_depthwise_then_pointwise_and_cheaper():
    """Issue 15, point 4: every 3x3 conv of the blocks becomes depthwise (groups = C_in) + 1x1; stem and output
    conv stay dense; the separable preset has under 40% of the parameters; the flag stays out of older configs."""
    std, sep = get_preset("small-cpu"), get_preset("small-cpu-separable")
    assert "separable_convs" not in std.to_dict() and sep.to_dict()["separable_convs"] is True
    a, b = EfficientUNet(std), EfficientUNet(sep)
    block = b.down[1].res[0].conv1
    assert isinstance(block, torch.nn.Sequential) and block[0].groups == block[0].in_channels == 64
    assert block[0].kernel_size == (3, 3) and block[1].kernel_size == (1, 1)
    assert b.down[1].down[0].stride == (2, 2) and b.up[1].up[0].groups > 1
    assert isinstance(b.stem, torch.nn.Conv2d) and b.stem.groups == 1 and b.out_conv.groups == 1
    n = lambda m: sum(p.numel() for p in m.parameters())
    assert n(b) < 0.4 * n(a)
    kw = make_inputs(sep, batch=2)
    b.out_conv.weight.data.normal_()
    out = b(**kw)
    out.square().mean().backward()
    assert torch.isfinite(out).all() and all(p.grad is not None for p in b.down[1].res[0].conv1.parameters())
