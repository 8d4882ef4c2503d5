"""The packed text encoder of the GPU bundle (openimagen.gpu.encoder_pack): float16 weights and only the
word-embedding rows the captions use, so that it travels; it must embed those captions as the source does
(within a bound tied to the float16 rounding the embedding cache applies anyway) and refuse any other token."""
import pytest
import torch
from safetensors import safe_open

from openimagen.errors import ConfigError
from openimagen.gpu.encoder_pack import (ROWS, WEIGHTS, PackedVocabulary, check_pack, pack_encoder,
                                         unpack_encoder, used_token_ids)
from openimagen.text.hf import HFTextEncoder
from tests.text.tiny_models import make_bert_dir

CAPTIONS = ["a red circle", "two blue squares", "a green star above a yellow triangle"]


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    root = tmp_path_factory.mktemp("pack")
    src = make_bert_dir(root / "bert")
    meta = pack_encoder(src, CAPTIONS, root / "pack", max_length=16)
    return src, root / "pack", unpack_encoder(root / "pack", root / "unpacked"), meta


def test_pack_keeps_only_the_used_rows_in_float16(packed):
    src, pack, _, meta = packed
    ref = HFTextEncoder(src, max_length=16)
    ids = used_token_ids(ref.tokenizer, CAPTIONS, 16)
    assert meta["kept_rows"] == len(ids) < meta["table_shape"][0]
    with safe_open(str(pack / ROWS), "pt") as f:
        assert f.get_tensor("ids").tolist() == ids and f.get_tensor("rows").dtype == torch.float16
    with safe_open(str(pack / WEIGHTS), "pt") as f:
        assert "embeddings.word_embeddings.weight" not in f.keys()
        assert all(f.get_tensor(k).dtype == torch.float16 for k in f.keys() if f.get_tensor(k).is_floating_point())


def test_unpacked_encoder_matches_the_source_on_the_captions(packed):
    src, _, unpacked, _ = packed
    ref, got = HFTextEncoder(src, max_length=16), HFTextEncoder(unpacked, max_length=16)
    check = check_pack(ref, got, CAPTIONS)
    # fp16 weights move the outputs by about the float16 rounding of the outputs themselves (what the cache
    # stores); a lost or misplaced row would move them by the size of the outputs
    assert 0 < check["max_abs_error"] <= 4 * max(check["max_abs_fp16_rounding"], 1e-4)
    assert check["max_abs_error"] < 0.05 * check["max_abs_value"]


def test_a_caption_outside_the_pack_is_refused(packed):
    src, pack, unpacked, _ = packed
    tok = HFTextEncoder(unpacked, max_length=16).tokenizer
    PackedVocabulary.read(pack).check(tok, CAPTIONS)
    assert "cat" not in " ".join(CAPTIONS)      # in the tiny vocabulary, not in the captions: its row was cut
    with pytest.raises(ConfigError, match="lacks"):
        PackedVocabulary.read(pack).check(tok, ["a red cat"])
