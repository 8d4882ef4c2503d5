"""LoRA adapters in the pipeline (issue 14, point 2): closed form of one adapted layer, scale 0 and load/unload and
fuse/unfuse bit for bit, several adapters with their own scales, per-request adapters that never leak, records."""
import copy
import json

import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

from openimagen.errors import InvalidArgumentError, ModelLoadError
from openimagen.lora import AdapterMeta, LoraSettings, parse_lora_flag, read_adapter, save_adapter
from openimagen.lora import layers
from openimagen.pipeline import GenerationRequest, Pipeline
from tests.pipeline.fixtures import tiny_pipeline

KW = dict(steps=3, seed=5)


def make_adapter(pipe: Pipeline, folder, stage: int = 0, seed: int = 0, **lora):
    """An adapter for ``pipe``'s stage with random (non-zero) A and B, written to ``folder``."""
    st_ = pipe.stages[stage]
    settings_ = LoraSettings(**{"rank": 4, "alpha": 4.0, **lora})
    net = copy.deepcopy(st_.denoiser.net)
    modules = layers.add_adapter(net, "x", settings_)
    g = torch.Generator().manual_seed(seed)
    for n, p in net.named_parameters():
        if ".lora_" in n:
            p.data = 0.2 * torch.randn(p.shape, generator=g)
    meta = AdapterMeta(stage=pipe.config.stages[stage], base_weights_sha256=st_.weights_sha256, lora=settings_,
                       modules=tuple(modules))
    return save_adapter(folder, layers.adapter_state(net, "x"), meta)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_pipeline().save_pretrained(tmp_path_factory.mktemp("lora_model") / "m")


@pytest.fixture
def pipe(model_dir):
    from tests.pipeline.fixtures import encoder

    return Pipeline.from_pretrained(model_dir, watermark=None, text_encoder=encoder())


@pytest.fixture(scope="module")
def adapters(model_dir, tmp_path_factory):
    from tests.pipeline.fixtures import encoder

    p = Pipeline.from_pretrained(model_dir, watermark=None, text_encoder=encoder())
    root = tmp_path_factory.mktemp("adapters")
    return {"a": make_adapter(p, root / "a", seed=1), "b": make_adapter(p, root / "b", seed=2),
            "sr": make_adapter(p, root / "sr", stage=1, seed=3, targets=("attention", "text", "conv"))}


def images(pipe, **kw):
    return pipe("a red circle", **KW, **kw).stages[-1]


def test_one_adapted_linear_layer_is_w_plus_scaled_ba():
    """Hu et al. 2021, Eq. 3: h = W x + (alpha / r) * scale * B A x; with two adapters, their sum."""
    torch.manual_seed(0)
    net = nn.Sequential()
    net.add_module("text", nn.Module())
    net.text.proj = nn.Linear(6, 5)
    x = torch.randn(3, 6)
    base = net.text.proj(x)
    layers.add_adapter(net, "p", LoraSettings(rank=2, alpha=3.0, targets=("text",)))
    layers.add_adapter(net, "q", LoraSettings(rank=4, alpha=2.0, targets=("text",)))
    layer = net.text.proj
    A = {n: torch.randn_like(layer.lora_A[n].weight) for n in "pq"}
    B = {n: torch.randn_like(layer.lora_B[n].weight) for n in "pq"}
    with torch.no_grad():
        for n in "pq":
            layer.lora_A[n].weight.copy_(A[n])
            layer.lora_B[n].weight.copy_(B[n])
        layers.activate(net, {"p": 0.5, "q": -2.0})
        got = net.text.proj(x)
    want = base + 0.5 * (3.0 / 2) * x @ A["p"].T @ B["p"].T - 2.0 * (2.0 / 4) * x @ A["q"].T @ B["q"].T
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    layers.activate(net, {})
    assert torch.equal(net.text.proj(x), base)


def test_scale_zero_and_no_adapter_give_the_base_image_bit_for_bit(pipe, adapters):
    base = images(pipe)
    name = pipe.load_lora(adapters["a"], scale=0.0)
    assert torch.equal(images(pipe), base)
    pipe.set_loras({name: 1.0})
    assert not torch.equal(images(pipe), base)
    assert torch.equal(images(pipe, loras={}), base)                   # this call only: none
    assert torch.equal(images(pipe, loras={name: 0.0}), base)
    assert pipe.loras.active == {name: 1.0}                            # the active set is back


def test_load_then_unload_restores_the_base_bit_for_bit_and_the_modules(pipe, adapters):
    before = {k: v.clone() for k, v in pipe.stages[0].denoiser.net.state_dict().items()}
    kinds = [type(m) for m in pipe.stages[0].denoiser.net.modules()]
    base = images(pipe)
    pipe.load_lora(adapters["a"])
    pipe.load_lora(adapters["sr"], scale=0.7)
    pipe.unload_lora()
    assert torch.equal(images(pipe), base)
    assert [type(m) for m in pipe.stages[0].denoiser.net.modules()] == kinds
    after = pipe.stages[0].denoiser.net.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], v) for k, v in before.items())
    assert all(p.requires_grad for p in pipe.stages[0].denoiser.net.parameters())


def test_fuse_matches_the_unfused_adapter_and_unfuse_restores_it_bit_for_bit(pipe, adapters):
    pipe.load_lora(adapters["a"], scale=0.8)
    pipe.load_lora(adapters["sr"])
    weights = {k: v.clone() for st_ in pipe.stages for k, v in st_.denoiser.net.state_dict().items()}
    unfused = images(pipe)
    pipe.fuse_lora()
    assert pipe.loras.fused
    torch.testing.assert_close(images(pipe), unfused, rtol=0, atol=1e-4)
    pipe.unfuse_lora()
    assert torch.equal(images(pipe), unfused)
    now = {k: v for st_ in pipe.stages for k, v in st_.denoiser.net.state_dict().items()}
    assert all(torch.equal(now[k], v) for k, v in weights.items())


