/*
 * test_client.c - libnetpipe from plain C programs: the blocking client
 * API moving real files between processes, alone and with a broker, and
 * its error reporting. The copies run in np-copy (a helper in this
 * folder) so each end is a process of its own, as in real use.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "libnetpipe.h"

#define MiB (1024 * 1024)

/* Writer first (it must wait for the reader), then the reader. */
static void copy_through(const char *wdesc, const char *rdesc)
{
	const char *in = it_random_file("input.bin", 16 * MiB);
	struct it_proc *w = it_np_copy("writer", "write", wdesc, in, NULL);
	struct it_proc *r = it_np_copy("reader", "read", rdesc, it_path("output.bin"), NULL);
	it_assert_exit(r, 0);
	it_assert_exit(w, 0);
	ck_assert_msg(it_files_equal("output.bin", in), "the copy (%lld bytes) differs from the 16 MiB input",
	              (long long)it_file_size("output.bin"));
}

START_TEST(client_library_copies_a_file)
{
	const char *sock = it_path("pipe.sock");
	copy_through(it_fmt("Netpipe:unix:%s:w", sock), it_fmt("Netpipe:unix:%s:r", sock));
	ck_assert_msg(!it_exists("pipe.sock"), "the reader left its socket file behind");
}
END_TEST

START_TEST(client_library_copies_a_file_over_a_framed_fifo)
{
	const char *fifo = it_path("pipe.fifo");
	copy_through(it_fmt("Netpipe:file:%s?framed=1:w", fifo),
	             it_fmt("Netpipe:file:%s?framed=1:r", fifo));
	ck_assert_msg(!it_exists("pipe.fifo"), "the reader left its FIFO behind");
}
END_TEST

START_TEST(client_reader_sees_reset_when_writer_is_killed)
{
	const char *sock = it_path("pipe.sock");
	it_check_killed_writer_is_reset(it_fmt("Netpipe:unix:%s:r", sock),
	                                it_fmt("Netpipe:unix:%s:w", sock), "/dev/zero", MiB);
}
END_TEST

START_TEST(client_reads_what_a_broker_writes)
{
	const char *in = it_random_file("input.bin", 4 * MiB);
	const char *sock = it_path("pipe.sock");
	const char *wm = it_manifest("writer.manifest", "netpipe-writer", "NETPIPE",
	                             it_fmt("Netpipe:unix:%s", sock), "INPUT", in, "ETAG", "1",
	                             NULL);
	struct it_proc *w = it_broker("writer broker", wm, NULL);
	struct it_proc *r = it_np_copy("reader", "read", it_fmt("Netpipe:unix:%s:r", sock),
	                            it_path("output.bin"), NULL);
	it_assert_exit(r, 0);
	it_assert_exit(w, 0);
	ck_assert_msg(it_files_equal("output.bin", in), "the client read something else");
}
END_TEST

START_TEST(broker_reads_what_a_client_writes)
{
	const char *in = it_random_file("input.bin", 4 * MiB);
	const char *sock = it_path("pipe.sock");
	struct it_proc *w = it_np_copy("writer", "write", it_fmt("Netpipe:unix:%s:w", sock), in, NULL);
	const char *rm = it_manifest("reader.manifest", "netpipe-reader", "NETPIPE",
	                             it_fmt("Netpipe:unix:%s", sock), NULL);
	struct it_proc *r = it_broker("reader broker", rm, NULL);
	it_assert_exit(r, 0);
	it_assert_exit(w, 0);
	ck_assert_msg(it_files_equal("reader.output", in), "the broker read something else");
}
END_TEST

/* The writer writes for ever; the reader leaves after 1 MiB. The writer
 * must get EPIPE (rule 4), in a process where SIGPIPE still kills. */
