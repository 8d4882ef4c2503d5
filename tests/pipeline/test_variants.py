"""Named alternative cascades in one model directory (pipeline.json ``variants``): how the default model ships its
distilled base student beside its teacher, sharing the SR stage's folder (issue 15, point 1)."""
import json
import shutil

import pytest
import torch

from openimagen.errors import ModelLoadError
from openimagen.pipeline import Pipeline, PipelineConfig
from openimagen.pipeline.provenance import RECORD_KEY, image_metadata
from tests.pipeline.fixtures import encoder, tiny_pipeline


@pytest.fixture(scope="module")
def model_with_variant(tmp_path_factory):
    """The tiny cascade plus a second base stage (other weights) and a variant "fast" that uses it."""
    root = tiny_pipeline().save_pretrained(tmp_path_factory.mktemp("model") / "m")
    other = tiny_pipeline(seed=1).stages[0]
    other.save(root / "stage0_student")
    cfg = json.loads((root / "pipeline.json").read_text())
    cfg["variants"] = {"fast": ["stage0_student", "stage1_sr"]}
    (root / "pipeline.json").write_text(json.dumps(cfg))
    return root


def test_a_variant_loads_its_own_stage_folders_and_shares_the_rest(model_with_variant):
    plain = Pipeline.from_pretrained(model_with_variant, text_encoder=encoder())
    fast = Pipeline.from_pretrained(model_with_variant, text_encoder=encoder(), variant="fast")
    assert plain.config.stages == ("stage0_base", "stage1_sr") and plain.variant is None
    assert fast.config.stages == ("stage0_student", "stage1_sr") and fast.variant == "fast"
    assert fast.config.variants == {} and "variant 'fast'" in fast.config.description
    assert not torch.equal(plain.stages[0].denoiser.net.stem.weight, fast.stages[0].denoiser.net.stem.weight)
    assert torch.equal(plain.stages[1].denoiser.net.stem.weight, fast.stages[1].denoiser.net.stem.weight)
    assert plain.model_hash != fast.model_hash
    a = plain("a red circle", seed=3, steps=2)
    b = fast("a red circle", seed=3, steps=2)
    assert b.variant == "fast" and a.variant is None
    assert not torch.equal(a.stages[0], b.stages[0])
    assert b.record(0)["variant"] == "fast" and "variant" not in a.record(0)   # the record says which cascade made it
    assert image_metadata(b, 0, "m")[RECORD_KEY]["variant"] == "fast"          # and so does the PNG's
    assert "variant" not in image_metadata(a, 0, "m")[RECORD_KEY]


def test_an_unknown_variant_is_one_line_naming_the_ones_there_are(model_with_variant):
    with pytest.raises(ModelLoadError, match=r"pipeline.json: unknown model variant 'turbo'.*fast") as info:
        Pipeline.from_pretrained(model_with_variant, text_encoder=encoder(), variant="turbo")
    assert "\n" not in str(info.value)
    plain = tiny_pipeline().save_pretrained(model_with_variant.parent / "plain")
    with pytest.raises(ModelLoadError, match="this model has no variants .* so --variant 'fast' cannot be used"):
        Pipeline.from_pretrained(plain, text_encoder=encoder(), variant="fast")
    with pytest.raises(ModelLoadError, match=r"a model variant is named by a string, got \['fast'\]"):
        Pipeline.from_pretrained(model_with_variant, text_encoder=encoder(), variant=["fast"])


def test_a_variant_whose_stage_folder_is_missing_names_it(model_with_variant, tmp_path):
    m = shutil.copytree(model_with_variant, tmp_path / "m")
    shutil.rmtree(m / "stage0_student")
    with pytest.raises(ModelLoadError, match="stage0_student"):
        Pipeline.from_pretrained(m, text_encoder=encoder(), variant="fast")
    Pipeline.from_pretrained(m, text_encoder=encoder())          # the main cascade does not need it


