"""Train one cascade stage (base or super-resolution) from a run config, on one CPU or many GPUs.

    result = Trainer(load_config("configs/tiny-shapes-base.yaml")).train()

Per optimiser step: for each of ``grad_accum`` micro-batches, load real images and look their captions up in
the fp16 text-embedding cache (the encoder never runs per step), compute the mean of the objective's per-example
losses ``objective(denoiser, batch, generators)`` and back-propagate, syncing gradients across ranks on the last
micro-batch only; then clip the gradient norm, step the optimiser at the scheduled learning rate and update the
EMA. Rank 0 logs, samples and writes checkpoints.

The objective (:mod:`openimagen.train.objective`) holds all the training math; the default,
:class:`~openimagen.train.step.DiffusionObjective`, is the denoising loss of every stage (an SR stage downsamples
its real targets and noise-augments them there). Another one is passed as ``Trainer(cfg, objective=...)``.
The module docstring of :mod:`openimagen.train.data` explains why resuming and data parallelism are exact.
"""
from __future__ import annotations

import contextlib
import signal
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import torch
import torch.distributed as torch_dist
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                     get_optimizer_state_dict, set_model_state_dict,
                                                     set_optimizer_state_dict)

from openimagen.diffusion.denoiser import Denoiser
from openimagen.errors import ConfigError, TrainingError
from openimagen.pipeline import Stage
from openimagen.pipeline.io import check_output_dir, load_state_into
from openimagen.train import distributed
from openimagen.train.checkpoint import (EMA as EMA_FILE, MODEL, OBJECTIVE, OPTIMISER, Checkpoint, check_compatible,
                                         checkpoint_dirs, restore_rng, rng_state, run_dir_of, save_checkpoint,
                                         unflatten_optimiser)
from openimagen.train.config import RunConfig
from openimagen.train.data import (CROP_STREAM, NOISE_STREAM, Layout, data_position, example_generators,
                                   micro_batch_loader, mix_seed, open_training_dataset, random_crops, text_table)
from openimagen.train.monitor import Monitor
from openimagen.train.objective import Objective, TrainBatch
from openimagen.train.optim import EMA, build_optimiser, lr_at, set_lr
from openimagen.train.samples import SampleMaker
from openimagen.train.step import DiffusionObjective
from openimagen.nn import count_parameters
from openimagen.train.lora import add_lora, check_same_lora

FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


@dataclass
class TrainResult:
    run_dir: Path
    step: int                                        # optimiser steps done in all
    losses: list = field(default_factory=list)       # global mean loss of each step this call ran, in order
    checkpoint: Optional[Path] = None                # the last checkpoint written
    interrupted: bool = False                        # stopped early by SIGTERM / Ctrl-C (after its checkpoint)
    out_of_time: bool = False                        # stopped at cfg.max_minutes (after its checkpoint)


def _one_process(d, what: str) -> None:
    """ConfigError unless this run is one process: ``what`` trains a discriminator or a fake denoiser, whose
    gradients are not synchronised across ranks."""
    if d.world > 1:
        raise ConfigError(f"{what} runs in one process for now (its discriminator or fake denoiser has no gradient "
                          f"sync); launch it without torchrun")


