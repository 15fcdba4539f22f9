/*
 * nng.c - netpipes over nng (push0/pull0), with pipe semantics.
 *
 * Address: an nng URL (tcp://HOST:PORT, ipc:///path, inproc://name), with
 * options:
 *   listen=reader|writer  which end listens (default reader: the reader
 *                         listens, the writer dials and retries)
 *   connect_timeout=MS    the dialing end gives up (-ETIMEDOUT) when no
 *                         peer appeared within MS milliseconds (default:
 *                         never; the manifest's Timeout still bounds it)
 *
 * The reader is a pull0 socket, the writer a push0 socket. Each end takes
 * the first peer pipe nng reports and closes any later one, so a pipe has
 * one writer and one reader. Peer presence comes from nng's pipe
 * notifications (ADD_POST, REM_POST), which run on nng's threads: they
 * record the peer's state in a link under one global mutex and signal the
 * pipe's eventfd, nothing else (an fd of our own rather than host->wake(),
 * so that a signal can never outlive the pipe: close() detaches the link
 * under the mutex and the broker drops the watch). Messages and send room
 * come the same way: each end runs one nng_aio (the writer's sends, the
 * reader's receives, ahead of the loop), whose completion signals the
 * eventfd only when the loop waits for it.
 *
 * The stream is framed with msgframe.h: the first message starts with the
 * preamble, messages carry whole DATA frames, the last one carries END (with
 * the digest when etag). Small writes are coalesced: a write while nothing
 * is under way goes to nng at once, from the loop's thread (send_direct);
 * while nng is busy, later writes are packed into the one held message (up
 * to PACK_MAX bytes) that goes as soon as nng has room. So an idle writer
 * adds no latency and a busy one sends big messages.
 *
 * Rule 5 over a message library: nng drops what a pipe holds when the pipe
 * closes, so the writer may not close after END as soon as nng took it. The
 * reader closes the pipe once it has consumed END; the writer's clean close
 * completes when it sees that (REM_POST after END was sent). A pipe that
 * goes away before END is -ECONNRESET for the reader, -EPIPE for the writer.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/supplemental/tls/tls.h>

#include "msgframe.h"
#include "netpipe.h"
#include "options.h"

/* Bytes of one message, and so of one frame. Below glibc's mmap threshold
 * (128 KiB): larger messages cost both ends an mmap, page faults and an
 * munmap each, and made 64 KiB writes 40% slower than raw nng. */
#define PACK_MAX       (64u * 1024u + NF_HDR)
#define FRAME_MAX      (PACK_MAX - NF_HDR)
#define RECV_MAX       (4u * 1024u * 1024u)          /* the largest message taken */
#define SEND_QUEUE     4   /* messages push0 queues while its pipe is busy */
#define RECV_AHEAD     4   /* messages the reader's aio takes ahead of the loop */
#define NO_REDIAL_MS   (24 * 3600 * 1000)
#define PROBE_MS       250 /* tls reader: how often a waiting reader looks */
#define RECONN_MIN_MS  10
#define RECONN_MAX_MS  100
#define URL_MAX        256

enum { PEER_NONE, PEER_UP, PEER_GONE };

/*
 * What nng's threads tell the loop. Links live in a table that only grows
 * (slots are reused, never freed before fini); a callback's argument is the
 * slot number and a generation, so a late callback for a closed pipe finds
 * a newer generation and does nothing.
 */
