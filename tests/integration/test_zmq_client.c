/*
 * test_zmq_client.c - libnetpipe over the zmq transport, no broker, where
 * a blocking read waits inside libzmq (NP_CTL_WAIT, docs/abi.md) and no
 * loop runs meanwhile. What a user relies on: the bytes arrive whole, a
 * writer that dies is a reset (never EOF) whether the reader was busy or
 * idle when it died, and a read timeout ends the wait. The ends are
 * np-copy processes over ipc in the test's own directory; the timeout
 * case runs in this process.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "libnetpipe.h"

#define MiB (1024 * 1024)

static const char *zpipe(const char *mode)
{
	return it_fmt("Netpipe:zmq:ipc://%s:%s", it_path("z.ipc"), mode);
}

START_TEST(zmq_client_copies_a_file)
{
	const char *in = it_random_file("input.bin", 16 * MiB);
	struct it_proc *w = it_np_copy("writer", "write", zpipe("w"), in, NULL);
	struct it_proc *r = it_np_copy("reader", "read", zpipe("r"), it_path("output.bin"), NULL);
	it_assert_exit(r, 0);
	it_assert_exit(w, 0);
	ck_assert_msg(it_files_equal("output.bin", in), "the copy (%lld bytes) differs from the 16 MiB input",
	              (long long)it_file_size("output.bin"));
}
END_TEST

START_TEST(zmq_client_busy_reader_sees_reset_when_writer_is_killed)
{
	it_check_killed_writer_is_reset(zpipe("r"), zpipe("w"), "/dev/zero", MiB);
}
END_TEST

/* The writer's input is a FIFO this test holds open: it sends the first
 * KiB and then waits for more, so the reader is blocked inside libzmq,
 * with nothing coming, when the writer dies. */
START_TEST(zmq_client_idle_reader_sees_reset_when_writer_is_killed)
{
	it_mkfifo("feed.fifo");
	int feed = open(it_path("feed.fifo"), O_RDWR | O_CLOEXEC);
	ck_assert_msg(feed >= 0, "cannot open the feed FIFO: %s", strerror(errno));
	char kib[1024];
	memset(kib, 'x', sizeof kib);
	ck_assert_int_eq(write(feed, kib, sizeof kib), (ssize_t)sizeof kib);
	it_check_killed_writer_is_reset(zpipe("r"), zpipe("w"), it_path("feed.fifo"), sizeof kib);
	close(feed);
}
END_TEST

START_TEST(zmq_client_read_timeout_ends_the_wait)
{
	netpipe_t *np = netpipe_open(zpipe("r"));
	ck_assert_msg(np, "netpipe_open: %s", netpipe_error());
	netpipe_set_timeout(np, 200);
	char buf[64];
	int64_t n = netpipe_read(np, buf, sizeof buf);
	ck_assert_msg(n == -ETIMEDOUT, "a read with no writer returned %lld, not -ETIMEDOUT (%s)",
	              (long long)n, netpipe_error());
	/* The pipe is still usable: a second timed-out read says the same. */
	netpipe_set_timeout(np, 0);
	n = netpipe_read(np, buf, sizeof buf);
	ck_assert_msg(n == -ETIMEDOUT, "a read with timeout 0 returned %lld, not -ETIMEDOUT", (long long)n);
	ck_assert_int_eq(netpipe_close(np), 0);
}
END_TEST

#define CASE(t) {#t, t}

int main(void)
{
	const struct it_case cases[] = {
		CASE(zmq_client_copies_a_file),
		CASE(zmq_client_busy_reader_sees_reset_when_writer_is_killed),
		CASE(zmq_client_idle_reader_sees_reset_when_writer_is_killed),
		CASE(zmq_client_read_timeout_ends_the_wait),
	};
	return it_run(it_suite("zmq-client", cases, sizeof cases / sizeof cases[0]));
}
