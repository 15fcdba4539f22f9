/*
 * value.c - the VM's heap (value.h): allocation counted against the run's
 * Memory, bytes/arrays/maps, and a mark-and-sweep collector that keeps its
 * gray objects on an explicit stack (nested aggregates never recurse in C).
 */
#include <stdlib.h>
#include <string.h>

#include "value.h"

#define GC_MIN (4u << 20) /* collect no more often than every 4 MiB */
#define KEY_DELETED 0xff

bool vm_heap_charge(struct vm_heap *h, ptrdiff_t n)
{
	if (n > 0 && h->limit && h->bytes + (size_t)n > h->limit) {
		h->oom = true;
		return false;
	}
	h->bytes = (size_t)((ptrdiff_t)h->bytes + n);
	return true;
}

void *vm_obj_new(struct vm_heap *h, uint8_t tag, size_t size)
{
	if (h->bytes + size >= h->next_gc || (h->limit && h->bytes + size > h->limit))
		vm_gc(h);
	if (!vm_heap_charge(h, (ptrdiff_t)size))
		return NULL;
	struct vm_obj *o = calloc(1, size);
	if (!o) {
		vm_heap_charge(h, -(ptrdiff_t)size);
		h->oom = true;
		return NULL;
	}
	o->tag = tag;
	o->next = h->all;
	h->all = o;
	return o;
}

/* Grow a buffer of elem-sized items to at least want, charging the heap. */
static bool grow(struct vm_heap *h, void **buf, uint32_t *cap, size_t want, size_t elem)
{
	if (want <= *cap)
		return true;
	if (want > UINT32_MAX / 2) {
		h->oom = true;
		return false;
	}
	size_t ncap = *cap ? *cap : 8;
	while (ncap < want)
		ncap *= 2;
	if (!vm_heap_charge(h, (ptrdiff_t)((ncap - *cap) * elem)))
		return false;
	void *nb = realloc(*buf, ncap * elem);
	if (!nb) {
		vm_heap_charge(h, -(ptrdiff_t)((ncap - *cap) * elem));
		h->oom = true;
		return false;
	}
	*buf = nb;
	*cap = (uint32_t)ncap;
	return true;
}

struct vm_bytes *vm_bytes_new(struct vm_heap *h, const void *data, size_t len, size_t cap)
{
	struct vm_bytes *b = vm_obj_new(h, VT_BYTES, sizeof *b);
	if (!b)
		return NULL;
	if (cap < len)
		cap = len;
	if (cap && !grow(h, (void **)&b->data, &b->cap, cap, 1))
		return NULL; /* b is garbage now; the collector takes it */
	if (len)
		memcpy(b->data, data, len);
	b->len = (uint32_t)len;
	return b;
}

bool vm_bytes_reserve(struct vm_heap *h, struct vm_bytes *b, size_t extra)
{
	return grow(h, (void **)&b->data, &b->cap, (size_t)b->len + extra, 1);
}

struct vm_array *vm_array_new(struct vm_heap *h, size_t cap)
{
	struct vm_array *a = vm_obj_new(h, VT_ARRAY, sizeof *a);
	if (a && cap && !grow(h, (void **)&a->items, &a->cap, cap, sizeof *a->items))
		return NULL;
	return a;
}

bool vm_array_push(struct vm_heap *h, struct vm_array *a, struct vm_value v)
{
	if (!grow(h, (void **)&a->items, &a->cap, (size_t)a->len + 1, sizeof *a->items))
		return false;
	a->items[a->len++] = v;
	return true;
}

struct vm_map *vm_map_new(struct vm_heap *h)
{
	return vm_obj_new(h, VT_MAP, sizeof(struct vm_map));
}

static uint64_t key_hash(struct vm_value k)
{
	uint64_t x;
	if (k.tag == VT_BYTES) {
		const struct vm_bytes *b = (const struct vm_bytes *)k.u.o;
		x = 1469598103934665603ull;
		for (uint32_t i = 0; i < b->len; i++)
			x = (x ^ b->data[i]) * 1099511628211ull;
	} else {
		x = k.tag == VT_INT ? (uint64_t)k.u.i : (uint64_t)k.u.b + 0x9e37;
		x ^= x >> 33;
		x *= 0xff51afd7ed558ccdull;
		x ^= x >> 33;
	}
	return x;
}

