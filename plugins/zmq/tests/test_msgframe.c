/*
 * test_msgframe.c - the message framing of plugins/common/msgframe.c, which
 * the zmq and nng transports share.
 *
 * What must hold: a writer's messages, fed in order to a reader, give back
 * every payload byte in order; END is EOF, with the digest checked when the
 * reader's etag is set (-EBADMSG on a mismatch or a missing digest);
 * malformed input is -EPROTO and sticky; and the messages concatenated are
 * exactly the byte stream of frame.h, so the stream reader (nf_read)
 * accepts them too.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "frame.h"
#include "msgframe.h"

static uint64_t rng_state;

static uint64_t rng(void)
{
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

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

/* A list of messages, as a transport would send them. */
struct msgs {
	int n;
	unsigned char *m[4096];
	size_t len[4096];
};

static void add(struct msgs *ms, const void *p, size_t len)
{
	ck_assert_int_lt(ms->n, 4096);
	ms->m[ms->n] = malloc(len ? len : 1);
	ck_assert_ptr_nonnull(ms->m[ms->n]);
	memcpy(ms->m[ms->n], p, len);
	ms->len[ms->n++] = len;
}

static void free_msgs(struct msgs *ms)
{
	for (int i = 0; i < ms->n; i++)
		free(ms->m[i]);
	ms->n = 0;
}

/* Write data as the writer side would: preamble, then frames of the given
 * sizes (packed `per` to a message), then END. */
static void write_stream(struct msgs *ms, int etag, const unsigned char *data, size_t total,
                         size_t chunk, int per)
{
	struct nm_stream w;
	ck_assert_int_eq(nm_init(&w, etag), 0);
	unsigned char pre[NF_PREAMBLE];
	ck_assert_uint_eq(nm_preamble(&w, pre), NF_PREAMBLE);
	ck_assert(w.preamble_done);
	add(ms, pre, sizeof pre);
	unsigned char *buf = malloc((size_t)per * (NF_HDR + NF_MAX_FRAME));
	ck_assert_ptr_nonnull(buf);
	size_t off = 0;
	while (off < total) {
		size_t used = 0;
		for (int i = 0; i < per && off < total; i++) {
			size_t n = total - off < chunk ? total - off : chunk;
			used += nm_pack(&w, buf + used, data + off, n);
			off += n;
		}
		add(ms, buf, used);
	}
	free(buf);
	unsigned char end[NF_HDR + NF_DIGEST];
	size_t el = nm_end(&w, end);
	ck_assert_uint_eq(el, etag ? NF_HDR + NF_DIGEST : NF_HDR);
	add(ms, end, el);
	nm_free(&w);
}

/* Read every message; deliver in reads of `rd` bytes. Returns the final
 * s.done; *got gets the bytes delivered. */
static int read_stream(struct msgs *ms, int etag, unsigned char *out, size_t cap, size_t rd,
                       size_t *got)
{
	struct nm_stream r;
	ck_assert_int_eq(nm_init(&r, etag), 0);
	*got = 0;
	for (int i = 0; i < ms->n && r.done == 0; i++) {
		struct nm_cursor c;
		int rc = nm_begin(&r, &c, ms->m[i], ms->len[i]);
		if (rc < 0)
			break;
		const unsigned char *p;
		size_t pl;
		while ((rc = nm_next(&r, &c, &p, &pl)) == 1) {
			ck_assert_uint_ge(pl, 1);
			/* Deliver in pieces, counting each in delivery order. */
			for (size_t o = 0; o < pl;) {
				size_t n = pl - o < rd ? pl - o : rd;
				ck_assert_uint_le(*got + n, cap);
				memcpy(out + *got, p + o, n);
				nm_consumed(&r, p + o, n);
				*got += n;
				o += n;
			}
		}
		if (rc < 0)
			break;
	}
	int done = r.done;
	nm_free(&r);
	return done;
}

static void roundtrip(int wetag, int retag, size_t total, size_t chunk, int per, size_t rd,
                      int expect)
{
	unsigned char *data = random_bytes(total, total ^ chunk);
	unsigned char *out = malloc(total ? total : 1);
	struct msgs *ms = calloc(1, sizeof *ms);
	ck_assert_ptr_nonnull(out);
	ck_assert_ptr_nonnull(ms);
	write_stream(ms, wetag, data, total, chunk, per);
	size_t got;
	int done = read_stream(ms, retag, out, total, rd, &got);
	ck_assert_int_eq(done, expect);
	ck_assert_uint_eq(got, total);
	ck_assert(memcmp(data, out, total) == 0);
	free_msgs(ms);
	free(ms);
	free(out);
	free(data);
}

