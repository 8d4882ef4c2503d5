"""Issue 14, points 2 and 5: a LoRA run (peft) trains only its adapter on a trained stage, exports the adapter alone
(under 5% of the stage at rank 4), and the pipeline loads it onto the right base only."""
import json

import pytest
import torch

from openimagen.cli.main import main
from openimagen.errors import ConfigError, ModelLoadError
from openimagen.lora import read_adapter
from openimagen.pipeline import Pipeline
from openimagen.pipeline.io import load_weights
from openimagen.train.checkpoint import EMA, MODEL, Checkpoint
from openimagen.train.export import export_pipeline
from openimagen.train.lora import export_adapter
from openimagen.train.trainer import Trainer, train
from tests.train.conftest import run_config

LORA = {"rank": 4, "alpha": 8.0, "targets": ["attention", "text"]}


@pytest.fixture(scope="module")
def base_model(assets, tmp_path_factory):
    root = tmp_path_factory.mktemp("lora")
    train(run_config(assets, root / "base_run", max_steps=2))
    return export_pipeline([root / "base_run"], root / "model")


@pytest.fixture(scope="module")
def lora_run(assets, base_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("lora_run") / "run"
    cfg = run_config(assets, out, max_steps=3, init={"model": str(base_model)}, lora=LORA,
                     optimiser={"lr": 5e-2, "warmup_steps": 0})
    result = train(cfg)
    return out, result


def test_only_the_adapter_trains_and_the_base_stays_bit_for_bit(base_model, lora_run):
    run, result = lora_run
    assert result.step == 3
    source = load_weights(base_model / "stage0_base" / "model.safetensors")
    trained = Checkpoint.read(run).tensors(MODEL)
    lora = {k: v for k, v in trained.items() if ".lora_" in k}
    base = {k.replace(".base_layer", ""): v for k, v in trained.items() if ".lora_" not in k}
    assert base.keys() == source.keys()
    for k, v in source.items():
        assert torch.equal(base[k], v.to(base[k].dtype)), k
    assert lora and any(v.abs().max() > 0 for k, v in lora.items() if ".lora_B." in k)   # B starts at 0: it moved
    state = Checkpoint.read(run).state                          # the lineage: the base it adapts
    assert state["init"]["weights_sha256"] and state["init"]["stage"] == "stage0_base"


def test_the_exported_adapter_holds_only_adapter_tensors_and_loads_on_its_base(base_model, lora_run, tmp_path):
    run, _ = lora_run
    out = export_adapter(run, tmp_path / "adapter")
    adapter = read_adapter(out)
    assert adapter.tensors and all(".lora_A." in k or ".lora_B." in k for k in adapter.tensors)
    ema = Checkpoint.read(run).tensors(EMA)
    for k, v in adapter.tensors.items():                       # the EMA values, named without the adapter name
        assert torch.equal(v, ema[k.replace(".weight", ".lora.weight")])
    pipe = Pipeline.from_pretrained(base_model, watermark=None, text_encoder=_encoder(run))
    base = pipe("a red circle", seed=1, steps=2).stages[-1]
    name = pipe.load_lora(out)
    adapted = pipe("a red circle", seed=1, steps=2).stages[-1]
    assert not torch.equal(adapted, base)
    pipe.unload_lora(name)
    assert torch.equal(pipe("a red circle", seed=1, steps=2).stages[-1], base)


def test_an_adapter_on_another_base_is_refused_in_one_line(assets, lora_run, tmp_path):
    run, _ = lora_run
    out = export_adapter(run, tmp_path / "adapter")
    train(run_config(assets, tmp_path / "other_run", max_steps=1, seed=11))
    other = export_pipeline([tmp_path / "other_run"], tmp_path / "other")
    pipe = Pipeline.from_pretrained(other, watermark=None, text_encoder=_encoder(run))
    with pytest.raises(ModelLoadError, match="trained on other weights than stage 0") as e:
        pipe.load_lora(out)
    assert "\n" not in str(e.value)
    assert not list(pipe.loras.loaded)


def test_resuming_with_other_lora_settings_is_refused(assets, base_model, lora_run):
    run, _ = lora_run
    cfg = run_config(assets, run, max_steps=4, init={"model": str(base_model)}, lora={**LORA, "rank": 8})
    with pytest.raises(ConfigError, match="trained with lora .* but the config has lora"):
        Trainer(cfg, resume=run)


def test_lora_needs_a_trained_stage_and_ddp(assets, base_model, tmp_path):
    with pytest.raises(ConfigError, match="lora adapts a trained stage: set init.model"):
        run_config(assets, tmp_path / "r", lora=LORA)
    with pytest.raises(ConfigError, match="use distributed.strategy ddp"):
        run_config(assets, tmp_path / "r", lora=LORA, init={"model": str(base_model)},
                   distributed={"strategy": "fsdp"})
    with pytest.raises(ConfigError, match=r"lora\.rank should be greater than or equal to 1"):
        run_config(assets, tmp_path / "r", lora={"rank": 0}, init={"model": str(base_model)})
    with pytest.raises(ConfigError, match=r"lora\.targets"):
        run_config(assets, tmp_path / "r", lora={"targets": ["attn"]}, init={"model": str(base_model)})


def test_export_cli_writes_the_adapter_and_refuses_mixing_it_with_stages(base_model, lora_run, tmp_path, capsys):
    run, _ = lora_run
    assert main(["export", str(run), "-o", str(tmp_path / "a")]) == 0
    assert "wrote LoRA adapter" in capsys.readouterr().out
    meta = json.loads((tmp_path / "a" / "adapter.json").read_text())
    assert meta["stage"] == "stage0_base" and meta["lora"]["rank"] == 4
    assert main(["export", str(run), str(run), "-o", str(tmp_path / "b")]) == 2
    assert "exports alone" in capsys.readouterr().err
    assert main(["export", str(run), "-o", str(tmp_path / "a")]) == 2            # exists: refused, kept
    assert main(["export", str(run), "-o", str(tmp_path / "a"), "--overwrite"]) == 0


def test_the_run_says_how_many_parameters_train(assets, base_model, tmp_path, capsys):
    import re

    Trainer(run_config(assets, tmp_path / "a", init={"model": str(base_model)}, lora=LORA))
    m = re.search(r"parameters: ([\d,]+) trainable of ([\d,]+) \((\d+\.\d+)%\); LoRA rank 4 on attention, text",
                  capsys.readouterr().out)
    assert m and 0 < float(m.group(3)) < 20
    Trainer(run_config(assets, tmp_path / "b"))
    assert re.search(r"parameters: ([\d,]+) trainable of \1 \(100\.00%\)", capsys.readouterr().out)


def test_print_config_prints_the_resolved_config_and_trains_nothing(assets, base_model, tmp_path, capsys):
    import yaml

    cfg = run_config(assets, tmp_path / "run", init={"model": str(base_model)}, lora=LORA)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    assert main(["train", str(path), "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["lora"] == {"rank": 4, "alpha": 8.0, "dropout": 0.0, "targets": ["attention", "text"]}
    assert printed["stage"]["unet"]["config"]["base_channels"] == 16 and printed["optimiser"]["lr"] == 2e-3
    assert not (tmp_path / "run").exists()


def _encoder(run):
    from openimagen.text import load_text_encoder

    text = Checkpoint.read(run).state["run_config"]["text"]
    return load_text_encoder(text["encoder"], max_length=text["max_length"])


def test_the_example_lora_config_fits_the_shipped_model_and_renders_validation_grids(tmp_path):
    """configs/finetune/lora-cross.yaml: its stage matches the shipped base stage, it trains, and validation
    prompts are rendered into the run folder at intervals (issue 14, point 5)."""
    from openimagen.data.concept import build_concept
    from openimagen.train.config import RunConfig, read_config_file

    build_concept(tmp_path / "concept", count=4, size=32)
    d = read_config_file("configs/finetune/lora-cross.yaml")
    d.update(out=str(tmp_path / "run"), max_steps=2, data={**d["data"], "path": str(tmp_path / "concept")},
             log={**d["log"], "sample_every": 2, "sample_steps": 2, "log_every": 1},
             text={**d["text"], "cache_dir": str(tmp_path / "cache")}, train={**d["train"], "batch_size": 2})
    result = train(RunConfig.from_dict(d))
    assert result.step == 2
    assert sorted(p.name for p in (tmp_path / "run" / "samples").iterdir()) == ["step_000002.png"]
