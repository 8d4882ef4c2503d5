"""Issue 10: every field of a run config, given any JSON/YAML value, builds a valid config or fails with one
ConfigError line that names the field's dotted key (never a traceback, never a silently wrong type)."""
import dataclasses

from hypothesis import given, settings, strategies as st

from openimagen.errors import ConfigError
from openimagen.train.config import RunConfig

BASE = {"data": {"path": "data/x"}, "stage": {"unet": {"preset": "tiny"}, "resolution": 16}}


def _leaves() -> list[tuple[str, ...]]:
    out = []
    for f in dataclasses.fields(RunConfig):
        sub = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
        if sub is not None and dataclasses.is_dataclass(sub):
            out += [(f.name, g.name) for g in dataclasses.fields(sub)]
        else:
            out.append((f.name,))
    return out


LEAVES = _leaves()
_json = st.recursive(st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=6),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=2),
                     max_leaves=5)


@settings(max_examples=400, deadline=None)
@given(path=st.sampled_from(LEAVES), value=_json)
def test_any_value_of_any_field_builds_or_names_the_field(path, value):
    d = {k: dict(v) if isinstance(v, dict) else v for k, v in BASE.items()}
    if len(path) == 1:
        d[path[0]] = value
    else:
        d.setdefault(path[0], {})
        d[path[0]] = {**d[path[0]], path[1]: value}
    try:
        cfg = RunConfig.from_dict(d)
    except ConfigError as e:
        msg = str(e)
        assert "\n" not in msg
        assert path[-1] in msg or path[0] in msg, (path, msg)
        return
    assert RunConfig.from_dict(cfg.to_dict()) == cfg             # what built is a consistent, saveable config
