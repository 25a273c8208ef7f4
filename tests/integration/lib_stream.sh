# shellcheck shell=bash
# lib_stream.sh - helpers for the TCP/TLS integration tests (test_stream_*.sh, SPEC §9),
# sourced after lib.sh and lib_auth.sh: test certificates made with openssl at run time
# (ECDSA P-256: a CA, a server certificate for proxy.test and 127.0.0.1, client
# certificates), and stream_py, a stdlib-only python3 client for raw TCP/TLS checks.
# Everything on 127.0.0.1; every wait bounded.

# stream_certs DIR: ca.pem/ca.key, server.pem/server.key (SAN DNS:proxy.test, IP:127.0.0.1),
# client.pem/client.key (SAN DNS:client.test), expired.pem/expired.key (client.test,
# validity ended yesterday), other-ca.pem with rogue.pem/rogue.key (client.test, signed by
# another CA). Keys are mode 0600.
stream_certs() {
	local d=$1 who n cn
	mkdir -p "$d"
	(
		cd "$d" || exit 1
		umask 077
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
			-subj /CN=referee-it-ca -keyout ca.key -out ca.pem 2>/dev/null || exit 1
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
			-subj /CN=referee-it-other-ca -keyout other-ca.key -out other-ca.pem 2>/dev/null || exit 1
		for who in server:proxy.test:ca client:client.test:ca rogue:client.test:other-ca; do
			IFS=: read -r n cn ca <<<"$who"
			stream_cert . "$n" "$ca" "DNS:$cn,IP:127.0.0.1" || exit 1
		done
		# expired: valid from two days ago to yesterday (openssl x509 -not_before/-not_after
		# need 3.4; a tiny CA config with explicit dates works on Debian 12's 3.0)
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=client.test \
			-keyout expired.key -out expired.csr 2>/dev/null || exit 1
		mkdir -p ca.db && : >ca.db/index && echo 01 >ca.db/serial
		cat >ca.cnf <<CNF
[ca]
default_ca = it
[it]
database = ca.db/index
serial = ca.db/serial
new_certs_dir = ca.db
default_md = sha256
policy = any
x509_extensions = ext
[any]
commonName = supplied
[ext]
subjectAltName = DNS:client.test
CNF
		openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -in expired.csr -out expired.pem \
			-startdate "$(date -u -d '2 days ago' +%Y%m%d%H%M%SZ)" \
			-enddate "$(date -u -d '1 day ago' +%Y%m%d%H%M%SZ)" -notext 2>/dev/null || exit 1
	) || it_die "could not make the test certificates in $d (openssl)"
}

# stream_cert DIR NAME CA SAN: DIR/NAME.pem and NAME.key (mode 0600), ECDSA P-256, valid 2 days,
# CN the first SAN name, subjectAltName SAN (e.g. DNS:pbx.example.test), signed by DIR/CA.pem
# (ca or other-ca of stream_certs).
stream_cert() {
	local d=$1 n=$2 ca=$3 san=$4 cn
	cn=${san%%,*}
	cn=${cn#*:}
	(
		cd "$d" && umask 077 &&
			openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$cn" \
				-keyout "$n.key" -out "$n.csr" 2>/dev/null &&
			printf 'subjectAltName=%s\n' "$san" >"$n.ext" &&
			openssl x509 -req -in "$n.csr" -CA "$ca.pem" -CAkey "$ca.key" -CAcreateserial \
				-days 2 -extfile "$n.ext" -out "$n.pem" 2>/dev/null
	)
}

# stream_free_port: a port of 127.0.0.1 free for both UDP and TCP right now (SIPp -t t1 binds
# its -p port for TCP; referee listens udp:// and tcp:// on one port): lib_ua.sh's.
. "$(dirname "${BASH_SOURCE[0]}")/lib_ua.sh"
stream_free_port() { ua_free_sip_port; }

# stream_sipp_uac_run ...: sipp_uac_run with a local port free for TCP too.
stream_sipp_uac_run() { SIPP_LPORT=$(stream_free_port) sipp_uac_run "$@"; }

# stream_wait_tcp PORT SECONDS: wait until 127.0.0.1:PORT listens for TCP.
stream_wait_tcp() { authit_wait_tcp_port "$@"; }

# stream_py SCRIPT ARGS...: run a python3 snippet from stdin with ARGS (bounded by timeout 60).
stream_py() { timeout 60 python3 -W ignore::DeprecationWarning - "$@"; }

# stream_ua_referee SINK_SCENARIO: the set-up of the baresip tests (test_stream_baresip*.sh).
# Picks PORT (referee udp://), TPORT (its tls://), SINK_PORT, MPORT (metrics) and UA_PORT
# (baresip binds udp and tcp there and tls on UA_PORT+1: all free); makes the certificates in
# $C ($IT_WORK/certs); starts SIPp SINK_SCENARIO as the UAS "sink" on SINK_PORT (-m 1, its
# messages in sink/messages.log; SINK_PID), referee's routes.local; users file 1001@example.com
# (password $STREAM_UA_PW, LocalDialing); then referee: nothing trusted, MD5 only, 255xxxx
# needs LocalDialing, tls:// with server.pem and ca_file ca.pem (next hops such as a baresip
# that listens on TLS), metrics on MPORT.
STREAM_UA_PW=pw-1001-tls
stream_ua_referee() {
	PORT=$(it_free_udp_port)
	TPORT=$(authit_free_tcp_port)
	SINK_PORT=$(it_free_udp_port)
	MPORT=$(authit_free_tcp_port)
	for _ in $(seq 20); do
		UA_PORT=$(ua_free_sip_port)
		python3 -c 'import socket, sys; socket.socket().bind(("127.0.0.1", int(sys.argv[1])))' \
			$((UA_PORT + 1)) 2>/dev/null && break
	done
	C=$IT_WORK/certs
	stream_certs "$C"
	sipp_uas_start sink "$SINK_PORT" "$1" 120 -m 1 -trace_msg -message_file "$IT_WORK/sink/messages.log"
	SINK_PID=$IT_LAST_PID
	printf 'users:\n  - {id: 1001@example.com, password: "%s", permissions: [LocalDialing]}\n' \
		"$STREAM_UA_PW" >"$IT_WORK/users.yaml"
	referee_config "$IT_WORK/referee.yaml" "$PORT" "$SINK_PORT" "$(cat <<EOF
trusted: []
auth: {algorithms: [MD5]}
rules:
  - {hosts: [example.com], users: ["255xxxx"], permissions: [LocalDialing]}
metrics: {listen: 127.0.0.1:$MPORT}
tls: {certificate: $C/server.pem, private_key: $C/server.key, ca_file: $C/ca.pem}
EOF
)"
	sed -i "s|^listen: .*|listen: [udp://127.0.0.1:$PORT, tls://127.0.0.1:$TPORT]|" "$IT_WORK/referee.yaml"
	referee_start "$IT_WORK/referee.yaml" "$PORT"
	stream_wait_tcp "$TPORT" 10 || it_die "referee does not listen on tls 127.0.0.1:$TPORT"
}
