"""Can a discriminator tell the 4-step student's base samples from its teacher's? (issue 15, point 1;
docs/EVALUATION.md, "Can a discriminator see the student's gap?")

    .venv/bin/python benchmarks/student_discriminator_probe.py [--model MODEL] [--variant fast] [--n 512]
        [--bank RUN/trajectories] [--steps 2000] [--threads 2] [--json PATH]

Teacher samples: the model's base stage at its own sampling settings (v8: 32 DPM++ 2M steps, guidance 2); student
samples: the ``--variant``'s base stage (its 4 DDIM steps), **from the same starting noise and caption**. Without
``--bank`` both are sampled here for ``--n`` emoji prompts of the emoji suite (half B, stratified, as ``openimagen
eval --suite emoji``; seeds 0..n-1); with ``--bank`` the teacher samples are a trajectory-distillation run's bank
(its trajectories' last states, ``distill.kind: trajectory``) and the student starts from each trajectory's noise
(no teacher sampling: a bank of thousands costs minutes instead of hours).

Each discriminator is trained on 80% of the pairs (hinge loss, Adam, batch 32, ``--steps`` steps, seeded) and
scored on the other 20% by the AUC of its mean logit (0.5 = it cannot tell them apart; 1 = it always can):

* ``patch (as trained)``: the one ``distill.adversarial_weight`` trains (:class:`PatchDiscriminator`, unconditional,
  spectral norm, R1 1, lr 2e-4);
* ``patch, no spectral norm``: the same without spectral norm or R1, lr 1e-3;
* ``global``: four convolutions down to 4x4, then one linear logit for the whole image (no spectral norm, R1 0.01,
  lr 1e-3), so that layout, not only texture, is in view.

Also printed: the Fréchet distance between the two sets in the emoji classifier's feature space (the one
``openimagen eval --suite emoji`` reports), beside the same distance between two halves of the teacher's samples
(the distance sampling noise alone gives at that size). Prints a table, writes JSON. CPU only, a few minutes with
``--bank`` (5,120 trajectories) and about an hour for ``--n 512`` without it at 2 threads.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from openimagen.diffusion.cond import Cond
from openimagen.diffusion.schedules import sampling_sigmas
from openimagen.eval.emoji_classifier import embed, load_classifier
from openimagen.eval.frechet import frechet_distance_features
from openimagen.eval.real_data import load_real_set, prompt_indices
from openimagen.pipeline import Pipeline
from openimagen.pipeline.io import write_json
from openimagen.train.adversarial import PatchDiscriminator
from openimagen.train.trajectory import TrajectoryBank, student_rollout


def global_discriminator(channels: int = 32) -> nn.Module:
    """(B, 3, 32, 32) in [-1, 1] -> (B, 1) logits: three stride-2 convolutions to 4x4, then one linear layer."""
    c = channels
    return nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.LeakyReLU(0.2),
                         nn.Conv2d(c, c, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(c, 2 * c, 4, 2, 1), nn.LeakyReLU(0.2),
                         nn.Conv2d(2 * c, 4 * c, 4, 2, 1), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(4 * c * 16, 1))


PROBES = {
    "patch (as trained: spectral norm, R1 1, lr 2e-4)": (lambda: PatchDiscriminator(32, lowres_cond=False), 2e-4, 1.0),
    "patch, no spectral norm (R1 0, lr 1e-3)": (lambda: PatchDiscriminator(32, spectral=False, lowres_cond=False),
                                                1e-3, 0.0),
    "global (4x4 then linear; R1 0.01, lr 1e-3)": (global_discriminator, 1e-3, 0.01),
}


def auc(pos: torch.Tensor, neg: torch.Tensor) -> float:
    """P(a random ``pos`` score > a random ``neg`` score), ties counted half: the area under the ROC curve."""
    return float((pos[:, None] > neg[None, :]).float().mean() + 0.5 * (pos[:, None] == neg[None, :]).float().mean())


def probe(make, lr: float, r1: float, teacher: torch.Tensor, student: torch.Tensor, steps: int) -> dict:
    """Train ``make()`` on the first 80% (teacher real, student fake) and score it on the rest; returns the
    held-out and training AUC of each image's mean logit and the last hinge loss."""
    torch.manual_seed(0)
    disc = make()
    opt = torch.optim.Adam(disc.parameters(), lr=lr, betas=(0.0, 0.99))
    n_train = int(0.8 * len(teacher))
    for _ in range(steps):
        i, j = torch.randint(0, n_train, (32,)), torch.randint(0, n_train, (32,))
        real = teacher[i].requires_grad_(r1 > 0)
        d_real, d_fake = disc(real), disc(student[j])
        loss = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
        if r1 > 0:
            (grad,) = torch.autograd.grad(d_real.sum(), real, create_graph=True)
            loss = loss + r1 / 2 * grad.pow(2).flatten(1).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        score = lambda x: torch.cat([disc(x[k:k + 256]).flatten(1).mean(1) for k in range(0, len(x), 256)])  # noqa
        test = auc(score(teacher[n_train:]), score(student[n_train:]))
        train = auc(score(teacher[:n_train]), score(student[:n_train]))
    return {"test_auc": test, "train_auc": train, "last_hinge": float(loss.detach())}


