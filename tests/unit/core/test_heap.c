/*
 * test_heap.c - the broker's malloc settings (broker/heap.c).
 *
 * What a user cares about: a transport that frees a few 64 KiB messages at
 * once does not make the heap shrink and fault its pages back in on the
 * next messages. Counted with the process's minor page faults, so it
 * asserts the effect, not the mallopt calls. Every test runs in its own
 * child (CK_FORK=yes), so one test's settings do not leak into the next.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "heap.h"

#define BURSTS 200
#define IN_FLIGHT 6                 /* messages alive at once */
#define MSG (64 * 1024 + 64)       /* one 64 KiB frame and its header */

/* The sanitizers bring their own allocator, which has no such heap. */
#if defined(__SANITIZE_ADDRESS__)
#define OWN_ALLOCATOR 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define OWN_ALLOCATOR 1
#endif
#endif

static long minor_faults(void)
{
	struct rusage r;
	getrusage(RUSAGE_SELF, &r);
	return r.ru_minflt;
}

/* Page faults taken by BURSTS bursts of IN_FLIGHT messages allocated,
 * written and then all freed: a writer's queue of 64 KiB messages. */
static long faults_of_bursts(void)
{
	void *volatile m[IN_FLIGHT];
	long before = minor_faults();
	for (int b = 0; b < BURSTS; b++) {
		for (int i = 0; i < IN_FLIGHT; i++) {
			m[i] = malloc(MSG);
			ck_assert_ptr_nonnull(m[i]);
			memset(m[i], b, MSG);
		}
		for (int i = 0; i < IN_FLIGHT; i++)
			free(m[i]);
	}
	return minor_faults() - before;
}

static void forget_user_settings(void)
{
	unsetenv("GLIBC_TUNABLES");
	unsetenv("MALLOC_TRIM_THRESHOLD_");
	unsetenv("MALLOC_MMAP_THRESHOLD_");
}

START_TEST(bursts_of_64k_messages_do_not_refault_the_heap)
{
#ifdef OWN_ALLOCATOR
	return;
#endif
	forget_user_settings();
	ck_assert_int_eq(hp_tune(), HP_TRIM_SET | HP_MMAP_SET);
	faults_of_bursts(); /* the first burst grows the heap once */
	long f = faults_of_bursts();
	ck_assert_msg(f < BURSTS * IN_FLIGHT,
	              "%ld page faults for %d messages of %d bytes: the heap was "
	              "trimmed and refaulted", f, BURSTS * IN_FLIGHT, MSG);
}
END_TEST

/* The reason for heap.c: without it the same bursts fault. If this fails,
 * glibc no longer trims at 128 KiB and heap.c may have no work left. */
START_TEST(glibc_defaults_refault_the_heap_on_the_same_bursts)
{
#ifdef OWN_ALLOCATOR
	return;
#endif
	if (getenv("GLIBC_TUNABLES") || getenv("MALLOC_TRIM_THRESHOLD_"))
		return; /* the user's own settings for this run: no defaults */
	faults_of_bursts();
	long f = faults_of_bursts();
	ck_assert_msg(f >= BURSTS * IN_FLIGHT,
	              "only %ld page faults for %d messages with glibc's defaults: "
	              "glibc no longer trims at 128 KiB (see broker/heap.h)", f,
	              BURSTS * IN_FLIGHT);
}
END_TEST

START_TEST(a_trim_threshold_the_user_set_is_kept)
{
	forget_user_settings();
	setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2:glibc.malloc.trim_threshold=200000", 1);
	int hp = hp_tune();
	ck_assert_msg(hp & HP_USER_TRIM, "hp_tune() = %#x: the user's trim threshold "
	              "was not recognised", hp);
	ck_assert_int_eq(hp & HP_TRIM_SET, 0);
#ifndef OWN_ALLOCATOR
	ck_assert_msg(hp & HP_MMAP_SET, "hp_tune() = %#x: the mmap threshold, which "
	              "the user did not set, was not set", hp);
#endif
}
END_TEST

START_TEST(an_mmap_threshold_the_user_set_is_kept)
{
	forget_user_settings();
	setenv("MALLOC_MMAP_THRESHOLD_", "262144", 1);
	int hp = hp_tune();
	ck_assert_msg(hp & HP_USER_MMAP, "hp_tune() = %#x: MALLOC_MMAP_THRESHOLD_ was "
	              "not recognised", hp);
	ck_assert_int_eq(hp & (HP_MMAP_SET | HP_USER_TRIM), 0);
}
END_TEST

static Suite *heap_suite(void)
{
	Suite *s = suite_create("heap");
	TCase *t = tcase_create("heap");
	tcase_add_test(t, bursts_of_64k_messages_do_not_refault_the_heap);
	tcase_add_test(t, glibc_defaults_refault_the_heap_on_the_same_bursts);
	tcase_add_test(t, a_trim_threshold_the_user_set_is_kept);
	tcase_add_test(t, an_mmap_threshold_the_user_set_is_kept);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(heap_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
