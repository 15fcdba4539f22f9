/*
 * test_brokers.c - real broker processes moving real bytes.
 *
 * Each test case is one behaviour a user relies on, named for it; meson
 * runs each case as a test of its own (tests/integration/meson.build).
 * The manifests come from templates/ (harness.h, it_manifest); the
 * programs are /bin/sh, coreutils and the helpers in this folder.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <sodium.h>

#include "harness.h"
#include "stream.h"

#define MiB (1024 * 1024)

/* Netpipe:unix:<test dir>/<name> */
static const char *unix_pipe(const char *name)
{
	return it_fmt("Netpipe:unix:%s", it_path(name));
}

/* True when the file holds exactly the first bytes of it-stream SEED. */
static bool is_stream_prefix(const char *name, uint64_t seed, size_t *len)
{
	size_t n;
	const unsigned char *got = (const unsigned char *)it_read_file(name, &n);
	struct it_stream s;
	unsigned char want[65536];
	it_stream_init(&s, seed);
	*len = n;
	for (size_t off = 0; off < n; off += sizeof want) {
		size_t k = n - off < sizeof want ? n - off : sizeof want;
		it_stream_fill(&s, want, k);
		if (memcmp(got + off, want, k) != 0)
			return false;
	}
	return true;
}

static bool all_zero(const char *name, size_t *len)
{
	const char *d = it_read_file(name, len);
	for (size_t i = 0; i < *len; i++)
		if (d[i])
			return false;
	return true;
}

static bool has_line(void *name)
{
	return strchr(it_read_file(name, NULL), '\n') != NULL;
}

/* The program's pid, written by `echo $$ > FILE` before it exec'd. */
static pid_t pid_in(const char *name)
{
	ck_assert_msg(it_poll_until(has_line, (void *)name, IT_POLL_MS),
	              "the program never wrote its pid to %s", name);
	return (pid_t)atoi(it_read_file(name, NULL));
}

/* The program is gone: not running, not a zombie left to us. */
static bool process_gone(pid_t pid)
{
	return kill(pid, 0) < 0 && errno == ESRCH;
}

START_TEST(two_brokers_move_a_file_over_unix)
{
	const char *in = it_random_file("input.bin", 8 * MiB);
	const char *np = unix_pipe("pipe.sock");
	/* The writer's program leaves a mark once the broker has opened its
	 * channels and started it: from then on it is waiting for a reader. */
	const char *wm = it_manifest("writer.manifest", "netpipe-writer", "NETPIPE", np,
	                             "INPUT", in, "PROGRAM",
	                             it_fmt("exec:/bin/sh -c 'touch %s; exec cat'",
	                                    it_path("writer-started")),
	                             NULL);
	const char *rm = it_manifest("reader.manifest", "netpipe-reader", "NETPIPE", np, NULL);

	struct it_proc *w = it_broker("writer broker", wm, NULL);
	ck_assert_msg(it_wait_exists("writer-started", IT_POLL_MS),
	              "the writer broker never started its program; its stderr:\n%s", it_log(w));
	ck_assert_msg(it_running(w) && !it_exists("pipe.sock"),
	              "with no reader yet, the writer must wait (running %d, socket %d); stderr:\n%s",
	              it_running(w), it_exists("pipe.sock"), it_log(w));

	struct it_proc *r = it_broker("reader broker", rm, NULL);
	it_assert_exit(r, 0);
	it_assert_exit(w, 0);
	ck_assert_msg(it_files_equal("reader.output", in),
	              "the reader's output (%lld bytes) differs from the 8 MiB input",
	              (long long)it_file_size("reader.output"));
	ck_assert_msg(!it_exists("pipe.sock"), "the reader left its socket file behind");
}
END_TEST

START_TEST(etag_stream_passes)
{
	const char *in = it_random_file("input.bin", 3 * MiB + 17);
	const char *np = unix_pipe("pipe.sock");
	const char *wm = it_manifest("writer.manifest", "netpipe-writer", "NETPIPE", np,
	                             "INPUT", in, "ETAG", "1", NULL);
	const char *rm = it_manifest("reader.manifest", "netpipe-reader", "NETPIPE", np,
	                             "ETAG", "1", NULL);
	struct it_proc *r = it_broker("reader broker", rm, NULL);
	struct it_proc *w = it_broker("writer broker", wm, NULL);
	it_assert_exit(r, 0);
	it_assert_exit(w, 0);
	ck_assert_msg(it_files_equal("reader.output", in), "the etag'd stream arrived changed");
}
END_TEST

START_TEST(etag_reader_rejects_a_stream_without_digest)
{
	const char *in = it_random_file("input.bin", 100000);
	const char *np = unix_pipe("pipe.sock");
	const char *wm = it_manifest("writer.manifest", "netpipe-writer", "NETPIPE", np,
	                             "INPUT", in, NULL);
	const char *rm = it_manifest("reader.manifest", "netpipe-reader", "NETPIPE", np,
	                             "ETAG", "1", NULL);
	struct it_proc *r = it_broker("reader broker", rm, NULL);
	struct it_proc *w = it_broker("writer broker", wm, NULL);
	it_assert_exit(w, 0);
	it_assert_exit(r, 3);
	it_assert_log(r, "channel /dev/stdin");
	it_assert_log(r, "digest");
}
END_TEST

START_TEST(reversed_rendezvous_the_writer_listens)
{
	/* listen=writer: the writer binds, the reader connects and retries.
	 * Start the reader first to show it waits for the writer to appear. */
	const char *in = it_random_file("input.bin", 4 * MiB);
	const char *np = it_fmt("Netpipe:unix:%s?listen=writer", it_path("pipe.sock"));
	const char *rm = it_manifest("reader.manifest", "netpipe-reader", "NETPIPE", np,
	                             "PROGRAM", it_fmt("exec:/bin/sh -c 'touch %s; exec cat'",
	                                               it_path("reader-started")),
	                             NULL);
	const char *wm = it_manifest("writer.manifest", "netpipe-writer", "NETPIPE", np,
	                             "INPUT", in, NULL);
	struct it_proc *r = it_broker("reader broker", rm, NULL);
	ck_assert_msg(it_wait_exists("reader-started", IT_POLL_MS),
	              "the reader broker never started its program; its stderr:\n%s", it_log(r));
	ck_assert_msg(it_running(r) && !it_exists("pipe.sock"),
	              "the reader must wait for a listening writer and bind nothing:\n%s",
	              it_log(r));
	struct it_proc *w = it_broker("writer broker", wm, NULL);
	it_assert_exit(w, 0);
	it_assert_exit(r, 0);
	ck_assert_msg(it_files_equal("reader.output", in), "the reader's output differs");
	ck_assert_msg(!it_exists("pipe.sock") && !it_exists("pipe.sock.lock"),
	              "the listening writer left its socket or lock file behind");
}
END_TEST

