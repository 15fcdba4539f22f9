/*
 * rift-vmbench - the Rift VM beside lua5.4 on the same programs, in one
 * run (bench/README.md, "rift-vmbench").
 *
 *   rift-vmbench [--quick] [--runs N] [--rows LIST] [--lua PATH] [--dir DIR]
 *
 * Rows (bench/vm/NAME.rasm and NAME.lua are the same program):
 *   fib       recursive fib(32)                      seconds, ratio <= 1.0
 *   loop      100,000,000 integer additions          seconds, ratio <= 1.0
 *   bytes     a 15 MB byte string from 5,000,000 appends   seconds
 *   pingpong  continuation round trips (resume + yield)    switches/s >= 5 M
 *   pipe      two fibers passing a byte through in-process pipes: every read
 *             parks its fiber (no Lua twin: Lua has no event loop)
 *   parked    memory of 100,000 fibers parked on I/O: bytes per fiber (< 1 KiB
 *             beyond its registers) and the process's RSS growth
 *
 * The VM runs in this process (the library the runtime plugin uses, no
 * broker: these rows measure the interpreter). lua5.4 runs as a child;
 * its time includes starting the interpreter (a few ms). Every figure is
 * the median of --runs runs (3), Rift and Lua alternating. PASS/MISS is
 * information only (DESIGN.md section 9). Exit status 1 when a program
 * failed (a wrong result is a trap), 2 on a usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "asm.h"
#include "codec.h"
#include "vm.h"

#ifndef RIFT_VM_BENCH_DIR
#define RIFT_VM_BENCH_DIR "bench/vm"
#endif

static struct {
	bool quick;
	int runs;
	const char *rows;
	const char *lua;
	const char *dir;
} opt = {false, 3, "all", "lua5.4", RIFT_VM_BENCH_DIR};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- in-process channels: "ab", "ba" (one-byte pipes), "idle" ---- */

struct pipe {
	char buf[256];
	size_t len;
};
static struct pipe pipes[2];
static char idle;
static struct vm *cur_vm;

static int b_open(void *ctx, const char *alias, size_t len, void **chan)
{
	(void)ctx;
	if (len == 2 && memcmp(alias, "ab", 2) == 0)
		*chan = &pipes[0];
	else if (len == 2 && memcmp(alias, "ba", 2) == 0)
		*chan = &pipes[1];
	else if (len == 4 && memcmp(alias, "idle", 4) == 0)
		*chan = &idle;
	else
		return -ENOENT;
	return 0;
}

static int64_t b_read(void *ctx, void *chan, void *buf, size_t len)
{
	(void)ctx;
	if (chan == &idle)
		return -EAGAIN;
	struct pipe *p = chan;
	if (!p->len)
		return -EAGAIN;
	size_t n = p->len < len ? p->len : len;
	memcpy(buf, p->buf, n);
	memmove(p->buf, p->buf + n, p->len - n);
	p->len -= n;
	return (int64_t)n;
}

static int64_t b_write(void *ctx, void *chan, const void *buf, size_t len)
{
	(void)ctx;
	struct pipe *p = chan;
	size_t room = sizeof p->buf - p->len;
	if (!room)
		return -EAGAIN;
	size_t n = len < room ? len : room;
	memcpy(p->buf + p->len, buf, n);
	p->len += n;
	vm_io_ready(cur_vm, chan); /* the reader on the other side may go */
	return (int64_t)n;
}

static int64_t b_seek(void *ctx, void *chan, int64_t off, int whence)
{
	(void)ctx, (void)chan, (void)off, (void)whence;
	return -ESPIPE;
}

static int b_close(void *ctx, void *chan)
{
	(void)ctx, (void)chan;
	return 0;
}

static const struct vm_io bench_io = {NULL, b_open, b_read, b_write, b_seek, b_close, NULL};

/* ---- programs ---- */

/* The source with @N@ and @EXPECT@ replaced. */
static char *instantiate(const char *src, long long n, long long expect)
{
	/* Room for a 20-digit number at every '@'. */
	size_t cap = strlen(src) + 1;
	for (const char *s = src; *s; s++)
		cap += *s == '@' ? 20 : 0;
	char *out = malloc(cap), *o = out;
	if (!out)
		return NULL;
	for (const char *s = src; *s;) {
		if (strncmp(s, "@N@", 3) == 0) {
			o += sprintf(o, "%lld", n);
			s += 3;
		} else if (strncmp(s, "@EXPECT@", 8) == 0) {
			o += sprintf(o, "%lld", expect);
			s += 8;
		} else {
			*o++ = *s++;
		}
	}
	*o = 0;
	return out;
}

