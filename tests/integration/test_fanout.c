/*
 * test_fanout.c - one writer, many readers: the zmq transport's fanout=1
 * (docs/zmq.md, "Fan-out"). Every end is an np-copy process (libnetpipe,
 * no broker), over ipc in the test's own directory. What a user relies
 * on: every reader gets the whole stream, a slow reader loses nothing
 * (it slows the writer instead), the writer fails only when its last
 * reader left, and a reader that comes too late is told so.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define MiB (1024 * 1024)

static const char *fan(const char *opts, const char *mode)
{
	return it_fmt("Netpipe:zmq:ipc://%s?fanout=1%s:%s", it_path("fan.ipc"), opts, mode);
}

static void assert_copy(const char *out, const char *in)
{
	ck_assert_msg(it_files_equal(out, in), "%s (%lld bytes) differs from the input (%lld)",
	              out, (long long)it_file_size(out), (long long)it_file_size("input.bin"));
}

START_TEST(fanout_every_reader_gets_the_whole_stream)
{
	const char *in = it_random_file("input.bin", 8 * MiB);
	struct it_proc *w = it_np_copy("writer", "write", fan("&readers=3", "w"), in, NULL);
	struct it_proc *r[3];
	for (int i = 0; i < 3; i++)
		r[i] = it_np_copy(it_fmt("reader %d", i), "read", fan("", "r"),
		               it_path(it_fmt("out%d.bin", i)), NULL);
	for (int i = 0; i < 3; i++)
		it_assert_exit(r[i], 0);
	it_assert_exit(w, 0);
	for (int i = 0; i < 3; i++)
		assert_copy(it_fmt("out%d.bin", i), in);
}
END_TEST

/* Nothing is dropped for a slow reader: it holds the writer (and so the
 * other readers) back, and once it reads again everyone completes. */
START_TEST(fanout_slow_reader_slows_the_writer_and_loses_nothing)
{
	const char *in = it_random_file("input.bin", 64 * MiB);
	struct it_proc *w = it_np_copy("writer", "write", fan("&readers=2&hwm=4", "w"), in, NULL);
	struct it_proc *fast = it_np_copy("fast reader", "read", fan("&hwm=4", "r"),
	                               it_path("fast.bin"), NULL);
	struct it_proc *slow = it_np_copy("slow reader", "read", fan("&hwm=4", "r"),
	                               it_path("slow.bin"), it_fmt("%d:%s", MiB, it_path("go")));
	ck_assert_msg(it_wait_file_size("slow.bin", MiB, IT_POLL_MS),
	              "the slow reader got only %lld bytes", (long long)it_file_size("slow.bin"));
	/* The slow reader stopped at 1 MiB: with hwm=4 (four messages of at
	 * most 256 KiB queued per reader, and as many on its receiving
	 * side) the writer cannot get 64 MiB out while it sleeps. */
	ck_assert_msg(!it_wait_file_size("fast.bin", 32 * MiB, 1000),
	              "the fast reader got %lld bytes while the slow one stood still: "
	              "the writer did not wait for the slow reader (were messages dropped?)",
	              (long long)it_file_size("fast.bin"));
	ck_assert_msg(it_running(w), "the writer finished while a reader stood still");
	it_write_file("go", "", 0);
	it_assert_exit(fast, 0);
	it_assert_exit(slow, 0);
	it_assert_exit(w, 0);
	assert_copy("fast.bin", in);
	assert_copy("slow.bin", in);
}
END_TEST

START_TEST(fanout_writer_goes_on_while_one_reader_is_left)
{
	const char *in = it_random_file("input.bin", 16 * MiB);
	struct it_proc *w = it_np_copy("writer", "write", fan("&readers=2", "w"), in, NULL);
	struct it_proc *leaver = it_np_copy("leaving reader", "read", fan("", "r"),
	                                 it_path("part.bin"), it_fmt("%d", MiB));
	struct it_proc *stayer = it_np_copy("staying reader", "read", fan("", "r"),
	                                 it_path("whole.bin"), NULL);
	it_assert_exit(leaver, 0);
	it_assert_exit(stayer, 0);
	it_assert_exit(w, 0);
	assert_copy("whole.bin", in);
}
END_TEST

START_TEST(fanout_writer_gets_epipe_when_its_last_reader_left)
{
	const char *in = it_random_file("input.bin", 64 * MiB);
	struct it_proc *w = it_np_copy("writer", "write", fan("&readers=2", "w"), in, NULL);
	struct it_proc *a = it_np_copy("reader a", "read", fan("", "r"), it_path("a.bin"),
	                            it_fmt("%d", MiB));
	struct it_proc *b = it_np_copy("reader b", "read", fan("", "r"), it_path("b.bin"),
	                            it_fmt("%d", 2 * MiB));
	it_assert_exit(a, 0);
	it_assert_exit(b, 0);
	it_assert_exit(w, 1);
	it_assert_log(w, "last reader went away");
}
END_TEST

