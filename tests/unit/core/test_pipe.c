/*
 * test_pipe.c - the broker's pipe layer (broker/pipe.c) over a fake,
 * in-test transport: the ABI's defaults for optional ops, open's checks
 * and failure path, close once / -EAGAIN / abort, the host services
 * (watch_fd, wake, set_timer) reaching the owner on the loop thread, what
 * pp_free must clean up, pp_close_async and pp_wait.
 *
 * Every wait is bounded.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loader.h"
#include "log.h"
#include "loop.h"
#include "netpipe.h"
#include "pipe.h"

/* ---- the fake transport ---- */

#define FAKE_STATE 40

static struct {
	/* what the test asks of the fake */
	int open_rc;
	const char *last_error;
	int watch_fd;               /* >= 0: watched (NP_IN) during open */
	int close_eagain;           /* clean closes answered -EAGAIN first */
	int close_rc;               /* then this */
	int abort_rc;               /* what an aborting close returns */
	uint32_t ready_bits;
	/* what the fake saw */
	int opens, closes, aborts, readies;
	uint32_t mode, type, etag;
	char address[256];
	bool state_zeroed, state_aligned;
	struct np_pipe *pipe;
	int64_t seek_off;
	int seek_whence;
	int64_t truncated;
	int ctl_op;
} F;

static int fake_open(struct np_pipe *pipe, const struct np_open_args *a)
{
	F.opens++;
	F.pipe = pipe;
	F.mode = a->mode;
	F.type = a->type;
	F.etag = a->etag;
	snprintf(F.address, sizeof F.address, "%s", a->address);
	if (pipe->state) {
		static const unsigned char zero[FAKE_STATE];
		F.state_zeroed = memcmp(pipe->state, zero, FAKE_STATE) == 0;
		F.state_aligned = (uintptr_t)pipe->state % alignof(max_align_t) == 0;
		memset(pipe->state, 0xa5, FAKE_STATE);  /* all of it is ours */
	}
	if (F.watch_fd >= 0)
		ck_assert_int_eq(pipe->host->watch_fd(pipe, F.watch_fd, NP_IN), 0);
	return F.open_rc;
}

static int fake_close(struct np_pipe *pipe, uint32_t flags)
{
	(void)pipe;
	F.closes++;
	if (flags & NP_CLOSE_ABORT) {
		F.aborts++;
		return F.abort_rc;
	}
	if (F.close_eagain > 0) {
		F.close_eagain--;
		return -EAGAIN;
	}
	return F.close_rc;
}

static ssize_t fake_read(struct np_pipe *pipe, void *buf, size_t len)
{
	(void)pipe;
	(void)buf;
	return (ssize_t)len;
}

static ssize_t fake_write(struct np_pipe *pipe, const void *buf, size_t len)
{
	(void)pipe;
	(void)buf;
	return (ssize_t)len / 2;
}

static uint32_t fake_ready(struct np_pipe *pipe)
{
	(void)pipe;
	F.readies++;
	return F.ready_bits;
}

static const char *fake_last_error(struct np_pipe *pipe)
{
	(void)pipe;
	return F.last_error;
}

static int64_t fake_seek(struct np_pipe *pipe, int64_t off, int whence)
{
	(void)pipe;
	F.seek_off = off;
	F.seek_whence = whence;
	return off + 1;
}

static int64_t fake_tell(struct np_pipe *pipe)
{
	(void)pipe;
	return 4321;
}

static int fake_truncate(struct np_pipe *pipe, int64_t len)
{
	(void)pipe;
	F.truncated = len;
	return 0;
}

static int fake_ctl(struct np_pipe *pipe, int op, void *arg)
{
	(void)pipe;
	(void)arg;
	F.ctl_op = op;
	return 7;
}

/* Only the required ops. */
static const struct np_plugin minimal = {
	.struct_size = sizeof(struct np_plugin),
	.magic = NP_MAGIC,
	.abi_major = NP_ABI_MAJOR,
	.abi_minor = NP_ABI_MINOR,
	.kind = NP_KIND_TRANSPORT,
	.state_size = FAKE_STATE,
	.name = "fake",
	.open = fake_open,
	.close = fake_close,
	.read = fake_read,
	.write = fake_write,
	.ready = fake_ready,
};

