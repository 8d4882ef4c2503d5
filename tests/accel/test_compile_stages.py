"""Compiling every stage with the cost paid up front (openimagen.accel.compile, `serve --compile`): the images are
the uncompiled ones, the hashes and records unchanged, the warm-up exercises both batching modes; refused with LoRA
adapters loaded. Uses torch.compile's eager backend (the graph capture without code generation: seconds, any CPU);
the inductor backend's numbers are checked in test_compile.py."""
import pytest
import torch

from openimagen.accel.compile import compile_stages
from openimagen.errors import InvalidArgumentError
from tests.pipeline.fixtures import tiny_pipeline


def test_compiled_stages_give_the_same_images_and_hash():
    pipe = tiny_pipeline()
    ref, h = pipe(["a red circle", "two blue squares"], steps=3, seed=2), pipe.model_hash
    torch._dynamo.reset()
    seconds = compile_stages(pipe, backend="eager")
    assert seconds > 0 and all(type(st.denoiser.net).__name__ == "OptimizedModule" for st in pipe.stages)
    got = pipe(["a red circle", "two blue squares"], steps=3, seed=2)
    assert all(torch.equal(a, b) for a, b in zip(ref.stages, got.stages)) and pipe.model_hash == h


def test_compile_is_refused_with_lora_adapters_loaded():
    pipe = tiny_pipeline()
    pipe.loras.loaded["x"] = object()                  # what load_lora records
    with pytest.raises(InvalidArgumentError, match="without LoRA"):
        compile_stages(pipe, backend="eager")
