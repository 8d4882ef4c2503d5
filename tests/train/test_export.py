"""Train a base and an SR stage, sample grids on the way, export them, load the pipeline and generate."""
import argparse
import json

import pytest
import torch
from PIL import Image

from openimagen.cli.train import add_export_parser, add_train_parser
from openimagen.errors import ConfigError
from openimagen.pipeline import Pipeline
from openimagen.train.trainer import train
from tests.train.conftest import run_config


def cli(argv) -> int:
    parser = argparse.ArgumentParser(prog="openimagen")
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_parser(sub)
    add_export_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture(scope="module")
def runs(assets, tmp_path_factory):
    root, threads = tmp_path_factory.mktemp("runs"), torch.get_num_threads()
    torch.set_num_threads(1)                                  # as the autouse fixture does for each test
    try:
        log = {"sample_every": 2, "sample_steps": 2, "tensorboard": True, "log_every": 1}
        base = train(run_config(assets, root / "base", max_steps=2, log=log))
        sr = train(run_config(assets, root / "sr", sr=True, max_steps=2, log=log, train={"batch_size": 2}))
    finally:
        torch.set_num_threads(threads)
    return base.run_dir, sr.run_dir


def test_runs_write_config_metrics_samples_and_tensorboard(runs):
    base, sr = runs
    cfg = json.loads((base / "run_config.json").read_text())
    assert cfg["out"] == str(base) and cfg["stage"]["unet"]["preset"] == "tiny"
    rows = [json.loads(line) for line in (base / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert {"loss", "lr", "grad_norm", "images_per_s"} <= rows[0].keys()
    assert Image.open(base / "samples" / "step_000002.png").size == (2 * 16, 16)      # 2 prompts, one row
    assert Image.open(sr / "samples" / "step_000002.png").size == (4 * 32, 2 * 32)    # low-res row + SR row
    assert any((base / "tensorboard").iterdir())


def test_export_then_generate(runs, tmp_path, capsys):
    out = tmp_path / "model"
    assert cli(["export", str(runs[0]), str(runs[1]), "-o", str(out), "--fp16"]) == 0
    assert "wrote" in capsys.readouterr().out
    meta = json.loads((out / "pipeline.json").read_text())
    assert meta["stages"] == ["stage0_base", "stage1_sr"] and meta["max_length"] == 16
    pipe = Pipeline.from_pretrained(out)
    assert pipe.resolutions == [16, 32]
    result = pipe(["a red circle"], steps=2, seed=1)
    assert result.images[0].size == (32, 32)


def test_export_checks_the_chain(runs, tmp_path, assets):
    base, sr = runs
    with pytest.raises(ConfigError, match="is a super-resolution stage; list the base stage first"):
        cli(["export", str(sr), str(base), "-o", str(tmp_path / "m1")])
    with pytest.raises(ConfigError, match="only the first stage may be one"):
        cli(["export", str(base), str(base), "-o", str(tmp_path / "m2")])
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(ConfigError, match="exists and is not empty"):
        cli(["export", str(base), "-o", str(tmp_path / "full")])


def test_export_checks_the_text_encoders_agree(runs, tmp_path, assets):
    other = train(run_config(assets, tmp_path / "sr16", sr=True, max_steps=1, train={"batch_size": 2},
                             text={"max_length": 12}))
    with pytest.raises(ConfigError, match="different text encoders"):
        cli(["export", str(runs[0]), str(other.run_dir), "-o", str(tmp_path / "m")])


def test_export_sets_sampling_defaults_per_stage(runs, tmp_path):
    out = tmp_path / "tuned"
    assert cli(["export", str(runs[0]), str(runs[1]), "-o", str(out),
                "--sampling", "steps=7,guidance=2.5,sampler=ddim", "aug_level=0.3"]) == 0
    base, sr = (Pipeline.from_pretrained(out).stages[i].config.sampling for i in (0, 1))
    assert (base.steps, base.guidance, base.sampler) == (7, 2.5, "ddim")
    assert sr.aug_level == 0.3 and sr.steps == json.loads((runs[1] / "run_config.json").read_text()).get(
        "stage", {}).get("sampling", {}).get("steps", 20)
    for bad, match in (("steps=x", "steps takes an integer"), ("colour=red", "KEY one of sampler, steps"),
                       ("sampler=plms", "unknown sampler 'plms'")):
        with pytest.raises(ConfigError, match=match):
            cli(["export", str(runs[0]), "-o", str(tmp_path / "bad"), "--sampling", bad])
    with pytest.raises(ConfigError, match="3 sampling overrides for 2 stages"):
        cli(["export", str(runs[0]), str(runs[1]), "-o", str(tmp_path / "bad"), "--sampling", "steps=2", "", ""])


def test_overwrite_replaces_only_a_model_directory_and_never_the_source(assets, tmp_path):
    """Issue 10, kind 4: ``--overwrite`` must not delete a run's checkpoints or an unrelated folder."""
    import pytest

    from openimagen.errors import ConfigError
    from openimagen.train.export import export_pipeline
    from openimagen.train.trainer import train
    from tests.train.conftest import run_config

    run = tmp_path / "run"
    train(run_config(assets, run, max_steps=1))
    with pytest.raises(ConfigError, match="holds or lies inside the run being exported"):
        export_pipeline([run], run, overwrite=True)
    with pytest.raises(ConfigError, match="holds or lies inside the run being exported"):
        export_pipeline([run], run / "model", overwrite=True)
    assert (run / "checkpoints").is_dir()
    unrelated = tmp_path / "photos"
    unrelated.mkdir()
    (unrelated / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(ConfigError, match="not a model directory .* --overwrite only replaces"):
        export_pipeline([run], unrelated, overwrite=True)
    assert (unrelated / "holiday.jpg").read_bytes() == b"precious"
    model = export_pipeline([run], tmp_path / "model")
    with pytest.raises(ConfigError, match="exists and is not empty"):
        export_pipeline([run], model)
    assert export_pipeline([run], model, overwrite=True) == model and (model / "pipeline.json").is_file()


def test_a_stage_folder_of_an_exported_model_joins_a_new_cascade(assets, tmp_path):
    """export mixes a stage of an exported model with a trained run (e.g. the shipped base with a refined SR),
    copies that stage's weights exactly, and never writes over the model it came from."""
    import pytest
    import torch

    from openimagen.errors import OpenImagenError
    from openimagen.pipeline import Pipeline
    from openimagen.pipeline.io import load_weights
    from openimagen.train.export import export_pipeline
    from openimagen.train.trainer import train
    from tests.train.conftest import run_config

    base = train(run_config(assets, tmp_path / "base", max_steps=1))
    sr = train(run_config(assets, tmp_path / "sr", sr=True, max_steps=1))
    first = export_pipeline([base.run_dir, sr.run_dir], tmp_path / "first")
    sr2 = train(run_config(assets, tmp_path / "sr2", sr=True, max_steps=2, seed=9))
    mixed = export_pipeline([first / "stage0_base", sr2.run_dir], tmp_path / "mixed")
    a, b = (load_weights(m / "stage0_base" / "model.safetensors") for m in (first, mixed))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    pipe = Pipeline.from_pretrained(mixed, watermark=None)
    assert [st.config.resolution for st in pipe.stages] == [16, 32]
    with pytest.raises(OpenImagenError, match="source|overwrite|export"):
        export_pipeline([first / "stage0_base", sr2.run_dir], first, overwrite=True)
    assert (first / "stage1_sr" / "model.safetensors").is_file()
