#!/bin/sh
# The sequencer dies right after its lock CAS (TEGULA_CRASH_AT=after-lock-cas), on file://
# storage and lock: the restart replays the staging bundle, every SCT is in the log, no fork.
# The same script as the S3 system test (tests/system/test_s3_crashpoint.sh), on file://.
exec env TEGULA_CRASH_FILE=1 sh "$(dirname "$0")/../system/test_s3_crashpoint.sh"
