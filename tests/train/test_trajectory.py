"""Issue 15, point 1 (step distillation in one round from the teacher's sampled trajectories, TRACT-style), through
the pluggable objective. Closed forms: the target makes one student DDIM step land exactly on the teacher's next
kept state, and the bank keeps the sampler's states at the student's grid points. Tiny end to end: training lowers
the loss and moves the student's 1-step sample toward the teacher's 2-step sample; a resumed run reloads its bank
instead of sampling the teacher again; bad configs speak one line."""
import pytest
import torch

from openimagen.diffusion.cond import Cond
from openimagen.diffusion.schedules import ScheduleConfig, make_schedule, sampling_sigmas
from openimagen.errors import ConfigError
from openimagen.pipeline import Pipeline
from openimagen.pipeline.config import SamplingConfig
from openimagen.samplers.ddim import sample_ddim
from openimagen.train.progressive import ddim_step
from openimagen.train.trainer import train
from openimagen.train.objective import TrainBatch
from openimagen.train.trajectory import (TrajectoryBank, TrajectoryDistillationObjective, landing_target,
                                         sample_trajectories)
from tests.train.conftest import run_config
from tests.train.test_progressive import _teacher

SCHEDULE = make_schedule(ScheduleConfig(name="cosine", shift=0.5))


class _Teacher(torch.nn.Module):                     # what the objective reads of a Stage, for the closed forms
    def sample(self, *a, **k):
        raise AssertionError("the closed-form tests never sample")


def _objective(tmp_path, student_steps, teacher_steps, capacity=4, spacing="time"):
    sampling = SamplingConfig(sampler="ddim", steps=teacher_steps, guidance=1.0, spacing=spacing)
    return TrajectoryDistillationObjective(_Teacher(), sampling, SCHEDULE, student_steps, capacity, tmp_path / "bank")


@pytest.mark.parametrize("student_steps,teacher_steps", [(1, 4), (2, 8), (4, 16), (4, 4)])
def test_one_student_step_on_the_target_lands_on_the_teachers_next_state(tmp_path, student_steps, teacher_steps):
    obj = _objective(tmp_path, student_steps, teacher_steps)
    g = torch.Generator().manual_seed(student_steps)
    n = 5
    x = torch.randn(n, student_steps + 1, 3, 4, 4, generator=g) * obj.grid.float().clamp(min=1).reshape(1, -1, 1, 1, 1)
    obj.bank = TrajectoryBank(x, torch.randn(n, 2, 3), torch.ones(n, 2, dtype=torch.bool))
    for j in range(student_steps):
        k = torch.arange(n)
        xj, sigma, target = obj.targets(k, torch.full((n,), j))
        assert float(sigma[0]) == pytest.approx(float(obj.grid[j]), rel=1e-6)
        landed = ddim_step(xj, target, obj.grid[j].expand(n), obj.grid[j + 1].expand(n))
        torch.testing.assert_close(landed.float(), x[:, j + 1], rtol=1e-4, atol=1e-4 * float(obj.grid[j + 1]) + 1e-5)
    _, _, last = obj.targets(torch.arange(n), torch.full((n,), student_steps - 1))
    torch.testing.assert_close(last, x[:, -1])                 # the last step's target is the teacher's sample


def test_the_bank_keeps_the_samplers_states_on_the_students_grid(assets, tmp_path):
    from openimagen.pipeline.stage import Stage

    teacher = Stage.load(_teacher(assets, tmp_path) / "stage0_base").eval()
    sampling = SamplingConfig(sampler="ddim", steps=6, guidance=2.0, threshold="static", spacing="time")
    b = 3
    text, mask = torch.randn(b, 4, 16), torch.ones(b, 4, dtype=torch.bool)
    seeds = [torch.Generator().manual_seed(s) for s in range(b)]
    bank = sample_trajectories(teacher, sampling, 3, text, mask, seeds)
    assert bank.x.shape == (b, 4, 3, 16, 16) and len(bank) == b
    full = teacher.sample(Cond(text=text, mask=mask), [torch.Generator().manual_seed(s) for s in range(b)],
                          sampling, batch_invariant=False)
    torch.testing.assert_close(bank.x[:, -1], full)
    grid = sampling_sigmas(teacher.schedule, 6, "time")
    noise = torch.stack([torch.randn(3, 16, 16, generator=torch.Generator().manual_seed(s)) for s in range(b)])
    torch.testing.assert_close(bank.x[:, 0], noise * float(grid[0]), rtol=1e-5, atol=1e-5)
    from openimagen.diffusion.guidance import guided

    den = guided(teacher.denoiser, 2.0, "static")
    for j, end in ((1, 2), (2, 4)):                           # DDIM states after 2 and 4 of the teacher's 6 steps
        state = sample_ddim(den, bank.x[:, 0], grid[:end + 1], cond=Cond(text=text, mask=mask))
        torch.testing.assert_close(bank.x[:, j], state, rtol=1e-4, atol=1e-4)


