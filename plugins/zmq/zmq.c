/*
 * zmq.c - netpipes over ZeroMQ (docs/zmq.md).
 *
 * Address: tcp://HOST:PORT, ipc:///path or inproc://name, with options:
 *   listen=reader|writer which end binds (default: reader, rule 7); the
 *                        other connects and zmq retries until it appears
 *                        (bind= is accepted as zmq's name for it)
 *   connect_timeout=MS   a writer gives up (-ETIMEDOUT) when no reader has
 *                        appeared within MS milliseconds (default: never)
 *   hwm=N                zmq's send/receive high-water mark, in messages
 *                        (default 128; a message is at most 256 KiB)
 *   curve_secret=FILE    CURVE: this end's secret key (Z85 file from
 *                        rift-keygen); makes the binding end a CURVE server
 *   curve_server=FILE    CURVE, connecting end: the binder's public key
 *   curve_clients=FILE   CURVE, binding end: the public keys of the clients
 *                        let in (zap.c's ZAP handler checks them)
 *   fanout=1             one writer, many readers (XPUB/XSUB): the writer
 *                        binds, readers connect; a slow reader slows the
 *                        writer (XPUB_NODROP), nothing is dropped
 *   readers=N            fan-out writer: wait for N readers before the
 *                        first byte (default 1)
 *
 * Both ends are DEALER sockets used as PUSH/PULL (the same load-balancing
 * and fair-queueing pipes), so that the reader can send one message back:
 * the acknowledgement of END, which makes a writer's clean close complete
 * only once the reader has the whole stream (zmq's linger promises nothing
 * once the process exits). The stream is framed with
 * plugins/common/msgframe.h: the preamble message, one DATA frame per
 * write, END (with the digest when etag) at a clean close. A non-fan-out
 * writer coalesces: a write after a pause goes at once, from the loop;
 * writes that come close together are packed into one buffer that a
 * sender thread of the pipe sends as one message (docs/zmq.md, "The sender
 * thread"); while it has bytes, the thread alone uses the socket. Peer presence
 * comes from the socket monitor (a PAIR socket that receives the events,
 * watched on the loop through its own ZMQ_FD):
 *   - a writer holds its preamble (and so every write: ZMQ_IMMEDIATE keeps
 *     a connecting socket without pipes) until a reader completed the ZMTP
 *     handshake; once that reader disconnects every write is -EPIPE;
 *   - a reader that sees its writer disconnect without END returns
 *     -ECONNRESET after the messages that came.
 * ZMQ_FD is edge-triggered: ready() always ends by asking ZMQ_EVENTS of
 * both sockets (which consumes the signal and processes zmq's commands),
 * and decides from what the sockets and our own buffers hold, never from
 * the fd event alone.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "keys.h"
#include "msgframe.h"
#include "netpipe.h"
#include "options.h"
#include "zap.h"

#define CLOSE_LINGER_MS 2000 /* after a clean close, for END to leave */
#define DEFAULT_HWM     128
#define MAX_READERS     10000
/* A fan-out writer looks upstream (departures: -EPIPE) at least this often,
 * in writes, when nothing else makes it look. */
#define FAN_DRAIN_EVERY 64
/* The reader's one message back: END arrived (docs/zmq.md). */
#define ACK_MSG "RFTA"
#define ACK_LEN 4
/* Coalescing (docs/zmq.md, "The sender thread"): a write that comes less
 * than COALESCE_NS after the previous one is packed into the sender's
 * buffer; one after a pause goes straight to zmq. The buffer (one zmq
 * message of whole DATA frames) holds at most SBUF_CAP bytes. */
#define COALESCE_NS     10000
#define SBUF_MIN        16384
#define SBUF_CAP        (NF_HDR + NF_MAX_FRAME)

/* A non-fan-out writer's sender thread and what it shares with the loop.
 * The loop packs writes into buf; the thread takes buf whole and sends it
 * as one message. While the thread owns the socket (owner) the loop does
 * not touch it; the thread tells the loop through evfd (watched) when the
 * loop waits for room or for the socket. */
struct zsend {
	pthread_mutex_t mu;
	pthread_t thread;
	void *sock;             /* the writer's socket */
	int sfd;                /* its ZMQ_FD: the thread polls it at zmq's hwm */
	int kfd;                /* eventfd: the loop kicks the thread */
	int evfd;               /* eventfd: the thread tells the loop (watched) */
	_Atomic uint32_t sig_pending; /* evfd writes the loop has not read */
	atomic_bool poke;       /* the loop found mu taken: tell it after unlock */
	atomic_bool stop;
	atomic_int err;         /* a send failed: -errno, sticky */
	/* under mu */
	unsigned char *buf;     /* packed DATA frames, not yet given to zmq */
	size_t len, cap;
	bool owner;             /* the thread uses the socket: the loop must not */
	bool sleeping;          /* the thread waits for a kick */
	bool want_room;         /* the loop waits for room in buf */
	bool want_sock;         /* the loop waits for the socket back */
	int64_t idle_ns;        /* when the thread last gave the socket back */
};

struct zp {
	struct np_pipe *pipe;
	uint32_t mode;
	void *sock;             /* DEALER: the stream, and the ack back */
	void *mon;              /* PAIR: the monitor's events */
	int sfd, mfd;           /* their ZMQ_FDs, watched for NP_IN */
	bool binder;            /* this end binds */
	bool ipc_bound;
	int last_ev;            /* the previous monitor event */
	bool handshaked;        /* a peer completed the ZMTP handshake */
	bool peer_left;         /* ... and then disconnected */
	bool hs_failed;         /* a handshake failed (not zmq, CURVE keys) */
	bool refused;           /* ... because curve_clients lacks a key (ZAP) */
	bool fanout;            /* XPUB writer / XSUB reader (docs/zmq.md) */
	int readers_min;        /* fan-out writer: readers before the preamble */
	int present;            /* fan-out writer: subscribed readers now */
	int acks;               /* fan-out writer: readers that acknowledged END */
	int end_readers;        /* fan-out writer: readers present at END */
	int since_drain;        /* fan-out writer: writes since the last look */
	bool started;           /* fan-out writer: the preamble went out */
	int fail;               /* writer: sticky -errno */
	int64_t deadline;       /* writer: connect_timeout, or -1 */
	struct nm_stream ns;
	/* writer */
	bool has_pend;          /* a message accepted but not yet queued */
	bool pend_is_data;
	bool end_queued;
	bool end_acked;         /* the reader acknowledged END */
	zmq_msg_t pend;
	struct zsend *snd;      /* the sender thread, once writes came close */
	bool sfd_off;           /* the sender has the socket: sfd not watched */
	bool snd_room;          /* ready(): the sender's buffer has room */
	int64_t last_write_ns;  /* when the previous write came */
	/* reader */
	bool ack_due;           /* END seen, its acknowledgement not sent */
	bool has_msg;           /* a received message being walked */
	int rcvtimeo;           /* reader: ZMQ_RCVTIMEO as last set (NP_CTL_WAIT) */
	/* reader: the last call on the socket (on the monitor) was a receive
	 * that found nothing, so its ZMQ_FD is readable again only once
	 * something new came (see zp_ready) */
	bool sock_dry, mon_dry;
	zmq_msg_t msg;
	struct nm_cursor cur;
	const unsigned char *pl;
	size_t pl_len, pl_off;
	char url[256];
	char err[512];
	char zap_domain[ZAP_DOMAIN_LEN]; /* curve_clients registered (zap.h) */
};

static const struct np_host *host;
static void *zctx;
static unsigned mon_seq;

struct zurl {
	char url[256];
	bool bind_writer;
	bool is_ipc, is_inproc;
	int64_t connect_timeout;
	int64_t hwm;
	char curve_secret[128];  /* this end's secret key file */
	char curve_server[128];  /* connecting end: the binder's public key */
	char curve_clients[128]; /* binding end: the clients' public keys */
	bool binds;
	bool fanout;
	int64_t readers;
};

