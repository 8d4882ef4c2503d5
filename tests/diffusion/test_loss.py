"""The loss trains each parameterization on its native target; weightings match their definitions."""
import pytest
import torch

from openimagen.diffusion.cond import Cond
from openimagen.diffusion.denoiser import Denoiser
from openimagen.diffusion.loss import diffusion_loss
from openimagen.diffusion.parameterization import ParamConfig
from openimagen.diffusion.schedules import make_schedule
from openimagen.errors import UnknownNameError


class Const(torch.nn.Module):
    """A fake network returning a fixed tensor."""

    def __init__(self, out):
        super().__init__()
        self.out = out

    def forward(self, x, c_noise, text, mask, text_drop=None, lowres=None, c_aug=None):
        return self.out


def case(name, out_fn):
    g = torch.Generator().manual_seed(0)
    x0, n = torch.randn(4, 3, 2, 2, generator=g), torch.randn(4, 3, 2, 2, generator=g)
    s = torch.tensor([0.05, 0.5, 2.0, 10.0])
    cond = Cond(text=torch.zeros(4, 1, 2), mask=torch.ones(4, 1, dtype=torch.bool))
    den = Denoiser(Const(out_fn(x0, n, s[:, None, None, None])), ParamConfig(name))
    return den, x0, n, s, cond


def test_eps_loss_is_zero_at_the_true_noise():
    den, x0, n, s, cond = case("eps", lambda x0, n, s: n)
    loss = diffusion_loss(den, x0, cond, None, make_schedule("cosine"), sigma=s, noise=n)
    assert loss.shape == (4,) and loss.max() < 1e-10


def test_native_eps_loss_is_eps_mse():
    den, x0, n, s, cond = case("eps", lambda x0, n, s: torch.zeros_like(n))
    loss = diffusion_loss(den, x0, cond, None, make_schedule("cosine"), sigma=s, noise=n)
    assert torch.allclose(loss, n.pow(2).flatten(1).mean(1), rtol=1e-4)


def test_v_loss_is_v_mse_and_min_snr_weights_x0_error():
    den, x0, n, s, cond = case("v", lambda x0, n, s: torch.zeros_like(n))
    sched = make_schedule("cosine")
    a, sig = (1 + s ** 2).rsqrt()[:, None, None, None], (s * (1 + s ** 2).rsqrt())[:, None, None, None]
    v = a * n - sig * x0
    native = diffusion_loss(den, x0, cond, None, sched, sigma=s, noise=n)
    assert torch.allclose(native, v.pow(2).flatten(1).mean(1), rtol=1e-4)
    x0_err = (den(x0 + s[:, None, None, None] * n, s, cond) - x0).pow(2).flatten(1).mean(1)
    min_snr = diffusion_loss(den, x0, cond, None, sched, "min_snr", 5.0, sigma=s, noise=n)
    assert torch.allclose(min_snr, x0_err * torch.clamp(s ** -2, max=5.0), rtol=1e-4)
    snr1 = diffusion_loss(den, x0, cond, None, sched, "snr+1", sigma=s, noise=n)
    assert torch.allclose(snr1, native, rtol=1e-4)             # snr+1 weighting of x0 error == v-MSE


def test_loss_is_seeded_and_rejects_unknown_weighting():
    den, x0, n, s, cond = case("edm", lambda x0, n, s: torch.ones_like(n))
    sched = make_schedule("cosine")
    a = diffusion_loss(den, x0, cond, torch.Generator().manual_seed(3), sched)
    b = diffusion_loss(den, x0, cond, torch.Generator().manual_seed(3), sched)
    assert torch.equal(a, b)
    with pytest.raises(UnknownNameError, match="min_snr"):
        diffusion_loss(den, x0, cond, None, sched, "p2")


class Recorder(torch.nn.Module):
    """A fake SR network: returns a fixed tensor and records the x it was given."""

    def __init__(self, out):
        super().__init__()
        self.out, self.seen = out, None

    def forward(self, x, c_noise, text, mask, text_drop=None, lowres=None, c_aug=None):
        self.seen = x
        return self.out


@pytest.mark.parametrize("name", ["eps", "v", "edm"])
def test_residual_parameterization_diffuses_x0_minus_the_upsampled_lowres(name):
    """SRDiff's residual: the network sees c_in (x - u); F = 0 gives u + c_skip (x - u); the loss's target makes
    x0_hat equal x0 exactly (closed form); and the loss is that of the plain parameterization on x0 - u."""
    g = torch.Generator().manual_seed(1)
    x0, n = torch.randn(4, 3, 8, 8, generator=g), torch.randn(4, 3, 8, 8, generator=g)
    low = torch.randn(4, 3, 4, 4, generator=g)
    u = torch.nn.functional.interpolate(low, size=(8, 8), mode="bicubic", align_corners=False)
    s = torch.tensor([0.05, 0.5, 2.0, 10.0])
    cond = Cond(text=torch.zeros(4, 1, 2), mask=torch.ones(4, 1, dtype=torch.bool), lowres=low,
                aug_sigma=torch.zeros(4))
    x = x0 + s[:, None, None, None] * n
    net = Recorder(torch.zeros_like(x0))
    den = Denoiser(net, ParamConfig(name, residual=True))
    f, c = den.net_output(x, s, cond)
    assert torch.allclose(net.seen, c.c_in * (x - u), atol=1e-6)
    assert torch.allclose(den(x, s, cond), u + c.c_skip * (x - u), atol=1e-6)
    target = den.f_target(x0, x, c, cond)
    assert torch.allclose(den.x0_estimate(x, target, c, cond), x0, atol=1e-4)
    plain = Denoiser(Const(torch.zeros_like(x0)), ParamConfig(name))
    for w in ("native", "snr+1"):
        got = diffusion_loss(den, x0, cond, None, make_schedule("cosine"), w, sigma=s, noise=n)
        want = diffusion_loss(plain, x0 - u, cond, None, make_schedule("cosine"), w, sigma=s, noise=n)
        assert torch.allclose(got, want, rtol=1e-4)


def test_residual_is_omitted_from_saved_configs_at_its_default():
    assert "residual" not in ParamConfig("v").to_dict()
    assert ParamConfig.from_dict(ParamConfig("v", residual=True).to_dict()).residual is True
    base = Denoiser(Const(torch.zeros(1, 3, 2, 2)), ParamConfig("v", residual=True))
    cond = Cond(text=torch.zeros(1, 1, 2), mask=torch.ones(1, 1, dtype=torch.bool))
    assert base.lowres_mean(torch.zeros(1, 3, 2, 2), cond) is None          # no low-res input: a base stage
