/* The magic is NP_MAGIC with its bytes swapped, as a plugin built for the
 * other byte order would carry. Refused: "bad magic". */
#include "fixture.h"

static struct np_plugin plugin;

NP_EXPORT const struct np_plugin *np_plugin_entry(const struct np_host *host)
{
	(void)host;
	plugin = fx_plugin("bad_magic");
	plugin.magic = __builtin_bswap32(NP_MAGIC);
	return &plugin;
}
