#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Build the operator fuzz targets with clang (libFuzzer + ASan + UBSan) in build-fuzz and run
# each for a bounded time, one after another (-jobs=1: the machine is shared).
#   scripts/fuzz.sh [seconds-per-target]        default 60
# Environment: NSA_FUZZ_BUILD (build directory, default <repo>/build-fuzz), NSA_FUZZ_TARGETS
# (space-separated subset, e.g. "fuzz_op_compress"). Seeds come from tests/fuzz/corpus/<op>/;
# the growing corpus, logs and any crash artifacts stay in the build directory. Prints the
# executions of every target and the total; exits 1 when a target found something (its
# reproducer is named in the output), 2 when clang or the build is missing.
set -euo pipefail

secs=${1:-60}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${NSA_FUZZ_BUILD:-$repo/build-fuzz}

if ! command -v clang >/dev/null 2>&1; then
    echo "fuzz: clang not found (apt-get install clang)" >&2
    exit 2
fi
mkdir -p "$build"
cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DNSA_BUILD_TESTS=ON -DNSA_BUILD_FUZZERS=ON -DNSA_BUILD_BENCH=OFF -DNSA_BUILD_EXAMPLES=OFF \
    -DNSA_BUILD_TOOLS=OFF >"$build/configure.log" 2>&1 || {
    cat "$build/configure.log" >&2
    exit 2
}
if ! cmake --build "$build" --target nsa_fuzzers -- -j"${CMAKE_BUILD_PARALLEL_LEVEL:-2}"; then
    echo "fuzz: building the fuzz targets failed (is libcmocka-dev installed? the targets are" >&2
    echo "fuzz: registered by tests/fuzz_ops.cmake, next to the test suite)" >&2
    exit 2
fi

targets=${NSA_FUZZ_TARGETS:-$(cd "$repo/tests/fuzz" && ls fuzz_op_*.c | sed 's/\.c$//')}
total=0
found=()
mkdir -p "$build/fuzz-logs" "$build/fuzz-artifacts"
for t in $targets; do
    op=${t#fuzz_op_}
    corpus=$build/fuzz-corpus/$op
    log=$build/fuzz-logs/$op.log
    mkdir -p "$corpus"
    if [[ -d $repo/tests/fuzz/corpus/$op ]]; then
        cp -n "$repo/tests/fuzz/corpus/$op"/* "$corpus"/ 2>/dev/null || true
    fi
    rc=0
    FUZZ_STATS=1 "$build/tests/$t" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$build/fuzz-artifacts/$op-" "$corpus" \
        >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    execs=${execs:-0}
    total=$((total + execs))
    stats=$(grep -m1 '^fuzz stats:' "$log" | sed 's/^fuzz stats: *//' || true)
    blas=$(grep -c 'had an illegal value' "$log" || true)
    printf 'fuzz: %-24s %9d executions in %ss, corpus %d, rc %d\n' "$op" "$execs" "$secs" \
        "$(ls "$corpus" | wc -l)" "$rc"
    [[ -n $stats ]] && printf 'fuzz: %-24s statuses: %s\n' "$op" "$stats"
    # A BLAS "illegal value" report means a GEMM was skipped and an output is wrong.
    if [[ $blas -gt 0 ]]; then
        found+=("$op: $blas BLAS \"illegal value\" reports; log $log")
    fi
    if [[ $rc -ne 0 ]]; then
        found+=("$op: $(grep -m1 -E 'ERROR: |fuzz: ' "$log" || echo "exit status $rc"); log $log;" \
            "reproducer $(ls -t "$build/fuzz-artifacts/$op-"* 2>/dev/null | head -1)")
    fi
done
echo "fuzz: total executions: $total"
for f in "${found[@]+"${found[@]}"}"; do echo "FOUND: $f"; done
[[ ${#found[@]} -eq 0 ]]
