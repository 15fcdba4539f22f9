/*
 * test_frame.c - the framing every Rift stream transport shares
 * (plugins/common/frame.c), driven over real non-blocking socketpairs and
 * pipes through nf_fd_writev/nf_fd_readv, as the unix and file transports
 * drive it.
 *
 * DESIGN.md section 4: no byte lost, duplicated or reordered; EOF only
 * after a clean END (0 again and again); a writer that vanishes is
 * -ECONNRESET after the bytes that came; etag mismatches are -EBADMSG; a
 * write after the reader went is -EPIPE, never SIGPIPE.
 *
 * Everything is single-threaded and non-blocking, so no test waits: when
 * one side cannot progress the other must, or the test fails.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "frame.h"

/* ---- helpers ---- */

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

static uint64_t rng_state;

static uint64_t rng(void)
{
	/* splitmix64: deterministic, so a failure replays. */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static unsigned char *random_bytes(size_t n, uint64_t seed)
{
	unsigned char *b = malloc(n ? n : 1);
	ck_assert_ptr_nonnull(b);
	rng_state = seed;
	for (size_t i = 0; i < n; i++)
		b[i] = (unsigned char)rng();
	return b;
}

/* One end of a link, as an nf_io_fn context. */
struct link {
	int fd;
	bool sock;
	int reads;
	/* Called after each successful read: lets a test play the peer
	 * sending more bytes between two reads. */
	void (*after_read)(struct link *l);
	void *hook;
};

static ssize_t link_write(void *ctx, const struct iovec *iov, int n)
{
	struct link *l = ctx;
	return nf_fd_writev(l->fd, l->sock, iov, n);
}

static ssize_t link_read(void *ctx, const struct iovec *iov, int n)
{
	struct link *l = ctx;
	ssize_t r = nf_fd_readv(l->fd, iov, n);
	if (r > 0) {
		l->reads++;
		if (l->after_read)
			l->after_read(l);
	}
	return r;
}

struct pair {
	int fd[2];                /* [0] writer's end, [1] reader's end */
	struct link wl, rl;
	struct nf_writer w;
	struct nf_reader r;
};

static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	ck_assert_int_ge(fl, 0);
	ck_assert_int_eq(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
}

/* A non-blocking socketpair (or pipe) with a writer on one end and a
 * reader on the other. sndbuf > 0 shrinks the writer's send buffer. */
static void pair_open(struct pair *p, bool sock, int wetag, int retag, int sndbuf)
{
	memset(p, 0, sizeof *p);
	if (sock) {
		ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p->fd), 0);
		if (sndbuf > 0)
			ck_assert_int_eq(setsockopt(p->fd[0], SOL_SOCKET, SO_SNDBUF,
			                            &sndbuf, sizeof sndbuf), 0);
	} else {
		int pp[2];
		ck_assert_int_eq(pipe2(pp, O_CLOEXEC), 0);
		p->fd[0] = pp[1];
		p->fd[1] = pp[0];
	}
	set_nonblock(p->fd[0]);
	set_nonblock(p->fd[1]);
	p->wl = (struct link){.fd = p->fd[0], .sock = sock};
	p->rl = (struct link){.fd = p->fd[1], .sock = sock};
	ck_assert_int_eq(nf_writer_init(&p->w, link_write, &p->wl, wetag), 0);
	ck_assert_int_eq(nf_reader_init(&p->r, link_read, &p->rl, retag), 0);
}

static void close_writer_end(struct pair *p)
{
	if (p->fd[0] >= 0)
		close(p->fd[0]);
	p->fd[0] = -1;
}

static void close_reader_end(struct pair *p)
{
	if (p->fd[1] >= 0)
		close(p->fd[1]);
	p->fd[1] = -1;
}

static void pair_close(struct pair *p)
{
	close_writer_end(p);
	close_reader_end(p);
	nf_writer_free(&p->w);
	nf_reader_free(&p->r);
}

/* Write raw bytes to the writer's end (a hand-made stream). */
static void raw(struct pair *p, const void *b, size_t n)
{
	ck_assert_int_eq(write(p->fd[0], b, n), (ssize_t)n);
}

static void raw_preamble(struct pair *p, uint32_t flags)
{
	unsigned char pre[NF_PREAMBLE];
	memcpy(pre, NF_MAGIC, 4);
	put32(pre + 4, flags);
	raw(p, pre, sizeof pre);
}

static void raw_header(struct pair *p, uint32_t type, uint32_t n)
{
	unsigned char h[NF_HDR];
	put32(h, type << 28 | n);
	raw(p, h, sizeof h);
}

static void raw_data(struct pair *p, const void *b, uint32_t n)
{
	raw_header(p, NF_TYPE_DATA, n);
	raw(p, b, n);
}

/* Read until the reader has nothing more to give now. Returns the last
 * result (-EAGAIN, 0 or an error); *got grows by the bytes read. A result
 * of -EAGAIN while nf_readable() says more is buffered is retried, as the
 * transports' ready() makes their owners do. */
static ssize_t drain(struct nf_reader *r, unsigned char *out, size_t cap,
                     size_t *got, size_t chunk)
{
	for (int guard = 0; guard < 10000000; guard++) {
		size_t n = cap - *got < chunk ? cap - *got : chunk;
		ck_assert_uint_gt(n, 0);
		ssize_t k = nf_read(r, out + *got, n);
		if (k > 0) {
			ck_assert_uint_le((size_t)k, n);
			*got += (size_t)k;
			continue;
		}
		if (k == -EAGAIN && nf_readable(r))
			continue;
		return k;
	}
	ck_abort_msg("the reader never stopped");
	return 0;
}

static void assert_same(const unsigned char *want, const unsigned char *got,
                        size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (want[i] != got[i])
			ck_abort_msg("byte %zu differs: wrote 0x%02x, read 0x%02x", i,
			             want[i], got[i]);
}

static bool sigpipe_pending(void)
{
	sigset_t s;
	ck_assert_int_eq(sigpending(&s), 0);
	return sigismember(&s, SIGPIPE);
}

/* SIGPIPE at its default disposition and unblocked: raising it kills the
 * test's child, which Check reports as a failure. */
static void sigpipe_default(void)
{
	sigset_t s;
	ck_assert(signal(SIGPIPE, SIG_DFL) != SIG_ERR);
	sigemptyset(&s);
	sigaddset(&s, SIGPIPE);
	ck_assert_int_eq(pthread_sigmask(SIG_UNBLOCK, &s, NULL), 0);
	ck_assert(!sigpipe_pending());
}

static bool sigpipe_blocked(void)
{
	sigset_t s;
	ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, NULL, &s), 0);
	return sigismember(&s, SIGPIPE);
}

/* ---- round trips ---- */

