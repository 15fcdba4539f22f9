/*
 * test_loader.c - the broker refuses a broken plugin with one clear line
 * and goes on loading the others (DESIGN.md section 3); --list-plugins
 * tells the truth about what was loaded and from where.
 *
 * Every case runs the real broker as a child process:
 *
 *     broker --list-plugins -P <dir> ...
 *
 * with RIFT_PLUGIN_PATH and RIFT_LOG unset, so only the -P directories
 * count (the install directory is searched last; lines about it are
 * ignored, so an installed copy of Rift does not break the tests). meson
 * passes every path in the environment:
 *
 *   BROKER             build/broker/broker
 *   RIFT_PLUGINS       build/plugins (unix/unix.so, file/file.so, ...)
 *   BAD_FIXTURES       build/tests/plugins/bad, one folder per refusal
 *   GOOD_FIXTURES      build/tests/plugins/good (loop/loop.so)
 *   INSTALLED_PLUGINS  the install directory the broker searches last
 */
#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "libnetpipe.h"
#include "netpipe.h"

/* A broker listing plugins takes milliseconds; this only bounds a hang. */
#define RUN_TIMEOUT_MS 20000
#define CASE_TIMEOUT_S 60
#define OUT_MAX        (256 * 1024)

/* ---- the environment meson gives us ---- */

static const char *need_env(const char *name)
{
	const char *v = getenv(name);
	if (!v || !*v)
		ck_abort_msg("%s is not set: run this test through `meson test`", name);
	return v;
}

/* Format a path into buf (PATH_MAX bytes); fails the case if it does not
 * fit. */
static const char *pathf(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static const char *pathf(char *buf, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, PATH_MAX, fmt, ap);
	va_end(ap);
	ck_assert_msg(n >= 0 && n < PATH_MAX, "a path longer than %d bytes", PATH_MAX);
	return buf;
}

static const char *bad_dir(const char *sub, char *buf)
{
	return pathf(buf, "%s/%s", need_env("BAD_FIXTURES"), sub);
}

/* ---- running the broker ---- */

