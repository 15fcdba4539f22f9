/*
 * unix.c - netpipes over unix stream sockets.
 *
 * Address: an absolute or relative socket path, with options:
 *   connect_timeout=MS  a writer gives up (-ETIMEDOUT) when no reader has
 *                       appeared within MS milliseconds (default: never;
 *                       the manifest's Timeout still bounds it)
 * The reader binds and listens (a stale socket file left by a dead reader
 * is replaced; a live one is -EADDRINUSE); the writer connects and retries
 * with backoff until the reader appears. One writer per pipe: a second
 * writer is accepted and closed at once, so its writes fail with -EPIPE.
 * The stream is framed (plugins/common/frame.h) so a killed writer reads
 * as -ECONNRESET, never as EOF.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "frame.h"
#include "netpipe.h"
#include "options.h"

#define RETRY_MIN_MS 2
#define RETRY_MAX_MS 100

struct ux {
	struct np_pipe *pipe;
	uint32_t mode;
	int lfd;                /* reader: listening socket */
	int fd;                 /* the connection */
	bool bound;             /* we created the socket file */
	bool watching_out;
	bool write_waits;       /* the last write returned -EAGAIN */
	int gave_up;            /* writer: -errno once it stopped trying */
	int64_t retry_ms;
	int64_t deadline;       /* writer: connect_timeout, or -1 */
	struct sockaddr_un sa;
	struct nf_writer w;
	struct nf_reader r;
	char err[256];
};

static const struct np_host *host;

static int set_err(struct ux *u, int rc, const char *fmt, const char *arg)
{
	snprintf(u->err, sizeof u->err, fmt, arg, strerror(-rc));
	return rc;
}

static ssize_t io(void *ctx, const struct iovec *iov, int n)
{
	struct ux *u = ctx;
	return u->mode == NP_READ ? nf_fd_readv(u->fd, iov, n)
	                          : nf_fd_writev(u->fd, true, iov, n);
}

static int parse(const char *address, struct sockaddr_un *sa, int64_t *timeout,
                 char *err, size_t errlen)
{
	static const char *const allowed[] = {"connect_timeout", NULL};
	struct no_opts o;
	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	int rc = no_parse(address, sa->sun_path, sizeof sa->sun_path, &o, allowed,
	                  err, errlen);
	if (rc < 0)
		return rc;
	return no_get_int(&o, "connect_timeout", -1, timeout, err, errlen);
}

static int ux_validate(const char *address, uint32_t mode, char *err, size_t errlen)
{
	struct sockaddr_un sa;
	int64_t t;
	if (mode == NP_RDWR) {
		snprintf(err, errlen, "a unix netpipe is read-only or write-only");
		return -EINVAL;
	}
	return parse(address, &sa, &t, err, errlen);
}

static int new_socket(void)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	return fd < 0 ? -errno : fd;
}

static int listen_at(struct ux *u)
{
	int fd = new_socket();
	if (fd < 0)
		return set_err(u, fd, "socket for %s: %s", u->sa.sun_path);
	int b = bind(fd, (struct sockaddr *)&u->sa, sizeof u->sa);
	if (b < 0 && errno == EADDRINUSE) {
		/* Someone listening, or a file left by a dead reader? */
		int probe = new_socket();
		int live = probe >= 0 &&
		           (connect(probe, (struct sockaddr *)&u->sa, sizeof u->sa) == 0 ||
		            errno == EAGAIN);
		if (probe >= 0)
			close(probe);
		struct stat st;
		if (live || stat(u->sa.sun_path, &st) < 0 || !S_ISSOCK(st.st_mode)) {
			close(fd);
			return set_err(u, -EADDRINUSE, "%s: %s (another reader, or not a socket)",
			               u->sa.sun_path);
		}
		unlink(u->sa.sun_path);
		b = bind(fd, (struct sockaddr *)&u->sa, sizeof u->sa);
	}
	if (b < 0) {
		int rc = -errno;
		close(fd);
		return set_err(u, rc, "bind %s: %s", u->sa.sun_path);
	}
	u->bound = true;
	if (listen(fd, 8) < 0) {
		int rc = -errno;
		close(fd);
		return set_err(u, rc, "listen %s: %s", u->sa.sun_path);
	}
	u->lfd = fd;
	return host->watch_fd(u->pipe, fd, NP_IN);
}

