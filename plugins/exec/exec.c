/*
 * exec.c - the exec runtime: runs a native program as a child process.
 *
 *   Program = exec:<path> [args...]
 *
 * Arguments are split at blanks; '...' quotes literally, "..." quotes with
 * \" and \\ escapes, a backslash outside quotes escapes the next character;
 * nothing is expanded. A path without '/' is searched in $PATH; a relative
 * path with '/' is taken from the manifest's directory.
 *
 * Channels: /dev/stdin, /dev/stdout and /dev/stderr are the child's fds
 * 0-2 (without a channel: /dev/null for 0, the broker's own for 1 and 2);
 * every other channel gets the next fd from 3 up in manifest order, and
 * RIFT_CHANNELS="alias=fd,alias=fd,..." tells the child which is which
 * (libnetpipe's netpipe_channel_fd(alias) reads it). Each fd is a pipe the
 * broker relays to and from the netpipe through the channel layer, so
 * quotas and digests apply. Past a read quota the child reads EOF; past a
 * write quota, or when the reader has gone, its writes fail with EPIPE
 * (SIGPIPE stays ignored, so it keeps running). When the child was killed
 * by a signal, its output channels are aborted, not ended: their readers
 * see -ECONNRESET, not EOF.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/close_range.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "netpipe.h"

#define RELAY_BUF (128 * 1024)
#define RELAY_PIPE (1024 * 1024)
#define MAX_ARGS 256

struct relay {
	struct np_channel *ch;
	int fd;              /* our end, -1 once closed */
	int child_fd;        /* the child's end (before fork) */
	int target;          /* fd number in the child */
	uint32_t dir;        /* NP_READ: netpipe -> child; NP_WRITE: child -> netpipe */
	uint32_t watching;
	unsigned char *buf;
	size_t off, len;
	bool src_done;       /* no more input will come */
	bool finished;       /* channel closed or aborted */
};

struct ex {
	const struct np_run_host *rh;
	struct np_run *run;
	struct relay *relays;
	int nrelays;
	pid_t pid;
	pid_t broker_pid;
	int pidfd;
	bool reaped;
	int status;          /* 0-255 for exit(), 128+N for signal N */
	bool killed;         /* ended by a signal */
	bool exited_reported;
};

static const struct np_host *host;

/* ---- argument splitting ---- */

static int split_args(const char *s, char **argv, int max, char *store, size_t storelen,
                      char *err, size_t errlen)
{
	int argc = 0;
	size_t o = 0;
	while (*s) {
		while (*s == ' ' || *s == '\t')
			s++;
		if (!*s)
			break;
		if (argc == max - 1) {
			snprintf(err, errlen, "more than %d arguments", max - 1);
			return -E2BIG;
		}
		argv[argc++] = store + o;
		char q = 0;
		while (*s && (q || (*s != ' ' && *s != '\t'))) {
			char c = *s++;
			if (q == '\'' && c == '\'') { q = 0; continue; }
			if (q == '"' && c == '"') { q = 0; continue; }
			if (!q && (c == '\'' || c == '"')) { q = c; continue; }
			if (c == '\\' && q != '\'') {
				if (!*s) {
					snprintf(err, errlen, "trailing backslash");
					return -EINVAL;
				}
				if (q == '"' && *s != '"' && *s != '\\')
					; /* keep the backslash, as a shell does */
				else
					c = *s++;
			}
			if (o + 2 > storelen) {
				snprintf(err, errlen, "command line too long");
				return -E2BIG;
			}
			store[o++] = c;
		}
		if (q) {
			snprintf(err, errlen, "unterminated %c quote", q);
			return -EINVAL;
		}
		if (o >= storelen) {
			snprintf(err, errlen, "command line too long");
			return -E2BIG;
		}
		store[o++] = '\0';
	}
	argv[argc] = NULL;
	if (argc == 0) {
		snprintf(err, errlen, "exec: needs a program path");
		return -EINVAL;
	}
	return argc;
}

