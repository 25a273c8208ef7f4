#!/usr/bin/env bash
# run-all.sh - the README's test command: installs what the tests need, builds
# with ASan+UBSan and runs every unit and integration test, builds with TSan
# and runs the concurrency tests, then fuzzes the SIP parser for one minute.
# Every server a test needs (redis-server, SIPp peers) is started by that
# test on 127.0.0.1 and stopped when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
JOBS=$(nproc)
FUZZ_SECONDS=${FUZZ_SECONDS:-60}

packaging/install-deps.sh --test

step() { printf '\n==== %s\n' "$*"; }

step "ASan+UBSan build, unit and integration tests"
cmake -S "$SRC" -B build-asan -DCMAKE_BUILD_TYPE=Asan >/dev/null
cmake --build build-asan -j"$JOBS"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest --output-on-failure -j"$JOBS" -L unit)
(cd build-asan && ctest --output-on-failure -L integration)

step "TSan build, concurrency tests"
cmake -S "$SRC" -B build-tsan -DCMAKE_BUILD_TYPE=Tsan >/dev/null
cmake --build build-tsan -j"$JOBS"
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
(cd build-tsan && ctest --output-on-failure -L tsan)

step "Release build (-Werror, jemalloc)"
cmake -S "$SRC" -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$JOBS"

step "libFuzzer on the SIP parser for ${FUZZ_SECONDS}s"
# fuzzer-no-link instruments the libraries too, so libFuzzer is guided by parser coverage.
CC=clang cmake -S "$SRC" -B build-fuzz -DCMAKE_BUILD_TYPE=Asan -DREFEREE_FUZZ=ON -DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link >/dev/null
cmake --build build-fuzz -j"$JOBS" --target fuzz_sip_parse fuzz_dns_answer
mkdir -p build-fuzz/corpus
cp "$SRC"/../shared/testdata/rfc4475/*.dat "$SRC"/../shared/testdata/rfc5118/*.dat build-fuzz/corpus/ 2>/dev/null || true
build-fuzz/tests/fuzz_sip_parse -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 build-fuzz/corpus

step "libFuzzer on the DNS answer handling for ${FUZZ_DNS_SECONDS:-20}s"
mkdir -p build-fuzz/corpus-dns
build-fuzz/tests/fuzz_dns_answer -max_total_time="${FUZZ_DNS_SECONDS:-20}" -rss_limit_mb=2048 build-fuzz/corpus-dns

step "all tests passed"
