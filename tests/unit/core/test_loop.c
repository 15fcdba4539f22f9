/*
 * test_loop.c - the broker's epoll loop (broker/loop.c): one-shot timers,
 * fd watches and thread-safe posts.
 *
 * Every wait is bounded: ev_run_once gets a finite timeout and every
 * "until" loop has a deadline. Nothing sleeps to synchronise.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <unistd.h>

#include "loop.h"
#include "netpipe.h"

static struct ev_loop *loop;

static void setup(void)
{
	loop = ev_new();
	ck_assert_ptr_nonnull(loop);
}

static void teardown(void)
{
	ev_free(loop);
	loop = NULL;
}

/* ---- a log of which callback ran, in order ---- */

#define MAXLOG 64
static int logged[MAXLOG];
static int64_t logged_at[MAXLOG];
static int nlogged;

static void log_id(int id)
{
	ck_assert_int_lt(nlogged, MAXLOG);
	logged_at[nlogged] = ev_now_ms();
	logged[nlogged++] = id;
}

/* Run the loop until want callbacks have been logged or limit_ms passed. */
static void run_until_logged(int want, int64_t limit_ms)
{
	int64_t end = ev_now_ms() + limit_ms;
	while (nlogged < want && ev_now_ms() < end)
		ck_assert_int_ge(ev_run_once(loop, 100), 0);
}

/* ---- timers ---- */

struct tctx {
	int id;
	struct ev_timer *other;   /* cancelled by this timer's callback */
};

static void on_timer(void *ctx)
{
	struct tctx *c = ctx;
	log_id(c->id);
	if (c->other)
		ev_timer_cancel(loop, c->other);
}

START_TEST(timers_fire_in_deadline_order)
{
	struct ev_timer t[4] = {{0}};
	struct tctx c[4] = {{1, NULL}, {2, NULL}, {3, NULL}, {4, NULL}};
	int64_t now = ev_now_ms();
	int64_t when[4] = {now + 80, now + 20, now + 60, now + 40};
	nlogged = 0;
	for (int i = 0; i < 4; i++)
		ev_timer_arm(loop, &t[i], when[i], on_timer, &c[i]);
	run_until_logged(4, 5000);
	ck_assert_int_eq(nlogged, 4);
	ck_assert_int_eq(logged[0], 2);
	ck_assert_int_eq(logged[1], 4);
	ck_assert_int_eq(logged[2], 3);
	ck_assert_int_eq(logged[3], 1);
	for (int i = 0; i < 4; i++)
		ck_assert_int_ge(logged_at[i], when[logged[i] - 1]);
	/* One-shot: nothing fires again. */
	ck_assert_int_eq(ev_run_once(loop, 30), 0);
	ck_assert_int_eq(nlogged, 4);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(t[i].slot, 0);
}
END_TEST

START_TEST(timers_due_in_the_same_run_fire_in_deadline_order)
{
	struct ev_timer t[6] = {{0}};
	struct tctx c[6];
	int64_t now = ev_now_ms();
	/* Armed out of order; every deadline has passed. */
	int64_t ago[6] = {30, 50, 10, 60, 20, 40};
	nlogged = 0;
	for (int i = 0; i < 6; i++) {
		c[i] = (struct tctx){(int)ago[i], NULL};
		ev_timer_arm(loop, &t[i], now - ago[i], on_timer, &c[i]);
	}
	ck_assert_int_eq(ev_run_once(loop, 0), 6);
	ck_assert_int_eq(nlogged, 6);
	for (int i = 0; i < 6; i++)
		ck_assert_int_eq(logged[i], 60 - 10 * i);
}
END_TEST

