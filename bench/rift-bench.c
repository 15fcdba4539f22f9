/*
 * rift-bench - Rift's figures beside the raw library's, in one run.
 *
 *   rift-bench [--quick] [--seconds S | --bytes N] [--runs N] [--rows LIST]
 *              [--plugins DIR] [--broker PATH] [--timeout S] [-v]
 *
 * Rows (bench/README.md explains each and how to read it):
 *   1   unix netpipe through libnetpipe vs a raw unix stream socket,
 *       64 KiB writes, MB/s
 *   2   the same with 64-byte writes, writes/s
 *   3a  two brokers, exec:np-writer -> Netpipe:unix -> exec:np-reader,
 *       64 KiB writes, MB/s, beside the raw socket's row 1 figure
 *   3b  the same with 64-byte writes, writes/s, beside the raw socket's
 *       unbatched 64-byte figure (row 2)
 *   4   the broker's idle RSS with every plugin loaded
 *
 * Every figure is the median of --runs runs (3); raw and Rift runs are
 * interleaved so drift hits both. The PASS/MISS column compares against
 * the targets and is informational: the exit status says only
 * whether every row could be measured (0) or not (1). DESIGN.md section 9:
 * no absolute-time assertion anywhere.
 *
 * Robustness: every child is registered and killed (TERM, then KILL) on an
 * error, a watchdog, or SIGINT/SIGTERM; children of rift-bench die with it
 * (PR_SET_PDEATHSIG); the temporary directory is removed on every exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

enum kind { RAW, OURS };

enum { ROW_1 = 1u << 0, ROW_2 = 1u << 1, ROW_3A = 1u << 2, ROW_3B = 1u << 3,
       ROW_4 = 1u << 4, ROW_ALL = 0x1f };

/* ---- options ------------------------------------------------------------ */

static struct {
	double seconds;           /* per run; 0 = bytes mode */
	uint64_t bytes;           /* per run cap */
	int runs;
	double timeout;           /* watchdog per run, seconds */
	int verbose;
	bool quick;
	bool no_raw, no_rift;     /* --side: profile one side alone */
	unsigned rows;            /* bit i: row i (1-4) */
	char plugins[PATH_MAX];
	char broker[PATH_MAX];
	char np_writer[PATH_MAX];
	char np_reader[PATH_MAX];
} opt;

static char tmpdir[128];   /* short: socket paths live in it */

/* ---- small helpers -------------------------------------------------------- */


static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void warnx(const char *fmt, ...)
{
	va_list ap;
	fputs("rift-bench: ", stderr);
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

static void tmp_path(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", tmpdir, name);
}

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -errno;
	fputs(text, f);
	return fclose(f) == 0 ? 0 : -errno;
}

/* The file's first len-1 bytes, NUL-terminated; "" when unreadable. */
static void read_file(const char *path, char *out, size_t len)
{
	out[0] = '\0';
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	size_t o = 0;
	ssize_t r;
	while (o + 1 < len && (r = read(fd, out + o, len - 1 - o)) > 0)
		o += (size_t)r;
	out[o] = '\0';
	close(fd);
}

/* Print a child's log file indented, for a failed row. */
static void show_log(const char *what, const char *path)
{
	char buf[2048];
	read_file(path, buf, sizeof buf);
	if (!buf[0])
		return;
	fprintf(stderr, "    %s says:\n", what);
	for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n"))
		fprintf(stderr, "      %s\n", l);
}

static void rm_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d))) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			char p[PATH_MAX + 256];
			snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
			unlink(p);
		}
		closedir(d);
	}
	rmdir(dir);
}

static void rm_tmpdir(void)
{
	if (tmpdir[0])
		rm_dir(tmpdir);
	tmpdir[0] = '\0';
}

/* Running, and not a zombie nobody reaps. */
static bool alive(pid_t pid)
{
	char path[64], st[512];
	if (kill(pid, 0) < 0 && errno == ESRCH)
		return false;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	read_file(path, st, sizeof st);
	char *rp = strrchr(st, ')');
	return !(rp && rp[1] == ' ' && rp[2] == 'Z');
}

/* A run killed with SIGKILL leaves its directory: remove those whose
 * owner (owner.pid inside) is gone. */
static void rm_stale_tmpdirs(const char *base)
{
	DIR *d = opendir(base);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (strncmp(e->d_name, "rift-bench.", 11) != 0)
			continue;
		char dir[PATH_MAX], f[PATH_MAX + 16], buf[32];
		snprintf(dir, sizeof dir, "%s/%.200s", base, e->d_name);
		snprintf(f, sizeof f, "%s/owner.pid", dir);
		read_file(f, buf, sizeof buf);
		long pid = strtol(buf, NULL, 10);
		struct stat st;
		if (pid > 0 && !alive((pid_t)pid) &&
		    lstat(dir, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == getuid())
			rm_dir(dir);
	}
	if (d)
		closedir(d);
}

/* ---- child processes ------------------------------------------------------ */

/* rift-bench is a child subreaper: a broker's program orphaned by a
 * killed broker becomes ours. End and reap whatever is left. */
static void sweep_orphans(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t me = getpid();
	while (d && (e = readdir(d))) {
		long c = strtol(e->d_name, NULL, 10);
		char path[64], st[512];
		if (c <= 0)
			continue;
		snprintf(path, sizeof path, "/proc/%ld/stat", c);
		read_file(path, st, sizeof st);
		char *rp = strrchr(st, ')');
		int ppid = 0;
		if (rp && sscanf(rp + 1, " %*c %d", &ppid) == 1 && ppid == me)
			kill((pid_t)c, SIGKILL);
	}
	if (d)
		closedir(d);
	double until = bp_now() + 2;
	while (bp_now() < until) {
		pid_t r = waitpid(-1, NULL, WNOHANG);
		if (r > 0)
			bp_forget(r);
		else if (r < 0)
			break;
		else
			sleep_ms(5);
	}
}

