#pragma once
/* tls_fixture.h - test certificates made with the openssl command at test time
 * (ECDSA P-256): a CA, a server certificate for "proxy.test" (SAN DNS
 * proxy.test and IP 127.0.0.1) and a client certificate for "client.test",
 * written into a folder as ca.pem, server.pem, server.key (mode 0600),
 * client.pem, client.key. Unit tests only (uses system()). */
#include <stdio.h>
#include <stdlib.h>

/* tls_fixture_make - create the files in @dir; 0 or -1. */
static inline int tls_fixture_make(const char *dir)
{
	char cmd[4096];
	snprintf(cmd, sizeof(cmd),
		 "set -e; cd '%s'; umask 077;"
		 " openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2"
		 "  -subj /CN=referee-test-ca -keyout ca.key -out ca.pem 2>/dev/null;"
		 " for who in server:proxy.test client:client.test; do n=${who%%:*}; cn=${who#*:};"
		 "  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=$cn"
		 "   -keyout $n.key -out $n.csr 2>/dev/null;"
		 "  printf 'subjectAltName=DNS:%%s,IP:127.0.0.1\\n' $cn > $n.ext;"
		 "  openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2"
		 "   -extfile $n.ext -out $n.pem 2>/dev/null; done",
		 dir);
	return system(cmd) == 0 ? 0 : -1;
}
