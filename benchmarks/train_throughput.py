"""Training throughput of openimagen vs imagen-pytorch vs diffusers on this CPU, at matched size.

One training step = forward + backward + AdamW step, fp32, batch 32 of 32x32 RGB, 16 text tokens of
width 384 through cross-attention. Each library gets its own objective:

* openimagen: ``stage_loss`` of the ``small-cpu`` stage (cosine schedule, EDM-style preconditioning,
  min-SNR weighting, 10% text dropout via its learned null text);
* imagen-pytorch: eps-MSE on an image noised by its own ``GaussianDiffusionContinuousTimes`` (cosine),
  the ``Unet`` called as ``Imagen`` calls it (``cond_drop_prob=0.1``);
* diffusers: eps-MSE on an image noised by ``DDPMScheduler.add_noise``, ``UNet2DConditionModel`` with
  ``encoder_attention_mask``.

The objectives cost next to nothing beside the network; the number is the network's training speed.

    .venv-bench/bin/python benchmarks/train_throughput.py            # full run (~4 min)
    .venv-bench/bin/python benchmarks/train_throughput.py --quick    # smoke run (~1 min)
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (RESULTS, base_parser, count_flops, interleaved, paired_speedup,  # noqa: E402
                    load_average, machine_info, sgemm_ceiling, start_peer_run, summary, table, write_json)
import peers  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

BATCH = 32
TARGETS = {"imagen-pytorch": 1.5, "diffusers": 1.2}  # the issue: openimagen >= 1.5x imagen-pytorch, >= 1.2x diffusers


def make_steps(batch: int) -> tuple[dict, dict]:
    """One closure per library doing a full training step; and each library's trainable parameter count."""
    from openimagen.train.step import stage_loss
    from imagen_pytorch.imagen_pytorch import GaussianDiffusionContinuousTimes
    from diffusers import DDPMScheduler

    torch.manual_seed(0)
    images = torch.rand(batch, 3, peers.IMAGE_SIZE, peers.IMAGE_SIZE) * 2 - 1
    text, mask = peers.text_batch(batch)
    gen = torch.Generator().manual_seed(0)

    stage = peers.openimagen_stage().train()
    opt_o = torch.optim.AdamW(stage.parameters(), lr=1e-4)

    def openimagen_step():
        loss = stage_loss(stage, images, text, mask, gen).mean()
        opt_o.zero_grad(set_to_none=True)
        loss.backward()
        opt_o.step()

    unet_i = peers.imagen_unet().train()
    opt_i = torch.optim.AdamW(unet_i.parameters(), lr=1e-4)
    ns = GaussianDiffusionContinuousTimes(noise_schedule="cosine", timesteps=1000)

    def imagen_step():
        t = ns.sample_random_times(batch, device=images.device)
        noise = torch.randn_like(images)
        x_t, *_ = ns.q_sample(images, t=t, noise=noise)
        pred = unet_i(x_t, ns.get_condition(t), text_embeds=text, text_mask=mask, cond_drop_prob=0.1)
        loss = F.mse_loss(pred, noise)
        opt_i.zero_grad(set_to_none=True)
        loss.backward()
        opt_i.step()

    unet_d = peers.diffusers_unet().train()
    opt_d = torch.optim.AdamW(unet_d.parameters(), lr=1e-4)
    sched = DDPMScheduler(num_train_timesteps=1000)

    def diffusers_step():
        t = torch.randint(0, sched.config.num_train_timesteps, (batch,))
        noise = torch.randn_like(images)
        x_t = sched.add_noise(images, noise, t)
        pred = unet_d(x_t, t, encoder_hidden_states=text, encoder_attention_mask=mask, return_dict=False)[0]
        loss = F.mse_loss(pred, noise)
        opt_d.zero_grad(set_to_none=True)
        loss.backward()
        opt_d.step()

    steps = {"openimagen": openimagen_step, "imagen-pytorch": imagen_step, "diffusers": diffusers_step}
    params = {"openimagen": stage.num_parameters, "imagen-pytorch": peers.count_params(unet_i),
              "diffusers": peers.count_params(unet_d)}
    return steps, params


