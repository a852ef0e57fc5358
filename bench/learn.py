"""What the model learns in a given time: train for --minutes, measuring units along the way, then convert.

Training runs in --points segments (``train(..., time_limit=...)``, each resuming the last exactly).
After each one the units of the test split are scored with ``evaluate_units`` (phone accuracy,
PNMI, ABX within and across speakers) beside the MFCC k-means baseline, which makes the learning
curve. After the last one, each of --conversion-sources test sentences of every speaker is
converted to every other speaker and scored with ``evaluate_conversion``: speaker classification,
code agreement, MCD to the real target reading (the same sentence read by the target speaker)
beside the unconverted source's, with --wer the word error rate beside the real target
reading's, with --dnsmos the DNSMOS naturalness of the conversions beside the real readings', and
with --speaker-embedding whose voice a speaker-verification network hears in them (both need
``pip install -e ".[eval]"``). Everything goes to OUT/learn.json; the table goes to stdout, logs to stderr.

    python bench/learn.py --data DIR --minutes 60 [--preset default] [--config YAML] [--set k=v ...]
                          [--out EXP] [--points 4] [--threads N] [--conversion-sources 5]
                          [--max-seconds 4] [--wer] [--dnsmos] [--speaker-embedding]

DIR is a prepared corpus folder with phones.tsv (``audio-vqvae prepare``). Minutes count the
training calls' wall time (set-up and checkpoints included, evaluation not). The learning-rate
schedule follows ``train.steps`` (default 200,000), not the minutes: set it to the steps the time
allows (``--set train.steps=N``) to get the decay. The unit metrics map phones and fit k-means on
--max-utterances training utterances, the same ones ``audio-vqvae evaluate units --max-utterances``
takes, so a point can be re-measured with that command on its checkpoint; the MFCC k-means baseline
(``evaluation.metrics.features``: the standard build) is fitted once, on every frame of those.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import traceback
from pathlib import Path

import torch

from audio_vqvae.cli.common import add_config_arguments, config_from_args
from audio_vqvae.cli.evaluate import conversion_report, listener_scorers, run_conversion, unit_inputs, word_recognizer
from audio_vqvae.config import to_dict
from audio_vqvae.data.manifest import read_manifest, read_speakers
from audio_vqvae.data.pairs import choose_pairs
from audio_vqvae.errors import AudioVQVAEError, debug_requested
from audio_vqvae.evaluation.evaluate import evaluate_units, fit_baseline
from audio_vqvae.evaluation.report import read_scalars
from audio_vqvae.fileio import atomic_write_text
from audio_vqvae.models.vqvae import VQVAE
from audio_vqvae.training import pick_device, train

COLUMNS = (("phone acc %", "phone_accuracy", 100, 1), ("PNMI", "pnmi", 1, 3))
COLUMNS += (("ABX within %", "abx_within", 100, 1), ("ABX across %", "abx_across", 100, 1))


LEGEND = (
    "minutes: training wall time so far; codes, loss: codes used and mean loss over the last training log window; "
    "eval s: unit evaluation time"
)


def cell(x: float | None, scale: float, digits: int) -> str:
    return "-" if x is None else f"{scale * x:.{digits}f}"


def header() -> str:
    top = f"{'minutes':>7} {'step':>7} {'codes':>5} {'loss':>6}" + "".join(f"  {n:>13}" for n, *_ in COLUMNS)
    sub = f"{'':>7} {'':>7} {'':>5} {'':>6}" + f"  {'model':>6} {'MFCC':>6}" * len(COLUMNS)
    return f"{top}  {'eval s':>6}\n{sub}"


def row(point: dict) -> str:
    m, b = point["units"]["model"], point["units"]["baseline"]
    codes = "-" if point["codes_used_window"] is None else f"{point['codes_used_window']:.0f}"
    loss = "-" if point["loss"] is None else f"{point['loss']:.3f}"
    line = f"{point['minutes']:7.2f} {point['step']:7d} {codes:>5} {loss:>6}"
    for _, key, scale, digits in COLUMNS:
        line += f"  {cell(m[key], scale, digits):>6} {cell(b[key], scale, digits):>6}"
    return f"{line}  {point['eval_seconds']:6.1f}"


def last_window(exp: Path) -> tuple[float | None, float | None]:
    """Codes used and mean total loss over the last TensorBoard logging window of the run."""
    scalars = read_scalars(exp / "tensorboard")

    def last(tag: str) -> float | None:
        return float(scalars[tag][1][-1]) if tag in scalars and len(scalars[tag][1]) else None

    return last("vq/codes_used_window"), last("loss/total")


def listener_summary(conversion: dict) -> str:
    """The summary's speaker-embedding and DNSMOS clauses, where they were measured ("" otherwise)."""
    text, emb, nat = "", conversion.get("speaker_embedding"), conversion.get("naturalness")
    if emb:
        text += (
            f"; by speaker embedding target {cell(emb['target_rate'], 100, 1)} %, source "
            f"{cell(emb['source_rate'], 100, 1)} % (cosine to target {cell(emb['target_similarity'], 1, 3)}, "
            f"real speech to its own {cell(emb['real_own_similarity'], 1, 3)}; accuracy on real speech "
            f"{cell(emb['accuracy'], 100, 1)} %)"
        )
    if nat:
        converted, real = nat.get("converted") or {}, nat.get("target_real") or nat.get("original") or {}
        which = "real target" if nat.get("target_real") else "real speech"
        text += (
            f"; DNSMOS OVRL {cell(converted.get('ovrl'), 1, 2)} vs {which} {cell(real.get('ovrl'), 1, 2)}, "
            f"P.808 {cell(converted.get('p808'), 1, 2)} vs {cell(real.get('p808'), 1, 2)}"
        )
    return text


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, metavar="DIR", help="prepared corpus folder with phones.tsv")
    parser.add_argument("--minutes", type=float, default=60.0, help="training wall time (default 60)")
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="train N steps instead of --minutes (points at i * N / --points): on a machine that other work "
        "shares, the steps a quiet one reaches in the minutes",
    )
    add_config_arguments(parser)
    parser.add_argument("--out", default="exp/learn", metavar="EXP", help="a new experiment folder (default exp/learn)")
    parser.add_argument("--points", type=int, default=4, help="training segments, each followed by a unit evaluation")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--conversion-sources", type=int, default=5, help="test sentences per source speaker")
    parser.add_argument("--max-seconds", type=float, default=4.0, help="crop conversion audio to this (default 4)")
    parser.add_argument(
        "--max-utterances", type=int, default=2000, help="per split, for the unit metrics (default 2000)"
    )
    parser.add_argument("--abx-context", choices=["within", "any"], default="within")
    parser.add_argument("--reconstructions", type=int, default=4, help="sources also resynthesised by their speaker")
    parser.add_argument("--wer", action="store_true", help="word error rates of the conversions (pocketsphinx)")
    parser.add_argument("--dnsmos", action="store_true", help="DNSMOS naturalness of the conversions (speechmos)")
    parser.add_argument(
        "--baseline-vocoder",
        action="store_true",
        help="also score the source-filter baseline (the mel decoder's frames through a pulse-plus-noise vocoder)",
    )
    parser.add_argument(
        "--speaker-embedding", action="store_true", help="the conversions' voices by speaker embeddings (resemblyzer)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.points < 1 or args.minutes <= 0:
        parser.error("--points must be at least 1 and --minutes positive")
    if args.steps is not None and args.steps < args.points:
        parser.error("--steps must be at least --points")
    return args


def main() -> int:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("tensorboard").setLevel(logging.WARNING)  # its event-file reader's chatter
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.wer:
        word_recognizer()  # a missing pocketsphinx fails now, not after the training
    listener_scorers(args.dnsmos, args.speaker_embedding)  # and so do the eval extra's packages
    started = time.perf_counter()
    cfg = config_from_args(args)
    data, exp = Path(args.data), Path(args.out)
    speakers = read_speakers(data / "speakers.txt")
    device = pick_device(cfg.train.device, 0)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"{data}: {len(speakers)} speakers; preset {args.preset}, "
        f"{f'{args.steps} steps' if args.steps else f'{args.minutes:g} minutes'} in {args.points} "
        f"segments, {device}, {cores} cores, {torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    report = {
        "argv": sys.argv[1:],
        "data": str(data),
        "out": str(exp),
        "minutes": None if args.steps else args.minutes,
        "steps": args.steps,
        "device": str(device),
        "cores": cores,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "config": to_dict(cfg),
        "points": [],
        "conversion": None,
        "phases": [],
    }

    def save() -> None:
        report["wall_seconds"] = time.perf_counter() - started
        atomic_write_text(exp / "learn.json", json.dumps(report, indent=2, default=float) + "\n")

    def phase(name: str, seconds: float) -> None:
        report["phases"].append({"phase": name, "seconds": seconds})

    segment, trained, inputs, model, baseline = 60 * args.minutes / args.points, 0.0, None, None, None
    for i in range(1, args.points + 1):
        t0 = time.perf_counter()
        # the limit keeps the points on schedule: a segment that ran over shortens the next one
        if args.steps:  # a step budget: the same run whatever else the machine is doing
            result = train(cfg, data, exp, resume=i > 1, stop_at=round(i * args.steps / args.points))
        else:
            result = train(cfg, data, exp, resume=i > 1, time_limit=max(0.0, i * segment - trained))
        seconds = time.perf_counter() - t0
        trained += seconds
        phase(f"train segment {i} (to step {result.step})", seconds)
        t0 = time.perf_counter()
        model = VQVAE.load(result.last_checkpoint, map_location=device)
        first = inputs is None
        if first:  # the same utterances at every point
            inputs = unit_inputs(model, data, max_utterances=args.max_utterances)
            K = model.quantizer.codebook_size
            baseline = fit_baseline(inputs[0], model.sample_rate, model.hop_length, K, seed=args.seed)
        units = evaluate_units(model, *inputs, abx_context=args.abx_context, seed=args.seed, baseline=baseline)
        if first:
            print(
                f"units: {units['n_eval_utterances']} test utterances ({units['eval_seconds'] / 60:.1f} min) scored; "
                f"phones mapped and k-means fitted on {units['n_train_utterances']} training utterances; "
                f"K = {units['codebook_size']}, ABX context {args.abx_context}; always the majority phone: "
                f"{cell(units['model']['majority_phone_accuracy'], 100, 1)} %"
            )
            print(header())
        codes, loss = last_window(exp)
        point = {
            "minutes": trained / 60,
            "step": result.step,
            "codes_used_window": codes,
            "loss": loss,
            "train_seconds": seconds,
            "eval_seconds": time.perf_counter() - t0,
            "units": units,
        }
        phase(f"units evaluation {i}", point["eval_seconds"])
        report["points"].append(point)
        print(row(point), flush=True)
        save()
        if result.step >= cfg.train.steps:
            print(f"reached train.steps = {cfg.train.steps}: training ends early (--set train.steps=N for more)")
            break

    test_rows = read_manifest(data / "test.jsonl")
    pairs = choose_pairs(test_rows, model.speakers, args.conversion_sources * len(speakers), len(speakers) - 1)
    conversion = run_conversion(
        model,
        data,
        pairs,
        max_seconds=args.max_seconds,
        reconstructions=args.reconstructions,
        seed=args.seed,
        wer=args.wer,
        dnsmos=args.dnsmos,
        speaker_embedding=args.speaker_embedding,
        baseline_vocoder=args.baseline_vocoder,
    )
    report["conversion"] = conversion
    generated = f"conversion: generation ({len(pairs)} + {min(args.reconstructions, len(pairs))} utterances)"
    phase(generated, conversion["wall_seconds"]["generation"])
    phase("conversion: metrics", conversion["wall_seconds"]["metrics"])
    print(f"conversion of the last checkpoint (step {model.checkpoint_step}), audio cropped to {args.max_seconds:g} s:")
    print(conversion_report(conversion))
    save()

    print("\nsummary")
    print(header())
    for point in report["points"]:
        print(row(point))
    print(LEGEND)
    spk, content, voicing = conversion["speaker"], conversion["content"], conversion.get("voicing") or {}
    print(
        f"conversion: target {cell(spk['target_rate'], 100, 1)} %, source {cell(spk['source_rate'], 100, 1)} % "
        f"(classifier on real speech {cell(spk['classifier_accuracy'], 100, 1)} %, "
        f"{cell(spk.get('classifier_accuracy_noisy'), 100, 1)} % at 10 dB SNR); MCD to target "
        f"{cell(content['mcd_target'], 1, 2)} dB vs source {cell(content['mcd_source_target'], 1, 2)} dB; "
        f"code agreement {cell(content['code_agreement'], 100, 1)} % (chance "
        f"{cell(content['code_agreement_chance'], 100, 1)} %); voiced frames "
        f"{cell(voicing.get('voiced_converted'), 100, 1)} % vs real target "
        f"{cell(voicing.get('voiced_target_real'), 100, 1)} %"
        + (
            f"; WER converted {cell(content['wer_converted'], 100, 1)} % vs real target "
            f"{cell(content['wer_target_real'], 100, 1)} %"
            if content.get("n_wer")
            else ""
        )
        + listener_summary(conversion)
    )
    for p in report["phases"]:
        print(f"  {p['phase']:<48} {p['seconds']:8.1f} s")
    save()
    print(f"  {'total':<48} {report['wall_seconds']:8.1f} s\nwrote {exp / 'learn.json'}")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except AudioVQVAEError as e:  # a user's mistake in one line (AUDIO_VQVAE_DEBUG=1: with its traceback)
        if debug_requested():
            traceback.print_exc()
        print(f"bench/learn.py: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
