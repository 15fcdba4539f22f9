/* A plugin whose init fails (its library could not start, say). Refused:
 * "init failed: Input/output error"; its fini must not be called. */
#include <stdio.h>
#include <stdlib.h>

#include "fixture.h"

static struct np_plugin plugin;

static int init_fail_init(const struct np_host *host)
{
	(void)host;
	return -EIO;
}

static void init_fail_fini(void)
{
	/* DESIGN.md section 3: fini is not called after a failed init. */
	fputs("init_fail: fini called after a failed init\n", stderr);
	abort();
}

NP_EXPORT const struct np_plugin *np_plugin_entry(const struct np_host *host)
{
	(void)host;
	plugin = fx_plugin("init_fail");
	plugin.init = init_fail_init;
	plugin.fini = init_fail_fini;
	return &plugin;
}
