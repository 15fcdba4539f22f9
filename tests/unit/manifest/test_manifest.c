/*
 * test_manifest.c - ZeroVM-style manifests (broker/manifest.c,
 * DESIGN.md section 6, docs/manifest.md).
 *
 * Real ZeroVM manifests live in samples/ (taken from zerovm/zerovm's tests
 * and docs, rewritten where paths had to change); every invalid case checks
 * the exact line the error names and a piece of its message.
 */
#include "manifest.h"
#include "log.h"
#include "netpipe.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef SAMPLES_DIR
#define SAMPLES_DIR "tests/unit/manifest/samples"
#endif

#define NAME "t.manifest"

/* Lines 1-4: the mandatory keys. Lines 5-7: the standard channels. */
#define HDR                                                                  \
	"Version = 20130611\n"                                               \
	"Program = p.rbc\n"                                                  \
	"Memory = 67108864, 0\n"                                             \
	"Timeout = 10\n"
#define STD                                                                  \
	"Channel = /dev/null, /dev/stdin, 0, 0, 1, 1, 0, 0\n"                \
	"Channel = /dev/null, /dev/stdout, 0, 0, 0, 0, 1, 1\n"               \
	"Channel = /dev/null, /dev/stderr, 0, 0, 0, 0, 1, 1\n"
#define BASE HDR STD /* the next line is line 8 */

/* The same in the 7-field format of ZeroVM 2.x. */
#define HDR2                                                                 \
	"Version = 20140509\n"                                               \
	"Program = p.rbc\n"                                                  \
	"Memory = 67108864, 0\n"                                             \
	"Timeout = 10\n"
#define STD2                                                                 \
	"Channel = /dev/null, /dev/stdin, 0, 1, 1, 0, 0\n"                   \
	"Channel = /dev/null, /dev/stdout, 0, 0, 0, 1, 1\n"                  \
	"Channel = /dev/null, /dev/stderr, 0, 0, 0, 1, 1\n"
#define BASE2 HDR2 STD2

static struct mf_manifest m;
static char err[1024];

static void teardown(void)
{
	mf_free(&m);
}

static int parse(const char *text)
{
	return mf_parse_text(NAME, text, strlen(text), &m, err, sizeof err);
}

static void valid(const char *text)
{
	int r = parse(text);
	ck_assert_msg(r == 0, "should be valid, got %d: %s\n---\n%s", r, err, text);
}

/* The error must be "t.manifest:LINE: ...<substr>..., expected ..."
 * (or "t.manifest: ..." for line 0, a whole-file problem). */
static void invalid(const char *text, int line, const char *substr)
{
	char prefix[64];
	int r = parse(text);
	ck_assert_msg(r == -EINVAL, "should be invalid (line %d, '%s'), got %d\n---\n%s",
	              line, substr, r, text);
	if (line > 0)
		snprintf(prefix, sizeof prefix, NAME ":%d: ", line);
	else
		snprintf(prefix, sizeof prefix, NAME ": ");
	ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0,
	              "message '%s' should start with '%s'", err, prefix);
	ck_assert_msg(strstr(err, substr) != NULL, "message '%s' lacks '%s'", err, substr);
	ck_assert_msg(strstr(err, "expected") != NULL,
	              "message '%s' does not say what was expected", err);
	/* a failed parse leaves the manifest empty */
	ck_assert_int_eq(m.nchannels, 0);
	ck_assert_ptr_null(m.channels);
	ck_assert_ptr_null(m.program);
	ck_assert_ptr_null(m.path);
}

static int parse_sample(const char *file)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", SAMPLES_DIR, file);
	return mf_parse_file(path, &m, err, sizeof err);
}

static struct mf_channel *chan(const char *alias)
{
	for (int i = 0; i < m.nchannels; i++)
		if (strcmp(m.channels[i].alias, alias) == 0)
			return &m.channels[i];
	ck_abort_msg("no channel %s", alias);
	return NULL;
}

/* Run a parse with stderr captured; return what was logged (static). */
static const char *parse_logged(const char *text, int *r)
{
	static char buf[8192];
	FILE *tmp = tmpfile();
	int saved = dup(STDERR_FILENO);
	ck_assert_ptr_nonnull(tmp);
	lg_set_level(LG_WARN);
	dup2(fileno(tmp), STDERR_FILENO);
	*r = parse(text);
	dup2(saved, STDERR_FILENO);
	close(saved);
	rewind(tmp);
	size_t n = fread(buf, 1, sizeof buf - 1, tmp);
	buf[n] = '\0';
	fclose(tmp);
	return buf;
}

/* ==== real ZeroVM manifests ==================================================== */

START_TEST(test_zerovm_docs_example_is_valid)
{
	ck_assert_msg(parse_sample("docs_example.manifest") == 0, "%s", err);
	ck_assert_int_eq(m.version, MF_VERSION_1);
	ck_assert_str_eq(m.program, "/home/me/myapp.nexe");
	ck_assert_int_eq(m.program_line, 4);
	ck_assert(m.memory == 4294967296LL);
	ck_assert_int_eq(m.memory_etag, 0);
	ck_assert(m.timeout == 50);
	ck_assert_int_eq(m.nchannels, 5);
	ck_assert_uint_eq(chan("/dev/stdin")->mode, NP_READ);
	ck_assert_uint_eq(chan("/dev/stdout")->mode, NP_WRITE);
	ck_assert_uint_eq(chan("/dev/nvram")->mode, NP_RDWR);
	ck_assert_int_eq(chan("/dev/nvram")->type, 3);
	ck_assert_int_eq(chan("/dev/nvram")->line, 9);
	ck_assert_str_eq(chan("/dev/1.python.tar")->uris[0], "/home/me/python.tar");
	ck_assert_ptr_null(m.node);
	ck_assert_ptr_null(m.name_server);
	ck_assert_ptr_null(m.job);
	ck_assert_int_eq(m.nplugin_dirs, 0);
	ck_assert_str_eq(m.path, SAMPLES_DIR "/docs_example.manifest");
}
END_TEST

START_TEST(test_zerovm_nameserver_sample_with_hex_limits_is_valid)
{
	ck_assert_msg(parse_sample("nameserver_copy.manifest") == 0, "%s", err);
	ck_assert_str_eq(m.node, "2");
	ck_assert_str_eq(m.name_server, "udp:127.0.0.1:54321");
	struct mf_channel *in = chan("/dev/stdin");
	ck_assert_int_eq(in->etag, 1);
	ck_assert(in->gets == 0x10000 && in->get_size == 0x1000000);
	ck_assert_int_eq(in->line, 4);
	ck_assert_str_eq(chan("/dev/stdout")->uris[0], "tcp:4:");
	ck_assert_uint_eq(chan("/dev/stdout")->mode, NP_WRITE);
}
END_TEST

