/* metrics_http.c - the Prometheus scrape endpoint (SPEC §8) on libmicrohttpd.
 * GET /metrics renders every counter (summed over thread shards) in the text
 * exposition format, followed by the standard process_* metrics (CPU, memory,
 * file descriptors, start time) read from /proc/self at scrape time; GET
 * /health answers 200 "ok" or 503 "unavailable".
 * Runs on libmicrohttpd's own thread: scrapes never touch a worker. */
#include "metrics.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cfg.h"
#include "log.h"

#include <microhttpd.h>

/* room kept after the referee_* text for the process_* families */
#define PROCESS_TEXT_MAX 2048

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

/* proc_read - the first @cap - 1 bytes of a /proc file, NUL-terminated; 0 when unreadable. */
static size_t proc_read(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, cap - 1, f);
	fclose(f);
	buf[n] = '\0';
	return n;
}

/* proc_count_fds - entries of /proc/self/fd (without . and .., and the one opendir uses). */
static long proc_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	long n = 0;
	for (struct dirent *e; (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1;
}

/* process_render - the standard process_* families (Prometheus client conventions)
 * into @buf; families whose source cannot be read are left out. Returns bytes written. */
static size_t process_render(char *buf, size_t cap)
{
	char stat[1024], sys[4096];
	size_t len = 0;
#define PROC_OUT(...)                                                              \
	do {                                                                       \
		int w_ = snprintf(buf + len, cap - len, __VA_ARGS__);              \
		if (w_ > 0 && (size_t)w_ < cap - len)                              \
			len += (size_t)w_;                                         \
	} while (0)
	long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	/* /proc/self/stat: fields after the ")" closing comm start at field 3 (state) */
	const char *p = proc_read("/proc/self/stat", stat, sizeof(stat)) ? strrchr(stat, ')') : NULL;
	unsigned long long utime, stime, start, vsize;
	long long rss;
	if (p && tick > 0 && page > 0 &&
	    sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %llu %llu %lld",
		   &utime, &stime, &start, &vsize, &rss) == 5) {
		PROC_OUT("# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
			 "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.2f\n",
			 (double)(utime + stime) / (double)tick);
		PROC_OUT("# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
			 "# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes %llu\n", vsize);
		PROC_OUT("# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
			 "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %lld\n",
			 rss * page);
		const char *b = proc_read("/proc/stat", sys, sizeof(sys)) ? strstr(sys, "\nbtime ") : NULL;
		unsigned long long btime;
		if (b && sscanf(b, "\nbtime %llu", &btime) == 1)
			PROC_OUT("# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n"
				 "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.2f\n",
				 (double)btime + (double)start / (double)tick);
	}
	long fds = proc_count_fds();
	if (fds >= 0)
		PROC_OUT("# HELP process_open_fds Number of open file descriptors.\n"
			 "# TYPE process_open_fds gauge\nprocess_open_fds %ld\n", fds);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		PROC_OUT("# HELP process_max_fds Maximum number of open file descriptors.\n"
			 "# TYPE process_max_fds gauge\nprocess_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
#undef PROC_OUT
	return len;
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
		if (need + PROCESS_TEXT_MAX <= cap) {
			*len = need + process_render(buf + need, cap - need);
			return buf;
		}
		free(buf);
		cap = need + PROCESS_TEXT_MAX + 4096;
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
