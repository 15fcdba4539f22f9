/*
 * value.h - the VM's values and heap: 16-byte tagged values, heap objects
 * (bytes, arrays, maps, closures, fibers, channels), allocation against
 * the run's Memory limit, and a mark-and-sweep collector.
 *
 * Internal to vm/: the interpreter (interp.c) is the only user.
 */
#ifndef RIFT_VM_VALUE_H
#define RIFT_VM_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum vm_tag {
	VT_NIL = 0, VT_BOOL, VT_INT, VT_FLOAT,
	/* heap objects from here on */
	VT_BYTES, VT_ARRAY, VT_MAP, VT_CLOSURE, VT_FIBER, VT_CHAN,
};

struct vm_obj;

struct vm_value {
	uint8_t tag;
	union {
		bool b;
		int64_t i;
		double f;
		struct vm_obj *o;
	} u;
};

struct vm_obj {
	struct vm_obj *next;    /* every object, for the sweep */
	uint8_t tag;            /* enum vm_tag */
	uint8_t mark;
	uint8_t frozen;         /* bytes: a constant, read-only */
};

struct vm_bytes {
	struct vm_obj h;
	uint32_t len, cap;
	uint8_t *data;
};

struct vm_array {
	struct vm_obj h;
	uint32_t len, cap;
	struct vm_value *items;
};

/* Open addressing; keys are ints, bools or bytes (by content). */
struct vm_map {
	struct vm_obj h;
	uint32_t len, cap;      /* cap: a power of two, or 0 */
	uint32_t used;          /* live + deleted slots */
	struct vm_value *keys;  /* VT_NIL: empty; tag 0xff: deleted */
	struct vm_value *vals;
};

struct vm_closure {
	struct vm_obj h;
	uint32_t func;
	uint32_t nup;
	struct vm_value up[];
};

struct vm_heap {
	struct vm_obj *all;
	size_t bytes;           /* live, as counted at allocation */
	size_t limit;           /* 0: none */
	size_t next_gc;
	/* The collector asks the owner to mark its roots. */
	void (*mark_roots)(struct vm_heap *h, void *owner);
	void *owner;
	/* Objects being marked (no C recursion over nested aggregates). */
	struct vm_obj **gray;
	size_t ngray, graycap;
	/* Fibers and channels are the interpreter's: it marks and frees them. */
	void (*mark_object)(struct vm_heap *h, struct vm_obj *o);
	void (*free_object)(struct vm_heap *h, struct vm_obj *o);
	bool oom;               /* an allocation went past limit */
};

#define VM_NIL   ((struct vm_value){.tag = VT_NIL})
#define VM_INT(x) ((struct vm_value){.tag = VT_INT, .u.i = (x)})
#define VM_FLT(x) ((struct vm_value){.tag = VT_FLOAT, .u.f = (x)})
#define VM_BOOL(x) ((struct vm_value){.tag = VT_BOOL, .u.b = (x)})
#define VM_OBJ(t, p) ((struct vm_value){.tag = (t), .u.o = (struct vm_obj *)(p)})

static inline bool vm_truthy(struct vm_value v)
{
	return !(v.tag == VT_NIL || (v.tag == VT_BOOL && !v.u.b));
}

/* Account for n more (or, negative, fewer) bytes; false past the limit
 * (h->oom is set; the caller traps). */
bool vm_heap_charge(struct vm_heap *h, ptrdiff_t n);

/* A new object of size bytes (zeroed, linked, tagged), or NULL when out
 * of memory. May collect first. */
void *vm_obj_new(struct vm_heap *h, uint8_t tag, size_t size);

struct vm_bytes *vm_bytes_new(struct vm_heap *h, const void *data, size_t len, size_t cap);
/* Make room for extra more bytes. false when out of memory. */
bool vm_bytes_reserve(struct vm_heap *h, struct vm_bytes *b, size_t extra);
struct vm_array *vm_array_new(struct vm_heap *h, size_t cap);
bool vm_array_push(struct vm_heap *h, struct vm_array *a, struct vm_value v);
struct vm_map *vm_map_new(struct vm_heap *h);
/* The value for key, or nil. */
struct vm_value vm_map_get(const struct vm_map *m, struct vm_value key);
/* Set (nil deletes). false when out of memory. */
bool vm_map_set(struct vm_heap *h, struct vm_map *m, struct vm_value key, struct vm_value val);
/* A key must be an int, a bool or bytes. */
static inline bool vm_map_key_ok(struct vm_value k)
{
	return k.tag == VT_INT || k.tag == VT_BOOL || k.tag == VT_BYTES;
}

/* Mark a value (push it for the collector). */
void vm_mark(struct vm_heap *h, struct vm_value v);
void vm_mark_obj(struct vm_heap *h, struct vm_obj *o);
/* Collect now. */
void vm_gc(struct vm_heap *h);
/* Free every object. */
void vm_heap_free(struct vm_heap *h);

#endif
