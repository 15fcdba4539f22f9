/*
 * test_options.c - the "?k=v&k=v" tail of plugin addresses
 * (plugins/common/options.c).
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"

static const char *const allowed[] = {"timeout", "retry", "etag", "mode",
                                      "a", "b", "c", "d", "e", "f", "g",
                                      "h", "i", NULL};

static char base[64];
static char err[256];
static struct no_opts o;

static int parse(const char *address)
{
	memset(base, 0x55, sizeof base);
	err[0] = '\0';
	return no_parse(address, base, sizeof base, &o, allowed, err, sizeof err);
}

START_TEST(parse_splits_base_from_options)
{
	ck_assert_int_eq(parse("/run/rift/a.sock?timeout=250&retry=3"), 0);
	ck_assert_str_eq(base, "/run/rift/a.sock");
	ck_assert_int_eq(o.n, 2);
	ck_assert_str_eq(o.key[0], "timeout");
	ck_assert_str_eq(o.val[0], "250");
	ck_assert_str_eq(o.key[1], "retry");
	ck_assert_str_eq(o.val[1], "3");
	ck_assert_str_eq(no_get(&o, "timeout"), "250");
	ck_assert_str_eq(no_get(&o, "retry"), "3");
	ck_assert_ptr_null(no_get(&o, "etag"));
}
END_TEST

START_TEST(parse_without_options_gives_the_whole_address)
{
	ck_assert_int_eq(parse("/tmp/x.sock"), 0);
	ck_assert_str_eq(base, "/tmp/x.sock");
	ck_assert_int_eq(o.n, 0);
	ck_assert_ptr_null(no_get(&o, "timeout"));
}
END_TEST

START_TEST(parse_keeps_everything_after_the_first_equals_in_the_value)
{
	ck_assert_int_eq(parse("h:1?mode=a=b&etag="), 0);
	ck_assert_str_eq(base, "h:1");
	ck_assert_int_eq(o.n, 2);
	ck_assert_str_eq(no_get(&o, "mode"), "a=b");
	ck_assert_str_eq(no_get(&o, "etag"), "");
}
END_TEST

START_TEST(parse_refuses_unknown_keys)
{
	ck_assert_int_eq(parse("/tmp/x?timeout=1&bogus=2"), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "bogus"));
}
END_TEST

START_TEST(parse_refuses_every_key_when_nothing_is_allowed)
{
	ck_assert_int_eq(no_parse("/tmp/x?timeout=1", base, sizeof base, &o, NULL,
	                          err, sizeof err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "timeout"));
	ck_assert_int_eq(no_parse("/tmp/x", base, sizeof base, &o, NULL, err,
	                          sizeof err), 0);
	ck_assert_str_eq(base, "/tmp/x");
}
END_TEST

START_TEST(parse_refuses_an_option_without_equals)
{
	ck_assert_int_eq(parse("/tmp/x?timeout"), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "key=value"));
	ck_assert_int_eq(parse("/tmp/x?timeout=1&retry"), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "retry"));
}
END_TEST

START_TEST(parse_refuses_an_empty_key)
{
	ck_assert_int_eq(parse("/tmp/x?=1"), -EINVAL);
	ck_assert_int_eq(parse("/tmp/x?timeout=1&=2"), -EINVAL);
}
END_TEST

START_TEST(parse_refuses_empty_options_between_separators)
{
	ck_assert_int_eq(parse("/tmp/x?timeout=1&&retry=2"), -EINVAL);
	ck_assert_int_eq(parse("/tmp/x?timeout=1&"), -EINVAL);
}
END_TEST

START_TEST(parse_accepts_eight_options_and_refuses_nine)
{
	ck_assert_int_eq(NO_MAX, 8);
	ck_assert_int_eq(parse("x?a=1&b=2&c=3&d=4&e=5&f=6&g=7&h=8"), 0);
	ck_assert_int_eq(o.n, 8);
	ck_assert_str_eq(no_get(&o, "h"), "8");
	ck_assert_int_eq(parse("x?a=1&b=2&c=3&d=4&e=5&f=6&g=7&h=8&i=9"), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "too many"));
}
END_TEST

START_TEST(parse_refuses_keys_and_values_too_long_to_store)
{
	char addr[512];
	char key[40], val[200];
	/* key[32] holds at most 31 bytes: a 32-byte key is refused before
	 * the allowed list is even consulted. */
	memset(key, 'k', 32);
	key[32] = '\0';
	snprintf(addr, sizeof addr, "x?%s=1", key);
	ck_assert_int_eq(parse(addr), -EINVAL);

	memset(val, 'v', 127);
	val[127] = '\0';
	snprintf(addr, sizeof addr, "x?mode=%s", val);
	ck_assert_int_eq(parse(addr), 0);
	ck_assert_str_eq(no_get(&o, "mode"), val);
	memset(val, 'v', 128);
	val[128] = '\0';
	snprintf(addr, sizeof addr, "x?mode=%s", val);
	ck_assert_int_eq(parse(addr), -EINVAL);
}
END_TEST

