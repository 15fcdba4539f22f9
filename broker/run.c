#include "run.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "loader.h"
#include "log.h"
#include "manifest.h"

#define LINGER_MS 30000

static struct rn_run *of(struct np_run *run)
{
	return run->broker;
}

static struct ch_channel *chan(struct np_channel *pub)
{
	return (struct ch_channel *)pub; /* pub is the first member */
}

int rn_prepare(struct rn_run *rn, struct ev_loop *loop, struct ld_registry *reg,
               const struct mf_manifest *mf, char *err, size_t errlen)
{
	memset(rn, 0, sizeof *rn);
	rn->loop = loop;
	rn->reg = reg;
	rn->mf = mf;
	rn->sigfd = -1;
	rn->chans = calloc((size_t)mf->nchannels + 1, sizeof *rn->chans);
	rn->pubs = calloc((size_t)mf->nchannels + 1, sizeof *rn->pubs);
	if (!rn->chans || !rn->pubs)
		return -ENOMEM;
	for (int i = 0; i < mf->nchannels; i++) {
		int rc = ch_resolve(&rn->chans[i], reg, &mf->channels[i], mf->path, err, errlen);
		rn->nchans = i + 1;
		if (rc < 0)
			return rc;
		rn->pubs[i] = &rn->chans[i].pub;
	}
	rn->runtime = ld_find_runtime(reg, mf->program);
	if (!rn->runtime) {
		snprintf(err, errlen, "%s:%d: no runtime plugin runs Program '%s' (use exec:<path> [args] for a native program)",
		         mf->path, mf->program_line, mf->program);
		return -ENOENT;
	}
	return 0;
}

int rn_check(struct rn_run *rn, char *err, size_t errlen)
{
	for (int i = 0; i < rn->nchans; i++) {
		int rc = ch_validate(&rn->chans[i], rn->mf->path, err, errlen);
		if (rc < 0)
			return rc;
	}
	const struct np_runtime_ops *rt = rn->runtime->p->runtime;
	char why[512] = "";
	if (rt->validate) {
		int rc = rt->validate(rn->mf->program, rn->mf->path, why, sizeof why);
		if (rc < 0) {
			snprintf(err, errlen, "%s:%d: Program: %s", rn->mf->path,
			         rn->mf->program_line, why[0] ? why : strerror(-rc));
			return rc;
		}
	}
	return 0;
}

/* ---- the runtime's host ---- */

static int64_t rh_read(struct np_run *run, struct np_channel *ch, void *buf, size_t len)
{
	(void)run;
	return ch_read(chan(ch), buf, len);
}

static int64_t rh_write(struct np_run *run, struct np_channel *ch, const void *buf, size_t len)
{
	(void)run;
	return ch_write(chan(ch), buf, len);
}

static int64_t rh_seek(struct np_run *run, struct np_channel *ch, int64_t off, int whence)
{
	(void)run;
	return ch_seek(chan(ch), off, whence);
}

static void on_closed(void *ctx, struct ch_channel *ch)
{
	struct rn_run *rn = ctx;
	(void)ch;
	rn->open--;
}

static int64_t linger(struct rn_run *rn)
{
	if (rn->timeout.slot) {
		int64_t left = rn->timeout.deadline - ev_now_ms();
		return left > 0 ? left : 0;
	}
	return LINGER_MS;
}

static int rh_close(struct np_run *run, struct np_channel *pub)
{
	struct rn_run *rn = of(run);
	struct ch_channel *ch = chan(pub);
	if (!ch->closing)
		ch_close(ch, false, linger(rn), on_closed, rn);
	return 0;
}

static int rh_abort(struct np_run *run, struct np_channel *pub)
{
	struct rn_run *rn = of(run);
	struct ch_channel *ch = chan(pub);
	if (ch->closing)
		return 0;
	if (!ch->failed && ch->pipe)
		ch->failed = -ECONNRESET; /* the stream is cut: say so in the status */
	ch_close(ch, true, 0, on_closed, rn);
	return 0;
}

static void on_fd(void *ctx, int fd, uint32_t events)
{
	struct rn_run *rn = ctx;
	if (!rn->stopped)
		rn->runtime->p->runtime->fd_event(&rn->run, fd, events);
}

static int rh_watch_fd(struct np_run *run, int fd, uint32_t events)
{
	struct rn_run *rn = of(run);
	return ev_watch(rn->loop, fd, events, events ? on_fd : NULL, rn);
}

static void close_all(struct rn_run *rn, bool abort)
{
	for (int i = 0; i < rn->nchans; i++) {
		struct ch_channel *ch = &rn->chans[i];
		if (abort && ch->pipe) {
			/* A clean close may already linger: cut it short. */
			ch->closing = false;
			ch_close(ch, true, 0, NULL, NULL);
			if (ch->closed)
				ch->closed(ch->closed_ctx, ch);
			else
				rn->open--;
		} else if (!ch->closing) {
			ch_close(ch, false, linger(rn), on_closed, rn);
		}
	}
}

static void rh_exit(struct np_run *run, int status)
{
	struct rn_run *rn = of(run);
	if (rn->exited || rn->stopped)
		return;
	rn->exited = true;
	rn->status = status;
	lg_log(LG_DEBUG, "program exited with status %d", status);
	close_all(rn, false);
}

static void rh_log(struct np_run *run, int level, const char *fmt, ...)
{
	struct rn_run *rn = of(run);
	char msg[1536];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	lg_log(level, "%s: %s", rn->runtime->p->name, msg);
}

static void on_channel(void *ctx, struct ch_channel *ch, uint32_t events)
{
	struct rn_run *rn = ctx;
	if (rn->started && !rn->exited && !rn->stopped)
		rn->runtime->p->runtime->channel_event(&rn->run, &ch->pub, events);
}

