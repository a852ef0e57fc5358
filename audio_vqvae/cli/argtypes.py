"""argparse types of the command line: finite numbers and whole numbers, each error naming what it counts."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def finite_non_negative(what: str) -> Callable[[str], float]:
    """An argparse type: a finite number, 0 or more, of ``what`` ("minutes", "temperature")."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number ({what}), got {text!r}") from None
        if not (value >= 0 and value != float("inf")):
            raise argparse.ArgumentTypeError(f"must be a finite number ({what}) >= 0, got {text!r}")
        return value

    return parse


def finite_positive(what: str) -> Callable[[str], float]:
    """An argparse type: a finite number above 0, of ``what`` ("seconds")."""
    non_negative = finite_non_negative(what)

    def parse(text: str) -> float:
        value = non_negative(text)
        if value == 0:
            raise argparse.ArgumentTypeError(f"must be a finite number ({what}) > 0, got {text!r}")
        return value

    return parse


def int_at_least(minimum: int, what: str) -> Callable[[str], int]:
    """An argparse type: a whole number of ``what`` ("step", "utterances", "frames"), ``minimum`` or more."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number ({what}), got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be a whole number ({what}) >= {minimum}, got {text!r}")
        return value

    return parse


def positive_int(what: str) -> Callable[[str], int]:
    """An argparse type: a whole number, 1 or more, of ``what``."""
    return int_at_least(1, what)


def non_negative_int(what: str) -> Callable[[str], int]:
    """An argparse type: a whole number, 0 or more, of ``what``."""
    return int_at_least(0, what)


minutes = finite_non_negative("minutes")  # --time-limit
finite_temperature = finite_non_negative("temperature")  # --temperature; 0 is greedy


def unit_interval(what: str) -> Callable[[str], float]:
    """An argparse type: a number in [0, 1], of ``what`` ("strength")."""
    non_negative = finite_non_negative(what)

    def parse(text: str) -> float:
        value = non_negative(text)
        if value > 1:
            raise argparse.ArgumentTypeError(f"must be a number ({what}) in [0, 1], got {text!r}")
        return value

    return parse


envelope_strength = unit_interval("strength")  # --envelope


def probability(text: str) -> float:
    """An argparse type: a probability in (0, 1] (--top-p)."""
    value = unit_interval("probability")(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be a probability in (0, 1], got {text!r}")
    return value


seconds = finite_positive("seconds")  # --chunk-seconds, --batch-seconds
step = positive_int("step")  # --stop-at
utterance_count = positive_int("utterances")  # --batch-size (also of evaluate conversion)
frames = positive_int("frames")  # --chunk-frames