def test_several_adapters_each_with_its_own_scale(pipe, adapters):
    a, b = pipe.load_lora(adapters["a"]), pipe.load_lora(adapters["b"])
    both = images(pipe)
    only_a, only_b = images(pipe, loras={a: 1.0}), images(pipe, loras={b: 1.0})
    assert not torch.equal(both, only_a) and not torch.equal(both, only_b)
    half = images(pipe, loras={a: 1.0, b: 0.5})
    assert not torch.equal(half, both)
    pipe.unload_lora(b)
    assert torch.equal(images(pipe), only_a)


def test_requests_with_other_adapters_never_share_a_batch_or_weights(pipe, adapters):
    a = pipe.load_lora(adapters["a"])
    r_a = GenerationRequest(prompts=("a red circle",), loras={a: 1.0}, **KW)
    r_none = GenerationRequest(prompts=("a red circle",), loras={}, **KW)
    with pytest.raises(InvalidArgumentError, match="or LoRA adapters than request 0"):
        pipe.generate_batch([r_a, r_none])
    alone_a, alone_none = pipe.generate(r_a).stages[-1], pipe.generate(r_none).stages[-1]
    for _ in range(2):                                                 # interleaved: no state leaks between calls
        assert torch.equal(pipe.generate(r_none).stages[-1], alone_none)
        assert torch.equal(pipe.generate(r_a).stages[-1], alone_a)
    with pytest.raises(InvalidArgumentError, match="no LoRA adapter named 'zzz' is loaded"):
        pipe.generate(GenerationRequest(prompts=("x",), loras={"zzz": 1.0}))


def test_the_record_names_the_adapters_and_recreates_the_image(pipe, adapters):
    a = pipe.load_lora(adapters["a"], scale=0.6)
    out = pipe("a red circle", **KW)
    record = json.loads(json.dumps(out.record(0)))
    assert record["request"]["loras"] == {a: 0.6}
    assert record["loras"][0]["sha256"] == read_adapter(adapters["a"]).sha256
    pipe.set_loras({})
    again = pipe(GenerationRequest.from_dict(record["request"]))
    assert torch.equal(again.stages[-1], out.stages[-1])


def test_bad_adapters_and_scales_are_one_line_errors(pipe, adapters, model_dir, tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        pipe.load_lora(tmp_path / "nope")
    with pytest.raises(ModelLoadError, match="is a model directory, not a LoRA adapter"):
        pipe.load_lora(model_dir)
    with pytest.raises(InvalidArgumentError, match=r"scale should be less than or equal to 10"):
        pipe.load_lora(adapters["a"], scale=11)
    with pytest.raises(InvalidArgumentError, match="finite"):
        pipe.load_lora(adapters["a"], scale=float("nan"))
    bad = tmp_path / "bad"                                             # a tensor the meta does not list
    from safetensors.torch import load_file, save_file

    bad.mkdir()
    (bad / "adapter.json").write_text((adapters["a"] / "adapter.json").read_text())
    tensors = load_file(str(adapters["a"] / "adapter.safetensors"))
    save_file({**tensors, "stem.weight": torch.zeros(1)}, str(bad / "adapter.safetensors"))
    with pytest.raises(ModelLoadError, match="'stem.weight', which is not an A or B matrix"):
        pipe.load_lora(bad)
    meta = json.loads((adapters["a"] / "adapter.json").read_text())
    (bad / "adapter.json").write_text(json.dumps({**meta, "lora": {**meta["lora"], "rank": "4"}}))
    with pytest.raises(ModelLoadError, match=r"lora\.rank"):
        pipe.load_lora(bad)
    assert not pipe.loras.loaded and torch.equal(images(pipe), images(pipe, loras={}))


def test_the_lora_flag_parses_path_and_scale(tmp_path):
    assert parse_lora_flag("a/b") == (tmp_path.__class__("a/b"), 1.0)
    assert parse_lora_flag("a/b:0.5") == (tmp_path.__class__("a/b"), 0.5)
    assert parse_lora_flag("c:/x") == (tmp_path.__class__("c:/x"), 1.0)
    with pytest.raises(InvalidArgumentError, match="--lora a:11: the scale"):
        parse_lora_flag("a:11")


@settings(max_examples=25, deadline=None)
@given(scales=st.dictionaries(st.sampled_from(["p", "q", "r"]), st.floats(-10, 10), max_size=3))
def test_any_active_set_then_none_leaves_the_base_output_bit_for_bit(scales):
    torch.manual_seed(1)
    net = nn.Sequential()
    net.add_module("text", nn.Module())
    net.text.proj = nn.Linear(4, 4)
    x = torch.randn(2, 4)
    base = net.text.proj(x).detach()
    for n in "pqr":
        layers.add_adapter(net, n, LoraSettings(rank=2, targets=("text",)))
        with torch.no_grad():
            net.text.proj.lora_B[n].weight.normal_()
    layers.activate(net, scales)
    kept = layers.fuse(net)
    layers.unfuse(kept)
    layers.activate(net, {})
    assert torch.equal(net.text.proj(x), base)
    for n in "pqr":
        layers.remove_adapter(net, n)
    assert type(net.text.proj) is nn.Linear and torch.equal(net.text.proj(x), base)
