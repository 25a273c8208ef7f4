#!/usr/bin/env bash
# test_import_authrules.sh - referee-admin import-authrules (SPEC §14): sipXecs authrules.xml
# files (tests/integration/authrules/: sipXproxy's EnforceAuthRulesTest rules, the shape of
# AuthRulesUrlMappingTest's mapdata, and the sipXconfig-generated gateway rules with the final
# catch-all NoAccess) are converted, loaded by referee --check, and every golden sipXecs
# decision of authrules/vectors.txt is compared with referee's:
#   - explain (referee-admin explain URI [--as ID]) for every vector;
#   - a real INVITE through a RUNNING referee (python SIP client answering the 407 with
#     digest) for every vector referee's relay policy does not pre-empt: authenticated
#     callers everywhere, anonymous ones toward the host names listed in `domains` (an
#     anonymous request to a foreign host or an IP literal is "403 Relaying Denied" in
#     referee before any rule: SPEC §1).
# Then malformed XML and every unsupported construct give exit 1, nothing on stdout and one
# line FILE:LINE: element: why on stderr.
# shellcheck disable=SC2015
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_auth.sh"

it_need python3 ss
ADMIN=${REFEREE_ADMIN_BIN:-$REFEREE_BUILD_DIR/referee-admin}
[ -x "$ADMIN" ] || it_die "referee-admin not found at $ADMIN"
D=$IT_LIB_DIR/authrules
cp "$D/users.yaml" "$IT_WORK/users.yaml"

# domains per file: the names its anonymous vectors call (example.com stays first: the realm)
declare -A DOMAINS=(
	[enforcerules.xml]="example.com, emergency-gw, lodge, boat, forbidden"
	[mapdata.xml]="example.com, example.edu, thishost.example.edu, other.example.edu, emptyperm.example.edu"
	[sipxconfig.xml]="example.com, example.org, sipx.example.org, gw2.example.net"
)

# is_ours URI FILE: the vector's host is one of the file's domains (no port check needed)
is_ours() {
	local host=${1#*@}
	host=${host%%:*}
	host=$(printf '%s' "$host" | tr 'A-Z' 'a-z')
	[[ ", ${DOMAINS[$2]}, " == *", $host, "* ]]
}

# expected_call DECISION: what the SIP client reports for that decision
expected_call() {
	case "$1" in
	allow) echo forwarded ;;
	challenge) echo 407 ;;
	*) echo "$1" ;;
	esac
}

