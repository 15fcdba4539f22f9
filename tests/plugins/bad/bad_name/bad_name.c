/* A name that cannot be a descriptor scheme. Refused: "invalid name". */
#include "fixture.h"

static struct np_plugin plugin;

NP_EXPORT const struct np_plugin *np_plugin_entry(const struct np_host *host)
{
	(void)host;
	plugin = fx_plugin("Bad Name:");
	return &plugin;
}
