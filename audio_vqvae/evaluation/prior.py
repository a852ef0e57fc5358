"""What a code prior learned: held-out bits per code beside n-gram baselines, and its samples' voices.

``code_bits`` scores held-out code sequences under the prior and under unigram and bigram models
counted on the prior's training codes (``metrics.lm``): the prior has to beat the bigram to model
more than code frequencies and repetitions. ``draw_samples`` samples codes for each speaker (and times
it), ``sample_voices`` decodes them with the VQ-VAE in that voice and asks a speaker classifier
trained on real speech whose voice each sample is, and ``samples_phone_likeness`` reads the codes as
phones (``metrics.phone_lm``) to say how speech-like their sequences are.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..inference import decode_tokens
from ..inference.sampling import SampleOptions, draw, prior_speaker
from ..models.prior import CodePrior
from ..models.vqvae import VQVAE
from .metrics.lm import ngram_bits, prior_bits
from .metrics.phone_lm import PhoneBigram, code_to_phone, phone_likeness, unigram_draws
from .metrics.speaker import SpeakerClassifier


def code_bits(
    prior: CodePrior,
    train: Sequence[Tensor],
    test: Sequence[Tensor],
    test_speakers: Sequence[int] | None,
    frame_rate: float,
) -> dict[str, float]:
    """Bits per code (and per second, at ``frame_rate`` codes a second) of ``test`` under the prior and
    under add-0.1 unigram and bigram models of ``train``.

    Args:
        train, test: (L,) int64 code sequences; test_speakers: the prior's speaker id of each test
            sequence (a speaker-conditioned prior), else None.
    """
    K = prior.codebook_size
    bits = {
        "prior": prior_bits(prior, test, test_speakers),
        "unigram": ngram_bits(train, test, K, 1),
        "bigram": ngram_bits(train, test, K, 2),
    }
    out: dict[str, float] = {f"{k}_bits_per_code": v for k, v in bits.items()}
    out.update({f"{k}_bits_per_second": v * frame_rate for k, v in bits.items()})
    out["test_codes"] = int(sum(t.numel() for t in test))
    out["test_utterances"] = len(test)
    return out


def draw_samples(
    prior: CodePrior, speakers: Sequence[str | None], per_speaker: int, n_codes: int, options: SampleOptions
) -> tuple[list[Tensor], list[str | None], float]:
    """``per_speaker`` code sequences of ``n_codes`` for each speaker (None: unconditional).

    Returns:
        The sequences ((n_codes,) each), the speaker of each, and the prior's sampling speed in codes a second.
    """
    generator = torch.Generator(prior.head.weight.device).manual_seed(options.seed)
    codes: list[Tensor] = []
    requested: list[str | None] = []
    start = time.perf_counter()
    for speaker in speakers:
        conditioning = prior_speaker(prior, speaker) if speaker is not None else None
        codes += draw(prior, n_codes, conditioning, [], per_speaker, options, generator)
        requested += [speaker] * per_speaker
    return codes, requested, len(codes) * n_codes / max(time.perf_counter() - start, 1e-9)


def sample_voices(
    vqvae: VQVAE,
    classifier: SpeakerClassifier,
    codes: Sequence[Tensor],
    requested: Sequence[str],
    options: SampleOptions,
) -> dict[str, Any]:
    """Decode each code sequence in its requested voice and classify the voices.

    Returns:
        ``speaker_agreement`` (share classified as the requested speaker), ``per_speaker`` agreement,
        ``n_samples``, ``seconds_per_sample`` and ``decode_real_time_factor`` (decoding time / audio time).
    """
    generator = torch.Generator(next(vqvae.parameters()).device).manual_seed(options.seed)
    start = time.perf_counter()
    wavs = [
        decode_tokens(
            vqvae, [c], speaker, temperature=options.decoder_temperature, generator=generator, envelope=options.envelope
        )[0]
        for c, speaker in zip(codes, requested)
    ]
    seconds = sum(w.numel() for w in wavs) / vqvae.sample_rate
    decoding = time.perf_counter() - start
    predicted = classifier.predict(wavs)
    hits = np.array([p == r for p, r in zip(predicted, requested)])
    return {
        "speaker_agreement": float(hits.mean()),
        "per_speaker": {s: float(hits[[r == s for r in requested]].mean()) for s in dict.fromkeys(requested)},
        "n_samples": len(codes),
        "seconds_per_sample": seconds / max(1, len(codes)),
        "decode_real_time_factor": decoding / max(seconds, 1e-9),
    }


def samples_phone_likeness(
    train: Sequence[Tensor],
    train_labels: Sequence[Sequence[str]],
    test: Sequence[Tensor],
    samples: Sequence[Tensor],
    codebook_size: int,
    frame_rate: float,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """``metrics.phone_lm.phone_likeness`` of the real held-out codes, the prior's samples, and as many
    codes drawn from the unigram, with codes read as phones by the mapping of the aligned ``train``
    codes and scored by the bigram of their frame labels."""
    mapping = code_to_phone(train, train_labels, codebook_size)
    bigram = PhoneBigram([list(seq) for seq in train_labels])
    draws = unigram_draws(train, [s.numel() for s in samples], codebook_size, seed)
    return {
        name: phone_likeness(seqs, mapping, bigram, frame_rate)
        for name, seqs in (("real", test), ("samples", samples), ("unigram_draws", draws))
    }


def format_prior_report(result: Mapping[str, Any]) -> str:
    """The report of ``evaluate prior`` as aligned lines."""
    b = result["bits"]
    lines = [
        f"code prior: {b['test_utterances']} held-out utterances, {b['test_codes']} codes",
        "  bits per code              "
        f"prior {b['prior_bits_per_code']:.3f}   bigram {b['bigram_bits_per_code']:.3f}   "
        f"unigram {b['unigram_bits_per_code']:.3f}",
        "  bits per second            "
        f"prior {b['prior_bits_per_second']:.0f}   bigram {b['bigram_bits_per_second']:.0f}   "
        f"unigram {b['unigram_bits_per_second']:.0f}",
    ]
    if "sampling_codes_per_second" in result:
        lines.append(
            f"  sampling speed             {result['sampling_codes_per_second']:.0f} codes/s (the prior, batched)"
        )
    phones = result.get("phone_likeness")
    if phones:
        lines.append("  codes read as phones       bits/frame (real phone bigram)   frames/phone")
        for name, label in (
            ("real", "real held-out"),
            ("samples", "prior samples"),
            ("unigram_draws", "unigram draws"),
        ):
            p = phones[name]
            lines.append(f"    {label:<24} {p['bits_per_frame']:>10.2f} {p['mean_phone_frames']:>26.1f}")
    v = result.get("voices")
    if v:
        per = ", ".join(f"{s} {a:.0%}" for s, a in v["per_speaker"].items())
        lines += [
            f"  samples as the speaker     {100 * v['speaker_agreement']:.1f} %   "
            f"({v['n_samples']} samples of {v['seconds_per_sample']:.2f} s; {per})",
            f"  decoding real-time factor  {v['decode_real_time_factor']:.2f}",
        ]
    return "\n".join(lines)