struct run {
	char cmd[2048];   /* for messages */
	int status;       /* exit status, or 128 + signal */
	char *out, *err;  /* NUL-terminated */
	size_t nout, nerr;
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void slurp(int *fd, char *buf, size_t *n, const char *what, const char *cmd)
{
	ssize_t r = read(*fd, buf + *n, OUT_MAX - 1 - *n);
	if (r < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	ck_assert_msg(r >= 0, "%s: reading its %s: %s", cmd, what, strerror(errno));
	ck_assert_msg(r > 0 || *n < OUT_MAX - 1, "%s: more than %d bytes of %s", cmd,
	              OUT_MAX - 1, what);
	if (r == 0) {
		close(*fd);
		*fd = -1;
	}
	*n += (size_t)r;
	buf[*n] = '\0';
}

/*
 * Run the broker with args (NULL-terminated) in cwd (NULL: ours), with
 * RIFT_PLUGIN_PATH set to plugin_path (NULL: unset). Collects stdout and
 * stderr through pipes until both are closed and the broker has exited;
 * kills it and fails the case after RUN_TIMEOUT_MS.
 */
static void run_broker(struct run *r, const char *cwd, const char *plugin_path,
                       const char *const *args)
{
	const char *broker = need_env("BROKER");
	char *argv[64];
	int argc = 0;
	size_t o;

	memset(r, 0, sizeof *r);
	r->out = calloc(1, OUT_MAX);
	r->err = calloc(1, OUT_MAX);
	ck_assert(r->out && r->err);
	argv[argc++] = (char *)broker;
	o = (size_t)snprintf(r->cmd, sizeof r->cmd, "%s%s%s", plugin_path ? "RIFT_PLUGIN_PATH=" : "",
	                     plugin_path ? plugin_path : "", plugin_path ? " " : "");
	o += (size_t)snprintf(r->cmd + o, sizeof r->cmd - o, "%s", broker);
	for (; *args; args++) {
		ck_assert(argc < 63);
		argv[argc++] = (char *)*args;
		if (o < sizeof r->cmd)
			o += (size_t)snprintf(r->cmd + o, sizeof r->cmd - o, " %s", *args);
	}
	argv[argc] = NULL;
	if (cwd && o < sizeof r->cmd)
		snprintf(r->cmd + o, sizeof r->cmd - o, " (in %s)", cwd);

	int po[2], pe[2];
	ck_assert_msg(pipe2(po, O_CLOEXEC) == 0 && pipe2(pe, O_CLOEXEC) == 0, "pipe2: %s",
	              strerror(errno));
	pid_t pid = fork();
	ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		dup2(po[1], STDOUT_FILENO);
		dup2(pe[1], STDERR_FILENO);
		unsetenv("RIFT_PLUGIN_PATH");
		unsetenv("RIFT_LOG");
		if (plugin_path)
			setenv("RIFT_PLUGIN_PATH", plugin_path, 1);
		if (cwd && chdir(cwd) < 0) {
			dprintf(STDERR_FILENO, "test: chdir %s: %s\n", cwd, strerror(errno));
			_exit(126);
		}
		execv(broker, argv);
		dprintf(STDERR_FILENO, "test: exec %s: %s\n", broker, strerror(errno));
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);

	/* The pidfd says when it exited; without one (old kernels) closed
	 * pipes mean it is about to, and waitpid below waits for that. */
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	int fo = po[0], fe = pe[0];
	bool exited = pidfd < 0;
	int64_t deadline = now_ms() + RUN_TIMEOUT_MS;
	while (fo >= 0 || fe >= 0 || !exited) {
		int64_t left = deadline - now_ms();
		if (left <= 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			ck_abort_msg("%s: still running after %d ms, killed it; its stderr:\n%s",
			             r->cmd, RUN_TIMEOUT_MS, r->err);
		}
		struct pollfd pf[3] = {{fo, POLLIN, 0}, {fe, POLLIN, 0},
		                       {exited ? -1 : pidfd, POLLIN, 0}};
		int n = poll(pf, 3, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		ck_assert_msg(n >= 0, "poll: %s", strerror(errno));
		if (pf[0].revents)
			slurp(&fo, r->out, &r->nout, "stdout", r->cmd);
		if (pf[1].revents)
			slurp(&fe, r->err, &r->nerr, "stderr", r->cmd);
		if (pf[2].revents)
			exited = true;
	}
	if (pidfd >= 0)
		close(pidfd);
	int st;
	ck_assert_msg(waitpid(pid, &st, 0) == pid, "waitpid: %s", strerror(errno));
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

/* ---- reading what it said ---- */

#define MAX_LINES 256

/* Split text (modified in place) into its non-empty lines; returns how
 * many. */
static int split_lines(char *text, char **lines)
{
	int n = 0;
	char *save = NULL;
	for (char *l = strtok_r(text, "\n", &save); l && n < MAX_LINES;
	     l = strtok_r(NULL, "\n", &save))
		lines[n++] = l;
	return n;
}

/* A refusal line: "broker: error: plugin PATH: refused: REASON". */
static bool refusal(const char *line, char *path, size_t plen, const char **reason)
{
	static const char pre[] = "broker: error: plugin ";
	const char *r = strstr(line, ": refused: ");
	if (strncmp(line, pre, sizeof pre - 1) != 0 || !r)
		return false;
	snprintf(path, plen, "%.*s", (int)(r - line - (int)(sizeof pre - 1)),
	         line + sizeof pre - 1);
	*reason = r + strlen(": refused: ");
	return true;
}

static bool under(const char *path, const char *dir)
{
	size_t l = strlen(dir);
	return strncmp(path, dir, l) == 0 && path[l] == '/';
}

struct refusals {
	int n;
	char path[MAX_LINES][PATH_MAX];
	char reason[MAX_LINES][1024];
};

/*
 * Every stderr line must be a refusal (the only thing --list-plugins has
 * to complain about). Refusals of installed plugins are dropped: they
 * depend on the machine, not on the fixtures.
 */
static void refusals_of(const struct run *r, struct refusals *f)
{
	char *copy = strdup(r->err), *lines[MAX_LINES];
	const char *installed = getenv("INSTALLED_PLUGINS");
	ck_assert(copy);
	int n = split_lines(copy, lines);
	f->n = 0;
	for (int i = 0; i < n; i++) {
		char path[PATH_MAX];
		const char *why;
		ck_assert_msg(refusal(lines[i], path, sizeof path, &why),
		              "%s: stderr has a line that is not a refusal: \"%s\"; all of it:\n%s",
		              r->cmd, lines[i], r->err);
		if (installed && *installed && under(path, installed))
			continue;
		snprintf(f->path[f->n], sizeof f->path[0], "%s", path);
		snprintf(f->reason[f->n], sizeof f->reason[0], "%s", why);
		f->n++;
	}
	free(copy);
}

/* How many refusal lines name path. */
static int refused_count(const struct refusals *f, const char *path)
{
	int n = 0;
	for (int i = 0; i < f->n; i++)
		n += strcmp(f->path[i], path) == 0;
	return n;
}

struct listed {
	char name[64], version[64], license[64], kind[16], caps[256], path[PATH_MAX];
};

/* The --list-plugins line for name; fails unless there is exactly one. */
static bool find_listed(const struct run *r, const char *name, struct listed *l)
{
	char *copy = strdup(r->out), *lines[MAX_LINES];
	int n = split_lines(copy, lines), found = 0;
	for (int i = 1; i < n; i++) {
		struct listed t;
		int off = 0;
		if (sscanf(lines[i], "%63s %63s %63s %15s %255s %n", t.name, t.version, t.license,
		           t.kind, t.caps, &off) != 5 || !off)
			continue;
		snprintf(t.path, sizeof t.path, "%s", lines[i] + off);
		if (strcmp(t.name, name) == 0 && found++ == 0)
			*l = t;
	}
	free(copy);
	ck_assert_msg(found <= 1, "%s: '%s' is listed %d times:\n%s", r->cmd, name, found,
	              r->out);
	return found == 1;
}

/* name is listed, loaded from path. */
static void assert_loaded(const struct run *r, const char *name, const char *path)
{
	struct listed l;
	ck_assert_msg(find_listed(r, name, &l), "%s: '%s' is not listed; stdout:\n%s\nstderr:\n%s",
	              r->cmd, name, r->out, r->err);
	ck_assert_msg(strcmp(l.path, path) == 0, "%s: '%s' was loaded from %s, expected %s",
	              r->cmd, name, l.path, path);
}

/* The plugins that must load whatever broken ones sit beside them. */
static void assert_good_loaded(const struct run *r)
{
	static const char *const real[] = {"unix", "file", "exec"};
	char path[PATH_MAX];
	for (size_t i = 0; i < sizeof real / sizeof *real; i++) {
		pathf(path, "%s/%s/%s.so", need_env("RIFT_PLUGINS"), real[i], real[i]);
		assert_loaded(r, real[i], path);
	}
	static const char *const fixtures[] = {"loop", "hostkeep"};
	for (size_t i = 0; i < sizeof fixtures / sizeof *fixtures; i++) {
		pathf(path, "%s/%s/%s.so", need_env("GOOD_FIXTURES"), fixtures[i], fixtures[i]);
		assert_loaded(r, fixtures[i], path);
	}
}

/* ---- the refusal cases ---- */

static const struct bad_case {
	const char *dir;        /* its folder under BAD_FIXTURES */
	const char *file;       /* the file in it that must be refused */
	const char *name;       /* the np_plugin name it declares, if any */
	const char *why[2];     /* what the refusal must say */
	bool after_good;        /* searched after the good folders */
} bad_cases[] = {
	{"no_entry", "no_entry.so", "no_entry", {"no np_plugin_entry symbol"}, false},
	{"bad_magic", "bad_magic.so", "bad_magic", {"bad magic 0x4e505031", "0x3150504e"}, false},
	{"abi_major", "abi_major.so", "abi_major", {"ABI major version 2", "speaks 1"}, false},
	{"abi_minor", "abi_minor.so", "abi_minor", {"ABI 1.1 is newer than", "1.0"}, false},
	{"struct_size", "struct_size.so", "struct_size", {"struct_size", "smaller than"}, false},
	{"no_read", "no_read.so", "no_read", {"required op 'read' is missing"}, false},
	{"dup_name", "dup_2.so", NULL, {"name 'dup' is already taken by", "/dup_name/dup_1.so"},
	 false},
	{"unix_dup", "unix.so", NULL, {"name 'unix' is already taken by", "/unix/unix.so"}, true},
	{"init_fail", "init_fail.so", "init_fail", {"init failed", "Input/output error"}, false},
	{"undef_sym", "undef_sym.so", "undef_sym",
	 {"dlopen failed", "undefined symbol: rift_fixture_missing"}, false},
	{"not_elf", "not_elf.so", NULL, {"dlopen failed", "not_elf.so"}, false},
	{"null_entry", "null_entry.so", NULL, {"np_plugin_entry returned NULL"}, false},
	{"bad_name", "bad_name.so", NULL, {"invalid name"}, false},
	{"runtime_op", "runtime_op.so", "runtime_op", {"required op 'runtime.stop' is missing"},
	 false},
};
#define NBAD ((int)(sizeof bad_cases / sizeof *bad_cases))

static void assert_refused(const struct run *r, const struct refusals *f,
                           const struct bad_case *c)
{
	char dir[PATH_MAX], path[PATH_MAX];
	pathf(path, "%s/%s", bad_dir(c->dir, dir), c->file);
	int n = refused_count(f, path);
	ck_assert_msg(n == 1, "%s: %d refusal lines for %s, expected 1; stderr:\n%s", r->cmd, n,
	              path, r->err);
	for (int i = 0; i < f->n; i++) {
		if (strcmp(f->path[i], path) != 0)
			continue;
		for (int w = 0; w < 2 && c->why[w]; w++)
			ck_assert_msg(strstr(f->reason[i], c->why[w]),
			              "%s: the refusal of %s says \"%s\", expected it to say \"%s\"",
			              r->cmd, path, f->reason[i], c->why[w]);
	}
	if (c->name) {
		struct listed l;
		ck_assert_msg(!find_listed(r, c->name, &l), "%s: refused '%s' is listed anyway:\n%s",
		              r->cmd, c->name, r->out);
	}
}

/* One broken plugin alone in its folder, beside the good ones: one line,
 * exit 0, everything else loads. */
START_TEST(refuses_one)
{
	const struct bad_case *c = &bad_cases[_i];
	char dir[PATH_MAX];
	const char *fix = bad_dir(c->dir, dir);
	const char *good = need_env("RIFT_PLUGINS"), *good2 = need_env("GOOD_FIXTURES");
	const char *before[] = {"--list-plugins", "-P", fix, "-P", good, "-P", good2, NULL};
	const char *after[] = {"--list-plugins", "-P", good, "-P", good2, "-P", fix, NULL};
	struct run r;
	struct refusals *f = malloc(sizeof *f);

	ck_assert(f);
	run_broker(&r, NULL, NULL, c->after_good ? after : before);
	ck_assert_msg(r.status == 0, "%s: exit status %d, expected 0; stderr:\n%s", r.cmd,
	              r.status, r.err);
	refusals_of(&r, f);
	ck_assert_msg(f->n == 1, "%s: %d refusal lines, expected 1:\n%s", r.cmd, f->n, r.err);
	assert_refused(&r, f, c);
	assert_good_loaded(&r);
	if (strcmp(c->dir, "dup_name") == 0) {
		char path[PATH_MAX];
		pathf(path, "%s/dup_1.so", fix);
		assert_loaded(&r, "dup", path);
	}
	free(f);
	run_free(&r);
}
END_TEST

/* Every broken plugin in one tree: one line each, in any order, and the
 * good ones (including the first 'dup') all load. */
START_TEST(refuses_all_in_one_dir)
{
	const char *args[] = {"--list-plugins", "-P", need_env("RIFT_PLUGINS"), "-P",
	                      need_env("GOOD_FIXTURES"), "-P", need_env("BAD_FIXTURES"), NULL};
	struct run r;
	struct refusals *f = malloc(sizeof *f);
	char dir[PATH_MAX], path[PATH_MAX];

	ck_assert(f);
	run_broker(&r, NULL, NULL, args);
	ck_assert_msg(r.status == 0, "%s: exit status %d, expected 0; stderr:\n%s", r.cmd,
	              r.status, r.err);
	refusals_of(&r, f);
	for (int i = 0; i < NBAD; i++)
		assert_refused(&r, f, &bad_cases[i]);
	ck_assert_msg(f->n == NBAD, "%s: %d refusal lines, expected %d:\n%s", r.cmd, f->n, NBAD,
	              r.err);
	assert_good_loaded(&r);
	pathf(path, "%s/dup_1.so", bad_dir("dup_name", dir));
	assert_loaded(&r, "dup", path);
	free(f);
	run_free(&r);
}
END_TEST

/* $RIFT_PLUGIN_PATH is searched after -P: a 'unix' given with -P wins and
 * the shipped one is the duplicate. */
START_TEST(search_order_p_before_env)
{
	char dir[PATH_MAX], path[PATH_MAX], real[PATH_MAX];
	const char *fix = bad_dir("unix_dup", dir);
	const char *args[] = {"--list-plugins", "-P", fix, NULL};
	struct run r;
	struct refusals *f = malloc(sizeof *f);

	ck_assert(f);
	run_broker(&r, NULL, need_env("RIFT_PLUGINS"), args);
	ck_assert_msg(r.status == 0, "%s: exit status %d; stderr:\n%s", r.cmd, r.status, r.err);
	pathf(path, "%s/unix.so", fix);
	assert_loaded(&r, "unix", path);
	refusals_of(&r, f);
	pathf(real, "%s/unix/unix.so", need_env("RIFT_PLUGINS"));
	ck_assert_msg(f->n == 1 && strcmp(f->path[0], real) == 0 &&
	                  strstr(f->reason[0], "name 'unix' is already taken by") &&
	                  strstr(f->reason[0], path),
	              "%s: expected only the shipped unix.so refused as a duplicate of %s:\n%s",
	              r.cmd, path, r.err);
	free(f);
	run_free(&r);
}
END_TEST

/* ---- --list-plugins ---- */

static void log_nothing(const struct np_host *h, int level, const char *fmt, ...)
{
	(void)h;
	(void)level;
	(void)fmt;
}

/* What the plugin at path declares about itself (its entry point only;
 * init is not called). */
static const struct np_plugin *declared(const char *path)
{
	static struct np_host host = {
		.struct_size = sizeof(struct np_host),
		.abi_major = NP_ABI_MAJOR,
		.abi_minor = NP_ABI_MINOR,
		.log = log_nothing,
	};
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	ck_assert_msg(h, "dlopen %s: %s", path, dlerror());
	np_entry_fn entry;
	*(void **)&entry = dlsym(h, NP_ENTRY_SYMBOL);
	ck_assert_msg(entry, "%s has no %s", path, NP_ENTRY_SYMBOL);
	const struct np_plugin *p = entry(&host);
	ck_assert_msg(p, "%s: the entry point returned NULL", path);
	return p; /* h stays open: p lives in it */
}

/* The capability column for caps: NP_CAP_* names without the prefix. */
static void caps_string(uint64_t caps, char *buf, size_t len)
{
	static const char *const names[] = {"SEEK", "TRUNCATE", "MSG_BOUNDARIES",
	                                    "MULTI_READER", "MULTI_WRITER", "RDWR",
	                                    "ETAG", "REMOTE"};
	size_t o = 0;
	buf[0] = '\0';
	for (unsigned i = 0; i < sizeof names / sizeof *names; i++)
		if (caps & (1ull << i))
			o += (size_t)snprintf(buf + o, len - o, "%s%s", o ? "," : "", names[i]);
	if (!o)
		snprintf(buf, len, "-");
}

static void assert_header(const struct run *r)
{
	char h[6][32];
	ck_assert_msg(sscanf(r->out, "%31s %31s %31s %31s %31s %31s", h[0], h[1], h[2], h[3],
	                     h[4], h[5]) == 6 &&
	                  strcmp(h[0], "NAME") == 0 && strcmp(h[1], "VERSION") == 0 &&
	                  strcmp(h[2], "LICENSE") == 0 && strcmp(h[3], "KIND") == 0 &&
	                  strcmp(h[4], "CAPABILITIES") == 0 && strcmp(h[5], "PATH") == 0,
	              "%s: no header line NAME VERSION LICENSE KIND CAPABILITIES PATH:\n%s",
	              r->cmd, r->out);
}

/* One listing line per shipped plugin, each saying what the plugin itself
 * declares, and where it was loaded from as an absolute path. */
static void assert_listing(const struct run *r)
{
	static const char *const real[] = {"unix", "file", "exec"};
	assert_header(r);
	for (size_t i = 0; i < sizeof real / sizeof *real; i++) {
		char path[PATH_MAX], caps[256], canon[PATH_MAX], lcanon[PATH_MAX];
		struct listed l;
		pathf(path, "%s/%s/%s.so", need_env("RIFT_PLUGINS"), real[i], real[i]);
		const struct np_plugin *p = declared(path);
		ck_assert_msg(find_listed(r, real[i], &l), "%s: '%s' is not listed:\n%s\n%s", r->cmd,
		              real[i], r->out, r->err);
		ck_assert_msg(strcmp(l.version, p->version) == 0, "%s: %s version '%s', it says '%s'",
		              r->cmd, real[i], l.version, p->version);
		ck_assert_msg(strcmp(l.license, "MIT") == 0 && strcmp(p->license, "MIT") == 0,
		              "%s: %s license '%s' (declared '%s'), expected MIT", r->cmd, real[i],
		              l.license, p->license);
		const char *kind = p->kind == NP_KIND_RUNTIME ? "runtime" : "transport";
		ck_assert_msg(strcmp(l.kind, kind) == 0, "%s: %s kind '%s', expected '%s'", r->cmd,
		              real[i], l.kind, kind);
		caps_string(p->caps, caps, sizeof caps);
		ck_assert_msg(strcmp(l.caps, caps) == 0, "%s: %s capabilities '%s', it declares '%s'",
		              r->cmd, real[i], l.caps, caps);
		ck_assert_msg(l.path[0] == '/', "%s: %s path '%s' is not absolute", r->cmd, real[i],
		              l.path);
		ck_assert_msg(realpath(path, canon) && realpath(l.path, lcanon) &&
		                  strcmp(canon, lcanon) == 0,
		              "%s: %s listed at '%s', loaded from '%s'", r->cmd, real[i], l.path, path);
	}
}

START_TEST(list_plugins_columns)
{
	const char *args[] = {"--list-plugins", "-P", need_env("RIFT_PLUGINS"), NULL};
	struct run r;
	run_broker(&r, NULL, NULL, args);
	ck_assert_msg(r.status == 0, "%s: exit status %d; stderr:\n%s", r.cmd, r.status, r.err);
	assert_listing(&r);
	run_free(&r);
}
END_TEST

/* The same with a relative -P: the listing still says where each plugin
 * is, wherever the reader stands. */
START_TEST(list_plugins_relative_dir)
{
	const char *args[] = {"--list-plugins", "-P", ".", NULL};
	struct run r;
	run_broker(&r, need_env("RIFT_PLUGINS"), NULL, args);
	ck_assert_msg(r.status == 0, "%s: exit status %d; stderr:\n%s", r.cmd, r.status, r.err);
	assert_listing(&r);
	run_free(&r);
}
END_TEST

/* ---- finding the same plugin twice ---- */

/* A folder searched twice (-P D -P D, or D both in -P and in
 * $RIFT_PLUGIN_PATH) holds the same files, not rival plugins: nothing is
 * refused, and the host a plugin keeps from its entry point is still
 * valid when its fini runs. */
START_TEST(same_dir_twice)
{
	const char *good = need_env("GOOD_FIXTURES");
	const char *args[] = {"--list-plugins", "-v", "-P", good, "-P", good, NULL};
	struct run r;
	run_broker(&r, NULL, NULL, args);
	ck_assert_msg(r.status == 0, "%s: exit status %d, expected 0; stderr:\n%s", r.cmd,
	              r.status, r.err);
	ck_assert_msg(!strstr(r.err, ": refused: "),
	              "%s: a plugin found twice is refused as a duplicate of itself:\n%s", r.cmd,
	              r.err);
	ck_assert_msg(strstr(r.err, "broker: info: hostkeep: fini\n"),
	              "%s: no \"hostkeep: fini\" line through the host it kept:\n%s", r.cmd,
	              r.err);
	run_free(&r);
}
END_TEST

/* ---- a -P folder that is not there ---- */

/* loader.h: "Missing directories are skipped (quietly for the defaults)":
 * a -P folder that does not exist (a typo) is said, and the rest loads. */
START_TEST(missing_p_dir_warns)
{
	const char *missing = "/nonexistent/rift-test-plugins";
	const char *args[] = {"--list-plugins", "-P", missing, "-P", need_env("RIFT_PLUGINS"),
	                      NULL};
	struct run r;
	run_broker(&r, NULL, NULL, args);
	ck_assert_msg(r.status == 0, "%s: exit status %d, expected 0; stderr:\n%s", r.cmd,
	              r.status, r.err);
	ck_assert_msg(strstr(r.err, missing),
	              "%s: nothing on stderr names the missing folder %s:\n%s", r.cmd, missing,
	              r.err);
	struct listed l;
	ck_assert_msg(find_listed(&r, "unix", &l), "%s: unix is not listed:\n%s", r.cmd, r.out);
	run_free(&r);
}
END_TEST

/* ---- the good fixture really is a transport ---- */

/* libnetpipe finds it through $RIFT_PLUGIN_PATH and moves bytes through
 * it: reader first, writer, write, clean close, read to end-of-stream. */
START_TEST(loop_fixture_moves_bytes)
{
	char buf[64];
	setenv("RIFT_PLUGIN_PATH", need_env("GOOD_FIXTURES"), 1);
	netpipe_t *rd = netpipe_open("Netpipe:loop:t1:r");
	ck_assert_msg(rd, "open reader: %s", netpipe_error());
	netpipe_t *wr = netpipe_open("loop:t1:w");
	ck_assert_msg(wr, "open writer: %s", netpipe_error());
	netpipe_set_timeout(rd, 5000);
	netpipe_set_timeout(wr, 5000);
	ck_assert_int_eq(netpipe_write(wr, "hello, loop", 11), 11);
	ck_assert_int_eq(netpipe_close(wr), 0);
	int64_t n = 0, got;
	while ((got = netpipe_read(rd, buf + n, (int32_t)(sizeof buf - (size_t)n))) > 0)
		n += got;
	ck_assert_msg(got == 0, "read: %lld (%s)", (long long)got, netpipe_error());
	ck_assert_int_eq(n, 11);
	ck_assert_mem_eq(buf, "hello, loop", 11);
	ck_assert_int_eq(netpipe_close(rd), 0);
}
END_TEST

static TCase *add_case(Suite *s, const char *name, const char *tags)
{
	TCase *tc = tcase_create(name);
	tcase_set_timeout(tc, CASE_TIMEOUT_S);
	if (tags)
		tcase_set_tags(tc, tags);
	suite_add_tcase(s, tc);
	return tc;
}

static Suite *loader_suite(void)
{
	Suite *s = suite_create("loader");
	TCase *tc = add_case(s, "refusals", NULL);
	tcase_add_loop_test(tc, refuses_one, 0, NBAD);
	tcase_add_test(tc, refuses_all_in_one_dir);
	tcase_add_test(tc, search_order_p_before_env);
	tcase_add_test(add_case(s, "list", NULL), list_plugins_columns);
	tcase_add_test(add_case(s, "fixture", NULL), loop_fixture_moves_bytes);

	/* Bugs the loader once had. */
	tcase_add_test(add_case(s, "relative", NULL), list_plugins_relative_dir);
	tcase_add_test(add_case(s, "twice", NULL), same_dir_twice);
	tcase_add_test(add_case(s, "missing", NULL), missing_p_dir_warns);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(loader_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
