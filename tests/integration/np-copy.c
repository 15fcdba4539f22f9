/*
 * np-copy - copy a file through a netpipe with libnetpipe, no broker.
 *
 *   np-copy write DESCRIPTOR FILE   FILE -> netpipe_write, then close
 *   np-copy read DESCRIPTOR FILE    netpipe_read until 0 -> FILE
 *   np-copy read DESCRIPTOR FILE N  the same, but close (leave) as soon
 *                                   as N bytes or more have come
 *   np-copy read DESCRIPTOR FILE N:PATH  a slow reader: once N bytes or
 *                                   more have come, stop reading until
 *                                   PATH exists (bounded), then go on
 *
 * Exit status: 0 on success; 1 with netpipe_error() on stderr when a
 * netpipe call failed (3 when the read failed with ECONNRESET, so a test
 * can tell a cut stream from other failures); 2 on a usage or local
 * file error. Every blocking call is bounded (netpipe_set_timeout), so a
 * hang is a failure, not a stuck test.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "libnetpipe.h"

#define CHUNK (64 * 1024)
#define TIMEOUT_MS 20000

static int fail(const char *what, int64_t rc)
{
	fprintf(stderr, "np-copy: %s: %s (%s)\n", what, netpipe_error(),
	        strerror((int)-rc));
	return rc == -ECONNRESET ? 3 : 1;
}

/* After a failure: release what is open (its own failure is expected
 * and not reported), so LeakSanitizer sees a tidy exit. */
static int give_up(netpipe_t *np, int fd, int code)
{
	netpipe_close(np);
	close(fd);
	return code;
}

int main(int argc, char **argv)
{
	bool writing = argc > 1 && strcmp(argv[1], "write") == 0;
	if (argc < 4 || argc > 4 + !writing || (!writing && strcmp(argv[1], "read"))) {
		fputs("usage: np-copy read|write DESCRIPTOR FILE, np-copy read DESCRIPTOR FILE MAX\n",
		      stderr);
		return 2;
	}
	long long max = argc == 5 ? atoll(argv[4]) : -1, total = 0;
	const char *resume = argc == 5 ? strchr(argv[4], ':') : NULL;
	if (resume)
		resume++;
	int fd = writing ? open(argv[3], O_RDONLY) : open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		fprintf(stderr, "np-copy: %s: %s\n", argv[3], strerror(errno));
		return 2;
	}
	netpipe_t *np = netpipe_open(argv[2]);
	if (!np) {
		fprintf(stderr, "np-copy: netpipe_open %s: %s\n", argv[2], netpipe_error());
		return 1;
	}
	netpipe_set_timeout(np, TIMEOUT_MS);
	static char buf[CHUNK];
	for (;;) {
		if (writing) {
			ssize_t n = read(fd, buf, sizeof buf);
			if (n < 0) {
				fprintf(stderr, "np-copy: read %s: %s\n", argv[3], strerror(errno));
				return 2;
			}
			if (n == 0)
				break;
			int64_t w = netpipe_write(np, buf, (int32_t)n);
			if (w != n)
				return give_up(np, fd, fail("netpipe_write", w < 0 ? w : -EIO));
		} else {
			int64_t n = netpipe_read(np, buf, sizeof buf);
			if (n < 0)
				return give_up(np, fd, fail("netpipe_read", n));
			if (n == 0)
				break;
			total += n;
			for (int64_t off = 0; off < n;) {
				ssize_t w = write(fd, buf + off, (size_t)(n - off));
				if (w <= 0) {
					fprintf(stderr, "np-copy: write %s: %s\n", argv[3], strerror(errno));
					return 2;
				}
				off += w;
			}
			if (max >= 0 && total >= max && resume) {
				/* Pause, as a slow program would; the test says when
				 * to go on. Polling a file with a deadline. */
				for (int i = 0; access(resume, F_OK) != 0; i++) {
					if (i * 10 >= TIMEOUT_MS) {
						fprintf(stderr, "np-copy: %s did not appear\n", resume);
						return give_up(np, fd, 2);
					}
					nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
				}
				max = -1;
			} else if (max >= 0 && total >= max) {
				break;
			}
		}
	}
	int rc = netpipe_close(np);
	if (rc < 0)
		return fail("netpipe_close", rc);
	if (close(fd) < 0) {
		fprintf(stderr, "np-copy: close %s: %s\n", argv[3], strerror(errno));
		return 2;
	}
	return 0;
}
