"""Issue 13, point 5: the adversarial SR objective. Its discriminator and generator losses move the expected way
on a tiny run; it trains through the ordinary trainer (same checkpoints, exact resume with the discriminator's
state); the config refuses it where it does not apply."""
import pytest
import torch

from openimagen.errors import ConfigError
from openimagen.nn import get_preset
from openimagen.pipeline.config import StageConfig
from openimagen.pipeline.stage import Stage
from openimagen.train.adversarial import AdversarialObjective, PatchDiscriminator
from openimagen.train.checkpoint import OBJECTIVE, Checkpoint, checkpoint_dirs
from openimagen.train.objective import TrainBatch
from openimagen.train.step import DiffusionObjective
from openimagen.train.trainer import train
from tests.train.conftest import run_config


def _tiny_sr(seed=0):
    torch.manual_seed(seed)
    cfg = StageConfig(unet=get_preset("tiny-sr", text_dim=8), resolution=32, lowres_resolution=16).validate()
    return Stage(cfg)


def _batch(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 32, 32, generator=g) * 2 - 1
    x = torch.nn.functional.avg_pool2d(x, 3, 1, 1).clamp(-1, 1)            # some structure, still in [-1, 1]
    return TrainBatch(x, torch.randn(n, 6, 8, generator=g), torch.ones(n, 6, dtype=torch.bool))


def test_patch_discriminator_shapes():
    d = PatchDiscriminator(8)
    assert d(torch.zeros(2, 3, 64, 64), torch.zeros(2, 3, 32, 32)).shape == (2, 1, 8, 8)


def test_discriminator_learns_to_separate_and_the_generator_learns_to_fool_it():
    stage = _tiny_sr()
    obj = AdversarialObjective(DiffusionObjective(stage.config, stage.schedule), weight=1.0, r1_gamma=0.1, lr=2e-3,
                               channels=8)
    batch, gens = _batch(), lambda s: [torch.Generator().manual_seed(100 * s + k) for k in range(4)]
    # the discriminator alone (generator frozen): its hinge loss falls, real and fake logits move apart
    first = None
    for step in range(30):
        obj(stage.denoiser, batch, gens(step))
        m = obj.metrics()
        first = first or m
    assert m["d_loss"] < first["d_loss"] and m["d_real"] - m["d_fake"] > first["d_real"] - first["d_fake"]
    # the generator alone against the now fixed discriminator: its adversarial loss falls
    obj.discriminator_step = lambda *a: 0.0
    opt = torch.optim.Adam(stage.denoiser.parameters(), lr=1e-3)
    adv = []
    for step in range(15):
        loss = obj(stage.denoiser, batch, gens(0))
        adv.append(obj.metrics()["g_adv"])
        opt.zero_grad()
        loss.mean().backward()
        opt.step()
    assert adv[-1] < adv[0]


def test_adversarial_run_resumes_exactly_with_the_discriminator(assets, tmp_path):
    adv = {"weight": 0.5, "r1_gamma": 0.5, "lr": 1e-3, "channels": 8}
    straight = train(run_config(assets, tmp_path / "a", sr=True, max_steps=4, adversarial=adv))
    assert straight.step == 4
    cut = train(run_config(assets, tmp_path / "b", sr=True, max_steps=2, adversarial=adv))
    ckpt = Checkpoint.read(cut.checkpoint)
    assert (ckpt.path / OBJECTIVE).is_file() and any(k.startswith("disc/") for k in ckpt.tensors(OBJECTIVE))
    train(run_config(assets, tmp_path / "b", sr=True, max_steps=4, adversarial=adv), resume=tmp_path / "b")
    a, b = (Checkpoint.read(checkpoint_dirs(tmp_path / r)[-1]) for r in ("a", "b"))
    for name in ("model.safetensors", OBJECTIVE):
        ta, tb = a.tensors(name), b.tensors(name)
        assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta), name
    rows = (tmp_path / "a" / "metrics.jsonl").read_text()
    assert '"d_loss"' in rows and '"g_adv"' in rows


def test_config_refuses_adversarial_where_it_does_not_apply(assets, tmp_path):
    with pytest.raises(ConfigError, match="super-resolution"):
        run_config(assets, tmp_path / "r", adversarial={"weight": 0.1})
    with pytest.raises(ConfigError, match="adversarial.weight"):
        run_config(assets, tmp_path / "r", sr=True, adversarial={"weight": -1})