/* Every op. */
static const struct np_plugin full = {
	.struct_size = sizeof(struct np_plugin),
	.magic = NP_MAGIC,
	.abi_major = NP_ABI_MAJOR,
	.abi_minor = NP_ABI_MINOR,
	.kind = NP_KIND_TRANSPORT,
	.state_size = FAKE_STATE,
	.name = "fake",
	.caps = NP_CAP_SEEK | NP_CAP_TRUNCATE | NP_CAP_RDWR,
	.open = fake_open,
	.close = fake_close,
	.read = fake_read,
	.write = fake_write,
	.seek = fake_seek,
	.tell = fake_tell,
	.truncate = fake_truncate,
	.ready = fake_ready,
	.ctl = fake_ctl,
	.last_error = fake_last_error,
};

/* ---- the broker side, as loader.c builds it ---- */

static struct ev_loop *loop;
static struct ld_registry reg;
static struct ld_plugin plugin;
static struct np_plugin custom;     /* a variant a test builds */
static int owner_token;
static atomic_int notified;
static atomic_int notified_off_loop;
static pthread_t loop_thread;
static struct pp_pipe *notified_pipe;

static void on_notify(void *owner, struct pp_pipe *p)
{
	ck_assert_ptr_eq(owner, &owner_token);
	if (!pthread_equal(pthread_self(), loop_thread))
		atomic_fetch_add(&notified_off_loop, 1);
	notified_pipe = p;
	atomic_fetch_add(&notified, 1);
}

static void use_plugin(const struct np_plugin *np)
{
	plugin.p = np;
}

static void setup(void)
{
	memset(&F, 0, sizeof F);
	F.watch_fd = -1;
	loop = ev_new();
	ck_assert_ptr_nonnull(loop);
	memset(&reg, 0, sizeof reg);
	reg.loop = loop;
	memset(&plugin, 0, sizeof plugin);
	plugin.reg = &reg;
	plugin.host = (struct np_host){
		.struct_size = sizeof(struct np_host),
		.abi_major = NP_ABI_MAJOR,
		.abi_minor = NP_ABI_MINOR,
		.watch_fd = pp_host_watch_fd,
		.wake = pp_host_wake,
		.set_timer = pp_host_set_timer,
		.broker = &plugin,
	};
	use_plugin(&minimal);
	atomic_store(&notified, 0);
	atomic_store(&notified_off_loop, 0);
	notified_pipe = NULL;
	loop_thread = pthread_self();
	lg_set_level(LG_ERROR);   /* the linger warning is expected */
}

static void teardown(void)
{
	ev_free(loop);
	loop = NULL;
}

static char err[512];

static struct pp_pipe *open_ok(uint32_t mode)
{
	struct pp_pipe *p = (struct pp_pipe *)1;
	err[0] = '\0';
	int rc = pp_open(&plugin, "/tmp/fake?x=1", mode, NP_TYPE_SEQ_RND, 1,
	                 "/dev/out/fake", on_notify, &owner_token, &p, err,
	                 sizeof err);
	ck_assert_msg(rc == 0, "pp_open: %d (%s)", rc, err);
	ck_assert_ptr_nonnull(p);
	return p;
}

/* Run the loop until cond() or limit_ms passed. */
static void run_until(bool (*cond)(void), int64_t limit_ms)
{
	int64_t end = ev_now_ms() + limit_ms;
	while (!cond() && ev_now_ms() < end)
		ck_assert_int_ge(ev_run_once(loop, 50), 0);
}

static bool was_notified(void)
{
	return atomic_load(&notified) > 0;
}

static void make_pipe(int p[2])
{
	ck_assert_int_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
}

/* ---- optional ops and messages ---- */

START_TEST(optional_ops_default_to_the_abi_values)
{
	struct pp_pipe *p = open_ok(NP_READ);
	ck_assert_int_eq(pp_seek(p, 10, SEEK_SET), -ESPIPE);
	ck_assert_int_eq(pp_tell(p), -ESPIPE);
	ck_assert_int_eq(pp_truncate(p, 0), -EINVAL);
	ck_assert_int_eq(pp_ctl(p, NP_CTL_FDS, NULL), -ENOTTY);
	ck_assert_int_eq(pp_ctl(p, NP_CTL_PRIVATE + 5, NULL), -ENOTTY);
	ck_assert_str_eq(pp_error(p, -EPIPE), strerror(EPIPE));
	/* Required ops go straight through. */
	char b[10];
	ck_assert_int_eq(pp_read(p, b, sizeof b), 10);
	ck_assert_int_eq(pp_write(p, b, sizeof b), 5);
	F.ready_bits = NP_IN | NP_HUP;
	ck_assert_uint_eq(pp_ready(p), NP_IN | NP_HUP);
	ck_assert_int_eq(pp_close(p, 0), 0);
	pp_free(p);
}
END_TEST

