/*
 * msgframe.c - Rift framing for message transports (msgframe.h).
 *
 * The wire format is frame.h's (docs/semantics.md); here each message
 * carries whole pieces of that stream: the preamble first, then one or more
 * whole DATA frames per message, then END. Nothing here does I/O.
 *
 * The reader is lenient where being lenient cannot lose a byte: a first
 * message that holds the preamble and then frames is accepted, and bytes
 * after END are ignored (as the stream reader ignores them). It is strict
 * where a mistake could: a frame cut at a message boundary, a DATA frame
 * of 0 or more than NF_MAX_FRAME bytes, an END with a digest that is not
 * 0 or 32 bytes, an empty message, are all -EPROTO (sticky).
 */
#include "msgframe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put_u32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

static uint32_t get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

int nm_init(struct nm_stream *s, int etag)
{
	memset(s, 0, sizeof *s);
	s->etag = etag ? 1 : 0;
	if (s->etag) {
		s->hash = aligned_alloc(64, (sizeof *s->hash + 63) & ~(size_t)63);
		if (!s->hash)
			return -ENOMEM;
		crypto_generichash_init(s->hash, NULL, 0, NF_DIGEST);
	}
	return 0;
}

void nm_free(struct nm_stream *s)
{
	free(s->hash);
	s->hash = NULL;
}

/* ---- writer ---- */

size_t nm_preamble(struct nm_stream *s, unsigned char out[NF_PREAMBLE])
{
	memcpy(out, NF_MAGIC, 4);
	put_u32(out + 4, s->etag ? 1u : 0u);
	s->preamble_done = true;
	return NF_PREAMBLE;
}

void nm_data_header(struct nm_stream *s, unsigned char hdr[NF_HDR], const void *payload,
                    size_t len)
{
	put_u32(hdr, NF_TYPE_DATA << 28 | (uint32_t)len);
	if (s->etag && len)
		crypto_generichash_update(s->hash, payload, len);
}

size_t nm_pack(struct nm_stream *s, unsigned char *out, const void *payload, size_t len)
{
	nm_data_header(s, out, payload, len);
	if (len)
		memcpy(out + NF_HDR, payload, len);
	return NF_HDR + len;
}

size_t nm_end(struct nm_stream *s, unsigned char out[NF_HDR + NF_DIGEST])
{
	size_t dl = s->etag ? NF_DIGEST : 0;
	put_u32(out, NF_TYPE_END << 28 | (uint32_t)dl);
	if (dl)
		crypto_generichash_final(s->hash, out + NF_HDR, NF_DIGEST);
	return NF_HDR + dl;
}

/* ---- reader ---- */

static int fail(struct nm_stream *s, int err, const char *why)
{
	s->done = err;
	snprintf(s->why, sizeof s->why, "%s", why);
	return err;
}

int nm_begin(struct nm_stream *s, struct nm_cursor *c, const void *msg, size_t len)
{
	const unsigned char *p = msg;
	c->p = c->end = p;
	if (s->done < 0)
		return s->done;
	if (s->done)
		return 0; /* after END: nothing more is read */
	if (len == 0 || !p)
		return fail(s, -EPROTO, "an empty message from the peer");
	if (!s->preamble_done) {
		if (len < NF_PREAMBLE || memcmp(p, NF_MAGIC, 4) != 0)
			return fail(s, -EPROTO, "the peer does not speak the Rift netpipe framing");
		s->peer_digest = get_u32(p + 4) & 1u;
		s->preamble_done = true;
		p += NF_PREAMBLE;
		len -= NF_PREAMBLE;
	}
	c->p = p;
	c->end = p + len;
	return 0;
}

int nm_next(struct nm_stream *s, struct nm_cursor *c, const unsigned char **payload,
            size_t *plen)
{
	*payload = NULL;
	*plen = 0;
	if (s->done < 0)
		return s->done == -EPROTO ? -EPROTO : 0;
	if (s->done || !c->p || c->p >= c->end)
		return 0;
	size_t have = (size_t)(c->end - c->p);
	if (have < NF_HDR) {
		c->p = c->end;
		return fail(s, -EPROTO, "a frame header cut at a message boundary");
	}
	uint32_t h = get_u32(c->p);
	uint32_t type = h >> 28, n = h & 0x0fffffffu;
	if (type == NF_TYPE_DATA) {
		if (n == 0 || n > NF_MAX_FRAME || have - NF_HDR < n) {
			c->p = c->end;
			return fail(s, -EPROTO, n == 0 || n > NF_MAX_FRAME
			                            ? "malformed frame from the peer"
			                            : "a frame cut at a message boundary");
		}
		*payload = c->p + NF_HDR;
		*plen = n;
		c->p += NF_HDR + n;
		return 1;
	}
	if (type != NF_TYPE_END || (n != 0 && n != NF_DIGEST) || have - NF_HDR < n) {
		c->p = c->end;
		return fail(s, -EPROTO, "malformed frame from the peer");
	}
	const unsigned char *digest = c->p + NF_HDR;
	c->p = c->end; /* whatever follows END is ignored */
	if (s->etag) {
		unsigned char mine[NF_DIGEST];
		crypto_generichash_final(s->hash, mine, sizeof mine);
		if (n != NF_DIGEST) {
			fail(s, -EBADMSG, "etag is set but the writer sent no digest");
			return 0;
		}
		if (sodium_memcmp(mine, digest, NF_DIGEST) != 0) {
			fail(s, -EBADMSG, "stream digest mismatch (etag)");
			return 0;
		}
	}
	s->done = 1;
	return 0;
}

void nm_consumed(struct nm_stream *s, const void *bytes, size_t len)
{
	if (s->etag && len && s->done == 0)
		crypto_generichash_update(s->hash, bytes, len);
}
