"""``openimagen eval --sweep-steps`` (quality versus steps) and ``openimagen bench`` (speed and memory) on a tiny
random cascade: files, row counts, NFE, positive timings, reproducibility, and one-line errors for bad input."""
import argparse
import json

import pytest
import torch
from PIL import Image

from openimagen.eval.sweep import nfe_per_image, sweep, write_sweep
from openimagen.pipeline import SamplingConfig
from tests.eval.conftest import run_cli








def test_nfe_counts_guided_evaluations_twice_and_heun_steps():
    guided, unguided = SamplingConfig(guidance=3.0), SamplingConfig(guidance=1.0)
    assert nfe_per_image([SamplingConfig(sampler="ddim", steps=10, guidance=3.0)] * 2) == 40
    assert nfe_per_image([SamplingConfig(sampler="heun", steps=10, guidance=1.0)]) == 19
    assert nfe_per_image([guided, unguided]) == 2 * guided.steps + unguided.steps


def test_sweep_cli_writes_json_markdown_plot(model, tmp_path, capsys):
    out = tmp_path / "sweep"
    code, stdout, err = run_cli(capsys, "eval", "--model", model, "--sweep-steps", "1,2", "--samplers", "ddim,heun",
                            "--limit", "1", "--images-per-prompt", "1", "--seed", "3", "--out", out, "--no-progress")
    assert code == 0, err
    res = json.loads((out / "sweep.json").read_text())
    pairs = [(p["sampler"], p["steps"]) for p in res["points"]]
    assert pairs == [("ddim", 1), ("ddim", 2), ("heun", 1), ("heun", 2)]
    # the tiny cascade has two stages, both guided (weight 3): ddim n steps -> 2 * 2n, heun -> 2 * 2(2n - 1)
    assert [p["nfe"] for p in res["points"]] == [4, 8, 4, 12]
    assert all(0.0 <= p["metrics"]["alignment"] <= 1.0 for p in res["points"])
    assert res["settings"]["images_per_run"] == 6
    md = (out / "sweep.md").read_text()
    assert "| heun | 2 | 12 |" in md and md.count("\n| ddim | ") == 3          # 2 rows + 1 pivot row
    assert Image.open(out / "sweep.png").size[0] > 300
    run_json = json.loads((out / "ddim-2" / "results.json").read_text())
    assert run_json["settings"]["sampler"] == "ddim" and run_json["settings"]["steps"] == 2
    # seeded: a plain eval with the same sampler, steps and seed makes the same images
    code, _, _ = run_cli(capsys, "eval", "--model", model, "--sampler", "ddim", "--steps", "2", "--limit", "1",
                     "--images-per-prompt", "1", "--seed", "3", "--out", tmp_path / "plain", "--no-progress")
    assert code == 0
    first = run_json["samples"][0]["image"]
    assert Image.open(out / "ddim-2" / first).tobytes() == Image.open(tmp_path / "plain" / first).tobytes()


def test_sweep_library_plots_every_headline_metric(tmp_path):
    result = sweep(lambda s, n: {"alignment": n / 10, "frechet": 10 / n}, ["ddim", "dpmpp_2m"], [2, 4],
                   nfe=lambda s, n: 2 * n)
    paths = write_sweep(result, tmp_path)
    assert [p.nfe for p in result.points] == [4, 8, 4, 8] and result.metric_names == ["alignment", "frechet"]
    md = paths["markdown"].read_text()
    assert "| dpmpp_2m | 4 | 8 | 0.400 | 2.500 |" in md and "Fréchet" in md
    wide = Image.open(paths["plot"]).size[0]
    write_sweep(sweep(lambda s, n: {"alignment": 0.5}, ["ddim"], [2], nfe=lambda s, n: n), tmp_path / "one")
    assert wide > Image.open(tmp_path / "one" / "sweep.png").size[0]          # one panel per metric


def test_bench_writes_json_with_positive_numbers(model, tmp_path, capsys):
    out = tmp_path / "bench.json"
    code, stdout, err = run_cli(capsys, "bench", "--model", model, "--samplers", "ddim", "--steps", "1",
                            "--batch-sizes", "1,2", "--repeats", "2", "--warmup", "0", "--threads", "1",
                            "--out", out, "--no-progress")
    assert code == 0, err
    res = json.loads(out.read_text())
    assert res["settings"]["memory_method"] in ("VmHWM", "ru_maxrss") and res["settings"]["threads"] == 1
    rows = res["rows"]
    assert [(r["part"], r["batch_size"]) for r in rows] == [(p, b) for b in (1, 2) for p in ("cascade", "stage0",
                                                                                            "stage1")]
    for r in rows:
        assert r["sampler"] == "ddim" and r["steps"] == 1 and len(r["times"]) == 2
        assert r["seconds"] > 0 and r["images_per_second"] > 0 and r["peak_rss_mib"] > 0
        assert r["peak_gpu_mib"] is None
        assert r["seconds_per_image"] == pytest.approx(r["seconds"] / r["batch_size"])
    assert [r["nfe"] for r in rows[:3]] == [4, 2, 2] and [r["resolution"] for r in rows[:3]] == [32, 16, 32]
    assert "| ddim | 1 | cascade | 32 | 1 |" in stdout and "wrote" in stdout


