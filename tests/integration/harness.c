/*
 * harness.c - private directories, real broker processes, bounded waits
 * (harness.h has the contract).
 */
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROCS 32
#define POLL_STEP_MS 5

struct blob {
	struct blob *next;
	char data[];
};

static struct {
	bool active;
	char dir[256];
	struct it_proc procs[MAX_PROCS];
	int nprocs;
	struct blob *blobs;      /* everything it_fmt & co. handed out */
} it;

static bool atexit_done;
static int next_stdin = -1;   /* it_next_stdin(), for the next spawn only */

/* ---- memory that lives until teardown ---- */

static void *keep(size_t len)
{
	struct blob *b = malloc(sizeof *b + len);
	ck_assert_msg(b != NULL, "out of memory");
	b->next = it.blobs;
	it.blobs = b;
	return b->data;
}

static const char *vfmt(const char *fmt, va_list ap)
{
	char *tmp;
	int n = vasprintf(&tmp, fmt, ap);
	ck_assert_msg(n >= 0, "out of memory");
	char *s = keep((size_t)n + 1);
	memcpy(s, tmp, (size_t)n + 1);
	free(tmp);
	return s;
}

const char *it_fmt(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	const char *s = vfmt(fmt, ap);
	va_end(ap);
	return s;
}

const char *it_dir(void)
{
	return it.dir;
}

const char *it_path(const char *name)
{
	return name[0] == '/' ? name : it_fmt("%s/%s", it.dir, name);
}

const char *it_helper(const char *name)
{
	const char *d = getenv("RIFT_IT_HELPERS");
	ck_assert_msg(d != NULL, "RIFT_IT_HELPERS is not set (run through meson test)");
	return it_fmt("%s/%s", d, name);
}

int64_t it_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- setup and teardown ---- */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void reap(struct it_proc *p, int status)
{
	p->done = true;
	p->code = WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
}

/* Our children that are not in the table: programs whose broker was
 * killed, re-parented to us because we are a subreaper. */
static int kill_orphans(void)
{
	int n = 0;
	DIR *d = opendir("/proc");
	if (!d)
		return 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		char path[300], buf[512];
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		size_t got = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		buf[got] = '\0';
		char *close_paren = strrchr(buf, ')');
		char state;
		int ppid;
		if (!close_paren || sscanf(close_paren + 1, " %c %d", &state, &ppid) != 2 ||
		    ppid != getpid())
			continue;
		pid_t pid = (pid_t)atoi(e->d_name);
		if (getpgid(pid) == pid)
			kill(-pid, SIGKILL); /* the exec runtime gives each program a group */
		kill(pid, SIGKILL);
		n++;
	}
	closedir(d);
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	return n;
}

