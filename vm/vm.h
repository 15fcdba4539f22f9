/*
 * vm.h - running a verified module: fibers on the caller's event loop.
 *
 * The VM never blocks and never calls the event loop itself. Its owner
 * (plugins/vm, or a test) gives it channel I/O through struct vm_io, calls
 * vm_run() with an instruction budget, and when vm_run() says every fiber
 * waits for I/O, calls vm_io_ready() as channels become ready. One thread.
 */
#ifndef RIFT_VM_VM_H
#define RIFT_VM_VM_H

#include <stddef.h>
#include <stdint.h>

#include "module.h"

/* Channel I/O, as the owner provides it. A channel is the owner's pointer.
 * read/write/seek never block: -EAGAIN means "vm_io_ready() will be
 * called for this channel when it may progress". read returns 0 at end of
 * stream. Other negative values are -errno and trap the fiber. */
struct vm_io {
	void *ctx;
	/* The channel named by alias (len bytes, not NUL-terminated): 0 and
	 * *chan, or -ENOENT. */
	int (*open)(void *ctx, const char *alias, size_t len, void **chan);
	int64_t (*read)(void *ctx, void *chan, void *buf, size_t len);
	int64_t (*write)(void *ctx, void *chan, const void *buf, size_t len);
	int64_t (*seek)(void *ctx, void *chan, int64_t off, int whence);
	int (*close)(void *ctx, void *chan);
	/* A message for the run's log (the trap report). Optional. */
	void (*log)(void *ctx, const char *msg);
};

struct vm_limits {
	size_t memory;          /* bytes the heap may hold; 0: no limit */
	uint32_t max_depth;     /* call frames per fiber; 0: 100000 */
};

enum vm_status {
	VM_RUN_DONE = 0,            /* the entry function returned: vm_exit_status */
	VM_RUN_MORE = 1,            /* the budget ran out: call vm_run again */
	VM_RUN_WAIT = 2,            /* every live fiber waits for I/O */
	VM_RUN_TRAP = 3,           /* a trap ended the run: vm_error */
};

struct vm;

/* A VM for module m (which must outlive it and be verified). NULL when
 * out of memory. */
struct vm *vm_new(const struct vm_module *m, const struct vm_io *io,
                  const struct vm_limits *lim);

/* Run ready fibers for about budget instructions. */
enum vm_status vm_run(struct vm *v, uint64_t budget);

/* Channel chan may progress: the fibers waiting on it become ready. */
void vm_io_ready(struct vm *v, void *chan);

/* After VM_RUN_TRAP: "trap in function 'f' at pc 12 (line 30): message". */
const char *vm_error(const struct vm *v);

/* After VM_RUN_DONE: the entry function's first result if an int (0-255),
 * else 0. After VM_RUN_TRAP: 1. */
int vm_exit_status(const struct vm *v);

/* Memory in use (the heap's count), and fibers alive, for bench/tests. */
size_t vm_memory(const struct vm *v);
uint32_t vm_fibers(const struct vm *v);

void vm_free(struct vm *v);

#endif
