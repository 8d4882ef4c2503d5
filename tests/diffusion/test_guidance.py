"""Classifier-free guidance and Imagen's thresholding, checked on crafted tensors."""
import pytest
import torch

from openimagen.diffusion.cond import Cond
from openimagen.diffusion.guidance import (ClassifierFreeGuidance, Thresholded, dynamic_threshold, guided,
                                           static_threshold)
from openimagen.errors import InvalidArgumentError, UnknownNameError


class CountingDenoiser:
    """x0 = x * 0.5 + text mean, ignoring the text when dropped; records batch sizes."""

    def __init__(self):
        self.null = torch.tensor(-0.7)
        self.batches = []

    def __call__(self, x, sigma, cond):
        self.batches.append(x.shape[0])
        t = cond.text.mean((1, 2))
        t = torch.where(cond.drop_mask(), self.null, t)
        return x * 0.5 + t[:, None, None, None] + sigma.reshape(-1, 1, 1, 1) * 0.1


def setup(b=3):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(b, 3, 4, 4, generator=g)
    cond = Cond(text=torch.randn(b, 5, 8, generator=g), mask=torch.ones(b, 5, dtype=torch.bool))
    return x, torch.full((b,), 0.7), cond


def test_guidance_one_is_conditional_in_one_pass():
    x, s, cond = setup()
    den = CountingDenoiser()
    out = ClassifierFreeGuidance(den, 1.0)(x, s, cond)
    assert torch.equal(out, CountingDenoiser()(x, s, cond))
    assert den.batches == [3]


def test_guidance_zero_is_unconditional():
    x, s, cond = setup()
    uncond = CountingDenoiser()(x, s, cond.with_drop(torch.ones(3, dtype=torch.bool)))
    assert torch.allclose(ClassifierFreeGuidance(CountingDenoiser(), 0.0)(x, s, cond), uncond, atol=1e-6)


@pytest.mark.parametrize("w", [0.5, 3.0, 7.5])
def test_guidance_formula_and_single_batched_pass(w):
    x, s, cond = setup()
    den = CountingDenoiser()
    out = ClassifierFreeGuidance(den, w)(x, s, cond)
    c = CountingDenoiser()(x, s, cond)
    u = CountingDenoiser()(x, s, cond.with_drop(torch.ones(3, dtype=torch.bool)))
    assert torch.allclose(out, u + w * (c - u), atol=1e-5)
    assert den.batches == [6]                                 # cond and uncond in ONE forward pass


def test_negative_guidance_is_rejected():
    with pytest.raises(InvalidArgumentError, match="guidance"):
        ClassifierFreeGuidance(CountingDenoiser(), -1.0)


def test_dynamic_threshold_matches_definition():
    # Sample 0: |x| quantile below 1 -> unchanged. Sample 1: values up to 4 -> clip to s and divide by s.
    a = torch.linspace(-0.9, 0.9, 1000).reshape(1, 1000)
    b = torch.linspace(-4.0, 4.0, 1000).reshape(1, 1000)
    x = torch.cat([a, b])
    out = dynamic_threshold(x, 0.995)
    assert torch.equal(out[0], a[0])
    s = torch.quantile(b.abs(), 0.995)
    assert torch.allclose(out[1], b[0].clamp(-s, s) / s)
    assert out[1].abs().max().item() == pytest.approx(1.0)
    assert (out[1] != b[0]).any()


def test_dynamic_threshold_is_per_sample_and_shape_preserving():
    x = torch.randn(4, 3, 8, 8) * torch.tensor([0.1, 1.0, 3.0, 10.0])[:, None, None, None]
    out = dynamic_threshold(x)
    assert out.shape == x.shape and out.abs().max() <= 1.0 + 1e-6
    assert torch.equal(out[0], x[0])                          # small sample untouched


def test_static_threshold_and_wrapper():
    x, s, cond = setup()
    big = lambda x, s, c: x * 10                              # noqa: E731
    assert torch.equal(Thresholded(big, "static")(x, s, cond), static_threshold(x * 10))
    assert torch.equal(Thresholded(big, "none")(x, s, cond), x * 10)
    assert torch.equal(guided(big, 1.0, "dynamic")(x, s, cond), dynamic_threshold(x * 10))
    with pytest.raises(UnknownNameError, match="dynamic"):
        Thresholded(big, "soft")
