"""The ``audio-vqvae`` command: one subcommand per task, each a thin call into the library."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import signal
import sys
import traceback

from .. import __version__
from ..config import PRESETS, Config, experiment_config, load_overrides, merge, parse_assignments, to_dict
from ..errors import DEBUG_VARIABLE, AudioVQVAEError, UsageError, debug_requested
from . import argtypes


def config_from_args(args: argparse.Namespace) -> Config:
    """Model preset, then the YAML file's overrides, then ``--set key=value`` overrides."""
    overrides = load_overrides(args.config) if args.config else {}
    overrides = merge(overrides, parse_assignments(args.set or []))
    return experiment_config(args.preset, overrides)


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--preset",
        default="default",
        choices=sorted(PRESETS),
        help="model preset: default (paper sizes, EMA codebook, revival, mel loss), paper (as published), tiny",
    )
    p.add_argument("--config", metavar="CONF.yaml", help="YAML file of overrides (model:, data:, optim:, train:)")
    p.add_argument(
        "--set",
        action="extend",
        nargs="+",
        metavar="KEY=VALUE",
        help="override keys, e.g. --set model.decoder.n_stacks=2 train.steps=1000 (repeatable)",
    )


def cmd_info(args: argparse.Namespace) -> int:
    """Print the resolved model config, receptive fields and parameter counts."""
    from ..models.vqvae import VQVAE

    cfg = config_from_args(args)
    info = VQVAE.from_config(cfg.model).describe()
    if args.json:
        print(json.dumps({"config": to_dict(cfg), "model": info}, indent=2))
        return 0
    print(f"hop {info['hop_length']} samples, {info['frame_rate_hz']:g} codes/s, K = {info['codebook_size']}")
    for part in ("encoder", "decoder"):
        print(
            f"{part} receptive field {info[f'{part}_receptive_field_samples']} samples "
            f"({info[f'{part}_receptive_field_ms']:.1f} ms), {info[f'{part}_parameters']:,} parameters"
        )
    return 0


DEBUG_HELP = f"show the traceback of a user error too, not just its one line (or set {DEBUG_VARIABLE}=1)"


def cmd_train(args: argparse.Namespace) -> int:
    """Train on a prepared corpus folder."""
    from ..training import train

    cfg = config_from_args(args)
    time_limit = None if args.time_limit is None else 60 * args.time_limit
    result = train(cfg, args.data, args.out, resume=args.resume, stop_at=args.stop_at, time_limit=time_limit)
    saved = f"checkpoint {result.last_checkpoint}" if result.last_checkpoint.is_file() else "no checkpoint written"
    if result.stop_signal is not None:
        print(
            f"stopped by {signal.Signals(result.stop_signal).name} at step {result.step}; {saved}; run again to resume"
        )
        return 128 + result.stop_signal  # as a shell reports that signal: a job script's next stage does not run
    print(f"trained to step {result.step}; {saved}")
    return 0


def load_model(args: argparse.Namespace):
    """The checkpoint's model on the chosen device (auto: a GPU when there is one)."""
    from ..models.vqvae import VQVAE

    return VQVAE.load(args.ckpt, map_location=args.device)


def generation_options(args: argparse.Namespace) -> dict:
    return {
        "force": args.force,
        "batch_size": args.batch_size,
        "chunk_frames": args.chunk_frames,
        "temperature": args.temperature,
        "seed": args.seed,
    }


def cmd_convert(args: argparse.Namespace) -> int:
    """Convert audio files to target speakers' voices."""
    from ..inference.jobs import convert_job, generate_speech, read_pairs

    if bool(args.pairs) == bool(args.files):
        raise UsageError("give audio files with --speaker, or --pairs FILE (not both)")
    if args.pairs:
        if args.speaker:
            raise UsageError("--speaker applies to files; a --pairs file names each target speaker")
        jobs = read_pairs(args.pairs, args.out)
    else:
        if not args.speaker:
            raise UsageError("--speaker is required with audio files (or use --pairs FILE)")
        jobs = [convert_job(f, args.speaker, args.out) for f in args.files]
    model = load_model(args)
    written = generate_speech(model, jobs, chunk_seconds=args.chunk_seconds, **generation_options(args))
    print(f"wrote {len(written)} files to {args.out}")
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    """Convert each file to its own speaker (listening checks)."""
    from ..inference.jobs import generate_speech, reconstruct_jobs

    jobs = reconstruct_jobs(args.out, args.files, args.manifest, args.speaker)
    model = load_model(args)
    written = generate_speech(model, jobs, chunk_seconds=args.chunk_seconds, **generation_options(args))
    print(f"wrote {len(written)} files to {args.out}")
    return 0


