#!/usr/bin/env bash
# scripts/gpu-check.sh — build tfm's CUDA tests and benchmarks on a machine without a GPU, then
# run them on a GPU machine that has CUDA 13 and CMake but no package registry.
#
#   bash scripts/gpu-check.sh build [BUILD_DIR]       # here: configure, build, stage (no GPU)
#   bash scripts/gpu-check.sh run BUILD_DIR OUT_DIR   # there: run every staged test and benchmark
#
# How the lead calls it with the device tool:
#   1. here:   bash scripts/gpu-check.sh build .gpu/build
#              (.gpu/ is git-ignored; the CMake tree goes to .gpu/cmake-build and stays here)
#   2. device: run(command="bash scripts/gpu-check.sh run .gpu/build $OUT",
#                  carry=[".gpu/build"], timeout_s=600)
#   3. read $OUT/summary.txt first, then $OUT/run.log; $OUT/benchmarks.json holds every
#      benchmark's JSON, $OUT/results.tar.gz the per-binary logs, JUnit XML and JSON files.
#      (The tool returns at most 8 files from $OUT, hence the tarball.)
#
# build: Release, CUDA architecture 90 (override with CUDA_ARCHS="80;90"), TFM_NATIVE=OFF (the
#   GPU machine's CPU may lack this one's instructions), every target unless TARGETS="a b" names
#   some. Then stages into BUILD_DIR:
#     bin/       every built executable named test_*cuda* or bench_*cuda* (found, not listed here,
#                so later tests and benchmarks join by their names)
#     lib/       shared libraries they need that the GPU machine lacks (libbenchmark.so.1debian,
#                ...; never libcuda/libcudart/libcublas*/libc/libstdc++, which it has)
#     lib/fallback/  libstdc++, libgcc_s, libcudart: used only if the GPU machine cannot resolve them
#     manifest.txt   "test <name>" / "bench <name>" lines, the run half's list
#   The staged folder has no absolute paths and needs no CMake on the other side. It must stay
#   well under the tool's 64 MiB carry limit: the build half fails above 48 MiB.
# run: nvidia-smi summary, each test (Boost.Test; exit 77 = skipped; a failing test runs once more
#   with TFM_FLASH_MMA=0, the CUDA-core attention kernels, and once under compute-sanitizer's
#   memcheck where it is installed, SANITIZE=0 to skip), each benchmark with
#   --benchmark_format=json --benchmark_out=<name>.json --benchmark_min_time=$MIN_TIME (0.2 s),
#   within a time budget (BUDGET_S, default 450 s, so the whole run stays under 8 minutes on an
#   H100). Exit status non-zero when a test failed, timed out or was skipped (on the GPU machine a
#   skip means the device was unusable; ALLOW_SKIP=1 accepts skips, for a dry run without a GPU),
#   or when a benchmark failed.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
  sed -n '2,8p' "${BASH_SOURCE[0]}" >&2
  exit 2
}

