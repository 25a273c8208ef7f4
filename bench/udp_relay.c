/*
 * udp_relay: the kernel's floor for a relaying proxy (bench/run.sh's second floor).
 *
 * udp_null answers each datagram back to its sender: one process and one socket
 * per pair. A proxy relays: what the UAC sends goes to the UAS and what the UAS
 * answers goes back, so every datagram wakes a different process and three of
 * them share the two CPUs. udp_relay does exactly that and nothing else: a
 * response (the datagram starts "SIP/2.0 ") goes to the last client a request
 * came from, a request goes to the backend. It looks at nothing else (no Via is
 * added, so the UAS must send its answers here: SIPp's -rsa, which sends them
 * from an ephemeral port, hence the first-bytes test rather than the source),
 * it keeps no state beyond the last client's address, and it batches like
 * udp_null (recvmmsg with
 * MSG_WAITFORONE, then one sendmmsg), so its CPU per call is what the loopback
 * path and the scheduler cost a relay with zero work of its own.
 *
 * usage: udp_relay -l PORT -b BACKEND_PORT [-a ADDR] [-n BATCH]
 *   Only loopback addresses: ADDR is 127.0.0.1 (default) or any 127.0.0.0/8.
 * SIGINT/SIGTERM: prints its counters to stderr and exits 0.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { RELAY_MAX_BATCH = 256, RELAY_BUF = 65536 };

static volatile sig_atomic_t relay_stop;

static void relay_on_signal(int sig)
{
	(void)sig;
	relay_stop = 1;
}

static int relay_port(const char *s, const char *what)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || v < 1 || v > 65535) {
		fprintf(stderr, "udp_relay: %s '%s' is not a port (1..65535)\n", what, s);
		exit(2);
	}
	return (int)v;
}

static bool relay_is_response(const char *d, unsigned len)
{
	return len >= 8 && memcmp(d, "SIP/2.0 ", 8) == 0;
}

int main(int argc, char **argv)
{
	const char *addr = "127.0.0.1";
	int port = 0, backend_port = 0, batch = 64, opt;
	while ((opt = getopt(argc, argv, "a:l:b:n:")) != -1) {
		switch (opt) {
		case 'a': addr = optarg; break;
		case 'l': port = relay_port(optarg, "listen port"); break;
		case 'b': backend_port = relay_port(optarg, "backend port"); break;
		case 'n':
			batch = atoi(optarg);
			if (batch < 1 || batch > RELAY_MAX_BATCH) {
				fprintf(stderr, "udp_relay: batch '%s' is not in 1..%d\n", optarg, RELAY_MAX_BATCH);
				return 2;
			}
			break;
		default:
			fprintf(stderr, "usage: udp_relay -l PORT -b BACKEND_PORT [-a ADDR] [-n BATCH]\n");
			return 2;
		}
	}
	struct sockaddr_in self = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	if (port == 0 || backend_port == 0 || inet_pton(AF_INET, addr, &self.sin_addr) != 1 ||
	    (ntohl(self.sin_addr.s_addr) >> 24) != 127) {
		fprintf(stderr, "udp_relay: needs -l PORT, -b BACKEND_PORT and a 127.0.0.0/8 address (got '%s')\n", addr);
		return 2;
	}
	struct sockaddr_in backend = self;
	backend.sin_port = htons((uint16_t)backend_port);

	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	int buf = 4 << 20;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
	if (fd < 0 || bind(fd, (struct sockaddr *)&self, sizeof self) < 0) {
		fprintf(stderr, "udp_relay: cannot bind %s:%d: %s\n", addr, port, strerror(errno));
		return 1;
	}
	struct sigaction sa = { .sa_handler = relay_on_signal }; /* no SA_RESTART: recvmmsg returns EINTR */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	static char bufs[RELAY_MAX_BATCH][RELAY_BUF];
	static struct iovec iov[RELAY_MAX_BATCH];
	static struct sockaddr_in from[RELAY_MAX_BATCH];
	static struct sockaddr_in dest[RELAY_MAX_BATCH];
	static struct mmsghdr in[RELAY_MAX_BATCH], out[RELAY_MAX_BATCH];
	struct sockaddr_in client = { 0 };
	unsigned long long rx = 0, tx = 0, dropped = 0, calls = 0;
	while (!relay_stop) {
		for (int i = 0; i < batch; i++) {
			iov[i] = (struct iovec){ bufs[i], RELAY_BUF };
			in[i].msg_hdr = (struct msghdr){ .msg_name = &from[i], .msg_namelen = sizeof from[i],
							 .msg_iov = &iov[i], .msg_iovlen = 1 };
		}
		int got = recvmmsg(fd, in, (unsigned)batch, MSG_WAITFORONE, NULL);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			perror("udp_relay: recvmmsg");
			return 1;
		}
		calls++;
		int m = 0;
		for (int i = 0; i < got; i++) {
			rx++;
			struct sockaddr_in *to = &backend;
			if (relay_is_response(bufs[i], in[i].msg_len)) {
				if (client.sin_port == 0) {
					dropped++;
					continue;
				}
				to = &client;
			} else {
				client = from[i];
			}
			iov[i].iov_len = in[i].msg_len;
			dest[m] = *to;
			out[m].msg_hdr = (struct msghdr){ .msg_name = &dest[m], .msg_namelen = sizeof dest[m],
							  .msg_iov = &iov[i], .msg_iovlen = 1 };
			m++;
		}
		for (int off = 0; off < m;) {
			int sent = sendmmsg(fd, out + off, (unsigned)(m - off), 0);
			if (sent < 0) {
				if (errno == EINTR)
					continue;
				dropped += (unsigned long long)(m - off);
				break;
			}
			off += sent;
			tx += (unsigned long long)sent;
		}
	}
	fprintf(stderr, "udp_relay: rx=%llu tx=%llu dropped=%llu recvmmsg_calls=%llu avg_batch=%.2f\n", rx, tx,
		dropped, calls, calls ? (double)rx / (double)calls : 0.0);
	return 0;
}