START_TEST(fanout_killed_writer_is_a_reset_for_every_reader)
{
	struct it_proc *w = it_np_copy("writer", "write", fan("&readers=2", "w"), "/dev/zero", NULL);
	struct it_proc *a = it_np_copy("reader a", "read", fan("", "r"), it_path("a.bin"), NULL);
	struct it_proc *b = it_np_copy("reader b", "read", fan("", "r"), it_path("b.bin"), NULL);
	ck_assert_msg(it_wait_file_size("a.bin", MiB, IT_POLL_MS) &&
	              it_wait_file_size("b.bin", MiB, IT_POLL_MS),
	              "the readers got only %lld and %lld bytes; writer stderr:\n%s",
	              (long long)it_file_size("a.bin"), (long long)it_file_size("b.bin"), it_log(w));
	it_kill(w, SIGKILL);
	it_assert_exit(w, -SIGKILL);
	it_assert_exit(a, 3); /* np-copy: ECONNRESET, never EOF */
	it_assert_exit(b, 3);
}
END_TEST

/* A reader that connects after the first byte went cannot have the
 * stream's beginning: it fails with a message that says why, and the
 * readers that were there complete. */
/* Three sockets on the writer's ipc path in /proc/net/unix: the listener
 * and the two readers' accepted connections. */
static bool connected(void *path)
{
	FILE *f = fopen("/proc/net/unix", "r");
	if (!f)
		return false;
	char line[4096];
	int n = 0;
	size_t pl = strlen(path);
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = 0;
		size_t l = strlen(line);
		n += l > pl && strcmp(line + l - pl, path) == 0 && line[l - pl - 1] == ' ';
	}
	fclose(f);
	return n >= 3;
}

START_TEST(fanout_late_reader_is_told_it_came_too_late)
{
	const char *in = it_random_file("input.bin", 64 * MiB);
	struct it_proc *w = it_np_copy("writer", "write", fan("&hwm=4", "w"), in, NULL);
	struct it_proc *first = it_np_copy("first reader", "read", fan("&hwm=4", "r"),
	                                it_path("first.bin"), it_fmt("%d:%s", MiB, it_path("go")));
	ck_assert_msg(it_wait_file_size("first.bin", MiB, IT_POLL_MS),
	              "the first reader got only %lld bytes", (long long)it_file_size("first.bin"));
	struct it_proc *late = it_np_copy("late reader", "read", fan("", "r"), it_path("late.bin"),
	                               NULL);
	/* The writer waits for the first reader: once the late one's
	 * connection is in, let the stream go on (63 MiB more). */
	ck_assert_msg(it_poll_until(connected, (void *)it_path("fan.ipc"), IT_POLL_MS),
	              "the late reader never connected; its stderr:\n%s", it_log(late));
	it_write_file("go", "", 0);
	it_assert_exit(late, 1);
	it_assert_log(late, "joined the fan-out stream after it started");
	it_assert_exit(first, 0);
	it_assert_exit(w, 0);
	assert_copy("first.bin", in);
}
END_TEST

START_TEST(fanout_options_are_checked)
{
	const char *sock = it_path("x.ipc");
	struct {
		const char *desc, *says;
	} bad[] = {
		{it_fmt("Netpipe:zmq:ipc://%s?fanout=2:w", sock), "fanout=2: expected 0 or 1"},
		{it_fmt("Netpipe:zmq:ipc://%s?readers=2:w", sock), "readers= needs fanout=1"},
		{it_fmt("Netpipe:zmq:ipc://%s?fanout=1&readers=0:w", sock), "readers=0: expected 1"},
		{it_fmt("Netpipe:zmq:ipc://%s?fanout=1&listen=reader:w", sock),
		 "with fanout=1 the writer binds"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct it_proc *p = it_np_copy("writer", "write", bad[i].desc, "/dev/null", NULL);
		it_assert_exit(p, 1);
		it_assert_log(p, bad[i].says);
	}
}
END_TEST

#define CASE(t) {#t, t}

int main(void)
{
	const struct it_case cases[] = {
		CASE(fanout_every_reader_gets_the_whole_stream),
		CASE(fanout_slow_reader_slows_the_writer_and_loses_nothing),
		CASE(fanout_writer_goes_on_while_one_reader_is_left),
		CASE(fanout_writer_gets_epipe_when_its_last_reader_left),
		CASE(fanout_killed_writer_is_a_reset_for_every_reader),
		CASE(fanout_late_reader_is_told_it_came_too_late),
		CASE(fanout_options_are_checked),
	};
	return it_run(it_suite("fanout", cases, sizeof cases / sizeof cases[0]));
}