START_TEST(optional_ops_reach_the_plugin_when_present)
{
	use_plugin(&full);
	struct pp_pipe *p = open_ok(NP_READ);
	ck_assert_int_eq(pp_seek(p, 10, SEEK_END), 11);
	ck_assert_int_eq(F.seek_off, 10);
	ck_assert_int_eq(F.seek_whence, SEEK_END);
	ck_assert_int_eq(pp_tell(p), 4321);
	ck_assert_int_eq(pp_truncate(p, 99), 0);
	ck_assert_int_eq(F.truncated, 99);
	ck_assert_int_eq(pp_ctl(p, NP_CTL_PRIVATE + 5, NULL), 7);
	ck_assert_int_eq(F.ctl_op, NP_CTL_PRIVATE + 5);
	ck_assert_ptr_eq(pp_plugin(p), &plugin);
	ck_assert_int_eq(pp_close(p, 0), 0);
	pp_free(p);
}
END_TEST

START_TEST(error_prefers_the_plugins_last_error)
{
	use_plugin(&full);
	struct pp_pipe *p = open_ok(NP_READ);
	F.last_error = "the reader went away";
	ck_assert_str_eq(pp_error(p, -EPIPE), "the reader went away");
	F.last_error = "";
	ck_assert_str_eq(pp_error(p, -EPIPE), strerror(EPIPE));
	F.last_error = NULL;
	ck_assert_str_eq(pp_error(p, -ECONNRESET), strerror(ECONNRESET));
	ck_assert_int_eq(pp_close(p, 0), 0);
	pp_free(p);
}
END_TEST

/* ---- open ---- */

START_TEST(open_passes_the_request_and_a_zeroed_aligned_state)
{
	struct pp_pipe *p = open_ok(NP_WRITE);
	ck_assert_int_eq(F.opens, 1);
	ck_assert_str_eq(F.address, "/tmp/fake?x=1");
	ck_assert_uint_eq(F.mode, NP_WRITE);
	ck_assert_uint_eq(F.type, NP_TYPE_SEQ_RND);
	ck_assert_uint_eq(F.etag, 1);
	ck_assert(F.state_zeroed);
	ck_assert(F.state_aligned);
	ck_assert_ptr_nonnull(F.pipe);
	ck_assert_uint_eq(F.pipe->struct_size, sizeof(struct np_pipe));
	ck_assert_uint_eq(F.pipe->mode, NP_WRITE);
	ck_assert_ptr_eq(F.pipe->host, &plugin.host);
	ck_assert_str_eq(F.pipe->label, "/dev/out/fake");
	ck_assert_str_eq(pp_label(p), "/dev/out/fake");
	ck_assert_int_eq(pp_close(p, 0), 0);
	pp_free(p);
}
END_TEST

START_TEST(open_without_a_label_labels_the_pipe_with_its_address)
{
	struct pp_pipe *p = NULL;
	ck_assert_int_eq(pp_open(&plugin, "/tmp/a", NP_READ, 0, 0, NULL, NULL,
	                         NULL, &p, err, sizeof err), 0);
	ck_assert_str_eq(pp_label(p), "/tmp/a");
	ck_assert_str_eq(F.pipe->label, "/tmp/a");
	ck_assert_int_eq(pp_close(p, 0), 0);
	pp_free(p);
}
END_TEST

START_TEST(open_with_no_state_gives_a_null_state)
{
	custom = minimal;
	custom.state_size = 0;
	use_plugin(&custom);
	struct pp_pipe *p = open_ok(NP_READ);
	ck_assert_ptr_null(F.pipe->state);
	ck_assert_int_eq(pp_close(p, 0), 0);
	pp_free(p);
}
END_TEST