struct exec_args {
	char *const *argv;
	const char *log;          /* stdout (and stderr, without err) go here */
	const char *err;
};

static void exec_child(void *arg)
{
	struct exec_args *a = arg;
	int nul = open("/dev/null", O_RDONLY);
	int log = open(a->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int err = a->err ? open(a->err, O_WRONLY | O_CREAT | O_TRUNC, 0600) : log;
	if (nul < 0 || log < 0 || err < 0 || dup2(nul, 0) < 0 || dup2(log, 1) < 0 ||
	    dup2(err, 2) < 0)
		_exit(127);
	/* The exec runtime puts its program in a new process group; ours stay
	 * in rift-bench's so a terminal's ^C reaches them too. */
	alarm(0);
	execv(a->argv[0], a->argv);
	dprintf(2, "rift-bench: exec %s: %s\n", a->argv[0], strerror(errno));
	_exit(127);
}

/* ---- statistics ------------------------------------------------------------ */


/* One run: its figure, and the CPU (user + sys) the writer side and the
 * reader side spent per write, in microseconds. */
struct sample {
	double rate, cpu_w, cpu_r;
};

struct figs {
	struct bp_stat rate, cpu_w, cpu_r;
};

static void figs_add(struct figs *f, const struct sample *s)
{
	bp_stat_add(&f->rate, s->rate);
	bp_stat_add(&f->cpu_w, s->cpu_w);
	bp_stat_add(&f->cpu_r, s->cpu_r);
}


/* ---- rows 1 and 2: writer process -> reader process ----------------------- */

struct xfer_res {
	int writer;               /* who wrote this result */
	int failed;               /* 0, or an errno */
	uint64_t bytes;
	uint64_t writes;
	double t_end;
	double cpu_user, cpu_sys;  /* CPU seconds of the transfer (after go) */
	char msg[240];
};

struct xfer {
	enum kind kind;
	size_t wsize;
	int sock;                 /* RAW: this side's end of the socketpair */
	int other;                /* RAW: the other side's end, closed in the child */
	char desc[PATH_MAX + 32]; /* OURS: the descriptor */
	int ready_w, go_r, go_w, res_w;
};



static void cpu_times(double *user, double *sys)
{
	struct rusage ru;
	*user = *sys = 0;
	if (getrusage(RUSAGE_SELF, &ru) == 0) {
		*user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
		*sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	}
}

/* The transfer's CPU: from go (set in cpu_user/cpu_sys) to now. */
static void report(const struct xfer *x, struct xfer_res *r)
{
	double u, s;
	cpu_times(&u, &s);
	r->cpu_user = u - r->cpu_user;
	r->cpu_sys = s - r->cpu_sys;
	ssize_t w = write(x->res_w, r, sizeof *r);
	(void)w;
	_exit(r->failed ? 1 : 0);
}

static void fail_res(struct xfer_res *r, int e, const char *fmt, ...)
{
	va_list ap;
	r->failed = e ? e : EIO;
	va_start(ap, fmt);
	vsnprintf(r->msg, sizeof r->msg, fmt, ap);
	va_end(ap);
}

static void reader_child(void *arg)
{
	struct xfer *x = arg;
	struct xfer_res r = {0};
	static char buf[READ_BUF];
	netpipe_t *np = NULL;
	close(x->go_w);
	if (x->kind == RAW) {
		close(x->other);
	} else if (!(np = netpipe_open(x->desc))) {
		fail_res(&r, errno, "reader: netpipe_open(%s): %s", x->desc, netpipe_error());
		bp_send_byte(x->ready_w, 'E');
		report(x, &r);
	}
	bp_send_byte(x->ready_w, 'R');
	bp_wait_byte(x->go_r);
	cpu_times(&r.cpu_user, &r.cpu_sys);
	for (;;) {
		int64_t n = np ? netpipe_read(np, buf, (int32_t)sizeof buf)
		               : (int64_t)read(x->sock, buf, sizeof buf);
		if (n < 0 && !np && errno == EINTR)
			continue;
		if (n < 0) {
			fail_res(&r, np ? (int)-n : errno, "reader: read after %llu bytes: %s",
			         (unsigned long long)r.bytes,
			         np ? netpipe_error() : strerror(errno));
			break;
		}
		if (n == 0)
			break;
		r.bytes += (uint64_t)n;
	}
	r.t_end = bp_now();
	if (np)
		netpipe_close(np);
	else
		close(x->sock);
	report(x, &r);
}

static void writer_child(void *arg)
{
	struct xfer *x = arg;
	struct xfer_res r = {.writer = 1};
	netpipe_t *np = NULL;
	close(x->go_w);
	char *buf = malloc(x->wsize);
	if (!buf) {
		fail_res(&r, ENOMEM, "writer: out of memory");
		bp_send_byte(x->ready_w, 'E');
		report(x, &r);
	}
	for (size_t i = 0; i < x->wsize; i++)
		buf[i] = (char)('a' + i % 26);
	if (x->kind == RAW) {
		close(x->other);
	} else if (!(np = netpipe_open(x->desc))) {
		fail_res(&r, errno, "writer: netpipe_open(%s): %s", x->desc, netpipe_error());
		bp_send_byte(x->ready_w, 'E');
		report(x, &r);
	}
	bp_send_byte(x->ready_w, 'R');
	bp_wait_byte(x->go_r);
	cpu_times(&r.cpu_user, &r.cpu_sys);
	uint64_t every = x->wsize >= (1u << 20) ? 1 : (1u << 20) / x->wsize;
	double until = opt.seconds > 0 ? bp_now() + opt.seconds : 0;
	while (r.bytes < opt.bytes) {
		size_t want = opt.bytes - r.bytes < x->wsize ? (size_t)(opt.bytes - r.bytes) : x->wsize;
		int64_t w;
		if (np) {
			w = netpipe_write(np, buf, (int32_t)want);
		} else {
			size_t off = 0;
			w = 0;
			while (off < want) {
				ssize_t k = write(x->sock, buf + off, want - off);
				if (k < 0 && errno == EINTR)
					continue;
				if (k < 0) {
					w = -errno;
					break;
				}
				off += (size_t)k;
			}
			if (w == 0)
				w = (int64_t)off;
		}
		if (w != (int64_t)want) {
			fail_res(&r, w < 0 ? (int)-w : EIO, "writer: write after %llu bytes: %s",
			         (unsigned long long)r.bytes,
			         np ? netpipe_error() : strerror(w < 0 ? (int)-w : EIO));
			break;
		}
		r.bytes += want;
		r.writes++;
		if (until > 0 && r.writes % every == 0 && bp_now() >= until)
			break;
	}
	if (np) {
		int rc = netpipe_close(np);
		if (rc < 0 && !r.failed)
			fail_res(&r, -rc, "writer: netpipe_close: %s", netpipe_error());
	} else {
		close(x->sock);
	}
	r.t_end = bp_now();
	report(x, &r);
}



/* One run of a writer process and a reader process. On success puts MB/s
 * (wsize >= 1 KiB) or writes/s, and the CPU per write, in *out. */
static int run_pair(enum kind kind, size_t wsize, struct sample *out)
{
	int ready[2], go[2], res[2], sv[2] = {-1, -1};
	if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0 || pipe2(res, O_CLOEXEC) < 0)
		return -errno;
	if (kind == RAW && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		int e = errno;
		close(ready[0]), close(ready[1]), close(go[0]), close(go[1]);
		close(res[0]), close(res[1]);
		return -e;
	}
	struct xfer xr = {.kind = kind, .wsize = wsize, .ready_w = ready[1], .go_r = go[0],
	                  .go_w = go[1], .res_w = res[1]};
	if (kind == OURS) {
		char sock[PATH_MAX];
		tmp_path(sock, sizeof sock, "lib.sock");
		snprintf(xr.desc, sizeof xr.desc, "Netpipe:unix:%s:r", sock);
	}
	struct xfer xw = xr;
	if (kind == OURS) {
		xw.desc[strlen(xw.desc) - 1] = 'w';
	} else {
		xr.sock = sv[1], xr.other = sv[0];
		xw.sock = sv[0], xw.other = sv[1];
	}
	struct bp_proc ps[2];
	int nps = 0, rc = 0;
	const char *why = NULL;
	double t0 = 0;
	/* The reader first, so that it listens before the writer starts. */
	if ((rc = bp_spawn(&ps[0], reader_child, &xr)) < 0)
		goto out;
	nps = 1;
	if (kind == OURS && !bp_wait_ready(ready[0], 1, ps, nps, bp_now() + 10)) {
		rc = -EIO, why = "the reader did not start";
		goto out;
	}
	if ((rc = bp_spawn(&ps[1], writer_child, &xw)) < 0)
		goto out;
	nps = 2;
	if (!bp_wait_ready(ready[0], kind == OURS ? 1 : 2, ps, nps, bp_now() + 10)) {
		rc = -EIO, why = "a child did not start";
		goto out;
	}
	close(ready[1]), ready[1] = -1;
	close(res[1]), res[1] = -1;
	if (sv[0] >= 0)
		close(sv[0]), close(sv[1]), sv[0] = sv[1] = -1;
	t0 = bp_now();
	close(go[1]), go[1] = -1; /* go! */
	rc = bp_wait(ps, nps, t0 + opt.timeout, true);
	if (rc == -ETIMEDOUT)
		why = "watchdog: the transfer did not finish in time (--timeout)";
out:
	if (rc < 0)
		bp_kill(ps, nps);
	/* Every child is gone: reading the results cannot block. */
	if (res[1] >= 0)
		close(res[1]), res[1] = -1;
	struct xfer_res got[2], *rr = NULL, *ww = NULL;
	for (int i = 0; i < 2 && bp_read_full(res[0], &got[i], sizeof got[i]); i++) {
		*(got[i].writer ? &ww : &rr) = &got[i];
		if (got[i].failed) {
			warnx("%s %s", kind == RAW ? "raw" : "rift", got[i].msg);
			if (rc == 0)
				rc = -got[i].failed;
		}
	}
	if (rc == 0 && (!rr || !ww))
		rc = -EIO, why = "a child died without a result";
	if (rc == 0 && rr->bytes != ww->bytes) {
		warnx("the reader got %llu bytes, the writer sent %llu",
		      (unsigned long long)rr->bytes, (unsigned long long)ww->bytes);
		rc = -EIO;
	}
	if (rc == 0) {
		double dt = rr->t_end - t0;
		double per = (double)ww->writes / 1e6;
		out->rate = wsize >= KIB ? (double)rr->bytes / dt / 1e6 : (double)ww->writes / dt;
		out->cpu_w = (ww->cpu_user + ww->cpu_sys) / per;
		out->cpu_r = (rr->cpu_user + rr->cpu_sys) / per;
		vlog("%s %zu-byte writes: %llu bytes in %.3f s -> %.1f %s; CPU per write: "
		     "writer %.2f+%.2f us, reader %.2f+%.2f us (user+sys)",
		     kind == RAW ? "raw " : "rift", wsize, (unsigned long long)rr->bytes, dt,
		     out->rate, wsize >= KIB ? "MB/s" : "writes/s", ww->cpu_user / per,
		     ww->cpu_sys / per, rr->cpu_user / per, rr->cpu_sys / per);
	} else if (why) {
		warnx("%s", why);
	}
	for (int i = 0; i < 2; i++) {
		if (ready[i] >= 0)
			close(ready[i]);
		if (go[i] >= 0)
			close(go[i]);
		if (res[i] >= 0)
			close(res[i]);
		if (sv[i] >= 0)
			close(sv[i]);
	}
	return rc;
}