def test_trajectory_distillation_lowers_its_loss_moves_toward_the_teacher_and_resumes_its_bank(assets, tmp_path):
    teacher_dir = _teacher(assets, tmp_path)
    sampling = {"sampler": "ddim", "steps": 1, "guidance": 1.0, "spacing": "time", "threshold": "static"}
    distill = {"kind": "trajectory", "student_steps": 1, "teacher_steps": 2, "teacher_sampler": "dpmpp_2m",
               "teacher_guidance": 2.0, "trajectories": 6}
    kw = dict(init={"model": str(teacher_dir)}, seed=5, stage={"sampling": sampling}, distill=distill,
              optimiser={"lr": 3e-3, "warmup_steps": 0, "decay": "constant"},
              train={"text_drop_prob": 0.0, "ema_decay": 0.5})
    result = train(run_config(assets, tmp_path / "student-run", max_steps=60, **kw))
    assert sum(result.losses[-10:]) / 10 < sum(result.losses[:10]) / 10
    chunks = sorted((result.run_dir / "trajectories").glob("rank0-*.safetensors"))
    assert len(chunks) == 2                                  # two batches of 3 fill the bank of 6, then no more
    before = [c.stat().st_mtime_ns for c in chunks]
    resumed = train(run_config(assets, tmp_path / "student-run", max_steps=64, **kw), resume=result.run_dir)
    assert sorted((resumed.run_dir / "trajectories").glob("rank0-*.safetensors")) == chunks
    assert [c.stat().st_mtime_ns for c in chunks] == before   # reloaded, not sampled again

    from openimagen.train.export import export_pipeline

    student_dir = export_pipeline([result.run_dir], tmp_path / "student")
    teacher, student = (Pipeline.from_pretrained(d, watermark=None) for d in (teacher_dir, student_dir))
    prompts, run = ["a red circle", "a blue square", "a green circle"], dict(spacing="time", threshold="static",
                                                                           seed=0)
    target = teacher(prompts, steps=2, guidance=2.0, sampler="dpmpp_2m", **run).stages[-1]
    before = teacher(prompts, steps=1, guidance=1.0, sampler="ddim", **run).stages[-1]
    after = student(prompts, steps=1, guidance=1.0, sampler="ddim", **run).stages[-1]
    assert (after - target).abs().mean() < 0.8 * (before - target).abs().mean()


def test_trajectory_configs_are_checked_at_the_boundary(assets, tmp_path):
    good = {"sampler": "ddim", "steps": 4, "guidance": 1.0, "spacing": "time"}
    kw = dict(init={"model": "default"})
    run_config(assets, tmp_path, stage={"sampling": good}, distill={"kind": "trajectory", "student_steps": 4,
                                                                    "teacher_steps": 16}, **kw)
    with pytest.raises(ConfigError, match="must be a multiple of distill.student_steps"):
        run_config(assets, tmp_path, stage={"sampling": good}, distill={"kind": "trajectory", "student_steps": 4,
                                                                        "teacher_steps": 10}, **kw)
    with pytest.raises(ConfigError, match="trajectory student samples as it was trained"):
        run_config(assets, tmp_path, stage={"sampling": {**good, "steps": 8}},
                   distill={"kind": "trajectory", "student_steps": 4}, **kw)
    with pytest.raises(ConfigError, match="teacher_sampler"):
        run_config(assets, tmp_path, stage={"sampling": good},
                   distill={"kind": "trajectory", "student_steps": 4, "teacher_sampler": "magic"}, **kw)
    with pytest.raises(ConfigError, match="multiple"):
        _objective(tmp_path, 4, 6)
    with pytest.raises(ConfigError, match="time"):
        _objective(tmp_path, 4, 8, spacing="logsnr")


