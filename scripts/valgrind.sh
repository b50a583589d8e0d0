#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Run every test program under valgrind memcheck; fails on any error or leak report.
# Valgrind does not emulate AVX-512: under it, libnsa's run-time dispatch takes the AVX2
# paths (and OpenBLAS its AVX2 kernels), so this also exercises the non-AVX-512 code. Child
# processes (nsa-run, started by the CLI tests) are traced too, so they are checked and take
# the same paths as the library in the test (system tools such as cmake are not traced).
# Two select tests run outside ctest, without its time limits, because emulation takes them
# 9 and 4 minutes: test_select_golden (its MindSpore-shape case) and test_select_cli (the same
# goldens, one nsa-run child each). The whole run takes about 20 minutes on two cores.
# Usage: scripts/valgrind.sh [BUILD_DIR] [ctest -R regex]
# (install and repo tests run cmake and bash, not libnsa code: they are left out.)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${1:-build-valgrind}
mkdir -p "$build" && build=$(cd "$build" && pwd) # absolute: the select runs below cd into it
filter=${2:-}
command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNSA_WERROR=ON >/dev/null
cmake --build "$build" -j2 >/dev/null
rm -f "$build"/Testing/Temporary/MemoryChecker.*.log "$build"/valgrind-test_*.log # stale logs
vg_opts=(--error-exitcode=99 --trace-children=yes '--trace-children-skip=*cmake*,*ctest*'
         --leak-check=full --errors-for-leak-kinds=definite,indirect --track-origins=yes
         "--suppressions=$root/scripts/valgrind.supp")
(cd "$build" && ctest -j2 --output-on-failure ${filter:+-R "$filter"} -LE 'example|install|repo' -E '^(test_select_cli|test_select_golden)$' \
  --overwrite MemoryCheckCommand=$(command -v valgrind) \
  --overwrite MemoryCheckCommandOptions="${vg_opts[*]}" \
  -T memcheck) | tee "$build/valgrind.log"
# ctest -T memcheck reports defects in its summary rather than its exit code
if grep -q "Memory checking results:" "$build/valgrind.log" && \
   sed -n '/Memory checking results:/,$p' "$build/valgrind.log" | grep -qE '^[[:space:]]*[A-Za-z ]+ - [1-9]'; then
  echo "valgrind.sh: memcheck found defects (see $build/Testing/Temporary/MemoryChecker.*.log)" >&2
  exit 1
fi
# The two long select tests, with the same options, one after the other.
for t in test_select_golden test_select_cli; do
  if [ -n "$filter" ] && ! echo "$t" | grep -qE "$filter"; then
    continue
  fi
  echo "valgrind.sh: $t (several minutes)"
  if ! (cd "$build" && valgrind "${vg_opts[@]}" --log-file="$build/valgrind-$t.%p.log" "./tests/$t"); then
    echo "valgrind.sh: $t failed or memcheck found defects (see $build/valgrind-$t.*.log)" >&2
    exit 1
  fi
done
echo "valgrind.sh: no memcheck reports"
