"""Speech from a learned prior: sample codes (``generation.codes.sample_codes``), decode them with the
VQ-VAE in a chosen voice, and write them.

``sample_speech`` writes ``sample_000.wav``, ... (from nothing) or ``<id>_continued.wav`` (continuing
the first ``prompt_seconds`` of each prompt file, whose codes the VQ-VAE encodes), each with its codes
in ``units.txt`` (``id|u1 u2 ...``, as ``encode`` writes them), so the samples can be scored or decoded
again. Decoding streams to disk in bounded memory, as ``convert`` does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..errors import UsageError
from ..fileio import atomic_write_text
from ..generation.codes import sample_codes
from ..models.prior import CodePrior
from ..models.vqvae import VQVAE
from . import iter_decode_pieces, iter_tokens
from .envelope import check_envelope
from .jobs import RealTimeBar, claim_outputs, lock_outputs, write_pieces
from .tokens import UNITS, file_sha256, id_from_path, units_line

log = logging.getLogger("audio_vqvae.inference")


@dataclass
class SampleOptions:
    """How codes are drawn from the prior (``sample_codes``) and how the VQ-VAE decodes them."""

    temperature: float = 1.0  # the prior's; 0 is greedy
    top_k: int | None = None
    top_p: float | None = None
    decoder_temperature: float = 1.0  # the WaveNet's
    batch_size: int = 8
    seed: int = 0
    envelope: float = 0.0  # the mel decoder's envelope post-filter (``inference.iter_decode_pieces``)


def check_pair(prior: CodePrior, vqvae: VQVAE) -> None:
    """A prior and a VQ-VAE that share a codebook; UsageError otherwise. A prior trained on another
    checkpoint's codes (tokens.json's sha256) is a warning: the codes may mean other sounds."""
    K = vqvae.quantizer.codebook_size
    if prior.codebook_size != K:
        raise UsageError(f"the prior models codes of a codebook of {prior.codebook_size}, the VQ-VAE's has {K}")
    trained_on = (prior.tokens.get("checkpoint") or {}).get("sha256")
    if trained_on and vqvae.checkpoint is not None and trained_on != file_sha256(vqvae.checkpoint):
        log.warning("the prior was trained on the codes of another checkpoint (%s)", prior.tokens["checkpoint"]["path"])


def prior_speaker(prior: CodePrior, speaker: str) -> Tensor | None:
    """(1,) the prior's id of a speaker name, or None for an unconditional prior; UsageError for an unknown one."""
    if not prior.speakers:
        return None
    if speaker not in prior.speakers:
        raise UsageError(f"speaker {speaker!r} is not one of the prior's: {', '.join(prior.speakers)}")
    return torch.tensor([prior.speakers.index(speaker)])


def draw(
    prior: CodePrior,
    n_codes: int,
    speaker: Tensor | None,
    prompts: Sequence[Tensor],
    count: int,
    options: SampleOptions,
    generator: torch.Generator,
) -> list[Tensor]:
    """Each prompt (P_i,) continued by ``n_codes``, or without prompts ``count`` sequences of ``n_codes``
    (``options.batch_size`` at a time): (L,) int64 each, on the CPU."""

    def sample(batch: int, prompt: Tensor | None) -> list[Tensor]:
        codes = sample_codes(
            prior,
            n_codes,
            batch=batch,
            speaker=None if speaker is None else speaker.expand(batch),
            prompt=prompt,
            temperature=options.temperature,
            top_k=options.top_k,
            top_p=options.top_p,
            generator=generator,
        )
        return list(codes.cpu())

    if prompts:  # one at a time: prompts differ in length when a file is shorter than the prompt
        return [seq for p in prompts for seq in sample(1, p.view(1, -1))]
    return [
        seq for i in range(0, count, options.batch_size) for seq in sample(min(options.batch_size, count - i), None)
    ]


def sample_speech(
    prior: CodePrior,
    vqvae: VQVAE,
    out_dir: str | Path,
    speaker: str,
    seconds: float,
    *,
    count: int = 4,
    prompts: Sequence[str | Path] = (),
    prompt_seconds: float = 1.0,
    options: SampleOptions | None = None,
    force: bool = False,
) -> list[Path]:
    """Sample speech from the prior in ``speaker``'s voice and write it to ``out_dir``.

    Args:
        seconds: of new speech after each prompt, or of each sample from nothing.
        count: samples from nothing (without prompts).
        prompts: audio files whose first ``prompt_seconds`` the samples continue, one each.
    Returns:
        The WAVs written; ``out_dir/units.txt`` holds the codes of each (prompt included).
    Raises:
        UsageError: a prior and VQ-VAE of different codebooks, an unknown speaker, or more codes than the
            prior's context.
    """
    options = options or SampleOptions()
    check_pair(prior, vqvae)
    check_envelope(vqvae, options.envelope)
    vqvae.speaker_ids(speaker, 1)  # an unknown name fails here, listing the VQ-VAE's speakers
    conditioning = prior_speaker(prior, speaker)
    frame_rate = vqvae.sample_rate / vqvae.hop_length
    n_codes = max(1, round(seconds * frame_rate))
    n_prompt = max(1, round(prompt_seconds * frame_rate)) if prompts else 0
    if n_prompt + n_codes > prior.max_len:
        raise UsageError(
            f"{n_prompt + n_codes} codes ({(n_prompt + n_codes) / frame_rate:.2f} s) exceed the prior's context of "
            f"{prior.max_len} codes ({prior.max_len / frame_rate:.2f} s): ask for fewer seconds"
        )
    ids = [f"{id_from_path(p).replace('/', '_')}_continued" for p in prompts] or [
        f"sample_{i:03d}" for i in range(count)
    ]
    out_dir = Path(out_dir)
    outputs = [out_dir / f"{uid}.wav" for uid in ids] + [out_dir / UNITS]
    claim_outputs(outputs, force)
    device = prior.head.weight.device
    generator = torch.Generator(device).manual_seed(options.seed)
    prompt_codes = [t.codes[:n_prompt] for t in iter_tokens(vqvae, list(prompts))] if prompts else []
    with lock_outputs(outputs):
        claim_outputs(outputs, force)  # again, now that no other job can write there
        codes = draw(prior, n_codes, conditioning, prompt_codes, count, options, generator)
        atomic_write_text(out_dir / UNITS, "".join(units_line(uid, c.tolist()) + "\n" for uid, c in zip(ids, codes)))
        decoder_generator = torch.Generator(next(vqvae.parameters()).device).manual_seed(options.seed)
        bar = RealTimeBar(sum(c.numel() for c in codes) * vqvae.hop_length, vqvae.sample_rate, "decode")
        try:
            pieces = iter_decode_pieces(
                vqvae,
                [c.to(next(vqvae.parameters()).device) for c in codes],
                speaker,
                batch_size=options.batch_size,
                temperature=options.decoder_temperature,
                generator=decoder_generator,
                progress=bar,
                envelope=options.envelope,
            )
            written = list(write_pieces(pieces, outputs[:-1], vqvae.sample_rate, force))
        finally:
            bar.close()
    return [outputs[i] for i in sorted(written)]
