#include "pipe.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader.h"
#include "log.h"
#include "loop.h"

struct pp_pipe {
	struct np_pipe pub;
	struct ld_plugin *plugin;
	struct ev_loop *loop;
	struct ev_timer timer;       /* the plugin's set_timer */
	struct ev_timer linger;      /* pp_close_async's deadline */
	struct pp_fd {
		int fd;
		uint32_t events;
	} *fds;                      /* fds the plugin watches, and for what */
	int nfds, capfds;
	bool paused;                 /* watches held off the loop */
	pp_notify_fn notify;
	void *owner;
	bool closing;                /* closing in the background */
	pp_closed_fn closed;         /* then called, if set */
	void *closed_ctx;
	int opened;                  /* open() succeeded */
	char *label;
	char errbuf[256];
	_Alignas(NP_STATE_ALIGN) unsigned char state[];
};

static struct pp_pipe *of(struct np_pipe *pub)
{
	return pub->broker;
}

static void pp_progress(struct pp_pipe *p);

static void on_fd(void *ctx, int fd, uint32_t events)
{
	(void)fd;
	(void)events;
	pp_progress(ctx);
}

static void on_wake(void *ctx)
{
	pp_progress(ctx);
}

int pp_host_watch_fd(struct np_pipe *pub, int fd, uint32_t events)
{
	struct pp_pipe *p = of(pub);
	int i;
	for (i = 0; i < p->nfds && p->fds[i].fd != fd; i++)
		;
	events &= NP_IN | NP_OUT;
	if (events == 0) {
		if (i < p->nfds)
			p->fds[i] = p->fds[--p->nfds];
		return ev_watch(p->loop, fd, 0, NULL, NULL);
	}
	if (i == p->nfds) {
		if (p->nfds == p->capfds) {
			int n = p->capfds ? p->capfds * 2 : 4;
			struct pp_fd *v = realloc(p->fds, (size_t)n * sizeof *v);
			if (!v)
				return -ENOMEM;
			p->fds = v;
			p->capfds = n;
		}
		p->nfds++;
	}
	p->fds[i] = (struct pp_fd){fd, events};
	if (p->paused) {
		/* Check that the loop would take it, then keep it held off. */
		int rc = ev_watch(p->loop, fd, events, on_fd, p);
		ev_unwatch(p->loop, fd, p);
		return rc;
	}
	return ev_watch(p->loop, fd, events, on_fd, p);
}

void pp_pause(struct pp_pipe *p)
{
	if (p->paused)
		return;
	p->paused = true;
	for (int i = 0; i < p->nfds; i++)
		ev_unwatch(p->loop, p->fds[i].fd, p);
}

void pp_resume(struct pp_pipe *p)
{
	if (!p->paused)
		return;
	p->paused = false;
	for (int i = 0; i < p->nfds; i++)
		ev_watch(p->loop, p->fds[i].fd, p->fds[i].events, on_fd, p);
}

void pp_host_wake(struct np_pipe *pub)
{
	struct pp_pipe *p = of(pub);
	ev_post(p->loop, on_wake, p);
}

int pp_host_set_timer(struct np_pipe *pub, int64_t delay_ms)
{
	struct pp_pipe *p = of(pub);
	if (delay_ms < 0)
		ev_timer_cancel(p->loop, &p->timer);
	else
		ev_timer_arm(p->loop, &p->timer, ev_now_ms() + delay_ms, on_wake, p);
	return 0;
}

