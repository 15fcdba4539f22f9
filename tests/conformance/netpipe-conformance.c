/*
 * netpipe-conformance - checks that a transport plugin gives the semantics
 * of DESIGN.md section 4 (docs/conformance.md tells how to run it).
 *
 *     netpipe-conformance [options] PLUGIN.so ADDRESS_TEMPLATE
 *
 * The runner starts every case as a process of its own (this program,
 * exec'd again with --run-case), so a crash, a SIGPIPE or a blocked op in
 * one case is reported as that case's failure and the others still run. A
 * case that needs a writer in another process starts one the same way
 * (--child-writer): the plugin is never used across a bare fork.
 */
#include "kit.h"

#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t interrupted;
static volatile pid_t running_case;

static void on_signal(int sig)
{
	interrupted = sig;
	if (running_case > 0)
		kill(-running_case, SIGKILL);
}

static void usage(FILE *f)
{
	fprintf(f,
	    "usage: netpipe-conformance [options] PLUGIN.so ADDRESS_TEMPLATE\n"
	    "\n"
	    "Checks a netpipe transport plugin against DESIGN.md section 4.\n"
	    "In ADDRESS_TEMPLATE, {n} is a fresh number for every pipe pair, {port}\n"
	    "a free loopback TCP port, {tmp} a temporary directory the kit creates\n"
	    "and removes, e.g. '{tmp}/{n}.sock' or 'tcp://127.0.0.1:{port}'.\n"
	    "\n"
	    "  --bytes N         bytes for bulk_no_loss (default 256M; K, M, G suffixes)\n"
	    "  --quick           bulk_no_loss with 16M\n"
	    "  --case NAME       run only this case (repeatable)\n"
	    "  --list            list the cases and exit\n"
	    "  --timeout-ms MS   bound of each case (default 30000)\n"
	    "  --op-limit-ms MS  an op that blocks longer fails (default 100)\n"
	    "  --etag            open every pipe with etag = 1\n"
	    "  -v, --verbose     show the plugin's info and debug log lines\n"
	    "\n"
	    "Prints 'ok NAME' or 'FAIL NAME: reason' per case, then\n"
	    "'N passed, N failed'; exits 0 only if no case failed.\n");
}

static int parse_size(const char *s, int64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	unsigned long long m = 1;
	switch (*end) {
	case 'k': case 'K': m = 1ull << 10; end++; break;
	case 'm': case 'M': m = 1ull << 20; end++; break;
	case 'g': case 'G': m = 1ull << 30; end++; break;
	}
	if (errno || end == s || *end || v > (1ull << 62) / m)
		return -1;
	*out = (int64_t)(v * m);
	return 0;
}

static int check_template(const char *t)
{
	int has = 0;
	for (const char *p = strchr(t, '{'); p; p = strchr(p + 1, '{')) {
		if (!strncmp(p, "{n}", 3) || !strncmp(p, "{port}", 6) || !strncmp(p, "{tmp}", 5)) {
			has |= p[1] == 't' ? 2 : 1;
			continue;
		}
		fprintf(stderr, "netpipe-conformance: unknown placeholder in \"%s\" (known: "
		        "{n} {port} {tmp})\n", t);
		return -1;
	}
	if (!(has & 1))
		fprintf(stderr, "netpipe-conformance: warning: the template has neither {n} nor "
		        "{port}: every case uses the same address\n");
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	remove(path);
	return 0;
}

static const struct kit_case *find_case(const char *name)
{
	for (int i = 0; i < kit_ncases; i++)
		if (!strcmp(kit_cases[i].name, name))
			return &kit_cases[i];
	return NULL;
}

