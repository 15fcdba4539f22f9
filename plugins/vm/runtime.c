/*
 * runtime.c - the Rift VM as a runtime plugin: `Program = prog.rbc` runs a
 * bytecode module (vm/) over the manifest's channels, on the broker's
 * event loop.
 *
 * The VM runs in slices of SLICE instructions. Between slices the broker's
 * loop runs (its timers: the manifest's Timeout; other channels): a slice
 * that used its budget pokes an eventfd this plugin watches, and the next
 * slice runs from fd_event(). When every fiber waits for I/O the plugin
 * waits for channel_event() (the broker calls it after an op returned
 * -EAGAIN) and tells the VM which channel may progress.
 *
 * Channel I/O goes through the broker (np_run_host), so the manifest's
 * quotas and digests apply. The run's Memory bounds the VM's heap.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "codec.h"
#include "netpipe.h"
#include "vm.h"

#define SLICE (1u << 20) /* jumps and calls per slice */

struct rt {
	struct np_run *run;
	const struct np_run_host *rh;
	struct vm_module mod;
	struct vm *vm;
	int evfd;
	int poked;
	int finished;
};

static const struct np_host *host;

static int rt_accepts(const char *program)
{
	size_t l = strlen(program);
	return l > 4 && strcmp(program + l - 4, ".rbc") == 0;
}

/* The module's path: relative to the manifest's folder. */
static int resolve(const char *program, const char *manifest, char *out, size_t outlen)
{
	if (program[0] == '/' || !manifest || !strchr(manifest, '/')) {
		if ((size_t)snprintf(out, outlen, "%s", program) >= outlen)
			return -ENAMETOOLONG;
		return 0;
	}
	int dl = (int)(strrchr(manifest, '/') - manifest);
	if ((size_t)snprintf(out, outlen, "%.*s/%s", dl, manifest, program) >= outlen)
		return -ENAMETOOLONG;
	return 0;
}

static int rt_validate(const char *program, const char *manifest, char *err, size_t errlen)
{
	char path[PATH_MAX];
	if (resolve(program, manifest, path, sizeof path) < 0) {
		snprintf(err, errlen, "program path too long");
		return -ENAMETOOLONG;
	}
	struct vm_module m;
	int rc = vm_load_file(path, &m, err, errlen);
	if (rc == 0)
		vm_module_free(&m);
	return rc;
}

/* ---- the VM's channel I/O, through the broker ---- */

static int io_open(void *ctx, const char *alias, size_t len, void **chan)
{
	struct rt *t = ctx;
	for (uint32_t i = 0; i < t->run->nchannels; i++) {
		struct np_channel *ch = t->run->channels[i];
		if (strlen(ch->alias) == len && memcmp(ch->alias, alias, len) == 0) {
			*chan = ch;
			return 0;
		}
	}
	return -ENOENT;
}

static int64_t io_read(void *ctx, void *chan, void *buf, size_t len)
{
	struct rt *t = ctx;
	return t->rh->read(t->run, chan, buf, len);
}

static int64_t io_write(void *ctx, void *chan, const void *buf, size_t len)
{
	struct rt *t = ctx;
	return t->rh->write(t->run, chan, buf, len);
}

static int64_t io_seek(void *ctx, void *chan, int64_t off, int whence)
{
	struct rt *t = ctx;
	return t->rh->seek(t->run, chan, off, whence);
}

static int io_close(void *ctx, void *chan)
{
	struct rt *t = ctx;
	return t->rh->close(t->run, chan);
}

static void io_log(void *ctx, const char *msg)
{
	struct rt *t = ctx;
	t->rh->log(t->run, NP_LOG_ERROR, "%s", msg);
}

/* ---- running ---- */

static void poke(struct rt *t)
{
	if (!t->poked) {
		uint64_t one = 1;
		if (write(t->evfd, &one, sizeof one) == sizeof one)
			t->poked = 1;
	}
}

static void release(struct rt *t)
{
	if (t->evfd >= 0) {
		t->rh->watch_fd(t->run, t->evfd, 0);
		close(t->evfd);
		t->evfd = -1;
	}
	vm_free(t->vm);
	t->vm = NULL;
	vm_module_free(&t->mod);
}

