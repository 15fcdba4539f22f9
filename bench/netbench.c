/*
 * rift-netbench - the zmq and nng plugins beside raw libzmq and raw nng,
 * in one run.
 *
 *   rift-netbench [--quick] [--seconds S | --bytes N] [--runs N] [--rows LIST]
 *                 [--transports LIST] [--round-trips N] [--plugins DIR]
 *                 [--timeout S] [--side raw|rift] [-v]
 *
 * Rows, for zmq and for nng (bench/README.md, "rift-netbench"):
 *   1   64 KiB writes, MB/s: libnetpipe on Netpipe:<t>:tcp://127.0.0.1:PORT
 *       vs raw PUSH/PULL (libzmq) or push0/pull0 (nng) with 64 KiB messages
 *   2   the same with 64-byte writes (messages), writes/s
 *   3   64-byte round trip, median and p99 in microseconds: a ping-pong over
 *       two pipes (A->B, B->A) vs the same over two raw PUSH/PULL pairs
 *
 * Every run is a writer process and a reader process (or the two ends of
 * the ping-pong) forked from rift-netbench, over tcp on 127.0.0.1, on
 * free ports found by binding port 0. The parent never touches libzmq,
 * nng or libnetpipe: every context, socket and pipe is created in the
 * children, after fork.
 *
 * Both sides run with the broker's malloc settings (broker/heap.h: glibc
 * trims the heap only above 4 MiB), set here before the children fork, as
 * the broker sets them before it loads a plugin; --malloc-default leaves
 * glibc's own (libnetpipe in a program that sets nothing).
 *
 * Every figure is the median of --runs runs (3); raw and Rift runs
 * alternate. PASS/MISS compares with the targets and is
 * information only (DESIGN.md section 9). A plugin that is not built yet
 * shows "-" and netpipe_open's message; that is not a failure. The exit
 * status is 1 when a figure that could be attempted was not measured (a
 * child failed, bytes were lost, a watchdog fired), 2 on a usage error.
 *
 * Robustness: every blocking call in a child has a timeout, every child
 * has an alarm() and dies with rift-netbench (PR_SET_PDEATHSIG), and the
 * parent's watchdog kills (TERM, then KILL) and reaps children that
 * overrun; after a failure of our side, later rows skip that plugin.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>
#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>

#include "heap.h"
#include "libnetpipe.h"
#include "procs.h"

#ifndef RIFT_BENCH_BUILDTYPE
#define RIFT_BENCH_BUILDTYPE "unknown"
#endif
#ifndef RIFT_VERSION
#define RIFT_VERSION "?"
#endif

#define KIB 1024u
#define BIG_WSIZE (64u * KIB)
#define SMALL_WSIZE 64u
#define READ_BUF (64u * KIB)
#define UNLIMITED (1ull << 50)     /* "no byte cap" in seconds mode */
#define START_TIMEOUT 10.0         /* seconds for a child to open and handshake */

enum kind { RAW, OURS };
enum lib { ZMQ, NNG, NLIBS };
static const char *const lib_name[NLIBS] = {"zmq", "nng"};

enum { ROW_1 = 1u << 0, ROW_2 = 1u << 1, ROW_3 = 1u << 2, ROW_ALL = 0x7 };

/* ---- options ------------------------------------------------------------ */

static struct {
	double seconds;           /* per run; 0 = bytes mode */
	uint64_t bytes;           /* per run cap */
	int runs;
	long round_trips, warmup; /* row 3, per run */
	double timeout;           /* watchdog per run, seconds */
	int verbose;
	bool quick;
	bool no_raw, no_rift;     /* --side: profile one side alone */
	bool malloc_default;      /* glibc's malloc settings, not the broker's */
	int cpu;                  /* --cpu: every process on this CPU, or -1 */
	int heap;                 /* what hp_tune did (HP_* bits), 0 if not run */
	unsigned rows;            /* bit i: row i+1 */
	unsigned libs;            /* bit ZMQ, bit NNG */
	char plugins[PATH_MAX];
} opt;

/* ---- small helpers -------------------------------------------------------- */


