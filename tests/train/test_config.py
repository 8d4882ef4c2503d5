"""Run configs: YAML and TOML give the same typed config; unknown keys and wrong types are named."""
from pathlib import Path

import pytest

from openimagen.errors import ConfigError
from openimagen.train.config import RunConfig, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

YAML = """
seed: 1
max_steps: 50
stage:
  resolution: 32
  lowres_resolution: 16
  unet: {preset: tiny-sr, overrides: {text_dim: 16}}
  param: {name: eps}
data: {path: data/shapes, crop_size: 16}
text: {encoder: default, max_length: 16}
optimiser: {lr: 1e-4, betas: [0.9, 0.99], decay: cosine}
train: {batch_size: 8, grad_accum: 2, weighting: min_snr}
log: {sample_prompts: [a red circle]}
"""

TOML = """
seed = 1
max_steps = 50
[stage]
resolution = 32
lowres_resolution = 16
param = {name = "eps"}
[stage.unet]
preset = "tiny-sr"
overrides = {text_dim = 16}
[data]
path = "data/shapes"
crop_size = 16
[text]
encoder = "default"
max_length = 16
[optimiser]
lr = 1e-4
betas = [0.9, 0.99]
decay = "cosine"
[train]
batch_size = 8
grad_accum = 2
weighting = "min_snr"
[log]
sample_prompts = ["a red circle"]
"""


def _with_base(text: str) -> str:
    """A minimal config plus ``text``, whose top-level keys replace the minimal one's (a key may not be given twice)."""
    base = {"data": "data: {path: x}", "stage": "stage: {unet: {preset: tiny}}"}
    given = {line.split(":")[0] for line in text.splitlines()}
    return "".join(f"{line}\n" for key, line in base.items() if key not in given) + text


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_yaml_and_toml_give_the_same_config(tmp_path):
    a, b = load_config(write(tmp_path, "c.yaml", YAML)), load_config(write(tmp_path, "c.toml", TOML))
    assert a == b
    assert a.optimiser.lr == 1e-4 and a.optimiser.betas == (0.9, 0.99) and a.train.grad_accum == 2
    st = a.stage_config()
    assert st.is_super_resolution and st.unet.text_dim == 16 and st.unet.image_size == 32 and st.param.name == "eps"
    assert RunConfig.from_dict(a.to_dict()) == a                               # JSON round trip


@pytest.mark.parametrize("text, named", [
    ("optimiser: {lrr: 0.1}", "unknown field 'optimiser.lrr' (valid: betas, decay, eps"),
    ("stage: {unet: {preset: tiny, overide: {}}}", "unknown field 'stage.unet.overide'"),
    ("trian: {batch_size: 2}", "unknown field 'trian' (valid: adversarial, data, device, distill, distributed, init, log,"),
    ("distill: {kind: trajectory, dm_wieght: 1}", "unknown field 'distill.dm_wieght' (valid: adversarial_lr, "),  # Optional
    ("stage: {unet: {preset: tiny}, sampling: {stepz: 3}}", "unknown stage.sampling key(s): 'stepz' (valid: "),
    ("stage: {unet: {preset: tiny, overrides: {chanels: 3}}}", "stage.unet: unknown UNetConfig key 'chanels'"),
])
def test_unknown_keys_are_named(tmp_path, text, named):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, "c.yaml", _with_base(text)))
    assert named in str(e.value)


@pytest.mark.parametrize("text, named", [
    ("train: {batch_size: eight}", "train.batch_size should be a valid integer, got 'eight'"),
    ("optimiser: {lr: fast}", "optimiser.lr should be a valid number, got 'fast'"),
    ("log: {tensorboard: 1}", "log.tensorboard should be a valid boolean, got 1"),
    ("optimiser: {betas: [0.9, x]}", "optimiser.betas[1] should be a valid number"),
    ("data: {crop_size: 1.5}", "data.crop_size should be a valid integer, got 1.5"),
    ("precision: fp8", "precision should be 'fp32', 'bf16' or 'fp16', got 'fp8'"),
    # issue 10, kind 1 and 2: ranges as well as types; non-finite numbers refused
    ("optimiser: {lr: .nan}", "optimiser.lr should be a finite number"),
    ("optimiser: {lr: .inf}", "optimiser.lr should be a finite number"),
    ("optimiser: {lr: 1.0e+30}", "optimiser.lr should be less than or equal to 1"),
    ("optimiser: {betas: [1.5, 2]}", "optimiser.betas[0] should be less than 1, got 1.5"),
    ("optimiser: {betas: [0.9]}", "optimiser.betas"),
    ("optimiser: {eps: -1}", "optimiser.eps should be greater than 0, got -1"),
    ("seed: -1", "seed should be greater than or equal to 0, got -1"),
    ("train: {min_snr_gamma: -5}", "train.min_snr_gamma should be greater than 0"),
    ("train: {ema_decay: 1.0}", "train.ema_decay should be less than 1"),
    ("train: {batch_size: 10000000}", "train.batch_size should be less than or equal to 65536"),
    ("stage: {unet: {preset: tiny}, param: {sigma_data: 0}}", "sigma_data should be greater than 0"),
    ("stage: {unet: {preset: tiny}, sampling: {guidance: .inf}}", "guidance should be a finite number"),
    ("max_steps: 0", "max_steps should be greater than or equal to 1, got 0"),
    ("out: 5", "out should be a valid string, got 5"),
])
def test_wrong_types_and_values_are_named(tmp_path, text, named):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, "c.yaml", _with_base(text)))
    assert named in str(e.value)


