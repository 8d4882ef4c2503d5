"""Tests of openimagen.text: the text-encoder contract, HF loading, the default encoder and the cache."""
