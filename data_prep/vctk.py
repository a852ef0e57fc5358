"""``python -m data_prep.vctk``, the same as ``audio-vqvae prepare vctk`` (audio_vqvae.corpora)."""

from audio_vqvae.corpora.vctk import main, prepare

__all__ = ["main", "prepare"]

if __name__ == "__main__":
    raise SystemExit(main())
