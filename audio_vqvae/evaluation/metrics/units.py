"""Frame-level unit metrics against phone labels: phone-mapping accuracy, purities, PNMI, bitrate.

Units and phones are per-frame label sequences of equal length (units: ints or any hashable
label; phones: strings), pooled over utterances. All counts are exact; nothing is sampled.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SILENCE_PHONES = ("sil", "sp", "spn")  # MFA's silence, short pause, spoken noise; compared lower-cased


def is_silence(phone: str, silence_phones: Sequence[str] = SILENCE_PHONES) -> bool:
    """Whether a phone label is non-speech: in ``silence_phones`` (case-insensitive) or empty."""
    return not phone.strip() or phone.strip().lower() in {s.lower() for s in silence_phones}


def _index(*arrays: Sequence) -> tuple[list[np.ndarray], np.ndarray]:
    """Integer codes of labels over the union vocabulary: ([(n_i,) int64 ...], (V,) sorted labels)."""
    parts = [np.asarray(a) for a in arrays]
    if any(p.ndim != 1 for p in parts):
        raise ValueError("label sequences must be one-dimensional")
    labels, inverse = np.unique(np.concatenate(parts), return_inverse=True)
    bounds = np.cumsum([0] + [len(p) for p in parts])
    return [inverse[a:b].astype(np.int64) for a, b in zip(bounds[:-1], bounds[1:])], labels


def contingency(units: Sequence, phones: Sequence) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Co-occurrence counts of units and phones over frames.

    Returns:
        counts (U, P) int64, unit labels (U,), phone labels (P,) (both sorted).
    """
    if len(units) != len(phones):
        raise ValueError(f"{len(units)} units but {len(phones)} phone labels")
    (u,), unit_labels = _index(units)
    (p,), phone_labels = _index(phones)
    counts = np.zeros((len(unit_labels), len(phone_labels)), dtype=np.int64)
    np.add.at(counts, (u, p), 1)
    return counts, unit_labels, phone_labels


def phone_mapping_accuracy(
    train_units: Sequence, train_phones: Sequence, eval_units: Sequence, eval_phones: Sequence
) -> dict[str, float | str]:
    """Frame accuracy of mapping each unit to its most frequent phone (van den Oord et al. 2017, sec. 4.3).

    The mapping is estimated on the training frames and scored on the held-out frames, as in the
    VQ-VAE paper (49.3 % for its codes against 7.2 % for the majority class). A unit never seen in
    training maps to the training majority phone (it carries no information, so the best guess
    is the prior); ties go to the phone that sorts first.

    Args:
        train_units, train_phones: (M,) unit and phone of each training frame.
        eval_units, eval_phones: (M',) the same for the held-out frames.
    Returns:
        ``phone_accuracy``: fraction of held-out frames whose unit maps to their phone;
        ``majority_phone_accuracy``: fraction of held-out frames labelled with the training
        majority phone (the baseline to beat); ``majority_phone``: that phone.
    """
    if len(train_units) != len(train_phones) or len(eval_units) != len(eval_phones):
        raise ValueError("each unit sequence must be as long as its phone sequence")
    if len(train_units) == 0 or len(eval_units) == 0:
        raise ValueError("phone-mapping accuracy needs training and held-out frames")
    (tu, eu), _ = _index(train_units, eval_units)
    (tp, ep), phone_labels = _index(train_phones, eval_phones)
    n_units = int(max(tu.max(), eu.max())) + 1
    counts = np.zeros((n_units, len(phone_labels)), dtype=np.int64)
    np.add.at(counts, (tu, tp), 1)
    majority = int(np.bincount(tp, minlength=len(phone_labels)).argmax())
    mapping = np.where(counts.sum(1) > 0, counts.argmax(1), majority)  # (U,)
    return {
        "phone_accuracy": float(np.mean(mapping[eu] == ep)),
        "majority_phone_accuracy": float(np.mean(ep == majority)),
        "majority_phone": str(phone_labels[majority]),
    }


