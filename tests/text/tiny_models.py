"""Tiny random Hugging Face encoders built in code (no downloads), for fast CPU tests."""
from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast, T5Config, T5EncoderModel
from transformers.utils import logging as hf_logging

WORDS = ("a an the red green blue yellow black white circle square triangle star on of in under "
         "above big small two three cat dog sky night day photo painting").split()


def word_tokenizer(kind: str) -> PreTrainedTokenizerFast:
    """A whitespace WordLevel tokenizer with T5-style (``... </s>``) or BERT-style special tokens."""
    if kind == "t5":
        specials = ["<pad>", "</s>", "<unk>"]
        template, extra = "$A </s>", {"eos_token": "</s>"}
    else:
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
        template, extra = "[CLS] $A [SEP]", {"cls_token": "[CLS]", "sep_token": "[SEP]"}
    vocab = {w: i for i, w in enumerate(specials + list(WORDS))}
    tk = Tokenizer(models.WordLevel(vocab, unk_token=specials[-1] if kind == "t5" else "[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.post_processor = processors.TemplateProcessing(
        single=template, special_tokens=[(t, vocab[t]) for t in specials if t in template])
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token=specials[0],
                                   unk_token=specials[-1] if kind == "t5" else "[UNK]", **extra)


def _save(model: torch.nn.Module, tok: PreTrainedTokenizerFast, path: Path) -> Path:
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(str(path))
        tok.save_pretrained(str(path))
    finally:
        hf_logging.enable_progress_bar()
    return path


def make_t5_dir(path: Path, seed: int = 0) -> Path:
    """A 1-layer, 4-head, d_model=16 random T5 encoder with its tokenizer, saved to ``path``."""
    tok = word_tokenizer("t5")
    cfg = T5Config(vocab_size=len(tok), d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=4,
                   decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    torch.manual_seed(seed)
    return _save(T5EncoderModel(cfg), tok, path)


def make_bert_dir(path: Path, seed: int = 0) -> Path:
    """A 2-layer, 2-head, hidden=16 random BERT with its tokenizer, saved to ``path``."""
    tok = word_tokenizer("bert")
    cfg = BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=64, pad_token_id=0)
    torch.manual_seed(seed)
    return _save(BertModel(cfg), tok, path)
