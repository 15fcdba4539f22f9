/*
 * frame.h - the framing every Rift stream transport shares.
 *
 * A byte stream (unix socket, FIFO, TCP) cannot tell a writer that closed
 * cleanly from one that was killed: both look like end-of-file. Rift frames
 * the stream so that it can (DESIGN.md section 4, rule 5):
 *
 *   preamble  "RFT1" + u32 flags (bit 0: the writer sends a digest)
 *   DATA      u32 header (type 0 << 28 | n), then n payload bytes, n >= 1
 *   END       u32 header (type 1 << 28 | d), then d = 0 or 32 bytes: the
 *             BLAKE2b-256 digest of every payload byte of the stream
 *
 * Headers are little-endian; a stream that ends without END is reset, not
 * EOF. docs/semantics.md describes the format for transport authors.
 *
 * Both sides are non-blocking state machines over a caller-supplied I/O
 * function, so the same code serves sockets and FIFOs.
 */
#ifndef RIFT_FRAME_H
#define RIFT_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <sodium.h>

#define NF_MAGIC       "RFT1"
#define NF_PREAMBLE    8
#define NF_HDR         4
#define NF_DIGEST      32
#define NF_MAX_FRAME   (256u * 1024u)  /* payload bytes per DATA frame */
#define NF_TYPE_DATA   0u
#define NF_TYPE_END    1u

/* Raw I/O: a count, 0 on end-of-file, or -errno (-EAGAIN when not now). */
typedef ssize_t (*nf_io_fn)(void *ctx, const struct iovec *iov, int n);

struct nf_writer {
	nf_io_fn io;
	void *ctx;
	int etag;
	bool preamble_sent;
	bool end_queued;
	int err;                      /* sticky -errno once the link failed */
	crypto_generichash_state *hash; /* 64-byte aligned, ours, when etag */
	unsigned char *pend;          /* bytes accepted but not yet sent */
	size_t pend_off, pend_len, pend_cap;
};

struct nf_reader {
	nf_io_fn io;
	void *ctx;
	int etag;
	bool preamble_ok;
	bool peer_digest;             /* the writer announced a digest */
	int done;                     /* 0, 1 = EOF, or -errno (sticky) */
	size_t frame_left;            /* payload bytes left in this frame */
	crypto_generichash_state *hash; /* 64-byte aligned, ours, when etag */
	unsigned char *buf;           /* raw bytes read ahead */
	size_t start, end, cap;
	char why[128];                /* a message for the last failure */
};

/* The hash state lives in its own 64-byte aligned allocation, so these
 * structs need no more than ordinary alignment. 0 or -ENOMEM. */
int nf_writer_init(struct nf_writer *w, nf_io_fn io, void *ctx, int etag);
void nf_writer_free(struct nf_writer *w);
/* Accept up to NF_MAX_FRAME bytes as one frame. Returns the count
 * accepted, -EAGAIN when nothing could be sent now, -EPIPE when the reader
 * is gone, or another -errno. Once a frame has been partly sent, its rest
 * is kept and sent before anything else: frames are never torn. */
ssize_t nf_write(struct nf_writer *w, const void *buf, size_t len);
/* Send the preamble now (at connect), so that a writer that dies before
 * its first write still reads as a reset, not as a probe. 0, -EAGAIN
 * (kept, sent by the next flush) or -errno. */
int nf_start(struct nf_writer *w);
/* Send what is kept: 0 when nothing is left, -EAGAIN, or -errno. After a
 * hard error every call returns it again. */
int nf_flush(struct nf_writer *w);
/* Queue END (with the digest when etag) and flush: 0 once it is sent. */
int nf_end(struct nf_writer *w);
bool nf_pending(const struct nf_writer *w);
/* What a transport answers to NP_CTL_PENDING: the bytes kept, or the
 * -errno that keeps them from going. */
int nf_held(const struct nf_writer *w);

int nf_reader_init(struct nf_reader *r, nf_io_fn io, void *ctx, int etag);
void nf_reader_free(struct nf_reader *r);
/* Read payload: a count, 0 at a clean END (again and again), -EAGAIN,
 * -ECONNRESET when the stream ended without END (after every byte that
 * came), -EBADMSG on a digest mismatch, -EPROTO when the peer does not
 * speak this framing. */
ssize_t nf_read(struct nf_reader *r, void *out, size_t len);
/* True when not one byte has come from the peer yet. */
bool nf_untouched(const struct nf_reader *r);
/* True when nf_read would return something other than -EAGAIN without
 * any new bytes from the peer. */
bool nf_readable(const struct nf_reader *r);

/* Helpers for transports: writev that never raises SIGPIPE (sockets use
 * MSG_NOSIGNAL; other fds block SIGPIPE and consume it) and readv; both
 * return a count, 0 (readv: end-of-file) or -errno. */
ssize_t nf_fd_writev(int fd, bool is_socket, const struct iovec *iov, int n);
ssize_t nf_fd_readv(int fd, const struct iovec *iov, int n);

#endif
