/*
 * chan-cat - a program for the exec runtime: copy the channels named on
 * the command line, one after the other, to stdout.
 *
 *   Program = exec:/path/to/chan-cat /dev/in/a /dev/in/b
 *
 * It finds each channel's fd with libnetpipe's netpipe_channel_fd (from
 * $RIFT_CHANNELS), so it checks that lookup too. Exit status 2 when an
 * alias has no fd, 1 on an I/O error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libnetpipe.h"

int main(int argc, char **argv)
{
	static char buf[65536];
	for (int i = 1; i < argc; i++) {
		int fd = netpipe_channel_fd(argv[i]);
		if (fd < 0) {
			fprintf(stderr, "chan-cat: no channel %s in RIFT_CHANNELS=%s\n", argv[i],
			        getenv("RIFT_CHANNELS") ? getenv("RIFT_CHANNELS") : "(unset)");
			return 2;
		}
		for (;;) {
			ssize_t n = read(fd, buf, sizeof buf);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				fprintf(stderr, "chan-cat: read %s: %s\n", argv[i], strerror(errno));
				return 1;
			}
			if (n == 0)
				break;
			for (ssize_t off = 0; off < n;) {
				ssize_t w = write(1, buf + off, (size_t)(n - off));
				if (w <= 0) {
					fprintf(stderr, "chan-cat: write: %s\n", strerror(errno));
					return 1;
				}
				off += w;
			}
		}
		close(fd);
	}
	return 0;
}
