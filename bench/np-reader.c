/*
 * np-reader - read stdin to end-of-file with a 64 KiB buffer, count bytes.
 *
 *   np-reader
 *
 * A plain program with no Rift code: rift-bench runs it under a broker's
 * exec runtime with /dev/stdin mapped to a netpipe. At EOF it prints the
 * byte count as one decimal line on stdout and exits 0; on a read error it
 * says so on stderr and exits 1.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
	static char buf[64 * 1024];
	uint64_t total = 0;
	for (;;) {
		ssize_t r = read(0, buf, sizeof buf);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fprintf(stderr, "np-reader: read after %llu bytes: %s\n",
			        (unsigned long long)total, strerror(errno));
			return 1;
		}
		if (r == 0)
			break;
		total += (uint64_t)r;
	}
	printf("%llu\n", (unsigned long long)total);
	return fflush(stdout) == 0 ? 0 : 1;
}