/* Resolve argv[0] the way start() will run it; 0 or -errno. */
static int resolve(const char *manifest, const char *prog, char *out, size_t outlen,
                   char *err, size_t errlen)
{
	if (!strchr(prog, '/')) {
		const char *path = getenv("PATH");
		char buf[PATH_MAX];
		for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
			const char *e = strchr(p, ':');
			size_t l = e ? (size_t)(e - p) : strlen(p);
			if (snprintf(buf, sizeof buf, "%.*s/%s", (int)l, p, prog) < (int)sizeof buf &&
			    access(buf, X_OK) == 0) {
				snprintf(out, outlen, "%s", buf);
				return 0;
			}
			p += l + (e ? 1 : 0);
		}
		snprintf(err, errlen, "program '%s' not found in PATH", prog);
		return -ENOENT;
	}
	if (prog[0] == '/' || !manifest || !strchr(manifest, '/'))
		snprintf(out, outlen, "%s", prog);
	else
		snprintf(out, outlen, "%.*s/%s", (int)(strrchr(manifest, '/') - manifest),
		         manifest, prog);
	struct stat st;
	if (stat(out, &st) < 0 || access(out, X_OK) < 0) {
		snprintf(err, errlen, "program '%s': %s", out, strerror(errno));
		return -errno;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "program '%s' is not a regular file", out);
		return -EACCES;
	}
	return 0;
}

static int ex_accepts(const char *program)
{
	return strncmp(program, "exec:", 5) == 0;
}

static int ex_validate(const char *program, const char *manifest, char *err,
                       size_t errlen)
{
	char store[8192], path[PATH_MAX];
	char *argv[MAX_ARGS];
	int rc = split_args(program + 5, argv, MAX_ARGS, store, sizeof store, err, errlen);
	if (rc < 0)
		return rc;
	return resolve(manifest, argv[0], path, sizeof path, err, errlen);
}

/* ---- relaying ---- */

static void watch(struct ex *x, struct relay *r, uint32_t ev)
{
	if (r->fd >= 0 && r->watching != ev) {
		x->rh->watch_fd(x->run, r->fd, ev);
		r->watching = ev;
	}
}

static void close_fd(struct ex *x, struct relay *r)
{
	if (r->fd >= 0) {
		watch(x, r, 0);
		close(r->fd);
		r->fd = -1;
	}
}

static void maybe_exit(struct ex *x);
static void free_relays(struct ex *x);

/* End a channel once: cleanly, unless the program was killed. */
static void finish(struct ex *x, struct relay *r)
{
	if (r->finished)
		return;
	r->finished = true;
	close_fd(x, r);
	if (r->dir == NP_WRITE && x->killed)
		x->rh->abort(x->run, r->ch);
	else
		x->rh->close(x->run, r->ch);
}

/* netpipe -> child */
static void pump_in(struct ex *x, struct relay *r)
{
	for (int guard = 0; !r->finished; guard++) {
		if (guard == 64) {
			/* Fairness: give the loop back, and be called again as
			 * soon as the child's pipe takes more. */
			watch(x, r, NP_OUT);
			return;
		}
		if (r->off < r->len) {
			ssize_t w = write(r->fd, r->buf + r->off, r->len - r->off);
			if (w < 0 && errno == EAGAIN) {
				watch(x, r, NP_OUT);
				return;
			}
			if (w < 0) { /* the child closed its end: it wants no more */
				finish(x, r);
				return;
			}
			r->off += (size_t)w;
			continue;
		}
		r->off = r->len = 0;
		if (r->src_done) {
			finish(x, r); /* the child reads EOF */
			return;
		}
		int64_t n = x->rh->read(x->run, r->ch, r->buf, RELAY_BUF);
		if (n == -EAGAIN) {
			watch(x, r, 0);
			return;
		}
		if (n <= 0)
			r->src_done = true; /* EOF, quota, or a failure the broker logged */
		else
			r->len = (size_t)n;
	}
}

