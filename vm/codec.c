/*
 * codec.c - bytecode modules to and from msgpack (codec.h, module.h).
 *
 * Encoding walks the module in the key order of module.h with
 * msgpack_packer: ints in the smallest form msgpack-c picks, floats always
 * float64, bytes constants and code as bin, names as str.
 *
 * Decoding is for untrusted input (it is fuzzed: tests/fuzz/fuzz_module.c)
 * and goes in three steps:
 *
 *  1. scan(): a small iterative walk over the raw msgpack that finds where
 *     the document ends (truncated input, trailing bytes), refuses nesting
 *     deeper than the format has, and refuses any array or map whose count
 *     could not fit in the bytes that are left. msgpack-c allocates
 *     count * sizeof(msgpack_object) up front, so without this a 6-byte
 *     array header could ask for 100 GB; after it, what msgpack-c
 *     allocates is bounded by a small multiple of the input's length.
 *  2. msgpack_unpack_next() into a zone, then a strict walk of the object
 *     tree: exact keys in order, types, counts and bounds, each error
 *     naming where it is ("funcs[2].code: ...").
 *  3. The module is encoded again and must give the input byte for byte:
 *     a module has one encoding (no int in a wider form than needed, no
 *     float32, no str16 for a short name...), so its hash (its address) is
 *     the hash of the bytes that were received.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <msgpack.h>
#include <sodium.h>

#include "codec.h"
#include "isa.h"
#include "verify.h"

/* ---- encoding ---- */

static int pack_str(msgpack_packer *pk, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (msgpack_pack_str(pk, n) < 0)
		return -1;
	return msgpack_pack_str_body(pk, s, n);
}

static int pack_func(msgpack_packer *pk, const struct vm_func *f)
{
	if (msgpack_pack_map(pk, 6) < 0 || pack_str(pk, "name") < 0 || pack_str(pk, f->name) < 0 ||
	    pack_str(pk, "params") < 0 || msgpack_pack_uint32(pk, f->nparams) < 0 ||
	    pack_str(pk, "regs") < 0 || msgpack_pack_uint32(pk, f->nregs) < 0 ||
	    pack_str(pk, "upvals") < 0 || msgpack_pack_array(pk, f->nupvals) < 0)
		return -1;
	for (uint32_t i = 0; i < f->nupvals; i++)
		if (msgpack_pack_uint32(pk, f->upval_src[i]) < 0)
			return -1;
	if (pack_str(pk, "code") < 0 || msgpack_pack_bin(pk, (size_t)f->ncode * 8) < 0)
		return -1;
	for (uint32_t i = 0; i < f->ncode; i++) {
		char w[8];
		for (int b = 0; b < 8; b++)
			w[b] = (char)(uint8_t)(f->code[i] >> (8 * b));
		if (msgpack_pack_bin_body(pk, w, 8) < 0)
			return -1;
	}
	uint32_t nlines = f->lines ? f->ncode : 0;
	if (pack_str(pk, "lines") < 0 || msgpack_pack_array(pk, nlines) < 0)
		return -1;
	for (uint32_t i = 0; i < nlines; i++)
		if (msgpack_pack_uint32(pk, f->lines[i]) < 0)
			return -1;
	return 0;
}