START_TEST(test_zerovm_tcp_input_sample_is_valid)
{
	ck_assert_msg(parse_sample("tcp_input.manifest") == 0, "%s", err);
	ck_assert(chan("/dev/stdin")->gets == 0x100000000LL);
	ck_assert_str_eq(chan("/dev/stdin")->uris[0], "tcp:127.0.0.1:50001");
}
END_TEST

START_TEST(test_zerovm_multiplexed_sample_has_four_uris)
{
	ck_assert_msg(parse_sample("multiplexed.manifest") == 0, "%s", err);
	struct mf_channel *in = chan("/dev/stdin");
	ck_assert_int_eq(in->nuris, 4);
	ck_assert_str_eq(in->uris[0], "/srv/zerovm/multiplexed/copy.manifest");
	ck_assert_str_eq(in->uris[3], "tcp:127.0.0.1:50003");
	ck_assert(m.timeout == 999999);
}
END_TEST

START_TEST(test_zerovm_node_input_sample_with_hex_memory_is_valid)
{
	ck_assert_msg(parse_sample("node_input.manifest") == 0, "%s", err);
	ck_assert(m.memory == 0x2000000);
	ck_assert_str_eq(chan("/dev/stdin")->uris[0], "tcp:1:");
}
END_TEST

START_TEST(test_zvsh_generated_manifest_is_valid)
{
	ck_assert_msg(parse_sample("zvsh_generated.manifest") == 0, "%s", err);
	ck_assert_str_eq(m.node, "1");
	ck_assert_uint_eq(chan("/dev/nvram")->mode, NP_RDWR);
	ck_assert(chan("/dev/nvram")->put_size == 4294967296LL);
}
END_TEST

START_TEST(test_v2_seven_field_channels_are_valid)
{
	ck_assert_msg(parse_sample("v2_hello.manifest") == 0, "%s", err);
	ck_assert_int_eq(m.version, MF_VERSION_2);
	ck_assert_int_eq(m.nchannels, 3);
	ck_assert_int_eq(chan("/dev/stdin")->etag, 0);
	ck_assert(chan("/dev/stdin")->gets == 999999);
	ck_assert_uint_eq(chan("/dev/stdout")->mode, NP_WRITE);
}
END_TEST

START_TEST(test_v2_version_with_eight_field_channels_is_invalid)
{
	ck_assert_int_eq(parse_sample("v2_with_v1_channels.manifest"), -EINVAL);
	ck_assert_msg(strstr(err, "v2_with_v1_channels.manifest:4: Channel has 8 fields, "
	                          "expected 7") != NULL, "%s", err);
}
END_TEST

START_TEST(test_rift_netpipe_sample_is_valid)
{
	ck_assert_msg(parse_sample("rift_netpipe.manifest") == 0, "%s", err);
	ck_assert_str_eq(m.node, "kitchen-pi");
	ck_assert_int_eq(m.nplugin_dirs, 2);
	ck_assert_str_eq(m.plugin_dirs[0], SAMPLES_DIR "/plugins");
	ck_assert_str_eq(m.plugin_dirs[1], "/usr/lib/rift/plugins");
	ck_assert_uint_eq(chan("/dev/out/net")->mode, NP_WRITE);
	ck_assert_uint_eq(chan("/dev/in/sensor")->mode, NP_READ);
	ck_assert_str_eq(chan("/dev/out/bt")->uris[0],
	                 "Netpipe:bluetooth:01:23:45:67:89:AB/3:w");
	ck_assert_int_eq(chan("/dev/out/bt")->etag, 1);
}
END_TEST

/* ==== lines ==================================================================== */

START_TEST(test_banners_hash_comments_and_lines_without_equals_are_ignored)
{
	valid("=====================================\n"
	      "== a banner, as ZeroVM's files have\n"
	      "= a line with an empty key\n"
	      "# Version = 1 (a comment, even with '=')\n"
	      "   # indented comment\n"
	      "free text without an equals sign\n"
	      "\n" BASE);
	ck_assert_int_eq(m.program_line, 9);
}
END_TEST

START_TEST(test_crlf_line_endings_are_accepted)
{
	valid("Version = 20130611\r\nProgram = p.rbc\r\nMemory = 1024, 0\r\n"
	      "Timeout = 1\r\n"
	      "Channel = /dev/null, /dev/stdin, 0, 0, 1, 1, 0, 0\r\n"
	      "Channel = /dev/null, /dev/stdout, 0, 0, 0, 0, 1, 1\r\n"
	      "Channel = /dev/null, /dev/stderr, 0, 0, 0, 0, 1, 1\r\n");
	ck_assert_str_eq(m.program, "p.rbc");
	ck_assert_str_eq(m.channels[2].alias, "/dev/stderr");
}
END_TEST

START_TEST(test_no_final_newline_is_fine)
{
	valid(HDR "Channel = /dev/null, /dev/stdin, 0, 0, 1, 1, 0, 0\n"
	      "Channel = /dev/null, /dev/stdout, 0, 0, 0, 0, 1, 1\n"
	      "Channel = /dev/null, /dev/stderr, 0, 0, 0, 0, 1, 1");
}
END_TEST

START_TEST(test_keys_and_values_are_trimmed)
{
	valid("  Version\t=\t20130611  \n Program =   my prog.rbc   \n"
	      "Memory=1024,0\nTimeout= 7\n" STD);
	ck_assert_str_eq(m.program, "my prog.rbc");
	ck_assert(m.timeout == 7);
}
END_TEST

START_TEST(test_value_is_split_at_the_first_equals)
{
	valid(BASE "Job = /tmp/a=b\n");
	ck_assert_str_eq(m.job, "/tmp/a=b");
}
END_TEST

START_TEST(test_keys_are_case_sensitive)
{
	int r;
	const char *log = parse_logged("version = 20130611\n" "Program = p\n"
	                               "Memory = 1024, 0\n" "Timeout = 1\n" STD, &r);
	ck_assert_int_eq(r, -EINVAL);
	ck_assert_msg(strstr(log, NAME ":1: unknown key 'version' ignored") != NULL, "%s", log);
	ck_assert_msg(strstr(err, "missing mandatory key 'Version'") != NULL, "%s", err);
}
END_TEST

START_TEST(test_unknown_key_is_a_warning_with_file_and_line)
{
	int r;
	const char *log = parse_logged(BASE "Trust = abc\nName = sensor\n", &r);
	ck_assert_msg(r == 0, "%s", err);
	ck_assert_msg(strstr(log, "warning: " NAME ":8: unknown key 'Trust' ignored") != NULL,
	              "%s", log);
	ck_assert_msg(strstr(log, NAME ":9: unknown key 'Name' ignored") != NULL, "%s", log);
}
END_TEST

START_TEST(test_half_set_read_limits_warn_that_the_channel_is_not_readable)
{
	int r;
	const char *log = parse_logged(BASE "Channel = /tmp/o, /dev/o, 0, 0, 5, 0, 1, 1\n", &r);
	ck_assert_msg(r == 0, "%s", err);
	ck_assert_uint_eq(chan("/dev/o")->mode, NP_WRITE);
	ck_assert_msg(strstr(log, NAME ":8: channel '/dev/o' is not readable") != NULL, "%s", log);
}
END_TEST