/* child -> netpipe */
static void pump_out(struct ex *x, struct relay *r)
{
	for (int guard = 0; guard < 64 && !r->finished; guard++) {
		if (r->off < r->len) {
			int64_t w = x->rh->write(x->run, r->ch, r->buf + r->off, r->len - r->off);
			if (w == -EAGAIN) {
				watch(x, r, 0); /* hold the child back until the link drains */
				return;
			}
			if (w < 0) {
				/* Quota or reader gone: the child's writes now fail with
				 * EPIPE; what it already wrote is dropped. */
				close_fd(x, r);
				r->off = r->len = 0;
				r->src_done = true;
				continue;
			}
			r->off += (size_t)w;
			continue;
		}
		r->off = r->len = 0;
		if (r->src_done) {
			if (x->reaped)
				finish(x, r);
			return; /* otherwise wait to learn how the child ended */
		}
		ssize_t n = read(r->fd, r->buf, RELAY_BUF);
		if (n < 0 && errno == EAGAIN) {
			watch(x, r, NP_IN);
			return;
		}
		if (n <= 0) {
			r->src_done = true;
			close_fd(x, r);
		} else {
			r->len = (size_t)n;
		}
	}
	/* Fairness: give the loop back, but make sure we are called again. */
	if (!r->finished && r->fd >= 0)
		watch(x, r, NP_IN);
}

static void pump(struct ex *x, struct relay *r)
{
	if (r->dir == NP_READ)
		pump_in(x, r);
	else
		pump_out(x, r);
	maybe_exit(x);
}

static void maybe_exit(struct ex *x)
{
	if (!x->reaped || x->exited_reported)
		return;
	for (int i = 0; i < x->nrelays; i++) {
		struct relay *r = &x->relays[i];
		if (r->finished)
			continue;
		if (r->dir == NP_READ) {
			finish(x, r); /* nobody will read the rest */
			continue;
		}
		if (!r->src_done || r->off < r->len)
			return; /* output still draining */
		finish(x, r);
	}
	x->exited_reported = true;
	free_relays(x); /* no event reaches the run after exit() */
	x->rh->exit(x->run, x->status);
}

static void reap(struct ex *x)
{
	int st;
	pid_t p = waitpid(x->pid, &st, WNOHANG);
	if (p != x->pid)
		return;
	x->reaped = true;
	if (x->pidfd >= 0) {
		x->rh->watch_fd(x->run, x->pidfd, 0);
		close(x->pidfd);
		x->pidfd = -1;
	}
	if (WIFSIGNALED(st)) {
		x->killed = true;
		x->status = 128 + WTERMSIG(st);
		x->rh->log(x->run, NP_LOG_ERROR, "program killed by signal %d (%s)",
		           WTERMSIG(st), strsignal(WTERMSIG(st)));
	} else {
		x->status = WEXITSTATUS(st);
	}
	for (int i = 0; i < x->nrelays; i++)
		if (!x->relays[i].finished)
			pump(x, &x->relays[i]);
	maybe_exit(x);
}

static void ex_channel_event(struct np_run *run, struct np_channel *ch, uint32_t events)
{
	struct ex *x = run->state;
	(void)events;
	struct relay *r = ch->runtime_data;
	if (r && !r->finished)
		pump(x, r);
}

static void ex_fd_event(struct np_run *run, int fd, uint32_t events)
{
	struct ex *x = run->state;
	(void)events;
	if (fd == x->pidfd) {
		reap(x);
		return;
	}
	for (int i = 0; i < x->nrelays; i++)
		if (x->relays[i].fd == fd) {
			pump(x, &x->relays[i]);
			return;
		}
}

static int target_fd(const char *alias, int *next)
{
	if (strcmp(alias, "/dev/stdin") == 0)
		return 0;
	if (strcmp(alias, "/dev/stdout") == 0)
		return 1;
	if (strcmp(alias, "/dev/stderr") == 0)
		return 2;
	return (*next)++;
}

static void free_relays(struct ex *x)
{
	for (int i = 0; i < x->nrelays; i++) {
		struct relay *r = &x->relays[i];
		if (r->fd >= 0)
			close(r->fd);
		if (r->child_fd >= 0)
			close(r->child_fd);
		free(r->buf);
		r->ch->runtime_data = NULL;
	}
	free(x->relays);
	x->relays = NULL;
	x->nrelays = 0;
}

/* In the child: put every relay end on its target fd, then exec. Only
 * async-signal-safe calls from here on. */
