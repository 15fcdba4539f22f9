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
 *
 * Both ends are DEALER sockets used as PUSH/PULL (the same load-balancing
 * and fair-queueing pipes), so that the reader can send one message back:
 * the acknowledgement of END, which makes a writer's clean close complete
 * only once the reader has the whole stream (zmq's linger promises nothing
 * once the process exits). The stream is framed with
 * plugins/common/msgframe.h: the preamble message, one DATA frame per
 * write, END (with the digest when etag) at a clean close. Peer presence
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <zmq.h>

#include "keys.h"
#include "msgframe.h"
#include "netpipe.h"
#include "options.h"

#define CLOSE_LINGER_MS 2000 /* after a clean close, for END to leave */
#define DEFAULT_HWM     128
/* The reader's one message back: END arrived (docs/zmq.md). */
#define ACK_MSG "RFTA"
#define ACK_LEN 4

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
	int fail;               /* writer: sticky -errno */
	int64_t deadline;       /* writer: connect_timeout, or -1 */
	struct nm_stream ns;
	/* writer */
	bool has_pend;          /* a message accepted but not yet queued */
	bool pend_is_data;
	bool end_queued;
	bool end_acked;         /* the reader acknowledged END */
	zmq_msg_t pend;
	/* reader */
	bool ack_due;           /* END seen, its acknowledgement not sent */
	bool has_msg;           /* a received message being walked */
	zmq_msg_t msg;
	struct nm_cursor cur;
	const unsigned char *pl;
	size_t pl_len, pl_off;
	char url[256];
	char err[512];
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
	bool binds;
};

