"""Openclipart builder (needs Debian's openclipart-png, installed by make setup)."""
import json

import pytest

from openimagen.data import build_openclipart, openclipart_caption, open_dataset
from openimagen.data.openclipart import clean_title
from openimagen.errors import OpenImagenError


@pytest.mark.parametrize("stem, title", [
    ("blue_jay", "blue jay"),
    ("saturn_dan_gerhards_01", "saturn"),
    ("medicina_dottore_archite_01", "medicina dottore"),
    ("arrow-up-seagreen_benji__01", "arrow up seagreen"),
    ("fireworks_ganson1", "fireworks"),
    ("symbol_for_a_church_on__01", "symbol for a church"),
    ("star_32pt05step", "32-pointed star"),
    ("simple_h_k", "king of hearts playing card"),
    ("08_waningcrescent_openc_01", "waningcrescent"),
])
def test_clean_title(stem, title):
    assert clean_title(stem) == title


def test_caption_from_path():
    assert openclipart_caption("animals/birds/blue_jay.png")[0] == "blue jay, birds, animals"
    assert openclipart_caption("unsorted/duplicates/tux.png")[0] == "tux"
    assert openclipart_caption("signs_and_symbols/flags/europe/italy/italy.png")[0] == \
        "italy, europe, flags, signs and symbols"


def test_build_with_limit(tmp_path):
    result = build_openclipart(tmp_path / "oc", 32, limit=120)
    rows = [json.loads(line) for line in result.manifest.read_text().splitlines()]
    assert result.count == len(rows) >= 100 and result.count + result.skipped == 120
    assert all(r["caption"] and r["labels"]["source"].endswith(".png") for r in rows)
    assert len({r["labels"]["categories"][-1] for r in rows if r["labels"]["categories"]}) >= 8  # spread out
    ds = open_dataset(result.out, size=32)
    assert len(ds) == result.count


def test_missing_root_is_a_clear_error(tmp_path):
    with pytest.raises(OpenImagenError, match="openclipart-png"):
        build_openclipart(tmp_path / "x", root=tmp_path / "nothing")
