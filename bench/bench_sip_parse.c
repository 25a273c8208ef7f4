/* bench_sip_parse.c - ns per sip_parse (and per sip_parse + sip_msg_check) of
 * a typical SIPp-style INVITE with SDP. Standalone, not part of ctest. Build and run:
 *   cmake --build build --target bench_sip_parse && build/bench/bench_sip_parse [iterations]
 * One thread, no I/O; the figure is CPU time per message on this machine. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sip.h"

static const char invite[] =
    "INVITE sip:service@192.0.2.10:5060 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.0.2.20:5061;branch=z9hG4bK-3171-1-0;rport\r\n"
    "From: sipp <sip:sipp@192.0.2.20:5061>;tag=3171SIPpTag001\r\n"
    "To: service <sip:service@192.0.2.10:5060>\r\n"
    "Call-ID: 1-3171@192.0.2.20\r\n"
    "CSeq: 1 INVITE\r\n"
    "Contact: sip:sipp@192.0.2.20:5061\r\n"
    "Max-Forwards: 70\r\n"
    "Subject: Performance Test\r\n"
    "User-Agent: SIPp/3.7\r\n"
    "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, REFER, NOTIFY\r\n"
    "Supported: replaces, timer\r\n"
    "Proxy-Authorization: Digest username=\"u1000\", realm=\"example.com\", "
    "nonce=\"AAABBBCCCDDDEEEFFF000111222333\", uri=\"sip:service@192.0.2.10:5060\", "
    "response=\"0123456789abcdef0123456789abcdef\", algorithm=MD5, qop=auth, nc=00000001, "
    "cnonce=\"abcdef\"\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: 131\r\n"
    "\r\n"
    "v=0\r\n"
    "o=user1 53655765 2353687637 IN IP4 192.0.2.20\r\n"
    "s=-\r\n"
    "c=IN IP4 192.0.2.20\r\n"
    "t=0 0\r\n"
    "m=audio 6000 RTP/AVP 0\r\n"
    "a=rtpmap:0 PCMU/8000\r\n";

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static struct sip_msg msg;

static double run(long iters, int with_check)
{
	volatile long sink = 0;
	const double t0 = now_ns();
	for (long i = 0; i < iters; i++) {
		const int rc = sip_parse(invite, sizeof(invite) - 1, &msg);
		sink += rc;
		if (with_check)
			sink += sip_msg_check(&msg, NULL);
	}
	const double t1 = now_ns();
	if (sink < 0)
		puts("unreachable");
	return (t1 - t0) / (double)iters;
}

int main(int argc, char **argv)
{
	const long iters = argc > 1 ? atol(argv[1]) : 2000000;
	const int rc = sip_parse(invite, sizeof(invite) - 1, &msg);
	if (rc != (int)sizeof(invite) - 1 || sip_msg_check(&msg, NULL) != SIP_CHECK_OK) {
		fprintf(stderr, "bench message does not parse: %d\n", rc);
		return 1;
	}
	run(iters / 10, 1); /* warm-up */
	double best_p = 1e18, best_c = 1e18;
	for (int r = 0; r < 5; r++) { /* best of 5: the machine is shared */
		const double p = run(iters, 0), c = run(iters, 1);
		best_p = p < best_p ? p : best_p;
		best_c = c < best_c ? c : best_c;
	}
	printf("INVITE %zu bytes, %u header values\n", sizeof(invite) - 1, msg.n_hdrs);
	printf("sip_parse:                 %.1f ns/msg\n", best_p);
	printf("sip_parse + sip_msg_check: %.1f ns/msg\n", best_c);
	return 0;
}
