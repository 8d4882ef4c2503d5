"""Issue 15, point 6: ``--fast`` builds the model's float32 ONNX graphs once into the cache and runs through them
(int8 graphs are tested in test_quantize.py); generate, edit and bench take it; bad combinations are one line."""
import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
import torch

pytest.importorskip("onnxruntime")

from openimagen.accel.fast import cache_root, fast_export, use_fast  # noqa: E402
from openimagen.accel.onnx import META, OnnxNet  # noqa: E402
from openimagen.errors import InvalidArgumentError  # noqa: E402
from openimagen.pipeline import Pipeline  # noqa: E402
from tests.pipeline.fixtures import tiny_pipeline  # noqa: E402


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENIMAGEN_CACHE", str(tmp_path / "oi"))
    assert cache_root() == tmp_path / "oi"
    monkeypatch.delenv("OPENIMAGEN_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "openimagen"


class Built(NamedTuple):
    root: Path                  # the --fast cache (OPENIMAGEN_CACHE) holding the model's float32 graphs
    model: Path                 # the tiny cascade, saved
    pipe: Pipeline              # that model, loaded, running through the graphs
    ref: torch.Tensor           # its PyTorch images before the graphs were swapped in
    message: str                # what the build wrote to stderr


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Built:
    """The tiny cascade saved and loaded as the CLI loads it (so its model hash is the CLI's), its --fast graphs
    built once for this module; the tests below read that cache instead of building their own."""
    root = tmp_path_factory.mktemp("fast-cache")
    model = tiny_pipeline().save_pretrained(tmp_path_factory.mktemp("fast-model") / "model")
    pipe = Pipeline.from_pretrained(model)
    ref = pipe(["a red circle"], steps=3, seed=1).stages[-1]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        use_fast(pipe, root=root)
    return Built(root, model, pipe, ref, err.getvalue())


def test_fast_builds_the_float32_export_once_and_runs_through_it(built):
    assert built.message.startswith("--fast: building the ONNX graphs") and built.message.count("\n") == 1
    folder = built.root / "onnx" / f"{built.pipe.model_hash[:16]}-fp32"
    meta = json.loads((folder / META).read_text())
    assert "int8" not in meta and all(isinstance(st.denoiser.net, OnnxNet) for st in built.pipe.stages)
    stamp = (folder / META).stat().st_mtime_ns
    assert fast_export(Pipeline.from_pretrained(built.model), root=built.root) == folder
    assert (folder / META).stat().st_mtime_ns == stamp                 # found in the cache, not written again
    got = built.pipe(["a red circle"], steps=3, seed=1).stages[-1]
    assert float((got - built.ref).abs().max()) <= 1e-3              # float32 graphs: the same images


def test_fast_refuses_a_cache_it_cannot_write(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InvalidArgumentError, match="OPENIMAGEN_CACHE"):
        use_fast(tiny_pipeline(), root=blocker, quiet=True)


def test_cli_fast(built, tmp_path):
    """The CLI finds the graphs that the fixture built for the same saved model in OPENIMAGEN_CACHE."""
    model = built.model
    env = {**os.environ, "OPENIMAGEN_CACHE": str(built.root)}
    run = lambda *a: subprocess.run([sys.executable, "-m", "openimagen", *a], capture_output=True, text=True,
                                    timeout=600, env=env)
    gen = run("generate", "a red circle", "--model", str(model), "--fast", "--steps", "2",
              "-o", str(tmp_path / "x.png"), "--no-progress", "--no-policy")
    assert gen.returncode == 0, gen.stderr[-2000:]
    assert "building" not in gen.stderr and (tmp_path / "x.png").stat().st_size > 0
    bench = run("bench", "--model", str(model), "--fast", "--steps", "2", "--batch-sizes", "1", "--repeats", "1",
                "--out", str(tmp_path / "b.json"), "--no-progress")
    assert bench.returncode == 0 and "building" not in bench.stderr, bench.stderr[-2000:]
    assert json.loads((tmp_path / "b.json").read_text())["settings"]["runtime"].startswith("fast")
    both = run("generate", "a red circle", "--model", str(model), "--fast", "--onnx", str(tmp_path),
               "-o", str(tmp_path / "y.png"))
    assert both.returncode == 2 and both.stderr.count("\n") == 1 and "pass one of them" in both.stderr
    gpu = run("generate", "a red circle", "--model", str(model), "--fast", "--dtype", "bfloat16",
              "-o", str(tmp_path / "y.png"))
    assert gpu.returncode == 2 and gpu.stderr.count("\n") == 1 and "float32" in gpu.stderr


def test_service_built_fast_runs_the_onnx_graphs(built, tmp_path, monkeypatch):
    from openimagen.serve.app import build_app

    monkeypatch.setenv("OPENIMAGEN_CACHE", str(built.root))
    model = built.model                                     # its graphs are in the cache: no second build
    app = build_app(model=str(model), fast=True, policy=None)
    assert all(isinstance(st.denoiser.net, OnnxNet) for st in app.state.service.pipe.stages)
    run = subprocess.run([sys.executable, "-m", "openimagen", "serve", "--model", str(model), "--fast", "--lora",
                          str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "--fast runs fixed ONNX graphs" in run.stderr