static int load(const char *name, long long n, long long expect, struct vm_module *m)
{
	char path[4096], err[1024];
	snprintf(path, sizeof path, "%s/%s.rasm", opt.dir, name);
	size_t len;
	uint8_t *src;
	int rc = vm_read_file(path, 1u << 20, &src, &len);
	if (rc < 0) {
		fprintf(stderr, "rift-vmbench: %s: %s\n", path, strerror(-rc));
		return -1;
	}
	char *text = instantiate((const char *)src, n, expect);
	free(src);
	rc = text ? vm_assemble(text, strlen(text), path, m, err, sizeof err) : -ENOMEM;
	free(text);
	if (rc < 0) {
		fprintf(stderr, "rift-vmbench: %s\n", err);
		return -1;
	}
	return 0;
}

/* Run a module to its end; seconds, or -1 on a trap / a wait. */
static double run_vm(const struct vm_module *m, struct vm **keep)
{
	memset(pipes, 0, sizeof pipes);
	struct vm *v = vm_new(m, &bench_io, &(struct vm_limits){0});
	if (!v)
		return -1;
	cur_vm = v;
	double t0 = now();
	enum vm_status st;
	while ((st = vm_run(v, 1u << 24)) == VM_RUN_MORE)
		;
	double t = now() - t0;
	if (st == VM_RUN_TRAP)
		fprintf(stderr, "rift-vmbench: %s\n", vm_error(v));
	if (keep && st == VM_RUN_WAIT) {
		*keep = v;
		return t;
	}
	vm_free(v);
	return st == VM_RUN_DONE ? t : -1;
}

static double run_lua(const char *name, long long n, long long expect)
{
	char path[4096], a1[32], a2[32];
	snprintf(path, sizeof path, "%s/%s.lua", opt.dir, name);
	snprintf(a1, sizeof a1, "%lld", n);
	snprintf(a2, sizeof a2, "%lld", expect);
	double t0 = now();
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		execlp(opt.lua, opt.lua, path, a1, a2, (char *)NULL);
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	double t = now() - t0;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? t : -1;
}

static bool want(const char *row)
{
	if (strcmp(opt.rows, "all") == 0)
		return true;
	const char *p = strstr(opt.rows, row);
	size_t l = strlen(row);
	return p && (p == opt.rows || p[-1] == ',') && (p[l] == 0 || p[l] == ',');
}

static int failed;

/* A timed row beside Lua: seconds, ratio rift/lua (target <= 1). */
static void timed_row(const char *name, const char *what, long long n, long long expect,
                      bool target)
{
	if (!want(name))
		return;
	struct vm_module m;
	if (load(name, n, expect, &m) < 0) {
		failed = 1;
		return;
	}
	double r[16], l[16];
	int runs = opt.runs, lua_ok = 1;
	for (int i = 0; i < runs; i++) {
		r[i] = run_vm(&m, NULL);
		l[i] = run_lua(name, n, expect);
		if (r[i] < 0)
			failed = 1;
		if (l[i] < 0)
			lua_ok = 0;
	}
	vm_module_free(&m);
	double rm = median(r, runs), lm = lua_ok ? median(l, runs) : 0;
	if (lua_ok)
		printf("%-9s %-38s %9.3f %9.3f %7.3f  %-8s %s\n", name, what, rm, lm, rm / lm,
		       target ? "<= 1.0" : "-", !target ? "" : rm / lm <= 1.0 ? "PASS" : "MISS");
	else
		printf("%-9s %-38s %9.3f %9s %7s  %-8s (%s did not run)\n", name, what, rm, "-", "-",
		       target ? "<= 1.0" : "-", opt.lua);
}

