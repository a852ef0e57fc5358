"""Recipe helpers: conversion pair lists, and the demo's report (markdown and HTML) with PNG pictures.

Command line (used by recipes/*/run.sh):

    python -m audio_vqvae.evaluation.report pairs --manifest DATA/test.jsonl --out PAIRS.txt [--eval-out IDS.txt]
    python -m audio_vqvae.evaluation.report write --out EXP/report.md --data DATA --tensorboard EXP/model/tensorboard
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from audio_vqvae.data.manifest import SPLITS, Utterance, read_manifest, read_speakers
from audio_vqvae.data.pairs import choose_pairs
from audio_vqvae.errors import AudioVQVAEError, ManifestError
from audio_vqvae.evaluation.report_doc import (
    Audio,
    Block,
    Bullets,
    Code,
    Heading,
    Image,
    Paragraph,
    Strong,
    Table,
    Text,
    to_html,
    to_markdown,
)
from audio_vqvae.evaluation.tables import number, percent, unit_rows
from audio_vqvae.fileio import atomic_write, atomic_write_text

SYNTHETIC_NOTE = (
    Strong("The corpus is SYNTHETIC"),
    ": formant-synthesised speech-like audio from ",
    Code("audio-vqvae prepare synthetic"),
    ", not real speech. The figures below show that the pipeline works end to end; they say nothing "
    "about quality on real speech.",
)


# -- pairs ---------------------------------------------------------------------------------------


def write_pairs(
    manifest: Path, out: Path, eval_out: Path | None, n_sources: int, n_targets: int
) -> list[tuple[Utterance, str]]:
    """Write ``source_path<TAB>target`` lines (for ``convert --pairs``) and ``id target`` lines (for
    ``evaluate conversion --pairs``)."""
    rows = read_manifest(manifest)
    if not rows:
        raise ManifestError(f"{manifest}: no utterances to convert")
    speakers_file = manifest.parent / "speakers.txt"
    speakers = read_speakers(speakers_file) if speakers_file.is_file() else sorted({r.speaker for r in rows})
    pairs = choose_pairs(rows, speakers, n_sources, n_targets)
    if not pairs:
        raise ManifestError(f"{manifest}: need at least two speakers to convert between")
    atomic_write_text(out, "".join(f"{Path(r.path).resolve()}\t{t}\n" for r, t in pairs))
    if eval_out is not None:
        atomic_write_text(eval_out, "".join(f"{r.id} {t}\n" for r, t in pairs))
    return pairs


# -- pictures ------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def log_spectrogram(wav: np.ndarray, n_fft: int = 512, hop: int = 128) -> np.ndarray:
    """(F, M) log-magnitude spectrogram in dB, Hann window."""
    if wav.size < n_fft:
        wav = np.pad(wav, (0, n_fft - wav.size))
    n = 1 + (wav.size - n_fft) // hop
    frames = np.stack([wav[i * hop : i * hop + n_fft] for i in range(n)])  # (M, n_fft)
    mag = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1)).T  # (F, M)
    return 20 * np.log10(np.maximum(mag, 1e-5))


def plot_spectrograms(panels: Sequence[tuple[str, Path]], out: Path) -> Path:
    """One spectrogram per (title, wav path), stacked."""
    import soundfile as sf

    plt = _pyplot()
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.2 * len(panels)), squeeze=False)
    for ax, (title, path) in zip(axes[:, 0], panels, strict=True):
        wav, sr = sf.read(path, dtype="float32", always_2d=True)
        spec = log_spectrogram(wav.mean(axis=1))
        extent = (0, wav.shape[0] / sr, 0, sr / 2000)
        ax.imshow(spec, origin="lower", aspect="auto", extent=extent, cmap="magma", vmin=spec.max() - 80)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("kHz")
    axes[-1, 0].set_xlabel("seconds")
    fig.tight_layout()
    atomic_write(out, lambda f: fig.savefig(f, format="png", dpi=90))
    plt.close(fig)
    return out


def plot_code_usage(counts: Counter, codebook_size: int, out: Path) -> Path:
    """Frames per code, codes sorted by use (a flat histogram means an evenly used codebook)."""
    plt = _pyplot()
    values = np.array(sorted((counts.get(k, 0) for k in range(codebook_size)), reverse=True), dtype=float)
    total = max(values.sum(), 1.0)
    fig, ax = plt.subplots(figsize=(8, 2.8))
    ax.bar(np.arange(codebook_size), 100 * values / total, width=1.0, color="tab:blue")
    used = int((values > 0).sum())
    ax.set_title(f"code usage on held-out audio: {used} of {codebook_size} codes used", fontsize=9)
    ax.set_xlabel("codes, most used first")
    ax.set_ylabel("% of frames")
    fig.tight_layout()
    atomic_write(out, lambda f: fig.savefig(f, format="png", dpi=90))
    plt.close(fig)
    return out


def read_scalars(logdir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """TensorBoard scalars: tag -> (steps, values)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    acc.Reload()
    out = {}
    for tag in acc.Tags().get("scalars", []):
        events = acc.Scalars(tag)
        out[tag] = (np.array([e.step for e in events]), np.array([e.value for e in events]))
    return out


