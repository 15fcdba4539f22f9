/*
 * harness.h - what every integration test needs: a private directory, real
 * broker processes, and bounded waits.
 *
 * A test runs between it_setup() and it_teardown() (a Check checked
 * fixture). it_setup() makes a fresh directory with mkdtemp and makes the
 * test process a child subreaper, so a program left behind by a killed
 * broker becomes our child and is killed at the end too. it_teardown()
 * kills every process the test started or inherited and removes the
 * directory; it_run() runs the cases without fork so that it runs after a
 * failed assertion too, and an atexit handler covers other early exits.
 * Set RIFT_IT_KEEP=1 to keep the directory for a post-mortem.
 *
 * Every wait is bounded: it_wait() kills the process and fails the test
 * with its log when the deadline passes. Nothing sleeps to synchronize:
 * it_poll_until() re-checks a condition every few milliseconds until it
 * holds or a deadline passes.
 *
 * The environment (set by tests/integration/meson.build):
 *   BROKER             the broker executable
 *   RIFT_PLUGINS       the build's plugin directory (passed as -P)
 *   RIFT_PLUGIN_PATH   the same, for libnetpipe in helper programs
 *   RIFT_IT_TEMPLATES  the manifest templates directory
 *   RIFT_IT_HELPERS    the directory of the helper programs
 *
 * Strings returned by it_path(), it_fmt() and friends live until
 * it_teardown().
 */
#ifndef RIFT_IT_HARNESS_H
#define RIFT_IT_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <check.h>

/* Deadlines, in milliseconds. A broker that takes longer than IT_RUN_MS
 * for a few megabytes is hung, not slow. */
#define IT_RUN_MS   15000
#define IT_POLL_MS  10000

struct it_proc {
	char name[64];          /* for messages: "writer broker" */
	pid_t pid;
	bool done;
	int code;               /* exit status, or -N when killed by signal N */
	char *out, *err;        /* paths of its captured stdout and stderr */
};

void it_setup(void);
void it_teardown(void);

/* The test's directory, and paths and strings that live until teardown. */
const char *it_dir(void);
const char *it_path(const char *name);
const char *it_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A helper program from RIFT_IT_HELPERS. */
const char *it_helper(const char *name);

/* Files in the test's directory (names are relative to it unless they
 * start with '/'). */
void it_write_file(const char *name, const void *data, size_t len);
/* len bytes of /dev/urandom; returns the path. */
const char *it_random_file(const char *name, size_t len);
/* The whole file, NUL-terminated (freed at teardown); *len if asked. */
char *it_read_file(const char *name, size_t *len);
/* Its size, or -1 when it does not exist. */
off_t it_file_size(const char *name);
bool it_exists(const char *name);
bool it_files_equal(const char *a, const char *b);
/* The 1-based line of the first line containing needle, or 0. */
int it_line_of(const char *name, const char *needle);
void it_mkfifo(const char *name);

/*
 * Write a manifest from templates/TEMPLATE.manifest.in into the test's
 * directory. The arguments after template are KEY, VALUE pairs ending with
 * NULL; each @KEY@ in the template is replaced. A key the template has and
 * the caller did not give takes its default (see harness.c: stdin reads an
 * empty file, stdout and stderr go to files named stdout.txt and
 * stderr.txt, generous quotas, Timeout 10, no extra channels). A key left
 * unreplaced fails the test. Returns the manifest's path.
 */
const char *it_manifest(const char *name, const char *template, ...)
	__attribute__((sentinel));
/* A Channel line: uri, alias, etag and the four limits. */
const char *it_channel(const char *uri, const char *alias, int etag, int64_t gets,
                       int64_t get_size, int64_t puts, int64_t put_size);
/* Channel lines for a reader (program reads it) or a writer (program
 * writes it) with generous limits. */
const char *it_in(const char *uri, const char *alias);
const char *it_out(const char *uri, const char *alias);

