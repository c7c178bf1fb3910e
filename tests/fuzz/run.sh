#!/bin/sh
# tests/fuzz/run.sh [SECONDS] - build the libFuzzer targets with clang in
# build-fuzz/ and fuzz the inbound decoders for SECONDS (default 30),
# starting from the seed corpus in tests/fuzz/corpus/.  Exit status is
# non-zero when the build fails or the fuzzer finds a crash, a leak or
# undefined behaviour (the reproducer is left in build-fuzz/artifacts/).
set -eu

SECONDS_TO_RUN=${1:-30}
case $SECONDS_TO_RUN in
  '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac

SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${FW_FUZZ_BUILD:-$SRC/build-fuzz}
JOBS=$(nproc 2>/dev/null || echo 2)

CC=clang cmake -S "$SRC" -B "$BUILD" -DFW_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" --target fuzz_decode -j"$JOBS"

# New inputs go to a scratch corpus so the checked-in seeds stay small.
WORK="$BUILD/fuzz-corpus"
ARTIFACTS="$BUILD/artifacts"
mkdir -p "$WORK" "$ARTIFACTS"

status=0
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
"$BUILD/tests/fuzz/fuzz_decode" \
    -max_total_time="$SECONDS_TO_RUN" \
    -max_len=16384 \
    -timeout=10 \
    -rss_limit_mb=2048 \
    -print_final_stats=1 \
    -dict="$SRC/tests/fuzz/decode.dict" \
    -artifact_prefix="$ARTIFACTS/" \
    "$WORK" "$SRC/tests/fuzz/corpus" || status=$?

if [ "$status" -ne 0 ]; then
  echo "fuzz_decode failed (exit $status); reproducers in $ARTIFACTS:" >&2
  ls -l "$ARTIFACTS" >&2 || true
  exit 1
fi
echo "fuzz_decode: no crash in ${SECONDS_TO_RUN}s"
