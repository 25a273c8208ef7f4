#pragma once
/* pipeline_socket.h - listen sockets of the pipeline (pipeline_socket.c). */
#include "cfg.h"

#define PIPELINE_SOCKBUF (4 << 20)

/**
 * pipeline_udp_socket - a UDP socket bound to @a with SO_REUSEPORT (every
 * receiver binds one to the same address) and PIPELINE_SOCKBUF kernel
 * buffers. Port 0 in @a is replaced by the port the kernel chose, so later
 * receivers bind the same one. Returns the fd or a negative errno.
 */
int pipeline_udp_socket(struct cfg_addr *a);