int pp_open(struct ld_plugin *pl, const char *address, uint32_t mode,
            uint32_t type, uint32_t etag, const char *label,
            pp_notify_fn notify, void *owner, struct pp_pipe **out,
            char *err, size_t errlen)
{
	const struct np_plugin *np = pl->p;
	*out = NULL;
	if (np->kind != NP_KIND_TRANSPORT) {
		snprintf(err, errlen, "'%s' is a runtime, not a transport", np->name);
		return -EINVAL;
	}
	if (mode == NP_RDWR && !(np->caps & NP_CAP_RDWR)) {
		snprintf(err, errlen, "%s: read-write pipes are not supported by this transport (use :r or :w)",
		         np->name);
		return -EINVAL;
	}
	/* The state is NP_STATE_ALIGN-aligned, as the ABI promises. */
	size_t size = (sizeof(struct pp_pipe) + np->state_size + NP_STATE_ALIGN - 1) &
	              ~(size_t)(NP_STATE_ALIGN - 1);
	struct pp_pipe *p = aligned_alloc(NP_STATE_ALIGN, size);
	if (p)
		memset(p, 0, size);
	if (!p || !(p->label = strdup(label ? label : address))) {
		free(p);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	p->plugin = pl;
	p->loop = pl->reg->loop;
	p->notify = notify;
	p->owner = owner;
	p->pub = (struct np_pipe){
		.struct_size = sizeof(struct np_pipe),
		.mode = mode,
		.state = np->state_size ? p->state : NULL,
		.host = &pl->host,
		.label = p->label,
		.broker = p,
	};
	struct np_open_args a = {
		.struct_size = sizeof a,
		.mode = mode,
		.address = address,
		.type = type,
		.etag = etag,
	};
	int rc = np->open(&p->pub, &a);
	if (rc < 0) {
		const char *why = np->last_error ? np->last_error(&p->pub) : NULL;
		snprintf(err, errlen, "%s: %s", np->name, why ? why : strerror(-rc));
		np->close(&p->pub, NP_CLOSE_ABORT);
		pp_free(p);
		return rc;
	}
	p->opened = 1;
	*out = p;
	return 0;
}

ssize_t pp_read(struct pp_pipe *p, void *buf, size_t len)
{
	return p->plugin->p->read(&p->pub, buf, len);
}

ssize_t pp_write(struct pp_pipe *p, const void *buf, size_t len)
{
	return p->plugin->p->write(&p->pub, buf, len);
}

int64_t pp_seek(struct pp_pipe *p, int64_t off, int whence)
{
	const struct np_plugin *np = p->plugin->p;
	return np->seek ? np->seek(&p->pub, off, whence) : -ESPIPE;
}

int64_t pp_tell(struct pp_pipe *p)
{
	const struct np_plugin *np = p->plugin->p;
	return np->tell ? np->tell(&p->pub) : -ESPIPE;
}

int pp_truncate(struct pp_pipe *p, int64_t len)
{
	const struct np_plugin *np = p->plugin->p;
	return np->truncate ? np->truncate(&p->pub, len) : -EINVAL;
}

uint32_t pp_ready(struct pp_pipe *p)
{
	return p->plugin->p->ready(&p->pub);
}

int pp_ctl(struct pp_pipe *p, int op, void *arg)
{
	const struct np_plugin *np = p->plugin->p;
	return np->ctl ? np->ctl(&p->pub, op, arg) : -ENOTTY;
}

const char *pp_error(struct pp_pipe *p, int rc)
{
	const struct np_plugin *np = p->plugin->p;
	const char *m = np->last_error ? np->last_error(&p->pub) : NULL;
	if (m && *m) {
		snprintf(p->errbuf, sizeof p->errbuf, "%s", m);
		return p->errbuf;
	}
	return strerror(rc < 0 ? -rc : rc);
}

const char *pp_label(const struct pp_pipe *p)
{
	return p->label;
}

struct ld_plugin *pp_plugin(const struct pp_pipe *p)
{
	return p->plugin;
}

int pp_close(struct pp_pipe *p, uint32_t flags)
{
	if (!p->opened)
		return 0;
	int rc = p->plugin->p->close(&p->pub, flags);
	if (rc == -EAGAIN && (flags & NP_CLOSE_ABORT))
		rc = -EIO; /* the contract says never; do not loop on it */
	if (rc != -EAGAIN)
		p->opened = 0;
	return rc;
}

void pp_free(struct pp_pipe *p)
{
	if (!p)
		return;
	/* A plugin that forgot to unwatch its fds must not get callbacks on
	 * a freed pipe. */
	for (int i = 0; i < p->nfds; i++)
		ev_unwatch(p->loop, p->fds[i].fd, p);
	ev_timer_cancel(p->loop, &p->timer);
	ev_timer_cancel(p->loop, &p->linger);
	ev_unpost(p->loop, p);
	free(p->fds);
	free(p->label);
	free(p);
}

static void finish_close(struct pp_pipe *p, int rc)
{
	pp_closed_fn done = p->closed;
	void *ctx = p->closed_ctx;
	p->closed = NULL;
	p->closing = false;
	if (done)
		done(ctx, p, rc);
	pp_free(p);
}

static void on_linger_timeout(void *ctx)
{
	struct pp_pipe *p = ctx;
	lg_log(LG_WARN, "%s: clean close did not finish in time; aborted", p->label);
	pp_close(p, NP_CLOSE_ABORT);
	finish_close(p, -ETIMEDOUT);
}

static void pp_progress(struct pp_pipe *p)
{
	if (!p->closing) {
		if (p->notify)
			p->notify(p->owner, p);
		return;
	}
	pp_ready(p);
	int rc = pp_close(p, 0);
	if (rc != -EAGAIN)
		finish_close(p, rc);
}

void pp_close_async(struct pp_pipe *p, int64_t linger_ms, pp_closed_fn done,
                    void *ctx)
{
	p->closing = true;
	p->closed = done;
	p->closed_ctx = ctx;
	p->notify = NULL;
	pp_resume(p); /* closing needs its events */
	int rc = pp_close(p, 0);
	if (rc != -EAGAIN) {
		finish_close(p, rc);
		return;
	}
	ev_timer_arm(p->loop, &p->linger, ev_now_ms() + linger_ms,
	             on_linger_timeout, p);
}

int pp_wait(struct pp_pipe *p, uint32_t events, int64_t deadline)
{
	for (;;) {
		if (pp_ready(p) & (events | NP_HUP | NP_ERR))
			return 0;
		int64_t left = -1;
		if (deadline >= 0) {
			left = deadline - ev_now_ms();
			if (left <= 0)
				return -ETIMEDOUT;
		}
		int rc = ev_run_once(p->loop, (int)(left > 1000 || left < 0 ? 1000 : left));
		if (rc < 0)
			return rc;
	}
}