static bool key_eq(struct vm_value a, struct vm_value b)
{
	if (a.tag != b.tag)
		return false;
	if (a.tag == VT_INT)
		return a.u.i == b.u.i;
	if (a.tag == VT_BOOL)
		return a.u.b == b.u.b;
	const struct vm_bytes *x = (const struct vm_bytes *)a.u.o, *y = (const struct vm_bytes *)b.u.o;
	return x->len == y->len && (x->len == 0 || memcmp(x->data, y->data, x->len) == 0);
}

/* The slot of key, or of the first free slot on its probe path. */
static uint32_t find_slot(const struct vm_map *m, struct vm_value key, bool *found)
{
	uint32_t mask = m->cap - 1, i = (uint32_t)key_hash(key) & mask, tomb = UINT32_MAX;
	for (;;) {
		struct vm_value k = m->keys[i];
		if (k.tag == VT_NIL) {
			*found = false;
			return tomb != UINT32_MAX ? tomb : i;
		}
		if (k.tag == KEY_DELETED) {
			if (tomb == UINT32_MAX)
				tomb = i;
		} else if (key_eq(k, key)) {
			*found = true;
			return i;
		}
		i = (i + 1) & mask;
	}
}

struct vm_value vm_map_get(const struct vm_map *m, struct vm_value key)
{
	if (!m->cap || !vm_map_key_ok(key))
		return VM_NIL;
	bool found;
	uint32_t i = find_slot(m, key, &found);
	return found ? m->vals[i] : VM_NIL;
}

static bool rehash(struct vm_heap *h, struct vm_map *m, uint32_t ncap)
{
	size_t sz = (size_t)ncap * 2 * sizeof(struct vm_value);
	if (!vm_heap_charge(h, (ptrdiff_t)sz))
		return false;
	struct vm_value *nk = calloc(ncap, sizeof *nk), *nv = calloc(ncap, sizeof *nv);
	if (!nk || !nv) {
		free(nk);
		free(nv);
		vm_heap_charge(h, -(ptrdiff_t)sz);
		h->oom = true;
		return false;
	}
	struct vm_map old = *m;
	m->keys = nk;
	m->vals = nv;
	m->cap = ncap;
	m->used = m->len = 0;
	for (uint32_t i = 0; i < old.cap; i++) {
		if (old.keys[i].tag == VT_NIL || old.keys[i].tag == KEY_DELETED)
			continue;
		bool found;
		uint32_t s = find_slot(m, old.keys[i], &found);
		m->keys[s] = old.keys[i];
		m->vals[s] = old.vals[i];
		m->len++;
		m->used++;
	}
	free(old.keys);
	free(old.vals);
	vm_heap_charge(h, -(ptrdiff_t)((size_t)old.cap * 2 * sizeof(struct vm_value)));
	return true;
}

bool vm_map_set(struct vm_heap *h, struct vm_map *m, struct vm_value key, struct vm_value val)
{
	if (val.tag == VT_NIL && !m->cap)
		return true;
	if (m->cap == 0 || (m->used + 1) * 4 > m->cap * 3) {
		uint32_t ncap = m->cap ? (m->len * 2 >= m->cap ? m->cap * 2 : m->cap) : 8;
		if (!rehash(h, m, ncap))
			return false;
	}
	bool found;
	uint32_t i = find_slot(m, key, &found);
	if (val.tag == VT_NIL) {
		if (found) {
			m->keys[i].tag = KEY_DELETED;
			m->vals[i] = VM_NIL;
			m->len--;
		}
		return true;
	}
	if (!found) {
		if (m->keys[i].tag == VT_NIL)
			m->used++;
		m->keys[i] = key;
		m->len++;
	}
	m->vals[i] = val;
	return true;
}

