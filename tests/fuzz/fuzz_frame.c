/*
 * fuzz_frame.c - the framing reader against arbitrary peer bytes.
 *
 * The first input byte picks the reader's etag and how the bytes arrive
 * (chunk size, a trailing -EAGAIN); the rest is what the peer sent. The
 * reader must never read or write out of bounds, never loop, and once it
 * reports an error or EOF it must keep reporting it.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "fuzz_common.h"

struct feed {
	const uint8_t *data;
	size_t len, off, chunk;
};

static ssize_t feed_io(void *ctx, const struct iovec *iov, int n)
{
	struct feed *f = ctx;
	if (f->off == f->len)
		return 0; /* the peer hung up */
	size_t budget = f->chunk, got = 0;
	for (int i = 0; i < n && budget && f->off < f->len; i++) {
		size_t k = iov[i].iov_len;
		if (k > budget)
			k = budget;
		if (k > f->len - f->off)
			k = f->len - f->off;
		memcpy(iov[i].iov_base, f->data + f->off, k);
		f->off += k;
		budget -= k;
		got += k;
	}
	return (ssize_t)got;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct feed f = {data + 1, size - 1, 0, 1 + (size_t)(data[0] >> 1) * 97};
	struct nf_reader r;
	if (nf_reader_init(&r, feed_io, &f, data[0] & 1) < 0)
		return 0;
	unsigned char out[4099];
	ssize_t last = 1;
	/* Every call consumes input or ends the stream: bound by input. */
	for (size_t i = 0; i < size + 8; i++) {
		size_t want = 1 + (i * 131) % sizeof out;
		ssize_t n = nf_read(&r, out, want);
		if (n > (ssize_t)want)
			abort();
		if (last <= 0 && n != last)
			abort(); /* EOF and errors are sticky */
		last = n;
	}
	if (last > 0)
		abort(); /* the peer hung up: the stream must have ended */
	nf_reader_free(&r);
	return 0;
}
