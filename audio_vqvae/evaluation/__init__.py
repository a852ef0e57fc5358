"""Evaluation: unit discovery against phone alignments beside an MFCC k-means baseline, conversion
(speaker classifier, MCD, voicing, WER), the metrics themselves (``metrics/``) and the demo report.
The entry points are in ``evaluate``."""
