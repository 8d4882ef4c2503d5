"""The three networks under test, built at matched size (32x32 RGB, 16 text tokens of width 384).

* openimagen: the ``small-cpu`` preset of the Efficient U-Net (~2.36M parameters): widths 32/64/128 at
  32/16/8 px, ResBlocks (1, 2, 2), text cross-attention at 16 and 8 px, self-attention (text joined) at 8 px.
* imagen-pytorch 2.1.0 ``Unet``: library defaults except the size and the attention placement, which are
  set to openimagen's (cross-attention at 16 and 8 px, self-attention at 8 px): ``dim=32,
  dim_mults=(1, 2, 2)`` gives ~2.26M parameters (-4%). Its defaults ``attn_heads=8, attn_dim_head=64``
  are kept.
* diffusers 0.42.1 ``UNet2DConditionModel``: ``block_out_channels=(32, 64, 64)``, one plain block at
  32 px and cross-attention transformer blocks at 16 and 8 px (plus its cross-attention mid block),
  ``layers_per_block=(1, 1, 2)`` (more depth at low resolution, like openimagen), heads of width 32:
  ~2.45M parameters (+4%).

Importing imagen-pytorch here needs two work-arounds, both applied by :func:`prepare_imports` and written
into every result JSON (see docs/BENCHMARKS.md, "Installing the peers"):

1. PyPI's Linux torchvision wheels are CUDA builds. Beside the CPU build of torch 2.13.0, torchvision
   0.28.0's compiled ops (``_C.so``) cannot load (it links ``libc10_cuda.so``); torchvision copes with
   that for every op except ``nms``/``qnms``, whose fake-tensor registrations then fail with "operator
   torchvision::nms does not exist", so ``import torchvision`` fails, and with it ``imagen_pytorch``
   (``import torchvision.transforms``) and also ``transformers``/``diffusers`` (they import torchvision
   when it is installed). We declare the two op schemas, without kernels, before torchvision is
   imported; the real torchvision 0.28.0 Python package then imports. None of the benchmarked code
   calls a torchvision op (imagen-pytorch only uses ``T.ToPILImage`` when asked for PIL output).
2. ``import imagen_pytorch`` evaluates ``get_encoded_dim('google/t5-v1_1-base')`` in a default
   argument, which downloads the T5 config from the Hugging Face hub; this machine reaches PyPI only.
   We seed imagen-pytorch's own config cache (``imagen_pytorch.t5.T5_CONFIGS``) with that model's
   ``d_model=768``. Every network below is built with ``text_embed_dim=384``, so the value is unused.
"""
from __future__ import annotations

import ctypes
import importlib.util
import os
import sys
from pathlib import Path

import torch

COMPAT_NOTES: list[str] = []

IMAGE_SIZE = 32
TEXT_LEN = 16
TEXT_DIM = 384

IMAGEN_UNET_KW = dict(dim=32, dim_mults=(1, 2, 2), num_resnet_blocks=1, layer_attns=(False, False, True),
                      layer_cross_attns=(False, True, True), text_embed_dim=TEXT_DIM, cond_on_text=True,
                      channels=3)
DIFFUSERS_UNET_KW = dict(sample_size=IMAGE_SIZE, in_channels=3, out_channels=3, block_out_channels=(32, 64, 64),
                         layers_per_block=(1, 1, 2),
                         down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                         up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                         cross_attention_dim=TEXT_DIM, attention_head_dim=(1, 2, 2))  # heads: 32 channels each