def test_the_student_can_start_from_another_stage_of_the_model(assets, tmp_path):
    """distill.student_init: the teacher stays init.stage, the student starts from the named stage folder (a
    variant's, such as the default model's stage0_base_student4), and the lineage names both."""
    import json
    import shutil

    from safetensors.torch import save_file

    from openimagen.pipeline.io import load_weights
    from openimagen.train.trainer import Trainer

    teacher_dir = _teacher(assets, tmp_path)
    shutil.copytree(teacher_dir / "stage0_base", teacher_dir / "stage0_student")
    base = load_weights(teacher_dir / "stage0_base" / "model.safetensors")
    alt = {k: v + 1 for k, v in base.items()}
    save_file(alt, str(teacher_dir / "stage0_student" / "model.safetensors"))
    pipeline = json.loads((teacher_dir / "pipeline.json").read_text())
    (teacher_dir / "pipeline.json").write_text(json.dumps({**pipeline, "variants": {"fast": ["stage0_student"]}}))
    sampling = {"sampler": "ddim", "steps": 1, "guidance": 1.0, "spacing": "time", "threshold": "static"}
    distill = {"kind": "trajectory", "student_steps": 1, "teacher_steps": 2, "trajectories": 2}
    kw = dict(init={"model": str(teacher_dir)}, stage={"sampling": sampling})
    trainer = Trainer(run_config(assets, tmp_path / "run", distill={**distill, "student_init": "stage0_student",
                                                                     "student_forcing": 0.5}, **kw))
    assert (trainer.objective.student_forcing, trainer.objective.student_threshold) == (0.5, "static")
    for k, v in trainer.stage.denoiser.net.state_dict().items():
        assert torch.equal(v, alt[k].to(v.dtype)), k
    for k, v in trainer.teacher.denoiser.net.state_dict().items():
        assert torch.equal(v, base[k].to(v.dtype)), k
    assert trainer.init_source["stage"] == "stage0_base"
    assert trainer.init_source["student"]["stage"] == "stage0_student"
    with pytest.raises(ConfigError, match="distill.student_init 'stage9' is not a stage of"):
        Trainer(run_config(assets, tmp_path / "run2", distill={**distill, "student_init": "stage9"}, **kw))


def _constant_student(c):
    """A student whose x0 estimate is ``c`` everywhere: its DDIM states have a closed form."""
    return lambda x, sigma, cond: torch.full_like(x, c)


