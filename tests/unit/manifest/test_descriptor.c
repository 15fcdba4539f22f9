/*
 * test_descriptor.c - the netpipe descriptor grammar (broker/descriptor.c,
 * DESIGN.md section 5).
 */
#include "descriptor.h"
#include "netpipe.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct ds_desc d;
static char err[512];

static void ok(const char *text, int require_prefix, const char *scheme,
               const char *address, uint32_t mode)
{
	int r = ds_parse(text, require_prefix, &d, err, sizeof err);
	ck_assert_msg(r == 0, "'%s' should parse, got %d: %s", text, r, err);
	ck_assert_str_eq(d.scheme, scheme);
	ck_assert_str_eq(d.address, address);
	ck_assert_uint_eq(d.mode, mode);
	ds_free(&d);
}

static void bad(const char *text, int require_prefix, const char *substr)
{
	int r = ds_parse(text, require_prefix, &d, err, sizeof err);
	ck_assert_msg(r == -EINVAL, "'%s' should be refused, got %d", text, r);
	ck_assert_msg(strstr(err, substr) != NULL, "'%s': message '%s' lacks '%s'",
	              text, err, substr);
	ck_assert_msg(strstr(err, "expected") != NULL,
	              "'%s': message '%s' does not say what was expected", text, err);
	ck_assert_ptr_null(d.address);
	ck_assert_uint_eq(d.mode, 0);
	ds_free(&d);
}

START_TEST(test_zmq_tcp_address_keeps_its_colons_and_takes_trailing_mode)
{
	ok("Netpipe:zmq:tcp://127.0.0.1:5555:r", 1, "zmq", "tcp://127.0.0.1:5555",
	   NP_READ);
}
END_TEST

START_TEST(test_bluetooth_address_with_channel_and_write_mode)
{
	ok("Netpipe:bluetooth:01:23:45:67:89:AB/3:w", 1, "bluetooth",
	   "01:23:45:67:89:AB/3", NP_WRITE);
}
END_TEST

START_TEST(test_unix_path_without_mode_has_mode_zero)
{
	ok("Netpipe:unix:/tmp/a.sock", 1, "unix", "/tmp/a.sock", 0);
}
END_TEST

START_TEST(test_design_examples_parse)
{
	ok("Netpipe:unix:/tmp/a.sock:w", 1, "unix", "/tmp/a.sock", NP_WRITE);
	ok("Netpipe:nng:ipc:///tmp/b:w", 1, "nng", "ipc:///tmp/b", NP_WRITE);
	ok("Netpipe:wifi:thermo.kitchen:r", 1, "wifi", "thermo.kitchen", NP_READ);
	ok("Netpipe:file:/var/log/x:w", 1, "file", "/var/log/x", NP_WRITE);
	ok("Netpipe:name:sensor.*:r", 1, "name", "sensor.*", NP_READ);
}
END_TEST

START_TEST(test_rw_mode_suffix)
{
	ok("Netpipe:unix:/tmp/a.sock:rw", 1, "unix", "/tmp/a.sock", NP_RDWR);
}
END_TEST

START_TEST(test_only_one_mode_suffix_is_taken)
{
	/* An address that itself ends in ":w" is written with an explicit mode. */
	ok("Netpipe:file:/tmp/a:w:rw", 1, "file", "/tmp/a:w", NP_RDWR);
	ok("Netpipe:file:/x:r:r", 1, "file", "/x:r", NP_READ);
}
END_TEST

START_TEST(test_options_are_handed_on_unparsed)
{
	ok("Netpipe:zmq:tcp://h:1?hwm=10&linger=0:w", 1, "zmq",
	   "tcp://h:1?hwm=10&linger=0", NP_WRITE);
}
END_TEST

START_TEST(test_scheme_charset_digits_dash_underscore)
{
	ok("Netpipe:my-plug_2:x", 1, "my-plug_2", "x", 0);
}
END_TEST

