"""The contract every sampler must pass, with no per-sampler special cases beyond step counts."""
import threading

import pytest
import torch

from openimagen.diffusion.schedules import make_schedule, sampling_sigmas
from openimagen.errors import UnknownNameError
from openimagen.samplers import SAMPLERS, evaluations, generators_from_seeds, get_sampler, randn
from tests.samplers.gaussian import MU, SIGMA, GaussianDenoiser, dummy_cond, moments

# Steps at which each sampler must reproduce the Gaussian's moments on the default cosine schedule
# (issue: DPM-Solver++ in 15, DDPM/DDIM in 100). The linear-in-log-SNR schedule spends most of its
# uniform-time grid at noise levels far from the data's scale, so it gets larger budgets.
STEPS = {"ddpm": 100, "ddim": 100, "dpmpp_2m": 15, "euler": 100, "heun": 100}
STEPS_LINEAR = {"ddpm": 250, "ddim": 250, "dpmpp_2m": 25, "euler": 250, "heun": 100}
STOCHASTIC = {"ddpm"}
N = 20000


def run(name, steps, n=N, seed=0, schedule="cosine", spacing="time"):
    sigmas = sampling_sigmas(make_schedule(schedule), steps, spacing)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g) * sigmas[0]
    den = GaussianDenoiser()
    out = get_sampler(name)(den, x, sigmas, cond=dummy_cond(n), generator=g)
    return out, den.calls


def test_every_sampler_has_a_step_budget():
    assert set(STEPS) == set(STEPS_LINEAR) == set(SAMPLERS)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
@pytest.mark.parametrize("schedule", ["cosine", "linear_logsnr"])
def test_reproduces_gaussian_moments(name, schedule):
    steps = (STEPS if schedule == "cosine" else STEPS_LINEAR)[name]
    out, calls = run(name, steps, schedule=schedule)
    assert calls == evaluations(name, steps)
    mean, cov = moments(out)
    assert torch.allclose(mean, MU, atol=0.02), (mean, MU)
    assert torch.allclose(cov, SIGMA, atol=0.02), (cov, SIGMA)


@pytest.mark.parametrize("spacing", ["logsnr", "karras"])
def test_dpmpp_other_spacings(spacing):
    out, _ = run("dpmpp_2m", 25, spacing=spacing)
    mean, cov = moments(out)
    assert torch.allclose(mean, MU, atol=0.02) and torch.allclose(cov, SIGMA, atol=0.02)


def test_too_few_steps_is_measurably_worse():
    """The moment test can fail: DDIM at 3 steps misses the covariance that it gets at 100."""
    out, _ = run("ddim", 3)
    _, cov = moments(out)
    assert not torch.allclose(cov, SIGMA, atol=0.02)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_seed_reproduces_image_whatever_the_batch(name):
    """Per-image generators: element k of a batch equals element k sampled alone with the same seed."""
    sigmas = sampling_sigmas(make_schedule("cosine"), 8)
    seeds = [11, 12, 13]

    def sample(seed_list):
        gens = generators_from_seeds(seed_list)
        x = randn((len(seed_list), 3), gens) * sigmas[0]
        return get_sampler(name)(GaussianDenoiser(), x, sigmas, cond=dummy_cond(len(seed_list)), generator=gens)

    batch = sample(seeds)
    for k, s in enumerate(seeds):
        assert torch.equal(sample([s])[0], batch[k])
    assert torch.equal(sample(seeds[::-1])[0], batch[2])


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_pure_function_concurrent_calls_agree(name):
    """No hidden state: the same call from two threads at once gives identical results."""
    results = {}

    def work(k):
        results[k] = run(name, 10, n=64, seed=3)[0]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert torch.equal(results[0], results[1])


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_deterministic_samplers_ignore_the_generator(name):
    a, _ = run(name, 6, n=32, seed=5)
    sigmas = sampling_sigmas(make_schedule("cosine"), 6)
    x = torch.randn(32, 3, generator=torch.Generator().manual_seed(5)) * sigmas[0]
    b = get_sampler(name)(GaussianDenoiser(), x, sigmas, cond=dummy_cond(32),
                          generator=torch.Generator().manual_seed(999))
    assert torch.equal(a, b) != (name in STOCHASTIC)


def test_callback_sees_every_step():
    seen = []
    sigmas = sampling_sigmas(make_schedule("cosine"), 5)
    x = torch.randn(4, 3) * sigmas[0]
    get_sampler("dpmpp_2m")(GaussianDenoiser(), x, sigmas, cond=dummy_cond(4),
                            callback=lambda i, s, x, d: seen.append(i))
    assert seen == [0, 1, 2, 3, 4]


def test_unknown_sampler_lists_valid_names():
    with pytest.raises(UnknownNameError, match="dpmpp_2m"):
        get_sampler("plms")