struct link {
	uint32_t gen;
	struct np_pipe *pipe;  /* NULL while the slot is free */
	int evfd;              /* the pipe's eventfd: "look at me" */
	/* Written under g_mu by the callbacks; the loop reads them without
	 * it, so a callback preempted inside g_mu never stalls an op. */
	_Atomic uint32_t peer; /* the accepted peer pipe's id, 0 before */
	_Atomic int state;     /* PEER_* */
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static struct link **g_links;
static uint32_t g_nlinks;

static const struct np_host *host;

struct nn {
	struct np_pipe *pipe;
	uint32_t mode;
	uint32_t slot, gen;     /* our link */
	struct link *lk;
	bool have_link;
	int evfd;
	nng_socket sock;
	bool sock_open;
	nng_dialer dialer;
	nng_listener listener;
	bool have_dialer, have_listener;
	bool we_listen;
	int64_t deadline;       /* connect_timeout, or -1 */
	_Atomic uint32_t sig_pending; /* evfd writes not read yet (signal_fd) */
	char url[URL_MAX];
	struct nm_stream ns;
	bool ns_init;
	int err;                /* sticky -errno of this end */
	/* writer: the loop's */
	bool started;           /* the preamble is in pend or sent */
	bool end_queued;        /* END is in pend, under way or sent */
	/* shared with send_done / recv_done (nng's threads), under mu */
	pthread_mutex_t mu;
	bool mu_init;
	/* writer */
	nng_aio *aio;           /* the one send under way */
	nng_aio *daio;          /* direct sends: no callback, no wait */
	_Atomic bool inflight;  /* aio carries a message */
	bool inflight_end;      /* ... and END is in it */
	bool want_signal;       /* the loop waits for send_done */
	_Atomic bool poke;      /* the loop found mu taken: signal it */
	_Atomic bool end_sent;  /* END was handed to a pipe */
	_Atomic int send_err;   /* nng error of a send, sticky */
	nng_msg *pend;          /* accepted, waiting for the aio */
	size_t pend_payload;
	/* reader: filled by recv_done, under mu */
	nng_aio *raio;          /* the one receive, posted while rq has room */
	nng_msg *rq[RECV_AHEAD]; /* received, in order, not yet parsed */
	unsigned rq_head, rq_len;
	bool rposted;           /* raio is posted (its callback has not run) */
	bool rcancel;           /* the loop cancelled raio (the peer is gone) */
	int rerr;               /* nng error of a receive, sticky */
	/* reader: the loop's */
	nng_msg *rmsg;          /* the message being read */
	struct nm_cursor cur;
	const unsigned char *pl;
	size_t pl_left;
	bool hung_up;           /* we closed the peer after the end */
	bool tls;               /* tls+tcp: probe the peer while waiting */
	int64_t probe_due;      /* tls: the next probe_peer, ms */
	uint32_t msg_peer;      /* the pipe the last message came through */
	char errmsg[640];
};

static int nng_errno(int rv)
{
	if (rv & NNG_ESYSERR)
		return -(rv & ~NNG_ESYSERR);
	switch (rv) {
	case 0: return 0;
	case NNG_EAGAIN: return -EAGAIN;
	case NNG_ENOMEM: return -ENOMEM;
	case NNG_EINVAL: return -EINVAL;
	case NNG_EADDRINVAL: return -EINVAL;
	case NNG_EADDRINUSE: return -EADDRINUSE;
	case NNG_ECONNREFUSED: return -ECONNREFUSED;
	case NNG_ECONNRESET: return -ECONNRESET;
	case NNG_ECONNSHUT: return -ECONNRESET;
	case NNG_ECLOSED: return -EPIPE;
	case NNG_ETIMEDOUT: return -ETIMEDOUT;
	case NNG_EPERM: return -EACCES;
	case NNG_ENOENT: return -ENOENT;
	case NNG_ENOTSUP: return -ENOTSUP;
	case NNG_EPROTO: return -EPROTO;
	case NNG_EMSGSIZE: return -EMSGSIZE;
	case NNG_EUNREACHABLE: return -EHOSTUNREACH;
	case NNG_ENOSPC: return -ENOSPC;
	case NNG_EPEERAUTH: return -EACCES;
	case NNG_ECRYPTO: return -EPROTO;
	default: return -EIO;
	}
}

static int fail(struct nn *n, int rc, const char *what, int nrv)
{
	snprintf(n->errmsg, sizeof n->errmsg, "%s %s: %s", what, n->url,
	         nrv ? nng_strerror(nrv) : strerror(-rc));
	return rc;
}

/* ---- links: what the callbacks record ---- */

static void *link_arg(uint32_t slot, uint32_t gen)
{
	return (void *)(uintptr_t)((uint64_t)gen << 20 | slot);
}

/* Write the pipe's eventfd. sig_pending counts the writes the loop has
 * not read yet, raised before each write: the loop reads the eventfd only
 * while it is above 0 (drain), so most ready() calls cost no syscall (the
 * reader used to make two failed reads a message), and a write that
 * lands after the loop looked keeps it above 0 until it is read. */
static void signal_fd(int fd, _Atomic uint32_t *pending)
{
	atomic_fetch_add(pending, 1);
	uint64_t one = 1;
	ssize_t r = write(fd, &one, sizeof one);
	(void)r; /* EAGAIN: the counter is full, so it is readable anyway */
}

static void signal_loop(struct link *l)
{
	struct nn *n = l->pipe->state; /* attached: g_mu is held */
	signal_fd(l->evfd, &n->sig_pending);
}

static void pipe_event(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	uint64_t a = (uintptr_t)arg;
	uint32_t slot = (uint32_t)(a & 0xfffff), gen = (uint32_t)(a >> 20);
	uint32_t id = (uint32_t)nng_pipe_id(p);
	bool reject = false;
	pthread_mutex_lock(&g_mu);
	struct link *l = slot < g_nlinks ? g_links[slot] : NULL;
	if (l && l->pipe && (l->gen & 0xfffffu) == (gen & 0xfffffu)) {
		switch (ev) {
		case NNG_PIPE_EV_ADD_PRE:
			reject = l->state != PEER_NONE;
			break;
		case NNG_PIPE_EV_ADD_POST:
			if (l->state == PEER_NONE) {
				l->peer = id;
				l->state = PEER_UP;
				signal_loop(l);
			} else {
				reject = id != l->peer;
			}
			break;
		case NNG_PIPE_EV_REM_POST:
			if (l->state == PEER_UP && id == l->peer) {
				l->state = PEER_GONE;
				signal_loop(l);
			}
			break;
		default:
			break;
		}
	}
	pthread_mutex_unlock(&g_mu);
	if (reject) /* one peer per netpipe: turn a second one away */
		nng_pipe_close(p);
}

static int link_new(struct nn *n)
{
	int rc = 0;
	pthread_mutex_lock(&g_mu);
	uint32_t i;
	for (i = 0; i < g_nlinks; i++)
		if (!g_links[i]->pipe)
			break;
	if (i == g_nlinks) {
		struct link **t = realloc(g_links, (g_nlinks + 1) * sizeof *t);
		struct link *l = calloc(1, sizeof *l);
		if (t)
			g_links = t;
		if (!t || !l || g_nlinks >= 0xfffff) {
			free(l);
			rc = -ENOMEM;
			goto out;
		}
		g_links[g_nlinks++] = l;
	}
	struct link *l = g_links[i];
	l->gen = (l->gen + 1) & 0xfffu;
	l->pipe = n->pipe;
	l->peer = 0;
	l->state = PEER_NONE;
	l->evfd = n->evfd;
	n->slot = i;
	n->gen = l->gen;
	n->lk = l;
	n->have_link = true;
out:
	pthread_mutex_unlock(&g_mu);
	return rc;
}

static int peer_state(struct nn *n, uint32_t *peer)
{
	struct link *l = n->lk;
	if (peer)
		*peer = atomic_load(&l->peer);
	return atomic_load(&l->state);
}

static void link_release(struct nn *n)
{
	if (!n->have_link)
		return;
	pthread_mutex_lock(&g_mu);
	g_links[n->slot]->pipe = NULL; /* no signal for this pipe from now on */
	g_links[n->slot]->evfd = -1;
	pthread_mutex_unlock(&g_mu);
	n->have_link = false;
}

/* ---- addresses ---- */

struct addr {
	char url[URL_MAX];
	bool writer_listens;
	bool tls;
	int64_t timeout;
	char ca[128], cert[128]; /* tls: PEM files */
};

static int parse(const char *address, struct addr *a, char *err, size_t errlen)
{
	static const char *const allowed[] = {"listen", "connect_timeout", "ca", "cert", NULL};
	struct no_opts o;
	int rc = no_parse(address, a->url, sizeof a->url, &o, allowed, err, errlen);
	if (rc < 0)
		return rc;
	const char *ls = no_get(&o, "listen");
	if (ls && strcmp(ls, "reader") != 0 && strcmp(ls, "writer") != 0) {
		snprintf(err, errlen, "listen=%s: expected listen=reader or listen=writer", ls);
		return -EINVAL;
	}
	a->writer_listens = ls && strcmp(ls, "writer") == 0;
	if ((rc = no_get_int(&o, "connect_timeout", -1, &a->timeout, err, errlen)) < 0)
		return rc;
	nng_url *u;
	int nrv = nng_url_parse(&u, a->url);
	if (nrv != 0) {
		snprintf(err, errlen, "%s: not an nng URL (%s)", a->url, nng_strerror(nrv));
		return -EINVAL;
	}
	char s[32];
	snprintf(s, sizeof s, "%s", u->u_scheme); /* u is freed below */
	a->tls = strcmp(s, "tls+tcp") == 0 || strcmp(s, "tls+tcp4") == 0 ||
	         strcmp(s, "tls+tcp6") == 0;
	bool ok = strcmp(s, "tcp") == 0 || strcmp(s, "tcp4") == 0 || strcmp(s, "tcp6") == 0 ||
	          strcmp(s, "ipc") == 0 || strcmp(s, "inproc") == 0 || a->tls;
	bool tcp = strncmp(s, "tcp", 3) == 0 || a->tls;
	bool ipc = strcmp(s, "ipc") == 0;
	char *end = NULL;
	long port = ok && tcp && u->u_port && *u->u_port ? strtol(u->u_port, &end, 10) : 0;
	if (ok && tcp && (!end || *end || port < 1 || port > 65535)) {
		snprintf(err, errlen, "%s: a tcp address needs HOST:PORT with a port of 1-65535",
		         a->url);
		nng_url_free(u);
		return -EINVAL;
	}
	if (ok && ipc && (!u->u_path || !*u->u_path)) {
		snprintf(err, errlen, "%s: an ipc address needs a path (ipc:///path)", a->url);
		nng_url_free(u);
		return -EINVAL;
	}
	nng_url_free(u);
	if (!ok) {
		snprintf(err, errlen,
		         "%s: scheme '%s' is not supported (tcp://, tls+tcp://, ipc://, inproc://)",
		         a->url, s);
		return -EINVAL;
	}
	/* TLS: both ends prove who they are (mutual authentication): each
	 * names the CA it trusts and its own certificate with key. */
	const char *ca = no_get(&o, "ca"), *cert = no_get(&o, "cert");
	if (!a->tls && (ca || cert)) {
		snprintf(err, errlen, "ca= and cert= are options of tls+tcp:// only");
		return -EINVAL;
	}
	if (a->tls) {
		if (!ca || !cert || !*ca || !*cert) {
			snprintf(err, errlen, "tls+tcp:// needs ca=FILE (the CA that signs the peer) "
			         "and cert=FILE (this end's certificate and key, PEM)");
			return -EINVAL;
		}
		if (strlen(ca) >= sizeof a->ca || strlen(cert) >= sizeof a->cert) {
			snprintf(err, errlen, "ca= or cert=: path too long");
			return -ENAMETOOLONG;
		}
		snprintf(a->ca, sizeof a->ca, "%s", ca);
		snprintf(a->cert, sizeof a->cert, "%s", cert);
		const char *files[2] = {a->ca, a->cert};
		for (int i = 0; i < 2; i++)
			if (access(files[i], R_OK) != 0) {
				int e = errno;
				snprintf(err, errlen, "%s: %s", files[i], strerror(e));
				return -e;
			}
	}
	return 0;
}

static int nn_validate(const char *address, uint32_t mode, char *err, size_t errlen)
{
	struct addr a;
	if (mode == NP_RDWR) {
		snprintf(err, errlen, "an nng netpipe is read-only or write-only");
		return -EINVAL;
	}
	return parse(address, &a, err, errlen);
}

/* ---- open ---- */

static void send_done(void *arg);
static void recv_done(void *arg);

/* TLS on a listener or dialer: trust ca, present cert, and require the
 * peer's certificate (mutual TLS): a peer without one the CA signed never
 * becomes a pipe. */
static int tls_setup(struct nn *n, const struct addr *a, uint32_t ep, bool listener)
{
	nng_tls_config *cfg;
	int nrv = nng_tls_config_alloc(&cfg, listener ? NNG_TLS_MODE_SERVER : NNG_TLS_MODE_CLIENT);
	if (nrv != 0)
		return fail(n, nng_errno(nrv), "TLS for", nrv);
	const char *what = "TLS CA file for";
	if ((nrv = nng_tls_config_ca_file(cfg, a->ca)) == 0) {
		what = "TLS certificate/key file for";
		nrv = nng_tls_config_cert_key_file(cfg, a->cert, NULL);
	}
	if (nrv == 0) {
		what = "TLS for";
		nrv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED);
	}
	if (nrv == 0) {
		if (listener) {
			nng_listener l = NNG_LISTENER_INITIALIZER;
			l.id = ep;
			nrv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, cfg);
		} else {
			nng_dialer d = NNG_DIALER_INITIALIZER;
			d.id = ep;
			nrv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg);
		}
	}
	nng_tls_config_free(cfg); /* the endpoint holds its own reference */
	if (nrv != 0) {
		int rc = nng_errno(nrv);
		snprintf(n->errmsg, sizeof n->errmsg, "%s %s: %s (ca=%s, cert=%s)", what, n->url,
		         nng_strerror(nrv), a->ca, a->cert);
		return rc;
	}
	return 0;
}

