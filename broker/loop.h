/*
 * loop.h - the single-threaded epoll event loop every pipe runs on.
 *
 * One loop per process (the broker's, or libnetpipe's). It watches fds
 * (level-triggered), keeps one-shot timers, and runs "posts": callbacks
 * queued from any thread (the only thread-safe entry point, used for
 * host->wake()).
 */
#ifndef RIFT_LOOP_H
#define RIFT_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct ev_loop;

typedef void (*ev_fd_cb)(void *ctx, int fd, uint32_t events);
typedef void (*ev_cb)(void *ctx);

/* A one-shot timer embedded in its owner; zero-initialise it. */
struct ev_timer {
	int64_t deadline;  /* monotonic ms */
	ev_cb cb;
	void *ctx;
	int slot;          /* index in the loop's timer list + 1, 0 if idle */
};

struct ev_loop *ev_new(void);
void ev_free(struct ev_loop *loop);

/* Monotonic milliseconds. */
int64_t ev_now_ms(void);

/* Watch fd for events (NP_IN | NP_OUT bits); events == 0 removes the watch.
 * Replaces the callback of an existing watch. 0 or -errno. */
int ev_watch(struct ev_loop *loop, int fd, uint32_t events, ev_fd_cb cb,
             void *ctx);

/* Remove fd's watch only if ctx still owns it (the number may have been
 * closed and reused by someone else). */
int ev_unwatch(struct ev_loop *loop, int fd, void *ctx);

/* Arm t to call cb(ctx) once at deadline (ms, ev_now_ms clock); rearming
 * replaces the deadline. ev_timer_cancel is safe on an idle timer. */
void ev_timer_arm(struct ev_loop *loop, struct ev_timer *t, int64_t deadline,
                  ev_cb cb, void *ctx);
void ev_timer_cancel(struct ev_loop *loop, struct ev_timer *t);

/* Queue cb(ctx) to run on the loop thread. Thread-safe. Each (cb, ctx)
 * pair is queued at most once until it runs. */
void ev_post(struct ev_loop *loop, ev_cb cb, void *ctx);
/* Drop queued posts for ctx (before freeing it). Thread-safe. */
void ev_unpost(struct ev_loop *loop, void *ctx);

/* Wait for at most timeout_ms (-1: no limit, 0: poll) and dispatch what is
 * ready. Returns the number of callbacks run, or -errno. */
int ev_run_once(struct ev_loop *loop, int timeout_ms);

/* Ask ev_run_once callers to stop; ev_stopped tells them. */
void ev_stop(struct ev_loop *loop);
bool ev_stopped(const struct ev_loop *loop);

#endif
