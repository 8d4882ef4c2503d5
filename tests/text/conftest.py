"""Fixtures shared by the text tests: the default encoder and tiny random model dirs, built once."""
from __future__ import annotations

import pytest

from openimagen.text import CachedTextEncoder, load_text_encoder
from tests.text.tiny_models import make_bert_dir, make_t5_dir

ENCODER_NAMES = ("minilm", "t5", "bert", "cached-t5")


@pytest.fixture(scope="session")
def t5_dir(tmp_path_factory):
    return make_t5_dir(tmp_path_factory.mktemp("tiny-t5") / "tiny-t5")


@pytest.fixture(scope="session")
def bert_dir(tmp_path_factory):
    return make_bert_dir(tmp_path_factory.mktemp("tiny-bert") / "tiny-bert")


@pytest.fixture(scope="session")
def make_encoder(t5_dir, bert_dir, tmp_path_factory):
    """``make_encoder(name, max_length)``: one of ENCODER_NAMES, loaded once per (name, max_length)."""
    built = {}
    cache_root = tmp_path_factory.mktemp("text-cache")

    def make(name: str, max_length: int = 16):
        if (name, max_length) not in built:
            if name == "minilm":
                enc = load_text_encoder("default", max_length=max_length)
            elif name == "t5":
                enc = load_text_encoder(str(t5_dir), max_length=max_length)
            elif name == "bert":
                enc = load_text_encoder(str(bert_dir), max_length=max_length)
            elif name == "cached-t5":
                enc = CachedTextEncoder(make("t5", max_length), cache_root)
            else:
                raise KeyError(name)
            built[name, max_length] = enc
        return built[name, max_length]

    return make


@pytest.fixture(scope="session")
def minilm(make_encoder):
    return make_encoder("minilm", 16)


@pytest.fixture(scope="session")
def t5(make_encoder):
    return make_encoder("t5", 12)


@pytest.fixture(scope="session")
def bert(make_encoder):
    return make_encoder("bert", 12)