class Trainer:
    """Train the stage of ``cfg`` with ``objective`` (default: :meth:`DiffusionObjective.from_run_config`).

    ``self.denoiser`` is the Denoiser the objective trains, around ``self.model`` (the network, wrapped for
    DDP/FSDP when distributed); the optimiser, EMA and checkpoints hold that network's weights only.
    """

    def __init__(self, cfg: RunConfig, *, run_dir=None, resume=None, objective: Optional[Objective] = None):
        self.ckpt = Checkpoint.read(resume) if resume is not None else None
        self.cfg = cfg = cfg.validate()
        self.stage_config = cfg.stage_config()
        if self.ckpt is not None:
            check_compatible(self.ckpt, self.stage_config)
            check_same_lora(self.ckpt, cfg.lora)
        self.run_dir = Path(run_dir or (self.ckpt and run_dir_of(self.ckpt.path)) or cfg.out).expanduser()
        check_output_dir(self.run_dir, "the run folder (out)")
        if cfg.text.cache_dir:
            check_output_dir(Path(cfg.text.cache_dir).expanduser(), "text.cache_dir")
        existing = checkpoint_dirs(self.run_dir)
        if self.ckpt is None and existing:
            raise ConfigError(f"run folder {self.run_dir} already holds checkpoints (latest: {existing[-1].name}); "
                              f"pass --resume {self.run_dir} to continue it, or choose another --out")
        self.dist = d = distributed.init(cfg)
        self.start_step = self.ckpt.step if self.ckpt else 0
        self.monitor = Monitor(self.run_dir, enabled=d.is_main, total_steps=cfg.max_steps, start_step=self.start_step,
                               tensorboard=cfg.log.tensorboard, progress=cfg.log.progress)
        self.layout = Layout(cfg.train.batch_size, d.world, cfg.train.grad_accum)
        self._setup_data()
        self._setup_model(objective)
        if self.ckpt is not None:
            self._load(self.ckpt)
        self.samples = SampleMaker(self) if d.is_main else None
        self._stop = False

    # ------------------------------------------------------------------------------------ setup
    def _setup_data(self) -> None:
        cfg, d = self.cfg, self.dist
        self.dataset = open_training_dataset(cfg)
        report = getattr(self.dataset, "report", None)
        if d.is_main and report is not None and report.skipped:
            report.write(self.run_dir / "data_report.json")
            self.monitor.write(f"data: {report.summary()}; skipped items listed in {self.run_dir / 'data_report.json'}")
        captions = list(dict.fromkeys(self.dataset.all_captions() + list(cfg.log.sample_prompts)))
        cache = Path(cfg.text.cache_dir).expanduser() if cfg.text.cache_dir else self.run_dir / "text_embeddings"
        if d.is_main:
            self.table = text_table(cfg, captions, cache, compute=True, log=self.monitor.write)
        distributed.barrier(d)
        if not d.is_main:
            self.table = text_table(cfg, captions, cache, compute=False)
        if self.table.dim != self.stage_config.unet.text_dim:
            raise ConfigError(f"the text encoder {cfg.text.encoder!r} gives {self.table.dim}-wide tokens but "
                              f"stage.unet text_dim is {self.stage_config.unet.text_dim}; set "
                              f"stage.unet.overrides.text_dim: {self.table.dim}")

    def _setup_model(self, objective: Optional[Objective]) -> None:
        cfg, d = self.cfg, self.dist
        torch.manual_seed(cfg.seed)                                  # the same initial weights on every rank
        self.stage = Stage(self.stage_config)
        self.init_source = self.ckpt.state.get("init") if self.ckpt is not None else None
        self.teacher = None
        if cfg.distill is not None:                                  # distillation: a frozen teacher, the student
            from openimagen.train.init import init_weights           # starts as it (plus a zero guidance embedding)

            teacher_config = replace(self.stage_config, unet=replace(self.stage_config.unet, guidance_cond=False))
            source = init_weights(cfg, teacher_config, self.run_dir, grow=True)   # the student may be deeper
            teacher_config = replace(teacher_config, unet=replace(teacher_config.unet,
                                                                  num_res_blocks=source.config.unet.num_res_blocks))
            self.teacher = Stage(teacher_config)
            load_state_into(self.teacher.denoiser.net, source.weights, Path(cfg.init.model))
            if self.ckpt is None:
                student = source
                if cfg.distill.student_init is not None:             # the student continues another stage
                    student = init_weights(cfg, self.stage_config, self.run_dir, cfg.distill.student_init,
                                           "distill.student_init", grow=True)
                load_into_student(self.stage.denoiser.net, student.weights, Path(cfg.init.model),
                                  student.config.unet.num_res_blocks)
                teacher_steps = (f"{cfg.distill.teacher_steps} {cfg.distill.teacher_sampler}"
                                 if cfg.distill.kind == "trajectory" else f"{2 * cfg.distill.student_steps} DDIM")
                self.monitor.write(source.describe() + ("; distilling it into a student with a guidance input"
                                                        if cfg.distill.kind == "guidance" else
                                                        f"; distilling its {teacher_steps} steps into "
                                                        f"{cfg.distill.student_steps} DDIM steps")
                                   + (f"; the student starts from {student.model / student.stage} (weights sha256 "
                                      f"{student.weights_sha256[:16]})" if student is not source else ""))
                self.init_source = source.to_dict() | ({"student": student.to_dict()} if student is not source
                                                       else {})
        elif cfg.init.model is not None and self.ckpt is None:       # fine-tuning: start from a trained stage
            from openimagen.train.init import init_weights

            source = init_weights(cfg, self.stage_config, self.run_dir)
            load_state_into(self.stage.denoiser.net, source.weights, Path(cfg.init.model))
            self.monitor.write(source.describe())
            self.init_source = source.to_dict()
        if cfg.lora is not None:                                     # LoRA: only the adapter's A, B train
            add_lora(self.stage.denoiser.net, cfg.lora)
        net = self.stage.denoiser.net
        trainable, total = count_parameters(net), count_parameters(net, trainable_only=False)
        self.monitor.write(f"parameters: {trainable:,} trainable of {total:,} ({100 * trainable / total:.2f}%)"
                           + (f"; LoRA rank {cfg.lora.rank} on {', '.join(cfg.lora.targets)}" if cfg.lora else ""))
        self.stage = self.stage.to(d.device).train()
        torch.manual_seed(mix_seed(cfg.seed, d.rank, 1))             # global RNG (dropout), per rank
        self.model = distributed.wrap(self.stage.denoiser.net, d)
        # torch.compile wraps the call path only: weights, state dicts and checkpoints stay the plain module's
        net = torch.compile(self.model) if cfg.train.compile else self.model
        self.denoiser = Denoiser(net, self.stage_config.param)
        if objective is None and self.teacher is not None:
            from openimagen.train.distill import GuidanceDistillationObjective
            from openimagen.train.progressive import ProgressiveDistillationObjective

            teacher_stage = self.teacher.to(d.device)
            teacher = teacher_stage.denoiser
            diffusion = DiffusionObjective.from_run_config(cfg, self.stage_config, self.stage.schedule)
            if cfg.distill.kind == "trajectory":              # the teacher samples: the whole Stage, not its denoiser
                from openimagen.train.trajectory import TrajectoryDistillationObjective

                sampling = replace(self.stage_config.sampling, sampler=cfg.distill.teacher_sampler,
                                   steps=cfg.distill.teacher_steps, guidance=cfg.distill.teacher_guidance,
                                   spacing="time")
                args = (teacher_stage, sampling, self.stage.schedule, cfg.distill.student_steps,
                        cfg.distill.trajectories, self.run_dir / "trajectories", d.rank, cfg.distill.student_forcing,
                        self.stage_config.sampling.threshold, cfg.distill.student_forcing_steps,
                        cfg.distill.student_forcing_backprop)
                if cfg.distill.adversarial_weight > 0:
                    _one_process(d, "distill.adversarial_weight")
                    from openimagen.train.adversarial_trajectory import AdversarialTrajectoryObjective

                    objective = AdversarialTrajectoryObjective(
                        *args, weight=cfg.distill.adversarial_weight, samples=cfg.distill.adversarial_samples,
                        warmup_steps=cfg.distill.adversarial_warmup_steps, lr=cfg.distill.adversarial_lr,
                        device=d.device)
                elif cfg.distill.dm_weight > 0:
                    _one_process(d, "distill.dm_weight")
                    from openimagen.train.distribution_matching import DistributionMatchingTrajectoryObjective

                    objective = DistributionMatchingTrajectoryObjective.from_run_config(args, cfg.distill, teacher)
                else:
                    objective = TrajectoryDistillationObjective(*args)
            elif cfg.distill.kind == "progressive":
                objective = ProgressiveDistillationObjective(teacher, diffusion, cfg.distill.student_steps,
                                                             cfg.distill.teacher_guidance,
                                                             self.stage_config.sampling.threshold)
            else:
                objective = GuidanceDistillationObjective(teacher, diffusion, cfg.distill.guidance_min,
                                                          cfg.distill.guidance_max)
        if objective is None and cfg.adversarial is not None:
            _one_process(d, "adversarial training")
            from openimagen.train.adversarial import AdversarialObjective

            objective = AdversarialObjective.from_run_config(cfg, self.stage_config, self.stage.schedule, d.device)
        if objective is None:
            objective = DiffusionObjective.from_run_config(cfg, self.stage_config, self.stage.schedule)
        self.objective = objective
        self.optimiser = build_optimiser(self.model.parameters(), cfg)
        self.ema = EMA(distributed.unwrap(self.model), cfg.train.ema_decay)
        amp = d.device.type == "cuda" and cfg.precision != "fp32"
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision) if amp else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp and cfg.precision == "fp16")
        if cfg.precision != "fp32" and not amp:
            self.monitor.write(f"precision {cfg.precision} needs a GPU; training in fp32 on {d.device}")

    def _load(self, ckpt: Checkpoint) -> None:
        set_model_state_dict(self.model, ckpt.tensors(MODEL), options=StateDictOptions(full_state_dict=True))
        opt = unflatten_optimiser(ckpt.tensors(OPTIMISER), ckpt.state["optimiser"])
        set_optimizer_state_dict(self.model, self.optimiser, opt, options=StateDictOptions(full_state_dict=True))
        distributed.load_full_tensors(self.ema.shadow, ckpt.tensors(EMA_FILE))
        if hasattr(self.objective, "load_state"):
            if not (ckpt.path / OBJECTIVE).is_file():
                raise ConfigError(f"{ckpt.path} holds no {OBJECTIVE} for the {type(self.objective).__name__} of "
                                  f"this config (was it trained without it?); start a new run with init.model")
            self.objective.load_state(ckpt.tensors(OBJECTIVE), ckpt.state.get("objective"))
        if ckpt.state.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(ckpt.state["scaler"])
        same = {k: ckpt.state.get(k) == v for k, v in (("global_batch", self.layout.global_batch),
                                                       ("dataset_size", len(self.dataset)))}
        old = ckpt.state.get("run_config", {})
        if not all(same.values()) or old.get("seed") != self.cfg.seed:
            self.monitor.write("warning: seed, global batch or data set differ from the checkpoint's run; the data "
                               "order after resuming will not match an uninterrupted run")
        if not restore_rng(ckpt, self.dist.rank):
            self.monitor.write(f"warning: no RNG state for rank {self.dist.rank} in {ckpt.path}; reseeded")
        self.monitor.write(f"resumed from {ckpt.path} at step {ckpt.step}")

    # ------------------------------------------------------------------------------------ training
    def train(self) -> TrainResult:
        cfg, d, result = self.cfg, self.dist, TrainResult(self.run_dir, self.start_step)
        result.checkpoint = self.ckpt.path if self.ckpt else None
        self.monitor.write_config({**cfg.to_dict(), "out": str(self.run_dir)})
        loader = iter(micro_batch_loader(self.dataset, cfg, self.layout, d.rank, self.start_step))
        pending, last_saved, t_log, n_log = [], self.start_step, time.perf_counter(), 0
        deadline = t_log + 60 * cfg.max_minutes if cfg.max_minutes else None
        cpu_deadline = time.process_time() + 60 * cfg.max_cpu_minutes if cfg.max_cpu_minutes else None
        with self._stop_on_signals(), self._close_on_error():
            for step in range(self.start_step, cfg.max_steps):
                lr = lr_at(cfg, step)
                loss, grad_norm = self._step(step, lr, loader)
                pending.append(loss)
                done, n_log = step + 1, n_log + 1
                self.monitor.advance()
                out_of_time = ((deadline is not None and time.perf_counter() > deadline)
                               or (cpu_deadline is not None and time.process_time() > cpu_deadline))
                # one rank's budget ends a step before another's: every rank says "time budget", none "on request"
                requested, out_of_time = distributed.any_ranks(d, self._stop, out_of_time)
                stop = requested or out_of_time
                if done % cfg.log.log_every == 0 or done == cfg.max_steps or stop:
                    losses = distributed.mean(d, torch.stack(pending)).tolist()
                    result.losses += losses
                    pending, elapsed = [], time.perf_counter() - t_log
                    self.monitor.log(done, {"loss": losses[-1], "loss_avg": sum(losses) / len(losses), "lr": lr,
                                            "grad_norm": float(grad_norm),
                                            "images_per_s": n_log * self.layout.global_batch / max(elapsed, 1e-9),
                                            "epoch": data_position(done, self.layout.global_batch,
                                                                   len(self.dataset))["epoch"],
                                            **(self.objective.metrics() if hasattr(self.objective, "metrics")
                                               else {})})
                    t_log, n_log = time.perf_counter(), 0
                if cfg.log.sample_every and done % cfg.log.sample_every == 0:
                    self.sample(done)
                if done % cfg.log.checkpoint_every == 0 or done == cfg.max_steps or stop:
                    result.checkpoint, last_saved = self.save(done), done
                result.step = done
                if stop:
                    why = "after its time budget (max_minutes / max_cpu_minutes)" if out_of_time else "on request"
                    self.monitor.write(f"stopped at step {done} {why}; resume with --resume {self.run_dir}")
                    result.interrupted = not out_of_time
                    result.out_of_time = out_of_time
                    break
        if result.step > last_saved:
            result.checkpoint = self.save(result.step)
        self.monitor.close()
        return result

    def _step(self, step: int, lr: float, loader) -> tuple[torch.Tensor, torch.Tensor]:
        cfg, d, accum = self.cfg, self.dist, self.layout.accum
        set_lr(self.optimiser, lr)
        total = torch.zeros((), device=d.device)
        for micro in range(accum):
            positions = self.layout.positions(micro, d.rank)
            batch = self._micro_batch(next(loader), step, positions)
            gens = example_generators(cfg.seed, step, positions, NOISE_STREAM, d.device)
            with distributed.sync_gradients(self.model, micro == accum - 1):
                with self._autocast():
                    loss = self._objective_loss(batch, gens)
                self.scaler.scale(loss / accum).backward()
            total += loss.detach().float()
        self.scaler.unscale_(self.optimiser)
        clip = cfg.optimiser.grad_clip or float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        if hasattr(grad_norm, "full_tensor"):
            grad_norm = grad_norm.full_tensor()
        self._check_finite(step, total / accum, grad_norm)
        self.scaler.step(self.optimiser)
        self.scaler.update()
        self.optimiser.zero_grad(set_to_none=True)
        self.ema.update(distributed.unwrap(self.model))
        return total / accum, grad_norm.detach()

    def _check_finite(self, step: int, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        """Stop before a non-finite loss or gradient reaches the weights (an fp16 run's inf gradients are the
        loss scaler's to skip). Raises :class:`TrainingError` naming the step and the last good checkpoint."""
        bad_loss = not bool(torch.isfinite(loss))
        bad_grad = not self.scaler.is_enabled() and not bool(torch.isfinite(grad_norm))
        if not distributed.any_rank(self.dist, bad_loss or bad_grad):
            return
        self.optimiser.zero_grad(set_to_none=True)
        last = checkpoint_dirs(self.run_dir)
        kept = f"the last good checkpoint, {last[-1]}, is kept" if last else "no checkpoint was written yet"
        what = f"the loss is {float(loss)}" if bad_loss else f"the gradient norm is {float(grad_norm)}"
        raise TrainingError(f"training stopped at step {step + 1}: {what}; the weights were not updated and {kept}. "
                            f"Lower optimiser.lr (now {self.cfg.optimiser.lr:g}), keep optimiser.grad_clip on, or "
                            f"check the data; resume with --resume {self.run_dir}")

    def _micro_batch(self, items: dict, step: int, positions) -> TrainBatch:
        """The loader's images (cropped for SR on crops) and their cached caption embeddings, on the device."""
        cfg, device = self.cfg, self.dist.device
        images = items["image"]                                                  # (b, 3, R, R)
        if cfg.data.crop_size is not None:
            crops = example_generators(cfg.seed, step, positions, CROP_STREAM)
            images = random_crops(images, cfg.data.crop_size, crops)             # (b, 3, c, c)
        text, mask = self.table.lookup(items["caption"], dtype=torch.float32)    # (b, L, D), (b, L)
        images, text, mask = (t.to(device, non_blocking=True) for t in (images, text, mask))
        return TrainBatch(image=images, text=text, mask=mask)

    def _objective_loss(self, batch: TrainBatch, generators) -> torch.Tensor:
        """The mean over the micro-batch of the objective's per-example losses (B,)."""
        losses = self.objective(self.denoiser, batch, generators)
        if tuple(losses.shape) != (batch.batch_size,):
            raise ValueError(f"the training objective {type(self.objective).__name__} returned a loss of shape "
                             f"{tuple(losses.shape)}; it must return one loss per example, ({batch.batch_size},)")
        return losses.mean()

    @contextlib.contextmanager
    def _close_on_error(self):
        """A TrainingError is written to the run's log too, and the monitor is closed."""
        try:
            yield
        except TrainingError as e:
            self.monitor.write(f"error: {e}")
            self.monitor.close()
            raise

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.dist.device.type, dtype=self.autocast_dtype)

    @contextlib.contextmanager
    def _stop_on_signals(self):
        """SIGTERM / first Ctrl-C: finish the step, write a checkpoint, stop (a second Ctrl-C interrupts)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            self._stop = True
            signal.signal(signum, previous[signum])

        previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
        for s in previous:
            signal.signal(s, handler)
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    # ------------------------------------------------------------------------------------ outputs
    def ema_state(self) -> dict[str, torch.Tensor]:
        """Full EMA tensors (a collective under FSDP: every rank calls it)."""
        return distributed.full_tensors(self.ema.state_dict())

    def save(self, step: int) -> Optional[Path]:
        """Write checkpoint ``step`` (every rank calls; rank 0 writes)."""
        d = self.dist
        model = get_model_state_dict(self.model, options=FULL)
        opt = get_optimizer_state_dict(self.model, self.optimiser, options=FULL)
        ema = self.ema_state()
        rng = [rng_state()]
        if d.enabled:
            rng = [None] * d.world
            torch_dist.all_gather_object(rng, rng_state())
        path = None
        if d.is_main:
            state = {"data_position": data_position(step, self.layout.global_batch, len(self.dataset)),
                     "global_batch": self.layout.global_batch, "world_size": d.world,
                     "dataset_size": len(self.dataset), "scheduler": {"step": step, "lr": lr_at(self.cfg, step)},
                     "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
                     "run_config": {**self.cfg.to_dict(), "out": str(self.run_dir)},
                     "stage_config": self.stage_config.to_dict(), "text_encoder_id": self.table.encoder_id,
                     "init": self.init_source}
            extra = self.objective.state() if hasattr(self.objective, "state") else None
            path = save_checkpoint(self.run_dir, step, model=model, ema=ema, optimiser=opt, rng=rng, state=state,
                                   keep_last=self.cfg.log.keep_last, objective=extra)
        distributed.barrier(d)
        return path

    def sample(self, step: int) -> Optional[Path]:
        """A grid from the EMA weights with the fixed prompts and seeds (every rank calls; rank 0 samples)."""
        ema = self.ema_state()
        if self.samples is None:
            distributed.barrier(self.dist)
            return None
        path = self.samples.grid(step, ema)
        distributed.barrier(self.dist)
        return path


def load_into_student(net: torch.nn.Module, weights: dict, source: Path,
                      source_blocks: Optional[tuple[int, ...]] = None) -> None:
    """A teacher's weights into a student that has the same network plus a zero-initialised guidance embedding
    and, when ``source_blocks`` (the source U-Net's ResBlocks per level) is given and smaller than the student's
    ``num_res_blocks``, extra ResBlocks that start as identities (openimagen.train.init.zero_grown_blocks): so the
    student starts computing exactly what its source computes. Everything else must match exactly (names,
    shapes); ModelLoadError otherwise."""
    from openimagen.train.init import grown_blocks, zero_grown_blocks

    grown = grown_blocks(source_blocks, net.config.num_res_blocks) if source_blocks is not None else ()
    load_state_into(net, weights, source, keep_new=("guidance_emb.",) + grown)
    zero_grown_blocks(net, grown)


def train(cfg: RunConfig, *, run_dir=None, resume=None, objective: Optional[Objective] = None) -> TrainResult:
    """Build a :class:`Trainer` and run it to ``cfg.max_steps``; shuts the process group down afterwards."""
    trainer = Trainer(cfg, run_dir=run_dir, resume=resume, objective=objective)
    try:
        return trainer.train()
    finally:
        distributed.shutdown(trainer.dist)