START_TEST(timer_cancel_stops_it_firing)
{
	struct ev_timer t[3] = {{0}};
	struct tctx c[3] = {{1, NULL}, {2, NULL}, {3, NULL}};
	int64_t now = ev_now_ms();
	nlogged = 0;
	for (int i = 0; i < 3; i++)
		ev_timer_arm(loop, &t[i], now + 10 * (i + 1), on_timer, &c[i]);
	ev_timer_cancel(loop, &t[1]);
	ck_assert_int_eq(t[1].slot, 0);
	run_until_logged(2, 5000);
	ck_assert_int_eq(ev_run_once(loop, 60), 0);
	ck_assert_int_eq(nlogged, 2);
	ck_assert_int_eq(logged[0], 1);
	ck_assert_int_eq(logged[1], 3);
}
END_TEST

START_TEST(timer_cancel_on_an_idle_timer_is_harmless)
{
	struct ev_timer idle = {0}, live = {0};
	struct tctx c = {7, NULL};
	ev_timer_cancel(loop, &idle);
	ev_timer_arm(loop, &live, ev_now_ms() - 1, on_timer, &c);
	ev_timer_cancel(loop, &idle);
	ev_timer_cancel(loop, &live);
	ev_timer_cancel(loop, &live);
	nlogged = 0;
	ck_assert_int_eq(ev_run_once(loop, 20), 0);
	ck_assert_int_eq(nlogged, 0);
}
END_TEST

START_TEST(timer_cancelled_by_an_earlier_timer_in_the_same_run_does_not_fire)
{
	struct ev_timer a = {0}, b = {0};
	struct tctx ca = {1, &b}, cb = {2, &a};
	int64_t now = ev_now_ms();
	nlogged = 0;
	ev_timer_arm(loop, &b, now - 5, on_timer, &cb);
	ev_timer_arm(loop, &a, now - 10, on_timer, &ca);
	ck_assert_int_eq(ev_run_once(loop, 0), 1);
	ck_assert_int_eq(nlogged, 1);
	ck_assert_int_eq(logged[0], 1);
	ck_assert_int_eq(ev_run_once(loop, 20), 0);
	ck_assert_int_eq(nlogged, 1);
}
END_TEST

START_TEST(timer_rearm_to_sooner_replaces_the_deadline)
{
	struct ev_timer t = {0};
	struct tctx c = {1, NULL};
	nlogged = 0;
	ev_timer_arm(loop, &t, ev_now_ms() + 600000, on_timer, &c);
	int64_t soon = ev_now_ms() + 20;
	ev_timer_arm(loop, &t, soon, on_timer, &c);
	int64_t start = ev_now_ms();
	/* One bounded wait is enough: the loop must shorten its wait to the
	 * new deadline. */
	ck_assert_int_eq(ev_run_once(loop, 3000), 1);
	ck_assert_int_lt(ev_now_ms() - start, 2000);
	ck_assert_int_eq(nlogged, 1);
	ck_assert_int_ge(logged_at[0], soon);
	ck_assert_int_eq(ev_run_once(loop, 30), 0);
	ck_assert_int_eq(nlogged, 1);
}
END_TEST

START_TEST(timer_rearm_to_later_replaces_the_deadline)
{
	struct ev_timer t = {0}, other = {0};
	struct tctx c = {1, NULL}, co = {2, NULL};
	nlogged = 0;
	ev_timer_arm(loop, &t, ev_now_ms() + 10, on_timer, &c);
	ev_timer_arm(loop, &t, ev_now_ms() + 600000, on_timer, &c);
	ev_timer_arm(loop, &other, ev_now_ms() + 60, on_timer, &co);
	run_until_logged(1, 5000);
	ck_assert_int_eq(ev_run_once(loop, 30), 0);
	ck_assert_int_eq(nlogged, 1);
	ck_assert_int_eq(logged[0], 2);
	ck_assert_int_ne(t.slot, 0);
	ev_timer_cancel(loop, &t);
}
END_TEST

