#!/usr/bin/env bash
# test_import_users.sh - referee-admin import-users FILE.csv (SPEC §14): rows
# id,ha1_md5[,ha1_sha256],permissions (a sipXecs / Kamailio subscriber export) into a real
# redis-server in one MULTI/EXEC, then a running referee on that Redis authenticates an
# imported user with digest (MD5 and SHA-256) and applies its imported permissions.
# All or nothing: a CSV with one bad row (bad hex, bad id, unknown permission, duplicate id,
# too few columns) is refused naming FILE:LINE and leaves Redis exactly as it was.
# Redis Cluster (three masters): every user lands on its slot's master.
# File backend: the users-file entries are printed and referee --check loads them.
# shellcheck disable=SC2015
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_auth.sh"
. "$(dirname "$0")/lib_redisha.sh"

it_need redis-server redis-cli python3 md5sum sha256sum
ADMIN=${REFEREE_ADMIN_BIN:-$REFEREE_BUILD_DIR/referee-admin}
[ -x "$ADMIN" ] || it_die "referee-admin not found at $ADMIN"
authit_redis_start redis
R() { redis-cli -p "$AUTHIT_RPORT" "$@"; }
PORT=$(it_free_udp_port)
RULES='rules:
  - {hosts: [example.com], users: ["2xxx"], permissions: [LocalDialing]}
  - {hosts: [example.com], users: ["9."], permissions: [LongDistanceDialing]}'
referee_config "$IT_WORK/redis.yaml" "$PORT" "$(it_free_udp_port)" "auth: {challenge_local_from: false}
$RULES"
sed -i "s#^  backend: file#  backend: redis#; s#^  file: .*#  redis: redis://127.0.0.1:$AUTHIT_RPORT/0#" "$IT_WORK/redis.yaml"

md5() { printf '%s:example.com:%s' "$1" "$2" | md5sum | cut -d' ' -f1; }
sha() { printf '%s:example.com:%s' "$1" "$2" | sha256sum | cut -d' ' -f1; }
CSV=$IT_WORK/users.csv
cat >"$CSV" <<EOF
id,ha1_md5,ha1_sha256,permissions
# a sipXecs export
1001@example.com,$(md5 1001 pw1),$(sha 1001 pw1),LocalDialing;LongDistanceDialing
"1002@EXAMPLE.com",$(md5 1002 pw2),,"LocalDialing"

1003@example.com,$(md5 1003 pw3),,
EOF
R set keep-me untouched >/dev/null
out=$("$ADMIN" -c "$IT_WORK/redis.yaml" import-users "$CSV" 2>&1)
rc=$?
[ "$rc" = 0 ] && [ "$out" = "imported 3 users from $CSV" ] && it_check "import_users_redis ($out)" ||
	it_fail import_users_redis "exit $rc: $out"
h=$(R hgetall referee:user:1001@example.com | tr '\n' ' ')
[[ "$h" == *"ha1_md5 $(md5 1001 pw1) "* ]] && [[ "$h" == *"ha1_sha256 $(sha 1001 pw1) "* ]] &&
	[[ "$h" == *"permissions LocalDialing,LongDistanceDialing "* ]] && it_check "redis_hash_fields (1001)" ||
	it_fail redis_hash_fields "$h"
[ "$(R hget referee:user:1002@example.com permissions)" = LocalDialing ] && [ "$(R hexists referee:user:1002@example.com ha1_sha256)" = 0 ] &&
	[ "$(R hget referee:user:1003@example.com permissions)" = "" ] && it_check "domain_lowercased_and_optional_columns" ||
	it_fail domain_lowercased_and_optional_columns "$(R keys 'referee:user:*' | tr '\n' ' ')"

# ---- a running referee on that Redis uses the imported users
authit_referee_start referee "$IT_WORK/redis.yaml" "$PORT"
r=$(authit_line "$(sipauth call --to "$PORT" --target 2001 --user 1001 --pw pw1 --algo SHA-256)" answer)
authit_expect "imported_user_sha256_call" forwarded "$r"
r=$(authit_line "$(sipauth call --to "$PORT" --target 912125551234 --user 1002 --pw pw2)" answer)
authit_expect "imported_permissions_apply (1002 lacks LongDistanceDialing)" 403 "$r"
r=$(authit_line "$(sipauth call --to "$PORT" --target 2001 --user 1002 --pw wrong)" answer)
authit_expect "imported_ha1_checked (wrong password)" 407 "$r"

