"""Issue 15, point 1: trajectory distillation plus a discriminator on the student's own N-step samples
(openimagen.train.adversarial_trajectory). The term rides on the first ``samples`` examples only, reaches the
student through every step of its rollout, D learns to separate teacher samples from the student's, its state
goes through checkpoints, and bad settings speak one line."""
import pytest
import torch

from openimagen.errors import ConfigError
from openimagen.pipeline.config import SamplingConfig
from openimagen.train.adversarial_trajectory import AdversarialTrajectoryObjective
from openimagen.train.objective import TrainBatch
from openimagen.train.trajectory import TrajectoryBank, TrajectoryDistillationObjective
from tests.train.conftest import run_config
from tests.train.test_trajectory import SCHEDULE, _Teacher, _teacher

SAMPLING = SamplingConfig(sampler="ddim", steps=8, guidance=1.0, spacing="time")


def _bank(n=6, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, 3, size, size, generator=g)
    x[:, -1] = x[:, -1].tanh()                                   # the teacher's samples lie in [-1, 1]
    return TrajectoryBank(x, torch.randn(n, 2, 3, generator=g), torch.ones(n, 2, dtype=torch.bool))


def _batch(b=5, size=8):
    return TrainBatch(image=torch.zeros(b, 3, size, size), text=torch.zeros(b, 2, 3), mask=torch.ones(b, 2, dtype=bool))


def test_the_term_rides_on_the_first_examples_and_reaches_the_student_through_its_rollout(tmp_path):
    kw = dict(student_threshold="none")
    plain = TrajectoryDistillationObjective(_Teacher(), SAMPLING, SCHEDULE, 4, 4, tmp_path / "a", **kw)
    adv = AdversarialTrajectoryObjective(_Teacher(), SAMPLING, SCHEDULE, 4, 4, tmp_path / "b", weight=0.5,
                                         samples=2, **kw)
    plain.bank = adv.bank = _bank()
    p = torch.tensor(0.3, requires_grad=True)
    student = lambda x, sigma, cond: p * x.tanh()                # noqa: E731  (a one-parameter student)
    a = plain(student, _batch(), torch.Generator().manual_seed(4))
    b = adv(student, _batch(), torch.Generator().manual_seed(4))
    assert b.shape == a.shape == (5,)
    torch.testing.assert_close(b[2:], a[2:])                     # the same draws; no term past the first two
    assert not torch.allclose(b[:2], a[:2])
    (g_plain,) = torch.autograd.grad(a[:2].sum(), p)
    (g_adv,) = torch.autograd.grad(b[:2].sum(), p)
    assert abs(float(g_adv - g_plain)) > 1e-6                    # the term reaches p through the 4-step rollout
    assert {"bank", "d_loss", "d_real", "d_fake", "g_adv"} <= set(adv.metrics()) and adv.d_steps == 1


def test_the_discriminator_learns_to_tell_teacher_samples_from_the_students(tmp_path):
    adv = AdversarialTrajectoryObjective(_Teacher(), SAMPLING, SCHEDULE, 4, 4, tmp_path / "b", weight=0.1,
                                         samples=4, warmup_steps=1000, lr=2e-3, student_threshold="none")
    adv.bank = _bank(n=8)
    grey = lambda x, sigma, cond: torch.zeros_like(x)            # noqa: E731  (a student that paints grey)
    g = torch.Generator().manual_seed(0)
    for _ in range(60):
        loss = adv(grey, _batch(4), g)
    assert adv.metrics()["g_adv"] == 0.0                         # warm-up: only D learns
    assert adv.metrics()["d_real"] > adv.metrics()["d_fake"] + 0.5 and adv.metrics()["d_loss"] < 0.5   # from ~2
    with pytest.raises(ValueError, match="weight must be > 0"):
        AdversarialTrajectoryObjective(_Teacher(), SAMPLING, SCHEDULE, 4, 4, tmp_path / "c", weight=0.0)
    assert loss.shape == (4,)


def test_a_run_checkpoints_and_resumes_its_discriminator_and_bad_settings_speak_one_line(assets, tmp_path):
    from openimagen.train.trainer import Trainer, train

    teacher_dir = _teacher(assets, tmp_path)
    sampling = {"sampler": "ddim", "steps": 1, "guidance": 1.0, "spacing": "time", "threshold": "static"}
    distill = {"kind": "trajectory", "student_steps": 1, "teacher_steps": 2, "trajectories": 6,
               "adversarial_weight": 0.1, "adversarial_samples": 2, "adversarial_lr": 1e-3}
    kw = dict(init={"model": str(teacher_dir)}, seed=5, stage={"sampling": sampling}, distill=distill,
              train={"text_drop_prob": 0.0})
    first = train(run_config(assets, tmp_path / "run", max_steps=3, **kw))
    ckpt = first.run_dir / "checkpoints" / "step_00000003"
    assert (ckpt / "objective.safetensors").is_file()
    resumed = Trainer(run_config(assets, tmp_path / "run", max_steps=4, **kw), resume=first.run_dir)
    assert isinstance(resumed.objective, AdversarialTrajectoryObjective) and resumed.objective.d_steps == 3
    assert [g["lr"] for g in resumed.objective.opt.param_groups] == [1e-3]          # distill.adversarial_lr
    for k, v in resumed.objective.disc.state_dict().items():
        assert torch.isfinite(v).all(), k
    with pytest.raises(ConfigError, match="distill.adversarial_weight is for trajectory distillation, not progressive"):
        run_config(assets, tmp_path, init={"model": "default"}, stage={"sampling": {**sampling, "steps": 4}},
                   distill={"kind": "progressive", "student_steps": 4, "adversarial_weight": 0.1})
    with pytest.raises(ConfigError, match="adversarial_weight should be greater than or equal to 0"):
        run_config(assets, tmp_path, init={"model": "default"}, stage={"sampling": sampling},
                   distill={**distill, "adversarial_weight": -1.0})
