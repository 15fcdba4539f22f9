/*
 * hostkeep.c - a valid plugin that keeps the np_host its entry point was
 * given (the ABI allows that: "every service it may use comes through the
 * np_host it is given") and logs through it from fini, at info level
 * (broker -v shows it: "hostkeep: fini").
 *
 * It checks that the host a loaded plugin holds stays valid for as long as
 * the plugin is loaded, also when the same file is found a second time
 * (-P DIR -P DIR, or -P DIR with DIR in $RIFT_PLUGIN_PATH): dlopen then
 * returns the already-loaded object and its entry point runs again.
 */
#include "fixture.h"

static struct np_plugin plugin;
static const struct np_host *host;

static void hostkeep_fini(void)
{
	host->log(host, NP_LOG_INFO, "fini");
}

NP_EXPORT const struct np_plugin *np_plugin_entry(const struct np_host *h)
{
	host = h;
	plugin = fx_plugin("hostkeep");
	plugin.version = "1.0";
	plugin.description = "keeps its host from the entry point (a test fixture)";
	plugin.fini = hostkeep_fini;
	return &plugin;
}
