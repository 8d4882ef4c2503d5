"""HFTextEncoder: T5 family via T5EncoderModel, BERT-like via AutoModel, frozen; clear load errors."""
import json
import shutil

import pytest
import torch
import transformers

from openimagen.errors import InvalidArgumentError, ModelLoadError, UnknownNameError
from openimagen.text import HFTextEncoder, load_text_encoder
from openimagen.text.hf import model_dir_id, resolve_dtype
from tests.text.tiny_models import make_bert_dir, word_tokenizer


def _frozen(enc):
    return not enc.model.training and not any(p.requires_grad for p in enc.model.parameters())


def test_t5_loads_the_encoder_stack_frozen(t5, t5_dir):
    assert isinstance(t5, HFTextEncoder)
    assert isinstance(t5.model, transformers.T5EncoderModel)
    assert _frozen(t5)
    assert t5.dim == 16 and t5.max_length == 12
    emb = t5.encode(["a red circle", ""])
    assert emb.tokens.shape == (2, 12, 16)
    assert emb.mask.sum(1).tolist() == [4, 1]  # "a red circle </s>" and "</s>"
    assert emb.encoder_id == model_dir_id(t5_dir)


def test_bert_like_loads_through_automodel(bert):
    assert isinstance(bert.model, transformers.BertModel)
    assert _frozen(bert)
    emb = bert.encode(["a red circle", ""])
    assert emb.tokens.shape == (2, 12, 16)
    assert emb.mask.sum(1).tolist() == [5, 2]  # [CLS] a red circle [SEP] / [CLS] [SEP]


def test_full_t5_checkpoint_loads_only_its_encoder(tmp_path):
    tok = word_tokenizer("t5")
    cfg = transformers.T5Config(vocab_size=len(tok), d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=4,
                                decoder_start_token_id=0)
    torch.manual_seed(0)
    full = transformers.T5ForConditionalGeneration(cfg).eval()
    full.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    enc = HFTextEncoder(tmp_path, max_length=8)
    assert isinstance(enc.model, transformers.T5EncoderModel)
    ids = tok(["a red circle"], return_tensors="pt")["input_ids"]
    want = full.encoder(input_ids=ids).last_hidden_state
    torch.testing.assert_close(enc.encode(["a red circle"]).tokens[:, :4], want, atol=1e-6, rtol=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, "bf16", "float16"])
def test_dtype_option(t5_dir, dtype):
    enc = load_text_encoder(str(t5_dir), max_length=8, dtype=dtype)
    emb = enc.encode(["a red circle"])
    assert emb.tokens.dtype == resolve_dtype(dtype) == enc.dtype
    assert next(enc.model.parameters()).dtype == enc.dtype


def test_encoder_id_identifies_weights_not_location(t5_dir, tmp_path):
    copy = tmp_path / "copy" / t5_dir.name
    shutil.copytree(t5_dir, copy)
    assert model_dir_id(copy) == model_dir_id(t5_dir)
    assert model_dir_id(t5_dir).startswith(f"hf:{t5_dir.name}:")
    cfg = json.loads((copy / "config.json").read_text())
    cfg["layer_norm_epsilon"] = 1e-5
    (copy / "config.json").write_text(json.dumps(cfg))
    assert model_dir_id(copy) != model_dir_id(t5_dir)
    assert HFTextEncoder(t5_dir, encoder_id="my-t5").encoder_id == "my-t5"


# ---- errors: one line, typed, naming the path ------------------------------------------------

def _one_line(exc_info, *parts):
    msg = str(exc_info.value)
    assert "\n" not in msg and all(p in msg for p in parts), msg
    assert exc_info.value.__cause__ is None or exc_info.value.__suppress_context__


def test_missing_directory(tmp_path):
    with pytest.raises(ModelLoadError) as e:
        load_text_encoder(str(tmp_path / "nope"))
    _one_line(e, str(tmp_path / "nope"), "does not exist")


def test_directory_without_config(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelLoadError) as e:
        load_text_encoder(str(tmp_path))
    _one_line(e, str(tmp_path), "config.json")


def test_file_instead_of_directory(tmp_path):
    f = tmp_path / "config.json"
    f.write_text("{}")
    with pytest.raises(ModelLoadError) as e:
        load_text_encoder(str(f))
    _one_line(e, "not a directory")


def test_broken_config(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError) as e:
        load_text_encoder(str(tmp_path))
    _one_line(e, "config.json")