static int pack_module(msgpack_packer *pk, const struct vm_module *m)
{
	if (msgpack_pack_map(pk, 6) < 0 || pack_str(pk, "rift") < 0 ||
	    msgpack_pack_uint32(pk, VM_FORMAT) < 0 || pack_str(pk, "name") < 0 ||
	    pack_str(pk, m->name) < 0 || pack_str(pk, "source") < 0 ||
	    pack_str(pk, m->source) < 0 || pack_str(pk, "entry") < 0 ||
	    msgpack_pack_uint32(pk, m->entry) < 0 || pack_str(pk, "consts") < 0 ||
	    msgpack_pack_array(pk, m->nconsts) < 0)
		return -1;
	for (uint32_t i = 0; i < m->nconsts; i++) {
		const struct vm_const *k = &m->consts[i];
		int r;
		switch (k->kind) {
		case VM_K_INT:
			r = msgpack_pack_int64(pk, k->u.i);
			break;
		case VM_K_FLOAT:
			r = msgpack_pack_double(pk, k->u.f);
			break;
		default:
			r = msgpack_pack_bin(pk, k->len);
			if (r == 0)
				r = msgpack_pack_bin_body(pk, k->u.bytes, k->len);
			break;
		}
		if (r < 0)
			return -1;
	}
	if (pack_str(pk, "funcs") < 0 || msgpack_pack_array(pk, m->nfuncs) < 0)
		return -1;
	for (uint32_t i = 0; i < m->nfuncs; i++)
		if (pack_func(pk, &m->funcs[i]) < 0)
			return -1;
	return 0;
}

/* What encoding needs from the in-memory module to not crash: the
 * pointers that the counts promise. The rest is the decoder's and the
 * verifier's business. */
static bool encodable(const struct vm_module *m)
{
	if ((m->nconsts && !m->consts) || (m->nfuncs && !m->funcs))
		return false;
	for (uint32_t i = 0; i < m->nconsts; i++) {
		const struct vm_const *k = &m->consts[i];
		if (k->kind > VM_K_BYTES || (k->kind == VM_K_BYTES && k->len && !k->u.bytes))
			return false;
	}
	for (uint32_t i = 0; i < m->nfuncs; i++) {
		const struct vm_func *f = &m->funcs[i];
		if ((f->nupvals && !f->upval_src) || (f->ncode && !f->code) ||
		    f->ncode > UINT32_MAX / 8)
			return false;
	}
	return true;
}

int vm_encode(const struct vm_module *m, uint8_t **out, size_t *len)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	*out = NULL;
	*len = 0;
	if (!encodable(m))
		return -EINVAL;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if (pack_module(&pk, m) < 0) {
		msgpack_sbuffer_destroy(&sb);
		return -ENOMEM;
	}
	*len = sb.size;
	*out = (uint8_t *)msgpack_sbuffer_release(&sb);
	return 0;
}

int vm_module_hash(const struct vm_module *m, uint8_t out[32])
{
	uint8_t *buf;
	size_t len;
	int r = vm_encode(m, &buf, &len);
	if (r < 0)
		return r;
	r = crypto_generichash(out, 32, buf, len, NULL, 0) == 0 ? 0 : -EIO;
	free(buf);
	return r;
}

/* ---- decoding: errors ---- */

struct dec {
	char *err;
	size_t errlen;
};

