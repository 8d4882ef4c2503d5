"""The contract every text encoder passes (Imagen's frozen-encoder interface), no per-class cases."""
import warnings

import pytest
import torch

from openimagen.errors import InvalidArgumentError
from openimagen.text import TextEmbedding, TextEncoder
from tests.text.conftest import ENCODER_NAMES

PROMPTS = ["a red circle", "", "two small blue squares under the night sky"]
LONG = " ".join(["red circle on a blue square"] * 20)


@pytest.fixture(params=ENCODER_NAMES)
def name(request):
    return request.param


def test_shapes_mask_and_id(make_encoder, name):
    enc = make_encoder(name, 16)
    assert isinstance(enc, TextEncoder)
    emb = enc.encode(PROMPTS)
    assert isinstance(emb, TextEmbedding)
    assert emb.tokens.shape == (3, 16, enc.dim) and emb.tokens.dtype == enc.dtype
    assert emb.mask.shape == (3, 16) and emb.mask.dtype == torch.bool
    assert emb.encoder_id == enc.encoder_id and isinstance(enc.encoder_id, str) and enc.encoder_id
    n = emb.mask.sum(1)
    assert (emb.mask == (torch.arange(16) < n[:, None])).all(), "mask must be True on a prefix, then False"
    assert n[1] >= 1 and n[0] > n[1] and n[2] > n[0]   # "" still has its special tokens
    assert torch.isfinite(emb.tokens).all()
    assert (emb.tokens[~emb.mask] == 0).all(), "padding positions are zeroed"
    assert (emb.tokens[emb.mask].abs().sum(-1) > 0).all()


def test_call_is_encode_and_deterministic(make_encoder, name):
    enc = make_encoder(name, 16)
    a, b = enc(PROMPTS), enc.encode(PROMPTS)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.mask, b.mask)


@pytest.mark.filterwarnings("ignore:.*were truncated")
def test_same_prompt_same_embedding_in_any_batch(make_encoder, name):
    enc = make_encoder(name, 16)
    alone = enc.encode(["a red circle"])
    mixed = enc.encode(["blue square", "", "a red circle", LONG])
    torch.testing.assert_close(mixed.tokens[2], alone.tokens[0], atol=1e-5, rtol=0)
    assert torch.equal(mixed.mask[2], alone.mask[0])


def test_real_tokens_do_not_depend_on_padding_length(make_encoder, name):
    short, long = make_encoder(name, 12), make_encoder(name, 24)
    a, b = short.encode(PROMPTS), long.encode(PROMPTS)
    assert torch.equal(b.mask[:, :12], a.mask) and not b.mask[:, 12:].any()
    torch.testing.assert_close(b.tokens[:, :12], a.tokens, atol=1e-5, rtol=0)
    assert (b.tokens[:, 12:] == 0).all()


def test_long_prompt_is_truncated_with_a_warning(make_encoder, name):
    enc = make_encoder(name, 12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a prompt that fits must not warn
        enc.encode(["a red circle"])
    pattern = r"exceed max_length=12 tokens and were truncated \('red circle on a blue square.*' lost \d+\)"
    with pytest.warns(UserWarning, match=pattern):
        emb = enc.encode(["a red circle", LONG + " long-tail-marker"])
    assert emb.tokens.shape == (2, 12, enc.dim) and emb.mask[1].all()


def test_outputs_are_constants_usable_in_autograd(make_encoder, name):
    emb = make_encoder(name, 16).encode(["a red circle"])
    assert not emb.tokens.requires_grad
    w = torch.ones(emb.tokens.shape[-1], dtype=emb.tokens.dtype, requires_grad=True)
    (emb.tokens * w).sum().backward()  # not an inference-mode tensor: a denoiser can train on it
    assert w.grad is not None


@pytest.mark.parametrize("bad", [[], (), "a red circle", ["ok", None], ["ok", 3], None])
def test_bad_prompt_lists_are_rejected(make_encoder, name, bad):
    with pytest.raises(InvalidArgumentError):
        make_encoder(name, 16).encode(bad)
