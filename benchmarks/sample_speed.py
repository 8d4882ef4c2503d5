"""Sampling speed of openimagen vs imagen-pytorch vs diffusers on this CPU, at matched size (untrained nets).

Two numbers per library, for 8 images of 32x32 with classifier-free guidance (weight 4):

1. one guided network evaluation, done the way each library does it:
   openimagen: ``guided(denoiser, 4.0, "dynamic")`` = ONE forward of 16 (cond + uncond) + thresholding;
   imagen-pytorch: ``Unet.forward_with_cond_scale`` = TWO sequential forwards of 8 (its CFG);
   diffusers: as its pipelines do (``IFPipeline``): ONE forward of ``cat([x, x])`` = 16, then chunk.
2. a whole sample at each library's recommended sampler and step count, with its own sampling loop:
   openimagen: ``Stage.sample``, DPM-Solver++(2M), 20 steps (batched, ``batch_invariant=False``; the
   default batch-invariant mode, which evaluates image by image, is timed too);
   imagen-pytorch: ``Imagen.sample`` with its defaults: ancestral DDPM over 1000 steps. 1000 steps take
   minutes here, so the LAST ``--imagen-steps`` (default 50) of its 1000-step loop are timed
   (``skip_steps=1000-N``) and extrapolated linearly to 1000 (every step costs the same two forwards);
   diffusers: ``IFPipeline`` (prompt embeddings passed in, no text encoder, ``output_type="pt"``) with
   ``DPMSolverMultistepScheduler`` (DPM-Solver++ order 2, dynamic thresholding), 20 steps.

``openimagen (--fast)`` is the same two numbers through ``generate --fast``'s setup (ONNX Runtime, float32 since
2026-12-02; ``openimagen.accel.fast``) and ``openimagen (int8 ONNX)`` through the int8 graphs (convolutions
calibrated on real prompts) that ``--fast`` ran before, which cost the v8 default 42% of its emoji Fréchet distance
above the floor (docs/EVALUATION.md). Static int8 needs a calibrated, trained network, so both run the shipped
default model's base stage: the same ``small-cpu`` preset as the untrained openimagen net above (2.36M
parameters; weights do not change the work), with the same inputs and settings. Their graphs are built once into
the cache before anything is timed.

    .venv-bench/bin/python benchmarks/sample_speed.py            # full run (~4 min)
    .venv-bench/bin/python benchmarks/sample_speed.py --quick    # smoke run (~1 min)
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (RESULTS, base_parser, interleaved, load_average, machine_info,  # noqa: E402
                    paired_speedup, start_peer_run, summary, table, write_json)
import peers  # noqa: E402

import torch  # noqa: E402

BATCH = 8
GUIDANCE = 4.0
STEPS = {"openimagen": 20, "imagen-pytorch": 1000, "diffusers": 20, "openimagen (--fast)": 20,
         "openimagen (int8 ONNX)": 20}


def build(imagen_steps: int):
    """Per-evaluation closures, whole-sample closures (each returns the images) and parameter counts."""
    from openimagen.diffusion import Cond, guided
    from openimagen.pipeline import SamplingConfig

    torch.manual_seed(0)
    text, mask = peers.text_batch(BATCH)
    x = torch.randn(BATCH, 3, peers.IMAGE_SIZE, peers.IMAGE_SIZE)

    # --- openimagen
    stage = peers.openimagen_stage().eval()
    den = guided(stage.denoiser, GUIDANCE, "dynamic")
    cond = Cond(text, mask)
    sigma = torch.tensor(1.0)
    cfg = SamplingConfig(sampler="dpmpp_2m", steps=STEPS["openimagen"], guidance=GUIDANCE, threshold="dynamic")
    gens = lambda: [torch.Generator().manual_seed(i) for i in range(BATCH)]

    # --- imagen-pytorch: the Imagen wrapper (defaults: 1000 steps, cosine, dynamic thresholding)
    imagen = peers.imagen_model(timesteps=STEPS["imagen-pytorch"]).eval()
    unet_i, ns = imagen.unets[0], imagen.noise_schedulers[0]
    t_i = torch.full((BATCH,), 0.5)

    # --- diffusers: the DeepFloyd IF pipeline around the matched U-Net (IF's nets predict a variance too)
    unet_d = peers.diffusers_unet(out_channels=6).eval()
    pipe = peers.if_pipeline(unet_d)
    uncond = torch.zeros_like(text)  # stands in for the embeddings of the empty prompt
    t_d = torch.tensor(500)

    def diffusers_eval():  # the body of IFPipeline's loop, network part
        out = unet_d(torch.cat([x, x]), t_d, encoder_hidden_states=torch.cat([uncond, text]), return_dict=False)[0]
        e_u, e_c = out.chunk(2)
        e_u, _ = e_u.split(3, dim=1)
        e_c, var = e_c.split(3, dim=1)
        return torch.cat([e_u + GUIDANCE * (e_c - e_u), var], dim=1)

    evals = {
        "openimagen": lambda: den(x, sigma, cond),
        "imagen-pytorch": lambda: unet_i.forward_with_cond_scale(x, ns.get_condition(t_i), text_embeds=text,
                                                                 text_mask=mask, cond_scale=GUIDANCE),
        "diffusers": diffusers_eval,
    }
    samples = {
        "openimagen": lambda: stage.sample(cond, gens(), cfg, batch_invariant=False),
        "imagen-pytorch": lambda: imagen.sample(text_embeds=text, text_masks=mask, cond_scale=GUIDANCE,
                                                skip_steps=STEPS["imagen-pytorch"] - imagen_steps,
                                                use_tqdm=False, return_pil_images=False),
        "diffusers": lambda: pipe(prompt_embeds=text, negative_prompt_embeds=uncond,
                                  num_inference_steps=STEPS["diffusers"], guidance_scale=GUIDANCE, output_type="pt",
                                  generator=torch.Generator().manual_seed(0)).images,
    }
    default_mode = lambda: stage.sample(cond, gens(), cfg)  # openimagen's default: batch-invariant

    # --- openimagen --fast (float32) and the int8 graphs: the shipped base stage (same preset) through ONNX Runtime
    from openimagen.accel.fast import use_fast
    from openimagen.pipeline import Pipeline

    params = {"openimagen": stage.num_parameters, "imagen-pytorch": peers.count_params(unet_i),
              "diffusers": peers.count_params(unet_d)}
    for name, int8 in (("openimagen (--fast)", False), ("openimagen (int8 ONNX)", True)):
        onnx_stage = use_fast(Pipeline.from_pretrained(watermark=None), int8=int8,
                              threads=torch.get_num_threads()).stages[0]
        assert onnx_stage.config.unet == stage.config.unet, "the shipped base stage is no longer the matched preset"
        den = guided(onnx_stage.denoiser, GUIDANCE, "dynamic")
        evals[name] = lambda den=den: den(x, sigma, cond)
        samples[name] = lambda onnx_stage=onnx_stage: onnx_stage.sample(cond, gens(), cfg, batch_invariant=False)
        params[name] = stage.num_parameters
    return evals, samples, default_mode, params


def main() -> None:
    p = base_parser(__doc__.splitlines()[0], RESULTS / "sample_speed.json")
    p.add_argument("--imagen-steps", type=int, default=None,
                   help="timed steps of imagen-pytorch's 1000-step loop, extrapolated to 1000 (default 50; 10 with --quick)")
    args = p.parse_args()
    start = start_peer_run(args.threads, peers.prepare_imports)
    cmd, compat, load_before = start.command, start.compat, start.load_before
    imagen_steps = args.imagen_steps or (10 if args.quick else 50)
    timed_steps = {**STEPS, "imagen-pytorch": imagen_steps}

    evals, samples, default_mode, params = build(imagen_steps)
    with torch.inference_mode():
        for name, fn in samples.items():  # every sampler must run and give finite images of the right shape
            out = fn()
            assert out.shape == (BATCH, 3, peers.IMAGE_SIZE, peers.IMAGE_SIZE) and torch.isfinite(out).all(), name
        print("network evaluation with CFG, batch 8:")
        warmup, rounds, per_round = (1, 1, 3) if args.quick else (3, 5, 4)
        rounds = args.rounds or rounds
        eval_times = interleaved(evals, warmup=warmup, rounds=rounds, per_round=per_round)
        print("whole samples:")
        s_rounds = 1 if args.quick else min(3, rounds)
        sample_times = interleaved(samples, warmup=0, rounds=s_rounds)  # warmed up by the check above
        print("openimagen default (batch-invariant) mode:")
        default_times = interleaved({"openimagen (default, batch-invariant)": default_mode}, warmup=0,
                                    rounds=1 if args.quick else 2)
    load_after = load_average()

    results = {}
    for name in evals:
        e = summary(eval_times[name])
        s = summary(sample_times[name])
        scale = STEPS[name] / timed_steps[name]
        sec_per_sample = s["median_s"] * scale
        results[name] = {"params": params[name], "eval": e, "eval_ms": e["median_s"] * 1e3,
                         "steps": STEPS[name], "timed_steps": timed_steps[name], "extrapolated": scale != 1,
                         "sample_timed": s, "s_per_batch_of_8": sec_per_sample, "s_per_image": sec_per_sample / BATCH}
    d = summary(default_times["openimagen (default, batch-invariant)"])
    results["openimagen (default, batch-invariant)"] = {
        "params": params["openimagen"], "steps": STEPS["openimagen"], "timed_steps": STEPS["openimagen"],
        "extrapolated": False, "sample_timed": d, "s_per_batch_of_8": d["median_s"], "s_per_image": d["median_s"] / BATCH}
    base = results["openimagen"]
    for r in results.values():
        r["openimagen_speedup_per_image"] = r["s_per_image"] / base["s_per_image"]
        if "eval_ms" in r:
            r["openimagen_speedup_per_eval"] = r["eval_ms"] / base["eval_ms"]
    for name in evals:
        results[name]["openimagen_speedup_per_eval_paired"] = paired_speedup(eval_times, "openimagen", name, per_round)
        results[name]["openimagen_speedup_per_image_paired"] = (
            paired_speedup(sample_times, "openimagen", name, 1) * STEPS[name] / timed_steps[name])

    how = {"openimagen": "1 fwd x16", "imagen-pytorch": "2 fwd x8 (sequential)", "diffusers": "1 fwd x16",
           "openimagen (--fast)": "1 fwd x16, ORT fp32", "openimagen (int8 ONNX)": "1 fwd x16, ORT int8"}
    sampler = {"openimagen": "DPM-Solver++(2M)", "imagen-pytorch": "ancestral DDPM",
               "openimagen (--fast)": "DPM-Solver++(2M)", "openimagen (int8 ONNX)": "DPM-Solver++(2M)",
               "diffusers": "DPMSolverMultistep", "openimagen (default, batch-invariant)": "DPM-Solver++(2M)"}
    eval_rows = [[name, f"{r['params'] / 1e6:.2f}M", how[name], f"{r['eval_ms']:.0f}",
                  f"{r['openimagen_speedup_per_eval']:.2f}x", f"{r['openimagen_speedup_per_eval_paired']:.2f}x"]
                 for name, r in results.items() if "eval_ms" in r]
    print(f"\nOne guided network evaluation (CFG w={GUIDANCE}) for 8 images of 32x32, fp32; median of "
          f"{rounds * per_round}, interleaved")
    print(table(["library", "params", "CFG evaluation", "ms / evaluation", "openimagen speed-up", "paired"], eval_rows))
    sample_rows = []
    for name, r in results.items():
        steps = f"{r['steps']}" + (f" (timed {r['timed_steps']}, x{r['steps'] // r['timed_steps']})" if r["extrapolated"] else "")
        speedup = (f"{r['openimagen_speedup_per_image']:.2f}x" if "eval_ms" in r
                   else f"(batched is {r['openimagen_speedup_per_image']:.2f}x faster)")
        paired = f"{r['openimagen_speedup_per_image_paired']:.2f}x" if "eval_ms" in r else "-"
        sample_rows.append([name, sampler[name], steps, f"{r['s_per_batch_of_8']:.2f}", f"{r['s_per_image'] * 1e3:.0f}",
                            speedup, paired])
    print(f"\nA whole sample of 8 images at each library's recommended sampler; median of {s_rounds}, interleaved")
    print(table(["library", "sampler", "steps", "s / 8 images", "ms / image", "openimagen speed-up", "paired"],
                sample_rows))
    d, fast_vs = results["diffusers"], {}
    for name in ("openimagen (--fast)", "openimagen (int8 ONNX)"):
        f = results[name]
        fast_vs[name] = {"eval": d["eval_ms"] / f["eval_ms"],
                         "eval_paired": paired_speedup(eval_times, name, "diffusers", per_round),
                         "sample": d["s_per_image"] / f["s_per_image"],
                         "sample_paired": paired_speedup(sample_times, name, "diffusers", 1)}
        v = fast_vs[name]
        print(f"\n{name} vs diffusers: guided evaluation {v['eval']:.2f}x (paired {v['eval_paired']:.2f}x), "
              f"whole sample {v['sample']:.2f}x (paired {v['sample_paired']:.2f}x)")
    print(f"load before {load_before}, after {load_after}")
    if args.quick:
        print("(--quick: smoke run, not for reporting)")
    write_json(args.out, {"benchmark": "sample_speed", "command": cmd, "quick": args.quick, "batch": BATCH,
                          "guidance": GUIDANCE, "image_size": peers.IMAGE_SIZE, "text_tokens": peers.TEXT_LEN,
                          "machine": machine_info(), "compat": compat, "load_before": load_before,
                          "load_after": load_after,
                          "method": {"eval_warmup": warmup, "eval_rounds": rounds, "evals_per_round": per_round,
                                     "sample_rounds": s_rounds, "order": list(evals),
                                     "statistic": "median", "imagen_extrapolation": f"{imagen_steps} of 1000 steps timed, x{1000 // imagen_steps}"},
                          "configs": {**peers.configs(), "diffusers_sampling_out_channels": 6},
                          "results": results, "fast_vs_diffusers": fast_vs, "raw_seconds": {"eval": eval_times, "sample": sample_times,
                                                              "default_mode": default_times}})


if __name__ == "__main__":
    main()
