"""``python -m data_prep.librispeech``, the same as ``audio-vqvae prepare librispeech`` (audio_vqvae.data.corpora)."""

from audio_vqvae.data.corpora.librispeech import main, prepare

__all__ = ["main", "prepare"]

if __name__ == "__main__":
    raise SystemExit(main())
