"""Metric tables: each unit metric's row and cell format defined once, for every table that shows them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


def percent(x: float | None, digits: int = 1) -> str:
    """A rate in [0, 1] as a percentage; "-" for None (not measured)."""
    return "-" if x is None else f"{100 * x:.{digits}f}"


def number(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def count(x: float | None) -> str:
    return "-" if x is None else str(int(x))


# (label, key of evaluate_units' model/baseline dicts, cell formatter)
UNIT_ROWS: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("phone accuracy (%)", "phone_accuracy", percent),
    ("  majority phone (%)", "majority_phone_accuracy", percent),
    ("phone purity (%)", "phone_purity", percent),
    ("cluster purity (%)", "cluster_purity", percent),
    ("PNMI", "pnmi", number),
    ("ABX within, error (%)", "abx_within", percent),
    ("ABX across, error (%)", "abx_across", percent),
    ("bitrate (bit/s)", "bitrate", lambda x: number(x, 1)),
    ("  deduplicated (bit/s)", "bitrate_dedup", lambda x: number(x, 1)),
    ("runs per second", "symbol_rate_dedup", lambda x: number(x, 1)),
    ("codes used", "codes_used", count),
)


def unit_rows(result: Mapping[str, Any]) -> list[list[str]]:
    """``[label, model cell, baseline cell]`` per metric of an ``evaluate_units`` result."""
    model, base = result["model"], result["baseline"]
    return [[label, fmt(model.get(key)), fmt(base.get(key))] for label, key, fmt in UNIT_ROWS]
