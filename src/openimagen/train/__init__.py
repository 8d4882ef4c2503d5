"""Training of cascade stages: run configs, the trainer, checkpoints and export to a pipeline directory.

    from openimagen.train import load_config, train, export_pipeline
    result = train(load_config("configs/tiny-shapes-base.yaml"))
    export_pipeline([result.run_dir], "models/mine")

Names are imported on first use, so ``import openimagen.train.step`` stays light.
"""
from importlib import import_module

_EXPORTS = {"RunConfig": "config", "load_config": "config", "Trainer": "trainer", "TrainResult": "trainer",
            "train": "trainer", "Checkpoint": "checkpoint", "export_pipeline": "export", "stage_loss": "step"}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(f"openimagen.train.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'openimagen.train' has no attribute {name!r}")
