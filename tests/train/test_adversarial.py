"""Issue 13, point 5: the adversarial SR objective. Its discriminator and generator losses move the expected way
on a tiny run; it trains through the ordinary trainer (same checkpoints, exact resume with the discriminator's
state); the config refuses it where it does not apply."""
import pytest
import torch

from openimagen.diffusion.cond import Cond
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


def _generator_steps(obj, stage, batch, gens, n):
    """``n`` Adam steps of the stage alone against ``obj``'s discriminator, now frozen: its g_adv after each."""
    obj.discriminator_step = lambda *a: 0.0
    opt = torch.optim.Adam(stage.denoiser.parameters(), lr=1e-3)
    adv = []
    for _ in range(n):
        loss = obj(stage.denoiser, batch, gens)
        adv.append(obj.metrics()["g_adv"])
        opt.zero_grad()
        loss.mean().backward()
        opt.step()
    return adv


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
    adv = _generator_steps(obj, stage, batch, gens(0), 15)
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


def test_samples_mode_runs_ddim_from_the_noised_bicubic_image():
    """Closed forms of the sampled path: a denoiser that always answers x0* lands exactly on x0* in any number
    of steps, and the first call sees the bicubic-upsampled low-res image plus noise at s(start)."""
    stage = _tiny_sr()
    obj = AdversarialObjective(DiffusionObjective(stage.config, stage.schedule), channels=8, judged="samples",
                               sample_steps=3, start=0.5)
    batch = _batch(2)
    lowres = torch.nn.functional.avg_pool2d(batch.image, 2)
    target = torch.full_like(batch.image, 0.25)
    seen = []

    def constant(x, sigma, cond):
        seen.append((x.clone(), sigma.clone(), cond.drop.clone()))
        return target

    cond = Cond(text=batch.text, mask=batch.mask, drop=torch.ones(2, dtype=torch.bool), lowres=lowres,
                aug_sigma=torch.zeros(2))
    gens = [torch.Generator().manual_seed(k) for k in range(2)]
    out = obj.sample(constant, lowres, cond, gens)
    assert torch.equal(out, target) and len(seen) == 3
    s0 = float(stage.schedule.noise_level(torch.tensor([0.5], dtype=torch.float64)))
    assert torch.allclose(seen[0][1], torch.full((2,), s0, dtype=seen[0][1].dtype))
    assert not seen[0][2].any()                                   # the text is never dropped: SR samples unguided
    up = torch.nn.functional.interpolate(lowres, size=(32, 32), mode="bicubic", align_corners=False).clamp(-1, 1)
    z = (seen[0][0] - up) / s0                                    # what was added to the upsampled image: N(0, 1)
    assert abs(float(z.mean())) < 0.1 and abs(float(z.std()) - 1) < 0.1


def test_samples_mode_with_consistency_judges_a_sample_whose_downsample_is_the_low_res_image():
    """With the stage's lowres_consistency, the sampled path is projected onto the low-res image: a denoiser that
    always answers a whitened image (x0* = 0.25 everywhere) lands on the projection of x0*, not on x0*."""
    from openimagen.diffusion.consistency import project_to_lowres

    stage = _tiny_sr()
    obj = AdversarialObjective(DiffusionObjective(stage.config, stage.schedule), channels=8, judged="samples",
                               sample_steps=2, start=0.5, consistency=True)
    batch = _batch(2)
    lowres = torch.nn.functional.interpolate(batch.image, size=(16, 16), mode="bilinear", antialias=True,
                                             align_corners=False)
    cond = Cond(text=batch.text, mask=batch.mask, drop=torch.zeros(2, dtype=torch.bool), lowres=lowres,
                aug_sigma=torch.zeros(2))
    target = torch.full_like(batch.image, 0.25)
    out = obj.sample(lambda x, sigma, cond: target, lowres, cond, [torch.Generator().manual_seed(k) for k in range(2)])
    assert torch.allclose(out, project_to_lowres(target, lowres), atol=1e-5)
    assert not torch.allclose(out, target, atol=0.05)


def test_samples_mode_backpropagates_through_every_step_and_fools_the_discriminator():
    stage = _tiny_sr()
    obj = AdversarialObjective(DiffusionObjective(stage.config, stage.schedule), weight=1.0, r1_gamma=0.0, lr=2e-3,
                               channels=8, judged="samples", sample_steps=2, start=0.5)
    batch, gens = _batch(), lambda s: [torch.Generator().manual_seed(100 * s + k) for k in range(4)]
    # the sample's gradient reaches the network through both steps: it differs from the last step's alone
    lowres = torch.nn.functional.avg_pool2d(batch.image, 2)
    _, _, cond = obj.diffusion.terms(stage.denoiser, batch, gens(0))
    grads = []
    for detach_first in (False, True):
        net = stage.denoiser
        calls = []

        def den(x, sigma, c, net=net, calls=calls, detach_first=detach_first):
            out = net(x, sigma, c)
            calls.append(1)
            return out.detach() if detach_first and len(calls) == 1 else out

        stage.denoiser.zero_grad()
        obj.sample(den, lowres, cond, gens(1)).square().sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in stage.denoiser.parameters() if p.grad is not None]))
    assert not torch.allclose(grads[0], grads[1])
    for step in range(20):                                        # the discriminator learns first
        obj(stage.denoiser, batch, gens(step))
    adv = _generator_steps(obj, stage, batch, gens(0), 12)       # then the generator alone against it
    assert adv[-1] < adv[0]


def test_config_reads_the_samples_mode_and_refuses_bad_values(assets, tmp_path):
    cfg = run_config(assets, tmp_path / "r", sr=True, adversarial={"judged": "samples", "sample_steps": 3})
    assert cfg.adversarial.judged == "samples" and cfg.adversarial.sample_steps == 3
    with pytest.raises(ConfigError, match="adversarial.judged"):
        run_config(assets, tmp_path / "r", sr=True, adversarial={"judged": "trajectory"})
    with pytest.raises(ConfigError, match="adversarial.sample_steps"):
        run_config(assets, tmp_path / "r", sr=True, adversarial={"sample_steps": 0})


def test_discriminator_warm_up_keeps_the_generator_term_off_and_is_checkpointed():
    stage = _tiny_sr()
    diffusion = DiffusionObjective(stage.config, stage.schedule)
    obj = AdversarialObjective(diffusion, weight=1.0, r1_gamma=0.0, lr=2e-3, channels=8, warmup_steps=3)
    batch, gens = _batch(), lambda s: [torch.Generator().manual_seed(100 * s + k) for k in range(4)]
    before = [p.clone() for p in obj.disc.parameters()]
    for step in range(3):                                      # warm-up: exactly the diffusion loss, D moves
        assert torch.equal(obj(stage.denoiser, batch, gens(step)), diffusion(stage.denoiser, batch, gens(step)))
    assert obj.metrics()["g_adv"] == 0.0 and obj.d_steps == 3
    assert any(not torch.equal(a, b) for a, b in zip(before, obj.disc.parameters()))
    tensors, meta = obj.state()
    again = AdversarialObjective(diffusion, weight=1.0, r1_gamma=0.0, lr=2e-3, channels=8, warmup_steps=3)
    again.load_state(tensors, meta)
    assert again.d_steps == 3
    for o in (obj, again):                                     # after it: the adversarial term is on, in both
        loss = o(stage.denoiser, batch, gens(7))
        assert not torch.equal(loss, diffusion(stage.denoiser, batch, gens(7))) and o.metrics()["g_adv"] != 0.0
