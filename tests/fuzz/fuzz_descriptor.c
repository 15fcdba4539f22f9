/*
 * fuzz_descriptor.c - libFuzzer target for the descriptor grammar
 * (broker/descriptor.c). See README.md in this directory.
 *
 * A successful parse must give a valid scheme, a non-empty address free of
 * manifest separators, and must survive a round trip: printing the parts
 * back as Netpipe:<scheme>:<address>[:<mode>] parses to the same parts.
 */
#include "descriptor.h"
#include "netpipe.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

static void check(const char *text, int require_prefix)
{
	struct ds_desc d, d2;
	char err[256];

	if (ds_parse(text, require_prefix, &d, err, sizeof err) != 0) {
		if (d.address || d.mode || !err[0])
			abort();
		return;
	}
	size_t sl = strlen(d.scheme);
	if (sl == 0 || !d.address || !d.address[0] || (d.mode & ~NP_RDWR))
		abort();
	for (size_t i = 0; i < sl; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789_-", d.scheme[i]))
			abort();
	if (strpbrk(d.address, ",;\n\r"))
		abort();

	size_t n = sl + strlen(d.address) + 16;
	char *again = malloc(n);
	if (!again)
		abort();
	snprintf(again, n, "Netpipe:%s:%s%s%s", d.scheme, d.address, d.mode ? ":" : "",
	         d.mode ? ds_mode_name(d.mode) : "");
	if (ds_parse(again, 1, &d2, err, sizeof err) != 0 || strcmp(d.scheme, d2.scheme) ||
	    strcmp(d.address, d2.address) || d.mode != d2.mode)
		abort();
	ds_free(&d2);
	free(again);
	ds_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0'; /* ds_parse takes a C string: stop at the first NUL */
	check(text, 1);
	check(text, 0);
	free(text);
	return 0;
}
