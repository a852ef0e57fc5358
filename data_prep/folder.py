"""``python -m data_prep.folder``, the same as ``audio-vqvae prepare folder`` (audio_vqvae.data.corpora)."""

from audio_vqvae.data.corpora.folder import main, prepare

__all__ = ["main", "prepare"]

if __name__ == "__main__":
    raise SystemExit(main())
