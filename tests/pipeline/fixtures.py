"""A tiny random two-stage cascade built in code (no training), for fast pipeline and CLI tests."""
import torch

from openimagen.pipeline import Pipeline, PipelineConfig, Stage
from openimagen.text import load_text_encoder
from openimagen.train.overfit import stage_configs

_ENCODER = None


def encoder():
    global _ENCODER
    if _ENCODER is None:
        _ENCODER = load_text_encoder("default", max_length=8)
    return _ENCODER


def tiny_pipeline(seed: int = 0) -> Pipeline:
    torch.manual_seed(seed)
    stages = [Stage(c).eval() for c in stage_configs()]
    for st in stages:                      # un-zero the output layer so images depend on text, noise and weights
        for p in st.parameters():
            p.data += 0.05 * torch.randn_like(p)
    return Pipeline(encoder(), stages, PipelineConfig(stages=("stage0_base", "stage1_sr"), max_length=8))