/* ---- row 3: two brokers ----------------------------------------------------- */

static void quote_arg(char *out, size_t len, const char *s)
{
	/* exec: splits at blanks; '...' keeps a path with blanks whole. */
	if (strpbrk(s, " \t\"'\\"))
		snprintf(out, len, "'%s'", s);
	else
		snprintf(out, len, "%s", s);
}

static int manifest_timeout(void)
{
	return (int)ceil(opt.timeout) + 5;
}

/* One run of: reader broker (Netpipe:unix -> /dev/stdin of np-reader) and
 * writer broker (np-writer's /dev/stdout -> Netpipe:unix). */
static int run_brokers(size_t wsize, struct sample *sm)
{
	char sock[PATH_MAX], wm[PATH_MAX], rm[PATH_MAX], rout[PATH_MAX];
	char wlog[PATH_MAX], rlog[PATH_MAX], werr[PATH_MAX], rerr[PATH_MAX];
	char text[8 * PATH_MAX], prog[PATH_MAX + 8], secs[32] = "", empty[PATH_MAX];
	tmp_path(empty, sizeof empty, "empty");
	tmp_path(sock, sizeof sock, "b.sock");
	tmp_path(wm, sizeof wm, "writer.manifest");
	tmp_path(rm, sizeof rm, "reader.manifest");
	tmp_path(rout, sizeof rout, "np-reader.out");
	tmp_path(wlog, sizeof wlog, "writer-broker.log");
	tmp_path(rlog, sizeof rlog, "reader-broker.log");
	tmp_path(werr, sizeof werr, "np-writer.err");
	tmp_path(rerr, sizeof rerr, "np-reader.err");
	unlink(rout);
	if (opt.seconds > 0)
		snprintf(secs, sizeof secs, " %g", opt.seconds);
	quote_arg(prog, sizeof prog, opt.np_writer);
	snprintf(text, sizeof text,
	         "# rift-bench: the writer side of row 3\n"
	         "Version = 20130611\n"
	         "Program = exec:%s %llu %zu%s\n"
	         "Memory = 67108864, 0\n"
	         "Timeout = %d\n"
	         "Channel = %s, /dev/stdin, 0, 0, 1, 1, 0, 0\n"
	         "Channel = Netpipe:unix:%s, /dev/stdout, 0, 0, 0, 0, %llu, %llu\n"
	         "Channel = %s, /dev/stderr, 0, 0, 0, 0, 1000, 65536\n",
	         prog, (unsigned long long)opt.bytes, wsize, secs, manifest_timeout(), empty,
	         sock, UNLIMITED, UNLIMITED, werr);
	int rc = write_file(empty, "");
	if (rc == 0)
		rc = write_file(wm, text);
	quote_arg(prog, sizeof prog, opt.np_reader);
	snprintf(text, sizeof text,
	         "# rift-bench: the reader side of row 3\n"
	         "Version = 20130611\n"
	         "Program = exec:%s\n"
	         "Memory = 67108864, 0\n"
	         "Timeout = %d\n"
	         "Channel = Netpipe:unix:%s, /dev/stdin, 0, 0, %llu, %llu, 0, 0\n"
	         "Channel = %s, /dev/stdout, 0, 0, 0, 0, 1000, 65536\n"
	         "Channel = %s, /dev/stderr, 0, 0, 0, 0, 1000, 65536\n",
	         prog, manifest_timeout(), sock, UNLIMITED, UNLIMITED, rout, rerr);
	if (rc == 0)
		rc = write_file(rm, text);
	if (rc < 0) {
		warnx("cannot write a manifest in %s: %s", tmpdir, strerror(-rc));
		return rc;
	}

	char *rargv[] = {opt.broker, "-q", "-m", rm, NULL};
	char *wargv[] = {opt.broker, "-q", "-m", wm, NULL};
	struct exec_args ra = {rargv, rlog, NULL}, wa = {wargv, wlog, NULL};
	struct bp_proc ps[2];
	int nps = 0;
	const char *why = NULL;
	double t0 = bp_now();
	if ((rc = bp_spawn(&ps[0], exec_child, &ra)) < 0)
		goto out;
	nps = 1;
	/* Start the writer once the reader listens, so the writer's connect
	 * backoff is not what we measure. */
	for (struct stat st;;) {
		if (stat(sock, &st) == 0 && S_ISSOCK(st.st_mode))
			break;
		if (bp_try_reap(&ps[0]) || bp_stop || bp_now() > t0 + 10) {
			rc = -EIO, why = "the reader broker did not start listening";
			goto out;
		}
		sleep_ms(1);
	}
	if ((rc = bp_spawn(&ps[1], exec_child, &wa)) < 0)
		goto out;
	nps = 2;
	rc = bp_wait(ps, nps, t0 + opt.timeout, true);
	if (rc == -ETIMEDOUT)
		why = "watchdog: the brokers did not finish in time (--timeout)";
out:
	if (rc < 0)
		bp_kill(ps, nps);
	if (rc == 0 && (ps[0].status || ps[1].status)) {
		warnx("reader broker exited %d, writer broker exited %d", ps[0].status,
		      ps[1].status);
		rc = -EIO;
	}
	char out[64];
	unsigned long long got = 0;
	if (rc == 0) {
		read_file(rout, out, sizeof out);
		char *end;
		got = strtoull(out, &end, 10);
		if (end == out || (*end && *end != '\n')) {
			rc = -EIO, why = "np-reader printed no byte count";
		} else if (opt.seconds <= 0 && got != opt.bytes) {
			warnx("np-reader got %llu bytes, np-writer wrote %llu", got,
			      (unsigned long long)opt.bytes);
			rc = -EIO;
		}
	}
	if (rc == 0) {
		double dt = fmax(ps[0].t_exit, ps[1].t_exit) - t0;
		double per = (double)(got / wsize) / 1e6;
		sm->rate = wsize >= KIB ? (double)got / dt / 1e6 : (double)(got / wsize) / dt;
		sm->cpu_w = ps[1].cpu / per;
		sm->cpu_r = ps[0].cpu / per;
		vlog("brokers %zu-byte writes: %llu bytes in %.3f s -> %.1f %s; CPU per write: "
		     "writer broker+np-writer %.2f us, reader broker+np-reader %.2f us", wsize,
		     got, dt, sm->rate, wsize >= KIB ? "MB/s" : "writes/s", ps[1].cpu / per,
		     ps[0].cpu / per);
		return 0;
	}
	if (why)
		warnx("%s", why);
	show_log("the reader broker", rlog);
	show_log("np-reader", rerr);
	show_log("the writer broker", wlog);
	show_log("np-writer", werr);
	return rc;
}

