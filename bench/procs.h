/*
 * procs.h - what both benchmarks (rift-bench, rift-netbench) need to run
 * measured work in child processes and summarise runs.
 *
 * Children die with the benchmark (PDEATHSIG), have a watchdog alarm of
 * their own, and are reaped with their CPU time; the parent waits for
 * them with a deadline and cleans up with TERM, a grace period, then
 * KILL. A SIGINT/SIGTERM/SIGHUP to the benchmark (bp_on_signal) sets
 * bp_stop and passes SIGTERM on to every live child.
 */
#ifndef RIFT_BENCH_PROCS_H
#define RIFT_BENCH_PROCS_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define BP_MAX_PROCS 16
#define BP_MAX_RUNS 15

struct bp_proc {
	pid_t pid;
	int pidfd;
	int status;     /* exit status, or 128 + signal */
	bool reaped;
	double t_exit;  /* bp_now() when it was reaped */
	double cpu;     /* user + sys seconds, its waited-for children too */
};

extern volatile sig_atomic_t bp_stop; /* the signal that stopped us, or 0 */
extern unsigned bp_child_alarm;      /* each child's watchdog, in seconds */

/* Monotonic seconds. */
double bp_now(void);
/* The handler to install for SIGINT, SIGTERM and SIGHUP. */
void bp_on_signal(int sig);
/* Fork; the child runs fn(arg), which must not return. 0 or -errno. */
int bp_spawn(struct bp_proc *p, void (*fn)(void *), void *arg);
/* Reap it if it has ended; true once it has. */
bool bp_try_reap(struct bp_proc *p);
/* Wait until every process has ended, or the deadline (bp_now() clock):
 * 0, -ETIMEDOUT, -EINTR once bp_stop is set, or, with fail_fast, -ECHILD
 * as soon as one of several exits non-zero (its partner would otherwise
 * wait for ever). */
int bp_wait(struct bp_proc *ps, int n, double deadline, bool fail_fast);
/* TERM, a grace period, then KILL; always reaps. */
void bp_kill(struct bp_proc *ps, int n);
/* Forget a pid reaped by other means (an orphan swept up). */
void bp_forget(pid_t pid);

/* The parent-child handshake over a pipe: a child sends one byte ('R'
 * ready, 'E' failed) and waits for the parent's go byte; the result
 * struct comes back whole. */
void bp_send_byte(int fd, char c);
void bp_wait_byte(int fd);
/* Read exactly len bytes (a child's result); false on a short read. */
bool bp_read_full(int fd, void *buf, size_t len);
/* Wait for n 'R' bytes on fd; false on anything else, a child's death,
 * bp_stop or the deadline. */
bool bp_wait_ready(int fd, int n, struct bp_proc *ps, int nps, double deadline);

/* The runs of one figure. */
struct bp_stat {
	int n;
	double v[BP_MAX_RUNS];
	double median, min, max;
};

void bp_stat_add(struct bp_stat *s, double v);
/* qsort's comparison for doubles, ascending. */
int bp_cmp_double(const void *a, const void *b);
/* Spread of the runs as a percentage of the median. */
double bp_spread(const struct bp_stat *s);

#endif