START_TEST(test_empty_value_is_an_error)
{
	invalid(HDR "Node =   \n" STD, 5, "key 'Node' has an empty value");
	invalid("Version =\n", 1, "key 'Version' has an empty value");
}
END_TEST

START_TEST(test_nul_byte_is_an_error_with_its_line)
{
	static const char text[] = BASE "Job = a\0b\n";
	int r = mf_parse_text(NAME, text, sizeof text - 1, &m, err, sizeof err);
	ck_assert_int_eq(r, -EINVAL);
	ck_assert_msg(strstr(err, NAME ":8: NUL byte") != NULL, "%s", err);
	ck_assert_msg(strstr(err, "expected a text file") != NULL, "%s", err);
}
END_TEST

START_TEST(test_long_lines_are_not_truncated)
{
	size_t n = 200000;
	char *text = malloc(2 * n + 4096);
	char *prog = malloc(n + 1);
	memset(prog, 'x', n);
	prog[n] = '\0';
	prog[0] = '/';
	snprintf(text, 2 * n + 4096, "Version = 20130611\nProgram = %s\nMemory = 1024, 0\n"
	         "Timeout = 1\n" STD "Channel = %s, /dev/big, 0, 0, 1, 1, 0, 0\n",
	         prog, prog);
	valid(text);
	ck_assert_uint_eq(strlen(m.program), n);
	ck_assert_str_eq(chan("/dev/big")->uris[0], prog);
	free(text);
	free(prog);
}
END_TEST

START_TEST(test_text_length_is_respected)
{
	/* Only the first len bytes count: the trailing garbage is not parsed. */
	const char *text = BASE "Timeout = 99\n";
	int r = mf_parse_text(NAME, text, strlen(BASE), &m, err, sizeof err);
	ck_assert_msg(r == 0, "%s", err);
	ck_assert(m.timeout == 10);
}
END_TEST

START_TEST(test_null_path_names_the_manifest_generically)
{
	const char *text = "Version = 1\n";
	ck_assert_int_eq(mf_parse_text(NULL, text, strlen(text), &m, err, sizeof err), -EINVAL);
	ck_assert_msg(strncmp(err, "<manifest>:1: ", 14) == 0, "%s", err);
}
END_TEST

/* ==== numbers ================================================================== */

START_TEST(test_parse_int_accepts_decimal_hex_octal_and_signs)
{
	int64_t v;
	ck_assert_int_eq(mf_parse_int("42", &v), 0);
	ck_assert(v == 42);
	ck_assert_int_eq(mf_parse_int("0x1F", &v), 0);
	ck_assert(v == 31);
	ck_assert_int_eq(mf_parse_int("0X10", &v), 0);
	ck_assert(v == 16);
	ck_assert_int_eq(mf_parse_int("010", &v), 0);
	ck_assert(v == 8);
	ck_assert_int_eq(mf_parse_int("0", &v), 0);
	ck_assert(v == 0);
	ck_assert_int_eq(mf_parse_int("-5", &v), 0);
	ck_assert(v == -5);
	ck_assert_int_eq(mf_parse_int("+5", &v), 0);
	ck_assert(v == 5);
	ck_assert_int_eq(mf_parse_int("-0x10", &v), 0);
	ck_assert(v == -16);
	ck_assert_int_eq(mf_parse_int("  \t 7 \r", &v), 0);
	ck_assert(v == 7);
	ck_assert_int_eq(mf_parse_int("9223372036854775807", &v), 0);
	ck_assert(v == INT64_MAX);
	ck_assert_int_eq(mf_parse_int("-9223372036854775808", &v), 0);
	ck_assert(v == INT64_MIN);
	ck_assert_int_eq(mf_parse_int("0x7fffffffffffffff", &v), 0);
	ck_assert(v == INT64_MAX);
}
END_TEST

START_TEST(test_parse_int_refuses_what_is_not_a_whole_number)
{
	int64_t v = 123;
	const char *bad[] = { "", "   ", "0x", "08", "09", "1 2", "abc", "12abc", "-",
	                      "+", "0x1G", "1.5", "- 5", "0b101", "1e3", NULL };
	for (int i = 0; bad[i]; i++)
		ck_assert_msg(mf_parse_int(bad[i], &v) == -EINVAL, "'%s' accepted", bad[i]);
	ck_assert_int_eq(mf_parse_int(NULL, &v), -EINVAL);
	ck_assert(v == 123); /* untouched on failure */
}
END_TEST

START_TEST(test_parse_int_reports_overflow_as_erange)
{
	int64_t v;
	ck_assert_int_eq(mf_parse_int("9223372036854775808", &v), -ERANGE);
	ck_assert_int_eq(mf_parse_int("-9223372036854775809", &v), -ERANGE);
	ck_assert_int_eq(mf_parse_int("0x10000000000000000", &v), -ERANGE);
	ck_assert_int_eq(mf_parse_int("99999999999999999999999", &v), -ERANGE);
}
END_TEST

/* ==== mandatory and singleton keys ============================================== */

START_TEST(test_each_mandatory_key_is_required)
{
	invalid("Program = p\nMemory = 1024, 0\nTimeout = 1\n" STD, 0,
	        "missing mandatory key 'Version'");
	invalid("Version = 20130611\nMemory = 1024, 0\nTimeout = 1\n" STD, 0,
	        "missing mandatory key 'Program'");
	invalid("Version = 20130611\nProgram = p\nTimeout = 1\n" STD, 0,
	        "missing mandatory key 'Memory'");
	invalid("Version = 20130611\nProgram = p\nMemory = 1024, 0\n" STD, 0,
	        "missing mandatory key 'Timeout'");
}
END_TEST

START_TEST(test_duplicate_singleton_keys_name_both_lines)
{
	invalid(BASE "Version = 20130611\n", 8, "duplicate key 'Version' (first at line 1)");
	invalid(BASE "Program = q\n", 8, "duplicate key 'Program' (first at line 2)");
	invalid(BASE "Memory = 1024, 0\n", 8, "duplicate key 'Memory'");
	invalid(BASE "Timeout = 3\n", 8, "duplicate key 'Timeout' (first at line 4)");
	invalid(BASE "Node = 1\nNode = 2\n", 9, "duplicate key 'Node' (first at line 8)");
	invalid(BASE "Job = /a\nJob = /b\n", 9, "duplicate key 'Job'");
	invalid(BASE "Etag = 0\nEtag = 1\n", 9, "duplicate key 'Etag'");
	invalid(BASE "Node = 1\nNameServer = udp:127.0.0.1:1\nNameServer = udp:127.0.0.1:2\n",
	        10, "duplicate key 'NameServer'");
}
END_TEST

