"""What the model learned: unit discovery against phone alignments, beside an MFCC k-means
baseline, and voice conversion (speaker identity, content, spectral distance, naturalness).

Both entry points take data already loaded (waveform tensors at ``model.sample_rate``, alignments
as ``PhoneSegment`` lists) and return plain JSON-ready dicts; ``format_*_report`` turn those into a
short table. Nothing here reads files, so the command line only loads and writes. The metrics
themselves, with their definitions and references, are in ``audio_vqvae.evaluation.metrics``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F
from tqdm import tqdm

from ..data.alignment import PhoneSegment, frame_labels
from ..errors import EvaluationError
from ..inference import extract_tokens
from ..models.vqvae import VQVAE
from .metrics.abx import abx_error, abx_items
from .metrics.dnsmos import DNSMOS, SCORES, naturalness
from .metrics.features import KMeansUnits, baseline_description, baseline_frames
from .metrics.pitch import PitchTrack, pooled_voicing, yin
from .metrics.speaker import CHECK_SNR_DB, train_speaker_classifier
from .metrics.speaker_embedding import SpeakerEncoder, embedding_speaker_metrics
from .metrics.spectral import MCD_DEFINITION, mcep_alpha, mel_cepstral_distortion, reconstruction_metrics
from .metrics.units import SILENCE_PHONES, bitrate, dedup, is_silence, phone_mapping_accuracy, purity_and_pnmi
from .metrics.wer import Recognizer, normalize_words, word_errors
from .tables import number, percent, unit_rows

Item = tuple[str, Tensor, str]  # (utterance id, (T,) waveform at model.sample_rate, speaker name)


class ConversionPair(NamedTuple):
    """One conversion to judge; any 4- or 5-tuple in this order works too."""

    converted: Tensor  # (T,) the source utterance decoded with the target speaker's voice
    source: Tensor  # (T',) the source utterance
    source_speaker: str
    target_speaker: str
    target: Tensor | None = None  # the same sentence read by the target speaker, when the corpus is parallel


def _mono(wav: Tensor) -> Tensor:
    """(T,), (1, T) or (1, 1, T) to a (T,) float32 CPU tensor."""
    if wav.dim() > 1 and int(np.prod(wav.shape[:-1])) != 1:
        raise ValueError(f"expected one mono waveform, got shape {tuple(wav.shape)}")
    return wav.detach().to("cpu", torch.float32).reshape(-1)


@contextlib.contextmanager
def _eval_mode(model: VQVAE) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _codes(model: VQVAE, wav: Tensor) -> Tensor:
    """(N,) int64 CPU codes of one (T,) waveform, N = T // hop, by the chunked encoder of ``encode``."""
    return extract_tokens(model, [_mono(wav)])[0].codes.cpu()


# ---------------------------------------------------------------------------------------------- units


def _system_metrics(
    train_units: list[Tensor],
    eval_units: list[Tensor],
    train_labels: list[list[str]],
    eval_labels: list[list[str]],
    abx_features: list[Tensor],
    items: list,
    eval_seconds: float,
    keep: Callable[[np.ndarray], np.ndarray],
    abx_options: dict[str, Any],
) -> dict[str, Any]:
    """Every unit metric of one system (the model's codes or the baseline's clusters) on the same frames."""
    tu = np.concatenate([u.numpy() for u in train_units])
    eu = np.concatenate([u.numpy() for u in eval_units])
    tl = np.array([p for labels in train_labels for p in labels])
    el = np.array([p for labels in eval_labels for p in labels])
    tk, ek = keep(tl), keep(el)
    out: dict[str, Any] = {}
    out.update(phone_mapping_accuracy(tu[tk], tl[tk], eu[ek], el[ek]))
    out.update(purity_and_pnmi(eu[ek], el[ek]))
    out.update(abx_error(abx_features, items, **abx_options))
    sequences = [u.numpy() for u in eval_units]
    full, dedup = bitrate(sequences, eval_seconds), bitrate(sequences, eval_seconds, deduplicate=True)
    out.update(
        bitrate=full["bitrate"],
        bitrate_dedup=dedup["bitrate"],
        entropy_bits=full["entropy_bits"],
        symbol_rate=full["symbol_rate"],
        symbol_rate_dedup=dedup["symbol_rate"],
        codes_used=full["symbols_used"],
    )
    return out