START_TEST(open_refuses_a_runtime)
{
	custom = minimal;
	custom.kind = NP_KIND_RUNTIME;
	use_plugin(&custom);
	struct pp_pipe *p = (struct pp_pipe *)1;
	ck_assert_int_eq(pp_open(&plugin, "/tmp/a", NP_READ, 0, 0, NULL, on_notify,
	                         &owner_token, &p, err, sizeof err), -EINVAL);
	ck_assert_ptr_null(p);
	ck_assert_ptr_nonnull(strstr(err, "runtime"));
	ck_assert_int_eq(F.opens, 0);
}
END_TEST

START_TEST(open_refuses_read_write_without_the_capability)
{
	struct pp_pipe *p = (struct pp_pipe *)1;
	ck_assert_int_eq(pp_open(&plugin, "/tmp/a", NP_RDWR, 0, 0, NULL, on_notify,
	                         &owner_token, &p, err, sizeof err), -EINVAL);
	ck_assert_ptr_null(p);
	ck_assert_ptr_nonnull(strstr(err, "read-write"));
	ck_assert_int_eq(F.opens, 0);
	use_plugin(&full);
	p = open_ok(NP_RDWR);
	ck_assert_uint_eq(F.mode, NP_RDWR);
	ck_assert_int_eq(pp_close(p, 0), 0);
	pp_free(p);
}
END_TEST

START_TEST(open_failure_reports_the_plugins_message_and_aborts)
{
	int fds[2];
	make_pipe(fds);
	use_plugin(&full);
	F.open_rc = -ECONNREFUSED;
	F.last_error = "nobody listens on /tmp/a";
	F.watch_fd = fds[0];   /* and the plugin forgets to unwatch it */
	struct pp_pipe *p = (struct pp_pipe *)1;
	ck_assert_int_eq(pp_open(&plugin, "/tmp/a", NP_READ, 0, 0, NULL, on_notify,
	                         &owner_token, &p, err, sizeof err), -ECONNREFUSED);
	ck_assert_ptr_null(p);
	ck_assert_str_eq(err, "fake: nobody listens on /tmp/a");
	ck_assert_int_eq(F.closes, 1);
	ck_assert_int_eq(F.aborts, 1);
	/* The failed pipe's watch is gone with it. */
	ck_assert_int_eq(write(fds[1], "x", 1), 1);
	ck_assert_int_eq(ev_run_once(loop, 30), 0);
	ck_assert_int_eq(atomic_load(&notified), 0);
	close(fds[0]);
	close(fds[1]);
}
END_TEST

START_TEST(open_failure_without_a_message_reports_strerror)
{
	F.open_rc = -ECONNREFUSED;
	struct pp_pipe *p = (struct pp_pipe *)1;
	ck_assert_int_eq(pp_open(&plugin, "/tmp/a", NP_READ, 0, 0, NULL, on_notify,
	                         &owner_token, &p, err, sizeof err), -ECONNREFUSED);
	ck_assert_ptr_null(p);
	char want[256];
	snprintf(want, sizeof want, "fake: %s", strerror(ECONNREFUSED));
	ck_assert_str_eq(err, want);
	ck_assert_int_eq(F.aborts, 1);
}
END_TEST

/* ---- close ---- */

START_TEST(close_calls_the_plugin_once)
{
	struct pp_pipe *p = open_ok(NP_WRITE);
	ck_assert_int_eq(pp_close(p, 0), 0);
	ck_assert_int_eq(pp_close(p, 0), 0);
	ck_assert_int_eq(pp_close(p, NP_CLOSE_ABORT), 0);
	ck_assert_int_eq(F.closes, 1);
	pp_free(p);
	ck_assert_int_eq(F.closes, 1);
}
END_TEST

START_TEST(close_failure_is_final_too)
{
	F.close_rc = -EPIPE;
	struct pp_pipe *p = open_ok(NP_WRITE);
	ck_assert_int_eq(pp_close(p, 0), -EPIPE);
	ck_assert_int_eq(pp_close(p, 0), 0);
	ck_assert_int_eq(F.closes, 1);
	pp_free(p);
}
END_TEST