/* Run one case in a process of its own; print its line if it could not. */
static int run_one(const struct kit_case *kc, struct kit_opts *o, unsigned n_base)
{
	char nb[32], bb[32], tb[32], lb[32];
	char *argv[32];
	int a = 0;
	snprintf(nb, sizeof nb, "%u", n_base);
	snprintf(bb, sizeof bb, "%lld", (long long)o->bytes);
	snprintf(tb, sizeof tb, "%lld", (long long)o->timeout_ms);
	snprintf(lb, sizeof lb, "%lld", (long long)o->op_limit_ms);
	argv[a++] = "netpipe-conformance";
	argv[a++] = "--run-case";
	argv[a++] = (char *)kc->name;
	argv[a++] = "--n-base";
	argv[a++] = nb;
	argv[a++] = "--bytes";
	argv[a++] = bb;
	argv[a++] = "--timeout-ms";
	argv[a++] = tb;
	argv[a++] = "--op-limit-ms";
	argv[a++] = lb;
	if (o->tmp_dir) {
		argv[a++] = "--tmp-dir";
		argv[a++] = (char *)o->tmp_dir;
	}
	if (o->etag)
		argv[a++] = "--etag";
	if (o->verbose)
		argv[a++] = "--verbose";
	argv[a++] = "--";
	argv[a++] = (char *)o->plugin;
	argv[a++] = (char *)o->tmpl;
	argv[a] = NULL;

	pid_t pid = kit_spawn(argv, NULL);
	if (pid < 0) {
		printf("FAIL %s: cannot start the case process: %s\n", kc->name, strerror(errno));
		return KIT_FAIL;
	}
	running_case = pid;
	int timed_out;
	/* The case bounds its own waits; this catches an op that blocks. */
	int64_t budget = kit_case_budget_ms(kc, o) + 10000;
	int st = kit_reap(pid, budget, &timed_out);
	kill(-pid, SIGKILL); /* whatever it left behind in its group */
	running_case = 0;
	fflush(stdout);
	if (interrupted) {
		printf("FAIL %s: interrupted\n", kc->name);
		return KIT_FAIL;
	}
	if (timed_out) {
		printf("FAIL %s: did not finish within %lld ms: an op blocked, or a wait in the "
		       "case never ended (rerun with --case %s --verbose)\n", kc->name,
		       (long long)budget, kc->name);
		return KIT_FAIL;
	}
	if (WIFEXITED(st) && (WEXITSTATUS(st) == KIT_PASS || WEXITSTATUS(st) == KIT_FAIL ||
	                      WEXITSTATUS(st) == KIT_SKIP))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st) && WTERMSIG(st) == SIGPIPE)
		printf("FAIL %s: the case process was killed by SIGPIPE: a plugin op raised it "
		       "(rule 4: never SIGPIPE; send with MSG_NOSIGNAL)\n", kc->name);
	else
		printf("FAIL %s: the case process ended with %s (a crash in the plugin? rerun "
		       "with --case %s)\n", kc->name, kit_status(st), kc->name);
	return KIT_FAIL;
}

