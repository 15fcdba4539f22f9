#include "loop.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "netpipe.h"

struct ev_watch {
	ev_fd_cb cb;
	void *ctx;
	uint32_t events;
	uint32_t gen;      /* bumped on every add, so stale events are dropped */
};

struct ev_post_item {
	ev_cb cb;
	void *ctx;
};

struct ev_loop {
	int epfd;
	int wakefd;
	bool stopped;
	struct ev_watch *watches;  /* indexed by fd */
	int nwatches;
	struct ev_timer **timers;  /* unordered; small in practice */
	int ntimers, captimers;
	pthread_mutex_t lock;      /* guards posts */
	struct ev_post_item *posts;
	int nposts, capposts;
	struct ev_post_item *running; /* the batch being run, for ev_unpost */
	int nrunning;
};

int64_t ev_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct ev_loop *ev_new(void)
{
	struct ev_loop *l = calloc(1, sizeof *l);
	if (!l)
		return NULL;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	l->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->epfd < 0 || l->wakefd < 0)
		goto fail;
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wakefd, &ev) < 0)
		goto fail;
	pthread_mutex_init(&l->lock, NULL);
	return l;
fail:
	if (l->epfd >= 0)
		close(l->epfd);
	if (l->wakefd >= 0)
		close(l->wakefd);
	free(l);
	return NULL;
}

void ev_free(struct ev_loop *l)
{
	if (!l)
		return;
	close(l->epfd);
	close(l->wakefd);
	pthread_mutex_destroy(&l->lock);
	free(l->watches);
	free(l->timers);
	free(l->posts);
	free(l);
}

static uint32_t to_epoll(uint32_t events)
{
	return ((events & NP_IN) ? EPOLLIN : 0) | ((events & NP_OUT) ? EPOLLOUT : 0);
}

static uint32_t from_epoll(uint32_t e)
{
	uint32_t r = 0;
	if (e & EPOLLIN)
		r |= NP_IN;
	if (e & EPOLLOUT)
		r |= NP_OUT;
	if (e & (EPOLLHUP | EPOLLRDHUP))
		r |= NP_HUP | NP_IN;
	if (e & EPOLLERR)
		r |= NP_ERR | NP_IN | NP_OUT;
	return r;
}

int ev_watch(struct ev_loop *l, int fd, uint32_t events, ev_fd_cb cb, void *ctx)
{
	if (fd < 0)
		return -EBADF;
	if (fd >= l->nwatches) {
		if (events == 0)
			return 0;
		int n = l->nwatches ? l->nwatches : 64;
		while (n <= fd)
			n *= 2;
		struct ev_watch *w = realloc(l->watches, (size_t)n * sizeof *w);
		if (!w)
			return -ENOMEM;
		memset(w + l->nwatches, 0, (size_t)(n - l->nwatches) * sizeof *w);
		l->watches = w;
		l->nwatches = n;
	}
	struct ev_watch *w = &l->watches[fd];
	if (events == 0) {
		if (w->cb) {
			epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
			w->cb = NULL;
			w->ctx = NULL;
			w->events = 0;
		}
		return 0;
	}
	int op = w->cb ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (op == EPOLL_CTL_ADD)
		w->gen++;
	struct epoll_event ev = {
		.events = to_epoll(events),
		.data.u64 = ((uint64_t)w->gen << 32) | (uint32_t)fd,
	};
	if (epoll_ctl(l->epfd, op, fd, &ev) < 0) {
		/* The fd was closed and reused behind our back: start over. */
		if (errno == ENOENT && op == EPOLL_CTL_MOD &&
		    epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) == 0)
			goto ok;
		if (errno == EEXIST && op == EPOLL_CTL_ADD &&
		    epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) == 0)
			goto ok;
		return -errno;
	}
ok:
	w->cb = cb;
	w->ctx = ctx;
	w->events = events;
	return 0;
}

int ev_unwatch(struct ev_loop *l, int fd, void *ctx)
{
	if (fd < 0 || fd >= l->nwatches || l->watches[fd].ctx != ctx)
		return 0; /* not ours (any more): the fd number was reused */
	return ev_watch(l, fd, 0, NULL, NULL);
}

void ev_timer_arm(struct ev_loop *l, struct ev_timer *t, int64_t deadline,
                  ev_cb cb, void *ctx)
{
	t->deadline = deadline;
	t->cb = cb;
	t->ctx = ctx;
	if (t->slot)
		return;
	if (l->ntimers == l->captimers) {
		int n = l->captimers ? l->captimers * 2 : 16;
		struct ev_timer **v = realloc(l->timers, (size_t)n * sizeof *v);
		if (!v)
			abort(); /* a timer the caller relies on cannot be dropped */
		l->timers = v;
		l->captimers = n;
	}
	l->timers[l->ntimers++] = t;
	t->slot = l->ntimers;
}