def test_inconsistent_stage_and_crop_are_explained(tmp_path):
    with pytest.raises(ConfigError, match="lowres_cond"):    # SR resolution with a base U-Net
        load_config(write(tmp_path, "a.yaml", "data: {path: x}\nstage: {resolution: 32, lowres_resolution: 16, "
                                              "unet: {preset: tiny}}"))
    with pytest.raises(ConfigError, match="crop_size is for super-resolution"):
        load_config(write(tmp_path, "b.yaml", "data: {path: x, crop_size: 8}\nstage: {unet: {preset: tiny}}"))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "c.yaml", "stage: [unclosed"))
    with pytest.raises(ConfigError, match="must end in .yaml"):
        load_config(write(tmp_path, "d.ini", "x=1"))


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.*")), ids=lambda p: p.name)
def test_example_configs_load(path):
    cfg = load_config(path)
    assert cfg.stage_config().resolution == cfg.stage.resolution


def test_a_run_folder_or_text_cache_that_is_a_file_is_one_line(assets, tmp_path):
    """Issue 10, kind 5: ``out:`` or ``text.cache_dir:`` naming a file stops before any work, nothing overwritten."""
    import pytest

    from openimagen.errors import OutputError
    from openimagen.train.trainer import Trainer
    from tests.train.conftest import run_config

    (tmp_path / "f").write_text("keep me")
    with pytest.raises(OutputError, match="the run folder \\(out\\) .* is a file; give a folder"):
        Trainer(run_config(assets, tmp_path / "f"))
    with pytest.raises(OutputError, match="text.cache_dir .* is a file"):
        Trainer(run_config(assets, tmp_path / "run", text={"cache_dir": str(tmp_path / "f")}))
    assert (tmp_path / "f").read_text() == "keep me"


@pytest.mark.parametrize("name, text, match", [
    ("c.yaml", "data: {path: x}\nstage: {unet: {preset: tiny}}\nseed: 1\nseed: 2\n",
     r"c.yaml is not valid YAML: key 'seed' given twice in one mapping \(line 4\)"),
    ("c.yaml", "data: {path: x, path: y}\nstage: {unet: {preset: tiny}}\n", "key 'path' given twice"),
    ("c.json", '{"data": {"path": "x"}, "stage": {"unet": {"preset": "tiny"}}, "seed": 1, "seed": 2}',
     "c.json is not valid JSON: key 'seed' given twice in one object"),
])
def test_a_key_given_twice_is_refused_not_silently_last_wins(tmp_path, name, text, match):
    with pytest.raises(ConfigError, match=match):
        load_config(write(tmp_path, name, text))


@pytest.mark.parametrize("distill, match", [
    ("{kind: trajectory, dm_samples: 8, dm_guidance: 3.0}",
     r"distill.dm_samples acts only with distill.dm_weight > 0 \(it is 0\): set dm_weight, or remove dm_samples, "
     "dm_guidance"),
    ("{kind: trajectory, dm_weight: 0.0, dm_lr: 0.001}", "distill.dm_lr acts only with distill.dm_weight > 0"),
    ("{kind: progressive, student_steps: 4, adversarial_lr: 0.001}",
     "distill.adversarial_lr acts only with distill.adversarial_weight > 0"),
])
def test_a_terms_settings_while_the_term_is_off_are_refused(tmp_path, distill, match):
    text = ("data: {path: x}\ninit: {model: default}\nstage: {unet: {preset: tiny}, sampling: {sampler: ddim, steps: "
            f"4, guidance: 1.0, spacing: time}}}}\ndistill: {distill}\n")
    with pytest.raises(ConfigError, match=match):
        load_config(write(tmp_path, "c.yaml", text))