/* ---- row 4: idle RSS --------------------------------------------------------- */

/* A field of /proc/PID/status in kB, or -1. */
static long status_kb(pid_t pid, const char *field)
{
	char path[64], buf[4096];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	read_file(path, buf, sizeof buf);
	size_t fl = strlen(field);
	for (char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (!strncmp(l, field, fl) && l[fl] == ':')
			return strtol(l + fl + 1, NULL, 10);
	return -1;
}

/* A child of pid whose command name is comm, or 0. */
static pid_t child_named(pid_t pid, const char *comm)
{
	char path[96], buf[512];
	snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)pid);
	read_file(path, buf, sizeof buf);
	char *p = buf;
	bool have_list = access(path, R_OK) == 0;
	DIR *d = have_list ? NULL : opendir("/proc");
	for (;;) {
		long c;
		if (have_list) {
			char *end;
			c = strtol(p, &end, 10);
			if (end == p)
				break;
			p = end;
		} else {
			struct dirent *e = d ? readdir(d) : NULL;
			if (!e)
				break;
			c = strtol(e->d_name, NULL, 10);
			if (c <= 0)
				continue;
			char st[512];
			snprintf(path, sizeof path, "/proc/%ld/stat", c);
			read_file(path, st, sizeof st);
			char *rp = strrchr(st, ')');
			int ppid = 0;
			if (!rp || sscanf(rp + 1, " %*c %d", &ppid) != 1 || ppid != pid)
				continue;
		}
		char name[64];
		snprintf(path, sizeof path, "/proc/%ld/comm", c);
		read_file(path, name, sizeof name);
		name[strcspn(name, "\n")] = '\0';
		if (!strcmp(name, comm)) {
			if (d)
				closedir(d);
			return (pid_t)c;
		}
	}
	if (d)
		closedir(d);
	return 0;
}