START_TEST(test_channel_and_plugins_are_repeatable)
{
	valid(BASE "Channel = /a, /dev/a, 0, 0, 1, 1, 0, 0\n"
	      "Channel = /b, /dev/b, 0, 0, 1, 1, 0, 0\n"
	      "Plugins = /p1\nPlugins = /p2\n");
	ck_assert_int_eq(m.nchannels, 5);
	ck_assert_int_eq(m.nplugin_dirs, 2);
}
END_TEST

START_TEST(test_version_is_compared_as_text)
{
	invalid("Version = 0x132D1B3\n", 1, "unsupported Version '0x132D1B3'");
	invalid("Version = 09082012\n", 1, "expected 20130611 (ZeroVM 1.x");
	invalid("Version = 2013061\n", 1, "unsupported Version");
}
END_TEST

START_TEST(test_version_20140320_is_the_seven_field_format)
{
	valid("Version = 20140320\nProgram = p\nMemory = 1024, 0\nTimeout = 1\n" STD2);
	ck_assert_int_eq(m.version, MF_VERSION_2);
}
END_TEST

START_TEST(test_version_after_the_channels_still_sets_the_field_count)
{
	valid(STD2 "Program = p\nMemory = 1024, 0\nTimeout = 1\nVersion = 20140509\n");
	ck_assert_int_eq(m.version, MF_VERSION_2);
}
END_TEST

START_TEST(test_memory_needs_size_and_etag)
{
	invalid(HDR STD "Memory = 1024\n", 8, "duplicate key 'Memory'");
	invalid("Version = 20130611\nProgram = p\nMemory = 1024\n", 3,
	        "Memory '1024' has no etag field");
	invalid("Version = 20130611\nProgram = p\nMemory = 1024, 0, 1\n", 3,
	        "more than 2 fields");
}
END_TEST

START_TEST(test_memory_size_range)
{
	invalid("Memory = 0, 0\n", 1, "Memory size 0 is out of range");
	invalid("Memory = -1, 0\n", 1, "Memory size -1 is out of range");
	invalid("Memory = 4294967297, 0\n", 1, "expected 1 to 4294967296 bytes");
	invalid("Memory = lots, 0\n", 1, "Memory size 'lots' is not a number");
	valid("Version = 20130611\nProgram = p\nMemory = 0x100000000, 1\nTimeout = 1\n" STD);
	ck_assert(m.memory == 4294967296LL);
	ck_assert_int_eq(m.memory_etag, 1);
}
END_TEST

START_TEST(test_memory_etag_is_zero_or_one)
{
	invalid("Memory = 1024, 2\n", 1, "Memory etag 2 is out of range, expected 0 or 1");
	invalid("Memory = 1024, \n", 1, "Memory etag '' is not a number");
}
END_TEST

START_TEST(test_timeout_range)
{
	invalid("Timeout = 0\n", 1, "Timeout 0 is out of range, expected 1 to 2147483647");
	invalid("Timeout = -3\n", 1, "Timeout -3 is out of range");
	invalid("Timeout = 2147483648\n", 1, "Timeout 2147483648 is out of range");
	invalid("Timeout = soon\n", 1, "Timeout 'soon' is not a number");
	invalid("Timeout = 99999999999999999999\n", 1, "does not fit in 64 bits");
	valid("Version = 20130611\nProgram = p\nMemory = 1024, 0\nTimeout = 2147483647\n" STD);
}
END_TEST

START_TEST(test_node_is_a_number_or_a_name)
{
	valid(BASE "Node = 0x10\n");
	ck_assert_str_eq(m.node, "0x10");
	mf_free(&m);
	valid(BASE "Node = kitchen.pi-2_b\n");
	ck_assert_str_eq(m.node, "kitchen.pi-2_b");
	mf_free(&m);
	invalid(BASE "Node = kitchen pi\n", 8, "Node 'kitchen pi' is not a node name");
	invalid(BASE "Node = a/b\n", 8, "expected a number or a name");
}
END_TEST

START_TEST(test_nameserver_must_be_udp_ipv4_port)
{
	valid(BASE "Node = 1\nNameServer = udp:127.0.0.1:54321\n");
	ck_assert_str_eq(m.name_server, "udp:127.0.0.1:54321");
	mf_free(&m);
	valid(BASE "Node = 1\nNameServer = UDP:10.0.0.1:0x1000\n");
	mf_free(&m);
	invalid(BASE "Node = 1\nNameServer = tcp:127.0.0.1:54321\n", 9,
	        "NameServer protocol 'tcp' is not supported");
	invalid(BASE "Node = 1\nNameServer = udp:127.0.0.1\n", 9, "is not a udp address");
	invalid(BASE "Node = 1\nNameServer = /tmp/ns\n", 9, "is not a udp address");
	invalid(BASE "Node = 1\nNameServer = udp:localhost:5\n", 9,
	        "host 'localhost' is not an IPv4 address");
	invalid(BASE "Node = 1\nNameServer = udp:0.0.0.0:5\n", 9, "is not an IPv4 address");
	invalid(BASE "Node = 1\nNameServer = udp:127.0.0.1:0\n", 9,
	        "NameServer port 0 is out of range");
	invalid(BASE "Node = 1\nNameServer = udp:127.0.0.1:65536\n", 9, "expected a port 1-65535");
}
END_TEST

START_TEST(test_nameserver_needs_node)
{
	invalid(BASE "NameServer = udp:127.0.0.1:54321\n", 8, "NameServer given without Node");
}
END_TEST

START_TEST(test_tcp_node_id_needs_a_nameserver)
{
	invalid(BASE "Channel = tcp:4:, /dev/net, 0, 0, 0, 0, 1, 1\n", 8,
	        "channel URI 'tcp:4:' names a node id, expected a 'NameServer");
}
END_TEST

START_TEST(test_job_is_a_unix_socket_path)
{
	char text[1024];
	char path[120];
	memset(path, 'j', sizeof path);
	path[0] = '/';
	path[108] = '\0';
	snprintf(text, sizeof text, BASE "Job = %s\n", path);
	valid(text);
	ck_assert_uint_eq(strlen(m.job), 108);
	mf_free(&m);
	path[108] = 'j';
	path[109] = '\0';
	snprintf(text, sizeof text, BASE "Job = %s\n", path);
	invalid(text, 8, "Job path is 109 bytes long, expected at most 108");
}
END_TEST

START_TEST(test_etag_key_is_zero_or_one)
{
	valid(BASE "Etag = 1\n");
	ck_assert_int_eq(m.etag, 1);
	mf_free(&m);
	invalid(BASE "Etag = 2\n", 8, "Etag 2 is out of range, expected 0 or 1");
}
END_TEST

