import dataclasses
import json

import pytest
from hypothesis import given, settings, strategies as st

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
        get_preset("small-cpu", **bad)
    with pytest.raises(ConfigError, match=match):
        UNetConfig.from_dict({**PRESETS["small-cpu"].to_dict(), **bad})
    with pytest.raises(ValueError, match=match):          # built directly: pydantic's error, same message inside
        dataclasses.replace(PRESETS["small-cpu"], **bad)


_json = st.recursive(st.none() | st.booleans() | st.integers(-3, 300) | st.floats(allow_nan=True) | st.text(max_size=6),
                     lambda c: st.lists(c, max_size=4), max_leaves=6)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([f.name for f in dataclasses.fields(UNetConfig)]), _json, max_size=4))
def test_any_field_values_build_or_fail_in_one_line_naming_a_field(d):
    """Every UNetConfig field, any JSON value: a valid config or one ConfigError line naming a field."""
    try:
        cfg = UNetConfig.from_dict(d)
    except ConfigError as e:
        msg = str(e)
        assert "\n" not in msg
        assert any(f.name in msg for f in dataclasses.fields(UNetConfig)) or "level" in msg
        return
    assert cfg.validate() is cfg and UNetConfig.from_dict(cfg.to_dict()) == cfg


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
