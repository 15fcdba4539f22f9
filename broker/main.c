/*
 * main.c - the broker's command line.
 *
 *   broker -m FILE [-P DIR]...         run the manifest
 *   broker --check -m FILE [-P DIR]... validate it, open nothing
 *   broker --list-plugins [-P DIR]...  what would be loaded, and from where
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heap.h"
#include "loader.h"
#include "log.h"
#include "loop.h"
#include "manifest.h"
#include "run.h"

static void usage(FILE *f)
{
	fputs("usage: broker -m MANIFEST [-P DIR]... [--check] [-v|-q]\n"
	      "       broker --list-plugins [-P DIR]...\n"
	      "\n"
	      "  -m, --manifest FILE  the manifest to run (docs/manifest.md)\n"
	      "  -c, --check          validate the manifest and every channel, open nothing\n"
	      "  -P, --plugins DIR    search DIR for plugins first (repeatable)\n"
	      "  -l, --list-plugins   list the plugins found: name, version, license,\n"
	      "                       capabilities, path\n"
	      "  -v, --verbose        more log lines (repeat for debug)\n"
	      "  -q, --quiet          errors only\n"
	      "  -V, --version        print the version\n"
	      "\n"
	      "Plugin directories, in order: -P, the manifest's Plugins keys,\n"
	      "$RIFT_PLUGIN_PATH (colon-separated), " RIFT_PLUGIN_DIR ".\n"
	      "Exit status: the program's; 2 setup error; 3 a channel failed;\n"
	      "124 Timeout; 128+N signal N.\n", f);
}

static void list_plugins(struct ld_registry *reg)
{
	printf("%-10s %-8s %-10s %-9s %-40s %s\n", "NAME", "VERSION", "LICENSE",
	       "KIND", "CAPABILITIES", "PATH");
	for (int i = 0; i < reg->nplugins; i++) {
		const struct np_plugin *p = reg->plugins[i]->p;
		char caps[256];
		printf("%-10s %-8s %-10s %-9s %-40s %s\n", p->name, p->version ? p->version : "-",
		       p->license ? p->license : "-",
		       p->kind == NP_KIND_RUNTIME ? "runtime" : "transport",
		       ld_caps_string(p->caps, caps, sizeof caps), reg->plugins[i]->path);
	}
}

int main(int argc, char **argv)
{
	static const struct option longs[] = {
		{"manifest", required_argument, 0, 'm'},
		{"check", no_argument, 0, 'c'},
		{"plugins", required_argument, 0, 'P'},
		{"list-plugins", no_argument, 0, 'l'},
		{"verbose", no_argument, 0, 'v'},
		{"quiet", no_argument, 0, 'q'},
		{"version", no_argument, 0, 'V'},
		{"help", no_argument, 0, 'h'},
		{0, 0, 0, 0},
	};
	const char *manifest = NULL;
	int check = 0, list = 0, verbose = 0, quiet = 0, c;
	int status = RN_EXIT_SETUP;
	struct ev_loop *loop = ev_new();
	struct ld_registry reg;
	struct mf_manifest mf = {0};
	struct rn_run rn = {.sigfd = -1}; /* rn_free is safe on it */
	char err[2048];

	lg_set_program("broker");
	/* A reader that goes away must be an -EPIPE on its pipe, not our end. */
	signal(SIGPIPE, SIG_IGN);
	if (!loop) {
		lg_log(LG_ERROR, "cannot create the event loop: %s", strerror(errno));
		return RN_EXIT_SETUP;
	}
	ld_init(&reg, loop);
	while ((c = getopt_long(argc, argv, "m:cP:lvqVh", longs, NULL)) != -1) {
		switch (c) {
		case 'm': manifest = optarg; break;
		case 'c': check = 1; break;
		case 'P': ld_add_dir(&reg, optarg); break;
		case 'l': list = 1; break;
		case 'v': verbose++; break;
		case 'q': quiet = 1; break;
		case 'V': printf("broker (rift) %s, plugin ABI %d.%d\n", RIFT_VERSION,
		                 NP_ABI_MAJOR, NP_ABI_MINOR);
			status = 0;
			goto out;
		case 'h': usage(stdout); status = 0; goto out;
		default: usage(stderr); goto out;
		}
	}
	if (optind < argc) {
		lg_log(LG_ERROR, "unexpected argument '%s'", argv[optind]);
		usage(stderr);
		goto out;
	}
	if (quiet)
		lg_set_level(LG_ERROR);
	else if (verbose)
		lg_set_level(verbose > 1 ? LG_DEBUG : LG_INFO);
	if (!manifest && !list) {
		usage(stderr);
		goto out;
	}
	/* Before any plugin allocates: the heap settings are the process's. */
	int hp = hp_tune();
	if (hp == (HP_TRIM_SET | HP_MMAP_SET))
		lg_log(LG_DEBUG, "malloc: trim threshold %d, mmap threshold %d bytes",
		       HP_TRIM_THRESHOLD, HP_MMAP_THRESHOLD);
	else
		lg_log(LG_DEBUG, "malloc: the user's (GLIBC_TUNABLES) or the C "
		       "library's own settings kept (broker/heap.h)");

	if (manifest) {
		int rc = mf_parse_file(manifest, &mf, err, sizeof err);
		if (rc < 0) {
			lg_log(LG_ERROR, "%s", err);
			goto out;
		}
		for (int i = 0; i < mf.nplugin_dirs; i++)
			ld_add_dir(&reg, mf.plugin_dirs[i]);
	}
	ld_add_default_dirs(&reg);
	if (!list && !check)
		rn_block_signals();
	ld_load_all(&reg);
	if (list) {
		list_plugins(&reg);
		if (!manifest) {
			status = 0;
			goto out;
		}
	}

	/* Validate everything before opening anything, in both modes. */
	if (rn_prepare(&rn, loop, &reg, &mf, err, sizeof err) < 0 ||
	    rn_check(&rn, err, sizeof err) < 0) {
		lg_log(LG_ERROR, "%s", err);
		status = RN_EXIT_SETUP;
	} else if (check) {
		printf("%s: ok (%d channel%s, Program runs on '%s')\n", mf.path, mf.nchannels,
		       mf.nchannels == 1 ? "" : "s", rn.runtime->p->name);
		status = 0;
	} else {
		status = rn_execute(&rn);
	}
out:
	rn_free(&rn);
	mf_free(&mf);
	ld_fini(&reg);
	ev_free(loop);
	return status;
}
