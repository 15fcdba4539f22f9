/* A runtime without stop(), a required runtime op. Refused: "required op
 * 'runtime.stop' is missing". */
#include "fixture.h"

static int rt_accepts(const char *program)
{
	(void)program;
	return 0;
}

static int rt_start(struct np_run *run, const struct np_run_host *rh, char *err,
                    size_t errlen)
{
	(void)run;
	(void)rh;
	(void)err;
	(void)errlen;
	return -ENOTSUP;
}

static void rt_channel_event(struct np_run *run, struct np_channel *ch, uint32_t ev)
{
	(void)run;
	(void)ch;
	(void)ev;
}

static void rt_fd_event(struct np_run *run, int fd, uint32_t ev)
{
	(void)run;
	(void)fd;
	(void)ev;
}

static const struct np_runtime_ops ops = {
	.struct_size = sizeof(struct np_runtime_ops),
	.accepts = rt_accepts,
	.start = rt_start,
	.channel_event = rt_channel_event,
	.fd_event = rt_fd_event,
	.stop = NULL,
};

static struct np_plugin plugin;

NP_EXPORT const struct np_plugin *np_plugin_entry(const struct np_host *host)
{
	(void)host;
	plugin = fx_plugin("runtime_op");
	plugin.kind = NP_KIND_RUNTIME;
	plugin.open = NULL;
	plugin.close = NULL;
	plugin.read = NULL;
	plugin.write = NULL;
	plugin.ready = NULL;
	plugin.runtime = &ops;
	return &plugin;
}
