/*
 * fixture.h - the plugin every broken fixture starts from.
 *
 * fx_plugin() returns a complete, valid 1.0 transport whose ops do nothing
 * useful; a fixture copies it and breaks exactly one thing, so the broker
 * has exactly one reason to refuse it and the test can name that reason.
 * Built with hidden visibility like a real plugin (tests/plugins/bad/).
 */
#ifndef RIFT_TEST_FIXTURE_H
#define RIFT_TEST_FIXTURE_H

#include <errno.h>

#include "netpipe.h"

static inline int fx_open(struct np_pipe *pipe, const struct np_open_args *args)
{
	(void)pipe;
	(void)args;
	return -ENOTSUP;
}

static inline int fx_close(struct np_pipe *pipe, uint32_t flags)
{
	(void)pipe;
	(void)flags;
	return 0;
}

static inline ssize_t fx_read(struct np_pipe *pipe, void *buf, size_t len)
{
	(void)pipe;
	(void)buf;
	(void)len;
	return -EBADF;
}

static inline ssize_t fx_write(struct np_pipe *pipe, const void *buf, size_t len)
{
	(void)pipe;
	(void)buf;
	(void)len;
	return -EBADF;
}

static inline uint32_t fx_ready(struct np_pipe *pipe)
{
	(void)pipe;
	return NP_ERR;
}

static inline struct np_plugin fx_plugin(const char *name)
{
	return (struct np_plugin){
		.struct_size = sizeof(struct np_plugin),
		.magic = NP_MAGIC,
		.abi_major = NP_ABI_MAJOR,
		.abi_minor = NP_ABI_MINOR,
		.kind = NP_KIND_TRANSPORT,
		.state_size = 0,
		.name = name,
		.version = "0.0",
		.license = "MIT",
		.description = "a test fixture (tests/plugins)",
		.caps = 0,
		.open = fx_open,
		.close = fx_close,
		.read = fx_read,
		.write = fx_write,
		.ready = fx_ready,
	};
}

#endif
