"""``audio-vqvae evaluate units|conversion``: load a prepared corpus folder, run ``evaluate``, write JSON."""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import time
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm import tqdm

from ..data.alignment import PhoneSegment, read_phone_table, read_textgrid
from ..data.audio import load_audio
from ..data.manifest import SPLITS, Utterance, read_manifest
from ..data.pairs import pair_fields, spread
from ..data.prepare import normalize_text
from ..errors import InputNotFoundError, ManifestError, UsageError
from ..evaluation.baseline_vocoder import SourceFilterBaseline
from ..evaluation.baseline_vocoder import definition as baseline_definition
from ..evaluation.evaluate import (
    ConversionPair,
    Item,
    evaluate_conversion,
    evaluate_units,
    format_conversion_report,
    format_units_report,
)
from ..evaluation.metrics.dnsmos import DNSMOS
from ..evaluation.metrics.speaker_embedding import SpeakerEncoder
from ..fileio import atomic_write_text
from ..inference.envelope import check_envelope
from ..inference.jobs import RealTimeBar
from ..models.vqvae import VQVAE
from .argtypes import (
    envelope_strength,
    finite_positive,
    finite_temperature,
    non_negative_int,
    positive_int,
    utterance_count,
)
from .common import ENVELOPE_HELP, add_envelope_argument


def split_rows(data_dir: Path, split: str, limit: int | None = None) -> list[Utterance]:
    """Rows of ``DIR/<split>.jsonl``, at most ``limit`` spread over the speakers."""
    rows = read_manifest(data_dir / f"{split}.jsonl")
    if not rows:
        raise ManifestError(f"{data_dir / f'{split}.jsonl'}: no utterances")
    return spread(rows, limit)


def read_alignments(path: Path, ids: set[str]) -> dict[str, list[PhoneSegment]]:
    """A phone table file, or a folder of ``<id>.TextGrid`` files (searched recursively)."""
    if path.is_dir():
        found = {p.stem: p for p in path.rglob("*.TextGrid") if p.stem in ids}
        return {uid: read_textgrid(p) for uid, p in found.items()}
    if not path.is_file():
        raise InputNotFoundError(f"{path}: alignments not found (a phone table file or a folder of TextGrids)")
    return {k: v for k, v in read_phone_table(path).items() if k in ids}


def items(
    rows: list[Utterance], model: VQVAE, max_seconds: float | None = None, desc: str | None = None
) -> list[tuple[str, torch.Tensor, str]]:
    """(id, (T,) waveform at the model rate, speaker) for each row, cropped to ``max_seconds``.

    ``desc`` names a progress bar over the files (tqdm, off when stderr is not a terminal); None: no bar.
    """
    out = []
    for row in tqdm(rows, unit="file", desc=desc, disable=None if desc else True):
        wav = load_audio(row.path, model.sample_rate, min_samples=model.hop_length)
        if max_seconds:
            wav = wav[: int(max_seconds * model.sample_rate)]
        out.append((row.id, wav, row.speaker))
    return out


def unit_inputs(
    model: VQVAE,
    data_dir: str | Path,
    *,
    train_split: str = "train",
    eval_split: str = "test",
    max_utterances: int | None = 2000,
    alignments: str | Path | None = None,
) -> tuple[list[Item], list[Item], dict[str, list[PhoneSegment]]]:
    """``evaluate_units``' inputs from a prepared corpus folder, as ``evaluate units`` loads them.

    Args:
        model: gives the sample rate (audio is loaded at it) and the shortest utterance (one hop).
        data_dir: prepared corpus folder (``<split>.jsonl``, and ``phones.tsv`` unless ``alignments``).
        train_split, eval_split: the split that fits the phone mapping and k-means, and the scored one.
        max_utterances: per split, the manifest's first rows taken round robin over the speakers
            (``spread``: deterministic, every speaker in); None for all.
        alignments: a phone table or a folder of TextGrids (default ``data_dir/phones.tsv``).
    Returns:
        (training items, held-out items, alignments of their utterances).
    Raises:
        ManifestError: an empty split, or no alignment for any of the chosen utterances.
    """
    data = Path(data_dir)
    table = Path(alignments or data / "phones.tsv")
    train_rows = split_rows(data, train_split, max_utterances)
    eval_rows = split_rows(data, eval_split, max_utterances)
    aligned = read_alignments(table, {r.id for r in train_rows + eval_rows})
    if not aligned:
        raise ManifestError(f"{table}: no alignment for any evaluated utterance")
    return (
        items(train_rows, model, desc=f"load {train_split}"),
        items(eval_rows, model, desc=f"load {eval_split}"),
        aligned,
    )