static const size_t write_sizes[] = {
	1, 300 * 1024, 2, 4096, NF_MAX_FRAME, 7, NF_MAX_FRAME + 1, 65536, 100,
	131072, 3, 200000, 255, NF_MAX_FRAME - 1, 9000, 1000000,
};
static const size_t read_sizes[] = {
	1, 65536, 3, 300 * 1024, 512, 4096, 7, NF_MAX_FRAME, 100000, 2, 40000,
	NF_MAX_FRAME + 4,
};
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Stream total bytes from writer to reader, alternating sides: the writer
 * writes (varied sizes) until the link is full, the reader reads a few
 * times (varied sizes). Checks byte-exactness and the clean end. */
static void round_trip(struct pair *p, size_t total, size_t reads_per_turn,
                       const size_t *rs, size_t nrs, uint64_t seed)
{
	unsigned char *data = random_bytes(total, seed);
	size_t cap = total + NF_MAX_FRAME + 16;
	unsigned char *out = malloc(cap);
	ck_assert_ptr_nonnull(out);
	size_t woff = 0, roff = 0, wi = 0, ri = 0;
	bool ended = false, eof = false;
	for (long turn = 0; !eof; turn++) {
		ck_assert_msg(turn < 10000000, "no end after %ld turns", turn);
		bool progress = false;
		/* Writer: until the link is full. */
		for (;;) {
			if (woff < total) {
				size_t n = write_sizes[wi % NELEM(write_sizes)];
				if (n > total - woff)
					n = total - woff;
				ssize_t k = nf_write(&p->w, data + woff, n);
				if (k == -EAGAIN)
					break;
				ck_assert_int_eq(k, n < NF_MAX_FRAME ? n : NF_MAX_FRAME);
				woff += (size_t)k;
				wi++;
				progress = true;
			} else if (!ended) {
				int rc = nf_end(&p->w);
				if (rc == -EAGAIN)
					break;
				ck_assert_int_eq(rc, 0);
				ck_assert(!nf_pending(&p->w));
				ended = true;
				progress = true;
			} else {
				break;
			}
		}
		/* Reader: a few reads. */
		for (size_t k = 0; k < reads_per_turn && !eof; k++) {
			size_t n = rs[ri++ % nrs];
			if (n > cap - roff)
				n = cap - roff;
			ssize_t got = nf_read(&p->r, out + roff, n);
			if (got > 0) {
				ck_assert_uint_le((size_t)got, n);
				roff += (size_t)got;
				ck_assert_uint_le(roff, woff);
				progress = true;
			} else if (got == 0) {
				ck_assert_msg(ended, "EOF before the writer ended");
				eof = true;
				progress = true;
			} else {
				ck_assert_msg(got == -EAGAIN, "nf_read: %zd (%s)", got, p->r.why);
				if (!nf_readable(&p->r))
					break;
			}
		}
		ck_assert_msg(progress || eof, "neither side can progress (wrote %zu, read %zu)",
		              woff, roff);
	}
	ck_assert_uint_eq(roff, total);
	assert_same(data, out, total);
	/* End of stream is sticky. */
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(nf_read(&p->r, out, 1 + (size_t)i * 1000), 0);
	free(data);
	free(out);
}

/* writer etag, reader etag */
static const int etags[][2] = {{0, 0}, {1, 1}, {1, 0}};

START_TEST(round_trip_is_byte_exact_over_varied_write_and_read_sizes)
{
	struct pair p;
	pair_open(&p, true, etags[_i][0], etags[_i][1], 0);
	round_trip(&p, 4u * 1024 * 1024 + 12345, 3, read_sizes, NELEM(read_sizes),
	           (uint64_t)_i + 1);
	pair_close(&p);
}
END_TEST

START_TEST(round_trip_is_byte_exact_over_a_fifo)
{
	struct pair p;
	pair_open(&p, false, etags[_i][0], etags[_i][1], 0);
	round_trip(&p, 1024 * 1024 + 77, 2, read_sizes, NELEM(read_sizes),
	           (uint64_t)_i + 100);
	pair_close(&p);
}
END_TEST

START_TEST(write_takes_at_most_one_frame)
{
	struct pair p;
	pair_open(&p, true, 0, 0, 0);
	unsigned char *data = random_bytes(NF_MAX_FRAME + 10, 7);
	ck_assert_int_eq(nf_write(&p.w, data, NF_MAX_FRAME + 10), NF_MAX_FRAME);
	ck_assert_int_eq(nf_write(&p.w, data, 0), 0);
	free(data);
	pair_close(&p);
}
END_TEST

START_TEST(end_of_stream_reads_zero_again_and_again)
{
	struct pair p;
	unsigned char out[16];
	pair_open(&p, true, 0, 0, 0);
	ck_assert_int_eq(nf_write(&p.w, "abc", 3), 3);
	ck_assert_int_eq(nf_end(&p.w), 0);
	ck_assert_int_eq(nf_end(&p.w), 0); /* already sent: nothing more */
	ck_assert_int_eq(nf_read(&p.r, out, sizeof out), 3);
	ck_assert_mem_eq(out, "abc", 3);
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(nf_read(&p.r, out, sizeof out), 0);
	/* Even once the writer's socket is gone: END was seen. */
	close_writer_end(&p);
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(nf_read(&p.r, out, sizeof out), 0);
	pair_close(&p);
}
END_TEST

START_TEST(empty_stream_with_end_reads_zero)
{
	struct pair p;
	unsigned char out[16];
	pair_open(&p, true, etags[_i][0], etags[_i][1], 0);
	ck_assert_int_eq(nf_read(&p.r, out, sizeof out), -EAGAIN);
	ck_assert_int_eq(nf_end(&p.w), 0);
	close_writer_end(&p);
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(nf_read(&p.r, out, sizeof out), 0);
	pair_close(&p);
}
END_TEST

START_TEST(write_after_end_is_refused)
{
	struct pair p;
	pair_open(&p, true, 0, 0, 0);
	ck_assert_int_eq(nf_end(&p.w), 0);
	ck_assert_int_eq(nf_write(&p.w, "x", 1), -EPIPE);
	pair_close(&p);
}
END_TEST

/* ---- a writer that vanishes ---- */

START_TEST(writer_closed_without_end_gives_connreset_after_every_byte)
{
	struct pair p;
	size_t total = 3 * NF_MAX_FRAME + 999;
	unsigned char *data = random_bytes(total, 11);
	unsigned char *out = malloc(total + 16);
	size_t woff = 0, got = 0;
	pair_open(&p, true, 0, 0, 0);
	while (woff < total || nf_pending(&p.w)) {
		if (nf_pending(&p.w)) {
			int rc = nf_flush(&p.w);
			ck_assert(rc == 0 || rc == -EAGAIN);
		} else {
			ssize_t k = nf_write(&p.w, data + woff, total - woff);
			ck_assert(k > 0 || k == -EAGAIN);
			if (k > 0)
				woff += (size_t)k;
		}
		ck_assert_int_eq(drain(&p.r, out, total + 16, &got, 70000), -EAGAIN);
	}
	close_writer_end(&p);
	ssize_t last = drain(&p.r, out, total + 16, &got, 70000);
	ck_assert_msg(last == -ECONNRESET, "got %zd, want -ECONNRESET", last);
	ck_assert_uint_eq(got, total);
	assert_same(data, out, total);
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(nf_read(&p.r, out, 100), -ECONNRESET);
	ck_assert_str_ne(p.r.why, "");
	free(data);
	free(out);
	pair_close(&p);
}
END_TEST

