/* test_reply_bounds.c - Redis replies read under the bounds of
 * store_redis_bound.c: raw RESP bytes fed to a hiredis reader whose builders
 * are the bounded ones, as every reader of store/ uses them. A hostile reply
 * (huge aggregate header, a tree or a run of strings over the byte budget, a
 * bulk string buffered past the bound) fails the reader with the budget's
 * refused flag set; normal replies pass, and the budget is per reply. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store_redis_priv.h"

/* A growing byte buffer for building RESP. */
struct wire {
	char *p;
	size_t len, cap;
};

static void put(struct wire *w, const char *s, size_t n)
{
	if (w->len + n > w->cap) {
		w->cap = (w->len + n) * 2;
		w->p = realloc(w->p, w->cap);
		assert_non_null(w->p);
	}
	memcpy(w->p + w->len, s, n);
	w->len += n;
}

static void putf(struct wire *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct wire *w, const char *fmt, ...)
{
	char buf[64];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	put(w, buf, (size_t)n);
}

static void put_ints(struct wire *w, unsigned n)
{
	putf(w, "*%u\r\n", n);
	for (unsigned i = 0; i < n; i++)
		put(w, ":7\r\n", 4);
}

static void put_strings(struct wire *w, unsigned n, size_t each)
{
	char *s = malloc(each);
	assert_non_null(s);
	memset(s, 'x', each);
	putf(w, "*%u\r\n", n);
	for (unsigned i = 0; i < n; i++) {
		putf(w, "$%zu\r\n", each);
		put(w, s, each);
		put(w, "\r\n", 2);
	}
	free(s);
}

struct bounded {
	redisReader *rd;
	struct store_reply_budget b;
};

static void bounded_open(struct bounded *t)
{
	t->rd = redisReaderCreate();
	assert_non_null(t->rd);
	store_reply_bound(t->rd, &t->b);
}

/* feed - @w into the reader (then emptied); the reader's verdict, *@reply the reply if any. */
static int feed(struct bounded *t, struct wire *w, void **reply)
{
	assert_int_equal(redisReaderFeed(t->rd, w->p, w->len), REDIS_OK);
	w->len = 0;
	*reply = NULL;
	return redisReaderGetReply(t->rd, reply);
}

/* refused - @w fails the reader on the bound (not a protocol error). */
static void assert_refused(struct wire *w, const char *why_part)
{
	struct bounded t;
	void *reply;
	bounded_open(&t);
	assert_int_equal(feed(&t, w, &reply), REDIS_ERR);
	assert_null(reply);
	assert_true(t.b.refused);
	assert_int_equal(t.rd->err, REDIS_ERR_OOM);
	assert_non_null(strstr(t.b.why, why_part));
	redisReaderFree(t.rd);
}

static void test_normal_nested(void **state)
{
	(void)state;
	struct wire w = { 0 };
	struct bounded t;
	void *reply;
	bounded_open(&t);
	const char *wire = "*3\r\n*2\r\n$3\r\nfoo\r\n:42\r\n$-1\r\n+OK\r\n";
	put(&w, wire, strlen(wire));
	assert_int_equal(feed(&t, &w, &reply), REDIS_OK);
	const redisReply *r = reply;
	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_ARRAY);
	assert_int_equal(r->elements, 3);
	assert_int_equal(r->element[0]->elements, 2);
	assert_string_equal(r->element[0]->element[0]->str, "foo");
	assert_int_equal(r->element[0]->element[1]->integer, 42);
	assert_int_equal(r->element[1]->type, REDIS_REPLY_NIL);
	assert_string_equal(r->element[2]->str, "OK");
	assert_false(t.b.refused);
	assert_true(t.b.used > 5 * sizeof(redisReply));
	freeReplyObject(reply);
	redisReaderFree(t.rd);
	free(w.p);
}

static void test_huge_headers(void **state)
{
	(void)state;
	struct wire w = { 0 };
	putf(&w, "*100000000\r\n");
	assert_refused(&w, "aggregate of 100000000 elements");
	putf(&w, "*2000000000\r\n");
	assert_refused(&w, "aggregate of 2000000000 elements");
	/* nested: the inner header is refused the same way */
	putf(&w, "*2\r\n:1\r\n*300000\r\n");
	assert_refused(&w, "aggregate of 300000 elements");
	free(w.p);
}

