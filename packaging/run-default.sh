#!/bin/sh
# packaging/run-default.sh [BUILD_DIR] - run referee in the foreground on the
# embedded default configuration (packaging/referee.yaml, users in
# packaging/users.yaml, no Redis). Builds nothing: BUILD_DIR (default ./build)
# must hold a built referee. On first use it generates a 0600 secret with
# `openssl rand -base64 32` in BUILD_DIR/referee-default/ (kept for later runs;
# REFEREE_STATE_DIR overrides the folder), writes a copy of the configuration
# there pointing at that secret and at packaging/users.yaml, and execs
# referee -c COPY. Extra arguments after BUILD_DIR go to referee (e.g. --check).
set -eu

src_dir=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${1:-build}
[ $# -gt 0 ] && shift
case $build_dir in /*) ;; *) build_dir=$(pwd)/$build_dir ;; esac

bin=$build_dir/referee
if [ ! -x "$bin" ]; then
	echo "run-default.sh: $bin not found; build first:" >&2
	echo "  cmake -S $src_dir -B $build_dir && cmake --build $build_dir -j2" >&2
	exit 2
fi
command -v openssl >/dev/null 2>&1 || { echo "run-default.sh: openssl is needed to create the secret" >&2; exit 2; }

state=${REFEREE_STATE_DIR:-$build_dir/referee-default}
mkdir -p "$state"
chmod 700 "$state"
secret=$state/secret
if [ ! -s "$secret" ]; then
	(umask 077 && openssl rand -base64 32 > "$secret.tmp" && mv "$secret.tmp" "$secret")
	echo "run-default.sh: generated a new shared secret in $secret" >&2
fi
chmod 600 "$secret"

# The copy lives in $state, so the relative paths of the original are made absolute.
conf=$state/referee.yaml
sed -e "s|^secret_file:.*|secret_file: $secret|" \
    -e "s|^  file: users.yaml.*|  file: $src_dir/packaging/users.yaml|" \
    "$src_dir/packaging/referee.yaml" > "$conf.tmp"
grep -q "^secret_file: $secret\$" "$conf.tmp" && grep -q "^  file: $src_dir/packaging/users.yaml\$" "$conf.tmp" || {
	echo "run-default.sh: could not rewrite secret_file/store.file in packaging/referee.yaml" >&2
	rm -f "$conf.tmp"
	exit 2
}
mv "$conf.tmp" "$conf"

echo "run-default.sh: starting $bin -c $conf $*" >&2
exec "$bin" -c "$conf" "$@"