START_TEST(writer_closed_mid_frame_gives_connreset_after_the_partial_payload)
{
	struct pair p;
	unsigned char out[256];
	unsigned char *data = random_bytes(100, 12);
	size_t got = 0;
	pair_open(&p, true, 0, 0, 0);
	raw_preamble(&p, 0);
	raw_data(&p, data, 10);
	raw_header(&p, NF_TYPE_DATA, 100);
	raw(&p, data + 10, 40);   /* 40 of the 100 announced */
	close_writer_end(&p);
	ck_assert_int_eq(drain(&p.r, out, sizeof out, &got, 7), -ECONNRESET);
	ck_assert_uint_eq(got, 50);
	assert_same(data, out, 50);
	ck_assert_int_eq(nf_read(&p.r, out, sizeof out), -ECONNRESET);
	free(data);
	pair_close(&p);
}
END_TEST

START_TEST(writer_closed_before_end_frame_is_never_eof)
{
	/* 0: nothing at all; 1: half a preamble; 2: the preamble only;
	 * 3: a data frame and half an END header; 4: an END header whose
	 * digest never came. */
	struct pair p;
	unsigned char out[64];
	size_t got = 0;
	pair_open(&p, true, 0, _i == 4, 0);
	switch (_i) {
	case 1:
		raw(&p, "RF", 2);
		break;
	case 2:
		raw_preamble(&p, 0);
		break;
	case 3:
		raw_preamble(&p, 0);
		raw_data(&p, "hi", 2);
		raw(&p, "\0\0", 2);
		break;
	case 4:
		raw_preamble(&p, 1);
		raw_data(&p, "hi", 2);
		raw_header(&p, NF_TYPE_END, NF_DIGEST);
		raw(&p, "0123456789", 10);
		break;
	}
	close_writer_end(&p);
	ck_assert_int_eq(drain(&p.r, out, sizeof out, &got, sizeof out), -ECONNRESET);
	ck_assert_uint_eq(got, _i >= 3 ? 2 : 0);
	ck_assert_int_eq(nf_read(&p.r, out, sizeof out), -ECONNRESET);
	pair_close(&p);
}
END_TEST

START_TEST(writer_closed_with_a_frame_half_sent_gives_connreset_after_what_came)
{
	struct pair p;
	unsigned char *data = random_bytes(NF_MAX_FRAME, 13);
	unsigned char *out = malloc(NF_MAX_FRAME);
	size_t got = 0;
	pair_open(&p, true, 0, 0, 4096);
	ck_assert_int_eq(nf_write(&p.w, data, NF_MAX_FRAME), NF_MAX_FRAME);
	ck_assert(nf_pending(&p.w));
	close_writer_end(&p);
	ck_assert_int_eq(drain(&p.r, out, NF_MAX_FRAME, &got, 1000), -ECONNRESET);
	ck_assert_uint_gt(got, 0);
	ck_assert_uint_lt(got, NF_MAX_FRAME);
	assert_same(data, out, got);
	free(data);
	free(out);
	pair_close(&p);
}
END_TEST

/* ---- etag ---- */

START_TEST(etag_matching_digest_reads_zero_at_the_end)
{
	struct pair p;
	unsigned char out[64];
	size_t got = 0;
	pair_open(&p, true, 1, 1, 0);
	ck_assert_int_eq(nf_write(&p.w, "hello ", 6), 6);
	ck_assert_int_eq(nf_write(&p.w, "world", 5), 5);
	ck_assert_int_eq(nf_end(&p.w), 0);
	ck_assert_int_eq(drain(&p.r, out, sizeof out, &got, 4), 0);
	ck_assert_uint_eq(got, 11);
	ck_assert_mem_eq(out, "hello world", 11);
	ck_assert_int_eq(nf_read(&p.r, out, sizeof out), 0);
	pair_close(&p);
}
END_TEST

START_TEST(etag_reader_set_writer_unset_gives_ebadmsg)
{
	struct pair p;
	unsigned char out[64];
	size_t got = 0;
	pair_open(&p, true, 0, 1, 0);
	ck_assert_int_eq(nf_write(&p.w, "hello", 5), 5);
	ck_assert_int_eq(nf_end(&p.w), 0);
	ck_assert_int_eq(drain(&p.r, out, sizeof out, &got, sizeof out), -EBADMSG);
	ck_assert_uint_eq(got, 5);
	ck_assert_int_eq(nf_read(&p.r, out, sizeof out), -EBADMSG);
	ck_assert_str_ne(p.r.why, "");
	pair_close(&p);
}
END_TEST

/* A stream written by hand: "hello" then END with the digest of digest_of,
 * one bit flipped when flip. */
static void hand_stream(struct pair *p, const char *digest_of, bool flip)
{
	unsigned char d[NF_DIGEST];
	ck_assert_int_eq(crypto_generichash(d, sizeof d, (const unsigned char *)digest_of,
	                                    strlen(digest_of), NULL, 0), 0);
	if (flip)
		d[NF_DIGEST - 1] ^= 0x01;
	raw_preamble(p, 1);
	raw_data(p, "hel", 3);
	raw_data(p, "lo", 2);
	raw_header(p, NF_TYPE_END, NF_DIGEST);
	raw(p, d, sizeof d);
}

START_TEST(etag_hand_written_stream_with_the_right_digest_reads_zero)
{
	/* Checks the hand-written format itself, so the tampering tests
	 * below fail for the digest alone. */
	struct pair p;
	unsigned char out[64];
	size_t got = 0;
	pair_open(&p, true, 0, 1, 0);
	hand_stream(&p, "hello", false);
	ck_assert_int_eq(drain(&p.r, out, sizeof out, &got, sizeof out), 0);
	ck_assert_uint_eq(got, 5);
	ck_assert_mem_eq(out, "hello", 5);
	pair_close(&p);
}
END_TEST

START_TEST(etag_tampered_digest_gives_ebadmsg)
{
	struct pair p;
	unsigned char out[64];
	size_t got = 0;
	pair_open(&p, true, 0, 1, 0);
	hand_stream(&p, "hello", true);
	ck_assert_int_eq(drain(&p.r, out, sizeof out, &got, 2), -EBADMSG);
	ck_assert_uint_eq(got, 5);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(nf_read(&p.r, out, sizeof out), -EBADMSG);
	pair_close(&p);
}
END_TEST

