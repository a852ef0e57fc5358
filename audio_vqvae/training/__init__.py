"""The training loop: ``train(cfg, data_dir, out_dir)``, one process or many (torchrun), resumable exactly."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import signal
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from .. import distributed as dist
from ..checkpoint import (
    config_from_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from ..config import Config, to_dict
from ..config import validate as validate_config
from ..data.manifest import read_manifest, read_speakers
from ..errors import ConfigError, TrainingError
from ..fileio import remove_stale_temporaries
from ..models.encoder import hop_length
from ..models.vqvae import VQVAE, EncoderCrop
from .dataset import SegmentDataset, StreamSampler, validation_batches
from .logfile import log_to_file
from .monitor import TrainLogger
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
TRAINING_STATE = ("speakers", "optimizer", "scheduler", "scaler", "step", "rng")


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


def read_data_folder(data_dir: Path) -> tuple[list[str], list, list]:
    """Speaker list, train rows and valid rows (possibly empty) of a prepared corpus folder."""
    if not (data_dir / "train.jsonl").is_file():
        raise TrainingError(f"{data_dir}: no train.jsonl here; prepare a corpus with audio-vqvae prepare first")
    speakers = read_speakers(data_dir / "speakers.txt")
    train_rows = read_manifest(data_dir / "train.jsonl")
    valid_rows = read_manifest(data_dir / "valid.jsonl") if (data_dir / "valid.jsonl").is_file() else []
    if not train_rows:
        raise TrainingError(f"{data_dir / 'train.jsonl'}: no utterances")
    for name, rows in (("train.jsonl", train_rows), ("valid.jsonl", valid_rows)):
        # found now, not when a missing file is first sampled (after set-up, inside a loader worker)
        missing = [row.path for row in rows if not os.path.isfile(row.path)]
        if missing:
            shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
            raise TrainingError(
                f"{data_dir / name}: {len(missing)} of its {len(rows)} audio files are missing: {shown}"
            )
    return speakers, train_rows, valid_rows


def resolve_resume(cfg: Config, out_dir: Path, resume: bool | None) -> tuple[Config, dict | None]:
    """Decide whether to resume, and with which config; never overwrite a user's run by accident."""
    last = out_dir / "last.pt"
    if not last.is_file():
        if resume:
            raise TrainingError(f"{last}: nothing to resume")
        return cfg, None
    if resume is False:
        raise TrainingError(f"{out_dir} already holds a checkpoint (last.pt); resume it or choose another --out")
    state = load_checkpoint(last)
    absent = [k for k in TRAINING_STATE if k not in state]
    if absent:
        raise TrainingError(f"{last}: cannot resume from it: no {', '.join(absent)} in it (not written by training)")
    stored = config_from_checkpoint(state)
    new, old = to_dict(cfg), to_dict(stored)
    changed = [k for k in flat_differences(new, old) if k not in RESUMABLE_KEYS and k != "model.decoder.n_speakers"]
    if changed:
        raise TrainingError(f"{last}: the config differs from the checkpoint's in {', '.join(changed)}")
    return cfg, state


def train(
    cfg: Config,
    data_dir: str | Path,
    out_dir: str | Path,
    resume: bool | None = None,
    stop_at: int | None = None,
    time_limit: float | None = None,
) -> TrainResult:
    """Train a VQ-VAE on a prepared corpus folder, writing logs and checkpoints to ``out_dir``.

    Args:
        cfg: the experiment config; ``model.decoder.n_speakers`` is set from the speaker list.
        data_dir: folder with train.jsonl, valid.jsonl and speakers.txt (written by ``audio-vqvae prepare``).
        out_dir: experiment folder (config.yaml, checkpoints, TensorBoard logs, and ``train.log``: the
            log lines, INFO and higher, of every run there, appended; written by rank 0 only).
        resume: True resumes last.pt, False refuses an out_dir that holds one, None resumes if present.
        stop_at: stop after this step (a later call resumes), e.g. to fit a job's time limit.
        time_limit: seconds of wall time for this call, set-up included: the first step that ends
            after it is the last one; last.pt is written and a later call resumes exactly, as with
            ``stop_at`` (rank 0's clock decides for every rank).

    SIGTERM or SIGINT (on any rank) stops training at the end of the step in progress: last.pt is
    written, a line is logged, and the result's ``stop_signal`` says which signal it was; a later call
    resumes exactly. A second signal aborts at once, without a checkpoint.
    """
    started = time.monotonic()
    validate_config(cfg)
    with torch.random.fork_rng(devices=[]), torch.device("meta"):  # no memory, no initialisation, RNG kept
        VQVAE.from_config(cfg.model)  # sizes no module can have fail now, naming the key, before any data is read
    hop = hop_length(cfg.model.encoder.strides)
    if cfg.data.segment_length < hop:  # rounded down to a multiple of the hop, it would be 0
        raise ConfigError(
            f"config key 'data.segment_length' must be at least one hop ({hop} samples), got {cfg.data.segment_length}"
        )
    if stop_at is not None and stop_at < 1:
        raise TrainingError(f"stop_at must be a step >= 1, got {stop_at}")
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    rank, world_size, local_rank = dist.setup()
    try:
        deadline = None if time_limit is None else started + time_limit
        # train.log beside TensorBoard: the log lines of every run in this folder, resumed ones appended
        with StopSignals() as stop, log_to_file(out_dir / "train.log", enabled=rank == 0):
            result = _train(cfg, data_dir, out_dir, resume, stop_at, deadline, rank, world_size, local_rank, stop)
        dist.barrier()  # no rank tears its process group down while another is still in a collective
        return result
    finally:
        dist.teardown()


