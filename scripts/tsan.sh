#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# ThreadSanitizer run of the thread layer: builds libnsa and tests/unit/test_thread.c with
# -fsanitize=thread in their own build directory and runs the test (parallel_for on 1..8
# threads, caller pools, 8 concurrent callers on shared contexts, nested loops).
#   usage: scripts/tsan.sh [build-dir]        (default: build-tsan; CC=clang or gcc)
# Any TSan report fails the run (halt_on_error). Built-in GEMM: OpenBLAS is not instrumented.
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-"$src/build-tsan"}
cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNSA_SANITIZE=thread \
      -DNSA_BLAS=builtin -DNSA_WERROR=ON -DNSA_BUILD_TOOLS=OFF -DNSA_BUILD_EXAMPLES=OFF \
      -DNSA_BUILD_BENCH=OFF >/dev/null
ninja -C "$build" -j2 test_thread
run() { TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}" "$@"; }
# TSan's shadow memory layout breaks with the high-entropy ASLR of recent kernels
# ("unexpected memory mapping"): run without address randomisation when setarch allows it.
if setarch "$(uname -m)" -R true 2>/dev/null; then
    run setarch "$(uname -m)" -R "$build/tests/test_thread"
else
    run "$build/tests/test_thread"
fi
echo "tsan: test_thread passed with no ThreadSanitizer reports"
