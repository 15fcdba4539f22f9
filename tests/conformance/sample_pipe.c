/*
 * sample_pipe.c - a small, complete netpipe transport over unix stream
 * sockets: the example docs/writing-a-plugin.md points to, and the plugin
 * the conformance kit checks itself against.
 *
 *     Netpipe:sample:/run/x.sock:r     the reader: binds, listens, accepts
 *     Netpipe:sample:/run/x.sock:w     the writer: connects, retrying every
 *                                      RETRY_MS until the reader is there
 *
 * Why framing on a stream socket: when a writer is killed, the kernel closes
 * its socket exactly as a clean close() would, so the reader could not tell
 * a finished stream from a broken one (rule 5). So the writer frames the
 * stream, in the format every Rift stream transport speaks (docs/
 * semantics.md, "the framing"; all integers little-endian):
 *
 *     preamble  "RFT1", u32 flags (bit 0: END will carry a digest)
 *     DATA      u32 header 0 << 28 | n, then n bytes (here n <= MAX_FRAME)
 *     END       u32 header 1 << 28 | d, then d bytes: 0, or the 32-byte
 *               BLAKE2b digest of every DATA byte (when etag is set)
 *
 * A socket that ends without END is -ECONNRESET, never EOF.
 *
 * Everything is non-blocking: an op that cannot progress returns -EAGAIN
 * after arranging to be called again (host->watch_fd for a socket, or
 * host->set_timer while the reader is not there yet).
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <sodium.h>

#include "netpipe.h"

#define MAX_FRAME (64 * 1024)
#define TYPE_DATA 0u
#define TYPE_END  1u
#define DIGEST    32
#define RETRY_MS  20

struct sp {
	int fd;                   /* the connection, -1 until there is one */
	int lfd;                  /* the reader's listening socket, or -1 */
	uint32_t fd_events;       /* what fd is watched for */
	int err;                  /* sticky negative errno, 0 while healthy */
	int etag;
	struct sockaddr_un sun;
	char msg[160];            /* for last_error() */
	/* the digest state: libsodium wants it 64-byte aligned, which
	 * np_pipe.state is (NP_STATE_ALIGN) */
	crypto_generichash_state hash;

	/* writer: the preamble or one frame in flight */
	int end_queued;
	size_t out_len, out_off;
	uint8_t out[4 + MAX_FRAME];

	/* reader */
	uint8_t pre[8];
	size_t pre_got;
	uint8_t hdr[4];
	size_t hdr_got;
	size_t left;              /* body bytes of the current data frame */
	uint8_t dig[DIGEST];
	size_t dig_got;
	int eof;
};

static crypto_generichash_state *hstate(struct sp *s)
{
	return &s->hash;
}

static int fail(struct np_pipe *pipe, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Record a failure; it sticks, and the fd is no longer watched. */
static int fail(struct np_pipe *pipe, int rc, const char *fmt, ...)
{
	struct sp *s = pipe->state;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->msg, sizeof s->msg, fmt, ap);
	va_end(ap);
	s->err = rc;
	if (s->fd >= 0 && s->fd_events)
		pipe->host->watch_fd(pipe, s->fd, 0);
	s->fd_events = 0;
	return rc;
}

static void watch(struct np_pipe *pipe, uint32_t events)
{
	struct sp *s = pipe->state;
	if (s->fd_events != events && pipe->host->watch_fd(pipe, s->fd, events) == 0)
		s->fd_events = events;
}

static int parse(const char *address, uint32_t mode, struct sockaddr_un *sun,
                 char *err, size_t errlen)
{
	const char *why = NULL;
	if (!address || !*address)
		why = "the address is empty: expected a socket path";
	else if (strchr(address, '?'))
		why = "this plugin takes no options";
	else if (strlen(address) >= sizeof sun->sun_path)
		why = "the socket path is too long";
	else if (mode != NP_READ && mode != NP_WRITE)
		why = "a pipe is opened for reading or for writing, not both";
	if (why) {
		snprintf(err, errlen, "%s", why);
		return -EINVAL;
	}
	memset(sun, 0, sizeof *sun);
	sun->sun_family = AF_UNIX;
	strcpy(sun->sun_path, address);
	return 0;
}

static int sp_validate(const char *address, uint32_t mode, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	return parse(address, mode, &sun, err, errlen);
}

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

/* The writer: one connection attempt. No reader yet is not an error:
 * try again in RETRY_MS (rule 7). */
static void try_connect(struct np_pipe *pipe)
{
	struct sp *s = pipe->state;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fail(pipe, -errno, "socket: %s", strerror(errno));
		return;
	}
	if (connect(fd, (struct sockaddr *)&s->sun, sizeof s->sun) == 0) {
		s->fd = fd;
		memcpy(s->out, "RFT1", 4); /* the preamble goes first */
		put_u32(s->out + 4, s->etag ? 1 : 0);
		s->out_len = 8;
		return;
	}
	int e = errno;
	close(fd);
	if (e == ENOENT || e == ECONNREFUSED || e == EAGAIN)
		pipe->host->set_timer(pipe, RETRY_MS);
	else
		fail(pipe, -e, "connect %s: %s", s->sun.sun_path, strerror(e));
}

