"""The training loop every model of the package shares (the VQ-VAE, the code prior).

``run_steps`` takes what a model brings (a ``Run``: its forward pass, batches, optimiser, logger,
validation and checkpoint contents) and gives each the same guarantees: AMP (bf16 autocast, fp16 with
loss scaling), gradient clipping, the non-finite guard, a clean stop on SIGTERM/SIGINT or a deadline,
TensorBoard logging, validation with ``best.pt``, and atomic checkpoints (``last.pt``, numbered ones
pruned) that resume exactly, on one process or many (torchrun). ``session`` wraps a run in the
process group, the signal handlers and the ``train.log`` file; ``resolve_resume`` and ``start_out_dir``
are the set-up steps around it.
"""

from __future__ import annotations

import logging
import math
import signal
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from .. import distributed as dist
from ..checkpoint import load_checkpoint, prune_checkpoints, rng_state, save_checkpoint
from ..config import OptimConfig, TrainConfig, to_dict
from ..errors import TrainingError
from ..fileio import remove_stale_temporaries
from .dataset import StreamSampler
from .logfile import log_to_file
from .monitor import StepLogger
from .stopping import StopSignals, ignore_stop_signals

log = logging.getLogger("audio_vqvae.training")

# Keys that may change when a run is resumed; any other difference from the checkpoint's config is an error.
RESUMABLE_KEYS = (
    "train.steps",
    "train.log_every",
    "train.valid_every",
    "train.audio_every",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.max_nonfinite_steps",
    "train.device",
    "data.num_workers",
)
# What a resume reads from last.pt besides the weights.
TRAINING_STATE = ("optimizer", "scheduler", "scaler", "step", "rng")


@dataclass
class TrainResult:
    step: int
    last_checkpoint: Path
    best_valid_loss: float | None
    stop_signal: int | None = None  # the SIGTERM or SIGINT that stopped training before its end, if one did