def cmd_units(args: argparse.Namespace) -> int:
    model = VQVAE.load(args.ckpt, map_location=args.device)
    train_items, eval_items, alignments = unit_inputs(
        model,
        args.data,
        train_split=args.train_split,
        eval_split=args.eval_split,
        max_utterances=args.max_utterances,
        alignments=args.alignments,
    )
    result = evaluate_units(
        model,
        train_items,
        eval_items,
        alignments,
        exclude_silence=args.exclude_silence,
        abx_context=args.abx_context,
        abx_span=args.abx_items,
        abx_representation=args.abx_representation,
        seed=args.seed,
        save_baseline=args.save_baseline,
    )
    result["checkpoint"] = str(args.ckpt)
    return write_report(result, format_units_report(result), args.out)


def conversion_pairs(
    rows: list[Utterance], speakers: list[str], n_sources: int, targets: list[str] | None, seed: int
) -> list[tuple[Utterance, str]]:
    """(source row, target speaker) pairs: ``n_sources`` sources over the speakers, each converted to
    every target speaker (default: 2 other speakers drawn per source), never to its own speaker."""
    rng = random.Random(seed)
    sources = spread(rows, n_sources)
    pairs = []
    for row in sources:
        candidates = [s for s in (targets or speakers) if s != row.speaker]
        chosen = candidates if targets else rng.sample(candidates, min(2, len(candidates)))
        pairs += [(row, t) for t in chosen]
    return pairs


def read_pair_file(path: Path, rows: dict[str, Utterance]) -> list[tuple[Utterance, str]]:
    """Lines ``source_id target_speaker``; ids are utterance ids of the corpus manifests."""
    pairs = []
    for lineno, _, parts in pair_fields(path):
        if len(parts) < 2 or not all(parts) or parts[0] not in rows:
            raise ManifestError(f"{path}:{lineno}: expected 'utterance_id target_speaker' with an id of the corpus")
        pairs.append((rows[parts[0]], parts[1]))
    return pairs


def corpus_rows(data_dir: str | Path) -> dict[str, Utterance]:
    """Every row of the corpus folder's manifests (train, valid, test), by utterance id."""
    data = Path(data_dir)
    manifests = [data / f"{split}.jsonl" for split in SPLITS if (data / f"{split}.jsonl").is_file()]
    return {r.id: r for m in manifests for r in read_manifest(m)}