START_TEST(one_frame_per_message)
{
	roundtrip(0, 0, 1000000, 65536, 1, 4096, 1);
	roundtrip(0, 0, 3000, 1, 1, 1, 1);
	roundtrip(0, 0, 3 * NF_MAX_FRAME + 5, NF_MAX_FRAME, 1, 100000, 1);
}
END_TEST

START_TEST(packed_frames)
{
	/* Small writes coalesced: many frames in one message. */
	roundtrip(0, 0, 100000, 64, 100, 7, 1);
	roundtrip(0, 0, 100000, 3, 1000, 64, 1);
	roundtrip(1, 1, 200000, 64, 64, 13, 1);
}
END_TEST

START_TEST(empty_stream)
{
	roundtrip(0, 0, 0, 1, 1, 1, 1);
	roundtrip(1, 1, 0, 1, 1, 1, 1);
}
END_TEST

START_TEST(etag_matches)
{
	roundtrip(1, 1, 1 << 20, 4096, 1, 1000, 1);
	/* Only the reader's etag decides: a digest it did not ask for is
	 * ignored, a digest it asked for and did not get is -EBADMSG. */
	roundtrip(1, 0, 50000, 999, 2, 1000, 1);
	roundtrip(0, 1, 50000, 999, 2, 1000, -EBADMSG);
}
END_TEST

START_TEST(etag_mismatch)
{
	size_t total = 100000;
	unsigned char *data = random_bytes(total, 7);
	unsigned char *out = malloc(total);
	struct msgs *ms = calloc(1, sizeof *ms);
	write_stream(ms, 1, data, total, 10000, 1);
	/* Flip one payload byte of the third message (the second frame). */
	ms->m[2][NF_HDR + 17] ^= 0x40;
	size_t got;
	ck_assert_int_eq(read_stream(ms, 1, out, total, 4096, &got), -EBADMSG);
	ck_assert_uint_eq(got, total);
	/* Without etag the same stream ends cleanly (the digest is not
	 * checked): the flip is what etag exists for. */
	ck_assert_int_eq(read_stream(ms, 0, out, total, 4096, &got), 1);
	/* A flipped digest byte. */
	ms->m[2][NF_HDR + 17] ^= 0x40;
	ms->m[ms->n - 1][NF_HDR + 31] ^= 1;
	ck_assert_int_eq(read_stream(ms, 1, out, total, 4096, &got), -EBADMSG);
	free_msgs(ms);
	free(ms);
	free(out);
	free(data);
}
END_TEST

START_TEST(preamble_flags)
{
	struct nm_stream w, r;
	unsigned char pre[NF_PREAMBLE];
	struct nm_cursor c;
	for (int etag = 0; etag < 2; etag++) {
		ck_assert_int_eq(nm_init(&w, etag), 0);
		ck_assert_int_eq(nm_init(&r, 0), 0);
		nm_preamble(&w, pre);
		ck_assert(memcmp(pre, NF_MAGIC, 4) == 0);
		ck_assert_int_eq(nm_begin(&r, &c, pre, sizeof pre), 0);
		ck_assert(r.preamble_done);
		ck_assert_int_eq(r.peer_digest, etag);
		const unsigned char *p;
		size_t pl;
		ck_assert_int_eq(nm_next(&r, &c, &p, &pl), 0); /* nothing in it */
		ck_assert_int_eq(r.done, 0);
		nm_free(&w);
		nm_free(&r);
	}
}
END_TEST

/* The reader's verdict on a hand-made message after a good preamble. */
static int verdict(const unsigned char *msg, size_t len, int *done)
{
	struct nm_stream r;
	struct nm_cursor c;
	unsigned char pre[NF_PREAMBLE] = {'R', 'F', 'T', '1', 0, 0, 0, 0};
	ck_assert_int_eq(nm_init(&r, 0), 0);
	ck_assert_int_eq(nm_begin(&r, &c, pre, sizeof pre), 0);
	int rc = nm_begin(&r, &c, msg, len);
	if (rc == 0) {
		const unsigned char *p;
		size_t pl;
		while ((rc = nm_next(&r, &c, &p, &pl)) == 1)
			;
	}
	*done = r.done;
	nm_free(&r);
	return rc;
}