/* The program ended: the broker closes the channels (stop() is not
 * called after exit(), so everything goes now). */
static void finish(struct rt *t, int status)
{
	t->finished = 1;
	release(t);
	t->rh->exit(t->run, status);
}

/* One slice; then exit, wait for I/O, or come back after the loop ran. */
static void step(struct rt *t)
{
	if (t->finished || !t->vm)
		return;
	switch (vm_run(t->vm, SLICE)) {
	case VM_RUN_DONE:
		finish(t, vm_exit_status(t->vm));
		break;
	case VM_RUN_TRAP:
		/* io_log printed the trap. */
		finish(t, vm_exit_status(t->vm));
		break;
	case VM_RUN_MORE:
		poke(t);
		break;
	case VM_RUN_WAIT:
		break;
	}
}

static int rt_start(struct np_run *run, const struct np_run_host *rh, char *err, size_t errlen)
{
	struct rt *t = run->state;
	t->run = run;
	t->rh = rh;
	t->evfd = -1;
	char path[PATH_MAX];
	if (resolve(run->program, run->manifest, path, sizeof path) < 0) {
		snprintf(err, errlen, "program path too long");
		return -ENAMETOOLONG;
	}
	int rc = vm_load_file(path, &t->mod, err, errlen);
	if (rc < 0)
		return rc;
	static const struct vm_io io = {NULL, io_open, io_read, io_write, io_seek, io_close, io_log};
	struct vm_io mine = io;
	mine.ctx = t;
	struct vm_limits lim = {.memory = run->memory > 0 ? (size_t)run->memory : 0};
	t->vm = vm_new(&t->mod, &mine, &lim);
	if (!t->vm) {
		vm_module_free(&t->mod);
		snprintf(err, errlen, "out of memory starting the VM");
		return -ENOMEM;
	}
	t->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (t->evfd < 0 || (rc = rh->watch_fd(run, t->evfd, NP_IN)) < 0) {
		rc = t->evfd < 0 ? -errno : rc;
		snprintf(err, errlen, "eventfd: %s", strerror(-rc));
		if (t->evfd >= 0) {
			close(t->evfd);
			t->evfd = -1;
		}
		release(t); /* a failed start gets no stop() */
		return rc;
	}
	host->log(host, NP_LOG_DEBUG, "running %s (%u functions)", path, t->mod.nfuncs);
	poke(t); /* the first slice runs from the loop */
	return 0;
}

static void rt_channel_event(struct np_run *run, struct np_channel *ch, uint32_t events)
{
	struct rt *t = run->state;
	(void)events;
	if (!t->vm)
		return;
	vm_io_ready(t->vm, ch);
	step(t);
}

static void rt_fd_event(struct np_run *run, int fd, uint32_t events)
{
	struct rt *t = run->state;
	(void)events;
	uint64_t n;
	if (fd == t->evfd && read(fd, &n, sizeof n) == sizeof n)
		t->poked = 0;
	step(t);
}

static void rt_stop(struct np_run *run)
{
	release(run->state);
}

static int rt_init(const struct np_host *h)
{
	host = h;
	return 0;
}

static const struct np_runtime_ops runtime = {
	.struct_size = sizeof(struct np_runtime_ops),
	.state_size = sizeof(struct rt),
	.accepts = rt_accepts,
	.validate = rt_validate,
	.start = rt_start,
	.channel_event = rt_channel_event,
	.fd_event = rt_fd_event,
	.stop = rt_stop,
};

static const struct np_plugin plugin = {
	.struct_size = sizeof(struct np_plugin),
	.magic = NP_MAGIC,
	.abi_major = NP_ABI_MAJOR,
	.abi_minor = NP_ABI_MINOR,
	.kind = NP_KIND_RUNTIME,
	.name = "vm",
	.version = "0.1",
	.license = "MIT",
	.description = "runs Program = prog.rbc (Rift VM bytecode) on the broker's loop",
	.init = rt_init,
	.runtime = &runtime,
};

NP_EXPORT const struct np_plugin *np_plugin_entry(const struct np_host *h)
{
	(void)h;
	return &plugin;
}
