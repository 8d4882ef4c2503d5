"""Imagen's Efficient U-Net (Saharia et al. 2022, App. B): config, presets and the network."""
from openimagen.nn.config import PRESETS, UNetConfig, get_preset
from openimagen.nn.unet import EfficientUNet, count_parameters

__all__ = ["UNetConfig", "EfficientUNet", "PRESETS", "get_preset", "count_parameters"]
