"""Data for openimagen: dataset formats, preprocessing, built-in builders, text-embedding cache.

=========================  ==================================================================
module                     what it holds
=========================  ==================================================================
:mod:`.preprocess`         image loading (alpha on white), resize policies, tensors in [-1, 1],
                           caption normalisation, the skip report (``report.json``)
:mod:`.formats`            folder / manifest readers and :func:`open_dataset`
:mod:`.webdata`            WebDataset shards, split across ranks and workers
:mod:`.dataset`            :class:`CaptionedImageDataset` and the preprocessed image cache
:mod:`.embeddings`         :func:`precompute_text_embeddings` and :class:`EmbeddingTable`
:mod:`.writer`             the folder layout every builder writes
:mod:`.emojis`             :func:`build_emoji` (Noto Color Emoji + Unicode emoji-test.txt)
:mod:`.shapes_scene`       shapes vocabulary, captions and held-out split
:mod:`.shapes`             :func:`build_shapes` (layout and drawing)
:mod:`.openclipart`        :func:`build_openclipart` (Debian openclipart-png)
=========================  ==================================================================
"""
from .dataset import CachedImageDataset, CaptionedImageDataset, build_image_cache, choose_caption
from .embeddings import EmbeddingTable, precompute_text_embeddings
from .emojis import build_emoji, read_emoji_test
from .formats import Record, detect_format, load_records, open_dataset
from .openclipart import build_openclipart, openclipart_caption
from .preprocess import Preprocessor, SkipImage, SkipReport, load_image, normalize_caption, to_pil, to_tensor
from .shapes import build_shapes, make_scene
from .shapes_scene import (BACKGROUNDS, COLORS, DEFAULT_HOLDOUT, NUMBERS, RELATIONS, SCENE_TYPES, SHAPES, SIZES,
                           Holdout, sample_spec)
from .webdata import WebDatasetStream, write_shards
from .writer import BuildResult

__all__ = [
    "BACKGROUNDS", "COLORS", "DEFAULT_HOLDOUT", "NUMBERS", "RELATIONS", "SCENE_TYPES", "SHAPES", "SIZES",
    "BuildResult", "CachedImageDataset", "CaptionedImageDataset", "EmbeddingTable", "Holdout", "Preprocessor",
    "Record", "SkipImage", "SkipReport", "WebDatasetStream", "build_emoji", "build_image_cache",
    "build_openclipart", "build_shapes", "choose_caption", "detect_format", "load_image", "load_records",
    "make_scene", "normalize_caption", "open_dataset", "openclipart_caption", "precompute_text_embeddings",
    "read_emoji_test", "sample_spec", "to_pil", "to_tensor", "write_shards",
]