static int parse(const char *address, uint32_t mode, struct zurl *u, char *err,
                 size_t errlen)
{
	static const char *const allowed[] = {"listen", "bind", "connect_timeout", "hwm",
	                                      "curve_secret", "curve_server", NULL};
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
	if ((rc = no_get_int(&o, "connect_timeout", -1, &u->connect_timeout, err, errlen)) < 0 ||
	    (rc = no_get_int(&o, "hwm", DEFAULT_HWM, &u->hwm, err, errlen)) < 0)
		return rc;
	if (u->hwm > 1000000) {
		snprintf(err, errlen, "option hwm=%lld: at most 1000000", (long long)u->hwm);
		return -EINVAL;
	}
	bool binds = (mode == NP_WRITE) == u->bind_writer;
	u->binds = binds;
	const char *cs = no_get(&o, "curve_secret"), *cv = no_get(&o, "curve_server");
	snprintf(u->curve_secret, sizeof u->curve_secret, "%s", cs ? cs : "");
	snprintf(u->curve_server, sizeof u->curve_server, "%s", cv ? cv : "");
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
	case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
		/* Once per pipe: zmq retries, and each try fails again. */
		if (!z->hs_failed)
			host->log(host, NP_LOG_WARN, "%s: %s: a peer failed the ZMTP handshake "
			          "(%s: not zmq, or other CURVE keys); it is not let in",
			          z->pipe->label, z->url,
			          ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ? "authentication" : "protocol");
		z->hs_failed = true;
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

/* ---- open and close ---- */

static void release(struct zp *z, int linger)
{
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

	/* DEALER on both ends: PUSH/PULL's pattern, plus a way back for the
	 * reader's acknowledgement of END (a clean close is done only when
	 * the reader has everything; zmq's linger cannot promise that). */
	z->sock = zmq_socket(zctx, ZMQ_DEALER);
	if (!z->sock)
		return zerr(z, "zmq_socket for");
	int one = 1, zero = 0, hwm = (int)u.hwm, ivl = 20, ivl_max = 200;
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
	if (zmq_msg_send(&z->pend, z->sock, ZMQ_DONTWAIT) < 0) {
		if (errno == EAGAIN)
			return -EAGAIN;
		z->fail = zerr(z, "send to");
		return z->fail;
	}
	zmq_msg_close(&z->pend);
	z->has_pend = false;
	return 0;
}

/* What the monitor and the clock say about the writer's peer. */
static int writer_state(struct zp *z)
{
	drain_monitor(z);
	if (z->fail)
		return z->fail;
	if (z->peer_left) {
		snprintf(z->err, sizeof z->err, "%s: the reader went away", z->url);
		return z->fail = -EPIPE;
	}
	if (z->deadline >= 0 && !z->handshaked) {
		int64_t now = host->now_ms(host);
		if (now >= z->deadline) {
			snprintf(z->err, sizeof z->err,
			         "no reader appeared at %s within connect_timeout%s", z->url,
			         z->hs_failed ? " (the handshake failed: not zmq, or other CURVE "
			                        "keys)" : "");
			return z->fail = -ETIMEDOUT;
		}
	}
	return 0;
}

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
	int rc = flush(z);
	if (rc == -EAGAIN) {
		rc = writer_state(z);
		return rc ? rc : -EAGAIN;
	}
	if (rc < 0)
		return rc;
	if (len > NF_MAX_FRAME)
		len = NF_MAX_FRAME;
	/* With etag the digest counts a frame once packed, so a packed frame
	 * must go; ask first. Without, a refused message is simply dropped. */
	if (z->ns.etag && !(zevents(z->sock) & ZMQ_POLLOUT)) {
		rc = writer_state(z);
		return rc ? rc : -EAGAIN;
	}
	zmq_msg_t m;
	if (zmq_msg_init_size(&m, NF_HDR + len) < 0)
		return -ENOMEM;
	nm_pack(&z->ns, zmq_msg_data(&m), buf, len);
	if (zmq_msg_send(&m, z->sock, ZMQ_DONTWAIT) < 0) {
		int e = errno;
		if (e == EAGAIN && z->ns.etag) {
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

static uint32_t writer_ready(struct zp *z)
{
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
	if (z->ack_due && zmq_send(z->sock, ACK_MSG, ACK_LEN, ZMQ_DONTWAIT) == ACK_LEN)
		z->ack_due = false;
}

/* Find the next payload: walk the held message, receive the next. */
static void fill(struct zp *z)
{
	while (!z->pl && z->ns.done == 0) {
		if (z->has_msg) {
			const unsigned char *pl;
			size_t n;
			int rc = nm_next(&z->ns, &z->cur, &pl, &n);
			if (rc == 1) {
				z->pl = pl;
				z->pl_len = n;
				z->pl_off = 0;
				return;
			}
			zmq_msg_close(&z->msg);
			z->has_msg = false;
			if (z->ns.done == 1) {
				z->ack_due = true;
				send_ack(z);
			}
			if (rc < 0 || z->ns.done)
				return;
		}
		zmq_msg_init(&z->msg);
		if (zmq_msg_recv(&z->msg, z->sock, ZMQ_DONTWAIT) < 0) {
			int e = errno;
			zmq_msg_close(&z->msg);
			if (e != EAGAIN) {
				reader_fail(z, -EIO, "receive failed");
				return;
			}
			/* Nothing queued. The monitor's DISCONNECTED is sent after
			 * every message of that connection was queued to us, and
			 * the caller read the monitor before this recv (which
			 * processes the queue's commands): a writer that left
			 * without END is a reset now. */
			if (z->peer_left) {
				if (z->ns.preamble_done) {
					reader_fail(z, -ECONNRESET,
					            "the writer went away without closing the stream");
				} else {
					/* A zmq peer that sent nothing was no writer. */
					z->peer_left = false;
					z->handshaked = false;
				}
			}
			return;
		}
		z->has_msg = true;
		if (zmq_msg_more(&z->msg)) {
			reader_fail(z, -EPROTO, "a multipart message: the peer is not a Rift writer");
			return;
		}
		nm_begin(&z->ns, &z->cur, zmq_msg_data(&z->msg), zmq_msg_size(&z->msg));
	}
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
	drain_monitor(z);
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
	for (int i = 0; i < 16; i++) {
		drain_monitor(z);
		send_ack(z);
		fill(z);
		int ev = zevents(z->sock), mev = zevents(z->mon);
		if (z->pl)
			return NP_IN;
		if (z->ns.done)
			return NP_IN | NP_HUP;
		if (!(ev & ZMQ_POLLIN) && !(mev & ZMQ_POLLIN))
			return 0;
		/* Something came between the last recv and ZMQ_EVENTS, which
		 * took the fd's signal: look again. */
	}
	host->set_timer(p, 1);
	return 0;
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
	return flush(z);
}

static int writer_close(struct zp *z)
{
	for (int i = 0; i < 4; i++) {
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
		if (z->fail)
			return z->fail;
		return z->has_pend && z->pend_is_data ? (int)zmq_msg_size(&z->pend) - NF_HDR : 0;
	}
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
	.caps = NP_CAP_ETAG | NP_CAP_REMOTE,
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