START_TEST(timer_rearm_replaces_the_callback)
{
	struct ev_timer t = {0};
	struct tctx c1 = {1, NULL}, c2 = {2, NULL};
	nlogged = 0;
	ev_timer_arm(loop, &t, ev_now_ms() - 1, on_timer, &c1);
	ev_timer_arm(loop, &t, ev_now_ms() - 1, on_timer, &c2);
	ck_assert_int_eq(ev_run_once(loop, 0), 1);
	ck_assert_int_eq(nlogged, 1);
	ck_assert_int_eq(logged[0], 2);
}
END_TEST

struct rearm {
	struct ev_timer t;
	int left;
};

static void on_rearm(void *ctx)
{
	struct rearm *r = ctx;
	log_id(r->left);
	if (--r->left > 0)
		ev_timer_arm(loop, &r->t, ev_now_ms() + 5, on_rearm, r);
}

START_TEST(timer_rearmed_from_its_own_callback_fires_again)
{
	struct rearm r = {.left = 3};
	nlogged = 0;
	ev_timer_arm(loop, &r.t, ev_now_ms() + 5, on_rearm, &r);
	run_until_logged(3, 5000);
	ck_assert_int_eq(nlogged, 3);
	ck_assert_int_eq(logged[0], 3);
	ck_assert_int_eq(logged[2], 1);
	ck_assert_int_eq(r.t.slot, 0);
	ck_assert_int_eq(ev_run_once(loop, 30), 0);
	ck_assert_int_eq(nlogged, 3);
}
END_TEST

START_TEST(run_once_waits_no_longer_than_the_next_timer)
{
	struct ev_timer t = {0};
	struct tctx c = {1, NULL};
	nlogged = 0;
	int64_t start = ev_now_ms();
	ev_timer_arm(loop, &t, start + 30, on_timer, &c);
	ck_assert_int_eq(ev_run_once(loop, 10000), 1);
	ck_assert_int_lt(ev_now_ms() - start, 5000);
	ck_assert_int_eq(nlogged, 1);
}
END_TEST

/* ---- fd watches ---- */

struct wctx {
	int id;
	int fd;
	uint32_t events;
	int calls;
	struct wctx *victim;      /* whose watch this callback removes */
	int replace_with;         /* >= 0: an fd to dup2 over the victim's */
	struct wctx *newcomer;    /* the watch put on the reused fd number */
};

static void on_fd(void *ctx, int fd, uint32_t events)
{
	struct wctx *c = ctx;
	ck_assert_int_eq(fd, c->fd);
	c->events = events;
	c->calls++;
	log_id(c->id);
	struct wctx *v = c->victim;
	if (!v)
		return;
	/* Only the first of the pair acts; the other must not run. */
	c->victim = NULL;
	v->victim = NULL;
	ck_assert_int_eq(ev_watch(loop, v->fd, 0, NULL, NULL), 0);
	if (c->replace_with >= 0) {
		/* The victim's fd number now names a new, empty pipe. */
		ck_assert_int_eq(dup2(c->replace_with, v->fd), v->fd);
		c->newcomer->fd = v->fd;
		ck_assert_int_eq(ev_watch(loop, v->fd, NP_IN, on_fd, c->newcomer), 0);
	}
}

static void make_pipe(int p[2])
{
	ck_assert_int_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
}

START_TEST(watch_calls_back_when_a_pipe_becomes_readable)
{
	int p[2];
	make_pipe(p);
	struct wctx c = {.id = 1, .fd = p[0], .replace_with = -1};
	nlogged = 0;
	ck_assert_int_eq(ev_watch(loop, p[0], NP_IN, on_fd, &c), 0);
	ck_assert_int_eq(ev_run_once(loop, 20), 0);
	ck_assert_int_eq(c.calls, 0);
	ck_assert_int_eq(write(p[1], "x", 1), 1);
	ck_assert_int_eq(ev_run_once(loop, 2000), 1);
	ck_assert_int_eq(c.calls, 1);
	ck_assert(c.events & NP_IN);
	/* Level-triggered: still readable, so it is called again. */
	ck_assert_int_eq(ev_run_once(loop, 2000), 1);
	ck_assert_int_eq(c.calls, 2);
	close(p[0]);
	close(p[1]);
}
END_TEST