def plot_training(scalars: dict[str, tuple[np.ndarray, np.ndarray]], out: Path) -> Path:
    """Losses (train, validation) and codebook use against steps."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3))
    for tag, label in (("loss/reconstruction", "train reconstruction"), ("valid/loss", "validation")):
        if tag in scalars:
            left.plot(*scalars[tag], marker="." if scalars[tag][0].size < 20 else None, label=label)
    left.set_xlabel("step")
    left.set_ylabel("cross-entropy (nats)")
    left.legend(fontsize=8)
    left.set_title("loss", fontsize=9)
    for tag, label in (("vq/codes_used_window", "codes used"), ("vq/perplexity_window", "perplexity")):
        if tag in scalars:
            right.plot(*scalars[tag], label=label)
    right.set_xlabel("step")
    right.set_title("codebook use, per logging window", fontsize=9)
    if right.lines:  # no codebook scalars logged: no legend (matplotlib warns about an empty one)
        right.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(out, lambda f: fig.savefig(f, format="png", dpi=90))
    plt.close(fig)
    return out


# -- report --------------------------------------------------------------------------------------


def units_table(metrics: dict) -> list[Block]:
    """The model beside the MFCC k-means baseline, one row per unit metric (``tables.UNIT_ROWS``)."""
    rows = tuple(tuple(r) for r in unit_rows(metrics))
    note = (
        f"{metrics.get('n_eval_utterances')} held-out utterances ({number(metrics.get('eval_seconds'), 1)} s), "
        f"K = {metrics.get('codebook_size')}, frame rate {number(metrics.get('frame_rate_hz'), 0)} Hz; "
        f"ABX with {metrics.get('abx_context')} context; baseline: {metrics.get('baseline_description')}."
    )
    return [Table(("metric", "model", "MFCC k-means baseline"), rows, "lrr"), Paragraph(note)]


def conversion_table(metrics: dict) -> list[Block]:
    spk, content = metrics.get("speaker", {}), metrics.get("content", {})
    rec, voicing = metrics.get("reconstruction") or {}, metrics.get("voicing") or {}
    rows = (
        ("speaker classifier accuracy on real held-out speech (%)", percent(spk.get("classifier_accuracy"))),
        ("the same with white noise at 10 dB SNR (%)", percent(spk.get("classifier_accuracy_noisy"))),
        ("conversions classified as the target speaker (%)", percent(spk.get("target_rate"))),
        ("conversions classified as the source speaker (%)", percent(spk.get("source_rate"))),
        (
            "code agreement, source vs conversion (%)",
            f"{percent(content.get('code_agreement'))} (chance {percent(content.get('code_agreement_chance'))})",
        ),
        ("MCD to the target's parallel reading (dB)", number(content.get("mcd_target"), 2)),
        ("MCD source vs target reading, for scale (dB)", number(content.get("mcd_source_target"), 2)),
        (
            "voiced frames, conversions (%)",
            f"{percent(voicing.get('voiced_converted'))} (real target readings "
            f"{percent(voicing.get('voiced_target_real'))})",
        ),
        ("reconstruction MCD (dB)", number(rec.get("mcd"), 2)),
        ("reconstruction log-mel distance (dB)", number(rec.get("log_mel_distance_db"), 2)),
    )
    rows += tuple(listener_rows(metrics))
    return [Table(("metric", "value"), rows, "lr"), Paragraph(f"{metrics.get('n_pairs')} conversion pairs.")]


def listener_rows(metrics: dict) -> list[tuple[str, str]]:
    """The conversion table's speaker-embedding and DNSMOS rows, where the metrics JSON has them."""
    rows = []
    emb = metrics.get("speaker_embedding")
    if emb:
        rows += [
            ("speaker embedding: nearest-centroid accuracy on real held-out speech (%)", percent(emb.get("accuracy"))),
            ("speaker embedding: conversions nearest the target speaker (%)", percent(emb.get("target_rate"))),
            ("speaker embedding: conversions nearest the source speaker (%)", percent(emb.get("source_rate"))),
            (
                "speaker embedding: cosine to the target's centroid",
                f"{number(emb.get('target_similarity'))} (source's {number(emb.get('source_similarity'))}; "
                f"real speech to its own {number(emb.get('real_own_similarity'))})",
            ),
        ]
    nat = metrics.get("naturalness") or {}
    for key, label in DNSMOS_ROWS:
        g = nat.get(key)
        if g:
            scores = f"{number(g.get('ovrl'), 2)} ({number(g.get('p808'), 2)}; {number(g.get('sig'), 2)}, "
            rows.append((f"DNSMOS OVRL, {label} (P.808; SIG, BAK)", f"{scores}{number(g.get('bak'), 2)})"))
    return rows


