"""Each parameterization recovers x0 from its own target: D(x; s) = x0 when F is the ideal output."""
import pytest
import torch

from openimagen.diffusion.parameterization import PARAMETERIZATIONS, ParamConfig, coefficients

S = torch.tensor([0.01, 0.3, 1.0, 5.0, 80.0], dtype=torch.float64)[:, None]


def ideal_output(name, x0, n, s):
    a, sig = (1 + s * s).rsqrt(), s * (1 + s * s).rsqrt()         # VP alpha, sigma for noise level s
    if name == "eps":
        return n
    if name == "v":
        return a * n - sig * x0                                   # Salimans & Ho 2022
    c = coefficients(ParamConfig("edm"), s)
    return (x0 - c.c_skip * (x0 + s * n)) / c.c_out


@pytest.mark.parametrize("name", PARAMETERIZATIONS)
def test_ideal_output_gives_x0(name):
    g = torch.Generator().manual_seed(0)
    x0, n = torch.randn(5, 4, generator=g, dtype=torch.float64), torch.randn(5, 4, generator=g, dtype=torch.float64)
    x = x0 + S * n
    c = coefficients(ParamConfig(name), S)
    assert torch.allclose(c.c_skip * x + c.c_out * ideal_output(name, x0, n, S), x0, atol=1e-9)


@pytest.mark.parametrize("name", ["eps", "v"])
def test_network_sees_the_vp_sample(name):
    """c_in x = alpha x0 + sigma n: the network input is Imagen's z_t, unit variance for unit data."""
    c = coefficients(ParamConfig(name), S)
    assert torch.allclose(c.c_in * S, S / (1 + S * S).sqrt())
    assert torch.allclose(c.c_noise, torch.log(S) / 4)


def test_v_equals_edm_with_unit_sigma_data_up_to_sign():
    v, e = coefficients(ParamConfig("v"), S), coefficients(ParamConfig("edm", sigma_data=1.0), S)
    assert torch.allclose(v.c_skip, e.c_skip) and torch.allclose(v.c_out, -e.c_out) and torch.allclose(v.c_in, e.c_in)
