#!/usr/bin/env bash
# VCTK voice conversion, the paper's experiment: download VCTK 0.92, prepare, train (64x downsampling,
# K=512, speaker-conditioned WaveNet), convert held-out sentences to several speakers, evaluate.
# Usage: recipes/vctk/run.sh [--stage N] [--stop-stage N] [--corpus DIR] [--out DIR] [--conf paper|gpu|cpu|debug]
#                            [--steps N] [--n-sources N] [--n-targets N]
# Stages: 0 download VCTK 0.92 (skipped when --corpus exists), 1 prepare, 2 train,
#         3 convert held-out test sentences to other speakers, 4 evaluate conversion.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
url=https://datashare.ed.ac.uk/bitstream/handle/10283/3443/VCTK-Corpus-0.92.zip
stage=0
stop_stage=4
corpus=downloads/VCTK-Corpus-0.92
out=exp/vctk
conf=paper
steps=""
n_sources=8   # held-out source utterances (from the test split: sentences no training utterance reads)
n_targets=3   # target speakers per source
options="stage stop_stage corpus out conf steps n_sources n_targets"
# shellcheck source=recipes/parse_options.sh
. "$here/../parse_options.sh"
case "$conf" in
  paper) preset=default ;;  # the paper's sizes with the default training choices (--preset paper: as published)
  gpu) preset=default ;;  # the paper's sizes, log-mel front end, bf16: the configuration measured on one GPU
  cpu) preset=default ;;  # a 2 x 10-layer LPC source-filter WaveNet: the configuration measured on 2 CPU cores
  debug) preset=tiny ;;
  *) echo "run.sh: --conf must be paper, gpu, cpu or debug, not $conf" >&2; exit 2 ;;
esac
cd "$root"
data="$out/data"
model="$out/model"
ckpt="$model/last.pt"

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  if [ -d "$corpus" ]; then
    echo "== stage 0: $corpus exists, no download"
  else
    echo "== stage 0: download VCTK 0.92 (about 11 GB) -> $corpus"
    dest=$(dirname "$corpus")
    mkdir -p "$dest"
    zip="$dest/VCTK-Corpus-0.92.zip"
    if command -v curl > /dev/null; then
      curl -L --fail --continue-at - -o "$zip" "$url"
    else
      wget -c -O "$zip" "$url"
    fi
    mkdir -p "$corpus"
    unzip -q "$zip" -d "$corpus"
  fi
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  echo "== stage 1: prepare $corpus -> $data"
  audio-vqvae prepare vctk "$corpus" "$data"
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  echo "== stage 2: train ($conf) -> $model (TensorBoard: tensorboard --logdir $model/tensorboard)"
  extra=()
  if [ -n "$steps" ]; then extra=(--set "train.steps=$steps"); fi
  audio-vqvae train --preset "$preset" --config "$here/conf/$conf.yaml" --data "$data" --out "$model" "${extra[@]}"
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  echo "== stage 3: convert $n_sources held-out utterances to $n_targets speakers each -> $out/converted"
  python -m audio_vqvae.evaluation.report pairs --manifest "$data/test.jsonl" --out "$out/pairs.txt" \
    --eval-out "$out/eval_pairs.txt" --n-sources "$n_sources" --n-targets "$n_targets"
  audio-vqvae convert --ckpt "$ckpt" --pairs "$out/pairs.txt" --out "$out/converted" --force
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  echo "== stage 4: evaluate conversion -> $out/eval/conversion.json"
  mkdir -p "$out/eval"
  audio-vqvae evaluate conversion --ckpt "$ckpt" --data "$data" --pairs "$out/eval_pairs.txt" \
    --out "$out/eval/conversion.json"
fi
