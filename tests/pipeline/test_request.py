"""The typed generation request: validated in one place, resolved per stage, returned with the images; negative
prompts; half precision; the load-time transform hook; non-finite output refused."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from openimagen.errors import GenerationError, InvalidArgumentError, UnknownNameError
from openimagen.pipeline import GenerationRequest, Pipeline, SamplingConfig
from tests.pipeline.fixtures import encoder, tiny_pipeline

FAST = dict(steps=3)


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline()


# --- validation: one table, every field, each bad value names its field ------------------------------------------
BAD = [
    (dict(prompts=()), "prompts should have at least 1 item"),
    (dict(prompts=[None]), r"prompts\[0\] should be a valid string"),
    (dict(prompts=["a"], negative_prompt=3), "negative_prompt"),
    (dict(prompts=["a", "b"], negative_prompt=["x"]), "negative_prompt has 1 entries for 2 prompts"),
    (dict(prompts=["a"], num_images_per_prompt=0), "num_images_per_prompt should be greater than or equal to 1"),
    (dict(prompts=["a"], num_images_per_prompt=2.0), "num_images_per_prompt should be a valid integer"),
    (dict(prompts=["a"], seed=-1), "seed should be greater than or equal to 0"),
    (dict(prompts=["a"], seed=True), "seed should be a valid integer"),
    (dict(prompts=["a"], seed=2**63 - 1, num_images_per_prompt=2), "seed must be at most"),
    (dict(prompts=["a"], stop_at_stage=-1), "stop_at_stage should be greater than or equal to 0"),
    (dict(prompts=["a"], size=0), "size should be greater than or equal to 1"),
    (dict(prompts=["a"], sampler="plms"), "sampler: unknown sampler 'plms'; valid: ddim, ddpm, dpmpp_2m"),
    (dict(prompts=["a"], sampler=["ddim", "plms"]), r"sampler\[1\]: unknown sampler 'plms'"),
    (dict(prompts=["a"], steps=0), "steps should be greater than or equal to 1, got 0"),
    (dict(prompts=["a"], steps=[3, 0]), r"steps\[1\] should be greater than or equal to 1, got 0"),
    (dict(prompts=["a"], steps=3.0), "steps should be a valid integer, got 3.0"),
    (dict(prompts=["a"], steps=[]), "steps should have at least 1 item"),
    (dict(prompts=["a"], guidance=-1.0), "guidance should be greater than or equal to 0"),
    (dict(prompts=["a"], guidance=math.inf), "guidance should be a finite number"),
    (dict(prompts=["a"], guidance="high"), "guidance should be a valid number, got 'high'"),
    (dict(prompts=["a"], threshold="soft"), "threshold: unknown threshold 'soft'; valid: dynamic, none, static"),
    (dict(prompts=["a"], percentile=0.0), "percentile should be greater than 0"),
    (dict(prompts=["a"], percentile=[0.9, 1.5]), r"percentile\[1\] should be less than or equal to 1"),
    (dict(prompts=["a"], spacing="cosine"), "spacing: unknown spacing 'cosine'; valid: karras, logsnr, time"),
    (dict(prompts=["a"], aug_level=1.0), "aug_level should be less than 1"),
    (dict(prompts=["a"], aug_level=math.nan), "aug_level should be a finite number"),
    (dict(prompts=["a"], batch_invariant="yes"), "batch_invariant should be a valid boolean"),
    (dict(prompts=["a"], stepz=3), r"unknown field 'stepz' \(valid: aug_level, batch_invariant, guidance, loras, "),
]


@pytest.mark.parametrize("fields, match", BAD, ids=[m[:40] for _, m in BAD])
def test_bad_values_raise_invalid_argument_naming_the_field(fields, match):
    with pytest.raises(InvalidArgumentError, match=match) as info:
        GenerationRequest(**fields)
    assert "\n" not in str(info.value)
    if "unknown sampler" in match:
        assert isinstance(info.value, UnknownNameError)


@pytest.mark.parametrize("fields, match", [
    (dict(steps=[2, 2, 2]), "steps has 3 values but the cascade has 2 stages"),
    (dict(stop_at_stage=2), r"stop_at_stage must be a stage index in 0..1"),
    (dict(size=64), "makes 32x32 images"),
    (dict(stop_at_stage=0, size=16, guidance=[1.0, 2.0, 3.0]), r"or 1, one per stage that runs"),
])
def test_what_depends_on_the_cascade_is_checked_when_resolved(pipe, fields, match):
    with pytest.raises(InvalidArgumentError, match=match):
        pipe.resolve(GenerationRequest(prompts=["a"], **fields))


def test_the_pipeline_call_and_the_request_share_the_validation(pipe):
    with pytest.raises(InvalidArgumentError, match=r"steps\[1\] should be greater"):
        pipe("a", steps=[3, 0])
    with pytest.raises(InvalidArgumentError, match="not both"):
        pipe(GenerationRequest(prompts=["a"]), steps=3)


def test_stage_configs_use_the_same_rules():
    from openimagen.configs import dataclass_from_dict
    from openimagen.errors import ConfigError

    with pytest.raises(ConfigError, match="sampling: steps should be greater than or equal to 1, got 0"):
        dataclass_from_dict(SamplingConfig, {"steps": 0}, "sampling")
    with pytest.raises(ConfigError, match="guidance should be a finite number"):
        dataclass_from_dict(SamplingConfig, {"guidance": math.inf}, "sampling")


per_stage_steps = st.one_of(st.integers(-5, 40), st.lists(st.integers(-5, 40), min_size=1, max_size=3))


@settings(max_examples=150, deadline=None)
@given(steps=per_stage_steps, guidance=st.one_of(st.floats(allow_nan=True), st.lists(st.floats(), max_size=3)))
def test_property_a_request_is_valid_exactly_when_each_value_is_in_range(steps, guidance):
    def ok_steps(v):
        return all(1 <= s <= 10_000 for s in (v if isinstance(v, list) else [v])) and v != []

    def ok_guidance(v):
        return all(math.isfinite(g) and 0 <= g <= 100 for g in (v if isinstance(v, list) else [v])) and v != []

    try:
        req = GenerationRequest(prompts=["a"], steps=steps, guidance=guidance)
    except InvalidArgumentError as e:
        assert not (ok_steps(steps) and ok_guidance(guidance)), e
        assert "\n" not in str(e) and str(e).startswith(("steps", "guidance"))
    else:
        assert ok_steps(steps) and ok_guidance(guidance)
        assert req.steps == (tuple(steps) if isinstance(steps, list) else steps)


# --- what ran comes back -------------------------------------------------------------------------------------------
def test_output_carries_the_request_and_resolved_settings(pipe):
    out = pipe("a", steps=[2, 3], sampler=["ddim", "heun"], spacing="karras", threshold=["static", "none"],
               percentile=0.9, aug_level=0.3, guidance=1.5)
    assert isinstance(out.request, GenerationRequest)
    base, sr = out.settings
    assert (base.sampler, base.steps, base.spacing, base.threshold, base.percentile) == ("ddim", 2, "karras", "static", 0.9)
    assert (sr.sampler, sr.steps, sr.threshold, sr.aug_level, sr.guidance) == ("heun", 3, "none", 0.3, 1.5)
    defaults = pipe.resolve(GenerationRequest(prompts=["a"]))
    assert defaults == [s.config.sampling for s in pipe.stages]
    again = GenerationRequest.from_dict(out.record(0)["request"])
    assert pipe.resolve(again) == out.settings and again.seed == 0


def test_record_of_image_k_recreates_it_alone(pipe):
    out = pipe(["a", "b"], num_images_per_prompt=2, seed=4, batch_invariant=True, negative_prompt=["x", "y"], **FAST)
    rec = GenerationRequest.from_dict(out.record(3)["request"])
    assert rec.prompts == ("b",) and rec.seed == 7 and rec.negative_prompt == "y"
    assert torch.equal(pipe(rec).stages[-1][0], out.stages[-1][3])


# --- negative prompts ----------------------------------------------------------------------------------------------
def test_negative_prompt_changes_the_image_and_an_empty_one_is_the_plain_call(pipe):
    plain = pipe(["a red square", "a blue circle"], seed=1, guidance=3.0, **FAST).stages[-1]
    empty = pipe(["a red square", "a blue circle"], seed=1, guidance=3.0, negative_prompt="", **FAST).stages[-1]
    assert torch.equal(plain, empty)
    neg = pipe(["a red square", "a blue circle"], seed=1, guidance=3.0, negative_prompt="green", **FAST).stages[-1]
    assert (neg - plain).abs().mean() > 1e-3
    mixed = pipe(["a red square", "a blue circle"], seed=1, guidance=3.0, negative_prompt=["green", ""],
                 **FAST).stages[-1]
    assert torch.equal(mixed[1], plain[1]) and torch.equal(mixed[0], neg[0])


def test_negative_prompt_without_guidance_changes_nothing(pipe):
    """Bit-exact mode encodes each text alone: in batched mode the prompt is encoded together with the negative
    one, and a batched matmul may change the prompt's embedding in its last bits on some CPUs."""
    kw = dict(seed=1, guidance=1.0, batch_invariant=True, **FAST)
    plain = pipe("a red square", **kw).stages[-1]
    assert torch.equal(plain, pipe("a red square", negative_prompt="green", **kw).stages[-1])


