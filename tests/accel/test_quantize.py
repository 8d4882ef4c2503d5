"""Issue 15, point 3: static int8 quantization of the exported graphs (ONNX Runtime's quantizer), calibrated on
real prompts: the convolutions are int8 in the graph, the measured error is recorded, and the tiny cascade's
images stay within a stated bound of float32 (far inside what another seed changes)."""
import json

import pytest

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from openimagen.accel.onnx import META, export_onnx, use_onnx  # noqa: E402
from tests.pipeline.fixtures import tiny_pipeline  # noqa: E402

SETTINGS = dict(prompts=["a red circle", "two blue squares", "pizza"], steps=6, seed=3, guidance=3.0,
                batch_invariant=False)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("q")
    export_onnx(tiny_pipeline(), root / "fp32")
    meta = export_onnx(tiny_pipeline(), root / "int8", int8=True)
    return root / "fp32", root / "int8", meta


def test_int8_export_quantizes_the_inner_convolutions_and_records_its_error(exports):
    _, folder, meta = exports
    assert json.loads((folder / META).read_text()) == meta
    assert meta["int8"]["calibration_prompts"] and meta["int8"]["seed"] == 0
    assert sorted(p.name for p in folder.iterdir()) == [META, "stage0_base.onnx", "stage1_sr.onnx"]
    for name, info in meta["stages"].items():
        q = info["int8"]
        graph = onnx.load(str(folder / f"{name}.onnx")).graph
        convs = [n for n in graph.node if n.op_type == "Conv"]
        quantized = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
        # a quantized conv reads its input and weight through DequantizeLinear; the first and last stay float
        int8 = [c.name for c in convs if c.input[0] in quantized and c.input[1] in quantized]
        assert len(int8) == q["quantized_convs"] == len(convs) - 2, name
        assert sorted(set(c.name for c in convs) - set(int8)) == sorted(q["float_convs"]), name
        assert q["calibration_evaluations"] > 0 and q["check_evaluations"] > 0
        assert 0 < q["rel_error"] < 0.25, (name, q)


def test_int8_cascade_stays_within_a_stated_bound_of_float32(exports):
    fp32, int8, _ = exports
    ref = use_onnx(tiny_pipeline(), fp32)(**SETTINGS).stages[-1]
    got = use_onnx(tiny_pipeline(), int8)(**SETTINGS).stages[-1]
    other_seed = use_onnx(tiny_pipeline(), fp32)(**{**SETTINGS, "seed": 4}).stages[-1]
    diff = float((got - ref).abs().mean())
    # images in [-1, 1]: int8 moves them, but by less than a tenth of what another seed does
    assert 0 < diff <= 0.1 * float((other_seed - ref).abs().mean()), diff


def test_quantize_export_returns_a_new_record_and_leaves_the_callers_as_it_was(exports, tmp_path):
    import copy
    import shutil

    from openimagen.accel.quantize import quantize_export

    pipe = tiny_pipeline()
    shutil.copytree(exports[0], tmp_path / "x")                 # the fixture's float32 export: no second export
    meta = json.loads((tmp_path / "x" / META).read_text())
    before = copy.deepcopy(meta)
    out = quantize_export(pipe, tmp_path / "x", meta, prompts=["a red circle"])
    assert meta == before and "int8" not in meta
    assert out["int8"]["calibration_prompts"] == ["a red circle"] and all("int8" in s for s in out["stages"].values())