static int ux_open(struct np_pipe *p, const struct np_open_args *a)
{
	struct ux *u = p->state;
	u->pipe = p;
	u->mode = a->mode;
	u->lfd = u->fd = -1;
	u->retry_ms = RETRY_MIN_MS;
	int rc = parse(a->address, &u->sa, &u->deadline, u->err, sizeof u->err);
	if (rc < 0)
		return rc;
	if (u->deadline >= 0)
		u->deadline += host->now_ms(host);
	if (a->mode == NP_READ) {
		if ((rc = nf_reader_init(&u->r, io, u, (int)a->etag)) < 0)
			return rc;
		return listen_at(u);
	}
	if (a->mode != NP_WRITE)
		return -EINVAL;
	if ((rc = nf_writer_init(&u->w, io, u, (int)a->etag)) < 0)
		return rc;
	host->set_timer(p, 0); /* the first connect attempt runs in ready() */
	return 0;
}

/* Writer: one connect attempt; on "no reader yet" retry later. */
static void want_out(struct ux *u, bool on);

static void try_connect(struct ux *u)
{
	if (u->fd >= 0 || u->gave_up)
		return;
	int fd = new_socket();
	if (fd >= 0 && connect(fd, (struct sockaddr *)&u->sa, sizeof u->sa) == 0) {
		u->fd = fd;
		/* The preamble says "a writer is here" at once: one that dies
		 * before its first write then reads as a reset. */
		if (nf_start(&u->w) == -EAGAIN)
			want_out(u, true);
		return;
	}
	int e = fd < 0 ? -fd : errno;
	if (fd >= 0)
		close(fd);
	if (e != ENOENT && e != ECONNREFUSED && e != EAGAIN) {
		u->gave_up = set_err(u, -e, "connect %s: %s", u->sa.sun_path);
		return;
	}
	int64_t now = host->now_ms(host);
	if (u->deadline >= 0 && now >= u->deadline) {
		snprintf(u->err, sizeof u->err, "no reader appeared at %s within connect_timeout",
		         u->sa.sun_path);
		u->gave_up = -ETIMEDOUT;
		return;
	}
	host->set_timer(u->pipe, u->retry_ms);
	u->retry_ms = u->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : u->retry_ms * 2;
}

