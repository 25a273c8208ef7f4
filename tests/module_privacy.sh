#!/usr/bin/env bash
# module_privacy.sh CC EXPORT_DIR SOURCE_DIR MODULE=HEADER[,HEADER...]...
# The build's module privacy, checked from the outside: EXPORT_DIR/<module>/
# holds exactly the headers the module exports (one for store, auth and
# transfer), each exported header compiles with the exported directories
# alone, and every other header of every module is NOT reachable from there:
# including it fails with "No such file", which is what another module's
# source would see. Prints one line per finding; exit 1 on any.
set -uo pipefail
cc=$1 exports=$2 src=$3
shift 3
fail=0
bad() { echo "FAIL: $*"; fail=1; }
flags=(-std=c17 -D_GNU_SOURCE -fsyntax-only -x c)
read -r -a sysflags <<<"$(pkg-config --cflags liburcu libcrypto hiredis yaml-0.1 libpcre2-8 libmicrohttpd 2>/dev/null)"
incs=()
for spec in "$@"; do incs+=(-I "$exports/${spec%%=*}"); done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for spec in "$@"; do
	mod=${spec%%=*}
	IFS=, read -r -a pub <<<"${spec#*=}"
	if [[ $mod != core && ${#pub[@]} -ne 1 ]]; then
		bad "$mod exports ${#pub[@]} headers (${pub[*]}), not one"
	fi
	have=$(cd "$exports/$mod" && ls | sort | tr '\n' ' ')
	want=$(printf '%s\n' "${pub[@]}" | sort | tr '\n' ' ')
	[[ $have == "$want" ]] || bad "$exports/$mod holds [$have], the build exports [$want]"
	for h in "${pub[@]}"; do
		printf '#include "%s"\n' "$h" >"$tmp/pub.c"
		"$cc" "${flags[@]}" "${sysflags[@]}" "${incs[@]}" "$tmp/pub.c" 2>"$tmp/err" ||
			bad "exported $mod/$h does not compile with the exported directories alone: $(head -1 "$tmp/err")"
	done
	n_private=0
	for path in "$src/$mod"/*.h; do
		h=${path##*/}
		[[ " ${pub[*]} " == *" $h "* ]] && continue
		n_private=$((n_private + 1))
		printf '#include "%s"\n' "$h" >"$tmp/priv.c"
		if "$cc" "${flags[@]}" "${sysflags[@]}" "${incs[@]}" "$tmp/priv.c" 2>"$tmp/err"; then
			bad "$mod/$h is reachable from other modules"
		elif ! grep -q "$h: No such file" "$tmp/err"; then
			bad "including $mod/$h failed for another reason: $(head -1 "$tmp/err")"
		fi
	done
	echo "$mod: exports ${pub[*]}; $n_private other header(s) unreachable from other modules"
done
exit $fail
