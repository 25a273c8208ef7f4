/* referee_main.c - the referee daemon: load and check the configuration,
 * start the store, register the stages in SPEC order and run the pipeline.
 * This is the only file that includes every module (STYLE.md §1).
 *   referee -c FILE          run in the foreground until SIGTERM
 *   referee -c FILE --check  validate the configuration (and what it points at) and exit */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>


#include "auth.h"
#include "cfg.h"
#include "dest.h"
#include "dns.h"
#include "flood.h"
#include "hmac.h"
#include "log.h"
#include "metrics.h"
#include "proxy.h"
#include "secret.h"
#include "slice.h"
#include "stage.h"
#include "store.h"
#include "transfer.h"

#define EXIT_USAGE 2

/* table_hash_key_set - key worker choice and every table keyed by packet text
 * (slice_hash) from the secret, before any thread starts (SPEC §13, issue 13). */
static void table_hash_key_set(const struct secret *s)
{
	static const char purpose[] = "referee table hash";
	uint8_t mac[32];
	uint64_t key[2];
	hmac_sha256(s->rr_key, SECRET_KEY_BYTES, purpose, sizeof(purpose) - 1, mac);
	memcpy(key, mac, sizeof(key));
	slice_hash_key_set(key);
	OPENSSL_cleanse(mac, sizeof(mac));
	OPENSSL_cleanse(key, sizeof(key));
}

static void usage(FILE *to)
{
	fprintf(to, "usage: referee -c FILE [--check]\n"
		    "  -c, --config FILE  configuration file (YAML, see README)\n"
		    "      --check        validate the configuration and exit\n"
		    "  -h, --help         this text\n"
		    "  -V, --version      print the version\n");
}

struct daemon_state {
	const char *path;
	struct secret secret;
	const struct cfg *live; /* the generation last published (main thread only) */
};

/* generation_build - everything @next needs before it can serve, attached to
 * it; nothing live is touched. 0 or -errno with "FILE:LINE: ..." in @err. */
static int generation_build(const struct cfg *live, struct cfg *next, char *err, size_t errlen)
{
	int rc = cfg_reload_check(live, next, err, errlen);
	if (rc == 0)
		rc = auth_gen_build(next, err, errlen);
	if (rc == 0)
		rc = store_gen_build(next, err, errlen);
	/* TLS material (issue 10) attaches here to CFG_GEN_TLS, validated like the rest. */
	return rc;
}

/* reload - SIGHUP on the main thread: build and validate a whole new
 * generation (config, compiled rules, users table, trusted list), then publish
 * its one pointer; any error keeps the old generation whole and logs why. */
static int reload(void *arg)
{
	struct daemon_state *d = arg;
	char err[512];
	struct cfg *next = cfg_load(d->path, err, sizeof(err));
	if (!next) {
		log_error("main", "reload refused, keeping the old configuration: %s", err);
		return -EINVAL;
	}
	if (generation_build(d->live, next, err, sizeof(err)) < 0) {
		log_error("main", "reload refused, keeping the old configuration: %s", err);
		cfg_free(next); /* releases whatever was attached */
		return -EINVAL;
	}
	store_gen_commit(next);
	flood_reload(next); /* limits.sources_max: the old table stays on failure (logged) */
	log_set_level(next->log_level);
	health_reload(next); /* copies what it probes: before the publish may free it */
	dns_reload(next);
	pipeline_cfg_publish(next); /* frees the old generation after a grace period */
	d->live = next;
	log_info("main", "configuration reloaded from %s", d->path);
	return 0;
}

/* healthy - /health: 200 while serving with a usable store, 503 when draining
 * or when the store cannot answer (SPEC §8). */
static bool healthy(void)
{
	return pipeline_is_serving() && store_is_usable();
}

