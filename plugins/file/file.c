/*
 * file.c - netpipes over regular files, FIFOs and character devices.
 *
 * Address: a path, with options:
 *   framed=1   a FIFO carrying Rift framing between two Rift ends: the
 *              reader creates the FIFO (and removes it at close), a killed
 *              writer reads as -ECONNRESET, etag works. Without it a FIFO
 *              is raw bytes, so plain programs can be on the other end, and
 *              a writer that dies looks like EOF (the kernel cannot tell).
 *   append=1   a writer appends to a regular file instead of truncating.
 * Regular files: a reader reads to the end (EOF); a writer creates the
 * file and truncates it when the channel type has sequential writes (0, 1)
 * and keeps its bytes when writes are random (2, 3). Seeking is allowed in
 * the directions the channel type makes random. FIFOs and devices: a writer
 * waits (retrying) until a reader has the FIFO open (rule 1); a write after
 * the reader left is -EPIPE, never SIGPIPE.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frame.h"
#include "netpipe.h"
#include "options.h"

#define RETRY_MIN_MS 2
#define RETRY_MAX_MS 100

enum { K_REG, K_FIFO, K_CHR };

struct fl {
	struct np_pipe *pipe;
	uint32_t mode, type;
	int fd;
	int kind;
	bool framed, created, append, watching_out;
	bool always_ready;       /* regular file, or a device epoll refuses */
	bool write_waits;        /* the last write returned -EAGAIN */
	bool truncate_due;       /* sequential writer: empty the file first,
	                            but not if the run never starts */
	int eof;                 /* raw stream reader: 1 at EOF */
	int64_t retry_ms;
	char path[4096];
	struct nf_writer w;
	struct nf_reader r;
	char err[256];
};

static const struct np_host *host;

static int set_err(struct fl *f, int rc, const char *what)
{
	snprintf(f->err, sizeof f->err, "%s %.160s: %s", what, f->path, strerror(-rc));
	return rc;
}

static int parse(const char *address, char *path, size_t len, bool *framed,
                 bool *append, char *err, size_t errlen)
{
	static const char *const allowed[] = {"framed", "append", NULL};
	struct no_opts o;
	int64_t v;
	int rc = no_parse(address, path, len, &o, allowed, err, errlen);
	if (rc < 0)
		return rc;
	if ((rc = no_get_int(&o, "framed", 0, &v, err, errlen)) < 0)
		return rc;
	*framed = v != 0;
	if ((rc = no_get_int(&o, "append", 0, &v, err, errlen)) < 0)
		return rc;
	*append = v != 0;
	return 0;
}

