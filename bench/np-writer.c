/*
 * np-writer - write BYTES bytes to stdout in WSIZE-byte write(2)s.
 *
 *   np-writer BYTES WSIZE [SECONDS]
 *
 * A plain program with no Rift code: rift-bench runs it under a broker's
 * exec runtime with /dev/stdout mapped to a netpipe. With SECONDS it stops
 * early once that much time has passed (checked every ~1 MiB), so a run
 * stays bounded on a slow path. It exits 0 after the last write, 1 on a
 * write error (EPIPE included: the broker ignores SIGPIPE, and that
 * disposition is inherited), 2 on bad arguments.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-')
		return -1;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t total, wsize;
	double seconds = 0;
	if (argc < 3 || argc > 4 || parse_u64(argv[1], &total) < 0 ||
	    parse_u64(argv[2], &wsize) < 0 || wsize == 0 || wsize > (64u << 20) ||
	    (argc == 4 && (seconds = strtod(argv[3], NULL)) <= 0)) {
		fprintf(stderr, "usage: np-writer BYTES WSIZE [SECONDS]\n");
		return 2;
	}
	char *buf = malloc(wsize);
	if (!buf) {
		fprintf(stderr, "np-writer: out of memory\n");
		return 1;
	}
	for (uint64_t i = 0; i < wsize; i++)
		buf[i] = (char)('a' + i % 26);
	/* Look at the clock about every MiB, never on every small write. */
	uint64_t every = wsize >= (1u << 20) ? 1 : (1u << 20) / wsize;
	double until = seconds > 0 ? now() + seconds : 0;
	uint64_t done = 0, n = 0;
	while (done < total) {
		size_t want = total - done < wsize ? (size_t)(total - done) : (size_t)wsize;
		size_t off = 0;
		while (off < want) {
			ssize_t w = write(1, buf + off, want - off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				fprintf(stderr, "np-writer: write after %llu bytes: %s\n",
				        (unsigned long long)(done + off), strerror(errno));
				return 1;
			}
			off += (size_t)w;
		}
		done += want;
		if (until > 0 && ++n % every == 0 && now() >= until)
			break;
	}
	free(buf);
	return 0;
}