static void cleanup(void)
{
	if (!it.active)
		return;
	it.active = false;
	if (next_stdin >= 0)
		close(next_stdin);
	next_stdin = -1;
	for (int i = 0; i < it.nprocs; i++) {
		struct it_proc *p = &it.procs[i];
		if (p->done)
			continue;
		kill(p->pid, SIGKILL);
		int st;
		if (waitpid(p->pid, &st, 0) == p->pid)
			reap(p, st);
	}
	/* Bounded: a program killed here may leave children of its own. */
	for (int round = 0; round < 50 && kill_orphans() > 0; round++)
		;
	const char *keep_dir = getenv("RIFT_IT_KEEP");
	if (keep_dir && *keep_dir && strcmp(keep_dir, "0") != 0)
		fprintf(stderr, "integration: kept %s\n", it.dir);
	else if (it.dir[0])
		nftw(it.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	while (it.blobs) {
		struct blob *b = it.blobs;
		it.blobs = b->next;
		free(b);
	}
	memset(&it, 0, sizeof it);
}

void it_setup(void)
{
	const char *tmp = getenv("TMPDIR");
	memset(&it, 0, sizeof it);
	/* Short: a unix socket path must fit in 108 bytes. */
	snprintf(it.dir, sizeof it.dir, "%s/rift-it-XXXXXX",
	         tmp && *tmp && strlen(tmp) < 40 ? tmp : "/tmp");
	ck_assert_msg(mkdtemp(it.dir) != NULL, "mkdtemp %s: %s", it.dir, strerror(errno));
	it.active = true;
	if (!atexit_done) {
		/* Whatever ends the process early, clean up then too. */
		atexit(cleanup);
		atexit_done = true;
	}
	ck_assert_msg(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0, "PR_SET_CHILD_SUBREAPER: %s",
	              strerror(errno));
	it_write_file("empty", "", 0);
	ck_assert_msg(getenv("BROKER") && getenv("RIFT_PLUGINS") && getenv("RIFT_IT_TEMPLATES"),
	              "BROKER, RIFT_PLUGINS and RIFT_IT_TEMPLATES must be set (run through meson test)");
}

void it_teardown(void)
{
	cleanup();
}

/* ---- files ---- */

void it_write_file(const char *name, const void *data, size_t len)
{
	const char *path = it_path(name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ck_assert_msg(fd >= 0, "create %s: %s", path, strerror(errno));
	const char *p = data;
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		ck_assert_msg(w > 0, "write %s: %s", path, strerror(errno));
		p += w;
		len -= (size_t)w;
	}
	close(fd);
}

const char *it_random_file(const char *name, size_t len)
{
	const char *path = it_path(name);
	int in = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	int out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ck_assert_msg(in >= 0 && out >= 0, "random file %s: %s", path, strerror(errno));
	char buf[65536];
	while (len > 0) {
		size_t n = len < sizeof buf ? len : sizeof buf;
		ssize_t r = read(in, buf, n);
		ck_assert_msg(r > 0, "read /dev/urandom: %s", strerror(errno));
		ck_assert_msg(write(out, buf, (size_t)r) == r, "write %s: %s", path, strerror(errno));
		len -= (size_t)r;
	}
	close(in);
	close(out);
	return path;
}

char *it_read_file(const char *name, size_t *len)
{
	const char *path = it_path(name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (len)
			*len = 0;
		char *s = keep(1);
		s[0] = '\0';
		return s;
	}
	struct stat st;
	ck_assert_msg(fstat(fd, &st) == 0, "stat %s: %s", path, strerror(errno));
	size_t cap = (size_t)st.st_size + 1, n = 0;
	char *s = keep(cap);
	for (;;) {
		ssize_t r = read(fd, s + n, cap - 1 - n);
		ck_assert_msg(r >= 0, "read %s: %s", path, strerror(errno));
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == cap - 1)
			break; /* the file grew since fstat: what was there is enough */
	}
	close(fd);
	s[n] = '\0';
	if (len)
		*len = n;
	return s;
}

off_t it_file_size(const char *name)
{
	struct stat st;
	return stat(it_path(name), &st) == 0 ? st.st_size : -1;
}

bool it_exists(const char *name)
{
	struct stat st;
	return lstat(it_path(name), &st) == 0;
}

bool it_files_equal(const char *a, const char *b)
{
	size_t la, lb;
	const char *da = it_read_file(a, &la);
	const char *db = it_read_file(b, &lb);
	return la == lb && memcmp(da, db, la) == 0;
}

int it_line_of(const char *name, const char *needle)
{
	const char *s = it_read_file(name, NULL);
	int line = 1;
	for (const char *p = s; *p; line++) {
		const char *e = strchr(p, '\n');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		const char *hit = strstr(p, needle);
		if (hit && hit < p + l)
			return line;
		p += l + (e ? 1 : 0);
	}
	return 0;
}

void it_mkfifo(const char *name)
{
	const char *path = it_path(name);
	ck_assert_msg(mkfifo(path, 0600) == 0, "mkfifo %s: %s", path, strerror(errno));
}

/* ---- manifests ---- */

const char *it_channel(const char *uri, const char *alias, int etag, int64_t gets,
                       int64_t get_size, int64_t puts, int64_t put_size)
{
	return it_fmt("Channel = %s, %s, 0, %d, %lld, %lld, %lld, %lld", uri, alias, etag,
	              (long long)gets, (long long)get_size, (long long)puts,
	              (long long)put_size);
}

