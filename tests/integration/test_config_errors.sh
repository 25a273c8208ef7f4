#!/usr/bin/env bash
# test_config_errors.sh - problems found after the YAML is read are still reported as one
# line "FILE:LINE: what is wrong" with the line of the key that names the thing (README
# "Errors"), and referee exits 2: a secret_file that is missing, group-readable or not base64,
# a store.file that does not exist; the same for --check and for a real start.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

it_need ss
PORT=$(it_free_udp_port)
DEAD_PORT=$(it_free_udp_port)
printf 'users: []\n' >"$IT_WORK/users.yaml"
referee_secret "$IT_WORK/secret"
# the generated config: secret_file is on line 6, store.file on line 12 (lib.sh referee_config)
referee_config "$IT_WORK/referee.yaml" "$PORT" "$DEAD_PORT"
line_of() { grep -n "^ *$1:" "$IT_WORK/referee.yaml" | head -1 | cut -d: -f1; }
SECRET_LINE=$(line_of secret_file)
FILE_LINE=$(line_of file)

# expect NAME WANT_REGEX ARGS...: referee ARGS exits 2 with exactly one stderr line matching WANT
expect() {
	local name=$1 want=$2 rc
	shift 2
	timeout 20 "$REFEREE_BIN" "$@" >"$IT_WORK/out" 2>"$IT_WORK/err"
	rc=$?
	local n
	n=$(grep -vc -E 'Sanitizer|^$' "$IT_WORK/err")
	if [ "$rc" -eq 2 ] && [ "$n" -eq 1 ] && grep -qE "$want" "$IT_WORK/err"; then
		it_check "$name ($(head -c 160 "$IT_WORK/err"))"
	else
		it_fail "$name" "exit $rc, $n line(s): $(head -c 300 "$IT_WORK/err") (want /$want/)"
	fi
}

cfg=$IT_WORK/referee.yaml
for mode in --check run; do
	args=(-c "$cfg")
	[ "$mode" = --check ] && args+=(--check)
	chmod 644 "$IT_WORK/secret"
	expect "$mode: group-readable secret at the secret_file line" \
		"^$cfg:$SECRET_LINE: secret_file: .*accessible by group or others" "${args[@]}"
	chmod 600 "$IT_WORK/secret"
	mv "$IT_WORK/secret" "$IT_WORK/secret.away"
	expect "$mode: missing secret at the secret_file line" \
		"^$cfg:$SECRET_LINE: secret_file: .*cannot open the secret file" "${args[@]}"
	(umask 077 && echo 'not base64 at all!' >"$IT_WORK/secret")
	expect "$mode: a secret that is not base64 at the secret_file line" \
		"^$cfg:$SECRET_LINE: secret_file: .*not base64" "${args[@]}"
	mv "$IT_WORK/secret.away" "$IT_WORK/secret"
	mv "$IT_WORK/users.yaml" "$IT_WORK/users.away"
	expect "$mode: missing users file at the store.file line" \
		"^$cfg:$FILE_LINE: store.file: .*users.yaml: cannot open users file" "${args[@]}"
	mv "$IT_WORK/users.away" "$IT_WORK/users.yaml"
done
timeout 20 "$REFEREE_BIN" -c "$cfg" --check >"$IT_WORK/out" 2>&1 && it_check "the repaired configuration passes --check" ||
	it_fail "the repaired configuration passes --check" "$(cat "$IT_WORK/out")"
it_finish