static int nn_open(struct np_pipe *p, const struct np_open_args *args)
{
	struct nn *n = p->state;
	struct addr a;
	n->pipe = p;
	n->mode = args->mode;
	n->evfd = -1;
	int rc = parse(args->address, &a, n->errmsg, sizeof n->errmsg);
	if (rc < 0)
		return rc;
	if (args->mode != NP_READ && args->mode != NP_WRITE) {
		snprintf(n->errmsg, sizeof n->errmsg, "an nng netpipe is read-only or write-only");
		return -EINVAL;
	}
	memcpy(n->url, a.url, sizeof n->url);
	n->tls = a.tls;
	n->deadline = a.timeout >= 0 ? host->now_ms(host) + a.timeout : -1;
	if ((rc = nm_init(&n->ns, (int)args->etag)) < 0)
		return rc;
	n->ns_init = true;
	n->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (n->evfd < 0)
		return fail(n, -errno, "eventfd for", 0);
	if ((rc = host->watch_fd(p, n->evfd, NP_IN)) < 0)
		return rc;
	if ((rc = link_new(n)) < 0)
		return rc;

	bool reader = args->mode == NP_READ;
	int nrv = reader ? nng_pull0_open(&n->sock) : nng_push0_open(&n->sock);
	if (nrv != 0)
		return fail(n, nng_errno(nrv), "socket for", nrv);
	n->sock_open = true;
	void *arg = link_arg(n->slot, n->gen);
	if ((nrv = nng_pipe_notify(n->sock, NNG_PIPE_EV_ADD_PRE, pipe_event, arg)) != 0 ||
	    (nrv = nng_pipe_notify(n->sock, NNG_PIPE_EV_ADD_POST, pipe_event, arg)) != 0 ||
	    (nrv = nng_pipe_notify(n->sock, NNG_PIPE_EV_REM_POST, pipe_event, arg)) != 0)
		return fail(n, nng_errno(nrv), "pipe notifications for", nrv);
	nng_socket_set_ms(n->sock, NNG_OPT_RECONNMINT, RECONN_MIN_MS);
	nng_socket_set_ms(n->sock, NNG_OPT_RECONNMAXT, RECONN_MAX_MS);
	if (reader)
		nng_socket_set_size(n->sock, NNG_OPT_RECVMAXSZ, RECV_MAX);
	else
		nng_socket_set_int(n->sock, NNG_OPT_SENDBUF, SEND_QUEUE);
	/* Neither end polls nng's NNG_OPT_RECVFD / NNG_OPT_SENDFD: each runs
	 * one aio whose completion, on nng's thread, signals our eventfd when
	 * the loop waits for it. */
	if (pthread_mutex_init(&n->mu, NULL) != 0)
		return -ENOMEM;
	n->mu_init = true;
	nrv = reader ? nng_aio_alloc(&n->raio, recv_done, n) : nng_aio_alloc(&n->aio, send_done, n);
	if (nrv == 0 && !reader && (nrv = nng_aio_alloc(&n->daio, NULL, NULL)) == 0)
		nng_aio_set_timeout(n->daio, NNG_DURATION_ZERO);
	if (nrv != 0)
		return fail(n, nng_errno(nrv), "aio for", nrv);

	n->we_listen = reader != a.writer_listens;
	if (n->we_listen) {
		nrv = nng_listener_create(&n->listener, n->sock, n->url);
		if (nrv != 0)
			return fail(n, nng_errno(nrv), "listen on", nrv);
		n->have_listener = true;
		if (a.tls && (rc = tls_setup(n, &a, n->listener.id, true)) < 0)
			return rc;
		nrv = nng_listener_start(n->listener, 0);
		if (nrv != 0)
			return fail(n, nng_errno(nrv), "listen on", nrv);
	} else {
		nrv = nng_dialer_create(&n->dialer, n->sock, n->url);
		if (nrv != 0)
			return fail(n, nng_errno(nrv), "dial", nrv);
		n->have_dialer = true;
		if (a.tls && (rc = tls_setup(n, &a, n->dialer.id, false)) < 0)
			return rc;
		nrv = nng_dialer_start(n->dialer, NNG_FLAG_NONBLOCK);
		if (nrv != 0)
			return fail(n, nng_errno(nrv), "dial", nrv);
		if (n->deadline >= 0)
			host->set_timer(p, a.timeout);
	}
	if (reader) {
		n->rposted = true;
		nng_recv_aio(n->sock, n->raio);
	}
	return 0;
}