static int count_plugins(void)
{
	char out[PATH_MAX], err[PATH_MAX], buf[8192];
	tmp_path(out, sizeof out, "list-plugins.out");
	tmp_path(err, sizeof err, "list-plugins.err");
	char *argv[] = {opt.broker, "--list-plugins", NULL};
	struct exec_args a = {argv, out, err};
	struct bp_proc p;
	if (bp_spawn(&p, exec_child, &a) < 0)
		return -1;
	if (bp_wait(&p, 1, bp_now() + 10, true) < 0 || p.status) {
		bp_kill(&p, 1);
		return -1;
	}
	read_file(out, buf, sizeof buf);
	int n = -1; /* the header line */
	for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n"))
		n++;
	return n;
}

struct rss {
	double rss, anon, file, hwm;   /* MiB */
};

static int run_rss(struct rss *out)
{
	char m[PATH_MAX], log[PATH_MAX], sink[PATH_MAX], sock[PATH_MAX];
	char text[5 * PATH_MAX], prog[PATH_MAX + 8];
	tmp_path(m, sizeof m, "idle.manifest");
	tmp_path(log, sizeof log, "idle-broker.log");
	tmp_path(sink, sizeof sink, "idle.out");
	tmp_path(sock, sizeof sock, "idle.sock");
	quote_arg(prog, sizeof prog, opt.np_reader);
	/* An idle broker: its program waits on a netpipe read that never
	 * comes (the reader listens; no writer ever connects). np-reader
	 * rather than sleep: should the broker die, np-reader reads EOF and
	 * goes too. A regular file, not /dev/null, for the std channels
	 * that are not measured. */
	snprintf(text, sizeof text,
	         "# rift-bench: row 4, an idle broker\n"
	         "Version = 20130611\n"
	         "Program = exec:%s\n"
	         "Memory = 67108864, 0\n"
	         "Timeout = 60\n"
	         "Channel = Netpipe:unix:%s, /dev/stdin, 0, 0, 1000, 65536, 0, 0\n"
	         "Channel = %s, /dev/stdout, 0, 0, 0, 0, 1000, 65536\n"
	         "Channel = %s, /dev/stderr, 0, 0, 0, 0, 1000, 65536\n", prog, sock, sink, sink);
	int rc = write_file(m, text);
	if (rc < 0)
		return rc;
	char *argv[] = {opt.broker, "-q", "-m", m, NULL};
	struct exec_args a = {argv, log, NULL};
	struct bp_proc p;
	if ((rc = bp_spawn(&p, exec_child, &a)) < 0)
		return rc;
	pid_t child = 0;
	double until = bp_now() + 10;
	while (!(child = child_named(p.pid, "np-reader"))) {
		if (bp_try_reap(&p) || bp_stop || bp_now() > until) {
			warnx("the idle broker did not start its program");
			bp_kill(&p, 1);
			show_log("the broker", log);
			return -EIO;
		}
		sleep_ms(2);
	}
	/* The child exists, so the broker has loaded every plugin, opened
	 * every channel and started the runtime; let it settle into its
	 * loop. */
	sleep_ms(opt.quick ? 20 : 100);
	long rss = status_kb(p.pid, "VmRSS");
	out->anon = (double)status_kb(p.pid, "RssAnon") / 1024;
	out->file = (double)status_kb(p.pid, "RssFile") / 1024;
	out->hwm = (double)status_kb(p.pid, "VmHWM") / 1024;
	out->rss = (double)rss / 1024;
	/* SIGTERM: the broker stops its program itself. Should it not, the
	 * program (then ours: rift-bench is a subreaper) is ended too. */
	kill(p.pid, SIGTERM);
	if (bp_wait(&p, 1, bp_now() + 5, true) < 0) {
		bp_kill(&p, 1);
		kill(child, SIGKILL);
		sweep_orphans();
	}
	if (rss < 0) {
		warnx("cannot read VmRSS of the broker");
		return -EIO;
	}
	vlog("idle broker: VmRSS %.2f MiB (anon %.2f, file %.2f), VmHWM %.2f MiB", out->rss,
	     out->anon, out->file, out->hwm);
	return 0;
}