START_TEST(watch_stops_after_watching_no_events)
{
	int p[2];
	make_pipe(p);
	struct wctx c = {.id = 1, .fd = p[0], .replace_with = -1};
	nlogged = 0;
	ck_assert_int_eq(ev_watch(loop, p[0], NP_IN, on_fd, &c), 0);
	ck_assert_int_eq(write(p[1], "x", 1), 1);
	ck_assert_int_eq(ev_run_once(loop, 2000), 1);
	ck_assert_int_eq(c.calls, 1);
	ck_assert_int_eq(ev_watch(loop, p[0], 0, NULL, NULL), 0);
	/* The byte is still unread: a live watch would fire. */
	ck_assert_int_eq(ev_run_once(loop, 50), 0);
	ck_assert_int_eq(c.calls, 1);
	/* Removing twice, or an fd never watched, is harmless. */
	ck_assert_int_eq(ev_watch(loop, p[0], 0, NULL, NULL), 0);
	ck_assert_int_eq(ev_watch(loop, p[1], 0, NULL, NULL), 0);
	ck_assert_int_eq(ev_watch(loop, 100000, 0, NULL, NULL), 0);
	ck_assert_int_eq(ev_watch(loop, -1, NP_IN, on_fd, &c), -EBADF);
	/* And it can be watched again. */
	ck_assert_int_eq(ev_watch(loop, p[0], NP_IN, on_fd, &c), 0);
	ck_assert_int_eq(ev_run_once(loop, 2000), 1);
	ck_assert_int_eq(c.calls, 2);
	close(p[0]);
	close(p[1]);
}
END_TEST

START_TEST(watch_replaces_the_callback_of_an_existing_watch)
{
	int p[2];
	make_pipe(p);
	struct wctx c1 = {.id = 1, .fd = p[0], .replace_with = -1};
	struct wctx c2 = {.id = 2, .fd = p[0], .replace_with = -1};
	nlogged = 0;
	ck_assert_int_eq(ev_watch(loop, p[0], NP_IN, on_fd, &c1), 0);
	ck_assert_int_eq(ev_watch(loop, p[0], NP_IN, on_fd, &c2), 0);
	ck_assert_int_eq(write(p[1], "x", 1), 1);
	ck_assert_int_eq(ev_run_once(loop, 2000), 1);
	ck_assert_int_eq(c1.calls, 0);
	ck_assert_int_eq(c2.calls, 1);
	close(p[0]);
	close(p[1]);
}
END_TEST

START_TEST(watch_reports_out_and_hup)
{
	int p[2];
	make_pipe(p);
	struct wctx w = {.id = 1, .fd = p[1], .replace_with = -1};
	struct wctx r = {.id = 2, .fd = p[0], .replace_with = -1};
	nlogged = 0;
	ck_assert_int_eq(ev_watch(loop, p[1], NP_OUT, on_fd, &w), 0);
	ck_assert_int_eq(ev_run_once(loop, 2000), 1);
	ck_assert(w.events & NP_OUT);
	ck_assert_int_eq(ev_watch(loop, p[1], 0, NULL, NULL), 0);
	close(p[1]);
	ck_assert_int_eq(ev_watch(loop, p[0], NP_IN, on_fd, &r), 0);
	ck_assert_int_eq(ev_run_once(loop, 2000), 1);
	ck_assert_uint_eq(r.events & (NP_IN | NP_HUP), NP_IN | NP_HUP);
	ck_assert_int_eq(ev_watch(loop, p[0], 0, NULL, NULL), 0);
	close(p[0]);
}
END_TEST