def profile_step(step, steps: int = 3, top: int = 15) -> list[dict]:
    """torch.profiler over ``steps`` training steps: the ops with the most self CPU time."""
    from torch.profiler import ProfilerActivity, profile
    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events)
    return [{"op": e.key, "self_cpu_ms_per_step": e.self_cpu_time_total / 1e3 / steps,
             "share": e.self_cpu_time_total / total, "calls_per_step": e.count // steps} for e in events[:top]]


def main() -> None:
    args = base_parser(__doc__.splitlines()[0], RESULTS / "train_throughput.json").parse_args()
    start = start_peer_run(args.threads, peers.prepare_imports)
    cmd, compat, load_before = start.command, start.compat, start.load_before

    ceiling = sgemm_ceiling(repeats=5 if args.quick else 15)
    print(f"sgemm 2048^3 fp32 ceiling: {ceiling['gflops_median']:.1f} GFLOP/s (median), {ceiling['gflops_best']:.1f} best")

    steps, params = make_steps(BATCH)
    counted = {name: count_flops(fn) for name, fn in steps.items()}  # also each library's first step
    flops = {name: total / BATCH for name, (total, _) in counted.items()}
    top_flops = {name: by_op for name, (_, by_op) in counted.items()}
    warmup, rounds, per_round = (1, 1, 2) if args.quick else (3, 5, 3)
    rounds = args.rounds or rounds
    times = interleaved(steps, warmup=warmup, rounds=rounds, per_round=per_round)
    ceiling_after = sgemm_ceiling(repeats=5 if args.quick else 15)
    load_after = load_average()

    results = {}
    for name in steps:
        s = summary(times[name])
        ips = BATCH / s["median_s"]
        results[name] = {"params": params[name], "step": s, "img_per_s": ips,
                         "img_per_s_best": BATCH / s["min_s"], "gflop_per_img": flops[name] / 1e9,
                         "gflop_per_s": ips * flops[name] / 1e9,
                         "share_of_sgemm_ceiling": ips * flops[name] / 1e9 / ceiling["gflops_median"],
                         "top_flop_ops": top_flops[name]}
    base = results["openimagen"]
    for name, r in results.items():
        r["openimagen_speedup_vs_this"] = base["img_per_s"] / r["img_per_s"]
        r["openimagen_speedup_paired"] = paired_speedup(times, "openimagen", name, per_round)
        r["openimagen_speedup_best"] = base["img_per_s_best"] / r["img_per_s_best"]
        r["params_vs_openimagen"] = r["params"] / base["params"] - 1

    print("\nprofiling openimagen's training step (torch.profiler, 3 steps)")
    prof = profile_step(steps["openimagen"], steps=2 if args.quick else 3)
    print(table(["op", "self CPU ms/step", "share", "calls/step"],
                [[p["op"], f"{p['self_cpu_ms_per_step']:.1f}", f"{100 * p['share']:.1f}%", p["calls_per_step"]]
                 for p in prof]))

    rows = []
    for name, r in results.items():
        rows.append([name, f"{r['params'] / 1e6:.2f}M ({100 * r['params_vs_openimagen']:+.0f}%)",
                     f"{r['img_per_s']:.1f}", f"{r['img_per_s_best']:.1f}",
                     f"{r['step']['p25_s'] * 1e3:.0f}-{r['step']['p75_s'] * 1e3:.0f}",
                     f"{r['openimagen_speedup_vs_this']:.2f}x", f"{r['openimagen_speedup_paired']:.2f}x",
                     f"{r['openimagen_speedup_best']:.2f}x", f"{r['gflop_per_img']:.2f}",
                     f"{r['gflop_per_s']:.0f}", f"{100 * r['share_of_sgemm_ceiling']:.0f}%"])
    print(f"\nTraining, fp32, batch {BATCH}, 32x32, 16 text tokens x 384; median of {rounds * per_round} steps, "
          f"interleaved; sgemm ceiling {ceiling['gflops_median']:.0f} GFLOP/s")
    print(table(["library", "params", "img/s (median)", "img/s (best)", "step ms (p25-p75)", "openimagen speed-up",
                 "paired", "best-of", "GFLOP/img",
                 "GFLOP/s", "of sgemm ceiling"], rows))
    verdict = {}
    for peer, target in TARGETS.items():
        ratio = results[peer]["openimagen_speedup_vs_this"]
        paired, best = results[peer]["openimagen_speedup_paired"], results[peer]["openimagen_speedup_best"]
        verdict[peer] = {"target": target, "measured": ratio, "paired": paired, "best_of": best, "met": ratio >= target,
                         "missing_factor": max(0.0, target / ratio - 1)}
        print(f"target openimagen >= {target}x {peer}: measured {ratio:.2f}x (paired {paired:.2f}x, best-of {best:.2f}x) -> "
              f"{'MET' if ratio >= target else f'MISSED (needs {100 * (target / ratio - 1):.0f}% more speed)'}")
    print(f"load before {load_before}, after {load_after}")
    if args.quick:
        print("(--quick: smoke run, not for reporting)")
    write_json(args.out, {"benchmark": "train_throughput", "command": cmd, "quick": args.quick,
                          "batch": BATCH, "image_size": peers.IMAGE_SIZE, "text_tokens": peers.TEXT_LEN,
                          "text_dim": peers.TEXT_DIM, "machine": machine_info(), "compat": compat,
                          "load_before": load_before, "load_after": load_after,
                          "sgemm_ceiling": ceiling, "sgemm_ceiling_after": ceiling_after,
                          "method": {"warmup_steps": warmup, "rounds": rounds, "steps_per_round": per_round,
                                     "order": list(steps), "statistic": "median step time"},
                          "configs": peers.configs(), "results": results, "verdict": verdict,
                          "openimagen_profile": prof, "raw_step_seconds": times})


if __name__ == "__main__":
    main()
