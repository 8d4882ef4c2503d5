"""Pipeline: generation contract, seeds, save/load round trip and clear errors for bad input."""
import json

import numpy as np
import pytest
import torch

from openimagen.errors import InvalidArgumentError, ModelLoadError, UnknownNameError
from openimagen.pipeline import Pipeline
from tests.pipeline.fixtures import encoder, tiny_pipeline

FAST = dict(steps=3)


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline()


@pytest.fixture(scope="module")
def saved(pipe, tmp_path_factory):
    return pipe.save_pretrained(tmp_path_factory.mktemp("model") / "m")


def test_generates_every_stage(pipe):
    out = pipe(["a red square", "a blue circle"], num_images_per_prompt=2, **FAST)
    assert len(out.images) == 4 and out.images[0].size == (32, 32)
    assert [tuple(s.shape) for s in out.stages] == [(4, 3, 16, 16), (4, 3, 32, 32)]
    assert set(out.timings) == {"text", "stage0", "stage1", "total"}
    assert out.seeds == [0, 1, 2, 3]
    assert all(s.abs().max() <= 1 for s in out.stages)


def test_stop_at_stage_and_unconditional_prompt(pipe):
    out = pipe("", stop_at_stage=0, **FAST)
    assert out.images[0].size == (16, 16)


def test_text_changes_the_image(pipe):
    a = pipe("a red square", seed=3, **FAST).stages[-1]
    b = pipe("a blue circle", seed=3, **FAST).stages[-1]
    assert not torch.equal(a, b)


def test_batch_invariant_mode_reproduces_image_bit_for_bit_across_batches(pipe):
    """The opt-in exact mode: text encoder and network run per image, so image k's bits depend on its prompt and
    seed only. torch.equal on every stage: this fails on any CPU where the promise breaks."""
    alone = pipe(["a blue circle"], seed=7, batch_invariant=True, **FAST)
    batch = pipe(["x", "y", "a blue circle", "z"], seed=5, batch_invariant=True, **FAST)   # position 2 -> seed 7
    for s_alone, s_batch in zip(alone.stages, batch.stages):
        assert torch.equal(s_alone[0], s_batch[2])
    assert not torch.equal(batch.stages[-1][0], batch.stages[-1][1])


def test_default_batched_mode_reproduces_image_within_one_8bit_step(pipe):
    """The default batched mode's promise (README): a seed gives the same image whatever its batch, up to one 8-bit
    step per channel (floats differ in their last bits with the batch's kernels). A different seed differs by far
    more, so the check can fail."""
    alone = pipe(["a blue circle"], seed=7, **FAST)
    batch = pipe(["x", "y", "a blue circle", "z", "w", "v"], seed=5, **FAST)
    a, b = (np.asarray(im).astype(int) for im in (alone.images[0], batch.images[2]))
    assert np.abs(a - b).max() <= 1
    assert (alone.stages[-1][0] - batch.stages[-1][2]).abs().max() <= 1 / 255
    other = np.asarray(batch.images[3]).astype(int)
    assert np.abs(a - other).max() > 16


def test_per_stage_settings(pipe):
    calls = []
    pipe("a", steps=[2, 3], sampler=["ddim", "heun"], guidance=[1.0, 2.0],
         callback=lambda stage, i, s, x, d: calls.append(stage))
    assert calls == [0, 0, 1, 1, 1]                                    # the callback runs once per step


def test_sr_strength_starts_the_sr_stage_from_the_upsampled_low_res_image(pipe):
    """sr_strength = 1 is the plain cascade, bit for bit; a small sr_strength keeps the SR output near the bicubic
    upsampling of its own low-res input (it starts there, noised to a small sigma), far nearer than sampling from
    pure noise; the base stage is unchanged either way."""
    import torch.nn.functional as F

    plain = pipe("a red square", seed=2, **FAST)
    assert torch.equal(pipe("a red square", seed=2, sr_strength=1.0, **FAST).stages[-1], plain.stages[-1])
    near = pipe("a red square", seed=2, sr_strength=(1.0, 0.05), **FAST)
    assert torch.equal(near.stages[0], plain.stages[0])
    bicubic = F.interpolate(plain.stages[0], size=32, mode="bicubic", align_corners=False).clamp(-1, 1)
    d_near = (near.stages[-1] - bicubic).abs().mean()
    d_plain = (plain.stages[-1] - bicubic).abs().mean()
    assert d_near < 0.15 and d_near < d_plain / 4, (d_near, d_plain)
    assert near.settings[-1].sr_strength == 0.05


