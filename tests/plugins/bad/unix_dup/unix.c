/* A valid transport that calls itself 'unix'. Searched after the real
 * plugins it is refused ("name 'unix' is already taken by
 * .../plugins/unix/unix.so"); searched before them it wins and the real
 * one is refused, which is how a user overrides a shipped plugin. */
#include "fixture.h"

static struct np_plugin plugin;

NP_EXPORT const struct np_plugin *np_plugin_entry(const struct np_host *host)
{
	(void)host;
	plugin = fx_plugin("unix");
	plugin.version = "0.0-fixture";
	return &plugin;
}
