#!/usr/bin/env bash
# Builds tfm and runs the main job (examples/tfm_main): for now a tour of the foundation —
# dtypes, layouts, tensors, the RNG and every GEMM variant checked against the reference and
# timed. Later parts of tfm grow it into the whole pipeline (data → tokenizer → training).
# Usage: scripts/main.sh [arguments for tfm_main, see --help]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/deps.sh"
build="${BUILD_DIR:-$root/build}"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-}
cmake --build "$build" -j "${JOBS:-$(nproc)}" --target tfm_main
"$build/examples/tfm_main" "$@"