def lr_factor(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """Linear warm-up to 1, then cosine decay to ``min_ratio`` at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def pick_device(name: str, local_rank: int) -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise TrainingError("train.device is cuda but no CUDA device is available")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def flat_differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested config dicts."""
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += flat_differences(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}")
    return out


def resolve_resume(
    cfg: Any,
    out_dir: Path,
    resume: bool | None,
    stored_config: Callable[[dict], Any],
    state_keys: tuple[str, ...] = TRAINING_STATE,
    free_keys: tuple[str, ...] = (),
) -> dict | None:
    """The checkpoint to resume, or None to start; never overwrite a user's run by accident.

    Args:
        cfg: this run's config (a dataclass); stored_config: the config a checkpoint holds.
        resume: True resumes last.pt, False refuses an out_dir that holds one, None resumes if present.
        state_keys: what last.pt must hold to be resumed; free_keys: config keys, besides
            ``RESUMABLE_KEYS``, that may differ (set from the data, such as the speaker count).
    Raises:
        TrainingError: nothing to resume, a run that must not be overwritten, or another config.
    """
    last = out_dir / "last.pt"
    if not last.is_file():
        if resume:
            raise TrainingError(f"{last}: nothing to resume")
        return None
    if resume is False:
        raise TrainingError(f"{out_dir} already holds a checkpoint (last.pt); resume it or choose another --out")
    state = load_checkpoint(last)
    absent = [k for k in state_keys if k not in state]
    if absent:
        raise TrainingError(f"{last}: cannot resume from it: no {', '.join(absent)} in it (not written by training)")
    new, old = to_dict(cfg), to_dict(stored_config(state))
    changed = [k for k in flat_differences(new, old) if k not in RESUMABLE_KEYS and k not in free_keys]
    if changed:
        raise TrainingError(f"{last}: the config differs from the checkpoint's in {', '.join(changed)}")
    return state


@dataclass
class Optimisation:
    """Adam, its learning-rate schedule (``lr_factor``) and the fp16 loss scaler, restorable from a checkpoint."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler

    @classmethod
    def create(cls, params, optim: OptimConfig, total_steps: int, precision: str, device: torch.device):
        optimizer = torch.optim.Adam(params, lr=optim.lr, betas=tuple(optim.betas), weight_decay=optim.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_factor(s, optim.warmup_steps, total_steps, optim.min_lr_ratio)
        )
        return cls(optimizer, scheduler, torch.amp.GradScaler(device.type, enabled=precision == "fp16"))

    def load(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])

    def state(self) -> dict:
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
        }


def restore(state: dict | None, model: nn.Module, optimisation: Optimisation) -> tuple[int, float | None]:
    """Load a checkpoint's weights and optimiser state; its step and best validation loss ((0, None): none)."""
    if state is None:
        return 0, None
    model.load_state_dict(state["model"])
    optimisation.load(state)
    if state.get("world_size", 1) != dist.world_size():
        log.warning(
            "resuming with %d processes, trained with %d: the data order changes",
            dist.world_size(),
            state["world_size"],
        )
    return int(state["step"]), state.get("best_valid_loss")


def start_out_dir(out_dir: Path, config: dict) -> None:
    """Create the experiment folder, remove temporaries a killed save left, and write config.yaml (rank 0)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for p in remove_stale_temporaries(out_dir):  # left by a process killed while saving (kill -9)
        log.info("removed %s, left by a save that never finished", p)
    (out_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


@dataclass
class Run:
    """What one model brings to ``run_steps``.

    Attributes:
        model: the module whose weights are checkpointed (replicas are checked to agree).
        forward: batch -> output with ``.loss`` (a scalar) and ``.metrics()``; through DDP when distributed.
        batches: an endless iterator of batches (dicts of tensors), resumed at the step.
        optimisation: optimiser, schedule and loss scaler.
        logger: the TensorBoard logger of the steps.
        items: items (samples, codes) of a batch on one rank, for the speed scalar.
        validate: the validation loss (rank 0 only is asked), or None without a validation set.
        contents: what a checkpoint holds besides the loop's state (config, weights, speakers, ...).
        after_step: called on rank 0 after each finished step's validation (audio logging), or None.
        grad_clip: max gradient norm, None: no clipping; autocast_dtype: bf16/fp16 autocast, None: fp32.
    """

    model: nn.Module
    forward: Callable[[dict], Any]
    batches: Iterator[dict]
    optimisation: Optimisation
    logger: StepLogger
    items: Callable[[dict], int]
    validate: Callable[[], float] | None
    contents: Callable[[], dict]
    after_step: Callable[[int], None] | None = None
    grad_clip: float | None = None
    autocast_dtype: torch.dtype | None = None


def run_steps(
    run: Run,
    train: TrainConfig,
    out_dir: Path,
    *,
    step: int,
    best: float | None,
    stop: StopSignals,
    stop_at: int | None = None,
    deadline: float | None = None,
) -> TrainResult:
    """Train from ``step`` to ``train.steps`` (or ``stop_at``, the deadline, or a signal), checkpointing."""
    rank, world_size = dist.rank(), dist.world_size()
    main = rank == 0
    model, opt, logger = run.model, run.optimisation, run.logger
    device_type = next(model.parameters()).device.type
    last_path = out_dir / "last.pt"
    end = min(train.steps, stop_at) if stop_at is not None else train.steps
    nonfinite, stop_signal = 0, None
    progress = tqdm(total=end, initial=step, disable=not main or None, unit="step", dynamic_ncols=True)

    def checkpoint(path: Path) -> None:
        dist.check_replicas_agree(model)
        if main:
            contents = run.contents()
            contents.update(opt.state(), step=step, rng=rng_state(), best_valid_loss=best, world_size=world_size)
            save_checkpoint(path, contents)

    while step < end:
        model.train()
        batch = next(run.batches)
        t0 = time.perf_counter()
        with torch.autocast(device_type, dtype=run.autocast_dtype, enabled=run.autocast_dtype is not None):
            out = run.forward(batch)
        opt.optimizer.zero_grad(set_to_none=True)
        opt.scaler.scale(out.loss).backward()
        opt.scaler.unscale_(opt.optimizer)
        clip = run.grad_clip if run.grad_clip is not None else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        # one sync: finite on every rank, and no rank has had SIGTERM/SIGINT (any rank's signal stops all)
        finite, unsignalled = dist.all_ranks_true_each(
            torch.isfinite(out.loss.detach()) & torch.isfinite(grad_norm), stop.received is None
        )
        # fp16 loss scaling overflows by design until GradScaler finds a scale that fits: skip the step
        # and let update() halve the scale, without counting it as a non-finite step (the model is fine).
        overflow = (
            not finite
            and opt.scaler.is_enabled()
            and opt.scaler.get_scale() > 1.0
            and dist.all_ranks_true(torch.isfinite(out.loss.detach()))  # the loss was fine, the gradients overflowed
        )
        if finite:
            opt.scaler.step(opt.optimizer)
            nonfinite = 0
        elif overflow:
            opt.optimizer.zero_grad(set_to_none=True)
            log.debug("step %d: fp16 gradient overflow at loss scale %g, step skipped", step, opt.scaler.get_scale())
        else:
            nonfinite += 1
            opt.optimizer.zero_grad(set_to_none=True)
            log.warning("step %d: non-finite loss or gradient, step skipped (%d in a row)", step, nonfinite)
            if nonfinite >= train.max_nonfinite_steps:
                raise TrainingError(
                    f"{nonfinite} non-finite steps in a row at step {step}: training stopped; the last good "
                    f"checkpoint is {last_path if last_path.is_file() else 'not written yet'} (try a lower "
                    "optim.lr, optim.grad_clip, or train.precision fp32)"
                )
        opt.scaler.update()
        with warnings.catch_warnings():  # the schedule follows the step count, skipped steps included
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
            opt.scheduler.step()
        step += 1
        progress.update(1)
        out_of_time = deadline is not None and dist.broadcast_flag(time.monotonic() >= deadline)
        stopping = not unsignalled and step < end
        if stopping:
            stop_signal = stop.received or int(signal.SIGTERM)  # None here: the signal reached another rank
        final = step == end or out_of_time or stopping
        logger.accumulate(out, grad_norm if finite else None, run.items(batch) * world_size, time.perf_counter() - t0)
        if step % train.log_every == 0 or final:
            stats = logger.flush(step, opt.scheduler.get_last_lr()[0])
            if main and stats:
                progress.set_postfix(loss=f"{stats['loss/total']:.3f}", speed=f"{stats[logger.speed_key]:.0f}")
        if nonfinite:  # no validation or checkpoint during a run of skipped steps: last.pt stays the last good one
            if stopping and main:
                log.warning(
                    "stopped by %s after step %d, a skipped step: no checkpoint written", _name(stop_signal), step
                )
            if out_of_time or stopping:
                break
            continue
        if run.validate is not None and (step % train.valid_every == 0 or step == train.steps):
            valid_loss = run.validate() if main else None
            if main:
                logger.scalar("valid/loss", valid_loss, step)
                log.info("step %d: validation loss %.4f", step, valid_loss)
            improved = dist.broadcast_flag(main and (best is None or valid_loss < best))
            if improved:
                best = valid_loss if main else best
                checkpoint(out_dir / "best.pt")
        if main and run.after_step is not None:
            run.after_step(step)
        if step % train.checkpoint_every == 0:
            checkpoint(out_dir / f"step_{step:08d}.pt")
            if main:
                prune_checkpoints(out_dir, train.keep_checkpoints)
        if step % train.checkpoint_every == 0 or final:
            checkpoint(last_path)
        if stopping:
            if main:
                log.warning(
                    "stopped by %s after step %d: %s written; run again to resume", _name(stop_signal), step, last_path
                )
            break
        if out_of_time and step < end:
            if main:
                log.info("time limit reached after step %d: %s written; run again to resume", step, last_path)
            break
    progress.close()
    logger.close()
    return TrainResult(step=step, last_checkpoint=last_path, best_valid_loss=best, stop_signal=stop_signal)


def step_loader(
    dataset: Dataset, batch_size: int, num_workers: int, seed: int, step: int, device: torch.device
) -> DataLoader:
    """Batches of ``dataset`` in the order of ``StreamSampler`` from ``step`` on: a resumed run reads on
    where it stopped."""
    sampler = StreamSampler(len(dataset), seed, dist.rank(), dist.world_size(), start=step * batch_size)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        generator=torch.Generator(),  # keeps the loader from drawing on the global RNG, which resume restores
        persistent_workers=False,
        worker_init_fn=ignore_stop_signals,  # Ctrl-C reaches the workers too; only this process acts on it
    )


@contextmanager
def session(out_dir: Path) -> Iterator[tuple[StopSignals, int, int, int]]:
    """The process group (torchrun), SIGTERM/SIGINT handling and ``out_dir/train.log`` (rank 0) of one
    training call; yields the ``StopSignals`` that ``run_steps`` watches, the rank, the world size and
    the local rank."""
    rank, world_size, local_rank = dist.setup()
    try:
        with StopSignals() as stop, log_to_file(out_dir / "train.log", enabled=rank == 0):
            yield stop, rank, world_size, local_rank
        dist.barrier()  # no rank tears its process group down while another is still in a collective
    finally:
        dist.teardown()


def _name(signum: int | None) -> str:
    return signal.Signals(signum).name if signum else "a signal"