n_explain=0 n_calls=0
for xml in enforcerules.xml mapdata.xml sipxconfig.xml; do
	out=$IT_WORK/${xml%.xml}.rules.yaml
	if "$ADMIN" import-authrules "$D/$xml" >"$out" 2>"$IT_WORK/${xml%.xml}.import.err"; then
		it_check "import_$xml ($(grep -c '^  - hosts:' "$out") rules)"
	else
		it_fail "import_$xml" "$(cat "$IT_WORK/${xml%.xml}.import.err")"
		continue
	fi
	PORT=$(it_free_udp_port)
	CFG=$IT_WORK/${xml%.xml}.yaml
	referee_config "$CFG" "$PORT" "$(it_free_udp_port)" "auth: {challenge_local_from: false}"
	sed -i "s/^domains: .*/domains: [${DOMAINS[$xml]}]/" "$CFG"
	cat "$out" >>"$CFG"
	if "$REFEREE_BIN" -c "$CFG" --check >"$IT_WORK/check.out" 2>&1; then
		it_check "converted_rules_load_$xml (referee --check)"
	else
		it_fail "converted_rules_load_$xml" "$(cat "$IT_WORK/check.out")"
		continue
	fi
	# ---- explain: every vector
	bad=()
	while read -r f uri who decision; do
		[ "$f" = "$xml" ] || continue
		args=(explain "$uri")
		[ "$who" = - ] || args+=(--as "$who@example.com")
		v=$("$ADMIN" -c "$CFG" "${args[@]}" 2>&1 | sed -n 's/^verdict: //p')
		case "$v" in
		allow) got=allow ;;
		challenge*) got=challenge ;;
		"deny (403 "*) got=${v#deny (}; got=${got%)} ;;
		*) got="?$v" ;;
		esac
		n_explain=$((n_explain + 1))
		[ "$got" = "$decision" ] || bad+=("$uri as $who: sipXecs '$decision', referee '$got'")
	done < <(grep -v '^#' "$D/vectors.txt")
	[ ${#bad[@]} = 0 ] && it_check "explain_matches_sipxecs_$xml" || it_fail "explain_matches_sipxecs_$xml" "${bad[*]}"

	# ---- real calls through a running referee
	authit_referee_start "referee-${xml%.xml}" "$CFG" "$PORT"
	bad=()
	while read -r f uri who decision; do
		[ "$f" = "$xml" ] || continue
		if [ "$who" = - ] && ! is_ours "$uri" "$xml"; then
			continue
		fi
		u=${uri#sip:}
		target=${u%%@*} dom=${u#*@}
		want=$(expected_call "$decision")
		if [ "$who" = - ]; then
			res=$(sipauth anon --to "$PORT" --target "$target" --domain "$dom" --from-domain caller.invalid --user anon)
			got=$(authit_line "$res" anon)
			[ "$got" = 403 ] && got="403 $(authit_line "$res" anon.reason)"
		else
			res=$(sipauth call --to "$PORT" --target "$target" --domain "$dom" --user "$who" --pw pw)
			got=$(authit_line "$res" answer)
			[ -n "$got" ] || got=$(authit_line "$res" challenge) # nothing required: forwarded unchallenged
			[ "$got" = 403 ] && got="403 $(authit_line "$res" answer.reason)"
		fi
		n_calls=$((n_calls + 1))
		[ "$got" = "$want" ] || bad+=("$uri as $who: sipXecs '$want', referee '$got'")
	done < <(grep -v '^#' "$D/vectors.txt")
	[ ${#bad[@]} = 0 ] && it_check "calls_match_sipxecs_$xml" || it_fail "calls_match_sipxecs_$xml" "${bad[*]}"
	authit_referee_stop "referee-${xml%.xml}" "$AUTHIT_PID"
done
[ "$n_explain" -ge 50 ] && [ "$n_calls" -ge 35 ] && it_check "golden_vectors_compared ($n_explain explained, $n_calls real calls)" ||
	it_fail golden_vectors_compared "only $n_explain explained and $n_calls calls"

# ---- errors: FILE:LINE: element: why, exit 1, nothing on stdout -------------------------
# bad_case NAME LINE WHAT XML: the file must be refused at LINE, naming WHAT.
bad_case() {
	local name=$1 line=$2 what=$3 f=$IT_WORK/$1.xml
	printf '%s' "$4" >"$f"
	"$ADMIN" import-authrules "$f" >"$IT_WORK/$name.out" 2>"$IT_WORK/$name.err"
	local rc=$? err
	err=$(cat "$IT_WORK/$name.err")
	if [ "$rc" = 1 ] && [ ! -s "$IT_WORK/$name.out" ] && [ "$(wc -l <"$IT_WORK/$name.err")" = 1 ] &&
		[[ "$err" == "$f:$line: $what"* ]]; then
		it_check "error_$name ($(basename "$err" | cut -c 1-110))"
	else
		it_fail "error_$name" "exit $rc, stdout $(wc -c <"$IT_WORK/$name.out") bytes, stderr '$err' (want $f:$line: $what...)"
	fi
}
H='<?xml version="1.0"?>
<mappings xmlns="http://www.sipfoundry.org/sipX/schema/xml/urlauth-00-00">
<hostMatch>
'
T='</hostMatch>
</mappings>
'
UM='<userMatch><userPattern>.</userPattern><permissionMatch/></userMatch>
'
bad_case malformed_xml 6 "XML: Opening and ending tag mismatch" "$H<hostPattern>gw</hostPattern>
$UM<userMatch><userPattern>.</userPatern>
</userMatch>
$T"
bad_case not_xml 1 "XML:" "this is not XML"
bad_case wrong_root 2 "rules: the root element must be 'mappings'" '<?xml version="1.0"?>
<rules/>
'
bad_case transform 7 "transform: unsupported element inside userMatch" "$H<hostPattern>gw</hostPattern>
<userMatch><userPattern>.</userPattern>
<permissionMatch/>
<transform><user>x</user></transform>
</userMatch>
$T"
bad_case unknown_in_mappings 3 "defaultMatch: unsupported element inside mappings" '<?xml version="1.0"?>
<mappings>
<defaultMatch/>
</mappings>
'
bad_case spaced_permission 7 "permission: 'eat like a pig' contains white space" "$H<hostPattern>gw</hostPattern>
<userMatch><userPattern>.</userPattern>
<permissionMatch>
<permission>eat like a pig</permission>
</permissionMatch></userMatch>
$T"
bad_case regex_alternation 7 "userPattern: '9|8'" "$H<hostPattern>gw</hostPattern>
<userMatch>
<permissionMatch/>
<userPattern>9|8</userPattern>
</userMatch>
$T"
bad_case class_with_x 6 "userPattern: '9[0x]'" "$H<hostPattern>gw</hostPattern>
<userMatch>
<userPattern>9[0x]</userPattern>
<permissionMatch/></userMatch>
$T"
bad_case trailing_backslash 6 "userPattern: '91\\'" "$H<hostPattern>gw</hostPattern>
<userMatch>
<userPattern>91\\</userPattern>
<permissionMatch/></userMatch>
$T"
bad_case subnet_host_bits 6 "hostPattern: '10.1.0.0/8': address bits past the prefix" "$H

<hostPattern format=\"IPv4subnet\">10.1.0.0/8</hostPattern>
$UM$T"
bad_case subnet_no_prefix 6 "hostPattern: '10.1.0.0': an IPv4subnet is ADDRESS/BITS" "$H
<!-- a comment -->
<hostPattern format=\"IPv4subnet\">10.1.0.0</hostPattern>
$UM$T"
bad_case wildcard_suffix 6 "hostPattern: 'example.*'" "$H

<hostPattern format=\"DnsWildcard\">example.*</hostPattern>
$UM$T"
bad_case unknown_format 6 "hostPattern: format 'regex' is none of" "$H

<hostPattern format=\"regex\">gw.*</hostPattern>
$UM$T"
bad_case ipv6_url 6 "hostPattern: '[2001:db8::1]': IPv6" "$H

<hostPattern>[2001:db8::1]</hostPattern>
$UM$T"
bad_case url_with_user 6 "hostPattern: 'sip:alice@gw'" "$H

<hostPattern>sip:alice@gw</hostPattern>
$UM$T"
bad_case two_permission_matches 8 "permissionMatch: a second permissionMatch" "$H<hostPattern>gw</hostPattern>
<userMatch>
<userPattern>.</userPattern>
<permissionMatch/>
<permissionMatch><permission>NoAccess</permission></permissionMatch>
</userMatch>
$T"
bad_case doctype 3 "DOCTYPE: not supported" '<?xml version="1.0"?>
<!DOCTYPE mappings [ <!ENTITY gw "gw.example.com"> ]>
<mappings/>
'
out=$("$ADMIN" import-authrules "$IT_WORK/does-not-exist.xml" 2>&1 >/dev/null)
rc=$?
[ "$rc" = 1 ] && [[ "$out" == "$IT_WORK/does-not-exist.xml:0: file:"* ]] && it_check "error_missing_file ($out)" ||
	it_fail error_missing_file "exit $rc: $out"
it_finish
