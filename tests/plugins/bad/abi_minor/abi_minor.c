/* A plugin built against a newer minor ABI than this broker's: it may
 * rely on fields the broker does not know. Refused: "is newer than". */
#include "fixture.h"

static struct np_plugin plugin;

NP_EXPORT const struct np_plugin *np_plugin_entry(const struct np_host *host)
{
	(void)host;
	plugin = fx_plugin("abi_minor");
	plugin.abi_minor = NP_ABI_MINOR + 1;
	return &plugin;
}
