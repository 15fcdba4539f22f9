/*
 * zap.c - the ZAP handler (ZeroMQ RFC 27) of the zmq transport, and the
 * curve_clients key lists it checks (zap.h, docs/zmq.md).
 *
 * libzmq 4.3 asks the handler about every CURVE handshake of every server
 * socket of the context once one is bound at inproc://zeromq.zap.01, even
 * for sockets without a ZAP domain (ZMQ_ZAP_ENFORCE_DOMAIN is 0 by default).
 * So the answers are:
 *   - a domain this file registered: CURVE with a listed key is 200, any
 *     other key or mechanism 400 (the server sends ERROR, its monitor
 *     reports HANDSHAKE_FAILED_AUTH, and the client is not let in);
 *   - a domain of our prefix that is not registered (any more): 400, the
 *     pipe that owned it is closing and must not gain a peer;
 *   - any other domain, empty included: NULL and CURVE are 200, which is
 *     what libzmq does without a handler (servers without curve_clients
 *     keep today's behaviour); other mechanisms 400 (nothing here checks
 *     their credentials).
 *
 * The handler is a ROUTER (libzmq accepts REP, ROUTER or SERVER there): a
 * ROUTER never blocks on send and has no request/reply state to get stuck
 * in when a client vanishes mid-handshake. It runs on a thread of its own,
 * started at the first registration; a PAIR pair over inproc tells it to
 * stop. Both its sockets are made and bound on the loop thread before the
 * thread starts, so the handler is there before the first server socket
 * with a domain binds (a handshake that found no handler would be let in),
 * and handed over to the thread (pthread_create is the full barrier libzmq
 * asks for when a socket changes threads).
 */
#include "zap.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define CTL_ENDPOINT "inproc://rift-zap-control-%u"
#define DOMAIN_PREFIX "rift-"
#define KEY_BYTES 32
/* A request is [routing id][delimiter][version][request id][domain]
 * [address][identity][mechanism][credentials...]; CURVE has one
 * credential frame, PLAIN two. More than this is not a libzmq request. */
#define MAX_FRAMES 12
#define F_VERSION  2
#define F_REQID    3
#define F_DOMAIN   4
#define F_MECH     7
#define F_CRED     8

static const char z85_chars[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                ".-:+=^!/*?&<>()[]{}@%$#";

/* One registered key set. */
struct entry {
	struct entry *next;
	char domain[ZAP_DOMAIN_LEN];
	size_t n;
	unsigned char (*keys)[KEY_BYTES];
	char refused[ZAP_Z85_LEN + 1]; /* the last client turned away, or "" */
};

/* The table: written on the loop thread, read by the handler thread. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry *entries;
static unsigned domain_seq;

/* The handler: loop-thread state only (the thread has its own copies). */
static bool running;
static pthread_t thread;
static void *ctl;               /* the loop's end of the control pair */

/* ---- curve_clients files ---- */

/* One line, trimmed: a key (1), nothing (0), or malformed (-EINVAL). */
static int parse_line(char *line, unsigned char key[KEY_BYTES])
{
	size_t l = strcspn(line, "\r\n");
	while (l && (line[l - 1] == ' ' || line[l - 1] == '\t'))
		l--;
	line[l] = '\0';
	while (*line == ' ' || *line == '\t')
		line++, l--;
	if (l == 0 || line[0] == '#')
		return 0;
	if (l != ZAP_Z85_LEN || strspn(line, z85_chars) != l)
		return -EINVAL;
	return zmq_z85_decode(key, line) ? 1 : -EINVAL;
}

/* rift-keygen's NAME.key starts with this comment: a secret key listed by
 * mistake would be a public key to nobody, and a secret gone astray. */
static bool is_secret_comment(const char *line)
{
	return line[strspn(line, " \t")] == '#' && strstr(line, "secret key") != NULL;
}

static int add_key(unsigned char (**keys)[KEY_BYTES], size_t *n, size_t *cap,
                   const unsigned char key[KEY_BYTES])
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 8;
		void *p = realloc(*keys, nc * KEY_BYTES);
		if (!p)
			return -ENOMEM;
		*keys = p;
		*cap = nc;
	}
	memcpy((*keys)[(*n)++], key, KEY_BYTES);
	return 0;
}

