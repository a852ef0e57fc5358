#!/usr/bin/env bash
# Unsupervised phoneme-like unit discovery on LibriSpeech: prepare (with phone alignments you supply),
# train a VQ-VAE with a coarse hop, a small codebook and time-jitter, extract units, evaluate them
# against the MFCC k-means baseline, write them in the fairseq/textlesslib and ZeroSpeech layouts, and
# train a prior over the units that samples speech.
# Usage: recipes/units/run.sh --corpus LIBRISPEECH_DIR --alignments PATH [--stage N] [--stop-stage N]
#                             [--subset "train-clean-100 dev-clean"] [--out DIR] [--conf units|cpu|gpu|debug] [--steps N]
#                             [--splits "train valid test"] [--prior-steps N] [--sample-seconds S]
# Stages: 1 prepare, 2 train, 3 extract frame units of every split, 4 evaluate units on the test split,
#         5 write fairseq/textlesslib (units.txt + durations.txt, de-duplicated) and ZeroSpeech (vectors) layouts,
#         6 train a speaker-conditioned prior over the train split's units (conf/prior_cpu.yaml with --conf cpu,
#         conf/prior_debug.yaml with debug, the defaults otherwise), 7 sample speech from it and evaluate it.
# The subset can also come from the environment: SUBSET="train-clean-360" recipes/units/run.sh ...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
stage=1
stop_stage=7
corpus=downloads/LibriSpeech
alignments=""
subset=${SUBSET:-train-clean-100}
out=exp/units
conf=units
steps=""
splits="train valid test"  # splits extracted (stage 3) and written out (stage 5)
prior_steps=""
sample_seconds=2
options="stage stop_stage corpus alignments subset out conf steps splits prior_steps sample_seconds"
# shellcheck source=recipes/parse_options.sh
. "$here/../parse_options.sh"
case "$conf" in
  units | cpu | gpu) preset=default ;;
  debug) preset=tiny ;;
  *) echo "run.sh: --conf must be units, cpu, gpu or debug, not $conf" >&2; exit 2 ;;
esac
prior_conf=()  # the prior's overrides: its defaults (a GPU's size) unless a CPU or debug run
case "$conf" in
  cpu) prior_conf=(--config "$here/conf/prior_cpu.yaml") ;;
  debug) prior_conf=(--config "$here/conf/prior_debug.yaml") ;;
esac
cd "$root"
data="$out/data"
model="$out/model"
ckpt="$model/last.pt"
read -r -a splits <<< "$splits"  # the --splits string, as an array

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  if [ -z "$alignments" ]; then
    echo "run.sh: stage 1 needs --alignments (MFA TextGrids or a phone table; see recipes/units/README.md)" >&2
    exit 2
  fi
  read -r -a subsets <<< "$subset"
  echo "== stage 1: prepare $corpus (${subsets[*]}) with alignments $alignments -> $data"
  audio-vqvae prepare librispeech "$corpus" "$data" --subsets "${subsets[@]}" --alignments "$alignments"
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  echo "== stage 2: train ($conf) -> $model (TensorBoard: tensorboard --logdir $model/tensorboard)"
  extra=()
  if [ -n "$steps" ]; then extra=(--set "train.steps=$steps"); fi
  audio-vqvae train --preset "$preset" --config "$here/conf/$conf.yaml" --data "$data" --out "$model" "${extra[@]}"
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  for split in "${splits[@]}"; do
    echo "== stage 3: frame units of $split -> $out/units/$split"
    audio-vqvae encode --ckpt "$ckpt" --manifest "$data/$split.jsonl" --format units,codes \
      --out "$out/units/$split" --force
  done
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  echo "== stage 4: evaluate units (test split) against the MFCC k-means baseline -> $out/eval/units.json"
  mkdir -p "$out/eval"
  audio-vqvae evaluate units --ckpt "$ckpt" --data "$data" --train-split train --eval-split test \
    --out "$out/eval/units.json"
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  for split in "${splits[@]}"; do
    echo "== stage 5: $split in the fairseq/textlesslib layout -> $out/fairseq/$split"
    audio-vqvae encode --ckpt "$ckpt" --manifest "$data/$split.jsonl" --format units,jsonl --dedup \
      --out "$out/fairseq/$split" --force
    echo "== stage 5: $split in the ZeroSpeech layout -> $out/zerospeech/$split/vectors"
    audio-vqvae encode --ckpt "$ckpt" --manifest "$data/$split.jsonl" --format vectors \
      --out "$out/zerospeech/$split" --force
  done
fi

if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
  echo "== stage 6: a prior over the units of train (validated on valid) -> $out/prior"
  extra=()
  if [ -n "$prior_steps" ]; then extra=(--set "train.steps=$prior_steps"); fi
  audio-vqvae train-prior --tokens "$out/units/train" --valid-tokens "$out/units/valid" --data "$data" \
    --out "$out/prior" "${prior_conf[@]}" "${extra[@]}"
fi

if [ "$stage" -le 7 ] && [ "$stop_stage" -ge 7 ]; then
  speaker=$(head -n 1 "$data/speakers.txt")
  echo "== stage 7: samples of the prior in $speaker's voice -> $out/samples; evaluate it -> $out/eval/prior.json"
  audio-vqvae sample --prior "$out/prior/last.pt" --vqvae "$ckpt" --speaker "$speaker" \
    --seconds "$sample_seconds" --count 4 --out "$out/samples" --force
  mkdir -p "$out/eval"
  audio-vqvae evaluate prior --prior "$out/prior/last.pt" --tokens "$out/units/train" \
    --test-tokens "$out/units/test" --data "$data" --vqvae "$ckpt" --seconds "$sample_seconds" \
    --out "$out/eval/prior.json"
fi
