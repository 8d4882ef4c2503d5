"""Fréchet distance: closed-form Gaussian cases, singular covariances, agreement with sampling, bad inputs."""
import numpy as np
import pytest

from openimagen.errors import InvalidArgumentError
from openimagen.eval.frechet import frechet_distance, frechet_distance_features, gaussian_stats, sqrtm_psd


def _spd(rng, d, rank=None):
    a = rng.normal(size=(d, rank or d))
    return a @ a.T + (0 if rank else 0.1 * np.eye(d))


def _rotation(rng, d):
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return q


@pytest.mark.parametrize("d", [1, 3, 16])
def test_equal_covariances_give_squared_mean_distance(d):
    rng = np.random.default_rng(d)
    s = _spd(rng, d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    assert frechet_distance(mu1, s, mu2, s) == pytest.approx(((mu1 - mu2) ** 2).sum(), rel=1e-7, abs=1e-8)


@pytest.mark.parametrize("d", [1, 5, 32])
def test_diagonal_covariances(d):
    rng = np.random.default_rng(10 + d)
    a, b = rng.uniform(0.01, 4, d), rng.uniform(0.01, 4, d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    expected = ((np.sqrt(a) - np.sqrt(b)) ** 2).sum() + ((mu1 - mu2) ** 2).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-8)


def test_commuting_covariances_share_an_eigenbasis():
    rng = np.random.default_rng(3)
    d = 12
    q = _rotation(rng, d)
    a, b = rng.uniform(0.0, 3, d), rng.uniform(0.0, 3, d)
    a[:3] = 0.0                                                 # singular too
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    mu = rng.normal(size=d)
    expected = ((np.sqrt(a) - np.sqrt(b)) ** 2).sum() + (mu ** 2).sum()
    assert frechet_distance(mu, s1, np.zeros(d), s2) == pytest.approx(expected, rel=1e-7, abs=1e-9)


def test_one_dimensional_is_difference_of_means_and_stds():
    assert frechet_distance([1.0], [[4.0]], [-2.0], [[9.0]]) == pytest.approx(9.0 + 1.0)


def test_identity_symmetry_and_rotation_invariance():
    rng = np.random.default_rng(4)
    d = 20
    mu1, mu2, s1, s2 = rng.normal(size=d), rng.normal(size=d), _spd(rng, d), _spd(rng, d)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-8)
    fd = frechet_distance(mu1, s1, mu2, s2)
    assert fd > 0 and fd == pytest.approx(frechet_distance(mu2, s2, mu1, s1), rel=1e-9)
    q = _rotation(rng, d)                                       # the distance does not depend on the basis
    assert frechet_distance(q @ mu1, q @ s1 @ q.T, q @ mu2, q @ s2 @ q.T) == pytest.approx(fd, rel=1e-8)


def test_singular_covariances_from_few_samples_stay_finite():
    rng = np.random.default_rng(5)
    f1, f2 = rng.normal(size=(8, 64)), rng.normal(size=(8, 64)) + 0.5     # rank 7 covariances in 64 dims
    fd = frechet_distance_features(f1, f2)
    assert np.isfinite(fd) and fd > 0
    assert frechet_distance_features(f1, f1) == pytest.approx(0.0, abs=1e-7)


def test_sample_estimate_converges_to_closed_form():
    rng = np.random.default_rng(6)
    d, n = 4, 100_000
    a, b = np.array([1.0, 2.0, 0.5, 3.0]), np.array([2.0, 1.0, 0.5, 0.25])
    q = _rotation(rng, d)
    f1 = rng.normal(size=(n, d)) * np.sqrt(a) @ q.T
    f2 = rng.normal(size=(n, d)) * np.sqrt(b) @ q.T + 1.0
    expected = ((np.sqrt(a) - np.sqrt(b)) ** 2).sum() + d
    assert frechet_distance_features(f1, f2) == pytest.approx(expected, rel=0.02)


def test_stats_and_sqrtm():
    rng = np.random.default_rng(7)
    f = rng.normal(size=(50, 3))
    mu, s = gaussian_stats(f)
    assert np.allclose(mu, f.mean(0)) and np.allclose(s, np.cov(f.T))
    r = sqrtm_psd(s)
    assert np.allclose(r @ r, s) and np.allclose(r, r.T)


def test_torch_tensors_are_accepted():
    torch = pytest.importorskip("torch")
    s = torch.eye(3, dtype=torch.float32)
    assert frechet_distance(torch.zeros(3), s, torch.ones(3), s) == pytest.approx(3.0)


@pytest.mark.parametrize("args, match", [
    (([0, 0], np.eye(2), [0, 0, 0], np.eye(3)), "shapes do not match"),
    (([0, 0], np.eye(2), [0, 0], np.ones((2, 3))), "shapes do not match"),
    (([0, 0], [[1, 2], [0, 1]], [0, 0], np.eye(2)), "sigma1 is not symmetric"),
    (([np.nan, 0], np.eye(2), [0, 0], np.eye(2)), "mu1 has NaN"),
])
def test_bad_inputs(args, match):
    with pytest.raises(InvalidArgumentError, match=match):
        frechet_distance(*args)


def test_too_few_samples():
    with pytest.raises(InvalidArgumentError, match="N >= 2"):
        gaussian_stats(np.zeros((1, 4)))