START_TEST(close_eagain_keeps_the_pipe_open_until_done)
{
	F.close_eagain = 2;
	struct pp_pipe *p = open_ok(NP_WRITE);
	ck_assert_int_eq(pp_close(p, 0), -EAGAIN);
	ck_assert_int_eq(pp_close(p, 0), -EAGAIN);
	ck_assert_int_eq(pp_close(p, 0), 0);
	ck_assert_int_eq(pp_close(p, 0), 0);
	ck_assert_int_eq(F.closes, 3);
	pp_free(p);
}
END_TEST

START_TEST(abort_close_never_returns_eagain)
{
	F.abort_rc = -EAGAIN;  /* a plugin breaking the contract */
	struct pp_pipe *p = open_ok(NP_WRITE);
	ck_assert_int_eq(pp_close(p, NP_CLOSE_ABORT), -EIO);
	ck_assert_int_eq(pp_close(p, NP_CLOSE_ABORT), 0);
	ck_assert_int_eq(F.aborts, 1);
	pp_free(p);
}
END_TEST

/* ---- host services ---- */

START_TEST(watched_fd_notifies_the_owner)
{
	int fds[2];
	make_pipe(fds);
	F.watch_fd = fds[0];
	struct pp_pipe *p = open_ok(NP_READ);
	ck_assert_int_eq(ev_run_once(loop, 20), 0);
	ck_assert_int_eq(write(fds[1], "x", 1), 1);
	ck_assert_int_eq(ev_run_once(loop, 2000), 1);
	ck_assert_int_eq(atomic_load(&notified), 1);
	ck_assert_ptr_eq(notified_pipe, p);
	/* The plugin stops watching: no more notifications. */
	ck_assert_int_eq(plugin.host.watch_fd(F.pipe, fds[0], 0), 0);
	ck_assert_int_eq(ev_run_once(loop, 30), 0);
	ck_assert_int_eq(atomic_load(&notified), 1);
	/* NP_HUP / NP_ERR are not watchable events: alone they unwatch. */
	ck_assert_int_eq(plugin.host.watch_fd(F.pipe, fds[0], NP_IN), 0);
	ck_assert_int_eq(plugin.host.watch_fd(F.pipe, fds[0], NP_HUP), 0);
	ck_assert_int_eq(ev_run_once(loop, 30), 0);
	ck_assert_int_eq(pp_close(p, 0), 0);
	pp_free(p);
	close(fds[0]);
	close(fds[1]);
}
END_TEST

START_TEST(free_unwatches_fds_the_plugin_forgot)
{
	int a[2], b[2];
	make_pipe(a);
	make_pipe(b);
	struct pp_pipe *p = open_ok(NP_READ);
	ck_assert_int_eq(plugin.host.watch_fd(F.pipe, a[0], NP_IN), 0);
	ck_assert_int_eq(plugin.host.watch_fd(F.pipe, b[0], NP_IN), 0);
	ck_assert_int_eq(plugin.host.watch_fd(F.pipe, b[0], NP_IN | NP_OUT), 0);
	ck_assert_int_eq(pp_close(p, 0), 0);
	pp_free(p);
	/* A callback now would be a use after free (ASan) or a notify. */
	ck_assert_int_eq(write(a[1], "x", 1), 1);
	ck_assert_int_eq(write(b[1], "x", 1), 1);
	ck_assert_int_eq(ev_run_once(loop, 30), 0);
	ck_assert_int_eq(atomic_load(&notified), 0);
	close(a[0]);
	close(a[1]);
	close(b[0]);
	close(b[1]);
}
END_TEST

static void *wake_thread(void *arg)
{
	struct np_pipe *pub = arg;
	pub->host->wake(pub);
	pub->host->wake(pub);
	return NULL;
}

START_TEST(wake_from_another_thread_notifies_on_the_loop_thread)
{
	struct pp_pipe *p = open_ok(NP_READ);
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, wake_thread, F.pipe), 0);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_int_eq(ev_run_once(loop, 2000), 1);
	ck_assert_int_eq(atomic_load(&notified), 1);   /* two wakes, one call */
	ck_assert_int_eq(atomic_load(&notified_off_loop), 0);
	ck_assert_ptr_eq(notified_pipe, p);
	ck_assert_int_eq(pp_close(p, 0), 0);
	pp_free(p);
}
END_TEST

