#!/usr/bin/env bash
# Builds tfm (Release, CUDA when nvcc is found) and runs the whole test suite with CTest.
# Usage: scripts/test.sh [extra ctest arguments]
#   BUILD_DIR (default build), JOBS (default: number of cores) and CMAKE_ARGS may be set.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/deps.sh"
build="${BUILD_DIR:-$root/build}"
jobs="${JOBS:-$(nproc)}"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-}
cmake --build "$build" -j "$jobs"
ctest --test-dir "$build" --output-on-failure -j "$jobs" "$@"
