/* pipeline_socket.c - the listen sockets of the pipeline: one SO_REUSEPORT
 * UDP socket per receiver and listen address, with large kernel buffers (the
 * kernel then spreads sources over the receivers by a hash of the 4-tuple).
 * Startup only. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "pipeline_socket.h"

static void socket_bufsize(int fd, int opt_force, int opt, const char *what)
{
	int size = PIPELINE_SOCKBUF;
	if (setsockopt(fd, SOL_SOCKET, opt_force, &size, sizeof(size)) == 0)
		return; /* needs CAP_NET_ADMIN; otherwise capped by net.core.*mem_max */
	if (setsockopt(fd, SOL_SOCKET, opt, &size, sizeof(size)) < 0)
		log_warn("pipeline", "cannot set %s: %s", what, strerror(errno));
}

/* bind one SO_REUSEPORT socket to @a (whose port is fixed by the first bind). */
int pipeline_udp_socket(struct cfg_addr *a)
{
	int fd = socket(a->sa.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto fail;
	socket_bufsize(fd, SO_RCVBUFFORCE, SO_RCVBUF, "SO_RCVBUF");
	socket_bufsize(fd, SO_SNDBUFFORCE, SO_SNDBUF, "SO_SNDBUF");
	if (bind(fd, (struct sockaddr *)&a->sa, a->salen) < 0)
		goto fail;
	/* port 0: every later receiver binds the port the kernel chose */
	socklen_t len = sizeof(a->sa);
	if (getsockname(fd, (struct sockaddr *)&a->sa, &len) < 0)
		goto fail;
	a->salen = len;
	return fd;
fail:;
	int err = -errno;
	close(fd);
	return err;
}