START_TEST(malformed)
{
	unsigned char m[64] = {0};
	int done;
	/* Empty message. */
	ck_assert_int_eq(verdict(m, 0, &done), -EPROTO);
	ck_assert_int_eq(done, -EPROTO);
	/* A header cut short. */
	ck_assert_int_eq(verdict(m, 3, &done), -EPROTO);
	/* DATA of 0 bytes. */
	put32(m, 0);
	ck_assert_int_eq(verdict(m, 4, &done), -EPROTO);
	/* DATA longer than the message. */
	put32(m, 10);
	ck_assert_int_eq(verdict(m, 4 + 9, &done), -EPROTO);
	/* DATA longer than NF_MAX_FRAME. */
	put32(m, NF_MAX_FRAME + 1);
	ck_assert_int_eq(verdict(m, 64, &done), -EPROTO);
	/* Unknown type. */
	put32(m, 2u << 28 | 4);
	ck_assert_int_eq(verdict(m, 8, &done), -EPROTO);
	/* END with a digest of the wrong size, and one cut short. */
	put32(m, 1u << 28 | 16);
	ck_assert_int_eq(verdict(m, 20, &done), -EPROTO);
	put32(m, 1u << 28 | 32);
	ck_assert_int_eq(verdict(m, 20, &done), -EPROTO);
	/* Two good frames, then a cut one: the good ones come first. */
	struct nm_stream r;
	struct nm_cursor c;
	unsigned char pre[NF_PREAMBLE] = {'R', 'F', 'T', '1', 0, 0, 0, 0};
	put32(m, 3);
	memcpy(m + 4, "abc", 3);
	put32(m + 7, 2);
	memcpy(m + 11, "de", 2);
	put32(m + 13, 5);
	ck_assert_int_eq(nm_init(&r, 0), 0);
	nm_begin(&r, &c, pre, sizeof pre);
	ck_assert_int_eq(nm_begin(&r, &c, m, 13 + 4 + 2), 0);
	const unsigned char *p;
	size_t pl;
	ck_assert_int_eq(nm_next(&r, &c, &p, &pl), 1);
	ck_assert_uint_eq(pl, 3);
	ck_assert(memcmp(p, "abc", 3) == 0);
	ck_assert_int_eq(nm_next(&r, &c, &p, &pl), 1);
	ck_assert_uint_eq(pl, 2);
	ck_assert_int_eq(nm_next(&r, &c, &p, &pl), -EPROTO);
	ck_assert_str_eq(r.why, "a frame cut at a message boundary");
	/* Sticky: later messages are refused too. */
	ck_assert_int_eq(nm_next(&r, &c, &p, &pl), -EPROTO);
	ck_assert_int_eq(nm_begin(&r, &c, m, 7), -EPROTO);
	nm_free(&r);
}
END_TEST

START_TEST(not_rift)
{
	struct nm_stream r;
	struct nm_cursor c;
	ck_assert_int_eq(nm_init(&r, 1), 0);
	ck_assert_int_eq(nm_begin(&r, &c, "HTTP/1.1 200 OK\r\n", 17), -EPROTO);
	ck_assert_int_eq(r.done, -EPROTO);
	ck_assert_str_eq(r.why, "the peer does not speak the Rift netpipe framing");
	nm_free(&r);
	ck_assert_int_eq(nm_init(&r, 0), 0);
	ck_assert_int_eq(nm_begin(&r, &c, "RFT1", 4), -EPROTO); /* too short */
	nm_free(&r);
}
END_TEST

START_TEST(preamble_with_frames)
{
	/* Lenient: a first message holding the preamble and frames. */
	unsigned char m[NF_PREAMBLE + NF_HDR + 5 + NF_HDR + NF_DIGEST];
	struct nm_stream w, r;
	struct nm_cursor c;
	ck_assert_int_eq(nm_init(&w, 0), 0);
	size_t n = nm_preamble(&w, m);
	n += nm_pack(&w, m + n, "hello", 5);
	unsigned char end[NF_HDR + NF_DIGEST];
	size_t el = nm_end(&w, end);
	memcpy(m + n, end, el);
	n += el;
	ck_assert_uint_eq(n, NF_PREAMBLE + NF_HDR + 5 + NF_HDR);
	ck_assert_int_eq(nm_init(&r, 0), 0);
	ck_assert_int_eq(nm_begin(&r, &c, m, n), 0);
	const unsigned char *p;
	size_t pl;
	ck_assert_int_eq(nm_next(&r, &c, &p, &pl), 1);
	ck_assert_uint_eq(pl, 5);
	ck_assert_int_eq(nm_next(&r, &c, &p, &pl), 0);
	ck_assert_int_eq(r.done, 1);
	/* After END: later messages are ignored, END stays. */
	ck_assert_int_eq(nm_begin(&r, &c, m, n), 0);
	ck_assert_int_eq(nm_next(&r, &c, &p, &pl), 0);
	ck_assert_int_eq(r.done, 1);
	nm_free(&w);
	nm_free(&r);
}
END_TEST