static int parse(const char *address, uint32_t mode, struct zurl *u, char *err,
                 size_t errlen)
{
	static const char *const allowed[] = {"listen", "bind", "connect_timeout", "hwm",
	                                      "curve_secret", "curve_server", "curve_clients",
	                                      "fanout", "readers", NULL};
	struct no_opts o;
	memset(u, 0, sizeof *u);
	int rc = no_parse(address, u->url, sizeof u->url, &o, allowed, err, errlen);
	if (rc < 0)
		return rc;
	/* listen= is the name every Rift transport uses; bind= is zmq's
	 * word for the same, accepted too. */
	const char *key = no_get(&o, "listen") ? "listen" : "bind";
	const char *b = no_get(&o, key);
	if (b && strcmp(b, "reader") != 0 && strcmp(b, "writer") != 0) {
		snprintf(err, errlen, "option %s=%s: expected reader or writer", key, b);
		return -EINVAL;
	}
	u->bind_writer = b && strcmp(b, "writer") == 0;
	int64_t fan;
	if ((rc = no_get_int(&o, "connect_timeout", -1, &u->connect_timeout, err, errlen)) < 0 ||
	    (rc = no_get_int(&o, "hwm", DEFAULT_HWM, &u->hwm, err, errlen)) < 0 ||
	    (rc = no_get_int(&o, "fanout", 0, &fan, err, errlen)) < 0 ||
	    (rc = no_get_int(&o, "readers", 1, &u->readers, err, errlen)) < 0)
		return rc;
	if (fan != 0 && fan != 1) {
		snprintf(err, errlen, "option fanout=%lld: expected 0 or 1", (long long)fan);
		return -EINVAL;
	}
	u->fanout = fan == 1;
	/* Readers accept (and ignore) readers=, so both ends can share one
	 * address. */
	if (no_get(&o, "readers") && !u->fanout) {
		snprintf(err, errlen, "option readers= needs fanout=1");
		return -EINVAL;
	}
	if (u->readers < 1 || u->readers > MAX_READERS) {
		snprintf(err, errlen, "option readers=%lld: expected 1 to %d",
		         (long long)u->readers, MAX_READERS);
		return -EINVAL;
	}
	if (u->fanout) {
		/* Many readers cannot all bind one address: the writer binds. */
		if (b && !u->bind_writer) {
			snprintf(err, errlen, "option %s=reader: with fanout=1 the writer binds "
			         "and every reader connects", key);
			return -EINVAL;
		}
		u->bind_writer = true;
	}
	if (u->hwm > 1000000) {
		snprintf(err, errlen, "option hwm=%lld: at most 1000000", (long long)u->hwm);
		return -EINVAL;
	}
	bool binds = (mode == NP_WRITE) == u->bind_writer;
	u->binds = binds;
	const char *cs = no_get(&o, "curve_secret"), *cv = no_get(&o, "curve_server");
	const char *cc = no_get(&o, "curve_clients");
	snprintf(u->curve_secret, sizeof u->curve_secret, "%s", cs ? cs : "");
	snprintf(u->curve_server, sizeof u->curve_server, "%s", cv ? cv : "");
	snprintf(u->curve_clients, sizeof u->curve_clients, "%s", cc ? cc : "");
	if (cc && !binds) {
		snprintf(err, errlen, "curve_clients is for the binding end (the CURVE server); "
		         "the connecting end names its own key with curve_secret");
		return -EINVAL;
	}
	if (cc && !cs) {
		snprintf(err, errlen, "curve_clients needs curve_secret (the binding end's secret "
		         "key file): client keys are checked only by a CURVE server");
		return -EINVAL;
	}
	if (binds && cv) {
		snprintf(err, errlen, "curve_server is for the connecting end; the binding end "
		         "names its own secret key with curve_secret");
		return -EINVAL;
	}
	if (!binds && cs && !cv) {
		snprintf(err, errlen, "the connecting end needs curve_server (the binding end's "
		         "public key file) to use CURVE");
		return -EINVAL;
	}
	const char *s = u->url;
	if (strncmp(s, "tcp://", 6) == 0) {
		const char *hp = s + 6;
		const char *colon = strrchr(hp, ':');
		if (!colon || colon == hp) {
			snprintf(err, errlen, "%s: expected tcp://HOST:PORT", s);
			return -EINVAL;
		}
		size_t hl = (size_t)(colon - hp);
		bool ok = true;
		if (hp[0] == '[') {
			ok = hl > 2 && hp[hl - 1] == ']';
			for (size_t i = 1; ok && i + 1 < hl; i++)
				ok = strchr("0123456789abcdefABCDEF:.%", hp[i]) != NULL;
		} else if (hl == 1 && hp[0] == '*') {
			ok = binds; /* any interface: only for the end that binds */
		} else {
			for (size_t i = 0; ok && i < hl; i++)
				ok = (hp[i] >= 'a' && hp[i] <= 'z') || (hp[i] >= 'A' && hp[i] <= 'Z') ||
				     (hp[i] >= '0' && hp[i] <= '9') || hp[i] == '.' || hp[i] == '-';
			ok = ok && hp[0] != '-' && hp[0] != '.';
		}
		if (!ok) {
			snprintf(err, errlen, "%s: malformed host '%.*s'", s, (int)hl, hp);
			return -EINVAL;
		}
		const char *port = colon + 1;
		long p = 0;
		for (const char *c = port; *c && p <= 65535; c++)
			p = *c >= '0' && *c <= '9' ? p * 10 + (*c - '0') : 100000;
		if (!*port || p < 1 || p > 65535) {
			snprintf(err, errlen, "%s: port '%s' is not a number from 1 to 65535", s, port);
			return -EINVAL;
		}
		return 0;
	}
	if (strncmp(s, "ipc://", 6) == 0) {
		size_t l = strlen(s + 6);
		if (l == 0 || l >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
			snprintf(err, errlen, "%s: expected ipc:///path (1 to 107 bytes)", s);
			return -EINVAL;
		}
		u->is_ipc = true;
		return 0;
	}
	if (strncmp(s, "inproc://", 9) == 0) {
		if (!s[9]) {
			snprintf(err, errlen, "%s: expected inproc://name", s);
			return -EINVAL;
		}
		u->is_inproc = true;
		return 0;
	}
	snprintf(err, errlen, "%s: expected tcp://HOST:PORT, ipc:///path or inproc://name", s);
	return -EINVAL;
}

static int zp_validate(const char *address, uint32_t mode, char *err, size_t errlen)
{
	struct zurl u;
	if (mode != NP_READ && mode != NP_WRITE) {
		snprintf(err, errlen, "a zmq netpipe is read-only or write-only");
		return -EINVAL;
	}
	int rc = parse(address, mode, &u, err, errlen);
	char key[RK_Z85_LEN + 1];
	if (rc == 0 && u.curve_secret[0])
		rc = rk_read(u.curve_secret, key, err, errlen);
	if (rc == 0 && u.curve_server[0])
		rc = rk_read(u.curve_server, key, err, errlen);
	if (rc == 0 && u.curve_clients[0])
		rc = zap_check(u.curve_clients, err, errlen);
	return rc;
}

static int zerr(struct zp *z, const char *what);