def purity_and_pnmi(units: Sequence, phones: Sequence) -> dict[str, float]:
    """Phone purity, cluster purity and phone-normalised mutual information (Hsu et al. 2021, HuBERT).

    With p(y, z) the joint frequency of phone y and unit z over the frames:
    phone purity = E_z[max_y p(y | z)] = sum_z max_y p(y, z) (how pure each unit is);
    cluster purity = E_y[max_z p(z | y)] = sum_y max_z p(y, z) (how concentrated each phone is);
    PNMI = I(y; z) / H(y), the share of the phone entropy that the units explain: 1 when the
    units determine the phone, 0 when they are independent of it. Plug-in estimates, so with few
    frames per unit-phone cell PNMI is biased upward (about (U - 1)(P - 1) / (2 M ln 2) bits).

    Args:
        units, phones: (M,) unit and phone of each frame.
    Returns:
        ``phone_purity``, ``cluster_purity``, ``pnmi``, and ``phone_entropy_bits`` H(y),
        ``mutual_information_bits`` I(y; z).
    """
    counts, _, _ = contingency(units, phones)
    if counts.sum() == 0:
        raise ValueError("purity and PNMI need at least one frame")
    p = counts / counts.sum()  # (U, P) joint p(z, y)
    pz, py = p.sum(1), p.sum(0)
    nz = p > 0
    mi = max(0.0, float(np.sum(p[nz] * np.log2(p[nz] / np.outer(pz, py)[nz]))))  # >= 0 up to rounding
    h_phone = float(-np.sum(py[py > 0] * np.log2(py[py > 0])))
    return {
        "phone_purity": float(p.max(1).sum()),
        "cluster_purity": float(p.max(0).sum()),
        "pnmi": mi / h_phone if h_phone > 0 else 1.0,  # a single phone: nothing to explain
        "phone_entropy_bits": h_phone,
        "mutual_information_bits": mi,
    }


def dedup(sequence: Sequence) -> np.ndarray:
    """Collapse runs of the same symbol (``unique_consecutive``): [3, 3, 5, 5, 3] -> [3, 5, 3]."""
    x = np.asarray(sequence)
    if x.size == 0:
        return x
    return x[np.concatenate([[True], x[1:] != x[:-1]])]


def bitrate(sequences: Sequence[Sequence], duration: float, *, deduplicate: bool = False) -> dict[str, float]:
    """Bitrate of a symbol stream as the ZeroSpeech challenges define it (Dunbar et al. 2019, "TTS without T").

    ``bitrate = (n / D) * H`` (kept by the later ZeroSpeech benchmarks): n symbols over all
    utterances, D their total duration in seconds, H the entropy in bits of the symbols'
    unigram distribution over the whole set. With
    ``deduplicate`` each utterance's runs of a repeated symbol count as one symbol first (the
    rate of the de-duplicated units that textless pipelines feed to a language model).

    Args:
        sequences: each utterance's symbols.
        duration: total duration of the audio in seconds.
        deduplicate: collapse repeats within each utterance first.
    Returns:
        ``bitrate`` (bit/s), ``symbol_rate`` (symbols/s), ``entropy_bits`` (bits/symbol),
        ``symbols_used`` (distinct symbols), ``n_symbols``.
    """
    if duration <= 0:
        raise ValueError(f"duration must be positive, got {duration}")
    seqs = [dedup(s) if deduplicate else np.asarray(s) for s in sequences]
    allsym = np.concatenate(seqs) if seqs else np.zeros(0)
    n = int(allsym.size)
    if n == 0:
        return {"bitrate": 0.0, "symbol_rate": 0.0, "entropy_bits": 0.0, "symbols_used": 0, "n_symbols": 0}
    _, counts = np.unique(allsym, return_counts=True)
    p = counts / n
    entropy = max(0.0, float(-np.sum(p * np.log2(p))))  # no -0.0 for a single symbol
    return {
        "bitrate": n / duration * entropy,
        "symbol_rate": n / duration,
        "entropy_bits": entropy,
        "symbols_used": int(counts.size),
        "n_symbols": n,
    }
