#!/usr/bin/env bash
# Every check that needs a GPU, in one command, for a machine with CUDA (run from anywhere):
#   1. the CUDA tests (CUDA-graph generation vs eager steps and the PyTorch loop; AMP training),
#   2. bench/generate.py --device cuda (CUDA-graph replay vs the PyTorch loop vs naive),
#   3. bench/train.py --device cuda (fp32, bf16 and fp16 + GradScaler training steps),
#   4. a torchrun training run with NCCL on every GPU (one process per GPU), then a CUDA conversion.
# Usage: bench/gpu_check.sh [--quick] [--out DIR]   (DIR keeps the logs; default a temporary folder)
# Env: PYTHON (default python3), STAGE_TIMEOUT seconds per stage (default 300): a stage that fails or
# hangs is reported and the next one runs, so one hang cannot spend a whole GPU lease.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
quick=()
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=(--quick); shift ;;
    --out) out=$2; shift 2 ;;
    *) echo "gpu_check.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
out=${out:-$(mktemp -d)}
mkdir -p "$out"
cd "$root" || exit 1
py=${PYTHON:-python3}
limit=${STAGE_TIMEOUT:-300}
failed=()
stage() {  # stage NAME LOG COMMAND...: run under the time limit, tee to LOG, note a failure
  local name=$1 log=$2; shift 2
  echo "== $name ($(date +%T))"
  timeout "$limit" "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  [ "$rc" = 0 ] || { echo "gpu_check.sh: stage '$name' failed with status $rc (124: over ${limit} s)"; failed+=("$name"); }
}
echo "== 0. CUDA ($(date +%T))"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
timeout 120 "$py" -c "import torch, sys; print('torch', torch.__version__); sys.exit(0 if torch.cuda.is_available() else 'gpu_check.sh: no CUDA device')" || exit 1
gpus=$(timeout 120 "$py" -c "import torch; print(torch.cuda.device_count())") || exit 1

stage "1. CUDA tests" "$out/tests.log" "$py" -m pytest -q -rs tests/test_graphgen.py tests/test_train.py -k cuda
stage "2. generation speed" "$out/generate.log" "$py" bench/generate.py --device cuda "${quick[@]}"
stage "3. training speed" "$out/train.log" "$py" bench/train.py --device cuda
stage "4a. corpus" "$out/data.log" "$py" -m data_prep.synthetic "$out/data" --n-speakers 2 --n-sentences 6
stage "4b. torchrun on $gpus GPU(s) with NCCL" "$out/ddp.log" "$py" -m torch.distributed.run --standalone \
  --nproc_per_node "$gpus" -m audio_vqvae train --preset tiny --data "$out/data" --out "$out/model" \
  --set train.steps=40 train.precision=fp16 train.device=cuda train.checkpoint_every=20
echo "== 4c. conversion on CUDA ($(date +%T))"
timeout "$limit" "$py" - "$out" <<'PY' || failed+=("4c. conversion on CUDA")
import sys, time
import torch
from audio_vqvae.checkpoint import load_checkpoint
from audio_vqvae.generation import generate
from audio_vqvae.models.vqvae import VQVAE

out = sys.argv[1]
state = load_checkpoint(f"{out}/model/last.pt")
print(f"checkpoint: step {state['step']}, world size {state['world_size']}, loss scale {state['scaler'].get('scale')}")
model = VQVAE.load(f"{out}/model/last.pt", map_location="cuda")
codes = torch.randint(0, model.quantizer.codebook_size, (4, 250), device="cuda")  # 4 x 1 s of codes
speaker = torch.arange(4, device="cuda") % model.decoder.n_speakers
latents = model.quantizer.dequantize(codes)
for backend in ("graph", "torch"):
    generate(model.decoder, latents[..., :2], speaker, backend=backend)
    torch.cuda.synchronize()
    start = time.perf_counter()
    generate(model.decoder, latents, speaker, backend=backend)
    torch.cuda.synchronize()
    print(f"tiny model, batch 4 x 1 s: {backend} {4 * 250 * model.hop_length / (time.perf_counter() - start):,.0f} samples/s")
PY
if [ ${#failed[@]} -gt 0 ]; then
  echo "gpu_check.sh: failed stages: ${failed[*]}; logs in $out"
  exit 1
fi
echo "gpu_check.sh: all done; logs in $out"
