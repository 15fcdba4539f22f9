/*
 * broken_pipe.c - the sample transport with one bug switched on by the
 * environment variable RIFT_SAMPLE_BUG, so that the test suite can check
 * that the kit catches each kind of violation, for the right reason
 * (expect-fail.sh). Not an example to follow.
 */
#define np_plugin_entry sample_entry
#include "sample_pipe.c"
#undef np_plugin_entry

#include <signal.h>
#include <stdlib.h>
#include <time.h>

static const char *bug = "";
static struct np_plugin broken;

static int is(const char *name)
{
	return strcmp(bug, name) == 0;
}

static ssize_t br_read(struct np_pipe *pipe, void *buf, size_t len)
{
	static uint64_t seen;
	struct sp *s = pipe->state;
	if (is("early_eof") && s->fd < 0)
		return 0; /* EOF before any writer (rule 2) */
	ssize_t n = sp_read(pipe, buf, len);
	if (is("eof_on_reset") && n == -ECONNRESET)
		return 0; /* a killed writer looks finished (rule 5) */
	if (is("blocks") && n == -EAGAIN) {
		struct timespec ts = { 0, 150 * 1000 * 1000 }; /* waits instead */
		nanosleep(&ts, NULL);
	}
	if (is("corrupt") && n > 0) { /* flips one bit of byte 100000 (rule 6) */
		if (seen <= 100000 && seen + (uint64_t)n > 100000)
			((uint8_t *)buf)[100000 - seen] ^= 1;
		seen += (uint64_t)n;
	}
	return n;
}

static ssize_t br_write(struct np_pipe *pipe, const void *buf, size_t len)
{
	struct sp *s = pipe->state;
	if (is("early_write") && s->fd < 0)
		return (ssize_t)len; /* "written" with no reader (rule 1) */
	ssize_t n = sp_write(pipe, buf, len);
	if (is("sigpipe") && n == -EPIPE)
		raise(SIGPIPE); /* as a plain write(2) on a socket would (rule 4) */
	return n;
}

static uint32_t br_ready(struct np_pipe *pipe)
{
	uint32_t r = sp_ready(pipe);
	if (is("ready_lies")) /* promises what the op then refuses */
		r |= pipe->mode == NP_READ ? NP_IN : NP_OUT;
	return r;
}

static int br_ctl(struct np_pipe *pipe, int op, void *arg)
{
	(void)pipe, (void)op, (void)arg;
	return 0; /* "knows" every op */
}

NP_EXPORT const struct np_plugin *np_plugin_entry(const struct np_host *host);

NP_EXPORT const struct np_plugin *np_plugin_entry(const struct np_host *host)
{
	const char *b = getenv("RIFT_SAMPLE_BUG");
	bug = b ? b : "";
	broken = *sample_entry(host);
	broken.name = "broken";
	broken.read = br_read;
	broken.write = br_write;
	broken.ready = br_ready;
	if (is("ctl_ok"))
		broken.ctl = br_ctl;
	if (is("bad_magic"))
		broken.magic ^= 1;
	return &broken;
}