# ---------------------------------------------------------------------------------------- build
do_build() {
  local build="${1:-$root/.gpu/build}"
  mkdir -p "$build"
  build="$(cd "$build" && pwd)"
  local cmake_dir="${CMAKE_BUILD_DIR:-$(dirname "$build")/cmake-$(basename "$build")}"
  local jobs="${JOBS:-$(nproc)}"
  local archs="${CUDA_ARCHS:-90}"
  echo "gpu-check build: CMake tree $cmake_dir, staging into $build (CUDA archs $archs, $jobs jobs)"

  cmake -S "$root" -B "$cmake_dir" -DCMAKE_BUILD_TYPE=Release -DTFM_CUDA=ON \
    "-DCMAKE_CUDA_ARCHITECTURES=$archs" -DTFM_NATIVE=OFF -DTFM_BUILD_TESTS=ON \
    -DTFM_BUILD_BENCHMARKS=ON ${CMAKE_ARGS:-} || { echo "gpu-check build: configure failed" >&2; return 1; }

  # Keep going past a broken target so that the rest still gets staged; report failure at the end.
  local keep=(-k)
  grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja' "$cmake_dir/CMakeCache.txt" && keep=(-k 0)
  local build_ok=1 t
  if [ -n "${TARGETS:-}" ]; then
    for t in $TARGETS; do
      cmake --build "$cmake_dir" -j "$jobs" --target "$t" -- "${keep[@]}" || build_ok=0
    done
  else
    cmake --build "$cmake_dir" -j "$jobs" -- "${keep[@]}" || build_ok=0
  fi

  rm -rf "$build/bin" "$build/lib"
  mkdir -p "$build/bin" "$build/lib/fallback"
  : >"$build/manifest.txt"
  local f name kind
  while IFS= read -r f; do
    name="$(basename "$f")"
    case "$name" in
      test_*) kind=test ;;
      bench_*) kind=bench ;;
      *) continue ;;
    esac
    cp "$f" "$build/bin/$name"
    echo "$kind $name" >>"$build/manifest.txt"
  done < <(find "$cmake_dir" -path '*/CMakeFiles' -prune -o -type f -perm -u+x \
             \( -name 'test_*cuda*' -o -name 'bench_*cuda*' \) -print | sort)
  sort -o "$build/manifest.txt" "$build/manifest.txt"

  # Shared libraries: copy what the GPU machine lacks; keep what it has as a fallback only.
  local lib path base
  while IFS= read -r lib; do
    path="${lib#*=> }"
    path="${path%% (*}"
    [ -f "$path" ] || continue
    base="$(basename "$path")"
    case "$base" in
      linux-vdso*|ld-linux*|libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|libcuda.so*|\
      libcublas*|libnvidia*) ;;
      libstdc++.so*|libgcc_s.so*|libcudart.so*) cp -L "$path" "$build/lib/fallback/$base" ;;
      *) cp -L "$path" "$build/lib/$base" ;;
    esac
  done < <(for f in "$build"/bin/*; do [ -f "$f" ] && ldd "$f" | grep '=> /'; done | sort -u)

  local kib
  kib="$(du -sk "$build" | cut -f1)"
  echo "gpu-check build: staged $(grep -c . "$build/manifest.txt") binaries ($(grep -c '^test ' "$build/manifest.txt") tests, $(grep -c '^bench ' "$build/manifest.txt") benchmarks), $((kib / 1024)) MiB:"
  sed 's/^/  /' "$build/manifest.txt"
  ls "$build/lib" "$build/lib/fallback" | sed 's/^/  /'
  if [ "$kib" -gt $((48 * 1024)) ]; then
    echo "gpu-check build: $build is $((kib / 1024)) MiB, over the 48 MiB allowed for carrying" >&2
    return 1
  fi
  if [ "$build_ok" -ne 1 ]; then
    echo "gpu-check build: some targets failed to build (see above); the rest is staged" >&2
    return 1
  fi
  echo "gpu-check build: done; run there with: bash scripts/gpu-check.sh run ${1:-.gpu/build} \$OUT"
}

# ---------------------------------------------------------------------------------------- run
do_run() {
  [ $# -eq 2 ] || usage
  local build="$1" out="$2"
  [ -f "$build/manifest.txt" ] || { echo "gpu-check run: $build/manifest.txt missing; run the build half first" >&2; return 2; }
  build="$(cd "$build" && pwd)"
  mkdir -p "$out"
  out="$(cd "$out" && pwd)"
  local work
  work="$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")"
  local summary="$out/summary.txt" log="$out/run.log"
  : >"$summary"
  : >"$log"
  local start=$SECONDS budget="${BUDGET_S:-450}" min_time="${MIN_TIME:-0.2}"
  say() { echo "$*" | tee -a "$summary" >>"$log"; echo "$*"; }

  say "gpu-check run: $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(hostname), build $build"
  {
    echo "=== nvidia-smi"
    if command -v nvidia-smi >/dev/null 2>&1; then
      nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv
      nvidia-smi
    else
      echo "nvidia-smi not found (no NVIDIA driver here: a dry run)"
    fi
  } >>"$log" 2>&1
  if command -v nvidia-smi >/dev/null 2>&1; then
    say "gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"
  else
    say "gpu: none (nvidia-smi not found)"
  fi

  # Libraries: ours first (libbenchmark ...), then the CUDA toolkit's, then pip's nvidia wheels;
  # lib/fallback only for what still cannot be resolved.
  local ldp="$build/lib" d
  for d in ${CUDA_HOME:+"$CUDA_HOME/lib64"} /usr/local/cuda/lib64 /usr/local/cuda/lib \
           /usr/local/cuda/targets/x86_64-linux/lib; do
    [ -d "$d" ] && ldp="$ldp:$d"
  done
  if command -v python3 >/dev/null 2>&1; then
    for d in $(python3 -c 'import nvidia, os; [print(os.path.join(p, s, "lib")) for p in nvidia.__path__ for s in ("cu13", "cublas", "cuda_runtime")]' 2>/dev/null); do
      [ -d "$d" ] && ldp="$ldp:$d"
    done
  fi
  export LD_LIBRARY_PATH="$ldp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  local first
  first="$(awk '{print $2; exit}' "$build/manifest.txt")"
  if [ -n "$first" ] && ldd "$build/bin/$first" 2>&1 | grep -q 'not found'; then
    export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$build/lib/fallback"
    say "note: using lib/fallback for: $(ldd "$build/bin/$first" 2>&1 | grep 'not found' | tr -s ' \t' ' ' | tr '\n' ';')"
  fi
  {
    echo "=== LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
    [ -n "$first" ] && ldd "$build/bin/$first"
  } >>"$log" 2>&1
  export TFM_SOURCE_DIR="$root" TFM_SHARED_DATA="${TFM_SHARED_DATA:-$root/../shared/data}"

  local failed=0 skipped=0 name kind rc t0 status
  while read -r kind name; do
    [ "$kind" = test ] || continue
    t0=$SECONDS
    timeout "${TEST_TIMEOUT_S:-300}" "$build/bin/$name" --color_output=no --report_level=short \
      "--logger=HRF,message,stdout:JUNIT,message,$work/$name.junit.xml" >"$work/$name.log" 2>&1
    rc=$?
    # test_main.hpp's skip exits from a global fixture; with the JUnit logger active Boost may
    # crash on the way out (exit 139), so the SKIP line decides.
    if [ $rc -ne 0 ] && grep -q '^SKIP: no usable CUDA device' "$work/$name.log"; then rc=77; fi
    case $rc in
      0) status=PASS ;;
      77) status=SKIP; skipped=$((skipped + 1)) ;;
      124) status=TIMEOUT; failed=$((failed + 1)) ;;
      *) status="FAIL (exit $rc)"; failed=$((failed + 1)) ;;
    esac
    say "$(printf '%-8s %-40s %4d s' "$status" "$name" $((SECONDS - t0)))"
    { echo "=== test $name: $status"; cat "$work/$name.log"; } >>"$log"
    if [ "$status" != PASS ]; then tail -n 25 "$work/$name.log" | sed 's/^/    /' | tee -a "$summary"; fi
    # A failure again with the CUDA-core attention forward instead of the tensor-core one
    # (TFM_FLASH_MMA=0): tells whether the MMA kernel is the cause.
    if [ "$status" != PASS ] && [ "$status" != SKIP ]; then
      t0=$SECONDS
      TFM_FLASH_MMA=0 timeout "${TEST_TIMEOUT_S:-300}" "$build/bin/$name" --color_output=no --report_level=short \
        >"$work/$name.no-mma.log" 2>&1
      rc=$?
      say "$(printf '  again with TFM_FLASH_MMA=0: %s (exit %d, %d s)' "$([ $rc -eq 0 ] && echo PASS || echo FAIL)" $rc $((SECONDS - t0)))"
      { echo "=== test $name with TFM_FLASH_MMA=0: exit $rc"; cat "$work/$name.no-mma.log"; } >>"$log"
      # And once under compute-sanitizer's memcheck (where the machine's runtime allows it):
      # names the kernel and address of an out-of-bounds access. SANITIZE=0 skips this.
      if [ "${SANITIZE:-1}" = 1 ] && command -v compute-sanitizer >/dev/null 2>&1; then
        t0=$SECONDS
        timeout "${SANITIZE_TIMEOUT_S:-120}" compute-sanitizer --tool memcheck --print-limit 10 \
          "$build/bin/$name" --color_output=no --report_level=short >"$work/$name.memcheck.log" 2>&1
        rc=$?
        say "$(printf '  under compute-sanitizer memcheck: exit %d, %d s' $rc $((SECONDS - t0)))"
        grep -m 12 -E '^========= (Invalid|Program hit|Error|  at |    by|Address)' "$work/$name.memcheck.log" |
          sed 's/^/    /' | tee -a "$summary"
        { echo "=== test $name under compute-sanitizer: exit $rc"; cat "$work/$name.memcheck.log"; } >>"$log"
      fi
    fi
  done <"$build/manifest.txt"

  local bench_failed=0 left
  while read -r kind name; do
    [ "$kind" = bench ] || continue
    left=$((budget - (SECONDS - start)))
    if [ "$left" -lt 20 ]; then
      say "$(printf '%-8s %-40s' SKIP "$name") (time budget of $budget s spent)"
      bench_failed=$((bench_failed + 1))
      continue
    fi
    t0=$SECONDS
    timeout "$left" "$build/bin/$name" --benchmark_format=json "--benchmark_out=$work/$name.json" \
      --benchmark_out_format=json "--benchmark_min_time=$min_time" ${BENCH_ARGS:-} \
      >"$work/$name.log" 2>&1
    rc=$?
    if [ $rc -eq 0 ] && [ -s "$work/$name.json" ]; then
      status=PASS
    elif [ $rc -eq 0 ]; then
      status="NO-DATA"  # exited cleanly without measuring (no device)
    elif [ $rc -eq 124 ]; then
      status=TIMEOUT
    else
      status="FAIL (exit $rc)"
    fi
    if [ "$status" = NO-DATA ] && [ "${ALLOW_SKIP:-0}" = 1 ]; then
      skipped=$((skipped + 1))
    elif [ "$status" != PASS ]; then
      bench_failed=$((bench_failed + 1))
    fi
    say "$(printf '%-8s %-40s %4d s' "$status" "$name" $((SECONDS - t0)))"
    { echo "=== benchmark $name: $status"; cat "$work/$name.log"; } >>"$log"
    if [ "$status" != PASS ]; then tail -n 10 "$work/$name.log" | sed 's/^/    /' | tee -a "$summary"; fi
  done <"$build/manifest.txt"

  # Benchmarks in one JSON file, and a table with the wrapper/direct ratios.
  if command -v python3 >/dev/null 2>&1 && ls "$work"/*.json >/dev/null 2>&1; then
    python3 - "$work" "$out/benchmarks.json" >>"$summary" 2>&1 <<'PY'
import glob, json, os, sys
work, dest = sys.argv[1], sys.argv[2]
merged = {}
for f in sorted(glob.glob(os.path.join(work, "*.json"))):
    try:
        with open(f) as fh:
            merged[os.path.basename(f)[:-5]] = json.load(fh)
    except Exception as e:  # a benchmark killed mid-write
        merged[os.path.basename(f)[:-5]] = {"error": str(e)}
with open(dest, "w") as fh:
    json.dump(merged, fh, indent=1)
rates = {}
print("\nbenchmark                                                  time/us   TFLOP/s")
for exe, doc in merged.items():
    for b in doc.get("benchmarks", []):
        if b.get("error_occurred"):
            print(f"{b['name']:<56} ERROR {b.get('error_message', '')}")
            continue
        tf = b.get("TFLOP/s")
        t = b.get("real_time", 0.0)
        unit = b.get("time_unit", "us")
        t_us = t * {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}.get(unit, 1.0)
        print(f"{b['name']:<56} {t_us:9.1f} {tf if tf is None else format(tf, '9.1f')}")
        if tf is not None:
            rates[b["name"]] = tf
for name, tf in sorted(rates.items()):
    if "/cublas_direct/" in name:
        ours = name.replace("/cublas_direct/", "/cublaslt/")
        if ours in rates:
            r = rates[ours] / tf
            print(f"\nratio {ours} / {name} = {r:.3f} ({'meets' if r >= 0.95 else 'MISSES'} the 0.95 target)")
PY
  fi

  tar -czf "$out/results.tar.gz" -C "$work" . 2>/dev/null
  rm -rf "$work"

  local verdict=0
  [ $failed -eq 0 ] || verdict=1
  [ $bench_failed -eq 0 ] || verdict=1
  if [ $skipped -gt 0 ] && [ "${ALLOW_SKIP:-0}" != 1 ]; then verdict=1; fi
  say ""
  say "gpu-check run: $failed failed tests, $skipped skipped tests/benchmarks, $bench_failed benchmark problems; $((SECONDS - start)) s; $([ $verdict -eq 0 ] && echo OK || echo FAILED)"
  return $verdict
}

case "${1:-}" in
  build) shift; do_build "$@" ;;
  run) shift; do_run "$@" ;;
  *) usage ;;
esac
