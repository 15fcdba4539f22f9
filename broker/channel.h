/*
 * channel.h - a manifest channel bound to an open netpipe.
 *
 * ch_ resolves a channel's URI to a transport plugin and address, opens it,
 * and does every read and write a runtime asks for: quotas first (past
 * them: -EDQUOT), then the pipe. The first hard failure of a channel (a
 * writer that vanished, a digest mismatch, an unreachable peer, a reader
 * that left) is logged once, naming the channel and the cause, and kept:
 * it makes the broker's exit status non-zero.
 */
#ifndef RIFT_CHANNEL_H
#define RIFT_CHANNEL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "netpipe.h"

struct ld_registry;
struct ld_plugin;
struct mf_channel;
struct pp_pipe;

struct ch_channel {
	struct np_channel pub;       /* what the runtime sees */
	const struct mf_channel *mf;
	struct ld_plugin *plugin;
	char *address;               /* what the plugin is given */
	struct pp_pipe *pipe;        /* NULL before open and after close */
	int64_t nreads, rbytes, nwrites, wbytes;
	int failed;                  /* first hard failure, -errno, or 0 */
	bool quota_logged;
	bool closing;                /* close requested */
	bool read_blocked;           /* a read returned -EAGAIN since notify */
	void (*notify)(void *ctx, struct ch_channel *ch, uint32_t events);
	void *ctx;
	void (*closed)(void *ctx, struct ch_channel *ch);
	void *closed_ctx;
};

/* Resolve the channel's URI: Netpipe:<scheme>:<address> to that plugin,
 * an absolute path to the file plugin, ZeroVM's tcp:host:port to zmq.
 * 0, or -errno with "FILE:LINE: ..." in err. */
int ch_resolve(struct ch_channel *ch, struct ld_registry *reg,
               const struct mf_channel *mf, const char *manifest_path,
               char *err, size_t errlen);
/* The plugin's validate() on the resolved address (broker --check). */
int ch_validate(struct ch_channel *ch, const char *manifest_path, char *err,
                size_t errlen);
/* Open the pipe; notify(ctx, ch, events) runs when it may progress, and
 * once right after open. */
int ch_open(struct ch_channel *ch, void (*notify)(void *, struct ch_channel *, uint32_t),
            void *ctx, char *err, size_t errlen);

ssize_t ch_read(struct ch_channel *ch, void *buf, size_t len);
ssize_t ch_write(struct ch_channel *ch, const void *buf, size_t len);
int64_t ch_seek(struct ch_channel *ch, int64_t off, int whence);

/* Close in the background (a writer flushes and sends end-of-stream;
 * abort drops it at once). done runs once the pipe is gone. */
void ch_close(struct ch_channel *ch, bool abort, int64_t linger_ms,
              void (*done)(void *ctx, struct ch_channel *ch), void *ctx);
void ch_free(struct ch_channel *ch);

#endif
