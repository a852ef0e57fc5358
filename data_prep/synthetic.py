"""``python -m data_prep.synthetic``, the same as ``audio-vqvae prepare synthetic`` (audio_vqvae.corpora)."""

from audio_vqvae.corpora.synthetic import main, prepare

__all__ = ["main", "prepare"]

if __name__ == "__main__":
    raise SystemExit(main())
