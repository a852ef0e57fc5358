"""Corpus preparation: one module per corpus, each a ``prepare(...)`` function and a thin ``main()``."""
