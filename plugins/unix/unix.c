/*
 * unix.c - netpipes over unix stream sockets.
 *
 * Address: an absolute or relative socket path, with options:
 *   listen=reader|writer  which end binds and listens (default: reader,
 *                         rule 7); the other connects, retrying with
 *                         backoff until the listener appears
 *   connect_timeout=MS    the connecting end gives up (-ETIMEDOUT) when no
 *                         peer has appeared within MS milliseconds
 *                         (default: never; the manifest's Timeout still
 *                         bounds it)
 * The listener holds an exclusive lock on PATH.lock while it lives, which
 * tells a live listener (-EADDRINUSE) from a socket file a dead one left
 * (replaced). One peer per pipe: a second one is accepted and closed at
 * once. The stream is framed (plugins/common/frame.h) so a killed writer
 * reads as -ECONNRESET, never as EOF.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
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
	bool listens;           /* this end binds; the peer connects */
	int lfd;                /* listening socket, or -1 */
	int lockfd;             /* PATH.lock, held while listening, or -1 */
	int fd;                 /* the connection, or -1 */
	bool bound;             /* we created the socket file */
	bool watching_out;
	bool write_waits;       /* the last write returned -EAGAIN */
	int gave_up;            /* connecting end: -errno once it stopped */
	int64_t retry_ms;
	int64_t deadline;       /* connect_timeout, or -1 */
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

static int parse(const char *address, uint32_t mode, struct sockaddr_un *sa,
                 int64_t *timeout, bool *listens, char *err, size_t errlen)
{
	static const char *const allowed[] = {"connect_timeout", "listen", NULL};
	struct no_opts o;
	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	int rc = no_parse(address, sa->sun_path, sizeof sa->sun_path, &o, allowed,
	                  err, errlen);
	if (rc < 0)
		return rc;
	const char *who = no_get(&o, "listen");
	if (who && strcmp(who, "reader") != 0 && strcmp(who, "writer") != 0) {
		snprintf(err, errlen, "option listen=%s: expected reader or writer", who);
		return -EINVAL;
	}
	*listens = (mode == NP_WRITE) == (who && strcmp(who, "writer") == 0);
	return no_get_int(&o, "connect_timeout", -1, timeout, err, errlen);
}

static int ux_validate(const char *address, uint32_t mode, char *err, size_t errlen)
{
	struct sockaddr_un sa;
	int64_t t;
	bool l;
	if (mode == NP_RDWR) {
		snprintf(err, errlen, "a unix netpipe is read-only or write-only");
		return -EINVAL;
	}
	return parse(address, mode, &sa, &t, &l, err, errlen);
}

static int new_socket(void)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	return fd < 0 ? -errno : fd;
}

/* Take PATH.lock, or say that a live listener holds it. */
static int take_lock(struct ux *u)
{
	char lock[sizeof u->sa.sun_path + 8];
	snprintf(lock, sizeof lock, "%s.lock", u->sa.sun_path);
	int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return set_err(u, -errno, "lock file for %s: %s", u->sa.sun_path);
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		close(fd);
		if (e == EWOULDBLOCK)
			return set_err(u, -EADDRINUSE, "%s: %s (another end is listening there)",
			               u->sa.sun_path);
		return set_err(u, -e, "lock file for %s: %s", u->sa.sun_path);
	}
	u->lockfd = fd;
	return 0;
}

static int listen_at(struct ux *u)
{
	int rc = take_lock(u);
	if (rc < 0)
		return rc;
	int fd = new_socket();
	if (fd < 0)
		return set_err(u, fd, "socket for %s: %s", u->sa.sun_path);
	int b = bind(fd, (struct sockaddr *)&u->sa, sizeof u->sa);
	if (b < 0 && errno == EADDRINUSE) {
		/* We hold the lock, so no listener lives: a socket file left by
		 * a dead one. Anything else at that path is not ours to remove. */
		struct stat st;
		if (stat(u->sa.sun_path, &st) < 0 || !S_ISSOCK(st.st_mode)) {
			close(fd);
			return set_err(u, -EADDRINUSE, "%s: %s (not a socket)", u->sa.sun_path);
		}
		unlink(u->sa.sun_path);
		b = bind(fd, (struct sockaddr *)&u->sa, sizeof u->sa);
	}
	if (b < 0) {
		rc = -errno;
		close(fd);
		return set_err(u, rc, "bind %s: %s", u->sa.sun_path);
	}
	u->bound = true;
	if (listen(fd, 8) < 0) {
		rc = -errno;
		close(fd);
		return set_err(u, rc, "listen %s: %s", u->sa.sun_path);
	}
	u->lfd = fd;
	return host->watch_fd(u->pipe, fd, NP_IN);
}

static void want_out(struct ux *u, bool on)
{
	if (u->watching_out != on && u->fd >= 0) {
		host->watch_fd(u->pipe, u->fd, on ? NP_OUT : 0);
		u->watching_out = on;
	}
}

/* The peer is here, on fd. A writer says so at once with the preamble,
 * so that one that dies before its first write reads as a reset. */
static void connected(struct ux *u, int fd)
{
	u->fd = fd;
	if (u->mode == NP_READ)
		host->watch_fd(u->pipe, fd, NP_IN);
	else if (nf_start(&u->w) == -EAGAIN)
		want_out(u, true);
}

