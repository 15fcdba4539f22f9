/*
 * test_zap.c - the zmq transport's ZAP handler and curve_clients files
 * (plugins/zmq/zap.c).
 *
 * What must hold: a curve_clients file is a list of Z85 public keys with
 * comments and empty lines (one NAME.pub is one), and anything else is
 * refused naming the file and the line; in a libzmq context with the
 * handler running, a CURVE server with a registered domain lets in the
 * listed clients only (the others fail with HANDSHAKE_FAILED_AUTH, and the
 * last one's key is remembered), a CURVE server without a domain and a
 * plain (NULL) pair still let everyone in, a forgotten domain lets nobody
 * in, and zap_stop ends the handler so that zmq_ctx_term returns.
 *
 * Loopback tcp only; every wait is bounded (socket timeouts, zmq_poll
 * deadlines, and check's per-test timeout).
 */
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "zap.h"

#define WAIT_MS 5000

static char dir[256];

static void setup(void)
{
	snprintf(dir, sizeof dir, "%s/rift-zap-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* Write text to DIR/name; the path goes to path. */
static void put(const char *name, const char *text, char path[300])
{
	snprintf(path, 300, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fputs(text, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
}

/* zap_check on text must fail with rc and a message holding want. */
static void refused(const char *text, int rc, const char *want)
{
	char path[300], err[512] = "", full[400];
	put("clients", text, path);
	ck_assert_int_eq(zap_check(path, err, sizeof err), rc);
	snprintf(full, sizeof full, "curve_clients %s%s", path, want);
	ck_assert_msg(strstr(err, full) != NULL, "'%s' does not contain '%s'", err, full);
}

/* ---- files ---- */

START_TEST(list_with_comments)
{
	char path[300], err[512] = "";
	char pub[41], sec[41], pub2[41], text[400];
	ck_assert_int_eq(zmq_curve_keypair(pub, sec), 0);
	ck_assert_int_eq(zmq_curve_keypair(pub2, sec), 0);
	/* Comments, empty lines, blanks around a key, a CRLF line. */
	snprintf(text, sizeof text, "# clients\n\n  %s \t\n\r\n   # indented comment\n%s\r\n", pub,
	         pub2);
	put("clients", text, path);
	ck_assert_int_eq(zap_check(path, err, sizeof err), 0);
	/* rift-keygen's NAME.pub: a comment line and the key, no list around. */
	snprintf(text, sizeof text, "# rift CURVE public key\n%s\n", pub);
	put("a.pub", text, path);
	ck_assert_int_eq(zap_check(path, err, sizeof err), 0);
	/* No newline at the end. */
	put("b.pub", pub, path);
	ck_assert_int_eq(zap_check(path, err, sizeof err), 0);
}
END_TEST

START_TEST(bad_lists)
{
	char pub[41], sec[41], text[400];
	ck_assert_int_eq(zmq_curve_keypair(pub, sec), 0);
	snprintf(text, sizeof text, "# clients\n%s\n\nnot a key\n", pub);
	refused(text, -EINVAL, ":4: malformed key");
	snprintf(text, sizeof text, "%sA\n", pub); /* 41 characters */
	refused(text, -EINVAL, ":1: malformed key");
	snprintf(text, sizeof text, "%s\n%.39s~\n", pub, pub); /* not Z85 */
	refused(text, -EINVAL, ":2: malformed key");
	snprintf(text, sizeof text, "%.39s\n", pub);
	refused(text, -EINVAL, ":1: malformed key");
	/* rift-keygen's NAME.key. */
	snprintf(text, sizeof text, "# rift CURVE secret key: keep it private\n%s\n", sec);
	refused(text, -EINVAL, ":1: a secret key file");
	refused("", -EINVAL, ": no key in it");
	refused("# nobody\n\n", -EINVAL, ": no key in it");

	char err[512] = "", path[300];
	snprintf(path, sizeof path, "%s/none", dir);
	ck_assert_int_eq(zap_check(path, err, sizeof err), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err, path));
	ck_assert_int_eq(zap_check(dir, err, sizeof err), -EISDIR);
	ck_assert_ptr_nonnull(strstr(err, dir));
	ck_assert_int_eq(zap_register(NULL, path, (char[ZAP_DOMAIN_LEN]){0}, err, sizeof err),
	                 -ENOENT);
}
END_TEST

/* ---- the handler ---- */

struct pair {
	char pub[41], sec[41];
};

static struct pair keypair(void)
{
	struct pair p;
	ck_assert_int_eq(zmq_curve_keypair(p.pub, p.sec), 0);
	return p;
}

static void set_int(void *s, int opt, int v)
{
	ck_assert_int_eq(zmq_setsockopt(s, opt, &v, sizeof v), 0);
}

/* A DEALER bound on a free loopback port (the endpoint goes to ep): a CURVE
 * server with srv's keys and domain when they are given. */
static void *server(void *ctx, const struct pair *srv, const char *domain, char ep[64])
{
	void *s = zmq_socket(ctx, ZMQ_DEALER);
	ck_assert_ptr_nonnull(s);
	set_int(s, ZMQ_LINGER, 0);
	set_int(s, ZMQ_RCVTIMEO, WAIT_MS);
	if (srv) {
		set_int(s, ZMQ_CURVE_SERVER, 1);
		ck_assert_int_eq(zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, srv->sec, 41), 0);
	}
	if (domain)
		ck_assert_int_eq(zmq_setsockopt(s, ZMQ_ZAP_DOMAIN, domain, strlen(domain)), 0);
	ck_assert_int_eq(zmq_bind(s, "tcp://127.0.0.1:*"), 0);
	size_t l = 64;
	ck_assert_int_eq(zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &l), 0);
	return s;
}

/* A DEALER connected to ep that sends "hi": a CURVE client with me's keys
 * when srv is given. */
static void *client(void *ctx, const struct pair *me, const struct pair *srv, const char *ep)
{
	void *c = zmq_socket(ctx, ZMQ_DEALER);
	ck_assert_ptr_nonnull(c);
	set_int(c, ZMQ_LINGER, 0);
	if (srv) {
		ck_assert_int_eq(zmq_setsockopt(c, ZMQ_CURVE_SERVERKEY, srv->pub, 41), 0);
		ck_assert_int_eq(zmq_setsockopt(c, ZMQ_CURVE_PUBLICKEY, me->pub, 41), 0);
		ck_assert_int_eq(zmq_setsockopt(c, ZMQ_CURVE_SECRETKEY, me->sec, 41), 0);
	}
	ck_assert_int_eq(zmq_connect(c, ep), 0);
	ck_assert_int_eq(zmq_send(c, "hi", 2, 0), 2); /* queued until connected */
	return c;
}

/* The server receives "hi" within WAIT_MS; its User-Id goes to user. */
static void receives_hi(void *s, char *user, size_t userlen)
{
	zmq_msg_t m;
	zmq_msg_init(&m);
	ck_assert_int_eq(zmq_msg_recv(&m, s, 0), 2);
	ck_assert_int_eq(memcmp(zmq_msg_data(&m), "hi", 2), 0);
	const char *u = zmq_msg_gets(&m, "User-Id");
	snprintf(user, userlen, "%s", u ? u : "");
	zmq_msg_close(&m);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait (at most WAIT_MS) for event ev on the monitor pair mon. */
static bool saw_event(void *mon, int ev)
{
	int64_t end = now_ms() + WAIT_MS;
	for (int64_t left; (left = end - now_ms()) > 0;) {
		zmq_pollitem_t it = {.socket = mon, .events = ZMQ_POLLIN};
		if (zmq_poll(&it, 1, (long)left) <= 0)
			break;
		unsigned char b[64];
		int n = zmq_recv(mon, b, sizeof b, 0);
		int more = 0;
		size_t l = sizeof more;
		zmq_getsockopt(mon, ZMQ_RCVMORE, &more, &l);
		if (more) { /* the endpoint part */
			char ep[256];
			zmq_recv(mon, ep, sizeof ep, 0);
		}
		if (n >= 6 && (b[0] | b[1] << 8) == ev)
			return true;
	}
	return false;
}

static void *monitor(void *ctx, void *s, const char *name)
{
	char ep[64];
	snprintf(ep, sizeof ep, "inproc://test-zap-%s", name);
	ck_assert_int_eq(zmq_socket_monitor(s, ep, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
	                                               ZMQ_EVENT_HANDSHAKE_SUCCEEDED), 0);
	void *m = zmq_socket(ctx, ZMQ_PAIR);
	ck_assert_ptr_nonnull(m);
	set_int(m, ZMQ_LINGER, 0);
	ck_assert_int_eq(zmq_connect(m, ep), 0);
	return m;
}

static void close_all(void **s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i])
			ck_assert_int_eq(zmq_close(s[i]), 0);
}