/* Reader: take the writer, turn away any later one. */
static void try_accept(struct ux *u)
{
	for (int i = 0; i < 16; i++) {
		int fd = accept4(u->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		if (u->fd >= 0) {
			close(fd);
			continue;
		}
		u->fd = fd;
		host->watch_fd(u->pipe, fd, NP_IN);
	}
}

static void want_out(struct ux *u, bool on)
{
	if (u->watching_out != on && u->fd >= 0) {
		host->watch_fd(u->pipe, u->fd, on ? NP_OUT : 0);
		u->watching_out = on;
	}
}

static short poll_fd(int fd, short events)
{
	struct pollfd pf = {fd, events, 0};
	return poll(&pf, 1, 0) == 1 ? pf.revents : 0;
}

static uint32_t ux_ready(struct np_pipe *p)
{
	struct ux *u = p->state;
	if (u->mode == NP_READ) {
		if (u->fd >= 0 && nf_readable(&u->r))
			return NP_IN;
		/* One poll for the connection and the listener; accept only
		 * when someone is knocking. */
		struct pollfd pf[2] = {{u->lfd, POLLIN, 0}, {u->fd, POLLIN, 0}};
		int n = u->fd >= 0 ? 2 : 1;
		if (poll(pf, (nfds_t)n, 0) <= 0)
			return 0;
		if (pf[0].revents & POLLIN) {
			try_accept(u);
			if (n == 1 && u->fd >= 0)
				return ux_ready(p); /* the writer just arrived */
		}
		short re = n == 2 ? pf[1].revents : 0;
		return (re & POLLIN ? NP_IN : 0) | (re & (POLLHUP | POLLERR) ? NP_IN | NP_HUP : 0);
	}
	try_connect(u);
	if (u->gave_up)
		return NP_ERR | NP_OUT;
	if (u->fd < 0)
		return 0;
	if (!u->write_waits && !nf_pending(&u->w))
		want_out(u, false); /* nobody waits: stop the level-triggered watch */
	if (nf_pending(&u->w)) {
		/* Bytes a write accepted must go out without another write. */
		int rc = nf_flush(&u->w);
		if (rc < 0 && rc != -EAGAIN) {
			want_out(u, false); /* a dead link stays writable-ish: don't spin */
			return NP_ERR | NP_OUT; /* the next write reports it */
		}
		/* Keep the NP_OUT watch while a write waits, or the writer
		 * would never hear that the link drained. */
		want_out(u, u->write_waits || nf_pending(&u->w));
		if (nf_pending(&u->w))
			return 0;
	}
	short re = poll_fd(u->fd, POLLOUT);
	return (re & POLLOUT ? NP_OUT : 0) | (re & (POLLHUP | POLLERR) ? NP_OUT | NP_ERR : 0);
}

static ssize_t ux_read(struct np_pipe *p, void *buf, size_t len)
{
	struct ux *u = p->state;
	if (u->mode != NP_READ)
		return -EBADF;
	if (u->fd < 0) {
		try_accept(u);
		if (u->fd < 0)
			return -EAGAIN;
	}
	ssize_t r = nf_read(&u->r, buf, len);
	if (r == -ECONNRESET && nf_untouched(&u->r)) {
		/* A connection that left without one byte was no writer (a
		 * second reader probing whether we are alive, a port check):
		 * drop it and wait for the real one. */
		host->watch_fd(p, u->fd, 0);
		close(u->fd);
		u->fd = -1;
		nf_reader_free(&u->r);
		int rc = nf_reader_init(&u->r, io, u, u->r.etag);
		if (rc < 0)
			return rc;
		try_accept(u);
		return u->fd >= 0 ? ux_read(p, buf, len) : -EAGAIN;
	}
	if (r < 0 && r != -EAGAIN)
		snprintf(u->err, sizeof u->err, "%s: %s", u->sa.sun_path, u->r.why);
	if (r <= 0 && r != -EAGAIN && u->fd >= 0)
		host->watch_fd(p, u->fd, 0); /* nothing more will come */
	return r;
}

static ssize_t ux_write(struct np_pipe *p, const void *buf, size_t len)
{
	struct ux *u = p->state;
	if (u->mode != NP_WRITE)
		return -EBADF;
	if (u->fd < 0) {
		try_connect(u);
		if (u->gave_up)
			return u->gave_up;
		if (u->fd < 0)
			return -EAGAIN;
	}
	ssize_t r = nf_write(&u->w, buf, len);
	u->write_waits = r == -EAGAIN;
	if (r < 0 && r != -EAGAIN)
		want_out(u, false);
	/* Turn the NP_OUT watch on when needed, and off only lazily in
	 * ready(): a busy writer fills the socket again and again, and two
	 * epoll_ctl calls per fill were most of its overhead (bench row 1). */
	if (u->write_waits || nf_pending(&u->w))
		want_out(u, true);
	if (r == -EPIPE)
		snprintf(u->err, sizeof u->err, "%s: the reader went away", u->sa.sun_path);
	return r;
}

static int ux_close(struct np_pipe *p, uint32_t flags)
{
	struct ux *u = p->state;
	int result = 0;
	if (!(flags & NP_CLOSE_ABORT) && u->mode == NP_WRITE) {
		/* A clean close delivers EOF even when nothing was written: wait
		 * for the reader like a write would. */
		try_connect(u);
		if (u->fd < 0 && !u->gave_up)
			return -EAGAIN;
		int rc = u->fd >= 0 ? nf_end(&u->w) : u->gave_up;
		if (rc == -EAGAIN) {
			want_out(u, true);
			return -EAGAIN;
		}
		result = rc;
	}
	if (u->fd >= 0) {
		host->watch_fd(p, u->fd, 0);
		close(u->fd);
	}
	if (u->lfd >= 0) {
		host->watch_fd(p, u->lfd, 0);
		close(u->lfd);
	}
	if (u->bound)
		unlink(u->sa.sun_path);
	u->fd = u->lfd = -1;
	host->set_timer(p, -1);
	nf_writer_free(&u->w);
	nf_reader_free(&u->r);
	return result;
}

static int ux_ctl(struct np_pipe *p, int op, void *arg)
{
	struct ux *u = p->state;
	(void)arg;
	if (op == NP_CTL_PENDING) /* held bytes, or why they cannot go */
		return u->w.err ? u->w.err : (int)(u->w.pend_len - u->w.pend_off);
	return -ENOTTY;
}

static const char *ux_last_error(struct np_pipe *p)
{
	struct ux *u = p->state;
	return u->err[0] ? u->err : NULL;
}

static int ux_init(const struct np_host *h)
{
	host = h;
	return 0;
}

static const struct np_plugin plugin = {
	.struct_size = sizeof(struct np_plugin),
	.magic = NP_MAGIC,
	.abi_major = NP_ABI_MAJOR,
	.abi_minor = NP_ABI_MINOR,
	.kind = NP_KIND_TRANSPORT,
	.state_size = sizeof(struct ux),
	.name = "unix",
	.version = "1.0",
	.license = "MIT",
	.description = "unix stream sockets: the reader listens, the writer connects",
	.caps = NP_CAP_ETAG,
	.init = ux_init,
	.validate = ux_validate,
	.open = ux_open,
	.close = ux_close,
	.read = ux_read,
	.write = ux_write,
	.ready = ux_ready,
	.ctl = ux_ctl,
	.last_error = ux_last_error,
};

NP_EXPORT const struct np_plugin *np_plugin_entry(const struct np_host *h)
{
	(void)h;
	return &plugin;
}