/* The dialing end gives up after connect_timeout without a peer. */
static void check_deadline(struct nn *n, int state)
{
	if (state != PEER_NONE || n->deadline < 0 || n->err)
		return;
	int64_t now = host->now_ms(host);
	if (now < n->deadline) {
		host->set_timer(n->pipe, n->deadline - now);
		return;
	}
	snprintf(n->errmsg, sizeof n->errmsg, "no peer appeared at %s within connect_timeout",
	         n->url);
	n->err = -ETIMEDOUT;
	if (n->mode == NP_READ && n->ns.done == 0)
		n->ns.done = -ETIMEDOUT;
}

/* ---- writer ---- */

/* The loop takes mu only if it is free: send_done may hold it, and an
 * op must not wait for a thread that was preempted. When it is taken,
 * poke asks send_done (the only other user) to signal the eventfd after
 * it lets go; the second try closes the race with that check. */
static bool loop_lock(struct nn *n)
{
	if (pthread_mutex_trylock(&n->mu) == 0)
		return true;
	atomic_store(&n->poke, true);
	return pthread_mutex_trylock(&n->mu) == 0;
}

static void drain(struct nn *n)
{
	if (atomic_load(&n->sig_pending) == 0)
		return; /* every write was read: the eventfd is not readable */
	uint64_t v;
	if (read(n->evfd, &v, sizeof v) == (ssize_t)sizeof v)
		atomic_fetch_sub(&n->sig_pending, (uint32_t)v);
}

/*
 * The send chain. One nng_aio carries one message at a time; while it is
 * under way, writes pack into pend. Its completion (on an nng thread)
 * hands pend to the aio at once, under n->mu, so accepted bytes keep
 * going without the loop, as bytes in a kernel buffer do (libnetpipe's
 * blocking write may return while they are in pend). It touches nothing
 * of the broker's: it signals our eventfd when the loop may care.
 */