/* Read path into a fresh array of *n keys (the caller frees it). 0, or
 * -errno / -EINVAL with a message naming the file and line. */
static int read_keys(const char *path, unsigned char (**out)[KEY_BYTES], size_t *n,
                     char *err, size_t errlen)
{
	*out = NULL;
	*n = 0;
	FILE *f = fopen(path, "re");
	if (!f) {
		int e = errno;
		snprintf(err, errlen, "curve_clients %s: %s", path, strerror(e));
		return -e;
	}
	unsigned char (*keys)[KEY_BYTES] = NULL;
	size_t cap = 0, lineno = 0, len = 0;
	char *line = NULL;
	int rc = 0;
	errno = 0;
	while (rc == 0 && getline(&line, &len, f) >= 0) {
		unsigned char key[KEY_BYTES];
		lineno++;
		if (is_secret_comment(line)) {
			snprintf(err, errlen, "curve_clients %s:%zu: a secret key file (NAME.key); "
			         "list the clients' public keys (NAME.pub)", path, lineno);
			rc = -EINVAL;
			break;
		}
		int k = parse_line(line, key);
		if (k < 0) {
			snprintf(err, errlen, "curve_clients %s:%zu: malformed key (expected 40 "
			         "Z85 characters, one public key per line)", path, lineno);
			rc = -EINVAL;
		} else if (k == 1) {
			rc = add_key(&keys, n, &cap, key);
			if (rc < 0)
				snprintf(err, errlen, "curve_clients %s: out of memory", path);
		}
	}
	if (rc == 0 && ferror(f)) {
		rc = errno ? -errno : -EIO;
		snprintf(err, errlen, "curve_clients %s: %s", path, strerror(-rc));
	}
	if (rc == 0 && *n == 0) {
		snprintf(err, errlen, "curve_clients %s: no key in it (expected public keys, "
		         "40 Z85 characters each, one per line)", path);
		rc = -EINVAL;
	}
	free(line);
	fclose(f);
	if (rc < 0) {
		free(keys);
		*n = 0;
		return rc;
	}
	*out = keys;
	return 0;
}

int zap_check(const char *path, char *err, size_t errlen)
{
	unsigned char (*keys)[KEY_BYTES];
	size_t n;
	int rc = read_keys(path, &keys, &n, err, errlen);
	free(keys);
	return rc;
}

/* ---- the table ---- */

static struct entry *find(const char *domain, size_t len)
{
	for (struct entry *e = entries; e; e = e->next)
		if (strlen(e->domain) == len && memcmp(e->domain, domain, len) == 0)
			return e;
	return NULL;
}

static void free_entry(struct entry *e)
{
	free(e->keys);
	free(e);
}

void zap_forget(const char *domain)
{
	if (!domain || !domain[0])
		return;
	pthread_mutex_lock(&lock);
	for (struct entry **pp = &entries; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->domain, domain) == 0) {
			struct entry *e = *pp;
			*pp = e->next;
			free_entry(e);
			break;
		}
	}
	pthread_mutex_unlock(&lock);
}

bool zap_refused(const char *domain, char key[ZAP_Z85_LEN + 1])
{
	bool any = false;
	pthread_mutex_lock(&lock);
	struct entry *e = domain ? find(domain, strlen(domain)) : NULL;
	if (e && e->refused[0]) {
		memcpy(key, e->refused, ZAP_Z85_LEN + 1);
		any = true;
	}
	pthread_mutex_unlock(&lock);
	return any;
}

/* ---- the handler thread ---- */

/* The status code for one request, with the table locked; a listed
 * client's key goes to user (its User-Id). */