def test_save_load_round_trip_is_exact(pipe, saved):
    loaded = Pipeline.from_pretrained(saved, text_encoder=encoder())
    for a, b in zip(pipe.stages, loaded.stages):
        assert a.config == b.config
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert torch.equal(pipe("a red square", **FAST).stages[-1], loaded("a red square", **FAST).stages[-1])
    cfg = json.loads((saved / "pipeline.json").read_text())
    assert cfg["stages"] == ["stage0_base", "stage1_sr"] and cfg["text_encoder"] == "default"
    assert sorted(p.name for p in (saved / "stage1_sr").iterdir()) == ["config.json", "model.safetensors"]


def test_fp16_weights_load(pipe, tmp_path):
    path = pipe.save_pretrained(tmp_path / "half", dtype=torch.float16)
    loaded = Pipeline.from_pretrained(path, text_encoder=encoder())
    w = next(loaded.stages[0].parameters())
    assert w.dtype == torch.float32
    assert (path / "stage0_base" / "model.safetensors").stat().st_size < (
        pipe.save_pretrained(tmp_path / "full") / "stage0_base" / "model.safetensors").stat().st_size * 0.6


def copy_model(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_truncated_weights_give_clear_error(saved, tmp_path):
    m = copy_model(saved, tmp_path / "m")
    w = m / "stage1_sr" / "model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    with pytest.raises(ModelLoadError, match="truncated or not a safetensors file"):
        Pipeline.from_pretrained(m, text_encoder=encoder())


@pytest.mark.parametrize("damage, match", [
    (lambda m: (m / "pipeline.json").unlink(), "is not a model directory: it has no pipeline.json"),
    (lambda m: (m / "pipeline.json").write_text("{not json"), "not readable JSON"),
    (lambda m: (m / "stage0_base" / "model.safetensors").unlink(), "weights file .* is missing"),
    (lambda m: (m / "stage0_base" / "config.json").write_text('{"unet": {}, "resolution": 16, "colour": 1}'),
     "unknown stage config key"),
    (lambda m: (m / "stage0_base" / "model.safetensors").write_bytes(
        (m / "stage1_sr" / "model.safetensors").read_bytes()), "does not match its config"),
    (lambda m: (m / "pipeline.json").write_text(json.dumps(
        {"stages": ["stage0_base", "stage1_sr"], "text_encoder": "/no/such/encoder"})), "/no/such/encoder"),
    (lambda m: (m / "pipeline.json").write_text(json.dumps({"stages": ["stage1_sr", "stage0_base"]})),
     "first stage"),
])
def test_damaged_model_dirs(saved, tmp_path, damage, match):
    m = copy_model(saved, tmp_path / "m")
    damage(m)
    kwargs = {} if "encoder" in match else {"text_encoder": encoder()}
    with pytest.raises(ModelLoadError, match=match):
        Pipeline.from_pretrained(m, **kwargs)


def test_missing_model_dir(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        Pipeline.from_pretrained(tmp_path / "nope")


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(prompts=[]), InvalidArgumentError, "prompts should have at least 1 item"),
    (dict(prompts=["a"], sampler="plms"), UnknownNameError, "dpmpp_2m"),
    (dict(prompts=["a"], steps=0), InvalidArgumentError, "steps"),
    (dict(prompts=["a"], guidance=-1.0), InvalidArgumentError, "guidance"),
    (dict(prompts=["a"], size=64), InvalidArgumentError, "makes 32x32"),
    (dict(prompts=["a"], stop_at_stage=2), InvalidArgumentError, "stop_at_stage must be a stage index in 0..1"),
    (dict(prompts=["a"], num_images_per_prompt=0), InvalidArgumentError, "num_images_per_prompt"),
    (dict(prompts=["a"], steps=[2, 2, 2]), InvalidArgumentError, "2 stages"),
    (dict(prompts=[3]), InvalidArgumentError, r"prompts\[0\] should be a valid string"),
])
def test_bad_arguments(pipe, kwargs, error, match):
    with pytest.raises(error, match=match):
        pipe(**kwargs)


def test_large_requests_run_in_bounded_chunks_with_the_same_images():
    """Issue 10, kind 9: many images run in chunks of max_batch_images; each image keeps its prompt and seed."""
    from tests.pipeline.fixtures import tiny_pipeline

    pipe = tiny_pipeline()
    kwargs = dict(num_images_per_prompt=3, seed=11, steps=2, batch_invariant=True, negative_prompt=["x", "y"])
    whole = pipe(["a red circle", "a blue square"], **kwargs)
    seen = []
    pipe.max_batch_images = 4
    chunked = pipe(["a red circle", "a blue square"], callback=lambda st, step, s, x, d: seen.append(x.shape[0]),
                   **kwargs)
    assert chunked.seeds == whole.seeds == list(range(11, 17)) and len(chunked.images) == 6
    for a, b in zip(whole.stages, chunked.stages):
        assert torch.equal(a, b)
    assert max(seen) == 4 and set(seen) == {4, 2}                 # never more than the chunk in one batch
    assert chunked.record(5)["request"]["seed"] == 16
