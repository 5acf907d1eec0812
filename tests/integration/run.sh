#!/bin/sh
# Runs every integration test script (tests/integration/test_*.sh) against the build.
set -u
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
export TEGULA_BUILD=$(cd "$build" && pwd)
export TEGULA_TESTDATA=${TEGULA_TESTDATA:-$(cd "$here/../../.." && pwd)/shared/testdata}
passed=0 failed=0 failed_names=""
for t in "$here"/test_*.sh; do
    [ -f "$t" ] || continue
    name=$(basename "$t" .sh)
    echo "== integration: $name"
    if sh "$t"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failed_names="$failed_names $name"
    fi
done
echo "integration tests: $passed passed, $failed failed${failed_names:+ ($failed_names )}"
[ "$failed" -eq 0 ]