static const char *decide(zmq_msg_t *f, const char **text, char user[ZAP_Z85_LEN + 1])
{
	const char *dom = zmq_msg_data(&f[F_DOMAIN]), *mech = zmq_msg_data(&f[F_MECH]);
	size_t dl = zmq_msg_size(&f[F_DOMAIN]), ml = zmq_msg_size(&f[F_MECH]);
	size_t pl = strlen(DOMAIN_PREFIX);
	bool is_null = ml == 4 && memcmp(mech, "NULL", 4) == 0;
	bool is_curve = ml == 5 && memcmp(mech, "CURVE", 5) == 0;
	if (dl < pl || memcmp(dom, DOMAIN_PREFIX, pl) != 0) {
		/* Not ours: what libzmq does without a handler. */
		*text = is_null || is_curve ? "OK" : "mechanism not supported";
		return is_null || is_curve ? "200" : "400";
	}
	struct entry *e = find(dom, dl);
	if (!e) {
		*text = "the server is closing";
		return "400";
	}
	if (!is_curve || zmq_msg_size(&f[F_CRED]) != KEY_BYTES) {
		*text = "CURVE client keys only";
		return "400";
	}
	const unsigned char *key = zmq_msg_data(&f[F_CRED]);
	for (size_t i = 0; i < e->n; i++) {
		if (memcmp(e->keys[i], key, KEY_BYTES) == 0) {
			zmq_z85_encode(user, key, KEY_BYTES);
			*text = "OK";
			return "200";
		}
	}
	zmq_z85_encode(e->refused, key, KEY_BYTES);
	*text = "client key not in curve_clients";
	return "400";
}

/* Send the reply frames in order; a ROUTER drops what it cannot route. */
static void reply(void *router, zmq_msg_t *f, const char *code, const char *text,
                  const char *user)
{
	const char *parts[] = {"1.0", NULL, code, text, user, ""};
	zmq_msg_send(&f[0], router, ZMQ_SNDMORE | ZMQ_DONTWAIT); /* routing id */
	zmq_send(router, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);     /* delimiter */
	for (size_t i = 0; i < 6; i++) {
		int more = i < 5 ? ZMQ_SNDMORE : 0;
		if (i == 1) /* the request id, echoed */
			zmq_msg_send(&f[F_REQID], router, more | ZMQ_DONTWAIT);
		else
			zmq_send(router, parts[i], strlen(parts[i]), more | ZMQ_DONTWAIT);
	}
}

/* Receive one whole request into f (up to MAX_FRAMES, the rest dropped):
 * the number of frames, 0 when none is queued. */
static int receive(void *router, zmq_msg_t f[MAX_FRAMES])
{
	int n = 0;
	bool more = true;
	while (more) {
		zmq_msg_t extra;
		bool keep = n < MAX_FRAMES;
		zmq_msg_t *m = keep ? &f[n] : &extra;
		zmq_msg_init(m);
		if (zmq_msg_recv(m, router, ZMQ_DONTWAIT) < 0) {
			/* Parts of one message arrive together: only the first
			 * can be missing (or the context is ending). */
			zmq_msg_close(m);
			break;
		}
		more = zmq_msg_more(m);
		if (keep)
			n++;
		else
			zmq_msg_close(m);
	}
	return n;
}

/* Answer every request queued. */
static void serve(void *router)
{
	zmq_msg_t f[MAX_FRAMES];
	int n;
	while ((n = receive(router, f)) > 0) {
		/* libzmq's requests are whole; anything shorter, or of another
		 * version, gets no answer it could take for a yes. */
		bool ok = n > F_MECH && zmq_msg_size(&f[1]) == 0 &&
		          zmq_msg_size(&f[F_VERSION]) == 3 &&
		          memcmp(zmq_msg_data(&f[F_VERSION]), "1.0", 3) == 0;
		if (ok) {
			if (n <= F_CRED) /* NULL carries no credentials */
				zmq_msg_init(&f[n++]);
			const char *text, *code;
			char user[ZAP_Z85_LEN + 1] = "";
			pthread_mutex_lock(&lock);
			code = decide(f, &text, user);
			pthread_mutex_unlock(&lock);
			reply(router, f, code, text, user);
		} else if (n > F_REQID && zmq_msg_size(&f[1]) == 0) {
			reply(router, f, "500", "malformed ZAP request", "");
		}
		for (int i = 0; i < n; i++)
			zmq_msg_close(&f[i]);
	}
}

struct handler {
	void *router, *ctl;
};

