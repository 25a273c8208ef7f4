#!/usr/bin/env bash
# test_package.sh - the Debian package (packaging/CMakeLists.txt, packaging/debian/*):
#   a Release build of the source tree in a temp folder (warnings listed, not fatal), `cpack -G DEB`; the control data
#   (dpkg-deb -I: fields, maintainer scripts, conffiles); the layout and modes of the files
#   (dpkg -x into a scratch root: binaries, unit, conffiles, manual pages referee(8),
#   referee-admin(8), referee.yaml(5) gzip -9n and warning-free under `man --warnings`, the
#   copyright and changelog, alert rules and dashboard); `lintian` on the .deb with no error and
#   no warning; `systemd-analyze verify` and `systemd-analyze security --offline=true` with an
#   exposure level of 2.0 or lower; the extracted referee --check
#   against the extracted example config with a 0600 secret of ours, and refusing a 0640 one;
#   the packaged binary run under strace (OPTIONS, a forwarded INVITE, /metrics, SIGHUP, SIGTERM)
#   makes no system call outside the unit's SystemCallFilter.
#   Every tool is required (packaging/install-deps.sh --test installs them): nothing is skipped.
#   Then the real postinst runs in a private mount namespace over an overlay of /etc (the host's
#   /etc is never written): it must create the referee user, make the config readable by its
#   group only, generate a secret (0600, owned by referee, base64 of 32 bytes: what
#   core/secret.c accepts), keep it on a second run, and referee --check must pass AS the
#   service user on the installed paths. postrm purge must remove the secret.
# Env: REFEREE_PKG_BUILD_DIR reuses a Release build folder instead of a fresh one (faster).
# it_check always returns 0, so "test && it_check ... || it_fail ..." is an if/else.
# shellcheck disable=SC2015
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_ops.sh"

it_need cmake cpack dpkg-deb dpkg base64 stat python3 ps lintian systemd-analyze strace curl man gzip unshare setpriv
B=${REFEREE_PKG_BUILD_DIR:-$IT_WORK/build}
ROOT=$IT_WORK/root
CTRL=$IT_WORK/control

# ---- build and package -----------------------------------------------------------------------
it_log "Release build in $B (log: $IT_WORK/build.log)"
# -Werror is left to tests/run-all.sh's own Release step: here a warning must not hide
# what the package looks like. Warnings are listed in the log.
if ! { cmake -S "$REFEREE_SOURCE_DIR" -B "$B" -DCMAKE_BUILD_TYPE=Release -DREFEREE_WERROR=OFF &&
	cmake --build "$B" -j2; } >"$IT_WORK/build.log" 2>&1; then
	grep -m 10 -E 'error|Error' "$IT_WORK/build.log"
	it_die "the Release build failed (see $IT_WORK/build.log)"
fi
nw=$(grep -c 'warning:' "$IT_WORK/build.log")
[ "$nw" = 0 ] || it_log "NOTE: the Release (-O3) build has $nw compiler warnings: $(grep 'warning:' "$IT_WORK/build.log" | sort -u | head -n 3 | tr '\n' ' ')"
rm -f "$B"/referee_*.deb
(cd "$B" && cpack -G DEB) >"$IT_WORK/cpack.log" 2>&1 || { tail -n 20 "$IT_WORK/cpack.log"; it_die "cpack -G DEB failed"; }
DEB=$(find "$B" -maxdepth 1 -name 'referee_*_*.deb' | head -n 1)
[ -f "$DEB" ] && it_check "cpack_built $(basename "$DEB")" || it_die "no referee_*.deb in $B"

# ---- control data ---------------------------------------------------------------------------
dpkg-deb -I "$DEB" >"$IT_WORK/info.txt"
field() { dpkg-deb -f "$DEB" "$1"; }
if [ "$(field Package)" = referee ] && [ -n "$(field Version)" ] && [ "$(field Architecture)" = "$(dpkg --print-architecture)" ] &&
	[[ "$(field Depends)" == *adduser* ]] && [[ "$(field Depends)" == *libssl* ]] && [ -n "$(field Maintainer)" ] &&
	[ -n "$(field Description)" ]; then
	it_check "control_fields (referee $(field Version), depends: $(field Depends | cut -c 1-60)...)"
else
	it_fail control_fields "$(cat "$IT_WORK/info.txt")"
fi
dpkg-deb -e "$DEB" "$CTRL"
for s in postinst prerm postrm; do
	if grep -qE "^ +[0-9]+ bytes, +[0-9]+ lines +\\* +$s " "$IT_WORK/info.txt" && [ -x "$CTRL/$s" ] && sh -n "$CTRL/$s"; then
		it_check "maintainer_script_$s (executable, sh -n clean)"
	else
		it_fail "maintainer_script_$s" "missing, not executable or not valid sh"
	fi