static void warnx(const char *fmt, ...)
{
	va_list ap;
	fputs("rift-netbench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void vlog(const char *fmt, ...)
{
	if (!opt.verbose)
		return;
	va_list ap;
	fputs("  .. ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* This process's CPU time so far, user + sys, in seconds. */
static double cpu_now(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) < 0)
		return 0;
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Two distinct free tcp ports on 127.0.0.1: bound to port 0 together, so
 * the kernel cannot hand out the same one twice, then released. */
static int free_ports(int *ports, int n)
{
	int fds[4] = {-1, -1, -1, -1}, rc = 0;
	for (int i = 0; i < n && i < 4; i++) {
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0,
		                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		socklen_t len = sizeof a;
		fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&a, sizeof a) < 0 ||
		    getsockname(fds[i], (struct sockaddr *)&a, &len) < 0) {
			rc = -errno;
			break;
		}
		ports[i] = ntohs(a.sin_port);
	}
	for (int i = 0; i < 4; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return rc;
}

/* ---- child processes ------------------------------------------------------ */


/* ---- statistics ------------------------------------------------------------ */



/* One run: its figure (rows 1-2: rate; row 3: median and p99 round trip),
 * and the CPU (user + sys) each side spent per write or round trip, in
 * microseconds. */
struct sample {
	double rate, p99, cpu_w, cpu_r;
};

struct figs {
	struct bp_stat rate, p99, cpu_w, cpu_r;
};

static void figs_add(struct figs *f, const struct sample *s)
{
	bp_stat_add(&f->rate, s->rate);
	bp_stat_add(&f->p99, s->p99);
	bp_stat_add(&f->cpu_w, s->cpu_w);
	bp_stat_add(&f->cpu_r, s->cpu_r);
}

/* ---- one end of a pipe, ours or raw, in a child ----------------------------- */

struct end {
	enum kind kind;
	enum lib lib;
	netpipe_t *np;            /* OURS */
	void *zsock;              /* RAW zmq */
	nng_socket ns;            /* RAW nng */
	bool ns_open;
	char why[200];            /* the last failure, in words */
};

static void *g_zctx;              /* the child's libzmq context, made after fork */

static int end_fail(struct end *e, int err, const char *what, const char *msg)
{
	snprintf(e->why, sizeof e->why, "%s: %s", what, msg);
	return err > 0 ? -err : err < 0 ? err : -EIO;
}

static int nng_errno(int rv)
{
	return rv == NNG_ETIMEDOUT ? ETIMEDOUT : rv == NNG_ENOMEM ? ENOMEM :
	       rv == NNG_EADDRINUSE ? EADDRINUSE : rv == NNG_ECONNREFUSED ? ECONNREFUSED :
	       rv == NNG_ECLOSED ? EPIPE : EIO;
}

/* Open one end: the reader binds (listens) and the writer connects, for
 * ours (DESIGN.md section 4, rule 7) and raw alike. On failure, 0 > rc
 * and e->why says why. */
static int end_open(struct end *e, enum kind kind, enum lib lib, int port, bool reader)
{
	char url[64];
	int ms = (int)(opt.timeout * 1000);
	memset(e, 0, sizeof *e);
	e->kind = kind;
	e->lib = lib;
	snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
	if (kind == OURS) {
		char desc[96];
		snprintf(desc, sizeof desc, "Netpipe:%s:%s:%c", lib_name[lib], url, reader ? 'r' : 'w');
		if (!(e->np = netpipe_open(desc))) {
			/* netpipe_error() alone: the table shows it as the reason. */
			int err = errno;
			snprintf(e->why, sizeof e->why, "%s", netpipe_error());
			return -(err ? err : EIO);
		}
		netpipe_set_timeout(e->np, ms);
		return 0;
	}
	if (lib == ZMQ) {
		if (!g_zctx && !(g_zctx = zmq_ctx_new()))
			return end_fail(e, errno, "zmq_ctx_new", zmq_strerror(errno));
		e->zsock = zmq_socket(g_zctx, reader ? ZMQ_PULL : ZMQ_PUSH);
		if (!e->zsock)
			return end_fail(e, errno, "zmq_socket", zmq_strerror(errno));
		/* Only bounds on blocking: every other option is libzmq's default. */
		int linger = ms;
		zmq_setsockopt(e->zsock, ZMQ_LINGER, &linger, sizeof linger);
		zmq_setsockopt(e->zsock, ZMQ_SNDTIMEO, &ms, sizeof ms);
		zmq_setsockopt(e->zsock, ZMQ_RCVTIMEO, &ms, sizeof ms);
		int rc = reader ? zmq_bind(e->zsock, url) : zmq_connect(e->zsock, url);
		if (rc < 0)
			return end_fail(e, errno, reader ? "zmq_bind" : "zmq_connect", zmq_strerror(errno));
		return 0;
	}
	int rv = reader ? nng_pull0_open(&e->ns) : nng_push0_open(&e->ns);
	if (rv)
		return end_fail(e, nng_errno(rv), "nng_*0_open", nng_strerror(rv));
	e->ns_open = true;
	nng_socket_set_ms(e->ns, NNG_OPT_SENDTIMEO, ms);
	nng_socket_set_ms(e->ns, NNG_OPT_RECVTIMEO, ms);
	/* A non-blocking dial keeps retrying in the background, as a
	 * connecting netpipe writer does. */
	rv = reader ? nng_listen(e->ns, url, NULL, 0) : nng_dial(e->ns, url, NULL, NNG_FLAG_NONBLOCK);
	if (rv)
		return end_fail(e, nng_errno(rv), reader ? "nng_listen" : "nng_dial", nng_strerror(rv));
	return 0;
}

/* Send len bytes (one message, raw): 0 or -errno. */
static int end_send(struct end *e, const void *buf, size_t len)
{
	if (e->np) {
		int64_t w = netpipe_write(e->np, buf, (int32_t)len);
		if (w == (int64_t)len)
			return 0;
		return end_fail(e, w < 0 ? (int)-w : EIO, "netpipe_write", netpipe_error());
	}
	if (e->zsock) {
		for (;;) {
			if (zmq_send(e->zsock, buf, len, 0) == (int)len)
				return 0;
			if (errno != EINTR)
				return end_fail(e, errno == EAGAIN ? ETIMEDOUT : errno, "zmq_send",
				                zmq_strerror(errno));
		}
	}
	int rv = nng_send(e->ns, (void *)buf, len, 0);
	return rv ? end_fail(e, nng_errno(rv), "nng_send", nng_strerror(rv)) : 0;
}

/* Receive: ours, up to cap bytes of the stream; raw, one message. Returns
 * the bytes (> 0), 0 at the end (ours: end-of-stream; raw: the empty
 * message the raw writer sends last), or -errno. */
static int64_t end_recv(struct end *e, void *buf, size_t cap)
{
	if (e->np) {
		int64_t n = netpipe_read(e->np, buf, (int32_t)cap);
		return n >= 0 ? n : end_fail(e, (int)-n, "netpipe_read", netpipe_error());
	}
	if (e->zsock) {
		for (;;) {
			int n = zmq_recv(e->zsock, buf, cap, 0);
			if (n >= 0)
				return n > (int)cap ? end_fail(e, EMSGSIZE, "zmq_recv", "message too long") : n;
			if (errno != EINTR)
				return end_fail(e, errno == EAGAIN ? ETIMEDOUT : errno, "zmq_recv",
				                zmq_strerror(errno));
		}
	}
	size_t sz = cap;
	int rv = nng_recv(e->ns, buf, &sz, 0);
	return rv ? end_fail(e, nng_errno(rv), "nng_recv", nng_strerror(rv)) : (int64_t)sz;
}

/* Exactly len bytes: ours may split or join writes, a raw message is
 * whole. 0, or -errno (-EPIPE for an early end). */
static int end_recv_all(struct end *e, void *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		int64_t n = end_recv(e, (char *)buf + got, len - got);
		if (n < 0)
			return (int)n;
		if (n == 0)
			return end_fail(e, EPIPE, "read", "end of stream too early");
		got += (size_t)n;
	}
	return 0;
}

/* Free the end; ours: a writer flushes and sends end-of-stream. */
static int end_close(struct end *e)
{
	int rc = 0;
	if (e->np) {
		rc = netpipe_close(e->np);
		if (rc < 0)
			end_fail(e, -rc, "netpipe_close", netpipe_error());
		e->np = NULL;
	}
	if (e->zsock) {
		zmq_close(e->zsock);
		e->zsock = NULL;
	}
	if (e->ns_open) {
		nng_close(e->ns);
		e->ns_open = false;
	}
	return rc;
}

/* A child's last act: end the libzmq context (it waits for linger, and
 * for every socket to be closed: not after a failure). */
static void child_exit(int code)
{
	if (g_zctx && code == 0)
		zmq_ctx_term(g_zctx);
	g_zctx = NULL;
	_exit(code);
}

/* ---- what the children tell the parent -------------------------------------- */

struct res {
	int role;                 /* 0: reader / echo (B), 1: writer / pinger (A) */
	int failed;               /* 0, or an errno */
	bool unavailable;         /* our side: netpipe_open failed */
	uint64_t bytes, writes;
	double t_end;
	double cpu;               /* user + sys seconds of the measured part */
	bool cpu_done;            /* cpu is final (else: the CPU time at go) */
	double lat_med, lat_p99;  /* row 3, A: microseconds */
	char msg[240];
};

struct job {
	enum kind kind;
	enum lib lib;
	size_t wsize;             /* rows 1-2 */
	int port_ab, port_ba;     /* A (writer) -> B (reader); row 3: B -> A too */
	int ready_w, go_r, go_w, res_w, done_r, done_w;
};



/* Wait (bounded) until the peer says it has received everything: a raw
 * socket may drop what is still queued when it is closed (nng has no
 * linger). */
static void wait_done(int fd)
{
	struct pollfd pf = {fd, POLLIN, 0};
	double until = bp_now() + opt.timeout;
	while (bp_now() < until) {
		int rc = poll(&pf, 1, 1000);
		if (rc > 0 || (rc < 0 && errno != EINTR))
			return;
	}
}

static void fail_res(struct res *r, int e, const char *fmt, ...)
{
	va_list ap;
	if (r->failed)
		return;
	r->failed = e ? e : EIO;
	va_start(ap, fmt);
	vsnprintf(r->msg, sizeof r->msg, fmt, ap);
	va_end(ap);
}

/* Send the result, with the CPU since go unless cpu_done, and exit. */
static void report(const struct job *j, struct res *r)
{
	if (!r->cpu_done)
		r->cpu = cpu_now() - r->cpu;
	ssize_t w = write(j->res_w, r, sizeof *r);
	(void)w;
	/* After the result: the parent kills us when it sees 'E'. */
	if (r->failed)
		bp_send_byte(j->ready_w, 'E');
	child_exit(r->failed ? 1 : 0);
}

/* netpipe_open failed: the plugin is not there (or cannot start). */
static void unavailable(const struct job *j, struct res *r, const struct end *e)
{
	r->failed = ENOENT;
	r->unavailable = true;
	snprintf(r->msg, sizeof r->msg, "%s", e->why);
	report(j, r);
}

static void close_unused(const struct job *j)
{
	close(j->go_w);
}

/* ---- rows 1 and 2: writer process -> reader process ------------------------ */

static void reader_child(void *arg)
{
	const struct job *j = arg;
	struct res r = {.role = 0};
	static char buf[READ_BUF];
	struct end e;
	close_unused(j);
	close(j->done_r);
	if (end_open(&e, j->kind, j->lib, j->port_ab, true) < 0) {
		if (j->kind == OURS)
			unavailable(j, &r, &e);
		fail_res(&r, EIO, "reader: %s", e.why);
		report(j, &r);
	}
	bp_send_byte(j->ready_w, 'R');   /* listening */
	char hello;
	if (end_recv_all(&e, &hello, 1) < 0) {
		fail_res(&r, EIO, "reader: the hello: %s", e.why);
		report(j, &r);
	}
	bp_send_byte(j->ready_w, 'R');   /* connected: the writer's hello came */
	bp_wait_byte(j->go_r);
	r.cpu = cpu_now();
	for (;;) {
		int64_t n = end_recv(&e, buf, sizeof buf);
		if (n < 0) {
			fail_res(&r, (int)-n, "reader: after %llu bytes: %s",
			         (unsigned long long)r.bytes, e.why);
			break;
		}
		if (n == 0)
			break;
		r.bytes += (uint64_t)n;
	}
	r.t_end = bp_now();
	bp_send_byte(j->done_w, 'D');
	if (end_close(&e) < 0)
		fail_res(&r, EIO, "reader: %s", e.why);
	report(j, &r);
}

static void writer_child(void *arg)
{
	const struct job *j = arg;
	struct res r = {.role = 1};
	struct end e;
	close_unused(j);
	close(j->done_w);
	char *buf = malloc(j->wsize);
	if (!buf) {
		fail_res(&r, ENOMEM, "writer: out of memory");
		report(j, &r);
	}
	for (size_t i = 0; i < j->wsize; i++)
		buf[i] = (char)('a' + i % 26);
	if (end_open(&e, j->kind, j->lib, j->port_ab, false) < 0) {
		if (j->kind == OURS)
			unavailable(j, &r, &e);
		fail_res(&r, EIO, "writer: %s", e.why);
		report(j, &r);
	}
	/* One byte first: connection set-up is not what we time. */
	if (end_send(&e, "h", 1) < 0) {
		fail_res(&r, EIO, "writer: the hello: %s", e.why);
		report(j, &r);
	}
	bp_send_byte(j->ready_w, 'R');
	bp_wait_byte(j->go_r);
	r.cpu = cpu_now();
	uint64_t every = j->wsize >= (1u << 20) ? 1 : (1u << 20) / j->wsize;
	double until = opt.seconds > 0 ? bp_now() + opt.seconds : 0;
	while (r.bytes < opt.bytes) {
		size_t want = opt.bytes - r.bytes < j->wsize ? (size_t)(opt.bytes - r.bytes) : j->wsize;
		if (end_send(&e, buf, want) < 0) {
			fail_res(&r, EIO, "writer: after %llu bytes: %s", (unsigned long long)r.bytes,
			         e.why);
			break;
		}
		r.bytes += want;
		r.writes++;
		if (until > 0 && r.writes % every == 0 && bp_now() >= until)
			break;
	}
	if (j->kind == RAW) {
		/* The end: an empty message, then wait until the reader has it. */
		if (!r.failed && end_send(&e, "", 0) < 0)
			fail_res(&r, EIO, "writer: the end message: %s", e.why);
		if (!r.failed)
			wait_done(j->done_r);
	}
	if (end_close(&e) < 0)
		fail_res(&r, EIO, "writer: %s", e.why);
	r.t_end = bp_now();
	free(buf);
	report(j, &r);
}

/* ---- row 3: ping-pong, A (pinger) and B (echo) ------------------------------- */

/* B: reads port_ab, writes port_ba. A: reads port_ba, writes port_ab. */
static int pp_open(const struct job *j, struct end *rd, struct end *wr, bool is_a,
                   struct res *r)
{
	memset(wr, 0, sizeof *wr);
	if (end_open(rd, j->kind, j->lib, is_a ? j->port_ba : j->port_ab, true) < 0) {
		if (j->kind == OURS)
			unavailable(j, r, rd);
		fail_res(r, EIO, "%s: %s", is_a ? "A" : "B", rd->why);
		return -1;
	}
	if (end_open(wr, j->kind, j->lib, is_a ? j->port_ab : j->port_ba, false) < 0) {
		if (j->kind == OURS)
			unavailable(j, r, wr);
		fail_res(r, EIO, "%s: %s", is_a ? "A" : "B", wr->why);
		return -1;
	}
	return 0;
}

static void pp_a_child(void *arg)
{
	const struct job *j = arg;
	struct res r = {.role = 1};
	struct end rd, wr;
	char msg[SMALL_WSIZE], back[SMALL_WSIZE];
	long n = opt.round_trips, w = opt.warmup;
	double *rtt = calloc((size_t)n, sizeof *rtt);
	close_unused(j);
	close(j->done_r);
	memset(msg, 'p', sizeof msg);
	if (!rtt)
		fail_res(&r, ENOMEM, "A: out of memory");
	if (r.failed || pp_open(j, &rd, &wr, true, &r) < 0) {
		report(j, &r);
	}
	/* The first round trip proves both pipes connected. */
	if (end_send(&wr, msg, sizeof msg) < 0 || end_recv_all(&rd, back, sizeof back) < 0) {
		fail_res(&r, EIO, "A: the first round trip: %s", wr.why[0] ? wr.why : rd.why);
		report(j, &r);
	}
	bp_send_byte(j->ready_w, 'R');
	bp_wait_byte(j->go_r);
	for (long i = 0; i < w + n && !r.failed; i++) {
		if (i == w)
			r.cpu = cpu_now();
		double t = bp_now();
		if (end_send(&wr, msg, sizeof msg) < 0)
			fail_res(&r, EIO, "A: round trip %ld: %s", i, wr.why);
		else if (end_recv_all(&rd, back, sizeof back) < 0)
			fail_res(&r, EIO, "A: round trip %ld: %s", i, rd.why);
		else if (i >= w)
			rtt[i - w] = (bp_now() - t) * 1e6;
	}
	r.writes = (uint64_t)n;
	if (!r.failed) {
		qsort(rtt, (size_t)n, sizeof *rtt, bp_cmp_double);
		r.lat_med = n % 2 ? rtt[n / 2] : (rtt[n / 2 - 1] + rtt[n / 2]) / 2;
		long k = (long)ceil(0.99 * (double)n) - 1;
		r.lat_p99 = rtt[k < 0 ? 0 : k];
	}
	/* The CPU of the timed round trips only, not of the closing. */
	r.cpu = cpu_now() - r.cpu;
	r.cpu_done = true;
	if (j->kind == RAW) {
		bp_send_byte(j->done_w, 'D');   /* B may close: we have every pong */
		end_close(&wr);
		end_close(&rd);
	} else if (!r.failed) {
		/* A clean end both ways: our end-of-stream to B, then B's to us. */
		if (end_close(&wr) < 0)
			fail_res(&r, EIO, "A: %s", wr.why);
		int64_t k = end_recv(&rd, back, sizeof back);
		if (k != 0)
			fail_res(&r, EIO, "A: no end-of-stream from B: %s",
			         k < 0 ? rd.why : "more data");
		end_close(&rd);
	} else {
		end_close(&wr);
		end_close(&rd);
	}
	free(rtt);
	report(j, &r);
}

static void pp_b_child(void *arg)
{
	const struct job *j = arg;
	struct res r = {.role = 0};
	struct end rd, wr;
	char msg[SMALL_WSIZE];
	long n = opt.round_trips, w = opt.warmup;
	close_unused(j);
	close(j->done_w);
	if (pp_open(j, &rd, &wr, false, &r) < 0) {
		report(j, &r);
	}
	if (end_recv_all(&rd, msg, sizeof msg) < 0 || end_send(&wr, msg, sizeof msg) < 0) {
		fail_res(&r, EIO, "B: the first round trip: %s", rd.why[0] ? rd.why : wr.why);
		report(j, &r);
	}
	bp_send_byte(j->ready_w, 'R');
	bp_wait_byte(j->go_r);
	for (long i = 0; i < w + n && !r.failed; i++) {
		if (i == w)
			r.cpu = cpu_now();
		if (end_recv_all(&rd, msg, sizeof msg) < 0)
			fail_res(&r, EIO, "B: round trip %ld: %s", i, rd.why);
		else if (end_send(&wr, msg, sizeof msg) < 0)
			fail_res(&r, EIO, "B: round trip %ld: %s", i, wr.why);
	}
	/* The CPU of the timed round trips only, not of the closing. */
	r.cpu = cpu_now() - r.cpu;
	r.cpu_done = true;
	if (j->kind == RAW) {
		if (!r.failed)
			wait_done(j->done_r);
		end_close(&wr);
		end_close(&rd);
	} else if (!r.failed) {
		int64_t k = end_recv(&rd, msg, sizeof msg);
		if (k != 0)
			fail_res(&r, EIO, "B: no end-of-stream from A: %s",
			         k < 0 ? rd.why : "more data");
		end_close(&rd);
		if (end_close(&wr) < 0)
			fail_res(&r, EIO, "B: %s", wr.why);
	} else {
		end_close(&wr);
		end_close(&rd);
	}
	r.writes = (uint64_t)n;
	report(j, &r);
}

/* ---- one run, in the parent --------------------------------------------------- */



#define RC_UNAVAILABLE (-10000)

/* Why our side of a transport is not measured (plugin missing or broken),
 * and why the last run failed. */
static char g_skip[NLIBS][240];
static char g_why[240];

/* One run: rows 1-2 (row3 false: a writer and a reader, wsize bytes per
 * write) or row 3 (the ping-pong). 0 and *out, RC_UNAVAILABLE (g_skip
 * says why), or another negative value. */
static int run_one(enum kind kind, enum lib lib, size_t wsize, bool row3, struct sample *out)
{
	const char *side = kind == RAW ? "raw" : "rift";
	int ready[2], go[2], res[2], done[2], ports[2];
	int rc = free_ports(ports, 2);
	if (rc < 0) {
		warnx("cannot find free tcp ports on 127.0.0.1: %s", strerror(-rc));
		return rc;
	}
	if (pipe2(ready, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(go, O_CLOEXEC) < 0) {
		rc = -errno;
		close(ready[0]), close(ready[1]);
		return rc;
	}
	if (pipe2(res, O_CLOEXEC) < 0) {
		rc = -errno;
		close(ready[0]), close(ready[1]), close(go[0]), close(go[1]);
		return rc;
	}
	if (pipe2(done, O_CLOEXEC) < 0) {
		rc = -errno;
		close(ready[0]), close(ready[1]), close(go[0]), close(go[1]);
		close(res[0]), close(res[1]);
		return rc;
	}
	struct job j = {.kind = kind, .lib = lib, .wsize = wsize, .port_ab = ports[0],
	                .port_ba = ports[1], .ready_w = ready[1], .go_r = go[0], .go_w = go[1],
	                .res_w = res[1], .done_r = done[0], .done_w = done[1]};
	struct bp_proc ps[2];
	int nps = 0;
	const char *why = NULL;
	double t0 = 0;
	if (row3) {
		/* Both ends bind their reader first; writers retry until it is there. */
		if ((rc = bp_spawn(&ps[0], pp_b_child, &j)) < 0)
			goto out;
		nps = 1;
		if ((rc = bp_spawn(&ps[1], pp_a_child, &j)) < 0)
			goto out;
		nps = 2;
		if (!bp_wait_ready(ready[0], 2, ps, nps, bp_now() + START_TIMEOUT)) {
			rc = -EIO, why = "the ends did not connect";
			goto out;
		}
	} else {
		/* The reader first, so that it listens before the writer starts. */
		if ((rc = bp_spawn(&ps[0], reader_child, &j)) < 0)
			goto out;
		nps = 1;
		if (!bp_wait_ready(ready[0], 1, ps, nps, bp_now() + START_TIMEOUT)) {
			rc = -EIO, why = "the reader did not start";
			goto out;
		}
		if ((rc = bp_spawn(&ps[1], writer_child, &j)) < 0)
			goto out;
		nps = 2;
		if (!bp_wait_ready(ready[0], 2, ps, nps, bp_now() + START_TIMEOUT)) {
			rc = -EIO, why = "the writer and the reader did not connect";
			goto out;
		}
	}
	close(res[1]), res[1] = -1;
	t0 = bp_now();
	close(go[1]), go[1] = -1; /* go! */
	rc = bp_wait(ps, nps, t0 + opt.timeout, true);
	if (rc == -ETIMEDOUT)
		why = "watchdog: the run did not finish in time (--timeout)";
out:
	if (rc < 0)
		bp_kill(ps, nps);
	/* Every child is gone: reading the results cannot block. */
	if (res[1] >= 0)
		close(res[1]), res[1] = -1;
	struct res got[2], *rr = NULL, *ww = NULL;
	bool unavail = false;
	for (int i = 0; i < 2 && bp_read_full(res[0], &got[i], sizeof got[i]); i++) {
		*(got[i].role ? &ww : &rr) = &got[i];
		if (got[i].unavailable) {
			unavail = true;
			snprintf(g_skip[lib], sizeof g_skip[lib], "plugin not available: %s",
			         got[i].msg);
		} else if (got[i].failed && !unavail) {
			warnx("%s %s %s", side, lib_name[lib], got[i].msg);
		}
		if (got[i].failed && rc == 0)
			rc = -got[i].failed;
	}
	if (unavail) {
		rc = RC_UNAVAILABLE;
		why = NULL;
	}
	if (rc == 0 && (!rr || !ww))
		rc = -EIO, why = "a child died without a result";
	if (rc == 0 && !row3 && rr->bytes != ww->bytes) {
		warnx("%s %s: the reader got %llu bytes, the writer sent %llu", side, lib_name[lib],
		      (unsigned long long)rr->bytes, (unsigned long long)ww->bytes);
		rc = -EIO;
	}
	if (rc == 0 && row3) {
		double per = (double)ww->writes / 1e6;
		out->rate = ww->lat_med;
		out->p99 = ww->lat_p99;
		out->cpu_w = ww->cpu / per;
		out->cpu_r = rr->cpu / per;
		vlog("%s %s round trips: %llu, median %.1f us, p99 %.1f us; CPU per round trip: "
		     "A %.2f us, B %.2f us", side, lib_name[lib], (unsigned long long)ww->writes,
		     out->rate, out->p99, out->cpu_w, out->cpu_r);
	} else if (rc == 0) {
		double dt = rr->t_end - t0;
		double per = (double)ww->writes / 1e6;
		out->rate = wsize >= KIB ? (double)rr->bytes / dt / 1e6 : (double)ww->writes / dt;
		out->p99 = 0;
		out->cpu_w = ww->cpu / per;
		out->cpu_r = rr->cpu / per;
		vlog("%s %s %zu-byte writes: %llu bytes in %.3f s -> %.1f %s; CPU per write: "
		     "writer %.2f us, reader %.2f us", side, lib_name[lib], wsize,
		     (unsigned long long)rr->bytes, dt, out->rate,
		     wsize >= KIB ? "MB/s" : "writes/s", out->cpu_w, out->cpu_r);
	} else if (why) {
		warnx("%s %s: %s", side, lib_name[lib], why);
	}
	if (rc < 0 && rc != RC_UNAVAILABLE) {
		/* The first words of why, for the table. */
		const char *w = why;
		for (int i = 0; !w && i < 2; i++)
			if (got[i].failed && got[i].msg[0])
				w = got[i].msg;
		snprintf(g_why, sizeof g_why, "%s", w ? w : strerror(-rc));
	}
	int *fds[] = {ready, go, res, done};
	for (size_t k = 0; k < sizeof fds / sizeof *fds; k++)
		for (int i = 0; i < 2; i++)
			if (fds[k][i] >= 0)
				close(fds[k][i]);
	return rc;
}

/* ---- the table ----------------------------------------------------------------- */

#define COLS "%-4s %-4s %-30s %-8s %10s %10s %7s  %-14s %-6s %s\n"

static void fmt_num(char *out, size_t len, double v, const char *unit)
{
	if (isnan(v))
		snprintf(out, len, "-");
	else if (!strcmp(unit, "writes/s") || v >= 100)
		snprintf(out, len, "%.0f", v);
	else
		snprintf(out, len, "%.2f", v);
}

static int g_failed;
static int g_passed, g_missed;

/* ours/raw NULL or empty: "-". higher: the ratio must be >= want, else
 * <= want. note: what to print when our figure is absent; failed: it is
 * absent because our side failed in this row (ERROR). */
static void print_row(const char *id, enum lib lib, const char *what, const char *unit,
                      const struct bp_stat *ours, const struct bp_stat *raw, const char *target,
                      double want, bool higher, const char *note, bool failed)
{
	char a[32], b[32], r[16], sp[48];
	double o = ours && ours->n ? ours->median : NAN;
	double w = raw && raw->n ? raw->median : NAN;
	double ratio = !isnan(o) && !isnan(w) && w > 0 ? o / w : NAN;
	fmt_num(a, sizeof a, o, unit);
	fmt_num(b, sizeof b, w, unit);
	if (isnan(ratio))
		snprintf(r, sizeof r, "-");
	else
		snprintf(r, sizeof r, "%.3f", ratio);
	const char *res = "-";
	if (!isnan(ratio)) {
		res = (higher ? ratio >= want : ratio <= want) ? "PASS" : "MISS";
		if (!strcmp(res, "MISS"))
			g_missed++;
		else
			g_passed++;
	} else if ((isnan(o) && !opt.no_rift && (!note || !note[0] || failed)) ||
	           (isnan(w) && !opt.no_raw)) {
		res = "ERROR";
	}
	sp[0] = '\0';
	if (isnan(o) && note && note[0])
		snprintf(sp, sizeof sp, "%s", "");
	else if (ours && ours->n > 1 && raw && raw->n > 1)
		snprintf(sp, sizeof sp, "%.0f%% / %.0f%%", bp_spread(ours), bp_spread(raw));
	else if (ours && ours->n > 1)
		snprintf(sp, sizeof sp, "%.0f%%", bp_spread(ours));
	else if (raw && raw->n > 1)
		snprintf(sp, sizeof sp, "- / %.0f%%", bp_spread(raw));
	printf(COLS, id, lib_name[lib], what, unit, a, b, r, target, res,
	       isnan(o) && note && note[0] ? note : sp);
	fflush(stdout);
}

static void print_header(void)
{
	struct utsname u;
	char host[256] = "?", model[128] = "?", line[512];
	uname(&u);
	gethostname(host, sizeof host);
	FILE *f = fopen("/proc/cpuinfo", "r");
	while (f && fgets(line, sizeof line, f))
		if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
			snprintf(model, sizeof model, "%s", strchr(line, ':') + 2);
			model[strcspn(model, "\n")] = '\0';
			break;
		}
	if (f)
		fclose(f);
	int zmaj, zmin, zpat;
	zmq_version(&zmaj, &zmin, &zpat);
	printf("rift-netbench %s  host %s: nproc %ld (%s), Linux %s %s\n", RIFT_VERSION, host,
	       sysconf(_SC_NPROCESSORS_ONLN), model, u.release, u.machine);
	/* On a shared machine the load says how far to trust the spread. */
	double l1 = -1, l5 = -1;
	FILE *lf = fopen("/proc/loadavg", "r");
	if (lf && fscanf(lf, "%lf %lf", &l1, &l5) != 2)
		l1 = l5 = -1;
	if (lf)
		fclose(lf);
	printf("libzmq %d.%d.%d, nng %s; tcp on 127.0.0.1; load average %.2f (1 min), %.2f (5 min); "
	       "plugins from %s\n", zmaj, zmin, zpat, nng_version(), l1, l5, opt.plugins);
	char mode[96];
	if (opt.seconds > 0 && opt.bytes < UNLIMITED)
		snprintf(mode, sizeof mode, "~%g s or %llu bytes per run", opt.seconds,
		         (unsigned long long)opt.bytes);
	else if (opt.seconds > 0)
		snprintf(mode, sizeof mode, "~%g s per run", opt.seconds);
	else
		snprintf(mode, sizeof mode, "%llu bytes per run", (unsigned long long)opt.bytes);
	printf("malloc: %s\n", opt.malloc_default ? "glibc's defaults (--malloc-default)"
	       : opt.heap == (HP_TRIM_SET | HP_MMAP_SET) ? "the broker's settings, both sides "
	       "(broker/heap.h)"
	       : opt.heap & (HP_USER_TRIM | HP_USER_MMAP) ? "the user's settings kept (GLIBC_TUNABLES, MALLOC_*_), "
	       "the broker's for the rest, both sides (broker/heap.h)"
	       : "the C library's own: it refused the broker's (broker/heap.h)");
	if (opt.cpu >= 0)
		printf("cpu: every process of both sides on CPU %d (--cpu): no cross-CPU "
		       "wake-ups in the figures\n", opt.cpu);
	printf("build %s; every figure is the median of %d run%s, %s (row 3: %ld round trips "
	       "after %ld); MB/s = 10^6 bytes/s\n\n", RIFT_BENCH_BUILDTYPE, opt.runs,
	       opt.runs == 1 ? "" : "s", mode, opt.round_trips, opt.warmup);
	printf(COLS, "row", "lib", "benchmark", "unit", "rift", "raw", "ratio", "target", "result",
	       "spread (rift / raw)");
	fflush(stdout);
}

/* ---- rows ---------------------------------------------------------------------- */

static struct cpu_row {
	const char *id;
	enum lib lib;
	const char *per;
	struct figs ours, raw;
	char why[260];            /* our side failed in this row: why */
} cpu_rows[3 * NLIBS];
static int ncpu_rows;

/* --runs runs of each side, alternating. A missing plugin stops our side
 * (RC_UNAVAILABLE), as does a failure of ours (g_skip says so). */
static void measure(struct cpu_row *row, size_t wsize, bool row3)
{
	bool raw_ok = !opt.no_raw, ours_ok = !opt.no_rift && !g_skip[row->lib][0];
	for (int i = 0; i < opt.runs && !bp_stop && (raw_ok || ours_ok); i++) {
		struct sample v;
		if (raw_ok) {
			if (run_one(RAW, row->lib, wsize, row3, &v) == 0) {
				figs_add(&row->raw, &v);
			} else {
				raw_ok = false;
				memset(&row->raw, 0, sizeof row->raw);
				g_failed++;
			}
		}
		if (ours_ok) {
			int rc = run_one(OURS, row->lib, wsize, row3, &v);
			if (rc == 0) {
				figs_add(&row->ours, &v);
			} else {
				ours_ok = false;
				memset(&row->ours, 0, sizeof row->ours);
				if (rc != RC_UNAVAILABLE && !bp_stop) {
					g_failed++;
					snprintf(row->why, sizeof row->why, "%s", g_why);
					snprintf(g_skip[row->lib], sizeof g_skip[row->lib],
					         "skipped: our side failed in row %s", row->id);
				}
			}
		}
	}
	if (bp_stop)
		g_failed++;
}

static void row_xfer(const char *id, enum lib lib, size_t wsize)
{
	struct cpu_row *row = &cpu_rows[ncpu_rows++];
	bool big = wsize >= KIB;
	*row = (struct cpu_row){.id = id, .lib = lib, .per = "write"};
	char what[64];
	snprintf(what, sizeof what, "tcp, libnetpipe, %s writes", big ? "64 KiB" : "64 B");
	measure(row, wsize, false);
	double want = big ? 0.95 : lib == ZMQ ? 1.0 : 10.0;
	const char *target = big ? ">= 0.95 x raw" : lib == ZMQ ? ">= 1.0 x raw" : ">= 10 x raw";
	print_row(id, lib, what, big ? "MB/s" : "writes/s", &row->ours.rate, &row->raw.rate,
	          target, want, true, row->why[0] ? row->why : g_skip[lib], row->why[0]);
}

static void row_latency(enum lib lib)
{
	struct cpu_row *row = &cpu_rows[ncpu_rows++];
	*row = (struct cpu_row){.id = "3", .lib = lib, .per = "round trip"};
	measure(row, SMALL_WSIZE, true);
	const char *note = row->why[0] ? row->why : g_skip[lib];
	print_row("3", lib, "tcp, 64 B round trip, median", "us", &row->ours.rate,
	          &row->raw.rate, "<= 1.1 x raw", 1.1, false, note, row->why[0]);
	print_row("3", lib, "tcp, 64 B round trip, p99", "us", &row->ours.p99, &row->raw.p99,
	          "<= 1.1 x raw", 1.1, false, note, row->why[0]);
}

/* The CPU the same runs cost per write (per round trip in row 3): steadier
 * than throughput on a busy machine, and it says which side pays. */
static void print_cpu_table(void)
{
	if (!ncpu_rows)
		return;
	printf("\nCPU per write (row 3: per round trip), user+sys microseconds "
	       "(median of the same runs; lower is better)\n");
	printf("%-4s %-4s %12s %12s %12s %12s %7s\n", "row", "lib", "rift writer", "rift reader",
	       "raw writer", "raw reader", "ratio");
	for (int i = 0; i < ncpu_rows; i++) {
		const struct cpu_row *r = &cpu_rows[i];
		char v[4][32], ratio[16] = "-";
		const struct bp_stat *s[4] = {&r->ours.cpu_w, &r->ours.cpu_r, &r->raw.cpu_w,
		                            &r->raw.cpu_r};
		for (int k = 0; k < 4; k++)
			snprintf(v[k], sizeof v[k], s[k]->n ? "%.2f" : "-", s[k]->median);
		if (s[0]->n && s[2]->n && s[2]->median + s[3]->median > 0)
			snprintf(ratio, sizeof ratio, "%.2f", (s[0]->median + s[1]->median) /
			                                      (s[2]->median + s[3]->median));
		printf("%-4s %-4s %12s %12s %12s %12s %7s\n", r->id, lib_name[r->lib], v[0], v[1],
		       v[2], v[3], ratio);
	}
	printf("row 3: writer = A (sends the ping, times the round trip), reader = B (echoes);\n"
	       "ratio = rift (writer + reader) / raw (writer + reader).\n");
}

/* ---- setup ----------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fputs("usage: rift-netbench [options]\n"
	      "\n"
	      "Prints the zmq and nng plugins' figures beside raw libzmq's and raw nng's\n"
	      "for each row, the ratio, and the target (bench/README.md).\n"
	      "\n"
	      "  -q, --quick          tiny runs, one each: a smoke test, not a measurement\n"
	      "  -s, --seconds S      rows 1-2: each run writes for about S seconds (default 2)\n"
	      "  -b, --bytes N        rows 1-2: each run writes N bytes (K, M, G suffixes:\n"
	      "                       KiB...); with --seconds, whichever comes first\n"
	      "  -n, --runs N         runs per figure, the median is printed (default 3)\n"
	      "  -r, --rows LIST      rows to run, e.g. 1,3 (default all: 1,2,3)\n"
	      "  -T, --transports L   zmq, nng or zmq,nng (default both)\n"
	      "  -N, --round-trips N  row 3: timed round trips per run (default 20000, after\n"
	      "                       a tenth as many untimed)\n"
	      "  -P, --plugins DIR    plugin directory (default: <exe>/../plugins)\n"
	      "  -t, --timeout S      watchdog per run (default 60 + 10 x seconds; 20 with\n"
	      "                       --quick)\n"
	      "  -S, --side SIDE      raw or rift: run only that side (for profiling;\n"
	      "                       rows then show - for the other)\n"
	      "  -M, --malloc-default glibc's malloc settings on both sides, not the\n"
	      "                       broker's (broker/heap.h)\n"
	      "  -C, --cpu N          run every process of both sides on CPU N: the\n"
	      "                       round trip without cross-CPU wake-ups, whose\n"
	      "                       cost swamps it on a small VM (bench/README.md)\n"
	      "  -v, --verbose        every run's figure on stderr\n"
	      "  -h, --help\n", f);
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || v <= 0)
		return -1;
	switch (*end) {
	case 'k': case 'K': v *= 1024; end++; break;
	case 'm': case 'M': v *= 1024 * 1024; end++; break;
	case 'g': case 'G': v *= 1024.0 * 1024 * 1024; end++; break;
	default: break;
	}
	if (*end == 'i' && end[1] == 'B')
		end += 2;
	else if (*end == 'B')
		end++;
	if (*end || v < 1 || v > (double)UNLIMITED)
		return -1;
	*out = (uint64_t)v;
	return 0;
}

/* A comma list of names into bits: names[i] is bit i; "all" is every one. */
static int parse_list(const char *s, const char *const *names, int n, unsigned *out)
{
	char buf[128];
	snprintf(buf, sizeof buf, "%s", s);
	*out = 0;
	for (char *save = NULL, *t = strtok_r(buf, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
		int i;
		if (!strcmp(t, "all")) {
			*out |= (1u << n) - 1;
			continue;
		}
		for (i = 0; i < n && strcmp(t, names[i]); i++)
			;
		if (i == n)
			return -1;
		*out |= 1u << i;
	}
	return *out ? 0 : -1;
}

static int find_plugins(void)
{
	char dir[PATH_MAX - 64];
	if (!opt.plugins[0]) {
		ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
		char *slash = n > 0 ? (dir[n] = '\0', strrchr(dir, '/')) : NULL;
		if (!slash) {
			warnx("cannot find my own directory (/proc/self/exe)");
			return -1;
		}
		*slash = '\0';
		snprintf(opt.plugins, sizeof opt.plugins, "%s/../plugins", dir);
		struct stat st;
		const char *env = getenv("RIFT_PLUGIN_PATH");
		if ((stat(opt.plugins, &st) < 0 || !S_ISDIR(st.st_mode)) && env && *env)
			snprintf(opt.plugins, sizeof opt.plugins, "%s", env);
	}
	char real[PATH_MAX];
	if (realpath(opt.plugins, real))
		snprintf(opt.plugins, sizeof opt.plugins, "%s", real);
	struct stat st;
	if (stat(opt.plugins, &st) < 0 || !S_ISDIR(st.st_mode)) {
		warnx("no plugin directory at %s (use --plugins DIR)", opt.plugins);
		return -1;
	}
	/* libnetpipe in the children finds the plugins here, and only here
	 * besides the install directory. */
	setenv("RIFT_PLUGIN_PATH", opt.plugins, 1);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longs[] = {
		{"quick", no_argument, 0, 'q'},
		{"seconds", required_argument, 0, 's'},
		{"bytes", required_argument, 0, 'b'},
		{"runs", required_argument, 0, 'n'},
		{"rows", required_argument, 0, 'r'},
		{"transports", required_argument, 0, 'T'},
		{"round-trips", required_argument, 0, 'N'},
		{"plugins", required_argument, 0, 'P'},
		{"timeout", required_argument, 0, 't'},
		{"side", required_argument, 0, 'S'},
		{"malloc-default", no_argument, 0, 'M'},
		{"cpu", required_argument, 0, 'C'},
		{"verbose", no_argument, 0, 'v'},
		{"help", no_argument, 0, 'h'},
		{0, 0, 0, 0},
	};
	static const char *const row_names[] = {"1", "2", "3"};
	int c, runs = 0;
	long trips = 0;
	double seconds = -1, timeout = 0;
	uint64_t bytes = 0;
	opt.rows = ROW_ALL;
	opt.libs = (1u << ZMQ) | (1u << NNG);
	opt.cpu = -1;
	while ((c = getopt_long(argc, argv, "qs:b:n:r:T:N:P:t:S:MC:vh", longs, NULL)) != -1) {
		char *end;
		switch (c) {
		case 'q': opt.quick = true; break;
		case 's':
			seconds = strtod(optarg, &end);
			if (*end || seconds <= 0 || seconds > 3600) {
				warnx("--seconds wants a number of seconds in (0, 3600]");
				return 2;
			}
			break;
		case 'b':
			if (parse_size(optarg, &bytes) < 0) {
				warnx("--bytes wants a positive size such as 1G or 65536");
				return 2;
			}
			break;
		case 'n':
			runs = atoi(optarg);
			if (runs < 1 || runs > BP_MAX_RUNS) {
				warnx("--runs wants 1 to %d", BP_MAX_RUNS);
				return 2;
			}
			break;
		case 'r':
			if (parse_list(optarg, row_names, 3, &opt.rows) < 0) {
				warnx("--rows wants a list of 1, 2, 3 such as 1,3");
				return 2;
			}
			break;
		case 'T':
			if (parse_list(optarg, lib_name, NLIBS, &opt.libs) < 0) {
				warnx("--transports wants zmq, nng or zmq,nng");
				return 2;
			}
			break;
		case 'N':
			trips = strtol(optarg, &end, 10);
			if (*end || trips < 1 || trips > 10000000) {
				warnx("--round-trips wants 1 to 10000000");
				return 2;
			}
			break;
		case 'P': snprintf(opt.plugins, sizeof opt.plugins, "%s", optarg); break;
		case 't':
			timeout = strtod(optarg, &end);
			if (*end || timeout < 1) {
				warnx("--timeout wants seconds >= 1");
				return 2;
			}
			break;
		case 'S':
			if (!strcmp(optarg, "raw")) {
				opt.no_rift = true;
			} else if (!strcmp(optarg, "rift")) {
				opt.no_raw = true;
			} else {
				warnx("--side wants raw or rift");
				return 2;
			}
			break;
		case 'M': opt.malloc_default = true; break;
		case 'C': {
			char *end;
			long c = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end || c < 0 || c >= CPU_SETSIZE) {
				warnx("--cpu wants a CPU number, not '%s'", optarg);
				return 2;
			}
			opt.cpu = (int)c;
			break;
		}
		case 'v': opt.verbose++; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		warnx("unexpected argument '%s'", argv[optind]);
		usage(stderr);
		return 2;
	}
	opt.runs = runs ? runs : opt.quick ? 1 : 3;
	if (seconds > 0)
		opt.seconds = seconds;
	else if (!bytes)
		opt.seconds = opt.quick ? 0.1 : 2.0;
	opt.bytes = bytes ? bytes : opt.quick && seconds <= 0 ? 16u << 20 : UNLIMITED;
	opt.round_trips = trips ? trips : opt.quick ? 200 : 20000;
	opt.warmup = opt.round_trips / 10 > 0 ? opt.round_trips / 10 : 1;
	opt.timeout = timeout > 0 ? timeout
	              : opt.quick ? 20
	              : opt.seconds > 0 ? 60 + 10 * opt.seconds : 600;
	/* Row 3 is count-bound: leave room for a slow round trip (1 ms). */
	if (timeout <= 0 && !opt.quick && (opt.rows & ROW_3))
		opt.timeout = fmax(opt.timeout, 30 + (double)(opt.round_trips + opt.warmup) / 1000);

	if (find_plugins() < 0)
		return 2;
	if (!opt.malloc_default)
		opt.heap = hp_tune(); /* the children inherit it */
	if (opt.cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(opt.cpu, &set);
		if (sched_setaffinity(0, sizeof set, &set) < 0) { /* inherited too */
			warnx("--cpu %d: %s", opt.cpu, strerror(errno));
			return 2;
		}
	}
	bp_child_alarm = (unsigned)(opt.timeout + START_TIMEOUT) + 10;
	struct sigaction sa = {.sa_handler = bp_on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	print_header();
	static const size_t wsizes[] = {BIG_WSIZE, SMALL_WSIZE};
	for (int row = 0; row < 3; row++)
		for (int l = 0; l < NLIBS && !bp_stop; l++) {
			if (!(opt.rows & (1u << row)) || !(opt.libs & (1u << l)))
				continue;
			if (row < 2)
				row_xfer(row_names[row], (enum lib)l, wsizes[row]);
			else
				row_latency((enum lib)l);
		}

	print_cpu_table();
	printf("\nratio = rift / raw: higher is better for MB/s and writes/s, lower for "
	       "round trips (us).\nTargets are informational: the exit status says only "
	       "whether every figure that could\nbe attempted was measured. \"-\" with "
	       "\"plugin not available\": the plugin is not built or\ndoes not load, and "
	       "is not an error.\n");
	printf("targets met: %d of %d%s\n", g_passed, g_passed + g_missed,
	       g_failed ? "; some figures could not be measured (see above)" : "");
	if (opt.quick)
		printf("--quick: tiny single runs; the figures mean nothing.\n");
	if (bp_stop) {
		warnx("stopped by signal %d", (int)bp_stop);
		return 128 + (int)bp_stop;
	}
	return g_failed ? 1 : 0;
}
