import dataclasses
import json

import pytest

from openimagen.errors import ConfigError, UnknownNameError
from openimagen.nn import PRESETS, EfficientUNet, UNetConfig, count_parameters, get_preset


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_round_trip_through_json(name):
    cfg = get_preset(name)
    d = json.loads(json.dumps(cfg.to_dict()))
    assert isinstance(d["channel_mults"], list)
    back = UNetConfig.from_dict(d)
    assert back == cfg
    assert isinstance(back.channel_mults, tuple) and isinstance(back.cross_attn_levels, tuple)


def test_from_dict_rejects_unknown_key():
    d = UNetConfig().to_dict() | {"chanel_mults": [1, 2]}
    with pytest.raises(ConfigError, match="chanel_mults"):
        UNetConfig.from_dict(d)


def test_from_dict_missing_keys_take_defaults():
    assert UNetConfig.from_dict({"image_size": 64}) == UNetConfig(image_size=64)


def test_unknown_preset_lists_valid_names():
    with pytest.raises(UnknownNameError) as err:
        get_preset("huge")
    for name in PRESETS:
        assert name in str(err.value)


def test_preset_overrides():
    cfg = get_preset("tiny", text_dim=16, dropout=0.1)
    assert cfg == dataclasses.replace(PRESETS["tiny"], text_dim=16, dropout=0.1)
    with pytest.raises(ConfigError, match="txt_dim"):
        get_preset("tiny", txt_dim=16)


@pytest.mark.parametrize("bad, match", [
    (dict(num_res_blocks=(1, 2)), "num_res_blocks"),
    (dict(cross_attn_levels=(3,)), "cross_attn_levels"),
    (dict(self_attn_levels=(1, 1)), "self_attn_levels"),
    (dict(image_size=30), "image_size"),
    (dict(head_dim=48), "head_dim"),
    (dict(text_pooling="max"), "text_pooling"),
    (dict(dropout=1.0), "dropout"),
    (dict(num_null_tokens=0), "num_null_tokens"),
    (dict(channel_mults=(1, 2.0, 4)), "channel_mults"),
    (dict(lowres_cond=1), "lowres_cond"),
    (dict(channel_mults=(), num_res_blocks=()), "level"),
])
def test_inconsistent_configs_raise(bad, match):
    with pytest.raises(ConfigError, match=match):
        dataclasses.replace(PRESETS["small-cpu"], **bad)


def test_lists_become_tuples():
    cfg = UNetConfig(channel_mults=[1, 2], num_res_blocks=[1, 1], cross_attn_levels=[1], self_attn_levels=[])
    assert cfg.channel_mults == (1, 2) and cfg.validate() is cfg


def test_small_cpu_parameter_count():
    n = count_parameters(EfficientUNet(get_preset("small-cpu")))
    print(f"small-cpu parameters: {n}")
    assert 2_000_000 <= n <= 3_500_000
    n_sr = count_parameters(EfficientUNet(get_preset("small-cpu-sr")))
    assert 2_000_000 <= n_sr <= 3_500_000
    n_tiny = count_parameters(EfficientUNet(get_preset("tiny")))
    assert 100_000 <= n_tiny <= 300_000