START_TEST(watch_removed_by_another_callback_in_the_same_batch_is_not_called)
{
	int a[2], b[2];
	make_pipe(a);
	make_pipe(b);
	struct wctx ca = {.id = 1, .fd = a[0], .replace_with = -1};
	struct wctx cb = {.id = 2, .fd = b[0], .replace_with = -1};
	ca.victim = &cb;
	cb.victim = &ca;
	nlogged = 0;
	ck_assert_int_eq(ev_watch(loop, a[0], NP_IN, on_fd, &ca), 0);
	ck_assert_int_eq(ev_watch(loop, b[0], NP_IN, on_fd, &cb), 0);
	/* Both readable before the wait: one epoll_wait returns both. */
	ck_assert_int_eq(write(a[1], "x", 1), 1);
	ck_assert_int_eq(write(b[1], "x", 1), 1);
	ck_assert_int_eq(ev_run_once(loop, 2000), 1);
	ck_assert_int_eq(ca.calls + cb.calls, 1);
	/* The survivor keeps firing (level-triggered); the victim never. */
	struct wctx *alive = ca.calls ? &ca : &cb, *dead = ca.calls ? &cb : &ca;
	ck_assert_int_eq(ev_run_once(loop, 2000), 1);
	ck_assert_int_eq(alive->calls, 2);
	ck_assert_int_eq(dead->calls, 0);
	close(a[0]);
	close(a[1]);
	close(b[0]);
	close(b[1]);
}
END_TEST

START_TEST(stale_event_for_a_reused_fd_number_is_dropped)
{
	int a[2], b[2], fresh[2];
	make_pipe(a);
	make_pipe(b);
	make_pipe(fresh);   /* empty: never readable */
	struct wctx na = {.id = 3, .replace_with = -1};
	struct wctx nb = {.id = 4, .replace_with = -1};
	struct wctx ca = {.id = 1, .fd = a[0], .replace_with = fresh[0], .newcomer = &na};
	struct wctx cb = {.id = 2, .fd = b[0], .replace_with = fresh[0], .newcomer = &nb};
	ca.victim = &cb;
	cb.victim = &ca;
	nlogged = 0;
	ck_assert_int_eq(ev_watch(loop, a[0], NP_IN, on_fd, &ca), 0);
	ck_assert_int_eq(ev_watch(loop, b[0], NP_IN, on_fd, &cb), 0);
	ck_assert_int_eq(write(a[1], "x", 1), 1);
	ck_assert_int_eq(write(b[1], "x", 1), 1);
	/* The first callback moves the other's fd number to the empty pipe
	 * and watches it: the event harvested for the old pipe must not
	 * reach the new watch. */
	ck_assert_int_eq(ev_run_once(loop, 2000), 1);
	ck_assert_int_eq(ca.calls + cb.calls, 1);
	ck_assert_int_eq(na.calls + nb.calls, 0);
	ck_assert_int_eq(ev_run_once(loop, 30), 1); /* only the survivor */
	ck_assert_int_eq(na.calls + nb.calls, 0);
	/* The new watch works once its pipe has data. */
	struct wctx *survivor = ca.calls ? &ca : &cb;
	struct wctx *newcomer = ca.calls ? &na : &nb;
	ck_assert_int_eq(ev_watch(loop, survivor->fd, 0, NULL, NULL), 0);
	ck_assert_int_eq(write(fresh[1], "y", 1), 1);
	int64_t end = ev_now_ms() + 5000;
	while (newcomer->calls == 0 && ev_now_ms() < end)
		ck_assert_int_ge(ev_run_once(loop, 100), 0);
	ck_assert_int_ge(newcomer->calls, 1);
	ck_assert(newcomer->events & NP_IN);
	ev_watch(loop, a[0], 0, NULL, NULL);
	ev_watch(loop, b[0], 0, NULL, NULL);
	close(a[0]);
	close(a[1]);
	close(b[0]);
	close(b[1]);
	close(fresh[0]);
	close(fresh[1]);
}
END_TEST

/* ---- posts ---- */

static pthread_t loop_thread;
static atomic_int post_calls[4];
static atomic_int off_thread_calls;