static void reader_leaves(const char *wdesc, const char *rdesc)
{
	struct it_proc *w = it_np_copy("writer", "write", wdesc, "/dev/zero", NULL);
	char *argv[] = {(char *)it_helper("np-copy"), "read", (char *)rdesc,
	                (char *)it_path("output.bin"), "1048576", NULL};
	struct it_proc *r = it_spawn("reader", argv);
	it_assert_exit(r, 0);
	int code = it_wait(w, IT_RUN_MS);
	ck_assert_msg(code != -SIGPIPE, "the writer was killed by SIGPIPE; its stderr:\n%s",
	              it_log(w));
	ck_assert_msg(code == 1, "writer: %s %d, expected 1 (a failed netpipe_write); its stderr:\n%s",
	              code < 0 ? "killed by signal" : "exit status", code < 0 ? -code : code,
	              it_log(w));
	it_assert_log(w, "netpipe_write");
	it_assert_log(w, strerror(EPIPE));
}

START_TEST(client_write_after_reader_left_is_epipe_not_sigpipe)
{
	const char *sock = it_path("pipe.sock");
	reader_leaves(it_fmt("Netpipe:unix:%s:w", sock), it_fmt("Netpipe:unix:%s:r", sock));
}
END_TEST

START_TEST(client_write_after_reader_left_a_fifo_is_epipe_not_sigpipe)
{
	const char *fifo = it_path("pipe.fifo");
	reader_leaves(it_fmt("Netpipe:file:%s?framed=1:w", fifo),
	              it_fmt("Netpipe:file:%s?framed=1:r", fifo));
}
END_TEST

START_TEST(client_end_of_stream_reads_0_again_and_again)
{
	const char *sock = it_path("pipe.sock");
	it_write_file("input.txt", "twelve bytes", 12);
	netpipe_t *r = netpipe_open(it_fmt("Netpipe:unix:%s:r", sock));
	ck_assert_msg(r != NULL, "netpipe_open: %s", netpipe_error());
	netpipe_set_timeout(r, IT_POLL_MS);
	struct it_proc *w = it_np_copy("writer", "write", it_fmt("Netpipe:unix:%s:w", sock),
	                            it_path("input.txt"), NULL);
	char buf[64];
	size_t got = 0;
	for (int64_t n; (n = netpipe_read(r, buf + got, (int32_t)(sizeof buf - got))) != 0;) {
		ck_assert_msg(n > 0, "netpipe_read: %s", netpipe_error());
		got += (size_t)n;
	}
	ck_assert_uint_eq(got, 12);
	ck_assert_int_eq(memcmp(buf, "twelve bytes", 12), 0);
	ck_assert_int_eq(netpipe_read(r, buf, sizeof buf), 0);
	ck_assert_int_eq(netpipe_read(r, buf, sizeof buf), 0);
	ck_assert_int_eq(netpipe_close(r), 0);
	it_assert_exit(w, 0);
}
END_TEST

START_TEST(client_reader_seeks_in_a_file_but_not_in_a_stream)
{
	/* A file reader may seek (libnetpipe opens readers random-access);
	 * a stream cannot, and says -ESPIPE rather than pretending. */
	it_write_file("input.txt", "0123456789", 10);
	netpipe_t *f = netpipe_open(it_fmt("Netpipe:file:%s:r", it_path("input.txt")));
	ck_assert_msg(f != NULL, "netpipe_open: %s", netpipe_error());
	ck_assert_int_eq(netpipe_seek(f, 6, SEEK_SET), 6);
	char buf[16];
	ck_assert_int_eq(netpipe_read(f, buf, sizeof buf), 4);
	ck_assert_int_eq(memcmp(buf, "6789", 4), 0);
	ck_assert_int_eq(netpipe_seek(f, -8, SEEK_END), 2);
	ck_assert_int_eq(netpipe_read(f, buf, 3), 3);
	ck_assert_int_eq(memcmp(buf, "234", 3), 0);
	ck_assert_int_eq(netpipe_close(f), 0);

	netpipe_t *s = netpipe_open(it_fmt("Netpipe:unix:%s:r", it_path("s.sock")));
	ck_assert_msg(s != NULL, "netpipe_open: %s", netpipe_error());
	ck_assert_int_eq(netpipe_seek(s, 0, SEEK_SET), -ESPIPE);
	ck_assert_int_eq(netpipe_close(s), 0);
}
END_TEST

