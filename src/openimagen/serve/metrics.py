"""Prometheus metrics of one service (its own registry, so several apps in one process do not collide)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    """requests by route and status; queue depth; batch sizes; queueing and generation latency; images made;
    rejections by reason (queue_full, rate_limited, unauthorized, timeout, cancelled, invalid, policy)."""

    def __init__(self):
        r = self.registry = CollectorRegistry()
        self.requests = Counter("openimagen_requests", "HTTP requests by route and status", ["route", "status"],
                                registry=r)
        self.queue_depth = Gauge("openimagen_queue_depth", "requests waiting for the worker", registry=r)
        self.batch_size = Histogram("openimagen_batch_size", "images per batched call",
                                    buckets=(1, 2, 4, 8, 16, 32, 64), registry=r)
        self.queue_seconds = Histogram("openimagen_queue_seconds", "time from arrival to the start of its batch",
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.generation_seconds = Histogram("openimagen_generation_seconds", "time of one batched call",
                                            buckets=LATENCY_BUCKETS, registry=r)
        self.images = Counter("openimagen_images_generated", "images generated", registry=r)
        self.rejections = Counter("openimagen_rejections", "requests refused, by reason", ["reason"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
