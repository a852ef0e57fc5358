"""Evaluation metrics: unit discovery against phones, ABX, bitrate, speaker identity, spectral distances.

Modules: ``units`` (phone-mapping accuracy, purities, PNMI, bitrate), ``abx`` (triphone ABX within
and across speakers), ``dtw``, ``features`` (the standard MFCC k-means baseline on code-aligned frames),
``speaker`` (the speaker classifier), ``spectral`` (MCD, log-mel distance), and with the ``eval`` extra
``dnsmos`` (naturalness) and ``speaker_embedding`` (a speaker-verification network's similarity). The
entry points that run them on a model are in ``audio_vqvae.evaluation.evaluate``.
"""

from __future__ import annotations

from ...data.spectrum import log_mel_frames, mfcc_frames
from .abx import ABXItem, abx_error, abx_items
from .dtw import dtw, dtw_mean
from .features import KMeansUnits, baseline_frames, cmvn
from .speaker import SpeakerClassifier, add_white_noise, speaker_embedding, train_speaker_classifier
from .spectral import log_mel_distance, mel_cepstral_distortion, mel_cepstrum, reconstruction_metrics
from .units import SILENCE_PHONES, bitrate, contingency, phone_mapping_accuracy, purity_and_pnmi

__all__ = [
    "ABXItem",
    "KMeansUnits",
    "SILENCE_PHONES",
    "SpeakerClassifier",
    "abx_error",
    "abx_items",
    "baseline_frames",
    "bitrate",
    "cmvn",
    "contingency",
    "dtw",
    "dtw_mean",
    "log_mel_distance",
    "log_mel_frames",
    "mel_cepstral_distortion",
    "mel_cepstrum",
    "mfcc_frames",
    "phone_mapping_accuracy",
    "purity_and_pnmi",
    "reconstruction_metrics",
    "add_white_noise",
    "speaker_embedding",
    "train_speaker_classifier",
]
