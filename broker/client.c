/*
 * client.c - libnetpipe: the blocking client API over the broker's core.
 */
#include "libnetpipe.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "descriptor.h"
#include "loader.h"
#include "log.h"
#include "loop.h"
#include "pipe.h"

#define API __attribute__((visibility("default")))
#define CLOSE_LINGER_MS 30000

struct netpipe {
	struct pp_pipe *pipe;
	int64_t timeout_ms;
	int progressed;  /* ready() ran since the last wait */
	int no_wait;     /* the plugin answered NP_CTL_WAIT with -ENOTTY */
};

/* A blocking read waits inside the plugin (NP_CTL_WAIT) at most this
 * long at a time, and the loop runs at least this often meanwhile. */
#define WAIT_SLICE_MS 50

static struct ev_loop *loop;
static struct ld_registry reg;
static _Thread_local char last_error[512];

static void set_error(int rc, const char *fmt, const char *a, const char *b)
{
	snprintf(last_error, sizeof last_error, fmt, a, b);
	errno = rc < 0 ? -rc : rc;
}

static int setup(void)
{
	if (loop)
		return 0;
	lg_set_program("libnetpipe");
	if (!(loop = ev_new()))
		return -errno;
	ld_init(&reg, loop);
	ld_add_default_dirs(&reg);
	ld_load_all(&reg);
	return 0;
}

/* The pipe a call is blocked on, if any. */
static netpipe_t *blocked;

static void on_pipe(void *owner, struct pp_pipe *p)
{
	/* The blocked call retries its op after every wake-up and asks
	 * ready() only when that op still cannot progress, which saves
	 * ready()'s syscalls on the common path (bench row 2). Other pipes
	 * get ready() at once, so they keep flushing what writes accepted;
	 * one that is readable waits, paused, for its next call. */
	if (owner == blocked)
		return;
	if (pp_ready(p) & NP_IN)
		pp_pause(p);
}

API netpipe_t *netpipe_open(const char *descriptor)
{
	char err[512];
	struct ds_desc d;
	int rc = setup();
	if (rc < 0) {
		set_error(rc, "cannot start the event loop%s%s", "", "");
		return NULL;
	}
	if (!descriptor || ds_parse(descriptor, 0, &d, err, sizeof err) < 0) {
		set_error(-EINVAL, "%s%s", descriptor ? err : "NULL descriptor", "");
		return NULL;
	}
	if (!d.mode) {
		set_error(-EINVAL, "%s: a mode is required (append :r, :w or :rw)%s", descriptor, "");
		ds_free(&d);
		return NULL;
	}
	struct ld_plugin *pl = ld_find(&reg, d.scheme);
	if (!pl || pl->p->kind != NP_KIND_TRANSPORT) {
		set_error(-EPROTONOSUPPORT, "unknown scheme '%s' (no such plugin in $RIFT_PLUGIN_PATH or %s)",
		          d.scheme, RIFT_PLUGIN_DIR);
		ds_free(&d);
		return NULL;
	}
	netpipe_t *np = calloc(1, sizeof *np);
	if (!np) {
		ds_free(&d);
		errno = ENOMEM;
		return NULL;
	}
	np->timeout_ms = -1;
	const struct np_plugin *p = pl->p;
	if (p->validate && (rc = p->validate(d.address, d.mode, err, sizeof err)) < 0) {
		set_error(rc, "%.200s: %.300s", descriptor, err);
		goto fail;
	}
	/* No manifest, so no channel type: reads may seek, writes are
	 * sequential (a file is truncated, as by a shell's '>'), and a
	 * read-write pipe is random both ways. */
	uint32_t type = d.mode == NP_RDWR ? NP_TYPE_RND_RND : NP_TYPE_RND_SEQ;
	rc = pp_open(pl, d.address, d.mode, type, 0, descriptor,
	             on_pipe, np, &np->pipe, err, sizeof err);
	if (rc < 0) {
		set_error(rc, "%.200s: %.300s", descriptor, err);
		goto fail;
	}
	ds_free(&d);
	return np;
fail:
	ds_free(&d);
	free(np);
	return NULL;
}

static int64_t deadline(const netpipe_t *np)
{
	return np->timeout_ms < 0 ? -1 : ev_now_ms() + np->timeout_ms;
}

/* A call's deadline is read from the clock only when the call first has
 * to wait: perf showed clock_gettime as a tenth of a writer's time when
 * every call read it. */
#define DEADLINE_UNSET INT64_MIN

/* want = WANT_ANY: the caller waits for something ready() does not report
 * (NP_CTL_PENDING reaching 0, a close completing). */
#define WANT_ANY (~0u)

/* One blocking wait on the loop, bounded by the deadline, in the broker's
 * order: ready() once after each event (and once before the first wait),
 * and the op again only when ready() reports a bit of want (or NP_HUP or
 * NP_ERR), otherwise the wait goes on. Not ready() before a wait: after an
 * op's -EAGAIN the plugin has just looked (a zmq reader's ready() would
 * poll() the fds its receive just found dry, once per message: bench
 * row 3), and the broker does not call it there either. */
static int wait_once(netpipe_t *np, int64_t *untilp, uint32_t want)
{
	if (*untilp == DEADLINE_UNSET)
		*untilp = deadline(np);
	int64_t until = *untilp;
	for (;;) {
		if (!np->progressed) {
			np->progressed = 1;
			uint32_t r = pp_ready(np->pipe);
			if (want == WANT_ANY || (r & (want | NP_HUP | NP_ERR)))
				return 0;
		}
		int ms = 1000;
		if (until >= 0) {
			int64_t left = until - ev_now_ms();
			if (left <= 0)
				return -ETIMEDOUT;
			if (left < ms)
				ms = (int)left;
		}
		int rc = ev_run_once(loop, ms);
		if (rc < 0)
			return rc;
		np->progressed = 0;
	}
}