def cmd_encode(args: argparse.Namespace) -> int:
    """Write discrete tokens of audio files."""
    from ..inference.jobs import encode_files
    from ..inference.tokens import check_formats
    from ..inference.zerospeech import read_meta_fields

    formats = check_formats(f.strip() for f in args.format.split(",") if f.strip())
    zerospeech_meta = None if args.zerospeech_meta is None else read_meta_fields(args.zerospeech_meta)
    model = load_model(args)
    meta = encode_files(
        model,
        args.out,
        args.files,
        args.manifest,
        formats=formats,
        dedup=args.dedup,
        vectors=args.vectors,
        zerospeech_meta=zerospeech_meta,
        force=args.force,
        chunk_seconds=args.chunk_seconds,
        batch_seconds=args.batch_seconds,
    )
    print(f"wrote {', '.join(formats)} tokens to {args.out} (metadata {meta})")
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    """Speech from a units file with any speaker."""
    from ..inference.jobs import decode_units

    model = load_model(args)
    written = decode_units(
        model, args.units, args.speaker, args.out, durations=args.durations, **generation_options(args)
    )
    print(f"wrote {len(written)} files to {args.out}")
    return 0


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", required=True, metavar="CKPT", help="trained checkpoint (EXP/last.pt, best.pt, ...)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default auto: a GPU if there is one)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")


def add_generation_arguments(p: argparse.ArgumentParser, encodes: bool = True) -> None:
    p.add_argument(
        "--batch-size", type=argtypes.utterance_count, default=8, help="utterances generated together (default 8)"
    )
    p.add_argument(
        "--temperature",
        type=argtypes.finite_temperature,
        default=1.0,
        help="sampling temperature; 0 is greedy (default 1)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling (default 0)")
    p.add_argument(
        "--chunk-frames",
        type=argtypes.frames,
        default=250,
        help="frames generated per chunk; bounds memory (default 250)",
    )
    if encodes:
        p.add_argument(
            "--chunk-seconds", type=argtypes.seconds, default=4.0, help="encoder window in seconds (default 4)"
        )