def run_conversion(
    model: VQVAE,
    data_dir: str | Path,
    pairs: list[tuple[Utterance, str]],
    *,
    max_seconds: float | None = 6.0,
    real_split: str = "train",
    real_per_speaker: int = 6,
    reconstructions: int = 4,
    batch_size: int = 16,
    temperature: float = 1.0,
    envelope: float = 0.0,
    seed: int = 0,
    wer: bool = False,
    dnsmos: bool = False,
    speaker_embedding: bool = False,
    baseline_vocoder: bool = False,
    converter: Callable[..., list[torch.Tensor]] | None = None,
) -> dict:
    """Convert each (source row, target speaker) pair and score it with ``evaluate_conversion``,
    as ``evaluate conversion`` does.

    ``converter(model, wavs, speakers, **options)`` makes the conversions and resyntheses (default
    ``convert_all``: the model's WaveNet; ``bench/lpc_vocoder.py`` passes another vocoder).

    The parallel target of a pair is the target speaker's reading of the source's text, found in
    any of the folder's manifests (normalised text); the speaker classifier learns from
    ``real_per_speaker`` rows per speaker of ``real_split``; the first ``reconstructions`` sources
    are also resynthesised with their own speaker. Every waveform is cropped to ``max_seconds``;
    with ``wer``, pairs whose source or parallel target is longer than that are left out of the
    word error rates (a cropped reading lacks words of its text). ``dnsmos`` and ``speaker_embedding``
    turn on DNSMOS and the speaker-embedding metrics (``listener_scorers``). ``baseline_vocoder`` also
    converts the same sources with ``evaluation.baseline_vocoder.SourceFilterBaseline`` (the target
    speakers' f0 ranges from the same real speech the speaker classifier learns from) and scores them
    the same way, under ``baseline_vocoder``.

    Returns:
        ``evaluate_conversion``'s dict, plus ``wall_seconds``: ``generation`` (conversions and
        reconstructions) and ``metrics``, and ``notes``: lines for the report (a metric not asked for
        whose packages are not installed either).
    Raises:
        SpeakerError: an unknown target speaker.
        UsageError: ``wer`` without pocketsphinx.
        MissingPackageError: ``dnsmos`` or ``speaker_embedding`` without their packages.
        ManifestError: ``wer`` and no pair has a text and short enough audio.
    """
    data = Path(data_dir)
    check_envelope(model, envelope)
    recognizer = word_recognizer() if wer else None
    scorer, encoder, notes = listener_scorers(dnsmos, speaker_embedding)
    for _, target in pairs:
        model.speaker_ids([target], 1)  # unknown names fail here, listing the known ones
    # A parallel target: the target speaker's reading of the same text, where the corpus has one.
    by_text = {(r.speaker, normalize_text(r.text)): r for r in corpus_rows(data).values() if r.text}
    parallels = [by_text.get((target, normalize_text(row.text))) if row.text else None for row, target in pairs]
    # WER only where no audio is cropped: a cropped reading lacks words of its text.
    texts = [
        row.text if not max_seconds or all(r.duration <= max_seconds for r in (row, par) if r) else None
        for (row, _), par in zip(pairs, parallels)
    ]
    if wer and not any(texts):
        raise ManifestError(
            f"--wer: none of the {len(pairs)} source utterances has a 'text' in the manifests "
            f"and audio (its own and the parallel target's) no longer than --max-seconds {max_seconds}"
        )
    start = time.perf_counter()
    sources = items([row for row, _ in pairs], model, max_seconds, desc="load sources")
    recon_sources = sources[:reconstructions]
    hop = model.hop_length
    # one bar over all generation, as convert's: seconds of audio and the real-time factor
    bar = RealTimeBar(sum(w.numel() // hop * hop for _, w, _ in sources + recon_sources), model.sample_rate, "generate")
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    options = {"batch_size": batch_size, "temperature": temperature, "generator": generator, "progress": bar}
    if envelope:  # an option of the default converter's only
        options["envelope"] = envelope
    converter = converter or convert_all
    try:
        converted = converter(model, [w for _, w, _ in sources], [t for _, t in pairs], **options)
        recon = converter(model, [w for _, w, _ in recon_sources], [s for _, _, s in recon_sources], **options)
    finally:
        bar.close()
    generated = time.perf_counter()
    conv_pairs = []
    for (row, target), (_, wav, _), out, parallel in zip(pairs, sources, converted, parallels):
        target_wav = items([parallel], model, max_seconds)[0][1] if parallel else None
        conv_pairs.append(ConversionPair(out, wav, row.speaker, target, target_wav))
    real_rows = split_rows(data, real_split, real_per_speaker * max(1, len(model.speakers)))
    real = items(real_rows, model, max_seconds, desc="load real speech")
    result = evaluate_conversion(
        model,
        conv_pairs,
        real,
        reconstructions=list(zip([w for _, w, _ in recon_sources], recon)),
        seed=seed,
        texts=texts if wer else None,
        recognizer=recognizer,
        dnsmos=scorer,
        speaker_encoder=encoder,
    )
    result["notes"] = notes
    result["wall_seconds"] = {"generation": generated - start, "metrics": time.perf_counter() - generated}
    result["envelope"] = envelope
    if baseline_vocoder:
        by_speaker: dict[str, list[torch.Tensor]] = {}
        for _, wav, speaker in real:
            by_speaker.setdefault(str(speaker), []).append(wav)
        vocoded = SourceFilterBaseline(by_speaker, seed)(model, [w for _, w, _ in sources], [t for _, t in pairs])
        baseline_pairs = [p._replace(converted=w) for p, w in zip(conv_pairs, vocoded)]
        baseline = evaluate_conversion(model, baseline_pairs, real, seed=seed, texts=texts if wer else None,
                                       recognizer=recognizer, dnsmos=scorer, speaker_encoder=encoder)  # fmt: skip
        baseline.pop("pairs")
        result["baseline_vocoder"] = {"definition": baseline_definition(model), **baseline}
    return result


def cmd_conversion(args: argparse.Namespace) -> int:
    data = Path(args.data)
    model = VQVAE.load(args.ckpt, map_location=args.device)
    if args.pairs:
        pairs = read_pair_file(Path(args.pairs), corpus_rows(data))
    else:
        targets = args.targets.split(",") if args.targets else None
        pairs = conversion_pairs(split_rows(data, args.split), model.speakers, args.n_sources, targets, args.seed)
    result = run_conversion(
        model,
        data,
        pairs,
        max_seconds=args.max_seconds,
        real_split=args.real_split,
        real_per_speaker=args.real_per_speaker,
        reconstructions=args.reconstructions,
        batch_size=args.batch_size,
        temperature=args.temperature,
        envelope=args.envelope,
        seed=args.seed,
        wer=args.wer,
        dnsmos=args.dnsmos,
        speaker_embedding=args.speaker_embedding,
        baseline_vocoder=args.baseline_vocoder,
    )
    result["checkpoint"] = str(args.ckpt)
    return write_report(result, conversion_report(result), args.out)


def conversion_report(result: dict) -> str:
    """``format_conversion_report`` of the model's conversions, then of the source-filter baseline's if run."""
    text = format_conversion_report(result)
    if result.get("baseline_vocoder"):
        baseline = result["baseline_vocoder"]
        text += f"\nsource-filter baseline ({baseline['definition']}):\n" + format_conversion_report(baseline)
    return text


def cmd_prior(args: argparse.Namespace) -> int:
    from ..data.alignment import frame_labels
    from ..evaluation.metrics.speaker import train_speaker_classifier
    from ..evaluation.prior import code_bits, draw_samples, format_prior_report, sample_voices, samples_phone_likeness
    from ..inference.sampling import SampleOptions, check_pair
    from ..models.prior import CodePrior
    from ..training.prior import corpus_speakers, read_code_rows, speaker_ids_of

    prior = CodePrior.load(args.prior, map_location=args.device)
    train_rows, _, _ = read_code_rows(args.tokens, prior.codebook_size)
    test_rows, meta, source = read_code_rows(args.test_tokens, prior.codebook_size)
    if (prior.speakers or args.vqvae) and not args.data:
        raise UsageError(
            "--data is needed: the test utterances' speakers (a conditioned prior), or real speech (--vqvae)"
        )
    test_speakers = None
    if prior.speakers:
        _, by_id = corpus_speakers(args.data)
        test_speakers = speaker_ids_of(test_rows, prior.speakers, by_id, source)
    frame_rate = float(meta.get("frame_rate") or prior.tokens.get("frame_rate") or 0)
    train_codes, test_codes = [c for _, c in train_rows], [c for _, c in test_rows]
    result: dict = {"prior": str(args.prior), "tokens": str(args.tokens), "test_tokens": str(args.test_tokens)}
    result["bits"] = code_bits(prior, train_codes, test_codes, test_speakers, frame_rate)
    if not args.data:
        return write_report(result, format_prior_report(result), args.out)
    data = Path(args.data)
    voices: list = prior.speakers or [None]
    if args.vqvae:
        vqvae = VQVAE.load(args.vqvae, map_location=args.device)
        check_pair(prior, vqvae)
        real = items(split_rows(data, "train", args.real_per_speaker * max(1, len(vqvae.speakers))), vqvae)
        clf, info = train_speaker_classifier([w for _, w, _ in real], [s for _, _, s in real], vqvae.sample_rate)
        voices = [s for s in prior.speakers or vqvae.speakers if s in vqvae.speakers and s in clf.speakers]
    options = SampleOptions(temperature=args.temperature, seed=args.seed, envelope=args.envelope)
    n_codes = prior.max_len if args.seconds is None else max(1, round(args.seconds * frame_rate))
    if n_codes > prior.max_len:
        raise UsageError(f"--seconds {args.seconds}: the prior's context is {prior.max_len / frame_rate:.2f} s")
    samples, requested, speed = draw_samples(prior, voices, args.samples_per_speaker, n_codes, options)
    result["sampling_codes_per_second"] = speed
    table = Path(args.alignments) if args.alignments else data / "phones.tsv"
    if table.exists():
        aligned = read_alignments(table, {uid for uid, _ in train_rows})
        mapped = [(c, frame_labels(aligned[uid], c.numel(), frame_rate)) for uid, c in train_rows if uid in aligned]
        if mapped:
            result["phone_likeness"] = samples_phone_likeness(
                [c for c, _ in mapped], [lab for _, lab in mapped], test_codes, samples, prior.codebook_size,
                frame_rate, args.seed,
            )  # fmt: skip
    if args.vqvae:
        result["voices"] = sample_voices(vqvae, clf, samples, requested, options)
        result["voices"]["classifier"] = info
    return write_report(result, format_prior_report(result), args.out)


def word_recognizer():
    """The ``--wer`` recogniser; a missing pocketsphinx is a one-line user error (UsageError)."""
    from ..evaluation.metrics.wer import Recognizer

    try:
        return Recognizer()
    except ImportError as e:
        raise UsageError(str(e)) from e


EVAL_EXTRA = 'pip install -e ".[eval]"'


def listener_scorers(dnsmos: bool, speaker_embedding: bool) -> tuple[DNSMOS | None, SpeakerEncoder | None, list[str]]:
    """The DNSMOS scorer of ``--dnsmos`` and the speaker encoder of ``--speaker-embedding``, and notes.

    Returns (``metrics.dnsmos.DNSMOS`` or None, ``metrics.speaker_embedding.SpeakerEncoder`` or None,
    the report's notes): where a metric is not asked for and its packages are not installed either,
    one line says which extra brings them.
    Raises:
        MissingPackageError: a metric asked for without its packages (one line naming the ``eval`` extra).
    """
    scorer = DNSMOS() if dnsmos else None
    encoder = SpeakerEncoder() if speaker_embedding else None
    missing = [
        what
        for wanted, what, modules in (
            (dnsmos, "DNSMOS naturalness (--dnsmos)", ("speechmos", "onnxruntime")),
            (speaker_embedding, "speaker-embedding similarity (--speaker-embedding)", ("resemblyzer",)),
        )
        if not wanted and not all(importlib.util.find_spec(m) for m in modules)
    ]
    notes = [f"{' and '.join(missing)} need {EVAL_EXTRA}"] if missing else []
    return scorer, encoder, notes


def convert_all(model: VQVAE, wavs: list[torch.Tensor], speakers: list[str], **options) -> list[torch.Tensor]:
    """``inference.convert`` (batch_size, temperature, generator, ...), nothing for no inputs."""
    if not wavs:
        return []
    from ..inference import convert

    return convert(model, wavs, speakers, **options)


def write_report(result: dict, table: str, out: str | None) -> int:
    print(table)
    if out:
        atomic_write_text(Path(out), json.dumps(result, indent=2, default=float) + "\n")
        print(f"wrote {out}")
    return 0


MIN_CROP_SECONDS = 0.1  # shorter crops leave too few 25 ms frames for a speaker embedding or an MCD


def crop_seconds(text: str) -> float:
    """argparse type of --max-seconds: a finite number of seconds, at least ``MIN_CROP_SECONDS``."""
    value = finite_positive("seconds")(text)
    if value < MIN_CROP_SECONDS:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_CROP_SECONDS} seconds, got {text!r}")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``evaluate`` subcommand and its three tasks."""
    p = sub.add_parser("evaluate", help="measure what a model learned: units, voice conversion, or a code prior")
    tasks = p.add_subparsers(dest="task", metavar="TASK", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--ckpt", required=True, help="trained checkpoint")
    common.add_argument("--data", required=True, metavar="DIR", help="prepared corpus folder (audio-vqvae prepare)")
    common.add_argument("--out", metavar="REPORT.json", help="write the metrics as JSON")
    common.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    common.add_argument("--seed", type=int, default=0)

    u = tasks.add_parser(
        "units",
        parents=[common],
        help="phone-mapping accuracy, purity, PNMI, ABX, bitrate, beside an MFCC k-means baseline",
    )
    u.add_argument("--train-split", default="train", help="split that maps codes to phones and fits k-means")
    u.add_argument("--eval-split", default="test", help="held-out split that is scored")
    u.add_argument("--alignments", help="phone table or folder of TextGrids (default: DIR/phones.tsv)")
    u.add_argument(
        "--max-utterances",
        type=utterance_count,
        default=2000,
        help="per split, spread over the speakers (default 2000); the baseline's k-means fits every frame of these",
    )
    u.add_argument("--exclude-silence", action="store_true", help="drop silence frames from mapping and purity")
    u.add_argument("--abx-context", choices=["within", "any"], default="within")
    u.add_argument(
        "--abx-items",
        choices=["phone", "triphone"],
        default="phone",
        help="ABX item frames: the central phone (libri-light-abx2) or the whole triphone (ZeroSpeech 2021)",
    )
    u.add_argument("--abx-representation", choices=["vectors", "onehot"], default="vectors")
    u.add_argument(
        "--save-baseline",
        metavar="PATH",
        help="write the fitted MFCC k-means baseline with joblib (scikit-learn; predict() on MFCC frames)",
    )
    u.set_defaults(func=cmd_units)

    c = tasks.add_parser(
        "conversion",
        parents=[common],
        help="speaker classification, code agreement, MCD of conversions and reconstructions",
    )
    c.add_argument("--split", default="test", help="split the source utterances come from")
    c.add_argument("--pairs", help="file of 'utterance_id target_speaker' lines (default: drawn from --split)")
    c.add_argument("--n-sources", type=utterance_count, default=8, help="source utterances when no --pairs")
    c.add_argument("--targets", help="comma-separated target speakers (default: 2 others per source)")
    c.add_argument("--real-split", default="train", help="real speech the speaker classifier learns from")
    c.add_argument(
        "--real-per-speaker", type=positive_int("utterances"), default=6, help="real utterances per speaker (default 6)"
    )
    c.add_argument(
        "--reconstructions",
        type=non_negative_int("utterances"),
        default=4,
        help="sources also resynthesised with their own speaker",
    )
    c.add_argument(
        "--max-seconds",
        type=crop_seconds,
        default=6.0,
        help=f"crop every utterance to this length, at least {MIN_CROP_SECONDS} s (default 6)",
    )
    c.add_argument("--batch-size", type=utterance_count, default=16)
    c.add_argument("--temperature", type=finite_temperature, default=1.0, help="sampling temperature; 0 is greedy")
    add_envelope_argument(c)
    c.add_argument(
        "--wer",
        action="store_true",
        help="word error rate of conversions, sources and parallel targets against the manifests' texts "
        "(pocketsphinx, English; pip install 'audio_vqvae[wer]'); pairs cropped by --max-seconds are left out",
    )
    c.add_argument(
        "--dnsmos",
        action="store_true",
        help="naturalness: DNSMOS P.808 and P.835 (SIG, BAK, OVRL) of conversions, resyntheses and real target "
        f"readings (speechmos, CPU; {EVAL_EXTRA})",
    )
    c.add_argument(
        "--speaker-embedding",
        action="store_true",
        help="whose voice the conversions have by a speaker-verification network (resemblyzer, CPU; "
        f"{EVAL_EXTRA}): cosine to speaker centroids, nearest-centroid identity",
    )
    c.add_argument(
        "--baseline-vocoder",
        action="store_true",
        help="also score a source-filter baseline: the mel decoder's frames for the target through a "
        "pulse-plus-noise LPC vocoder at the source's f0 moved to the target's range (needs a mel decoder)",
    )
    c.set_defaults(func=cmd_conversion)

    r = tasks.add_parser(
        "prior",
        help="a code prior's held-out bits per code beside n-gram baselines, and whose voice its samples have",
    )
    r.add_argument("--prior", required=True, metavar="CKPT", help="the prior's checkpoint (train-prior)")
    r.add_argument("--tokens", required=True, metavar="DIR", help="the prior's training codes (n-gram baselines)")
    r.add_argument("--test-tokens", required=True, metavar="DIR", help="held-out codes to score")
    r.add_argument("--data", metavar="DIR", help="prepared corpus: the test utterances' speakers, real speech")
    r.add_argument("--vqvae", metavar="CKPT", help="also decode the samples and classify their voices (needs --data)")
    r.add_argument("--alignments", help="phone table or folder of TextGrids (default: DATA/phones.tsv, if there)")
    r.add_argument("--samples-per-speaker", type=utterance_count, default=4, help="samples drawn (default 4)")
    r.add_argument(
        "--seconds", type=finite_positive("seconds"), help="of each sample (default: the prior's whole context)"
    )
    r.add_argument("--real-per-speaker", type=positive_int("utterances"), default=6, help="real utterances per speaker")
    r.add_argument("--temperature", type=finite_temperature, default=1.0, help="the prior's sampling temperature")
    r.add_argument("--envelope", type=envelope_strength, default=0.0, metavar="S", help=ENVELOPE_HELP)
    r.add_argument("--out", metavar="REPORT.json", help="write the metrics as JSON")
    r.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    r.add_argument("--seed", type=int, default=0)
    r.set_defaults(func=cmd_prior)
