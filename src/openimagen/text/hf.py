"""A frozen Hugging Face encoder loaded from a local directory.

Imagen's key finding (Saharia et al. 2022, Sec. 2.1 and 4.4) is that a large *frozen*
language-model encoder (T5-XXL) is an excellent text conditioner; scaling it helps
more than scaling the U-Net. :class:`HFTextEncoder` wraps any such encoder:

* ``config.model_type`` in ``t5``/``mt5``/``umt5``: the encoder stack only
  (``T5EncoderModel`` and its mT5/umT5 twins; the decoder weights are never loaded);
* anything else (BERT, MiniLM, RoBERTa, ...): ``AutoModel``.

The output is the last hidden state, zeroed where the mask is False. Loading is
offline only (``local_files_only=True``): the directory must hold ``config.json``,
the weights and the tokenizer files.

Encoder id of a directory: ``hf:<dirname>:<sha256[:12]>``, where the hash covers the
bytes of ``config.json`` and of the tokenizer files present, plus the name and size
of every ``*.safetensors``/``*.bin`` file (sizes, not contents, so that identifying
a 10 GB T5-XXL stays instant). It changes when the architecture, tokenizer or
weight files change, and not when the directory is merely copied elsewhere.

Threads: ``encode`` may be called from several threads at once (e.g. by a threaded server). A Hugging Face
*fast* tokenizer is one Rust object whose padding and truncation settings every call rewrites when its options
differ from the last call's, and ``encode`` tokenizes twice with different options (the full lengths, for the
truncation warning, then padded to L). Two threads sharing it race on those settings: tokenizers raises
"RuntimeError: Already borrowed", or a call silently runs with the other call's padding (a ValueError, or
wrong tokens). So each encoder holds a ``threading.Lock`` and serialises whole ``encode`` calls, tokenization
and forward pass together. The forward pass alone (eval mode, ``no_grad``) could run concurrently, but would
gain little (on CPU one call already uses every core; on a GPU calls share one stream), and one lock over
the whole call keeps the guarantee simple: a call's result is exactly its result in a serial run.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import warnings
from pathlib import Path
from typing import Iterator, Sequence

import torch

from openimagen.errors import InvalidArgumentError, ModelLoadError, check_choice
from openimagen.text.base import TextEmbedding, TextEncoder, check_max_length, check_prompts

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "fp32": torch.float32,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
}
T5_FAMILY = ("t5", "mt5", "umt5")
WEIGHT_SUFFIXES = (".safetensors", ".bin")
VOCAB_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model",
               "tokenizer.model")
TOKENIZER_FILES = VOCAB_FILES + ("tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                                 "merges.txt")


def resolve_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """``torch.float32``/``"fp32"``/``"float16"``/``"bf16"``/... -> a floating ``torch.dtype``."""
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise InvalidArgumentError(f"text encoder dtype must be float32, float16 or bfloat16, got {dtype}")
        return dtype
    if isinstance(dtype, str):
        return DTYPES[check_choice("text encoder dtype", dtype.lower().removeprefix("torch."), DTYPES)]
    raise InvalidArgumentError(f"text encoder dtype must be a torch.dtype or a name, got {dtype!r}")


def resolve_device(device: torch.device | str) -> torch.device:
    """Parse ``device``; raise :class:`InvalidArgumentError` if it is malformed or its backend is absent."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InvalidArgumentError(f"invalid device {device!r}; use e.g. 'cpu', 'cuda' or 'cuda:1'") from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise InvalidArgumentError(f"device {str(device)!r} cannot run models; use 'cpu', 'cuda[:N]' or 'mps'")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidArgumentError(f"device {str(device)!r} requested but CUDA is not available; use device='cpu'")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise InvalidArgumentError(f"device {str(device)!r} requested but MPS is not available; use device='cpu'")
    return dev


def model_dir_id(path: str | Path) -> str:
    """The stable encoder id of a model directory (scheme in the module docstring)."""
    path = Path(path).resolve()
    h = hashlib.sha256()
    for name in ("config.json",) + TOKENIZER_FILES:
        f = path / name
        if f.is_file():
            h.update(f"{name}\0".encode() + f.read_bytes() + b"\0")
    for f in sorted(p for p in path.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES):
        h.update(f"{f.name}\0{f.stat().st_size}\0".encode())
    return f"hf:{path.name}:{h.hexdigest()[:12]}"


