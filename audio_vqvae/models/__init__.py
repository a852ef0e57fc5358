"""The models: the encoders (waveform and log-mel), the vector quantizer, the WaveNet and mel decoders, the
speaker adversary, pre-emphasis, and the VQ-VAE that joins them (``vqvae.VQVAE``). Nothing here imports
from a layer above (generation is the one exception: ``VQVAE.decode`` is its whole-tensor convenience)."""