int main(int argc, char **argv)
{
	struct kit_opts o = {
		.bytes = 256ll << 20, .timeout_ms = 30000, .op_limit_ms = 100,
	};
	const char *cases[64];
	int ncases = 0, list = 0, child = 0, hold = 0;
	const char *run_case = NULL;
	int64_t seed = 1, max_write = 256 << 10, v;
	enum { O_BYTES = 256, O_QUICK, O_CASE, O_LIST, O_TIMEOUT, O_OPLIMIT, O_ETAG,
	       O_RUNCASE, O_CHILD, O_TMPDIR, O_NBASE, O_SEED, O_HOLD, O_MAXWRITE };
	static const struct option longopts[] = {
		{ "bytes", required_argument, NULL, O_BYTES },
		{ "quick", no_argument, NULL, O_QUICK },
		{ "case", required_argument, NULL, O_CASE },
		{ "list", no_argument, NULL, O_LIST },
		{ "timeout-ms", required_argument, NULL, O_TIMEOUT },
		{ "op-limit-ms", required_argument, NULL, O_OPLIMIT },
		{ "etag", no_argument, NULL, O_ETAG },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		/* internal: how the kit runs itself */
		{ "run-case", required_argument, NULL, O_RUNCASE },
		{ "child-writer", no_argument, NULL, O_CHILD },
		{ "tmp-dir", required_argument, NULL, O_TMPDIR },
		{ "n-base", required_argument, NULL, O_NBASE },
		{ "seed", required_argument, NULL, O_SEED },
		{ "hold", no_argument, NULL, O_HOLD },
		{ "max-write", required_argument, NULL, O_MAXWRITE },
		{ NULL, 0, NULL, 0 },
	};
	int opt;
	while ((opt = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
		switch (opt) {
		case O_BYTES:
			if (parse_size(optarg, &o.bytes) || o.bytes < 1)
				goto bad;
			break;
		case O_QUICK: o.bytes = 16 << 20; break;
		case O_CASE:
			if (ncases == 64)
				goto bad;
			cases[ncases++] = optarg;
			break;
		case O_LIST: list = 1; break;
		case O_TIMEOUT:
			if (parse_size(optarg, &o.timeout_ms) || o.timeout_ms < 100)
				goto bad;
			break;
		case O_OPLIMIT:
			if (parse_size(optarg, &o.op_limit_ms) || o.op_limit_ms < 1)
				goto bad;
			break;
		case O_ETAG: o.etag = 1; break;
		case 'v': o.verbose = 1; break;
		case 'h': usage(stdout); return 0;
		case O_RUNCASE: run_case = optarg; break;
		case O_CHILD: child = 1; break;
		case O_TMPDIR: o.tmp_dir = optarg; break;
		case O_NBASE:
			if (parse_size(optarg, &v))
				goto bad;
			o.n_base = (unsigned)v;
			break;
		case O_SEED:
			if (parse_size(optarg, &seed))
				goto bad;
			break;
		case O_HOLD: hold = 1; break;
		case O_MAXWRITE:
			if (parse_size(optarg, &max_write) || max_write < 1)
				goto bad;
			break;
		default:
			goto bad;
		}
	}
	if (list) {
		for (int i = 0; i < kit_ncases; i++)
			printf("%-26s %-22s %s\n", kit_cases[i].name, kit_cases[i].rules,
			       kit_cases[i].what);
		return 0;
	}
	if (child) {
		int64_t n;
		if (argc - optind != 3 || parse_size(argv[optind + 2], &n))
			goto bad;
		o.plugin = argv[optind];
		return kit_child_writer(&o, argv[optind + 1], (uint64_t)n, (uint64_t)seed, hold,
		                        (size_t)max_write);
	}
	if (argc - optind != 2)
		goto bad;
	o.plugin = argv[optind];
	o.tmpl = argv[optind + 1];
	if (check_template(o.tmpl))
		return 2;
	if (run_case) {
		const struct kit_case *kc = find_case(run_case);
		if (!kc) {
			fprintf(stderr, "netpipe-conformance: no case %s (see --list)\n", run_case);
			return 2;
		}
		return kit_run_case(kc, &o);
	}

	if (access(o.plugin, R_OK) != 0) {
		fprintf(stderr, "netpipe-conformance: %s: %s\n", o.plugin, strerror(errno));
		return 2;
	}
	for (int i = 0; i < ncases; i++) {
		if (!find_case(cases[i])) {
			fprintf(stderr, "netpipe-conformance: no case %s (see --list)\n", cases[i]);
			return 2;
		}
	}
	char tmp[4096] = "";
	if (strstr(o.tmpl, "{tmp}")) {
		const char *base = getenv("TMPDIR");
		snprintf(tmp, sizeof tmp, "%s/rift-conf.XXXXXX", base && *base ? base : "/tmp");
		if (!mkdtemp(tmp)) {
			fprintf(stderr, "netpipe-conformance: mkdtemp %s: %s\n", tmp, strerror(errno));
			return 2;
		}
		o.tmp_dir = tmp;
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	/* A closed stdout (| head) must not stop the runner before it removed
	 * {tmp}; each case sets SIGPIPE back to its default action. */
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);

	int passed = 0, failed = 0, skipped = 0;
	for (int i = 0; i < kit_ncases && !interrupted; i++) {
		const struct kit_case *kc = &kit_cases[i];
		int want = ncases == 0;
		for (int j = 0; j < ncases; j++)
			want |= !strcmp(cases[j], kc->name);
		if (!want)
			continue;
		int r = run_one(kc, &o, 1 + 100 * (unsigned)i);
		if (r == KIT_PASS)
			passed++;
		else if (r == KIT_SKIP)
			skipped++;
		else
			failed++;
	}
	if (skipped)
		printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
	else
		printf("%d passed, %d failed\n", passed, failed);
	if (tmp[0])
		nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	if (interrupted)
		return 128 + interrupted;
	return failed ? 1 : 0;
bad:
	usage(stderr);
	return 2;
}
