"""Whose voice a speaker-verification embedding hears in a model's output, and which part of the decoder loses it.

For every utterance of --split, the model resynthesises it with its own speaker and converts it to each
--targets speaker, and each output is made four ways: the real speech (resyntheses only); the classic
pulse-plus-noise LPC vocoder (``models.lpc.pulse_vocoder``, nothing learned) from the real log-mel frames
and YIN f0 (resyntheses only); the same vocoder from the mel decoder's predicted frames at the f0 decoder's
f0; and the model's own decoder. Resemblyzer's embedding (the ``eval`` extra) names the nearest speaker
centroid (16 training utterances a speaker). A target heard through the vocoder of the predicted frames but
not through the decoder is lost by the decoder's excitation, not by the envelope. Needs an LPC
source-filter model (``model.decoder.lpc_order`` > 0).

    python bench/voice_diagnosis.py --ckpt EXP/last.pt --data DATA [--split valid] [--targets fl_rms]
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

import torch

from audio_vqvae.cli.evaluate import split_rows
from audio_vqvae.data.audio import load_audio
from audio_vqvae.errors import MissingPackageError
from audio_vqvae.evaluation.baseline_vocoder import frame_f0
from audio_vqvae.evaluation.metrics.speaker_embedding import SpeakerEncoder, centroids, nearest
from audio_vqvae.models.lpc import pulse_vocoder
from audio_vqvae.models.vqvae import VQVAE


@torch.no_grad()
def outputs(model: VQVAE, wav: torch.Tensor, resynthesis: bool, target: str, generator) -> dict[str, torch.Tensor]:
    """The four versions of one (T,) utterance for ``target``: name -> (T',) waveform."""
    wav = wav[: wav.numel() // model.hop_length * model.hop_length]
    codes = model.encode(wav)  # (1, N)
    speaker = model.speaker_ids(target, 1)
    features, f0 = model.synthesis_inputs(model.quantizer.dequantize(codes), speaker)  # (1, D', N), (1, N)
    predicted = model.feature_log_mel(features)  # (1, n_mels, N)
    order, hop, sr = model.decoder.lpc_order, model.hop_length, model.sample_rate
    out = {}
    if resynthesis:
        real = model.log_mel(wav[None])[..., : codes.size(1)]
        out["real"] = wav
        out["vocoder, real frames"] = pulse_vocoder(real, frame_f0(model, wav)[None, : codes.size(1)], model.log_mel,
                                                    hop, sr, generator, order)[0]  # fmt: skip
    out["vocoder, predicted frames"] = pulse_vocoder(predicted, f0, model.log_mel, hop, sr, generator, order)[0]
    out["decoder"] = model.decode(codes, speaker, generator=generator)[0, 0]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--data", required=True, type=Path, help="prepared corpus folder")
    parser.add_argument("--split", default="valid")
    parser.add_argument("--targets", nargs="+", help="target speakers (default: all)")
    parser.add_argument("--out", type=Path, help="also write the counts here as JSON")
    args = parser.parse_args()
    model = VQVAE.load(args.ckpt).eval()
    if not model.source_filter or not model.decoder.lpc_order:
        parser.error("needs an LPC source-filter model (model.decoder.lpc_order > 0)")
    unknown = sorted(set(args.targets or []) - set(model.speakers))
    if unknown:
        parser.error(f"{args.ckpt}: no speaker {', '.join(unknown)} (it has {', '.join(model.speakers)})")
    sr = model.sample_rate
    try:
        encoder = SpeakerEncoder()
    except MissingPackageError as e:
        parser.error(str(e))
    real = split_rows(args.data, "train", 16 * len(model.speakers))
    names, c = centroids(encoder.embed_all([load_audio(args.data / r.path, sr) for r in real], sr),
                         [r.speaker for r in real])  # fmt: skip
    generator = torch.Generator().manual_seed(0)
    made = collections.defaultdict(list)  # (target, source, version) -> waveforms
    for row in split_rows(args.data, args.split, None):
        wav = load_audio(args.data / row.path, sr)
        for target in args.targets or model.speakers:
            for version, out in outputs(model, wav, target == row.speaker, target, generator).items():
                made[(target, row.speaker, version)].append(out)
    counts = []
    for (target, source, version), wavs in sorted(made.items()):
        heard, _ = nearest(encoder.embed_all(wavs, sr), names, c)
        tally = collections.Counter(heard)
        counts.append({"target": target, "source": source, "version": version, "n": len(wavs),
                       "as_target": tally[target], "heard_as": dict(tally)})  # fmt: skip
        print(f"{source:>10} -> {target:<10} {version:<26} {tally[target]:3d} / {len(wavs):3d} as the target; "
              f"heard as {dict(tally.most_common(3))}")  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(counts, indent=2) + "\n")


if __name__ == "__main__":
    main()
