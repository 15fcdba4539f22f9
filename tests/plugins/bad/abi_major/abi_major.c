/* A plugin for the next major ABI. Refused: "ABI major version". */
#include "fixture.h"

static struct np_plugin plugin;

NP_EXPORT const struct np_plugin *np_plugin_entry(const struct np_host *host)
{
	(void)host;
	plugin = fx_plugin("abi_major");
	plugin.abi_major = NP_ABI_MAJOR + 1;
	return &plugin;
}