START_TEST(etag_digest_of_other_data_gives_ebadmsg)
{
	struct pair p;
	unsigned char out[64];
	size_t got = 0;
	pair_open(&p, true, 0, 1, 0);
	hand_stream(&p, "hellp", false);
	ck_assert_int_eq(drain(&p.r, out, sizeof out, &got, sizeof out), -EBADMSG);
	ck_assert_uint_eq(got, 5);
	pair_close(&p);
}
END_TEST

START_TEST(etag_unset_reader_ignores_the_digest)
{
	struct pair p;
	unsigned char out[64];
	size_t got = 0;
	pair_open(&p, true, 0, 0, 0);
	hand_stream(&p, "hellp", true);
	ck_assert_int_eq(drain(&p.r, out, sizeof out, &got, sizeof out), 0);
	ck_assert_uint_eq(got, 5);
	pair_close(&p);
}
END_TEST

/* ---- malformed streams ---- */

START_TEST(garbage_preamble_gives_eproto)
{
	struct pair p;
	unsigned char out[64];
	pair_open(&p, true, 0, 0, 0);
	raw(&p, "GET / HTTP/1.1\r\n\r\n", 18);
	ck_assert_int_eq(nf_read(&p.r, out, sizeof out), -EPROTO);
	ck_assert_str_ne(p.r.why, "");
	/* Sticky, even when the peer then hangs up. */
	close_writer_end(&p);
	ck_assert_int_eq(nf_read(&p.r, out, sizeof out), -EPROTO);
	pair_close(&p);
}
END_TEST

START_TEST(data_frame_of_bad_length_gives_eproto_after_the_good_data)
{
	static const uint32_t bad[] = {0, NF_MAX_FRAME + 1, 0x0fffffffu};
	struct pair p;
	unsigned char out[64];
	size_t got = 0;
	pair_open(&p, true, 0, 0, 0);
	raw_preamble(&p, 0);
	raw_data(&p, "ok", 2);
	raw_header(&p, NF_TYPE_DATA, bad[_i]);
	raw(&p, "zzzz", 4);
	ck_assert_int_eq(drain(&p.r, out, sizeof out, &got, sizeof out), -EPROTO);
	ck_assert_uint_eq(got, 2);
	ck_assert_mem_eq(out, "ok", 2);
	ck_assert_int_eq(nf_read(&p.r, out, sizeof out), -EPROTO);
	pair_close(&p);
}
END_TEST

START_TEST(data_frame_of_exactly_the_maximum_is_accepted)
{
	struct pair p;
	unsigned char *data = random_bytes(NF_MAX_FRAME, 14);
	unsigned char *out = malloc(NF_MAX_FRAME + 1);
	size_t got = 0;
	pair_open(&p, true, 0, 0, 0);
	raw_preamble(&p, 0);
	raw_header(&p, NF_TYPE_DATA, NF_MAX_FRAME);
	size_t sent = 0;
	while (sent < NF_MAX_FRAME) {
		ssize_t k = write(p.fd[0], data + sent, NF_MAX_FRAME - sent);
		if (k > 0)
			sent += (size_t)k;
		else
			ck_assert_int_eq(errno, EAGAIN);
		ssize_t last = drain(&p.r, out, NF_MAX_FRAME + 1, &got, 50000);
		ck_assert_int_eq(last, -EAGAIN);
	}
	raw_header(&p, NF_TYPE_END, 0);
	ck_assert_int_eq(drain(&p.r, out, NF_MAX_FRAME + 1, &got, 50000), 0);
	ck_assert_uint_eq(got, NF_MAX_FRAME);
	assert_same(data, out, NF_MAX_FRAME);
	free(data);
	free(out);
	pair_close(&p);
}
END_TEST

START_TEST(unknown_frame_type_or_bad_end_length_gives_eproto)
{
	struct pair p;
	unsigned char out[64];
	size_t got = 0;
	pair_open(&p, true, 0, 0, 0);
	raw_preamble(&p, 0);
	raw_data(&p, "ok", 2);
	if (_i == 0)
		raw_header(&p, 2, 1);                /* no such type */
	else
		raw_header(&p, NF_TYPE_END, 5);      /* END is 0 or 32 bytes */
	raw(&p, "zzzzz", 5);
	ck_assert_int_eq(drain(&p.r, out, sizeof out, &got, sizeof out), -EPROTO);
	ck_assert_uint_eq(got, 2);
	pair_close(&p);
}
END_TEST

/* ---- partial writes ---- */

START_TEST(partial_writes_under_a_small_send_buffer_lose_and_tear_nothing)
{
	static const size_t ws[] = {300 * 1024, 1, 5000, NF_MAX_FRAME, 77, 70000, 3};
	static const size_t rs[] = {1, 100, 4096, 1000, 9000, 3, 65536};
	struct pair p;
	size_t total = 1536 * 1024 + 5;
	unsigned char *data = random_bytes(total, _i + 20);
	unsigned char *out = malloc(total + 16);
	size_t woff = 0, roff = 0, wi = 0, ri = 0;
	int partial = 0, write_eagain = 0, flush_eagain = 0;
	bool ended = false, eof = false;
	pair_open(&p, true, _i, _i, 4096);
	for (long turn = 0; !eof; turn++) {
		ck_assert_msg(turn < 10000000, "no end");
		bool progress = false;
		if (nf_pending(&p.w)) {
			int rc = nf_flush(&p.w);
			if (rc == 0) {
				ck_assert(!nf_pending(&p.w));
				progress = true;
				/* A flush can finish a kept END frame too. */
				ended |= p.w.end_queued;
			} else {
				ck_assert_int_eq(rc, -EAGAIN);
				ck_assert(nf_pending(&p.w));
				flush_eagain++;
			}
		} else if (woff < total) {
			size_t n = ws[wi % NELEM(ws)];
			if (n > total - woff)
				n = total - woff;
			ssize_t k = nf_write(&p.w, data + woff, n);
			if (k > 0) {
				woff += (size_t)k;
				wi++;
				progress = true;
				if (nf_pending(&p.w)) {
					partial++;
					/* The link is full: the rest of the frame
					 * stays kept, and no new frame may start. */
					ck_assert_int_eq(nf_flush(&p.w), -EAGAIN);
					ck_assert(nf_pending(&p.w));
					ck_assert_int_eq(nf_write(&p.w, data + woff, 1), -EAGAIN);
				}
			} else {
				ck_assert_int_eq(k, -EAGAIN);
				write_eagain++;
			}
		} else if (!ended) {
			int rc = nf_end(&p.w);
			ck_assert(rc == 0 || rc == -EAGAIN);
			ended = rc == 0;
			progress |= ended;
		}
		size_t n = rs[ri++ % NELEM(rs)];
		if (n > total + 16 - roff)
			n = total + 16 - roff;
		ssize_t got = nf_read(&p.r, out + roff, n);
		if (got > 0) {
			roff += (size_t)got;
			progress = true;
		} else if (got == 0) {
			ck_assert(ended);
			eof = true;
		} else {
			ck_assert_msg(got == -EAGAIN, "nf_read: %zd (%s)", got, p.r.why);
			progress |= nf_readable(&p.r);
		}
		ck_assert_msg(progress || eof, "stuck: wrote %zu read %zu", woff, roff);
	}
	ck_assert_uint_eq(roff, total);
	assert_same(data, out, total);
	/* The small buffer really did split frames and refuse writes. */
	ck_assert_int_gt(partial, 0);
	ck_assert_int_gt(flush_eagain, 0);
	ck_assert_int_gt(write_eagain + flush_eagain, 0);
	free(data);
	free(out);
	pair_close(&p);
}
END_TEST

