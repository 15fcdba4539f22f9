/*
 * fuzz_common.h - a main() for replaying a corpus without libFuzzer.
 *
 * Built with -DFUZZ_STANDALONE, a fuzz target becomes a program that feeds
 * every file named on its command line (or found directly inside a named
 * directory) to LLVMFuzzerTestOneInput once, so the test suite can replay
 * the seed corpus and any crash file libFuzzer wrote.
 */
#ifndef RIFT_FUZZ_COMMON_H
#define RIFT_FUZZ_COMMON_H

#ifdef FUZZ_STANDALONE
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fuzz_run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0;

	if (!f) {
		perror(path);
		return -1;
	}
	for (;;) {
		if (len == cap) {
			cap = cap ? cap * 2 : 4096;
			uint8_t *nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				fclose(f);
				return -1;
			}
			buf = nb;
		}
		size_t n = fread(buf + len, 1, cap - len, f);
		if (n == 0)
			break;
		len += n;
	}
	fclose(f);
	LLVMFuzzerTestOneInput(buf, len);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	int runs = 0, failures = 0;

	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) < 0) {
			perror(argv[i]);
			failures++;
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			failures += fuzz_run_file(argv[i]) < 0;
			runs++;
			continue;
		}
		DIR *d = opendir(argv[i]);
		struct dirent *e;
		if (!d) {
			perror(argv[i]);
			failures++;
			continue;
		}
		while ((e = readdir(d))) {
			char path[4096];
			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
			if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
				continue;
			failures += fuzz_run_file(path) < 0;
			runs++;
		}
		closedir(d);
	}
	printf("%s: replayed %d input%s, %d unreadable\n", argv[0], runs,
	       runs == 1 ? "" : "s", failures);
	return failures || runs == 0 ? 1 : 0;
}
#endif

#endif