static void send_done(void *arg)
{
	struct nn *n = arg;
	int rv = nng_aio_result(n->aio);
	nng_msg *next = NULL;
	pthread_mutex_lock(&n->mu);
	if (rv != 0) {
		nng_msg_free(nng_aio_get_msg(n->aio));
		nng_aio_set_msg(n->aio, NULL);
		n->send_err = rv;
		n->inflight = false;
	} else {
		if (n->inflight_end)
			n->end_sent = true;
		n->inflight_end = false;
		if (n->pend) {
			next = n->pend;
			n->inflight_end = n->end_queued;
			n->pend = NULL;
			n->pend_payload = 0;
		} else {
			n->inflight = false;
		}
	}
	/* Tell the loop only when it waits for this (a full pend, END). */
	bool tell = n->want_signal || rv != 0;
	n->want_signal = false;
	pthread_mutex_unlock(&n->mu);
	if (atomic_exchange(&n->poke, false))
		tell = true;
	if (next) {
		nng_aio_set_msg(n->aio, next);
		nng_send_aio(n->sock, n->aio);
	}
	if (tell)
		signal_fd(n->evfd, &n->sig_pending);
}

/* Start sending pend if nothing is under way. Called with n->mu held;
 * returns the message the caller hands to the aio after unlocking. */
static nng_msg *kick_locked(struct nn *n)
{
	if (n->inflight || !n->pend)
		return NULL;
	nng_msg *m = n->pend;
	n->inflight = true;
	n->inflight_end = n->end_queued;
	n->pend = NULL;
	n->pend_payload = 0;
	return m;
}

static void kick_send(struct nn *n, nng_msg *m)
{
	if (m) {
		nng_aio_set_msg(n->aio, m);
		nng_send_aio(n->sock, n->aio);
	}
}

/* Room in pend for need more bytes: grow its capacity by doubling.
 * n->mu held. */
static int pend_grow(struct nn *n, size_t need)
{
	if (!n->pend) {
		size_t cap = need < 4096 ? 4096 : need;
		int nrv = nng_msg_alloc(&n->pend, cap);
		if (nrv == 0)
			nng_msg_clear(n->pend);
		if (nrv != 0) {
			if (n->pend)
				nng_msg_free(n->pend);
			n->pend = NULL;
			return nng_errno(nrv);
		}
		return 0;
	}
	size_t len = nng_msg_len(n->pend), cap = nng_msg_capacity(n->pend);
	if (len + need <= cap)
		return 0;
	size_t ncap = cap * 2 > len + need ? cap * 2 : len + need;
	return nng_errno(nng_msg_reserve(n->pend, ncap));
}

/* Append bytes to pend (n->mu held). */
static int pend_append(struct nn *n, const void *bytes, size_t len)
{
	int rc = pend_grow(n, len);
	if (rc < 0)
		return rc;
	size_t off = nng_msg_len(n->pend);
	nng_msg_realloc(n->pend, off + len);
	memcpy((unsigned char *)nng_msg_body(n->pend) + off, bytes, len);
	return 0;
}

/* Payload room in pend for one more frame (n->mu held); while nothing is
 * under way a write starts a new message at once. */
static size_t pend_room(struct nn *n)
{
	size_t len = n->pend ? nng_msg_len(n->pend) : 0;
	return len + NF_HDR < PACK_MAX ? PACK_MAX - len - NF_HDR : 0;
}

/* Learn what the callbacks recorded and act on it. */
static int w_progress(struct nn *n)
{
	int st = peer_state(n, NULL);
	int send_err = atomic_load(&n->send_err);
	bool end_sent = atomic_load(&n->end_sent), busy = atomic_load(&n->inflight);
	if (send_err && !n->err)
		n->err = fail(n, nng_errno(send_err), "send to", send_err);
	if (st == PEER_GONE && !end_sent && !n->err && !(busy && n->end_queued)) {
		snprintf(n->errmsg, sizeof n->errmsg, "%s: the reader went away", n->url);
		n->err = -EPIPE;
	}
	if (n->err && n->have_dialer) {
		nng_dialer_close(n->dialer); /* stop redialing a reader that left */
		n->have_dialer = false;
	}
	check_deadline(n, st);
	if (st == PEER_UP && !n->started && !n->err && n->have_dialer) {
		/* One peer per pipe: once it is here, the dialer must not dial
		 * again when it leaves (a second pipe is refused anyway, and nng
		 * 1.5.2 leaks the pipes a callback refuses). */
		nng_dialer_set_ms(n->dialer, NNG_OPT_RECONNMINT, NO_REDIAL_MS);
		nng_dialer_set_ms(n->dialer, NNG_OPT_RECONNMAXT, NO_REDIAL_MS);
	}
	if (st == PEER_UP && !n->started && !n->err) {
		/* The preamble goes at once: a writer that dies before its first
		 * write still reads as a reset. */
		unsigned char pre[NF_PREAMBLE];
		nm_preamble(&n->ns, pre);
		if (!loop_lock(n))
			return st; /* send_done signals; the next op starts it */
		int rc = pend_append(n, pre, sizeof pre);
		nng_msg *m = rc < 0 ? NULL : kick_locked(n);
		pthread_mutex_unlock(&n->mu);
		if (rc < 0)
			return n->err = rc;
		kick_send(n, m);
		n->started = true;
	}
	return st;
}

/*
 * An idle writer's write: nothing is under way, so the message goes to nng
 * from this thread, on an aio without a callback and with a zero timeout
 * (what nng_sendmsg(NNG_FLAG_NONBLOCK) does, without allocating an aio
 * each time). push0 takes it into its queue or onto the pipe at once, and
 * no nng thread is woken to run a completion: that hand-off cost a round
 * trip two thread switches. When push0 has no room the message becomes
 * pend and the send chain takes it (send_done tells the loop).
 */
