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
