"""Issue 14, point 1: a run can start from a trained stage (an exported model directory or the shipped default)
whose configuration must match; the source is only read and the lineage is logged."""
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from openimagen.errors import ConfigError
from openimagen.pipeline.io import load_weights
from openimagen.train.config import load_config
from openimagen.train.export import export_pipeline
from openimagen.train.init import init_weights
from openimagen.train.trainer import Trainer, train
from tests.train.conftest import run_config


@pytest.fixture(scope="module")
def exported(assets, tmp_path_factory):
    root = tmp_path_factory.mktemp("init")
    train(run_config(assets, root / "run_a", max_steps=2))
    return export_pipeline([root / "run_a"], root / "model")


def test_a_run_starts_from_the_exported_weights_and_trains_on(assets, exported, tmp_path):
    cfg = run_config(assets, tmp_path / "run_b", max_steps=2, init={"model": str(exported)})
    trainer = Trainer(cfg)
    source = load_weights(exported / "stage0_base" / "model.safetensors")
    for k, v in trainer.stage.denoiser.net.state_dict().items():
        assert torch.equal(v, source[k].to(v.dtype)), k
    result = trainer.train()
    assert result.step == 2 and torch.isfinite(torch.tensor(result.losses)).all()
    log = (tmp_path / "run_b" / "metrics.jsonl")
    assert (tmp_path / "run_b" / "run_config.json").read_text().count(str(exported)) == 1
    assert log.exists()
    assert load_weights(exported / "stage0_base" / "model.safetensors").keys() == source.keys()   # untouched


def test_a_different_stage_is_refused_listing_the_fields(assets, exported, tmp_path):
    cfg = run_config(assets, tmp_path / "run_c", init={"model": str(exported)},
                     stage={"resolution": 16, "lowres_resolution": None, "sampling": {"steps": 2},
                            "unet": {"preset": "tiny", "overrides": {"text_dim": 16, "base_channels": 8}}})
    with pytest.raises(ConfigError,
                       match=r"different stage than the run.s; .*stage\.unet\.base_channels \(init 16, run 8\)"):
        Trainer(cfg)


def test_the_run_folder_may_not_lie_inside_the_source(assets, exported):
    cfg = run_config(assets, exported / "inside", init={"model": str(exported)})
    with pytest.raises(ConfigError, match="lies inside init.model"):
        Trainer(cfg)


def test_unknown_stage_and_stage_without_model_are_one_line(assets, exported, tmp_path):
    with pytest.raises(ConfigError, match="init.stage 'stage9' is not a stage of"):
        Trainer(run_config(assets, tmp_path / "r", init={"model": str(exported), "stage": "stage9"}))
    with pytest.raises(ConfigError, match="init.stage needs init.model"):
        run_config(assets, tmp_path / "r", init={"stage": "stage0_base"})


def test_a_stage_only_a_variant_uses_can_be_the_start(assets, exported, tmp_path):
    """init.stage may name a stage folder that only one of the model's variants uses (the default model's
    stage0_base_student4): its weights, not the main cascade's, are the run's start."""
    model = tmp_path / "model"
    shutil.copytree(exported, model)
    shutil.copytree(model / "stage0_base", model / "stage0_alt")
    alt = {k: v + 1 for k, v in load_weights(model / "stage0_base" / "model.safetensors").items()}
    save_file(alt, str(model / "stage0_alt" / "model.safetensors"))
    pipeline = json.loads((model / "pipeline.json").read_text())
    (model / "pipeline.json").write_text(json.dumps({**pipeline, "variants": {"alt": ["stage0_alt"]}}))
    trainer = Trainer(run_config(assets, tmp_path / "run", init={"model": str(model), "stage": "stage0_alt"}))
    for k, v in trainer.stage.denoiser.net.state_dict().items():
        assert torch.equal(v, alt[k].to(v.dtype)), k
    assert trainer.stage.denoiser.net.state_dict().keys() == alt.keys()


@pytest.mark.parametrize("config, stage", [("base-warm.yaml", "stage0_base"), ("sr-residual.yaml", "stage1_sr")])
def test_the_shipped_default_model_matches_its_current_recipes(tmp_path, config, stage):
    """A lost run folder can be re-started from the shipped weights with the recipe that made them (v6: the base's
    base-warm.yaml, the residual SR stage's sr-residual.yaml)."""
    cfg = load_config(Path("configs/default") / config, out=str(tmp_path / "run"))
    cfg = cfg.replace(init=type(cfg.init)(model="default"))
    source = init_weights(cfg, cfg.stage_config(), tmp_path / "run")
    assert f"models/default/{stage}" in source.describe() and len(source.weights) > 100
    assert source.stage == stage and len(source.to_dict()["weights_sha256"]) == 64


def test_the_first_loss_is_the_source_models_loss_on_that_batch(assets, exported, tmp_path):
    """Issue 14 acceptance: init-from loads exactly the given weights, so step 1's loss is the exported stage's own
    loss on step 1's batch and noise (computed here independently, with a Stage loaded from the model folder)."""
    from openimagen.pipeline import Stage
    from openimagen.train.data import NOISE_STREAM, example_generators, micro_batch_loader

    cfg = run_config(assets, tmp_path / "run_d", max_steps=1, init={"model": str(exported)})
    trainer = Trainer(cfg)
    items = next(iter(micro_batch_loader(trainer.dataset, cfg, trainer.layout, 0, 0)))
    batch = trainer._micro_batch(items, 0, trainer.layout.positions(0, 0))
    source = Stage.load(exported / "stage0_base").train()
    gens = example_generators(cfg.seed, 0, trainer.layout.positions(0, 0), NOISE_STREAM)
    expected = trainer.objective(source.denoiser, batch, gens).mean()
    result = trainer.train()
    assert result.losses[0] == pytest.approx(float(expected), rel=1e-6, abs=0)