START_TEST(free_drops_a_pending_wake)
{
	struct pp_pipe *p = open_ok(NP_READ);
	plugin.host.wake(F.pipe);
	ck_assert_int_eq(pp_close(p, 0), 0);
	pp_free(p);
	ck_assert_int_eq(ev_run_once(loop, 30), 0);
	ck_assert_int_eq(atomic_load(&notified), 0);
}
END_TEST

START_TEST(timer_notifies_after_its_delay)
{
	struct pp_pipe *p = open_ok(NP_READ);
	int64_t start = ev_now_ms();
	ck_assert_int_eq(plugin.host.set_timer(F.pipe, 30), 0);
	run_until(was_notified, 5000);
	ck_assert_int_eq(atomic_load(&notified), 1);
	ck_assert_int_ge(ev_now_ms() - start, 30);
	/* One-shot. */
	ck_assert_int_eq(ev_run_once(loop, 60), 0);
	ck_assert_int_eq(atomic_load(&notified), 1);
	ck_assert_int_eq(pp_close(p, 0), 0);
	pp_free(p);
}
END_TEST

START_TEST(timer_rearm_replaces_and_negative_cancels)
{
	struct pp_pipe *p = open_ok(NP_READ);
	ck_assert_int_eq(plugin.host.set_timer(F.pipe, 600000), 0);
	ck_assert_int_eq(plugin.host.set_timer(F.pipe, 10), 0);
	run_until(was_notified, 5000);
	ck_assert_int_eq(atomic_load(&notified), 1);
	ck_assert_int_eq(plugin.host.set_timer(F.pipe, 10), 0);
	ck_assert_int_eq(plugin.host.set_timer(F.pipe, -1), 0);
	ck_assert_int_eq(plugin.host.set_timer(F.pipe, -1), 0);
	ck_assert_int_eq(ev_run_once(loop, 60), 0);
	ck_assert_int_eq(atomic_load(&notified), 1);
	ck_assert_int_eq(pp_close(p, 0), 0);
	pp_free(p);
}
END_TEST

START_TEST(free_cancels_the_timer)
{
	struct pp_pipe *p = open_ok(NP_READ);
	ck_assert_int_eq(plugin.host.set_timer(F.pipe, 5), 0);
	ck_assert_int_eq(pp_close(p, 0), 0);
	pp_free(p);
	ck_assert_int_eq(ev_run_once(loop, 40), 0);
	ck_assert_int_eq(atomic_load(&notified), 0);
}
END_TEST

/* ---- pp_close_async ---- */

static int closed_calls, closed_rc;
static struct pp_pipe *closed_pipe;
static int64_t closed_at;

static void on_closed(void *ctx, struct pp_pipe *p, int rc)
{
	ck_assert_ptr_eq(ctx, &owner_token);
	closed_calls++;
	closed_rc = rc;
	closed_pipe = p;
	closed_at = ev_now_ms();
}

static bool was_closed(void)
{
	return closed_calls > 0;
}

static void reset_closed(void)
{
	closed_calls = 0;
	closed_rc = 1;
	closed_pipe = NULL;
}

START_TEST(close_async_that_closes_at_once_reports_at_once)
{
	reset_closed();
	struct pp_pipe *p = open_ok(NP_WRITE);
	pp_close_async(p, 5000, on_closed, &owner_token);
	ck_assert_int_eq(closed_calls, 1);
	ck_assert_int_eq(closed_rc, 0);
	ck_assert_ptr_eq(closed_pipe, p);
	ck_assert_int_eq(F.closes, 1);
	/* No linger timer left behind. */
	ck_assert_int_eq(ev_run_once(loop, 30), 0);
}
END_TEST

START_TEST(close_async_finishes_when_the_plugin_does)
{
	reset_closed();
	F.close_eagain = 2;
	struct pp_pipe *p = open_ok(NP_WRITE);
	pp_close_async(p, 10000, on_closed, &owner_token);
	ck_assert_int_eq(closed_calls, 0);
	/* The plugin's link drains twice; the owner is not told any more. */
	for (int i = 0; i < 2; i++) {
		plugin.host.wake(F.pipe);
		ck_assert_int_eq(ev_run_once(loop, 2000), 1);
	}
	ck_assert_int_eq(closed_calls, 1);
	ck_assert_int_eq(closed_rc, 0);
	ck_assert_ptr_eq(closed_pipe, p);
	ck_assert_int_eq(F.closes, 3);
	ck_assert_int_eq(F.aborts, 0);
	ck_assert_int_eq(atomic_load(&notified), 0);
	ck_assert_int_ge(F.readies, 2);
	/* The linger timer went with the pipe. */
	ck_assert_int_eq(ev_run_once(loop, 30), 0);
}
END_TEST

