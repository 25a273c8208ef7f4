/* secret.c - loads the shared secret (SPEC §3) and derives one key per purpose:
 * key = HMAC-SHA256(secret, "referee nonce" | "referee grant" | "referee record-route").
 * Refuses files that other users can read or write, that are not strict base64,
 * or that hold fewer than SECRET_MIN_BYTES. Does not generate secrets
 * (`openssl rand -base64 32` does). Every buffer that held key material is wiped. */
#include "secret.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hmac.h"

/* Largest base64 text accepted: SECRET_MAX_BYTES encoded, plus line breaks. */
#define SECRET_FILE_MAX 1024

static int fail(char *err, size_t errlen, int rc, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int fail(char *err, size_t errlen, int rc, const char *path, const char *fmt, ...)
{
	if (err && errlen) {
		int n = snprintf(err, errlen, "%s: ", path);
		if (n >= 0 && (size_t)n < errlen) {
			va_list ap;
			va_start(ap, fmt);
			vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
			va_end(ap);
		}
	}
	return rc;
}

static bool is_b64(char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
	       ch == '+' || ch == '/';
}

/* b64_strict_decode - whitespace (line breaks) is dropped first; the rest must
 * be whole 4-character groups of the standard alphabet, '=' only as the final
 * padding. Returns the decoded length or -EINVAL. @text is rewritten in place. */
static int b64_strict_decode(char *text, size_t len, uint8_t *out, size_t out_size)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		if (text[i] != ' ' && text[i] != '\t' && text[i] != '\r' && text[i] != '\n')
			text[n++] = text[i];
	if (n == 0 || n % 4 != 0)
		return -EINVAL;
	size_t pad = 0;
	while (pad < 2 && text[n - 1 - pad] == '=')
		pad++;
	for (size_t i = 0; i < n - pad; i++)
		if (!is_b64(text[i]))
			return -EINVAL;
	if (n / 4 * 3 > out_size)
		return -EINVAL;
	/* EVP_DecodeBlock counts padding as zero bytes: subtract it. */
	int got = EVP_DecodeBlock(out, (const unsigned char *)text, (int)n);
	if (got < 0 || (size_t)got < pad)
		return -EINVAL;
	return got - (int)pad;
}

/* file_read_private - read @path into buf after checking that it is a regular
 * file only its owner can access. Returns the length or -errno. */
static int file_read_private(const char *path, char *buf, size_t size, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		int e = errno;
		return fail(err, errlen, -e, path, "cannot open the secret file: %s", strerror(e));
	}
	struct stat st;
	int rc;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		fail(err, errlen, rc, path, "cannot stat the secret file: %s", strerror(-rc));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = fail(err, errlen, -EINVAL, path, "the secret file is not a regular file");
		goto out;
	}
	if (st.st_mode & 077) {
		rc = fail(err, errlen, -EPERM, path,
			  "the secret file is accessible by group or others (mode %04o); "
			  "run chmod 600 on it",
			  (unsigned)(st.st_mode & 07777));
		goto out;
	}
	size_t len = 0;
	for (;;) {
		ssize_t got = read(fd, buf + len, size - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			rc = -errno;
			fail(err, errlen, rc, path, "cannot read the secret file: %s",
			     strerror(-rc));
			goto out;
		}
		if (got == 0)
			break;
		len += (size_t)got;
		if (len == size) {
			rc = fail(err, errlen, -EFBIG, path,
				  "the secret file is too large (at most %d bytes of base64)",
				  SECRET_FILE_MAX - 1);
			goto out;
		}
	}
	rc = (int)len;
out:
	close(fd);
	return rc;
}

int secret_load(const char *path, struct secret *s, char *err, size_t errlen)
{
	if (!path || !path[0])
		return fail(err, errlen, -EINVAL, "secret_file", "not set in the configuration");
	char text[SECRET_FILE_MAX];
	uint8_t raw[SECRET_FILE_MAX];
	int rc = file_read_private(path, text, sizeof(text), err, errlen);
	if (rc < 0)
		goto out;
	int n = b64_strict_decode(text, (size_t)rc, raw, sizeof(raw));
	if (n < 0) {
		rc = fail(
		    err, errlen, -EINVAL, path,
		    "the secret file is not base64 (create one with: openssl rand -base64 32)");
	} else if (n < SECRET_MIN_BYTES) {
		rc = fail(err, errlen, -EINVAL, path,
			  "the secret is too short: %d bytes, at least %d are needed", n,
			  SECRET_MIN_BYTES);
	} else if (n > SECRET_MAX_BYTES) {
		rc = fail(err, errlen, -EINVAL, path,
			  "the secret is too long: %d bytes, at most %d are used", n,
			  SECRET_MAX_BYTES);
	} else {
		rc = secret_set(s, raw, (size_t)n);
		if (rc < 0)
			fail(err, errlen, rc, path, "cannot derive keys from the secret");
	}
out:
	OPENSSL_cleanse(text, sizeof(text));
	OPENSSL_cleanse(raw, sizeof(raw));
	return rc < 0 ? rc : 0;
}

static void key_derive(const struct secret *s, const char *purpose, uint8_t out[SECRET_KEY_BYTES])
{
	static_assert(SECRET_KEY_BYTES == HMAC_SHA256_BYTES, "a key is one HMAC-SHA256");
	hmac_sha256(s->bytes, s->len, purpose, strlen(purpose), out);
}

int secret_set(struct secret *s, const uint8_t *bytes, size_t len)
{
	if (!s || !bytes || len < SECRET_MIN_BYTES || len > SECRET_MAX_BYTES)
		return -EINVAL;
	secret_wipe(s);
	memcpy(s->bytes, bytes, len);
	s->len = len;
	key_derive(s, "referee nonce", s->nonce_key);
	key_derive(s, "referee grant", s->grant_key);
	key_derive(s, "referee record-route", s->rr_key);
	return 0;
}

void secret_wipe(struct secret *s)
{
	if (s)
		OPENSSL_cleanse(s, sizeof(*s));
}
