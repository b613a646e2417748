#!/usr/bin/env bash
# Runs the tiny-Shakespeare comparison of README/docs/training.md: tfm_pretrain, then the
# identical PyTorch run (tools/train_shakespeare_torch.py), one after the other with the same
# thread count, and prints both validation losses and wall-clock times.
#   tools/compare_shakespeare.sh [BUILD_DIR] [THREADS]     (defaults: build, 2)
# Needs a built tfm_pretrain and Debian's python3-torch; takes about 8 minutes on two cores.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
threads="${2:-2}"
data="${TFM_SHARED_DATA:-$root/../shared/data}/corpus/tinyshakespeare.txt"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
start=$(date +%s.%N)
OMP_NUM_THREADS="$threads" "$build/examples/tfm_pretrain" --text "$data" --layers 4 --heads 4 --d-model 128 \
  --ctx 64 --batch 12 --steps 2000 --lr 1e-3 --min-lr 1e-4 --warmup 100 --beta2 0.99 --wd 0.1 --clip 1.0 \
  --eval-every 250 --eval-batches 20 --threads "$threads" --out "$out/tfm" --log-every 500 2>&1 | tail -3
tfm_s=$(python3 -c "print(round($(date +%s.%N) - $start, 1))")
/usr/bin/python3 "$root/tools/train_shakespeare_torch.py" --data "$data" --threads "$threads" --json "$out/torch.jsonl" | tail -1
torch_s=$(python3 -c "import json;print(json.loads(open('$out/torch.jsonl').readline())['seconds'])")
echo "tfm: ${tfm_s} s (whole process); PyTorch: ${torch_s} s (training loop); ratio $(python3 -c "print(round($tfm_s/$torch_s, 3))")"
