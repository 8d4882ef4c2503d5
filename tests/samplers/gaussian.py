"""A Gaussian data set N(mu, Sigma) has an exact denoiser: E[x0 | x0 + s n = x] = mu + Sigma (Sigma + s^2 I)^-1 (x - mu)."""
import torch

from openimagen.diffusion.cond import Cond

MU = torch.tensor([0.5, -0.3, 0.1], dtype=torch.float64)
SIGMA = torch.tensor([[0.25, 0.10, 0.00],
                      [0.10, 0.09, 0.02],
                      [0.00, 0.02, 0.16]], dtype=torch.float64)


class GaussianDenoiser:
    """Closed-form denoiser of N(MU, SIGMA) for x of shape (B, 3); counts its calls."""

    def __init__(self, mu=MU, cov=SIGMA):
        self.mu, self.cov, self.calls = mu, cov, 0

    def __call__(self, x, sigma, cond):
        self.calls += 1
        s = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1)
        eye = torch.eye(3, dtype=torch.float64)
        if s.numel() == 1:                                      # one gain for the whole batch
            gain = self.cov @ torch.linalg.inv(self.cov + s[0] ** 2 * eye)
            return (self.mu + (x.double() - self.mu) @ gain.T).to(x.dtype)
        gain = self.cov @ torch.linalg.inv(self.cov + s[:, None, None] ** 2 * eye)   # (B, 3, 3)
        d = self.mu + (gain @ (x.double() - self.mu)[..., None])[..., 0]
        return d.to(x.dtype)


def dummy_cond(batch: int) -> Cond:
    return Cond(text=torch.zeros(batch, 1, 1), mask=torch.ones(batch, 1, dtype=torch.bool))


def moments(x):
    x = x.double()
    return x.mean(0), torch.cov(x.T)


# --- isotropic N(0, STD^2 I): exact denoiser and exact probability-flow ODE solution ----------------------
STD = 0.2


def isotropic_denoiser(x, sigma, cond):
    """E[x0 | x0 + s n = x] = x STD^2 / (STD^2 + s^2) for N(0, STD^2 I); gain in float64, x keeps its dtype."""
    s = torch.as_tensor(sigma, dtype=torch.float64)
    return x * (STD ** 2 / (STD ** 2 + s ** 2))


def exact_flow(x_T, s_T, s):
    """The probability-flow ODE dx/ds = (x - D(x; s))/s from (x_T, s_T) to s, for N(0, STD^2 I) exactly:
    x(s) = x_T sqrt(STD^2 + s^2) / sqrt(STD^2 + s_T^2); at s = 0, x_T STD / sqrt(STD^2 + s_T^2). Float64."""
    s_T, s = (torch.as_tensor(v, dtype=torch.float64) for v in (s_T, s))
    return x_T.double() * torch.sqrt((STD ** 2 + s ** 2) / (STD ** 2 + s_T ** 2))
