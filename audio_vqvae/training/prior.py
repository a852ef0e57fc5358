"""Training the code prior: ``train_prior(cfg, tokens, out_dir)`` on the token files ``encode`` writes.

The loop is the VQ-VAE's (``loop.run_steps``): AMP, TensorBoard, atomic checkpoints, exact resume,
torchrun, the non-finite guard and a clean stop on SIGTERM. Training crops are ``model.max_len`` codes
of an utterance at a random offset, so every position the prior is later asked for is trained (shorter
utterances are padded and masked out of the loss), in the resumable order of ``dataset.StreamSampler``.
With a prepared corpus (``data``), each utterance's speaker comes from its manifests and the prior is
speaker-conditioned.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset

from ..checkpoint import PRIOR_KIND, prior_config_from_checkpoint, set_rng_state
from ..config import PriorExperiment, to_dict
from ..config import validate as validate_config
from ..data.manifest import SPLITS, read_manifest, read_speakers
from ..errors import ManifestError, TokenFormatError, TrainingError
from ..inference.tokens import CODES_DIR, check_code_rows, read_metadata, read_tokens, units_source
from ..models.prior import CodePrior, masked_nll
from .dataset import Item, validation_batches
from .loop import (
    TRAINING_STATE,
    Optimisation,
    Run,
    TrainResult,
    pick_device,
    resolve_resume,
    restore,
    run_steps,
    session,
    start_out_dir,
    step_loader,
)
from .monitor import StepLogger
from .precision import training_precision

log = logging.getLogger("audio_vqvae.training")
LOG2 = math.log(2.0)


@dataclass
class PriorOutput:
    """One step of the prior: ``loss`` in nats per code (masked mean)."""

    loss: Tensor

    def metrics(self) -> dict[str, Tensor]:
        nats = self.loss.detach().float()
        return {"loss/total": nats, "loss/bits_per_code": nats / LOG2}


class CodeCrops(Dataset):
    """Crops of ``segment`` codes from code sequences, with speaker ids.

    Args:
        sequences: (L,) int64 codes per utterance.
        speaker_ids: one per utterance (0s for an unconditional prior).
        segment: codes per crop; shorter utterances are padded with code 0 and masked.
    """

    def __init__(self, sequences: Sequence[Tensor], speaker_ids: Sequence[int], segment: int):
        if segment < 1:
            raise ValueError(f"segment must be >= 1, got {segment}")
        self.sequences = [s.long().reshape(-1) for s in sequences]
        self.speaker_ids = list(speaker_ids)
        self.segment_length = segment

    def __len__(self) -> int:
        return len(self.sequences)

    def crop(self, index: int, offset: int) -> dict[str, Tensor]:
        """``codes`` (segment,) from ``offset`` on, zero-padded, and ``mask`` (segment,) bool of the real ones."""
        piece = self.sequences[index][offset : offset + self.segment_length]
        codes = torch.zeros(self.segment_length, dtype=torch.long)
        codes[: piece.numel()] = piece
        mask = torch.arange(self.segment_length) < piece.numel()
        return {"codes": codes, "mask": mask}

    def __getitem__(self, item: Item) -> dict[str, Tensor]:
        n = self.sequences[item.index].numel()
        offset = int(np.random.default_rng(item.crop_seed).integers(max(0, n - self.segment_length) + 1))
        return {**self.crop(item.index, offset), "speaker": torch.tensor(self.speaker_ids[item.index])}


def read_code_rows(path: str | Path, codebook_size: int | None = None) -> tuple[list[tuple[str, Tensor]], dict, Path]:
    """The (id, codes) rows of a units file or ``encode`` folder, its ``tokens.json`` (or {}) and the file read.

    Args:
        codebook_size: K to check the codes against; None: the folder's ``tokens.json`` says.
    Raises:
        InputNotFoundError, TokenFormatError: no units there, no K known, or codes outside [0, K).
    """
    source = units_source(path)
    meta = read_metadata(source.parent if source.is_file() or source.name == CODES_DIR else source) or {}
    K = codebook_size or meta.get("codebook_size")
    if not K:
        raise TokenFormatError(f"{path}: no tokens.json beside the units to give the codebook size")
    if meta.get("codebook_size") not in (None, K):
        raise TokenFormatError(f"{path}: codes of a codebook of {meta['codebook_size']}, expected {K}")
    rows = read_tokens(source)
    check_code_rows(rows, K, source)
    return rows, meta, source


def corpus_speakers(data_dir: str | Path) -> tuple[list[str], dict[str, str]]:
    """The speaker list of a prepared corpus and the speaker of every utterance id in its manifests."""
    data_dir = Path(data_dir)
    speakers = read_speakers(data_dir / "speakers.txt")
    by_id = {
        r.id: r.speaker for split in SPLITS if (data_dir / f"{split}.jsonl").is_file()
        for r in read_manifest(data_dir / f"{split}.jsonl")
    }  # fmt: skip
    return speakers, by_id


def speaker_ids_of(rows: list[tuple[str, Tensor]], speakers: list[str], by_id: dict[str, str], source) -> list[int]:
    index = {s: i for i, s in enumerate(speakers)}
    out = []
    for uid, _ in rows:
        if uid not in by_id:
            raise ManifestError(f"{source}: utterance {uid!r} is in none of the corpus's manifests (its speaker?)")
        if by_id[uid] not in index:
            raise ManifestError(f"{source}: utterance {uid!r} has speaker {by_id[uid]!r}, not in speakers.txt")
        out.append(index[by_id[uid]])
    return out


def train_prior(
    cfg: PriorExperiment,
    tokens: str | Path,
    out_dir: str | Path,
    *,
    valid_tokens: str | Path | None = None,
    data_dir: str | Path | None = None,
    resume: bool | None = None,
    stop_at: int | None = None,
    time_limit: float | None = None,
) -> TrainResult:
    """Train a code prior on the codes of ``tokens`` (an ``encode`` output folder or units file).

    Args:
        cfg: the experiment; ``model.codebook_size`` and ``model.n_speakers`` are set from the data.
        valid_tokens: held-out codes: ``valid/loss`` (nats per code) and ``best.pt``.
        data_dir: a prepared corpus whose manifests name each utterance's speaker: a speaker-conditioned
            prior over its ``speakers.txt`` (the VQ-VAE's speakers when it was trained on that corpus).
        resume, stop_at, time_limit: as ``training.train``'s.
    """
    started = time.monotonic()
    validate_config(cfg)
    if stop_at is not None and stop_at < 1:
        raise TrainingError(f"stop_at must be a step >= 1, got {stop_at}")
    rows, meta, source = read_code_rows(tokens)
    K = int(meta["codebook_size"])
    valid_rows, valid_source = [], None
    if valid_tokens is not None:
        valid_rows, _, valid_source = read_code_rows(valid_tokens, K)
    speakers: list[str] = []
    speaker_ids, valid_ids = [0] * len(rows), [0] * len(valid_rows)
    if data_dir is not None:
        speakers, by_id = corpus_speakers(data_dir)
        speaker_ids = speaker_ids_of(rows, speakers, by_id, source)
        valid_ids = speaker_ids_of(valid_rows, speakers, by_id, valid_source)
    model_cfg = dataclasses.replace(cfg.model, codebook_size=K, n_speakers=len(speakers))
    cfg = dataclasses.replace(cfg, model=model_cfg)
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        CodePrior.from_config(cfg.model)  # impossible sizes fail now, naming the section
    out_dir = Path(out_dir)
    deadline = None if time_limit is None else started + time_limit
    with session(out_dir) as (stop, rank, world_size, local_rank):
        state = resolve_resume(
            cfg, out_dir, resume, lambda s: prior_config_from_checkpoint(s, out_dir / "last.pt"),
            ("speakers", *TRAINING_STATE),
        )  # fmt: skip
        if state is not None and list(state["speakers"]) != speakers:
            raise TrainingError(f"{out_dir / 'last.pt'}: trained with other speakers ({state['speakers']})")
        device = pick_device(cfg.train.device, local_rank)
        precision = training_precision(cfg.train.precision, device, rank == 0)
        torch.manual_seed(cfg.train.seed)
        model = CodePrior.from_config(cfg.model).to(device)
        trainset = CodeCrops([c for _, c in rows], speaker_ids, cfg.model.max_len)
        validset = CodeCrops([c for _, c in valid_rows], valid_ids, cfg.model.max_len) if valid_rows else None
        opt = Optimisation.create(model.parameters(), cfg.optim, cfg.train.steps, precision, device)
        step, best = restore(state, model, opt)
        main = rank == 0
        if main:
            start_out_dir(out_dir, to_dict(cfg))
            n_params = sum(p.numel() for p in model.parameters())
            log.info(
                "code prior: %d parameters, K %d, %d speakers; %d training utterances (%d codes), %s",
                n_params, K, len(speakers), len(rows), sum(c.numel() for _, c in rows),
                f"resuming at step {step}" if state is not None else "starting",
            )  # fmt: skip
        ddp_model: nn.Module = model
        if world_size > 1:
            ddp_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        loader = step_loader(trainset, cfg.data.batch_size, cfg.data.num_workers, cfg.train.seed, step, device)
        batches = iter(loader)
        if state is not None:
            set_rng_state(state["rng"])  # after everything that consumed random numbers at start-up
        autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        logger = StepLogger(out_dir / "tensorboard", "speed/codes_per_s", enabled=main)
        conditioned = bool(speakers)

        def forward(batch: dict) -> PriorOutput:
            codes, mask = batch["codes"].to(device), batch["mask"].to(device)
            speaker = batch["speaker"].to(device) if conditioned else None
            return PriorOutput(masked_nll(ddp_model(codes, speaker), codes, mask))

        def validate() -> float:
            nats = validate_prior(model, validset, cfg.data.valid_utterances, cfg.data.batch_size, conditioned)
            logger.scalar("valid/bits_per_code", nats / LOG2, step_now())
            return nats

        def step_now() -> int:
            return int(opt.scheduler.last_epoch)  # the schedule steps once per training step

        run = Run(
            model=model,
            forward=forward,
            batches=batches,
            optimisation=opt,
            logger=logger,
            items=lambda batch: int(batch["mask"].sum()),
            validate=validate if validset is not None else None,
            contents=lambda: {
                "kind": PRIOR_KIND,
                "config": to_dict(cfg),
                "speakers": speakers,
                "model": model.state_dict(),
                "tokens": meta,
            },
            grad_clip=cfg.optim.grad_clip,
            autocast_dtype=autocast_dtype,
        )
        return run_steps(run, cfg.train, out_dir, step=step, best=best, stop=stop, stop_at=stop_at, deadline=deadline)


@torch.no_grad()
def validate_prior(model: CodePrior, validset: CodeCrops, count: int, batch_size: int, conditioned: bool) -> float:
    """Mean nats per code on the fixed validation crops (the first segment of the first ``count`` utterances)."""
    model.eval()
    device = model.head.weight.device
    total, n = 0.0, 0
    for batch in validation_batches(validset, count, batch_size):
        codes, mask = batch["codes"].to(device), batch["mask"].to(device)
        speaker = batch["speaker"].to(device) if conditioned else None
        total += float(masked_nll(model(codes, speaker), codes, mask)) * int(mask.sum())
        n += int(mask.sum())
    model.train()
    return total / max(1, n)