START_TEST(data_header_zero_copy)
{
	/* Header and payload sent as two parts of one message: the digest is
	 * the same as nm_pack's. */
	unsigned char *data = random_bytes(5000, 3);
	struct nm_stream a, b;
	ck_assert_int_eq(nm_init(&a, 1), 0);
	ck_assert_int_eq(nm_init(&b, 1), 0);
	unsigned char buf[NF_HDR + 5000], hdr[NF_HDR];
	nm_pack(&a, buf, data, 5000);
	nm_data_header(&b, hdr, data, 5000);
	ck_assert(memcmp(buf, hdr, NF_HDR) == 0);
	ck_assert(memcmp(buf + NF_HDR, data, 5000) == 0);
	unsigned char ea[NF_HDR + NF_DIGEST], eb[NF_HDR + NF_DIGEST];
	ck_assert_uint_eq(nm_end(&a, ea), sizeof ea);
	ck_assert_uint_eq(nm_end(&b, eb), sizeof eb);
	ck_assert(memcmp(ea, eb, sizeof ea) == 0);
	/* And it is the BLAKE2b-256 of the payload. */
	unsigned char d[NF_DIGEST];
	crypto_generichash(d, sizeof d, data, 5000, NULL, 0);
	ck_assert(memcmp(ea + NF_HDR, d, NF_DIGEST) == 0);
	nm_free(&a);
	nm_free(&b);
	free(data);
}
END_TEST

/* The messages concatenated are the stream format: nf_read takes them. */
static ssize_t sock_io(void *ctx, const struct iovec *iov, int n)
{
	return nf_fd_readv(*(int *)ctx, iov, n);
}

START_TEST(same_as_stream_format)
{
	for (int etag = 0; etag < 2; etag++) {
		size_t total = 300000;
		unsigned char *data = random_bytes(total, 11 + (uint64_t)etag);
		struct msgs *ms = calloc(1, sizeof *ms);
		write_stream(ms, etag, data, total, 1000, 5);
		int sv[2];
		ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
		int bufsz = 4 << 20;
		setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof bufsz);
		setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof bufsz);
		struct nf_reader r;
		ck_assert_int_eq(nf_reader_init(&r, sock_io, &sv[1], etag), 0);
		unsigned char *out = malloc(total);
		size_t got = 0;
		int i = 0;
		size_t moff = 0;
		for (;;) {
			/* Push what the socket takes, then read what is there. */
			while (i < ms->n) {
				ssize_t w = send(sv[0], ms->m[i] + moff, ms->len[i] - moff,
				                 MSG_DONTWAIT | MSG_NOSIGNAL);
				if (w < 0)
					break;
				moff += (size_t)w;
				if (moff == ms->len[i]) {
					i++;
					moff = 0;
				}
			}
			ssize_t r2 = nf_read(&r, out + got, total - got + 1);
			if (r2 == -EAGAIN) {
				ck_assert_int_lt(i, ms->n); /* else it should have ended */
				continue;
			}
			ck_assert_int_ge(r2, 0);
			if (r2 == 0)
				break;
			got += (size_t)r2;
		}
		ck_assert_uint_eq(got, total);
		ck_assert(memcmp(out, data, total) == 0);
		nf_reader_free(&r);
		close(sv[0]);
		close(sv[1]);
		free(out);
		free_msgs(ms);
		free(ms);
		free(data);
	}
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("msgframe");
	TCase *t = tcase_create("msgframe");
	tcase_set_timeout(t, 30);
	tcase_add_test(t, one_frame_per_message);
	tcase_add_test(t, packed_frames);
	tcase_add_test(t, empty_stream);
	tcase_add_test(t, etag_matches);
	tcase_add_test(t, etag_mismatch);
	tcase_add_test(t, preamble_flags);
	tcase_add_test(t, malformed);
	tcase_add_test(t, not_rift);
	tcase_add_test(t, preamble_with_frames);
	tcase_add_test(t, data_header_zero_copy);
	tcase_add_test(t, same_as_stream_format);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