static int fail(struct dec *d, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct dec *d, int rc, const char *fmt, ...)
{
	if (d->err && d->errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(d->err, d->errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* ---- decoding, step 1: the raw scan ---- */

/* The format nests containers 4 deep: the module map, "funcs", a
 * function's map, its "upvals" or "lines". */
#define SCAN_DEPTH 4

static uint64_t be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* Sets *end to the length of the one msgpack value at buf[0..]. */
static int scan(struct dec *d, const uint8_t *buf, size_t len, size_t *end)
{
	uint64_t left[SCAN_DEPTH + 1]; /* items still due at each open level */
	int depth = 0;
	size_t pos = 0;

	left[0] = 1;
	for (;;) {
		if (pos >= len)
			return fail(d, -EINVAL, "truncated: the document ends early, at byte %zu",
			            len);
		size_t at = pos;
		uint8_t t = buf[pos++];
		uint64_t skip = 0, count = 0;
		int lenbytes = 0, extra = 0;
		bool container = false;

		if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
			/* fixint, nil, bool */
		} else if (t <= 0x8f) {
			container = true;
			count = 2u * (t & 0x0f);
		} else if (t <= 0x9f) {
			container = true;
			count = t & 0x0f;
		} else if (t <= 0xbf) {
			skip = t & 0x1f;
		} else {
			switch (t) {
			case 0xc4: case 0xd9: lenbytes = 1; break; /* bin8, str8 */
			case 0xc5: case 0xda: lenbytes = 2; break;
			case 0xc6: case 0xdb: lenbytes = 4; break;
			case 0xc7: lenbytes = 1; extra = 1; break; /* ext: + type */
			case 0xc8: lenbytes = 2; extra = 1; break;
			case 0xc9: lenbytes = 4; extra = 1; break;
			case 0xca: skip = 4; break;
			case 0xcb: skip = 8; break;
			case 0xcc: case 0xd0: skip = 1; break;
			case 0xcd: case 0xd1: skip = 2; break;
			case 0xce: case 0xd2: skip = 4; break;
			case 0xcf: case 0xd3: skip = 8; break;
			case 0xd4: skip = 2; break; /* fixext: type + data */
			case 0xd5: skip = 3; break;
			case 0xd6: skip = 5; break;
			case 0xd7: skip = 9; break;
			case 0xd8: skip = 17; break;
			case 0xdc: container = true; lenbytes = 2; break;
			case 0xdd: container = true; lenbytes = 4; break;
			case 0xde: container = true; lenbytes = 2; break;
			case 0xdf: container = true; lenbytes = 4; break;
			default: /* 0xc1 */
				return fail(d, -EINVAL, "byte %zu: 0x%02x is not a msgpack type", at, t);
			}
		}
		if (lenbytes) {
			if (len - pos < (size_t)lenbytes)
				return fail(d, -EINVAL,
				            "truncated: the document ends early, at byte %zu", len);
			uint64_t n = be(buf + pos, lenbytes);
			pos += (size_t)lenbytes;
			if (container)
				count = t >= 0xde ? 2 * n : n;
			else
				skip = n + (uint64_t)extra;
		}
		if (container) {
			/* Every item takes at least one byte. */
			if (count > len - pos)
				return fail(d, -EINVAL,
				            "byte %zu: truncated or corrupt: a container of %llu "
				            "items cannot fit in the %zu bytes left",
				            at, (unsigned long long)(t >= 0xde || t <= 0x8f ? count / 2 : count),
				            len - pos);
		} else if (skip > len - pos) {
			return fail(d, -EINVAL, "truncated: the document ends early, at byte %zu", len);
		} else {
			pos += (size_t)skip;
		}
		left[depth]--;
		if (container && count) {
			if (depth == SCAN_DEPTH)
				return fail(d, -EINVAL,
				            "byte %zu: nested deeper than a module can be", at);
			left[++depth] = count;
			continue;
		}
		while (left[depth] == 0) {
			if (depth == 0) {
				*end = pos;
				return 0;
			}
			depth--;
		}
	}
}

/* ---- decoding, step 2: the object tree ---- */

static const char *type_name(const msgpack_object *o)
{
	switch (o->type) {
	case MSGPACK_OBJECT_NIL: return "nil";
	case MSGPACK_OBJECT_BOOLEAN: return "a bool";
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
	case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "an int";
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64: return "a float";
	case MSGPACK_OBJECT_STR: return "a str";
	case MSGPACK_OBJECT_ARRAY: return "an array";
	case MSGPACK_OBJECT_MAP: return "a map";
	case MSGPACK_OBJECT_BIN: return "a bin";
	case MSGPACK_OBJECT_EXT: return "an ext";
	}
	return "an unknown type";
}

/* A map with exactly these keys, in this order. */
static int want_map(struct dec *d, const msgpack_object *o, const char *path,
                    const char *const *keys, uint32_t nkeys)
{
	if (o->type != MSGPACK_OBJECT_MAP)
		return fail(d, -EINVAL, "%s: expected a map, got %s", path, type_name(o));
	for (uint32_t i = 0; i < nkeys && i < o->via.map.size; i++) {
		const msgpack_object *k = &o->via.map.ptr[i].key;
		size_t n = strlen(keys[i]);
		if (k->type != MSGPACK_OBJECT_STR)
			return fail(d, -EINVAL, "%s: key %u is %s, expected \"%s\"", path, i,
			            type_name(k), keys[i]);
		if (k->via.str.size != n || memcmp(k->via.str.ptr, keys[i], n) != 0) {
			int shown = k->via.str.size > 32 ? 32 : (int)k->via.str.size;
			return fail(d, -EINVAL, "%s: key %u is \"%.*s\", expected \"%s\"", path, i,
			            shown, k->via.str.ptr, keys[i]);
		}
	}
	if (o->via.map.size != nkeys)
		return fail(d, -EINVAL, "%s: the map has %u keys, expected %u", path,
		            o->via.map.size, nkeys);
	return 0;
}

static int want_uint(struct dec *d, const msgpack_object *o, const char *path, uint64_t min,
                     uint64_t max, uint32_t *out)
{
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
		return fail(d, -EINVAL, "%s: %lld is outside %llu..%llu", path,
		            (long long)o->via.i64, (unsigned long long)min,
		            (unsigned long long)max);
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return fail(d, -EINVAL, "%s: expected an int, got %s", path, type_name(o));
	if (o->via.u64 < min || o->via.u64 > max)
		return fail(d, -EINVAL, "%s: %llu is outside %llu..%llu", path,
		            (unsigned long long)o->via.u64, (unsigned long long)min,
		            (unsigned long long)max);
	*out = (uint32_t)o->via.u64;
	return 0;
}

static int want_array(struct dec *d, const msgpack_object *o, const char *path, uint32_t min,
                      uint32_t max)
{
	if (o->type != MSGPACK_OBJECT_ARRAY)
		return fail(d, -EINVAL, "%s: expected an array, got %s", path, type_name(o));
	if (o->via.array.size < min || o->via.array.size > max)
		return fail(d, -EINVAL, "%s: %u items, expected %u..%u", path, o->via.array.size,
		            min, max);
	return 0;
}

static bool utf8_ok(const uint8_t *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t c = s[i];
		size_t k;
		uint32_t cp, min;
		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) {
			k = 1; cp = c & 0x1f; min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			k = 2; cp = c & 0x0f; min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			k = 3; cp = c & 0x07; min = 0x10000;
		} else {
			return false;
		}
		if (n - i - 1 < k)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += k + 1;
	}
	return true;
}