done
if [ "$(sort "$CTRL/conffiles" 2>/dev/null | tr '\n' ' ')" = "/etc/referee/referee.yaml /etc/referee/users.yaml " ]; then
	it_check "conffiles (the two files of /etc/referee)"
else
	it_fail conffiles "$(cat "$CTRL/conffiles" 2>/dev/null || echo none)"
fi

# ---- layout ---------------------------------------------------------------------------------
dpkg -x "$DEB" "$ROOT"
dpkg-deb -c "$DEB" | awk '{ print $1, $2, $6 }' >"$IT_WORK/contents.txt"
# want PATH MODE: the path is in the package with exactly MODE, owned by root/root.
want() {
	local got
	got=$(awk -v p="./$1" '$3 == p { print $1, $2 }' "$IT_WORK/contents.txt")
	if [ "$got" = "$2 root/root" ] && [ -e "$ROOT/$1" ]; then
		it_check "layout $1 $2 root/root"
	else
		it_fail "layout $1" "want $2 root/root, package has '${got:-nothing}'"
	fi
}
want usr/bin/referee -rwxr-xr-x
want usr/bin/referee-admin -rwxr-xr-x
want lib/systemd/system/referee.service -rw-r--r--
# conffiles ship 0644 as Debian does (example content only); postinst makes them 0640 (below)
want etc/referee/referee.yaml -rw-r--r--
want etc/referee/users.yaml -rw-r--r--
want usr/share/doc/referee/README.md -rw-r--r--
want usr/share/doc/referee/copyright -rw-r--r--
want usr/share/doc/referee/changelog.gz -rw-r--r--
want usr/share/man/man8/referee.8.gz -rw-r--r--
want usr/share/man/man8/referee-admin.8.gz -rw-r--r--
want usr/share/man/man5/referee.yaml.5.gz -rw-r--r--
want usr/share/referee/prometheus/referee.rules.yml -rw-r--r--
want usr/share/referee/grafana/referee.json -rw-r--r--
extra=$(awk '$1 !~ /^d/ { print $3 }' "$IT_WORK/contents.txt" | grep -vxE '\./(usr/bin/referee(-admin)?|lib/systemd/system/referee\.service|etc/referee/(referee|users)\.yaml|usr/share/doc/referee/(README\.md|copyright|changelog\.gz)|usr/share/man/man8/referee(-admin)?\.8\.gz|usr/share/man/man5/referee\.yaml\.5\.gz|usr/share/referee/(prometheus/referee\.rules\.yml|grafana/referee\.json))')
[ -z "$extra" ] && it_check "no_unexpected_files" || it_fail no_unexpected_files "$extra"
[ ! -e "$ROOT/etc/referee/secret" ] && it_check "no_secret_shipped" || it_fail no_secret_shipped "etc/referee/secret is in the package"
v=$("$ROOT/usr/bin/referee" --version 2>&1)
[[ "$v" == "referee $(field Version)"* ]] && it_check "binary_version ($v)" || it_fail binary_version "'$v' vs package $(field Version)"

# ---- manual pages and lintian ---------------------------------------------------------------
bad=""
for m in man8/referee.8 man8/referee-admin.8 man5/referee.yaml.5; do
	f=$ROOT/usr/share/man/$m.gz
	# gzip -9n: no name or time stamp in the header (bytes 4-7 zero), as Debian wants
	[ "$(od -An -tx1 -j4 -N4 "$f" | tr -d ' \n')" = 00000000 ] || bad="$bad $m:timestamp"
	w=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$f" 2>&1 >/dev/null)
	[ -z "$w" ] || bad="$bad $m:$w"
	LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$f" 2>/dev/null | grep -q '^NAME' || bad="$bad $m:no-NAME"
done
[ -z "$bad" ] && it_check "manual_pages (referee(8), referee-admin(8), referee.yaml(5): gzip -9n, man --warnings clean)" ||
	it_fail manual_pages "$bad"
# referee.yaml(5) is rendered from packaging/CONFIG.md: every key is documented there
page=$(LC_ALL=C.UTF-8 MANWIDTH=200 man -l "$ROOT/usr/share/man/man5/referee.yaml.5.gz" 2>/dev/null)
keys=$(sed -n 's/^| `\([^`]*\)` |.*/\1/p' "$REFEREE_SOURCE_DIR/packaging/CONFIG.md")
miss=""
for k in $keys; do grep -qF -- "$k" <<<"$page" || miss="$miss $k"; done
[ -n "$keys" ] && [ -z "$miss" ] && it_check "man5_lists_every_config_key ($(wc -w <<<"$keys") keys)" ||
	it_fail man5_lists_every_config_key "missing:$miss"