static void on_post(void *ctx)
{
	int id = (int)(intptr_t)ctx;
	if (!pthread_equal(pthread_self(), loop_thread))
		atomic_fetch_add(&off_thread_calls, 1);
	atomic_fetch_add(&post_calls[id], 1);
	log_id(id);
}

static void reset_posts(void)
{
	loop_thread = pthread_self();
	for (int i = 0; i < 4; i++)
		atomic_store(&post_calls[i], 0);
	atomic_store(&off_thread_calls, 0);
	nlogged = 0;
}

/* The state letter of thread tid in /proc, or 0. */
static char thread_state(pid_t tid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : 0;
}

struct poster {
	struct ev_loop *loop;
	pid_t waiter;       /* wait for this thread to block first, or 0 */
	int times;
	intptr_t id;
};

static void *post_thread(void *arg)
{
	struct poster *ps = arg;
	if (ps->waiter) {
		/* Best effort, bounded: post once the loop thread sleeps in
		 * epoll_wait, so the post has to wake it. */
		for (int i = 0; i < 2000 && thread_state(ps->waiter) != 'S'; i++)
			poll(NULL, 0, 1);
	}
	for (int i = 0; i < ps->times; i++)
		ev_post(ps->loop, on_post, (void *)ps->id);
	return NULL;
}

START_TEST(post_from_another_thread_wakes_a_blocked_run_once)
{
	reset_posts();
	pthread_t th;
	struct poster ps = {loop, gettid(), 1, 1};
	ck_assert_int_eq(pthread_create(&th, NULL, post_thread, &ps), 0);
	int64_t start = ev_now_ms();
	int ran = 0;
	/* Without the post nothing would end this wait for 20 s. */
	while (atomic_load(&post_calls[1]) == 0 && ev_now_ms() - start < 20000)
		ran += ev_run_once(loop, 20000);
	int64_t took = ev_now_ms() - start;
	pthread_join(th, NULL);
	ck_assert_int_eq(atomic_load(&post_calls[1]), 1);
	ck_assert_int_eq(ran, 1);
	ck_assert_int_lt(took, 10000);
	ck_assert_int_eq(atomic_load(&off_thread_calls), 0);
	ck_assert_int_eq(ev_run_once(loop, 30), 0);
	ck_assert_int_eq(atomic_load(&post_calls[1]), 1);
}
END_TEST

START_TEST(post_twice_before_running_runs_once)
{
	reset_posts();
	pthread_t th;
	struct poster ps = {loop, 0, 2, 1};
	ck_assert_int_eq(pthread_create(&th, NULL, post_thread, &ps), 0);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_int_eq(ev_run_once(loop, 2000), 1);
	ck_assert_int_eq(atomic_load(&post_calls[1]), 1);
	ck_assert_int_eq(atomic_load(&off_thread_calls), 0);
	ck_assert_int_eq(ev_run_once(loop, 30), 0);
	ck_assert_int_eq(atomic_load(&post_calls[1]), 1);
}
END_TEST

START_TEST(post_same_callback_for_different_contexts_runs_each)
{
	reset_posts();
	ev_post(loop, on_post, (void *)1);
	ev_post(loop, on_post, (void *)2);
	ev_post(loop, on_post, (void *)1);
	ck_assert_int_eq(ev_run_once(loop, 2000), 2);
	ck_assert_int_eq(atomic_load(&post_calls[1]), 1);
	ck_assert_int_eq(atomic_load(&post_calls[2]), 1);
}
END_TEST

START_TEST(post_after_it_ran_runs_again)
{
	reset_posts();
	ev_post(loop, on_post, (void *)1);
	ck_assert_int_eq(ev_run_once(loop, 2000), 1);
	ev_post(loop, on_post, (void *)1);
	ck_assert_int_eq(ev_run_once(loop, 2000), 1);
	ck_assert_int_eq(atomic_load(&post_calls[1]), 2);
}
END_TEST