/* ---- the table ----------------------------------------------------------------- */

#define COLS "%-4s %-44s %-9s %12s %12s %7s  %-16s %-6s %s\n"

static void fmt_num(char *out, size_t len, double v, const char *unit)
{
	if (isnan(v))
		snprintf(out, len, "-");
	else if (!strcmp(unit, "writes/s"))
		snprintf(out, len, "%.0f", v);
	else if (v >= 100)
		snprintf(out, len, "%.0f", v);
	else
		snprintf(out, len, "%.2f", v);
}

static int g_failed_rows;
static int g_passed, g_missed;

/* pass: 1 PASS, 0 MISS, -1 no target; NAN for a figure that is absent. */
static void print_row(const char *id, const char *what, const char *unit,
                      const struct bp_stat *ours, const struct bp_stat *raw,
                      const char *target, double want_ratio, double max_abs)
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
	if (isnan(o)) {
		res = opt.no_rift ? "-" : "ERROR";
	} else if (want_ratio > 0 && !isnan(ratio)) {
		res = ratio >= want_ratio ? "PASS" : "MISS";
	} else if (max_abs > 0) {
		res = o < max_abs ? "PASS" : "MISS";
	}
	if (!strcmp(res, "MISS"))
		g_missed++;
	else if (!strcmp(res, "PASS"))
		g_passed++;
	sp[0] = '\0';
	if (ours && ours->n > 1 && raw && raw->n > 1)
		snprintf(sp, sizeof sp, "%.0f%% / %.0f%%", bp_spread(ours), bp_spread(raw));
	else if (ours && ours->n > 1)
		snprintf(sp, sizeof sp, "%.0f%%", bp_spread(ours));
	printf(COLS, id, what, unit, a, b, r, target, res, sp);
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
	printf("rift-bench %s  host %s: nproc %ld (%s), Linux %s %s\n", RIFT_VERSION, host,
	       sysconf(_SC_NPROCESSORS_ONLN), model, u.release, u.machine);
	char mode[96];
	if (opt.seconds > 0 && opt.bytes < UNLIMITED)
		snprintf(mode, sizeof mode, "~%g s or %llu bytes per run", opt.seconds,
		         (unsigned long long)opt.bytes);
	else if (opt.seconds > 0)
		snprintf(mode, sizeof mode, "~%g s per run", opt.seconds);
	else
		snprintf(mode, sizeof mode, "%llu bytes per run", (unsigned long long)opt.bytes);
	printf("build %s; every figure is the median of %d run%s, %s; MB/s = 10^6 bytes/s\n\n",
	       RIFT_BENCH_BUILDTYPE, opt.runs, opt.runs == 1 ? "" : "s", mode);
	printf(COLS, "row", "benchmark", "unit", "rift", "raw", "ratio", "target", "result",
	       "spread (rift / raw)");
	fflush(stdout);
}

/* ---- rows ---------------------------------------------------------------------- */

static struct figs raw_big, raw_small;   /* shared by rows 1-3 */

/* For the CPU table printed after the main one. */
static struct cpu_row {
	const char *id;
	struct figs ours;
	const struct figs *raw;
} cpu_rows[4];
static int ncpu_rows;

static int measure_pair(size_t wsize, struct figs *ours, struct figs *raw, bool want_ours)
{
	for (int i = 0; i < opt.runs && !bp_stop; i++) {
		struct sample v;
		if (raw->rate.n < opt.runs && !opt.no_raw) {
			if (run_pair(RAW, wsize, &v) < 0)
				return -1;
			figs_add(raw, &v);
		}
		if (want_ours && !opt.no_rift) {
			if (run_pair(OURS, wsize, &v) < 0)
				return -1;
			figs_add(ours, &v);
		}
	}
	return bp_stop ? -1 : 0;
}

static void row_lib(const char *id, size_t wsize)
{
	struct cpu_row *row = &cpu_rows[ncpu_rows++];
	bool big = wsize >= KIB;
	struct figs *raw = big ? &raw_big : &raw_small;
	char what[64];
	*row = (struct cpu_row){.id = id, .raw = raw};
	snprintf(what, sizeof what, "unix netpipe, libnetpipe, %s writes", big ? "64 KiB" : "64 B");
	if (measure_pair(wsize, &row->ours, raw, true) < 0 ||
	    (!row->ours.rate.n && !opt.no_rift)) {
		g_failed_rows++;
		memset(&row->ours, 0, sizeof row->ours);
	}
	print_row(id, what, big ? "MB/s" : "writes/s", &row->ours.rate, &raw->rate,
	          big ? ">= 0.95 x raw" : ">= 0.90 x raw", big ? 0.95 : 0.90, 0);
}