/* CURVE: the binding end is the server. 0 or -errno with z->err set. */
static int set_curve(struct zp *z, const struct zurl *u)
{
	char sec[RK_Z85_LEN + 1], pub[RK_Z85_LEN + 1], srv[RK_Z85_LEN + 1];
	int rc, one = 1;
	if (!u->curve_secret[0] && !u->curve_server[0])
		return 0;
	if (u->curve_secret[0] && (rc = rk_read(u->curve_secret, sec, z->err, sizeof z->err)) < 0)
		return rc;
	if (u->binds) {
		if (zmq_setsockopt(z->sock, ZMQ_CURVE_SERVER, &one, sizeof one) < 0 ||
		    zmq_setsockopt(z->sock, ZMQ_CURVE_SECRETKEY, sec, RK_Z85_LEN + 1) < 0)
			return zerr(z, "CURVE (libzmq without libsodium?) for");
		if (!u->curve_clients[0])
			return 0;
		/* Client keys: the ZAP handler checks them under this pipe's
		 * domain, set before the bind (release() forgets it). */
		if ((rc = zap_register(zctx, u->curve_clients, z->zap_domain, z->err,
		                       sizeof z->err)) < 0)
			return rc;
		if (zmq_setsockopt(z->sock, ZMQ_ZAP_DOMAIN, z->zap_domain,
		                   strlen(z->zap_domain)) < 0)
			return zerr(z, "ZMQ_ZAP_DOMAIN for");
		return 0;
	}
	if ((rc = rk_read(u->curve_server, srv, z->err, sizeof z->err)) < 0)
		return rc;
	/* Our own pair: the named one, or a fresh one (the server checks no
	 * client keys: docs/zmq.md). */
	if (u->curve_secret[0] ? zmq_curve_public(pub, sec) : zmq_curve_keypair(pub, sec))
		return zerr(z, "CURVE keys for");
	if (zmq_setsockopt(z->sock, ZMQ_CURVE_SERVERKEY, srv, RK_Z85_LEN + 1) < 0 ||
	    zmq_setsockopt(z->sock, ZMQ_CURVE_PUBLICKEY, pub, RK_Z85_LEN + 1) < 0 ||
	    zmq_setsockopt(z->sock, ZMQ_CURVE_SECRETKEY, sec, RK_Z85_LEN + 1) < 0)
		return zerr(z, "CURVE for");
	return 0;
}

static int set_err(struct zp *z, int rc, const char *what)
{
	snprintf(z->err, sizeof z->err, "%s %s: %s", what, z->url, strerror(-rc));
	return rc;
}

/* ---- the monitor ---- */

/* Only a ZAP handler's refusal (zap.c) is an authentication failure: the
 * binding end's curve_clients does not list the connecting end's key.
 * The server names the key, so that it can be listed. */
static void log_refusal(struct zp *z)
{
	char key[ZAP_Z85_LEN + 1];
	if (!z->binder)
		host->log(host, NP_LOG_WARN, "%s: %s: the binding end refused this end's CURVE "
		          "key (it is not in its curve_clients)", z->pipe->label, z->url);
	else if (zap_refused(z->zap_domain, key))
		host->log(host, NP_LOG_WARN, "%s: %s: a peer failed the ZMTP handshake "
		          "(authentication: its CURVE key %s is not in curve_clients); it is not "
		          "let in", z->pipe->label, z->url, key);
	else
		host->log(host, NP_LOG_WARN, "%s: %s: a peer failed the ZMTP handshake "
		          "(authentication); it is not let in", z->pipe->label, z->url);
}