static int fl_validate(const char *address, uint32_t mode, char *err, size_t errlen)
{
	char path[4096];
	bool framed, append;
	int rc = parse(address, path, sizeof path, &framed, &append, err, errlen);
	if (rc < 0)
		return rc;
	struct stat st;
	if (mode & NP_READ && !framed && stat(path, &st) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	if ((mode & NP_WRITE) && !framed) {
		/* A writer creates the file: its directory must take it. */
		if (stat(path, &st) == 0) {
			if (access(path, W_OK) < 0) {
				snprintf(err, errlen, "%.200s: %s", path, strerror(errno));
				return -errno;
			}
		} else {
			char dir[4096];
			snprintf(dir, sizeof dir, "%s", path);
			char *slash = strrchr(dir, '/');
			if (slash == dir)
				slash[1] = '\0';
			else if (slash)
				*slash = '\0';
			else
				snprintf(dir, sizeof dir, ".");
			if (access(dir, W_OK | X_OK) < 0) {
				snprintf(err, errlen, "cannot create %.200s: directory %.200s: %s",
				         path, dir, strerror(errno));
				return -errno;
			}
		}
	}
	if (framed && mode == NP_RDWR) {
		snprintf(err, errlen, "a framed FIFO is read-only or write-only");
		return -EINVAL;
	}
	return 0;
}

/* Framed/raw FIFO I/O. A FIFO read of 0 means "no writer now": it is the
 * end only once a writer has come and gone (POLLHUP), not before. */
static ssize_t fifo_io(void *ctx, const struct iovec *iov, int n)
{
	struct fl *f = ctx;
	if (f->mode & NP_WRITE)
		return nf_fd_writev(f->fd, false, iov, n);
	ssize_t r = nf_fd_readv(f->fd, iov, n);
	if (r == 0 && f->kind == K_FIFO) {
		struct pollfd pf = {f->fd, POLLIN, 0};
		if (poll(&pf, 1, 0) != 1 || !(pf.revents & POLLHUP))
			return -EAGAIN;
	}
	return r;
}

static void want_out(struct fl *f, bool on);

static int open_writer_end(struct fl *f)
{
	int fd = open(f->path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd >= 0) {
		f->fd = fd;
		/* Probe that epoll takes it (/dev/null does not), then watch
		 * nothing until a write waits. */
		int rc = host->watch_fd(f->pipe, fd, NP_OUT);
		if (rc == -EPERM)
			f->always_ready = true;
		else if (rc < 0)
			return set_err(f, rc, "watch");
		host->watch_fd(f->pipe, fd, 0);
		if (f->framed && nf_start(&f->w) == -EAGAIN)
			want_out(f, true); /* the preamble: "a writer is here" */
		return 0;
	}
	if (errno == ENXIO || (errno == ENOENT && f->framed)) {
		host->set_timer(f->pipe, f->retry_ms);
		f->retry_ms = f->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : f->retry_ms * 2;
		return -EAGAIN;
	}
	return set_err(f, -errno, "open");
}

/* /dev/stdin, /dev/stdout and /dev/stderr name the broker's own fds 0-2.
 * When one is a regular file (a shell redirection), reopening it would
 * truncate it and lose the shell's offset: share the fd instead, as a
 * shell does. Returns the dup'd fd, or -1 to open the path normally. */
static int std_regular_fd(const char *path)
{
	static const char *names[] = {"/dev/stdin", "/dev/stdout", "/dev/stderr"};
	for (int i = 0; i < 3; i++) {
		struct stat st;
		if (strcmp(path, names[i]) == 0 && fstat(i, &st) == 0 && S_ISREG(st.st_mode))
			return fcntl(i, F_DUPFD_CLOEXEC, 3);
	}
	return -1;
}

static int fl_open(struct np_pipe *p, const struct np_open_args *a)
{
	struct fl *f = p->state;
	f->pipe = p;
	f->mode = a->mode;
	f->type = a->type;
	f->fd = -1;
	f->retry_ms = RETRY_MIN_MS;
	int rc = parse(a->address, f->path, sizeof f->path, &f->framed, &f->append,
	               f->err, sizeof f->err);
	if (rc < 0)
		return rc;
	struct stat st;
	bool exists = stat(f->path, &st) == 0;
	if (f->framed) {
		if (a->mode == NP_RDWR || (exists && !S_ISFIFO(st.st_mode))) {
			snprintf(f->err, sizeof f->err, "%.160s: framed=1 needs a FIFO, read or write", f->path);
			return -EINVAL;
		}
		f->kind = K_FIFO;
	} else {
		f->kind = !exists || S_ISREG(st.st_mode) ? K_REG :
		          S_ISFIFO(st.st_mode) ? K_FIFO : S_ISCHR(st.st_mode) ? K_CHR : -1;
		if (f->kind < 0) {
			snprintf(f->err, sizeof f->err, "%.160s: not a regular file, FIFO or character device", f->path);
			return -EINVAL;
		}
	}
	if (!f->framed && (f->fd = std_regular_fd(f->path)) >= 0) {
		f->kind = K_REG;
		return 0;
	}
	if (a->mode == NP_READ) {
		if (f->framed && !exists) {
			if (mkfifo(f->path, 0600) < 0)
				return set_err(f, -errno, "mkfifo");
			f->created = true;
		}
		int fd = open(f->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			return set_err(f, -errno, "open");
		f->fd = fd;
		if (f->framed && (rc = nf_reader_init(&f->r, fifo_io, f, (int)a->etag)) < 0)
			return rc;
		if (f->kind == K_REG)
			return 0;
		rc = host->watch_fd(p, fd, NP_IN);
		if (rc == -EPERM) { /* /dev/zero and friends: always readable */
			f->always_ready = true;
			return 0;
		}
		return rc < 0 ? set_err(f, rc, "watch") : 0;
	}
	if (f->kind != K_REG) {
		if (f->framed && (rc = nf_writer_init(&f->w, fifo_io, f, (int)a->etag)) < 0)
			return rc;
		rc = open_writer_end(f);
		return rc == -EAGAIN ? 0 : rc;
	}
	int flags = O_CLOEXEC | O_CREAT | (a->mode == NP_RDWR ? O_RDWR : O_WRONLY);
	if (f->append)
		flags |= O_APPEND;
	else if (!(a->type & 2) && a->mode == NP_WRITE)
		f->truncate_due = true; /* at the first write or a clean close */
	int fd = open(f->path, flags, 0666);
	if (fd < 0)
		return set_err(f, -errno, "open");
	f->fd = fd;
	return 0;
}

static void want_out(struct fl *f, bool on)
{
	if (f->kind != K_REG && !f->always_ready && f->fd >= 0 && on != f->watching_out) {
		host->watch_fd(f->pipe, f->fd, on ? NP_OUT : 0);
		f->watching_out = on;
	}
}

static uint32_t fl_ready(struct np_pipe *p)
{
	struct fl *f = p->state;
	uint32_t in = f->mode & NP_READ ? NP_IN : 0;
	uint32_t out = f->mode & NP_WRITE ? NP_OUT : 0;
	if (f->kind == K_REG)
		return f->fd >= 0 ? in | out : NP_ERR;
	if (f->fd < 0) {
		if (!(f->mode & NP_WRITE))
			return NP_ERR;
		if (open_writer_end(f) < 0)
			return f->err[0] ? NP_ERR | NP_OUT : 0;
	}
	if (f->always_ready)
		return in | out;
	if (out && f->framed && nf_pending(&f->w)) {
		/* Bytes a write accepted must go out without another write. */
		int rc = nf_flush(&f->w);
		if (rc < 0 && rc != -EAGAIN) {
			want_out(f, false); /* don't spin on a dead FIFO */
			return NP_ERR | NP_OUT;
		}
		/* Keep the NP_OUT watch while a write waits. */
		want_out(f, f->write_waits || nf_pending(&f->w));
		if (nf_pending(&f->w))
			return 0;
	}
	if (in && (f->eof || (f->framed && nf_readable(&f->r))))
		return NP_IN;
	struct pollfd pf = {f->fd, (short)((in ? POLLIN : 0) | (out ? POLLOUT : 0)), 0};
	if (poll(&pf, 1, 0) != 1)
		return 0;
	uint32_t r = 0;
	if (pf.revents & POLLIN)
		r |= NP_IN;
	if (pf.revents & POLLOUT)
		r |= NP_OUT;
	if (pf.revents & POLLHUP)
		r |= in ? NP_IN | NP_HUP : 0;
	if (pf.revents & POLLERR)
		r |= NP_ERR | out;
	return r;
}

static ssize_t fl_read(struct np_pipe *p, void *buf, size_t len)
{
	struct fl *f = p->state;
	if (!(f->mode & NP_READ))
		return -EBADF;
	if (f->framed) {
		ssize_t r = nf_read(&f->r, buf, len);
		if (r < 0 && r != -EAGAIN)
			snprintf(f->err, sizeof f->err, "%.120s: %s", f->path, f->r.why);
		if (r <= 0 && r != -EAGAIN)
			host->watch_fd(p, f->fd, 0);
		return r;
	}
	if (f->eof)
		return 0;
	struct iovec v = {buf, len};
	ssize_t r = f->kind == K_FIFO ? fifo_io(f, &v, 1) : nf_fd_readv(f->fd, &v, 1);
	if (r == 0) {
		f->eof = 1;
		if (f->kind != K_REG)
			host->watch_fd(p, f->fd, 0);
	}
	return r;
}

/* A sequential writer replaces the file, but only once the run really
 * writes or ends cleanly: a run that fails to start destroys nothing. */
static int truncate_now(struct fl *f)
{
	if (!f->truncate_due)
		return 0;
	f->truncate_due = false;
	return ftruncate(f->fd, 0) < 0 ? set_err(f, -errno, "truncate") : 0;
}

static ssize_t fl_write(struct np_pipe *p, const void *buf, size_t len)
{
	struct fl *f = p->state;
	if (!(f->mode & NP_WRITE))
		return -EBADF;
	int trc = truncate_now(f);
	if (trc < 0)
		return trc;
	if (f->fd < 0) {
		int rc = open_writer_end(f);
		if (rc < 0)
			return rc;
	}
	ssize_t r;
	if (f->framed) {
		r = nf_write(&f->w, buf, len);
	} else {
		struct iovec v = {(void *)buf, len};
		r = nf_fd_writev(f->fd, false, &v, 1);
	}
	f->write_waits = r == -EAGAIN;
	if (r < 0 && r != -EAGAIN) {
		want_out(f, false); /* a failed link must not keep us awake */
		if (r == -EPIPE)
			snprintf(f->err, sizeof f->err, "%.160s: the reader went away", f->path);
		return r;
	}
	want_out(f, f->write_waits || (f->framed && nf_pending(&f->w)));
	return r;
}

static bool may_seek(const struct fl *f)
{
	return f->kind == K_REG &&
	       (((f->mode & NP_READ) && (f->type & 1)) ||
	        ((f->mode & NP_WRITE) && (f->type & 2)));
}

static int64_t fl_seek(struct np_pipe *p, int64_t off, int whence)
{
	struct fl *f = p->state;
	if (!may_seek(f))
		return -ESPIPE;
	off_t r = lseek(f->fd, (off_t)off, whence);
	return r < 0 ? -errno : (int64_t)r;
}

static int64_t fl_tell(struct np_pipe *p)
{
	struct fl *f = p->state;
	if (f->kind != K_REG)
		return -ESPIPE;
	off_t r = lseek(f->fd, 0, SEEK_CUR);
	return r < 0 ? -errno : (int64_t)r;
}

static int fl_truncate(struct np_pipe *p, int64_t len)
{
	struct fl *f = p->state;
	if (f->kind != K_REG || !(f->mode & NP_WRITE))
		return -EINVAL;
	return ftruncate(f->fd, (off_t)len) < 0 ? -errno : 0;
}

static int fl_close(struct np_pipe *p, uint32_t flags)
{
	struct fl *f = p->state;
	int result = 0;
	if (!(flags & NP_CLOSE_ABORT) && f->fd >= 0)
		result = truncate_now(f); /* wrote nothing: the output is empty */
	if (!(flags & NP_CLOSE_ABORT) && f->mode == NP_WRITE && f->kind != K_REG) {
		/* A clean close delivers EOF even when nothing was written:
		 * wait for a reader to open the FIFO, like a write would. */
		if (f->fd < 0) {
			int rc = open_writer_end(f);
			if (rc == -EAGAIN)
				return -EAGAIN;
			result = rc;
		}
		if (f->fd >= 0 && f->framed) {
			int rc = nf_end(&f->w);
			if (rc == -EAGAIN) {
				want_out(f, true);
				return -EAGAIN;
			}
			result = rc;
		}
	}
	if (f->fd >= 0) {
		if (f->kind != K_REG)
			host->watch_fd(p, f->fd, 0);
		close(f->fd);
		f->fd = -1;
	}
	if (f->created)
		unlink(f->path);
	host->set_timer(p, -1);
	nf_writer_free(&f->w);
	nf_reader_free(&f->r);
	return result;
}

static int fl_ctl(struct np_pipe *p, int op, void *arg)
{
	struct fl *f = p->state;
	(void)arg;
	if (op == NP_CTL_PENDING)
		return nf_held(&f->w);
	return -ENOTTY;
}

static const char *fl_last_error(struct np_pipe *p)
{
	struct fl *f = p->state;
	return f->err[0] ? f->err : NULL;
}

static int fl_init(const struct np_host *h)
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
	.state_size = sizeof(struct fl),
	.name = "file",
	.version = "1.0",
	.license = "MIT",
	.description = "regular files, FIFOs (raw or framed) and character devices",
	.caps = NP_CAP_SEEK | NP_CAP_TRUNCATE | NP_CAP_RDWR | NP_CAP_ETAG,
	.init = fl_init,
	.validate = fl_validate,
	.open = fl_open,
	.close = fl_close,
	.read = fl_read,
	.write = fl_write,
	.seek = fl_seek,
	.tell = fl_tell,
	.truncate = fl_truncate,
	.ready = fl_ready,
	.ctl = fl_ctl,
	.last_error = fl_last_error,
};

NP_EXPORT const struct np_plugin *np_plugin_entry(const struct np_host *h)
{
	(void)h;
	return &plugin;
}