START_TEST(close_async_reports_a_failed_close)
{
	reset_closed();
	F.close_eagain = 1;
	F.close_rc = -EPIPE;
	struct pp_pipe *p = open_ok(NP_WRITE);
	pp_close_async(p, 10000, on_closed, &owner_token);
	plugin.host.wake(F.pipe);
	ck_assert_int_eq(ev_run_once(loop, 2000), 1);
	ck_assert_int_eq(closed_calls, 1);
	ck_assert_int_eq(closed_rc, -EPIPE);
	ck_assert_ptr_eq(closed_pipe, p);
}
END_TEST

START_TEST(close_async_aborts_after_the_linger)
{
	reset_closed();
	F.close_eagain = 1000000;
	struct pp_pipe *p = open_ok(NP_WRITE);
	int64_t start = ev_now_ms();
	pp_close_async(p, 40, on_closed, &owner_token);
	run_until(was_closed, 5000);
	ck_assert_int_eq(closed_calls, 1);
	ck_assert_int_eq(closed_rc, -ETIMEDOUT);
	ck_assert_ptr_eq(closed_pipe, p);
	ck_assert_int_ge(closed_at - start, 40);
	ck_assert_int_eq(F.aborts, 1);
	ck_assert_int_eq(ev_run_once(loop, 30), 0);
	ck_assert_int_eq(closed_calls, 1);
}
END_TEST

/*
 * Was a bug (fixed in 4eb267a): pp_progress told a closing pipe from an
 * open one by its done callback, so with done == NULL the plugin's
 * progress was dropped and a close that could finish lingered for the
 * whole linger_ms, then was aborted (the reader got -ECONNRESET instead
 * of a clean end).
 */
START_TEST(close_async_without_done_still_finishes_when_the_plugin_does)
{
	F.close_eagain = 1;
	F.abort_rc = 0;
	struct pp_pipe *p = open_ok(NP_WRITE);
	pp_close_async(p, 10000, NULL, NULL);
	plugin.host.wake(F.pipe);
	ck_assert_int_ge(ev_run_once(loop, 2000), 1);
	ck_assert_msg(F.closes == 2 && F.aborts == 0,
	              "clean close not retried after progress: %d closes, %d aborts",
	              F.closes, F.aborts);
	/* Finished and freed: no linger timer is left to abort it. */
	ck_assert_int_eq(ev_run_once(loop, 30), 0);
	ck_assert_int_eq(F.aborts, 0);
}
END_TEST

/* ---- pp_wait ---- */

START_TEST(wait_returns_when_the_pipe_is_ready)
{
	struct pp_pipe *p = open_ok(NP_READ);
	F.ready_bits = NP_IN;
	ck_assert_int_eq(pp_wait(p, NP_IN, ev_now_ms() + 5000), 0);
	/* HUP and ERR end any wait. */
	F.ready_bits = NP_HUP;
	ck_assert_int_eq(pp_wait(p, NP_OUT, ev_now_ms() + 5000), 0);
	F.ready_bits = NP_ERR;
	ck_assert_int_eq(pp_wait(p, NP_IN, -1), 0);
	ck_assert_int_eq(pp_close(p, 0), 0);
	pp_free(p);
}
END_TEST

START_TEST(wait_times_out_at_the_deadline)
{
	struct pp_pipe *p = open_ok(NP_READ);
	F.ready_bits = NP_OUT;
	int64_t start = ev_now_ms();
	ck_assert_int_eq(pp_wait(p, NP_IN, start + 60), -ETIMEDOUT);
	int64_t took = ev_now_ms() - start;
	ck_assert_int_ge(took, 60);
	ck_assert_int_lt(took, 3000);
	ck_assert_int_eq(pp_wait(p, NP_IN, start), -ETIMEDOUT);
	ck_assert_int_eq(pp_close(p, 0), 0);
	pp_free(p);
}
END_TEST

static bool ready_now;