static ssize_t send_direct(struct nn *n, const void *buf, size_t k)
{
	nng_msg *m;
	int nrv = nng_msg_alloc(&m, NF_HDR + k);
	if (nrv != 0)
		return n->err = nng_errno(nrv);
	nm_pack(&n->ns, nng_msg_body(m), buf, k);
	nng_aio_set_msg(n->daio, m);
	nng_send_aio(n->sock, n->daio);
	nng_aio_wait(n->daio);
	nrv = nng_aio_result(n->daio);
	if (nrv == 0)
		return (ssize_t)k; /* nng has it */
	nng_aio_set_msg(n->daio, NULL);
	if (nrv != NNG_ETIMEDOUT && nrv != NNG_EAGAIN) {
		nng_msg_free(m);
		return n->err = fail(n, nng_errno(nrv), "send to", nrv);
	}
	/* No room: the send chain carries it. The loop alone starts
	 * sends, and nothing was under way, so it starts now. */
	pthread_mutex_lock(&n->mu);
	n->pend = m;
	n->pend_payload = k;
	nng_msg *go = kick_locked(n);
	pthread_mutex_unlock(&n->mu);
	kick_send(n, go);
	return (ssize_t)k;
}

static ssize_t nn_write(struct np_pipe *p, const void *buf, size_t len)
{
	struct nn *n = p->state;
	if (n->mode != NP_WRITE)
		return -EBADF;
	if (len == 0)
		return 0;
	w_progress(n);
	if (n->err)
		return n->err;
	if (!n->started || n->end_queued)
		return -EAGAIN; /* ADD_POST signals us */
	size_t k = len < FRAME_MAX ? len : FRAME_MAX;
	if (!loop_lock(n))
		return -EAGAIN;
	if (pend_room(n) == 0) {
		/* About to wait: empty the eventfd first, so that it fires
		 * only for the send_done asked for below. */
		pthread_mutex_unlock(&n->mu);
		drain(n);
		if (!loop_lock(n))
			return -EAGAIN;
	}
	size_t room = pend_room(n);
	if (room == 0) {
		n->want_signal = true; /* send_done signals when it takes pend */
		pthread_mutex_unlock(&n->mu);
		return -EAGAIN;
	}
	if (k > room)
		k = room;
	if (!n->inflight && !n->pend) {
		pthread_mutex_unlock(&n->mu);
		return send_direct(n, buf, k);
	}
	/* A message that will wait (a send is under way) gets room for the
	 * writes that follow at once; one that goes now, its exact size. */
	int rc = pend_grow(n, n->inflight && !n->pend ? PACK_MAX : NF_HDR + k);
	if (rc == 0) {
		size_t off = nng_msg_len(n->pend);
		nng_msg_realloc(n->pend, off + NF_HDR + k);
		nm_pack(&n->ns, (unsigned char *)nng_msg_body(n->pend) + off, buf, k);
		n->pend_payload += k;
	}
	/* Send at once when nothing is under way; otherwise this write rides
	 * in the next message, which send_done starts. */
	nng_msg *m = rc < 0 ? NULL : kick_locked(n);
	pthread_mutex_unlock(&n->mu);
	if (rc < 0)
		return n->err = rc;
	kick_send(n, m);
	return (ssize_t)k;
}

static uint32_t w_ready(struct nn *n)
{
	w_progress(n);
	if (n->err)
		return NP_OUT | NP_ERR;
	if (!n->started || n->end_queued)
		return 0;
	if (!loop_lock(n))
		return 0;
	size_t room = pend_room(n);
	if (room == 0)
		n->want_signal = true;
	pthread_mutex_unlock(&n->mu);
	return room > 0 ? NP_OUT : 0;
}

/* ---- reader ---- */

/* The peer is done with: after the end (or a broken stream), hang up so a
 * writer waiting in its clean close learns that END arrived. */
static void hang_up(struct nn *n)
{
	if (n->hung_up)
		return;
	n->hung_up = true;
	/* The pipe END came through: its ADD_POST may not even have run yet
	 * (nng starts receiving on a pipe before it tells us about it). */
	uint32_t peer = 0;
	peer_state(n, &peer);
	uint32_t ids[2] = {n->msg_peer, peer};
	for (int i = 0; i < 2; i++) {
		if (ids[i] == 0 || (i == 1 && ids[1] == ids[0]))
			continue;
		nng_pipe np = NNG_PIPE_INITIALIZER;
		np.id = ids[i];
		nng_pipe_close(np);
	}
	if (n->have_dialer) {
		nng_dialer_close(n->dialer);
		n->have_dialer = false;
	}
}

/*
 * The receive chain. One nng_aio receives ahead of the loop, up to
 * RECV_AHEAD messages; its completion (on an nng thread) queues the
 * message, posts the next receive at once while there is room, and
 * signals our eventfd only when the loop waits for a message. So the
 * loop makes no nng call for a message that is already here (no
 * nng_recvmsg, whose aio and NNG_OPT_RECVFD pipe cost the loop a lock
 * hand-off and two syscalls per message), and a busy reader is never
 * woken.
 */
static void recv_done(void *arg)
{
	struct nn *n = arg;
	int rv = nng_aio_result(n->raio);
	nng_msg *m = rv == 0 ? nng_aio_get_msg(n->raio) : NULL;
	nng_aio_set_msg(n->raio, NULL);
	bool repost = false;
	pthread_mutex_lock(&n->mu);
	if (m) {
		n->rq[(n->rq_head + n->rq_len) % RECV_AHEAD] = m;
		n->rq_len++;
		repost = n->rq_len < RECV_AHEAD && !n->rcancel;
	} else if (rv != 0 && !(rv == NNG_ECANCELED && n->rcancel) && !n->rerr) {
		n->rerr = rv;
	}
	n->rposted = repost;
	bool tell = n->want_signal || rv != 0;
	n->want_signal = false;
	pthread_mutex_unlock(&n->mu);
	if (atomic_exchange(&n->poke, false))
		tell = true;
	if (repost)
		nng_recv_aio(n->sock, n->raio);
	if (tell)
		signal_fd(n->evfd, &n->sig_pending);
}

/* The next message: 0 with *m, NNG_EAGAIN (recv_done signals when one
 * comes), or an nng error. Once the peer is gone the aio is cancelled
 * (gone_check) and what nng still holds is taken without it. */