DNSMOS_ROWS = (  # (key of the naturalness group, label)
    ("converted", "conversions"),
    ("resynthesis", "resyntheses"),
    ("original", "resynthesised originals"),
    ("target_real", "real target readings"),
)


def _all_rows(data: Path) -> list[Utterance]:
    paths = [data / f"{split}.jsonl" for split in SPLITS]
    return [r for path in paths if path.is_file() for r in read_manifest(path)]


def _training(tensorboard: Path, figures: Path) -> list[Block]:
    scalars = read_scalars(tensorboard)
    if not scalars:
        return []
    blocks: list[Block] = [
        Heading("Training"),
        Image("training curves", plot_training(scalars, figures / "training.png")),
    ]
    changes = []
    for tag in ("loss/reconstruction", "valid/loss", "vq/codes_used_window"):
        if tag in scalars and scalars[tag][1].size:
            steps, values = scalars[tag]
            changes.append((Code(tag), f": {values[0]:.3f} at step {steps[0]} -> {values[-1]:.3f} at step {steps[-1]}"))
    return blocks + ([Bullets(tuple(changes))] if changes else [])


def _code_usage(tokens: Path, figures: Path, folder: Path) -> list[Block]:
    from audio_vqvae.inference.tokens import read_metadata, read_tokens

    codes = read_tokens(tokens / "units.txt")
    meta = read_metadata(tokens) or {}
    counts = Counter(int(c) for _, frames in codes for c in frames.tolist())
    size = int(meta.get("codebook_size") or (max(counts) + 1))
    picture = plot_code_usage(counts, size, figures / "code_usage.png")
    where = Code(os.path.relpath(tokens.resolve(), folder.resolve()))
    return [Image("code usage", picture), Paragraph(("Tokens: ", where, f" ({len(codes)} utterances)."))]


