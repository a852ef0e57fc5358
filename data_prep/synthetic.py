"""``python -m data_prep.synthetic``, the same as ``audio-vqvae prepare synthetic`` (audio_vqvae.data.corpora)."""

from audio_vqvae.data.corpora.synthetic import main, prepare

__all__ = ["main", "prepare"]

if __name__ == "__main__":
    raise SystemExit(main())