START_TEST(test_plugins_relative_to_the_manifest_directory)
{
	const char *text = BASE "Plugins = plugins\nPlugins = ../lib/x\nPlugins = /abs/dir\n";
	ck_assert_int_eq(mf_parse_text("/etc/rift/a.manifest", text, strlen(text), &m, err,
	                               sizeof err), 0);
	ck_assert_str_eq(m.plugin_dirs[0], "/etc/rift/plugins");
	ck_assert_str_eq(m.plugin_dirs[1], "/etc/rift/../lib/x");
	ck_assert_str_eq(m.plugin_dirs[2], "/abs/dir");
	mf_free(&m);
	ck_assert_int_eq(mf_parse_text("/a.manifest", text, strlen(text), &m, err, sizeof err), 0);
	ck_assert_str_eq(m.plugin_dirs[0], "/plugins");
	mf_free(&m);
	/* a manifest named without a directory is in the current one */
	valid(text);
	ck_assert_str_eq(m.plugin_dirs[0], "plugins");
}
END_TEST

START_TEST(test_broker_key_in_v2_needs_node)
{
	int r;
	const char *log = parse_logged(BASE2 "Broker = /tmp/broker.sock\nNode = n1\n", &r);
	ck_assert_msg(r == 0, "%s", err);
	ck_assert_msg(strstr(log, NAME ":8: key 'Broker'") != NULL, "%s", log);
	mf_free(&m);
	invalid(BASE2 "Broker = /tmp/broker.sock\n", 8, "Broker given without Node");
}
END_TEST

/* ==== channels ================================================================= */

START_TEST(test_channel_field_count_depends_on_version)
{
	invalid(BASE "Channel = /a, /dev/a, 0, 1, 1, 0, 0\n", 8,
	        "Channel has 7 fields, expected 8 (<uri>, <alias>, <type>, <etag>");
	invalid(BASE "Channel = /a, /dev/a, 0, 0, 1, 1, 0, 0, 0\n", 8,
	        "Channel has 9 fields, expected 8");
	invalid(BASE "Channel = /a\n", 8, "Channel has 1 field, expected 8");
	invalid(BASE2 "Channel = /a, /dev/a, 0, 0, 1, 1, 0, 0\n", 8,
	        "Channel has 8 fields, expected 7 (<uri>, <alias>, <type>, <gets>");
}
END_TEST

START_TEST(test_channel_fields_are_trimmed_and_stored)
{
	valid(BASE "Channel =  /data/in ,  /dev/in/data , 1 , 1 , 10 , 0x20 , 0 , 0 \n");
	struct mf_channel *c = chan("/dev/in/data");
	ck_assert_str_eq(c->uris[0], "/data/in");
	ck_assert_int_eq(c->type, 1);
	ck_assert_int_eq(c->etag, 1);
	ck_assert(c->gets == 10 && c->get_size == 32 && c->puts == 0 && c->put_size == 0);
	ck_assert_int_eq(c->line, 8);
}
END_TEST

START_TEST(test_channel_alias_must_not_be_empty)
{
	invalid(BASE "Channel = /a, , 0, 0, 1, 1, 0, 0\n", 8, "empty alias");
}
END_TEST

START_TEST(test_channel_type_is_0_to_3)
{
	invalid(BASE "Channel = /a, /dev/a, 4, 0, 1, 1, 0, 0\n", 8, "Channel type 4 is out of range");
	invalid(BASE "Channel = /a, /dev/a, -1, 0, 1, 1, 0, 0\n", 8, "expected 0-3");
	invalid(BASE "Channel = /a, /dev/a, seq, 0, 1, 1, 0, 0\n", 8,
	        "Channel type 'seq' is not a number");
}
END_TEST

START_TEST(test_channel_etag_is_0_or_1)
{
	invalid(BASE "Channel = /a, /dev/a, 0, 2, 1, 1, 0, 0\n", 8,
	        "Channel etag 2 is out of range, expected 0 or 1");
}
END_TEST

START_TEST(test_negative_limits_are_refused)
{
	invalid(BASE "Channel = /a, /dev/a, 0, 0, -1, 1, 0, 0\n", 8,
	        "Channel gets limit -1 is out of range, expected a count >= 0");
	invalid(BASE "Channel = /a, /dev/a, 0, 0, 0, 0, 1, -5\n", 8,
	        "Channel put_size limit -5");
}
END_TEST

START_TEST(test_all_zero_limits_are_refused)
{
	invalid(BASE "Channel = /a, /dev/a, 0, 0, 0, 0, 0, 0\n", 8,
	        "channel '/dev/a' is neither readable nor writable (gets=0, get_size=0, "
	        "puts=0, put_size=0)");
}
END_TEST

START_TEST(test_half_set_limits_in_both_directions_are_refused)
{
	/* ZeroVM CH_RW_TYPE: both the count and the size must be non-zero. */
	invalid(BASE "Channel = /a, /dev/a, 0, 0, 5, 0, 0, 7\n", 8,
	        "neither readable nor writable");
}
END_TEST

START_TEST(test_direction_comes_from_the_limits)
{
	valid(BASE "Channel = /r, /dev/r, 0, 0, 1, 1, 0, 0\n"
	      "Channel = /w, /dev/w, 0, 0, 0, 0, 1, 1\n"
	      "Channel = /rw, /dev/rw, 3, 0, 1, 1, 1, 1\n");
	ck_assert_uint_eq(chan("/dev/r")->mode, NP_READ);
	ck_assert_uint_eq(chan("/dev/w")->mode, NP_WRITE);
	ck_assert_uint_eq(chan("/dev/rw")->mode, NP_RDWR);
}
END_TEST

START_TEST(test_read_write_file_needs_a_random_type)
{
	invalid(BASE "Channel = /f, /dev/f, 0, 0, 1, 1, 1, 1\n", 8,
	        "sequential channels cannot have r/w access");
	invalid(BASE "Channel = /f, /dev/f, 2, 0, 1, 1, 1, 1\n", 8,
	        "sequential read / random write channels not supported");
	valid(BASE "Channel = /f, /dev/f, 1, 0, 1, 1, 1, 1\n");
}
END_TEST

START_TEST(test_duplicate_alias_names_the_first_line)
{
	invalid(BASE "Channel = /a, /dev/stdin, 0, 0, 1, 1, 0, 0\n", 8,
	        "duplicate alias '/dev/stdin' (first declared at line 5)");
}
END_TEST

START_TEST(test_standard_channels_are_mandatory)
{
	invalid(HDR "Channel = /dev/null, /dev/stdout, 0, 0, 0, 0, 1, 1\n"
	        "Channel = /dev/null, /dev/stderr, 0, 0, 0, 0, 1, 1\n", 0,
	        "missing standard channel '/dev/stdin'");
	invalid(HDR "Channel = /dev/null, /dev/stdin, 0, 0, 1, 1, 0, 0\n"
	        "Channel = /dev/null, /dev/stderr, 0, 0, 0, 0, 1, 1\n", 0,
	        "missing standard channel '/dev/stdout'");
	invalid(HDR "Channel = /dev/null, /dev/stdin, 0, 0, 1, 1, 0, 0\n"
	        "Channel = /dev/null, /dev/stdout, 0, 0, 0, 0, 1, 1\n", 0,
	        "missing standard channel '/dev/stderr'");
	invalid(HDR, 0, "missing standard channel '/dev/stdin'");
}
END_TEST

