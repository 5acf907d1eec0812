#!/bin/sh
# The storage and lock conformance suites (the same cases as for file://) and the S3 client's
# own tests, against the real S3 server that run.sh started.
set -u
: "${TEGULA_BUILD:?run through tests/system/run.sh}" "${TEGULA_S3_URL:?}"
status=0
run() {
    name=$1
    shift
    start=$(date +%s%N)
    # A hung test must not hang the run: run.sh still stops the server afterwards.
    if timeout 300 env "$@"; then
        echo "   $name passed in $(( ($(date +%s%N) - start) / 1000000 )) ms"
    else
        echo "   $name FAILED" >&2
        status=1
    fi
}
run storage TEGULA_TEST_STORAGE_URL="$TEGULA_S3_URL" "$TEGULA_BUILD/tests/test_storage"
run lock TEGULA_TEST_LOCK_URL="$TEGULA_S3_URL" "$TEGULA_BUILD/tests/test_lock"
run s3 TEGULA_TEST_S3_URL="$TEGULA_S3_URL" "$TEGULA_BUILD/tests/test_s3"
exit $status