const char *it_in(const char *uri, const char *alias)
{
	return it_channel(uri, alias, 0, 1000000, 1000000000, 0, 0);
}

const char *it_out(const char *uri, const char *alias)
{
	return it_channel(uri, alias, 0, 0, 0, 1000000, 1000000000);
}

static const char *lookup(const char *key, const char **kv, int nkv, const char *base)
{
	for (int i = 0; i < nkv; i += 2)
		if (strcmp(kv[i], key) == 0)
			return kv[i + 1];
	if (strcmp(key, "PROGRAM") == 0)
		return "exec:/bin/cat";
	if (strcmp(key, "TIMEOUT") == 0)
		return "10";
	if (strcmp(key, "ETAG") == 0)
		return "0";
	if (strcmp(key, "GET_SIZE") == 0 || strcmp(key, "PUT_SIZE") == 0)
		return "1000000000";
	if (strcmp(key, "INPUT") == 0)
		return it_path("empty");
	if (strcmp(key, "OUTPUT") == 0)
		return it_fmt("%s/%s.output", it.dir, base);
	if (strcmp(key, "ERRORS") == 0)
		return it_fmt("%s/%s.errors", it.dir, base);
	if (strcmp(key, "EXTRA") == 0)
		return "";
	return NULL;
}

const char *it_manifest(const char *name, const char *template, ...)
{
	const char *kv[64];
	int nkv = 0;
	va_list ap;
	va_start(ap, template);
	for (const char *k; (k = va_arg(ap, const char *));) {
		ck_assert_msg(nkv < 62, "it_manifest: too many keys");
		kv[nkv++] = k;
		kv[nkv] = va_arg(ap, const char *);
		ck_assert_msg(kv[nkv] != NULL, "it_manifest: key %s has no value", k);
		nkv++;
	}
	va_end(ap);

	const char *tpath = it_fmt("%s/%s.manifest.in", getenv("RIFT_IT_TEMPLATES"), template);
	size_t tlen;
	const char *t = it_read_file(tpath, &tlen);
	ck_assert_msg(tlen > 0, "manifest template %s is missing or empty", tpath);

	char base[128];
	snprintf(base, sizeof base, "%s", name);
	char *dot = strstr(base, ".manifest");
	if (dot)
		*dot = '\0';

	size_t cap = tlen + 1, n = 0;
	for (int i = 1; i < nkv; i += 2)
		cap += strlen(kv[i]) * 8;
	cap += 8 * 1024;
	char *out = keep(cap);
	for (const char *p = t; *p;) {
		const char *v = NULL;
		size_t skip = 1;
		if (*p == '@') {
			const char *e = strchr(p + 1, '@');
			if (e && e > p + 1 && e - p < 64 &&
			    strspn(p + 1, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_") == (size_t)(e - p - 1)) {
				char key[64];
				snprintf(key, sizeof key, "%.*s", (int)(e - p - 1), p + 1);
				v = strcmp(key, "TEMPLATE") == 0 ? template : lookup(key, kv, nkv, base);
				ck_assert_msg(v != NULL, "template %s: no value for @%s@", tpath, key);
				skip = (size_t)(e - p) + 1;
			}
		}
		size_t l = v ? strlen(v) : 1;
		ck_assert_msg(n + l < cap, "manifest %s too long", name);
		memcpy(out + n, v ? v : p, l);
		n += l;
		p += skip;
	}
	out[n] = '\0';
	it_write_file(name, out, n);
	return it_path(name);
}

/* ---- processes ---- */

static const char *slug(const char *name)
{
	char *s = keep(strlen(name) + 1);
	size_t i = 0;
	for (; name[i]; i++)
		s[i] = (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
		       (name[i] >= '0' && name[i] <= '9') || name[i] == '.' ? name[i] : '-';
	s[i] = '\0';
	return s;
}

static struct it_proc *spawn(const char *name, char *const argv[], const char *unset)
{
	ck_assert_msg(it.active, "it_spawn outside a test (no it_setup)");
	ck_assert_msg(it.nprocs < MAX_PROCS, "too many processes in one test");
	struct it_proc *p = &it.procs[it.nprocs];
	memset(p, 0, sizeof *p);
	snprintf(p->name, sizeof p->name, "%s", name);
	p->out = (char *)it_fmt("%s/%s.stdout", it.dir, slug(name));
	p->err = (char *)it_fmt("%s/%s.stderr", it.dir, slug(name));
	int in = next_stdin >= 0 ? next_stdin : open("/dev/null", O_RDONLY | O_CLOEXEC);
	next_stdin = -1;
	int out = open(p->out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int err = open(p->err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ck_assert_msg(in >= 0 && out >= 0 && err >= 0, "%s: cannot open its log files: %s",
	              name, strerror(errno));
	fflush(NULL);
	pid_t pid = fork();
	ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		/* A clean slate: whatever the test runner ignores or blocks,
		 * the broker must cope with the defaults (SIGPIPE kills). */
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		for (int s = 1; s < NSIG; s++)
			if (s != SIGKILL && s != SIGSTOP)
				signal(s, SIG_DFL);
		if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
			_exit(126);
		if (unset)
			unsetenv(unset);
		syscall(SYS_close_range, 3u, ~0u, 0u);
		execv(argv[0], argv);
		dprintf(2, "integration harness: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(in);
	close(out);
	close(err);
	p->pid = pid;
	it.nprocs++;
	return p;
}

void it_next_stdin(int fd)
{
	if (next_stdin >= 0)
		close(next_stdin);
	next_stdin = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 3) : -1;
	ck_assert_msg(fd < 0 || next_stdin >= 0, "dup: %s", strerror(errno));
}

void it_next_stdin_file(const char *name)
{
	int fd = open(it_path(name), O_RDONLY | O_CLOEXEC);
	ck_assert_msg(fd >= 0, "open %s: %s", it_path(name), strerror(errno));
	it_next_stdin(fd);
	close(fd);
}

struct it_proc *it_spawn(const char *name, char *const argv[])
{
	return spawn(name, argv, NULL);
}

struct it_proc *it_np_copy(const char *name, const char *mode, const char *desc,
                           const char *file, const char *extra)
{
	char *argv[] = {(char *)it_helper("np-copy"), (char *)mode, (char *)desc,
	                (char *)file, (char *)extra, NULL};
	return it_spawn(name, argv);
}

void it_check_killed_writer_is_reset(const char *rdesc, const char *wdesc,
                                     const char *input, off_t after)
{
	struct it_proc *r = it_np_copy("reader", "read", rdesc, it_path("output.bin"), NULL);
	struct it_proc *w = it_np_copy("writer", "write", wdesc, input, NULL);
	ck_assert_msg(it_wait_file_size("output.bin", after, IT_POLL_MS),
	              "the reader got only %lld of the first %lld bytes; writer stderr:\n%s",
	              (long long)it_file_size("output.bin"), (long long)after, it_log(w));
	it_kill(w, SIGKILL);
	it_assert_exit(w, -SIGKILL);
	it_assert_exit(r, 3); /* np-copy: netpipe_read failed with ECONNRESET */
	it_assert_log(r, "without closing");
}

struct it_proc *it_spawn_unset(const char *name, char *const argv[], const char *var)
{
	return spawn(name, argv, var);
}

struct it_proc *it_broker(const char *name, const char *manifest, ...)
{
	char *argv[32];
	int argc = 0;
	argv[argc++] = getenv("BROKER");
	argv[argc++] = "-P";
	argv[argc++] = getenv("RIFT_PLUGINS");
	va_list ap;
	va_start(ap, manifest);
	for (char *a; (a = va_arg(ap, char *));) {
		ck_assert_msg(argc < 28, "it_broker: too many arguments");
		argv[argc++] = a;
	}
	va_end(ap);
	argv[argc++] = "-m";
	argv[argc++] = (char *)manifest;
	argv[argc] = NULL;
	/* -P alone says where the plugins are (see harness.h). */
	return spawn(name, argv, "RIFT_PLUGIN_PATH");
}

static bool try_reap(struct it_proc *p)
{
	int st;
	if (p->done)
		return true;
	pid_t r = waitpid(p->pid, &st, WNOHANG);
	if (r == p->pid) {
		reap(p, st);
		return true;
	}
	return false;
}

int it_wait(struct it_proc *p, int ms)
{
	int64_t deadline = it_now_ms() + ms;
	int pidfd = p->done ? -1 : (int)syscall(SYS_pidfd_open, p->pid, 0);
	while (!try_reap(p)) {
		int64_t left = deadline - it_now_ms();
		if (left <= 0) {
			if (pidfd >= 0)
				close(pidfd);
			kill(p->pid, SIGKILL);
			int st;
			if (waitpid(p->pid, &st, 0) == p->pid)
				reap(p, st);
			ck_abort_msg("%s did not end within %d ms (killed); its stderr:\n%s",
			             p->name, ms, it_log(p));
		}
		if (pidfd >= 0) {
			struct pollfd pf = {pidfd, POLLIN, 0};
			poll(&pf, 1, (int)left);
		} else {
			struct timespec ts = {0, POLL_STEP_MS * 1000000L};
			nanosleep(&ts, NULL);
		}
	}
	if (pidfd >= 0)
		close(pidfd);
	return p->code;
}

bool it_running(struct it_proc *p)
{
	return !try_reap(p);
}

void it_kill(struct it_proc *p, int sig)
{
	if (!p->done)
		kill(p->pid, sig);
}

const char *it_log(struct it_proc *p)
{
	return it_read_file(p->err, NULL);
}

const char *it_stdout(struct it_proc *p)
{
	return it_read_file(p->out, NULL);
}

/* ---- waiting for conditions ---- */

bool it_poll_until(bool (*cond)(void *arg), void *arg, int ms)
{
	int64_t deadline = it_now_ms() + ms;
	for (;;) {
		if (cond(arg))
			return true;
		if (it_now_ms() >= deadline)
			return false;
		struct timespec ts = {0, POLL_STEP_MS * 1000000L};
		nanosleep(&ts, NULL);
	}
}

struct size_arg {
	const char *name;
	off_t at_least;
};

static bool size_reached(void *arg)
{
	struct size_arg *a = arg;
	return it_file_size(a->name) >= a->at_least;
}

bool it_wait_file_size(const char *name, off_t at_least, int ms)
{
	struct size_arg a = {name, at_least};
	return it_poll_until(size_reached, &a, ms);
}

bool it_wait_exists(const char *name, int ms)
{
	return it_wait_file_size(name, 0, ms);
}

struct log_arg {
	struct it_proc *p;
	const char *needle;
};

static bool log_has(void *arg)
{
	struct log_arg *a = arg;
	return strstr(it_log(a->p), a->needle) != NULL;
}

bool it_wait_log(struct it_proc *p, const char *needle, int ms)
{
	struct log_arg a = {p, needle};
	return it_poll_until(log_has, &a, ms);
}

/* ---- running a suite ---- */

Suite *it_suite(const char *name, const struct it_case *cases, size_t n)
{
	Suite *s = suite_create(name);
	for (size_t i = 0; i < n; i++) {
		TCase *tc = tcase_create(cases[i].name);
		tcase_add_checked_fixture(tc, it_setup, it_teardown);
		tcase_set_timeout(tc, 60);
		tcase_add_test(tc, cases[i].test);
		suite_add_tcase(s, tc);
	}
	return s;
}

int it_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	/* Without fork a failed assertion longjmps back to Check, which then
	 * runs it_teardown: processes and files are cleaned up even then. In
	 * fork mode Check ends a failed test with _exit(), skipping both. Each
	 * meson test runs one case in a process of its own, so nothing is
	 * shared; CK_FORK=yes still selects fork mode by hand. */
	if (!getenv("CK_FORK"))
		srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	int ran = srunner_ntests_run(sr), failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (ran == 0) {
		const char *c = getenv("CK_RUN_CASE");
		fprintf(stderr, "integration: no test ran (CK_RUN_CASE=%s names no test case)\n",
		        c ? c : "");
		return 1;
	}
	return failed ? 1 : 0;
}
