/*
 * it-stream - write the integration tests' deterministic stream to stdout.
 *
 *   it-stream SEED [BYTES]
 *
 * Without BYTES it writes until a write fails (the reader went away, or a
 * quota ran out), then exits 1; with BYTES it writes that many and exits 0.
 * stream.h generates the same bytes on the test's side.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stream.h"

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3) {
		fputs("usage: it-stream SEED [BYTES]\n", stderr);
		return 2;
	}
	struct it_stream s;
	it_stream_init(&s, strtoull(argv[1], NULL, 0));
	long long left = argc == 3 ? strtoll(argv[2], NULL, 0) : -1;
	static unsigned char buf[65536];
	while (left != 0) {
		size_t n = left < 0 || left > (long long)sizeof buf ? sizeof buf : (size_t)left;
		it_stream_fill(&s, buf, n);
		for (size_t off = 0; off < n;) {
			ssize_t w = write(1, buf + off, n - off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				fprintf(stderr, "it-stream: write: %s\n", strerror(errno));
				return 1;
			}
			off += (size_t)w;
		}
		if (left > 0)
			left -= (long long)n;
	}
	return 0;
}