def test_configs_without_variants_are_written_as_before():
    """The field is written only when set, so existing pipeline.json files and model hashes stay as they were."""
    cfg = PipelineConfig(stages=("a", "b"))
    assert "variants" not in cfg.to_dict()
    with_v = PipelineConfig(stages=("a", "b"), variants={"fast": ("c", "b")})
    assert with_v.to_dict()["variants"] == {"fast": ["c", "b"]}
    assert PipelineConfig.from_dict(with_v.to_dict()) == with_v


def test_a_variant_may_sample_a_shared_stage_its_own_way(model_with_variant, tmp_path):
    """pipeline.json ``variant_sampling``: the variant's stage defaults over the folder's own, the main cascade's
    untouched; a request's overrides still win; the hash (and so every record) tells the two apart."""
    m = shutil.copytree(model_with_variant, tmp_path / "m")
    cfg = json.loads((m / "pipeline.json").read_text())
    cfg["variant_sampling"] = {"fast": [{}, {"steps": 3, "sampler": "ddim"}]}
    (m / "pipeline.json").write_text(json.dumps(cfg))
    plain = Pipeline.from_pretrained(m, text_encoder=encoder())
    fast = Pipeline.from_pretrained(m, text_encoder=encoder(), variant="fast")
    own = Pipeline.from_pretrained(model_with_variant, text_encoder=encoder(), variant="fast")
    sr = own.stages[1].config.sampling
    assert (sr.steps, sr.sampler) != (3, "ddim")                       # the folder's own defaults differ
    assert (fast.stages[1].config.sampling.steps, fast.stages[1].config.sampling.sampler) == (3, "ddim")
    assert fast.stages[1].config.sampling.guidance == sr.guidance     # the fields not named stay the folder's
    assert fast.stages[0].config.sampling == own.stages[0].config.sampling
    assert plain.stages[1].config.sampling == sr                     # the main cascade is not the variant
    assert fast.model_hash != own.model_hash
    out = fast("a red circle", seed=3)
    assert (out.settings[1].steps, out.settings[1].sampler) == (3, "ddim")
    assert fast("a red circle", seed=3, steps=2).settings[1].steps == 2           # a request still wins


def test_variant_sampling_round_trips_and_is_written_only_when_set():
    cfg = PipelineConfig(stages=("a", "b"), variants={"fast": ("c", "b")},
                         variant_sampling={"fast": ({}, {"steps": 4})})
    assert cfg.to_dict()["variant_sampling"] == {"fast": [{}, {"steps": 4}]}
    assert PipelineConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.stage_sampling("fast") == ({}, {"steps": 4}) and cfg.stage_sampling(None) == ()
    assert "variant_sampling" not in PipelineConfig(stages=("a",), variants={"fast": ("c",)}).to_dict()
    assert cfg.variant("fast").variant_sampling == {}


def test_every_sampling_setting_is_listed_wherever_the_settings_are_named():
    """SamplingConfig, SAMPLING_FIELDS, a request's overrides and a variant's defaults each list the sampling
    settings (sharing their types): a setting added to one and not the others would be silently unreachable there."""
    from dataclasses import fields

    from openimagen.pipeline.config import SAMPLING_FIELDS, SamplingConfig, SamplingDefaults
    from openimagen.pipeline.request import SamplingOverrides

    names = {f.name for f in fields(SamplingConfig)}
    assert set(SAMPLING_FIELDS) == names
    assert set(SamplingOverrides.model_fields) == names
    assert set(SamplingDefaults.__annotations__) == names
    import argparse
    import re

    from openimagen.cli.train import add_export_parser

    parser = argparse.ArgumentParser()
    add_export_parser(parser.add_subparsers())                    # `openimagen export --sampling`'s help names them
    helps = [a.help for sub in parser._subparsers._group_actions for p in sub.choices.values() for a in p._actions
             if "--sampling" in a.option_strings]
    assert set(re.search(r"keys: ([a-z_, ]+);", helps[0]).group(1).split(", ")) == names