# --- precision, device and dtype held by the stage, the load hook, non-finite output --------------------------------
@pytest.fixture(scope="module")
def saved(pipe, tmp_path_factory):
    return pipe.save_pretrained(tmp_path_factory.mktemp("model") / "m")


@pytest.mark.parametrize("dtype, mean_bound, max_bound", [(torch.float16, 0.01, 0.1), (torch.bfloat16, 0.05, 0.5)])
def test_half_precision_runs_close_to_float32(pipe, saved, dtype, mean_bound, max_bound):
    """fp16/bf16 run only the network in low precision; the sampler's state stays float32. Bounds: fp16 keeps 11
    bits, bf16 8, so bf16 is allowed about 8x fp16's error."""
    low = Pipeline.from_pretrained(saved, dtype=dtype, text_encoder=encoder())
    assert all(s.dtype == dtype and s.device.type == "cpu" for s in low.stages)
    ref = pipe(["a red square", "a blue circle"], seed=2, **FAST).stages
    out = low(["a red square", "a blue circle"], seed=2, **FAST).stages
    for r, o in zip(ref, out):
        assert o.dtype == torch.float32 and torch.isfinite(o).all()
        d = (o - r).abs()
        assert d.mean() <= mean_bound and d.max() <= max_bound, (dtype, d.mean(), d.max())


