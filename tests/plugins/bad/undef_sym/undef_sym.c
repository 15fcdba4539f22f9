/* Needs a function no library provides (a plugin linked against a newer
 * libfoo than the one installed). dlopen(RTLD_NOW) fails. Refused:
 * "dlopen failed: ... undefined symbol: rift_fixture_missing". */
#include "fixture.h"

__attribute__((visibility("default"))) int rift_fixture_missing(void);

static struct np_plugin plugin;

NP_EXPORT const struct np_plugin *np_plugin_entry(const struct np_host *host)
{
	(void)host;
	plugin = fx_plugin("undef_sym");
	plugin.state_size = (uint32_t)rift_fixture_missing();
	return &plugin;
}