/* Connecting end: one attempt; while nobody listens, retry later. */
static void try_connect(struct ux *u)
{
	if (u->fd >= 0 || u->gave_up)
		return;
	int fd = new_socket();
	if (fd >= 0 && connect(fd, (struct sockaddr *)&u->sa, sizeof u->sa) == 0) {
		connected(u, fd);
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
		snprintf(u->err, sizeof u->err, "no peer appeared at %s within connect_timeout",
		         u->sa.sun_path);
		u->gave_up = -ETIMEDOUT;
		return;
	}
	host->set_timer(u->pipe, u->retry_ms);
	u->retry_ms = u->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : u->retry_ms * 2;
}

/* Listening end: take the peer, turn away any later one. */
static void try_accept(struct ux *u)
{
	for (int i = 0; i < 16; i++) {
		int fd = accept4(u->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		if (u->fd >= 0)
			close(fd);
		else
			connected(u, fd);
	}
}

/* Make progress on the rendezvous, whichever end this is. */
static void rendezvous(struct ux *u)
{
	if (u->listens)
		try_accept(u);
	else
		try_connect(u);
}

static int ux_open(struct np_pipe *p, const struct np_open_args *a)
{
	struct ux *u = p->state;
	u->pipe = p;
	u->mode = a->mode;
	u->lfd = u->fd = u->lockfd = -1;
	u->retry_ms = RETRY_MIN_MS;
	if (a->mode != NP_READ && a->mode != NP_WRITE)
		return -EINVAL;
	int rc = parse(a->address, a->mode, &u->sa, &u->deadline, &u->listens, u->err,
	               sizeof u->err);
	if (rc < 0)
		return rc;
	if (u->deadline >= 0)
		u->deadline += host->now_ms(host);
	rc = a->mode == NP_READ ? nf_reader_init(&u->r, io, u, (int)a->etag)
	                        : nf_writer_init(&u->w, io, u, (int)a->etag);
	if (rc < 0)
		return rc;
	if (u->listens)
		return listen_at(u);
	host->set_timer(p, 0); /* the first connect attempt runs in ready() */
	return 0;
}

static uint32_t ux_ready(struct np_pipe *p)
{
	struct ux *u = p->state;
	bool reading = u->mode == NP_READ;
	if (reading && u->fd >= 0 && nf_readable(&u->r))
		return NP_IN;
	if (!u->listens) {
		try_connect(u);
		if (u->gave_up)
			return NP_ERR | (reading ? NP_IN : NP_OUT);
		if (u->fd < 0)
			return 0;
	}
	if (!reading) {
		if (!u->write_waits && !nf_pending(&u->w))
			want_out(u, false); /* nobody waits: stop the level-triggered watch */
		if (u->fd >= 0 && nf_pending(&u->w)) {
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
	}
	/* One poll for the connection and the listener; accept only when
	 * someone is knocking. */
	short want = reading ? POLLIN : POLLOUT;
	struct pollfd pf[2] = {{u->fd, want, 0}, {u->lfd, POLLIN, 0}};
	if (poll(pf, u->lfd >= 0 ? 2 : 1, 0) <= 0)
		return 0;
	if (pf[1].revents & POLLIN) {
		bool had = u->fd >= 0;
		try_accept(u);
		if (!had && u->fd >= 0)
			return ux_ready(p); /* the peer just arrived */
	}
	short re = u->fd >= 0 ? pf[0].revents : 0;
	if (reading)
		return (re & POLLIN ? NP_IN : 0) | (re & (POLLHUP | POLLERR) ? NP_IN | NP_HUP : 0);
	return (re & POLLOUT ? NP_OUT : 0) | (re & (POLLHUP | POLLERR) ? NP_OUT | NP_ERR : 0);
}

static ssize_t ux_read(struct np_pipe *p, void *buf, size_t len)
{
	struct ux *u = p->state;
	if (u->mode != NP_READ)
		return -EBADF;
	if (u->fd < 0) {
		rendezvous(u);
		if (u->gave_up)
			return u->gave_up;
		if (u->fd < 0)
			return -EAGAIN;
	}
	ssize_t r = nf_read(&u->r, buf, len);
	if (r == -ECONNRESET && nf_untouched(&u->r)) {
		/* A connection that left without one byte was no writer (a port
		 * check, a peer that went before it began): drop it and wait
		 * for the real one. */
		host->watch_fd(p, u->fd, 0);
		close(u->fd);
		u->fd = -1;
		nf_reader_free(&u->r);
		int rc = nf_reader_init(&u->r, io, u, u->r.etag);
		if (rc < 0)
			return rc;
		rendezvous(u);
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
		rendezvous(u);
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
		rendezvous(u);
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
	if (u->lockfd >= 0) {
		/* Unlink before unlocking: a new listener then finds no file,
		 * or its own. */
		char lock[sizeof u->sa.sun_path + 8];
		snprintf(lock, sizeof lock, "%s.lock", u->sa.sun_path);
		unlink(lock);
		close(u->lockfd);
	}
	u->fd = u->lfd = u->lockfd = -1;
	host->set_timer(p, -1);
	nf_writer_free(&u->w);
	nf_reader_free(&u->r);
	return result;
}

static int ux_ctl(struct np_pipe *p, int op, void *arg)
{
	struct ux *u = p->state;
	(void)arg;
	if (op == NP_CTL_PENDING)
		return nf_held(&u->w);
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
	.description = "unix stream sockets: one end listens, the other connects",
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