def test_student_forcing_rolls_the_student_out_in_closed_form(tmp_path):
    """With x0 = c at every step, j DDIM steps from x_0 give c + (s_j / s_0) (x_0 - c)."""
    obj = TrajectoryDistillationObjective(_Teacher(), SamplingConfig(sampler="ddim", steps=8, guidance=1.0,
                                                                     spacing="time"),
                                          SCHEDULE, 4, 4, tmp_path / "bank", student_forcing=1.0)
    n, c = 6, 0.3
    x = torch.randn(n, 5, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    obj.bank = TrajectoryBank(x, torch.randn(n, 2, 3), torch.ones(n, 2, dtype=torch.bool))
    k, j = torch.arange(n), torch.tensor([0, 1, 2, 3, 3, 1])
    own = obj.rollout(_constant_student(c), k, j, Cond(text=obj.bank.text, mask=obj.bank.mask), torch.float32)
    ratio = (obj.grid[j] / obj.grid[0]).float().reshape(-1, 1, 1, 1)
    torch.testing.assert_close(own, c + ratio * (x[:, 0] - c), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("forcing, steps", [(0.0, None), (1.0, None), (1.0, (1,))])
def test_student_forcing_trains_from_the_students_state_toward_the_teachers_next(tmp_path, forcing, steps):
    """The loss per example is (s_j^-2 + 1) |c - x0~|^2 with x0~ the landing target from the student's own state
    (forcing 1, j >= 1 and among ``steps``) or from the teacher's (otherwise); the draws k, j, u are replayed."""
    obj = TrajectoryDistillationObjective(_Teacher(), SamplingConfig(sampler="ddim", steps=8, guidance=1.0,
                                                                     spacing="time"),
                                          SCHEDULE, 4, 4, tmp_path / "bank", student_forcing=forcing,
                                          student_forcing_steps=steps)
    n, b, c = 4, 8, -0.2
    x = torch.randn(n, 5, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    obj.bank = TrajectoryBank(x, torch.randn(n, 2, 3), torch.ones(n, 2, dtype=torch.bool))
    batch = TrainBatch(image=torch.zeros(b, 3, 4, 4), text=torch.zeros(b, 2, 3), mask=torch.ones(b, 2, dtype=bool))
    g = torch.Generator().manual_seed(7)
    replay = torch.Generator().manual_seed(7)
    loss = obj(_constant_student(c), batch, g)
    k = (torch.rand(b, generator=replay) * n).long().clamp(max=n - 1)
    j = (torch.rand(b, generator=replay) * 4).long().clamp(max=3)
    if forcing:
        forced = (torch.rand(b, generator=replay) < forcing) & (j > 0)
        if steps is not None:
            forced &= j == 1
        assert forced.any() and (~forced).any() and (steps is None or (forced.logical_not() & (j > 1)).any())
    else:
        forced = torch.zeros(b, dtype=torch.bool)
    s0, sj, sn = obj.grid[0], obj.grid[j], obj.grid[j + 1]
    start = torch.where(forced.reshape(-1, 1, 1, 1), c + (sj / s0).float().reshape(-1, 1, 1, 1) * (x[k, 0] - c),
                        x[k, j])
    target = landing_target(start, x[k, j + 1], sj, sn)
    expected = (c - target).pow(2).flatten(1).mean(1) * (sj.float().pow(-2) + 1)
    torch.testing.assert_close(loss, expected, rtol=1e-4, atol=1e-6)


def test_student_forcing_is_checked_at_the_boundary(assets, tmp_path):
    good = {"sampler": "ddim", "steps": 4, "guidance": 1.0, "spacing": "time"}
    kw = dict(init={"model": "default"}, stage={"sampling": good})
    run_config(assets, tmp_path, distill={"kind": "trajectory", "student_steps": 4, "teacher_steps": 16,
                                          "student_forcing": 0.5}, **kw)
    with pytest.raises(ConfigError, match="student_forcing"):
        run_config(assets, tmp_path, distill={"kind": "trajectory", "student_steps": 4, "student_forcing": 1.5}, **kw)
    with pytest.raises(ConfigError, match=r"student_forcing_steps must lie in 1\.\.3 .*got 4"):
        run_config(assets, tmp_path, distill={"kind": "trajectory", "student_steps": 4, "student_forcing": 0.5,
                                              "student_forcing_steps": [1, 4]}, **kw)
    with pytest.raises(ConfigError, match="student_forcing_steps"):
        run_config(assets, tmp_path, distill={"kind": "trajectory", "student_steps": 4, "student_forcing": 0.5,
                                              "student_forcing_steps": [0]}, **kw)
    with pytest.raises(ConfigError, match="distill.student_forcing is for trajectory distillation, not progressive"):
        run_config(assets, tmp_path, distill={"kind": "progressive", "student_steps": 4, "student_forcing": 0.5},
                   **kw)
    with pytest.raises(ConfigError, match="student_forcing_backprop .* set distill.student_forcing > 0"):
        run_config(assets, tmp_path, distill={"kind": "trajectory", "student_steps": 4, "teacher_steps": 16,
                                              "student_forcing_backprop": True}, **kw)


def test_a_deeper_student_starts_as_its_teacher_and_a_shallower_one_is_refused(assets, tmp_path):
    """A student with more ResBlocks per level than its teacher (stage.unet num_res_blocks) starts from the teacher's
    weights, its extra blocks identities (zero last convolution): it computes exactly what the teacher computes,
    while the extra blocks' other weights are random (so they train). Fewer blocks or other levels: one line."""
    from openimagen.train.trainer import Trainer

    teacher_dir = _teacher(assets, tmp_path)
    sampling = {"sampler": "ddim", "steps": 1, "guidance": 1.0, "spacing": "time", "threshold": "static"}
    distill = {"kind": "trajectory", "student_steps": 1, "teacher_steps": 2, "trajectories": 2}
    deeper = {"preset": "tiny", "overrides": {"text_dim": 16, "num_res_blocks": [2, 3]}}
    trainer = Trainer(run_config(assets, tmp_path / "run", init={"model": str(teacher_dir)},
                                 stage={"sampling": sampling, "unet": deeper}, distill=distill))
    student, teacher = trainer.stage.denoiser, trainer.teacher.denoiser
    assert student.net.config.num_res_blocks == (2, 3) and teacher.net.config.num_res_blocks == (1, 1)
    extra = student.net.down[1].res[2]
    assert extra.conv2.weight.abs().sum() == 0 and extra.conv1.weight.abs().sum() > 0
    x, sigma = torch.randn(3, 3, 16, 16), torch.tensor([0.3, 1.0, 5.0])
    cond = Cond(text=torch.randn(3, 5, 16), mask=torch.ones(3, 5, dtype=torch.bool))
    with torch.no_grad():
        torch.testing.assert_close(student(x, sigma, cond), teacher(x, sigma, cond), rtol=0, atol=1e-6)
        student.net.down[1].res[2].conv2.bias.fill_(0.1)            # the extra block is on the student's path
        assert not torch.allclose(student(x, sigma, cond), teacher(x, sigma, cond), atol=1e-3)
    other = {"preset": "tiny", "overrides": {"text_dim": 16, "num_res_blocks": [1, 1, 1], "channel_mults": [1, 2, 2]}}
    with pytest.raises(ConfigError, match=r"num_res_blocks \[1, 1, 1\] cannot start from .*'s \[1, 1\]: it needs"):
        Trainer(run_config(assets, tmp_path / "run2", init={"model": str(teacher_dir)},
                           stage={"sampling": sampling, "unet": other}, distill=distill))
    from openimagen.train.init import check_growth

    with pytest.raises(ConfigError, match=r"num_res_blocks \[1, 2\] cannot start from T's \[2, 2\]"):
        check_growth((2, 2), (1, 2), "T")                          # fewer blocks than the source on a level


@pytest.mark.parametrize("backprop", [False, True])
def test_student_forcing_backprop_trains_the_first_step_through_the_second(tmp_path, backprop):
    """A student x0 = p x (one parameter), every example forced at step 1: the loss's gradient in p is the closed
    form's, with the student's first step inside the graph (backprop) or held constant (otherwise)."""
    obj = TrajectoryDistillationObjective(_Teacher(), SamplingConfig(sampler="ddim", steps=8, guidance=1.0,
                                                                     spacing="time"),
                                          SCHEDULE, 4, 4, tmp_path / "bank", student_forcing=1.0,
                                          student_threshold="none", student_forcing_steps=(1,),
                                          student_forcing_backprop=backprop)
    n, b = 4, 64
    x = torch.randn(n, 5, 3, 4, 4, generator=torch.Generator().manual_seed(2))
    obj.bank = TrajectoryBank(x, torch.randn(n, 2, 3), torch.ones(n, 2, dtype=torch.bool))
    batch = TrainBatch(image=torch.zeros(b, 3, 4, 4), text=torch.zeros(b, 2, 3), mask=torch.ones(b, 2, dtype=bool))
    p = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    loss = obj(lambda x, sigma, cond: p.float() * x, batch, torch.Generator().manual_seed(11)).sum()
    (grad,) = torch.autograd.grad(loss, p)

    replay = torch.Generator().manual_seed(11)
    k = (torch.rand(b, generator=replay) * n).long().clamp(max=n - 1)
    j = (torch.rand(b, generator=replay) * 4).long().clamp(max=3)
    forced = j == 1
    assert forced.any() and (~forced).any()
    q = p.detach().clone().requires_grad_(True)
    g = obj.grid.double()
    x0 = x[k, 0].double()
    first = (q if backprop else q.detach()) * x0
    own = first + (g[1] / g[0]) * (x0 - first)                                    # one DDIM step of the student
    start = torch.where(forced.reshape(-1, 1, 1, 1), own, x[k, j].double())
    sj, sn = g[j].reshape(-1, 1, 1, 1), g[j + 1].reshape(-1, 1, 1, 1)
    target = (x[k, j + 1].double() - (sn / sj) * start) / (1 - sn / sj)
    expected = ((q * start - target).pow(2).flatten(1).mean(1) * (g[j].pow(-2) + 1)).sum()
    (want,) = torch.autograd.grad(expected, q)
    torch.testing.assert_close(grad, want, rtol=1e-3, atol=0)