static void on_post_repost(void *ctx)
{
	on_post(ctx);
	ev_post(loop, on_post_repost, ctx);
}

START_TEST(post_from_its_own_callback_runs_on_the_next_iteration)
{
	reset_posts();
	ev_post(loop, on_post_repost, (void *)1);
	ck_assert_int_eq(ev_run_once(loop, 2000), 1);
	ck_assert_int_eq(atomic_load(&post_calls[1]), 1);
	ck_assert_int_eq(ev_run_once(loop, 2000), 1);
	ck_assert_int_eq(atomic_load(&post_calls[1]), 2);
	ev_unpost(loop, (void *)1);
	ck_assert_int_eq(ev_run_once(loop, 30), 0);
	ck_assert_int_eq(atomic_load(&post_calls[1]), 2);
}
END_TEST

START_TEST(unpost_drops_a_queued_post)
{
	reset_posts();
	ev_post(loop, on_post, (void *)1);
	ev_post(loop, on_post, (void *)2);
	ev_post(loop, on_post, (void *)3);
	ev_unpost(loop, (void *)2);
	ck_assert_int_eq(ev_run_once(loop, 2000), 2);
	ck_assert_int_eq(atomic_load(&post_calls[1]), 1);
	ck_assert_int_eq(atomic_load(&post_calls[2]), 0);
	ck_assert_int_eq(atomic_load(&post_calls[3]), 1);
	/* Unposting the only post leaves nothing to run. */
	ev_post(loop, on_post, (void *)2);
	ev_unpost(loop, (void *)2);
	ck_assert_int_eq(ev_run_once(loop, 30), 0);
	ck_assert_int_eq(atomic_load(&post_calls[2]), 0);
	/* Unposting what was never posted is harmless. */
	ev_unpost(loop, (void *)3);
}
END_TEST

static void on_post_unpost_other(void *ctx)
{
	on_post(ctx);
	ev_unpost(loop, (void *)(3 - (intptr_t)ctx));
}

START_TEST(unpost_inside_a_running_batch_drops_the_rest_of_it)
{
	reset_posts();
	ev_post(loop, on_post_unpost_other, (void *)1);
	ev_post(loop, on_post_unpost_other, (void *)2);
	ck_assert_int_eq(ev_run_once(loop, 2000), 1);
	ck_assert_int_eq(atomic_load(&post_calls[1]) + atomic_load(&post_calls[2]), 1);
	ck_assert_int_eq(ev_run_once(loop, 30), 0);
}
END_TEST

/* Many threads post while the loop runs: every post must eventually run
 * after it was made (no lost wake-up leaves one stuck in the queue). */
#define STRESS_THREADS 4
#define STRESS_POSTS 20000

static atomic_int stress_posted[STRESS_THREADS];
static int stress_seen[STRESS_THREADS];    /* loop thread only */

static void on_stress(void *ctx)
{
	int id = (int)(intptr_t)ctx;
	if (!pthread_equal(pthread_self(), loop_thread))
		atomic_fetch_add(&off_thread_calls, 1);
	stress_seen[id] = atomic_load(&stress_posted[id]);
}

static void *stress_thread(void *arg)
{
	int id = (int)(intptr_t)arg;
	for (int i = 1; i <= STRESS_POSTS; i++) {
		atomic_store(&stress_posted[id], i);
		ev_post(loop, on_stress, (void *)(intptr_t)id);
	}
	return NULL;
}

static bool stress_caught_up(void)
{
	for (int i = 0; i < STRESS_THREADS; i++)
		if (stress_seen[i] != STRESS_POSTS)
			return false;
	return true;
}

