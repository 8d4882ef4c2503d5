"""A text encoder small enough to travel: the default encoder's weights in float16, with the word-embedding
table cut down to the token ids that the training captions use.

Why: the GPU machine of the GPU recipe (:mod:`openimagen.gpu`) has PyTorch and transformers but not this
project's default-encoder package, and at most 64 MiB travel with a call. all-MiniLM-L6-v2 is 91 MB in float32,
half of it the (30522, 384) word-embedding table, of which a caption set of shapes and emoji names uses about a
thousand rows. The full embedding cache of the default mix (24,870 captions x 16 tokens x 384 x fp16) would be
300 MB; the pack is about 22 MB and computes the cache there.

Layout of a pack folder:

=======================  ===========================================================================
``config.json``, tokenizer files      copied from the source encoder
``weights.safetensors``  every tensor of the source in float16, except ``embeddings.word_embeddings.weight``
``word_rows.safetensors`` ``ids`` (K,) int64 and ``rows`` (K, D) float16: the kept rows of that table
``pack.json``            source encoder id, kept-row count, and the measured embedding error (see
                         :func:`check_pack`)
=======================  ===========================================================================

:func:`unpack_encoder` writes a loadable Hugging Face directory (float32 weights, zero rows for token ids no
caption uses); a prompt with a token outside the kept ids is refused by :func:`PackedVocabulary.check`, never
embedded wrongly. The float16 rounding of the weights changes the embeddings by far less than the float16
rounding that the embedding cache applies to them anyway; :func:`check_pack` measures both on the captions.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from openimagen.errors import ConfigError, ModelLoadError

WORD_TABLE = "embeddings.word_embeddings.weight"
WEIGHTS, ROWS, META = "weights.safetensors", "word_rows.safetensors", "pack.json"
COPIED = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def _weights_file(src: Path) -> Path:
    path = src / "model.safetensors"
    if not path.is_file():
        raise ModelLoadError(f"{src} has no model.safetensors to pack")
    return path


def used_token_ids(tokenizer, texts: Sequence[str], max_length: int) -> list[int]:
    """Every token id that ``tokenizer`` gives ``texts`` (truncated to ``max_length``) plus its special tokens."""
    ids = set(int(i) for i in tokenizer.all_special_ids)
    for start in range(0, len(texts), 4096):
        batch = tokenizer(list(texts[start:start + 4096]), truncation=True, max_length=max_length)["input_ids"]
        for row in batch:
            ids.update(int(i) for i in row)
    return sorted(ids)


def pack_encoder(src: str | Path, texts: Sequence[str], out: str | Path, *, max_length: int) -> dict:
    """Write a pack of the Hugging Face encoder in ``src`` that can embed ``texts``; returns its ``pack.json``.

    Raises ModelLoadError when ``src`` has no safetensors weights or no word-embedding table.
    """
    from transformers import AutoTokenizer

    src, out = Path(src), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(str(src), local_files_only=True)
    ids = used_token_ids(tokenizer, texts, max_length)
    tensors = {}
    with safe_open(str(_weights_file(src)), "pt") as f:
        if WORD_TABLE not in f.keys():
            raise ModelLoadError(f"{src} has no {WORD_TABLE}; only BERT-style encoders can be packed")
        for key in f.keys():
            t = f.get_tensor(key)
            if key == WORD_TABLE:
                table_shape = list(t.shape)
                rows = t[torch.tensor(ids)].to(torch.float16).contiguous()
            else:
                tensors[key] = t.to(torch.float16) if t.is_floating_point() else t
    save_file(tensors, str(out / WEIGHTS))
    save_file({"ids": torch.tensor(ids, dtype=torch.int64), "rows": rows}, str(out / ROWS))
    for name in COPIED:
        if (src / name).is_file():
            shutil.copyfile(src / name, out / name)
    meta = {"format": 1, "table_shape": table_shape, "kept_rows": len(ids), "max_length": max_length}
    (out / META).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return meta


def unpack_encoder(pack: str | Path, out: str | Path) -> Path:
    """Write a Hugging Face directory (float32 ``model.safetensors``) from ``pack``; returns ``out``."""
    pack, out = Path(pack), Path(out)
    try:
        meta = json.loads((pack / META).read_text(encoding="utf-8"))
        with safe_open(str(pack / WEIGHTS), "pt") as f:
            tensors = {k: (t.float() if t.is_floating_point() else t) for k in f.keys() for t in [f.get_tensor(k)]}
        with safe_open(str(pack / ROWS), "pt") as f:
            ids, rows = f.get_tensor("ids"), f.get_tensor("rows")
    except (OSError, ValueError, KeyError) as e:
        raise ModelLoadError(f"{pack} is not a complete encoder pack ({e})") from None
    table = torch.zeros(meta["table_shape"], dtype=torch.float32)
    table[ids] = rows.float()
    tensors[WORD_TABLE] = table
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "model.safetensors"))
    for name in COPIED:
        if (pack / name).is_file():
            shutil.copyfile(pack / name, out / name)
    return out


@dataclass
class PackedVocabulary:
    """The token ids a pack can embed; :meth:`check` refuses texts that need any other."""

    ids: frozenset
    max_length: int

    @classmethod
    def read(cls, pack: str | Path) -> "PackedVocabulary":
        pack = Path(pack)
        with safe_open(str(pack / ROWS), "pt") as f:
            ids = frozenset(int(i) for i in f.get_tensor("ids").tolist())
        return cls(ids, int(json.loads((pack / META).read_text(encoding="utf-8"))["max_length"]))

    def check(self, tokenizer, texts: Sequence[str]) -> None:
        """Raises ConfigError naming the first text with a token id outside the pack."""
        for start in range(0, len(texts), 4096):
            chunk = list(texts[start:start + 4096])
            for text, row in zip(chunk, tokenizer(chunk, truncation=True, max_length=self.max_length)["input_ids"]):
                missing = [i for i in row if int(i) not in self.ids]
                if missing:
                    raise ConfigError(f"caption {text!r} uses token ids {missing[:5]} that the encoder pack lacks; "
                                      f"rebuild the bundle with this caption")


def check_pack(reference, packed, texts: Sequence[str], batch_size: int = 256) -> dict:
    """Measure the packed encoder against ``reference`` (both :class:`~openimagen.text.TextEncoder`) on ``texts``.

    Returns ``max_abs_error`` (packed vs reference, float32 outputs on real tokens), ``max_abs_fp16_rounding``
    (reference vs its own float16 rounding, what the embedding cache stores) and ``max_abs_value``.
    """
    err = rnd = peak = 0.0
    for start in range(0, len(texts), batch_size):
        batch = list(texts[start:start + batch_size])
        a, b = reference.encode(batch), packed.encode(batch)
        if not torch.equal(a.mask.cpu(), b.mask.cpu()):
            raise ConfigError("the packed encoder's token masks differ from the reference's")
        ta, tb = a.tokens.float().cpu(), b.tokens.float().cpu()
        err = max(err, float((ta - tb).abs().max()))
        rnd = max(rnd, float((ta - ta.half().float()).abs().max()))
        peak = max(peak, float(ta.abs().max()))
    return {"texts": len(texts), "max_abs_error": err, "max_abs_fp16_rounding": rnd, "max_abs_value": peak}
