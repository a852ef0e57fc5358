"""``audio-vqvae encode``: extract discrete tokens."""

from __future__ import annotations

import argparse

from . import argtypes
from .common import add_model_arguments, load_model


def add_parser(sub: argparse._SubParsersAction) -> None:
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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
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