START_TEST(test_relative_path_uri_is_refused)
{
	invalid(BASE "Channel = data.in, /dev/a, 0, 0, 1, 1, 0, 0\n", 8,
	        "channel URI 'data.in' is not an absolute path, expected an absolute path, "
	        "tcp:<host>:<port> or Netpipe:<descriptor>");
}
END_TEST

START_TEST(test_v1_path_with_colon_is_refused)
{
	invalid(BASE "Channel = /tmp/a:b, /dev/a, 0, 0, 1, 1, 0, 0\n", 8,
	        "channel path '/tmp/a:b' contains ':'");
	valid(BASE2 "Channel = /tmp/a:b, /dev/a, 0, 1, 1, 0, 0\n");
}
END_TEST

START_TEST(test_several_uris_separated_by_semicolons)
{
	valid(BASE "Channel = /a ; tcp:127.0.0.1:1;Netpipe:unix:/tmp/s, /dev/m, 0, 0, 1, 1, 0, 0\n");
	struct mf_channel *c = chan("/dev/m");
	ck_assert_int_eq(c->nuris, 3);
	ck_assert_str_eq(c->uris[0], "/a");
	ck_assert_str_eq(c->uris[1], "tcp:127.0.0.1:1");
	ck_assert_str_eq(c->uris[2], "Netpipe:unix:/tmp/s");
}
END_TEST

START_TEST(test_empty_uri_in_a_list_is_refused)
{
	invalid(BASE "Channel = /a;;/b, /dev/m, 0, 0, 1, 1, 0, 0\n", 8, "has an empty URI");
	invalid(BASE "Channel = /a;, /dev/m, 0, 0, 1, 1, 0, 0\n", 8, "has an empty URI");
	invalid(BASE "Channel = , /dev/m, 0, 0, 1, 1, 0, 0\n", 8, "has an empty URI");
}
END_TEST

START_TEST(test_tcp_uris)
{
	valid(BASE "Channel = TCP:10.1.2.3:65535, /dev/t, 0, 0, 1, 1, 0, 0\n");
	mf_free(&m);
	invalid(BASE "Channel = tcp:127.0.0.1, /dev/t, 0, 0, 1, 1, 0, 0\n", 8, "has no port");
	invalid(BASE "Channel = tcp::5, /dev/t, 0, 0, 1, 1, 0, 0\n", 8, "has no host");
	invalid(BASE "Channel = tcp:localhost:5, /dev/t, 0, 0, 1, 1, 0, 0\n", 8,
	        "host 'localhost' is neither an IPv4 address nor a node id");
	invalid(BASE "Channel = tcp:4294967296:5, /dev/t, 0, 0, 1, 1, 0, 0\n", 8,
	        "host '4294967296' is neither an IPv4 address nor a node id");
	invalid(BASE "Channel = tcp:0.0.0.0:5, /dev/t, 0, 0, 1, 1, 0, 0\n", 8,
	        "host '0.0.0.0' is not an IPv4 address");
	invalid(BASE "Channel = tcp:1.2.3:5, /dev/t, 0, 0, 1, 1, 0, 0\n", 8,
	        "is not an IPv4 address");
	invalid(BASE "Channel = tcp:127.0.0.1:65536, /dev/t, 0, 0, 1, 1, 0, 0\n", 8,
	        "tcp port 65536 is out of range");
	invalid(BASE "Channel = tcp:127.0.0.1:5:6, /dev/t, 0, 0, 1, 1, 0, 0\n", 8,
	        "tcp port '5:6' is not a number");
}
END_TEST

START_TEST(test_tcp_channel_is_read_only_or_write_only)
{
	invalid(BASE "Channel = tcp:127.0.0.1:5, /dev/t, 3, 0, 1, 1, 1, 1\n", 8,
	        "tcp channel '/dev/t' is both readable and writable");
}
END_TEST

START_TEST(test_other_zerovm_protocols_cannot_carry_channels)
{
	invalid(BASE "Channel = udp:127.0.0.1:5, /dev/t, 0, 0, 1, 1, 0, 0\n", 8,
	        "uses ZeroVM protocol 'udp', which cannot carry a channel");
	invalid(BASE "Channel = ipc:///tmp/x, /dev/t, 0, 0, 1, 1, 0, 0\n", 8,
	        "ZeroVM protocol 'ipc'");
	invalid(BASE "Channel = http://x/y, /dev/t, 0, 0, 1, 1, 0, 0\n", 8,
	        "has no known protocol");
}
END_TEST

START_TEST(test_netpipe_uri_direction_from_limits)
{
	valid(BASE "Channel = Netpipe:zmq:tcp://127.0.0.1:5555, /dev/out/net, 0, 0, 0, 0, 100, 1000000\n"
	      "Channel = Netpipe:unix:/run/s.sock:rw, /dev/both, 0, 0, 1, 1, 1, 1\n");
	ck_assert_uint_eq(chan("/dev/out/net")->mode, NP_WRITE);
	ck_assert_uint_eq(chan("/dev/both")->mode, NP_RDWR);
}
END_TEST

START_TEST(test_netpipe_mode_matching_limits_is_accepted)
{
	valid(BASE "Channel = Netpipe:zmq:tcp://127.0.0.1:5555:r, /dev/in, 0, 0, 1, 1, 0, 0\n");
	ck_assert_uint_eq(chan("/dev/in")->mode, NP_READ);
}
END_TEST

START_TEST(test_netpipe_mode_contradicting_limits_names_both)
{
	invalid(BASE "Channel = Netpipe:zmq:tcp://127.0.0.1:5555:r, /dev/out, 0, 0, 0, 0, 100, 1000\n",
	        8, "descriptor 'Netpipe:zmq:tcp://127.0.0.1:5555:r' says mode 'r' but the "
	        "limits make the channel write-only (gets=0, get_size=0, puts=100, "
	        "put_size=1000), expected ':w' or no mode suffix");
	invalid(BASE "Channel = Netpipe:unix:/s:rw, /dev/in, 0, 0, 1, 1, 0, 0\n", 8,
	        "says mode 'rw' but the limits make the channel read-only");
	invalid(BASE "Channel = Netpipe:unix:/s:w, /dev/io, 0, 0, 1, 1, 1, 1\n", 8,
	        "expected ':rw' or no mode suffix");
}
END_TEST