static void *late_ready_thread(void *arg)
{
	struct np_pipe *pub = arg;
	/* A plugin thread: its data is in, it wakes the pipe. */
	__atomic_store_n(&ready_now, true, __ATOMIC_SEQ_CST);
	pub->host->wake(pub);
	return NULL;
}

static uint32_t late_ready(struct np_pipe *pipe)
{
	(void)pipe;
	F.readies++;
	return __atomic_load_n(&ready_now, __ATOMIC_SEQ_CST) ? NP_IN : 0;
}

START_TEST(wait_returns_once_a_wake_makes_the_pipe_ready)
{
	custom = minimal;
	custom.ready = late_ready;
	use_plugin(&custom);
	ready_now = false;
	struct pp_pipe *p = open_ok(NP_READ);
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, late_ready_thread, F.pipe), 0);
	int64_t start = ev_now_ms();
	ck_assert_int_eq(pp_wait(p, NP_IN, start + 10000), 0);
	ck_assert_int_lt(ev_now_ms() - start, 5000);
	pthread_join(th, NULL);
	ck_assert_int_eq(pp_close(p, 0), 0);
	pp_free(p);
}
END_TEST

static Suite *pipe_suite(void)
{
	Suite *s = suite_create("pipe");
	TCase *o = tcase_create("ops");
	tcase_add_checked_fixture(o, setup, teardown);
	tcase_add_test(o, optional_ops_default_to_the_abi_values);
	tcase_add_test(o, optional_ops_reach_the_plugin_when_present);
	tcase_add_test(o, error_prefers_the_plugins_last_error);
	suite_add_tcase(s, o);

	TCase *op = tcase_create("open");
	tcase_add_checked_fixture(op, setup, teardown);
	tcase_add_test(op, open_passes_the_request_and_a_zeroed_aligned_state);
	tcase_add_test(op, open_without_a_label_labels_the_pipe_with_its_address);
	tcase_add_test(op, open_with_no_state_gives_a_null_state);
	tcase_add_test(op, open_refuses_a_runtime);
	tcase_add_test(op, open_refuses_read_write_without_the_capability);
	tcase_add_test(op, open_failure_reports_the_plugins_message_and_aborts);
	tcase_add_test(op, open_failure_without_a_message_reports_strerror);
	suite_add_tcase(s, op);

	TCase *c = tcase_create("close");
	tcase_add_checked_fixture(c, setup, teardown);
	tcase_set_timeout(c, 20);
	tcase_add_test(c, close_calls_the_plugin_once);
	tcase_add_test(c, close_failure_is_final_too);
	tcase_add_test(c, close_eagain_keeps_the_pipe_open_until_done);
	tcase_add_test(c, abort_close_never_returns_eagain);
	tcase_add_test(c, close_async_that_closes_at_once_reports_at_once);
	tcase_add_test(c, close_async_finishes_when_the_plugin_does);
	tcase_add_test(c, close_async_reports_a_failed_close);
	tcase_add_test(c, close_async_aborts_after_the_linger);
	tcase_add_test(c, close_async_without_done_still_finishes_when_the_plugin_does);
	suite_add_tcase(s, c);

	TCase *h = tcase_create("host");
	tcase_add_checked_fixture(h, setup, teardown);
	tcase_set_timeout(h, 20);
	tcase_add_test(h, watched_fd_notifies_the_owner);
	tcase_add_test(h, free_unwatches_fds_the_plugin_forgot);
	tcase_add_test(h, wake_from_another_thread_notifies_on_the_loop_thread);
	tcase_add_test(h, free_drops_a_pending_wake);
	tcase_add_test(h, timer_notifies_after_its_delay);
	tcase_add_test(h, timer_rearm_replaces_and_negative_cancels);
	tcase_add_test(h, free_cancels_the_timer);
	suite_add_tcase(s, h);

	TCase *w = tcase_create("wait");
	tcase_add_checked_fixture(w, setup, teardown);
	tcase_set_timeout(w, 20);
	tcase_add_test(w, wait_returns_when_the_pipe_is_ready);
	tcase_add_test(w, wait_times_out_at_the_deadline);
	tcase_add_test(w, wait_returns_once_a_wake_makes_the_pipe_ready);
	suite_add_tcase(s, w);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(pipe_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
