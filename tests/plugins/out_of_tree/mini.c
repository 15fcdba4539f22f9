/*
 * mini.c - the smallest useful Rift transport, built out of the tree the
 * way a third party builds one:
 *
 *     cc -shared -fPIC $(pkg-config --cflags netpipe-plugin) mini.c -o mini.so
 *
 *   Netpipe:mini:/abs/path:w   writes the bytes to a regular file
 *   Netpipe:mini:/abs/path:r   reads them back to end-of-file
 *
 * Regular files never block, so it watches no fd: ready() always says the
 * pipe can move. Everything but the entry point is static, so it exports
 * that one symbol even without -fvisibility=hidden.
 */
#define _POSIX_C_SOURCE 200809L /* O_CLOEXEC under -std=c99 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <netpipe.h>

struct mini {
	int fd;
	int is_open; /* the state starts zeroed: fd 0 is not ours */
};

static int mini_validate(const char *address, uint32_t mode, char *err, size_t errlen)
{
	if (address[0] != '/' || mode == NP_RDWR) {
		snprintf(err, errlen, "mini wants an absolute path, opened :r or :w");
		return -EINVAL;
	}
	return 0;
}

static int mini_open(struct np_pipe *p, const struct np_open_args *a)
{
	struct mini *m = p->state;
	char err[128];
	int rc = mini_validate(a->address, a->mode, err, sizeof err);
	if (rc < 0)
		return rc;
	m->fd = a->mode == NP_READ ? open(a->address, O_RDONLY | O_CLOEXEC)
	                           : open(a->address, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (m->fd < 0)
		return -errno;
	m->is_open = 1;
	return 0;
}

static int mini_close(struct np_pipe *p, uint32_t flags)
{
	struct mini *m = p->state;
	(void)flags;
	if (!m->is_open)
		return 0;
	m->is_open = 0;
	return close(m->fd) < 0 && errno != EINTR ? -errno : 0;
}

static ssize_t mini_read(struct np_pipe *p, void *buf, size_t len)
{
	ssize_t n = read(((struct mini *)p->state)->fd, buf, len);
	return n < 0 ? -errno : n;
}

static ssize_t mini_write(struct np_pipe *p, const void *buf, size_t len)
{
	ssize_t n = write(((struct mini *)p->state)->fd, buf, len);
	return n < 0 ? -errno : n;
}

static uint32_t mini_ready(struct np_pipe *p)
{
	return p->mode == NP_READ ? NP_IN : NP_OUT;
}

static const struct np_plugin plugin = {
	.struct_size = sizeof(struct np_plugin),
	.magic = NP_MAGIC,
	.abi_major = NP_ABI_MAJOR,
	.abi_minor = NP_ABI_MINOR,
	.kind = NP_KIND_TRANSPORT,
	.state_size = sizeof(struct mini),
	.name = "mini",
	.version = "0.1",
	.license = "MIT",
	.description = "regular files, the out-of-tree example",
	.validate = mini_validate,
	.open = mini_open,
	.close = mini_close,
	.read = mini_read,
	.write = mini_write,
	.ready = mini_ready,
};

NP_EXPORT const struct np_plugin *np_plugin_entry(const struct np_host *host)
{
	(void)host;
	return &plugin;
}