START_TEST(parse_refuses_an_empty_address)
{
	ck_assert_int_eq(parse(""), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "empty"));
	ck_assert_int_eq(parse("?timeout=1"), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "empty"));
}
END_TEST

START_TEST(parse_refuses_a_base_longer_than_the_buffer)
{
	char addr[128];
	memset(addr, 'p', sizeof base - 1);
	addr[sizeof base - 1] = '\0';
	ck_assert_int_eq(parse(addr), 0);
	ck_assert_int_eq(strlen(base), sizeof base - 1);
	memset(addr, 'p', sizeof base);
	strcpy(addr + sizeof base, "?timeout=1");
	ck_assert_int_eq(parse(addr), -ENAMETOOLONG);
}
END_TEST

START_TEST(get_int_parses_non_negative_integers)
{
	int64_t v = -7;
	ck_assert_int_eq(parse("x?timeout=250&retry=0&etag=9223372036854775807"), 0);
	ck_assert_int_eq(no_get_int(&o, "timeout", 5, &v, err, sizeof err), 0);
	ck_assert_int_eq(v, 250);
	ck_assert_int_eq(no_get_int(&o, "retry", 5, &v, err, sizeof err), 0);
	ck_assert_int_eq(v, 0);
	ck_assert_int_eq(no_get_int(&o, "etag", 5, &v, err, sizeof err), 0);
	ck_assert_int_eq(v, INT64_MAX);
}
END_TEST

START_TEST(get_int_gives_the_default_when_absent)
{
	int64_t v = -7;
	ck_assert_int_eq(parse("x?timeout=250"), 0);
	ck_assert_int_eq(no_get_int(&o, "retry", 42, &v, err, sizeof err), 0);
	ck_assert_int_eq(v, 42);
}
END_TEST

START_TEST(get_int_refuses_negatives_and_junk)
{
	static const char *const bad[] = {
		"-1", "-9223372036854775808", "abc", "12x", "", "1.5", "0x10",
		"99999999999999999999", "1 ",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char addr[128];
		int64_t v = -7;
		snprintf(addr, sizeof addr, "x?timeout=%s", bad[i]);
		ck_assert_int_eq(parse(addr), 0);
		err[0] = '\0';
		ck_assert_msg(no_get_int(&o, "timeout", 5, &v, err, sizeof err) == -EINVAL,
		              "'%s' was accepted as %lld", bad[i], (long long)v);
		ck_assert_ptr_nonnull(strstr(err, "timeout"));
	}
}
END_TEST

static Suite *options_suite(void)
{
	Suite *s = suite_create("options");
	TCase *p = tcase_create("parse");
	tcase_add_test(p, parse_splits_base_from_options);
	tcase_add_test(p, parse_without_options_gives_the_whole_address);
	tcase_add_test(p, parse_keeps_everything_after_the_first_equals_in_the_value);
	tcase_add_test(p, parse_refuses_unknown_keys);
	tcase_add_test(p, parse_refuses_every_key_when_nothing_is_allowed);
	tcase_add_test(p, parse_refuses_an_option_without_equals);
	tcase_add_test(p, parse_refuses_an_empty_key);
	tcase_add_test(p, parse_refuses_empty_options_between_separators);
	tcase_add_test(p, parse_accepts_eight_options_and_refuses_nine);
	tcase_add_test(p, parse_refuses_keys_and_values_too_long_to_store);
	tcase_add_test(p, parse_refuses_an_empty_address);
	tcase_add_test(p, parse_refuses_a_base_longer_than_the_buffer);
	suite_add_tcase(s, p);
	TCase *g = tcase_create("get_int");
	tcase_add_test(g, get_int_parses_non_negative_integers);
	tcase_add_test(g, get_int_gives_the_default_when_absent);
	tcase_add_test(g, get_int_refuses_negatives_and_junk);
	suite_add_tcase(s, g);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(options_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
