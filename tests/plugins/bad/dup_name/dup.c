/* A valid transport named 'dup', built twice (dup_1.so, dup_2.so) into one
 * directory: dup_1.so sorts first and loads, dup_2.so is refused: "name
 * 'dup' is already taken by .../dup_1.so". */
#include "fixture.h"

static struct np_plugin plugin;

NP_EXPORT const struct np_plugin *np_plugin_entry(const struct np_host *host)
{
	(void)host;
	plugin = fx_plugin("dup");
	plugin.description = "a valid fixture built twice under one name";
	return &plugin;
}
