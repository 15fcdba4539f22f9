/*
 * descriptor.h - the netpipe descriptor grammar (DESIGN.md section 5).
 *
 *     Netpipe:<scheme>:<address>[:<mode>]      mode is r, w or rw
 *
 * The broker owns this grammar: the scheme runs up to the first ':', a
 * trailing ":r", ":w" or ":rw" is the mode, and the rest is the address,
 * handed to the plugin unparsed (options follow '?' as k=v&k=v). A
 * descriptor may not contain ',', ';' or a newline.
 */
#ifndef RIFT_DESCRIPTOR_H
#define RIFT_DESCRIPTOR_H

#include <stddef.h>
#include <stdint.h>

struct ds_desc {
	char scheme[64];  /* [a-z0-9_-]+, lower case */
	char *address;    /* malloc'd; non-empty */
	uint32_t mode;    /* NP_READ, NP_WRITE, NP_RDWR, or 0 when absent */
};

/* Parse text. The "Netpipe:" prefix is required when require_prefix is
 * set (manifests), optional otherwise (netpipe_open). Returns 0, or
 * -EINVAL with a message in err saying what was expected. */
int ds_parse(const char *text, int require_prefix, struct ds_desc *out,
             char *err, size_t errlen);
void ds_free(struct ds_desc *d);

/* "r", "w", "rw" for a mode; "?" otherwise. */
const char *ds_mode_name(uint32_t mode);

#endif