/* A str without NUL, valid UTF-8, non-empty unless allow_empty: *out is a
 * malloc'd C string. */
static int want_str(struct dec *d, const msgpack_object *o, const char *path, bool allow_empty,
                    char **out)
{
	if (o->type != MSGPACK_OBJECT_STR)
		return fail(d, -EINVAL, "%s: expected a str, got %s", path, type_name(o));
	size_t n = o->via.str.size;
	const char *p = o->via.str.ptr;
	if (n == 0 && !allow_empty)
		return fail(d, -EINVAL, "%s: is empty", path);
	if (n && memchr(p, '\0', n))
		return fail(d, -EINVAL, "%s: contains a NUL byte", path);
	if (!utf8_ok((const uint8_t *)p, n))
		return fail(d, -EINVAL, "%s: is not valid UTF-8", path);
	char *s = malloc(n + 1);
	if (!s)
		return fail(d, -ENOMEM, "%s: out of memory", path);
	if (n)
		memcpy(s, p, n);
	s[n] = '\0';
	*out = s;
	return 0;
}

static const char *const module_keys[] = {"rift", "name", "source", "entry", "consts", "funcs"};
static const char *const func_keys[] = {"name", "params", "regs", "upvals", "code", "lines"};

static int dec_const(struct dec *d, const msgpack_object *o, uint32_t i, struct vm_const *k)
{
	switch (o->type) {
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (o->via.u64 > (uint64_t)INT64_MAX)
			return fail(d, -EINVAL, "consts[%u]: %llu does not fit in an int64", i,
			            (unsigned long long)o->via.u64);
		k->kind = VM_K_INT;
		k->u.i = (int64_t)o->via.u64;
		return 0;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		k->kind = VM_K_INT;
		k->u.i = o->via.i64;
		return 0;
	case MSGPACK_OBJECT_FLOAT64:
	case MSGPACK_OBJECT_FLOAT32: /* refused by the canonical check */
		k->kind = VM_K_FLOAT;
		k->u.f = o->via.f64;
		return 0;
	case MSGPACK_OBJECT_BIN:
		k->u.bytes = malloc((size_t)o->via.bin.size + 1);
		if (!k->u.bytes)
			return fail(d, -ENOMEM, "consts[%u]: out of memory", i);
		k->kind = VM_K_BYTES; /* only now: vm_module_free frees it */
		k->len = o->via.bin.size;
		if (k->len)
			memcpy(k->u.bytes, o->via.bin.ptr, k->len);
		k->u.bytes[k->len] = '\0';
		return 0;
	default:
		return fail(d, -EINVAL, "consts[%u]: expected an int, a float or a bin, got %s", i,
		            type_name(o));
	}
}

