"""Issue 15, point 1 (step distillation: progressive distillation, Salimans & Ho 2022), through the pluggable
objective. Closed forms: the target makes one student DDIM step land exactly where the production DDIM sampler's two
teacher steps land, and is the data point itself for a point-mass teacher. Tiny end to end: training lowers the loss
and moves the student's 1-step sample toward the teacher's 2-step sample; bad configs speak one line."""
import pytest
import torch

from openimagen.diffusion.cond import Cond
from openimagen.diffusion.denoiser import Denoiser
from openimagen.diffusion.schedules import ScheduleConfig, make_schedule, sampling_sigmas
from openimagen.errors import ConfigError
from openimagen.pipeline import Pipeline
from openimagen.samplers.ddim import sample_ddim
from openimagen.train.export import export_pipeline
from openimagen.train.progressive import ProgressiveDistillationObjective, ddim_step
from openimagen.train.trainer import train
from tests.train.conftest import run_config

SCHEDULE = make_schedule(ScheduleConfig(name="cosine", shift=0.5))


class _Diffusion:                       # what the objective reads of a DiffusionObjective
    schedule = SCHEDULE

    def _augmented_lowres(self, x0, generator):
        return None, None


def _teacher_fn(x, sigma, cond):
    """A smooth nonlinear stand-in for a network's x0 estimate, per-example sigma (B,) or a scalar."""
    s = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1, 1, 1)
    return torch.tanh(x / (1 + s ** 2) + 0.1 * cond.text.mean())


@pytest.mark.parametrize("student_steps", [1, 2, 4])
def test_one_student_step_on_the_target_lands_where_two_teacher_ddim_steps_land(student_steps):
    obj = ProgressiveDistillationObjective(_teacher_fn, _Diffusion(), student_steps, guidance=1.0, threshold="none")
    student_grid = sampling_sigmas(SCHEDULE, student_steps, "time")
    assert torch.equal(obj.grid[::2], student_grid)          # the student's grid is every other teacher point
    cond = Cond(text=torch.randn(1, 3, 4), mask=torch.ones(1, 3, dtype=torch.bool))
    for i in range(student_steps):
        x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(i)) * float(obj.grid[2 * i])
        sigma, target = obj.targets(x, torch.tensor([i]), cond)
        two_teacher_steps = sample_ddim(_teacher_fn, x.double(), obj.grid[2 * i:2 * i + 3], cond=cond)
        one_student_step = ddim_step(x, target, obj.grid[2 * i].reshape(1), obj.grid[2 * i + 2].reshape(1))
        torch.testing.assert_close(one_student_step, two_teacher_steps.double(), rtol=1e-5, atol=1e-5)
        assert float(sigma) == pytest.approx(float(obj.grid[2 * i]), rel=1e-6)


def test_the_target_of_a_point_mass_teacher_is_the_point():
    point = torch.full((1, 3, 4, 4), 0.3)
    obj = ProgressiveDistillationObjective(lambda x, s, c: point.expand_as(x), _Diffusion(), 4, threshold="none")
    cond = Cond(text=torch.randn(4, 3, 4), mask=torch.ones(4, 3, dtype=torch.bool))
    x = torch.randn(4, 3, 4, 4) * 5
    _, target = obj.targets(x, torch.arange(4), cond)
    torch.testing.assert_close(target, point.expand(4, -1, -1, -1), rtol=0, atol=1e-5)


def _teacher(assets, tmp_path):
    base = train(run_config(assets, tmp_path / "teacher-run", max_steps=3))
    return export_pipeline([base.run_dir], tmp_path / "teacher")


def test_distillation_lowers_its_loss_and_moves_the_1_step_sample_toward_the_teachers_2_steps(assets, tmp_path):
    teacher_dir = _teacher(assets, tmp_path)
    sampling = {"sampler": "ddim", "steps": 1, "guidance": 1.0, "spacing": "time", "threshold": "static"}
    cfg = run_config(assets, tmp_path / "student-run", init={"model": str(teacher_dir)}, max_steps=60, seed=5,
                     stage={"sampling": sampling}, distill={"kind": "progressive", "student_steps": 1,
                                                            "teacher_guidance": 2.0},
                     optimiser={"lr": 3e-3, "warmup_steps": 0, "decay": "constant"},
                     train={"text_drop_prob": 0.0, "ema_decay": 0.5})
    result = train(cfg)
    assert sum(result.losses[-10:]) / 10 < sum(result.losses[:10]) / 10
    student_dir = export_pipeline([result.run_dir], tmp_path / "student")
    teacher, student = (Pipeline.from_pretrained(d, watermark=None) for d in (teacher_dir, student_dir))
    assert student.stages[0].config.sampling.steps == 1
    prompts, run = ["a red circle", "a blue square", "a green circle"], dict(sampler="ddim", spacing="time",
                                                                           threshold="static", seed=0)
    target = teacher(prompts, steps=2, guidance=2.0, **run).stages[-1]
    before = teacher(prompts, steps=1, guidance=1.0, **run).stages[-1]     # the student starts as the teacher
    after = student(prompts, steps=1, guidance=1.0, **run).stages[-1]
    assert (after - target).abs().mean() < 0.8 * (before - target).abs().mean()


def test_progressive_configs_are_checked_at_the_boundary(assets, tmp_path):
    good = {"sampler": "ddim", "steps": 4, "guidance": 1.0, "spacing": "time"}
    kw = dict(init={"model": "default"}, distill={"kind": "progressive", "student_steps": 4})
    run_config(assets, tmp_path, stage={"sampling": good}, **kw)
    for bad in ({**good, "steps": 8}, {**good, "sampler": "dpmpp_2m"}, {**good, "guidance": 2.0}):
        with pytest.raises(ConfigError, match="samples as it was trained"):
            run_config(assets, tmp_path, stage={"sampling": bad}, **kw)
    with pytest.raises(ConfigError, match="guidance_cond"):
        run_config(assets, tmp_path, stage={"sampling": good, "unet": {"preset": "tiny", "overrides": {
            "text_dim": 16, "guidance_cond": True}}}, **kw)
    with pytest.raises(ConfigError, match="student_steps"):
        run_config(assets, tmp_path, stage={"sampling": good}, init={"model": "default"},
                   distill={"kind": "progressive", "student_steps": 0})


def test_the_objective_runs_the_real_denoiser_per_example():
    """Per-example sigmas (B,) through the guided, thresholded Denoiser, as training calls it."""
    from openimagen.nn import EfficientUNet, get_preset
    from openimagen.pipeline.config import ParamConfig

    torch.manual_seed(0)
    den = Denoiser(EfficientUNet(get_preset("tiny", text_dim=4)), ParamConfig(name="v"))
    obj = ProgressiveDistillationObjective(den, _Diffusion(), 4, guidance=3.0, threshold="static")
    cond = Cond(text=torch.randn(3, 2, 4), mask=torch.ones(3, 2, dtype=torch.bool))
    i = torch.tensor([0, 2, 3])
    x = torch.randn(3, 3, 16, 16) * obj.grid[2 * i].float().reshape(-1, 1, 1, 1)
    sigma, target = obj.targets(x, i, cond)
    assert target.shape == x.shape and torch.isfinite(target).all()
    assert torch.equal(sigma, obj.grid[2 * i].float())
    for k in range(3):                                        # each example as if alone: batch-independent
        _, alone = obj.targets(x[k:k + 1], i[k:k + 1], Cond(text=cond.text[k:k + 1], mask=cond.mask[k:k + 1]))
        torch.testing.assert_close(alone, target[k:k + 1], rtol=1e-4, atol=1e-4)
