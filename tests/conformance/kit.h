/*
 * kit.h - the transport conformance kit's host side.
 *
 * The kit stands in for the broker: it loads a plugin, hands it an np_host
 * backed by a small epoll loop, and drives the pipe ops directly. It uses
 * nothing of the broker's, only abi/netpipe.h, libc, libdl and libsodium,
 * so a third party can run it on their own plugin.
 *
 * Everything here runs on one thread (the "loop thread"); the only host
 * service a plugin thread may call is wake(), and the kit records a
 * violation when any other service is called from elsewhere.
 */
#ifndef KIT_H
#define KIT_H

#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "netpipe.h"

#define KIT_MAX_PIPES   16
#define KIT_MAX_WATCHES 64
#define KIT_MAX_AUX     8
#define KIT_MSG         512

/* What the kit was asked to do; shared by the runner, cases and children. */
struct kit_opts {
	const char *plugin;     /* path of the plugin .so */
	const char *tmpl;       /* the address template */
	const char *tmp_dir;    /* what {tmp} expands to, or NULL */
	int64_t bytes;          /* bulk_no_loss size */
	int64_t timeout_ms;     /* per-case bound */
	int64_t op_limit_ms;    /* an op slower than this (and blocking) fails */
	int etag;               /* open every pipe with etag = 1 */
	int verbose;            /* plugin log lines up to NP_LOG_DEBUG */
	unsigned n_base;        /* first {n} of this process */
};

/* One pipe, as the kit owns it. np is what the plugin sees; np.broker
 * points back here. */
struct kp {
	struct np_pipe np;
	void *state_block;      /* the allocation np.state points into */
	struct kit *kit;
	char label[48];
	int live;               /* 1 from open() until close() released it */
	int64_t timer;          /* absolute deadline (kit clock), -1 none */
	atomic_int woken;       /* set by host->wake(), any thread */
	int poked;              /* an event, timer or wake is pending */
	uint32_t rdy;           /* what ready() said last */
	int fresh;              /* rdy was set by a poll since last looked at */
	uint64_t ready_calls;
};

struct kit_watch {
	int fd;
	uint32_t events;
	struct kp *kp;
	dev_t dev;              /* identity of the file, to tell fd reuse */
	ino_t ino;
};

struct kit {
	struct kit_opts *opts;
	void *dl;
	const struct np_plugin *pl;
	struct np_host host;
	int ep;                 /* epoll */
	int evfd;               /* eventfd for wake() */
	struct kp *pipes[KIT_MAX_PIPES];
	int npipes;
	struct kit_watch w[KIT_MAX_WATCHES];
	int nw;
	int aux[KIT_MAX_AUX];   /* kit-owned fds that wake the loop */
	int aux_ready[KIT_MAX_AUX];
	int naux;
	/* Violations of the host side of the contract, or of an op's
	 * promptness, found while the case ran: the first one is kept. */
	char violation[KIT_MSG];
	int nviolations;
	char warning[KIT_MSG];  /* non-fatal remarks (e.g. fd not CLOEXEC) */
	int64_t slowest_op_us;
	char slowest_op[64];
	unsigned next_n;
	char *addrs[32];        /* what kit_address returned, freed at unload */
	int naddrs;
	int64_t start_ms;
	const char *case_name;  /* for the watchdog's FAIL line, or NULL */
};

/* The kit's monotonic clock, in milliseconds. */
int64_t kit_now(void);

/* Load the plugin and check its header (magic, versions, sizes, required
 * ops), then call init. 0, or -1 with the reason in err. */
int kit_load(struct kit *k, struct kit_opts *o, char *err, size_t errlen);
/* Close every live pipe (abort), call fini, free the pipes and addresses,
 * release the loop. The plugin itself stays loaded, as in the broker. */
void kit_unload(struct kit *k);

/* Expand the template: {n} a fresh number, {port} a free loopback TCP port,
 * {tmp} the temporary directory. The string lives until kit_unload. */
char *kit_address(struct kit *k);

