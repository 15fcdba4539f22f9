/* An np_plugin that claims to end before the 1.0 fields do (its runtime
 * slot would be missing). Refused: "struct_size". */
#include "fixture.h"

static struct np_plugin plugin;

NP_EXPORT const struct np_plugin *np_plugin_entry(const struct np_host *host)
{
	(void)host;
	plugin = fx_plugin("struct_size");
	plugin.struct_size = (uint32_t)NP_PLUGIN_SIZE_1_0 - (uint32_t)sizeof(void *);
	return &plugin;
}