static void row_brokers(const char *id, size_t wsize)
{
	struct cpu_row *row = &cpu_rows[ncpu_rows++];
	bool big = wsize >= KIB;
	struct figs *raw = big ? &raw_big : &raw_small;
	char what[64];
	*row = (struct cpu_row){.id = id, .raw = raw};
	snprintf(what, sizeof what, "two brokers + exec, %s writes", big ? "64 KiB" : "64 B");
	/* Row 3's raw figures are rows 1 and 2's raw socket; measure them
	 * here when those rows were not asked for. */
	if (raw->rate.n < opt.runs && measure_pair(wsize, NULL, raw, false) < 0)
		memset(raw, 0, sizeof *raw);
	for (int i = 0; i < opt.runs && !bp_stop && !opt.no_rift; i++) {
		struct sample v;
		if (run_brokers(wsize, &v) < 0) {
			memset(&row->ours, 0, sizeof row->ours);
			break;
		}
		figs_add(&row->ours, &v);
	}
	if ((!row->ours.rate.n && !opt.no_rift) || bp_stop)
		g_failed_rows++;
	print_row(id, what, big ? "MB/s" : "writes/s", &row->ours.rate, &raw->rate,
	          big ? "(none)" : ">= 2 x raw", big ? 0 : 2.0, 0);
}

/* The CPU the same runs cost per write: steadier than throughput on a
 * busy machine, and it says which side pays. */
static void print_cpu_table(void)
{
	if (!ncpu_rows)
		return;
	printf("\nCPU per write, user+sys microseconds (median of the same runs; lower is better)\n");
	printf("%-4s %12s %12s %12s %12s %7s\n", "row", "rift writer", "rift reader",
	       "raw writer", "raw reader", "ratio");
	for (int i = 0; i < ncpu_rows; i++) {
		const struct cpu_row *r = &cpu_rows[i];
		char v[4][32], ratio[16] = "-";
		const struct bp_stat *s[4] = {&r->ours.cpu_w, &r->ours.cpu_r, &r->raw->cpu_w,
		                            &r->raw->cpu_r};
		for (int k = 0; k < 4; k++)
			snprintf(v[k], sizeof v[k], s[k]->n ? "%.2f" : "-", s[k]->median);
		if (s[0]->n && s[2]->n && s[2]->median + s[3]->median > 0)
			snprintf(ratio, sizeof ratio, "%.2f", (s[0]->median + s[1]->median) /
			                                      (s[2]->median + s[3]->median));
		printf("%-4s %12s %12s %12s %12s %7s\n", r->id, v[0], v[1], v[2], v[3], ratio);
	}
	printf("rows 3a/3b: writer = writer broker + np-writer, reader = reader broker + np-reader;\n"
	       "ratio = rift (writer + reader) / raw (writer + reader).\n");
}

static struct rss g_rss;

static void row_rss(void)
{
	struct bp_stat s = {0};
	int n = count_plugins();
	char what[64];
	if (n >= 0)
		snprintf(what, sizeof what, "broker idle RSS, %d plugin%s loaded", n,
		         n == 1 ? "" : "s");
	else
		snprintf(what, sizeof what, "broker idle RSS, all plugins loaded");
	struct rss all[BP_MAX_RUNS];
	for (int i = 0; i < opt.runs && !bp_stop; i++) {
		if (run_rss(&all[i]) < 0) {
			s.n = 0;
			break;
		}
		bp_stat_add(&s, all[i].rss);
	}
	if (!s.n || bp_stop)
		g_failed_rows++;
	for (int i = 0; i < s.n; i++)
		if (all[i].rss == s.median)
			g_rss = all[i];
	print_row("4", what, "MiB", &s, NULL, "< 8 MiB", 0, 8.0);
}

/* ---- setup ----------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fputs("usage: rift-bench [options]\n"
	      "\n"
	      "Prints Rift's figure beside the raw library's for each row, the ratio,\n"
	      "and the target (bench/README.md).\n"
	      "\n"
	      "  -q, --quick          tiny runs, one each: a smoke test, not a measurement\n"
	      "  -s, --seconds S      each run writes for about S seconds (default 2)\n"
	      "  -b, --bytes N        each run writes N bytes (K, M, G suffixes: KiB...);\n"
	      "                       with --seconds, whichever comes first\n"
	      "  -n, --runs N         runs per figure, the median is printed (default 3)\n"
	      "  -r, --rows LIST      rows to run, e.g. 1,2 or 3b,4 (default all: 1,2,3a,3b,4;\n"
	      "                       3 means 3a,3b)\n"
	      "  -P, --plugins DIR    plugin directory (default: <exe>/../plugins)\n"
	      "  -B, --broker PATH    broker executable (default: <exe>/../broker/broker)\n"
	      "  -t, --timeout S      watchdog per run (default 60 + 10 x seconds)\n"
	      "  -S, --side SIDE      raw or rift: run only that side (for profiling;\n"
	      "                       rows then show - for the other)\n"
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

/* Bits: ROW_1, ROW_2, ROW_3A, ROW_3B, ROW_4. */
static int parse_rows(const char *s)
{
	static const struct { const char *name; unsigned bits; } names[] = {
		{"1", ROW_1}, {"2", ROW_2}, {"3", ROW_3A | ROW_3B}, {"3a", ROW_3A},
		{"3b", ROW_3B}, {"4", ROW_4}, {"all", ROW_ALL},
	};
	char buf[128];
	snprintf(buf, sizeof buf, "%s", s);
	opt.rows = 0;
	for (char *save = NULL, *t = strtok_r(buf, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
		size_t i;
		for (i = 0; i < sizeof names / sizeof *names && strcmp(t, names[i].name); i++)
			;
		if (i == sizeof names / sizeof *names)
			return -1;
		opt.rows |= names[i].bits;
	}
	return opt.rows ? 0 : -1;
}

static int exe_dir(char *out, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", out, len - 1);
	if (n <= 0)
		return -1;
	out[n] = '\0';
	char *slash = strrchr(out, '/');
	if (!slash)
		return -1;
	*slash = '\0';
	return 0;
}

static bool is_exec(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, X_OK) == 0;
}

