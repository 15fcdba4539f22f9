/*
 * descriptor.c - the netpipe descriptor grammar (DESIGN.md section 5,
 * docs/manifest.md "Descriptors").
 *
 *     Netpipe:<scheme>:<address>[:<mode>]      mode is r, w or rw
 *
 * The scheme runs up to the first ':' after the prefix and is [a-z0-9_-]+;
 * a trailing ":r", ":w" or ":rw" is the mode; whatever is between is the
 * address, which goes to the plugin unparsed. Nothing here knows about any
 * particular plugin.
 */
#include "descriptor.h"

#include "netpipe.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DS_PREFIX "Netpipe:"
#define DS_PREFIX_LEN (sizeof DS_PREFIX - 1)
#define DS_GRAMMAR "Netpipe:<scheme>:<address>[:r|:w|:rw]"

static int ds_fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int ds_fail(char *err, size_t errlen, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* Name a forbidden byte for a message: "','", "newline", "control byte 0x07". */
static const char *ds_byte_name(unsigned char c, char *buf, size_t len)
{
	switch (c) {
	case ',': return "','";
	case ';': return "';'";
	case '\n': return "a newline";
	case '\r': return "a carriage return";
	case '\t': return "a tab";
	default:
		snprintf(buf, len, "control byte 0x%02x", c);
		return buf;
	}
}

static int ds_scheme_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
	       c == '-';
}

int ds_parse(const char *text, int require_prefix, struct ds_desc *out,
             char *err, size_t errlen)
{
	const char *p, *colon, *end;
	size_t slen, alen;
	char bbuf[32];

	if (err && errlen)
		err[0] = '\0';
	if (!out)
		return ds_fail(err, errlen, "no descriptor to fill, expected a struct ds_desc");
	memset(out, 0, sizeof *out);
	if (!text || !*text)
		return ds_fail(err, errlen, "empty descriptor, expected %s", DS_GRAMMAR);

	/* The manifest separators and control bytes can never be part of a
	 * descriptor: reject them before anything else, with their offset. */
	for (p = text; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == ',' || c == ';' || c < 0x20 || c == 0x7f)
			return ds_fail(err, errlen,
			               "descriptor contains %s at offset %zu, expected no ',' ';' "
			               "newline or control characters (they separate manifest fields)",
			               ds_byte_name(c, bbuf, sizeof bbuf), (size_t)(p - text));
	}
	end = p;
	if (text[0] == ' ' || end[-1] == ' ')
		return ds_fail(err, errlen,
		               "descriptor starts or ends with a space, expected %s without "
		               "surrounding white space", DS_GRAMMAR);

	p = text;
	if (strncmp(p, DS_PREFIX, DS_PREFIX_LEN) == 0) {
		p += DS_PREFIX_LEN;
	} else if (strncasecmp(p, DS_PREFIX, DS_PREFIX_LEN) == 0) {
		return ds_fail(err, errlen,
		               "prefix '%.*s' is not spelled 'Netpipe:', expected exactly "
		               "'Netpipe:' (the prefix is case-sensitive)",
		               (int)DS_PREFIX_LEN, text);
	} else if (require_prefix) {
		return ds_fail(err, errlen, "missing 'Netpipe:' prefix, expected %s",
		               DS_GRAMMAR);
	}

	if (*p == '\0')
		return ds_fail(err, errlen, "nothing after 'Netpipe:', expected %s",
		               DS_GRAMMAR);
	colon = strchr(p, ':');
	if (!colon)
		return ds_fail(err, errlen,
		               "no ':' after the scheme '%.63s', expected %s", p, DS_GRAMMAR);
	slen = (size_t)(colon - p);
	if (slen == 0)
		return ds_fail(err, errlen, "empty scheme, expected %s with a scheme "
		               "of [a-z0-9_-]", DS_GRAMMAR);
	if (slen >= sizeof out->scheme)
		return ds_fail(err, errlen,
		               "scheme '%.20s...' is %zu characters long, expected at most %zu",
		               p, slen, sizeof out->scheme - 1);
	for (size_t i = 0; i < slen; i++) {
		unsigned char c = (unsigned char)p[i];
		if (ds_scheme_char(c))
			continue;
		if (c >= 'A' && c <= 'Z')
			return ds_fail(err, errlen,
			               "scheme '%.*s' has upper-case letters, expected lower case "
			               "[a-z0-9_-] (plugin names are lower case)", (int)slen, p);
		return ds_fail(err, errlen,
		               "scheme '%.*s' has the character '%c', expected only [a-z0-9_-]",
		               (int)slen, p, c);
	}

	/* Address, then an optional trailing mode. */
	const char *addr = colon + 1;
	alen = (size_t)(end - addr);
	uint32_t mode = 0;
	if (alen >= 3 && strcmp(end - 3, ":rw") == 0) {
		mode = NP_RDWR;
		alen -= 3;
	} else if (alen >= 2 && strcmp(end - 2, ":r") == 0) {
		mode = NP_READ;
		alen -= 2;
	} else if (alen >= 2 && strcmp(end - 2, ":w") == 0) {
		mode = NP_WRITE;
		alen -= 2;
	}
	if (alen == 0)
		return ds_fail(err, errlen,
		               "empty address for scheme '%.*s', expected %s with a non-empty "
		               "address", (int)slen, p, DS_GRAMMAR);

	out->address = malloc(alen + 1);
	if (!out->address) {
		if (err && errlen)
			snprintf(err, errlen, "out of memory parsing a descriptor");
		return -ENOMEM;
	}
	memcpy(out->address, addr, alen);
	out->address[alen] = '\0';
	memcpy(out->scheme, p, slen);
	out->scheme[slen] = '\0';
	out->mode = mode;
	return 0;
}

void ds_free(struct ds_desc *d)
{
	if (!d)
		return;
	free(d->address);
	d->address = NULL;
	d->scheme[0] = '\0';
	d->mode = 0;
}

const char *ds_mode_name(uint32_t mode)
{
	switch (mode) {
	case NP_READ: return "r";
	case NP_WRITE: return "w";
	case NP_RDWR: return "rw";
	default: return "?";
	}
}