START_TEST(listed_clients_only)
{
	void *ctx = zmq_ctx_new();
	ck_assert_ptr_nonnull(ctx);
	struct pair srv = keypair(), a = keypair(), b = keypair();
	char path[300], text[200], err[512] = "", dom[ZAP_DOMAIN_LEN], dom2[ZAP_DOMAIN_LEN];
	char user[64], key[ZAP_Z85_LEN + 1];
	snprintf(text, sizeof text, "# rift CURVE public key\n%s\n", a.pub);
	put("a.pub", text, path);
	ck_assert_int_eq(zap_register(ctx, path, dom, err, sizeof err), 0);
	ck_assert_msg(strncmp(dom, "rift-", 5) == 0, "domain '%s'", dom);
	ck_assert_int_eq(zap_register(ctx, path, dom2, err, sizeof err), 0);
	ck_assert_str_ne(dom, dom2); /* one domain per pipe */

	char ep1[64], ep2[64], ep3[64];
	void *s1 = server(ctx, &srv, dom, ep1), *m1 = monitor(ctx, s1, "s1");
	void *s2 = server(ctx, &srv, NULL, ep2);  /* CURVE, no curve_clients */
	void *s3 = server(ctx, NULL, NULL, ep3);  /* no CURVE at all */

	/* A is listed: in, with its key as User-Id. */
	void *ca = client(ctx, &a, &srv, ep1);
	receives_hi(s1, user, sizeof user);
	ck_assert_str_eq(user, a.pub);
	ck_assert(!zap_refused(dom, key));

	/* B is not: refused, and named. */
	void *cb = client(ctx, &b, &srv, ep1);
	ck_assert(saw_event(m1, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH));
	ck_assert(zap_refused(dom, key));
	ck_assert_str_eq(key, b.pub);
	ck_assert(!zap_refused(dom2, key));

	/* A server without a domain, and a NULL pair, still let anyone in. */
	void *cb2 = client(ctx, &b, &srv, ep2);
	receives_hi(s2, user, sizeof user);
	void *cn = client(ctx, NULL, NULL, ep3);
	receives_hi(s3, user, sizeof user);

	/* A forgotten domain lets nobody in, A included (a server of its
	 * own, so that no earlier client's events are in the way). */
	char ep4[64];
	void *s4 = server(ctx, &srv, dom2, ep4), *m4 = monitor(ctx, s4, "s4");
	zap_forget(dom2);
	zap_forget(dom2); /* twice, and "", are no-ops */
	zap_forget("");
	ck_assert(!zap_refused(dom2, key));
	void *ca2 = client(ctx, &a, &srv, ep4);
	ck_assert(saw_event(m4, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH));
	set_int(s4, ZMQ_RCVTIMEO, 0);
	char buf[8];
	ck_assert_int_eq(zmq_recv(s4, buf, sizeof buf, 0), -1);
	/* B's message never reached s1. */
	set_int(s1, ZMQ_RCVTIMEO, 0);
	ck_assert_int_eq(zmq_recv(s1, buf, sizeof buf, 0), -1);

	zmq_socket_monitor(s1, NULL, 0);
	zmq_socket_monitor(s4, NULL, 0);
	void *all[] = {ca, cb, cb2, cn, ca2, m1, m4, s1, s2, s3, s4};
	close_all(all, sizeof all / sizeof all[0]);
	zap_stop();
	zap_stop(); /* idempotent */
	ck_assert_int_eq(zmq_ctx_term(ctx), 0); /* check's timeout: it must return */
}
END_TEST