START_TEST(end_on_a_full_link_with_a_frame_half_sent_returns_eagain_then_completes)
{
	struct pair p;
	unsigned char *data = random_bytes(NF_MAX_FRAME, 30);
	unsigned char *out = malloc(NF_MAX_FRAME + 16);
	size_t got = 0;
	pair_open(&p, true, _i, _i, 4096);
	ck_assert_int_eq(nf_write(&p.w, data, NF_MAX_FRAME), NF_MAX_FRAME);
	ck_assert(nf_pending(&p.w));
	ck_assert_int_eq(nf_end(&p.w), -EAGAIN);
	ck_assert_int_eq(nf_end(&p.w), -EAGAIN);
	int rc = -EAGAIN, rounds = 0;
	while (rc == -EAGAIN) {
		ck_assert_int_lt(rounds++, 100000);
		ck_assert_int_eq(drain(&p.r, out, NF_MAX_FRAME + 16, &got, 3000), -EAGAIN);
		rc = nf_end(&p.w);
	}
	ck_assert_int_eq(rc, 0);
	ck_assert(!nf_pending(&p.w));
	ck_assert_int_eq(drain(&p.r, out, NF_MAX_FRAME + 16, &got, 3000), 0);
	ck_assert_uint_eq(got, NF_MAX_FRAME);
	assert_same(data, out, NF_MAX_FRAME);
	free(data);
	free(out);
	pair_close(&p);
}
END_TEST

START_TEST(end_on_a_full_link_with_nothing_pending_returns_eagain_then_completes)
{
	struct pair p;
	unsigned char out[4096];
	size_t got = 0, sent = 0;
	pair_open(&p, true, _i, _i, 4096);
	/* Tiny frames fill the link without ever being split. */
	for (;;) {
		unsigned char b = (unsigned char)sent;
		ssize_t k = nf_write(&p.w, &b, 1);
		if (k == -EAGAIN)
			break;
		ck_assert_int_eq(k, 1);
		ck_assert_uint_lt(++sent, 100000);
	}
	ck_assert(!nf_pending(&p.w));
	ck_assert_int_eq(nf_end(&p.w), -EAGAIN);
	ck_assert(nf_pending(&p.w));                 /* the END is kept */
	ck_assert_int_eq(nf_write(&p.w, "x", 1), -EPIPE);
	int rc = -EAGAIN, rounds = 0;
	while (rc == -EAGAIN) {
		ck_assert_int_lt(rounds++, 100000);
		ck_assert_int_eq(drain(&p.r, out, sizeof out, &got, 1), -EAGAIN);
		rc = nf_end(&p.w);
	}
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(drain(&p.r, out, sizeof out, &got, 1), 0);
	ck_assert_uint_eq(got, sent);
	for (size_t i = 0; i < sent; i++)
		ck_assert_uint_eq(out[i], (unsigned char)i);
	pair_close(&p);
}
END_TEST

/* ---- a reader that went away: -EPIPE, never SIGPIPE ---- */

START_TEST(write_after_the_reader_closed_returns_epipe_without_sigpipe)
{
	struct pair p;
	sigpipe_default();
	pair_open(&p, true, 0, 0, 0);
	ck_assert_int_eq(nf_write(&p.w, "abc", 3), 3);
	close_reader_end(&p);
	ck_assert_int_eq(nf_write(&p.w, "def", 3), -EPIPE);
	ck_assert_int_eq(nf_write(&p.w, "def", 3), -EPIPE);
	ck_assert_int_eq(nf_end(&p.w), -EPIPE);
	ck_assert(!sigpipe_pending());
	pair_close(&p);
}
END_TEST

START_TEST(flush_after_the_reader_closed_returns_epipe_without_sigpipe)
{
	struct pair p;
	unsigned char *data = random_bytes(NF_MAX_FRAME, 31);
	sigpipe_default();
	pair_open(&p, true, 1, 1, 4096);
	ck_assert_int_eq(nf_write(&p.w, data, NF_MAX_FRAME), NF_MAX_FRAME);
	ck_assert(nf_pending(&p.w));
	close_reader_end(&p);
	ck_assert_int_eq(nf_flush(&p.w), -EPIPE);
	ck_assert_int_eq(nf_write(&p.w, data, 10), -EPIPE);
	ck_assert_int_eq(nf_end(&p.w), -EPIPE);
	ck_assert(!sigpipe_pending());
	free(data);
	pair_close(&p);
}
END_TEST

START_TEST(fifo_write_with_no_reader_returns_epipe_without_sigpipe)
{
	int pp[2];
	sigpipe_default();
	ck_assert_int_eq(pipe2(pp, O_CLOEXEC | O_NONBLOCK), 0);
	close(pp[0]);
	struct iovec v[2] = {{"ab", 2}, {"cd", 2}};
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(nf_fd_writev(pp[1], false, v, 2), -EPIPE);
	/* Nothing left pending to kill us later, and the mask is as it
	 * was. */
	ck_assert(!sigpipe_pending());
	ck_assert(!sigpipe_blocked());
	close(pp[1]);
}
END_TEST

START_TEST(fifo_write_keeps_a_sigpipe_that_was_already_pending)
{
	int pp[2];
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGPIPE);
	ck_assert(signal(SIGPIPE, SIG_DFL) != SIG_ERR);
	ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &s, NULL), 0);
	ck_assert_int_eq(raise(SIGPIPE), 0);     /* someone else's */
	ck_assert(sigpipe_pending());
	ck_assert_int_eq(pipe2(pp, O_CLOEXEC | O_NONBLOCK), 0);
	close(pp[0]);
	struct iovec v = {"ab", 2};
	ck_assert_int_eq(nf_fd_writev(pp[1], false, &v, 1), -EPIPE);
	ck_assert(sigpipe_pending());
	ck_assert(sigpipe_blocked());
	/* Consume it, so the test's child exits cleanly. */
	struct timespec zero = {0, 0};
	ck_assert_int_eq(sigtimedwait(&s, NULL, &zero), SIGPIPE);
	ck_assert(!sigpipe_pending());
	close(pp[1]);
}
END_TEST

