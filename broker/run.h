/*
 * run.h - one run of a manifest: its channels, its runtime, its end.
 *
 * rn_prepare resolves every channel and picks the runtime for Program;
 * rn_check asks each plugin to validate (broker --check); rn_execute opens
 * the channels, starts the program and drives the loop until the program
 * has exited and every channel is closed, or the Timeout passes.
 *
 * Exit status (docs/manifest.md): the program's own status; 3 when the
 * program succeeded but a channel failed; 124 after the Timeout; 128+N
 * after signal N; 2 when the run could not start.
 */
#ifndef RIFT_RUN_H
#define RIFT_RUN_H

#include <stdbool.h>
#include <stddef.h>

#include "channel.h"
#include "loop.h"
#include "netpipe.h"

#define RN_EXIT_SETUP   2
#define RN_EXIT_CHANNEL 3
#define RN_EXIT_TIMEOUT 124

struct ld_registry;
struct ld_plugin;
struct mf_manifest;

struct rn_run {
	struct ev_loop *loop;
	struct ld_registry *reg;
	const struct mf_manifest *mf;
	struct ld_plugin *runtime;
	struct ch_channel *chans;
	struct np_channel **pubs;
	int nchans;
	int open;                 /* channels not closed yet */
	struct np_run run;
	struct np_run_host rh;
	bool started, exited, stopped;
	int status;               /* the program's, once exited */
	int stop_status;          /* 124 or 128+sig when stopped */
	struct ev_timer timeout;
	int sigfd;
	void *state;
};

/* Block the signals a run turns into a clean stop (SIGINT, SIGTERM,
 * SIGHUP, SIGQUIT). Call it before plugins are loaded: threads a plugin
 * starts in init() inherit the mask, so the signal reaches the loop
 * instead of killing the broker from another thread. */
void rn_block_signals(void);

int rn_prepare(struct rn_run *rn, struct ev_loop *loop, struct ld_registry *reg,
               const struct mf_manifest *mf, char *err, size_t errlen);
int rn_check(struct rn_run *rn, char *err, size_t errlen);
/* Run to the end; returns the broker's exit status. */
int rn_execute(struct rn_run *rn);
void rn_free(struct rn_run *rn);

#endif
