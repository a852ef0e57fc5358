#!/usr/bin/env bash
# Offline demo: the built-in SYNTHETIC corpus (formant-synthesised, not speech), a small model, conversions,
# tokens, evaluation and a report (EXP/report.md, and EXP/report.html that plays the audio; PNG pictures).
# About 4 minutes on 2 CPU cores.
# Usage: recipes/demo/run.sh [--stage N] [--stop-stage N] [--out DIR] [--steps N] [--conf FILE]
#                            [--prior-steps N] [--prior-conf FILE]
# Stages: 1 synthetic corpus, 2 train, 3 convert test utterances to other speakers, 4 extract tokens,
#         5 evaluate units (vs the MFCC k-means baseline) and conversion, 6 a prior over the codes, samples
#         from it and its evaluation, 7 report.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
stage=1
stop_stage=7
out=exp/demo
steps=""
conf="$here/conf/demo.yaml"
prior_steps=""
prior_conf="$here/conf/prior.yaml"
options="stage stop_stage out steps conf prior_steps prior_conf"
# shellcheck source=recipes/parse_options.sh
. "$here/../parse_options.sh"
conf=$(cd "$(dirname "$conf")" && pwd)/$(basename "$conf")
prior_conf=$(cd "$(dirname "$prior_conf")" && pwd)/$(basename "$prior_conf")
cd "$root"
data="$out/data"
model="$out/model"
ckpt="$model/last.pt"

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  echo "== stage 1: synthetic corpus (not speech) -> $data"
  # 5 of the 24 sentences are held out for the test split (20 utterances), so the figures rest on more than one
  audio-vqvae prepare synthetic "$data" --n-speakers 4 --n-sentences 24 --test-fraction 0.2
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  echo "== stage 2: train -> $model (TensorBoard: tensorboard --logdir $model/tensorboard)"
  extra=()
  if [ -n "$steps" ]; then extra=(--set "train.steps=$steps"); fi
  audio-vqvae train --preset tiny --config "$conf" --data "$data" --out "$model" "${extra[@]}"
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  echo "== stage 3: convert test utterances to other speakers -> $out/converted"
  python -m audio_vqvae.evaluation.report pairs --manifest "$data/test.jsonl" --out "$out/pairs.txt" \
    --eval-out "$out/eval_pairs.txt" --n-sources 12 --n-targets 1
  audio-vqvae convert --ckpt "$ckpt" --pairs "$out/pairs.txt" --out "$out/converted" --force
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  echo "== stage 4: tokens of the test split -> $out/tokens"
  audio-vqvae encode --ckpt "$ckpt" --manifest "$data/test.jsonl" --format units,jsonl --dedup \
    --out "$out/tokens" --force
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  echo "== stage 5: evaluate units and conversion -> $out/eval"
  mkdir -p "$out/eval"
  # --abx-context any: the small test split has too few phone triples sharing a context.
  audio-vqvae evaluate units --ckpt "$ckpt" --data "$data" --abx-context any --out "$out/eval/units.json"
  audio-vqvae evaluate conversion --ckpt "$ckpt" --data "$data" --pairs "$out/eval_pairs.txt" \
    --out "$out/eval/conversion.json"
fi

if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
  echo "== stage 6: a prior over the codes of train -> $out/prior; samples -> $out/samples; its evaluation"
  for split in train valid; do
    audio-vqvae encode --ckpt "$ckpt" --manifest "$data/$split.jsonl" --out "$out/prior/tokens_$split" --force
  done
  extra=()
  if [ -n "$prior_steps" ]; then extra=(--set "train.steps=$prior_steps"); fi
  audio-vqvae train-prior --tokens "$out/prior/tokens_train" --valid-tokens "$out/prior/tokens_valid" \
    --data "$data" --out "$out/prior/model" --config "$prior_conf" "${extra[@]}"
  speaker=$(head -n 1 "$data/speakers.txt")
  audio-vqvae sample --prior "$out/prior/model/last.pt" --vqvae "$ckpt" --speaker "$speaker" --seconds 1 \
    --count 4 --out "$out/samples" --force
  mkdir -p "$out/eval"
  audio-vqvae evaluate prior --prior "$out/prior/model/last.pt" --tokens "$out/prior/tokens_train" \
    --test-tokens "$out/tokens" --data "$data" --vqvae "$ckpt" --seconds 1 --samples-per-speaker 2 \
    --out "$out/eval/prior.json"
fi

if [ "$stage" -le 7 ] && [ "$stop_stage" -ge 7 ]; then
  echo "== stage 7: report -> $out/report.md, $out/report.html (links relative: the folder can be moved)"
  python -m audio_vqvae.evaluation.report write --out "$out/report.md" --data "$data" --synthetic \
    --tensorboard "$model/tensorboard" --units-json "$out/eval/units.json" \
    --conversion-json "$out/eval/conversion.json" --tokens "$out/tokens" \
    --converted "$out/converted" --pairs "$out/pairs.txt" --prior-json "$out/eval/prior.json" \
    --samples "$out/samples" --title "audio_vqvae offline demo (synthetic corpus)"
fi
