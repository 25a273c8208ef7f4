#pragma once
/* dns_fake.h - a DNS server for tests and benchmarks: one UDP socket on
 * 127.0.0.1 that answers every A query with one address (TTL @ttl) and
 * every other query with no data, until @stop is set. Not a resolver test
 * on its own: tests/integration/test_dns_nsd.sh runs a real NSD. */
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct dns_fake {
	int fd;
	uint16_t port;
	uint8_t addr[4];
	uint32_t ttl;
	atomic_bool stop;
	pthread_t thread;
};

static void *dns_fake_main(void *arg)
{
	struct dns_fake *f = arg;
	while (!atomic_load(&f->stop)) {
		struct pollfd p = { .fd = f->fd, .events = POLLIN };
		if (poll(&p, 1, 100) <= 0)
			continue;
		uint8_t q[512], r[600];
		struct sockaddr_storage from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(f->fd, q, sizeof(q), 0, (struct sockaddr *)&from, &fl);
		if (n < 17)
			continue;
		const uint16_t qtype = (uint16_t)(q[n - 4] << 8 | q[n - 3]);
		memcpy(r, q, (size_t)n);
		r[2] = 0x81; /* response, recursion desired/available, NOERROR */
		r[3] = 0x80;
		r[7] = qtype == 1 ? 1 : 0;
		size_t m = (size_t)n;
		if (qtype == 1) {
			const uint8_t rr[] = { 0xc0, 0x0c, 0, 1, 0, 1, (uint8_t)(f->ttl >> 24), (uint8_t)(f->ttl >> 16),
					       (uint8_t)(f->ttl >> 8), (uint8_t)f->ttl, 0, 4, f->addr[0], f->addr[1],
					       f->addr[2], f->addr[3] };
			memcpy(r + m, rr, sizeof(rr));
			m += sizeof(rr);
		}
		sendto(f->fd, r, m, 0, (struct sockaddr *)&from, fl);
	}
	return NULL;
}

/* dns_fake_start - bind 127.0.0.1:0 and serve; 0 or -1 */
static int dns_fake_start(struct dns_fake *f, const uint8_t addr[4], uint32_t ttl)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	memcpy(f->addr, addr, 4);
	f->ttl = ttl;
	atomic_init(&f->stop, false);
	f->fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (f->fd < 0 || bind(f->fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(f->fd, (struct sockaddr *)&a, &al) < 0)
		return -1;
	f->port = ntohs(a.sin_port);
	return pthread_create(&f->thread, NULL, dns_fake_main, f) == 0 ? 0 : -1;
}

static void dns_fake_stop(struct dns_fake *f)
{
	atomic_store(&f->stop, true);
	pthread_join(f->thread, NULL);
	close(f->fd);
}
