/* auth_nonce.c - stateless nonces any instance can verify (SPEC §3):
 * base64url(ts ‖ random ‖ HMAC-SHA256(nonce_key, ts ‖ random ‖ realm)[0..16]).
 * ts is big-endian unix seconds (8 bytes); random is a per-thread counter
 * seeded once from RAND_bytes, so making a nonce needs no syscall and two
 * nonces never repeat. Replay (nonce-count) is store/'s business, not this file's. */
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <string.h>
#include <time.h>

#include "auth_priv.h"
#include "secret.h"

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Per-thread nonce counter; 0 means "not seeded yet". Only its own thread touches it. */
static _Thread_local uint64_t nonce_counter;

uint64_t auth_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return (uint64_t)ts.tv_sec;
}

static uint64_t counter_next(void)
{
	if (nonce_counter == 0) {
		uint64_t seed = 0;
		if (RAND_bytes((unsigned char *)&seed, sizeof(seed)) != 1) {
			/* No entropy: the MAC still protects the nonce; uniqueness then
			 * leans on the clock and the thread's stack address. */
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)&ts;
		}
		nonce_counter = seed | 1;
	}
	return nonce_counter++;
}

static void b64url_encode(const uint8_t in[AUTH_NONCE_RAW], char out[AUTH_NONCE_LEN])
{
	size_t o = 0;
	size_t i = 0;
	for (; i + 3 <= AUTH_NONCE_RAW; i += 3) {
		uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];
		out[o++] = b64url[(v >> 18) & 63];
		out[o++] = b64url[(v >> 12) & 63];
		out[o++] = b64url[(v >> 6) & 63];
		out[o++] = b64url[v & 63];
	}
	/* 32 = 10 * 3 + 2: two bytes left, three characters */
	uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8);
	out[o++] = b64url[(v >> 18) & 63];
	out[o++] = b64url[(v >> 12) & 63];
	out[o++] = b64url[(v >> 6) & 63];
}

static int b64url_value(char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '-')
		return 62;
	if (ch == '_')
		return 63;
	return -1;
}

/* b64url_decode - exactly AUTH_NONCE_LEN characters into AUTH_NONCE_RAW bytes;
 * false on a bad character or non-zero padding bits (one encoding per nonce). */
static bool b64url_decode(struct slice s, uint8_t out[AUTH_NONCE_RAW])
{
	if (s.len != AUTH_NONCE_LEN)
		return false;
	int vals[AUTH_NONCE_LEN];
	for (size_t i = 0; i < AUTH_NONCE_LEN; i++)
		if ((vals[i] = b64url_value(s.p[i])) < 0)
			return false;
	size_t o = 0, i = 0;
	for (; i + 4 <= AUTH_NONCE_LEN; i += 4) {
		uint32_t v = ((uint32_t)vals[i] << 18) | ((uint32_t)vals[i + 1] << 12) |
			     ((uint32_t)vals[i + 2] << 6) | (uint32_t)vals[i + 3];
		out[o++] = (uint8_t)(v >> 16);
		out[o++] = (uint8_t)(v >> 8);
		out[o++] = (uint8_t)v;
	}
	uint32_t v = ((uint32_t)vals[i] << 18) | ((uint32_t)vals[i + 1] << 12) | ((uint32_t)vals[i + 2] << 6);
	if (v & 0xff)
		return false;
	out[o++] = (uint8_t)(v >> 16);
	out[o++] = (uint8_t)(v >> 8);
	return true;
}

/* nonce_mac - HMAC over ts ‖ random ‖ realm (realm length is implied: it ends the input). */
static void nonce_mac(const uint8_t key[32], const uint8_t head[16], struct slice realm, uint8_t mac[32])
{
	uint8_t buf[16 + CFG_NAME_MAX];
	size_t rl = realm.len < CFG_NAME_MAX ? realm.len : CFG_NAME_MAX;
	memcpy(buf, head, 16);
	if (rl)
		memcpy(buf + 16, realm.p, rl);
	secret_hmac(key, buf, 16 + rl, mac);
}

void auth_nonce_make(const uint8_t key[32], struct slice realm, uint64_t now, char out[AUTH_NONCE_LEN])
{
	uint8_t raw[AUTH_NONCE_RAW];
	uint64_t rnd = counter_next();
	for (int i = 0; i < 8; i++) {
		raw[i] = (uint8_t)(now >> (56 - 8 * i));
		raw[8 + i] = (uint8_t)(rnd >> (56 - 8 * i));
	}
	uint8_t mac[32];
	nonce_mac(key, raw, realm, mac);
	memcpy(raw + 16, mac, 16);
	b64url_encode(raw, out);
}

enum auth_nonce_rc auth_nonce_check(const uint8_t key[32], struct slice realm, struct slice nonce,
				    uint64_t now, unsigned ttl)
{
	uint8_t raw[AUTH_NONCE_RAW];
	if (!b64url_decode(nonce, raw))
		return AUTH_NONCE_FORGED;
	uint8_t mac[32];
	nonce_mac(key, raw, realm, mac);
	if (CRYPTO_memcmp(mac, raw + 16, 16) != 0)
		return AUTH_NONCE_FORGED;
	uint64_t ts = 0;
	for (int i = 0; i < 8; i++)
		ts = (ts << 8) | raw[i];
	if (ts > now + AUTH_NONCE_SKEW)
		return AUTH_NONCE_FORGED; /* we never issue those: a stolen key or a broken clock */
	if (ts + ttl < now)
		return AUTH_NONCE_STALE;
	return AUTH_NONCE_OK;
}
