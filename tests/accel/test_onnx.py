"""Issue 15, point 2: each stage's network exported to ONNX, the whole cascade through ONNX Runtime, with parity
to PyTorch (max |difference| <= 1e-3 on the tiny cascade), refused for other weights, and the CLI round trip."""
import json
import shutil
import subprocess
import sys

import pytest

from openimagen.accel.onnx import META, OnnxNet, export_onnx, use_onnx
from openimagen.errors import InvalidArgumentError, ModelLoadError
from openimagen.pipeline import Pipeline
from tests.pipeline.fixtures import tiny_pipeline

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The tiny cascade saved as a model folder (weights hashed as the CLI loads them) and its export."""
    root = tmp_path_factory.mktemp("onnx")
    model = tiny_pipeline().save_pretrained(root / "model")
    meta = export_onnx(Pipeline.from_pretrained(model), root / "tiny-onnx")
    return root / "tiny-onnx", meta, model


def test_export_writes_a_graph_per_stage_with_its_measured_parity(exported):
    folder, meta, _ = exported
    assert sorted(p.name for p in folder.iterdir()) == [META, "stage0_base.onnx", "stage1_sr.onnx"]
    assert json.loads((folder / META).read_text()) == meta
    for name, info in meta["stages"].items():
        assert 0 <= info["parity_max_abs"] <= 1e-3, name
    assert meta["stages"]["stage1_sr"]["inputs"][-2:] == ["lowres", "c_aug"]


def test_cascade_through_onnx_runtime_matches_pytorch(exported):
    pipe = Pipeline.from_pretrained(exported[2])
    settings = dict(prompts=["a red circle", "two blue squares", ""], steps=4, seed=3, guidance=3.0,
                    batch_invariant=False)                               # one batch of 3: the dynamic batch axis
    ref = pipe(**settings).stages
    use_onnx(pipe, exported[0])
    assert all(isinstance(st.denoiser.net, OnnxNet) for st in pipe.stages)
    got = pipe(**settings).stages
    for r, g in zip(ref, got):
        assert r.shape == g.shape and float((r - g).abs().max()) <= 1e-3
    # and the difference is not zero because nothing ran: another seed moves the images by far more
    other = pipe(**{**settings, "seed": 4}).stages[-1]
    assert float((other - got[-1]).abs().max()) > 0.1


def test_graphs_of_other_weights_are_refused(exported):
    pipe = tiny_pipeline(seed=1)
    with pytest.raises(ModelLoadError, match="other weights than stage stage0_base"):
        use_onnx(pipe, exported[0])
    with pytest.raises(ModelLoadError, match="not an ONNX export"):
        use_onnx(pipe, exported[0].parent)


def test_export_never_overwrites_what_is_not_an_export(exported, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(InvalidArgumentError, match="not an ONNX export"):
        export_onnx(tiny_pipeline(), tmp_path, overwrite=True)
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_cli_generates_with_an_export_and_refuses_to_overwrite_it(exported, tmp_path):
    """The CLI's own export is run by the variant test below; here the module's export (same weights) is reused."""
    model = exported[2]
    shutil.copytree(exported[0], tmp_path / "onnx")
    run = lambda *a: subprocess.run([sys.executable, "-m", "openimagen", *a], capture_output=True, text=True,
                                    timeout=600)
    again = run("export-onnx", str(model), "-o", str(tmp_path / "onnx"))
    assert again.returncode == 2 and again.stderr.startswith("error: ") and "--overwrite" in again.stderr
    gen = run("generate", "a red circle", "--model", str(model), "--onnx", str(tmp_path / "onnx"), "--steps", "2",
              "-o", str(tmp_path / "x.png"), "--no-progress", "--no-policy")
    assert gen.returncode == 0, gen.stderr[-2000:]
    assert (tmp_path / "x.png").stat().st_size > 0
    bench = run("bench", "--model", str(model), "--onnx", str(tmp_path / "onnx"), "--steps", "2", "--batch-sizes", "1",
                "--repeats", "1", "--out", str(tmp_path / "b.json"), "--no-progress")
    assert bench.returncode == 0 and "runtime onnxruntime" in bench.stdout, bench.stderr[-2000:]
    assert json.loads((tmp_path / "b.json").read_text())["settings"]["runtime"].startswith("onnxruntime")
    bad = run("generate", "a red circle", "--onnx", str(tmp_path / "onnx"), "--steps", "2",
              "-o", str(tmp_path / "y.png"), "--no-progress")       # the shipped model: other weights
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "other weights" in bad.stderr


def test_cli_exports_a_variant_and_generates_with_it(tmp_path):
    model = tiny_pipeline().save_pretrained(tmp_path / "model")
    tiny_pipeline(seed=1).stages[0].save(model / "stage0_student")
    cfg = json.loads((model / "pipeline.json").read_text())
    cfg["variants"] = {"fast": ["stage0_student", "stage1_sr"]}
    (model / "pipeline.json").write_text(json.dumps(cfg))
    run = lambda *a: subprocess.run([sys.executable, "-m", "openimagen", *a], capture_output=True, text=True,
                                    timeout=600)
    done = run("export-onnx", str(model), "--variant", "fast", "-o", str(tmp_path / "onnx"))
    assert done.returncode == 0 and "--variant fast --onnx" in done.stdout, done.stderr[-2000:]
    assert "max |ONNX - PyTorch|" in done.stdout
    gen = run("generate", "a red circle", "--model", str(model), "--variant", "fast", "--onnx", str(tmp_path / "onnx"),
              "--steps", "2", "-o", str(tmp_path / "x.png"), "--no-progress", "--no-policy")
    assert gen.returncode == 0, gen.stderr[-2000:]