def test_no_weights(bert_dir, tmp_path):
    d = tmp_path / "noweights"
    shutil.copytree(bert_dir, d)
    (d / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError) as e:
        load_text_encoder(str(d))
    _one_line(e, str(d), "no weights")


def test_truncated_weights(bert_dir, tmp_path):
    d = tmp_path / "truncated"
    shutil.copytree(bert_dir, d)
    w = d / "model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    with pytest.raises(ModelLoadError) as e:
        load_text_encoder(str(d))
    _one_line(e, str(d))


@pytest.mark.parametrize("key, value", [("num_hidden_layers", 3),    # one more layer than the weights hold
                                        ("intermediate_size", 64)])  # wrong shapes
def test_weights_that_do_not_match_the_config(tmp_path, key, value):
    d = make_bert_dir(tmp_path / "bert")
    cfg = json.loads((d / "config.json").read_text())
    cfg[key] = value
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError) as e:
        load_text_encoder(str(d))
    _one_line(e, str(d), "do not match")


def test_missing_tokenizer(bert_dir, tmp_path):
    d = tmp_path / "notok"
    shutil.copytree(bert_dir, d)
    for f in d.glob("tokenizer*"):
        f.unlink()
    with pytest.raises(ModelLoadError) as e:
        load_text_encoder(str(d))
    _one_line(e, str(d), "no tokenizer files")


def test_tokenizer_larger_than_the_embedding_table(bert_dir, tmp_path):
    d = tmp_path / "smallvocab"
    shutil.copytree(bert_dir, d)
    tok = word_tokenizer("bert")
    tok.add_tokens(["zebra", "giraffe"])  # two ids past the model's last embedding row
    tok.save_pretrained(d)
    with pytest.raises(ModelLoadError) as e:
        load_text_encoder(str(d))
    _one_line(e, str(d), "embedding table")


def test_tokenizer_length_limit_is_respected(bert_dir, tmp_path):
    d = tmp_path / "short-tokenizer"
    shutil.copytree(bert_dir, d)
    tok = word_tokenizer("bert")
    tok.model_max_length = 16
    tok.save_pretrained(d)
    assert load_text_encoder(str(d), max_length=16).max_length == 16
    with pytest.raises(InvalidArgumentError, match="limit of 16"):
        load_text_encoder(str(d), max_length=17)


@pytest.mark.parametrize("dtype", ["float64", "int8", "fp8", torch.int64, 3])
def test_bad_dtype(bert_dir, dtype):
    with pytest.raises(InvalidArgumentError):
        load_text_encoder(str(bert_dir), dtype=dtype)


def test_unknown_dtype_name_lists_valid_ones(bert_dir):
    with pytest.raises(UnknownNameError, match="bfloat16"):
        load_text_encoder(str(bert_dir), dtype="float64")


@pytest.mark.parametrize("max_length", [0, -3, 2.5, True, 65])  # the tiny BERT has 64 positions
def test_bad_max_length(bert_dir, max_length):
    with pytest.raises(InvalidArgumentError, match="max_length"):
        load_text_encoder(str(bert_dir), max_length=max_length)


def test_t5_has_no_position_limit(t5_dir):
    assert load_text_encoder(str(t5_dir), max_length=1000).encode(["a"]).tokens.shape == (1, 1000, 16)


def test_bad_device(bert_dir):
    with pytest.raises(InvalidArgumentError, match="device"):
        load_text_encoder(str(bert_dir), device="gpu0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error when CUDA is absent")
def test_cuda_without_cuda(bert_dir):
    with pytest.raises(InvalidArgumentError, match="CUDA is not available"):
        load_text_encoder(str(bert_dir), device="cuda")


def test_bad_spec():
    with pytest.raises(InvalidArgumentError):
        load_text_encoder("")


def test_pickled_weights_are_refused_with_a_conversion_hint(tmp_path):
    """Issue 10, kind 12: nothing is ever unpickled; a directory with only pytorch_model.bin says how to convert."""
    import shutil

    from openimagen.errors import ModelLoadError
    from openimagen.text import load_text_encoder
    from tests.text.tiny_models import make_bert_dir

    src = make_bert_dir(tmp_path / "bert")
    only_bin = tmp_path / "only_bin"
    shutil.copytree(src, only_bin)
    (only_bin / "model.safetensors").rename(only_bin / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match=r"only pickled PyTorch weights .* never loads .* safe_serialization"):
        load_text_encoder(str(only_bin))