static void child(struct ex *x, char **argv, char **envp, const char *path, int report)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setpgid(0, 0);
	/* Out of the terminal's process group, the child would outlive a
	 * broker killed by a signal it cannot catch: tie it to the broker. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != x->broker_pid)
		_exit(127);
	/* Move every child end above the targets first, so dup2 cannot
	 * clobber an end that is still to be placed. */
	int base = 3 + x->nrelays + 16;
	for (int i = 0; i < x->nrelays; i++) {
		int fd = fcntl(x->relays[i].child_fd, F_DUPFD_CLOEXEC, base);
		if (fd < 0)
			goto fail;
		x->relays[i].child_fd = fd;
	}
	bool has[3] = {false, false, false};
	for (int i = 0; i < x->nrelays; i++) {
		if (dup2(x->relays[i].child_fd, x->relays[i].target) < 0)
			goto fail;
		if (x->relays[i].target < 3)
			has[x->relays[i].target] = true;
	}
	if (!has[0]) {
		int nul = open("/dev/null", O_RDONLY);
		if (nul < 0 || dup2(nul, 0) < 0)
			goto fail;
	}
	/* Whatever else the broker inherited is not the program's business. */
	int first_free = 3;
	for (int i = 0; i < x->nrelays; i++)
		if (x->relays[i].target >= first_free)
			first_free = x->relays[i].target + 1;
	close_range((unsigned)first_free, ~0u, CLOSE_RANGE_CLOEXEC);
	execve(path, argv, envp);
fail:;
	int e = errno;
	ssize_t w = write(report, &e, sizeof e);
	(void)w;
	_exit(127);
}

static int ex_start(struct np_run *run, const struct np_run_host *rh, char *err, size_t errlen)
{
	struct ex *x = run->state;
	char store[8192], path[PATH_MAX], env[8192];
	char *argv[MAX_ARGS];
	x->rh = rh;
	x->run = run;
	x->pidfd = -1;
	int rc = split_args(run->program + 5, argv, MAX_ARGS, store, sizeof store, err, errlen);
	if (rc < 0)
		return rc;
	if ((rc = resolve(run->manifest, argv[0], path, sizeof path, err, errlen)) < 0)
		return rc;

	x->relays = calloc(run->nchannels + 1, sizeof *x->relays);
	if (!x->relays)
		return -ENOMEM;
	int next = 3;
	size_t eo = (size_t)snprintf(env, sizeof env, "RIFT_CHANNELS=");
	for (uint32_t i = 0; i < run->nchannels; i++) {
		struct np_channel *ch = run->channels[i];
		struct relay *r = &x->relays[x->nrelays++];
		int p[2];
		r->ch = ch;
		r->fd = r->child_fd = -1;
		ch->runtime_data = r;
		if (ch->mode == NP_RDWR) {
			snprintf(err, errlen, "channel %s is read-write; an exec program gets read-only or write-only channels",
			         ch->alias);
			free_relays(x);
			return -EINVAL;
		}
		r->dir = ch->mode;
		r->target = target_fd(ch->alias, &next);
		if (!(r->buf = malloc(RELAY_BUF)) || pipe2(p, O_CLOEXEC) < 0) {
			snprintf(err, errlen, "channel %s: %s", ch->alias, strerror(errno));
			free_relays(x);
			return -ENOMEM;
		}
		r->fd = r->dir == NP_READ ? p[1] : p[0];
		r->child_fd = r->dir == NP_READ ? p[0] : p[1];
		fcntl(r->fd, F_SETFL, O_NONBLOCK);
		/* Bigger relay pipes halve the broker's pipe syscalls (bench row
		 * 3a); best effort, as the system limit may be lower. */
		fcntl(r->fd, F_SETPIPE_SZ, RELAY_PIPE);
		if (r->target >= 3)
			eo += (size_t)snprintf(env + eo, eo < sizeof env ? sizeof env - eo : 0,
			                       "%s%s=%d", eo > 14 ? "," : "", ch->alias, r->target);
	}
	if (eo >= sizeof env) {
		snprintf(err, errlen, "too many channels for RIFT_CHANNELS");
		free_relays(x);
		return -E2BIG;
	}
	int report[2];
	if (pipe2(report, O_CLOEXEC) < 0) {
		free_relays(x);
		return -errno;
	}
	/* The child's environment: ours, with RIFT_CHANNELS replaced. */
	extern char **environ;
	size_t ne = 0;
	while (environ[ne])
		ne++;
	char **envp = malloc((ne + 2) * sizeof *envp);
	if (!envp) {
		close(report[0]);
		close(report[1]);
		free_relays(x);
		return -ENOMEM;
	}
	size_t k = 0;
	for (size_t i = 0; i < ne; i++)
		if (strncmp(environ[i], "RIFT_CHANNELS=", 14) != 0)
			envp[k++] = environ[i];
	envp[k++] = env;
	envp[k] = NULL;
	x->broker_pid = getpid();
	pid_t pid = fork();
	if (pid == 0)
		child(x, argv, envp, path, report[1]);
	int fork_errno = errno;
	free(envp);
	close(report[1]);
	if (pid < 0) {
		close(report[0]);
		free_relays(x);
		snprintf(err, errlen, "fork: %s", strerror(fork_errno));
		return -fork_errno;
	}
	int e = 0;
	ssize_t got;
	do
		got = read(report[0], &e, sizeof e); /* EOF once exec succeeded */
	while (got < 0 && errno == EINTR);
	close(report[0]);
	x->pid = pid;
	if (got == (ssize_t)sizeof e) {
		waitpid(pid, NULL, 0);
		x->reaped = true;
		snprintf(err, errlen, "cannot execute '%s': %s", path, strerror(e));
		free_relays(x);
		return -e;
	}
	for (int i = 0; i < x->nrelays; i++) {
		close(x->relays[i].child_fd);
		x->relays[i].child_fd = -1;
	}
	x->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (x->pidfd < 0 || rh->watch_fd(run, x->pidfd, NP_IN) < 0) {
		snprintf(err, errlen, "pidfd_open: %s", strerror(errno));
		kill(-pid, SIGKILL);
		waitpid(pid, NULL, 0);
		x->reaped = true;
		free_relays(x);
		return -ENOSYS;
	}
	host->log(host, NP_LOG_DEBUG, "started %s (pid %d)", path, (int)pid);
	for (int i = 0; i < x->nrelays; i++)
		pump(x, &x->relays[i]);
	return 0;
}

