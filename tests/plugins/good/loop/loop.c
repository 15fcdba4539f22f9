/*
 * loop.c - a valid in-process transport, the good fixture of the loader
 * tests: it must load (and be listed) whatever broken plugins sit beside it.
 *
 *   Netpipe:loop:<name>:r / :w
 *
 * A writer and a reader of the same name in one process share a 64 KiB
 * buffer from a static table; it behaves like a named pipe (writes wait
 * for a reader, -EPIPE once the reader left, end-of-stream after the
 * writer's clean close, -ECONNRESET after an aborted one). One reader and
 * one writer per name.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

#define LP_SLOTS 16
#define LP_BUF   65536

struct lp_chan {
	char name[64];
	struct np_pipe *reader, *writer;
	bool used, had_reader, reader_gone, writer_done, writer_aborted;
	size_t len;
	unsigned char buf[LP_BUF];
};

struct lp_end {
	struct lp_chan *ch;
};

static struct lp_chan chans[LP_SLOTS];
static const struct np_host *host;

static struct lp_chan *lp_find(const char *name, bool create)
{
	struct lp_chan *free_slot = NULL;
	for (int i = 0; i < LP_SLOTS; i++) {
		if (chans[i].used && strcmp(chans[i].name, name) == 0)
			return &chans[i];
		if (!chans[i].used && !free_slot)
			free_slot = &chans[i];
	}
	if (!create || !free_slot)
		return NULL;
	memset(free_slot, 0, sizeof *free_slot);
	free_slot->used = true;
	snprintf(free_slot->name, sizeof free_slot->name, "%s", name);
	return free_slot;
}

static int lp_validate(const char *address, uint32_t mode, char *err, size_t errlen)
{
	if (!*address || strlen(address) >= sizeof chans[0].name) {
		snprintf(err, errlen, "a name of 1-63 characters is expected");
		return -EINVAL;
	}
	if (mode == NP_RDWR) {
		snprintf(err, errlen, "a loop is read-only or write-only");
		return -EINVAL;
	}
	return 0;
}

static int lp_open(struct np_pipe *p, const struct np_open_args *a)
{
	struct lp_end *e = p->state;
	char err[128];
	int rc = lp_validate(a->address, a->mode, err, sizeof err);
	if (rc < 0)
		return rc;
	struct lp_chan *ch = lp_find(a->address, true);
	if (!ch)
		return -ENOSPC;
	if (a->mode == NP_READ) {
		if (ch->reader || ch->had_reader)
			return -EADDRINUSE;
		ch->reader = p;
		ch->had_reader = true;
		if (ch->writer)
			host->wake(ch->writer);
	} else {
		if (ch->writer || ch->writer_done)
			return -EADDRINUSE;
		ch->writer = p;
	}
	e->ch = ch;
	return 0;
}

static ssize_t lp_read(struct np_pipe *p, void *buf, size_t len)
{
	struct lp_chan *ch = ((struct lp_end *)p->state)->ch;
	if (ch->len) {
		size_t n = len < ch->len ? len : ch->len;
		memcpy(buf, ch->buf, n);
		memmove(ch->buf, ch->buf + n, ch->len - n);
		ch->len -= n;
		if (ch->writer)
			host->wake(ch->writer);
		return (ssize_t)n;
	}
	if (ch->writer_aborted)
		return -ECONNRESET;
	return ch->writer_done ? 0 : -EAGAIN;
}

static ssize_t lp_write(struct np_pipe *p, const void *buf, size_t len)
{
	struct lp_chan *ch = ((struct lp_end *)p->state)->ch;
	if (ch->reader_gone)
		return -EPIPE;
	if (!ch->reader || ch->len == LP_BUF)
		return -EAGAIN;
	size_t n = len < LP_BUF - ch->len ? len : LP_BUF - ch->len;
	memcpy(ch->buf + ch->len, buf, n);
	ch->len += n;
	host->wake(ch->reader);
	return (ssize_t)n;
}

static uint32_t lp_ready(struct np_pipe *p)
{
	struct lp_chan *ch = ((struct lp_end *)p->state)->ch;
	if (!ch)
		return NP_ERR;
	if (p->mode == NP_READ)
		return ch->len || ch->writer_done ? NP_IN | (ch->writer_done ? NP_HUP : 0) : 0;
	if (ch->reader_gone)
		return NP_OUT | NP_ERR;
	return ch->reader && ch->len < LP_BUF ? NP_OUT : 0;
}

static int lp_close(struct np_pipe *p, uint32_t flags)
{
	struct lp_end *e = p->state;
	struct lp_chan *ch = e->ch;
	if (!ch)
		return 0;
	e->ch = NULL;
	if (ch->reader == p) {
		ch->reader = NULL;
		ch->reader_gone = true;
		ch->len = 0;
		if (ch->writer)
			host->wake(ch->writer);
	} else {
		ch->writer = NULL;
		ch->writer_done = true;
		ch->writer_aborted = (flags & NP_CLOSE_ABORT) != 0;
		if (ch->reader)
			host->wake(ch->reader);
	}
	/* Once the reader has been and gone the name is free again; a
	 * writer's bytes wait for a reader that has not come yet. */
	if (!ch->reader && !ch->writer && ch->reader_gone)
		ch->used = false;
	return 0;
}

static int lp_init(const struct np_host *h)
{
	host = h;
	return 0;
}

static struct np_plugin plugin;

NP_EXPORT const struct np_plugin *np_plugin_entry(const struct np_host *h)
{
	(void)h;
	plugin = fx_plugin("loop");
	plugin.version = "1.0";
	plugin.description = "in-process named pipes (a test fixture)";
	plugin.state_size = sizeof(struct lp_end);
	plugin.init = lp_init;
	plugin.validate = lp_validate;
	plugin.open = lp_open;
	plugin.close = lp_close;
	plugin.read = lp_read;
	plugin.write = lp_write;
	plugin.ready = lp_ready;
	return &plugin;
}