def _one_line(err: BaseException) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    return f"{type(err).__name__}: {lines[0] if lines else ''}"[:300]


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' progress bars and load reports; we check the load result ourselves."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _read_config(path: Path) -> dict:
    if not path.exists():
        raise ModelLoadError(f"text encoder directory {str(path)!r} does not exist (give 'default' or a local "
                             f"model directory; nothing is downloaded)")
    if not path.is_dir():
        raise ModelLoadError(f"text encoder path {str(path)!r} is not a directory")
    cfg = path / "config.json"
    if not cfg.is_file():
        raise ModelLoadError(f"{str(path)!r} is not a model directory: it has no config.json")
    try:
        config = json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"cannot read {str(cfg)!r}: {_one_line(e)}") from None
    if not isinstance(config, dict) or "model_type" not in config:
        raise ModelLoadError(f"{str(cfg)!r} has no model_type; is this a Hugging Face model directory?")
    suffixes = {p.suffix for p in path.iterdir() if p.is_file()}
    if ".safetensors" not in suffixes:
        if ".bin" in suffixes:
            raise ModelLoadError(
                f"{str(path)!r} has only pickled PyTorch weights (*.bin), which openimagen never loads (unpickling "
                f"runs code); convert them once: python -c \"from transformers import AutoModel; "
                f"AutoModel.from_pretrained('{path}').save_pretrained('{path}', safe_serialization=True)\"")
        raise ModelLoadError(f"{str(path)!r} has no weights file (model.safetensors)")
    return config


def _load_model(path: Path, model_type: str, dtype: torch.dtype) -> torch.nn.Module:
    """The encoder network, or :class:`ModelLoadError` if its weights do not load completely."""
    import transformers

    if model_type in T5_FAMILY:  # encoder stack only; a full T5 checkpoint's decoder keys are skipped
        cls = {"t5": transformers.T5EncoderModel, "mt5": transformers.MT5EncoderModel,
               "umt5": transformers.UMT5EncoderModel}[model_type]
    else:
        cls = transformers.AutoModel
    try:
        with _quiet_transformers():
            model, info = cls.from_pretrained(str(path), local_files_only=True, dtype=dtype, use_safetensors=True,
                                              ignore_mismatched_sizes=True, output_loading_info=True)
    except Exception as e:  # transformers/safetensors raise many types for bad dirs
        raise ModelLoadError(f"cannot load text encoder weights from {str(path)!r}: {_one_line(e)}") from None
    if getattr(model.config, "is_encoder_decoder", False) and model_type not in T5_FAMILY:
        raise ModelLoadError(f"{str(path)!r} is an encoder-decoder {model_type!r} model; only the T5 family "
                             f"({', '.join(T5_FAMILY)}) and encoder-only models are supported")
    missing = sorted(k for k in info.get("missing_keys", ()) if "pooler" not in k)  # pooler is unused
    mismatched = sorted(str(k[0] if isinstance(k, tuple) else k) for k in info.get("mismatched_keys", ()))
    if missing or mismatched:
        bad = missing + mismatched
        raise ModelLoadError(f"weights in {str(path)!r} do not match its config.json "
                             f"({len(bad)} tensors missing or mis-shaped, e.g. {bad[0]})")
    return model


def _load_tokenizer(path: Path):
    """The tokenizer, set to pad and truncate on the right, and its own length limit (None if unlimited)."""
    from transformers import AutoTokenizer

    # transformers would otherwise build an empty tokenizer that maps every word to <unk>
    if not any((path / f).is_file() for f in VOCAB_FILES):
        raise ModelLoadError(f"{str(path)!r} has no tokenizer files (one of {', '.join(VOCAB_FILES)})")
    try:
        with _quiet_transformers():
            tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as e:
        raise ModelLoadError(f"cannot load the tokenizer in {str(path)!r}: {_one_line(e)}") from None
    if tok.pad_token is None:  # padded positions are masked and zeroed, so any id will do
        tok.pad_token = tok.eos_token or tok.unk_token
    if tok.pad_token is None:
        raise ModelLoadError(f"the tokenizer in {str(path)!r} has no pad, eos or unk token to pad with")
    n = tok.model_max_length  # transformers' "no limit" is a huge sentinel
    limit = n if isinstance(n, int) and n < 1 << 20 else None
    tok.padding_side = tok.truncation_side = "right"
    tok.model_max_length = 1 << 30  # we truncate ourselves and warn once per batch
    return tok, limit