START_TEST(posts_from_many_threads_are_never_lost)
{
	reset_posts();
	pthread_t th[STRESS_THREADS];
	for (int i = 0; i < STRESS_THREADS; i++) {
		atomic_store(&stress_posted[i], 0);
		stress_seen[i] = 0;
	}
	for (int i = 0; i < STRESS_THREADS; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, stress_thread,
		                                (void *)(intptr_t)i), 0);
	/* Run while they post; a lost wake-up would leave the last posts
	 * queued with nothing to wake the loop. */
	int64_t end = ev_now_ms() + 15000;
	int joined = 0;
	while (ev_now_ms() < end && !(joined && stress_caught_up())) {
		ck_assert_int_ge(ev_run_once(loop, 1000), 0);
		if (!joined) {
			bool all = true;
			for (int i = 0; i < STRESS_THREADS; i++)
				all &= atomic_load(&stress_posted[i]) == STRESS_POSTS;
			if (all) {
				for (int i = 0; i < STRESS_THREADS; i++)
					pthread_join(th[i], NULL);
				joined = 1;
			}
		}
	}
	ck_assert(joined);
	for (int i = 0; i < STRESS_THREADS; i++)
		ck_assert_msg(stress_seen[i] == STRESS_POSTS,
		              "thread %d: last post %d never ran (saw %d)", i,
		              STRESS_POSTS, stress_seen[i]);
	ck_assert_int_eq(atomic_load(&off_thread_calls), 0);
}
END_TEST

START_TEST(stop_is_remembered)
{
	ck_assert(!ev_stopped(loop));
	ev_stop(loop);
	ck_assert(ev_stopped(loop));
}
END_TEST

static Suite *loop_suite(void)
{
	Suite *s = suite_create("loop");
	TCase *t = tcase_create("timers");
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_set_timeout(t, 20);
	tcase_add_test(t, timers_fire_in_deadline_order);
	tcase_add_test(t, timers_due_in_the_same_run_fire_in_deadline_order);
	tcase_add_test(t, timer_cancel_stops_it_firing);
	tcase_add_test(t, timer_cancel_on_an_idle_timer_is_harmless);
	tcase_add_test(t, timer_cancelled_by_an_earlier_timer_in_the_same_run_does_not_fire);
	tcase_add_test(t, timer_rearm_to_sooner_replaces_the_deadline);
	tcase_add_test(t, timer_rearm_to_later_replaces_the_deadline);
	tcase_add_test(t, timer_rearm_replaces_the_callback);
	tcase_add_test(t, timer_rearmed_from_its_own_callback_fires_again);
	tcase_add_test(t, run_once_waits_no_longer_than_the_next_timer);
	suite_add_tcase(s, t);

	TCase *w = tcase_create("watches");
	tcase_add_checked_fixture(w, setup, teardown);
	tcase_set_timeout(w, 20);
	tcase_add_test(w, watch_calls_back_when_a_pipe_becomes_readable);
	tcase_add_test(w, watch_stops_after_watching_no_events);
	tcase_add_test(w, watch_replaces_the_callback_of_an_existing_watch);
	tcase_add_test(w, watch_reports_out_and_hup);
	tcase_add_test(w, watch_removed_by_another_callback_in_the_same_batch_is_not_called);
	tcase_add_test(w, stale_event_for_a_reused_fd_number_is_dropped);
	suite_add_tcase(s, w);

	TCase *p = tcase_create("posts");
	tcase_add_checked_fixture(p, setup, teardown);
	tcase_set_timeout(p, 30);
	tcase_add_test(p, post_from_another_thread_wakes_a_blocked_run_once);
	tcase_add_test(p, post_twice_before_running_runs_once);
	tcase_add_test(p, post_same_callback_for_different_contexts_runs_each);
	tcase_add_test(p, post_after_it_ran_runs_again);
	tcase_add_test(p, post_from_its_own_callback_runs_on_the_next_iteration);
	tcase_add_test(p, unpost_drops_a_queued_post);
	tcase_add_test(p, unpost_inside_a_running_batch_drops_the_rest_of_it);
	tcase_add_test(p, posts_from_many_threads_are_never_lost);
	tcase_add_test(p, stop_is_remembered);
	suite_add_tcase(s, p);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(loop_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
