"""Issue 10, the model directory slice: every value in pipeline.json and a stage's config.json is type- and
range-checked by one mechanism (pydantic types, one-line errors naming the field), stage folders stay inside the
model directory, weights are floating and finite at load, and API arguments raise typed errors."""
import json
import shutil

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from openimagen.errors import InvalidArgumentError, ModelLoadError
from openimagen.pipeline import Pipeline
from tests.pipeline.fixtures import encoder, tiny_pipeline


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return tiny_pipeline().save_pretrained(tmp_path_factory.mktemp("model") / "m")


def edit_json(path, **changes):
    d = json.loads(path.read_text())
    for dotted, value in changes.items():
        *parents, key = dotted.split("__")
        node = d
        for p in parents:
            node = node[p]
        node[key] = value
    path.write_text(json.dumps(d))


def load(m):
    return Pipeline.from_pretrained(m, text_encoder=encoder())


STAGE_CASES = [
    ({"resolution": "32"}, "resolution should be a valid integer, got '32'"),
    ({"resolution": -32}, "resolution should be greater than or equal to 1"),
    ({"resolution": 32.0}, "resolution should be a valid integer"),
    ({"sampling__guidance": "high"}, "guidance should be a valid number, got 'high'"),
    ({"sampling__guidance": float("inf")}, "guidance should be a finite number"),
    ({"sampling__percentile": "x"}, "percentile should be a valid number"),
    ({"sampling__steps": 0}, "steps should be greater than or equal to 1"),
    ({"schedule__shift": "0.5"}, "shift should be a valid number, got '0.5'"),
    ({"schedule__shift": 0}, "shift should be greater than 0"),
    ({"param__sigma_data": 0}, "sigma_data should be greater than 0"),
    ({"param__name": "x0"}, "unknown parameterization 'x0'"),
    ({"sampling__sampler": "plms"}, "unknown sampler 'plms'"),
    ({"schedule__logsnr_min": 20.0, "schedule__logsnr_max": 20.0}, r"logsnr_min \(20.0\) must be below logsnr_max"),
]
CASES = ([("stage0_base", changes, match) for changes, match in STAGE_CASES]
         # stages that disagree with each other: the error names the file of the stage at fault (hypothesis found 1 px)
         + [("stage1_sr", {"lowres_resolution": 8}, "stage 1 upsamples 8px images but stage 0 makes 16px images")])


@pytest.mark.parametrize("stage, changes, match", CASES, ids=[m[:36] for _, _, m in CASES])
def test_bad_stage_config_values_are_one_line_model_load_errors(saved, tmp_path, stage, changes, match):
    m = shutil.copytree(saved, tmp_path / "m")
    edit_json(m / stage / "config.json", **changes)
    with pytest.raises(ModelLoadError, match=match) as info:
        load(m)
    assert f"{stage}/config.json" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("pipeline_json, match", [
    ({"stages": 5}, "stages should be a valid tuple, got 5"),
    ({"stages": []}, "stages should have at least 1 item"),
    ({"stages": ["../outside_stage"]}, "must be one folder name inside the model directory"),
    ({"stages": ["/etc/stage"]}, "must be one folder name inside the model directory"),
    ({"stages": ["stage0_base"], "max_length": "16"}, "max_length should be a valid integer"),
    ({"stages": ["stage0_base"], "format_version": 2}, "format version 2 is not supported"),
    ({"stages": ["stage0_base"], "variants": {"fast": ["../outside_stage"]}}, "must be one folder name inside"),
    ({"stages": ["stage0_base"], "variants": {"fast": []}}, "should have at least 1 item"),
    ({"stages": ["stage0_base"], "variants": {"Fast mode": ["stage0_base"]}}, "should match pattern"),
    ({"stages": ["stage0_base"], "variants": {"fast": ["stage0_base"]}, "variant_sampling": {"fast": [{"steps": 0}]}},
     r"variant_sampling.fast\[0\].steps should be greater than or equal to 1"),
    ({"stages": ["stage0_base"], "variants": {"fast": ["stage0_base"]}, "variant_sampling": {"fast": [{"stepz": 4}]}},
     "unknown field 'variant_sampling.fast\\[0\\].stepz' \\(valid: aug_level, guidance, lowres_consistency, "
     "percentile, sampler, spacing, sr_strength, steps, threshold\\)"),
    ({"stages": ["stage0_base"], "variants": {"fast": ["stage0_base"]}, "variant_sampling": {"fast": [{}, {}]}},
     "has 2 entries; the variant has 1 stages"),
    ({"stages": ["stage0_base"], "variant_sampling": {"fast": [{}]}}, "names variant 'fast', which variants does not"),
    ({"stages": ["stage0_base"], "variants": {"gan-sr": ["stage0_base"]}, "variant_sampling": {"gan-sr": [{"steps": 0}]}},
     r"variant_sampling\['gan-sr'\]\[0\].steps should be"),      # a key with '-' is not a union tag: kept
    ({"stages": ["stage0_base"], "variants": {"fa\nst": ["stage0_base"]}}, r"variants\['fa\\nst'\] should match"),
])
def test_bad_pipeline_json_and_escaping_stage_paths(saved, tmp_path, pipeline_json, match):
    m = shutil.copytree(saved, tmp_path / "m")
    (tmp_path / "outside_stage").mkdir()
    (m / "pipeline.json").write_text(json.dumps(pipeline_json))
    with pytest.raises(ModelLoadError, match=match) as info:
        load(m)
    assert "\n" not in str(info.value)                 # one line, even for a key that holds a newline


