/* The entry point returns NULL (a plugin that declines to load). Refused:
 * "np_plugin_entry returned NULL". */
#include "fixture.h"

NP_EXPORT const struct np_plugin *np_plugin_entry(const struct np_host *host)
{
	(void)host;
	return NULL;
}