START_TEST(test_netpipe_descriptor_errors_are_reported_with_the_uri)
{
	invalid(BASE "Channel = Netpipe:ZMQ:tcp://h:1, /dev/n, 0, 0, 1, 1, 0, 0\n", 8,
	        "channel URI 'Netpipe:ZMQ:tcp://h:1': scheme 'ZMQ' has upper-case letters");
	invalid(BASE "Channel = netpipe:zmq:tcp://h:1, /dev/n, 0, 0, 1, 1, 0, 0\n", 8,
	        "case-sensitive");
	invalid(BASE "Channel = Netpipe:unix:, /dev/n, 0, 0, 1, 1, 0, 0\n", 8, "empty address");
	invalid(BASE "Channel = Netpipe:unix, /dev/n, 0, 0, 1, 1, 0, 0\n", 8,
	        "no ':' after the scheme");
}
END_TEST

START_TEST(test_descriptor_options_with_equals_survive_the_key_split)
{
	valid(BASE "Channel = Netpipe:zmq:tcp://127.0.0.1:5555?hwm=10&linger=0:w, /dev/o, 0, 0, "
	      "0, 0, 1, 1\n");
	ck_assert_str_eq(chan("/dev/o")->uris[0], "Netpipe:zmq:tcp://127.0.0.1:5555?hwm=10&linger=0:w");
}
END_TEST

START_TEST(test_netpipe_read_write_with_sequential_type_is_allowed)
{
	/* The r/w-needs-random-type rule is ZeroVM's rule for files only. */
	valid(BASE "Channel = Netpipe:unix:/s, /dev/io, 0, 0, 1, 1, 1, 1\n");
}
END_TEST

START_TEST(test_v2_uris)
{
	valid(BASE2 "Channel = net:peer.1, /dev/peer, 0, 1, 1, 0, 0\n");
	ck_assert_str_eq(chan("/dev/peer")->uris[0], "net:peer.1");
	mf_free(&m);
	invalid(BASE2 "Channel = net:, /dev/peer, 0, 1, 1, 0, 0\n", 8, "has no name");
	invalid(BASE2 "Channel = tcp:127.0.0.1:5, /dev/t, 0, 1, 1, 0, 0\n", 8,
	        "is a ZeroVM 1.x tcp: URI but the Version is 20140509, expected an absolute "
	        "path, net:<name> or Netpipe:<descriptor>");
	invalid(BASE "Channel = net:peer, /dev/peer, 0, 0, 1, 1, 0, 0\n", 8,
	        "has no known protocol");
}
END_TEST

START_TEST(test_channel_count_limit)
{
	const int max = 10914;
	size_t cap = (size_t)(max + 2) * 64 + 256;
	char *text = malloc(cap);
	size_t o = (size_t)snprintf(text, cap, BASE);
	for (int i = 3; i < max; i++)
		o += (size_t)snprintf(text + o, cap - o,
		                      "Channel = /d, /dev/c%d, 0, 0, 1, 1, 0, 0\n", i);
	valid(text);
	ck_assert_int_eq(m.nchannels, max);
	mf_free(&m);
	snprintf(text + o, cap - o, "Channel = /d, /dev/one-more, 0, 0, 1, 1, 0, 0\n");
	invalid(text, 7 + max - 3 + 1, "too many channels, expected at most 10914");
	free(text);
}
END_TEST

/* ==== files and the API ========================================================== */

static char tmpdir[64];

