#include "procs.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

volatile sig_atomic_t bp_stop;
unsigned bp_child_alarm = 70;
static pid_t live[BP_MAX_PROCS]; /* every child not yet reaped */

double bp_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void live_add(pid_t pid)
{
	for (int i = 0; i < BP_MAX_PROCS; i++)
		if (!live[i]) {
			live[i] = pid;
			return;
		}
}

void bp_forget(pid_t pid)
{
	for (int i = 0; i < BP_MAX_PROCS; i++)
		if (live[i] == pid)
			live[i] = 0;
}

void bp_on_signal(int sig)
{
	bp_stop = sig;
	for (int i = 0; i < BP_MAX_PROCS; i++)
		if (live[i] > 0)
			kill(live[i], SIGTERM);
}

/* In every child: default signals, die with the benchmark, a watchdog. */
static void child_setup(pid_t parent)
{
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	alarm(bp_child_alarm);
}

int bp_spawn(struct bp_proc *p, void (*fn)(void *), void *arg)
{
	pid_t parent = getpid();
	memset(p, 0, sizeof *p);
	p->pidfd = -1;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		child_setup(parent);
		fn(arg);
		_exit(127);
	}
	p->pid = pid;
	live_add(pid);
	p->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	return 0;
}

bool bp_try_reap(struct bp_proc *p)
{
	if (p->reaped)
		return true;
	int st;
	struct rusage ru;
	pid_t r = wait4(p->pid, &st, WNOHANG, &ru);
	if (r != p->pid)
		return false;
	p->reaped = true;
	p->t_exit = bp_now();
	p->cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	p->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	bp_forget(p->pid);
	if (p->pidfd >= 0) {
		close(p->pidfd);
		p->pidfd = -1;
	}
	return true;
}

int bp_wait(struct bp_proc *ps, int n, double deadline, bool fail_fast)
{
	for (;;) {
		struct pollfd pf[BP_MAX_PROCS];
		int k = 0, pending = 0;
		bool blind = false;
		for (int i = 0; i < n; i++) {
			if (bp_try_reap(&ps[i])) {
				if (fail_fast && ps[i].status && n > 1)
					return -ECHILD;
				continue;
			}
			pending++;
			if (ps[i].pidfd >= 0 && k < BP_MAX_PROCS)
				pf[k++] = (struct pollfd){ps[i].pidfd, POLLIN, 0};
			else
				blind = true;
		}
		if (!pending)
			return 0;
		if (bp_stop)
			return -EINTR;
		double left = deadline - bp_now();
		if (left <= 0)
			return -ETIMEDOUT;
		int ms = left > 1.0 ? 1000 : (int)(left * 1000) + 1;
		if (blind && ms > 2)
			ms = 2;
		poll(pf, (nfds_t)k, ms);
	}
}

void bp_kill(struct bp_proc *ps, int n)
{
	for (int i = 0; i < n; i++)
		if (ps[i].pid > 0 && !bp_try_reap(&ps[i]))
			kill(ps[i].pid, SIGTERM);
	/* Not fail_fast: a child that already failed must not cut the grace
	 * period short (a loop on -ECHILD once spun here at 100% CPU). */
	bp_wait(ps, n, bp_now() + 2.0, false);
	for (int i = 0; i < n; i++)
		if (ps[i].pid > 0 && !bp_try_reap(&ps[i]))
			kill(ps[i].pid, SIGKILL);
	for (int i = 0; i < n; i++)
		if (ps[i].pid > 0 && !ps[i].reaped) {
			waitpid(ps[i].pid, NULL, 0);
			ps[i].reaped = true;
			bp_forget(ps[i].pid);
			if (ps[i].pidfd >= 0)
				close(ps[i].pidfd);
			ps[i].pidfd = -1;
		}
}

int bp_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

void bp_stat_add(struct bp_stat *s, double v)
{
	if (s->n < BP_MAX_RUNS)
		s->v[s->n++] = v;
	double c[BP_MAX_RUNS];
	memcpy(c, s->v, (size_t)s->n * sizeof *c);
	qsort(c, (size_t)s->n, sizeof *c, bp_cmp_double);
	s->min = c[0];
	s->max = c[s->n - 1];
	s->median = s->n % 2 ? c[s->n / 2] : (c[s->n / 2 - 1] + c[s->n / 2]) / 2;
}

double bp_spread(const struct bp_stat *s)
{
	return s->n > 1 && s->median > 0 ? 100.0 * (s->max - s->min) / s->median : 0;
}

void bp_send_byte(int fd, char c)
{
	ssize_t w = write(fd, &c, 1);
	(void)w;
}

void bp_wait_byte(int fd)
{
	char c;
	while (read(fd, &c, 1) < 0 && errno == EINTR)
		;
}

bool bp_read_full(int fd, void *buf, size_t len)
{
	ssize_t n;
	do
		n = read(fd, buf, len);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)len;
}

bool bp_wait_ready(int fd, int n, struct bp_proc *ps, int nps, double deadline)
{
	while (n > 0) {
		struct pollfd pf = {fd, POLLIN, 0};
		double left = deadline - bp_now();
		if (left <= 0 || bp_stop)
			return false;
		int rc = poll(&pf, 1, left > 1 ? 1000 : (int)(left * 1000) + 1);
		if (rc < 0 && errno != EINTR)
			return false;
		if (rc == 1) {
			char c;
			if (read(fd, &c, 1) != 1 || c != 'R')
				return false;
			n--;
			continue;
		}
		for (int i = 0; i < nps; i++)
			if (bp_try_reap(&ps[i]))
				return false;
	}
	return true;
}
