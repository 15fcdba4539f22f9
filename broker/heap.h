/*
 * heap.h - the broker's malloc settings (docs/architecture.md, "Memory").
 *
 * glibc returns the top of its heap to the kernel as soon as 128 KiB of it
 * are free. A transport that keeps a few 64 KiB messages in flight frees
 * them in bursts, so the heap shrinks and the next messages fault their
 * pages back in: nng's 64 KiB writes ran at 0.85-1.10x raw nng's, at
 * 150 000 page faults per GiB, and at 1.3-1.5x with the settings below.
 *
 * hp_tune() keeps up to HP_TRIM_THRESHOLD bytes free at the top of each
 * heap and serves blocks under HP_MMAP_THRESHOLD from the heap. A setting
 * the user made (GLIBC_TUNABLES or the MALLOC_*_ variables) is left
 * alone. It is the process's choice: the broker calls it, rift-netbench
 * calls it for both sides, libnetpipe never does.
 */
#ifndef RIFT_HEAP_H
#define RIFT_HEAP_H

#define HP_TRIM_THRESHOLD (4 * 1024 * 1024)
#define HP_MMAP_THRESHOLD (1024 * 1024)

/* What hp_tune did. */
enum {
	HP_TRIM_SET = 1,      /* the trim threshold is HP_TRIM_THRESHOLD */
	HP_MMAP_SET = 2,      /* the mmap threshold is HP_MMAP_THRESHOLD */
	HP_USER_TRIM = 4,     /* left alone: the user set the trim threshold */
	HP_USER_MMAP = 8,     /* left alone: the user set the mmap threshold */
	HP_UNSUPPORTED = 16,  /* not glibc: nothing to set */
};

/* Apply the settings; returns the HP_* bits of what was done. */
int hp_tune(void);

#endif
