"""Corpus preparation: one module per corpus, each a ``prepare(...)`` function and a thin ``main(argv)``.

Run as ``audio-vqvae prepare CORPUS ...`` (or ``python -m data_prep.CORPUS`` from a clone).
"""

CORPORA = ("vctk", "librispeech", "folder", "synthetic")