static void stop(struct rn_run *rn, int status)
{
	if (rn->stopped)
		return;
	rn->stopped = true;
	rn->stop_status = status;
	if (rn->started && !rn->exited)
		rn->runtime->p->runtime->stop(&rn->run);
	close_all(rn, true);
}

static void on_timeout(void *ctx)
{
	struct rn_run *rn = ctx;
	if (rn->exited) {
		lg_log(LG_ERROR, "Timeout of %lld s passed while channels were still closing; aborting them",
		       (long long)rn->mf->timeout);
		for (int i = 0; i < rn->nchans; i++) {
			struct ch_channel *ch = &rn->chans[i];
			if (ch->pipe && !ch->failed) {
				ch->failed = -ETIMEDOUT;
				lg_log(LG_ERROR, "channel %s (%s): end-of-stream not delivered before the Timeout (is its %s running?)",
				       ch->pub.alias, ch->pub.uri, ch->pub.mode & NP_WRITE ? "reader" : "writer");
			}
		}
		stop(rn, rn->status ? rn->status : RN_EXIT_CHANNEL);
		return;
	}
	lg_log(LG_ERROR, "the run exceeded the manifest's Timeout of %lld s; stopped",
	       (long long)rn->mf->timeout);
	stop(rn, RN_EXIT_TIMEOUT);
}

static void on_signal(void *ctx, int fd, uint32_t events)
{
	struct rn_run *rn = ctx;
	struct signalfd_siginfo si;
	(void)events;
	if (read(fd, &si, sizeof si) == (ssize_t)sizeof si) {
		lg_log(LG_WARN, "signal %d (%s): stopping the program", (int)si.ssi_signo,
		       strsignal((int)si.ssi_signo));
		stop(rn, 128 + (int)si.ssi_signo);
	}
}

static void stop_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGQUIT);
}

void rn_block_signals(void)
{
	sigset_t set;
	stop_signals(&set);
	sigprocmask(SIG_BLOCK, &set, NULL);
}

int rn_execute(struct rn_run *rn)
{
	char err[1024];
	const struct np_runtime_ops *rt = rn->runtime->p->runtime;
	sigset_t set;
	stop_signals(&set);
	if ((rn->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) >= 0)
		ev_watch(rn->loop, rn->sigfd, NP_IN, on_signal, rn);

	for (int i = 0; i < rn->nchans; i++) {
		if (ch_open(&rn->chans[i], on_channel, rn, err, sizeof err) < 0) {
			lg_log(LG_ERROR, "%s:%d: channel %s: %s", rn->mf->path,
			       rn->chans[i].mf->line, rn->chans[i].pub.alias, err);
			close_all(rn, true);
			return RN_EXIT_SETUP;
		}
		rn->open++;
	}
	rn->run = (struct np_run){
		.struct_size = sizeof(struct np_run),
		.nchannels = (uint32_t)rn->nchans,
		.program = rn->mf->program,
		.manifest = rn->mf->path,
		.channels = rn->pubs,
		.timeout_ms = rn->mf->timeout * 1000,
		.memory = rn->mf->memory,
		.broker = rn,
	};
	size_t ss = ((size_t)rt->state_size + NP_STATE_ALIGN - 1) & ~(size_t)(NP_STATE_ALIGN - 1);
	if (ss && (rn->state = rn->run.state = aligned_alloc(NP_STATE_ALIGN, ss)))
		memset(rn->state, 0, ss);
	if (ss && !rn->state) {
		close_all(rn, true);
		return RN_EXIT_SETUP;
	}
	rn->rh = (struct np_run_host){
		.struct_size = sizeof(struct np_run_host),
		.read = rh_read,
		.write = rh_write,
		.seek = rh_seek,
		.close = rh_close,
		.watch_fd = rh_watch_fd,
		.exit = rh_exit,
		.log = rh_log,
		.abort = rh_abort,
	};
	if (rn->mf->timeout > 0)
		ev_timer_arm(rn->loop, &rn->timeout, ev_now_ms() + rn->mf->timeout * 1000,
		             on_timeout, rn);
	err[0] = '\0';
	int rc = rt->start(&rn->run, &rn->rh, err, sizeof err);
	if (rc < 0) {
		lg_log(LG_ERROR, "%s:%d: Program '%s': %s", rn->mf->path, rn->mf->program_line,
		       rn->mf->program, err[0] ? err : strerror(-rc));
		close_all(rn, true);
		return RN_EXIT_SETUP;
	}
	rn->started = true;
	while (!(rn->exited || rn->stopped) || rn->open > 0) {
		rc = ev_run_once(rn->loop, -1);
		if (rc < 0) {
			lg_log(LG_ERROR, "event loop: %s", strerror(-rc));
			stop(rn, RN_EXIT_SETUP);
			break;
		}
	}
	ev_timer_cancel(rn->loop, &rn->timeout);
	if (rn->stopped && rn->stop_status)
		return rn->stop_status;
	int failed = 0;
	for (int i = 0; i < rn->nchans; i++)
		failed |= rn->chans[i].failed != 0;
	if (rn->status == 0 && failed)
		return RN_EXIT_CHANNEL;
	return rn->status;
}

void rn_free(struct rn_run *rn)
{
	for (int i = 0; i < rn->nchans; i++)
		ch_free(&rn->chans[i]);
	if (rn->sigfd >= 0) {
		ev_watch(rn->loop, rn->sigfd, 0, NULL, NULL);
		close(rn->sigfd);
	}
	free(rn->chans);
	free(rn->pubs);
	free(rn->state);
	memset(rn, 0, sizeof *rn);
}