def test_bench_runs_the_precision_asked_for(model, tmp_path, capsys):
    """``bench --dtype bfloat16`` times the bfloat16 networks (recorded in the JSON), not the float32 ones."""
    out = tmp_path / "bench.json"
    code, _, err = run_cli(capsys, "bench", "--model", model, "--samplers", "ddim", "--steps", "1", "--batch-sizes",
                           "1", "--repeats", "1", "--warmup", "0", "--dtype", "bfloat16", "--out", out, "--no-progress")
    assert code == 0, err
    res = json.loads(out.read_text())
    assert res["settings"]["dtype"] == "bfloat16" and res["settings"]["runtime"] == "eager"
    assert all(r["seconds"] > 0 for r in res["rows"])


def test_compile_network_asks_for_cuda_graphs_when_told(monkeypatch):
    """``--cuda-graphs`` reaches torch.compile as mode="reduce-overhead", with the product's fullgraph/dynamic."""
    from openimagen.accel import compile as compile_module

    seen = {}
    monkeypatch.setattr(compile_module.torch, "compile", lambda net, **kw: seen.update(kw) or net)
    net = torch.nn.Linear(2, 2)
    assert compile_module.compile_network(net, mode="reduce-overhead") is net
    assert seen == {"fullgraph": True, "dynamic": True, "backend": "inductor", "mode": "reduce-overhead"}


def test_peak_memory_falls_back_to_getrusage(monkeypatch, tmp_path):
    from openimagen.eval import speed

    monkeypatch.setattr(speed, "CLEAR_REFS", tmp_path / "missing" / "clear_refs")
    memory = speed.PeakMemory("cpu")
    memory.reset()
    rss, gpu = memory.read()
    assert memory.method == "ru_maxrss" and rss > 0 and gpu is None


@pytest.mark.parametrize("argv, match", [
    (["eval", "--model", "m", "--sweep-steps", "4,x"], "--sweep-steps takes comma-separated positive integers"),
    (["eval", "--model", "m", "--sweep-steps", "4,0"], "--sweep-steps entries must be >= 1, got 0"),
    (["eval", "--model", "m", "--sweep-steps", "2.5"], "got '2.5'"),
    (["eval", "--model", "m", "--sweep-steps", "4", "--samplers", "ddim,plms"],
     "unknown sampler 'plms'; valid: ddim, ddpm, dpmpp_2m, euler, heun"),
    (["eval", "--model", "m", "--samplers", "ddim"], "give --sweep-steps too"),
    (["eval", "--model", "m", "--sweep-steps", "4", "--steps", "8"], "--steps does not go with --sweep-steps"),
    (["bench", "--model", "m", "--samplers", "plms"], "unknown sampler 'plms'"),
    (["bench", "--model", "m", "--steps", "0"], "--steps entries must be >= 1"),
    (["bench", "--model", "m", "--batch-sizes", "1,b"], "--batch-sizes takes comma-separated positive integers"),
    (["bench", "--model", "m", "--repeats", "0"], "--repeats must be >= 1"),
    (["bench", "--model", "m", "--warmup", "-1"], "--warmup must be >= 0"),
    (["bench", "--model", "m", "--threads", "0"], "--threads must be >= 1"),
    (["bench", "--model", "m", "--device", "tpu"], "--device: invalid device 'tpu'"),
    (["bench", "--model", "m", "--cuda-graphs"], "--cuda-graphs is a way of compiling: add --compile"),
    (["bench", "--model", "m", "--compile", "--cuda-graphs"], "--cuda-graphs needs a CUDA --device"),
    (["bench", "--model", "m", "--dtype", "half"], "--dtype must be one of float32, float16, bfloat16"),
])
def test_bad_arguments(capsys, argv, match):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and match in err and err.startswith("error: ") and err.count("\n") == 1


def test_bench_not_a_model_directory(capsys, tmp_path):
    code, _, err = run_cli(capsys, "bench", "--model", tmp_path, "--out", tmp_path / "b.json", "--no-progress")
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1


def test_bench_registered_in_main_cli():
    from openimagen.cli.main import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert sub.choices["bench"].get_default("func").__name__ == "run_bench"
