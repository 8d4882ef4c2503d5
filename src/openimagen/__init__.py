"""openimagen: an open, fast, Imagen-style cascaded text-to-image diffusion system."""
from openimagen.errors import (  # noqa: F401
    ConfigError,
    GenerationError,
    InvalidArgumentError,
    ModelLoadError,
    OpenImagenError,
    UnknownNameError,
)

__version__ = "0.1.0"


def __getattr__(name):  # lazy: importing openimagen must not import torch-heavy modules eagerly
    if name == "Pipeline":
        from openimagen.pipeline.pipeline import Pipeline

        return Pipeline
    if name == "GenerationRequest":
        from openimagen.pipeline.request import GenerationRequest

        return GenerationRequest
    raise AttributeError(name)