def test_stage_tracks_device_and_dtype_without_reading_weights(saved):
    stage = Pipeline.from_pretrained(saved, text_encoder=encoder()).stages[0]
    assert stage.dtype == torch.float32
    stage.to(torch.bfloat16)
    assert stage.dtype == torch.bfloat16 and stage.denoiser.net.stem.weight.dtype == torch.bfloat16
    stage.half()
    assert stage.dtype == torch.float16


class CountingWrapper(torch.nn.Module):
    """Stands in for a load-time transform (LoRA adapters, quantized layers): wraps the loaded network."""

    def __init__(self, net):
        super().__init__()
        self.inner, self.calls = net, 0

    def forward(self, *args, **kwargs):
        self.calls += 1
        return self.inner(*args, **kwargs)


def test_load_transform_hook_wraps_the_loaded_network(pipe, saved):
    wrapped = Pipeline.from_pretrained(saved, text_encoder=encoder(), transform=CountingWrapper)
    assert all(isinstance(s.denoiser.net, CountingWrapper) for s in wrapped.stages)
    out = wrapped("a red square", seed=2, **FAST)
    assert [s.denoiser.net.calls for s in wrapped.stages] == [3, 3]   # one call a step (cond+uncond batched)
    assert torch.equal(out.stages[-1], pipe("a red square", seed=2, **FAST).stages[-1])


def test_non_finite_weights_are_refused_naming_the_stage(saved, tmp_path):
    broken = Pipeline.from_pretrained(saved, text_encoder=encoder())
    with torch.no_grad():
        broken.stages[1].denoiser.net.stem.weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(GenerationError, match=r"stage 1 \(stage1_sr\) produced non-finite values"):
        broken("a", **FAST)


def test_model_hash_names_the_weights(pipe, saved):
    loaded = Pipeline.from_pretrained(saved, text_encoder=encoder())
    assert len(loaded.model_hash) == 16 and loaded.model_hash == Pipeline.from_pretrained(
        saved, text_encoder=encoder()).model_hash
    assert tiny_pipeline(seed=1).model_hash != pipe.model_hash
