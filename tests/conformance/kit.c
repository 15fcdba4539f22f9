/*
 * kit.c - the conformance kit's stand-in for the broker: plugin loading, an
 * np_host over a small epoll loop, timed op wrappers, the test stream, and
 * child processes.
 */
#include "kit.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#else
#define ASAN_POISON_MEMORY_REGION(a, n) ((void)(a), (void)(n))
#define ASAN_UNPOISON_MEMORY_REGION(a, n) ((void)(a), (void)(n))
#endif

/* epoll data: the kind of fd in the high half, the fd in the low half. */
#define TAG_WATCH 1ull
#define TAG_WAKE  2ull
#define TAG_AUX   3ull
#define TAG(kind, fd) (((kind) << 32) | (uint32_t)(fd))

static pthread_t loop_thread;
static pthread_mutex_t viol_lock = PTHREAD_MUTEX_INITIALIZER;
static char own_tmp[256]; /* {tmp} created by this process, removed at unload */

int64_t kit_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- messages ---- */

static char *ring(void)
{
	static char bufs[8][160];
	static unsigned i;
	return bufs[i++ % 8];
}

const char *kit_err(long rc)
{
	char *b = ring();
	const char *name = rc < 0 && rc > -4096 ? strerrorname_np((int)-rc) : NULL;
	if (name)
		snprintf(b, 160, "-%s", name);
	else
		snprintf(b, 160, "%ld", rc);
	return b;
}

const char *kit_why(struct kp *p)
{
	const struct np_plugin *pl = p->kit->pl;
	const char *s = pl->last_error && p->live ? pl->last_error(&p->np) : NULL;
	char *b = ring();
	if (s && *s)
		snprintf(b, 160, " (plugin says: %s)", s);
	else
		b[0] = '\0';
	return b;
}

const char *kit_bits(uint32_t bits)
{
	char *b = ring();
	b[0] = '\0';
	if (bits & NP_IN) strcat(b, "|IN");
	if (bits & NP_OUT) strcat(b, "|OUT");
	if (bits & NP_HUP) strcat(b, "|HUP");
	if (bits & NP_ERR) strcat(b, "|ERR");
	if (bits & ~0xfu) sprintf(b + strlen(b), "|0x%x", bits & ~0xfu);
	return b[0] ? b + 1 : "0";
}

