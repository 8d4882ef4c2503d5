"""The HTTP service (FastAPI + uvicorn; Ray Serve to scale out): docs/SERVING.md."""
from openimagen.serve.config import ServeConfig  # noqa: F401