@pytest.mark.parametrize("damage, match", [
    (lambda w: w.__setitem__("stem.weight", w["stem.weight"].index_fill(0, torch.tensor([0]), float("nan"))),
     "tensor 'stem.weight' holds NaN or inf"),
    (lambda w: w.__setitem__("stem.bias", torch.full_like(w["stem.bias"], float("inf"))), "holds NaN or inf"),
    (lambda w: w.__setitem__("stem.weight", w["stem.weight"].to(torch.int8)), "has dtype torch.int8"),
    (lambda w: w.__setitem__("stem.weight", w["stem.weight"] > 0), "has dtype torch.bool"),
])
def test_non_finite_or_non_float_weights_are_refused_at_load(saved, tmp_path, damage, match):
    m = shutil.copytree(saved, tmp_path / "m")
    path = m / "stage0_base" / "model.safetensors"
    weights = load_file(str(path))
    damage(weights)
    save_file(weights, str(path))
    with pytest.raises(ModelLoadError, match=match):
        load(m)


def test_api_arguments_raise_typed_errors(saved):
    pipe = load(saved)
    for call, match in [(lambda: pipe(5), "prompts should be a valid tuple, got 5"),
                        (lambda: pipe("a", seed="1"), "seed should be a valid integer"),
                        (lambda: pipe("a", seed=None), "seed should be a valid integer"),
                        (lambda: pipe("a", aug_level="0.1"), "aug_level should be a valid number"),
                        (lambda: Pipeline.from_pretrained(saved, device="banana", text_encoder=encoder()),
                         "invalid device 'banana'"),
                        (lambda: pipe.save_pretrained("/tmp/never", dtype=torch.int8), "dtype must be")]:
        with pytest.raises(InvalidArgumentError, match=match):
            call()
    out = pipe("a", guidance=np.float32(2), steps=np.int64(2), seed=np.int64(3))   # NumPy scalars are numbers
    assert out.settings[0].guidance == 2.0 and out.settings[0].steps == 2 and out.seeds == [3]


values = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                   st.text(max_size=5), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3),
                                                                                            st.integers(), max_size=2))
FIELDS = ["resolution", "lowres_resolution", "sampling__sampler", "sampling__steps", "sampling__guidance",
          "sampling__threshold", "sampling__percentile", "sampling__spacing", "sampling__aug_level",
          "schedule__name", "schedule__logsnr_min", "schedule__logsnr_max", "schedule__shift", "param__name",
          "param__sigma_data"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(FIELDS), value=values)
def test_property_any_stage_config_value_loads_or_gives_one_line(saved, tmp_path_factory, field, value):
    m = shutil.copytree(saved, tmp_path_factory.mktemp("p") / "m")
    edit_json(m / "stage1_sr" / "config.json", **{field: value})
    try:
        pipe = load(m)
    except ModelLoadError as e:
        assert "\n" not in str(e) and "stage1_sr/config.json" in str(e)
    else:
        cfg = pipe.stages[1].config          # loaded: a valid config (another resolution above 16 may be one)
        assert cfg.lowres_resolution == 16 < cfg.resolution and cfg.resolution % 2 == 0
        assert cfg.sampling.steps >= 1 and cfg.schedule.shift > 0


def test_a_training_run_passed_as_a_model_says_to_export_it(tmp_path):
    """Issue 10, kind 11: --model runs/X names `openimagen export`."""
    from openimagen.errors import ModelLoadError
    from openimagen.pipeline import Pipeline

    (tmp_path / "run" / "checkpoints" / "step_00000010").mkdir(parents=True)
    with pytest.raises(ModelLoadError, match=r"is a training run or checkpoint, not a model directory; make one "
                                             r"with `openimagen export"):
        Pipeline.from_pretrained(tmp_path / "run")


def test_written_files_get_the_usual_permissions_not_mkstemps_0600(tmp_path):
    """Atomic writes go through mkstemp (0600); the file that lands has what open() would give it."""
    import os
    import stat

    from openimagen.fsmode import FILE_MODE
    from openimagen.pipeline.io import write_json

    write_json(tmp_path / "a.json", {"x": 1})
    assert stat.S_IMODE(os.stat(tmp_path / "a.json").st_mode) == FILE_MODE
    mask = os.umask(0)
    os.umask(mask)
    assert FILE_MODE == 0o666 & ~mask and FILE_MODE & 0o044 == 0o044 & ~mask
