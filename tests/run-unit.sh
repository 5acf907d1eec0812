#!/bin/sh
# Runs every cmocka unit test binary; fails if any fails. Prints a final tally.
set -u
build=${1:-build}
export TEGULA_TESTDATA=${TEGULA_TESTDATA:-$(cd "$(dirname "$0")/../.." && pwd)/shared/testdata}
export TEGULA_TMP=${TEGULA_TMP:-$build/tmp}
mkdir -p "$TEGULA_TMP"
passed=0 failed=0 failed_names=""
for t in "$build"/tests/test_*; do
    [ -x "$t" ] || continue
    if "$t"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failed_names="$failed_names $(basename "$t")"
    fi
done
echo "unit test binaries: $passed passed, $failed failed${failed_names:+ ($failed_names )}"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