def cmd_prepare(args: argparse.Namespace) -> int:
    module = importlib.import_module(f"audio_vqvae.data.corpora.{args.corpus}")
    return module.main(["--debug", *args.args] if args.debug else args.args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audio-vqvae",
        description="Discrete speech units with a VQ-VAE and a speaker-conditioned WaveNet decoder.",
        epilog="A mistake in the input (a missing file, an existing output without --force, a bad option or "
        "config value) is one line on stderr and exit status 2; any other error is a bug and shows its "
        f"traceback. --debug (or {DEBUG_VARIABLE}=1) shows the traceback of a mistake too.",
    )
    parser.add_argument("--version", action="version", version=f"audio-vqvae {__version__}")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("info", help="show a config's sizes and receptive fields")
    add_config_arguments(p)
    p.add_argument("--json", action="store_true", help="print the resolved config and sizes as JSON")
    p.set_defaults(func=cmd_info)

    from ..data.corpora import CORPORA

    p = sub.add_parser(
        "prepare",
        help="prepare a corpus: resampled audio, manifests, speakers, split",
        description="Prepare a corpus folder for training and evaluation (audio_vqvae/data/corpora): "
        "'audio-vqvae prepare CORPUS --help' lists the corpus's options.",
    )
    p.add_argument("corpus", choices=CORPORA, help="vctk, librispeech, folder (your own recordings) or synthetic")
    p.add_argument("args", nargs=argparse.REMAINDER, help="the corpus's arguments (folders and options)")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser(
        "train",
        help="train a model on a prepared corpus",
        description="Train on DIR (train.jsonl, valid.jsonl, speakers.txt from audio-vqvae prepare). An --out "
        "folder that holds last.pt is resumed; run under torchrun for several GPUs or machines.",
    )
    add_config_arguments(p)
    p.add_argument("--data", required=True, metavar="DIR", help="prepared corpus folder")
    p.add_argument("--out", required=True, metavar="EXP", help="experiment folder (checkpoints, logs, config)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_const", const=True, default=None, help="resume EXP/last.pt (required)")
    g.add_argument("--no-resume", dest="resume", action="store_const", const=False, help="refuse an EXP with last.pt")
    p.add_argument("--stop-at", type=argtypes.step, metavar="STEP", help="stop after this step; run again to resume")
    p.add_argument(
        "--time-limit",
        type=argtypes.minutes,
        metavar="MINUTES",
        help="stop after the step that ends past this wall time (set-up included), writing last.pt; run again "
        "to resume (e.g. a cluster job's limit minus a margin). SIGTERM or Ctrl-C also stops after the step in "
        "progress, writing last.pt (exit status 128 + the signal's number); a second one aborts at once",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "convert",
        help="convert speech to other speakers' voices",
        description="Encode each file and generate it with a target speaker's voice, in batches. Inputs: any format "
        "and rate soundfile reads; outputs: 16-bit WAV at the model rate, OUT/<id>_to_<speaker>.wav.",
    )
    add_model_arguments(p)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--speaker", help="target speaker (name from the checkpoint, or id) for all files")
    p.add_argument(
        "--pairs",
        metavar="FILE",
        help="lines 'source_path target_speaker [output_name]' (tab-separated if paths hold spaces; "
        "relative paths are relative to FILE's folder)",
    )
    add_generation_arguments(p)
    p.add_argument("files", nargs="*", metavar="FILE", help="audio files")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser(
        "reconstruct",
        help="re-synthesise speech with each file's own speaker",
        description="convert with each utterance's own speaker, for listening checks: from a --manifest's rows, or "
        "plain files of one --speaker. Outputs OUT/<id>.wav.",
    )
    add_model_arguments(p)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--manifest", metavar="M.jsonl", help="prepared manifest; each row names its speaker")
    p.add_argument("--speaker", help="the speaker of plain files")
    add_generation_arguments(p)
    p.add_argument("files", nargs="*", metavar="FILE", help="audio files")
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser(
        "encode",
        help="extract discrete tokens",
        description="Write the tokens of audio files, folders (searched recursively; ids keep the relative path, "
        "spk1/utt3) or a manifest's rows to OUT, with tokens.json describing them. Formats: units (units.txt, "
        "id|u1 u2 ...), bare (units.bare.txt, u1 u2 ... per line, ids in ids.txt: unit LMs, fairseq load_code), "
        "tsv (units.tsv, id<TAB>u1 u2 ...: textlesslib --preserve_name), jsonl (units.jsonl), codes "
        "(codes/<id>.npy int16, formerly npy/), vectors (vectors/<id>.txt, one frame per line), zerospeech "
        "(zerospeech/meta.yaml + phonetic/<subset>/<name>.txt: a ZeroSpeech 2021 ABX submission; encode the "
        "dataset's phonetic/ folder). --dedup writes run lengths beside units, bare and tsv. "
        "Long files are encoded in exact chunks.",
    )
    add_model_arguments(p)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--manifest",
        metavar="M",
        help="prepared manifest (JSON lines: ids from its rows), or a fairseq/textlesslib TSV manifest "
        "(root folder on the first line, then relative_path<TAB>n_samples: ids are the relative paths)",
    )
    p.add_argument(
        "--format",
        default="units",
        help="comma-separated: units, bare, tsv, jsonl, codes, vectors, zerospeech (default units)",
    )
    p.add_argument("--dedup", action="store_true", help="merge repeated units; run lengths go alongside")
    p.add_argument(
        "--vectors",
        default="quantized",
        choices=["quantized", "continuous"],
        help="vectors and zerospeech formats: codebook vectors, or encoder outputs before quantization "
        "(default quantized)",
    )
    p.add_argument(
        "--zerospeech-meta",
        metavar="META.yaml",
        help="zerospeech format: meta.yaml fields (author, affiliation, description, open_source, train_set, "
        "visually_ground, gpu_budget, parameters) over the defaults; unset ones are left as <template> values",
    )
    p.add_argument("--chunk-seconds", type=argtypes.seconds, default=4.0, help="encoder window in seconds (default 4)")
    p.add_argument(
        "--batch-seconds",
        type=argtypes.seconds,
        default=16.0,
        help="padded audio per encoder pass (default 16; more on a GPU)",
    )
    p.add_argument(
        "files",
        nargs="*",
        metavar="PATH",
        help="audio files (id: the name without its extension) or folders (id: the relative path without it)",
    )
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser(
        "decode",
        help="speech from discrete tokens",
        description="Generate speech from units with one speaker's voice: a units.txt (plain frames, or "
        "de-duplicated with --durations or tokens.json + durations.txt beside it), a units.jsonl, or a folder "
        "of .npy files. Outputs OUT/<id>.wav.",
    )
    add_model_arguments(p)
    p.add_argument("--units", required=True, metavar="FILE", help="units.txt, units.jsonl, or a folder of .npy")
    p.add_argument("--durations", metavar="FILE", help="run lengths of de-duplicated units (id|d1 d2 ...)")
    p.add_argument("--speaker", required=True, help="speaker name (from the checkpoint) or id")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    add_generation_arguments(p, encodes=False)
    p.set_defaults(func=cmd_decode)

    from .evaluate import add_parser as add_evaluate_parser

    add_evaluate_parser(sub)
    for p in sub.choices.values():
        add_debug_argument(p)
    return parser


def add_debug_argument(p: argparse.ArgumentParser) -> None:
    """``--debug`` after the subcommand too (``audio-vqvae train ... --debug``), in its subcommands as well.

    SUPPRESS leaves the attribute unset unless given, so a subcommand does not reset a ``--debug`` given
    before it (argparse applies a subparser's defaults over the main parser's values).
    """
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                add_debug_argument(child)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    try:
        return args.func(args)
    except AudioVQVAEError as e:  # a user's mistake; anything else is a bug and keeps its traceback
        if args.debug or debug_requested():
            traceback.print_exc()
        print(f"audio-vqvae {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