static int dec_func(struct dec *d, const msgpack_object *o, uint32_t fi, struct vm_func *f)
{
	char path[64];
	int r;

	snprintf(path, sizeof path, "funcs[%u]", fi);
	if ((r = want_map(d, o, path, func_keys, 6)) < 0)
		return r;
	const msgpack_object_kv *kv = o->via.map.ptr;

	snprintf(path, sizeof path, "funcs[%u].name", fi);
	if ((r = want_str(d, &kv[0].val, path, false, &f->name)) < 0)
		return r;
	snprintf(path, sizeof path, "funcs[%u].params", fi);
	if ((r = want_uint(d, &kv[1].val, path, 0, VM_MAX_REGS, &f->nparams)) < 0)
		return r;
	snprintf(path, sizeof path, "funcs[%u].regs", fi);
	if ((r = want_uint(d, &kv[2].val, path, 1, VM_MAX_REGS, &f->nregs)) < 0)
		return r;
	if (f->nregs < f->nparams)
		return fail(d, -EINVAL, "funcs[%u].regs: %u is less than params (%u)", fi, f->nregs,
		            f->nparams);

	const msgpack_object *up = &kv[3].val;
	snprintf(path, sizeof path, "funcs[%u].upvals", fi);
	if ((r = want_array(d, up, path, 0, VM_MAX_REGS)) < 0)
		return r;
	if (up->via.array.size) {
		f->upval_src = malloc(up->via.array.size * sizeof *f->upval_src);
		if (!f->upval_src)
			return fail(d, -ENOMEM, "%s: out of memory", path);
		for (uint32_t i = 0; i < up->via.array.size; i++) {
			snprintf(path, sizeof path, "funcs[%u].upvals[%u]", fi, i);
			if ((r = want_uint(d, &up->via.array.ptr[i], path, 0, VM_MAX_REGS - 1,
			                   &f->upval_src[i])) < 0)
				return r;
			f->nupvals = i + 1;
		}
	}

	const msgpack_object *code = &kv[4].val;
	if (code->type != MSGPACK_OBJECT_BIN)
		return fail(d, -EINVAL, "funcs[%u].code: expected a bin, got %s", fi,
		            type_name(code));
	uint32_t blen = code->via.bin.size;
	if (blen % 8)
		return fail(d, -EINVAL, "funcs[%u].code: length %u is not a multiple of 8", fi, blen);
	if (blen == 0 || blen / 8 > VM_MAX_CODE)
		return fail(d, -EINVAL, "funcs[%u].code: %u instructions, expected 1..%u", fi,
		            blen / 8, VM_MAX_CODE);
	f->code = malloc(blen);
	if (!f->code)
		return fail(d, -ENOMEM, "funcs[%u].code: out of memory", fi);
	f->ncode = blen / 8;
	const uint8_t *p = (const uint8_t *)code->via.bin.ptr;
	for (uint32_t i = 0; i < f->ncode; i++) {
		uint64_t w = 0;
		for (int b = 7; b >= 0; b--)
			w = w << 8 | p[8 * i + (uint32_t)b];
		f->code[i] = w;
	}

	const msgpack_object *lines = &kv[5].val;
	snprintf(path, sizeof path, "funcs[%u].lines", fi);
	if ((r = want_array(d, lines, path, 0, UINT32_MAX)) < 0)
		return r;
	if (lines->via.array.size && lines->via.array.size != f->ncode)
		return fail(d, -EINVAL, "funcs[%u].lines: %u entries, expected 0 or %u (one per "
		            "instruction)", fi, lines->via.array.size, f->ncode);
	if (lines->via.array.size) {
		f->lines = malloc(f->ncode * sizeof *f->lines);
		if (!f->lines)
			return fail(d, -ENOMEM, "%s: out of memory", path);
		for (uint32_t i = 0; i < f->ncode; i++) {
			snprintf(path, sizeof path, "funcs[%u].lines[%u]", fi, i);
			if ((r = want_uint(d, &lines->via.array.ptr[i], path, 0, UINT32_MAX,
			                   &f->lines[i])) < 0)
				return r;
		}
	}
	return 0;
}

