/* fuzz_chain.c - libFuzzer entry: one datagram through the whole stage chain
 * as referee runs it (flood limiter, malformed check, checks, digest
 * identity, transfer, rules, egress, forward, reply building) with a fixed
 * configuration and a users file.
 *
 * Input: byte 0 chooses the source (bits 0-1: untrusted IPv4, trusted IPv4,
 * IPv6, loopback) and whether the harness signs the request (bit 2: it first
 * sends it unsigned to get referee's 407, then adds a valid
 * Proxy-Authorization of user 1001 for that nonce, with MD5 or SHA-256 by
 * bit 3), so the fuzzer reaches what only an authenticated request reaches
 * (the rules with an identity, the Refer-To rewrite with a grant). The rest
 * is the datagram. Invariants: the chain never parks (the file backend
 * answers at once), the output fits its buffer, and whatever referee sends
 * (forwarded request, relayed response, local reply) parses as SIP again. */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <urcu.h>

#include "auth.h"
#include "cfg.h"
#include "flood.h"
#include "metrics.h"
#include "proxy.h"
#include "secret.h"
#include "sip.h"
#include "slice.h"
#include "stage.h"
#include "store.h"
#include "transfer.h"
#include "txn.h"

static struct cfg *cfg;
static struct secret sec;
static struct stage_table chain;
static struct txn *T;
static char out[TXN_RX_MAX + 8192];
static uint64_t clock_ns;

static const char users_yaml[] = "users:\n"
				 "  - {id: 1001@example.com, password: pw1001, permissions: [LocalDialing]}\n"
				 "  - {id: 1002@example.com, password: pw1002, permissions: [LocalDialing, InternationalDialing]}\n";

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0)
		abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	static char dir[] = "/tmp/referee-fuzz-chain.XXXXXX";
	if (!mkdtemp(dir))
		abort();
	char users[128], conf[128], text[2048];
	snprintf(users, sizeof(users), "%s/users.yaml", dir);
	snprintf(conf, sizeof(conf), "%s/referee.yaml", dir);
	write_file(users, users_yaml);
	snprintf(text, sizeof(text),
		 "listen: [udp://127.0.0.1:5060]\n"
		 "domains: [example.com, alias.example.com]\n"
		 "routes: {local: udp://127.0.0.1:5080, outbound: udp://127.0.0.1:5090}\n"
		 "trusted: [10.9.0.0/16]\n"
		 "store: {backend: file, file: users.yaml}\n"
		 "auth: {failure_limit: {count: 1000000, window: 1}}\n"
		 "rules:\n"
		 "  - {hosts: [example.com], users: [\"255xxxx\"], permissions: []}\n"
		 "  - {hosts: [example.com], users: [\"1xxx\", \"3xxxxxx\"], permissions: [LocalDialing]}\n"
		 "  - {hosts: [example.com], users: [\"011.\", \"re:^00[1-9]\"], permissions: [InternationalDialing]}\n"
		 "  - {hosts: [\"*.example.net\", 10.0.0.0/8], users: [.], permissions: [ValidUser]}\n"
		 "log_level: error\n");
	write_file(conf, text);
	char err[512];
	cfg = cfg_load(conf, err, sizeof(err));
	if (!cfg) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	rcu_register_thread();
	metrics_thread_init();
	static const uint8_t key[32] = "referee-fuzz-chain-secret-012345";
	if (secret_set(&sec, key, sizeof(key)) < 0)
		abort();
	if (auth_init(cfg, &sec, err, sizeof(err)) < 0 || store_init(cfg, err, sizeof(err)) < 0 ||
	    proxy_init(cfg, &sec) < 0 || transfer_init(cfg, &sec, err, sizeof(err)) < 0 || flood_init(cfg) < 0) {
		fprintf(stderr, "init: %s\n", err);
		abort();
	}
	int rc = 0;
	rc |= stage_add(&chain, "checks", proxy_checks_stage, true);
	rc |= stage_add(&chain, "identity", auth_identity_stage, true);
	rc |= stage_add(&chain, "transfer", transfer_stage, true);
	rc |= stage_add(&chain, "rules", auth_rules_stage, true);
	rc |= stage_add(&chain, "egress", transfer_egress_stage, true);
	rc |= stage_add(&chain, "forward", proxy_forward_stage, false);
	T = calloc(1, sizeof(*T));
	if (rc < 0 || !T)
		abort();
	clock_ns = 1000000000ull;
	return 0;
}

static void source_set(struct txn *t, unsigned which)
{
	static const char *const v4[] = { "192.0.2.10", "10.9.1.1", NULL, "127.0.0.1" };
	memset(&t->src, 0, sizeof(t->src));
	if (which == 2) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&t->src;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons(5062);
		inet_pton(AF_INET6, "2001:db8::5", &a->sin6_addr);
		t->srclen = sizeof(*a);
		return;
	}
	struct sockaddr_in *a = (struct sockaddr_in *)&t->src;
	a->sin_family = AF_INET;
	a->sin_port = htons(5062);
	inet_pton(AF_INET, v4[which], &a->sin_addr);
	t->srclen = sizeof(*a);
}