/* ---- the collector ---- */

void vm_mark_obj(struct vm_heap *h, struct vm_obj *o)
{
	if (!o || o->mark)
		return;
	o->mark = 1;
	if (o->tag == VT_BYTES)
		return; /* nothing inside */
	if (h->ngray == h->graycap) {
		size_t ncap = h->graycap ? h->graycap * 2 : 256;
		struct vm_obj **g = realloc(h->gray, ncap * sizeof *g);
		if (!g) {
			/* Cannot remember it: mark its insides now (bounded by
			 * memory, not by depth in practice). */
			h->mark_object(h, o);
			return;
		}
		h->gray = g;
		h->graycap = ncap;
	}
	h->gray[h->ngray++] = o;
}

void vm_mark(struct vm_heap *h, struct vm_value v)
{
	if (v.tag >= VT_BYTES)
		vm_mark_obj(h, v.u.o);
}

static void blacken(struct vm_heap *h, struct vm_obj *o)
{
	switch (o->tag) {
	case VT_ARRAY: {
		struct vm_array *a = (struct vm_array *)o;
		for (uint32_t i = 0; i < a->len; i++)
			vm_mark(h, a->items[i]);
		break;
	}
	case VT_MAP: {
		struct vm_map *m = (struct vm_map *)o;
		for (uint32_t i = 0; i < m->cap; i++)
			if (m->keys[i].tag != VT_NIL && m->keys[i].tag != KEY_DELETED) {
				vm_mark(h, m->keys[i]);
				vm_mark(h, m->vals[i]);
			}
		break;
	}
	case VT_CLOSURE: {
		struct vm_closure *c = (struct vm_closure *)o;
		for (uint32_t i = 0; i < c->nup; i++)
			vm_mark(h, c->up[i]);
		break;
	}
	default:
		h->mark_object(h, o); /* fibers, channels */
		break;
	}
}

static void free_obj(struct vm_heap *h, struct vm_obj *o)
{
	switch (o->tag) {
	case VT_BYTES: {
		struct vm_bytes *b = (struct vm_bytes *)o;
		vm_heap_charge(h, -(ptrdiff_t)(sizeof *b + b->cap));
		free(b->data);
		break;
	}
	case VT_ARRAY: {
		struct vm_array *a = (struct vm_array *)o;
		vm_heap_charge(h, -(ptrdiff_t)(sizeof *a + a->cap * sizeof *a->items));
		free(a->items);
		break;
	}
	case VT_MAP: {
		struct vm_map *m = (struct vm_map *)o;
		vm_heap_charge(h, -(ptrdiff_t)(sizeof *m + (size_t)m->cap * 2 * sizeof *m->keys));
		free(m->keys);
		free(m->vals);
		break;
	}
	case VT_CLOSURE: {
		struct vm_closure *c = (struct vm_closure *)o;
		vm_heap_charge(h, -(ptrdiff_t)(sizeof *c + c->nup * sizeof c->up[0]));
		break;
	}
	default:
		h->free_object(h, o); /* uncharges what it charged */
		return;
	}
	free(o);
}

void vm_gc(struct vm_heap *h)
{
	if (h->mark_roots)
		h->mark_roots(h, h->owner);
	while (h->ngray)
		blacken(h, h->gray[--h->ngray]);
	struct vm_obj **p = &h->all;
	while (*p) {
		struct vm_obj *o = *p;
		if (o->mark) {
			o->mark = 0;
			p = &o->next;
		} else {
			*p = o->next;
			free_obj(h, o);
		}
	}
	h->next_gc = h->bytes * 2 > GC_MIN ? h->bytes * 2 : GC_MIN;
	h->oom = false;
}

void vm_heap_free(struct vm_heap *h)
{
	struct vm_obj *o = h->all;
	while (o) {
		struct vm_obj *n = o->next;
		free_obj(h, o);
		o = n;
	}
	h->all = NULL;
	free(h->gray);
	h->gray = NULL;
	h->ngray = h->graycap = 0;
}