def _converted(data: Path, converted: Path, pairs: Path, figures: Path) -> list[Block]:
    """A table of every conversion (source, target speaker, output, the target's own reading) and the
    spectrograms of the first pair whose output exists."""
    from audio_vqvae.inference.jobs import read_pairs  # the names `audio-vqvae convert --pairs` wrote

    rows = _all_rows(data)
    by_path = {Path(r.path).resolve(): r for r in rows}
    table, picture = [], None
    for job in read_pairs(pairs, converted):
        source, target, out_wav = job.source, job.speaker, job.output
        src_row = by_path.get(source.resolve())
        reading = None
        if src_row is not None and src_row.text:
            same = [r for r in rows if r.speaker == target and r.text == src_row.text]
            reading = Path(same[0].path) if same else None
        cells: tuple[Text, ...] = (
            Audio(source) if source.is_file() else (Code(source.name), " (missing)"),
            target,
            Audio(out_wav) if out_wav.is_file() else (Code(out_wav.name), " (missing)"),
            Audio(reading) if reading is not None and reading.is_file() else "-",
        )
        table.append(cells)
        if picture is None and out_wav.is_file():
            src_name = src_row.speaker if src_row else "source"
            panels = [(f"source ({src_name}): {source.name}", source), (f"converted to {target}", out_wav)]
            if reading is not None:
                panels.append((f"target speaker {target} reading the same sentence: {reading.name}", reading))
            picture = plot_spectrograms(panels, figures / "spectrograms.png")
    header = ("source", "target speaker", "converted", "target's own reading")
    blocks: list[Block] = [Paragraph("Converted audio:"), Table(header, tuple(table))]
    if picture is not None:
        blocks += [Paragraph("Spectrograms of the first pair:"), Image("spectrograms", picture)]
    return blocks


def prior_section(metrics: dict, samples: Path | None, figures: Path) -> list[Block]:
    """The prior's bits per code beside its baselines, its samples read as phones and classified by voice,
    the samples to play (``audio-vqvae sample``'s folder) and the spectrogram of the first."""
    bits, phones, voices = metrics.get("bits", {}), metrics.get("phone_likeness") or {}, metrics.get("voices") or {}
    rows: list[tuple[Text, ...]] = [
        (
            "held-out bits per code: prior / bigram / unigram",
            " / ".join(number(bits.get(f"{k}_bits_per_code"), 3) for k in ("prior", "bigram", "unigram")),
        )
    ]
    if phones:
        rows.append(
            (
                "codes read as phones, bits per frame under a real phone bigram: samples / real / unigram draws",
                " / ".join(number(phones[k]["bits_per_frame"], 2) for k in ("samples", "real", "unigram_draws")),
            )
        )
    if voices:
        rows.append(("samples classified as the requested speaker (%)", percent(voices.get("speaker_agreement"))))
    if "sampling_codes_per_second" in metrics:
        rows.append(("sampling speed (codes/s)", number(metrics["sampling_codes_per_second"], 0)))
    blocks: list[Block] = [Heading("Samples from the prior"), Table(("metric", "value"), tuple(rows), "lr")]
    wavs = sorted(Path(samples).glob("*.wav")) if samples is not None and Path(samples).is_dir() else []
    if wavs:
        blocks += [
            Paragraph("Samples (codes drawn from the prior, decoded by the VQ-VAE):"),
            Table(("sample", "audio"), tuple((w.stem, Audio(w)) for w in wavs)),
            Image(
                "spectrogram of a sample", plot_spectrograms([(wavs[0].name, wavs[0])], figures / "prior_sample.png")
            ),
        ]
    return blocks


