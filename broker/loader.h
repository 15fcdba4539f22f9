/*
 * loader.h - finds, checks and registers plugins (DESIGN.md section 3).
 *
 * Plugin directories are searched in the order they were added; the broker
 * adds them as: every -P option, every Plugins key of the manifest, each
 * entry of $RIFT_PLUGIN_PATH (colon-separated), then the install location
 * (RIFT_PLUGIN_DIR). A directory holds <name>.so files, or folders that do
 * (as the build tree does: build/plugins/unix/unix.so). When two plugins
 * have the same name, the first one found wins and the later one is
 * refused. Every refusal is one log line, "plugin PATH: refused: REASON",
 * and loading goes on with the next file.
 */
#ifndef RIFT_LOADER_H
#define RIFT_LOADER_H

#include <stdbool.h>
#include <stddef.h>

#include "netpipe.h"

struct ev_loop;

struct ld_plugin {
	const struct np_plugin *p;
	char *path;
	void *handle;
	struct np_host host;         /* this plugin's copy; host.broker = this */
	struct ld_registry *reg;
	struct ld_plugin *next_refused; /* kept alive after a failed init */
};

struct ld_registry {
	struct ev_loop *loop;
	struct ld_plugin **plugins;
	int nplugins;
	char **dirs;
	int ndirs;
	int refused;                 /* how many files were refused */
	struct ld_plugin *refused_list;
	int first_default;           /* dirs from here on are the defaults */
};

void ld_init(struct ld_registry *reg, struct ev_loop *loop);
/* Append a search directory (copied). */
int ld_add_dir(struct ld_registry *reg, const char *dir);
/* Append $RIFT_PLUGIN_PATH's entries and then the install directory. */
void ld_add_default_dirs(struct ld_registry *reg);
/* Load every plugin of every directory, in order. Returns the number
 * loaded. Missing directories are skipped (quietly for the defaults). */
int ld_load_all(struct ld_registry *reg);
/* Load one file. 0, or -errno after logging the refusal line. */
int ld_load_file(struct ld_registry *reg, const char *path);

/* The transport for a scheme, or NULL. */
struct ld_plugin *ld_find(struct ld_registry *reg, const char *name);
/* The first runtime that accepts this Program value, or NULL. */
struct ld_plugin *ld_find_runtime(struct ld_registry *reg, const char *program);

/* "SEEK,TRUNCATE,..." for a capability mask, into buf. */
const char *ld_caps_string(unsigned long long caps, char *buf, size_t len);

/* Call every plugin's fini and free the registry (handles stay open:
 * plugins are never unloaded while their threads may run). */
void ld_fini(struct ld_registry *reg);

#endif