for p in referee referee-admin; do
	"$ROOT/usr/bin/$p" --help >/dev/null 2>&1 || it_fail "help_$p" "$p --help failed"
done
lintian --no-tag-display-limit "$DEB" >"$IT_WORK/lintian.out" 2>&1
grep -v '^running with root privileges' "$IT_WORK/lintian.out" >"$IT_WORK/lintian.tags"
nE=$(grep -c '^E: ' "$IT_WORK/lintian.tags")
nW=$(grep -c '^W: ' "$IT_WORK/lintian.tags")
if [ "$nE" = 0 ] && [ "$nW" = 0 ]; then
	it_check "lintian_clean ($(lintian --version): 0 errors, 0 warnings)"
else
	it_fail lintian_clean "$nE errors, $nW warnings: $(grep -E '^(E|W): ' "$IT_WORK/lintian.tags" | head -n 10 | tr '\n' ';')"
fi

# ---- the systemd unit -----------------------------------------------------------------------
UNIT=$ROOT/lib/systemd/system/referee.service
# shellcheck disable=SC2016 # $MAINPID is literal text of the unit
for l in 'User=referee' 'ExecStart=/usr/bin/referee -c /etc/referee/referee.yaml' \
	'ExecStartPre=/usr/bin/referee -c /etc/referee/referee.yaml --check' 'ExecReload=/bin/kill -HUP $MAINPID' \
	'KillSignal=SIGTERM' 'NoNewPrivileges=yes' 'ProtectSystem=strict' 'WantedBy=multi-user.target'; do
	grep -qxF "$l" "$UNIT" || it_fail "unit_line" "'$l' missing from referee.service"
