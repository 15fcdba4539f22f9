/*
 * msgframe.h - Rift framing for message transports (zmq, nng).
 *
 * The same wire format as frame.h (docs/semantics.md), one piece per
 * message: the first message is the preamble ("RFT1" + u32 flags), every
 * later one is exactly one DATA frame (u32 header + payload) or the END
 * frame (u32 header + 0 or 32 digest bytes). Concatenated, the messages
 * are exactly the byte stream a stream transport sends, so one reader of
 * the format could consume either. Several DATA frames may be packed into
 * one message by a writer that coalesces small writes (nm_pack); a reader
 * accepts one or more whole frames per message.
 *
 * These functions do no I/O: the transport sends and receives messages,
 * they build and check them.
 */
#ifndef RIFT_MSGFRAME_H
#define RIFT_MSGFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#include "frame.h" /* NF_MAGIC, NF_PREAMBLE, NF_HDR, NF_DIGEST, NF_MAX_FRAME */

/* One direction of one stream: digest state and where the reader is. */
struct nm_stream {
	int etag;                        /* 1: END carries / must carry the digest */
	bool preamble_done;              /* writer: sent; reader: checked */
	bool peer_digest;                /* reader: the writer announced one */
	int done;                        /* reader: 0, 1 = END seen, or -errno */
	crypto_generichash_state *hash;  /* 64-byte aligned, ours, when etag */
	char why[128];                   /* the reader's last failure, in words */
};

int nm_init(struct nm_stream *s, int etag);   /* 0 or -ENOMEM */
void nm_free(struct nm_stream *s);

/* Writer. */
/* The preamble message (NF_PREAMBLE bytes) into out. */
size_t nm_preamble(struct nm_stream *s, unsigned char out[NF_PREAMBLE]);
/* Append one DATA frame for payload[0..len) to out (len <= NF_MAX_FRAME;
 * out must have NF_HDR + len bytes free) and count it in the digest.
 * Returns the bytes appended. Call repeatedly to pack several frames. */
size_t nm_pack(struct nm_stream *s, unsigned char *out, const void *payload, size_t len);
/* The DATA header alone, for a transport that sends header and payload
 * as two parts of one message (zero copy); counts payload in the digest. */
void nm_data_header(struct nm_stream *s, unsigned char hdr[NF_HDR], const void *payload,
                    size_t len);
/* The END message into out (NF_HDR + NF_DIGEST bytes); returns its length. */
size_t nm_end(struct nm_stream *s, unsigned char out[NF_HDR + NF_DIGEST]);

/* Reader. Feed every received message, in order. The first must be the
 * preamble. For a message of frames, nm_next walks it: it returns 1 and
 * sets *payload / *plen for each DATA frame (count it with nm_consumed
 * once delivered), 0 when the message is used up, or at END (then
 * s->done is 1, or -EBADMSG on a digest mismatch), or -EPROTO on a
 * malformed message (s->why says what). */
struct nm_cursor {
	const unsigned char *p, *end;
};
/* nm_begin: 0, or the stream's sticky -errno (-EPROTO for a first message
 * that is not the preamble, or an empty message). A message that comes
 * after END is ignored (an empty cursor). Each message must hold whole
 * frames: a transport that receives a frame in several parts (zmq
 * multipart) joins them first. */
int nm_begin(struct nm_stream *s, struct nm_cursor *c, const void *msg, size_t len);
int nm_next(struct nm_stream *s, struct nm_cursor *c, const unsigned char **payload,
            size_t *plen);
/* Count delivered payload bytes in the digest (call in delivery order). */
void nm_consumed(struct nm_stream *s, const void *bytes, size_t len);

#endif
