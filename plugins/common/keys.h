/*
 * keys.h - CURVE keys in Z85 text files (docs/zmq.md, "Keys").
 *
 * A key file holds one key: 40 Z85 characters (32 bytes), on the first
 * line that is not empty and does not start with '#'. rift-keygen writes
 * NAME.pub (the public key) and NAME.key (the secret key, mode 0600).
 */
#ifndef RIFT_KEYS_H
#define RIFT_KEYS_H

#include <stddef.h>

#define RK_Z85_LEN 40

/* Read the key in path into out (NUL-terminated). 0, or -errno with a
 * message in err (-EINVAL for a file that holds no valid key). */
int rk_read(const char *path, char out[RK_Z85_LEN + 1], char *err, size_t errlen);
/* Write key (40 Z85 characters) to path with a comment line; mode is the
 * file's permission bits. Refuses to overwrite (-EEXIST). 0 or -errno. */
int rk_write(const char *path, const char *comment, const char *key, unsigned mode);

#endif
