/* A transport without read(), a required op. Refused: "required op
 * 'read' is missing". */
#include "fixture.h"

static struct np_plugin plugin;

NP_EXPORT const struct np_plugin *np_plugin_entry(const struct np_host *host)
{
	(void)host;
	plugin = fx_plugin("no_read");
	plugin.read = NULL;
	return &plugin;
}
