#!/usr/bin/env bash
# Run every test: the unit, rule-pack and integration suites under
# AddressSanitizer + UndefinedBehaviorSanitizer, a formatting check, and a
# short fuzzing run of the decoders.  Exits non-zero when anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
jobs=$(nproc)

echo "== format check"
files=$(git ls-files '*.c' '*.h')
clang-format --dry-run --Werror $files

echo "== build (ASan+UBSan)"
cmake -S . -B build-asan -DFW_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-asan -j"$jobs"

echo "== build (Release: optimiser warnings are errors too)"
cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-rel -j"$jobs"

echo "== fuzz the decoders (${FW_FUZZ_SECONDS:-30} s)"
tests/fuzz/run.sh "${FW_FUZZ_SECONDS:-30}"

echo "== ctest"
ctest --test-dir build-asan --output-on-failure -j"$jobs" --timeout 900