def fit_baseline(
    train_items: Sequence[Item], sample_rate: int, hop_length: int, k: int, *, iters: int = 100,
    max_frames: int | None = None, seed: int = 0,
) -> KMeansUnits:  # fmt: skip
    """The MFCC k-means baseline of ``evaluate_units``, fitted on the standard frames of ``train_items``
    (at ``sample_rate``, on the grid of ``hop_length``) with K = ``k``; to score several models against one fit."""
    frames = [baseline_frames(_mono(wav), sample_rate, hop_length) for _, wav, _ in train_items]
    return KMeansUnits.fit(frames, k, iters=iters, max_frames=max_frames, seed=seed)


def evaluate_units(
    model: VQVAE,
    train_items: Sequence[Item],
    eval_items: Sequence[Item],
    alignments: Mapping[str, Sequence[PhoneSegment]],
    *,
    exclude_silence: bool = False,
    silence_phones: Sequence[str] = SILENCE_PHONES,
    abx_representation: str = "vectors",
    abx_context: str = "within",
    abx_span: str = "phone",
    abx_max_size_group: int | None = 10,
    abx_max_x_across: int | None = 5,
    kmeans_iters: int = 100,
    kmeans_max_frames: int | None = None,
    seed: int = 0,
    save_baseline: str | Path | None = None,
    baseline: KMeansUnits | None = None,
) -> dict[str, Any]:
    """Unit-discovery metrics of the model's codes and of an MFCC k-means baseline, in one run.

    Codes are those of ``inference.extract_tokens`` (``model.encode(wav)``'s, in bounded memory), one
    per hop (frame rate = sample_rate / hop); code n is labelled with the phone at the centre of its
    samples (``alignment.frame_labels``). The baseline is scikit-learn's KMeans with the same K
    (``model.quantizer.codebook_size``) on the standard MFCC frames computed on the same grid (13 MFCCs
    with c0, deltas and delta-deltas over +-40 ms, CMVN per utterance: ``metrics.features``), fitted on
    every frame of the training items, so both systems are scored on exactly the same frames; it uses
    nothing of the model but its hop and K. Per system (see
    ``audio_vqvae.evaluation.metrics``):

    - ``phone_accuracy`` / ``majority_phone_accuracy``: each unit mapped to its most frequent
      phone on the training items, frame accuracy on the held-out items (van den Oord et al.
      2017, sec. 4.3), beside always answering the training majority phone;
    - ``phone_purity``, ``cluster_purity``, ``pnmi`` (Hsu et al. 2021), on the held-out frames;
    - ``abx_within`` / ``abx_across``: triphone ABX error on the held-out items, DTW with the
      angular cosine distance on per-frame vectors (ZeroSpeech 2021 / libri-light); None when
      the held-out set has no scorable cell;
    - ``bitrate`` and ``bitrate_dedup`` (ZeroSpeech), ``symbol_rate_dedup`` (runs of one unit per
      second), ``codes_used``, over the held-out audio; beside them ``phone_rate``, the phones per
      second of the held-out alignments (silence segments included, as the runs include silence).

    **Silence.** By default every frame counts, silence included, as in the VQ-VAE paper's
    figure and HuBERT's PNMI; long pauses then favour the majority baseline (silence is
    usually the majority phone). ``exclude_silence=True`` drops frames labelled with
    ``silence_phones`` (or empty labels) from the mapping, purity and PNMI, on both splits.
    ABX never takes silence as a central phone (its items are phones), and bitrate always
    describes the whole stream, silence included.

    Args:
        model: a VQVAE (put in eval mode while encoding, then restored).
        train_items: (id, (T,) waveform at model.sample_rate, speaker) that fit the phone
            mapping and the k-means baseline.
        eval_items: the held-out utterances every metric is reported on.
        alignments: utterance id -> phone segments (``read_textgrid`` / ``read_phone_table``);
            items without one are skipped and counted in ``n_unaligned``.
        exclude_silence: leave silence frames out of the frame metrics (see above).
        silence_phones: labels that count as silence (case-insensitive).
        abx_representation: "vectors" (the code's codebook vector; the baseline's centroid) or
            "onehot" (unit identity only).
        abx_context: "within" (ZeroSpeech 2021: A, B, X share their neighbouring phones) or "any"
            (context ignored; scores small sets where no context holds two different phones).
        abx_span: "phone" (each item is its central phone's frames, libri-light-abx2's on-phone items)
            or "triphone" (previous phone's onset to next phone's offset: the item files behind
            ZeroSpeech 2021's and libri-light's published figures); see ``metrics.abx``.
        abx_max_size_group, abx_max_x_across: ABX caps (``metrics.abx.abx_error``).
        kmeans_iters, kmeans_max_frames: the baseline k-means' Lloyd iterations at most, and a fitting
            subsample (None: every training frame).
        seed: seed of the k-means and the ABX caps.
        save_baseline: write the fitted baseline here (``KMeansUnits.save``: a joblib file of a
            scikit-learn KMeans whose ``predict`` maps ``metrics.features.baseline_frames`` to the units
            scored here, for fairseq/textlesslib's ``quantize_with_kmeans.py``); None writes nothing.
        baseline: a baseline already fitted on these training items' frames (``fit_baseline``), which
            then is not fitted again (``bench/learn.py`` scores several checkpoints against one).
    Returns:
        A JSON-ready dict: settings and counts, then ``model`` and ``baseline`` metric dicts with
        the same keys. Rates are fractions in [0, 1].
    """
    if abx_representation not in ("vectors", "onehot"):
        raise ValueError(f"abx_representation must be 'vectors' or 'onehot', got {abx_representation!r}")
    train = [it for it in train_items if it[0] in alignments]
    held = [it for it in eval_items if it[0] in alignments]
    if not train or not held:
        raise EvaluationError(
            f"need aligned training and held-out utterances: {len(train)} of {len(train_items)} training and "
            f"{len(held)} of {len(eval_items)} held-out utterances have an alignment"
        )
    sr, hop, K = model.sample_rate, model.hop_length, model.quantizer.codebook_size
    frame_rate = sr / hop

    def prepare(items: Sequence[Item], desc: str) -> tuple[list[Tensor], list[Tensor], list[list[str]]]:
        codes, mfccs, labels = [], [], []
        for uid, wav, _ in tqdm(items, desc=desc, unit="utt", disable=None, leave=False):
            if _mono(wav).numel() < hop:
                raise EvaluationError(
                    f"utterance '{uid}' has {_mono(wav).numel()} samples, fewer than one code ({hop})"
                )
            c = _codes(model, wav)  # (N,)
            codes.append(c)
            mfccs.append(baseline_frames(_mono(wav), sr, hop, n_frames=c.numel()))  # (N, 39)
            labels.append(frame_labels(alignments[uid], c.numel(), frame_rate))
        return codes, mfccs, labels

    with _eval_mode(model):
        train_codes, train_mfcc, train_labels = prepare(train, "encode train")
        eval_codes, eval_mfcc, eval_labels = prepare(held, "encode test")
        n_train_frames = sum(x.size(0) for x in train_mfcc)
        if n_train_frames < K:
            raise EvaluationError(
                f"the MFCC k-means baseline needs at least K = {K} training frames, the training utterances "
                f"give {n_train_frames}: evaluate with more training utterances"
            )
        if baseline is not None and baseline.model.n_clusters != K:
            raise ValueError(f"the baseline has K = {baseline.model.n_clusters}, the model {K}")
        kmeans = baseline or KMeansUnits.fit(train_mfcc, K, iters=kmeans_iters, max_frames=kmeans_max_frames, seed=seed)
        if save_baseline is not None:
            kmeans.save(save_baseline)
        train_clusters = [kmeans.assign(x) for x in train_mfcc]
        eval_clusters = [kmeans.assign(x) for x in eval_mfcc]
        if abx_representation == "vectors":
            codebook = model.quantizer.embeddings().detach().cpu()  # (K, D)
            model_vectors = [codebook[c] for c in eval_codes]  # (N, D) each
            base_vectors = [kmeans.vectors(u) for u in eval_clusters]
        else:
            model_vectors = [F.one_hot(c, K).float() for c in eval_codes]
            base_vectors = [F.one_hot(u, K).float() for u in eval_clusters]

    items = abx_items(
        [alignments[uid] for uid, _, _ in held],
        [spk for _, _, spk in held],
        [c.numel() for c in eval_codes],
        frame_rate,
        silence_phones=silence_phones,
        span=abx_span,
    )

    def keep(labels: np.ndarray) -> np.ndarray:
        """(M,) labels to the mask of frames the frame metrics count."""
        if not exclude_silence:
            return np.ones(len(labels), dtype=bool)
        return np.array([not is_silence(str(p), silence_phones) for p in labels], dtype=bool)

    eval_seconds = sum(_mono(w).numel() for _, w, _ in held) / sr
    # phones per second in the held-out alignments, silence included as the units' runs include it
    n_phones = sum(len(dedup([seg.phone for seg in alignments[uid]])) for uid, _, _ in held)
    abx_options = {
        "context": abx_context,
        "max_size_group": abx_max_size_group,
        "max_x_across": abx_max_x_across,
        "seed": seed,
    }
    common = (items, eval_seconds, keep, abx_options)
    return {
        "sample_rate": sr,
        "hop_length": hop,
        "frame_rate_hz": frame_rate,
        "codebook_size": K,
        "silence": "excluded" if exclude_silence else "included",
        "silence_phones": list(silence_phones),
        "n_train_utterances": len(train),
        "n_eval_utterances": len(held),
        "n_unaligned": len(train_items) - len(train) + len(eval_items) - len(held),
        "n_train_frames": int(sum(int(keep(np.array(x)).sum()) for x in train_labels)),
        "n_eval_frames": int(sum(int(keep(np.array(x)).sum()) for x in eval_labels)),
        "eval_seconds": eval_seconds,
        "phone_rate": n_phones / eval_seconds,
        "abx_items": len(items),
        "abx_representation": abx_representation,
        "abx_context": abx_context,
        "abx_span": abx_span,
        "baseline_description": baseline_description(sr, hop, K, kmeans.n_fit_frames),
        "model": _system_metrics(train_codes, eval_codes, train_labels, eval_labels, model_vectors, *common),
        "baseline": _system_metrics(train_clusters, eval_clusters, train_labels, eval_labels, base_vectors, *common),
    }


