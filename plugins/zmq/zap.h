/*
 * zap.h - CURVE client authentication for the zmq transport: a ZAP handler
 * (ZeroMQ RFC 27) and the curve_clients key lists it checks (docs/zmq.md,
 * "Keys (CURVE)").
 *
 * A curve_clients file lists the public keys of the clients a CURVE server
 * lets in: 40 Z85 characters per line (rift-keygen's NAME.pub is such a
 * file), empty lines and '#' comments allowed, at least one key.
 *
 * libzmq asks the handler bound at inproc://zeromq.zap.01 of a context about
 * every CURVE handshake of every server socket of that context, with the
 * socket's ZMQ_ZAP_DOMAIN. Each server pipe with curve_clients registers its
 * keys under a domain of its own; requests for any other domain (empty, as a
 * server without curve_clients sends) are allowed, as without a handler.
 *
 * Threads: zap_check is pure; zap_register, zap_forget and zap_stop are
 * called on the broker's loop thread; the handler runs on a thread of its
 * own and never calls into the broker.
 */
#ifndef RIFT_ZAP_H
#define RIFT_ZAP_H

#include <stdbool.h>
#include <stddef.h>

#define ZAP_DOMAIN_LEN 32   /* a registered domain, with its NUL */
#define ZAP_Z85_LEN    40   /* a key in Z85, without its NUL */

/* Check the curve_clients file at path without registering it (validate).
 * 0, or -errno (the file's) / -EINVAL with a message naming the file, and
 * for a bad key its line, in err. */
int zap_check(const char *path, char *err, size_t errlen);

/* Read the curve_clients file at path and register its keys under a new
 * domain, written to domain; starts the handler in ctx (a libzmq context)
 * first if it does not run yet. The caller sets ZMQ_ZAP_DOMAIN to domain on
 * its CURVE server socket before it binds. 0, or -errno with err set (as
 * zap_check, or the handler could not start). */
int zap_register(void *ctx, const char *path, char domain[ZAP_DOMAIN_LEN], char *err,
                 size_t errlen);

/* Forget a registered domain (the pipe closes): clients of it are refused
 * from now on. A no-op for "" and unknown domains. */
void zap_forget(const char *domain);

/* The public key (Z85, NUL-terminated) of the last client refused under
 * domain: true if there was one. For the server's log line. */
bool zap_refused(const char *domain, char key[ZAP_Z85_LEN + 1]);

/* Stop the handler and close its sockets, and forget every domain: call it
 * before zmq_ctx_term of the context it runs in. Idempotent. */
void zap_stop(void);

#endif