static void test_element_bound_exact(void **state)
{
	(void)state;
	struct wire w = { 0 };
	struct bounded t;
	void *reply;
	bounded_open(&t);
	/* the header at the bound is taken (the reply waits for its elements) */
	putf(&w, "*%u\r\n", STORE_REPLY_MAX_ELEMENTS);
	assert_int_equal(feed(&t, &w, &reply), REDIS_OK);
	assert_null(reply);
	assert_false(t.b.refused);
	assert_int_equal(t.b.used, sizeof(redisReply) + 8 * (size_t)STORE_REPLY_MAX_ELEMENTS);
	redisReaderFree(t.rd);
	putf(&w, "*%u\r\n", STORE_REPLY_MAX_ELEMENTS + 1);
	assert_refused(&w, "aggregate of 262145 elements > 262144");
	free(w.p);
}

static void test_tree_of_integers(void **state)
{
	(void)state;
	struct wire w = { 0 };
	/* 400 000 integers in 4 arrays: each header is fine, the tree is not */
	putf(&w, "*4\r\n");
	for (int i = 0; i < 4; i++)
		put_ints(&w, 100000);
	assert_refused(&w, "reply of more than 8388608 bytes");
	/* 100 000 integers in 2 arrays: 5.6 MB of objects, under the bound */
	struct bounded t;
	void *reply;
	bounded_open(&t);
	putf(&w, "*2\r\n");
	put_ints(&w, 50000);
	put_ints(&w, 50000);
	assert_int_equal(feed(&t, &w, &reply), REDIS_OK);
	const redisReply *r = reply;
	assert_non_null(r);
	assert_int_equal(r->elements, 2);
	assert_int_equal(r->element[1]->elements, 50000);
	assert_int_equal(r->element[1]->element[49999]->integer, 7);
	freeReplyObject(reply);
	redisReaderFree(t.rd);
	free(w.p);
}

static void test_nested_max_aggregates(void **state)
{
	(void)state;
	struct wire w = { 0 };
	/* five nested headers at the element bound: 2 MiB of pointers each */
	for (int i = 0; i < 5; i++)
		putf(&w, "*%u\r\n", STORE_REPLY_MAX_ELEMENTS);
	assert_refused(&w, "reply of more than");
	free(w.p);
}

static void test_strings_per_reply(void **state)
{
	(void)state;
	struct wire w = { 0 };
	put_strings(&w, 2000, 5000); /* 10 MB of strings in one reply */
	assert_refused(&w, "reply of more than");
	/* half of it, twice on one reader: the budget starts again with each reply */
	struct bounded t;
	bounded_open(&t);
	for (int round = 0; round < 2; round++) {
		void *reply;
		put_strings(&w, 1000, 5000);
		assert_int_equal(feed(&t, &w, &reply), REDIS_OK);
		const redisReply *r = reply;
		assert_non_null(r);
		assert_int_equal(r->elements, 1000);
		assert_int_equal(r->element[999]->len, 5000);
		assert_false(t.b.refused);
		freeReplyObject(reply);
	}
	redisReaderFree(t.rd);
	free(w.p);
}

static void test_buffered_bulk(void **state)
{
	(void)state;
	struct wire w = { 0 };
	struct bounded t;
	void *reply;
	char *chunk = calloc(1, 64 * 1024);
	assert_non_null(chunk);
	bounded_open(&t);
	putf(&w, "$100000000\r\n");
	for (int i = 0; i < 16; i++) /* 1 MB */
		put(&w, chunk, 64 * 1024);
	assert_int_equal(feed(&t, &w, &reply), REDIS_OK);
	assert_null(reply);
	assert_false(store_reply_buffer_over(t.rd));
	assert_false(t.b.refused);
	for (int i = 16; i < 128 + 1; i++) /* 8 MiB + 64 KiB in all */
		put(&w, chunk, 64 * 1024);
	assert_int_equal(feed(&t, &w, &reply), REDIS_OK);
	assert_null(reply);
	assert_true(store_reply_buffer_over(t.rd));
	assert_true(t.b.refused);
	assert_non_null(strstr(t.b.why, "buffered for one reply"));
	redisReaderFree(t.rd);
	free(chunk);
	free(w.p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_normal_nested),	      cmocka_unit_test(test_huge_headers),
		cmocka_unit_test(test_element_bound_exact),   cmocka_unit_test(test_tree_of_integers),
		cmocka_unit_test(test_nested_max_aggregates), cmocka_unit_test(test_strings_per_reply),
		cmocka_unit_test(test_buffered_bulk),
	};
	return cmocka_run_group_tests_name("test_reply_bounds", tests, NULL, NULL);
}