static int build_stages(struct stage_table *st)
{
	int rc = 0;
	rc |= stage_add(st, "checks", proxy_checks_stage, true);
	rc |= stage_add(st, "identity", auth_identity_stage, true);
	rc |= stage_add(st, "transfer", transfer_stage, true);
	rc |= stage_add(st, "rules", auth_rules_stage, true);
	rc |= stage_add(st, "egress", transfer_egress_stage, true);
	rc |= stage_add(st, "forward", proxy_forward_stage, false);
	rc |= store_register(st);
	return rc < 0 ? -ENOSPC : 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct daemon_state d = { 0 };
	bool check_only = false, served = false;
	int opt;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":c:hV", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': d.path = optarg; break;
		case 'k': check_only = true; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("referee 0.1.0\n"); return 0;
		case ':':
			fprintf(stderr, "referee: option '%s' needs a value.\n", argv[optind - 1]);
			return EXIT_USAGE;
		default:
			fprintf(stderr, "referee: unknown option '%s' (try --help).\n", argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "referee: unexpected argument '%s' (try --help).\n", argv[optind]);
		return EXIT_USAGE;
	}
	if (!d.path) {
		fprintf(stderr, "referee: no configuration file given; use -c FILE.\n");
		return EXIT_USAGE;
	}

	char err[512];
	struct cfg *c = cfg_load(d.path, err, sizeof(err));
	if (!c) {
		fprintf(stderr, "%s\n", err);
		return EXIT_USAGE;
	}
	log_set_level(c->log_level);
	int rc = EXIT_USAGE;
	if (secret_load(c->secret_file, &d.secret, err, sizeof(err)) < 0) {
		unsigned line = cfg_key_line(c, "secret_file");
		fprintf(stderr, "%s:%u: secret_file: %s\n", d.path, line ? line : 1, err);
		goto out_cfg;
	}
	table_hash_key_set(&d.secret);
	if (auth_init(c, &d.secret, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		goto out_secret;
	}
	if (check_only) {
		/* The users file is part of what --check validates; Redis is not contacted. */
		if (c->store.backend == CFG_STORE_FILE && store_init(c, err, sizeof(err)) < 0) {
			fprintf(stderr, "%s\n", err);
			goto out_auth;
		}
		if (c->store.backend == CFG_STORE_FILE)
			store_fini();
		printf("%s: configuration OK (threads: receivers=%u workers=%u inline_receive=%s)\n", d.path,
		       c->threads.receivers, c->threads.workers, c->threads.inline_receive ? "yes" : "no");
		rc = 0;
		goto out_auth;
	}
	if (store_init(c, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		goto out_auth;
	}
	if (flood_init(c) < 0) {
		fprintf(stderr, "referee: cannot initialise the flood limiter: out of memory\n");
		goto out_store;
	}
	if (proxy_init(c, &d.secret) < 0 || transfer_init(c, &d.secret, err, sizeof(err)) < 0) {
		fprintf(stderr, "referee: cannot initialise: %s\n", err);
		goto out_store;
	}
	static struct stage_table stages;
	if (build_stages(&stages) < 0) {
		fprintf(stderr, "referee: too many stages\n");
		goto out_store;
	}
	if (health_start(c) < 0) {
		fprintf(stderr, "referee: cannot start the route health prober\n");
		goto out_store;
	}
	if (dns_start(c) < 0) {
		fprintf(stderr, "referee: cannot start the DNS resolver (dns.servers)\n");
		goto out_store;
	}
	if (c->metrics.enabled && metrics_http_start(&c->metrics.listen, healthy) < 0) {
		fprintf(stderr, "%s: metrics.listen: cannot serve on %s\n", d.path, c->metrics.listen.text);
		goto out_store;
	}
	/* pipeline_run owns c from here on (it may replace it on SIGHUP). */
	d.live = c;
	rc = pipeline_run(c, &stages, reload, &d) == 0 ? 0 : 1;
	served = true;
	c = NULL;
	metrics_http_stop();
	log_info("main", "releasing the store and the rules");
out_store:
	dns_stop();
	health_stop();
	flood_fini();
	store_fini();
out_auth:
	auth_fini();
out_secret:
	secret_wipe(&d.secret);
out_cfg:
	if (c)
		cfg_free(c);
	if (served) /* a refused start says only why (one line, exit 2) */
		log_info("main", "stopped rc=%d", rc);
	/* A normal return: library destructors and, in ASan builds, LeakSanitizer's
	 * exit-time leak check run. (An _exit here once hid a "hang" after main
	 * that was the tests' liveness poll misreading an exited child: see
	 * it_term_wait in tests/integration/lib.sh.) */
	return rc;
}
