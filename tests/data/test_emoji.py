"""Emoji builder (needs Debian's fonts-noto-color-emoji and unicode-data, installed by make setup)."""
import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from openimagen.data import build_emoji, read_emoji_test
from openimagen.data.emojis import emoji_captions
from openimagen.errors import OpenImagenError


@pytest.fixture(scope="module")
def emoji_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("emoji") / "emoji"
    result = build_emoji(out, 64)
    return result, [json.loads(line) for line in (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]


def test_emoji_test_file_parses():
    entries = read_emoji_test()
    assert len(entries) > 3500
    first = entries[0]
    assert (first.chars, first.name, first.group, first.subgroup) == ("\U0001F600", "grinning face",
                                                                      "Smileys & Emotion", "face-smiling")
    assert all(e.status == "fully-qualified" for e in entries)


def test_full_build_counts_labels_and_captions(emoji_build):
    result, rows = emoji_build
    assert result.count == len(rows) > 3500
    by_name = {r["caption"]: r for r in rows}
    grin = by_name["grinning face"]["labels"]
    assert (grin["group"], grin["subgroup"], grin["emoji"]) == ("Smileys & Emotion", "face-smiling", "\U0001F600")
    assert grin["emoji_name"] == ":grinning_face:"
    assert by_name["woman facepalming: medium-light skin tone"]["labels"]["group"] == "People & Body"
    assert by_name["flag: South Africa"]["labels"]["subgroup"] == "country-flag"
    groups = Counter(r["labels"]["group"] for r in rows)
    assert set(groups) == {"Smileys & Emotion", "People & Body", "Animals & Nature", "Food & Drink",
                           "Travel & Places", "Activities", "Objects", "Symbols", "Flags"}
    for r in rows:
        assert r["caption"] and r["caption"] == r["caption"].strip() and "_" not in r["caption"]
        assert r["labels"]["subgroup"] and len(r["captions"]) == 3
    assert len({r["key"] for r in rows}) == len(rows)


def test_images_are_coloured_and_centred(emoji_build):
    result, rows = emoji_build
    for r in rows[::97]:
        img = np.asarray(Image.open(result.out / r["path"]))
        assert img.shape == (64, 64, 3)
        assert img.min() < 200  # not blank
        spread = img.astype(int).max(axis=2) - img.astype(int).min(axis=2)
        content = np.argwhere(img.min(axis=2) < 255)  # any non-white pixel
        (y0, x0), (y1, x1) = content.min(0), content.max(0)
        assert min(x0, y0) <= 1 and max(x1, y1) >= 62  # tight crop: touches the frame on one axis
        assert abs((x0 + x1) / 2 - 31.5) <= 2 and abs((y0 + y1) / 2 - 31.5) <= 2  # centred
        if r["labels"]["group"] == "Food & Drink":
            assert spread.max() > 60  # colour, not greyscale


def test_deterministic_and_worker_independent(tmp_path):
    a = build_emoji(tmp_path / "a", 32, limit=30, workers=1)
    b = build_emoji(tmp_path / "b", 32, limit=30, workers=2)
    files = sorted(p.relative_to(a.out) for p in a.out.rglob("*") if p.is_file())
    assert len(files) == 30 * 2 + 3
    for f in files:
        assert (a.out / f).read_bytes() == (b.out / f).read_bytes(), f


def test_captions_follow_cldr_names():
    e = next(e for e in read_emoji_test() if e.name == "woman facepalming: medium-light skin tone")
    assert emoji_captions(e) == ["woman facepalming: medium-light skin tone",
                                 "woman facepalming: medium-light skin tone emoji",
                                 "woman facepalming: medium-light skin tone, person gesture"]


def test_missing_sources_are_clear_errors(tmp_path):
    with pytest.raises(OpenImagenError, match="emoji font not found"):
        build_emoji(tmp_path / "x", font=tmp_path / "none.ttf")
    with pytest.raises(OpenImagenError, match="unicode-data"):
        read_emoji_test(tmp_path / "none.txt")
