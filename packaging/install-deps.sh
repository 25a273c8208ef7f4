#!/usr/bin/env bash
# install-deps.sh - Debian 12 packages referee needs to build, test and benchmark.
#   packaging/install-deps.sh          build + run dependencies
#   packaging/install-deps.sh --test   also the test peers (redis-server, redis-sentinel, sipp, Kamailio as a load balancer, nsd, stunnel, clang for libFuzzer)
#   packaging/install-deps.sh --bench  also Kamailio for the side-by-side benchmark
# Idempotent; skips apt entirely when everything is already installed.
set -euo pipefail
pkgs=(build-essential cmake pkg-config liburcu-dev libssl-dev libjemalloc-dev libhiredis-dev
      libyaml-dev libpcre2-dev libcmocka-dev libmicrohttpd-dev libxml2-dev libc-ares-dev)
for a in "$@"; do
  case "$a" in
    --test) pkgs+=(redis-server redis-sentinel sip-tester clang libclang-rt-14-dev procps iproute2 curl python3 prometheus strace baresip-core
                   lintian systemd man-db kamailio nsd dnsutils stunnel4) ;; # lintian, systemd-analyze and man: test_package.sh; kamailio, nsd: balancer and DNS tests; stunnel4: TLS peer of the stream tests
    --bench) pkgs+=(redis-server sip-tester kamailio kamailio-redis-modules kamailio-extra-modules kamailio-tls-modules gnuplot-nox procps strace linux-perf) ;;
    *) echo "install-deps.sh: unknown option '$a' (use --test or --bench)" >&2; exit 2 ;;
  esac
done
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
