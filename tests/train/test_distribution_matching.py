"""Issue 15, point 1: trajectory distillation plus distribution matching (DMD, Yin et al. 2024) on the student's
own N-step samples (openimagen.train.distribution_matching). Closed forms: the gradient is zero when the fake
denoiser equals the real one and points from the real estimate to the fake one with DMD's normalisation; the
surrogate's gradient in x is that direction. The term rides on the first ``samples`` examples and reaches the
student through its rollout; the fake denoiser learns the student's samples; a run checkpoints and resumes it;
bad settings speak one line."""
import pytest
import torch

from openimagen.diffusion.cond import Cond
from openimagen.errors import ConfigError
from openimagen.train.distribution_matching import (DistributionMatchingTrajectoryObjective,
                                                    distribution_matching_grad)
from openimagen.train.trajectory import TrajectoryDistillationObjective
from tests.train.conftest import run_config
from tests.train.test_adversarial_trajectory import SAMPLING, _bank, _batch
from tests.train.test_trajectory import SCHEDULE, _Teacher, _teacher


class _Fake(torch.nn.Module):
    """A one-parameter fake denoiser: D(x, s) = a x / (1 + s^2) (the Gaussian posterior mean for data N(0, a))."""

    def __init__(self, a=0.5):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(float(a)))

    def forward(self, x, sigma, cond):
        return self.a * x / (1 + sigma.reshape(-1, 1, 1, 1) ** 2)


def _real(a=0.5):
    return lambda x, sigma, cond: a * x / (1 + sigma.reshape(-1, 1, 1, 1) ** 2)   # noqa: E731


def _cond(b):
    return Cond(text=torch.zeros(b, 2, 3), mask=torch.ones(b, 2, dtype=torch.bool))


def test_the_gradient_is_zero_when_fake_equals_real_and_is_dmds_normalised_difference():
    g = torch.Generator().manual_seed(0)
    x, n, sigma = torch.randn(3, 3, 4, 4, generator=g), torch.randn(3, 3, 4, 4, generator=g), torch.tensor([.2, 1., 5.])
    assert distribution_matching_grad(x, sigma, n, _real(0.5), _Fake(0.5), _cond(3)).abs().max() == 0
    got = distribution_matching_grad(x, sigma, n, _real(0.5), _Fake(0.8), _cond(3))
    x_s = x + sigma.reshape(-1, 1, 1, 1) * n
    p_real, p_fake = _real(0.5)(x_s, sigma, None), _real(0.8)(x_s, sigma, None)
    w = 1 / (x - p_real).abs().mean(dim=(1, 2, 3))
    torch.testing.assert_close(got, w.reshape(-1, 1, 1, 1) * (p_fake - p_real))
    xg = x.clone().requires_grad_(True)                           # the surrogate's gradient in x is g / numel
    (0.5 * (xg - (xg - got).detach()).pow(2).mean()).backward()
    torch.testing.assert_close(xg.grad, got / got.numel())


def test_the_term_rides_on_the_first_examples_and_reaches_the_student_through_its_rollout(tmp_path):
    kw = dict(student_threshold="none")
    plain = TrajectoryDistillationObjective(_Teacher(), SAMPLING, SCHEDULE, 4, 4, tmp_path / "a", **kw)
    dm = DistributionMatchingTrajectoryObjective(_Teacher(), SAMPLING, SCHEDULE, 4, 4, tmp_path / "b", real=_real(),
                                                 fake=_Fake(0.9), weight=5.0, samples=2, **kw)
    plain.bank = dm.bank = _bank()
    p = torch.tensor(0.3, requires_grad=True)
    student = lambda x, sigma, cond: p * x.tanh()                # noqa: E731  (a one-parameter student)
    a = plain(student, _batch(), torch.Generator().manual_seed(4))
    b = dm(student, _batch(), torch.Generator().manual_seed(4))
    assert b.shape == a.shape == (5,)
    torch.testing.assert_close(b[2:], a[2:])                     # the same draws; no term past the first two
    assert (b[:2] > a[:2]).all()
    (g_plain,) = torch.autograd.grad(a[:2].sum(), p)
    (g_dm,) = torch.autograd.grad(b[:2].sum(), p)
    assert abs(float(g_dm - g_plain)) > 1e-6                     # the term reaches p through the 4-step rollout
    assert {"bank", "fake_loss", "dm", "dm_grad"} <= set(dm.metrics()) and dm.fake_updates == 1
    with torch.no_grad():                                        # evaluation: the fake denoiser does not learn
        dm(student, _batch(), torch.Generator().manual_seed(4))
    assert dm.fake_updates == 1
    with pytest.raises(ValueError, match="weight must be > 0"):
        DistributionMatchingTrajectoryObjective(_Teacher(), SAMPLING, SCHEDULE, 4, 4, tmp_path / "c", real=_real(),
                                                fake=_Fake(), weight=0.0)