START_TEST(stop_and_restart)
{
	char path[300], text[200], err[512] = "", dom[ZAP_DOMAIN_LEN], user[64];
	struct pair srv = keypair(), a = keypair();
	snprintf(text, sizeof text, "%s\n", a.pub);
	put("clients", text, path);
	/* A handler that served nobody stops too; and the next context (a
	 * plugin initialised again) gets a handler of its own. */
	for (int round = 0; round < 3; round++) {
		void *ctx = zmq_ctx_new();
		ck_assert_int_eq(zap_register(ctx, path, dom, err, sizeof err), 0);
		if (round == 1) {
			char ep[64];
			void *s = server(ctx, &srv, dom, ep);
			void *c = client(ctx, &a, &srv, ep);
			receives_hi(s, user, sizeof user);
			void *all[] = {c, s};
			close_all(all, 2);
		}
		zap_stop();
		ck_assert_int_eq(zmq_ctx_term(ctx), 0);
	}
	/* Another ZAP handler already bound in the context: a clear error. */
	void *ctx = zmq_ctx_new(), *other = zmq_socket(ctx, ZMQ_ROUTER);
	ck_assert_int_eq(zmq_bind(other, "inproc://zeromq.zap.01"), 0);
	ck_assert_int_lt(zap_register(ctx, path, dom, err, sizeof err), 0);
	ck_assert_msg(strstr(err, "ZAP handler") != NULL, "%s", err);
	zap_stop();
	zmq_close(other);
	ck_assert_int_eq(zmq_ctx_term(ctx), 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("zap");
	TCase *t = tcase_create("zap");
	tcase_set_timeout(t, 30);
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_add_test(t, list_with_comments);
	tcase_add_test(t, bad_lists);
	tcase_add_test(t, listed_clients_only);
	tcase_add_test(t, stop_and_restart);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
