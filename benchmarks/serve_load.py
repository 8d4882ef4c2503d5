"""Load test of ``openimagen serve`` on loopback: batching gain, then many concurrent clients.

1. Batching: 8 concurrent single-image requests (seeds 0..7) against the same 8 sent one at a time; images/s of
   each and their ratio (issue 12 asks for >= 2x on CPU).
2. Load: ``--clients`` concurrent clients (asyncio + httpx) for ``--duration`` seconds, each sending single-image
   requests in a loop and, when refused with 429, waiting ``Retry-After`` (at most 5 s) before trying again.
   Reports status counts (every refusal must be a 429; 5xx only the documented 503/504), p50/p99 latency of the
   200s and images/s.

    .venv/bin/python benchmarks/serve_load.py [--clients 500] [--duration 60] [--model DIR]

Prints a table and writes benchmarks/results/serve_load.json. The server is started here with
``--max-batch 8 --batch-wait-ms 50 --max-queue 64 --timeout 60`` unless ``--server-args`` says otherwise.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

PROMPTS = ["a red circle above a blue square", "two green stars", "a big yellow triangle", "pizza", "rocket",
           "grinning face", "red heart", "a blue square and a black circle"]


def start_server(args) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "openimagen", "serve", "--port", str(port), *shlex.split(args.server_args)]
    if args.model:
        cmd += ["--model", args.model]
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start")


async def one(client, url, k: int) -> tuple[int, float]:
    t = time.perf_counter()
    r = await client.post(url + "/v1/images/generations", json={"prompt": PROMPTS[k % 8], "seed": k})
    return r.status_code, time.perf_counter() - t


async def batching(url: str) -> dict:
    async with httpx.AsyncClient(timeout=300) as client:
        await one(client, url, 0)                                   # warm-up
        t = time.perf_counter()
        together = await asyncio.gather(*[one(client, url, k) for k in range(8)])
        t_batched = time.perf_counter() - t
        t = time.perf_counter()
        alone = [await one(client, url, k) for k in range(8)]
        t_alone = time.perf_counter() - t
    assert all(s == 200 for s, _ in together + alone), (together, alone)
    return {"concurrent_images_per_s": round(8 / t_batched, 3), "one_at_a_time_images_per_s": round(8 / t_alone, 3),
            "ratio": round(t_alone / t_batched, 2), "concurrent_s": round(t_batched, 2), "one_at_a_time_s": round(t_alone, 2)}


async def load(url: str, clients: int, duration: float) -> dict:
    statuses, latencies, errors = collections.Counter(), [], collections.Counter()
    stop = time.monotonic() + duration
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client_loop(client, i: int):
        k = i
        while time.monotonic() < stop:
            t = time.perf_counter()
            try:
                r = await client.post(url + "/v1/images/generations", json={"prompt": PROMPTS[k % 8], "seed": k})
            except httpx.HTTPError as e:
                errors[type(e).__name__] += 1
                continue
            statuses[r.status_code] += 1
            k += clients
            if r.status_code == 200:
                latencies.append(time.perf_counter() - t)
            elif r.status_code == 429:
                await asyncio.sleep(min(5.0, float(r.headers.get("retry-after", 1))))

    t0 = time.perf_counter()
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        await asyncio.gather(*[client_loop(client, i) for i in range(clients)])
    wall = time.perf_counter() - t0
    lat = np.array(latencies) if latencies else np.array([float("nan")])
    return {"clients": clients, "duration_s": round(wall, 1), "status_counts": dict(sorted(statuses.items())),
            "client_errors": dict(errors), "images_per_s": round(statuses[200] / wall, 3),
            "p50_latency_s": round(float(np.percentile(lat, 50)), 2), "p99_latency_s": round(float(np.percentile(lat, 99)), 2),
            "unexpected_5xx": sum(v for s, v in statuses.items() if s >= 500 and s not in (503, 504))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=500)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--model", default=None)
    ap.add_argument("--server-args", default="--max-batch 8 --batch-wait-ms 50 --max-queue 64 --timeout 60")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/serve_load.json"))
    args = ap.parse_args()
    proc, url = start_server(args)
    try:
        batch = asyncio.run(batching(url))
        res = asyncio.run(load(url, args.clients, args.duration))
        metrics = httpx.get(url + "/metrics").text
    finally:
        proc.terminate()
        proc.wait(60)
    rejections = {line.split('"')[1]: float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                  if line.startswith("openimagen_rejections_total{")}
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; server: {args.server_args}\n")
    print("| batching (8 single-image requests) | images/s |\n|---|---|")
    print(f"| concurrent (batched by the service) | {batch['concurrent_images_per_s']} |")
    print(f"| one at a time | {batch['one_at_a_time_images_per_s']} |")
    print(f"| ratio | {batch['ratio']}x |\n")
    print(f"| load: {res['clients']} clients, {res['duration_s']} s | value |\n|---|---|")
    for key in ("status_counts", "client_errors", "images_per_s", "p50_latency_s", "p99_latency_s", "unexpected_5xx"):
        print(f"| {key} | {res[key]} |")
    print(f"| server rejections by reason | {rejections} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"server_args": args.server_args, "model": args.model or "default",
                                    "batching": batch, "load": res, "rejections": rejections}, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