# ---- all or nothing
before=$(R --scan | sort | tr '\n' ' ')
# bad_csv NAME LINE WHAT ROWS: the import is refused at LINE and Redis is unchanged
bad_csv() {
	local f=$IT_WORK/$1.csv
	printf '%s\n' "$4" >"$f"
	local out rc
	out=$("$ADMIN" -c "$IT_WORK/redis.yaml" import-users "$f" 2>&1)
	rc=$?
	if [ "$rc" = 1 ] && [[ "$out" == "$f:$2: $3"* ]] && [ "$(R --scan | sort | tr '\n' ' ')" = "$before" ]; then
		it_check "refused_$1 (${out#"$IT_WORK"/})"
	else
		it_fail "refused_$1" "exit $rc: $out"
	fi
}
good="2001@example.com,$(md5 2001 x),,LocalDialing"
bad_csv bad_hex 3 "ha1_md5 'xyz' is not 32 hex digits" "$good
2002@example.com,$(md5 2002 x),,LocalDialing
2003@example.com,xyz,,LocalDialing"
bad_csv bad_id 2 "'nodomain' is not an id" "$good
nodomain,$(md5 2 x),,"
bad_csv unknown_permission 2 "permission 'Teleport' is used by no rule" "$good
2004@example.com,$(md5 2004 x),,LocalDialing;Teleport"
bad_csv duplicate_id 2 "2001@example.com is already on line 1" "$good
2001@EXAMPLE.COM,$(md5 2001 y),,"
bad_csv too_few_columns 2 "want id,ha1_md5[,ha1_sha256],permissions" "$good
2005@example.com,$(md5 2005 x)"
bad_csv unterminated_quote 2 "not a CSV row" "$good
\"2006@example.com,$(md5 2006 x),,"
[ "$(R get keep-me)" = untouched ] && it_check "unrelated_keys_untouched" || it_fail unrelated_keys_untouched
authit_referee_stop referee "$AUTHIT_PID"

# ---- Redis Cluster: users spread over three masters, each its own MULTI/EXEC
read -r C1 C2 C3 <<<"$(rha_ports 3)"
for p in "$C1" "$C2" "$C3"; do
	rha_redis "cnode-$p" "$p" --cluster-enabled yes --cluster-config-file "$IT_WORK/cnode-$p/nodes.conf" \
		--cluster-node-timeout 2000
done
timeout 30 redis-cli --cluster create "127.0.0.1:$C1" "127.0.0.1:$C2" "127.0.0.1:$C3" --cluster-replicas 0 \
	--cluster-yes >"$IT_WORK/create.out" 2>&1 || it_die "redis-cli --cluster create failed: $(tail -n 3 "$IT_WORK/create.out")"
for _ in $(seq 200); do
	ok=0
	for p in "$C1" "$C2" "$C3"; do redis-cli -p "$p" cluster info | grep -q '^cluster_state:ok' && ok=$((ok + 1)); done
	[ "$ok" = 3 ] && break
	sleep 0.1
done
[ "$ok" = 3 ] || it_die "cluster_state not ok on every node"
sed "s#^  redis: .*#  redis: redis-cluster://127.0.0.1:$C1,127.0.0.1:$C2#" "$IT_WORK/redis.yaml" >"$IT_WORK/cluster.yaml"
{ echo "id,ha1_md5,permissions"; for u in $(seq 3001 3030); do echo "$u@example.com,$(md5 "$u" pw),LocalDialing"; done; } >"$IT_WORK/many.csv"
out=$("$ADMIN" -c "$IT_WORK/cluster.yaml" import-users "$IT_WORK/many.csv" 2>&1)
rc=$?
n=0 masters=""
for u in $(seq 3001 3030); do
	for p in "$C1" "$C2" "$C3"; do
		if [ "$(redis-cli -p "$p" hget "referee:user:$u@example.com" permissions 2>/dev/null)" = LocalDialing ]; then
			n=$((n + 1))
			[[ " $masters " == *" $p "* ]] || masters="$masters $p"
		fi
	done
done
[ "$rc" = 0 ] && [ "$n" = 30 ] && [ "$(wc -w <<<"$masters")" = 3 ] &&
	it_check "import_users_cluster (30 users on $(wc -w <<<"$masters") masters: $out)" ||
	it_fail import_users_cluster "exit $rc, $n of 30 found on masters '$masters': $out"

# ---- file backend: the entries to add, which referee then loads
referee_config "$IT_WORK/file.yaml" "$(it_free_udp_port)" "$(it_free_udp_port)" "$RULES"
out=$("$ADMIN" -c "$IT_WORK/file.yaml" import-users "$CSV" 2>"$IT_WORK/file.err")
rc=$?
{ echo "users:"; printf '%s\n' "$out" | grep -v '^#'; } >"$IT_WORK/users.yaml"
n=$("$ADMIN" -c "$IT_WORK/file.yaml" user list 2>&1 | tr '\n' ' ')
[ "$rc" = 0 ] && [ "$n" = "1001@example.com 1002@example.com 1003@example.com " ] &&
	"$REFEREE_BIN" -c "$IT_WORK/file.yaml" --check >/dev/null 2>&1 && it_check "file_backend_entries_load ($n)" ||
	it_fail file_backend_entries_load "exit $rc, users '$n': $(cat "$IT_WORK/file.err")"
it_finish