/* Record a violation (first one wins) or a warning. */
void kit_violation(struct kit *k, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void kit_warn(struct kit *k, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Register a kit-owned fd (a child's status pipe) so it wakes the loop.
 * kit_aux_take() says (and clears) whether it fired since. */
int kit_aux_add(struct kit *k, int fd);
void kit_aux_del(struct kit *k, int fd);
int kit_aux_take(struct kit *k, int fd);

/* One turn of the loop: wait at most max_ms (0: just look) for watched
 * fds, timers and wakes, then call ready() on every pipe that was poked
 * (setting kp->rdy and kp->fresh). Returns how many pipes were poked plus
 * aux fds that fired. */
int kit_poll(struct kit *k, int64_t max_ms);

/* The pipe ops, called through wrappers that time them, check what they
 * return is in the contract's range, and record violations. */
struct kp *kp_new(struct kit *k, const char *label, uint32_t mode);
int kp_open(struct kp *p, const char *address, int etag);
int kp_close(struct kp *p, uint32_t flags);
ssize_t kp_read(struct kp *p, void *buf, size_t len);
ssize_t kp_write(struct kp *p, const void *buf, size_t len);
uint32_t kp_ready(struct kp *p);
int kp_ctl(struct kp *p, int op, void *arg);
const char *kp_last_error(struct kp *p);

/* How much longer than its timeout_ms NP_CTL_WAIT may take before the kit
 * calls it a hang (generous: this is no timing assertion). */
#define KIT_WAIT_SLACK_MS 5000

/* ctl(p, NP_CTL_WAIT) with events and timeout_ms, the one op that may
 * block (docs/abi.md, section 6), so it is not held to --op-limit-ms (and
 * kp_ctl refuses that op). A watchdog bounds it instead: if it has not
 * returned KIT_WAIT_SLACK_MS after its timeout, the case process prints
 * "FAIL <case>: ..." and exits KIT_FAIL. *took_ms (may be NULL) gets how
 * long it took. Returns what ctl returned (-ENOTTY when ctl is NULL);
 * judging it is the caller's job. */
int kp_wait(struct kp *p, uint32_t events, int32_t timeout_ms, int64_t *took_ms);

/* Close cleanly: call close(p, 0) until it stops returning -EAGAIN,
 * polling the loop between calls (as the broker does), and reading from
 * `drain` (may be NULL) meanwhile so a writer's flush can progress. Returns
 * close's final result; -ETIMEDOUT when the deadline passed first (the
 * pipe is then aborted). */
int kp_close_clean(struct kp *p, struct kp *drain, int64_t deadline);
/* Abort a pipe if it is still live. */
void kp_abort(struct kp *p);

/* "-EAGAIN (Resource temporarily unavailable)" and the like. */
const char *kit_err(long rc);
/* " (plugin says: ...)" from last_error, or "". */
const char *kit_why(struct kp *p);
/* NP_IN|NP_OUT as text. */
const char *kit_bits(uint32_t bits);

/* ---- the test stream: a reproducible pseudo-random byte sequence ---- */

/* Fill buf with bytes [off, off+len) of the stream for seed. */
void kit_stream(uint64_t seed, uint64_t off, void *buf, size_t len);
/* A varying I/O size in [1, max]: log-uniform, so small and large sizes
 * both occur often. */
size_t kit_vary(uint64_t *rng, size_t max);
uint64_t kit_rand(uint64_t *rng);

/* ---- child processes: the kit itself, exec'd with other arguments ---- */

/* Start /proc/self/exe with argv (argv[0] is set here), stdout on a pipe
 * whose read end (non-blocking, CLOEXEC) is stored in *out_fd. The child
 * gets SIGKILL when this process dies. Returns the pid or -1. */
pid_t kit_spawn(char *const argv[], int *out_fd);
/* Wait at most timeout_ms for pid; then SIGKILL and reap. Returns the wait
 * status, or -1. *timed_out (may be NULL) says whether it had to kill. */
int kit_reap(pid_t pid, int64_t timeout_ms, int *timed_out);
/* "exit 1", "killed by SIGPIPE", ... */
const char *kit_status(int status);

/* ---- the cases (cases.c) ---- */

struct ctx;
struct kit_case {
	const char *name;   /* named for the rule it checks */
	const char *rules;  /* DESIGN.md section 4 rule numbers */
	const char *what;   /* one line for --list */
	int (*fn)(struct ctx *c);
};
extern const struct kit_case kit_cases[];
extern const int kit_ncases;

/* Exit statuses of a case process. */
#define KIT_PASS 0
#define KIT_FAIL 1
#define KIT_SKIP 3

/* How long a case may take: --timeout-ms, more for bulk_no_loss. */
int64_t kit_case_budget_ms(const struct kit_case *kc, const struct kit_opts *o);
/* Run one case in this process and print its line. Returns KIT_*. */
int kit_run_case(const struct kit_case *kc, struct kit_opts *o);
/* The --child-writer process: write n bytes of the stream for seed to
 * address, report "wrote N DIGEST" on stdout, then either hold the pipe
 * open until killed or close it cleanly and report "closed RC". */
int kit_child_writer(struct kit_opts *o, const char *address, uint64_t n,
                     uint64_t seed, int hold, size_t max_write);

#endif
