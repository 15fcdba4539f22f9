/*
 * rift-asm - assemble, disassemble, check and hash Rift VM modules
 * (docs/vm.md, "rift-asm").
 *
 *   rift-asm FILE.rasm -o FILE.rbc    assemble into a msgpack module
 *   rift-asm -d FILE.rbc              disassemble to stdout
 *   rift-asm --check FILE             load (or assemble) and verify
 *   rift-asm --hash FILE              BLAKE2b-256 of the module, in hex
 *
 * A FILE whose name ends in .rasm is assembly; any other is a module.
 * Exit status: 0 done, 1 the input is wrong (the message on stderr), 2
 * usage.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "asm.h"
#include "codec.h"
#include "module.h"

#define MAX_SOURCE (256u << 20)

static void usage(FILE *f)
{
	fputs("usage: rift-asm FILE.rasm -o FILE.rbc   assemble (-o - writes to stdout)\n"
	      "       rift-asm -d FILE.rbc             disassemble to stdout\n"
	      "       rift-asm --check FILE            verify (.rasm: assemble); silent when good\n"
	      "       rift-asm --hash FILE             print the module's BLAKE2b-256 (hex)\n"
	      "       rift-asm -h                      this help\n"
	      "A FILE ending in .rasm is assembly, any other a bytecode module.\n"
	      "Exit status: 0 ok, 1 bad input (message on stderr), 2 usage.\n",
	      f);
}

static bool is_source(const char *path)
{
	size_t n = strlen(path);
	return n > 5 && strcmp(path + n - 5, ".rasm") == 0;
}

/* Assemble or load path into m. 0, or 1 with the message printed. */
static int load(const char *path, struct vm_module *m)
{
	char err[1024];
	if (is_source(path)) {
		uint8_t *src = NULL;
		size_t len = 0;
		int rc = vm_read_file(path, MAX_SOURCE, &src, &len);
		if (rc) {
			fprintf(stderr, "rift-asm: %s: %s\n", path, strerror(-rc));
			return 1;
		}
		rc = vm_assemble((const char *)src, len, path, m, err, sizeof err);
		free(src);
		if (rc) {
			fprintf(stderr, "%s\n", err);
			return 1;
		}
		return 0;
	}
	if (vm_load_file(path, m, err, sizeof err) != 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	return 0;
}

/* Write buf to path through a temporary file, or to stdout for "-". */
static int write_out(const char *path, const uint8_t *buf, size_t len)
{
	if (strcmp(path, "-") == 0) {
		if (fwrite(buf, 1, len, stdout) != len || fflush(stdout) != 0) {
			fprintf(stderr, "rift-asm: stdout: %s\n", strerror(errno));
			return 1;
		}
		return 0;
	}
	size_t n = strlen(path) + 16;
	char *tmp = malloc(n);
	if (!tmp) {
		fprintf(stderr, "rift-asm: out of memory\n");
		return 1;
	}
	snprintf(tmp, n, "%s.tmp%ld", path, (long)getpid());
	FILE *f = fopen(tmp, "wb");
	int ok = f != NULL;
	if (ok)
		ok = fwrite(buf, 1, len, f) == len;
	if (f && fclose(f) != 0)
		ok = 0;
	if (ok && rename(tmp, path) != 0)
		ok = 0;
	if (!ok) {
		fprintf(stderr, "rift-asm: %s: %s\n", path, strerror(errno));
		unlink(tmp);
	}
	free(tmp);
	return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	const char *mode = NULL, *in = NULL, *outp = NULL;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		}
		if (strcmp(a, "-o") == 0) {
			if (++i >= argc || outp) {
				usage(stderr);
				return 2;
			}
			outp = argv[i];
		} else if (strcmp(a, "-d") == 0 || strcmp(a, "--check") == 0 ||
		           strcmp(a, "--hash") == 0) {
			if (mode) {
				usage(stderr);
				return 2;
			}
			mode = a;
		} else if (a[0] == '-' && a[1] != '\0') {
			fprintf(stderr, "rift-asm: unknown option '%s'\n", a);
			usage(stderr);
			return 2;
		} else if (in) {
			usage(stderr);
			return 2;
		} else {
			in = a;
		}
	}
	if (!in || (mode && outp) || (!mode && !outp)) {
		usage(stderr);
		return 2;
	}

	struct vm_module m = {0};
	int status = load(in, &m);
	if (status)
		return status;
	if (!mode) {
		uint8_t *buf;
		size_t len = 0;
		int rc = vm_encode(&m, &buf, &len);
		if (rc) {
			fprintf(stderr, "rift-asm: %s: encoding: %s\n", in, strerror(-rc));
			status = 1;
		} else {
			status = write_out(outp, buf, len);
			free(buf);
		}
	} else if (strcmp(mode, "-d") == 0) {
		int rc = vm_disassemble(&m, stdout);
		if (rc == 0 && fflush(stdout) != 0)
			rc = -errno;
		if (rc) {
			fprintf(stderr, "rift-asm: %s: %s\n", in, strerror(-rc));
			status = 1;
		}
	} else if (strcmp(mode, "--hash") == 0) {
		uint8_t h[32];
		int rc = vm_module_hash(&m, h);
		if (rc) {
			fprintf(stderr, "rift-asm: %s: %s\n", in, strerror(-rc));
			status = 1;
		} else {
			for (int i = 0; i < 32; i++)
				printf("%02x", h[i]);
			putchar('\n');
		}
	}
	vm_module_free(&m);
	return status;
}
