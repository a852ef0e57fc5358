"""How much of the words and the voice the mel decoder's spectrogram carries, without the WaveNet.

Each source utterance is encoded, the mel decoder predicts its log-mel frames for the target
speaker, and ``models.lpc.noise_vocoder`` turns them into whispered speech (white noise through
an LPC filter per frame, nothing learned). With ``--excitation wavenet`` the WaveNet's conversion
is whitened by its own LPC filters and coloured by the predicted frames' instead: the WaveNet's fine
structure with the mel decoder's envelope (``evaluate conversion --envelope 1``, ``inference.envelope``).
The result is scored as ``audio-vqvae evaluate conversion`` scores the WaveNet's conversions of the
same pairs (``cli.evaluate.run_conversion``).
Running both on one checkpoint tells whether the codes and the mel decoder or the WaveNet limit
the conversions: speaker classification, MCD to the target's reading, and with --wer the word
error rate.

    python bench/lpc_vocoder.py --ckpt EXP/last.pt --data DIR [--n-sources 6] [--excitation noise|wavenet]
                                [--wer] [--out JSON]

The checkpoint needs a mel decoder (``model.mel_loss_weight``).
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

import torch

from audio_vqvae.cli.evaluate import conversion_pairs, convert_all, run_conversion, split_rows
from audio_vqvae.errors import AudioVQVAEError, debug_requested
from audio_vqvae.evaluation.baseline_vocoder import predicted_log_mel
from audio_vqvae.evaluation.evaluate import format_conversion_report
from audio_vqvae.models.lpc import noise_vocoder
from audio_vqvae.models.vqvae import VQVAE


def lpc_converter(seed: int, excitation: str):
    """A ``run_conversion`` converter: the mel decoder's frames for the target through the noise vocoder,
    or (``excitation="wavenet"``) as the envelope of the WaveNet's conversion."""

    def convert(model: VQVAE, wavs: list[torch.Tensor], speakers: list[str], **options) -> list[torch.Tensor]:
        if excitation == "wavenet":  # the library's streaming post-filter at full strength (inference.envelope)
            return convert_all(model, wavs, speakers, **options, envelope=1.0)
        generator = torch.Generator().manual_seed(seed)
        front, hop, sr = model.log_mel, model.hop_length, model.sample_rate
        whole = [wav[: wav.numel() // hop * hop] for wav in wavs]  # the frames of whole hops
        mels = [predicted_log_mel(model, wav, speaker) for wav, speaker in zip(whole, speakers)]
        return [noise_vocoder(mel, front, hop, sr, generator)[0] for mel in mels]

    return convert


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--data", required=True, help="prepared corpus folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--n-sources", type=int, default=6, help="source utterances, each to 2 other speakers")
    parser.add_argument("--max-seconds", type=float, default=6.0, help="crop every utterance (default 6, as evaluate)")
    parser.add_argument("--reconstructions", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--excitation", choices=("noise", "wavenet"), default="noise", help="white noise, or the WaveNet's conversion"
    )
    parser.add_argument("--wer", action="store_true", help="word error rates (pip install 'audio_vqvae[wer]')")
    parser.add_argument("--out", help="write the metrics as JSON")
    args = parser.parse_args(argv)
    model = VQVAE.load(args.ckpt).eval()
    if model.mel_decoder is None:
        print(
            f"bench/lpc_vocoder.py: error: {args.ckpt}: the model has no mel decoder (model.mel_loss_weight)",
            file=sys.stderr,
        )
        return 2
    data = Path(args.data)
    pairs = conversion_pairs(split_rows(data, args.split), model.speakers, args.n_sources, None, args.seed)
    result = run_conversion(
        model,
        data,
        pairs,
        max_seconds=args.max_seconds,
        reconstructions=args.reconstructions,
        seed=args.seed,
        wer=args.wer,
        converter=lpc_converter(args.seed, args.excitation),
    )
    result["checkpoint"], result["vocoder"] = str(args.ckpt), f"lpc, {args.excitation} excitation (models.lpc)"
    print(format_conversion_report(result))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2, default=float) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except AudioVQVAEError as e:  # a user's mistake in one line (AUDIO_VQVAE_DEBUG=1: with its traceback)
        if debug_requested():
            traceback.print_exc()
        print(f"bench/lpc_vocoder.py: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
