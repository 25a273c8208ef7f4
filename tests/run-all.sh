#!/usr/bin/env bash
# run-all.sh - the README's test command: installs what the tests need, builds
# with ASan+UBSan and runs every unit and integration test, builds with TSan
# and runs the concurrency tests, then runs each libFuzzer target for a minute.
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

step "Release build (-Werror, jemalloc): the README's set-up command builds Release (-O3's warnings differ from -O2's)"
cmake -S "$SRC" -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$JOBS"
for bin in build/referee build/referee-admin; do
	readelf -d "$bin" | grep -q 'NEEDED.*libjemalloc' || { echo "FAIL  $bin is not linked with jemalloc" >&2; exit 1; }
done
echo "PASS  Release binaries linked with jemalloc"

step "libFuzzer: ${FUZZ_SECONDS}s for each target, two at a time"
# fuzzer-no-link instruments the libraries too, so libFuzzer is guided by their coverage.
# Targets (tests/fuzz/): the SIP parser, a datagram through the whole stage chain, the Digest
# parameters, the Refer-To rewrite, the configuration and users-file loaders, Redis replies.
CC=clang cmake -S "$SRC" -B build-fuzz -DCMAKE_BUILD_TYPE=Asan -DREFEREE_FUZZ=ON -DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link >/dev/null
cmake --build build-fuzz -j"$JOBS" --target fuzz_sip_parse fuzz_chain fuzz_digest_params fuzz_referto fuzz_cfg fuzz_redis_reply fuzz_dns_answer
tests/fuzz/run.sh build-fuzz "$FUZZ_SECONDS"

step "all tests passed"
