/*
 * libnetpipe.h - netpipes from a plain C program, no manifest needed.
 *
 *     netpipe_t *w = netpipe_open("Netpipe:unix:/tmp/a.sock:w");
 *     netpipe_write(w, "hello", 5);
 *     netpipe_close(w);
 *
 * The calls block like read(2)/write(2) on a named pipe: a write waits for
 * a reader, a read waits for data, end-of-stream reads 0. They run the
 * same plugins as the broker, found in $RIFT_PLUGIN_PATH and then the
 * install directory, on a private event loop. Link with
 * $(pkg-config --libs libnetpipe).
 *
 * Errors: netpipe_open returns NULL and sets errno; the other calls return
 * a negative errno value (and set errno too). netpipe_error() has a human
 * message for the last failure. One thread at a time: the library is not
 * thread-safe.
 */
#ifndef LIBNETPIPE_H
#define LIBNETPIPE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct netpipe netpipe_t;

/* Open "[Netpipe:]<scheme>:<address>:<r|w|rw>" (the mode is required). */
netpipe_t *netpipe_open(const char *descriptor);
/* Up to len bytes; 0 at end-of-stream; blocks until something comes.
 * Where the plugin can (zmq), the read blocks inside the transport's
 * library, as a raw zmq_recv does; the program's other pipes are then
 * served at least every 50 ms (docs/abi.md, NP_CTL_WAIT). */
int64_t netpipe_read(netpipe_t *np, void *buf, int32_t len);
/* All len bytes (or fewer before a failure); blocks while the link is
 * full or no reader is there yet. */
int64_t netpipe_write(netpipe_t *np, const void *buf, int32_t len);
/* As lseek(2); -ESPIPE on a stream. A reader may seek where the
 * transport can (a regular file); a writer writes sequentially (a file
 * is truncated at open, as by a shell's '>'); an :rw pipe may seek both
 * ways. */
int64_t netpipe_seek(netpipe_t *np, int64_t offset, int whence);
/* Finish cleanly (a writer flushes and sends end-of-stream) and free. */
int netpipe_close(netpipe_t *np);

/* Bound every later blocking call on np to ms milliseconds (-ETIMEDOUT
 * after); -1 (the default) waits for ever. */
void netpipe_set_timeout(netpipe_t *np, int64_t ms);
/* The message for this thread's last failure ("" when none). */
const char *netpipe_error(void);
/* In a program run by the broker's exec runtime: the fd of the channel
 * with this alias, or -1 (from $RIFT_CHANNELS). */
int netpipe_channel_fd(const char *alias);

#ifdef __cplusplus
}
#endif

#endif
