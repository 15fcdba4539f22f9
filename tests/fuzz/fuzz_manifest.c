/*
 * fuzz_manifest.c - libFuzzer target for the manifest parser
 * (broker/manifest.c). See README.md in this directory.
 *
 * Besides "no crash, no leak, no undefined behaviour", it checks what a
 * successful parse promises: every channel has a direction, at least one
 * URI and an alias, and the standard channels are there.
 */
#include "manifest.h"
#include "log.h"
#include "netpipe.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

static int has_alias(const struct mf_manifest *m, const char *alias)
{
	for (int i = 0; i < m->nchannels; i++)
		if (strcmp(m->channels[i].alias, alias) == 0)
			return 1;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mf_manifest m;
	char err[512];

	lg_set_level(LG_ERROR); /* unknown-key warnings are expected here */
	int r = mf_parse_text("fuzz.manifest", (const char *)data, size, &m, err,
	                      sizeof err);
	if (r == 0) {
		if (!m.program || !m.path || m.timeout < 1 || m.memory < 1 ||
		    (m.version != MF_VERSION_1 && m.version != MF_VERSION_2))
			abort();
		if (!has_alias(&m, "/dev/stdin") || !has_alias(&m, "/dev/stdout") ||
		    !has_alias(&m, "/dev/stderr"))
			abort();
		for (int i = 0; i < m.nchannels; i++) {
			const struct mf_channel *c = &m.channels[i];
			if (c->nuris < 1 || !c->alias || !c->alias[0] || c->mode == 0 ||
			    (c->mode & ~NP_RDWR) || c->type < 0 || c->type > 3)
				abort();
			if (((c->mode & NP_READ) != 0) != (c->gets > 0 && c->get_size > 0))
				abort();
			if (((c->mode & NP_WRITE) != 0) != (c->puts > 0 && c->put_size > 0))
				abort();
			for (int j = 0; j < c->nuris; j++)
				if (!c->uris[j] || !c->uris[j][0])
					abort();
		}
	} else if (m.nchannels || m.channels || m.program || m.path || !err[0]) {
		abort(); /* a failure leaves *m empty and says why */
	}
	mf_free(&m);

	/* The number parser on the same bytes, as a C string. */
	char *s = malloc(size + 1);
	if (s) {
		int64_t v;
		memcpy(s, data, size);
		s[size] = '\0';
		(void)mf_parse_int(s, &v);
		free(s);
	}
	return 0;
}