static int r_take(struct nn *n, nng_msg **m)
{
	if (!loop_lock(n))
		return NNG_EAGAIN; /* recv_done holds mu: it signals (poke) */
	int rv = NNG_EAGAIN;
	bool repost = false, nonblock = false;
	if (n->rq_len) {
		*m = n->rq[n->rq_head];
		n->rq[n->rq_head] = NULL;
		n->rq_head = (n->rq_head + 1) % RECV_AHEAD;
		n->rq_len--;
		rv = 0;
		if (!n->rposted && !n->rcancel && !n->rerr)
			n->rposted = repost = true; /* the queue was full */
	} else if (n->rerr) {
		rv = n->rerr;
	} else if (n->rcancel && !n->rposted) {
		nonblock = true; /* the aio is done with: ask nng directly */
	} else {
		n->want_signal = true;
	}
	pthread_mutex_unlock(&n->mu);
	if (repost)
		nng_recv_aio(n->sock, n->raio);
	if (nonblock)
		rv = nng_recvmsg(n->sock, m, NNG_FLAG_NONBLOCK);
	return rv;
}

/* The peer's pipe is gone and r_take found nothing: 1 when every message
 * it sent has been taken (the stream ended without END), -1 to call
 * r_take again, 0 while the aio may still bring one (it is cancelled
 * here; recv_done signals). */
static int gone_check(struct nn *n)
{
	if (!loop_lock(n))
		return 0;
	int rc = 0;
	bool cancel = false;
	if (n->rq_len) {
		rc = -1; /* take those first */
	} else if (n->rposted && !n->rcancel) {
		/* nng may have completed it with the last message already:
		 * then the cancel does nothing and recv_done queues it. */
		n->rcancel = cancel = true;
		n->want_signal = true;
	} else if (!n->rposted && !n->rcancel) {
		n->rcancel = true;
		rc = -1; /* r_take asks nng directly from now on */
	} else if (!n->rposted) {
		rc = 1; /* r_take asked nng directly and got EAGAIN */
	}
	pthread_mutex_unlock(&n->mu);
	if (cancel)
		nng_aio_cancel(n->raio);
	return rc;
}

/*
 * tls+tcp: a writer killed while our pipe had no receive posted (the
 * reader was behind, pull0 held a message) is never reported by nng
 * 1.5.2. Its TLS layer keeps a TCP receive of its own; when that one
 * fails it fails only the receives queued at that moment, closes the TCP
 * stream and its aio, but leaves the connection open: the pipe's next
 * receive is queued behind a TCP receive that can no longer complete, so
 * the pipe never closes and REM_POST never comes. What is left to see is
 * the TCP socket itself: nng shut it down, and the peer is gone, so its
 * remote address is gone too (getpeername: ENOTCONN). So while a TLS
 * reader waits with its peer up, it asks for the pipe's remote address at
 * once and then every PROBE_MS, and closes a pipe that has none: nng then
 * reports REM_POST, and the stream ends in -ECONNRESET as over tcp.
 * A live pipe always has one; no timeout decides anything.
 */
static void probe_peer(struct nn *n)
{
	int64_t now = host->now_ms(host);
	if (now < n->probe_due)
		return; /* the timer is set for probe_due */
	n->probe_due = now + PROBE_MS;
	host->set_timer(n->pipe, PROBE_MS);
	uint32_t peer = 0;
	peer_state(n, &peer);
	nng_pipe np = NNG_PIPE_INITIALIZER;
	np.id = peer;
	nng_sockaddr sa;
	int rv = nng_pipe_get_addr(np, NNG_OPT_REMADDR, &sa);
	if (rv != 0 && rv != NNG_ENOENT && rv != NNG_ECLOSED)
		nng_pipe_close(np); /* REM_POST follows, and signals us */
}

/* Make something readable if possible: 1 when a read returns now (data,
 * 0 or an error), 0 when it would be -EAGAIN. */
static int r_fill(struct nn *n)
{
	for (;;) {
		if (n->pl_left)
			return 1;
		if (n->ns.done) {
			if (n->rmsg) {
				nng_msg_free(n->rmsg);
				n->rmsg = NULL;
			}
			hang_up(n);
			return 1;
		}
		if (n->rmsg) {
			const unsigned char *pl;
			size_t plen;
			int r = nm_next(&n->ns, &n->cur, &pl, &plen);
			if (r == 1) {
				n->pl = pl;
				n->pl_left = plen;
				continue;
			}
			if (r < 0 || n->ns.done)
				continue;
			nng_msg_free(n->rmsg);
			n->rmsg = NULL;
		}
		nng_msg *m;
		int nrv = r_take(n, &m);
		if (nrv == 0) {
			n->rmsg = m;
			n->msg_peer = (uint32_t)nng_pipe_id(nng_msg_get_pipe(m));
			nm_begin(&n->ns, &n->cur, nng_msg_body(m), nng_msg_len(m));
			continue;
		}
		if (nrv != NNG_EAGAIN) {
			n->ns.done = fail(n, nng_errno(nrv), "receive from", nrv);
			continue;
		}
		int st = peer_state(n, NULL), gone = st == PEER_GONE ? gone_check(n) : 0;
		if (gone < 0)
			continue;
		if (gone > 0) {
			snprintf(n->ns.why, sizeof n->ns.why,
			         "the writer went away without closing the stream");
			n->ns.done = -ECONNRESET;
			continue;
		}
		check_deadline(n, st);
		if (n->ns.done)
			continue;
		if (st == PEER_UP && n->tls)
			probe_peer(n);
		return 0;
	}
}

static ssize_t nn_read(struct np_pipe *p, void *buf, size_t len)
{
	struct nn *n = p->state;
	if (n->mode != NP_READ)
		return -EBADF;
	if (len == 0)
		return 0;
	size_t got = 0;
	unsigned char *out = buf;
	/* Several frames per read: a coalesced message of small writes then
	 * costs the broker one read, not one per write. */
	while (got < len && r_fill(n) && n->pl_left) {
		size_t k = n->pl_left < len - got ? n->pl_left : len - got;
		memcpy(out + got, n->pl, k);
		nm_consumed(&n->ns, n->pl, k);
		n->pl += k;
		n->pl_left -= k;
		got += k;
	}
	if (got)
		return (ssize_t)got;
	if (!n->ns.done)
		return -EAGAIN;
	if (n->ns.done == 1)
		return 0;
	if (n->ns.why[0] && !n->errmsg[0])
		snprintf(n->errmsg, sizeof n->errmsg, "%s: %s", n->url, n->ns.why);
	return n->ns.done;
}

