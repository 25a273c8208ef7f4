/* metrics_http.c - the Prometheus scrape endpoint (SPEC §8) on libmicrohttpd.
 * GET /metrics renders every counter (summed over thread shards) in the text
 * exposition format; GET /health answers 200 "ok" or 503 "unavailable".
 * Runs on libmicrohttpd's own thread: scrapes never touch a worker. */
#include "metrics.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "log.h"

#ifdef REFEREE_HAVE_MHD
#include <microhttpd.h>

static struct MHD_Daemon *http_daemon;
static bool (*health_fn)(void);

static enum MHD_Result answer_text(struct MHD_Connection *conn, unsigned code, const char *type,
				   char *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, mode);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", type);
	enum MHD_Result r = MHD_queue_response(conn, code, resp);
	MHD_destroy_response(resp);
	return r;
}

/* render_metrics - render into a heap buffer sized by a first pass; the
 * registry only grows at startup, so two passes agree in practice and a
 * third try covers a race with a late registration. */
static char *render_metrics(size_t *len)
{
	size_t cap = 65536;
	for (int attempt = 0; attempt < 3; attempt++) {
		char *buf = malloc(cap);
		if (!buf)
			return NULL;
		size_t need = metrics_render(buf, cap);
		if (need <= cap) {
			*len = need;
			return buf;
		}
		free(buf);
		cap = need + 4096;
	}
	return NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_len, void **state)
{
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return answer_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", "method not allowed\n",
				   19, MHD_RESPMEM_PERSISTENT);
	if (strcmp(url, "/metrics") == 0) {
		size_t len = 0;
		char *body = render_metrics(&len);
		if (!body)
			return answer_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain",
					   "out of memory\n", 14, MHD_RESPMEM_PERSISTENT);
		return answer_text(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body,
				   len, MHD_RESPMEM_MUST_FREE);
	}
	if (strcmp(url, "/health") == 0) {
		if (health_fn && health_fn())
			return answer_text(conn, MHD_HTTP_OK, "text/plain", "ok\n", 3, MHD_RESPMEM_PERSISTENT);
		return answer_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain", "unavailable\n", 12,
				   MHD_RESPMEM_PERSISTENT);
	}
	return answer_text(conn, MHD_HTTP_NOT_FOUND, "text/plain", "not found\n", 10,
			   MHD_RESPMEM_PERSISTENT);
}

int metrics_http_start(const struct cfg_addr *listen, bool (*healthy)(void))
{
	health_fn = healthy;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
	if (listen->sa.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	uint16_t port = ntohs(listen->sa.ss_family == AF_INET6
				      ? ((const struct sockaddr_in6 *)&listen->sa)->sin6_port
				      : ((const struct sockaddr_in *)&listen->sa)->sin_port);
	http_daemon = MHD_start_daemon(flags, port, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR,
				       (const struct sockaddr *)&listen->sa, MHD_OPTION_CONNECTION_LIMIT,
				       (unsigned)64, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
				       MHD_OPTION_END);
	if (!http_daemon) {
		log_error("metrics", "cannot serve metrics on %s", listen->text);
		return -EADDRINUSE;
	}
	log_info("metrics", "serving /metrics and /health on %s", listen->text);
	return 0;
}

void metrics_http_stop(void)
{
	if (http_daemon) {
		MHD_stop_daemon(http_daemon);
		http_daemon = NULL;
	}
}
#else
int metrics_http_start(const struct cfg_addr *listen, bool (*healthy)(void))
{
	(void)healthy;
	log_error("metrics", "built without libmicrohttpd: cannot serve %s", listen->text);
	return -ENOTSUP;
}

void metrics_http_stop(void)
{
}
#endif
