/*
 * pipe.h - an open netpipe: the broker's side of one plugin pipe.
 *
 * pp_ wraps the plugin's ops with the ABI's defaults for optional ops,
 * keeps the pipe's watched fds and timer on the loop, and tells the pipe's
 * owner (a channel, a client handle) whenever the pipe may have progressed:
 * the owner then asks pp_ready() and calls ops until they return -EAGAIN.
 */
#ifndef RIFT_PIPE_H
#define RIFT_PIPE_H

#include <stdint.h>
#include <sys/types.h>

#include "netpipe.h"

struct ev_loop;
struct ld_plugin;
struct pp_pipe;

typedef void (*pp_notify_fn)(void *owner, struct pp_pipe *pipe);
typedef void (*pp_closed_fn)(void *ctx, struct pp_pipe *pipe, int rc);

/* Open address with plugin. On failure returns -errno with a message in
 * err ("<scheme>: <plugin's last_error or strerror>"). */
int pp_open(struct ld_plugin *plugin, const char *address, uint32_t mode,
            uint32_t type, uint32_t etag, const char *label,
            pp_notify_fn notify, void *owner, struct pp_pipe **out,
            char *err, size_t errlen);

ssize_t pp_read(struct pp_pipe *p, void *buf, size_t len);
ssize_t pp_write(struct pp_pipe *p, const void *buf, size_t len);
int64_t pp_seek(struct pp_pipe *p, int64_t off, int whence);
int64_t pp_tell(struct pp_pipe *p);
int pp_truncate(struct pp_pipe *p, int64_t len);
uint32_t pp_ready(struct pp_pipe *p);
int pp_ctl(struct pp_pipe *p, int op, void *arg);
/* The plugin's message for the last failure, or strerror(-rc). */
const char *pp_error(struct pp_pipe *p, int rc);
const char *pp_label(const struct pp_pipe *p);
struct ld_plugin *pp_plugin(const struct pp_pipe *p);

/* Hold the pipe's fd watches off the loop, and put them back. An owner
 * pauses a readable pipe it is not reading, so a level-triggered fd does
 * not wake the loop again and again; its next read resumes. Timers and
 * wakes still arrive. */
void pp_pause(struct pp_pipe *p);
void pp_resume(struct pp_pipe *p);

/* Close once: 0 when done, -EAGAIN while a clean close is still flushing
 * (call again after the next notify), other -errno on failure. After
 * anything but -EAGAIN, pp_free() the pipe. */
int pp_close(struct pp_pipe *p, uint32_t flags);
void pp_free(struct pp_pipe *p);

/* Close in the background: a clean close that may linger up to linger_ms,
 * then aborts. done(ctx, pipe, rc) runs when it is over (rc 0, or -errno,
 * -ETIMEDOUT on an abort), after which the pipe is freed. */
void pp_close_async(struct pp_pipe *p, int64_t linger_ms, pp_closed_fn done,
                    void *ctx);

/* Wait on the loop until the pipe says one of events (or HUP/ERR), or the
 * deadline (ev_now_ms clock, -1 none) passes. 0 or -ETIMEDOUT. For the
 * blocking client library. */
int pp_wait(struct pp_pipe *p, uint32_t events, int64_t deadline);

/* np_host services (loader.c puts them in every plugin's host). */
int pp_host_watch_fd(struct np_pipe *pipe, int fd, uint32_t events);
void pp_host_wake(struct np_pipe *pipe);
int pp_host_set_timer(struct np_pipe *pipe, int64_t delay_ms);

#endif