static void on_event(struct zp *z, int ev)
{
	switch (ev) {
	case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
		z->handshaked = true;
		break;
	case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
		/* The peer closed during the handshake. On a reader that is
		 * also a port probe; a writer keeps it for its timeout message. */
		if (z->mode == NP_WRITE)
			z->hs_failed = true;
		break;
	case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
		/* Once per pipe: zmq retries, and each try fails again. */
		if (!z->hs_failed)
			host->log(host, NP_LOG_WARN, "%s: %s: a peer failed the ZMTP handshake "
			          "(protocol: not zmq, or other CURVE keys); it is not let in",
			          z->pipe->label, z->url);
		z->hs_failed = true;
		break;
	case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
		if (!z->hs_failed)
			log_refusal(z);
		z->hs_failed = z->refused = true;
		break;
	case ZMQ_EVENT_DISCONNECTED:
		/* A connection that failed its handshake (a port probe, a peer
		 * speaking something else) says so just before: it was never
		 * our peer. */
		if (z->handshaked && z->last_ev != ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL &&
		    z->last_ev != ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
		    z->last_ev != ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
			z->peer_left = true;
		break;
	default:
		break;
	}
	z->last_ev = ev;
}

static void drain_monitor(struct zp *z)
{
	z->mon_dry = true; /* it ends on a receive that found nothing */
	if (!z->mon)
		return;
	for (;;) {
		zmq_msg_t m;
		zmq_msg_init(&m);
		if (zmq_msg_recv(&m, z->mon, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&m);
			return;
		}
		int ev = -1;
		if (zmq_msg_size(&m) >= 6) {
			const unsigned char *d = zmq_msg_data(&m);
			ev = d[0] | d[1] << 8;
		}
		bool more = zmq_msg_more(&m);
		zmq_msg_close(&m);
		while (more) { /* the endpoint part */
			zmq_msg_init(&m);
			if (zmq_msg_recv(&m, z->mon, ZMQ_DONTWAIT) < 0) {
				zmq_msg_close(&m);
				break;
			}
			more = zmq_msg_more(&m);
			zmq_msg_close(&m);
		}
		if (ev >= 0)
			on_event(z, ev);
	}
}

/* Consume the ZMQ_FD signals: what the sockets can do is asked afresh. */
static int zevents(void *s)
{
	int ev = 0;
	size_t l = sizeof ev;
	if (!s || zmq_getsockopt(s, ZMQ_EVENTS, &ev, &l) < 0)
		return 0;
	return ev;
}

/* ---- the sender thread (non-fan-out writers) ---- */

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void efd_add(int fd)
{
	uint64_t one = 1;
	ssize_t r = write(fd, &one, sizeof one);
	(void)r; /* a full counter is readable anyway */
}

static void efd_take(int fd)
{
	uint64_t v;
	ssize_t r = read(fd, &v, sizeof v);
	(void)r;
}

/* The thread tells the loop: sig_pending counts the writes the loop has
 * not read, raised before each write, so the loop reads evfd only when it
 * is readable (one read per wake, none on the common path). */
static void tell_loop(struct zsend *s)
{
	atomic_fetch_add(&s->sig_pending, 1);
	efd_add(s->evfd);
}

static void loop_drain(struct zsend *s)
{
	if (atomic_load(&s->sig_pending) == 0)
		return;
	uint64_t v;
	if (read(s->evfd, &v, sizeof v) == (ssize_t)sizeof v)
		atomic_fetch_sub(&s->sig_pending, (uint32_t)v);
}

/* The loop takes mu only if it is free: an op must not wait for a thread
 * that was preempted holding it. When it is taken, poke asks the thread to
 * tell the loop after it lets go; the second try closes the race. */
static bool loop_lock(struct zsend *s)
{
	if (pthread_mutex_trylock(&s->mu) == 0)
		return true;
	atomic_store(&s->poke, true);
	return pthread_mutex_trylock(&s->mu) == 0;
}

static void thread_unlock(struct zsend *s, bool tell)
{
	pthread_mutex_unlock(&s->mu);
	if (atomic_exchange(&s->poke, false))
		tell = true;
	if (tell)
		tell_loop(s);
}

static void zfree(void *data, void *hint)
{
	(void)hint;
	free(data);
}

/* Send one packed buffer (zero copy: libzmq frees it), waiting for room at
 * zmq's high-water mark. 0, -ECANCELED when told to stop, or -errno. */
static int thread_send(struct zsend *s, unsigned char *buf, size_t len)
{
	zmq_msg_t m;
	if (zmq_msg_init_data(&m, buf, len, zfree, NULL) < 0) {
		free(buf);
		return -ENOMEM;
	}
	for (;;) {
		if (zmq_msg_send(&m, s->sock, ZMQ_DONTWAIT) >= 0)
			return 0;
		int e = errno;
		if (e != EAGAIN) {
			zmq_msg_close(&m);
			return -(e ? e : EIO);
		}
		/* Full (or no link: the loop's monitor says -EPIPE then). ZMQ_FD
		 * is edge-triggered: ask ZMQ_EVENTS, which takes its signal,
		 * before waiting on it. */
		if (zevents(s->sock) & ZMQ_POLLOUT)
			continue;
		if (atomic_load(&s->stop)) {
			zmq_msg_close(&m);
			return -ECANCELED;
		}
		struct pollfd pf[2] = {{s->sfd, POLLIN, 0}, {s->kfd, POLLIN, 0}};
		if (poll(pf, 2, 1000) > 0 && (pf[1].revents & POLLIN))
			efd_take(s->kfd);
	}
}

/* The thread: take what the loop packed, send it as one message, again
 * while there is more; then give the socket back and sleep until kicked.
 * It never calls the host: it tells the loop through evfd. */
static void *thread_main(void *arg)
{
	struct zsend *s = arg;
	pthread_mutex_lock(&s->mu);
	while (!atomic_load(&s->stop)) {
		if (s->len == 0) {
			/* Every zmq call may have taken ZMQ_FD's signal: a loop
			 * that waits for the socket looks at it again. */
			bool tell = s->owner && s->want_sock;
			if (s->owner) {
				s->want_sock = false;
				s->idle_ns = mono_ns();
			}
			s->owner = false;
			s->sleeping = true;
			thread_unlock(s, tell);
			struct pollfd pf = {s->kfd, POLLIN, 0};
			if (poll(&pf, 1, -1) > 0)
				efd_take(s->kfd);
			pthread_mutex_lock(&s->mu);
			s->sleeping = false;
			continue;
		}
		unsigned char *buf = s->buf;
		size_t len = s->len;
		s->buf = NULL;
		s->len = s->cap = 0;
		s->owner = true;
		bool tell = s->want_room; /* the loop may pack again */
		s->want_room = false;
		thread_unlock(s, tell);
		int rc = 0;
		if (atomic_load(&s->err))
			free(buf); /* failed: the loop reports it, nothing goes */
		else
			rc = thread_send(s, buf, len);
		if (rc < 0 && rc != -ECANCELED) {
			atomic_store(&s->err, rc);
			tell_loop(s);
		}
		pthread_mutex_lock(&s->mu);
	}
	s->owner = false;
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static void snd_stop(struct zp *z)
{
	struct zsend *s = z->snd;
	if (!s)
		return;
	atomic_store(&s->stop, true);
	efd_add(s->kfd);
	pthread_join(s->thread, NULL);
	host->watch_fd(z->pipe, s->evfd, 0);
	close(s->kfd);
	close(s->evfd);
	pthread_mutex_destroy(&s->mu);
	free(s->buf);
	free(s);
	z->snd = NULL;
}

static int snd_start(struct zp *z)
{
	struct zsend *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->sock = z->sock;
	s->sfd = z->sfd;
	s->kfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	s->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	int rc = s->kfd < 0 || s->evfd < 0 ? -errno : 0;
	if (rc == 0 && (rc = -pthread_mutex_init(&s->mu, NULL)) == 0) {
		if ((rc = host->watch_fd(z->pipe, s->evfd, NP_IN)) == 0) {
			/* Signals stay with the broker's threads. */
			sigset_t all, old;
			sigfillset(&all);
			pthread_sigmask(SIG_SETMASK, &all, &old);
			rc = -pthread_create(&s->thread, NULL, thread_main, s);
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			if (rc == 0) {
				z->snd = s;
				return 0;
			}
			host->watch_fd(z->pipe, s->evfd, 0);
		}
		pthread_mutex_destroy(&s->mu);
	}
	if (s->kfd >= 0)
		close(s->kfd);
	if (s->evfd >= 0)
		close(s->evfd);
	free(s);
	return set_err(z, rc, "start the sender thread of");
}

static void sfd_watch(struct zp *z, bool on)
{
	if (z->sfd_off != on)
		return;
	host->watch_fd(z->pipe, z->sfd, on ? NP_IN : 0);
	z->sfd_off = !on;
}

/* Whether the loop may use the socket: 1 (no sender, or it is idle with
 * nothing to send), 0 (the sender's: it tells us when it gives it back,
 * and ZMQ_FD is not watched meanwhile, since the sender takes its
 * signals), -EAGAIN (mu was taken: the sender tells us). Sets snd_room,
 * and asks to be told of room when there is none. */
static int sock_ours(struct zp *z)
{
	struct zsend *s = z->snd;
	z->snd_room = true;
	if (!s)
		return 1;
	loop_drain(s);
	if (!loop_lock(s))
		return -EAGAIN;
	int e = atomic_load(&s->err);
	bool busy = s->owner || s->len;
	if (busy) {
		s->want_sock = true;
		z->snd_room = s->len + NF_HDR < SBUF_CAP;
		if (!z->snd_room)
			s->want_room = true;
	}
	pthread_mutex_unlock(&s->mu);
	if (e && !z->fail)
		z->fail = set_err(z, e, "send to");
	sfd_watch(z, !busy);
	return !busy;
}

/* ---- open and close ---- */

static void release(struct zp *z, int linger)
{
	snd_stop(z); /* the socket is the loop's again */
	if (z->has_msg)
		zmq_msg_close(&z->msg);
	if (z->has_pend)
		zmq_msg_close(&z->pend);
	z->has_msg = z->has_pend = false;
	if (z->sock) {
		if (z->sfd >= 0)
			host->watch_fd(z->pipe, z->sfd, 0);
		if (z->mon)
			zmq_socket_monitor(z->sock, NULL, 0);
		zmq_setsockopt(z->sock, ZMQ_LINGER, &linger, sizeof linger);
		zmq_close(z->sock);
	}
	if (z->mon) {
		int zero = 0;
		if (z->mfd >= 0)
			host->watch_fd(z->pipe, z->mfd, 0);
		zmq_setsockopt(z->mon, ZMQ_LINGER, &zero, sizeof zero);
		zmq_close(z->mon);
	}
	z->sock = z->mon = NULL;
	z->sfd = z->mfd = -1;
	zap_forget(z->zap_domain);
	z->zap_domain[0] = '\0';
	host->set_timer(z->pipe, -1);
	nm_free(&z->ns);
}

static int zerr(struct zp *z, const char *what)
{
	return set_err(z, -(errno ? errno : EIO), what);
}

/* An ipc path another live reader holds: zmq would silently take it over. */
static bool ipc_live(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t l = strlen(path);
	if (l >= sizeof sa.sun_path)
		return false;
	memcpy(sa.sun_path, path, l);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	bool live = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 || errno == EAGAIN;
	close(fd);
	return live;
}

static int zp_open(struct np_pipe *p, const struct np_open_args *a)
{
	struct zp *z = p->state;
	z->pipe = p;
	z->mode = a->mode;
	z->sfd = z->mfd = -1;
	struct zurl u;
	int rc = parse(a->address, a->mode, &u, z->err, sizeof z->err);
	if (rc < 0)
		return rc;
	snprintf(z->url, sizeof z->url, "%s", u.url);
	if (a->mode != NP_READ && a->mode != NP_WRITE) {
		snprintf(z->err, sizeof z->err, "a zmq netpipe is read-only or write-only");
		return -EINVAL;
	}
	if ((rc = nm_init(&z->ns, (int)a->etag)) < 0)
		return rc;
	z->binder = (a->mode == NP_WRITE) == u.bind_writer;
	z->deadline = -1;
	z->rcvtimeo = -1; /* libzmq's default */
	z->fanout = u.fanout;
	z->readers_min = (int)u.readers;

	/* DEALER on both ends: PUSH/PULL's pattern, plus a way back for the
	 * reader's acknowledgement of END (a clean close is done only when
	 * the reader has everything; zmq's linger cannot promise that).
	 * Fan-out: XPUB and XSUB, which carry the same acknowledgement
	 * upstream and show the writer each reader's (un)subscription. */
	int type = !u.fanout ? ZMQ_DEALER : a->mode == NP_WRITE ? ZMQ_XPUB : ZMQ_XSUB;
	z->sock = zmq_socket(zctx, type);
	if (!z->sock)
		return zerr(z, "zmq_socket for");
	int one = 1, zero = 0, hwm = (int)u.hwm, ivl = 20, ivl_max = 200;
	if (type == ZMQ_XPUB) {
		/* NODROP: a reader at its high-water mark blocks the writer
		 * instead of losing messages. VERBOSE(R): every reader's
		 * subscription and every departure reach us, so we count them. */
		zmq_setsockopt(z->sock, ZMQ_XPUB_NODROP, &one, sizeof one);
		zmq_setsockopt(z->sock, ZMQ_XPUB_VERBOSE, &one, sizeof one);
		zmq_setsockopt(z->sock, ZMQ_XPUB_VERBOSER, &one, sizeof one);
	}
	int hb_ivl = 1000, hb_timeout = 3000;
	zmq_setsockopt(z->sock, ZMQ_LINGER, &zero, sizeof zero);
	zmq_setsockopt(z->sock, ZMQ_IMMEDIATE, &one, sizeof one);
	zmq_setsockopt(z->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
	zmq_setsockopt(z->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
	zmq_setsockopt(z->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
	zmq_setsockopt(z->sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max);
	zmq_setsockopt(z->sock, ZMQ_HEARTBEAT_IVL, &hb_ivl, sizeof hb_ivl);
	zmq_setsockopt(z->sock, ZMQ_HEARTBEAT_TIMEOUT, &hb_timeout, sizeof hb_timeout);

	if ((rc = set_curve(z, &u)) < 0)
		return rc;

	/* The monitor first: its PAIR must be connected before any event. */
	char mon_ep[64];
	snprintf(mon_ep, sizeof mon_ep, "inproc://rift-zmq-monitor-%u", ++mon_seq);
	if (zmq_socket_monitor(z->sock, mon_ep,
	                       ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED |
	                           ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
	                           ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
	                           ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) < 0)
		return zerr(z, "zmq_socket_monitor for");
	z->mon = zmq_socket(zctx, ZMQ_PAIR);
	if (!z->mon || zmq_connect(z->mon, mon_ep) < 0)
		return zerr(z, "the monitor of");

	if (z->binder) {
		if (u.is_ipc && ipc_live(u.url + 6)) {
			snprintf(z->err, sizeof z->err, "%s: another reader or writer is bound there",
			         z->url);
			return -EADDRINUSE;
		}
		if (zmq_bind(z->sock, u.url) < 0)
			return zerr(z, "bind");
	} else if (zmq_connect(z->sock, u.url) < 0) {
		return zerr(z, "connect");
	}
	/* A fan-out reader subscribes to everything; XSUB keeps the
	 * subscription and sends it on every connection it makes. */
	if (type == ZMQ_XSUB && zmq_send(z->sock, "\1", 1, ZMQ_DONTWAIT) != 1)
		return zerr(z, "subscribe to");

	size_t l = sizeof z->sfd;
	if (zmq_getsockopt(z->sock, ZMQ_FD, &z->sfd, &l) < 0)
		return zerr(z, "ZMQ_FD of");
	l = sizeof z->mfd;
	if (zmq_getsockopt(z->mon, ZMQ_FD, &z->mfd, &l) < 0)
		return zerr(z, "ZMQ_FD of the monitor of");
	if ((rc = host->watch_fd(p, z->sfd, NP_IN)) < 0 ||
	    (rc = host->watch_fd(p, z->mfd, NP_IN)) < 0)
		return set_err(z, rc, "watch");

	if (a->mode == NP_WRITE) {
		/* The preamble waits as the first message; with ZMQ_IMMEDIATE it
		 * leaves only once a reader is there. */
		if (zmq_msg_init_size(&z->pend, NF_PREAMBLE) < 0)
			return -ENOMEM;
		nm_preamble(&z->ns, zmq_msg_data(&z->pend));
		z->has_pend = true;
		if (u.connect_timeout >= 0) {
			z->deadline = host->now_ms(host) + u.connect_timeout;
			host->set_timer(p, u.connect_timeout);
		}
	}
	return 0; /* the broker calls ready() right after open */
}

/* ---- writer ---- */

/* Queue the held message, if any: 0 when nothing is held, -EAGAIN, -errno. */
static int flush(struct zp *z)
{
	if (!z->has_pend)
		return 0;
	/* Fan-out: the preamble (the first message) waits for readers=N. */
	if (z->fanout && !z->started && z->present < z->readers_min)
		return -EAGAIN;
	if (zmq_msg_send(&z->pend, z->sock, ZMQ_DONTWAIT) < 0) {
		if (errno == EAGAIN)
			return -EAGAIN;
		z->fail = zerr(z, "send to");
		return z->fail;
	}
	zmq_msg_close(&z->pend);
	z->has_pend = false;
	z->started = true;
	return 0;
}

/* Fan-out writer: what came upstream. Each reader's subscription (one
 * byte, 1), its departure (0: XPUB_VERBOSER reports the subscription of a
 * connection that ended) and its acknowledgement of END. */
static void drain_up(struct zp *z)
{
	unsigned char b[8];
	int n;
	while ((n = zmq_recv(z->sock, b, sizeof b, ZMQ_DONTWAIT)) >= 0) {
		if (n == 1 && b[0] == 1)
			z->present++;
		else if (n == 1 && b[0] == 0)
			z->present -= z->present > 0;
		else if (n == ACK_LEN && memcmp(b, ACK_MSG, ACK_LEN) == 0)
			z->acks++;
	}
}

/* Fan-out writer, END queued: every reader present then acknowledged it,
 * or none is left (one that left unacknowledged is treated as a stream
 * socket's peer would be: see writer_close). Counting can wait longer than
 * needed (a reader that joined late never acknowledges, it leaves), never
 * less. */
static bool fan_end_done(struct zp *z)
{
	return z->present == 0 || z->acks >= z->end_readers;
}

/* What the monitor and the clock say about the writer's peer. */
static int writer_state(struct zp *z)
{
	drain_monitor(z);
	if (z->fanout)
		drain_up(z);
	if (z->fail)
		return z->fail;
	if (z->fanout ? z->started && z->present == 0 && !z->end_queued : z->peer_left) {
		/* Fan-out: -EPIPE once the last reader left, as a FIFO's
		 * writer gets it once no reader has it open. */
		snprintf(z->err, sizeof z->err, "%s: the %s went away", z->url,
		         z->fanout ? "last reader" : "reader");
		return z->fail = -EPIPE;
	}
	if (z->deadline >= 0 && !(z->fanout ? z->started : z->handshaked)) {
		int64_t now = host->now_ms(host);
		if (now >= z->deadline) {
			if (z->fanout)
				snprintf(z->err, sizeof z->err, "%d of readers=%d appeared at %s within "
				         "connect_timeout%s", z->present, z->readers_min, z->url,
				         z->hs_failed ? " (a handshake failed: not zmq, or other "
				                        "CURVE keys)" : "");
			else
				snprintf(z->err, sizeof z->err,
				         "no reader appeared at %s within connect_timeout%s", z->url,
				         z->refused ? " (the handshake failed: a CURVE key not in the "
				                      "binding end's curve_clients)"
				         : z->hs_failed ? " (the handshake failed: not zmq, or other "
				                          "CURVE keys)" : "");
			return z->fail = -ETIMEDOUT;
		}
	}
	return 0;
}

/* A non-fan-out writer after the preamble. A write close behind the
 * previous one is packed into the sender's buffer (the thread starts at
 * the first), and so is every write while the sender has bytes or the
 * socket; one after a pause, with the sender idle, goes straight to zmq
 * from the loop, with no thread in the way. The count taken, -errno, or 0:
 * send it directly. */
static ssize_t coalesce(struct zp *z, const void *buf, size_t len)
{
	/* The clock is read only when the sender is idle (clock_gettime was
	 * a sixth of the writer's time when read on every write). */
	struct zsend *s = z->snd;
	if (!s) {
		int64_t now = mono_ns();
		bool close_behind = now - z->last_write_ns < COALESCE_NS;
		z->last_write_ns = now;
		if (!close_behind)
			return 0;
		int rc = snd_start(z);
		if (rc < 0)
			return z->fail = rc;
		s = z->snd;
	}
	loop_drain(s);
	if (!loop_lock(s))
		return -EAGAIN; /* poked: the thread tells us */
	int e = atomic_load(&s->err);
	if (e) {
		pthread_mutex_unlock(&s->mu);
		return z->fail = set_err(z, e, "send to");
	}
	if (!s->owner && !s->len) {
		/* Idle: how long since the last write? The writes the thread
		 * sent came before it went idle. */
		int64_t now = mono_ns(), last = z->last_write_ns;
		if (s->idle_ns > last)
			last = s->idle_ns;
		z->last_write_ns = now;
		if (now - last >= COALESCE_NS) {
			pthread_mutex_unlock(&s->mu);
			sfd_watch(z, true);
			return 0;
		}
	}
	ssize_t k = -EAGAIN;
	size_t room = s->len + NF_HDR < SBUF_CAP ? SBUF_CAP - s->len - NF_HDR : 0;
	if (room == 0) {
		s->want_room = true; /* the thread tells us when it takes buf */
	} else {
		if (len > room)
			len = room;
		size_t need = s->len + NF_HDR + len;
		if (need > s->cap) {
			size_t ncap = s->cap ? s->cap : SBUF_MIN;
			while (ncap < need)
				ncap *= 2;
			if (ncap > SBUF_CAP)
				ncap = SBUF_CAP;
			unsigned char *nb = realloc(s->buf, ncap);
			if (nb) {
				s->buf = nb;
				s->cap = ncap;
			}
		}
		if (need <= s->cap) {
			s->len += nm_pack(&z->ns, s->buf + s->len, buf, len);
			k = (ssize_t)len;
		} else {
			k = -ENOMEM;
		}
	}
	bool kick = k > 0 && s->sleeping;
	if (kick)
		s->sleeping = false;
	pthread_mutex_unlock(&s->mu);
	if (kick)
		efd_add(s->kfd);
	if (k == -ENOMEM)
		return z->fail = set_err(z, -ENOMEM, "buffer for");
	if (k == -EAGAIN) {
		sfd_watch(z, false); /* the sender has the socket (buf is full) */
		int rc = writer_state(z);
		return rc ? rc : -EAGAIN;
	}
	return k;
}

static int fan_push(struct zp *z);

static ssize_t zp_write(struct np_pipe *p, const void *buf, size_t len)
{
	struct zp *z = p->state;
	if (z->mode != NP_WRITE)
		return -EBADF;
	if (len == 0)
		return 0;
	if (z->fail)
		return z->fail;
	if (z->end_queued)
		return -EPIPE;
	int rc;
	if (z->fanout && (z->has_pend || ++z->since_drain >= FAN_DRAIN_EVERY)) {
		/* Held bytes first; and now and then what came upstream: a
		 * writer whose readers all left sends into nothing (XPUB drops
		 * what no one subscribed to), so it must look to see -EPIPE. */
		if ((rc = fan_push(z)) < 0)
			return rc;
	}
	rc = flush(z);
	if (rc == -EAGAIN) {
		rc = writer_state(z);
		return rc ? rc : -EAGAIN;
	}
	if (rc < 0)
		return rc;
	if (len > NF_MAX_FRAME)
		len = NF_MAX_FRAME;
	if (!z->fanout && z->started) {
		ssize_t k = coalesce(z, buf, len);
		if (k != 0)
			return k;
	}
	/* With etag the digest counts a frame once packed, so a packed frame
	 * must go; ask first. Without, a refused message is simply dropped. */
	if (z->ns.etag && !z->fanout && !(zevents(z->sock) & ZMQ_POLLOUT)) {
		rc = writer_state(z);
		return rc ? rc : -EAGAIN;
	}
	zmq_msg_t m;
	if (zmq_msg_init_size(&m, NF_HDR + len) < 0)
		return -ENOMEM;
	nm_pack(&z->ns, zmq_msg_data(&m), buf, len);
	if (zmq_msg_send(&m, z->sock, ZMQ_DONTWAIT) < 0) {
		int e = errno;
		/* Fan-out too: XPUB says ZMQ_POLLOUT always (the high-water
		 * mark is met at send), so the frame is held, and NP_OUT stays
		 * off until it went. */
		if (e == EAGAIN && (z->ns.etag || z->fanout)) {
			z->pend = m; /* accepted: it leaves from ready() */
			z->has_pend = z->pend_is_data = true;
			return (ssize_t)len;
		}
		zmq_msg_close(&m);
		if (e == EAGAIN) {
			rc = writer_state(z);
			return rc ? rc : -EAGAIN;
		}
		errno = e;
		return z->fail = zerr(z, "send to");
	}
	return (ssize_t)len;
}

/* The reader's acknowledgement of END, if it came. */
static void check_ack(struct zp *z)
{
	char b[8];
	int n;
	while (!z->end_acked && (n = zmq_recv(z->sock, b, sizeof b, ZMQ_DONTWAIT)) >= 0)
		z->end_acked = n == ACK_LEN && memcmp(b, ACK_MSG, ACK_LEN) == 0;
}

/* Fan-out: move what is held (the preamble once readers=N are there, a
 * frame XPUB refused at a reader's high-water mark) as far as it goes,
 * and take in what came upstream. XPUB's ZMQ_POLLOUT is always set, so
 * room shows only as a send that succeeds; and every zmq call may take
 * ZMQ_FD's signal, so this ends only after ZMQ_EVENTS showed nothing new
 * and a send after it failed (the next zmq command signals the fd again).
 * 0 when nothing is held, -EAGAIN, or the sticky -errno. */
static int fan_push(struct zp *z)
{
	for (int i = 0; i < 16; i++) {
		int rc = writer_state(z);
		if (rc == 0)
			rc = flush(z);
		if (rc < 0 && rc != -EAGAIN)
			return rc;
		z->since_drain = 0;
		int ev = zevents(z->sock), mev = zevents(z->mon);
		if ((ev & ZMQ_POLLIN) || (mev & ZMQ_POLLIN))
			continue; /* subscriptions, departures, acks or events came */
		if (rc == -EAGAIN && (rc = flush(z)) == 0)
			continue; /* a reader's pipe drained meanwhile */
		return rc;
	}
	host->set_timer(z->pipe, 1); /* still moving: look again soon */
	return z->fail ? z->fail : z->has_pend ? -EAGAIN : 0;
}

static uint32_t fan_writer_ready(struct zp *z)
{
	int rc = fan_push(z);
	if (rc < 0 && rc != -EAGAIN)
		return NP_ERR | NP_OUT;
	if (z->end_queued)
		return !z->has_pend && fan_end_done(z) ? NP_OUT : 0;
	if (z->deadline >= 0 && !z->started)
		host->set_timer(z->pipe, z->deadline - host->now_ms(host));
	return z->has_pend ? 0 : NP_OUT;
}

static uint32_t writer_ready(struct zp *z)
{
	if (z->fanout)
		return fan_writer_ready(z);
	int own = sock_ours(z);
	if (own <= 0) {
		/* The sender has the socket: the monitor and the buffer say
		 * what the writer can do. */
		if (writer_state(z) < 0)
			return NP_ERR | NP_OUT;
		return own == 0 && z->snd_room && !z->end_queued ? NP_OUT : 0;
	}
	/* ZMQ_FD is edge-triggered and every zmq call may consume its
	 * signal: act, then ask ZMQ_EVENTS again, until nothing changed. */
	for (int i = 0; i < 16; i++) {
		if (z->end_queued && !z->has_pend) {
			/* Closing: only the reader's acknowledgement matters now,
			 * and close() decides. The monitor first: an ack sent
			 * before a disconnect is queued before its event. */
			drain_monitor(z);
			bool left = z->peer_left;
			check_ack(z);
			int ev = zevents(z->sock), mev = zevents(z->mon);
			if (z->end_acked || left)
				return NP_OUT;
			if (!(ev & ZMQ_POLLIN) && !(mev & ZMQ_POLLIN))
				return 0;
			continue;
		}
		if (writer_state(z) < 0) {
			zevents(z->sock);
			zevents(z->mon);
			return NP_ERR | NP_OUT;
		}
		int ev = zevents(z->sock);
		if (z->has_pend && (ev & ZMQ_POLLOUT)) {
			int rc = flush(z);
			if (rc < 0 && rc != -EAGAIN)
				return NP_ERR | NP_OUT;
			continue;
		}
		if (zevents(z->mon) & ZMQ_POLLIN)
			continue; /* an event came meanwhile */
		if (z->deadline >= 0 && !z->handshaked)
			host->set_timer(z->pipe, z->deadline - host->now_ms(host));
		return !z->has_pend && !z->end_queued && (ev & ZMQ_POLLOUT) ? NP_OUT : 0;
	}
	host->set_timer(z->pipe, 1); /* still moving: look again soon */
	return 0;
}

/* ---- reader ---- */

static void reader_fail(struct zp *z, int err, const char *why)
{
	if (!z->ns.done) {
		z->ns.done = err;
		snprintf(z->ns.why, sizeof z->ns.why, "%s", why);
	}
}

/* Tell the writer END arrived: its clean close is complete then. */
static void send_ack(struct zp *z)
{
	if (!z->ack_due)
		return;
	z->sock_dry = false; /* a send may take the fd's signal too */
	if (zmq_send(z->sock, ACK_MSG, ACK_LEN, ZMQ_DONTWAIT) == ACK_LEN)
		z->ack_due = false;
}

/* A receive found the socket empty. The monitor's DISCONNECTED is sent
 * after every message of that connection was queued to us, and the caller
 * read the monitor before this receive (which processes the queue's
 * commands): a writer that left without END is a reset now. */
static void found_nothing(struct zp *z)
{
	z->sock_dry = true;
	if (!z->peer_left)
		return;
	if (z->ns.preamble_done) {
		reader_fail(z, -ECONNRESET, "the writer went away without closing the stream");
	} else {
		/* A zmq peer that sent nothing was no writer. */
		z->peer_left = false;
		z->handshaked = false;
	}
}

/* A message was received into z->msg: check it and start walking it. */
static void take_msg(struct zp *z)
{
	z->has_msg = true;
	z->sock_dry = false;
	if (z->fanout && !z->ns.preamble_done &&
	    (zmq_msg_size(&z->msg) < 4 || memcmp(zmq_msg_data(&z->msg), NF_MAGIC, 4) != 0)) {
		reader_fail(z, -EPROTO, "joined the fan-out stream after it started (the "
		            "writer's first byte goes to the readers=N it waited for)");
		return;
	}
	if (zmq_msg_more(&z->msg)) {
		reader_fail(z, -EPROTO, "a multipart message: the peer is not a Rift writer");
		return;
	}
	nm_begin(&z->ns, &z->cur, zmq_msg_data(&z->msg), zmq_msg_size(&z->msg));
}

/* Walk the held message to its next payload (z->pl); at its end release
 * it, and take END. True when the next message is to be received. */
static bool walk_held(struct zp *z)
{
	if (!z->has_msg)
		return true;
	const unsigned char *pl;
	size_t n;
	int rc = nm_next(&z->ns, &z->cur, &pl, &n);
	if (rc == 1) {
		z->pl = pl;
		z->pl_len = n;
		z->pl_off = 0;
		return false;
	}
	zmq_msg_close(&z->msg);
	z->has_msg = false;
	if (z->ns.done == 1) {
		z->ack_due = true;
		send_ack(z);
	}
	return rc >= 0 && !z->ns.done;
}

/* Find the next payload: walk the held message, then receive the next. */
static void fill(struct zp *z)
{
	while (!z->pl && z->ns.done == 0) {
		if (!walk_held(z))
			return;
		zmq_msg_init(&z->msg);
		if (zmq_msg_recv(&z->msg, z->sock, ZMQ_DONTWAIT) < 0) {
			int e = errno;
			zmq_msg_close(&z->msg);
			if (e != EAGAIN) {
				z->sock_dry = false;
				reader_fail(z, -EIO, "receive failed");
				return;
			}
			found_nothing(z);
			return;
		}
		take_msg(z);
	}
}

/* What a read would do now, as ready() says it. */
static uint32_t reader_bits(const struct zp *z)
{
	if (z->pl)
		return NP_IN;
	return z->ns.done ? NP_IN | NP_HUP : 0;
}

/* NP_CTL_WAIT (docs/abi.md; docs/zmq.md, "Blocking reads"): a receive that
 * blocks in libzmq, at most timeout_ms. A blocking zmq_recv sleeps in the
 * poll() that a non-blocking one spends finding nothing before the loop's
 * epoll_wait, and takes the next message without the poll() a receive
 * after a wake-up costs: raw libzmq's own pattern. No loop runs meanwhile,
 * so END's acknowledgement is retried here, and a wait that ends empty
 * reads the monitor; a receive after that (the order found_nothing()
 * needs) makes a departed writer -ECONNRESET at once. */
static int reader_wait(struct zp *z, const struct np_wait *w)
{
	if (!w || w->struct_size < sizeof *w || w->events != NP_IN || z->mode != NP_READ)
		return -ENOTTY;
	if (w->timeout_ms < 0)
		return -EINVAL;
	send_ack(z);
	if (!z->pl && !z->ns.done)
		walk_held(z);
	if (z->pl || z->ns.done)
		return (int)reader_bits(z);
	if (z->rcvtimeo != w->timeout_ms) {
		int ms = w->timeout_ms;
		if (zmq_setsockopt(z->sock, ZMQ_RCVTIMEO, &ms, sizeof ms) < 0)
			return -ENOTTY;
		z->rcvtimeo = ms;
	}
	zmq_msg_init(&z->msg);
	if (zmq_msg_recv(&z->msg, z->sock, 0) < 0) {
		int e = errno;
		zmq_msg_close(&z->msg);
		if (e == EAGAIN) {
			z->sock_dry = true;
			drain_monitor(z);
			if (z->peer_left)
				fill(z);
			return (int)reader_bits(z);
		}
		z->sock_dry = false;
		if (e != EINTR)
			reader_fail(z, -EIO, "receive failed");
		return (int)reader_bits(z);
	}
	take_msg(z);
	if (!z->ns.done)
		walk_held(z);
	return (int)reader_bits(z);
}

static ssize_t zp_read(struct np_pipe *p, void *buf, size_t len)
{
	struct zp *z = p->state;
	if (z->mode != NP_READ)
		return -EBADF;
	if (len == 0)
		return 0;
	unsigned char *out = buf;
	size_t got = 0;
	/* The monitor is not read here: ready() reads it before its own
	 * recv, so a peer_left seen there was seen before every recv that
	 * follows (which is what fill()'s reset needs), and an event that
	 * comes later leaves the monitor's ZMQ_FD signalled, so the loop
	 * calls ready(). A read that finishes a message goes on into the
	 * next one while it has room (stopping at the message's end saves
	 * the poll() of a receive that finds nothing, but made no difference
	 * to bench row 2: docs/zmq.md, "Tried and not kept"). */
	while (got < len) {
		fill(z);
		if (!z->pl)
			break;
		size_t n = z->pl_len - z->pl_off;
		if (n > len - got)
			n = len - got;
		memcpy(out + got, z->pl + z->pl_off, n);
		nm_consumed(&z->ns, z->pl + z->pl_off, n);
		got += n;
		z->pl_off += n;
		if (z->pl_off == z->pl_len)
			z->pl = NULL;
	}
	if (got)
		return (ssize_t)got;
	if (z->ns.done == 1)
		return 0;
	if (z->ns.done < 0) {
		snprintf(z->err, sizeof z->err, "%s: %s", z->url, z->ns.why);
		return z->ns.done;
	}
	return -EAGAIN;
}

static uint32_t zp_ready(struct np_pipe *p)
{
	struct zp *z = p->state;
	if (!z->sock)
		return NP_ERR;
	if (z->mode == NP_WRITE)
		return writer_ready(z);
	/* No ZMQ_EVENTS here: a recv that finds nothing has processed zmq's
	 * commands and taken the fd's signal already (libzmq does that before
	 * it answers EAGAIN), so the next message or event signals the fd
	 * again. drain_monitor() ends with such a recv on the monitor, and
	 * fill() with one on the socket unless it found payload or the end.
	 * (Two ZMQ_EVENTS calls here cost two poll()s per wait: bench row 3.)
	 * ready() runs after an event. When both sockets went dry on their
	 * last call and nothing is held, the event is almost always the next
	 * message: the socket is asked first, a receive that finds it costs
	 * one libzmq poll(), where a poll() of both fds to learn which fired
	 * cost one more per message. Only when the socket has nothing is the
	 * monitor read, and then the socket again (fill()'s reset needs the
	 * monitor read before its recv). */
	if (z->sock_dry && z->mon_dry && !z->pl && !z->has_msg && !z->ns.done &&
	    !z->ack_due) {
		fill(z);
		if (z->pl || z->ns.done)
			return reader_bits(z);
	}
	drain_monitor(z);
	send_ack(z);
	fill(z);
	return reader_bits(z);
}

/* Queue END (with the digest when etag): 0, -EAGAIN or -errno. */
static int queue_end(struct zp *z)
{
	unsigned char end[NF_HDR + NF_DIGEST];
	size_t el = nm_end(&z->ns, end);
	if (zmq_msg_init_size(&z->pend, el) < 0)
		return -ENOMEM;
	memcpy(zmq_msg_data(&z->pend), end, el);
	z->has_pend = true;
	z->pend_is_data = false;
	z->end_queued = true;
	z->end_readers = z->present;
	return flush(z);
}

static int writer_close(struct zp *z)
{
	if (!z->fanout && sock_ours(z) <= 0) {
		/* END goes after what the sender holds, from the loop. */
		int rc = writer_state(z);
		return rc < 0 ? rc : -EAGAIN;
	}
	for (int i = 0; i < 4; i++) {
		if (z->end_queued && z->fanout) {
			/* Until END went and every reader acknowledged it. */
			int rc = fan_push(z);
			if (rc < 0 && rc != -EAGAIN)
				return rc;
			return !z->has_pend && fan_end_done(z) ? 0 : -EAGAIN;
		}
		if (z->end_queued && !z->has_pend) {
			drain_monitor(z);
			bool left = z->peer_left;
			check_ack(z);
			if (z->end_acked)
				return 0;
			if (z->fail)
				return z->fail;
			if (left) {
				/* The reader left after END was queued, without an
				 * acknowledgement. A reader that closes right after
				 * END can lose its ack (libzmq may drop a closing
				 * socket's last message despite linger), so this is
				 * what a stream socket gives too: END went out before
				 * the peer left; had it not arrived, the reader fails
				 * with -ECONNRESET on its side. */
				host->log(host, NP_LOG_DEBUG, "%s: %s: the reader left without "
				          "acknowledging the end of the stream", z->pipe->label, z->url);
				return 0;
			}
			zevents(z->sock);
			return -EAGAIN;
		}
		int rc = writer_state(z);
		if (rc == 0)
			rc = flush(z);
		if (rc == 0 && !z->end_queued)
			rc = queue_end(z);
		if (rc < 0)
			return rc;
	}
	return -EAGAIN;
}

static int zp_close(struct np_pipe *p, uint32_t flags)
{
	struct zp *z = p->state;
	int result = 0;
	if (!(flags & NP_CLOSE_ABORT) && z->mode == NP_WRITE && z->sock) {
		/* A clean close delivers END even when nothing was written, and
		 * is done when the reader acknowledged it. */
		result = writer_close(z);
		if (result == -EAGAIN)
			return -EAGAIN;
	}
	/* A reader that had END lingers a little, so its acknowledgement
	 * leaves (fini's zmq_ctx_term waits for it). */
	release(z, z->mode == NP_READ && z->ns.done == 1 ? CLOSE_LINGER_MS : 0);
	return result;
}

static int zp_ctl(struct np_pipe *p, int op, void *arg)
{
	struct zp *z = p->state;
	(void)arg;
	if (op == NP_CTL_PENDING) {
		/* Bytes in the sender's buffer go without the loop. */
		if (!z->fail && z->snd && atomic_load(&z->snd->err))
			z->fail = set_err(z, atomic_load(&z->snd->err), "send to");
		if (z->fail)
			return z->fail;
		return z->has_pend && z->pend_is_data ? (int)zmq_msg_size(&z->pend) - NF_HDR : 0;
	}
	if (op == NP_CTL_WAIT)
		return reader_wait(z, arg);
	if (op == NP_CTL_FDS) {
		int *fds = arg;
		fds[0] = z->sfd;
		fds[1] = z->mfd;
		return 0;
	}
	return -ENOTTY;
}

static const char *zp_last_error(struct np_pipe *p)
{
	struct zp *z = p->state;
	return z->err[0] ? z->err : NULL;
}

static int zp_init(const struct np_host *h)
{
	host = h;
	zctx = zmq_ctx_new();
	if (!zctx)
		return -ENOMEM;
	return 0;
}

static void zp_fini(void)
{
	zap_stop(); /* its sockets are in zctx */
	if (zctx)
		zmq_ctx_term(zctx);
	zctx = NULL;
}

static const struct np_plugin plugin = {
	.struct_size = sizeof(struct np_plugin),
	.magic = NP_MAGIC,
	.abi_major = NP_ABI_MAJOR,
	.abi_minor = NP_ABI_MINOR,
	.kind = NP_KIND_TRANSPORT,
	.state_size = sizeof(struct zp),
	.name = "zmq",
	.version = "0.1",
	.license = "MIT",
	.description = "ZeroMQ over tcp, ipc and inproc: the reader binds, the writer connects",
	.caps = NP_CAP_ETAG | NP_CAP_REMOTE | NP_CAP_MULTI_READER, /* fanout=1 */
	.init = zp_init,
	.fini = zp_fini,
	.validate = zp_validate,
	.open = zp_open,
	.close = zp_close,
	.read = zp_read,
	.write = zp_write,
	.ready = zp_ready,
	.ctl = zp_ctl,
	.last_error = zp_last_error,
};

NP_EXPORT const struct np_plugin *np_plugin_entry(const struct np_host *h)
{
	(void)h;
	return &plugin;
}
