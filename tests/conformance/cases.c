/*
 * cases.c - the conformance cases, one function per rule of DESIGN.md
 * section 4, and the child writer process some of them start.
 *
 * Every wait is a turn of the kit's loop bounded by the case's deadline;
 * nothing sleeps to synchronise. A case returns 0, or -1 after failf()
 * recorded why; the runner of the case (kit_run_case) then aborts whatever
 * pipes and child processes the case left behind.
 */
#include "kit.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#define KiB 1024ull
#define MiB (1024ull * 1024)

struct child {
	pid_t pid;
	int fd;                  /* its stdout, -1 once at EOF */
	char line[1024];
	size_t nline;
	int wrote_seen;
	uint64_t wrote;
	char digest[2 * crypto_generichash_BYTES + 1];
	int closed_seen;
	int closed_rc;
	char error[KIT_MSG];
	int status;               /* its wait status once reaped (pid is then 0) */
};

struct ctx {
	struct kit *k;
	struct kit_opts *o;
	const struct kit_case *kc;
	int failed;
	char fail[KIT_MSG];
	char info[KIT_MSG];
	int skipped;
	int64_t deadline;
	struct child kids[4];
	int nkids;
};

static int failf(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int failf(struct ctx *c, const char *fmt, ...)
{
	va_list ap;
	if (!c->failed++) {
		va_start(ap, fmt);
		vsnprintf(c->fail, sizeof c->fail, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static void infof(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void infof(struct ctx *c, const char *fmt, ...)
{
	va_list ap;
	size_t n = strlen(c->info);
	if (n && n < sizeof c->info - 2) {
		strcpy(c->info + n, "; ");
		n += 2;
	}
	va_start(ap, fmt);
	vsnprintf(c->info + n, sizeof c->info - n, fmt, ap);
	va_end(ap);
}

#define CHECK(cond, ...) do { if (!(cond)) return failf(c, __VA_ARGS__); } while (0)

static unsigned long long ull(uint64_t v) { return (unsigned long long)v; }

static int64_t left_ms(struct ctx *c)
{
	int64_t l = c->deadline - kit_now();
	return l > 0 ? l : 0;
}

static struct kp *open_pipe(struct ctx *c, const char *label, uint32_t mode,
                            const char *addr, int etag)
{
	struct kp *p = kp_new(c->k, label, mode);
	if (!p) {
		failf(c, "internal: too many pipes");
		return NULL;
	}
	int rc = kp_open(p, addr, etag || c->o->etag);
	if (rc != 0) {
		failf(c, "open(\"%s\", %s) returned %s%s", addr, mode == NP_READ ? "NP_READ"
		      : "NP_WRITE", kit_err(rc), mode == NP_WRITE ? ": the writer must open "
		      "at once, even with no reader, and connect later (rule 7)" : "");
		return NULL;
	}
	return p;
}

/* Drive the loop for ms milliseconds (or until the deadline). */
static void idle(struct ctx *c, int64_t ms)
{
	int64_t end = kit_now() + ms;
	if (end > c->deadline)
		end = c->deadline;
	while (kit_now() < end)
		kit_poll(c->k, end - kit_now());
}

/* ---- child writers ---- */

static void child_line(struct child *ch, char *s)
{
	unsigned long long n;
	int rc;
	if (sscanf(s, "wrote %llu %64s", &n, ch->digest) == 2) {
		ch->wrote_seen = 1;
		ch->wrote = n;
	} else if (sscanf(s, "closed %d", &rc) == 1) {
		ch->closed_seen = 1;
		ch->closed_rc = rc;
	} else if (!strncmp(s, "error ", 6) && !ch->error[0]) {
		snprintf(ch->error, sizeof ch->error, "%s", s + 6);
	}
}

/* Read what the child said so far. */
static void child_poll(struct ctx *c, struct child *ch)
{
	if (ch->fd < 0)
		return;
	for (;;) {
		ssize_t n = read(ch->fd, ch->line + ch->nline, sizeof ch->line - 1 - ch->nline);
		if (n < 0)
			return;
		if (n == 0) {
			kit_aux_del(c->k, ch->fd);
			close(ch->fd);
			ch->fd = -1;
			return;
		}
		ch->nline += (size_t)n;
		ch->line[ch->nline] = '\0';
		char *nl;
		while ((nl = strchr(ch->line, '\n')) || ch->nline == sizeof ch->line - 1) {
			if (!nl)
				nl = ch->line + ch->nline - 1;
			*nl = '\0';
			child_line(ch, ch->line);
			size_t rest = ch->nline - (size_t)(nl + 1 - ch->line);
			memmove(ch->line, nl + 1, rest + 1);
			ch->nline = rest;
		}
	}
}

static struct child *start_writer(struct ctx *c, const char *addr, uint64_t n,
                                  uint64_t seed, int hold)
{
	char nb[32], sb[32], tb[32], lb[32];
	char *argv[24];
	int a = 0;
	if (c->nkids == 4) {
		failf(c, "internal: too many children");
		return NULL;
	}
	snprintf(nb, sizeof nb, "%llu", ull(n));
	snprintf(sb, sizeof sb, "%llu", ull(seed));
	/* Longer than the case: the case should see a stall first and say
	 * more about it than the child can. */
	snprintf(tb, sizeof tb, "%lld", (long long)left_ms(c) + 10000);
	snprintf(lb, sizeof lb, "%lld", (long long)c->o->op_limit_ms);
	argv[a++] = "netpipe-conformance";
	argv[a++] = "--child-writer";
	argv[a++] = "--seed";
	argv[a++] = sb;
	argv[a++] = "--timeout-ms";
	argv[a++] = tb;
	argv[a++] = "--op-limit-ms";
	argv[a++] = lb;
	if (hold)
		argv[a++] = "--hold";
	if (c->o->etag)
		argv[a++] = "--etag";
	if (c->o->verbose)
		argv[a++] = "--verbose";
	argv[a++] = "--";
	argv[a++] = (char *)c->o->plugin;
	argv[a++] = (char *)addr;
	argv[a++] = nb;
	argv[a] = NULL;
	struct child *ch = &c->kids[c->nkids];
	memset(ch, 0, sizeof *ch);
	ch->pid = kit_spawn(argv, &ch->fd);
	if (ch->pid < 0) {
		failf(c, "cannot start the writer process: %s", strerror(errno));
		return NULL;
	}
	c->nkids++;
	kit_aux_add(c->k, ch->fd);
	return ch;
}

/* Wait (bounded) for the child to exit by itself; its status or -1. */
static int child_end(struct ctx *c, struct child *ch)
{
	int64_t end = kit_now() + 5000 < c->deadline ? kit_now() + 5000 : c->deadline;
	while (ch->fd >= 0 && kit_now() < end) {
		child_poll(c, ch);
		if (ch->fd >= 0)
			kit_poll(c->k, end - kit_now());
	}
	child_poll(c, ch);
	int st = kit_reap(ch->pid, end - kit_now() > 0 ? end - kit_now() : 0, NULL);
	ch->pid = 0;
	return st;
}

/* For failure messages: whether the writer process still runs, and what
 * it said. */
static const char *child_state(struct child *ch)
{
	static char b[KIT_MSG + 64];
	int st;
	if (ch->pid > 0 && waitpid(ch->pid, &st, WNOHANG) == ch->pid) {
		ch->pid = 0;
		ch->status = st;
	}
	snprintf(b, sizeof b, "; the writer process %s%s%s",
	         ch->pid > 0 ? "is still running" : "had ended: ",
	         ch->pid > 0 ? "" : kit_status(ch->status),
	         ch->wrote_seen ? ", after reporting all its bytes written" : "");
	if (ch->error[0])
		snprintf(b + strlen(b), sizeof b - strlen(b), " (it said: %s)", ch->error);
	return b;
}

static void child_kill(struct ctx *c, struct child *ch)
{
	if (ch->pid > 0) {
		kill(ch->pid, SIGKILL);
		kit_reap(ch->pid, 5000, NULL);
		ch->pid = 0;
	}
	if (ch->fd >= 0) {
		kit_aux_del(c->k, ch->fd);
		close(ch->fd);
		ch->fd = -1;
	}
}

/* ---- the pump: move a stream from a writer to a reader ---- */

struct pump {
	struct kp *w;             /* NULL when a child process writes */
	struct kp *r;
	struct child *ch;
	uint64_t seed;
	uint64_t total;           /* bytes the writer writes */
	uint64_t stop_at;         /* stop once this many were read */
	uint64_t wrote, got;
	size_t wmax, wfixed;      /* write sizes: fixed, else 1..wmax */
	size_t rmax;              /* read sizes: rsize(), else 1..rmax */
	size_t (*rsize)(struct pump *);
	size_t rcycle;
	uint64_t wrng, rrng;
	int rolling;              /* stall = no progress for --timeout-ms, not the
	                             case's deadline passed */
	int close_writer;         /* clean-close the writer after total */
	int expect_eof;           /* read on until 0 */
	int wclosed, eof;
	uint64_t coff;            /* the current write chunk */
	size_t clen;
	uint8_t *wbuf, *rbuf, *ebuf;
	crypto_generichash_state h;
};

static void pump_init(struct pump *pm, struct kp *w, struct kp *r, uint64_t seed,
                      uint64_t total)
{
	memset(pm, 0, sizeof *pm);
	pm->w = w;
	pm->r = r;
	pm->seed = seed;
	pm->total = pm->stop_at = total;
	pm->wmax = pm->rmax = 256 * KiB;
	pm->wrng = seed ^ 0x77726974ull;
	pm->rrng = seed ^ 0x72656164ull;
	pm->wbuf = malloc(pm->wmax);
	pm->rbuf = malloc(pm->rmax + 1);
	pm->ebuf = malloc(pm->rmax + 1);
	crypto_generichash_init(&pm->h, NULL, 0, crypto_generichash_BYTES);
}

static void pump_free(struct pump *pm)
{
	free(pm->wbuf);
	free(pm->rbuf);
	free(pm->ebuf);
	pm->wbuf = pm->rbuf = pm->ebuf = NULL;
}

static void pump_digest(struct pump *pm, char *hex)
{
	unsigned char d[crypto_generichash_BYTES];
	crypto_generichash_final(&pm->h, d, sizeof d);
	sodium_bin2hex(hex, 2 * sizeof d + 1, d, sizeof d);
}

/* Account for n bytes just read into pm->rbuf: they must be the next
 * bytes of the stream. */
static int pump_take(struct ctx *c, struct pump *pm, size_t n)
{
	if (pm->got + n > pm->total)
		return failf(c, "read returned %zu bytes at offset %llu, past the %llu written: "
		             "bytes were duplicated or invented (rule 6)", n, ull(pm->got),
		             ull(pm->total));
	kit_stream(pm->seed, pm->got, pm->ebuf, n);
	if (memcmp(pm->rbuf, pm->ebuf, n) != 0) {
		size_t i = 0;
		while (pm->rbuf[i] == pm->ebuf[i])
			i++;
		return failf(c, "byte %llu of the stream differs: read 0x%02x, written 0x%02x: "
		             "bytes were lost, duplicated or reordered (rule 6)",
		             ull(pm->got + i), pm->rbuf[i], pm->ebuf[i]);
	}
	crypto_generichash_update(&pm->h, pm->rbuf, n);
	pm->got += n;
	return 0;
}

static size_t pump_rlen(struct pump *pm)
{
	size_t n = pm->rsize ? pm->rsize(pm) : kit_vary(&pm->rrng, pm->rmax);
	return n > pm->rmax ? pm->rmax : n;
}

static int pump_done(struct pump *pm)
{
	return (!pm->w || pm->wrote == pm->total) &&
	       (!pm->w || !pm->close_writer || pm->wclosed) &&
	       pm->got >= pm->stop_at && (!pm->expect_eof || pm->eof);
}

/* Write and read until done, retrying every op after each turn of the
 * loop (lenient: case nonblocking_contract is the strict one). */
/* One write of the pump's stream: the rest of the current chunk (a new
 * chunk, of varying size, when that one is done). Advances pm->wrote and
 * returns what the write returned. */
static ssize_t pump_write(struct pump *pm)
{
	if (pm->wrote == pm->coff + pm->clen) {
		pm->coff = pm->wrote;
		pm->clen = pm->wfixed ? pm->wfixed : kit_vary(&pm->wrng, pm->wmax);
		if (pm->clen > pm->total - pm->wrote)
			pm->clen = (size_t)(pm->total - pm->wrote);
		kit_stream(pm->seed, pm->coff, pm->wbuf, pm->clen);
	}
	size_t off = (size_t)(pm->wrote - pm->coff);
	ssize_t n = kp_write(pm->w, pm->wbuf + off, pm->clen - off);
	if (n > 0)
		pm->wrote += (uint64_t)n;
	return n;
}

static int pump_run(struct ctx *c, struct pump *pm)
{
	int64_t last = kit_now();
	for (;;) {
		int progress = 0;
		if (pm->w && pm->wrote < pm->total) {
			ssize_t n = pump_write(pm);
			if (n > 0) {
				progress = 1;
			} else if (n != -EAGAIN) {
				return failf(c, "write at byte %llu of %llu returned %s%s",
				             ull(pm->wrote), ull(pm->total), kit_err(n), kit_why(pm->w));
			}
		}
		if (pm->w && pm->close_writer && !pm->wclosed && pm->wrote == pm->total) {
			int rc = kp_close(pm->w, 0);
			if (rc != -EAGAIN) {
				pm->wclosed = 1;
				progress = 1;
				if (rc != 0)
					return failf(c, "the writer's clean close returned %s after "
					             "all %llu bytes were written", kit_err(rc),
					             ull(pm->total));
			}
		}
		if (pm->got < pm->stop_at || (pm->expect_eof && !pm->eof)) {
			ssize_t n = kp_read(pm->r, pm->rbuf, pump_rlen(pm));
			if (n > 0) {
				if (pump_take(c, pm, (size_t)n))
					return -1;
				progress = 1;
			} else if (n == 0) {
				if (pm->got < pm->total)
					return failf(c, "read returned 0 (EOF) after %llu of the %llu "
					             "bytes written: bytes were lost, or EOF came before "
					             "a clean close (rules 3, 6)", ull(pm->got),
					             ull(pm->total));
				pm->eof = 1;
				progress = 1;
			} else if (n != -EAGAIN) {
				return failf(c, "read at byte %llu of %llu returned %s%s%s",
				             ull(pm->got), ull(pm->total), kit_err(n), kit_why(pm->r),
				             pm->ch ? child_state(pm->ch) : "");
			}
		}
		if (pm->ch) {
			child_poll(c, pm->ch);
			if (pm->ch->error[0])
				return failf(c, "the writer process failed: %s", pm->ch->error);
			if (pm->ch->fd < 0 && !pm->ch->closed_seen && pm->ch->pid > 0) {
				int st = child_end(c, pm->ch);
				return failf(c, "the writer process ended (%s) without reporting a "
				             "clean close, after %llu bytes were read", kit_status(st),
				             ull(pm->got));
			}
		}
		if (pump_done(pm))
			return 0;
		int64_t now = kit_now();
		if (progress)
			last = now;
		if (now >= c->deadline || (pm->rolling && now - last >= c->o->timeout_ms)) {
			const char *hint = "After an op returns -EAGAIN the plugin must watch an fd, "
			                   "arm a timer or wake() the pipe so that it is called again";
			if (pm->w && pm->wclosed && pm->got == pm->total)
				hint = "The writer's clean close returned 0, but the reader never got "
				       "EOF: a clean close must deliver the end of the stream (rule 3), "
				       "also when nothing was written or the writer had not connected "
				       "yet (then close returns -EAGAIN until it has)";
			else if (pm->ch && pm->ch->wrote_seen && pm->got < pm->ch->wrote)
				hint = "The writer's write() accepted every byte, yet they did not all "
				       "arrive while it stays open: bytes a write accepted must reach "
				       "the reader without further writes or a close (flush what the "
				       "plugin holds from ready() when its fd becomes writable)";
			return failf(c, "no progress for %lld ms: wrote %llu of %llu, read %llu%s; "
			             "writer ready()=%s, reader ready()=%s%s. %s",
			             (long long)(now - last), ull(pm->w ? pm->wrote : pm->total),
			             ull(pm->total), ull(pm->got),
			             pm->w && pm->close_writer && pm->wrote == pm->total
			             ? (pm->wclosed ? " (the writer's clean close returned 0)"
			                : " (the writer's clean close kept returning -EAGAIN)") : "",
			             !pm->w ? "(another process)" : pm->w->live ?
			             kit_bits(kp_ready(pm->w)) : "(closed)",
			             pm->r->live ? kit_bits(kp_ready(pm->r)) : "(closed)",
			             pm->ch ? child_state(pm->ch) : "", hint);
		}
		int64_t wait = c->deadline - now;
		if (pm->rolling && last + c->o->timeout_ms - now < wait)
			wait = last + c->o->timeout_ms - now;
		kit_poll(c->k, progress ? 0 : wait);
	}
}

/* Read n more times after EOF: each must say 0 again (rule 3). */
static int eof_again(struct ctx *c, struct kp *r, int times)
{
	char b[64];
	for (int i = 0; i < times; i++) {
		ssize_t n = kp_read(r, b, sizeof b);
		CHECK(n == 0, "read #%d after EOF returned %s%s: rule 3 says 0 again and again",
		      i + 2, kit_err(n), kit_why(r));
	}
	return 0;
}

static int close_reader(struct ctx *c, struct kp *r)
{
	int rc = kp_close_clean(r, NULL, c->deadline);
	CHECK(rc == 0, "the reader's clean close returned %s", kit_err(rc));
	return 0;
}

/* A clean stream of `bytes` from a writer in this process: written,
 * closed cleanly, read to EOF, then EOF again. */
static int clean_stream(struct ctx *c, struct kp *w, struct kp *r, uint64_t seed,
                        uint64_t bytes)
{
	struct pump pm;
	pump_init(&pm, w, r, seed, bytes);
	pm.close_writer = pm.expect_eof = 1;
	int rc = pump_run(c, &pm);
	pump_free(&pm);
	return rc ? rc : eof_again(c, r, 3);
}

/* ---- the cases ---- */

static int case_plugin_entry(struct ctx *c)
{
	const struct np_plugin *pl = c->k->pl;
	CHECK(pl->version, "version is NULL");
	CHECK(pl->license, "license is NULL (an SPDX identifier is expected)");
	CHECK(pl->description, "description is NULL");
	CHECK(pl->state_size <= 16 * MiB, "state_size %u is implausibly large", pl->state_size);
	static const char *cap[] = { "SEEK", "TRUNCATE", "MSG_BOUNDARIES", "MULTI_READER",
	                             "MULTI_WRITER", "RDWR", "ETAG", "REMOTE" };
	char caps[200] = "";
	for (int i = 0; i < 8; i++)
		if (pl->caps & (1ull << i))
			snprintf(caps + strlen(caps), sizeof caps - strlen(caps), "%s%s",
			         caps[0] ? "|" : "", cap[i]);
	if (pl->caps >> 8)
		kit_warn(c->k, "unknown capability bits 0x%llx", (unsigned long long)(pl->caps >> 8));
	infof(c, "%s %s (%s), ABI %u.%u, caps %s, %u bytes of state", pl->name, pl->version,
	      pl->license, pl->abi_major, pl->abi_minor, caps[0] ? caps : "none", pl->state_size);
	return 0;
}

/* Rules 1 and 7: a writer opened before any reader opens, its writes
 * return -EAGAIN and ready() lacks NP_OUT; once a reader opens, the writer
 * connects by itself and the bytes arrive. */
static int case_write_waits_for_reader(struct ctx *c)
{
	char *addr = kit_address(c->k);
	struct kp *w = open_pipe(c, "writer", NP_WRITE, addr, 0);
	if (!w)
		return -1;
	int64_t end = kit_now() + 200;
	uint8_t byte;
	kit_stream(1, 0, &byte, 1);
	for (;;) {
		uint32_t b = kp_ready(w);
		CHECK(!(b & NP_OUT), "ready() on the writer returned %s while no reader exists: "
		      "NP_OUT says a write would progress, but rule 1 says it waits for a reader",
		      kit_bits(b));
		ssize_t n = kp_write(w, &byte, 1);
		CHECK(n != 1, "write returned 1 while no reader exists: rule 1 says a write "
		      "waits (-EAGAIN) until a reader is connected; a byte written now could "
		      "be lost");
		CHECK(n == -EAGAIN, "write with no reader returned %s%s, expected -EAGAIN "
		      "(rules 1, 7: the writer keeps trying to connect)", kit_err(n), kit_why(w));
		if (kit_now() >= end)
			break;
		kit_poll(c->k, end - kit_now());
	}
	struct kp *r = open_pipe(c, "reader", NP_READ, addr, 0);
	if (!r)
		return -1;
	if (clean_stream(c, w, r, 1, 256 * KiB))
		return -1;
	return close_reader(c, r);
}

/* Rule 2: a read waits for data: -EAGAIN, not EOF, before a writer exists
 * and after it connected but before it wrote. */
static int case_read_waits_for_writer(struct ctx *c)
{
	char *addr = kit_address(c->k);
	char buf[4096];
	struct kp *r = open_pipe(c, "reader", NP_READ, addr, 0);
	if (!r)
		return -1;
	struct kp *w = NULL;
	for (int phase = 0; phase < 2; phase++) {
		int64_t end = kit_now() + 200;
		for (;;) {
			ssize_t n = kp_read(r, buf, sizeof buf);
			CHECK(n != 0, "read returned 0 (EOF) %s: rule 2 says a read waits (-EAGAIN) "
			      "until a writer has submitted data", phase ? "after a writer "
			      "connected but before it wrote" : "before any writer existed");
			CHECK(n == -EAGAIN, "read %s returned %s%s, expected -EAGAIN",
			      phase ? "before the writer wrote" : "with no writer", kit_err(n),
			      kit_why(r));
			uint32_t b = kp_ready(r);
			CHECK(!(b & (NP_IN | NP_HUP | NP_ERR)), "ready() on the reader returned %s "
			      "%s, while read returns -EAGAIN: nothing is there to read yet",
			      kit_bits(b), phase ? "before the writer wrote" : "with no writer");
			if (kit_now() >= end)
				break;
			kit_poll(c->k, end - kit_now());
		}
		if (phase == 0 && !(w = open_pipe(c, "writer", NP_WRITE, addr, 0)))
			return -1;
	}
	if (clean_stream(c, w, r, 2, 1000))
		return -1;
	return close_reader(c, r);
}

static size_t rsize_partial(struct pump *pm)
{
	static const size_t odd[] = { 3, 5, 11, 13, 127, 1021, 4093, 65521, 65537, 9 };
	if (pm->got < 64 * KiB)
		return 1;
	if (pm->got < 128 * KiB)
		return 7;
	return odd[pm->rcycle++ % (sizeof odd / sizeof odd[0])];
}

/* Rule 2 ("it may return fewer bytes") and 6: 64 KiB writes read back with
 * 1-byte, 7-byte and odd-sized reads. */
static int case_partial_reads(struct ctx *c)
{
	char *addr = kit_address(c->k);
	struct kp *r = open_pipe(c, "reader", NP_READ, addr, 0);
	struct kp *w = r ? open_pipe(c, "writer", NP_WRITE, addr, 0) : NULL;
	if (!w)
		return -1;
	struct pump pm;
	pump_init(&pm, w, r, 3, 3 * 64 * KiB);
	pm.wfixed = 64 * KiB;
	pm.rsize = rsize_partial;
	pm.close_writer = pm.expect_eof = 1;
	int rc = pump_run(c, &pm);
	pump_free(&pm);
	return rc ? rc : close_reader(c, r);
}

/* Rule 3: after the writer's clean close and the data drained, read
 * returns 0 again and again, also after the loop turned; and an empty
 * stream (open, clean close) is EOF too. */
static int case_eof_repeats(struct ctx *c)
{
	for (int empty = 0; empty < 2; empty++) {
		char *addr = kit_address(c->k);
		struct kp *r = open_pipe(c, "reader", NP_READ, addr, 0);
		struct kp *w = r ? open_pipe(c, "writer", NP_WRITE, addr, 0) : NULL;
		if (!w)
			return -1;
		if (clean_stream(c, w, r, 4, empty ? 0 : 100 * KiB))
			return -1;
		idle(c, 100);
		if (eof_again(c, r, 3) || close_reader(c, r))
			return -1;
	}
	return 0;
}

/* Rule 4: once the reader has gone (here with bytes left unread), writes
 * return -EPIPE, again on every later write, and nothing raises SIGPIPE:
 * the case process runs with SIGPIPE's default action, so a SIGPIPE kills
 * it and the runner reports that. */
static int case_epipe_after_reader_leaves(struct ctx *c)
{
	char *addr = kit_address(c->k);
	struct kp *r = open_pipe(c, "reader", NP_READ, addr, 0);
	struct kp *w = r ? open_pipe(c, "writer", NP_WRITE, addr, 0) : NULL;
	if (!w)
		return -1;
	struct pump pm;
	pump_init(&pm, w, r, 5, 16 * KiB);
	int rc = pump_run(c, &pm);
	pump_free(&pm);
	if (rc)
		return rc;
	/* Leave bytes unread in the reader: the harder case for a transport
	 * (a TCP reader that closes with unread data sends RST). */
	static uint8_t buf[64 * KiB];
	kit_stream(5, 16 * KiB, buf, sizeof buf);
	ssize_t n0 = kp_write(w, buf, sizeof buf);
	CHECK(n0 > 0 || n0 == -EAGAIN, "write returned %s%s", kit_err(n0), kit_why(w));
	idle(c, 20);
	rc = kp_close_clean(r, NULL, c->deadline);
	CHECK(rc != -ETIMEDOUT, "the reader's clean close kept returning -EAGAIN");
	int64_t t0 = kit_now(), end = t0 + 10000 < c->deadline ? t0 + 10000 : c->deadline;
	uint64_t after = 0;
	ssize_t n;
	for (;;) {
		n = kp_write(w, buf, 4096);
		if (n == -EPIPE)
			break;
		CHECK(n > 0 || n == -EAGAIN, "a write after the reader left returned %s%s: rule 4 "
		      "says -EPIPE", kit_err(n), kit_why(w));
		if (n > 0)
			after += (uint64_t)n;
		CHECK(after < 64 * MiB, "64 MiB were accepted after the reader left and no "
		      "write returned -EPIPE (rule 4)");
		CHECK(kit_now() < end, "no write returned -EPIPE within %lld ms after the reader "
		      "left (%llu bytes accepted meanwhile, writer ready()=%s): rule 4; after "
		      "-EAGAIN the plugin must get an event when the reader goes",
		      (long long)(kit_now() - t0), ull(after), kit_bits(kp_ready(w)));
		kit_poll(c->k, n > 0 ? 0 : end - kit_now());
	}
	infof(c, "-EPIPE %lld ms after the reader left, %llu bytes accepted meanwhile",
	      (long long)(kit_now() - t0), ull(after));
	for (int i = 0; i < 3; i++) {
		n = kp_write(w, buf, 100);
		CHECK(n == -EPIPE, "write #%d after the first -EPIPE returned %s: once the reader "
		      "is gone every write says -EPIPE", i + 2, kit_err(n));
	}
	rc = kp_close_clean(w, NULL, c->deadline);
	CHECK(rc != -ETIMEDOUT, "the clean close of a writer whose reader left kept "
	      "returning -EAGAIN: it must give up (0 or an error) once the reader is gone");
	return 0;
}

/* Rule 5: a writer killed without closing is not EOF. Twice: killed once
 * every byte it wrote has arrived (the reader must then get exactly
 * -ECONNRESET or -EIO), and killed mid-stream (the reader gets a correct
 * prefix, then the error). */
static int killed_run(struct ctx *c, int midstream)
{
	char *addr = kit_address(c->k);
	const char *when = midstream ? "mid-stream" : "after all its bytes arrived";
	uint64_t seed = midstream ? 61 : 62;
	uint64_t n = midstream ? (1ull << 40) : 1 * MiB;
	struct kp *r = open_pipe(c, "reader", NP_READ, addr, 0);
	if (!r)
		return -1;
	struct child *ch = start_writer(c, addr, n, seed, 1);
	if (!ch)
		return -1;
	struct pump pm;
	pump_init(&pm, NULL, r, seed, n);
	pm.ch = ch;
	pm.stop_at = midstream ? 256 * KiB : n;
	int rc = pump_run(c, &pm);
	if (rc)
		goto out;
	if (!midstream) {
		while (!ch->wrote_seen && ch->fd >= 0 && kit_now() < c->deadline) {
			kit_poll(c->k, left_ms(c));
			child_poll(c, ch);
		}
		if (ch->error[0]) {
			rc = failf(c, "the writer process failed: %s", ch->error);
			goto out;
		}
		/* Still alive, still open: reads must wait. */
		int64_t end = kit_now() + 100;
		while (kit_now() < end) {
			ssize_t k = kp_read(r, pm.rbuf, 4096);
			if (k != -EAGAIN) {
				rc = failf(c, "read returned %s%s after all %llu bytes arrived while "
				           "the writer is still alive and open: expected -EAGAIN",
				           kit_err(k), kit_why(r), ull(n));
				goto out;
			}
			kit_poll(c->k, end - kit_now());
		}
	}
	child_kill(c, ch);
	int64_t t0 = kit_now();
	ssize_t k;
	for (;;) {
		k = kp_read(r, pm.rbuf, pump_rlen(&pm));
		if (k > 0 && midstream) {
			if ((rc = pump_take(c, &pm, (size_t)k)))
				goto out;
			continue;
		}
		if (k > 0) {
			rc = failf(c, "read returned %zd more bytes after all %llu written had "
			           "arrived and the writer was killed", k, ull(n));
			goto out;
		}
		if (k == 0) {
			rc = failf(c, "read returned 0 (EOF) after the writer was SIGKILLed %s "
			           "(%llu bytes read): rule 5 says a writer that dies without "
			           "closing is not EOF; the reader must get -ECONNRESET or -EIO. "
			           "Frame the stream and send an end-of-stream frame on clean close",
			           when, ull(pm.got));
			goto out;
		}
		if (k == -ECONNRESET || k == -EIO)
			break;
		if (k != -EAGAIN) {
			rc = failf(c, "read after the writer was killed %s returned %s%s: rule 5 "
			           "expects -ECONNRESET or -EIO", when, kit_err(k), kit_why(r));
			goto out;
		}
		if (kit_now() >= c->deadline) {
			rc = failf(c, "read kept returning -EAGAIN for %lld ms after the writer was "
			           "killed %s (reader ready()=%s): the reader must notice the lost "
			           "writer and fail with -ECONNRESET or -EIO (rule 5)",
			           (long long)(kit_now() - t0), when, kit_bits(kp_ready(r)));
			goto out;
		}
		kit_poll(c->k, left_ms(c));
	}
	for (int i = 0; i < 3; i++) {
		ssize_t again = kp_read(r, pm.rbuf, 4096);
		if (again >= 0) {
			rc = failf(c, "read returned %zd after it had reported %s for the killed "
			           "writer: the failure must not turn into data or EOF", again,
			           kit_err(k));
			goto out;
		}
	}
	infof(c, "%s: %s after %llu bytes, %lld ms after the kill", when, kit_err(k),
	      ull(pm.got), (long long)(kit_now() - t0));
	kp_abort(r);
out:
	pump_free(&pm);
	child_kill(c, ch);
	return rc;
}

static int case_killed_writer_is_not_eof(struct ctx *c)
{
	return killed_run(c, 0) ? -1 : killed_run(c, 1);
}

/* Rule 6: --bytes of the stream from a writer in another process, written
 * and read in sizes from 1 B to 256 KiB, arrive whole: every byte compared
 * in place, and the BLAKE2b digests of both sides agree. */
static int case_bulk_no_loss(struct ctx *c)
{
	char *addr = kit_address(c->k);
	uint64_t n = (uint64_t)c->o->bytes, seed = 7;
	/* A slow transport is not a lossy one: this case fails on no progress
	 * for --timeout-ms, within the longer budget the runner allows it. */
	c->deadline = c->k->start_ms + kit_case_budget_ms(c->kc, c->o);
	struct kp *r = open_pipe(c, "reader", NP_READ, addr, 0);
	if (!r)
		return -1;
	int64_t t0 = kit_now();
	struct child *ch = start_writer(c, addr, n, seed, 0);
	if (!ch)
		return -1;
	struct pump pm;
	pump_init(&pm, NULL, r, seed, n);
	pm.ch = ch;
	pm.expect_eof = 1;
	pm.rolling = 1;
	int rc = pump_run(c, &pm);
	double secs = (double)(kit_now() - t0) / 1000.0;
	if (!rc) {
		int st = child_end(c, ch);
		char hex[2 * crypto_generichash_BYTES + 1];
		pump_digest(&pm, hex);
		if (ch->error[0])
			rc = failf(c, "the writer process failed: %s", ch->error);
		else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			rc = failf(c, "the writer process ended with %s", kit_status(st));
		else if (!ch->wrote_seen || ch->wrote != n)
			rc = failf(c, "the writer process did not report writing %llu bytes", ull(n));
		else if (strcmp(hex, ch->digest) != 0)
			rc = failf(c, "BLAKE2b of the %llu bytes read is %s, the writer's is %s "
			           "(rule 6)", ull(pm.got), hex, ch->digest);
		else if (!(rc = close_reader(c, r)))
			infof(c, "%.1f MiB in %.2f s, %.0f MB/s", (double)n / MiB, secs,
			      secs > 0 ? (double)n / 1e6 / secs : 0.0);
	}
	pump_free(&pm);
	child_kill(c, ch);
	return rc;
}

/* The event-loop contract (section 3, and what rules 1-6 rely on): every op
 * returns at once (timed for every op of every case; here also reported);
 * a broker that calls ops only when ready() says they can progress, and
 * ready() only after a watched fd, timer or wake fired, moves a whole
 * stream; and ready() never promises what the op then refuses. */
static int case_nonblocking_contract(struct ctx *c)
{
	char *addr = kit_address(c->k);
	struct kp *r = open_pipe(c, "reader", NP_READ, addr, 0);
	struct kp *w = r ? open_pipe(c, "writer", NP_WRITE, addr, 0) : NULL;
	if (!w)
		return -1;
	struct pump pm;
	pump_init(&pm, w, r, 8, 4 * MiB);
	int rc = 0, closed = 0, close_tried = 0;
	int64_t last = kit_now();
	/* The broker asks once after open; from then on only events count. */
	w->rdy = kp_ready(w);
	r->rdy = kp_ready(r);
	w->fresh = r->fresh = 1;
	while (!(closed && pm.eof)) {
		int acted = 0;
		if (w->fresh && pm.wrote < pm.total) {
			uint32_t b = w->rdy;
			w->fresh = 0;
			int first = 1;
			while ((b & (NP_OUT | NP_ERR | NP_HUP)) && pm.wrote < pm.total) {
				ssize_t n = pump_write(&pm);
				if (n > 0) {
					acted = 1;
					first = 0;
					continue;
				}
				if (n == -EAGAIN && first && (b & NP_OUT)) {
					rc = failf(c, "ready() on the writer returned %s, but the write "
					           "right after it returned -EAGAIN (at byte %llu): NP_OUT "
					           "must mean a write would make progress now. If the "
					           "plugin still holds part of an earlier write, flush it "
					           "from ready() and report NP_OUT only once the write "
					           "would accept new bytes", kit_bits(b), ull(pm.wrote));
					goto out;
				}
				if (n != -EAGAIN) {
					rc = failf(c, "write at byte %llu returned %s%s", ull(pm.wrote),
					           kit_err(n), kit_why(w));
					goto out;
				}
				/* -EAGAIN after some progress: ask ready() at once; what
				 * it promises now must hold too. */
				if (first || !((b = w->rdy = kp_ready(w)) & NP_OUT))
					break;
				first = 1;
			}
		}
		if (pm.wrote == pm.total && !closed && (!close_tried || w->fresh)) {
			w->fresh = 0;
			close_tried = 1;
			int crc = kp_close(w, 0);
			if (crc != -EAGAIN) {
				closed = acted = 1;
				if (crc != 0) {
					rc = failf(c, "the writer's clean close returned %s", kit_err(crc));
					goto out;
				}
			}
		}
		if (r->fresh && !pm.eof) {
			uint32_t b = r->rdy;
			r->fresh = 0;
			int first = 1;
			while (b & (NP_IN | NP_HUP | NP_ERR)) {
				ssize_t n = kp_read(r, pm.rbuf, pump_rlen(&pm));
				if (n > 0) {
					if ((rc = pump_take(c, &pm, (size_t)n)))
						goto out;
					acted = 1;
					first = 0;
					continue;
				}
				if (n == 0 && pm.got == pm.total) {
					pm.eof = acted = 1;
					break;
				}
				if (n == 0) {
					rc = failf(c, "read returned 0 (EOF) after %llu of %llu bytes",
					           ull(pm.got), ull(pm.total));
					goto out;
				}
				if (n == -EAGAIN && first && (b & NP_IN)) {
					rc = failf(c, "ready() on the reader returned %s, but the read "
					           "right after it returned -EAGAIN (at byte %llu): NP_IN "
					           "must mean a read returns data, EOF or an error now (a "
					           "partial frame header is not data: consume it in ready())",
					           kit_bits(b), ull(pm.got));
					goto out;
				}
				if (n != -EAGAIN) {
					rc = failf(c, "read at byte %llu returned %s%s", ull(pm.got),
					           kit_err(n), kit_why(r));
					goto out;
				}
				if (first || !((b = r->rdy = kp_ready(r)) & NP_IN))
					break;
				first = 1;
			}
		}
		int64_t now = kit_now();
		if (acted)
			last = now;
		if (now >= c->deadline) {
			rc = failf(c, "a broker that calls ops only when ready() allows, and ready() "
			           "only after an fd, timer or wake fired, stalled for %lld ms: "
			           "wrote %llu of %llu, read %llu%s; last ready(): writer %s, reader "
			           "%s. Data buffered inside the plugin must count as NP_IN, and "
			           "after -EAGAIN an event must come when the op can progress",
			           (long long)(now - last), ull(pm.wrote), ull(pm.total),
			           ull(pm.got), pm.wrote == pm.total && !closed ? ", the writer's "
			           "clean close pending" : "", kit_bits(w->rdy), kit_bits(r->rdy));
			goto out;
		}
		kit_poll(c->k, acted ? 0 : c->deadline - now);
	}
	uint32_t b = kp_ready(r);
	if (!(b & NP_IN)) {
		rc = failf(c, "after EOF, ready() on the reader returned %s: a read would return "
		           "0 now, so NP_IN must be set", kit_bits(b));
		goto out;
	}
	if ((rc = eof_again(c, r, 3)) || (rc = close_reader(c, r)))
		goto out;
	infof(c, "slowest op: %s, %.3f ms (limit %lld)", c->k->slowest_op,
	      (double)c->k->slowest_op_us / 1000.0, (long long)c->o->op_limit_ms);
out:
	pump_free(&pm);
	return rc;
}

/* Rule 5's digest: with etag = 1 on both ends a clean stream still ends in
 * 0 (a mismatch cannot be provoked from outside the plugin). */
static int case_etag_clean_eof(struct ctx *c)
{
	if (!(c->k->pl->caps & NP_CAP_ETAG)) {
		c->skipped = 1;
		infof(c, "skip: the plugin does not declare NP_CAP_ETAG");
		return 0;
	}
	for (int empty = 0; empty < 2; empty++) {
		char *addr = kit_address(c->k);
		struct kp *r = open_pipe(c, "reader", NP_READ, addr, 1);
		struct kp *w = r ? open_pipe(c, "writer", NP_WRITE, addr, 1) : NULL;
		if (!w || clean_stream(c, w, r, 9, empty ? 0 : 1 * MiB) || close_reader(c, r))
			return -1;
	}
	return 0;
}

static int default_ops(struct ctx *c, struct kp *p)
{
	const struct np_plugin *pl = c->k->pl;
	int rc = kp_ctl(p, 999999, NULL);
	CHECK(rc == -ENOTTY, "ctl(%s, 999999) returned %s: an unknown op must return -ENOTTY",
	      p->label, kit_err(rc));
	rc = kp_ctl(p, NP_CTL_PRIVATE - 1, NULL);
	CHECK(rc == -ENOTTY, "ctl(%s, %d) returned %s: an unknown core op must return -ENOTTY",
	      p->label, NP_CTL_PRIVATE - 1, kit_err(rc));
	int fds[2] = { -2, -2 };
	rc = kp_ctl(p, NP_CTL_FDS, fds);
	CHECK(rc == 0 || rc == -ENOTTY, "ctl(%s, NP_CTL_FDS) returned %s: 0 or -ENOTTY",
	      p->label, kit_err(rc));
	for (int i = 0; rc == 0 && i < 2; i++)
		CHECK(fds[i] == -1 || fcntl(fds[i], F_GETFD) >= 0, "ctl(%s, NP_CTL_FDS) "
		      "returned 0 with fds[%d] = %d, neither -1 nor an open fd", p->label, i,
		      fds[i]);
	if (!(pl->caps & NP_CAP_SEEK)) {
		int64_t s = pl->seek ? pl->seek(&p->np, 0, SEEK_CUR) : -ESPIPE;
		CHECK(s == -ESPIPE, "seek(%s, 0, SEEK_CUR) returned %s on a plugin without "
		      "NP_CAP_SEEK: expected -ESPIPE (or a NULL op)", p->label, kit_err((long)s));
		s = pl->tell ? pl->tell(&p->np) : -ESPIPE;
		CHECK(s == -ESPIPE, "tell(%s) returned %s on a plugin without NP_CAP_SEEK: "
		      "expected -ESPIPE (or a NULL op)", p->label, kit_err((long)s));
	}
	if (!(pl->caps & NP_CAP_TRUNCATE) && pl->truncate) {
		rc = pl->truncate(&p->np, 0);
		CHECK(rc < 0, "truncate(%s, 0) returned %d on a plugin without NP_CAP_TRUNCATE: "
		      "expected a negative errno (the default is -EINVAL)", p->label, rc);
	}
	if (pl->last_error) {
		const char *s = pl->last_error(&p->np);
		CHECK(!s || strlen(s) < 65536, "last_error is not a sane string");
	}
	return 0;
}

/* Section 3's defaults for optional ops, which the broker applies when an
 * op is NULL and a plugin must match when it is not: ctl with an unknown
 * op is -ENOTTY, seek/tell without NP_CAP_SEEK are -ESPIPE; and validate
 * accepts the address every case opens. */
static int case_optional_ops_defaults(struct ctx *c)
{
	const struct np_plugin *pl = c->k->pl;
	char *addr = kit_address(c->k);
	if (pl->validate) {
		for (uint32_t mode = NP_READ; mode <= NP_WRITE; mode++) {
			char err[256];
			memset(err, 'x', sizeof err);
			int rc = pl->validate(addr, mode, err, sizeof err);
			CHECK(rc <= 0, "validate returned %d: 0 or a negative errno", rc);
			CHECK(rc == 0, "validate(\"%s\", %s) returned %s (%.*s): it must accept the "
			      "address the other cases open", addr, mode == NP_READ ? "NP_READ" :
			      "NP_WRITE", kit_err(rc), memchr(err, 0, sizeof err) ? 200 : 0, err);
		}
	}
	struct kp *r = open_pipe(c, "reader", NP_READ, addr, 0);
	struct kp *w = r ? open_pipe(c, "writer", NP_WRITE, addr, 0) : NULL;
	if (!w || default_ops(c, r) || default_ops(c, w))
		return -1;
	/* The pipes still work after all that. */
	if (clean_stream(c, w, r, 10, 4 * KiB))
		return -1;
	return close_reader(c, r);
}

/* Rule 8: what a plugin declares, it has: NP_CAP_SEEK and NP_CAP_TRUNCATE
 * come with their ops, and NP_CAP_MSG_BOUNDARIES means no read spans two
 * writes. */
static int case_declared_caps(struct ctx *c)
{
	const struct np_plugin *pl = c->k->pl;
	CHECK(!(pl->caps & NP_CAP_SEEK) || (pl->seek && pl->tell), "NP_CAP_SEEK is declared "
	      "but seek or tell is NULL");
	CHECK(!(pl->caps & NP_CAP_TRUNCATE) || pl->truncate, "NP_CAP_TRUNCATE is declared but "
	      "truncate is NULL");
	if (!(pl->caps & NP_CAP_MSG_BOUNDARIES)) {
		infof(c, "no NP_CAP_MSG_BOUNDARIES: nothing more to check");
		return 0;
	}
	static const size_t sizes[] = { 1, 100, 3000, 10, 65536, 7 };
	enum { N = sizeof sizes / sizeof sizes[0] };
	char *addr = kit_address(c->k);
	struct kp *r = open_pipe(c, "reader", NP_READ, addr, 0);
	struct kp *w = r ? open_pipe(c, "writer", NP_WRITE, addr, 0) : NULL;
	if (!w)
		return -1;
	static uint8_t buf[128 * KiB];
	uint64_t ends[N], total = 0;
	for (int i = 0; i < N; i++)
		ends[i] = total += sizes[i];
	uint64_t wrote = 0, got = 0;
	int wi = 0, ri = 0;
	while (got < total) {
		int progress = 0;
		if (wi < N) {
			kit_stream(11, wrote, buf, sizes[wi]);
			ssize_t n = kp_write(w, buf, sizes[wi]);
			CHECK(n == -EAGAIN || n == (ssize_t)sizes[wi], "write of a %zu-byte message "
			      "returned %s: with NP_CAP_MSG_BOUNDARIES a message is taken whole or "
			      "not at all", sizes[wi], kit_err(n));
			if (n > 0) {
				wrote += (uint64_t)n;
				wi++;
				progress = 1;
			}
		}
		ssize_t n = kp_read(r, buf, sizeof buf);
		CHECK(n > 0 || n == -EAGAIN, "read returned %s%s", kit_err(n), kit_why(r));
		if (n > 0) {
			CHECK(got + (uint64_t)n <= ends[ri], "a read of %zd bytes at offset %llu "
			      "spans the end of message %d (at %llu): NP_CAP_MSG_BOUNDARIES says a "
			      "read never spans two writes", n, ull(got), ri, ull(ends[ri]));
			got += (uint64_t)n;
			if (got == ends[ri])
				ri++;
			progress = 1;
		}
		CHECK(kit_now() < c->deadline, "no progress: %llu of %llu bytes of messages read",
		      ull(got), ull(total));
		kit_poll(c->k, progress ? 0 : left_ms(c));
	}
	int rc = kp_close_clean(w, r, c->deadline);
	CHECK(rc == 0, "the writer's clean close returned %s", kit_err(rc));
	kp_abort(r);
	return 0;
}

/* ---- section 6, NP_CTL_WAIT: the one op that may block ---- */

struct wstat {
	unsigned waits, zeros;  /* NP_CTL_WAIT calls, and how many returned 0 */
	int64_t longest;        /* the longest one, ms */
};

static const char *wait_str(int rc)
{
	return rc < 0 ? kit_err(rc) : kit_bits((uint32_t)rc);
}

/* What section 6 lets NP_CTL_WAIT return: -ENOTTY, 0 or ready()'s reader
 * bits. */
static int wait_valid(int rc)
{
	return rc == -ENOTTY || (rc >= 0 && !((uint32_t)rc & ~(NP_IN | NP_HUP | NP_ERR)));
}

/* One try of a blocking read, as libnetpipe's netpipe_read makes it:
 * NP_CTL_WAIT for NP_IN (at most tmo ms), then the read, whatever the wait
 * said. The wait must return what section 6 allows, not -ENOTTY from a
 * reader that could wait before, and after NP_IN the read must not be
 * -EAGAIN. *out gets the read's result. */
static int wait_read(struct ctx *c, struct pump *pm, int32_t tmo, const char *phase,
                     struct wstat *st, ssize_t *out)
{
	int64_t took;
	int b = kp_wait(pm->r, NP_IN, tmo, &took);
	st->waits++;
	if (took > st->longest)
		st->longest = took;
	CHECK(b != -ENOTTY, "ctl(NP_CTL_WAIT, NP_IN, timeout_ms %d) on the reader returned "
	      "-ENOTTY %s, at byte %llu, although it waited before: -ENOTTY says the pipe "
	      "cannot wait (a writer, other events, a plugin without it), which does not "
	      "change while it is open (section 6)", (int)tmo, phase, ull(pm->got));
	CHECK(wait_valid(b), "ctl(NP_CTL_WAIT, NP_IN, timeout_ms %d) on the reader returned %s "
	      "%s, at byte %llu: section 6 allows only NP_IN (maybe with NP_HUP/NP_ERR), 0 "
	      "or -ENOTTY", (int)tmo, wait_str(b), phase, ull(pm->got));
	if (b == 0)
		st->zeros++;
	ssize_t n = kp_read(pm->r, pm->rbuf, pump_rlen(pm));
	CHECK(n != -EAGAIN || !(b & NP_IN), "ctl(NP_CTL_WAIT, NP_IN, timeout_ms %d) on the "
	      "reader returned %s after %lld ms %s, at byte %llu, but the read right after it "
	      "returned -EAGAIN: NP_IN must mean a read returns data, EOF or an error now "
	      "(section 6)", (int)tmo, wait_str(b), (long long)took, phase, ull(pm->got));
	*out = n;
	return 0;
}

/* After the stream ended (in 0, or in the error err): a read progresses
 * at once, so NP_CTL_WAIT must say NP_IN at once, and the read after it
 * say the same again (rules 3 and 5: EOF repeats, errors are sticky). */
static int wait_at_end(struct ctx *c, struct kp *r, ssize_t err, const char *what)
{
	uint8_t buf[4096];
	for (int i = 0; i < 3; i++) {
		int64_t took;
		int b = kp_wait(r, NP_IN, 2000, &took);
		CHECK(wait_valid(b) && (b & NP_IN), "after %s, ctl(NP_CTL_WAIT, NP_IN, timeout_ms "
		      "2000) on the reader returned %s after %lld ms: a read returns %s at once, "
		      "so it must say NP_IN (section 6)", what, wait_str(b), (long long)took,
		      err ? kit_err(err) : "0");
		CHECK(took < 2000, "after %s, ctl(NP_CTL_WAIT, NP_IN, timeout_ms 2000) on the "
		      "reader said %s only after %lld ms: it must return at once when the read "
		      "would progress (section 6), and a read returns %s now", what, wait_str(b),
		      (long long)took, err ? kit_err(err) : "0");
		ssize_t n = kp_read(r, buf, sizeof buf);
		CHECK(n == err, "after %s, the read after NP_CTL_WAIT (which said %s) returned %s%s: "
		      "%s", what, wait_str(b), kit_err(n), kit_why(r), err ? "an error is sticky "
		      "(rule 5): every later read returns it again" : "rule 3 says 0 again and "
		      "again");
	}
	return 0;
}

/* A writer in this process, the loop turned without blocking between two
 * waits (as libnetpipe does): a connected writer that wrote nothing gives
 * empty waits; then 256 KiB arrive in order through wait+read, EOF
 * follows the writer's clean close, and a wait after EOF says NP_IN. */
static int wait_local(struct ctx *c, struct kp *r, struct kp *w, struct wstat *st,
                      int64_t *empty_ms)
{
	/* Connected: a writer's ready() says NP_OUT only once a reader is
	 * there (rule 1). */
	while (!((w->rdy = kp_ready(w)) & NP_OUT)) {
		CHECK(kit_now() < c->deadline, "the writer's ready() did not say NP_OUT within "
		      "%lld ms of opening both ends (it said %s): it never connected to the "
		      "reader (rule 7)", (long long)c->o->timeout_ms, kit_bits(w->rdy));
		kit_poll(c->k, left_ms(c) < 50 ? left_ms(c) : 50);
	}
	int bw = kp_wait(w, NP_IN, 0, NULL);
	CHECK(wait_valid(bw), "ctl(NP_CTL_WAIT, NP_IN, timeout_ms 0) on a connected writer "
	      "returned %s: a writer cannot wait for a read, so -ENOTTY (section 6)",
	      wait_str(bw));
	uint8_t buf[4096];
	*empty_ms = 0;
	for (int i = 0; i < 3; i++) {
		int64_t took;
		kit_poll(c->k, 0);
		int b = kp_wait(r, NP_IN, 50, &took);
		CHECK(wait_valid(b) && b != -ENOTTY, "ctl(NP_CTL_WAIT, NP_IN, timeout_ms 50) on "
		      "the reader returned %s with a connected writer that wrote nothing: section "
		      "6 allows only NP_IN (maybe with NP_HUP/NP_ERR) or 0, and -ENOTTY only from "
		      "a pipe that cannot wait (this one waited before)", wait_str(b));
		ssize_t n = kp_read(r, buf, sizeof buf);
		CHECK(n == -EAGAIN, "read returned %s%s with a connected writer that wrote nothing "
		      "(after NP_CTL_WAIT said %s): rule 2 says -EAGAIN until a writer has "
		      "submitted data", kit_err(n), kit_why(r), wait_str(b));
		CHECK(b == 0, "ctl(NP_CTL_WAIT, NP_IN, timeout_ms 50) on the reader returned %s "
		      "after %lld ms with a connected writer that wrote nothing, and the read "
		      "right after it returned -EAGAIN: nothing is there to read, so it must "
		      "return 0 (section 6)", wait_str(b), (long long)took);
		if (took > *empty_ms)
			*empty_ms = took;
	}
	struct pump pm;
	pump_init(&pm, w, r, 12, 256 * KiB);
	int rc = 0, lastb = 0;
	int64_t last = kit_now();
	const char *phase = "while the writer in this process writes";
	while (!pm.eof || !pm.wclosed) {
		int progress = 0;
		if (pm.wrote < pm.total) {
			ssize_t n = pump_write(&pm);
			if (n > 0) {
				progress = 1;
			} else if (n != -EAGAIN) {
				rc = failf(c, "write at byte %llu of %llu returned %s%s", ull(pm.wrote),
				           ull(pm.total), kit_err(n), kit_why(w));
				goto out;
			}
		} else if (!pm.wclosed) {
			int crc = kp_close(w, 0);
			if (crc != -EAGAIN) {
				pm.wclosed = progress = 1;
				if (crc != 0) {
					rc = failf(c, "the writer's clean close returned %s after all %llu "
					           "bytes were written", kit_err(crc), ull(pm.total));
					goto out;
				}
			}
		}
		/* libnetpipe runs its loop, without blocking, between two waits. */
		kit_poll(c->k, 0);
		if (!pm.eof) {
			ssize_t n;
			if ((rc = wait_read(c, &pm, 100, phase, st, &n)))
				goto out;
			lastb = (int)n;
			if (n > 0) {
				if ((rc = pump_take(c, &pm, (size_t)n)))
					goto out;
				progress = 1;
			} else if (n == 0) {
				if (pm.got < pm.total) {
					rc = failf(c, "read after NP_CTL_WAIT returned 0 (EOF) after %llu of "
					           "the %llu bytes written: bytes were lost (rules 3, 6)",
					           ull(pm.got), ull(pm.total));
					goto out;
				}
				pm.eof = progress = 1;
			} else if (n != -EAGAIN) {
				rc = failf(c, "read after NP_CTL_WAIT at byte %llu of %llu returned %s%s",
				           ull(pm.got), ull(pm.total), kit_err(n), kit_why(r));
				goto out;
			}
		}
		int64_t now = kit_now();
		if (progress)
			last = now;
		if (now >= c->deadline) {
			rc = failf(c, "no progress for %lld ms with a reader that waits "
			           "(NP_CTL_WAIT, 100 ms) and reads, the loop turned between two "
			           "waits: wrote %llu of %llu, read %llu%s, last read %s; writer "
			           "ready()=%s. %s", (long long)(now - last), ull(pm.wrote),
			           ull(pm.total), ull(pm.got), pm.wrote < pm.total ? "" : pm.wclosed ?
			           " (the writer's clean close returned 0)" : " (the writer's clean "
			           "close kept returning -EAGAIN)", pm.eof ? "0 (EOF)" : kit_err(lastb),
			           w->live ? kit_bits(kp_ready(w)) : "(closed)", pm.eof ? "The reader "
			           "had EOF: the writer's clean close must complete once the reader "
			           "has the stream, also when that reader only waits and reads" :
			           "NP_CTL_WAIT must return NP_IN once data or the end arrived, and "
			           "the read then take it");
			goto out;
		}
		/* At EOF only the writer's close is left: wait for its events. */
		if (pm.eof && !progress)
			kit_poll(c->k, left_ms(c));
	}
	if ((rc = wait_at_end(c, r, 0, "EOF")) || (rc = close_reader(c, r)))
		goto out;
out:
	pump_free(&pm);
	return rc;
}

/* A writer in another process, and a reader that only ever calls
 * NP_CTL_WAIT and read: never ready(), never the loop, so the plugin
 * looks after its peer by itself. The writer either closes cleanly after
 * 512 KiB (EOF must come, then NP_IN again), or is SIGKILLed mid-stream
 * (a correct prefix, then -ECONNRESET or -EIO within 10 s, never 0). */
static int wait_remote(struct ctx *c, int killed, struct wstat *st, char *res, size_t reslen)
{
	char *addr = kit_address(c->k);
	uint64_t seed = killed ? 64 : 63;
	uint64_t n = killed ? (1ull << 40) : 512 * KiB;
	const char *phase = killed ? "with a writer process killed mid-stream, no loop" :
	                    "with a writer process that closes cleanly, no loop";
	struct kp *r = open_pipe(c, "reader", NP_READ, addr, 0);
	if (!r)
		return -1;
	struct child *ch = start_writer(c, addr, n, seed, killed);
	if (!ch)
		return -1;
	struct pump pm;
	pump_init(&pm, NULL, r, seed, n);
	pm.ch = ch;
	int rc = 0;
	int64_t last = kit_now(), t0 = 0;
	unsigned w0 = 0;
	ssize_t k;
	for (;;) {
		if (killed && !t0 && pm.got >= 256 * KiB) {
			child_kill(c, ch);
			t0 = kit_now();
			w0 = st->waits;
		}
		if ((rc = wait_read(c, &pm, 100, phase, st, &k)))
			goto out;
		int64_t now = kit_now();
		if (k > 0) {
			if ((rc = pump_take(c, &pm, (size_t)k)))
				goto out;
			last = now;
			continue;
		}
		if (k == 0 && t0) {
			rc = failf(c, "read returned 0 (EOF) after the writer was SIGKILLed mid-stream "
			           "(%llu bytes read), the reader only waiting (NP_CTL_WAIT) and "
			           "reading: rule 5 says a writer that dies without closing is not EOF; "
			           "the reader must get -ECONNRESET or -EIO", ull(pm.got));
			goto out;
		}
		if (k == 0) {
			if (killed || pm.got < n) {
				rc = failf(c, "read after NP_CTL_WAIT returned 0 (EOF) after %llu of the "
				           "%llu bytes written, %s: bytes were lost, or EOF came before "
				           "a clean close (rules 3, 6)%s", ull(pm.got), ull(n), phase,
				           child_state(ch));
				goto out;
			}
			break;
		}
		if ((k == -ECONNRESET || k == -EIO) && t0)
			break;
		if (k != -EAGAIN) {
			rc = failf(c, "read after NP_CTL_WAIT at byte %llu returned %s%s, %s%s",
			           ull(pm.got), kit_err(k), kit_why(r), t0 ? "after the writer was "
			           "SIGKILLed mid-stream: rule 5 expects -ECONNRESET or -EIO" : phase,
			           t0 ? "" : child_state(ch));
			goto out;
		}
		if (t0) {
			int64_t end = t0 + 10000 < c->deadline ? t0 + 10000 : c->deadline;
			if (now >= end) {
				rc = failf(c, "the reader's NP_CTL_WAIT then read kept ending in -EAGAIN "
				           "for %lld ms (%u waits) after the writer was SIGKILLed "
				           "mid-stream, %llu bytes read: a reader that waits with "
				           "NP_CTL_WAIT gets no loop, so the plugin must notice the lost "
				           "writer inside it, and the read after it fail with -ECONNRESET "
				           "or -EIO (section 6, rule 5)", (long long)(now - t0),
				           st->waits - w0, ull(pm.got));
				goto out;
			}
			continue;
		}
		child_poll(c, ch);
		if (ch->error[0]) {
			rc = failf(c, "the writer process failed: %s", ch->error);
			goto out;
		}
		if (now >= c->deadline) {
			rc = failf(c, "no progress for %lld ms with a reader that only waits "
			           "(NP_CTL_WAIT, 100 ms) and reads, no loop and no ready(): read "
			           "%llu of %llu%s. NP_CTL_WAIT must return NP_IN once data or the end "
			           "arrived, without the loop (section 6)", (long long)(now - last),
			           ull(pm.got), ull(n), child_state(ch));
			goto out;
		}
	}
	if (killed) {
		if ((rc = wait_at_end(c, r, k, "the writer was SIGKILLed and the read failed")))
			goto out;
		snprintf(res, reslen, "%s %lld ms after the kill, at byte %llu", kit_err(k),
		         (long long)(kit_now() - t0), ull(pm.got));
		kp_abort(r);
		goto out;
	}
	if ((rc = wait_at_end(c, r, 0, "EOF")) || (rc = close_reader(c, r)))
		goto out;
	int cst = child_end(c, ch);
	if (ch->error[0])
		rc = failf(c, "the writer process failed: %s", ch->error);
	else if (!ch->closed_seen || ch->closed_rc != 0 || !WIFEXITED(cst) ||
	         WEXITSTATUS(cst) != 0)
		rc = failf(c, "the writer process ended with %s%s%s after the reader read its "
		           "%llu bytes and EOF with NP_CTL_WAIT and read only", kit_status(cst),
		           ch->closed_seen ? ", its clean close returned " : " without reporting "
		           "a clean close", ch->closed_seen ? kit_err(ch->closed_rc) : "", ull(n));
out:
	pump_free(&pm);
	child_kill(c, ch);
	return rc;
}

/* Section 6, NP_CTL_WAIT: a reader that can wait (one that does not answers
 * -ENOTTY) waits at most timeout_ms, says NP_IN only when a read would
 * progress, delivers the stream whole through wait+read, says NP_IN at
 * once after the end, and notices a killed writer with no loop running. */
static int case_ctl_wait(struct ctx *c)
{
	char *addr = kit_address(c->k);
	uint8_t buf[4096];
	int64_t took;
	struct kp *r = open_pipe(c, "reader", NP_READ, addr, 0);
	if (!r)
		return -1;
	int b = kp_wait(r, NP_IN, 0, &took);
	CHECK(wait_valid(b), "ctl(NP_CTL_WAIT, NP_IN, timeout_ms 0) on a reader returned %s: "
	      "section 6 allows only NP_IN (maybe with NP_HUP/NP_ERR), 0, or -ENOTTY from a "
	      "pipe that cannot wait", wait_str(b));
	ssize_t n = kp_read(r, buf, sizeof buf);
	CHECK(n == -EAGAIN, "read before any writer existed returned %s%s (NP_CTL_WAIT said "
	      "%s): rule 2 says -EAGAIN", kit_err(n), kit_why(r), wait_str(b));
	CHECK(b <= 0, "ctl(NP_CTL_WAIT, NP_IN, timeout_ms 0) on a reader returned %s before "
	      "any writer existed, and the read right after it returned -EAGAIN: nothing is "
	      "there to read yet, so it must return 0", wait_str(b));
	struct kp *w = open_pipe(c, "writer", NP_WRITE, addr, 0);
	if (!w)
		return -1;
	int bw = kp_wait(w, NP_IN, 0, &took);
	CHECK(wait_valid(bw), "ctl(NP_CTL_WAIT, NP_IN, timeout_ms 0) on a writer returned %s: "
	      "a writer cannot wait for a read, so -ENOTTY (section 6)", wait_str(bw));
	if (b == -ENOTTY) {
		kp_abort(w);
		kp_abort(r);
		infof(c, "the plugin does not offer NP_CTL_WAIT (a reader answers -ENOTTY, a "
		      "writer %s): blocking reads wait on the loop", wait_str(bw));
		return 0;
	}
	int bo = kp_wait(r, NP_OUT, 0, &took);
	CHECK(wait_valid(bo), "ctl(NP_CTL_WAIT, NP_OUT, timeout_ms 0) on a reader returned %s: "
	      "only NP_IN can be waited for, so -ENOTTY (section 6)", wait_str(bo));
	struct wstat sl = { 0 }, sc = { 0 }, sk = { 0 };
	int64_t empty_ms = 0;
	char killed[160] = "";
	if (wait_local(c, r, w, &sl, &empty_ms) || wait_remote(c, 0, &sc, NULL, 0) ||
	    wait_remote(c, 1, &sk, killed, sizeof killed))
		return -1;
	int64_t longest = sl.longest > sc.longest ? sl.longest : sc.longest;
	infof(c, "writer %s; empty 50 ms waits took up to %lld ms; with the loop: 256 KiB and "
	      "EOF in %u waits (%u said 0); no loop: 512 KiB and EOF in %u waits (%u said 0), "
	      "killed writer: %s; longest wait %lld ms", wait_str(bw), (long long)empty_ms,
	      sl.waits, sl.zeros, sc.waits, sc.zeros, killed,
	      (long long)(longest > sk.longest ? longest : sk.longest));
	return 0;
}

const struct kit_case kit_cases[] = {
	{ "plugin_entry", "section 3",
	  "the entry point, header fields, required ops and init", case_plugin_entry },
	{ "write_waits_for_reader", "rules 1, 7",
	  "a writer opened first gets -EAGAIN and no NP_OUT until a reader opens",
	  case_write_waits_for_reader },
	{ "read_waits_for_writer", "rule 2",
	  "a read is -EAGAIN, never 0, before a writer connects and writes",
	  case_read_waits_for_writer },
	{ "partial_reads", "rules 2, 6",
	  "64 KiB writes read back 1, 7 and odd bytes at a time", case_partial_reads },
	{ "eof_repeats", "rule 3",
	  "after a clean close and the data drained, read returns 0 again and again",
	  case_eof_repeats },
	{ "epipe_after_reader_leaves", "rule 4",
	  "writes return -EPIPE once the reader has gone, and no SIGPIPE",
	  case_epipe_after_reader_leaves },
	{ "killed_writer_is_not_eof", "rule 5",
	  "a SIGKILLed writer ends the reader's stream in -ECONNRESET/-EIO, not 0",
	  case_killed_writer_is_not_eof },
	{ "bulk_no_loss", "rule 6",
	  "--bytes from another process in 1 B..256 KiB writes arrive whole (BLAKE2b)",
	  case_bulk_no_loss },
	{ "nonblocking_contract", "section 3, rules 1-6",
	  "ops return at once; ready() is truthful and enough to drive a stream",
	  case_nonblocking_contract },
	{ "etag_clean_eof", "rule 5",
	  "with etag = 1 on both ends a clean stream ends in 0 (NP_CAP_ETAG only)",
	  case_etag_clean_eof },
	{ "optional_ops_defaults", "section 3",
	  "unknown ctl is -ENOTTY, seek without NP_CAP_SEEK is -ESPIPE, validate agrees",
	  case_optional_ops_defaults },
	{ "declared_caps", "rule 8",
	  "declared capabilities hold (ops present, message boundaries kept)",
	  case_declared_caps },
	{ "ctl_wait", "section 6, NP_CTL_WAIT",
	  "a reader's blocking wait is bounded, truthful, and sees EOF and a killed writer",
	  case_ctl_wait },
};
const int kit_ncases = sizeof kit_cases / sizeof kit_cases[0];

int64_t kit_case_budget_ms(const struct kit_case *kc, const struct kit_opts *o)
{
	/* bulk_no_loss may take longer: at least 1 MiB/s is expected of it. */
	if (kc->fn == case_bulk_no_loss)
		return o->timeout_ms + o->bytes / (1 << 20) * 1000;
	return o->timeout_ms;
}

int kit_run_case(const struct kit_case *kc, struct kit_opts *o)
{
	struct kit k;
	struct ctx c = { .k = &k, .o = o, .kc = kc };
	char err[KIT_MSG];
	/* A SIGPIPE must kill the case so the runner can report it (rule 4). */
	signal(SIGPIPE, SIG_DFL);
	if (sodium_init() < 0) {
		printf("FAIL %s: libsodium did not initialise\n", kc->name);
		return KIT_FAIL;
	}
	if (kit_load(&k, o, err, sizeof err) != 0) {
		printf("FAIL %s: cannot load the plugin: %s\n", kc->name, err);
		kit_unload(&k);
		return KIT_FAIL;
	}
	k.case_name = kc->name;
	c.deadline = kit_now() + o->timeout_ms;
	kc->fn(&c);
	for (int i = 0; i < c.nkids; i++)
		child_kill(&c, &c.kids[i]);
	kit_unload(&k);
	if (k.warning[0])
		printf("# %s: warning: %s\n", kc->name, k.warning);
	if (c.failed || k.nviolations) {
		printf("FAIL %s: %s%s%s\n", kc->name, k.nviolations ? k.violation : c.fail,
		       k.nviolations && c.failed ? "; then: " : "",
		       k.nviolations && c.failed ? c.fail : "");
		return KIT_FAIL;
	}
	printf("ok %s%s%s\n", kc->name, c.info[0] ? " # " : "", c.info);
	return c.skipped ? KIT_SKIP : KIT_PASS;
}

int kit_child_writer(struct kit_opts *o, const char *address, uint64_t n, uint64_t seed,
                     int hold, size_t max_write)
{
	struct kit k;
	char err[KIT_MSG];
	int status = 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (sodium_init() < 0 || kit_load(&k, o, err, sizeof err) != 0) {
		printf("error cannot load the plugin: %s\n", err);
		return 1;
	}
	int64_t deadline = kit_now() + o->timeout_ms;
	struct kp *w = kp_new(&k, "writer (child process)", NP_WRITE);
	int rc = kp_open(w, address, o->etag);
	uint8_t *buf = malloc(max_write);
	if (rc != 0) {
		printf("error open(\"%s\", NP_WRITE) returned %s\n", address, kit_err(rc));
		goto out;
	}
	crypto_generichash_state h;
	crypto_generichash_init(&h, NULL, 0, crypto_generichash_BYTES);
	uint64_t rng = seed ^ 0x77726974ull, wrote = 0, coff = 0;
	size_t clen = 0;
	while (wrote < n) {
		if (wrote == coff + clen) {
			coff = wrote;
			clen = kit_vary(&rng, max_write);
			if (clen > n - wrote)
				clen = (size_t)(n - wrote);
			kit_stream(seed, coff, buf, clen);
		}
		size_t off = (size_t)(wrote - coff);
		ssize_t r = kp_write(w, buf + off, clen - off);
		if (k.nviolations) {
			printf("error %s\n", k.violation);
			goto out;
		}
		if (r > 0) {
			crypto_generichash_update(&h, buf + off, (size_t)r);
			wrote += (uint64_t)r;
			deadline = kit_now() + o->timeout_ms; /* stalls count, not slowness */
			kit_poll(&k, 0);
			continue;
		}
		if (r != -EAGAIN) {
			printf("error write at byte %llu returned %s%s\n", ull(wrote), kit_err(r),
			       kit_why(w));
			goto out;
		}
		if (kit_now() >= deadline) {
			printf("error the writer stalled at byte %llu: write kept returning -EAGAIN "
			       "for %lld ms (ready()=%s)\n", ull(wrote), (long long)o->timeout_ms,
			       kit_bits(kp_ready(w)));
			goto out;
		}
		kit_poll(&k, deadline - kit_now());
	}
	unsigned char d[crypto_generichash_BYTES];
	char hex[2 * sizeof d + 1];
	crypto_generichash_final(&h, d, sizeof d);
	sodium_bin2hex(hex, sizeof hex, d, sizeof d);
	printf("wrote %llu %s\n", ull(n), hex);
	deadline = kit_now() + o->timeout_ms;
	while (hold) {
		/* Keep the pipe open and the loop turning until killed. */
		if (k.nviolations) {
			printf("error %s\n", k.violation);
			goto out;
		}
		if (kit_now() >= deadline) {
			printf("error held the pipe open for %lld ms and was never killed\n",
			       (long long)o->timeout_ms);
			goto out;
		}
		kit_poll(&k, deadline - kit_now());
	}
	rc = kp_close_clean(w, NULL, deadline);
	printf("closed %d\n", rc);
	if (rc != 0)
		printf("error the writer's clean close returned %s\n", kit_err(rc));
	else if (k.nviolations)
		printf("error %s\n", k.violation);
	else
		status = 0;
out:
	free(buf);
	kit_unload(&k);
	return status;
}