static void tmp_setup(void)
{
	strcpy(tmpdir, "/tmp/rift-mf-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void tmp_teardown(void)
{
	char cmd[128];
	mf_free(&m);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

static void write_file(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, len, f), len);
	fclose(f);
}

START_TEST(test_missing_file_is_enoent_with_its_name)
{
	char path[128];
	snprintf(path, sizeof path, "%s/nope.manifest", tmpdir);
	ck_assert_int_eq(mf_parse_file(path, &m, err, sizeof err), -ENOENT);
	ck_assert_msg(strncmp(err, path, strlen(path)) == 0, "%s", err);
	ck_assert_msg(strstr(err, "cannot open") && strstr(err, "expected"), "%s", err);
}
END_TEST

START_TEST(test_directory_is_refused)
{
	int r = mf_parse_file(tmpdir, &m, err, sizeof err);
	ck_assert_int_eq(r, -EISDIR);
	ck_assert_msg(strstr(err, "cannot read the manifest") != NULL, "%s", err);
}
END_TEST

START_TEST(test_file_over_one_mib_is_refused)
{
	char path[128];
	size_t n = 1024 * 1024 + 1;
	char *big = malloc(n);
	memset(big, '\n', n);
	snprintf(path, sizeof path, "%s/big.manifest", tmpdir);
	write_file(path, big, n);
	ck_assert_int_eq(mf_parse_file(path, &m, err, sizeof err), -EFBIG);
	ck_assert_msg(strstr(err, "larger than 1048576 bytes, expected at most 1 MiB"), "%s", err);
	/* exactly 1 MiB is read (and then fails for its content only) */
	write_file(path, big, n - 1);
	ck_assert_int_eq(mf_parse_file(path, &m, err, sizeof err), -EINVAL);
	ck_assert_msg(strstr(err, "missing mandatory key 'Version'"), "%s", err);
	free(big);
}
END_TEST

START_TEST(test_file_with_nul_byte_is_refused)
{
	static const char text[] = "Version = 20130611\nProg\0ram = p\n";
	char path[128];
	snprintf(path, sizeof path, "%s/nul.manifest", tmpdir);
	write_file(path, text, sizeof text - 1);
	ck_assert_int_eq(mf_parse_file(path, &m, err, sizeof err), -EINVAL);
	ck_assert_msg(strstr(err, ":2: NUL byte") != NULL, "%s", err);
}
END_TEST

START_TEST(test_file_and_text_give_the_same_result)
{
	char path[128];
	snprintf(path, sizeof path, "%s/ok.manifest", tmpdir);
	write_file(path, BASE "Plugins = p\n", strlen(BASE "Plugins = p\n"));
	ck_assert_msg(mf_parse_file(path, &m, err, sizeof err) == 0, "%s", err);
	ck_assert_str_eq(m.path, path);
	ck_assert_int_eq(m.nchannels, 3);
	char want[160];
	snprintf(want, sizeof want, "%s/p", tmpdir);
	ck_assert_str_eq(m.plugin_dirs[0], want);
}
END_TEST

START_TEST(test_mf_free_is_safe_twice_and_on_null)
{
	valid(BASE);
	mf_free(&m);
	mf_free(&m);
	mf_free(NULL);
	ck_assert_int_eq(m.nchannels, 0);
}
END_TEST

START_TEST(test_null_err_buffer_is_allowed)
{
	const char *text = "Version = 1\n";
	ck_assert_int_eq(mf_parse_text(NAME, text, strlen(text), &m, NULL, 0), -EINVAL);
	ck_assert_int_eq(mf_parse_file("/nonexistent/x", &m, NULL, 0), -ENOENT);
}
END_TEST

START_TEST(test_small_err_buffer_is_truncated_safely)
{
	char small[16];
	const char *text = "Version = 1\n";
	ck_assert_int_eq(mf_parse_text(NAME, text, strlen(text), &m, small, sizeof small),
	                 -EINVAL);
	ck_assert_uint_eq(strlen(small), sizeof small - 1);
}
END_TEST

static Suite *manifest_suite(void)
{
	Suite *s = suite_create("manifest");
	TCase *t;

	t = tcase_create("zerovm-samples");
	tcase_add_checked_fixture(t, NULL, teardown);
	tcase_add_test(t, test_zerovm_docs_example_is_valid);
	tcase_add_test(t, test_zerovm_nameserver_sample_with_hex_limits_is_valid);
	tcase_add_test(t, test_zerovm_tcp_input_sample_is_valid);
	tcase_add_test(t, test_zerovm_multiplexed_sample_has_four_uris);
	tcase_add_test(t, test_zerovm_node_input_sample_with_hex_memory_is_valid);
	tcase_add_test(t, test_zvsh_generated_manifest_is_valid);
	tcase_add_test(t, test_v2_seven_field_channels_are_valid);
	tcase_add_test(t, test_v2_version_with_eight_field_channels_is_invalid);
	tcase_add_test(t, test_rift_netpipe_sample_is_valid);
	suite_add_tcase(s, t);

	t = tcase_create("lines");
	tcase_add_checked_fixture(t, NULL, teardown);
	tcase_add_test(t, test_banners_hash_comments_and_lines_without_equals_are_ignored);
	tcase_add_test(t, test_crlf_line_endings_are_accepted);
	tcase_add_test(t, test_no_final_newline_is_fine);
	tcase_add_test(t, test_keys_and_values_are_trimmed);
	tcase_add_test(t, test_value_is_split_at_the_first_equals);
	tcase_add_test(t, test_keys_are_case_sensitive);
	tcase_add_test(t, test_unknown_key_is_a_warning_with_file_and_line);
	tcase_add_test(t, test_half_set_read_limits_warn_that_the_channel_is_not_readable);
	tcase_add_test(t, test_empty_value_is_an_error);
	tcase_add_test(t, test_nul_byte_is_an_error_with_its_line);
	tcase_add_test(t, test_long_lines_are_not_truncated);
	tcase_add_test(t, test_text_length_is_respected);
	tcase_add_test(t, test_null_path_names_the_manifest_generically);
	suite_add_tcase(s, t);

	t = tcase_create("numbers");
	tcase_add_test(t, test_parse_int_accepts_decimal_hex_octal_and_signs);
	tcase_add_test(t, test_parse_int_refuses_what_is_not_a_whole_number);
	tcase_add_test(t, test_parse_int_reports_overflow_as_erange);
	suite_add_tcase(s, t);

	t = tcase_create("keys");
	tcase_add_checked_fixture(t, NULL, teardown);
	tcase_add_test(t, test_each_mandatory_key_is_required);
	tcase_add_test(t, test_duplicate_singleton_keys_name_both_lines);
	tcase_add_test(t, test_channel_and_plugins_are_repeatable);
	tcase_add_test(t, test_version_is_compared_as_text);
	tcase_add_test(t, test_version_20140320_is_the_seven_field_format);
	tcase_add_test(t, test_version_after_the_channels_still_sets_the_field_count);
	tcase_add_test(t, test_memory_needs_size_and_etag);
	tcase_add_test(t, test_memory_size_range);
	tcase_add_test(t, test_memory_etag_is_zero_or_one);
	tcase_add_test(t, test_timeout_range);
	tcase_add_test(t, test_node_is_a_number_or_a_name);
	tcase_add_test(t, test_nameserver_must_be_udp_ipv4_port);
	tcase_add_test(t, test_nameserver_needs_node);
	tcase_add_test(t, test_tcp_node_id_needs_a_nameserver);
	tcase_add_test(t, test_job_is_a_unix_socket_path);
	tcase_add_test(t, test_etag_key_is_zero_or_one);
	tcase_add_test(t, test_plugins_relative_to_the_manifest_directory);
	tcase_add_test(t, test_broker_key_in_v2_needs_node);
	suite_add_tcase(s, t);

	t = tcase_create("channels");
	tcase_add_checked_fixture(t, NULL, teardown);
	tcase_set_timeout(t, 30);
	tcase_add_test(t, test_channel_field_count_depends_on_version);
	tcase_add_test(t, test_channel_fields_are_trimmed_and_stored);
	tcase_add_test(t, test_channel_alias_must_not_be_empty);
	tcase_add_test(t, test_channel_type_is_0_to_3);
	tcase_add_test(t, test_channel_etag_is_0_or_1);
	tcase_add_test(t, test_negative_limits_are_refused);
	tcase_add_test(t, test_all_zero_limits_are_refused);
	tcase_add_test(t, test_half_set_limits_in_both_directions_are_refused);
	tcase_add_test(t, test_direction_comes_from_the_limits);
	tcase_add_test(t, test_read_write_file_needs_a_random_type);
	tcase_add_test(t, test_duplicate_alias_names_the_first_line);
	tcase_add_test(t, test_standard_channels_are_mandatory);
	tcase_add_test(t, test_relative_path_uri_is_refused);
	tcase_add_test(t, test_v1_path_with_colon_is_refused);
	tcase_add_test(t, test_several_uris_separated_by_semicolons);
	tcase_add_test(t, test_empty_uri_in_a_list_is_refused);
	tcase_add_test(t, test_tcp_uris);
	tcase_add_test(t, test_tcp_channel_is_read_only_or_write_only);
	tcase_add_test(t, test_other_zerovm_protocols_cannot_carry_channels);
	tcase_add_test(t, test_netpipe_uri_direction_from_limits);
	tcase_add_test(t, test_netpipe_mode_matching_limits_is_accepted);
	tcase_add_test(t, test_netpipe_mode_contradicting_limits_names_both);
	tcase_add_test(t, test_netpipe_descriptor_errors_are_reported_with_the_uri);
	tcase_add_test(t, test_descriptor_options_with_equals_survive_the_key_split);
	tcase_add_test(t, test_netpipe_read_write_with_sequential_type_is_allowed);
	tcase_add_test(t, test_v2_uris);
	tcase_add_test(t, test_channel_count_limit);
	suite_add_tcase(s, t);

	t = tcase_create("files");
	tcase_add_checked_fixture(t, tmp_setup, tmp_teardown);
	tcase_add_test(t, test_missing_file_is_enoent_with_its_name);
	tcase_add_test(t, test_directory_is_refused);
	tcase_add_test(t, test_file_over_one_mib_is_refused);
	tcase_add_test(t, test_file_with_nul_byte_is_refused);
	tcase_add_test(t, test_file_and_text_give_the_same_result);
	tcase_add_test(t, test_mf_free_is_safe_twice_and_on_null);
	tcase_add_test(t, test_null_err_buffer_is_allowed);
	tcase_add_test(t, test_small_err_buffer_is_truncated_safely);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(manifest_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
