#!/usr/bin/env bash
# Every check that needs a GPU, in one command, for a machine with CUDA (run from anywhere):
#   1. the CUDA tests (CUDA-graph generation vs eager steps and the PyTorch loop; AMP training),
#   2. bench/generate.py --device cuda (CUDA-graph replay vs the PyTorch loop vs naive),
#   3. bench/train.py --device cuda (fp32, bf16 and fp16 + GradScaler training steps),
#   4. a torchrun training run with NCCL on every GPU (one process per GPU), then a CUDA conversion.
# Usage: bench/gpu_check.sh [--quick] [--out DIR]   (DIR keeps the logs; default a temporary folder)
set -euo pipefail
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
cd "$root"
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_check.sh: no CUDA device')"
gpus=$(python -c "import torch; print(torch.cuda.device_count())")
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

echo "== 1. CUDA tests"
python -m pytest -q -rs tests/test_graphgen.py tests/test_train.py -k cuda 2>&1 | tee "$out/tests.log"

echo "== 2. generation speed"
python bench/generate.py --device cuda "${quick[@]}" 2>&1 | tee "$out/generate.log"

echo "== 3. training speed"
python bench/train.py --device cuda 2>&1 | tee "$out/train.log"

echo "== 4. torchrun on $gpus GPU(s) with NCCL, then conversion on CUDA"
python -m data_prep.synthetic "$out/data" --n-speakers 2 --n-sentences 6 >"$out/data.log"
torchrun --standalone --nproc_per_node "$gpus" -m audio_vqvae train --preset tiny --data "$out/data" \
  --out "$out/model" --set train.steps=40 train.precision=fp16 train.device=cuda train.checkpoint_every=20 \
  2>&1 | tee "$out/ddp.log"
python - "$out" <<'PY'
import sys, time
import torch
from audio_vqvae.checkpoint import load_checkpoint
from audio_vqvae.model import VQVAE

out = sys.argv[1]
state = load_checkpoint(f"{out}/model/last.pt")
print(f"checkpoint: step {state['step']}, world size {state['world_size']}, loss scale {state['scaler'].get('scale')}")
model = VQVAE.load(f"{out}/model/last.pt", map_location="cuda")
codes = torch.randint(0, model.quantizer.codebook_size, (4, 250), device="cuda")  # 4 x 1 s of codes
speaker = torch.arange(4, device="cuda") % model.decoder.n_speakers
latents = model.quantizer.dequantize(codes)
for backend in ("graph", "torch"):
    model.decoder.generate(latents[..., :2], speaker, backend=backend)
    torch.cuda.synchronize()
    start = time.perf_counter()
    model.decoder.generate(latents, speaker, backend=backend)
    torch.cuda.synchronize()
    print(f"tiny model, batch 4 x 1 s: {backend} {4 * 250 * model.hop_length / (time.perf_counter() - start):,.0f} samples/s")
PY
echo "gpu_check.sh: all done; logs in $out"
