/*
 * codec.h - bytecode modules to and from their msgpack form (module.h
 * describes the document), with msgpack-c.
 */
#ifndef RIFT_VM_CODEC_H
#define RIFT_VM_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "module.h"

#define VM_MAX_MODULE_BYTES (64u << 20) /* larger input is refused */

/* Encode m canonically. 0 with *out (malloc'd, *len bytes), or -errno. */
int vm_encode(const struct vm_module *m, uint8_t **out, size_t *len);

/* Decode len bytes into m (zeroed first). Checks the document's shape and
 * bounds (types, key order, counts, sizes: module.h), not the code:
 * vm_verify does that. 0, or -EINVAL (-ENOMEM) with a message in err
 * that says where ("funcs[2].code: ..."); m is then freed. */
int vm_decode(const uint8_t *buf, size_t len, struct vm_module *m, char *err, size_t errlen);

/* Read a whole file, or standard input for "-", into a malloc'd buffer
 * with a NUL after its *len bytes (so text can be used as a string). 0,
 * or -errno: -EFBIG when it has more than max bytes. rift-asm, the loader
 * below and rift-vmbench read their files through it. */
int vm_read_file(const char *path, size_t max, uint8_t **out, size_t *len);

/* Read, decode and verify a module file. 0, or -errno with "PATH: ..." in
 * err. */
int vm_load_file(const char *path, struct vm_module *m, char *err, size_t errlen);

/* BLAKE2b-256 of the canonical encoding (the module's address). 0 or
 * -errno. */
int vm_module_hash(const struct vm_module *m, uint8_t out[32]);

#endif
