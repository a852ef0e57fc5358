"""Corpus preparation from a clone: ``python -m data_prep.CORPUS``, the same as ``audio-vqvae prepare CORPUS``."""