static int dec_module(struct dec *d, const msgpack_object *o, struct vm_module *m)
{
	uint32_t v;
	int r;

	if ((r = want_map(d, o, "module", module_keys, 6)) < 0)
		return r;
	const msgpack_object_kv *kv = o->via.map.ptr;
	if ((r = want_uint(d, &kv[0].val, "rift", VM_FORMAT, VM_FORMAT, &v)) < 0)
		return r;
	if ((r = want_str(d, &kv[1].val, "name", false, &m->name)) < 0)
		return r;
	if ((r = want_str(d, &kv[2].val, "source", true, &m->source)) < 0)
		return r;
	/* entry is checked against funcs below, once their count is known. */
	const msgpack_object *entry = &kv[3].val;
	if ((r = want_uint(d, entry, "entry", 0, VM_MAX_FUNCS - 1, &m->entry)) < 0)
		return r;

	const msgpack_object *consts = &kv[4].val;
	if ((r = want_array(d, consts, "consts", 0, VM_MAX_CONSTS)) < 0)
		return r;
	if (consts->via.array.size) {
		m->consts = calloc(consts->via.array.size, sizeof *m->consts);
		if (!m->consts)
			return fail(d, -ENOMEM, "consts: out of memory");
		m->nconsts = consts->via.array.size;
		for (uint32_t i = 0; i < m->nconsts; i++)
			if ((r = dec_const(d, &consts->via.array.ptr[i], i, &m->consts[i])) < 0)
				return r;
	}

	const msgpack_object *funcs = &kv[5].val;
	if ((r = want_array(d, funcs, "funcs", 1, VM_MAX_FUNCS)) < 0)
		return r;
	if (m->entry >= funcs->via.array.size)
		return fail(d, -EINVAL, "entry: %u is outside 0..%u (the functions)", m->entry,
		            funcs->via.array.size - 1);
	m->funcs = calloc(funcs->via.array.size, sizeof *m->funcs);
	if (!m->funcs)
		return fail(d, -ENOMEM, "funcs: out of memory");
	m->nfuncs = funcs->via.array.size;
	for (uint32_t i = 0; i < m->nfuncs; i++)
		if ((r = dec_func(d, &funcs->via.array.ptr[i], i, &m->funcs[i])) < 0)
			return r;
	return 0;
}