def prepare_imports() -> list[str]:
    """Make ``torchvision`` (hence imagen-pytorch, transformers, diffusers) importable; see the module docstring."""
    if COMPAT_NOTES:
        return COMPAT_NOTES
    spec = importlib.util.find_spec("torchvision")
    if spec is not None and "torchvision" not in sys.modules:
        so = Path(spec.submodule_search_locations[0]) / "_C.so"
        try:
            ctypes.CDLL(str(so))
            COMPAT_NOTES.append("torchvision: compiled ops load; imported as is")
        except OSError as e:
            lib = torch.library.Library("torchvision", "DEF")  # kept alive by the module-level list below
            lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            _KEEP.append(lib)
            COMPAT_NOTES.append(f"torchvision: compiled ops do not load ({e}); declared the schemas of "
                                "torchvision::nms/qnms (no kernels) so that the Python package imports")
    spec = importlib.util.find_spec("imagen_pytorch")
    if spec is not None and "imagen_pytorch" not in sys.modules:
        path = Path(spec.submodule_search_locations[0]) / "t5.py"
        t5_spec = importlib.util.spec_from_file_location("imagen_pytorch.t5", path)
        t5 = importlib.util.module_from_spec(t5_spec)
        sys.modules["imagen_pytorch.t5"] = t5
        t5_spec.loader.exec_module(t5)
        from transformers import T5Config
        t5.T5_CONFIGS.setdefault(t5.DEFAULT_T5_NAME, {"config": T5Config(d_model=768)})
        COMPAT_NOTES.append("imagen_pytorch: seeded imagen_pytorch.t5.T5_CONFIGS['google/t5-v1_1-base'] with "
                            "d_model=768 (its import otherwise downloads that config from the HF hub)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return COMPAT_NOTES


_KEEP: list = []


def count_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


# ---------------------------------------------------------------------------------------------- builders
def openimagen_stage():
    from openimagen.nn import get_preset
    from openimagen.pipeline import Stage, StageConfig
    return Stage(StageConfig(unet=get_preset("small-cpu"), resolution=IMAGE_SIZE))


def imagen_unet():
    prepare_imports()
    from imagen_pytorch.imagen_pytorch import Unet
    return Unet(**IMAGEN_UNET_KW)


def imagen_model(timesteps: int = 1000):
    """imagen-pytorch's ``Imagen`` around the matched ``Unet`` with the library's defaults (1000 steps, cosine)."""
    prepare_imports()
    from imagen_pytorch.imagen_pytorch import Imagen
    return Imagen(unets=imagen_unet(), image_sizes=IMAGE_SIZE, text_embed_dim=TEXT_DIM, timesteps=timesteps)


def diffusers_unet(out_channels: int = 3):
    prepare_imports()
    from diffusers import UNet2DConditionModel
    return UNet2DConditionModel(**{**DIFFUSERS_UNET_KW, "out_channels": out_channels})


def if_pipeline(unet):
    """diffusers' DeepFloyd ``IFPipeline`` around ``unet`` (no text encoder: prompt embeddings are passed in) with
    ``DPMSolverMultistepScheduler`` as IF recommends it: DPM-Solver++ order 2, dynamic thresholding, IF's
    learned-range variance (so ``unet`` has 6 output channels)."""
    prepare_imports()
    from diffusers import DPMSolverMultistepScheduler, IFPipeline
    sched = DPMSolverMultistepScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                                        algorithm_type="dpmsolver++", solver_order=2, thresholding=True,
                                        dynamic_thresholding_ratio=0.95, sample_max_value=1.0,
                                        variance_type="learned_range")
    pipe = IFPipeline(tokenizer=None, text_encoder=None, unet=unet, scheduler=sched, safety_checker=None,
                      feature_extractor=None, watermarker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def text_batch(batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 16, 384) token embeddings and a (B, 16) bool mask with 8 to 16 real tokens per prompt."""
    g = torch.Generator().manual_seed(seed)
    text = torch.randn(batch, TEXT_LEN, TEXT_DIM, generator=g)
    lengths = torch.randint(8, TEXT_LEN + 1, (batch,), generator=g)
    mask = torch.arange(TEXT_LEN)[None, :] < lengths[:, None]
    return text * mask[..., None], mask


def configs() -> dict:
    from openimagen.nn import get_preset
    return {"openimagen": {"preset": "small-cpu", **get_preset("small-cpu").to_dict()},
            "imagen-pytorch": {"class": "imagen_pytorch.Unet", **IMAGEN_UNET_KW},
            "diffusers": {"class": "diffusers.UNet2DConditionModel", **DIFFUSERS_UNET_KW}}