START_TEST(client_write_returns_only_once_the_bytes_left_the_plugin)
{
	/* Request/response: 30 MB of request, then wait for the answer. If
	 * netpipe_write returned while the plugin still held part of a frame,
	 * the request would never end and the answer never come. */
	const char *req = it_path("req.sock"), *rsp = it_path("rsp.sock");
	const char *m = it_manifest("server.manifest", "run", "INPUT",
	                            it_fmt("Netpipe:unix:%s", req), "OUTPUT",
	                            it_fmt("Netpipe:unix:%s", rsp), "PROGRAM",
	                            "exec:/bin/sh -c 'head -c 30000000 >/dev/null; echo done'",
	                            NULL);
	struct it_proc *b = it_broker("server broker", m, NULL);
	netpipe_t *w = netpipe_open(it_fmt("Netpipe:unix:%s:w", req));
	netpipe_t *r = netpipe_open(it_fmt("Netpipe:unix:%s:r", rsp));
	ck_assert_msg(w && r, "netpipe_open: %s", netpipe_error());
	netpipe_set_timeout(w, IT_POLL_MS);
	netpipe_set_timeout(r, IT_POLL_MS);
	static char chunk[1 << 20];
	for (int32_t left = 30000000; left > 0;) {
		int32_t n = left < (int32_t)sizeof chunk ? left : (int32_t)sizeof chunk;
		ck_assert_msg(netpipe_write(w, chunk, n) == n, "netpipe_write: %s", netpipe_error());
		left -= n;
	}
	char answer[16] = "";
	int64_t got = 0, n;
	/* Read to the end of the stream before closing: an early close would
	 * leave the server's end-of-stream nobody to go to. */
	while ((n = netpipe_read(r, answer + got, (int32_t)(sizeof answer - 1 - got))) > 0)
		got += n;
	ck_assert_msg(n == 0 && got == 5 && memcmp(answer, "done\n", 5) == 0,
	              "the answer never came whole (%lld bytes, last read %lld: %s)",
	              (long long)got, (long long)n, n < 0 ? netpipe_error() : answer);
	/* The server read exactly the request and may be gone already: the
	 * request's end-of-stream then meets no reader (-EPIPE, rule 4). */
	int wc = netpipe_close(w);
	ck_assert_msg(wc == 0 || wc == -EPIPE, "netpipe_close(request): %d", wc);
	ck_assert_int_eq(netpipe_close(r), 0);
	it_assert_exit(b, 0);
}
END_TEST

START_TEST(client_library_errors)
{
	errno = 0;
	ck_assert_ptr_null(netpipe_open("Netpipe:nosuch:x:r"));
	ck_assert_int_eq(errno, EPROTONOSUPPORT);
	ck_assert_msg(strstr(netpipe_error(), "nosuch") != NULL,
	              "netpipe_error() does not name the scheme: \"%s\"", netpipe_error());

	errno = 0;
	ck_assert_ptr_null(netpipe_open(it_fmt("Netpipe:unix:%s", it_path("s.sock"))));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_msg(strstr(netpipe_error(), "mode") != NULL,
	              "netpipe_error() does not say the mode is missing: \"%s\"", netpipe_error());
	ck_assert_msg(!it_exists("s.sock"), "a failed open bound a socket");

	errno = 0;
	ck_assert_ptr_null(netpipe_open(NULL));
	ck_assert_int_eq(errno, EINVAL);
}
END_TEST

#define CASE(t) {#t, t}

int main(void)
{
	const struct it_case cases[] = {
		CASE(client_library_copies_a_file),
		CASE(client_library_copies_a_file_over_a_framed_fifo),
		CASE(client_reader_sees_reset_when_writer_is_killed),
		CASE(client_reads_what_a_broker_writes),
		CASE(broker_reads_what_a_client_writes),
		CASE(client_library_errors),
		CASE(client_write_returns_only_once_the_bytes_left_the_plugin),
		CASE(client_reader_seeks_in_a_file_but_not_in_a_stream),
		CASE(client_write_after_reader_left_is_epipe_not_sigpipe),
		CASE(client_write_after_reader_left_a_fifo_is_epipe_not_sigpipe),
		CASE(client_end_of_stream_reads_0_again_and_again),
	};
	return it_run(it_suite("client", cases, sizeof cases / sizeof cases[0]));
}