done
it_check "unit_key_lines (user, start/check/reload/stop, hardening, install)"
{
	mkdir -p "$IT_WORK/unit"
	# the unit names /usr/bin/referee, which is only in the scratch root: point it there
	sed "s#/usr/bin/referee#$ROOT/usr/bin/referee#g" "$UNIT" >"$IT_WORK/unit/referee.service"
	# verify also opens the unit's man: Documentation pages: from the package, not the host
	if MANPATH=$ROOT/usr/share/man systemd-analyze verify "$IT_WORK/unit/referee.service" >"$IT_WORK/verify.out" 2>&1 &&
		[ ! -s "$IT_WORK/verify.out" ]; then
		it_check "systemd_analyze_verify"
	else
		it_fail systemd_analyze_verify "$(head -c 500 "$IT_WORK/verify.out")"
	fi
	systemd-analyze security --offline=true --no-pager "$IT_WORK/unit/referee.service" >"$IT_WORK/security.out" 2>&1
	score=$(sed -n 's/.*Overall exposure level for referee.service: \([0-9.]*\).*/\1/p' "$IT_WORK/security.out")
	if [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'; then
		it_check "unit_exposure_score ($score <= 2.0, systemd-analyze security --offline=true)"
	else
		it_fail unit_exposure_score "score '${score:-none}' (want <= 2.0; see $IT_WORK/security.out)"
	fi
}

# ---- referee --check on the extracted example config ---------------------------------------------
mkdir -p "$IT_WORK/cfg"
referee_secret "$IT_WORK/cfg/secret"
sed -e "s#^secret_file: *[^ ]*#secret_file: $IT_WORK/cfg/secret#" \
	-e "s#/etc/referee/users.yaml#$ROOT/etc/referee/users.yaml#" \
	"$ROOT/etc/referee/referee.yaml" >"$IT_WORK/cfg/referee.yaml"
grep -q "^secret_file: $IT_WORK/cfg/secret" "$IT_WORK/cfg/referee.yaml" || it_die "sed did not adjust secret_file"
out=$("$ROOT/usr/bin/referee" -c "$IT_WORK/cfg/referee.yaml" --check 2>&1)
rc=$?
[ "$rc" = 0 ] && [[ "$out" == *"configuration OK"* ]] && it_check "example_config_check_ok" ||
	it_fail example_config_check_ok "exit $rc: $out"
out=$("$ROOT/usr/bin/referee-admin" -c "$IT_WORK/cfg/referee.yaml" user list 2>&1)
rc=$?
[ "$rc" = 0 ] && it_check "referee_admin_user_list_on_example (exit 0)" || it_fail referee_admin_user_list_on_example "exit $rc: $out"
chmod 640 "$IT_WORK/cfg/secret"
out=$("$ROOT/usr/bin/referee" -c "$IT_WORK/cfg/referee.yaml" --check 2>&1)
rc=$?
[ "$rc" != 0 ] && [[ "$out" == *"group or others"* ]] && it_check "group_readable_secret_refused (exit $rc)" ||
	it_fail group_readable_secret_refused "exit $rc: $out"

# ---- the packaged binary's system calls stay inside the unit's SystemCallFilter ----------------------
# strace -f over a short life: start, OPTIONS (local 200), a forwarded INVITE, a scrape of
# /metrics and /health, SIGHUP, SIGTERM. Every call seen must be allowed by the unit's
# SystemCallFilter= lines (groups expanded with systemd-analyze syscall-filter).
{
	SPORT=$(it_free_udp_port)
	SINK=$(it_free_udp_port)
	MPORT=$(ops_free_tcp_port)
	referee_config "$IT_WORK/run.yaml" "$SPORT" "$SINK" "metrics: {listen: 127.0.0.1:$MPORT}"
	it_spawn strace strace -f -qq -o "$IT_WORK/strace.txt" "$ROOT/usr/bin/referee" -c "$IT_WORK/run.yaml"
	ST_PID=$IT_LAST_PID
	it_wait_udp_port "$SPORT" 20 "$ST_PID" || { tail -n 5 "$IT_WORK/strace.err"; it_die "packaged referee did not start under strace"; }
	RPID=$(ps -o pid= --ppid "$ST_PID" | tr -d ' ' | head -n 1)
	r1=$(ops_sip --port "$SPORT" --method OPTIONS --ruri sip:example.com)
	r2=$(ops_sip --port "$SPORT" --ruri sip:2551234@example.com --sink "$SINK")
	h=$(ops_http_status "http://127.0.0.1:$MPORT/health")
	curl -s -m 2 -o "$IT_WORK/run-metrics.txt" "http://127.0.0.1:$MPORT/metrics"
	kill -HUP "$RPID"
	for _ in $(seq 50); do grep -q 'configuration reloaded' "$IT_WORK/strace.err" && break; sleep 0.1; done
	kill -TERM "$RPID"
	for _ in $(seq 100); do it_pid_alive "$ST_PID" || break; sleep 0.1; done
	wait "$ST_PID"
	rc=$?
	if [ "$r1" = 200 ] && [ "$r2" = forwarded ] && [ "$h" = 200 ] && [ -s "$IT_WORK/run-metrics.txt" ] &&
		grep -q 'configuration reloaded' "$IT_WORK/strace.err" && [ "$rc" = 0 ]; then
		it_check "packaged_binary_runs (OPTIONS 200, INVITE forwarded, /health 200, SIGHUP, SIGTERM exit 0)"
	else
		it_fail packaged_binary_runs "OPTIONS '$r1', INVITE '$r2', /health $h, exit $rc (see $IT_WORK/strace.err)"
	fi
	systemd-analyze syscall-filter --no-pager >"$IT_WORK/syscall-groups.txt" 2>/dev/null
	grep '^SystemCallFilter=' "$UNIT" | cut -d= -f2- >"$IT_WORK/unit-filters.txt"
	denied=$(python3 - "$IT_WORK/syscall-groups.txt" "$IT_WORK/unit-filters.txt" "$IT_WORK/strace.txt" <<'PYEOF'
import re, sys
groups, cur = {}, None
for line in open(sys.argv[1]):
    s = line.strip()
    if not s or s.startswith("#"):
        continue
    if not line[0].isspace() and s.startswith("@"):
        cur = groups.setdefault(s, [])
    elif cur is not None:
        cur.append(s)
def expand(names):
    out = set()
    for n in names:
        out |= expand(groups.get(n, [])) if n.startswith("@") else {n}
    return out
allow = None
for line in open(sys.argv[2]):  # systemd: the first line sets allow/deny mode, later ones add
    deny = line.startswith("~")
    names = expand(line.lstrip("~").split())
    if allow is None:
        allow = set() if deny else names
        if deny:
            sys.exit("the unit's first SystemCallFilter is a deny list: not checked")
    elif deny:
        allow -= names
    else:
        allow |= names
used = set(re.findall(r"^\d+ +([a-z_0-9]+)\(", open(sys.argv[3]).read(), re.M))
if not used or allow is None:
    sys.exit("no system calls traced or no SystemCallFilter")
print(" ".join(sorted(used - allow)) or "none", len(used))
PYEOF
)
	if [[ "$denied" == "none "* ]]; then
		it_check "syscalls_inside_unit_filter (${denied#none } distinct calls)"
	else
		it_fail syscalls_inside_unit_filter "outside SystemCallFilter: $denied"
	fi
}

# ---- postinst / postrm in a private mount namespace over an overlay of /etc ------------------------
if [ "$(id -u)" != 0 ] || ! unshare -m true 2>/dev/null; then
	it_fail postinst_sandbox "needs root and unshare -m (util-linux) to run postinst without touching /etc"
	it_finish
fi
mkdir -p "$IT_WORK/etc-up" "$IT_WORK/etc-work"
host_etc() { stat -c '%n %s %Y' /etc/passwd /etc/group /etc/referee /etc/referee/* 2>/dev/null; }
host_before=$(host_etc)
chmod 711 "$IT_WORK" # the service user runs the extracted binary below
cat >"$IT_WORK/postinst-sandbox.sh" <<EOF
set -u
mount -t overlay overlay -o lowerdir=/etc,upperdir=$IT_WORK/etc-up,workdir=$IT_WORK/etc-work /etc || exit 90
# what dpkg unpacked before running postinst
mkdir -p /etc/referee && cp -p $ROOT/etc/referee/referee.yaml $ROOT/etc/referee/users.yaml /etc/referee/
$CTRL/postinst configure "" >/dev/null || echo "postinst_rc \$?"
echo "user \$(getent passwd referee | cut -d: -f1,6,7)"
for f in secret referee.yaml users.yaml; do echo "stat \$f \$(stat -c '%U:%G %a' /etc/referee/\$f)"; done
echo "secret_bytes \$(base64 -d </etc/referee/secret | wc -c)"
sum1=\$(sha256sum </etc/referee/secret)
echo "check_as_referee \$(setpriv --reuid=referee --regid=referee --clear-groups -- $ROOT/usr/bin/referee -c /etc/referee/referee.yaml --check 2>&1 | tr '\n' ' ')"
$CTRL/postinst configure 0.1.0 >/dev/null || echo "postinst2_rc \$?"
[ "\$(sha256sum </etc/referee/secret)" = "\$sum1" ] && echo "secret_kept yes"
$CTRL/prerm remove >/dev/null || echo "prerm_rc \$?"
$CTRL/postrm purge >/dev/null || echo "postrm_rc \$?"
[ -e /etc/referee/secret ] || echo "secret_purged yes"
EOF
unshare -m bash "$IT_WORK/postinst-sandbox.sh" >"$IT_WORK/postinst.out" 2>&1
it_log "postinst sandbox: $(tr '\n' ';' <"$IT_WORK/postinst.out")"
P=$IT_WORK/postinst.out
pv() { sed -n "s/^$1 //p" "$P" | head -n 1; }
grep -qE '^(postinst|postinst2|prerm|postrm)_rc' "$P" && it_fail maintainer_scripts_exit0 "$(grep _rc "$P")" ||
	it_check maintainer_scripts_exit0
[[ "$(pv user)" == referee:/nonexistent:* ]] && it_check "postinst_creates_system_user ($(pv user))" ||
	it_fail postinst_creates_system_user "getent: '$(pv user)'"
[ "$(pv 'stat secret')" = "referee:referee 600" ] && [ "$(pv secret_bytes)" = 32 ] &&
	it_check "postinst_secret (referee:referee 0600, 32 random bytes in base64)" ||
	it_fail postinst_secret "stat '$(pv 'stat secret')', decoded bytes '$(pv secret_bytes)'"
[ "$(pv 'stat referee.yaml')" = "root:referee 640" ] && [ "$(pv 'stat users.yaml')" = "root:referee 640" ] &&
	it_check "postinst_config_group_readable (root:referee 0640)" ||
	it_fail postinst_config_group_readable "referee.yaml '$(pv 'stat referee.yaml')', users.yaml '$(pv 'stat users.yaml')'"
[[ "$(pv check_as_referee)" == *"configuration OK"* ]] && it_check "check_as_service_user_on_installed_paths" ||
	it_fail check_as_service_user_on_installed_paths "$(pv check_as_referee)"
[ "$(pv secret_kept)" = yes ] && it_check "postinst_rerun_keeps_secret" || it_fail postinst_rerun_keeps_secret
[ "$(pv secret_purged)" = yes ] && it_check "postrm_purge_removes_secret" || it_fail postrm_purge_removes_secret
[ "$(host_etc)" = "$host_before" ] && it_check "host_etc_untouched" || it_fail host_etc_untouched "the host's /etc/passwd, /etc/group or /etc/referee changed"
it_finish