int vm_decode(const uint8_t *buf, size_t len, struct vm_module *m, char *err, size_t errlen)
{
	struct dec d = {err, errlen};
	size_t end = 0, off = 0;
	int r;

	memset(m, 0, sizeof *m);
	if (err && errlen)
		err[0] = '\0';
	if (len > VM_MAX_MODULE_BYTES)
		return fail(&d, -EINVAL, "%zu bytes is more than a module may have (%u)", len,
		            VM_MAX_MODULE_BYTES);
	if (len == 0)
		return fail(&d, -EINVAL, "empty input");
	if ((r = scan(&d, buf, len, &end)) < 0)
		return r;
	if (end < len)
		return fail(&d, -EINVAL, "%zu trailing bytes after the document (at byte %zu)",
		            len - end, end);

	msgpack_unpacked u;
	msgpack_unpacked_init(&u);
	msgpack_unpack_return ur = msgpack_unpack_next(&u, (const char *)buf, len, &off);
	if (ur == MSGPACK_UNPACK_NOMEM_ERROR) {
		r = fail(&d, -ENOMEM, "out of memory");
	} else if (ur != MSGPACK_UNPACK_SUCCESS || off != len) {
		/* scan() accepted it: msgpack-c and scan() disagree. */
		r = fail(&d, -EINVAL, "not a msgpack document (msgpack-c says %d)", (int)ur);
	} else {
		r = dec_module(&d, &u.data, m);
	}
	msgpack_unpacked_destroy(&u);

	if (r == 0) {
		/* Step 3: one encoding per module. */
		uint8_t *canon;
		size_t clen;
		r = vm_encode(m, &canon, &clen);
		if (r < 0) {
			r = fail(&d, r, "out of memory");
		} else {
			size_t i = 0;
			while (i < clen && i < len && canon[i] == buf[i])
				i++;
			if (i < clen || i < len)
				r = fail(&d, -EINVAL,
				         "byte %zu: not the canonical encoding (ints in their "
				         "smallest form, floats as float64, shortest headers)", i);
			free(canon);
		}
	}
	if (r < 0)
		vm_module_free(m);
	return r;
}

/* ---- files ---- */

int vm_read_file(const char *path, size_t max, uint8_t **out, size_t *len)
{
	bool std = strcmp(path, "-") == 0;
	int fd = std ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	size_t cap = 4096, n = 0;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
		if ((uintmax_t)st.st_size > max) {
			if (!std)
				close(fd);
			return -EFBIG;
		}
		cap = (size_t)st.st_size + 1; /* one more: it may have grown */
	}
	uint8_t *buf = malloc(cap + 1);
	int rc = buf ? 0 : -ENOMEM;
	while (buf) {
		if (n == cap) {
			if (cap > max) {
				rc = -EFBIG;
				break;
			}
			size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
			uint8_t *nb = realloc(buf, ncap + 1);
			if (!nb) {
				rc = -ENOMEM;
				break;
			}
			buf = nb;
			cap = ncap;
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			break;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (!std)
		close(fd);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	buf[n] = 0;
	*out = buf;
	*len = n;
	return 0;
}

int vm_load_file(const char *path, struct vm_module *m, char *err, size_t errlen)
{
	struct dec d = {err, errlen};
	char msg[512];
	int r;

	memset(m, 0, sizeof *m);
	if (err && errlen)
		err[0] = '\0';
	/* A module is a regular file: a FIFO or a device could block --check. */
	struct stat st;
	if (stat(path, &st) < 0) {
		r = -errno;
		return fail(&d, r, "%s: %s", path, strerror(-r));
	}
	if (!S_ISREG(st.st_mode))
		return fail(&d, -EINVAL, "%s: not a regular file", path);
	uint8_t *buf;
	size_t len;
	if ((r = vm_read_file(path, VM_MAX_MODULE_BYTES, &buf, &len)) < 0) {
		if (r == -EFBIG)
			return fail(&d, r, "%s: its size is more than a module may have (%u bytes)",
			            path, VM_MAX_MODULE_BYTES);
		return fail(&d, r, "%s: %s", path, strerror(-r));
	}

	r = vm_decode(buf, len, m, msg, sizeof msg);
	free(buf);
	if (r == 0) {
		r = vm_verify(m, msg, sizeof msg);
		if (r < 0)
			vm_module_free(m);
	}
	if (r < 0)
		return fail(&d, r, "%s: %s", path, msg);
	return 0;
}
