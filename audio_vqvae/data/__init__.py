"""Audio and corpora: reading, resampling and writing audio, manifests and phone alignments, preparing
a corpus folder from VCTK, LibriSpeech, your own folder or the built-in synthetic corpus."""