def format_units_report(result: Mapping[str, Any]) -> str:
    """A short readable table of ``evaluate_units``' result: one row per metric, model beside baseline."""
    head = (
        f"units: {result['n_eval_utterances']} held-out utterances ({result['eval_seconds']:.1f} s, "
        f"{result['n_eval_frames']} frames at {result['frame_rate_hz']:g} Hz), K = {result['codebook_size']}, "
        f"silence {result['silence']}"
    )
    rows = unit_rows(result)
    width = max(len(name) for name, _, _ in rows)
    lines = [head, f"{'':{width}}  {'model':>10}  {'baseline':>10}"]
    lines += [f"{name:{width}}  {model:>10}  {baseline:>10}" for name, model, baseline in rows]
    cells = result["model"]
    lines.append(
        f"ABX: {result['abx_items']} phone items, {result['abx_context']} context, {result['abx_representation']}; "
        f"{cells['abx_within_cells']} within- and {cells['abx_across_cells']} across-speaker cells ('-': none)"
    )
    lines.append(
        f"runs per second: units after de-duplication, beside {result['phone_rate']:.1f} phones per second in the "
        "alignments (silence included)"
    )
    lines.append(f"baseline: {result['baseline_description']}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------- conversion


def evaluate_conversion(
    model: VQVAE,
    pairs: Sequence[ConversionPair | tuple],
    real_items: Sequence[Item],
    *,
    reconstructions: Sequence[tuple[Tensor, Tensor]] | None = None,
    held_out_fraction: float = 0.25,
    seed: int = 0,
    texts: Sequence[str | None] | None = None,
    recognizer: Recognizer | None = None,
    dnsmos: DNSMOS | None = None,
    speaker_encoder: SpeakerEncoder | None = None,
) -> dict[str, Any]:
    """Voice-conversion metrics: speaker identity, content kept, spectral distance, naturalness.

    - **Speaker**: a classifier (``metrics.speaker``: MFCC mean+std statistics, logistic
      regression) is trained in this run on ``real_items`` and their copies with white noise at
      20, 10 and 5 dB SNR, part of each speaker's utterances held out to measure it
      (``classifier_accuracy``, and ``classifier_accuracy_noisy`` with noise at 10 dB); ``target_rate`` is the share of
      converted utterances it assigns to the target speaker, ``source_rate`` to the source
      speaker (over pairs whose source speaker is among the classes), ``target_posterior`` the
      mean posterior of the target.
    - **Content**: ``code_agreement``, the share of frames where the codes of the converted audio
      (``inference.extract_tokens``) equal the source codes, over the first min(N, N') frames of each pair,
      beside ``code_agreement_chance``, the agreement expected from the two code histograms
      alone (sum_k p_source(k) p_converted(k)).
    - **Spectral**, where a pair has a parallel target: ``mcd_target``, the standard MCD of VC
      papers (``metrics.spectral``: SPTK-style mel-cepstra of order 24, alpha 0.42 at 16 kHz, c0
      excluded, DTW-aligned, dB; named in ``mcd_definition``) between the converted audio and the
      target speaker's reading, and ``mcd_source_target`` between the unconverted source and that
      reading, the figure a conversion should go below.
    - **Voicing** (``metrics.pitch``: YIN with a voicing decision, 10 ms frames pooled
      over pairs): ``voiced_converted``, the share of voiced frames in the converted audio, beside
      ``voiced_source_real`` and ``voiced_target_real`` (the real source and parallel target
      readings); ``f0_converted_hz``, ``f0_source_real_hz`` and ``f0_target_real_hz``, median f0
      over their voiced frames (None where none is voiced). A whispering decoder shows as a
      voiced share far below the real speech's.
    - **Words**, when ``texts`` is given: word error rates (``metrics.wer``, an offline
      pocketsphinx recogniser) against each pair's text, over the pairs that have one:
      ``wer_converted`` of the converted audio, ``wer_source_real`` of the source utterance, and
      ``wer_target_real`` of the parallel target (over the ``n_wer_target`` pairs with one), the
      recogniser's own error on real speech of these sentences, which a conversion cannot be
      expected to beat. Scored pairs get ``text``, ``hypothesis_*`` transcripts and their own
      ``wer_converted``. Without ``texts`` the rates are None, the counts 0.
    - **Reconstruction**, when ``reconstructions`` is given: mean ``mcd`` and
      ``log_mel_distance_db`` between each original and its resynthesis, frame by frame, and the
      voiced shares ``voiced_resynthesis`` and ``voiced_original``.
    - **Speaker embedding**, with a ``speaker_encoder`` (``metrics.speaker_embedding``, a pretrained
      speaker-verification network): group ``speaker_embedding``, nearest-centroid ``target_rate`` and
      ``source_rate``, mean cosine ``target_similarity`` and ``source_similarity`` of the conversions to
      the speakers' centroids, made from the same real utterances the classifier above learns from, and
      on the held-out ones ``accuracy``, ``real_own_similarity``, ``real_other_similarity``. Absent without.
    - **Naturalness**, with a ``dnsmos`` scorer (``metrics.dnsmos``): group ``naturalness``, mean DNSMOS
      ``p808``, ``sig``, ``bak``, ``ovrl`` (1..5) of the ``converted`` audio, the ``resynthesis`` and
      their ``original``, and the parallel ``target_real`` readings (None where there are none). Absent without.

    Args:
        model: the VQVAE that produced the conversions (its encoder re-extracts codes).
        pairs: ``ConversionPair``s or (converted, source, source speaker, target speaker
            [, parallel target]) tuples; waveforms (T,) at model.sample_rate.
        real_items: (id, waveform, speaker) real utterances of the corpus's speakers, every
            target speaker among them; at least two per speaker is best (one goes to the held-out
            check).
        reconstructions: optional (original, resynthesis) waveform pairs.
        held_out_fraction: share of each speaker's real utterances held out from the classifier.
        seed: seed of that split.
        texts: one per pair, the sentence the source utterance reads (None or "" where unknown);
            turns the word error rates on.
        recognizer: the ``metrics.wer.Recognizer`` to use with ``texts`` (default: a new one, which
            needs ``pip install 'audio_vqvae[wer]'``).
        dnsmos: a ``metrics.dnsmos.DNSMOS`` (``pip install -e ".[eval]"``): turns naturalness on.
        speaker_encoder: a ``metrics.speaker_embedding.SpeakerEncoder`` (the same extra): turns the
            speaker-embedding metrics on.
    Returns:
        A JSON-ready dict with ``speaker``, ``content``, ``voicing``, ``reconstruction`` (None
        without reconstructions) groups, ``speaker_embedding`` and ``naturalness`` where they were
        asked for, and a ``pairs`` list of per-pair results (with ``embedding_*`` and ``dnsmos_*`` entries
        where those are).
    Raises:
        EvaluationError: no pairs, real utterances of fewer than two speakers, or a target speaker without any.
        ValueError: ``texts`` not one per pair.
        ModuleNotFoundError: ``texts`` without a ``recognizer``, and pocketsphinx is not installed.
    """
    pairs = [ConversionPair(*p) for p in pairs]
    if not pairs:
        raise EvaluationError("no conversion pairs to evaluate")
    if texts is not None and len(texts) != len(pairs):
        raise ValueError(f"texts: expected one per pair ({len(pairs)}), got {len(texts)}")
    if texts is not None and recognizer is None and any(t and normalize_words(t) for t in texts):
        recognizer = Recognizer()  # before the slow part, so a missing pocketsphinx fails at once
    sr = model.sample_rate
    real_speakers = sorted({str(s) for _, _, s in real_items})
    if len(real_speakers) < 2:
        raise EvaluationError(
            f"the speaker classifier needs real utterances of two speakers or more, got {real_speakers}"
        )
    clf, speaker_info = train_speaker_classifier(
        [_mono(w) for _, w, _ in real_items],
        [str(s) for _, _, s in real_items],
        sr,
        held_out_fraction=held_out_fraction,
        seed=seed,
    )
    missing = sorted({str(p.target_speaker) for p in pairs} - set(clf.speakers))
    if missing:
        raise EvaluationError(f"target speaker(s) {missing} have no real utterances to train the speaker classifier on")
    proba = clf.predict_proba([_mono(p.converted) for p in pairs])  # (P, S)
    predicted = [clf.speakers[i] for i in proba.argmax(1).tolist()]

    per_pair, agree, frames = [], 0, 0
    tracks: dict[str, list[PitchTrack]] = {"converted": [], "source": [], "target": []}
    hist_source, hist_converted = np.zeros(model.quantizer.codebook_size), np.zeros(model.quantizer.codebook_size)
    with _eval_mode(model):
        for p, pred, post in zip(pairs, predicted, proba):
            source_codes, converted_codes = _codes(model, p.source), _codes(model, p.converted)
            n = min(source_codes.numel(), converted_codes.numel())
            same = int((source_codes[:n] == converted_codes[:n]).sum())
            agree, frames = agree + same, frames + n
            hist_source += np.bincount(source_codes[:n].numpy(), minlength=hist_source.size)
            hist_converted += np.bincount(converted_codes[:n].numpy(), minlength=hist_converted.size)
            row = {
                "source_speaker": str(p.source_speaker),
                "target_speaker": str(p.target_speaker),
                "predicted_speaker": pred,
                "target_posterior": float(post[clf.speakers.index(str(p.target_speaker))]),
                "code_agreement": same / n if n else None,
                "mcd_target": None,
                "mcd_source_target": None,
            }
            if p.target is not None:
                target = _mono(p.target)
                row["mcd_target"] = mel_cepstral_distortion(target, _mono(p.converted), sr)
                row["mcd_source_target"] = mel_cepstral_distortion(target, _mono(p.source), sr)
            for name, key, wav in _voicing_audio(p):
                track = None if wav is None else yin(_mono(wav), sr)
                if track is not None:
                    tracks[name].append(track)
                row[f"voiced_{key}"] = None if track is None else track.voiced_fraction
                row[f"f0_{key}_hz"] = None if track is None else track.median_f0
            per_pair.append(row)

    known_source = [r for r in per_pair if r["source_speaker"] in clf.speakers]
    parallel = [r for r in per_pair if r["mcd_target"] is not None]
    chance = None
    if frames:
        chance = float((hist_source / frames) @ (hist_converted / frames))
    reconstruction = None
    if reconstructions:
        scores = [reconstruction_metrics(_mono(a), _mono(b), sr) for a, b in reconstructions]
        reconstruction = {
            "mcd": float(np.mean([s["mcd"] for s in scores])),
            "log_mel_distance_db": float(np.mean([s["log_mel_distance_db"] for s in scores])),
            "voiced_resynthesis": pooled_voicing([yin(_mono(b), sr) for _, b in reconstructions])[0],
            "voiced_original": pooled_voicing([yin(_mono(a), sr) for a, _ in reconstructions])[0],
            "n": len(scores),
        }
    voicing: dict[str, Any] = {}
    for name, key, _ in _voicing_audio(pairs[0]):
        voicing[f"voiced_{key}"], voicing[f"f0_{key}_hz"] = pooled_voicing(tracks[name])
    voicing["n_target_real"] = len(tracks["target"])
    result = {
        "sample_rate": sr,
        "n_pairs": len(pairs),
        "speaker": {
            "classifier_accuracy": speaker_info["held_out_accuracy"],
            "classifier_accuracy_noisy": speaker_info["held_out_accuracy_noisy"],
            "classifier_train_utterances": speaker_info["n_train"],
            "classifier_held_out_utterances": speaker_info["n_held_out"],
            "speakers": clf.speakers,
            "target_rate": float(np.mean([r["predicted_speaker"] == r["target_speaker"] for r in per_pair])),
            "source_rate": (
                float(np.mean([r["predicted_speaker"] == r["source_speaker"] for r in known_source]))
                if known_source
                else None
            ),
            "n_source_known": len(known_source),
            "target_posterior": float(np.mean([r["target_posterior"] for r in per_pair])),
        },
        "content": {
            "code_agreement": agree / frames if frames else None,
            "code_agreement_chance": chance,
            "n_frames": frames,
            "mcd_target": float(np.mean([r["mcd_target"] for r in parallel])) if parallel else None,
            "mcd_source_target": float(np.mean([r["mcd_source_target"] for r in parallel])) if parallel else None,
            "n_parallel": len(parallel),
            "mcd_definition": MCD_DEFINITION,
            "mcd_alpha": mcep_alpha(sr),
            **_word_error_rates(pairs, per_pair, texts, recognizer, sr),
        },
        "voicing": voicing,
        "reconstruction": reconstruction,
        "pairs": per_pair,
    }
    if speaker_encoder is not None:
        result["speaker_embedding"], rows = embedding_speaker_metrics(
            speaker_encoder,
            [_mono(w) for _, w, _ in real_items],
            [str(s) for _, _, s in real_items],
            [(_mono(p.converted), p.source_speaker, p.target_speaker) for p in pairs],
            sr,
            held_out_fraction=held_out_fraction,
            seed=seed,
        )
        for row, extra in zip(per_pair, rows):
            row.update(extra)
    if dnsmos is not None:
        result["naturalness"] = _naturalness(dnsmos, pairs, per_pair, reconstructions or [], sr)
    return result


def _voicing_audio(p: ConversionPair) -> tuple[tuple[str, str, Tensor | None], ...]:
    """(name, result key, waveform or None) of the recordings of a pair whose voicing is reported."""
    return (
        ("converted", "converted", p.converted),
        ("source", "source_real", p.source),
        ("target", "target_real", p.target),
    )


def _naturalness(
    scorer: DNSMOS,
    pairs: Sequence[ConversionPair],
    rows: list[dict[str, Any]],
    reconstructions: Sequence[tuple[Tensor, Tensor]],
    sr: int,
) -> dict[str, Any]:
    """``evaluate_conversion``'s DNSMOS group; adds ``dnsmos_converted`` and ``dnsmos_target_real`` to each row."""
    groups = {
        "converted": [p.converted for p in pairs],
        "resynthesis": [b for _, b in reconstructions],
        "original": [a for a, _ in reconstructions],
        "target_real": [p.target for p in pairs],
    }
    summary, scores = naturalness(scorer, {k: [w if w is None else _mono(w) for w in v] for k, v in groups.items()}, sr)
    for row, converted, target in zip(rows, scores["converted"], scores["target_real"]):
        row["dnsmos_converted"], row["dnsmos_target_real"] = converted, target
    return summary


def _word_error_rates(
    pairs: Sequence[ConversionPair],
    rows: list[dict[str, Any]],
    texts: Sequence[str | None] | None,
    recognizer: Recognizer | None,
    sr: int,
) -> dict[str, Any]:
    """``evaluate_conversion``'s WER entries; adds each scored pair's text and transcripts to its row."""
    totals = {"converted": [0, 0], "source": [0, 0], "target": [0, 0]}  # [errors, reference words]
    n = n_target = 0
    for p, row, text in zip(pairs, rows, texts or ()):
        if not text or not normalize_words(text):
            continue
        audio = {"converted": p.converted, "source": p.source, "target": p.target}
        row["text"] = text
        for name, wav in audio.items():
            hyp = None if wav is None else recognizer.transcribe(_mono(wav), sr)
            row[f"hypothesis_{name}"] = hyp
            if hyp is not None:
                errors, words = word_errors(text, hyp)
                totals[name][0] += errors
                totals[name][1] += words
                if name == "converted":
                    row["wer_converted"] = errors / words
        n, n_target = n + 1, n_target + (p.target is not None)

    def rate(name: str) -> float | None:
        errors, words = totals[name]
        return errors / words if words else None

    return {
        "wer_converted": rate("converted"),
        "wer_source_real": rate("source"),
        "wer_target_real": rate("target"),
        "n_wer": n,
        "n_wer_target": n_target,
    }


NATURALNESS_GROUPS = (  # (key of the naturalness group, label)
    ("converted", "converted"),
    ("resynthesis", "resynthesis"),
    ("original", "resynthesis originals"),
    ("target_real", "real target readings"),
)


def format_conversion_report(result: Mapping[str, Any]) -> str:
    """A short readable summary of ``evaluate_conversion``' result."""
    spk, content, rec = result["speaker"], result["content"], result["reconstruction"]
    lines = [
        f"conversion: {result['n_pairs']} pairs; speaker classifier over {len(spk['speakers'])} speakers, "
        f"held-out accuracy {percent(spk['classifier_accuracy'])} % "
        f"({spk['classifier_held_out_utterances']} utterances), "
        f"{percent(spk.get('classifier_accuracy_noisy'))} % with white noise at {CHECK_SNR_DB:g} dB SNR",
        f"  classified as target     {percent(spk['target_rate']):>6} %   "
        f"(mean target posterior {number(spk['target_posterior'])})",
        f"  classified as source     {percent(spk['source_rate']):>6} %   "
        f"({spk['n_source_known']} pairs with a known source)",
        *_embedding_lines(result.get("speaker_embedding")),
        f"  code agreement           {percent(content['code_agreement']):>6} %   "
        f"(chance {percent(content['code_agreement_chance'])} %, {content['n_frames']} frames)",
    ]
    if content["n_parallel"]:
        lines.append(
            f"  MCD to parallel target   {number(content['mcd_target'], 2):>6} dB  "
            f"(source vs target {number(content['mcd_source_target'], 2)} dB, {content['n_parallel']} pairs; "
            f"SPTK-style mel-cepstra, order 24, alpha {content.get('mcd_alpha', '-')}, c0 excluded, DTW)"
        )
    voicing = result.get("voicing")
    if voicing:
        lines.append(
            f"  voiced frames converted  {percent(voicing['voiced_converted']):>6} %   "
            f"(real source {percent(voicing['voiced_source_real'])} %, "
            f"real target {percent(voicing['voiced_target_real'])} %; YIN)"
        )
        lines.append(
            f"  median f0 converted      {number(voicing['f0_converted_hz'], 0):>6} Hz  "
            f"(real target {number(voicing['f0_target_real_hz'], 0)} Hz, "
            f"real source {number(voicing['f0_source_real_hz'], 0)} Hz)"
        )
    if content.get("n_wer"):
        lines.append(
            f"  WER converted            {percent(content['wer_converted']):>6} %   "
            f"(source real {percent(content['wer_source_real'])} %, {content['n_wer']} pairs)"
        )
    if content.get("n_wer_target"):
        lines.append(
            f"  WER target real          {percent(content['wer_target_real']):>6} %   "
            f"(same sentence, target speaker's reading; {content['n_wer_target']} pairs)"
        )
    if rec:
        lines.append(
            f"  reconstruction           MCD {number(rec['mcd'], 2)} dB, "
            f"log-mel {number(rec['log_mel_distance_db'], 2)} dB, voiced {percent(rec.get('voiced_resynthesis'))} % "
            f"(original {percent(rec.get('voiced_original'))} %)"
            f" ({rec['n']} utterances)"
        )
    lines += _naturalness_lines(result.get("naturalness"))
    lines += [f"  note: {note}" for note in result.get("notes", ())]
    return "\n".join(lines)


def _embedding_lines(emb: Mapping[str, Any] | None) -> list[str]:
    """The report's speaker-embedding lines (none when it was not measured)."""
    if not emb:
        return []
    return [
        f"  embedding: as target     {percent(emb['target_rate']):>6} %   "
        f"(cosine to the target's centroid {number(emb['target_similarity'])}; Resemblyzer, nearest centroid)",
        f"  embedding: as source     {percent(emb['source_rate']):>6} %   "
        f"(cosine to the source's centroid {number(emb['source_similarity'])}, {emb['n_source_known']} pairs)",
        f"  embedding on real speech {percent(emb['accuracy']):>6} %   "
        f"(held-out accuracy, {emb['held_out_utterances']} utterances; cosine to their own centroid "
        f"{number(emb['real_own_similarity'])}, to the others {number(emb['real_other_similarity'])})",
    ]


def _naturalness_lines(nat: Mapping[str, Any] | None) -> list[str]:
    """The report's DNSMOS table (none when it was not measured)."""
    if not nat:
        return []
    lines = [
        f"  {'DNSMOS (1-5)':<25}" + " ".join(f"{h:>5}" for h in ("P.808", "SIG", "BAK", "OVRL")) + "   (utterances)"
    ]
    for key, label in NATURALNESS_GROUPS:
        if nat.get(key):
            g = nat[key]
            lines.append(f"    {label:<23}" + " ".join(f"{number(g[k], 2):>5}" for k in SCORES) + f"   ({g['n']})")
    return lines