def _train(cfg, data_dir, out_dir, resume, stop_at, deadline, rank, world_size, local_rank, stop) -> TrainResult:
    main = rank == 0
    speakers, train_rows, valid_rows = read_data_folder(data_dir)
    cfg = dataclasses.replace(
        cfg,
        model=dataclasses.replace(cfg.model, decoder=dataclasses.replace(cfg.model.decoder, n_speakers=len(speakers))),
    )
    cfg, state = resolve_resume(cfg, out_dir, resume)
    if state is not None and list(state["speakers"]) != speakers:
        raise TrainingError(f"{out_dir / 'last.pt'}: trained on other speakers than {data_dir / 'speakers.txt'}")
    device = pick_device(cfg.train.device, local_rank)
    if cfg.train.precision == "fp16" and device.type != "cuda" and main:
        log.warning("train.precision fp16 on the CPU is slow and meant for tests: bf16 is the CPU's half precision")

    torch.manual_seed(cfg.train.seed)
    model = VQVAE.from_config(cfg.model).to(device)
    hop = model.hop_length
    segment = cfg.data.segment_length // hop * hop
    context = model.encoder.training_context
    trainset = SegmentDataset(train_rows, speakers, segment, hop, cfg.model.sample_rate, context)
    validset = (
        SegmentDataset(valid_rows, speakers, segment, hop, cfg.model.sample_rate, context) if valid_rows else None
    )
    optimizer = torch.optim.Adam(
        model.parameters(), lr=cfg.optim.lr, betas=tuple(cfg.optim.betas), weight_decay=cfg.optim.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, cfg.optim.warmup_steps, cfg.train.steps, cfg.optim.min_lr_ratio)
    )
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.train.precision == "fp16")
    step, best = 0, None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        step, best = int(state["step"]), state.get("best_valid_loss")
        if state.get("world_size", 1) != world_size:
            log.warning(
                "resuming with %d processes, trained with %d: the data order changes", world_size, state["world_size"]
            )
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
        for p in remove_stale_temporaries(out_dir):  # left by a process killed while saving (kill -9)
            log.info("removed %s, left by a save that never finished", p)
        (out_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
        info = model.describe()
        log.info("%s", ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in info.items()))
        log.info(
            "%d training utterances, %d speakers, %s",
            len(trainset),
            len(speakers),
            f"resuming at step {step}" if state is not None else "starting",
        )

    ddp_model: nn.Module = model
    if world_size > 1:
        # No buffer broadcast: the quantizer keeps its EMA and usage statistics in step itself (all-reduce),
        # and check_replicas_agree verifies that at every checkpoint.
        ddp_model = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False
        )
    sampler = StreamSampler(len(trainset), cfg.train.seed, rank, world_size, start=step * cfg.data.batch_size)
    loader = DataLoader(
        trainset,
        batch_size=cfg.data.batch_size,
        sampler=sampler,
        num_workers=cfg.data.num_workers,
        pin_memory=device.type == "cuda",
        generator=torch.Generator(),  # keeps the loader from drawing on the global RNG, which resume restores
        persistent_workers=False,
        worker_init_fn=ignore_stop_signals,  # Ctrl-C reaches the workers too; only this process acts on it
    )
    batches = iter(loader)
    if state is not None:
        set_rng_state(state["rng"])  # after everything that consumed random numbers at start-up

    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.train.precision)
    logger = TrainLogger(out_dir / "tensorboard", model.quantizer.codebook_size, enabled=main)
    last_path = out_dir / "last.pt"
    end = min(cfg.train.steps, stop_at) if stop_at is not None else cfg.train.steps
    nonfinite, stop_signal = 0, None
    progress = tqdm(total=end, initial=step, disable=not main or None, unit="step", dynamic_ncols=True)

    def checkpoint(path: Path) -> None:
        dist.check_replicas_agree(model)
        if main:
            save_checkpoint(
                path,
                {
                    "config": to_dict(cfg),
                    "speakers": speakers,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "step": step,
                    "rng": rng_state(),
                    "best_valid_loss": best,
                    "world_size": world_size,
                },
            )

    while step < end:
        model.train()
        batch = next(batches)
        wav = batch["wav"].to(device, non_blocking=True)
        speaker = batch["speaker"].to(device, non_blocking=True)
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            out = ddp_model(wav, speaker, EncoderCrop.from_batch(batch, device))
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(out.loss).backward()
        scaler.unscale_(optimizer)
        clip = cfg.optim.grad_clip if cfg.optim.grad_clip is not None else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        # one sync: finite on every rank, and no rank has had SIGTERM/SIGINT (any rank's signal stops all)
        finite, unsignalled = dist.all_ranks_true_each(
            torch.isfinite(out.loss.detach()) & torch.isfinite(grad_norm), stop.received is None
        )
        # fp16 loss scaling overflows by design until GradScaler finds a scale that fits: skip the step
        # and let update() halve the scale, without counting it as a non-finite step (the model is fine).
        overflow = (
            not finite
            and scaler.is_enabled()
            and scaler.get_scale() > 1.0
            and dist.all_ranks_true(torch.isfinite(out.loss.detach()))  # the loss was fine, the gradients overflowed
        )
        if finite:
            scaler.step(optimizer)
            nonfinite = 0
        elif overflow:
            optimizer.zero_grad(set_to_none=True)
            log.debug("step %d: fp16 gradient overflow at loss scale %g, step skipped", step, scaler.get_scale())
        else:
            nonfinite += 1
            optimizer.zero_grad(set_to_none=True)
            log.warning("step %d: non-finite loss or gradient, step skipped (%d in a row)", step, nonfinite)
            if nonfinite >= cfg.train.max_nonfinite_steps:
                raise TrainingError(
                    f"{nonfinite} non-finite steps in a row at step {step}: training stopped; the last good "
                    f"checkpoint is {last_path if last_path.is_file() else 'not written yet'} (try a lower "
                    "optim.lr, optim.grad_clip, or train.precision fp32)"
                )
        scaler.update()
        with warnings.catch_warnings():  # the schedule follows the step count, skipped steps included
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
            scheduler.step()
        step += 1
        progress.update(1)
        out_of_time = deadline is not None and dist.broadcast_flag(time.monotonic() >= deadline)
        stopping = not unsignalled and step < end
        if stopping:
            stop_signal = stop.received or int(signal.SIGTERM)  # None here: the signal reached another rank
        final = step == end or out_of_time or stopping
        logger.accumulate(
            out, grad_norm if finite else None, wav.size(0) * wav.size(-1) * world_size, time.perf_counter() - t0
        )
        if step % cfg.train.log_every == 0 or final:
            stats = logger.flush(step, scheduler.get_last_lr()[0], model.quantizer)
            if main and stats:
                progress.set_postfix(loss=f"{stats['loss/total']:.3f}", samples_s=f"{stats['speed/samples_per_s']:.0f}")
        if nonfinite:  # no validation or checkpoint during a run of skipped steps: last.pt stays the last good one
            if stopping and main:
                log.warning(
                    "stopped by %s after step %d, a skipped step: no checkpoint written", _name(stop_signal), step
                )
            if out_of_time or stopping:
                break
            continue
        if validset is not None and (step % cfg.train.valid_every == 0 or step == cfg.train.steps):
            valid_loss = validate(model, validset, cfg, device, autocast_dtype) if main else None
            if main:
                logger.scalar("valid/loss", valid_loss, step)
                log.info("step %d: validation loss %.4f", step, valid_loss)
            improved = dist.broadcast_flag(main and (best is None or valid_loss < best))
            if improved:
                best = valid_loss if main else best
                checkpoint(out_dir / "best.pt")
        if main and validset is not None and cfg.train.audio_every and step % cfg.train.audio_every == 0:
            logger.audio(model, validset, cfg.train.audio_seconds, step)
        if step % cfg.train.checkpoint_every == 0:
            checkpoint(out_dir / f"step_{step:08d}.pt")
            if main:
                prune_checkpoints(out_dir, cfg.train.keep_checkpoints)
        if step % cfg.train.checkpoint_every == 0 or final:
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


def _name(signum: int | None) -> str:
    return signal.Signals(signum).name if signum else "a signal"


@torch.no_grad()
def validate(model: VQVAE, validset: SegmentDataset, cfg: Config, device: torch.device, autocast_dtype) -> float:
    """Mean total loss on the fixed validation crops (model in eval mode: no codebook updates)."""
    model.eval()
    total, count = 0.0, 0
    for batch in validation_batches(validset, cfg.data.valid_utterances, cfg.data.batch_size):
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            out = model(batch["wav"].to(device), batch["speaker"].to(device), EncoderCrop.from_batch(batch, device))
        total += out.loss.item() * batch["wav"].size(0)
        count += batch["wav"].size(0)
    model.train()
    return total / max(1, count)
