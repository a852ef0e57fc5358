"""Training the VQ-VAE: ``train(cfg, data_dir, out_dir)``, one process or many (torchrun), resumable exactly
(the loop itself, shared with the code prior, is ``loop.run_steps``)."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..checkpoint import config_from_checkpoint, set_rng_state
from ..config import Config, to_dict
from ..config import validate as validate_config
from ..data.manifest import read_manifest, read_speakers
from ..errors import ConfigError, TrainingError
from ..models.encoder import hop_length
from ..models.vqvae import VQVAE, EncoderCrop
from .dataset import SegmentDataset, validation_batches
from .loop import (
    RESUMABLE_KEYS,
    TRAINING_STATE,
    Optimisation,
    Run,
    TrainResult,
    flat_differences,
    lr_factor,
    pick_device,
    resolve_resume,
    restore,
    run_steps,
    session,
    start_out_dir,
    step_loader,
)
from .monitor import TrainLogger
from .precision import training_precision

__all__ = [
    "RESUMABLE_KEYS",
    "TrainResult",
    "TrainingError",
    "flat_differences",
    "lr_factor",
    "pick_device",
    "read_data_folder",
    "step_loader",
    "train",
    "validate",
]

log = logging.getLogger("audio_vqvae.training")


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
    deadline = None if time_limit is None else started + time_limit
    # train.log beside TensorBoard: the log lines of every run in this folder, resumed ones appended
    with session(out_dir) as (stop, rank, world_size, local_rank):
        return _train(cfg, data_dir, out_dir, resume, stop_at, deadline, rank, world_size, local_rank, stop)


def _train(cfg, data_dir, out_dir, resume, stop_at, deadline, rank, world_size, local_rank, stop) -> TrainResult:
    main = rank == 0
    speakers, train_rows, valid_rows = read_data_folder(data_dir)
    cfg = dataclasses.replace(
        cfg,
        model=dataclasses.replace(cfg.model, decoder=dataclasses.replace(cfg.model.decoder, n_speakers=len(speakers))),
    )
    state = resolve_resume(
        cfg, out_dir, resume, config_from_checkpoint, ("speakers", *TRAINING_STATE), ("model.decoder.n_speakers",)
    )
    if state is not None and list(state["speakers"]) != speakers:
        raise TrainingError(f"{out_dir / 'last.pt'}: trained on other speakers than {data_dir / 'speakers.txt'}")
    device = pick_device(cfg.train.device, local_rank)
    precision = training_precision(cfg.train.precision, device, main)

    torch.manual_seed(cfg.train.seed)
    model = VQVAE.from_config(cfg.model).to(device)
    hop = model.hop_length
    segment = cfg.data.segment_length // hop * hop
    context = model.encoder.training_context
    trainset = SegmentDataset(train_rows, speakers, segment, hop, cfg.model.sample_rate, context)
    validset = (
        SegmentDataset(valid_rows, speakers, segment, hop, cfg.model.sample_rate, context) if valid_rows else None
    )
    opt = Optimisation.create(model.parameters(), cfg.optim, cfg.train.steps, precision, device)
    step, best = restore(state, model, opt)
    if main:
        start_out_dir(out_dir, to_dict(cfg))
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
    batches = iter(step_loader(trainset, cfg.data.batch_size, cfg.data.num_workers, cfg.train.seed, step, device))
    if state is not None:
        set_rng_state(state["rng"])  # after everything that consumed random numbers at start-up

    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    logger = TrainLogger(out_dir / "tensorboard", model.quantizer, enabled=main)

    def forward(batch: dict):
        wav = batch["wav"].to(device, non_blocking=True)
        speaker = batch["speaker"].to(device, non_blocking=True)
        return ddp_model(wav, speaker, EncoderCrop.from_batch(batch, device))

    def after_step(step: int) -> None:
        if validset is not None and cfg.train.audio_every and step % cfg.train.audio_every == 0:
            logger.audio(model, validset, cfg.train.audio_seconds, step)

    run = Run(
        model=model,
        forward=forward,
        batches=batches,
        optimisation=opt,
        logger=logger,
        items=lambda batch: batch["wav"].size(0) * batch["wav"].size(-1),
        validate=(lambda: validate(model, validset, cfg, device, autocast_dtype)) if validset is not None else None,
        contents=lambda: {"config": to_dict(cfg), "speakers": speakers, "model": model.state_dict()},
        after_step=after_step,
        grad_clip=cfg.optim.grad_clip,
        autocast_dtype=autocast_dtype,
    )
    return run_steps(run, cfg.train, out_dir, step=step, best=best, stop=stop, stop_at=stop_at, deadline=deadline)


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