START_TEST(fifo_write_with_sigpipe_blocked_leaves_none_pending)
{
	int pp[2];
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGPIPE);
	ck_assert(signal(SIGPIPE, SIG_DFL) != SIG_ERR);
	ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &s, NULL), 0);
	ck_assert(!sigpipe_pending());
	ck_assert_int_eq(pipe2(pp, O_CLOEXEC | O_NONBLOCK), 0);
	close(pp[0]);
	struct iovec v = {"ab", 2};
	ck_assert_int_eq(nf_fd_writev(pp[1], false, &v, 1), -EPIPE);
	ck_assert(!sigpipe_pending());
	ck_assert(sigpipe_blocked());
	close(pp[1]);
}
END_TEST

START_TEST(fifo_write_on_a_full_pipe_returns_eagain)
{
	int pp[2];
	static unsigned char chunk[65536];
	ck_assert_int_eq(pipe2(pp, O_CLOEXEC | O_NONBLOCK), 0);
	struct iovec v = {chunk, sizeof chunk};
	ssize_t k;
	int i = 0;
	while ((k = nf_fd_writev(pp[1], false, &v, 1)) > 0)
		ck_assert_int_lt(i++, 10000);
	ck_assert_int_eq(k, -EAGAIN);
	struct iovec rv = {chunk, sizeof chunk};
	ck_assert_int_gt(nf_fd_readv(pp[0], &rv, 1), 0);
	close(pp[0]);
	close(pp[1]);
}
END_TEST

START_TEST(fifo_writer_after_the_reader_closed_returns_epipe_without_sigpipe)
{
	struct pair p;
	unsigned char out[16];
	size_t got = 0;
	sigpipe_default();
	pair_open(&p, false, 0, 0, 0);
	ck_assert_int_eq(nf_write(&p.w, "abc", 3), 3);
	ck_assert_int_eq(drain(&p.r, out, sizeof out, &got, sizeof out), -EAGAIN);
	ck_assert_uint_eq(got, 3);
	close_reader_end(&p);
	ck_assert_int_eq(nf_write(&p.w, "def", 3), -EPIPE);
	ck_assert_int_eq(nf_end(&p.w), -EPIPE);
	ck_assert(!sigpipe_pending());
	ck_assert(!sigpipe_blocked());
	pair_close(&p);
}
END_TEST

/* ---- every split point, over an in-memory link ---- */

/* An nf_io_fn over memory. A writer appends to buf; a reader consumes
 * buf from off. Each call takes the next limit of script, round and
 * round: > 0 caps the bytes moved, 0 means -EAGAIN, < 0 no cap. */
struct mem {
	unsigned char *buf;
	size_t len, cap, off;
	const int *script;
	size_t nscript, calls;
};

static long mem_limit(struct mem *m)
{
	if (!m->nscript)
		return -1;
	return m->script[m->calls++ % m->nscript];
}

static ssize_t mem_write(void *ctx, const struct iovec *iov, int n)
{
	struct mem *m = ctx;
	long lim = mem_limit(m);
	if (lim == 0)
		return -EAGAIN;
	size_t done = 0;
	for (int i = 0; i < n; i++) {
		size_t l = iov[i].iov_len;
		if (lim > 0 && done + l > (size_t)lim)
			l = (size_t)lim - done;
		ck_assert_uint_le(m->len + l, m->cap);
		memcpy(m->buf + m->len, iov[i].iov_base, l);
		m->len += l;
		done += l;
	}
	return (ssize_t)done;
}

/* At the end of buf: end-of-file, as when the writer's socket closed. */
static ssize_t mem_read(void *ctx, const struct iovec *iov, int n)
{
	struct mem *m = ctx;
	if (m->off == m->len)
		return 0;
	long lim = mem_limit(m);
	if (lim == 0)
		return -EAGAIN;
	size_t done = 0;
	for (int i = 0; i < n && m->off < m->len; i++) {
		size_t l = iov[i].iov_len;
		if (l > m->len - m->off)
			l = m->len - m->off;
		if (lim > 0 && done + l > (size_t)lim)
			l = (size_t)lim - done;
		memcpy(iov[i].iov_base, m->buf + m->off, l);
		m->off += l;
		done += l;
	}
	return (ssize_t)done;
}

#define MEM_PAYLOAD 300
#define MEM_CAP (2 * (NF_PREAMBLE + 3 * NF_HDR + NF_DIGEST + MEM_PAYLOAD))

/* Write "hello", then MEM_PAYLOAD - 5 more bytes, then END, retrying on
 * -EAGAIN; returns the payload written into *payload. */
static void mem_write_stream(struct mem *m, int etag, const unsigned char *payload)
{
	struct nf_writer w;
	ck_assert_int_eq(nf_writer_init(&w, mem_write, m, etag), 0);
	const size_t part[2] = {5, MEM_PAYLOAD - 5};
	size_t off = 0;
	for (int i = 0; i < 2; i++) {
		ssize_t k;
		int tries = 0;
		while ((k = nf_write(&w, payload + off, part[i])) == -EAGAIN)
			ck_assert_int_lt(tries++, 10);
		ck_assert_int_eq(k, part[i]);
		off += part[i];
	}
	int rc, tries = 0;
	while ((rc = nf_end(&w)) == -EAGAIN)
		ck_assert_int_lt(tries++, 10);
	ck_assert_int_eq(rc, 0);
	ck_assert(!nf_pending(&w));
	nf_writer_free(&w);
}

START_TEST(writer_split_at_every_offset_sends_the_same_stream)
{
	int etag = _i;
	unsigned char *payload = random_bytes(MEM_PAYLOAD, 40);
	unsigned char ref[MEM_CAP], got[MEM_CAP];
	struct mem r = {.buf = ref, .cap = sizeof ref};
	mem_write_stream(&r, etag, payload);
	ck_assert_uint_eq(r.len, NF_PREAMBLE + 3 * NF_HDR + MEM_PAYLOAD +
	                  (etag ? NF_DIGEST : 0));
	for (size_t k = 0; k <= r.len; k++) {
		/* The link takes k bytes, then nothing, then everything,
		 * and again. */
		const int script[] = {(int)k, 0, -1};
		struct mem m = {.buf = got, .cap = sizeof got, .script = script,
		                .nscript = 3};
		mem_write_stream(&m, etag, payload);
		ck_assert_msg(m.len == r.len && memcmp(got, ref, r.len) == 0,
		              "split at %zu: a different stream", k);
	}
	free(payload);
}
END_TEST

/* Read the stream in m with the given read size until it ends; returns
 * the final result; the payload goes to out, its length to *got. */
