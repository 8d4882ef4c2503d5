"""Responsible use: an invisible watermark on every generated image, and a prompt policy (deny-list)."""
from openimagen.safety.policy import PromptPolicy  # noqa: F401
from openimagen.safety.watermark import Detection, Watermark  # noqa: F401