def test_the_fake_denoiser_learns_the_students_samples_during_warm_up(tmp_path):
    # a student that paints grey (0): its samples' ideal denoiser is 0, so the fake (a x / (1 + s^2)) moves from
    # a = 0.9 toward 0
    dm = DistributionMatchingTrajectoryObjective(_Teacher(), SAMPLING, SCHEDULE, 1, 4, tmp_path / "b", real=_real(),
                                                 fake=_Fake(0.9), weight=1.0, samples=4, warmup_steps=1000, lr=2e-2,
                                                 fake_steps=2, student_threshold="none")
    dm.bank = _bank(n=8)
    grey = lambda x, sigma, cond: torch.zeros_like(x)            # noqa: E731
    g = torch.Generator().manual_seed(0)
    first = None
    for _ in range(40):
        loss = dm(grey, _batch(4), g)
        first = first if first is not None else dm.metrics()["fake_loss"]
    assert dm.metrics()["dm"] == 0.0 and dm.fake_updates == 80     # warm-up: only the fake denoiser learns
    assert float(dm.fake.a.detach()) < 0.5 and dm.metrics()["fake_loss"] < first
    assert loss.shape == (4,)


def test_a_run_checkpoints_and_resumes_its_fake_denoiser_and_bad_settings_speak_one_line(assets, tmp_path):
    from openimagen.train.trainer import Trainer, train

    teacher_dir = _teacher(assets, tmp_path)
    sampling = {"sampler": "ddim", "steps": 1, "guidance": 1.0, "spacing": "time", "threshold": "static"}
    distill = {"kind": "trajectory", "student_steps": 1, "teacher_steps": 2, "trajectories": 6, "teacher_guidance": 2.0,
               "dm_weight": 0.5, "dm_samples": 2, "dm_lr": 1e-3, "dm_fake_steps": 2}
    kw = dict(init={"model": str(teacher_dir)}, seed=5, stage={"sampling": sampling}, distill=distill,
              train={"text_drop_prob": 0.0})
    first = train(run_config(assets, tmp_path / "run", max_steps=3, **kw))
    ckpt = first.run_dir / "checkpoints" / "step_00000003"
    assert (ckpt / "objective.safetensors").is_file()
    from safetensors.torch import load_file

    saved = {k[len("fake/"):]: v for k, v in load_file(ckpt / "objective.safetensors").items() if k.startswith("fake/")}
    resumed = Trainer(run_config(assets, tmp_path / "run", max_steps=4, **kw), resume=first.run_dir)
    obj = resumed.objective
    assert isinstance(obj, DistributionMatchingTrajectoryObjective) and obj.fake_updates == 6
    assert [g["lr"] for g in obj.opt.param_groups] == [1e-3]                      # distill.dm_lr
    fake, teacher = obj.fake.state_dict(), obj.teacher.denoiser.state_dict()
    assert set(saved) == set(fake) == set(teacher)
    for k, v in fake.items():
        torch.testing.assert_close(v, saved[k], rtol=0, atol=0)
    assert any(not torch.equal(v, teacher[k]) for k, v in fake.items())           # it moved from the teacher
    assert obj.real.scale == 2.0                                                   # the trajectories' guidance (no dm_guidance)
    own = Trainer(run_config(assets, tmp_path / "run2", max_steps=1, **{**kw, "distill": {**distill, "dm_guidance": 3.5}}))
    assert own.objective.real.scale == 3.5                                         # distill.dm_guidance
    with pytest.raises(ConfigError, match="distill.dm_weight is for trajectory distillation, not progressive"):
        run_config(assets, tmp_path, init={"model": "default"}, stage={"sampling": {**sampling, "steps": 4}},
                   distill={"kind": "progressive", "student_steps": 4, "dm_weight": 0.1})
    with pytest.raises(ConfigError, match="set one of them to 0"):
        run_config(assets, tmp_path, init={"model": "default"}, stage={"sampling": sampling},
                   distill={**distill, "adversarial_weight": 0.1})
    with pytest.raises(ConfigError, match="dm_fake_steps should be greater than or equal to 1"):
        run_config(assets, tmp_path, init={"model": "default"}, stage={"sampling": sampling},
                   distill={**distill, "dm_fake_steps": 0})