static int find_tools(void)
{
	char dir[PATH_MAX - 64];
	if (exe_dir(dir, sizeof dir) < 0) {
		warnx("cannot find my own directory (/proc/self/exe)");
		return -1;
	}
	if (!opt.plugins[0]) {
		snprintf(opt.plugins, sizeof opt.plugins, "%s/../plugins", dir);
		struct stat st;
		const char *env = getenv("RIFT_PLUGIN_PATH");
		if ((stat(opt.plugins, &st) < 0 || !S_ISDIR(st.st_mode)) && env && *env)
			snprintf(opt.plugins, sizeof opt.plugins, "%s", env);
	}
	if (!opt.broker[0])
		snprintf(opt.broker, sizeof opt.broker, "%s/../broker/broker", dir);
	snprintf(opt.np_writer, sizeof opt.np_writer, "%s/np-writer", dir);
	snprintf(opt.np_reader, sizeof opt.np_reader, "%s/np-reader", dir);
	char real[PATH_MAX];
	if (realpath(opt.plugins, real))
		snprintf(opt.plugins, sizeof opt.plugins, "%s", real);
	if (realpath(opt.broker, real))
		snprintf(opt.broker, sizeof opt.broker, "%s", real);
	struct stat st;
	if (stat(opt.plugins, &st) < 0 || !S_ISDIR(st.st_mode)) {
		warnx("no plugin directory at %s (use --plugins DIR)", opt.plugins);
		return -1;
	}
	if ((opt.rows & (ROW_3A | ROW_3B | ROW_4)) && !is_exec(opt.broker)) {
		warnx("no broker at %s (use --broker PATH)", opt.broker);
		return -1;
	}
	if ((opt.rows & (ROW_3A | ROW_3B)) && (!is_exec(opt.np_writer) || !is_exec(opt.np_reader))) {
		warnx("np-writer and np-reader must be beside rift-bench in %s", dir);
		return -1;
	}
	/* libnetpipe in the row 1-2 children and every broker find the
	 * plugins here, and only here besides the install directory. */
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
		{"plugins", required_argument, 0, 'P'},
		{"broker", required_argument, 0, 'B'},
		{"timeout", required_argument, 0, 't'},
		{"side", required_argument, 0, 'S'},
		{"verbose", no_argument, 0, 'v'},
		{"help", no_argument, 0, 'h'},
		{0, 0, 0, 0},
	};
	int c, runs = 0;
	double seconds = -1, timeout = 0;
	uint64_t bytes = 0;
	opt.rows = ROW_ALL;
	while ((c = getopt_long(argc, argv, "qs:b:n:r:P:B:t:S:vh", longs, NULL)) != -1) {
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
			if (parse_rows(optarg) < 0) {
				warnx("--rows wants a list of 1, 2, 3, 3a, 3b, 4 such as 1,3b");
				return 2;
			}
			break;
		case 'P': snprintf(opt.plugins, sizeof opt.plugins, "%s", optarg); break;
		case 'B': snprintf(opt.broker, sizeof opt.broker, "%s", optarg); break;
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
	opt.timeout = timeout > 0 ? timeout : opt.seconds > 0 ? 60 + 10 * opt.seconds : 600;

	if (find_tools() < 0)
		return 2;
	const char *t = getenv("TMPDIR");
	snprintf(tmpdir, sizeof tmpdir, "%s/rift-bench.XXXXXX", t && *t ? t : "/tmp");
	if (strlen(tmpdir) > 80 || !mkdtemp(tmpdir)) {
		/* A socket path must fit sun_path (108 bytes). */
		snprintf(tmpdir, sizeof tmpdir, "/tmp/rift-bench.XXXXXX");
		if (!mkdtemp(tmpdir)) {
			warnx("cannot create a temporary directory: %s", strerror(errno));
			return 2;
		}
	}
	char owner[PATH_MAX], pidtext[32], base[sizeof tmpdir];
	snprintf(base, sizeof base, "%s", tmpdir);
	*strrchr(base, '/') = '\0';
	rm_stale_tmpdirs(base);
	tmp_path(owner, sizeof owner, "owner.pid");
	snprintf(pidtext, sizeof pidtext, "%ld\n", (long)getpid());
	write_file(owner, pidtext);
	bp_child_alarm = (unsigned)opt.timeout + 10;
	struct sigaction sa = {.sa_handler = bp_on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_CHILD_SUBREAPER, 1);

	print_header();
	if (opt.rows & ROW_1 && !bp_stop)
		row_lib("1", BIG_WSIZE);
	if (opt.rows & ROW_2 && !bp_stop)
		row_lib("2", SMALL_WSIZE);
	if (opt.rows & ROW_3A && !bp_stop)
		row_brokers("3a", BIG_WSIZE);
	if (opt.rows & ROW_3B && !bp_stop)
		row_brokers("3b", SMALL_WSIZE);
	if (opt.rows & ROW_4 && !bp_stop)
		row_rss();

	print_cpu_table();
	printf("\nratio = rift / raw (higher is better; row 4: lower is better). "
	       "Targets are informational:\nthe exit status says only whether every row "
	       "was measured. Raw for rows 3a/3b is the raw socket of rows 1/2.\n");
	if (opt.rows & ROW_4 && g_rss.rss > 0)
		printf("row 4: VmRSS %.2f MiB = anon %.2f + file-backed %.2f (+ shmem); "
		       "VmHWM %.2f MiB\n", g_rss.rss, g_rss.anon, g_rss.file, g_rss.hwm);
	printf("targets met: %d of %d%s\n", g_passed, g_passed + g_missed,
	       g_failed_rows ? "; some rows could not be measured (see above)" : "");
	if (opt.quick)
		printf("--quick: tiny single runs; the figures mean nothing.\n");
	if (bp_stop)
		sweep_orphans();
	rm_tmpdir();
	if (bp_stop) {
		warnx("stopped by signal %d", (int)bp_stop);
		return 128 + (int)bp_stop;
	}
	return g_failed_rows ? 1 : 0;
}