static void ex_stop(struct np_run *run)
{
	struct ex *x = run->state;
	if (x->reaped && !x->exited_reported)
		x->rh->log(run, NP_LOG_ERROR, "the program had exited with status %d; "
		           "its output was still draining into a channel nobody read", x->status);
	if (!x->reaped && x->pid > 0) {
		kill(-x->pid, SIGKILL);
		kill(x->pid, SIGKILL);
		waitpid(x->pid, NULL, 0);
		x->reaped = true;
	}
	if (x->pidfd >= 0) {
		x->rh->watch_fd(run, x->pidfd, 0);
		close(x->pidfd);
		x->pidfd = -1;
	}
	for (int i = 0; i < x->nrelays; i++)
		close_fd(x, &x->relays[i]);
	free_relays(x);
}

static int ex_init(const struct np_host *h)
{
	host = h;
	return 0;
}

static const struct np_runtime_ops runtime = {
	.struct_size = sizeof(struct np_runtime_ops),
	.state_size = sizeof(struct ex),
	.accepts = ex_accepts,
	.validate = ex_validate,
	.start = ex_start,
	.channel_event = ex_channel_event,
	.fd_event = ex_fd_event,
	.stop = ex_stop,
};

static const struct np_plugin plugin = {
	.struct_size = sizeof(struct np_plugin),
	.magic = NP_MAGIC,
	.abi_major = NP_ABI_MAJOR,
	.abi_minor = NP_ABI_MINOR,
	.kind = NP_KIND_RUNTIME,
	.name = "exec",
	.version = "1.0",
	.license = "MIT",
	.description = "runs Program = exec:<path> [args] as a child process",
	.init = ex_init,
	.runtime = &runtime,
};

NP_EXPORT const struct np_plugin *np_plugin_entry(const struct np_host *h)
{
	(void)h;
	return &plugin;
}