void ev_timer_cancel(struct ev_loop *l, struct ev_timer *t)
{
	if (!t->slot)
		return;
	int i = t->slot - 1;
	l->timers[i] = l->timers[--l->ntimers];
	if (i < l->ntimers)
		l->timers[i]->slot = i + 1;
	t->slot = 0;
}

void ev_post(struct ev_loop *l, ev_cb cb, void *ctx)
{
	pthread_mutex_lock(&l->lock);
	for (int i = 0; i < l->nposts; i++) {
		if (l->posts[i].cb == cb && l->posts[i].ctx == ctx) {
			pthread_mutex_unlock(&l->lock);
			return;
		}
	}
	if (l->nposts == l->capposts) {
		int n = l->capposts ? l->capposts * 2 : 16;
		struct ev_post_item *v = realloc(l->posts, (size_t)n * sizeof *v);
		if (!v) {
			pthread_mutex_unlock(&l->lock);
			abort();
		}
		l->posts = v;
		l->capposts = n;
	}
	l->posts[l->nposts++] = (struct ev_post_item){cb, ctx};
	bool first = l->nposts == 1;
	pthread_mutex_unlock(&l->lock);
	if (first) {
		uint64_t one = 1;
		ssize_t w = write(l->wakefd, &one, sizeof one);
		(void)w;
	}
}

void ev_unpost(struct ev_loop *l, void *ctx)
{
	pthread_mutex_lock(&l->lock);
	for (int i = 0; i < l->nposts;) {
		if (l->posts[i].ctx == ctx)
			l->posts[i] = l->posts[--l->nposts];
		else
			i++;
	}
	for (int i = 0; i < l->nrunning; i++)
		if (l->running[i].ctx == ctx)
			l->running[i].cb = NULL;
	pthread_mutex_unlock(&l->lock);
}

static int run_posts(struct ev_loop *l)
{
	uint64_t v;
	ssize_t r = read(l->wakefd, &v, sizeof v);
	(void)r;
	pthread_mutex_lock(&l->lock);
	struct ev_post_item *batch = l->posts;
	int n = l->nposts;
	l->posts = NULL;
	l->nposts = l->capposts = 0;
	l->running = batch;
	l->nrunning = n;
	pthread_mutex_unlock(&l->lock);
	int ran = 0;
	for (int i = 0; i < n; i++) {
		pthread_mutex_lock(&l->lock);
		struct ev_post_item it = batch[i];
		pthread_mutex_unlock(&l->lock);
		if (it.cb) {
			it.cb(it.ctx);
			ran++;
		}
	}
	pthread_mutex_lock(&l->lock);
	l->running = NULL;
	l->nrunning = 0;
	pthread_mutex_unlock(&l->lock);
	free(batch);
	return ran;
}

static int run_timers(struct ev_loop *l)
{
	int64_t now = ev_now_ms();
	int ran = 0;
	/* A callback may arm or cancel timers: rescan from the start after
	 * each one, bounded by the number of timers due now. */
	for (int guard = l->ntimers; guard > 0; guard--) {
		struct ev_timer *due = NULL;
		for (int i = 0; i < l->ntimers; i++)
			if (l->timers[i]->deadline <= now &&
			    (!due || l->timers[i]->deadline < due->deadline))
				due = l->timers[i];
		if (!due)
			break;
		ev_timer_cancel(l, due);
		due->cb(due->ctx);
		ran++;
	}
	return ran;
}

int ev_run_once(struct ev_loop *l, int timeout_ms)
{
	struct epoll_event evs[64];
	if (l->ntimers) {
		int64_t next = INT64_MAX;
		for (int i = 0; i < l->ntimers; i++)
			if (l->timers[i]->deadline < next)
				next = l->timers[i]->deadline;
		int64_t wait = next - ev_now_ms();
		if (wait < 0)
			wait = 0;
		if (timeout_ms < 0 || wait < timeout_ms)
			timeout_ms = wait > 60000 ? 60000 : (int)wait;
	}
	int n = epoll_wait(l->epfd, evs, 64, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	int ran = 0;
	for (int i = 0; i < n; i++) {
		if (evs[i].data.u64 == UINT64_MAX) {
			ran += run_posts(l);
			continue;
		}
		int fd = (int)(uint32_t)evs[i].data.u64;
		uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
		if (fd >= l->nwatches)
			continue;
		struct ev_watch *w = &l->watches[fd];
		if (!w->cb || w->gen != gen)
			continue; /* removed or replaced during this batch */
		w->cb(w->ctx, fd, from_epoll(evs[i].events));
		ran++;
	}
	if (l->ntimers)
		ran += run_timers(l);
	return ran;
}

void ev_stop(struct ev_loop *l)
{
	l->stopped = true;
}

bool ev_stopped(const struct ev_loop *l)
{
	return l->stopped;
}