START_TEST(killed_writer_broker_is_not_eof)
{
	const char *np = unix_pipe("pipe.sock");
	const char *wm = it_manifest("writer.manifest", "netpipe-writer", "NETPIPE", np,
	                             "PROGRAM", it_fmt("exec:%s 42", it_helper("it-stream")),
	                             NULL);
	const char *rm = it_manifest("reader.manifest", "netpipe-reader", "NETPIPE", np, NULL);
	struct it_proc *r = it_broker("reader broker", rm, NULL);
	struct it_proc *w = it_broker("writer broker", wm, NULL);
	ck_assert_msg(it_wait_file_size("reader.output", 256 * 1024, IT_POLL_MS),
	              "the reader got only %lld bytes; writer stderr:\n%s\nreader stderr:\n%s",
	              (long long)it_file_size("reader.output"), it_log(w), it_log(r));
	it_kill(w, SIGKILL);
	it_assert_exit(w, -SIGKILL);
	it_assert_exit(r, 3);
	it_assert_log(r, "channel /dev/stdin");
	it_assert_log(r, "without closing");
	size_t len;
	ck_assert_msg(is_stream_prefix("reader.output", 42, &len),
	              "the reader's %zu bytes are not a prefix of the stream", len);
	ck_assert_uint_ge(len, 256 * 1024);
}
END_TEST

START_TEST(killed_program_aborts_channel)
{
	const char *np = unix_pipe("pipe.sock");
	const char *wm = it_manifest("writer.manifest", "netpipe-writer", "NETPIPE", np,
	                             "PROGRAM",
	                             "exec:/bin/sh -c 'head -c 100000 /dev/zero; kill -9 $$'",
	                             NULL);
	const char *rm = it_manifest("reader.manifest", "netpipe-reader", "NETPIPE", np, NULL);
	struct it_proc *r = it_broker("reader broker", rm, NULL);
	struct it_proc *w = it_broker("writer broker", wm, NULL);
	it_assert_exit(w, 128 + SIGKILL);
	it_assert_log(w, "signal 9");
	it_assert_exit(r, 3);
	it_assert_log(r, "channel /dev/stdin");
	size_t len;
	ck_assert_msg(all_zero("reader.output", &len) && len <= 100000,
	              "the reader's output is not a prefix of what the program wrote (%zu bytes)",
	              len);
}
END_TEST

START_TEST(program_status_is_exit_status)
{
	const char *m = it_manifest("run.manifest", "run", "PROGRAM", "exec:/bin/sh -c 'exit 7'",
	                            NULL);
	it_assert_exit(it_broker("broker", m, NULL), 7);
}
END_TEST

START_TEST(write_quota_returns_edquot_program_keeps_running)
{
	const char *m = it_manifest("run.manifest", "run", "PUT_SIZE", "1000", "PROGRAM",
	                            "exec:/bin/sh -c 'head -c 100000 /dev/zero; echo done >&2'",
	                            NULL);
	struct it_proc *b = it_broker("broker", m, NULL);
	it_assert_exit(b, 0);
	ck_assert_int_eq(it_file_size("run.output"), 1000);
	ck_assert_msg(strstr(it_read_file("run.errors", NULL), "done\n") != NULL,
	              "the program did not keep running past the quota; its stderr channel:\n%s",
	              it_read_file("run.errors", NULL));
	it_assert_log(b, "quota");
	it_assert_log(b, "EDQUOT");
	it_assert_log(b, "/dev/stdout");
}
END_TEST

START_TEST(read_quota)
{
	const char *in = it_random_file("input.bin", 100000);
	const char *m = it_manifest("run.manifest", "run", "INPUT", in, "GET_SIZE", "1000",
	                            "PROGRAM", "exec:wc -c", NULL);
	struct it_proc *b = it_broker("broker", m, NULL);
	it_assert_exit(b, 0);
	ck_assert_str_eq(it_read_file("run.output", NULL), "1000\n");
	it_assert_log(b, "quota");
}
END_TEST

START_TEST(timeout_is_enforced)
{
	const char *m = it_manifest("run.manifest", "run", "TIMEOUT", "1", "PROGRAM",
	                            it_fmt("exec:/bin/sh -c 'echo $$ > %s; exec sleep 30'",
	                                   it_path("pid")),
	                            NULL);
	int64_t t0 = it_now_ms();
	struct it_proc *b = it_broker("broker", m, NULL);
	ck_assert_int_eq(it_wait(b, 5000), 124);
	int64_t took = it_now_ms() - t0;
	ck_assert_msg(took >= 900, "stopped after %lld ms, before the 1 s Timeout", (long long)took);
	it_assert_log(b, "Timeout");
	pid_t pid = pid_in("pid");
	ck_assert_msg(process_gone(pid), "the program (pid %d) outlived its broker's Timeout",
	              (int)pid);
}
END_TEST

START_TEST(sigterm_stops_the_program_and_exits_143)
{
	const char *m = it_manifest("run.manifest", "run", "PROGRAM",
	                            it_fmt("exec:/bin/sh -c 'echo $$ > %s; exec sleep 30'",
	                                   it_path("pid")),
	                            NULL);
	struct it_proc *b = it_broker("broker", m, NULL);
	pid_t pid = pid_in("pid");
	it_kill(b, SIGTERM);
	it_assert_exit(b, 128 + SIGTERM);
	ck_assert_msg(process_gone(pid), "the program (pid %d) outlived its broker", (int)pid);
}
END_TEST

START_TEST(missing_program)
{
	const char *m = it_manifest("reader.manifest", "netpipe-reader", "NETPIPE",
	                            unix_pipe("pipe.sock"), "PROGRAM", "exec:/nonexistent", NULL);
	struct it_proc *b = it_broker("broker", m, NULL);
	it_assert_exit(b, 2);
	it_assert_log(b, "/nonexistent");
	ck_assert_msg(!it_exists("pipe.sock"), "the broker bound a socket before failing");
	ck_assert_msg(!it_exists("reader.output"), "the broker created its output before failing");
}
END_TEST

START_TEST(unknown_scheme)
{
	const char *m = it_manifest("reader.manifest", "netpipe-reader", "NETPIPE",
	                            "Netpipe:nosuch:x", NULL);
	struct it_proc *b = it_broker("broker", m, NULL);
	it_assert_exit(b, 2);
	it_assert_log(b, it_fmt("%s:%d:", m, it_line_of(m, "Netpipe:nosuch")));
	it_assert_log(b, "'nosuch'");
	ck_assert_msg(!it_exists("reader.output"), "the broker opened a channel before failing");
}
END_TEST

START_TEST(bad_manifest_line)
{
	const char *m = it_manifest("run.manifest", "run", "EXTRA",
	                            "Channel = /tmp/x, /dev/in/x, 0, 0, 1, 2", NULL);
	const char *where = it_fmt("%s:%d:", m, it_line_of(m, "/dev/in/x"));
	struct it_proc *b = it_broker("broker", m, NULL);
	it_assert_exit(b, 2);
	it_assert_log(b, where);
	ck_assert_msg(!it_exists("run.output"), "the broker opened a channel before failing");
	struct it_proc *c = it_broker("broker --check", m, "--check", NULL);
	it_assert_exit(c, 2);
	it_assert_log(c, where);
}
END_TEST

