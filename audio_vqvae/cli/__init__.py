"""The ``audio-vqvae`` command: one subcommand per task, each a module here with ``add_parser`` and
``run``, a thin call into the library."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback

from .. import __version__
from ..errors import DEBUG_VARIABLE, AudioVQVAEError, debug_requested
from . import convert, decode, encode, evaluate, info, prepare, reconstruct, sample, train, train_prior
from .common import add_config_arguments, config_from_args

__all__ = ["add_config_arguments", "build_parser", "config_from_args", "main"]

DEBUG_HELP = f"show the traceback of a user error too, not just its one line (or set {DEBUG_VARIABLE}=1)"


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
    for command in (info, prepare, train, train_prior, convert, reconstruct, encode, decode, sample, evaluate):
        command.add_parser(sub)
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