void kit_violation(struct kit *k, const char *fmt, ...)
{
	va_list ap;
	pthread_mutex_lock(&viol_lock);
	if (k->nviolations++ == 0) {
		va_start(ap, fmt);
		vsnprintf(k->violation, sizeof k->violation, fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&viol_lock);
}

void kit_warn(struct kit *k, const char *fmt, ...)
{
	va_list ap;
	if (k->warning[0])
		return;
	va_start(ap, fmt);
	vsnprintf(k->warning, sizeof k->warning, fmt, ap);
	va_end(ap);
}

/* ---- the host services ---- */

static int on_loop(struct kit *k, const char *what)
{
	if (pthread_equal(pthread_self(), loop_thread))
		return 1;
	kit_violation(k, "host->%s was called from a plugin thread: only wake() may be", what);
	return 0;
}

/* The kit pipe behind an np_pipe, if it is one of ours and open. */
static struct kp *own(struct kit *k, struct np_pipe *pipe, const char *what)
{
	struct kp *p = pipe ? pipe->broker : NULL;
	for (int i = 0; p && i < k->npipes; i++) {
		if (k->pipes[i] == p) {
			if (p->live)
				return p;
			kit_violation(k, "host->%s was called for pipe %s after close() released it",
			              what, p->label);
			return NULL;
		}
	}
	kit_violation(k, "host->%s was called with a pipe the kit never opened", what);
	return NULL;
}

static void h_log(const struct np_host *host, int level, const char *fmt, ...)
{
	struct kit *k = host->broker;
	static const char *names[] = { "error", "warn", "info", "debug" };
	va_list ap;
	if (!on_loop(k, "log"))
		return;
	if (level < NP_LOG_ERROR || level > NP_LOG_DEBUG) {
		kit_violation(k, "host->log was called with level %d, not an NP_LOG_* value", level);
		return;
	}
	if (level > (k->opts->verbose ? NP_LOG_DEBUG : NP_LOG_WARN))
		return;
	char line[1024];
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	fprintf(stderr, "[%s] %s: %s\n", k->pl && k->pl->name ? k->pl->name : "plugin",
	        names[level], line);
}

static struct kit_watch *find_watch(struct kit *k, int fd)
{
	for (int i = 0; i < k->nw; i++)
		if (k->w[i].fd == fd)
			return &k->w[i];
	return NULL;
}

static void drop_watch(struct kit *k, struct kit_watch *w)
{
	struct stat st;
	/* The plugin may have closed the fd already (epoll then forgot it) and
	 * the number may now name another file: only remove the same file. */
	if (fstat(w->fd, &st) == 0 && st.st_dev == w->dev && st.st_ino == w->ino)
		epoll_ctl(k->ep, EPOLL_CTL_DEL, w->fd, NULL);
	*w = k->w[--k->nw];
}

static int h_watch_fd(struct np_pipe *pipe, int fd, uint32_t events)
{
	struct kit *k = pipe && pipe->host ? pipe->host->broker : NULL;
	if (!k)
		return -EINVAL;
	if (!on_loop(k, "watch_fd"))
		return -EPERM;
	struct kp *p = own(k, pipe, "watch_fd");
	if (!p)
		return -EINVAL;
	if (events & ~(NP_IN | NP_OUT)) {
		kit_violation(k, "%s: host->watch_fd(fd %d, %s): events may only be NP_IN|NP_OUT",
		              p->label, fd, kit_bits(events));
		return -EINVAL;
	}
	if (fd < 0)
		return -EBADF;
	struct kit_watch *w = find_watch(k, fd);
	if (events == 0) {
		if (w)
			drop_watch(k, w);
		return 0;
	}
	struct stat st;
	if (fstat(fd, &st) != 0)
		return -errno;
	int fl = fcntl(fd, F_GETFD);
	if (fl >= 0 && !(fl & FD_CLOEXEC))
		kit_warn(k, "%s: watched fd %d is not close-on-exec: it would leak into programs "
		         "the broker starts", p->label, fd);
	struct epoll_event ev = { 0 };
	ev.events = (events & NP_IN ? EPOLLIN : 0) | (events & NP_OUT ? EPOLLOUT : 0);
	ev.data.u64 = TAG(TAG_WATCH, fd);
	if (w && w->dev == st.st_dev && w->ino == st.st_ino) {
		if (epoll_ctl(k->ep, EPOLL_CTL_MOD, fd, &ev) != 0 &&
		    (errno != ENOENT || epoll_ctl(k->ep, EPOLL_CTL_ADD, fd, &ev) != 0))
			return -errno;
	} else {
		if (w) /* a stale record: the plugin closed that fd without unwatching */
			*w = k->w[--k->nw];
		if (k->nw == KIT_MAX_WATCHES) {
			kit_violation(k, "%s: more than %d fds watched at once", p->label,
			              KIT_MAX_WATCHES);
			return -ENOSPC;
		}
		if (epoll_ctl(k->ep, EPOLL_CTL_ADD, fd, &ev) != 0 &&
		    (errno != EEXIST || epoll_ctl(k->ep, EPOLL_CTL_MOD, fd, &ev) != 0))
			return -errno;
		w = &k->w[k->nw++];
	}
	w->fd = fd;
	w->dev = st.st_dev;
	w->ino = st.st_ino;
	w->kp = p;
	w->events = events;
	return 0;
}

static void h_wake(struct np_pipe *pipe)
{
	/* Any thread: touch only atomics and the eventfd. */
	struct kp *p = pipe ? pipe->broker : NULL;
	if (!p)
		return;
	atomic_store(&p->woken, 1);
	uint64_t one = 1;
	ssize_t n = write(p->kit->evfd, &one, sizeof one);
	(void)n;
}

static int h_set_timer(struct np_pipe *pipe, int64_t delay_ms)
{
	struct kit *k = pipe && pipe->host ? pipe->host->broker : NULL;
	if (!k)
		return -EINVAL;
	if (!on_loop(k, "set_timer"))
		return -EPERM;
	struct kp *p = own(k, pipe, "set_timer");
	if (!p)
		return -EINVAL;
	p->timer = delay_ms < 0 ? -1 : kit_now() + delay_ms;
	return 0;
}

static int64_t h_now_ms(const struct np_host *host)
{
	(void)host;
	return kit_now();
}

/* ---- loading ---- */

static int fail_load(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail_load(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

int kit_load(struct kit *k, struct kit_opts *o, char *err, size_t errlen)
{
	memset(k, 0, sizeof *k);
	k->opts = o;
	k->next_n = o->n_base;
	k->start_ms = kit_now();
	loop_thread = pthread_self();

	k->ep = epoll_create1(EPOLL_CLOEXEC);
	k->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (k->ep < 0 || k->evfd < 0)
		return fail_load(err, errlen, "epoll/eventfd: %s", strerror(errno));
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = TAG(TAG_WAKE, k->evfd) };
	epoll_ctl(k->ep, EPOLL_CTL_ADD, k->evfd, &ev);

	k->host.struct_size = sizeof k->host;
	k->host.abi_major = NP_ABI_MAJOR;
	k->host.abi_minor = NP_ABI_MINOR;
	k->host.log = h_log;
	k->host.watch_fd = h_watch_fd;
	k->host.wake = h_wake;
	k->host.set_timer = h_set_timer;
	k->host.now_ms = h_now_ms;
	k->host.broker = k;

	/* dlopen searches the library path for a bare name: a plugin given as
	 * "x.so" means the file in the current directory. */
	char path[4096];
	snprintf(path, sizeof path, "%s%s", strchr(o->plugin, '/') ? "" : "./", o->plugin);
	k->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!k->dl)
		return fail_load(err, errlen, "dlopen failed: %s", dlerror());
	void *sym = dlsym(k->dl, NP_ENTRY_SYMBOL);
	if (!sym)
		return fail_load(err, errlen, "no %s symbol (export it with NP_EXPORT)",
		                 NP_ENTRY_SYMBOL);
	np_entry_fn entry;
	memcpy(&entry, &sym, sizeof entry);
	const struct np_plugin *pl = entry(&k->host);
	if (!pl)
		return fail_load(err, errlen, "%s returned NULL", NP_ENTRY_SYMBOL);
	if (pl->struct_size < NP_PLUGIN_SIZE_1_0)
		return fail_load(err, errlen, "struct_size %u is smaller than the 1.0 np_plugin (%zu)",
		                 pl->struct_size, (size_t)NP_PLUGIN_SIZE_1_0);
	if (pl->magic != NP_MAGIC)
		return fail_load(err, errlen, "magic is 0x%08x, expected NP_MAGIC (0x%08x)",
		                 pl->magic, NP_MAGIC);
	if (pl->abi_major != NP_ABI_MAJOR)
		return fail_load(err, errlen, "abi_major is %u, the kit speaks %d", pl->abi_major,
		                 NP_ABI_MAJOR);
	if (pl->abi_minor > NP_ABI_MINOR)
		return fail_load(err, errlen, "abi_minor %u is newer than the kit's %d",
		                 pl->abi_minor, NP_ABI_MINOR);
	if (pl->kind != NP_KIND_TRANSPORT)
		return fail_load(err, errlen, "kind is %u, not NP_KIND_TRANSPORT: the kit tests "
		                 "transports only", pl->kind);
	if (!pl->name || !pl->name[0] || strspn(pl->name, "abcdefghijklmnopqrstuvwxyz"
	                                        "0123456789_-") != strlen(pl->name))
		return fail_load(err, errlen, "name \"%s\" is not [a-z0-9_-]+",
		                 pl->name ? pl->name : "(null)");
	static const char *req[] = { "open", "close", "read", "write", "ready" };
	const void *ops[] = { (void *)(uintptr_t)pl->open, (void *)(uintptr_t)pl->close,
	                      (void *)(uintptr_t)pl->read, (void *)(uintptr_t)pl->write,
	                      (void *)(uintptr_t)pl->ready };
	for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
		if (!ops[i])
			return fail_load(err, errlen, "required op %s is NULL", req[i]);
	k->pl = pl;
	if (pl->init) {
		int rc = pl->init(&k->host);
		if (rc != 0) {
			k->pl = NULL; /* refused: fini must not be called */
			return fail_load(err, errlen, "init returned %s", kit_err(rc));
		}
	}
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	remove(path);
	return 0;
}

void kit_unload(struct kit *k)
{
	for (int i = 0; i < k->npipes; i++)
		kp_abort(k->pipes[i]);
	if (k->pl && k->pl->fini)
		k->pl->fini();
	/* After fini no plugin thread may call wake() any more. */
	for (int i = 0; i < k->npipes; i++) {
		struct kp *p = k->pipes[i];
		ASAN_UNPOISON_MEMORY_REGION(p->state_block, (k->pl && k->pl->state_size ?
		                            k->pl->state_size : 1) + 64);
		free(p->state_block);
		free(p);
	}
	k->npipes = 0;
	for (int i = 0; i < k->naddrs; i++)
		free(k->addrs[i]);
	k->naddrs = 0;
	if (k->ep >= 0)
		close(k->ep);
	if (k->evfd >= 0)
		close(k->evfd);
	k->ep = k->evfd = -1;
	if (own_tmp[0]) {
		nftw(own_tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		own_tmp[0] = '\0';
	}
}

/* ---- addresses ---- */

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof a;
	int port = 0;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

char *kit_address(struct kit *k)
{
	const char *t = k->opts->tmpl;
	size_t cap = strlen(t) + 512, n = 0;
	char *out = malloc(cap);
	unsigned num = k->next_n++;
	int port = -1;
	while (*t && n + 300 < cap) {
		if (!strncmp(t, "{n}", 3)) {
			n += (size_t)sprintf(out + n, "%u", num);
			t += 3;
		} else if (!strncmp(t, "{port}", 6)) {
			if (port < 0)
				port = free_port();
			n += (size_t)sprintf(out + n, "%d", port);
			t += 6;
		} else if (!strncmp(t, "{tmp}", 5)) {
			const char *d = k->opts->tmp_dir;
			if (!d) {
				if (!own_tmp[0]) {
					const char *base = getenv("TMPDIR");
					snprintf(own_tmp, sizeof own_tmp, "%s/rift-conf.XXXXXX",
					         base && *base ? base : "/tmp");
					if (!mkdtemp(own_tmp))
						own_tmp[0] = '\0';
				}
				d = own_tmp;
			}
			n += (size_t)snprintf(out + n, 256, "%s", d);
			t += 5;
		} else {
			out[n++] = *t++;
		}
	}
	out[n] = '\0';
	if (k->naddrs < (int)(sizeof k->addrs / sizeof k->addrs[0]))
		k->addrs[k->naddrs++] = out;
	return out;
}

/* ---- aux fds ---- */

int kit_aux_add(struct kit *k, int fd)
{
	if (k->naux == KIT_MAX_AUX)
		return -1;
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = TAG(TAG_AUX, fd) };
	if (epoll_ctl(k->ep, EPOLL_CTL_ADD, fd, &ev) != 0)
		return -1;
	k->aux[k->naux] = fd;
	k->aux_ready[k->naux++] = 1;
	return 0;
}

void kit_aux_del(struct kit *k, int fd)
{
	for (int i = 0; i < k->naux; i++) {
		if (k->aux[i] == fd) {
			epoll_ctl(k->ep, EPOLL_CTL_DEL, fd, NULL);
			k->naux--;
			k->aux[i] = k->aux[k->naux];
			k->aux_ready[i] = k->aux_ready[k->naux];
			return;
		}
	}
}

int kit_aux_take(struct kit *k, int fd)
{
	for (int i = 0; i < k->naux; i++) {
		if (k->aux[i] == fd) {
			int r = k->aux_ready[i];
			k->aux_ready[i] = 0;
			return r;
		}
	}
	return 0;
}

/* ---- the loop ---- */

int kit_poll(struct kit *k, int64_t max_ms)
{
	int64_t now = kit_now(), timeout = max_ms < 0 ? 0 : max_ms;
	for (int i = 0; i < k->npipes; i++) {
		struct kp *p = k->pipes[i];
		if (p->live && p->timer >= 0 && p->timer - now < timeout)
			timeout = p->timer > now ? p->timer - now : 0;
	}
	struct epoll_event evs[32];
	int n = epoll_wait(k->ep, evs, 32, (int)(timeout > 3600000 ? 3600000 : timeout));
	int fired = 0;
	for (int i = 0; i < n; i++) {
		uint64_t kind = evs[i].data.u64 >> 32;
		int fd = (int)(uint32_t)evs[i].data.u64;
		if (kind == TAG_WAKE) {
			uint64_t v;
			ssize_t r = read(k->evfd, &v, sizeof v);
			(void)r;
		} else if (kind == TAG_AUX) {
			for (int j = 0; j < k->naux; j++)
				if (k->aux[j] == fd && !k->aux_ready[j]) {
					k->aux_ready[j] = 1;
					fired++;
				}
		} else {
			struct kit_watch *w = find_watch(k, fd);
			if (w && w->kp->live)
				w->kp->poked = 1;
			else
				/* Not watched any more (closed by the plugin, or ours
				 * is stale): stop it firing. */
				epoll_ctl(k->ep, EPOLL_CTL_DEL, fd, NULL);
		}
	}
	now = kit_now();
	for (int i = 0; i < k->npipes; i++) {
		struct kp *p = k->pipes[i];
		if (atomic_exchange(&p->woken, 0)) {
			if (!p->live)
				kit_violation(k, "%s: host->wake() was called after close() released "
				              "the pipe (the broker will have freed it)", p->label);
			p->poked = 1;
		}
		if (p->live && p->timer >= 0 && p->timer <= now) {
			p->timer = -1;
			p->poked = 1;
		}
	}
	for (int i = 0; i < k->npipes; i++) {
		struct kp *p = k->pipes[i];
		if (p->poked && p->live) {
			p->poked = 0;
			p->rdy = kp_ready(p);
			p->fresh = 1;
			fired++;
		}
		p->poked = 0;
	}
	return fired;
}

/* ---- timed ops ---- */

struct opclk {
	int64_t t0;
	struct rusage ru;
};

static void op_begin(struct opclk *c)
{
	getrusage(RUSAGE_THREAD, &c->ru);
	c->t0 = now_us();
}

static int64_t tv_us(struct timeval tv)
{
	return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

/* An op that took longer than the limit failed the contract if it blocked
 * (slept: voluntary context switches) or spun the CPU; one that was merely
 * preempted by a busy machine is not the plugin's fault. */
static void op_end(struct kp *p, const char *op, struct opclk *c)
{
	struct kit *k = p->kit;
	int64_t us = now_us() - c->t0;
	if (us > k->slowest_op_us) {
		k->slowest_op_us = us;
		snprintf(k->slowest_op, sizeof k->slowest_op, "%s() on the %s", op, p->label);
	}
	if (us <= k->opts->op_limit_ms * 1000)
		return;
	struct rusage ru;
	getrusage(RUSAGE_THREAD, &ru);
	long vcsw = ru.ru_nvcsw - c->ru.ru_nvcsw;
	int64_t cpu = tv_us(ru.ru_utime) + tv_us(ru.ru_stime) - tv_us(c->ru.ru_utime) -
	              tv_us(c->ru.ru_stime);
	if (vcsw > 0)
		kit_violation(k, "%s() on the %s took %lld ms and blocked (%ld voluntary context "
		              "switches): every op must return at once, -EAGAIN instead of "
		              "waiting", op, p->label, (long long)(us / 1000), vcsw);
	else if (cpu >= k->opts->op_limit_ms * 1000)
		kit_violation(k, "%s() on the %s kept the CPU busy for %lld ms: every op must "
		              "return at once, -EAGAIN instead of spinning", op, p->label,
		              (long long)(cpu / 1000));
}

struct kp *kp_new(struct kit *k, const char *label, uint32_t mode)
{
	if (k->npipes == KIT_MAX_PIPES)
		return NULL;
	struct kp *p = calloc(1, sizeof *p);
	size_t ss = k->pl->state_size ? k->pl->state_size : 1;
	/* The contract promises NP_STATE_ALIGN (64). Give exactly that, not
	 * more (the state sits 64 bytes past a 128-byte boundary), so a state
	 * that needs more is caught here by UBSan rather than crashing in some
	 * broker's allocator; under ASan the bytes after state_size are
	 * poisoned so an overrun is caught too. */
	uint8_t *b = calloc(1, ss + 2 * NP_STATE_ALIGN);
	size_t off = (size_t)((NP_STATE_ALIGN - (uintptr_t)b % (2 * NP_STATE_ALIGN) +
	                       2 * NP_STATE_ALIGN) % (2 * NP_STATE_ALIGN));
	ASAN_POISON_MEMORY_REGION(b, off);
	ASAN_POISON_MEMORY_REGION(b + off + ss, 2 * NP_STATE_ALIGN - off);
	p->state_block = b;
	p->np.state = b + off;
	p->np.struct_size = sizeof p->np;
	p->np.mode = mode;
	p->np.host = &k->host;
	snprintf(p->label, sizeof p->label, "%s", label);
	p->np.label = p->label;
	p->np.broker = p;
	p->kit = k;
	p->timer = -1;
	atomic_init(&p->woken, 0);
	k->pipes[k->npipes++] = p;
	return p;
}

static void forget_pipe(struct kp *p)
{
	struct kit *k = p->kit;
	p->live = 0;
	p->timer = -1;
	for (int i = 0; i < k->nw;)
		if (k->w[i].kp == p)
			drop_watch(k, &k->w[i]);
		else
			i++;
}

int kp_open(struct kp *p, const char *address, int etag)
{
	struct np_open_args a = {
		.struct_size = sizeof a, .mode = p->np.mode, .address = address,
		.type = NP_TYPE_SEQ_SEQ, .etag = etag ? 1 : 0,
	};
	struct opclk c;
	p->live = 1; /* open may already watch fds and arm the timer */
	op_begin(&c);
	int rc = p->kit->pl->open(&p->np, &a);
	op_end(p, "open", &c);
	if (rc > 0)
		kit_violation(p->kit, "open() on the %s returned %d: 0 or a negative errno",
		              p->label, rc);
	if (rc < 0) {
		/* The contract: a failed open leaves a state close(ABORT) handles. */
		kp_close(p, NP_CLOSE_ABORT);
		forget_pipe(p);
	}
	return rc;
}

int kp_close(struct kp *p, uint32_t flags)
{
	struct opclk c;
	if (!p->live)
		return 0;
	op_begin(&c);
	int rc = p->kit->pl->close(&p->np, flags);
	op_end(p, flags & NP_CLOSE_ABORT ? "close(ABORT)" : "close", &c);
	if (rc == -EAGAIN && (flags & NP_CLOSE_ABORT)) {
		kit_violation(p->kit, "close(NP_CLOSE_ABORT) on the %s returned -EAGAIN: an "
		              "abort must release everything at once", p->label);
		rc = -EIO;
	}
	if (rc > 0)
		kit_violation(p->kit, "close() on the %s returned %d: 0 or a negative errno",
		              p->label, rc);
	if (rc != -EAGAIN) {
		/* A wake made while the pipe was open and not yet run by our
		 * loop is not a wake after close: forget it with the pipe. */
		atomic_store(&p->woken, 0);
		forget_pipe(p);
	}
	return rc;
}

void kp_abort(struct kp *p)
{
	if (p && p->live)
		kp_close(p, NP_CLOSE_ABORT);
}

ssize_t kp_read(struct kp *p, void *buf, size_t len)
{
	struct opclk c;
	op_begin(&c);
	ssize_t n = p->kit->pl->read(&p->np, buf, len);
	op_end(p, "read", &c);
	if (n > (ssize_t)len)
		kit_violation(p->kit, "read(len %zu) on the %s returned %zd: more than asked",
		              len, p->label, n);
	else if (n < -4095)
		kit_violation(p->kit, "read() on the %s returned %zd: not a negative errno",
		              p->label, n);
	return n;
}

ssize_t kp_write(struct kp *p, const void *buf, size_t len)
{
	struct opclk c;
	op_begin(&c);
	ssize_t n = p->kit->pl->write(&p->np, buf, len);
	op_end(p, "write", &c);
	if (n > (ssize_t)len)
		kit_violation(p->kit, "write(len %zu) on the %s returned %zd: more than given",
		              len, p->label, n);
	else if (n == 0 && len > 0)
		kit_violation(p->kit, "write(len %zu) on the %s returned 0: a write returns a "
		              "count > 0 or a negative errno (-EAGAIN when it cannot progress)",
		              len, p->label);
	else if (n < -4095)
		kit_violation(p->kit, "write() on the %s returned %zd: not a negative errno",
		              p->label, n);
	return n;
}

uint32_t kp_ready(struct kp *p)
{
	struct opclk c;
	op_begin(&c);
	uint32_t r = p->kit->pl->ready(&p->np);
	op_end(p, "ready", &c);
	p->ready_calls++;
	if (r & ~(NP_IN | NP_OUT | NP_HUP | NP_ERR))
		kit_violation(p->kit, "ready() on the %s returned 0x%x: unknown bits", p->label, r);
	return r;
}

int kp_ctl(struct kp *p, int op, void *arg)
{
	struct opclk c;
	if (op == NP_CTL_WAIT) {
		/* It may block: timing it as an op that must return at once
		 * would be wrong. */
		kit_violation(p->kit, "internal: NP_CTL_WAIT must go through kp_wait()");
		return -ENOTTY;
	}
	if (!p->kit->pl->ctl)
		return -ENOTTY;
	op_begin(&c);
	int rc = p->kit->pl->ctl(&p->np, op, arg);
	op_end(p, "ctl", &c);
	return rc;
}

/* The watchdog of kp_wait: its line is made before the call, so the
 * handler only writes it and exits (both async-signal-safe). */
static char wd_line[2 * KIT_MSG];
static size_t wd_len;

static void wd_fire(int sig)
{
	(void)sig;
	ssize_t n = write(STDOUT_FILENO, wd_line, wd_len);
	(void)n;
	_exit(KIT_FAIL);
}

int kp_wait(struct kp *p, uint32_t events, int32_t timeout_ms, int64_t *took_ms)
{
	struct kit *k = p->kit;
	struct np_wait w = {
		.struct_size = sizeof w, .events = events, .timeout_ms = timeout_ms,
	};
	int64_t bound = (int64_t)timeout_ms + KIT_WAIT_SLACK_MS;
	if (took_ms)
		*took_ms = 0;
	if (!k->pl->ctl)
		return -ENOTTY;
	int n = snprintf(wd_line, sizeof wd_line, "FAIL %s: ctl(NP_CTL_WAIT, %s%s, "
	                 "timeout_ms %d) on the %s had not returned after %lld ms: it may "
	                 "block at most timeout_ms (docs/abi.md, section 6), and the plugin "
	                 "gets no loop meanwhile%s%s\n", k->case_name ? k->case_name : "case",
	                 events == NP_IN || events == NP_OUT ? "NP_" : "events ",
	                 kit_bits(events), (int)timeout_ms, p->label, (long long)bound,
	                 k->nviolations ? "; before that: " : "",
	                 k->nviolations ? k->violation : "");
	wd_len = n < 0 ? 0 : (size_t)n < sizeof wd_line ? (size_t)n : sizeof wd_line - 1;
	if (wd_len && wd_line[wd_len - 1] != '\n')
		wd_line[wd_len - 1] = '\n';
	struct sigaction sa = { .sa_handler = wd_fire };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = { .it_value = { .tv_sec = bound / 1000,
	                                      .tv_usec = (bound % 1000) * 1000 } };
	setitimer(ITIMER_REAL, &it, NULL);
	int64_t t0 = now_us();
	int rc = k->pl->ctl(&p->np, NP_CTL_WAIT, &w);
	int64_t us = now_us() - t0;
	struct itimerval off = { 0 };
	setitimer(ITIMER_REAL, &off, NULL);
	if (took_ms)
		*took_ms = us / 1000;
	if (us / 1000 > bound) /* the watchdog could not be armed */
		kit_violation(k, "ctl(NP_CTL_WAIT, timeout_ms %d) on the %s took %lld ms: it may "
		              "block at most timeout_ms (docs/abi.md, section 6)", (int)timeout_ms,
		              p->label, (long long)(us / 1000));
	return rc;
}

const char *kp_last_error(struct kp *p)
{
	return p->kit->pl->last_error ? p->kit->pl->last_error(&p->np) : NULL;
}

int kp_close_clean(struct kp *p, struct kp *drain, int64_t deadline)
{
	static char sink[65536];
	for (;;) {
		int rc = kp_close(p, 0);
		if (rc != -EAGAIN)
			return rc;
		int64_t now = kit_now();
		if (now >= deadline) {
			kp_abort(p);
			return -ETIMEDOUT;
		}
		int got = 0;
		if (drain && drain->live)
			while (kp_read(drain, sink, sizeof sink) > 0)
				got = 1;
		/* As the broker: wait for the plugin's events, then ask again. */
		kit_poll(p->kit, got ? 0 : deadline - now);
	}
}

/* ---- the test stream ---- */

static uint64_t mix(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void kit_stream(uint64_t seed, uint64_t off, void *buf, size_t len)
{
	uint8_t *b = buf;
	uint64_t k = off / 8;
	unsigned j = (unsigned)(off % 8);
	while (len) {
		uint64_t w = mix(seed ^ (k * 0xd1b54a32d192ed03ull));
		if (j == 0 && len >= 8) {
			b[0] = (uint8_t)w; b[1] = (uint8_t)(w >> 8);
			b[2] = (uint8_t)(w >> 16); b[3] = (uint8_t)(w >> 24);
			b[4] = (uint8_t)(w >> 32); b[5] = (uint8_t)(w >> 40);
			b[6] = (uint8_t)(w >> 48); b[7] = (uint8_t)(w >> 56);
			b += 8;
			len -= 8;
		} else {
			for (; j < 8 && len; j++, len--)
				*b++ = (uint8_t)(w >> (8 * j));
		}
		j = 0;
		k++;
	}
}

uint64_t kit_rand(uint64_t *rng)
{
	uint64_t x = *rng ? *rng : 0x2545f4914f6cdd1dull;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*rng = x;
	return x * 0x2545f4914f6cdd1dull;
}

size_t kit_vary(uint64_t *rng, size_t max)
{
	unsigned e = (unsigned)(kit_rand(rng) % 19); /* 2^0 .. 2^18 */
	size_t lo = (size_t)1 << e;
	size_t n = lo + (size_t)(kit_rand(rng) % lo);
	return n > max ? max : n < 1 ? 1 : n;
}

/* ---- child processes ---- */

pid_t kit_spawn(char *const argv[], int *out_fd)
{
	int fds[2] = { -1, -1 };
	if (out_fd && pipe2(fds, O_CLOEXEC) != 0)
		return -1;
	pid_t parent = getpid();
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid == 0) {
		/* Only async-signal-safe calls until exec: plugin threads may
		 * hold locks in this copy of the process. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		if (!out_fd)
			setpgid(0, 0); /* a case: its own group, killed as one */
		if (out_fd && dup2(fds[1], STDOUT_FILENO) < 0)
			_exit(127);
		/* Plugin fds that lack CLOEXEC must not reach the child. */
		syscall(SYS_close_range, 3u, ~0u, 0u);
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	if (out_fd) {
		close(fds[1]);
		if (pid < 0) {
			close(fds[0]);
			return -1;
		}
		fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
		*out_fd = fds[0];
	}
	return pid;
}

int kit_reap(pid_t pid, int64_t timeout_ms, int *timed_out)
{
	int st = 0, r;
	int64_t end = kit_now() + timeout_ms;
	if (timed_out)
		*timed_out = 0;
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pfd >= 0) {
		struct pollfd q = { .fd = pfd, .events = POLLIN };
		do
			r = poll(&q, 1, (int)(end - kit_now() > 0 ? end - kit_now() : 0));
		while (r < 0 && errno == EINTR && kit_now() < end);
		close(pfd);
		if (r <= 0) {
			if (timed_out)
				*timed_out = 1;
			kill(pid, SIGKILL);
		}
	} else {
		/* No pidfd (kernel < 5.3): look every few milliseconds. */
		while ((r = (int)waitpid(pid, &st, WNOHANG)) == 0 && kit_now() < end) {
			struct timespec ts = { 0, 5000000 };
			nanosleep(&ts, NULL);
		}
		if (r == pid)
			return st;
		if (timed_out)
			*timed_out = 1;
		kill(pid, SIGKILL);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return st;
}

const char *kit_status(int status)
{
	char *b = ring();
	if (WIFEXITED(status))
		snprintf(b, 160, "exit %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(b, 160, "killed by SIG%s", sigabbrev_np(WTERMSIG(status))
		         ? sigabbrev_np(WTERMSIG(status)) : "?");
	else
		snprintf(b, 160, "status 0x%x", status);
	return b;
}
