"""LoRA adapters for the cascade's stages, through peft (Hu et al. 2021): settings, files, layers, and the
per-pipeline set of loaded adapters (``pipe.loras``). Training one is a run-config section (``lora:``)."""
from openimagen.lora.config import TARGET_PATTERNS, LoraSettings
from openimagen.lora.files import Adapter, AdapterMeta, read_adapter, save_adapter
from openimagen.lora.manager import LoraAdapters, parse_lora_flag

__all__ = ["TARGET_PATTERNS", "Adapter", "AdapterMeta", "LoraAdapters", "LoraSettings", "parse_lora_flag",
           "read_adapter", "save_adapter"]