static ssize_t mem_read_stream(struct mem *m, int etag, size_t rlen,
                               unsigned char *out, size_t cap, size_t *got)
{
	struct nf_reader rd;
	ssize_t k = 0;
	*got = 0;
	ck_assert_int_eq(nf_reader_init(&rd, mem_read, m, etag), 0);
	for (int guard = 0; guard < 100000; guard++) {
		size_t n = cap - *got < rlen ? cap - *got : rlen;
		ck_assert_uint_gt(n, 0);
		k = nf_read(&rd, out + *got, n);
		if (k > 0) {
			*got += (size_t)k;
			continue;
		}
		if (k == -EAGAIN)
			continue;   /* the memory link is always ready again */
		break;
	}
	ck_assert_int_ne(k, -EAGAIN);
	ck_assert(nf_readable(&rd));
	/* Whatever ended the stream ends it for good. */
	unsigned char b[8];
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(nf_read(&rd, b, sizeof b), k);
	nf_reader_free(&rd);
	return k;
}

START_TEST(reader_fed_in_every_chunk_size_reads_the_stream)
{
	int etag = _i;
	unsigned char *payload = random_bytes(MEM_PAYLOAD, 41);
	unsigned char ref[MEM_CAP], out[MEM_PAYLOAD + 8];
	struct mem r = {.buf = ref, .cap = sizeof ref};
	mem_write_stream(&r, etag, payload);
	static const size_t rlens[] = {1, 2, 5, 64, MEM_PAYLOAD + 8};
	/* Every chunk size up to past the longest run of framing bytes (44),
	 * then a sparse few: each nf_reader costs a 128 KiB buffer, which
	 * ASan makes slow. */
	for (size_t c = 1; c <= r.len; c = c < 64 ? c + 1 : c * 3 / 2 + 1) {
		for (size_t j = 0; j < 2 * NELEM(rlens); j++) {
			/* c bytes per read of the link, with -EAGAIN between
			 * or without (then nf_read may read many times over
			 * before it has payload to give: 44 bytes of preamble,
			 * header and END + digest at 1 byte a read). */
			const int script[] = {(int)c, 0};
			struct mem m = {.buf = ref, .len = r.len, .cap = r.len,
			                .script = script,
			                .nscript = j < NELEM(rlens) ? 2 : 1};
			size_t got;
			size_t rlen = rlens[j % NELEM(rlens)];
			ssize_t k = mem_read_stream(&m, etag, rlen, out, sizeof out, &got);
			ck_assert_msg(k == 0, "chunk %zu, read %zu, %s: %zd", c, rlen,
			              m.nscript == 2 ? "EAGAIN between" : "always ready", k);
			ck_assert_uint_eq(got, MEM_PAYLOAD);
			assert_same(payload, out, MEM_PAYLOAD);
		}
	}
	free(payload);
}
END_TEST

START_TEST(stream_cut_at_every_offset_is_reset_after_the_bytes_that_came)
{
	int etag = _i;
	unsigned char *payload = random_bytes(MEM_PAYLOAD, 42);
	unsigned char ref[MEM_CAP], out[MEM_PAYLOAD + 8];
	struct mem r = {.buf = ref, .cap = sizeof ref};
	mem_write_stream(&r, etag, payload);
	/* Payload bytes in the first cut bytes of the stream. */
	size_t first = NF_PREAMBLE + NF_HDR, second = first + 5 + NF_HDR;
	for (size_t cut = 0; cut < r.len; cut++) {
		size_t want = 0;
		if (cut > first)
			want = cut - first < 5 ? cut - first : 5;
		if (cut > second)
			want = 5 + (cut - second < MEM_PAYLOAD - 5 ? cut - second : MEM_PAYLOAD - 5);
		struct mem m = {.buf = ref, .len = cut, .cap = cut};
		size_t got;
		ssize_t k = mem_read_stream(&m, etag, 7, out, sizeof out, &got);
		ck_assert_msg(k == -ECONNRESET, "cut at %zu of %zu: %zd, want -ECONNRESET",
		              cut, r.len, k);
		ck_assert_msg(got == want, "cut at %zu: %zu bytes, want %zu", cut, got, want);
		assert_same(payload, out, got);
	}
	free(payload);
}
END_TEST

START_TEST(etag_any_flipped_bit_after_the_preamble_is_caught)
{
	unsigned char *payload = random_bytes(MEM_PAYLOAD, 43);
	unsigned char ref[MEM_CAP], bad[MEM_CAP], out[MEM_CAP];
	struct mem r = {.buf = ref, .cap = sizeof ref};
	mem_write_stream(&r, 1, payload);
	for (size_t i = NF_PREAMBLE; i < r.len; i++) {
		memcpy(bad, ref, r.len);
		bad[i] ^= (unsigned char)(1u << (i % 8));
		struct mem m = {.buf = bad, .len = r.len, .cap = r.len};
		size_t got;
		ssize_t k = mem_read_stream(&m, 1, 64, out, sizeof out, &got);
		/* A payload or digest bit: -EBADMSG. A header bit: the frame
		 * no longer parses (-EPROTO) or the stream no longer ends
		 * where it should (-ECONNRESET) or the digest no longer
		 * matches. Never a clean end. */
		ck_assert_msg(k == -EBADMSG || k == -EPROTO || k == -ECONNRESET,
		              "bit flipped at %zu: %zd", i, k);
		bool in_header = (i >= NF_PREAMBLE && i < NF_PREAMBLE + NF_HDR) ||
		                 (i >= NF_PREAMBLE + NF_HDR + 5 &&
		                  i < NF_PREAMBLE + 2 * NF_HDR + 5) ||
		                 (i >= r.len - NF_DIGEST - NF_HDR && i < r.len - NF_DIGEST);
		if (!in_header)
			ck_assert_msg(k == -EBADMSG, "bit flipped at %zu: %zd", i, k);
	}
	free(payload);
}
END_TEST

/* ---- nf_read and nf_readable agree ---- */

/* The peer's bytes that arrive only after the reader's first read. */
struct late {
	struct pair *p;
	const unsigned char *rest;
	size_t len;
};

static void send_late(struct link *l)
{
	struct late *t = l->hook;
	if (l->reads == 1 && t->len)
		raw(t->p, t->rest, t->len);
}

/*
 * Was a bug (fixed in 6d68f48): nf_read read from the peer at most twice
 * per call and then returned -EAGAIN without parsing what the second read
 * brought. When the first read ended inside a header and the rest of the
 * frame arrived before the second read, the whole frame sat in the
 * reader's buffer, the socket was empty, and nf_read still said -EAGAIN:
 * a caller waiting for the fd to become readable waited for bytes the
 * peer had already sent.
 */