START_TEST(test_mode_letters_alone_are_an_address)
{
	ok("Netpipe:name:r", 1, "name", "r", 0);
	ok("Netpipe:name:rw", 1, "name", "rw", 0);
}
END_TEST

START_TEST(test_spaces_and_utf8_inside_the_address_are_kept)
{
	ok("Netpipe:file:/tmp/my file.sock", 1, "file", "/tmp/my file.sock", 0);
	ok("Netpipe:file:/tmp/caf\xc3\xa9:r", 1, "file", "/tmp/caf\xc3\xa9", NP_READ);
}
END_TEST

START_TEST(test_prefix_optional_without_require_prefix)
{
	ok("unix:/tmp/a.sock:w", 0, "unix", "/tmp/a.sock", NP_WRITE);
	ok("Netpipe:unix:/tmp/a.sock:w", 0, "unix", "/tmp/a.sock", NP_WRITE);
}
END_TEST

START_TEST(test_missing_prefix_refused_when_required)
{
	bad("unix:/tmp/a.sock", 1, "missing 'Netpipe:' prefix");
}
END_TEST

START_TEST(test_prefix_is_case_sensitive)
{
	bad("netpipe:unix:/tmp/a", 1, "case-sensitive");
	bad("NETPIPE:unix:/tmp/a", 0, "case-sensitive");
}
END_TEST

START_TEST(test_uppercase_scheme_refused)
{
	bad("Netpipe:ZMQ:tcp://h:1", 1, "upper-case");
	bad("Netpipe:Unix:/x", 1, "'Unix'");
}
END_TEST

START_TEST(test_scheme_with_other_characters_refused)
{
	bad("Netpipe:zm.q:x", 1, "has the character '.'");
	bad("Netpipe:z q:x", 1, "has the character ' '");
}
END_TEST

START_TEST(test_empty_scheme_refused)
{
	bad("Netpipe::/tmp/a", 1, "empty scheme");
}
END_TEST

START_TEST(test_scheme_length_limit)
{
	char scheme[65], text[128];

	/* 63 characters fit in ds_desc.scheme[64] */
	memset(scheme, 'a', 63);
	scheme[63] = '\0';
	snprintf(text, sizeof text, "Netpipe:%s:x", scheme);
	ok(text, 1, scheme, "x", 0);

	/* 64 do not */
	memset(scheme, 'a', 64);
	scheme[64] = '\0';
	snprintf(text, sizeof text, "Netpipe:%s:x", scheme);
	bad(text, 1, "is 64 characters long");
}
END_TEST

START_TEST(test_no_colon_after_scheme_refused)
{
	bad("Netpipe:unix", 1, "no ':' after the scheme");
	bad("Netpipe:", 1, "nothing after 'Netpipe:'");
}
END_TEST

START_TEST(test_empty_address_refused)
{
	bad("Netpipe:unix:", 1, "empty address");
	bad("Netpipe:unix::r", 1, "empty address");
	bad("Netpipe:unix::rw", 1, "empty address");
}
END_TEST

START_TEST(test_manifest_separators_refused_with_offset)
{
	bad("Netpipe:unix:/tmp/a,b", 1, "',' at offset 19");
	bad("Netpipe:unix:/tmp/a;b", 1, "';' at offset 19");
	bad("Netpipe:unix:/tmp/a\nb", 1, "a newline");
	bad("Netpipe:unix:/tmp/a\rb", 1, "a carriage return");
}
END_TEST

START_TEST(test_control_bytes_refused)
{
	bad("Netpipe:unix:/tmp/\ta", 1, "a tab");
	bad("Netpipe:unix:/tmp/\x01" "a", 1, "control byte 0x01");
	bad("Netpipe:unix:/tmp/\x7f" "a", 1, "control byte 0x7f");
}
END_TEST

START_TEST(test_surrounding_spaces_refused)
{
	bad(" Netpipe:unix:/tmp/a", 1, "space");
	bad("Netpipe:unix:/tmp/a ", 1, "space");
}
END_TEST