static void rate_row(const char *name, const char *what, long long n, double per_round)
{
	if (!want(name))
		return;
	struct vm_module m;
	if (load(name, n, 0, &m) < 0) {
		failed = 1;
		return;
	}
	double r[16], l[16];
	int lua_ok = 1;
	bool has_lua = strcmp(name, "pingpong") == 0;
	for (int i = 0; i < opt.runs; i++) {
		r[i] = run_vm(&m, NULL);
		if (r[i] < 0)
			failed = 1;
		l[i] = has_lua ? run_lua(name, n, 0) : -1;
		if (l[i] < 0)
			lua_ok = 0;
	}
	vm_module_free(&m);
	double rs = (double)n * per_round / median(r, opt.runs);
	if (has_lua && lua_ok) {
		double ls = (double)n * per_round / median(l, opt.runs);
		printf("%-9s %-38s %9.2fM %8.2fM %7.3f  %-8s %s\n", name, what, rs / 1e6, ls / 1e6,
		       rs / ls, ">= 5M/s", rs >= 5e6 ? "PASS" : "MISS");
	} else {
		printf("%-9s %-38s %9.2fM %9s %7s  %-8s %s\n", name, what, rs / 1e6, "-", "-",
		       has_lua ? ">= 5M/s" : "-", has_lua ? (rs >= 5e6 ? "PASS" : "MISS") : "");
	}
}

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long pages = 0, res = 0;
	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &res) != 2)
			res = 0;
		fclose(f);
	}
	return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static void parked_row(long long n)
{
	if (!want("parked"))
		return;
	struct vm_module m;
	if (load("parked", n, 0, &m) < 0) {
		failed = 1;
		return;
	}
	long before = rss_kib();
	struct vm *v = NULL;
	if (run_vm(&m, &v) < 0 || !v) {
		fprintf(stderr, "rift-vmbench: parked: the fibers did not all park\n");
		failed = 1;
		vm_module_free(&m);
		return;
	}
	long after = rss_kib();
	/* Registers: a waiter's frame has 4 (64 bytes); say what is beyond. */
	double per = (double)vm_memory(v) / (double)n;
	double regs = 4 * 16;
	printf("%-9s %-38s %8.0f B %7ld KiB  beyond registers: %.0f B  %-8s %s\n", "parked",
	       "heap per parked fiber; RSS growth", per, after - before, per - regs, "< 1 KiB",
	       per - regs < 1024 ? "PASS" : "MISS");
	printf("          (%lld fibers alive: %u)\n", n, vm_fibers(v));
	vm_free(v);
	vm_module_free(&m);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{"quick", no_argument, 0, 'q'}, {"runs", required_argument, 0, 'n'},
		{"rows", required_argument, 0, 'r'}, {"lua", required_argument, 0, 'L'},
		{"dir", required_argument, 0, 'd'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "qn:r:L:d:h", lo, NULL)) != -1) {
		switch (c) {
		case 'q': opt.quick = true; opt.runs = 1; break;
		case 'n': opt.runs = atoi(optarg); break;
		case 'r': opt.rows = optarg; break;
		case 'L': opt.lua = optarg; break;
		case 'd': opt.dir = optarg; break;
		case 'h':
			printf("usage: rift-vmbench [--quick] [--runs N] [--rows fib,loop,bytes,pingpong,"
			       "pipe,parked] [--lua PATH] [--dir DIR]\n");
			return 0;
		default:
			return 2;
		}
	}
	if (opt.runs < 1 || opt.runs > 15) {
		fprintf(stderr, "rift-vmbench: --runs is 1 to 15\n");
		return 2;
	}
	bool q = opt.quick;
	printf("rift-vmbench: the Rift VM beside %s, same programs (bench/vm/); median of %d "
	       "run%s%s\n\n", opt.lua, opt.runs, opt.runs > 1 ? "s" : "",
	       q ? " (--quick: tiny sizes, the figures mean nothing)" : "");
	printf("%-9s %-38s %9s %9s %7s  %-8s %s\n", "row", "benchmark", "rift", "lua", "ratio",
	       "target", "result");
	long long fn = q ? 20 : 32, fexp = q ? 6765 : 2178309;
	timed_row("fib", q ? "recursive fib(20), seconds" : "recursive fib(32), seconds", fn, fexp,
	          true);
	long long ln = q ? 1000000 : 100000000;
	timed_row("loop", "integer loop, seconds", ln, ln * (ln - 1) / 2, true);
	long long bn = q ? 100000 : 5000000;
	timed_row("bytes", "byte string by appends, seconds", bn, bn * 3, false);
	rate_row("pingpong", "continuation switches/s", q ? 100000 : 5000000, 2);
	rate_row("pipe", "fiber switches/s through pipes", q ? 10000 : 1000000, 2);
	parked_row(q ? 1000 : 100000);
	printf("\nratio: rift / lua for seconds (lower is better), rift / lua for rates "
	       "(higher is better).\n");
	return failed;
}