def from_bank(pipe_student: Pipeline, folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(teacher, student) samples (K, C, H, W) in [-1, 1]: the bank's last states and the student's rollouts from the
    bank's starting noise and captions (its own sampling: DDIM at guidance 1, its threshold)."""
    chunks = sorted(folder.glob("rank*-*.safetensors"))
    if not chunks:
        sys.exit(f"error: no trajectory chunks (rank*-*.safetensors) in {folder}")
    bank = TrajectoryBank.concat([TrajectoryBank.load(p) for p in chunks])
    stage = pipe_student.stages[0].eval()
    n, threshold = stage.config.sampling.steps, stage.config.sampling.threshold
    grid = sampling_sigmas(stage.schedule, n, "time")
    out = []
    with torch.no_grad():
        for i in range(0, len(bank), 128):
            k = torch.arange(i, min(i + 128, len(bank)))
            cond = Cond(text=bank.text[k], mask=bank.mask[k])
            out.append(student_rollout(stage.denoiser, bank.x[k, 0], torch.full((len(k),), n), grid, threshold, cond,
                                       torch.float32))
    return bank.x[:, -1].clamp(-1, 1), torch.cat(out).clamp(-1, 1)


@torch.no_grad()
def sampled(pipe_teacher: Pipeline, pipe_student: Pipeline, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(teacher, student) base samples for ``n`` emoji-suite prompts, image i from seed i for both."""
    real = load_real_set("emoji")
    captions = [real.records[i].caption for i in prompt_indices(real, n)]
    sets = []
    for pipe in (pipe_teacher, pipe_student):
        stage, parts = pipe.stages[0].eval(), []
        for k in range(0, len(captions), 16):
            batch = captions[k:k + 16]
            gens = [torch.Generator().manual_seed(k + i) for i in range(len(batch))]
            parts.append(stage.sample(pipe.encode(batch), gens, stage.config.sampling).clamp(-1, 1))
        sets.append(torch.cat(parts))
    return sets[0], sets[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--variant", default="fast")
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--bank", type=Path, default=None)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/student_discriminator_probe.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.time()
    student_pipe = Pipeline.from_pretrained(args.model, variant=args.variant, watermark=None)
    if args.bank is not None:
        teacher, student = from_bank(student_pipe, args.bank)
    else:
        teacher, student = sampled(Pipeline.from_pretrained(args.model, watermark=None), student_pipe, args.n)
    sampling_s = time.time() - t0
    torch.manual_seed(0)
    order = torch.randperm(len(teacher))                  # pairs stay pairs; the 80/20 split is over captions
    teacher, student = teacher[order], student[order]
    rows = {name: probe(make, lr, r1, teacher, student, args.steps) for name, (make, lr, r1) in PROBES.items()}
    clf = load_classifier()
    ft, fs = (embed(clf, x)["features"].numpy() for x in (teacher, student))
    half = len(ft) // 2
    fd = {"student_vs_teacher": frechet_distance_features(fs, ft),
          "teacher_half_vs_half": frechet_distance_features(ft[:half], ft[half:]),
          "student_half_vs_teacher_other_half": frechet_distance_features(fs[:half], ft[half:])}
    print(f"{len(teacher)} pairs ({'bank ' + str(args.bank) if args.bank else 'emoji prompts, seeds 0..n-1'}); "
          f"sampling {sampling_s:.0f} s; D: {args.steps} steps of 32 pairs, 80/20 split\n")
    print("| discriminator | held-out AUC (0.5 = chance) | training AUC | last hinge loss (2 = chance) |")
    print("|---|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['test_auc']:.3f} | {r['train_auc']:.3f} | {r['last_hinge']:.3f} |")
    print(f"\nemoji-classifier Fréchet distance: student vs teacher (same noise and captions) "
          f"{fd['student_vs_teacher']:.3f}; first half of the student vs the teacher's other half "
          f"{fd['student_half_vs_teacher_other_half']:.3f}; teacher half vs half {fd['teacher_half_vs_half']:.3f}")
    write_json(args.json, {"pairs": len(teacher), "bank": str(args.bank) if args.bank else None,
                           "model": args.model, "variant": args.variant, "steps": args.steps,
                           "threads": args.threads, "sampling_s": sampling_s, "probes": rows, "frechet": fd})
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
