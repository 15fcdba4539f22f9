/*
 * manifest.h - ZeroVM-style manifests (DESIGN.md section 6, docs/manifest.md).
 *
 * The parser checks everything that can be checked without plugins: keys,
 * numbers, channel fields, limits, aliases, directions. It opens nothing.
 * Every error is "FILE:LINE: what was expected"; warnings (unknown keys)
 * go through lg_log(LG_WARN, ...) in the same form.
 */
#ifndef RIFT_MANIFEST_H
#define RIFT_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#define MF_VERSION_1 20130611 /* ZeroVM 1.x: 8-field channels */
#define MF_VERSION_2 20140509 /* ZeroVM 2.x: 7-field channels */

struct mf_channel {
	char **uris;        /* one or more, from "uri;uri;..." */
	int nuris;
	char *alias;        /* e.g. "/dev/stdin", "/dev/in/sensor" */
	int type;           /* 0-3 */
	int etag;           /* 0 or 1 */
	int64_t gets, get_size, puts, put_size;
	uint32_t mode;      /* NP_READ / NP_WRITE / NP_RDWR, from the limits
	                       and the descriptor's mode suffix */
	int line;           /* where it was declared */
};

struct mf_manifest {
	char *path;
	long version;       /* MF_VERSION_1 or MF_VERSION_2 */
	char *program;      /* Program value, trimmed */
	int program_line;
	int64_t memory;     /* Memory size (bytes) */
	int memory_etag;
	int64_t timeout;    /* seconds */
	struct mf_channel *channels;
	int nchannels;
	char *node;         /* Node, NULL when absent */
	char *name_server;  /* NameServer, NULL when absent */
	char *job;          /* Job, NULL when absent */
	int etag;           /* Etag key, 0 when absent */
	char **plugin_dirs; /* Rift key Plugins (repeatable), in order */
	int nplugin_dirs;
};

/* Parse a manifest file / an in-memory text (path only names it in
 * messages). Return 0, or a negative errno with "FILE:LINE: ..." in err
 * (-ENOENT etc. for an unreadable file, -EINVAL for bad content). On
 * failure *m is left empty (mf_free is still safe). */
int mf_parse_file(const char *path, struct mf_manifest *m, char *err,
                  size_t errlen);
int mf_parse_text(const char *path, const char *text, size_t len,
                  struct mf_manifest *m, char *err, size_t errlen);
void mf_free(struct mf_manifest *m);

/* Parse an integer the way ZeroVM does: decimal, 0x hex, leading-0 octal,
 * optional sign; the whole (trimmed) string must be a number. 0 or
 * -EINVAL / -ERANGE. */
int mf_parse_int(const char *s, int64_t *out);

#endif
