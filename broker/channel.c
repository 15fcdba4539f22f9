#include "channel.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "descriptor.h"
#include "loader.h"
#include "log.h"
#include "loop.h"
#include "manifest.h"
#include "pipe.h"

int ch_resolve(struct ch_channel *ch, struct ld_registry *reg,
               const struct mf_channel *mf, const char *path, char *err,
               size_t errlen)
{
	const char *uri = mf->uris[0];
	const char *scheme = NULL;
	char buf[1024];
	struct ds_desc d = {0};

	memset(ch, 0, sizeof *ch);
	ch->mf = mf;
	ch->pub = (struct np_channel){
		.struct_size = sizeof(struct np_channel),
		.mode = mf->mode,
		.alias = mf->alias,
		.uri = uri,
		.type = (uint32_t)mf->type,
		.etag = (uint32_t)mf->etag,
		.gets = mf->gets, .get_size = mf->get_size,
		.puts = mf->puts, .put_size = mf->put_size,
	};
	if (mf->nuris > 1) {
		snprintf(err, errlen, "%s:%d: channel %s lists %d URIs; this broker carries one URI per channel",
		         path, mf->line, mf->alias, mf->nuris);
		return -ENOTSUP;
	}
	if (strncmp(uri, "Netpipe:", 8) == 0) {
		char why[256];
		if (ds_parse(uri, 1, &d, why, sizeof why) < 0) {
			snprintf(err, errlen, "%s:%d: %s", path, mf->line, why);
			return -EINVAL;
		}
		scheme = d.scheme;
		ch->address = d.address;
		d.address = NULL;
	} else if (uri[0] == '/') {
		scheme = "file";
		ch->address = strdup(uri);
	} else if (strncmp(uri, "tcp:", 4) == 0) {
		scheme = "zmq";
		snprintf(buf, sizeof buf, "tcp://%s", uri + 4);
		ch->address = strdup(buf);
	} else {
		snprintf(err, errlen, "%s:%d: channel %s: URI '%s' is not an absolute path, tcp:host:port or Netpipe:<scheme>:<address>",
		         path, mf->line, mf->alias, uri);
		return -EINVAL;
	}
	if (!ch->address)
		return -ENOMEM;
	ch->plugin = ld_find(reg, scheme);
	if (!ch->plugin || ch->plugin->p->kind != NP_KIND_TRANSPORT) {
		char names[512] = "";
		size_t o = 0;
		for (int i = 0; i < reg->nplugins; i++)
			if (reg->plugins[i]->p->kind == NP_KIND_TRANSPORT)
				o += (size_t)snprintf(names + o, o < sizeof names ? sizeof names - o : 0,
				                      "%s%s", o ? ", " : "", reg->plugins[i]->p->name);
		snprintf(err, errlen, "%s:%d: channel %s: unknown scheme '%s' (no transport plugin of that name; loaded: %s)",
		         path, mf->line, mf->alias, scheme, o ? names : "none");
		return -ENOENT;
	}
	return 0;
}

int ch_validate(struct ch_channel *ch, const char *path, char *err, size_t errlen)
{
	const struct np_plugin *p = ch->plugin->p;
	char why[512] = "";
	if (ch->pub.mode == NP_RDWR && !(p->caps & NP_CAP_RDWR)) {
		snprintf(err, errlen, "%s:%d: channel %s: transport '%s' has no read-write pipes; give it only read or only write limits",
		         path, ch->mf->line, ch->pub.alias, p->name);
		return -EINVAL;
	}
	if (!p->validate)
		return 0;
	int rc = p->validate(ch->address, ch->pub.mode, why, sizeof why);
	if (rc < 0)
		snprintf(err, errlen, "%s:%d: channel %s: %s: %s", path, ch->mf->line,
		         ch->pub.alias, p->name, why[0] ? why : strerror(-rc));
	return rc;
}

static void on_pipe(void *owner, struct pp_pipe *p)
{
	struct ch_channel *ch = owner;
	if (!ch->notify || ch->closing)
		return;
	uint32_t ev = pp_ready(p);
	ch->read_blocked = false;
	ch->notify(ch->ctx, ch, ev);
	/* Readable, but the runtime did not read it down to -EAGAIN (its
	 * program is not taking input now): hold the fd off the loop until
	 * the next read, or a level-triggered fd spins the broker. */
	if ((ev & NP_IN) && !ch->read_blocked && ch->pipe && !ch->closing &&
	    !(ch->pub.mode & NP_WRITE))
		pp_pause(ch->pipe);
}

static void kick(void *ctx)
{
	struct ch_channel *ch = ctx;
	if (ch->pipe)
		on_pipe(ch, ch->pipe);
}

