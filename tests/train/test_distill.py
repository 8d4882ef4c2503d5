"""Issue 15, point 1 (guidance distillation, Meng et al. 2023): a student with a guidance input, trained through the
pluggable objective from a teacher stage; it starts as exactly the teacher's conditional estimate, its loss falls,
its output then depends on the guidance input, and it samples with one network pass per step."""
import torch

from openimagen.diffusion.cond import Cond
from openimagen.pipeline import Pipeline, Stage
from openimagen.train.export import export_pipeline
from openimagen.train.trainer import load_into_student, train
from tests.train.conftest import run_config


def _teacher(assets, tmp_path):
    base = train(run_config(assets, tmp_path / "teacher-run", max_steps=2))
    return export_pipeline([base.run_dir], tmp_path / "teacher")


def _distill_config(assets, tmp_path, teacher, **kw):
    return run_config(assets, tmp_path / "student-run", init={"model": str(teacher)},
                      stage={"unet": {"preset": "tiny", "overrides": {"text_dim": 16, "guidance_cond": True}}},
                      distill={"guidance_min": 0.0, "guidance_max": 4.0}, **kw)


def test_the_student_starts_as_the_teachers_conditional_estimate(assets, tmp_path):
    teacher = Pipeline.from_pretrained(_teacher(assets, tmp_path), watermark=None).stages[0]
    cfg = teacher.config
    from dataclasses import replace

    student = Stage(replace(cfg, unet=replace(cfg.unet, guidance_cond=True)))
    load_into_student(student.denoiser.net, teacher.denoiser.net.state_dict(), tmp_path)
    x, sigma = torch.randn(3, 3, 16, 16), torch.tensor([0.3, 1.0, 5.0])
    cond = Cond(text=torch.randn(3, 5, 16), mask=torch.ones(3, 5, dtype=torch.bool))
    with torch.no_grad():
        ref = teacher.denoiser(x, sigma, cond)
        for w in (0.0, 2.0, 7.5):
            got = student.denoiser(x, sigma, Cond(text=cond.text, mask=cond.mask, guidance=torch.full((3,), w)))
            assert torch.equal(got, ref)


def test_distillation_lowers_its_loss_and_the_student_follows_the_guidance_input(assets, tmp_path):
    teacher = _teacher(assets, tmp_path)
    cfg = _distill_config(assets, tmp_path, teacher, max_steps=40, seed=5,
                          optimiser={"lr": 3e-3, "warmup_steps": 0, "decay": "constant"}, log={"log_every": 1})
    result = train(cfg)
    first, last = sum(result.losses[:8]) / 8, sum(result.losses[-8:]) / 8
    assert last < first
    student = export_pipeline([result.run_dir], tmp_path / "student")
    pipe = Pipeline.from_pretrained(student, watermark=None)
    st = pipe.stages[0]
    assert st.config.unet.guidance_cond
    x, sigma = torch.randn(2, 3, 16, 16), torch.tensor([1.0, 1.0])
    cond = Cond(text=torch.randn(2, 5, 16), mask=torch.ones(2, 5, dtype=torch.bool))
    with torch.no_grad():
        a = st.denoiser(x, sigma, Cond(text=cond.text, mask=cond.mask, guidance=torch.zeros(2)))
        b = st.denoiser(x, sigma, Cond(text=cond.text, mask=cond.mask, guidance=torch.full((2,), 4.0)))
    assert not torch.allclose(a, b)
    batches = []
    st.denoiser.net.register_forward_hook(lambda m, args, out: batches.append(args[0].shape[0]))
    pipe("a red circle", steps=3, guidance=4.0, seed=0, batch_invariant=False)
    assert batches == [1, 1, 1]                                      # one pass per step; a teacher runs 2 per step


def test_distill_config_is_checked(assets, tmp_path):
    import pytest

    from openimagen.errors import ConfigError

    with pytest.raises(ConfigError, match="guidance_cond: true"):
        run_config(assets, tmp_path / "r", init={"model": "default"}, distill={"guidance_max": 4.0})
    with pytest.raises(ConfigError, match="init.model"):
        run_config(assets, tmp_path / "r", distill={},
                   stage={"unet": {"preset": "tiny", "overrides": {"text_dim": 16, "guidance_cond": True}}})
    with pytest.raises(ConfigError, match="guidance_min"):
        run_config(assets, tmp_path / "r", init={"model": "default"}, distill={"guidance_min": 5.0, "guidance_max": 1.0},
                   stage={"unet": {"preset": "tiny", "overrides": {"text_dim": 16, "guidance_cond": True}}})


def test_a_student_exports_to_onnx_with_its_guidance_input(assets, tmp_path):
    from openimagen.accel.onnx import export_onnx, use_onnx

    teacher = _teacher(assets, tmp_path)
    result = train(_distill_config(assets, tmp_path, teacher, max_steps=2))
    pipe = Pipeline.from_pretrained(export_pipeline([result.run_dir], tmp_path / "student"), watermark=None)
    meta = export_onnx(pipe, tmp_path / "onnx")
    assert meta["stages"]["stage0_base"]["inputs"][-1] == "guidance"
    assert meta["stages"]["stage0_base"]["parity_max_abs"] <= 1e-3
    ref = pipe("a red circle", steps=3, guidance=3.0, seed=1).stages[-1]
    got = use_onnx(pipe, tmp_path / "onnx")("a red circle", steps=3, guidance=3.0, seed=1).stages[-1]
    assert float((ref - got).abs().max()) <= 1e-3
