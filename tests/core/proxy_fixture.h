#pragma once
/* proxy_fixture.h - the configuration every core proxy test starts from:
 * referee on udp://127.0.0.1:5060 for example.com, routes.local 127.0.0.1:5080,
 * routes.outbound 127.0.0.1:5090, 127.0.0.0/8 trusted. Tests add what they
 * need (a second listen address, other routes) after calling it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cfg.h"

static inline void proxy_fixture_cfg(struct cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->n_listen = 1;
	assert_int_equal(cfg_addr_parse("udp://127.0.0.1:5060", true, &c->listen[0]), 0);
	c->n_domains = 1;
	strcpy(c->domains[0], "example.com");
	assert_int_equal(cfg_destset_add(&c->routes.local, "udp://127.0.0.1:5080", 1), 0);
	assert_int_equal(cfg_destset_add(&c->routes.outbound, "udp://127.0.0.1:5090", 1), 0);
	c->n_trusted = 1;
	assert_int_equal(cfg_cidr_parse("127.0.0.0/8", &c->trusted[0]), 0);
}