/* run - @msg through the chain from @source; returns the verdict, output in out[0..T->out_len). */
static enum stage_rc run(const char *msg, size_t len, unsigned source)
{
	memset(T, 0, offsetof(struct txn, arena));
	if (len > sizeof(T->rx))
		len = sizeof(T->rx);
	memcpy(T->rx, msg, len);
	T->rx_len = (uint32_t)len;
	T->parse_rc = sip_parse(T->rx, len, &T->msg);
	source_set(T, source);
	T->cfg = cfg;
	clock_ns += 20000000ull; /* 50 datagrams a second: under limits.source_rate */
	T->rx_ns = clock_ns;
	T->out = out;
	T->out_cap = sizeof(out);
	enum stage_rc rc = proxy_process(&chain, T);
	if (rc == STAGE_PARK || T->out_len > T->out_cap)
		abort();
	return rc;
}

static void hex(const uint8_t *in, size_t n, char *o)
{
	static const char d[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		o[2 * i] = d[in[i] >> 4];
		o[2 * i + 1] = d[in[i] & 15];
	}
	o[2 * n] = '\0';
}

/* digest_hex - hex(H(a)) with MD5 or SHA-256. */
static void digest_hex(bool sha, const char *a, size_t n, char o[65])
{
	uint8_t md[32];
	unsigned len = 0;
	EVP_Digest(a, n, md, &len, sha ? EVP_sha256() : EVP_md5(), NULL);
	hex(md, len, o);
}

/* sign - @msg with a valid Proxy-Authorization for the nonce of referee's 407 in out[]. */
static size_t sign(const char *msg, size_t len, bool sha, char *signed_msg, size_t cap)
{
	out[T->out_len < sizeof(out) ? T->out_len : sizeof(out) - 1] = '\0';
	const char *alg = sha ? "algorithm=SHA-256" : "algorithm=MD5";
	const char *n = NULL;
	/* the challenge line offering @alg, and its nonce */
	const char *line = out;
	for (const char *p; (p = strstr(line, "Proxy-Authenticate: ")); line = p + 1) {
		const char *eol = strstr(p, "\r\n");
		const char *a = strstr(p, alg);
		if (a && eol && a < eol) {
			n = strstr(p, "nonce=\"");
			if (n && n > eol)
				n = NULL;
			break;
		}
	}
	if (!n)
		return 0;
	n += 7;
	const char *nend = strchr(n, '"');
	if (!nend || nend - n > 128)
		return 0;
	char nonce[129];
	memcpy(nonce, n, (size_t)(nend - n));
	nonce[nend - n] = '\0';
	if (T->parse_rc < 0 || !T->msg.is_request || T->msg.ruri.len > 512 || T->msg.method.len > 32)
		return 0;
	char ha1[65], ha2[65], resp[65], buf[2048];
	int k = snprintf(buf, sizeof(buf), "1001:example.com:pw1001");
	digest_hex(sha, buf, (size_t)k, ha1);
	k = snprintf(buf, sizeof(buf), "%.*s:%.*s", (int)T->msg.method.len, T->msg.method.p, (int)T->msg.ruri.len,
		     T->msg.ruri.p);
	digest_hex(sha, buf, (size_t)k, ha2);
	k = snprintf(buf, sizeof(buf), "%s:%s:00000001:0a4f113b:auth:%s", ha1, nonce, ha2);
	digest_hex(sha, buf, (size_t)k, resp);
	char hdr[1024];
	int h = snprintf(hdr, sizeof(hdr),
			 "Proxy-Authorization: Digest username=\"1001\", realm=\"example.com\", nonce=\"%s\", "
			 "uri=\"%.*s\", response=\"%s\", %s, qop=auth, nc=00000001, cnonce=\"0a4f113b\"\r\n",
			 nonce, (int)T->msg.ruri.len, T->msg.ruri.p, resp, alg);
	/* after the start line: the first CRLF of the message */
	const char *crlf = memmem(msg, len, "\r\n", 2);
	if (!crlf || h <= 0 || len + (size_t)h > cap)
		return 0;
	size_t head = (size_t)(crlf - msg) + 2;
	memcpy(signed_msg, msg, head);
	memcpy(signed_msg + head, hdr, (size_t)h);
	memcpy(signed_msg + head + (size_t)h, msg + head, len - head);
	return len + (size_t)h;
}

/* output_parses - what referee sends for a well-formed message parses again
 * (a 400 to a malformed request may echo the bad header it complains about). */
static void output_parses(void)
{
	const char *why;
	if (T->out_len == 0 || T->parse_rc < 0 || sip_msg_check(&T->msg, &why) != SIP_CHECK_OK)
		return;
	/* an exact-size copy: ASan sees a read past what we send */
	char *copy = malloc(T->out_len);
	memcpy(copy, out, T->out_len);
	struct sip_msg m;
	if (sip_parse(copy, T->out_len, &m) < 0) {
		/* fwrite, not %.*s: the bytes may hold a NUL */
		fputs("referee sent what it cannot parse:\n", stderr);
		fwrite(out, 1, T->out_len, stderr);
		fputs("\n", stderr);
		abort();
	}
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2 || size > TXN_RX_MAX)
		return 0;
	unsigned source = data[0] & 3;
	bool want_sign = data[0] & 4, sha = data[0] & 8;
	const char *msg = (const char *)data + 1;
	size_t len = size - 1;
	enum stage_rc rc = run(msg, len, source);
	output_parses();
	if (want_sign && rc == STAGE_REPLY && T->reply_code == 407) {
		static char signed_msg[TXN_RX_MAX];
		size_t n = sign(msg, len, sha, signed_msg, sizeof(signed_msg));
		if (n) {
			run(signed_msg, n, source);
			output_parses();
		}
	}
	return 0;
}
