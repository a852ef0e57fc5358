"""``python -m data_prep.vctk``, the same as ``audio-vqvae prepare vctk`` (audio_vqvae.data.corpora)."""

from audio_vqvae.data.corpora.vctk import main, prepare

__all__ = ["main", "prepare"]

if __name__ == "__main__":
    raise SystemExit(main())