def write_report(
    out: Path,
    *,
    data: Path,
    tensorboard: Path | None = None,
    units_json: Path | None = None,
    conversion_json: Path | None = None,
    tokens: Path | None = None,
    converted: Path | None = None,
    pairs: Path | None = None,
    prior_json: Path | None = None,
    samples: Path | None = None,
    title: str = "audio_vqvae demo report",
    synthetic: bool = False,
) -> Path:
    """Write ``out`` (markdown), the same report as HTML beside it (``.html``, audio playable in the
    page) and their PNG pictures; parts whose inputs are missing are skipped.

    Every link is relative to the report's folder, so the report still works after the folder,
    with the corpus and outputs it points to, is moved or copied elsewhere.

    Args:
        out: the report path, e.g. ``EXP/report.md``; pictures go to ``EXP/figures/``.
        data: the prepared corpus (manifests), to find each target speaker's reading of the source sentence.
        tensorboard: the training run's TensorBoard folder (training curves).
        units_json, conversion_json: outputs of ``audio-vqvae evaluate units|conversion --out``.
        tokens: an ``audio-vqvae encode`` folder holding units.txt (code usage histogram).
        converted, pairs: the ``audio-vqvae convert --pairs`` output folder and its pairs file.
        prior_json, samples: ``audio-vqvae evaluate prior --out`` and an ``audio-vqvae sample`` folder.
        synthetic: say plainly that the corpus is synthetic.
    Returns:
        The markdown report's path.
    """
    out = Path(out)
    folder = out.parent
    figures = folder / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    blocks: list[Block] = [Paragraph(SYNTHETIC_NOTE)] if synthetic else []
    blocks.append(Paragraph(("Corpus: ", Code(os.path.relpath(Path(data).resolve(), folder.resolve())), ".")))
    if tensorboard is not None and Path(tensorboard).is_dir():
        blocks += _training(Path(tensorboard), figures)
    if units_json is not None and Path(units_json).is_file():
        metrics = json.loads(Path(units_json).read_text(encoding="utf-8"))
        blocks += [Heading("Units (held-out test split)"), *units_table(metrics)]
    if tokens is not None and (Path(tokens) / "units.txt").is_file():
        blocks += _code_usage(Path(tokens), figures, folder)
    if conversion_json is not None and Path(conversion_json).is_file():
        metrics = json.loads(Path(conversion_json).read_text(encoding="utf-8"))
        blocks += [Heading("Voice conversion"), *conversion_table(metrics)]
    if pairs is not None and converted is not None and Path(pairs).is_file():
        blocks += _converted(Path(data), Path(converted), Path(pairs), figures)
    if prior_json is not None and Path(prior_json).is_file():
        blocks += prior_section(json.loads(Path(prior_json).read_text(encoding="utf-8")), samples, figures)
    atomic_write_text(out.with_suffix(".html"), to_html(title, blocks, folder))
    return atomic_write_text(out, to_markdown(title, blocks, folder))


# -- command line --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m audio_vqvae.evaluation.report", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pairs", help="choose held-out conversion pairs from a manifest")
    p.add_argument("--manifest", type=Path, required=True, help="e.g. DATA/test.jsonl (speakers.txt beside it)")
    p.add_argument("--out", type=Path, required=True, help="pairs for `audio-vqvae convert --pairs`")
    p.add_argument("--eval-out", type=Path, help="pairs for `audio-vqvae evaluate conversion --pairs`")
    p.add_argument("--n-sources", type=int, default=4)
    p.add_argument("--n-targets", type=int, default=1, help="target speakers per source")
    w = sub.add_parser("write", help="write the report (markdown, and HTML beside it) and its pictures")
    w.add_argument("--out", type=Path, required=True, help="report path, e.g. EXP/report.md (and EXP/report.html)")
    w.add_argument("--data", type=Path, required=True, help="prepared corpus folder")
    w.add_argument("--tensorboard", type=Path)
    w.add_argument("--units-json", type=Path)
    w.add_argument("--conversion-json", type=Path)
    w.add_argument("--tokens", type=Path, help="`audio-vqvae encode` output folder")
    w.add_argument("--converted", type=Path, help="`audio-vqvae convert` output folder")
    w.add_argument("--pairs", type=Path, help="the pairs file given to convert")
    w.add_argument("--prior-json", type=Path, help="`audio-vqvae evaluate prior --out` report")
    w.add_argument("--samples", type=Path, help="`audio-vqvae sample` output folder")
    w.add_argument("--title", default="audio_vqvae demo report")
    w.add_argument("--synthetic", action="store_true", help="say that the corpus is synthetic")
    args = parser.parse_args(argv)
    try:
        if args.command == "pairs":
            pairs = write_pairs(args.manifest, args.out, args.eval_out, args.n_sources, args.n_targets)
            print(f"wrote {len(pairs)} pairs to {args.out}")
        else:
            kwargs = {k: v for k, v in vars(args).items() if k not in ("command", "out")}
            print(f"wrote {write_report(args.out, **kwargs)}")
    except (OSError, AudioVQVAEError) as e:  # anything else is a bug and keeps its traceback
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
