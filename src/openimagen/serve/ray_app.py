"""Scale out on Ray Serve: the same FastAPI app, one per replica, autoscaled on ongoing requests.

Each replica builds its own app (its own model, batching worker and queue) from a picklable ``spec`` when Ray
starts it (``serve.ingress`` with a builder function), so nothing heavy crosses the network. Ray Serve's proxy
spreads requests over the replicas and its autoscaler adds replicas (up to ``max_replicas``) when the ongoing
requests per replica pass ``max_batch``, i.e. when each replica has a full batch waiting. On a multi-node
cluster, start Ray on every node (``ray start --head`` / ``ray start --address HEAD:6379``) and run
``openimagen serve --ray`` with ``RAY_ADDRESS=HEAD:6379`` (docs/SERVING.md, "Scale out").

``serve run openimagen.serve.ray_app:app_builder model=DIR replicas=4`` is the same deployment for Ray's own CLI
and config files.
"""
from __future__ import annotations

import os
from typing import Optional


def deployment(spec: dict, max_replicas: int = 1, name: str = "openimagen"):
    """A bound Ray Serve application serving ``build_app(**spec)`` on 1..``max_replicas`` autoscaled replicas."""
    from ray import serve

    from openimagen.serve.config import ServeConfig

    config = ServeConfig.build(**(spec.get("config") or {}))

    def build():
        from openimagen.serve.app import build_app

        return build_app(**spec)

    ingress = serve.ingress(build)(type("OpenImagenReplica", (), {}))
    return serve.deployment(
        ingress, name=name, ray_actor_options={"num_cpus": 1},
        max_ongoing_requests=config.max_queue + config.max_batch,
        autoscaling_config={"min_replicas": 1, "max_replicas": max_replicas,
                            "target_ongoing_requests": config.max_batch}).bind()


def app_builder(args: dict):
    """For ``serve run openimagen.serve.ray_app:app_builder model=DIR replicas=N device=cpu [variant=NAME]``."""
    spec = {"model": args.get("model"), "device": args.get("device", "cpu"), "dtype": args.get("dtype", "float32"),
            "variant": args.get("variant")}
    return deployment(spec, max_replicas=int(args.get("replicas", 1)))


def run_ray(spec: dict, host: str, port: int, max_replicas: int, address: Optional[str] = None) -> int:
    """Connect to (or start) Ray, serve on ``host:port`` and block until interrupted."""
    import signal

    import ray
    from ray import serve

    stop = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)          # delivered to sigwait below, not as exceptions
    ray.init(address=address or os.environ.get("RAY_ADDRESS"), include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": host, "port": port})
        serve.run(deployment(spec, max_replicas), name="openimagen", route_prefix="/")
        print(f"openimagen: serving on Ray Serve at http://{host}:{port}/ with up to {max_replicas} replica(s)",
              flush=True)
        signal.sigwait(stop)
        print("openimagen: stopping Ray Serve", flush=True)
    finally:
        serve.shutdown()
        ray.shutdown()
    return 0