/* The reader: take the writer's connection if it is there. */
static void try_accept(struct np_pipe *pipe)
{
	struct sp *s = pipe->state;
	int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return; /* not yet; the listening socket is watched */
	s->fd = fd;
	pipe->host->watch_fd(pipe, s->lfd, 0); /* one writer per pipe */
	watch(pipe, NP_IN);
}

static int sp_open(struct np_pipe *pipe, const struct np_open_args *args)
{
	struct sp *s = pipe->state;
	char why[128];
	s->fd = s->lfd = -1; /* first, so that close() works whatever fails */
	s->etag = args->etag;
	if (parse(args->address, args->mode, &s->sun, why, sizeof why) != 0)
		return fail(pipe, -EINVAL, "%s", why);
	crypto_generichash_init(hstate(s), NULL, 0, DIGEST);
	if (args->mode == NP_WRITE) {
		try_connect(pipe);
		return s->err;
	}
	s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->lfd < 0)
		return fail(pipe, -errno, "socket: %s", strerror(errno));
	/* A socket file left by an earlier reader that died is in the way. */
	struct stat st;
	if (lstat(s->sun.sun_path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(s->sun.sun_path);
	if (bind(s->lfd, (struct sockaddr *)&s->sun, sizeof s->sun) != 0 || listen(s->lfd, 4) != 0) {
		int e = errno;
		close(s->lfd);
		s->lfd = -1;
		return fail(pipe, -e, "bind %s: %s", s->sun.sun_path, strerror(e));
	}
	return pipe->host->watch_fd(pipe, s->lfd, NP_IN);
}

/* The writer: send what is left of the frame in flight. 0 when it is all
 * gone, -EAGAIN (watching for NP_OUT) or the failure. */
static int flush(struct np_pipe *pipe)
{
	struct sp *s = pipe->state;
	while (s->out_off < s->out_len) {
		ssize_t n = send(s->fd, s->out + s->out_off, s->out_len - s->out_off,
		                 MSG_NOSIGNAL | MSG_DONTWAIT); /* never SIGPIPE (rule 4) */
		if (n > 0) {
			s->out_off += (size_t)n;
		} else if (errno == EAGAIN) {
			watch(pipe, NP_OUT);
			return -EAGAIN;
		} else {
			return fail(pipe, errno == EPIPE || errno == ECONNRESET ? -EPIPE : -errno,
			            "the reader has gone (%s)", strerror(errno));
		}
	}
	s->out_off = s->out_len = 0;
	watch(pipe, 0);
	return 0;
}

static ssize_t sp_write(struct np_pipe *pipe, const void *buf, size_t len)
{
	struct sp *s = pipe->state;
	if (s->err)
		return s->err;
	if (s->fd < 0)
		return -EAGAIN; /* no reader yet (rule 1); the timer retries */
	int rc = flush(pipe);
	if (rc != 0)
		return rc;
	size_t n = len < MAX_FRAME ? len : MAX_FRAME;
	if (n == 0)
		return 0;
	put_u32(s->out, TYPE_DATA << 28 | (uint32_t)n);
	memcpy(s->out + 4, buf, n);
	s->out_len = 4 + n;
	if (s->etag)
		crypto_generichash_update(hstate(s), buf, n);
	rc = flush(pipe);
	return rc == 0 || rc == -EAGAIN ? (ssize_t)n : rc; /* taken: it is in flight */
}

/* The reader: consume the preamble, frame headers and END as far as the
 * socket allows, but no DATA bytes: those are for read(). */
static void advance(struct np_pipe *pipe)
{
	struct sp *s = pipe->state;
	while (s->fd >= 0 && !s->err && !s->eof && s->left == 0) {
		uint8_t *dst;
		size_t want, *got;
		if (s->pre_got < sizeof s->pre) {
			dst = s->pre + s->pre_got, want = sizeof s->pre - s->pre_got, got = &s->pre_got;
		} else if (s->hdr_got < sizeof s->hdr) {
			dst = s->hdr + s->hdr_got, want = sizeof s->hdr - s->hdr_got, got = &s->hdr_got;
		} else {
			uint32_t h = s->hdr[0] | s->hdr[1] << 8 | s->hdr[2] << 16 |
			             (uint32_t)s->hdr[3] << 24;
			uint32_t type = h >> 28, n = h & 0x0fffffffu;
			if (type == TYPE_DATA && n >= 1 && n <= 256 * 1024) {
				s->left = n;
				s->hdr_got = 0;
				return;
			}
			if (type != TYPE_END || (n != 0 && n != DIGEST)) {
				fail(pipe, -EPROTO, "bad frame header 0x%08x", h);
				return;
			}
			if (s->dig_got < n) {
				dst = s->dig + s->dig_got, want = n - s->dig_got, got = &s->dig_got;
			} else {
				/* The whole END is here. */
				if (s->etag) {
					uint8_t d[DIGEST];
					crypto_generichash_final(hstate(s), d, sizeof d);
					if (n != DIGEST || sodium_memcmp(d, s->dig, DIGEST) != 0) {
						fail(pipe, -EBADMSG, n ? "the stream's digest does not "
						     "match" : "the writer sent no digest");
						return;
					}
				}
				s->eof = 1;
				watch(pipe, 0);
				return;
			}
		}
		ssize_t r = recv(s->fd, dst, want, MSG_DONTWAIT);
		if (r == 0)
			fail(pipe, -ECONNRESET, "the writer went away without ending the stream");
		else if (r < 0 && errno != EAGAIN)
			fail(pipe, -errno, "recv: %s", strerror(errno));
		if (r <= 0)
			return;
		*got += (size_t)r;
		if (got == &s->pre_got && s->pre_got == sizeof s->pre && memcmp(s->pre, "RFT1", 4))
			fail(pipe, -EPROTO, "the writer does not speak Rift framing");
	}
}

static ssize_t sp_read(struct np_pipe *pipe, void *buf, size_t len)
{
	struct sp *s = pipe->state;
	if (s->fd < 0 && s->lfd >= 0)
		try_accept(pipe);
	advance(pipe);
	if (s->err)
		return s->err;
	if (s->eof)
		return 0; /* again and again (rule 3) */
	if (s->left == 0)
		return -EAGAIN;
	ssize_t n = recv(s->fd, buf, len < s->left ? len : s->left, MSG_DONTWAIT);
	if (n > 0) {
		s->left -= (size_t)n;
		if (s->etag)
			crypto_generichash_update(hstate(s), buf, (size_t)n);
		return n;
	}
	if (n == 0)
		return fail(pipe, -ECONNRESET, "the writer went away in the middle of a frame");
	return errno == EAGAIN ? -EAGAIN : fail(pipe, -errno, "recv: %s", strerror(errno));
}

static uint32_t sp_ready(struct np_pipe *pipe)
{
	struct sp *s = pipe->state;
	if (pipe->mode == NP_WRITE) {
		if (!s->err && s->fd < 0)
			try_connect(pipe);
		if (!s->err && s->fd >= 0 && flush(pipe) == 0)
			return NP_OUT;
		return s->err ? NP_ERR : 0;
	}
	if (s->fd < 0 && s->lfd >= 0)
		try_accept(pipe);
	advance(pipe);
	if (s->err)
		return NP_IN | NP_ERR; /* a read returns the error now */
	if (s->eof)
		return NP_IN | NP_HUP;
	struct pollfd p = { .fd = s->fd, .events = POLLIN };
	if (s->left > 0 && poll(&p, 1, 0) > 0)
		return NP_IN;
	return 0;
}

static int sp_close(struct np_pipe *pipe, uint32_t flags)
{
	struct sp *s = pipe->state;
	int rc = s->err;
	if (pipe->mode == NP_WRITE && !(flags & NP_CLOSE_ABORT) && !s->err) {
		/* A clean close: finish the frame in flight, then end the stream
		 * (rule 3). -EAGAIN until it is all sent; the broker calls again. */
		if (s->fd < 0)
			try_connect(pipe);
		if (s->fd < 0 && !s->err)
			return -EAGAIN;
		rc = flush(pipe);
		if (rc == 0 && !s->end_queued) {
			uint32_t dlen = s->etag ? DIGEST : 0;
			put_u32(s->out, TYPE_END << 28 | dlen);
			if (dlen)
				crypto_generichash_final(hstate(s), s->out + 4, DIGEST);
			s->out_len = 4 + dlen;
			s->end_queued = 1;
			rc = flush(pipe);
		}
		if (rc == -EAGAIN)
			return -EAGAIN;
	}
	if (s->fd >= 0)
		close(s->fd);
	if (s->lfd >= 0) {
		close(s->lfd);
		unlink(s->sun.sun_path);
	}
	s->fd = s->lfd = -1;
	return flags & NP_CLOSE_ABORT ? 0 : rc;
}

static int sp_init(const struct np_host *host)
{
	(void)host;
	return sodium_init() < 0 ? -EIO : 0;
}

static const char *sp_last_error(struct np_pipe *pipe)
{
	struct sp *s = pipe->state;
	return s->msg[0] ? s->msg : NULL;
}

static const struct np_plugin sample_plugin = {
	.struct_size = sizeof(struct np_plugin),
	.magic = NP_MAGIC,
	.abi_major = NP_ABI_MAJOR,
	.abi_minor = NP_ABI_MINOR,
	.kind = NP_KIND_TRANSPORT,
	.state_size = sizeof(struct sp),
	.name = "sample",
	.version = "1.0",
	.license = "MIT",
	.description = "example transport: framed unix stream sockets",
	.caps = NP_CAP_ETAG,
	.init = sp_init,
	.validate = sp_validate,
	.open = sp_open,
	.close = sp_close,
	.read = sp_read,
	.write = sp_write,
	.ready = sp_ready,
	.last_error = sp_last_error,
	/* seek, tell, truncate, ctl: NULL, the broker's defaults apply */
};

NP_EXPORT const struct np_plugin *np_plugin_entry(const struct np_host *host);

NP_EXPORT const struct np_plugin *np_plugin_entry(const struct np_host *host)
{
	(void)host;
	return &sample_plugin;
}