int ch_open(struct ch_channel *ch, void (*notify)(void *, struct ch_channel *, uint32_t),
            void *ctx, char *err, size_t errlen)
{
	ch->notify = notify;
	ch->ctx = ctx;
	int rc = pp_open(ch->plugin, ch->address, ch->pub.mode, ch->pub.type,
	                 ch->pub.etag, ch->pub.alias, on_pipe, ch, &ch->pipe,
	                 err, errlen);
	if (rc == 0)
		ev_post(ch->plugin->reg->loop, kick, ch);
	return rc;
}

static void fail(struct ch_channel *ch, int rc)
{
	if (ch->failed)
		return;
	ch->failed = rc;
	lg_log(LG_ERROR, "channel %s (%s): %s", ch->pub.alias, ch->pub.uri,
	       ch->pipe ? pp_error(ch->pipe, rc) : strerror(-rc));
}

static bool hard(ssize_t r)
{
	return r < 0 && r != -EAGAIN && r != -EDQUOT && r != -EINTR;
}

static ssize_t over_quota(struct ch_channel *ch, const char *what, int64_t limit,
                          const char *unit)
{
	if (!ch->quota_logged) {
		ch->quota_logged = true;
		lg_log(LG_WARN, "channel %s: %s quota of %lld %s reached; further %ss fail with EDQUOT",
		       ch->pub.alias, what, (long long)limit, unit, what);
	}
	return -EDQUOT;
}

ssize_t ch_read(struct ch_channel *ch, void *buf, size_t len)
{
	if (!(ch->pub.mode & NP_READ) || !ch->pipe || ch->closing)
		return -EBADF;
	if (ch->nreads >= ch->pub.gets)
		return over_quota(ch, "read", ch->pub.gets, "operations");
	if (ch->rbytes >= ch->pub.get_size)
		return over_quota(ch, "read", ch->pub.get_size, "bytes");
	if ((int64_t)len > ch->pub.get_size - ch->rbytes)
		len = (size_t)(ch->pub.get_size - ch->rbytes);
	pp_resume(ch->pipe);
	ssize_t r = pp_read(ch->pipe, buf, len);
	if (r == -EAGAIN)
		ch->read_blocked = true;
	if (r > 0) {
		ch->nreads++;
		ch->rbytes += r;
	} else if (hard(r)) {
		fail(ch, (int)r);
	}
	return r;
}

ssize_t ch_write(struct ch_channel *ch, const void *buf, size_t len)
{
	if (!(ch->pub.mode & NP_WRITE) || !ch->pipe || ch->closing)
		return -EBADF;
	if (ch->nwrites >= ch->pub.puts)
		return over_quota(ch, "write", ch->pub.puts, "operations");
	if (ch->wbytes >= ch->pub.put_size)
		return over_quota(ch, "write", ch->pub.put_size, "bytes");
	if ((int64_t)len > ch->pub.put_size - ch->wbytes)
		len = (size_t)(ch->pub.put_size - ch->wbytes);
	ssize_t r = pp_write(ch->pipe, buf, len);
	if (r > 0) {
		ch->nwrites++;
		ch->wbytes += r;
	} else if (hard(r)) {
		fail(ch, (int)r);
	}
	return r;
}

int64_t ch_seek(struct ch_channel *ch, int64_t off, int whence)
{
	if (!ch->pipe || ch->closing)
		return -EBADF;
	return pp_seek(ch->pipe, off, whence);
}

static void on_closed(void *ctx, struct pp_pipe *p, int rc)
{
	struct ch_channel *ch = ctx;
	if (rc < 0 && !ch->failed) {
		ch->failed = rc;
		lg_log(LG_ERROR, "channel %s (%s): close failed: %s", ch->pub.alias,
		       ch->pub.uri, rc == -ETIMEDOUT ? "the reader did not take the end of the stream in time"
		                                     : pp_error(p, rc));
	}
	ch->pipe = NULL;
	if (ch->closed)
		ch->closed(ch->closed_ctx, ch);
}

void ch_close(struct ch_channel *ch, bool abort, int64_t linger_ms,
              void (*done)(void *, struct ch_channel *), void *ctx)
{
	if (ch->closing || !ch->pipe) {
		ch->closing = true;
		if (!ch->pipe && done)
			done(ctx, ch);
		return;
	}
	ch->closing = true;
	ev_unpost(ch->plugin->reg->loop, ch);
	if (abort) {
		pp_close(ch->pipe, NP_CLOSE_ABORT);
		pp_free(ch->pipe);
		ch->pipe = NULL;
		if (done)
			done(ctx, ch);
		return;
	}
	ch->closed = done;
	ch->closed_ctx = ctx;
	pp_close_async(ch->pipe, linger_ms, on_closed, ch);
}

void ch_free(struct ch_channel *ch)
{
	if (ch->pipe) {
		pp_close(ch->pipe, NP_CLOSE_ABORT);
		pp_free(ch->pipe);
		ch->pipe = NULL;
	}
	free(ch->address);
	ch->address = NULL;
}