START_TEST(check_validates_without_opening)
{
	const char *m = it_manifest("reader.manifest", "netpipe-reader", "NETPIPE",
	                            unix_pipe("pipe.sock"), NULL);
	struct it_proc *c = it_broker("broker --check", m, "--check", NULL);
	it_assert_exit(c, 0);
	ck_assert_msg(strstr(it_stdout(c), "ok") != NULL, "--check said:\n%s", it_stdout(c));
	ck_assert_msg(!it_exists("pipe.sock"), "--check bound the reader's socket");
	ck_assert_msg(!it_exists("reader.output"), "--check created the output file");
}
END_TEST

/* The writer broker must fail, naming the channel, and never die of
 * SIGPIPE (nor pass a 141 on from a program that did). */
static void assert_writer_failed_cleanly(struct it_proc *w)
{
	int code = it_wait(w, IT_RUN_MS);
	ck_assert_msg(code > 0 && code != 128 + SIGPIPE,
	              "writer broker: %s %d, expected a failure status; its stderr:\n%s",
	              code < 0 ? "killed by signal" : "exit status", code < 0 ? -code : code,
	              it_log(w));
	it_assert_log(w, "channel /dev/stdout");
	it_assert_log(w, "reader went away");
}

/* A reader whose program stops reading after the first bytes: they
 * prove the writer is connected, so the reader leaves mid-stream. (A
 * reader that leaves before the writer connects is not "gone" to the
 * writer: it waits for a reader to appear, as it should.) */
#define EARLY_QUIT "exec:/bin/sh -c 'head -c 1000 >/dev/null'"

START_TEST(reader_gone_writer_fails)
{
	const char *in = it_random_file("input.bin", 50 * MiB);
	const char *np = unix_pipe("pipe.sock");
	const char *wm = it_manifest("writer.manifest", "netpipe-writer", "NETPIPE", np,
	                             "INPUT", in, NULL);
	const char *rm = it_manifest("reader.manifest", "netpipe-reader", "NETPIPE", np,
	                             "PROGRAM", EARLY_QUIT, NULL);
	struct it_proc *w = it_broker("writer broker", wm, NULL);
	struct it_proc *r = it_broker("reader broker", rm, NULL);
	it_assert_exit(r, 0);
	assert_writer_failed_cleanly(w);
}
END_TEST

START_TEST(reader_gone_fails_the_channel_even_when_program_succeeds)
{
	const char *np = unix_pipe("pipe.sock");
	/* The program shrugs off its EPIPE and exits 0: the broker still
	 * reports the channel that failed, with 3. */
	const char *wm = it_manifest("writer.manifest", "netpipe-writer", "NETPIPE", np,
	                             "PROGRAM",
	                             it_fmt("exec:/bin/sh -c '%s 5 || true'", it_helper("it-stream")),
	                             NULL);
	const char *rm = it_manifest("reader.manifest", "netpipe-reader", "NETPIPE", np,
	                             "PROGRAM", EARLY_QUIT, NULL);
	struct it_proc *w = it_broker("writer broker", wm, NULL);
	struct it_proc *r = it_broker("reader broker", rm, NULL);
	it_assert_exit(r, 0);
	it_assert_exit(w, 3);
	it_assert_log(w, "channel /dev/stdout");
}
END_TEST

START_TEST(reader_quota_ends_the_writer)
{
	const char *in = it_random_file("input.bin", 50 * MiB);
	const char *np = unix_pipe("pipe.sock");
	const char *wm = it_manifest("writer.manifest", "netpipe-writer", "NETPIPE", np,
	                             "INPUT", in, NULL);
	const char *rm = it_manifest("reader.manifest", "netpipe-reader", "NETPIPE", np,
	                             "GET_SIZE", "1000", NULL);
	struct it_proc *w = it_broker("writer broker", wm, NULL);
	struct it_proc *r = it_broker("reader broker", rm, NULL);
	it_assert_exit(r, 0);
	it_assert_log(r, "quota");
	size_t n;
	const char *got = it_read_file("reader.output", &n);
	ck_assert_uint_eq(n, 1000);
	ck_assert_msg(memcmp(got, it_read_file(in, NULL), n) == 0,
	              "the 1000 bytes the reader got are not the start of the input");
	assert_writer_failed_cleanly(w);
}
END_TEST

