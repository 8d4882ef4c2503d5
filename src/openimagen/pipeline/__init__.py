"""The cascade: stages, their configs, the model directory format and the Pipeline."""
from openimagen.pipeline.config import PipelineConfig, SamplingConfig, StageConfig  # noqa: F401
from openimagen.pipeline.pipeline import DEFAULT_MODEL_DIR, Pipeline, PipelineOutput, make_grid, to_pil  # noqa: F401
from openimagen.pipeline.request import GenerationRequest  # noqa: F401
from openimagen.pipeline.stage import Stage  # noqa: F401