def _warn_truncated(prompts: list[str], n_tokens: list[int], max_length: int) -> None:
    """One warning per batch naming the prompts longer than ``max_length`` and how many tokens each lost."""
    over = [(p, n - max_length) for p, n in zip(prompts, n_tokens) if n > max_length]
    if not over:
        return
    shown = "; ".join(f"{(p[:40] + '...') if len(p) > 40 else p!r} lost {d}" for p, d in over[:3])
    more = f"; and {len(over) - 3} more" if len(over) > 3 else ""
    warnings.warn(f"{len(over)} of {len(prompts)} prompts exceed max_length={max_length} tokens and were "
                  f"truncated ({shown}{more})", stacklevel=4)  # the caller of encode (encode > _encode > here)


class HFTextEncoder(TextEncoder):
    """A frozen, eval-mode Hugging Face encoder read from a local directory.

    Args:
        path:        local model directory (config.json, weights, tokenizer files)
        max_length:  L; prompts are padded to exactly L tokens, longer ones truncated with a warning
        dtype:       weights and output dtype: float32, float16 or bfloat16 (or their names)
        device:      where the model runs and the outputs live
        encoder_id:  override the id (default: :func:`model_dir_id`)

    Not an ``nn.Module`` on purpose: the encoder is frozen, so it must never show up in a
    denoiser's ``parameters()``, ``state_dict()`` or be switched back to ``train()``.
    """

    def __init__(self, path: str | Path, *, max_length: int = 32, dtype: torch.dtype | str = torch.float32,
                 device: torch.device | str = "cpu", encoder_id: str | None = None):
        self.path = Path(path).expanduser().resolve()
        self.dtype = resolve_dtype(dtype)
        self.device = resolve_device(device)
        config = _read_config(self.path)
        model_type = str(config["model_type"])
        self.tokenizer, tok_limit = _load_tokenizer(self.path)
        limits = [] if model_type in T5_FAMILY else [config.get("max_position_embeddings"), tok_limit]
        limits = [n for n in limits if isinstance(n, int) and not isinstance(n, bool)]  # T5: relative positions
        self.max_length = check_max_length(max_length, min(limits) if limits else None)

        model = _load_model(self.path, model_type, self.dtype)
        model.requires_grad_(False)
        self.model = model.eval().to(self.device)
        rows = self.model.get_input_embeddings().num_embeddings
        if len(self.tokenizer) > rows:
            raise ModelLoadError(f"the tokenizer in {str(self.path)!r} has {len(self.tokenizer)} tokens but the "
                                 f"model's embedding table only {rows} rows")
        self.dim = int(self.model.config.hidden_size)
        self.encoder_id = encoder_id if encoder_id is not None else model_dir_id(self.path)
        self._lock = threading.Lock()  # one encode at a time: the tokenizer is not thread-safe (module docstring)

    def encode(self, prompts: Sequence[str]) -> TextEmbedding:
        """Embed ``prompts`` into ``(B, max_length, dim)`` tokens and a ``(B, max_length)`` mask.

        Safe to call from several threads: calls on one encoder run one at a time (module docstring).
        """
        prompts = check_prompts(prompts)
        with self._lock:
            return self._encode(prompts)

    def _encode(self, prompts: list[str]) -> TextEmbedding:
        """``encode`` without the lock: tokenize (twice, see the module docstring) and run the model."""
        L = self.max_length
        full = [len(ids) for ids in self.tokenizer(prompts)["input_ids"]]
        _warn_truncated(prompts, full, L)
        batch = self.tokenizer(prompts, padding="max_length", truncation=True, max_length=L,
                               return_tensors="pt", return_token_type_ids=False)
        ids = batch["input_ids"].to(self.device)              # (B, L)
        mask = batch["attention_mask"].to(self.device).bool()  # (B, L)
        # no_grad, not inference_mode: inference tensors could not be saved for the denoiser's backward.
        with torch.no_grad():
            h = self.model(input_ids=ids, attention_mask=mask.long()).last_hidden_state  # (B, L, D)
        h = h.masked_fill(~mask[..., None], 0.0)
        return TextEmbedding(h, mask, self.encoder_id)