START_TEST(sigpipe_never_kills_broker_on_a_fifo)
{
	/* A raw FIFO is not a socket: no MSG_NOSIGNAL there. */
	it_mkfifo("fifo");
	const char *m = it_manifest("writer.manifest", "run", "OUTPUT", it_path("fifo"),
	                            "PROGRAM", it_fmt("exec:%s 9", it_helper("it-stream")), NULL);
	struct it_proc *w = it_broker("writer broker", m, NULL);
	int fd = open(it_path("fifo"), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	ck_assert_msg(fd >= 0, "open the FIFO: %s", strerror(errno));
	struct pollfd pf = {fd, POLLIN, 0};
	ck_assert_msg(poll(&pf, 1, IT_POLL_MS) == 1 && (pf.revents & POLLIN),
	              "nothing came through the FIFO; writer stderr:\n%s", it_log(w));
	unsigned char got[4096], want[4096];
	ssize_t n = read(fd, got, sizeof got);
	ck_assert_int_gt(n, 0);
	struct it_stream s;
	it_stream_init(&s, 9);
	it_stream_fill(&s, want, (size_t)n);
	ck_assert_msg(memcmp(got, want, (size_t)n) == 0, "the FIFO's first bytes are wrong");
	close(fd); /* the reader goes away mid-stream */
	int code = it_wait(w, IT_RUN_MS);
	ck_assert_msg(code > 0 && code != 128 + SIGPIPE,
	              "writer broker: %s %d; its stderr:\n%s",
	              code < 0 ? "killed by signal" : "exit status", code < 0 ? -code : code,
	              it_log(w));
	it_assert_log(w, "channel /dev/stdout");
}
END_TEST

START_TEST(two_channels_fan_in)
{
	const char *a = it_random_file("a.bin", 1 * MiB + 3);
	const char *b = it_random_file("b.bin", 2 * MiB + 5);
	const char *npa = unix_pipe("a.sock"), *npb = unix_pipe("b.sock");
	const char *fm = it_manifest(
		"fan.manifest", "run", "PROGRAM",
		it_fmt("exec:%s /dev/in/a /dev/in/b", it_helper("chan-cat")), "EXTRA",
		it_fmt("%s\n%s", it_in(npa, "/dev/in/a"), it_in(npb, "/dev/in/b")), NULL);
	const char *wa = it_manifest("writer-a.manifest", "netpipe-writer", "NETPIPE", npa,
	                             "INPUT", a, NULL);
	const char *wb = it_manifest("writer-b.manifest", "netpipe-writer", "NETPIPE", npb,
	                             "INPUT", b, NULL);
	struct it_proc *pa = it_broker("writer broker a", wa, NULL);
	struct it_proc *pb = it_broker("writer broker b", wb, NULL);
	struct it_proc *f = it_broker("fan-in broker", fm, NULL);
	it_assert_exit(f, 0);
	it_assert_exit(pa, 0);
	it_assert_exit(pb, 0);
	size_t la, lb, lo;
	const char *da = it_read_file(a, &la), *db = it_read_file(b, &lb);
	const char *out = it_read_file("fan.output", &lo);
	ck_assert_msg(lo == la + lb && memcmp(out, da, la) == 0 && memcmp(out + la, db, lb) == 0,
	              "fan-in output (%zu bytes) is not stream a (%zu) then stream b (%zu);"
	              " program stderr:\n%s", lo, la, lb, it_read_file("fan.errors", NULL));
}
END_TEST

START_TEST(two_channels_fan_in_from_the_shell)
{
	it_write_file("a.txt", "stream a\n", 9);
	it_write_file("b.txt", "stream b\n", 9);
	const char *npa = unix_pipe("a.sock"), *npb = unix_pipe("b.sock");
	const char *fm = it_manifest(
		"fan.manifest", "run", "PROGRAM",
		"exec:/bin/sh -c 'cat <&3; cat <&4; echo \"$RIFT_CHANNELS\"'", "EXTRA",
		it_fmt("%s\n%s", it_in(npa, "/dev/in/a"), it_in(npb, "/dev/in/b")), NULL);
	const char *wa = it_manifest("writer-a.manifest", "netpipe-writer", "NETPIPE", npa,
	                             "INPUT", it_path("a.txt"), NULL);
	const char *wb = it_manifest("writer-b.manifest", "netpipe-writer", "NETPIPE", npb,
	                             "INPUT", it_path("b.txt"), NULL);
	struct it_proc *f = it_broker("fan-in broker", fm, NULL);
	struct it_proc *pb = it_broker("writer broker b", wb, NULL);
	struct it_proc *pa = it_broker("writer broker a", wa, NULL);
	it_assert_exit(f, 0);
	it_assert_exit(pa, 0);
	it_assert_exit(pb, 0);
	ck_assert_str_eq(it_read_file("fan.output", NULL),
	                 "stream a\nstream b\n/dev/in/a=3,/dev/in/b=4\n");
}
END_TEST

START_TEST(std_channel_shares_the_brokers_stderr_file)
{
	/* Channel = /dev/stderr, /dev/stderr while the broker's stderr is a
	 * file: the program's lines and the broker's own must both be there. */
	const char *m = it_manifest("run.manifest", "run", "ERRORS", "/dev/stderr", "PUT_SIZE",
	                            "1000", "PROGRAM",
	                            "exec:/bin/sh -c 'echo from-the-program >&2; "
	                            "head -c 5000 /dev/zero; echo after-the-quota >&2'",
	                            NULL);
	struct it_proc *b = it_broker("broker", m, NULL);
	it_assert_exit(b, 0);
	it_assert_log(b, "from-the-program\n");
	it_assert_log(b, "after-the-quota\n");
	it_assert_log(b, "quota of 1000 bytes");
}
END_TEST

START_TEST(char_device_input)
{
	/* Channel = /dev/zero, /dev/stdin: a character device as input. */
	const char *m = it_manifest("run.manifest", "run", "INPUT", "/dev/zero", "PROGRAM",
	                            "exec:head -c 5000", NULL);
	struct it_proc *b = it_broker("broker", m, NULL);
	it_assert_exit(b, 0);
	size_t len;
	ck_assert_msg(all_zero("run.output", &len) && len == 5000,
	              "expected 5000 zero bytes, got %zu", len);
}
END_TEST

/* One transport, two broker pairs: the file moves, and a killed writer
 * broker is a reset, not an end. */
static void move_a_file(const char *np)
{
	const char *in = it_random_file("input.bin", 8 * MiB + 1);
	const char *wm = it_manifest("writer.manifest", "netpipe-writer", "NETPIPE", np,
	                             "INPUT", in, "ETAG", "1", NULL);
	const char *rm = it_manifest("reader.manifest", "netpipe-reader", "NETPIPE", np,
	                             "ETAG", "1", NULL);
	struct it_proc *w = it_broker("writer broker", wm, NULL);
	struct it_proc *r = it_broker("reader broker", rm, NULL);
	it_assert_exit(r, 0);
	it_assert_exit(w, 0);
	ck_assert_msg(it_files_equal("reader.output", in),
	              "the reader's output (%lld bytes) differs from the input",
	              (long long)it_file_size("reader.output"));
}

START_TEST(two_brokers_move_a_file_over_a_framed_fifo)
{
	move_a_file(it_fmt("Netpipe:file:%s?framed=1", it_path("pipe.fifo")));
	ck_assert_msg(!it_exists("pipe.fifo"), "the reader left its FIFO behind");
}
END_TEST

START_TEST(killed_writer_broker_over_a_framed_fifo_is_not_eof)
{
	const char *np = it_fmt("Netpipe:file:%s?framed=1", it_path("pipe.fifo"));
	const char *wm = it_manifest("writer.manifest", "netpipe-writer", "NETPIPE", np,
	                             "PROGRAM", it_fmt("exec:%s 43", it_helper("it-stream")),
	                             NULL);
	const char *rm = it_manifest("reader.manifest", "netpipe-reader", "NETPIPE", np, NULL);
	struct it_proc *r = it_broker("reader broker", rm, NULL);
	struct it_proc *w = it_broker("writer broker", wm, NULL);
	ck_assert_msg(it_wait_file_size("reader.output", 256 * 1024, IT_POLL_MS),
	              "the reader got only %lld bytes; writer stderr:\n%s\nreader stderr:\n%s",
	              (long long)it_file_size("reader.output"), it_log(w), it_log(r));
	it_kill(w, SIGKILL);
	it_assert_exit(w, -SIGKILL);
	it_assert_exit(r, 3);
	it_assert_log(r, "channel /dev/stdin");
	it_assert_log(r, "without closing");
	size_t len;
	ck_assert_msg(is_stream_prefix("reader.output", 43, &len),
	              "the reader's %zu bytes are not a prefix of the stream", len);
}
END_TEST

/* Open the FIFO's writing end once its reader is there, and close it:
 * the reader sees its end. */
static bool release(void *arg)
{
	int fd = open(it_path(arg), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

START_TEST(second_writer_is_turned_away)
{
	/* Writer A connects, sends its file and stays connected until the
	 * test releases it; writer B arrives in the meantime. */
	const char *a = it_random_file("a.bin", 100000);
	const char *b = it_random_file("b.bin", 4 * MiB);
	const char *np = unix_pipe("pipe.sock");
	it_mkfifo("hold");
	const char *rm = it_manifest("reader.manifest", "netpipe-reader", "NETPIPE", np, NULL);
	const char *wa = it_manifest("writer-a.manifest", "netpipe-writer", "NETPIPE", np,
	                             "INPUT", a, "PROGRAM",
	                             it_fmt("exec:/bin/sh -c 'cat; cat %s'", it_path("hold")),
	                             NULL);
	const char *wb = it_manifest("writer-b.manifest", "netpipe-writer", "NETPIPE", np,
	                             "INPUT", b, NULL);
	struct it_proc *r = it_broker("reader broker", rm, NULL);
	struct it_proc *pa = it_broker("writer broker a", wa, NULL);
	ck_assert_msg(it_wait_file_size("reader.output", 100000, IT_POLL_MS),
	              "writer a's bytes never arrived; its stderr:\n%s", it_log(pa));
	struct it_proc *pb = it_broker("writer broker b", wb, NULL);
	int code = it_wait(pb, IT_RUN_MS);
	ck_assert_msg(code > 0 && code != 128 + SIGPIPE,
	              "writer broker b: %s %d, expected a failure status; its stderr:\n%s",
	              code < 0 ? "killed by signal" : "exit status", code < 0 ? -code : code,
	              it_log(pb));
	it_assert_log(pb, "channel /dev/stdout");
	ck_assert_msg(it_poll_until(release, (void *)"hold", IT_POLL_MS),
	              "writer a's program never waited on the hold FIFO");
	it_assert_exit(pa, 0);
	it_assert_exit(r, 0);
	ck_assert_msg(it_files_equal("reader.output", a),
	              "the reader got %lld bytes, not exactly writer a's 100000",
	              (long long)it_file_size("reader.output"));
}
END_TEST

START_TEST(relative_program_path_is_from_the_manifest_dir)
{
	it_write_file("hello.sh", "#!/bin/sh\necho hello from the manifest dir\n", 43);
	ck_assert_int_eq(chmod(it_path("hello.sh"), 0755), 0);
	const char *m = it_manifest("run.manifest", "run", "PROGRAM", "exec:./hello.sh", NULL);
	struct it_proc *b = it_broker("broker", m, NULL); /* our cwd is elsewhere */
	it_assert_exit(b, 0);
	ck_assert_str_eq(it_read_file("run.output", NULL), "hello from the manifest dir\n");
}
END_TEST

/* The demo's writer: Channel = /dev/stdin, /dev/stdin reads the broker's
 * own stdin, here a file or a pipe. */
static const char *stdin_writer(void)
{
	return it_manifest("writer.manifest", "netpipe-writer", "NETPIPE", unix_pipe("pipe.sock"),
	                   "INPUT", "/dev/stdin", "ETAG", "1", NULL);
}

START_TEST(brokers_stdin_file_as_a_channel)
{
	const char *in = it_random_file("input.bin", 2 * MiB);
	const char *rm = it_manifest("reader.manifest", "netpipe-reader", "NETPIPE",
	                             unix_pipe("pipe.sock"), "ETAG", "1", NULL);
	it_next_stdin_file("input.bin");
	struct it_proc *w = it_broker("writer broker", stdin_writer(), NULL);
	struct it_proc *r = it_broker("reader broker", rm, NULL);
	it_assert_exit(r, 0);
	it_assert_exit(w, 0);
	ck_assert_msg(it_files_equal("reader.output", in), "the broker's stdin arrived changed");
}
END_TEST

START_TEST(brokers_stdin_pipe_as_a_channel)
{
	static const char text[] = "through a shell pipe into the broker\n";
	int p[2];
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	/* Fits in the pipe's buffer: written before the broker runs. */
	ck_assert_int_eq(write(p[1], text, sizeof text - 1), (ssize_t)sizeof text - 1);
	const char *rm = it_manifest("reader.manifest", "netpipe-reader", "NETPIPE",
	                             unix_pipe("pipe.sock"), "ETAG", "1", NULL);
	it_next_stdin(p[0]);
	struct it_proc *w = it_broker("writer broker", stdin_writer(), NULL);
	close(p[0]);
	struct it_proc *r = it_broker("reader broker", rm, NULL);
	ck_assert_msg(it_wait_file_size("reader.output", sizeof text - 1, IT_POLL_MS),
	              "the pipe's bytes never arrived; writer stderr:\n%s", it_log(w));
	close(p[1]); /* end of the broker's stdin */
	it_assert_exit(w, 0);
	it_assert_exit(r, 0);
	ck_assert_str_eq(it_read_file("reader.output", NULL), text);
}
END_TEST

START_TEST(brokers_stdin_dev_null_as_a_channel)
{
	/* A broker run from cron, CI or a service manager: stdin is
	 * /dev/null, which reads as an empty stream. */
	const char *m = it_manifest("run.manifest", "run", "INPUT", "/dev/stdin", NULL);
	struct it_proc *b = it_broker("broker", m, NULL);
	it_assert_exit(b, 0);
	ck_assert_int_eq(it_file_size("run.output"), 0);
}
END_TEST

START_TEST(second_reader_is_refused)
{
	/* The same reader manifest started twice: the second one must say
	 * the address is taken, and the first one must still work. */
	const char *in = it_random_file("input.bin", 1 * MiB);
	const char *np = unix_pipe("pipe.sock");
	const char *rm = it_manifest("reader.manifest", "netpipe-reader", "NETPIPE", np,
	                             "TIMEOUT", "5", NULL);
	const char *r2m = it_manifest("reader2.manifest", "netpipe-reader", "NETPIPE", np, NULL);
	const char *wm = it_manifest("writer.manifest", "netpipe-writer", "NETPIPE", np,
	                             "INPUT", in, "TIMEOUT", "5", NULL);
	struct it_proc *r = it_broker("reader broker", rm, NULL);
	ck_assert_msg(it_wait_exists("pipe.sock", IT_POLL_MS),
	              "the reader never bound its socket; its stderr:\n%s", it_log(r));
	struct it_proc *r2 = it_broker("second reader broker", r2m, NULL);
	it_assert_exit(r2, 2);
	it_assert_log(r2, "/dev/stdin");
	it_assert_log(r2, "in use");
	ck_assert_msg(!it_exists("reader2.output"), "the refused reader opened its output");
	struct it_proc *w = it_broker("writer broker", wm, NULL);
	it_assert_exit(r, 0);
	it_assert_exit(w, 0);
	ck_assert_msg(it_files_equal("reader.output", in), "the first reader's stream was disturbed");
}
END_TEST

START_TEST(stale_socket_from_killed_reader_is_replaced)
{
	/* A reader broker killed with SIGKILL cannot remove its socket file;
	 * the next reader must take the address over. */
	const char *in = it_random_file("input.bin", 1 * MiB);
	const char *np = unix_pipe("pipe.sock");
	const char *rm = it_manifest("reader.manifest", "netpipe-reader", "NETPIPE", np, NULL);
	const char *wm = it_manifest("writer.manifest", "netpipe-writer", "NETPIPE", np,
	                             "INPUT", in, NULL);
	struct it_proc *dead = it_broker("killed reader broker", rm, NULL);
	ck_assert_msg(it_wait_exists("pipe.sock", IT_POLL_MS),
	              "the reader never bound its socket; its stderr:\n%s", it_log(dead));
	it_kill(dead, SIGKILL);
	it_assert_exit(dead, -SIGKILL);
	ck_assert_msg(it_exists("pipe.sock"), "expected the killed reader's socket file to stay");
	struct it_proc *w = it_broker("writer broker", wm, NULL); /* finds a dead socket */
	struct it_proc *r = it_broker("reader broker", rm, NULL);
	it_assert_exit(r, 0);
	it_assert_exit(w, 0);
	ck_assert_msg(it_files_equal("reader.output", in), "the stream arrived changed");
}
END_TEST

START_TEST(writer_without_reader_waits_until_timeout)
{
	/* No reader ever comes: the writer waits (rule 7) but not for ever. */
	const char *wm = it_manifest("writer.manifest", "netpipe-writer", "NETPIPE",
	                             unix_pipe("pipe.sock"), "INPUT",
	                             it_random_file("input.bin", 1 * MiB), "TIMEOUT", "1", NULL);
	int64_t t0 = it_now_ms();
	struct it_proc *w = it_broker("writer broker", wm, NULL);
	ck_assert_int_eq(it_wait(w, 5000), 124);
	ck_assert_int_ge(it_now_ms() - t0, 900);
	it_assert_log(w, "Timeout");
}
END_TEST

START_TEST(check_catches_an_output_in_a_missing_directory)
{
	/* --check must not say "ok" to a manifest whose run then fails to
	 * open a channel: an output file in a directory that is not there. */
	const char *m = it_manifest("run.manifest", "run", "OUTPUT",
	                            it_path("no-such-dir/out.txt"), NULL);
	struct it_proc *c = it_broker("broker --check", m, "--check", NULL);
	struct it_proc *b = it_broker("broker", m, NULL);
	it_assert_exit(b, 2);
	it_assert_log(b, "no-such-dir/out.txt");
	it_assert_exit(c, 2);
	it_assert_log(c, it_fmt("%s:%d:", m, it_line_of(m, "no-such-dir")));
	it_assert_log(c, "no-such-dir");
}
END_TEST

START_TEST(two_channels_fan_out)
{
	/* One program writes two netpipes (fds 3 and 4), each read by a
	 * broker of its own. */
	const char *a = it_random_file("a.bin", 1 * MiB + 7);
	const char *b = it_random_file("b.bin", 512 * 1024 + 1);
	const char *npa = unix_pipe("a.sock"), *npb = unix_pipe("b.sock");
	const char *fm = it_manifest(
		"fan.manifest", "run", "PROGRAM",
		it_fmt("exec:/bin/sh -c 'cat %s >&3 && cat %s >&4'", a, b), "EXTRA",
		it_fmt("%s\n%s", it_out(npa, "/dev/out/a"), it_out(npb, "/dev/out/b")), NULL);
	const char *ra = it_manifest("reader-a.manifest", "netpipe-reader", "NETPIPE", npa, NULL);
	const char *rb = it_manifest("reader-b.manifest", "netpipe-reader", "NETPIPE", npb, NULL);
	struct it_proc *f = it_broker("fan-out broker", fm, NULL);
	struct it_proc *pa = it_broker("reader broker a", ra, NULL);
	struct it_proc *pb = it_broker("reader broker b", rb, NULL);
	it_assert_exit(pa, 0);
	it_assert_exit(pb, 0);
	it_assert_exit(f, 0);
	ck_assert_msg(it_files_equal("reader-a.output", a), "stream a arrived changed");
	ck_assert_msg(it_files_equal("reader-b.output", b), "stream b arrived changed");
}
END_TEST

START_TEST(interrupted_writer_broker_is_not_eof)
{
	/* Ctrl-C on the writing side: the broker stops (130), and its reader
	 * must see a cut stream, not a short file that looks complete. */
	const char *np = unix_pipe("pipe.sock");
	const char *wm = it_manifest("writer.manifest", "netpipe-writer", "NETPIPE", np,
	                             "PROGRAM", it_fmt("exec:%s 44", it_helper("it-stream")),
	                             NULL);
	const char *rm = it_manifest("reader.manifest", "netpipe-reader", "NETPIPE", np, NULL);
	struct it_proc *r = it_broker("reader broker", rm, NULL);
	struct it_proc *w = it_broker("writer broker", wm, NULL);
	ck_assert_msg(it_wait_file_size("reader.output", 256 * 1024, IT_POLL_MS),
	              "the reader got only %lld bytes; writer stderr:\n%s",
	              (long long)it_file_size("reader.output"), it_log(w));
	it_kill(w, SIGINT);
	it_assert_exit(w, 128 + SIGINT);
	it_assert_exit(r, 3);
	it_assert_log(r, "channel /dev/stdin");
	size_t len;
	ck_assert_msg(is_stream_prefix("reader.output", 44, &len),
	              "the reader's %zu bytes are not a prefix of the stream", len);
}
END_TEST

/* ---- the wire format of docs/semantics.md, written by hand ---- */

struct conn_arg {
	const char *path;
	int fd;
};

static bool connected(void *arg)
{
	struct conn_arg *c = arg;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", c->path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd >= 0 && connect(c->fd, (struct sockaddr *)&sa, sizeof sa) == 0)
		return true;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	return false;
}

static void put_u32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/* Connect to a reader broker's socket as its writer and send: preamble
 * (with the digest flag), one DATA frame of payload, and END carrying
 * the given 32-byte digest. preamble overrides "RFT1" when not NULL. */
static void send_frames(const char *sock, const char *preamble, const char *payload,
                        const unsigned char digest[32])
{
	struct conn_arg c = {it_path(sock), -1};
	ck_assert_msg(it_poll_until(connected, &c, IT_POLL_MS), "no reader at %s", c.path);
	unsigned char buf[1024];
	size_t n = 0, len = strlen(payload);
	memcpy(buf, preamble ? preamble : "RFT1", 4);
	put_u32(buf + 4, 1); /* a digest will follow */
	put_u32(buf + 8, 0u << 28 | (uint32_t)len);
	memcpy(buf + 12, payload, len);
	n = 12 + len;
	put_u32(buf + n, 1u << 28 | 32);
	memcpy(buf + n + 4, digest, 32);
	n += 36;
	/* MSG_NOSIGNAL: the reader may hang up on us, and this is the test. */
	ssize_t w = send(c.fd, buf, n, MSG_NOSIGNAL);
	ck_assert_msg(w == (ssize_t)n, "send: %s", strerror(errno));
	close(c.fd);
}

static const char payload[] = "framed by hand, as docs/semantics.md says\n";

static struct it_proc *etag_reader(void)
{
	const char *rm = it_manifest("reader.manifest", "netpipe-reader", "NETPIPE",
	                             unix_pipe("pipe.sock"), "ETAG", "1", NULL);
	return it_broker("reader broker", rm, NULL);
}

START_TEST(hand_made_frames_per_the_docs_are_read)
{
	unsigned char digest[32];
	crypto_generichash(digest, sizeof digest, (const unsigned char *)payload,
	                   sizeof payload - 1, NULL, 0);
	struct it_proc *r = etag_reader();
	send_frames("pipe.sock", NULL, payload, digest);
	it_assert_exit(r, 0);
	ck_assert_str_eq(it_read_file("reader.output", NULL), payload);
}
END_TEST

START_TEST(etag_digest_mismatch_is_a_channel_failure)
{
	unsigned char digest[32];
	crypto_generichash(digest, sizeof digest, (const unsigned char *)payload,
	                   sizeof payload - 1, NULL, 0);
	digest[7] ^= 0x20; /* one flipped bit */
	struct it_proc *r = etag_reader();
	send_frames("pipe.sock", NULL, payload, digest);
	it_assert_exit(r, 3);
	it_assert_log(r, "channel /dev/stdin");
	it_assert_log(r, "digest mismatch");
}
END_TEST

START_TEST(foreign_peer_is_a_channel_failure)
{
	/* Something that does not speak the framing connects first. */
	unsigned char digest[32] = {0};
	struct it_proc *r = etag_reader();
	send_frames("pipe.sock", "GET ", payload, digest);
	it_assert_exit(r, 3);
	it_assert_log(r, "channel /dev/stdin");
	it_assert_log(r, "framing");
}
END_TEST

START_TEST(explicit_mode_suffixes_work)
{
	const char *in = it_random_file("input.bin", 1 * MiB);
	const char *sock = it_path("pipe.sock");
	const char *wm = it_manifest("writer.manifest", "netpipe-writer", "NETPIPE",
	                             it_fmt("Netpipe:unix:%s:w", sock), "INPUT", in, NULL);
	const char *rm = it_manifest("reader.manifest", "netpipe-reader", "NETPIPE",
	                             it_fmt("Netpipe:unix:%s:r", sock), NULL);
	struct it_proc *w = it_broker("writer broker", wm, NULL);
	struct it_proc *r = it_broker("reader broker", rm, NULL);
	it_assert_exit(r, 0);
	it_assert_exit(w, 0);
	ck_assert_msg(it_files_equal("reader.output", in), "the stream arrived changed");
}
END_TEST

START_TEST(writer_connect_timeout_gives_up)
{
	/* ?connect_timeout=MS: no reader within MS is a channel failure of
	 * the writer, long before the manifest's Timeout. */
	const char *wm = it_manifest("writer.manifest", "netpipe-writer", "NETPIPE",
	                             it_fmt("Netpipe:unix:%s?connect_timeout=300",
	                                    it_path("pipe.sock")),
	                             "INPUT", it_random_file("input.bin", 1 * MiB), NULL);
	int64_t t0 = it_now_ms();
	struct it_proc *w = it_broker("writer broker", wm, NULL);
	int code = it_wait(w, 5000);
	int64_t took = it_now_ms() - t0;
	ck_assert_msg(code > 0 && code != 124 && code != 128 + SIGPIPE,
	              "writer broker: %s %d after %lld ms; its stderr:\n%s",
	              code < 0 ? "killed by signal" : "exit status", code < 0 ? -code : code,
	              (long long)took, it_log(w));
	ck_assert_int_ge(took, 250);
	it_assert_log(w, "channel /dev/stdout");
	it_assert_log(w, "connect_timeout");
}
END_TEST

/* Run a manifest whose Plugins key names the plugins: no -P, no
 * RIFT_PLUGIN_PATH. */
static void run_with_plugins_key(const char *dir)
{
	it_write_file("input.txt", "found through the Plugins key\n", 30);
	const char *m = it_manifest("run.manifest", "run", "INPUT", it_path("input.txt"),
	                            "EXTRA", it_fmt("Plugins = %s", dir), NULL);
	char *argv[] = {getenv("BROKER"), "-m", (char *)m, NULL};
	struct it_proc *b = it_spawn_unset("broker", argv, "RIFT_PLUGIN_PATH");
	it_assert_exit(b, 0);
	ck_assert_str_eq(it_read_file("run.output", NULL), "found through the Plugins key\n");
}

START_TEST(plugins_key_names_the_plugin_dir)
{
	run_with_plugins_key(getenv("RIFT_PLUGINS"));
}
END_TEST

START_TEST(relative_plugins_key_is_from_the_manifest_dir)
{
	ck_assert_int_eq(symlink(getenv("RIFT_PLUGINS"), it_path("plugins")), 0);
	run_with_plugins_key("plugins"); /* the broker's cwd is not the test dir */
}
END_TEST

START_TEST(plugin_dir_given_twice_loads_once)
{
	/* -P DIR with RIFT_PLUGIN_PATH=DIR (a user who exported it): the same
	 * plugins, found twice, are one set, not a set and three refusals. */
	char *argv[] = {getenv("BROKER"), "--list-plugins", "-P", getenv("RIFT_PLUGINS"), NULL};
	setenv("RIFT_PLUGIN_PATH", getenv("RIFT_PLUGINS"), 1);
	struct it_proc *b = it_spawn("broker --list-plugins", argv);
	it_assert_exit(b, 0);
	ck_assert_msg(strstr(it_log(b), "refused") == NULL,
	              "the same plugin directory twice made the broker refuse plugins:\n%s",
	              it_log(b));
	const char *list = it_stdout(b);
	const char *unix_line = strstr(list, "\nunix ");
	ck_assert_msg(unix_line && !strstr(unix_line + 1, "\nunix "),
	              "the unix plugin should be listed once:\n%s", list);
}
END_TEST


/* ---- found by review: each fails if its fix is reverted ---- */

START_TEST(writer_killed_before_its_first_byte_is_a_reset_not_a_wait)
{
	/* The writer connects, then its program dies before writing a byte.
	 * That is a writer that vanished (rule 5), not a probe to ignore:
	 * the reader must fail at once, not sit until its Timeout. */
	const char *np = unix_pipe("pipe.sock");
	const char *rm = it_manifest("reader.manifest", "netpipe-reader", "NETPIPE", np, NULL);
	const char *wm = it_manifest("writer.manifest", "netpipe-writer", "NETPIPE", np,
	                             "PROGRAM", "exec:/bin/sh -c 'sleep 1; kill -9 $$'", NULL);
	struct it_proc *r = it_broker("reader broker", rm, NULL);
	ck_assert_msg(it_wait_exists("pipe.sock", IT_POLL_MS), "the reader never listened:\n%s",
	              it_log(r));
	struct it_proc *w = it_broker("writer broker", wm, NULL);
	it_assert_exit(w, 128 + SIGKILL);
	it_assert_exit(r, 3);
	it_assert_log(r, "without closing");
}
END_TEST

static bool past(void *deadline)
{
	return it_now_ms() >= *(int64_t *)deadline;
}

/* user + system CPU of a running process, in clock ticks. */
static long cpu_ticks(pid_t pid)
{
	char stat[1024] = "";
	FILE *f = fopen(it_fmt("/proc/%d/stat", (int)pid), "r");
	ck_assert_msg(f != NULL, "the reader broker (pid %d) is gone", (int)pid);
	size_t n = fread(stat, 1, sizeof stat - 1, f);
	fclose(f);
	stat[n] = '\0';
	const char *p = strrchr(stat, ')');
	long utime = 0, stime = 0;
	ck_assert_msg(p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld",
	                          &utime, &stime) == 2, "cannot parse /proc/%d/stat", (int)pid);
	return utime + stime;
}

START_TEST(broker_idles_while_its_program_takes_no_input)
{
	/* 20 MB arrive while the program sleeps: the broker must wait for it
	 * quietly, not spin on a readable socket nobody reads. */
	const char *np = unix_pipe("pipe.sock");
	const char *rm = it_manifest("reader.manifest", "netpipe-reader", "NETPIPE", np,
	                             "PROGRAM", "exec:/bin/sh -c 'sleep 3; cat >/dev/null'", NULL);
	const char *wm = it_manifest("writer.manifest", "netpipe-writer", "NETPIPE", np,
	                             "PROGRAM", "exec:/bin/sh -c 'head -c 20000000 /dev/zero'",
	                             NULL);
	struct it_proc *r = it_broker("reader broker", rm, NULL);
	struct it_proc *w = it_broker("writer broker", wm, NULL);
	int64_t until = it_now_ms() + 2000;
	it_poll_until(past, &until, 3000);
	long ticks = cpu_ticks(r->pid);
	long hz = sysconf(_SC_CLK_TCK);
	ck_assert_msg(ticks < hz / 2, "the reader broker used %ld ms of CPU in 2 s while its "
	              "program read nothing", ticks * 1000 / hz);
	it_assert_exit(w, 0);
	it_assert_exit(r, 0);
}
END_TEST

START_TEST(missing_relative_program_is_refused_before_outputs_are_touched)
{
	it_write_file("keep.txt", "precious", 8);
	const char *m = it_manifest("run.manifest", "run", "PROGRAM", "exec:./no-such-program",
	                            "OUTPUT", it_path("keep.txt"), NULL);
	char *argv[] = {getenv("BROKER"), "-P", getenv("RIFT_PLUGINS"), "--check", "-m",
	                (char *)m, NULL};
	struct it_proc *c = it_spawn("broker --check", argv);
	it_assert_exit(c, 2);
	it_assert_log(c, "no-such-program");
	struct it_proc *b = it_broker("broker", m, NULL);
	it_assert_exit(b, 2);
	size_t len;
	char *kept = it_read_file("keep.txt", &len);
	ck_assert_msg(len == 8 && memcmp(kept, "precious", 8) == 0,
	              "a run that never started emptied its output file (%zu bytes left)", len);
}
END_TEST

START_TEST(program_line_filling_the_argument_store_is_refused)
{
	/* "/bin/echo", one argument that fills the rest of exec's 8 KiB
	 * argument store exactly, then an empty one: its terminator once
	 * landed one byte past the store. */
	char *arg = malloc(8182);
	memset(arg, 'a', 8181);
	arg[8181] = '\0';
	const char *m = it_manifest("run.manifest", "run", "PROGRAM",
	                            it_fmt("exec:/bin/echo %s ''", arg), NULL);
	free(arg);
	char *argv[] = {getenv("BROKER"), "-P", getenv("RIFT_PLUGINS"), "--check", "-m",
	                (char *)m, NULL};
	struct it_proc *c = it_spawn("broker --check", argv);
	it_assert_exit(c, 2);
	it_assert_log(c, "too long");
}
END_TEST

#define CASE(t) {#t, t}

int main(void)
{
	const struct it_case cases[] = {
		CASE(two_brokers_move_a_file_over_unix),
		CASE(etag_stream_passes),
		CASE(etag_reader_rejects_a_stream_without_digest),
		CASE(killed_writer_broker_is_not_eof),
		CASE(killed_program_aborts_channel),
		CASE(program_status_is_exit_status),
		CASE(write_quota_returns_edquot_program_keeps_running),
		CASE(read_quota),
		CASE(timeout_is_enforced),
		CASE(sigterm_stops_the_program_and_exits_143),
		CASE(missing_program),
		CASE(unknown_scheme),
		CASE(bad_manifest_line),
		CASE(check_validates_without_opening),
		CASE(reader_gone_writer_fails),
		CASE(reader_gone_fails_the_channel_even_when_program_succeeds),
		CASE(reader_quota_ends_the_writer),
		CASE(sigpipe_never_kills_broker_on_a_fifo),
		CASE(two_channels_fan_in),
		CASE(two_channels_fan_in_from_the_shell),
		CASE(std_channel_shares_the_brokers_stderr_file),
		CASE(char_device_input),
		CASE(plugin_dir_given_twice_loads_once),
		CASE(reversed_rendezvous_the_writer_listens),
		CASE(writer_killed_before_its_first_byte_is_a_reset_not_a_wait),
		CASE(broker_idles_while_its_program_takes_no_input),
		CASE(missing_relative_program_is_refused_before_outputs_are_touched),
		CASE(program_line_filling_the_argument_store_is_refused),
		CASE(two_brokers_move_a_file_over_a_framed_fifo),
		CASE(killed_writer_broker_over_a_framed_fifo_is_not_eof),
		CASE(second_writer_is_turned_away),
		CASE(relative_program_path_is_from_the_manifest_dir),
		CASE(brokers_stdin_file_as_a_channel),
		CASE(brokers_stdin_pipe_as_a_channel),
		CASE(brokers_stdin_dev_null_as_a_channel),
		CASE(second_reader_is_refused),
		CASE(stale_socket_from_killed_reader_is_replaced),
		CASE(writer_without_reader_waits_until_timeout),
		CASE(check_catches_an_output_in_a_missing_directory),
		CASE(two_channels_fan_out),
		CASE(interrupted_writer_broker_is_not_eof),
		CASE(hand_made_frames_per_the_docs_are_read),
		CASE(etag_digest_mismatch_is_a_channel_failure),
		CASE(foreign_peer_is_a_channel_failure),
		CASE(explicit_mode_suffixes_work),
		CASE(writer_connect_timeout_gives_up),
		CASE(plugins_key_names_the_plugin_dir),
		CASE(relative_plugins_key_is_from_the_manifest_dir),
	};
	return it_run(it_suite("brokers", cases, sizeof cases / sizeof cases[0]));
}
