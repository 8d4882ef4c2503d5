"""ASGI middleware counting requests by route template and status (the body size limit is FastAPI's own)."""
from __future__ import annotations

from openimagen.serve.metrics import Metrics


class RequestMetrics:
    """Count every HTTP request by its route template and response status."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = {"code": 500}

        async def tracking_send(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or ("/static" if scope["path"].startswith("/static/") else "other")
            self.metrics.requests.labels(path, str(status["code"])).inc()
            if status["code"] == 413:
                self.metrics.rejections.labels("too_large").inc()