/* Start `broker -P $RIFT_PLUGINS [args...] -m MANIFEST` with stdin from
 * /dev/null and stdout/stderr captured to <name>.stdout/<name>.stderr in
 * the test's directory. The extra args end with NULL. The broker does not
 * inherit RIFT_PLUGIN_PATH (set for the libnetpipe helpers): -P is how
 * these tests name the plugins, and the same directory twice is a case of
 * its own (plugin_dir_given_twice_loads_once). */
struct it_proc *it_broker(const char *name, const char *manifest, ...)
	__attribute__((sentinel));
/* Start any program the same way, with the test's environment: argv
 * ends with NULL. */
struct it_proc *it_spawn(const char *name, char *const argv[]);
/* The same, without the environment variable var. */
struct it_proc *it_spawn_unset(const char *name, char *const argv[], const char *var);
/* The np-copy helper (np-copy.c): `np-copy MODE DESCRIPTOR FILE [EXTRA]`,
 * MODE "read" or "write"; extra may be NULL. */
struct it_proc *it_np_copy(const char *name, const char *mode, const char *desc,
                           const char *file, const char *extra);
/* Rule 5 through libnetpipe: an np-copy reader of rdesc (into
 * output.bin) and an np-copy writer of wdesc (from input); once `after`
 * bytes came, the writer is SIGKILLed, and the reader must fail with
 * -ECONNRESET (np-copy's exit 3, "without closing"), never see EOF. */
void it_check_killed_writer_is_reset(const char *rdesc, const char *wdesc,
                                     const char *input, off_t after);

/* The next it_spawn()/it_broker() gets this on its stdin instead of
 * /dev/null: a dup of fd (the caller keeps fd), or the named file. */
void it_next_stdin(int fd);
void it_next_stdin_file(const char *name);

/* Wait for the process to end, at most ms milliseconds; on timeout kill
 * it and fail the test. Returns its code (exit status, or -signal). */
int it_wait(struct it_proc *p, int ms);
bool it_running(struct it_proc *p);
void it_kill(struct it_proc *p, int sig);
/* Its captured stderr / stdout so far. */
const char *it_log(struct it_proc *p);
const char *it_stdout(struct it_proc *p);

/* Re-check cond(arg) every few milliseconds until it holds (true) or ms
 * pass (false). */
bool it_poll_until(bool (*cond)(void *arg), void *arg, int ms);
/* Common conditions. */
bool it_wait_file_size(const char *name, off_t at_least, int ms);
bool it_wait_exists(const char *name, int ms);
bool it_wait_log(struct it_proc *p, const char *needle, int ms);

/* Run the suite (CK_RUN_CASE picks one case, as meson.build does for
 * each test); fails when nothing ran, so a misspelt case name cannot
 * pass. Returns main's exit status. */
int it_run(Suite *s);

/* One case of a suite's table: CASE(t) in each test file fills it, and
 * meson.build reads those lines to make one test per case. */
struct it_case {
	const char *name;
	const TTest *test;
};

/* A suite of n cases, each a test case of its own with it_setup and
 * it_teardown around it and Check's timeout at 60 s. */
Suite *it_suite(const char *name, const struct it_case *cases, size_t n);

/* Milliseconds on the monotonic clock. */
int64_t it_now_ms(void);

/* Assertions that print the process's log when they fail. */
#define it_assert_exit(p, want) do { \
	struct it_proc *it_p_ = (p); \
	int it_c_ = it_wait(it_p_, IT_RUN_MS); \
	ck_assert_msg(it_c_ == (want), "%s: %s %d, expected exit status %d; its stderr:\n%s", \
	              it_p_->name, it_c_ < 0 ? "killed by signal" : "exit status", \
	              it_c_ < 0 ? -it_c_ : it_c_, (want), it_log(it_p_)); \
} while (0)

#define it_assert_log(p, needle) do { \
	struct it_proc *it_p_ = (p); \
	ck_assert_msg(strstr(it_log(it_p_), (needle)) != NULL, \
	              "%s: expected \"%s\" in its stderr:\n%s", it_p_->name, (needle), \
	              it_log(it_p_)); \
} while (0)

#endif
