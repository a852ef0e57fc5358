#!/usr/bin/env bash
# Offline demo: build the built-in SYNTHETIC corpus (formant-synthesised, not speech), train a small model.
# Usage: recipes/demo/run.sh [--stage N] [--stop-stage N] [--out DIR] [--steps N]
# Stages: 1 prepare the synthetic corpus, 2 train. (Conversion, tokens and evaluation join in later releases.)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
stage=1
stop_stage=2
out=exp/demo
steps=""
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
data="$out/data"
cd "$root"

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  echo "== stage 1: synthetic corpus (not speech) -> $data"
  python -m data_prep.synthetic "$data" --n-speakers 4 --n-sentences 20
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  echo "== stage 2: train -> $out/model (TensorBoard: tensorboard --logdir $out/model/tensorboard)"
  extra=()
  if [ -n "$steps" ]; then extra=(--set "train.steps=$steps"); fi
  audio-vqvae train --preset tiny --config "$here/conf/demo.yaml" --data "$data" --out "$out/model" "${extra[@]}"
fi