START_TEST(test_empty_and_null_text_refused)
{
	bad("", 1, "empty descriptor");
	bad(NULL, 0, "empty descriptor");
}
END_TEST

START_TEST(test_null_err_buffer_is_allowed)
{
	ck_assert_int_eq(ds_parse("Netpipe:ZMQ:x", 1, &d, NULL, 0), -EINVAL);
	ck_assert_int_eq(ds_parse("Netpipe:zmq:x", 1, &d, NULL, 0), 0);
	ds_free(&d);
}
END_TEST

START_TEST(test_small_err_buffer_is_truncated_safely)
{
	char small[8];
	memset(small, 'x', sizeof small);
	ck_assert_int_eq(ds_parse("Netpipe:ZMQ:x", 1, &d, small, sizeof small), -EINVAL);
	ck_assert_uint_eq(strlen(small), sizeof small - 1);
}
END_TEST

START_TEST(test_ds_free_is_idempotent)
{
	ck_assert_int_eq(ds_parse("Netpipe:zmq:x:r", 1, &d, err, sizeof err), 0);
	ds_free(&d);
	ck_assert_ptr_null(d.address);
	ds_free(&d);
	ds_free(NULL);
}
END_TEST

START_TEST(test_mode_names)
{
	ck_assert_str_eq(ds_mode_name(NP_READ), "r");
	ck_assert_str_eq(ds_mode_name(NP_WRITE), "w");
	ck_assert_str_eq(ds_mode_name(NP_RDWR), "rw");
	ck_assert_str_eq(ds_mode_name(0), "?");
	ck_assert_str_eq(ds_mode_name(42), "?");
}
END_TEST

static Suite *descriptor_suite(void)
{
	Suite *s = suite_create("descriptor");
	TCase *t = tcase_create("grammar");
	tcase_add_test(t, test_zmq_tcp_address_keeps_its_colons_and_takes_trailing_mode);
	tcase_add_test(t, test_bluetooth_address_with_channel_and_write_mode);
	tcase_add_test(t, test_unix_path_without_mode_has_mode_zero);
	tcase_add_test(t, test_design_examples_parse);
	tcase_add_test(t, test_rw_mode_suffix);
	tcase_add_test(t, test_only_one_mode_suffix_is_taken);
	tcase_add_test(t, test_options_are_handed_on_unparsed);
	tcase_add_test(t, test_scheme_charset_digits_dash_underscore);
	tcase_add_test(t, test_mode_letters_alone_are_an_address);
	tcase_add_test(t, test_spaces_and_utf8_inside_the_address_are_kept);
	tcase_add_test(t, test_prefix_optional_without_require_prefix);
	suite_add_tcase(s, t);

	t = tcase_create("errors");
	tcase_add_test(t, test_missing_prefix_refused_when_required);
	tcase_add_test(t, test_prefix_is_case_sensitive);
	tcase_add_test(t, test_uppercase_scheme_refused);
	tcase_add_test(t, test_scheme_with_other_characters_refused);
	tcase_add_test(t, test_empty_scheme_refused);
	tcase_add_test(t, test_scheme_length_limit);
	tcase_add_test(t, test_no_colon_after_scheme_refused);
	tcase_add_test(t, test_empty_address_refused);
	tcase_add_test(t, test_manifest_separators_refused_with_offset);
	tcase_add_test(t, test_control_bytes_refused);
	tcase_add_test(t, test_surrounding_spaces_refused);
	tcase_add_test(t, test_empty_and_null_text_refused);
	tcase_add_test(t, test_null_err_buffer_is_allowed);
	tcase_add_test(t, test_small_err_buffer_is_truncated_safely);
	suite_add_tcase(s, t);

	t = tcase_create("api");
	tcase_add_test(t, test_ds_free_is_idempotent);
	tcase_add_test(t, test_mode_names);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(descriptor_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