static uint32_t nn_ready(struct np_pipe *p)
{
	struct nn *n = p->state;
	drain(n); /* the state is read below */
	if (n->mode == NP_WRITE)
		return w_ready(n);
	if (!r_fill(n))
		return 0;
	if (n->pl_left)
		return NP_IN;
	return NP_IN | (n->ns.done == 1 ? NP_HUP : NP_HUP | NP_ERR);
}

/* ---- close ---- */

static void release(struct nn *n)
{
	host->set_timer(n->pipe, -1);
	link_release(n);
	if (n->sock_open)
		nng_close(n->sock); /* closes its dialer, listener and pipes */
	n->sock_open = n->have_dialer = n->have_listener = false;
	if (n->aio) {
		/* Wait for send_done; a message it handed to the stopped aio
		 * went nowhere, and is still ours. */
		nng_aio_stop(n->aio);
		nng_msg *m = nng_aio_get_msg(n->aio);
		if (m)
			nng_msg_free(m);
		nng_aio_free(n->aio);
	}
	n->aio = NULL;
	if (n->daio)
		nng_aio_free(n->daio); /* idle: send_direct waits for it */
	n->daio = NULL;
	if (n->raio) {
		nng_aio_stop(n->raio); /* recv_done has run for the last time */
		nng_msg *m = nng_aio_get_msg(n->raio);
		if (m)
			nng_msg_free(m);
		nng_aio_free(n->raio);
	}
	n->raio = NULL;
	for (; n->rq_len; n->rq_len--, n->rq_head = (n->rq_head + 1) % RECV_AHEAD)
		nng_msg_free(n->rq[n->rq_head]);
	if (n->evfd >= 0) {
		host->watch_fd(n->pipe, n->evfd, 0);
		close(n->evfd);
	}
	if (n->pend)
		nng_msg_free(n->pend);
	if (n->rmsg)
		nng_msg_free(n->rmsg);
	n->pend = n->rmsg = NULL;
	if (n->ns_init)
		nm_free(&n->ns);
	if (n->mu_init)
		pthread_mutex_destroy(&n->mu);
	n->ns_init = n->mu_init = false;
	n->evfd = -1;
}

/* The writer's clean close: 0 when done, -EAGAIN, or -errno. */
static int w_close(struct nn *n)
{
	int st = w_progress(n);
	if (n->err)
		return n->err;
	if (!n->started)
		return -EAGAIN; /* END goes even on an empty stream: wait */
	if (!n->end_queued) {
		unsigned char end[NF_HDR + NF_DIGEST];
		if (!loop_lock(n))
			return -EAGAIN;
		size_t el = nm_end(&n->ns, end); /* once: it finalizes the digest */
		int rc = pend_append(n, end, el);
		n->end_queued = rc == 0; /* send_done reads it: under mu */
		nng_msg *m = rc < 0 ? NULL : kick_locked(n);
		pthread_mutex_unlock(&n->mu);
		if (rc < 0)
			return rc;
		kick_send(n, m);
	}
	bool end_sent = atomic_load(&n->end_sent);
	if (!end_sent) {
		if (!loop_lock(n))
			return -EAGAIN;
		end_sent = atomic_load(&n->end_sent);
		n->want_signal = !end_sent;
		pthread_mutex_unlock(&n->mu);
	}
	/* END is with nng once end_sent; nng drops what a pipe holds when
	 * it closes, so wait until the reader hangs up (it does once it
	 * consumed END). send_done and REM_POST signal us. */
	if (!end_sent || st != PEER_GONE)
		return -EAGAIN;
	return 0;
}

static int nn_close(struct np_pipe *p, uint32_t flags)
{
	struct nn *n = p->state;
	int result = 0;
	if (!(flags & NP_CLOSE_ABORT) && n->mode == NP_WRITE && n->sock_open) {
		result = w_close(n);
		if (result == -EAGAIN)
			return result;
	}
	release(n);
	return result;
}

static int nn_ctl(struct np_pipe *p, int op, void *arg)
{
	struct nn *n = p->state;
	(void)arg;
	if (op == NP_CTL_PENDING) {
		/* Bytes in pend go without the loop (send_done starts them), so
		 * only an error keeps accepted bytes from going. */
		return n->mode == NP_WRITE ? n->err : 0;
	}
	return -ENOTTY;
}

static const char *nn_last_error(struct np_pipe *p)
{
	struct nn *n = p->state;
	return n->errmsg[0] ? n->errmsg : NULL;
}

static int nn_init(const struct np_host *h)
{
	host = h;
	return 0;
}

static void nn_fini(void)
{
	pthread_mutex_lock(&g_mu);
	for (uint32_t i = 0; i < g_nlinks; i++)
		free(g_links[i]);
	free(g_links);
	g_links = NULL;
	g_nlinks = 0;
	pthread_mutex_unlock(&g_mu);
	/* No nng_fini(): nng's own threads may still be finishing the work of
	 * the last nng_close(), and the library stays loaded anyway. */
}

static const struct np_plugin plugin = {
	.struct_size = sizeof(struct np_plugin),
	.magic = NP_MAGIC,
	.abi_major = NP_ABI_MAJOR,
	.abi_minor = NP_ABI_MINOR,
	.kind = NP_KIND_TRANSPORT,
	.state_size = sizeof(struct nn),
	.name = "nng",
	.version = "1.0",
	.license = "MIT",
	.description = "nng push0/pull0 over tcp, ipc or inproc: the reader listens, the writer dials",
	.caps = NP_CAP_ETAG | NP_CAP_REMOTE,
	.init = nn_init,
	.fini = nn_fini,
	.validate = nn_validate,
	.open = nn_open,
	.close = nn_close,
	.read = nn_read,
	.write = nn_write,
	.ready = nn_ready,
	.ctl = nn_ctl,
	.last_error = nn_last_error,
};

NP_EXPORT const struct np_plugin *np_plugin_entry(const struct np_host *h)
{
	(void)h;
	return &plugin;
}