/* When the loop last ran while reads waited inside their plugin. */
static int64_t loop_served;

/* A blocking read's wait inside the plugin (NP_CTL_WAIT, docs/abi.md):
 * for libzmq that is its own blocking receive, which sleeps in the poll()
 * a non-blocking receive spends finding nothing (bench row 3). Asked
 * before every try of the read, so a plugin answers at once when the read
 * would progress. The program's other pipes get the loop, without
 * blocking, at least every WAIT_SLICE_MS: their events, timers and
 * flushes wait no longer than that. Whatever the plugin answers, the read
 * is tried next; false when it cannot wait so (-ENOTTY, remembered). */
static bool wait_inside(netpipe_t *np, int64_t *untilp)
{
	int64_t now = ev_now_ms();
	if (*untilp == DEADLINE_UNSET)
		*untilp = np->timeout_ms < 0 ? -1 : now + np->timeout_ms;
	if (now - loop_served >= WAIT_SLICE_MS) {
		ev_run_once(loop, 0);
		loop_served = now;
	}
	int64_t ms = WAIT_SLICE_MS;
	if (*untilp >= 0 && *untilp - now < ms)
		ms = *untilp > now ? *untilp - now : 0;
	struct np_wait w = { sizeof w, NP_IN, (int32_t)ms, 0 };
	if (pp_ctl(np->pipe, NP_CTL_WAIT, &w) != -ENOTTY)
		return true;
	np->no_wait = 1;
	return false;
}

static int64_t fail_op(netpipe_t *np, int64_t rc)
{
	set_error((int)rc, "%s: %s", pp_label(np->pipe), pp_error(np->pipe, (int)rc));
	return rc;
}

/* Enter and leave a blocking call on np. */
static void enter(netpipe_t *np)
{
	blocked = np;
	pp_resume(np->pipe);
}

static int64_t leave(int64_t rc)
{
	blocked = NULL;
	return rc;
}

API int64_t netpipe_read(netpipe_t *np, void *buf, int32_t len)
{
	if (!np || len < 0)
		return -(errno = EINVAL);
	int64_t until = DEADLINE_UNSET;
	enter(np);
	for (;;) {
		bool waited = !np->no_wait && wait_inside(np, &until);
		ssize_t r = pp_read(np->pipe, buf, (size_t)len);
		if (r >= 0)
			return leave(r);
		if (r != -EAGAIN)
			return leave(fail_op(np, r));
		int rc = !waited ? wait_once(np, &until, NP_IN)
		         : until >= 0 && ev_now_ms() >= until ? -ETIMEDOUT : 0;
		if (rc < 0)
			return leave(fail_op(np, rc));
	}
}

API int64_t netpipe_write(netpipe_t *np, const void *buf, int32_t len)
{
	if (!np || len < 0)
		return -(errno = EINVAL);
	int64_t until = DEADLINE_UNSET;
	size_t done = 0;
	enter(np);
	while (done < (size_t)len) {
		ssize_t r = pp_write(np->pipe, (const char *)buf + done, (size_t)len - done);
		if (r > 0) {
			done += (size_t)r;
			continue;
		}
		if (r != -EAGAIN && r != 0)
			return leave(done ? (int64_t)done : fail_op(np, r));
		int rc = wait_once(np, &until, NP_OUT);
		if (rc < 0)
			return leave(done ? (int64_t)done : fail_op(np, rc));
	}
	/* As write(2) returns once the kernel has the bytes: wait until the
	 * plugin holds none of them (a frame the link took only in part). */
	int held;
	while ((held = pp_ctl(np->pipe, NP_CTL_PENDING, NULL)) > 0) {
		int rc = wait_once(np, &until, WANT_ANY);
		if (rc < 0)
			return leave(fail_op(np, rc));
	}
	if (held < 0 && held != -ENOTTY)
		return leave(fail_op(np, held)); /* accepted, but they cannot go */
	return leave((int64_t)done);
}

API int64_t netpipe_seek(netpipe_t *np, int64_t offset, int whence)
{
	if (!np)
		return -(errno = EINVAL);
	int64_t r = pp_seek(np->pipe, offset, whence);
	return r < 0 ? fail_op(np, r) : r;
}

API int netpipe_close(netpipe_t *np)
{
	if (!np)
		return -(errno = EINVAL);
	int64_t until = ev_now_ms() + (np->timeout_ms < 0 ? CLOSE_LINGER_MS : np->timeout_ms);
	int rc;
	enter(np);
	while ((rc = pp_close(np->pipe, 0)) == -EAGAIN) {
		if (wait_once(np, &until, WANT_ANY) < 0) {
			pp_close(np->pipe, NP_CLOSE_ABORT);
			rc = -ETIMEDOUT;
			break;
		}
	}
	if (rc < 0)
		fail_op(np, rc);
	leave(0);
	pp_free(np->pipe);
	free(np);
	return rc;
}

API void netpipe_set_timeout(netpipe_t *np, int64_t ms)
{
	if (np)
		np->timeout_ms = ms;
}

API const char *netpipe_error(void)
{
	return last_error;
}

API int netpipe_channel_fd(const char *alias)
{
	const char *env = getenv("RIFT_CHANNELS");
	size_t al = alias ? strlen(alias) : 0;
	for (const char *p = env; p && *p && al;) {
		const char *e = strchr(p, ',');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (l > al + 1 && strncmp(p, alias, al) == 0 && p[al] == '=')
			return atoi(p + al + 1);
		p += l + (e ? 1 : 0);
	}
	return -1;
}
