/* A shared object without np_plugin_entry: the entry point is misspelt,
 * as in a plugin built from a stale template. Refused: "no
 * np_plugin_entry symbol". */
#include "fixture.h"

static struct np_plugin plugin;

NP_EXPORT const struct np_plugin *np_plugin_entri(const struct np_host *host);

NP_EXPORT const struct np_plugin *np_plugin_entri(const struct np_host *host)
{
	(void)host;
	plugin = fx_plugin("no_entry");
	return &plugin;
}