START_TEST(read_does_not_say_eagain_with_a_whole_frame_buffered)
{
	struct pair p;
	unsigned char out[64];
	pair_open(&p, true, 0, 0, 0);
	/* preamble + 2 of the 4 header bytes now; the rest of the header
	 * and the payload between nf_read's two reads. */
	unsigned char s[NF_PREAMBLE + NF_HDR + 5];
	memcpy(s, NF_MAGIC, 4);
	put32(s + 4, 0);
	put32(s + NF_PREAMBLE, NF_TYPE_DATA << 28 | 5);
	memcpy(s + NF_PREAMBLE + NF_HDR, "hello", 5);
	raw(&p, s, NF_PREAMBLE + 2);
	struct late t = {&p, s + NF_PREAMBLE + 2, sizeof s - NF_PREAMBLE - 2};
	p.rl.after_read = send_late;
	p.rl.hook = &t;
	ssize_t k = nf_read(&p.r, out, sizeof out);
	/* Every byte of the frame has been read from the socket. */
	ck_assert_int_eq(p.rl.reads, 2);
	char peek;
	ck_assert_int_eq(recv(p.fd[1], &peek, 1, MSG_PEEK | MSG_DONTWAIT), -1);
	ck_assert_int_eq(errno, EAGAIN);
	ck_assert_msg(k == 5, "nf_read returned %zd with \"hello\" buffered "
	              "(nf_readable says %d) and nothing left on the socket",
	              k, nf_readable(&p.r));
	ck_assert_mem_eq(out, "hello", 5);
	pair_close(&p);
}
END_TEST

START_TEST(readable_agrees_with_read)
{
	struct pair p;
	unsigned char out[64];
	pair_open(&p, true, 0, 0, 0);
	ck_assert(!nf_readable(&p.r));
	ck_assert_int_eq(nf_read(&p.r, out, sizeof out), -EAGAIN);
	ck_assert(!nf_readable(&p.r));
	ck_assert_int_eq(nf_write(&p.w, "abcdef", 6), 6);
	ck_assert_int_eq(nf_read(&p.r, out, 2), 2);
	ck_assert(nf_readable(&p.r));            /* 4 bytes buffered */
	ck_assert_int_eq(nf_read(&p.r, out, sizeof out), 4);
	ck_assert(!nf_readable(&p.r));
	ck_assert_int_eq(nf_end(&p.w), 0);
	ck_assert_int_eq(nf_read(&p.r, out, sizeof out), 0);
	ck_assert(nf_readable(&p.r));            /* EOF is something */
	pair_close(&p);
}
END_TEST

static Suite *frame_suite(void)
{
	Suite *s = suite_create("frame");

	TCase *t = tcase_create("round_trip");
	tcase_set_timeout(t, 30);
	tcase_add_loop_test(t, round_trip_is_byte_exact_over_varied_write_and_read_sizes,
	                    0, (int)NELEM(etags));
	tcase_add_loop_test(t, round_trip_is_byte_exact_over_a_fifo, 0, (int)NELEM(etags));
	tcase_add_test(t, write_takes_at_most_one_frame);
	tcase_add_test(t, end_of_stream_reads_zero_again_and_again);
	tcase_add_loop_test(t, empty_stream_with_end_reads_zero, 0, (int)NELEM(etags));
	tcase_add_test(t, write_after_end_is_refused);
	tcase_add_test(t, readable_agrees_with_read);
	tcase_add_test(t, read_does_not_say_eagain_with_a_whole_frame_buffered);
	suite_add_tcase(s, t);

	TCase *r = tcase_create("reset");
	tcase_set_timeout(r, 30);
	tcase_add_test(r, writer_closed_without_end_gives_connreset_after_every_byte);
	tcase_add_test(r, writer_closed_mid_frame_gives_connreset_after_the_partial_payload);
	tcase_add_loop_test(r, writer_closed_before_end_frame_is_never_eof, 0, 5);
	tcase_add_test(r, writer_closed_with_a_frame_half_sent_gives_connreset_after_what_came);
	suite_add_tcase(s, r);

	TCase *x = tcase_create("every_offset");
	tcase_set_timeout(x, 30);
	tcase_add_loop_test(x, writer_split_at_every_offset_sends_the_same_stream, 0, 2);
	tcase_add_loop_test(x, reader_fed_in_every_chunk_size_reads_the_stream, 0, 2);
	tcase_add_loop_test(x, stream_cut_at_every_offset_is_reset_after_the_bytes_that_came, 0, 2);
	tcase_add_test(x, etag_any_flipped_bit_after_the_preamble_is_caught);
	suite_add_tcase(s, x);

	TCase *e = tcase_create("etag");
	tcase_add_test(e, etag_matching_digest_reads_zero_at_the_end);
	tcase_add_test(e, etag_reader_set_writer_unset_gives_ebadmsg);
	tcase_add_test(e, etag_hand_written_stream_with_the_right_digest_reads_zero);
	tcase_add_test(e, etag_tampered_digest_gives_ebadmsg);
	tcase_add_test(e, etag_digest_of_other_data_gives_ebadmsg);
	tcase_add_test(e, etag_unset_reader_ignores_the_digest);
	suite_add_tcase(s, e);

	TCase *m = tcase_create("malformed");
	tcase_add_test(m, garbage_preamble_gives_eproto);
	tcase_add_loop_test(m, data_frame_of_bad_length_gives_eproto_after_the_good_data, 0, 3);
	tcase_add_test(m, data_frame_of_exactly_the_maximum_is_accepted);
	tcase_add_loop_test(m, unknown_frame_type_or_bad_end_length_gives_eproto, 0, 2);
	suite_add_tcase(s, m);

	TCase *w = tcase_create("partial_writes");
	tcase_set_timeout(w, 30);
	tcase_add_loop_test(w, partial_writes_under_a_small_send_buffer_lose_and_tear_nothing, 0, 2);
	tcase_add_loop_test(w, end_on_a_full_link_with_a_frame_half_sent_returns_eagain_then_completes, 0, 2);
	tcase_add_loop_test(w, end_on_a_full_link_with_nothing_pending_returns_eagain_then_completes, 0, 2);
	suite_add_tcase(s, w);

	TCase *g = tcase_create("epipe");
	tcase_add_test(g, write_after_the_reader_closed_returns_epipe_without_sigpipe);
	tcase_add_test(g, flush_after_the_reader_closed_returns_epipe_without_sigpipe);
	tcase_add_test(g, fifo_write_with_no_reader_returns_epipe_without_sigpipe);
	tcase_add_test(g, fifo_write_keeps_a_sigpipe_that_was_already_pending);
	tcase_add_test(g, fifo_write_with_sigpipe_blocked_leaves_none_pending);
	tcase_add_test(g, fifo_write_on_a_full_pipe_returns_eagain);
	tcase_add_test(g, fifo_writer_after_the_reader_closed_returns_epipe_without_sigpipe);
	suite_add_tcase(s, g);
	return s;
}

int main(void)
{
	if (sodium_init() < 0)
		return EXIT_FAILURE;
	SRunner *sr = srunner_create(frame_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
