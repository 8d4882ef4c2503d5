"""The held-out trajectory error of a trajectory-distilled student (openimagen.eval.trajectory_error). Closed forms:
a stage scored on its own DDIM trajectories has zero error at every step but the last, whose error is the final
clamp to [-1, 1]; a denoiser that always answers 0 has error mean(x0~^2), the landing target's. Plus the command:
one line per bank, one-line errors."""
import pytest
import torch

from openimagen.diffusion.cond import Cond
from openimagen.diffusion.schedules import sampling_sigmas
from openimagen.errors import InvalidArgumentError
from openimagen.eval.trajectory_error import main, trajectory_errors
from openimagen.pipeline import Stage
from openimagen.pipeline.config import SamplingConfig
from openimagen.train.overfit import stage_configs
from openimagen.train.trajectory import TrajectoryBank, landing_target, sample_trajectories

STEPS = 3


def _stage() -> Stage:
    torch.manual_seed(0)
    cfg = stage_configs()[0]                                          # the tiny base stage
    stage = Stage(cfg).eval()
    for p in stage.parameters():
        p.data += 0.05 * torch.randn_like(p)
    return stage


def _own_bank(stage: Stage, b: int = 3) -> TrajectoryBank:
    """The stage's own trajectories: DDIM, unguided, no thresholding, on the "time" grid the student samples on."""
    sampling = SamplingConfig(sampler="ddim", steps=STEPS, guidance=1.0, threshold="none", spacing="time")
    text = torch.randn(b, 5, stage.config.unet.text_dim, generator=torch.Generator().manual_seed(1))
    mask = torch.ones(b, 5, dtype=torch.bool)
    return sample_trajectories(stage, sampling, STEPS, text, mask, [torch.Generator().manual_seed(s) for s in range(b)])


def test_a_stage_on_its_own_ddim_trajectories_has_zero_error_but_the_clamp_and_a_changed_one_does_not():
    stage = _stage()
    bank = _own_bank(stage)
    grid = sampling_sigmas(stage.schedule, STEPS, "time")
    scale = bank.x[:, -1].pow(2).mean()
    errors = trajectory_errors(stage.denoiser, bank, grid, batch_size=2)          # two batches: 2 + 1 trajectories
    assert errors.shape == (STEPS,) and errors.dtype == torch.float64
    assert float(errors[:-1].max()) < 1e-8 * float(scale) + 1e-10
    # the last state is the sample, clamped to [-1, 1]: the last step's error is exactly the clamp's residual
    x_last = bank.x[:, -2]
    with torch.no_grad():
        d = stage.denoiser(x_last, torch.full((3,), float(grid[-2])), Cond(text=bank.text, mask=bank.mask))
    residual = (d.double() - d.double().clamp(-1, 1)).pow(2).mean()
    assert float(residual) > 0 and float(errors[-1]) == pytest.approx(float(residual), rel=1e-4, abs=1e-9)
    for p in stage.parameters():
        p.data += 0.05 * torch.randn_like(p)
    assert float(trajectory_errors(stage.denoiser, bank, grid).min()) > 1e-6


class _Zero(torch.nn.Module):
    device, dtype = torch.device("cpu"), torch.float32

    def forward(self, x, sigma, cond):
        return torch.zeros_like(x)


def test_the_error_of_a_zero_denoiser_is_the_landing_targets_mean_square():
    g = torch.Generator().manual_seed(3)
    grid = torch.tensor([4.0, 1.5, 0.3, 0.0], dtype=torch.float64)
    x = torch.randn(5, 4, 3, 4, 4, generator=g) * grid.float().reshape(1, -1, 1, 1, 1).clamp(min=0.2)
    bank = TrajectoryBank(x, torch.randn(5, 2, 8), torch.ones(5, 2, dtype=torch.bool))
    errors = trajectory_errors(_Zero(), bank, grid)
    for j in range(3):
        r = float(grid[j + 1] / grid[j])
        expected = ((x[:, j + 1].double() - r * x[:, j].double()) / (1 - r)).pow(2).mean()
        assert float(errors[j]) == pytest.approx(float(expected), rel=1e-5)
    torch.testing.assert_close(landing_target(x[:, 2], x[:, 3], grid[2], grid[3]), x[:, 3])  # last step: the sample


def test_a_bank_of_the_wrong_length_or_an_empty_one_is_refused():
    grid = torch.tensor([4.0, 1.0, 0.0], dtype=torch.float64)
    bank = TrajectoryBank(torch.zeros(2, 4, 3, 4, 4), torch.zeros(2, 2, 8), torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(InvalidArgumentError, match="3 steps, the student 2"):
        trajectory_errors(_Zero(), bank, grid)
    with pytest.raises(InvalidArgumentError, match="empty"):
        trajectory_errors(_Zero(), TrajectoryBank.empty(), grid)


def test_the_command_prints_one_line_per_bank_and_one_line_errors(tmp_path, capsys):
    stage = _stage()
    stage.save(tmp_path / "stage")
    _own_bank(stage).save(tmp_path / "bank" / "rank0-000000.safetensors")
    assert main([str(tmp_path / "stage"), str(tmp_path / "bank")]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "3 trajectories, x0 error per step" in out[0]
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "stage"), str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: no trajectory chunks (*.safetensors) in {tmp_path / 'empty'}"]
    assert main([str(tmp_path / "nowhere"), str(tmp_path / "bank")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert main([str(tmp_path / "stage"), str(tmp_path / "bank"), "--batch-size", "0"]) == 2
    assert "--batch-size must be >= 1" in capsys.readouterr().err


def test_a_bfloat16_network_is_scored_against_the_float32_bank():
    stage = _stage()
    bank = _own_bank(stage, b=2)
    grid = sampling_sigmas(stage.schedule, STEPS, "time")
    low = Stage(stage.config).eval()
    low.load_state_dict(stage.state_dict())
    low = low.to(torch.bfloat16)
    errors = trajectory_errors(low.denoiser, bank, grid)
    exact = trajectory_errors(stage.denoiser, bank, grid)
    assert errors.dtype == torch.float64 and bool(torch.isfinite(errors).all())
    assert float(errors[:-1].max()) < 1e-3 * float(bank.x[:, -1].pow(2).mean())      # bf16 rounding, not garbage
    assert float(errors[-1]) == pytest.approx(float(exact[-1]), rel=0.1)