static void *handler_main(void *arg)
{
	struct handler h = *(struct handler *)arg;
	free(arg);
	zmq_pollitem_t it[2] = {
		{.socket = h.router, .events = ZMQ_POLLIN},
		{.socket = h.ctl, .events = ZMQ_POLLIN},
	};
	for (;;) {
		if (zmq_poll(it, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break; /* ETERM: the context ends under us; never spin */
		}
		if (it[1].revents & ZMQ_POLLIN)
			break; /* zap_stop */
		if (it[0].revents & ZMQ_POLLIN)
			serve(h.router);
	}
	int zero = 0;
	zmq_setsockopt(h.router, ZMQ_LINGER, &zero, sizeof zero);
	zmq_setsockopt(h.ctl, ZMQ_LINGER, &zero, sizeof zero);
	zmq_close(h.router);
	zmq_close(h.ctl);
	return NULL;
}

static void close0(void *s)
{
	int zero = 0;
	if (s) {
		zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
		zmq_close(s);
	}
}

/* Bind the handler's sockets in ctx and start its thread. 0 or -errno. */
static int start(void *ctx, char *err, size_t errlen)
{
	struct handler *h = calloc(1, sizeof *h);
	void *mine = NULL;
	int rc = -ENOMEM;
	const char *what = "calloc";
	if (!h)
		goto fail;
	what = "bind " ZAP_ENDPOINT;
	if (!(h->router = zmq_socket(ctx, ZMQ_ROUTER)) || zmq_bind(h->router, ZAP_ENDPOINT) < 0)
		goto fail_errno;
	/* A fresh name each time: a closed socket's inproc name is released
	 * asynchronously, and a retry after a failure must not meet it. */
	static unsigned ctl_seq;
	char ep[64];
	snprintf(ep, sizeof ep, CTL_ENDPOINT, ++ctl_seq);
	what = "its control pair";
	if (!(mine = zmq_socket(ctx, ZMQ_PAIR)) || zmq_bind(mine, ep) < 0 ||
	    !(h->ctl = zmq_socket(ctx, ZMQ_PAIR)) || zmq_connect(h->ctl, ep) < 0)
		goto fail_errno;
	/* Signals stay with the broker's threads, as libzmq's own do. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = -pthread_create(&thread, NULL, handler_main, h);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	what = "pthread_create";
	if (rc < 0)
		goto fail;
	ctl = mine;
	running = true;
	return 0;
fail_errno:
	rc = -(errno ? errno : EIO);
fail:
	snprintf(err, errlen, "the ZAP handler (curve_clients): %s: %s", what,
	         zmq_strerror(-rc));
	if (h) {
		close0(h->router);
		close0(h->ctl);
		free(h);
	}
	close0(mine);
	return rc;
}

int zap_register(void *ctx, const char *path, char domain[ZAP_DOMAIN_LEN], char *err,
                 size_t errlen)
{
	struct entry *e = calloc(1, sizeof *e);
	if (!e) {
		snprintf(err, errlen, "curve_clients %s: out of memory", path);
		return -ENOMEM;
	}
	int rc = read_keys(path, &e->keys, &e->n, err, errlen);
	if (rc == 0 && !running)
		rc = start(ctx, err, errlen);
	if (rc < 0) {
		free_entry(e);
		return rc;
	}
	snprintf(e->domain, sizeof e->domain, DOMAIN_PREFIX "%u", ++domain_seq);
	memcpy(domain, e->domain, ZAP_DOMAIN_LEN);
	pthread_mutex_lock(&lock);
	e->next = entries;
	entries = e;
	pthread_mutex_unlock(&lock);
	return 0;
}

void zap_stop(void)
{
	if (running) {
		/* A PAIR with its peer connected queues this at once; the
		 * handler never blocks, so the join is bounded. */
		zmq_send(ctl, "", 0, ZMQ_DONTWAIT);
		pthread_join(thread, NULL);
		close0(ctl);
		ctl = NULL;
		running = false;
	}
	pthread_mutex_lock(&lock);
	while (entries) {
		struct entry *e = entries;
		entries = e->next;
		free_entry(e);
	}
	pthread_mutex_unlock(&lock);
}
