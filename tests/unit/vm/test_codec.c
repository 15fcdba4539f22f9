/*
 * test_codec.c - bytecode modules to and from msgpack (vm/codec.c): the
 * canonical encoding, round trips, the module hash, and every class of
 * input the strict decoder refuses, with a message that says where.
 *
 * Documents are built two ways: vm_encode() of a module made in C, and a
 * packer of this file (pack_doc) that writes the same document with one
 * deliberate fault (enum fault), so each rejection is tested on an
 * otherwise valid document. pack_doc without a fault must give exactly
 * vm_encode's bytes: that cross-checks the canonical form.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <msgpack.h>
#include <sodium.h>

#include "codec.h"
#include "isa.h"
#include "module.h"

/* ---- building modules ---- */

static char err[512];

static char *dupstr(const char *s)
{
	char *d = strdup(s);
	ck_assert_ptr_nonnull(d);
	return d;
}

static void add_const(struct vm_module *m, struct vm_const k)
{
	m->consts = realloc(m->consts, (m->nconsts + 1) * sizeof *m->consts);
	ck_assert_ptr_nonnull(m->consts);
	m->consts[m->nconsts++] = k;
}

static void add_bytes(struct vm_module *m, const void *p, uint32_t len)
{
	struct vm_const k = {.kind = VM_K_BYTES, .len = len};
	k.u.bytes = malloc(len + 1);
	ck_assert_ptr_nonnull(k.u.bytes);
	if (len)
		memcpy(k.u.bytes, p, len);
	k.u.bytes[len] = 0;
	add_const(m, k);
}

static struct vm_func *add_func(struct vm_module *m, const char *name, uint32_t params,
                                uint32_t regs, const uint32_t *upv, uint32_t nupv,
                                const uint64_t *code, uint32_t ncode, bool lines)
{
	m->funcs = realloc(m->funcs, (m->nfuncs + 1) * sizeof *m->funcs);
	ck_assert_ptr_nonnull(m->funcs);
	struct vm_func *f = &m->funcs[m->nfuncs++];
	memset(f, 0, sizeof *f);
	f->name = dupstr(name);
	f->nparams = params;
	f->nregs = regs;
	if (nupv) {
		f->upval_src = malloc(nupv * sizeof *upv);
		ck_assert_ptr_nonnull(f->upval_src);
		memcpy(f->upval_src, upv, nupv * sizeof *upv);
		f->nupvals = nupv;
	}
	f->code = malloc(ncode * sizeof *code);
	ck_assert_ptr_nonnull(f->code);
	memcpy(f->code, code, ncode * sizeof *code);
	f->ncode = ncode;
	if (lines) {
		f->lines = malloc(ncode * sizeof *f->lines);
		ck_assert_ptr_nonnull(f->lines);
		for (uint32_t i = 0; i < ncode; i++)
			f->lines[i] = i == 0 ? 0 : 100000 * i + 7; /* several int widths */
	}
	return f;
}

#define RET0 vm_word(VM_RET, 0, 0, 0, 0, 0)

/* A module that uses every part of the format: each constant kind at the
 * edges of its msgpack forms, several functions, upvals, lines or none. */
static void build_rich(struct vm_module *m)
{
	memset(m, 0, sizeof *m);
	m->name = dupstr("rich \xc3\xa9t\xc3\xa9"); /* UTF-8 */
	m->source = dupstr("");
	m->entry = 1;
	static const int64_t ints[] = {0, 1, 127, 128, 255, 256, 65535, 65536, -1, -32, -33,
	                               -128, -129, -32768, -32769, 4294967295LL,
	                               4294967296LL, INT64_MAX, INT64_MIN};
	for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
		add_const(m, (struct vm_const){.kind = VM_K_INT, .u.i = ints[i]});
	static const double fl[] = {0.0, -0.0, 1.5, 1e300, -2.25};
	for (size_t i = 0; i < sizeof fl / sizeof fl[0]; i++)
		add_const(m, (struct vm_const){.kind = VM_K_FLOAT, .u.f = fl[i]});
	add_const(m, (struct vm_const){.kind = VM_K_FLOAT, .u.f = NAN});
	add_bytes(m, "", 0);
	add_bytes(m, "print", 5);
	add_bytes(m, "a\0b", 3);
	uint8_t big[300];
	for (int i = 0; i < 300; i++)
		big[i] = (uint8_t)i;
	add_bytes(m, big, 300);

	const uint64_t c1[] = {vm_word(VM_LOAD, 0, 0, 0, 0, 1), vm_word(VM_RET, 0, 1, 0, 0, 0)};
	const uint64_t c2[] = {vm_word_bx(VM_CLOSURE, 1, 2, 0, 0), vm_word(VM_CALL, 1, 0, 1, 0, 0),
	                       vm_word(VM_RET, 1, 1, 0, 0, 0)};
	const uint64_t c3[] = {vm_word(VM_LOAD, 0, 1, 0, 0, 5), vm_word(VM_RET, 0, 1, 0, 0, 0)};
	const uint32_t up[] = {0, 1, 4095};
	add_func(m, "helper", 2, 3, NULL, 0, c1, 2, false);
	add_func(m, "main", 0, 4096, NULL, 0, c2, 3, true);
	add_func(m, "inner", 0, 2, up, 2, c3, 2, true);
	add_func(m, "many upvals", 1, 1, up, 3, c1, 2, false);
}

/* The smallest valid module. */
static void build_min(struct vm_module *m)
{
	const uint64_t c[] = {RET0};
	memset(m, 0, sizeof *m);
	m->name = dupstr("m");
	m->source = dupstr("m.rasm");
	add_func(m, "main", 0, 1, NULL, 0, c, 1, false);
}

static void encode(const struct vm_module *m, uint8_t **buf, size_t *len)
{
	ck_assert_int_eq(vm_encode(m, buf, len), 0);
	ck_assert_ptr_nonnull(*buf);
	ck_assert_uint_gt(*len, 0);
}

static void assert_same_module(const struct vm_module *a, const struct vm_module *b)
{
	ck_assert_str_eq(a->name, b->name);
	ck_assert_str_eq(a->source, b->source);
	ck_assert_uint_eq(a->entry, b->entry);
	ck_assert_uint_eq(a->nconsts, b->nconsts);
	for (uint32_t i = 0; i < a->nconsts; i++) {
		const struct vm_const *x = &a->consts[i], *y = &b->consts[i];
		ck_assert_uint_eq(x->kind, y->kind);
		if (x->kind == VM_K_INT)
			ck_assert(x->u.i == y->u.i);
		else if (x->kind == VM_K_FLOAT)
			ck_assert(memcmp(&x->u.f, &y->u.f, sizeof(double)) == 0);
		else {
			ck_assert_uint_eq(x->len, y->len);
			ck_assert(memcmp(x->u.bytes, y->u.bytes, x->len) == 0);
		}
	}
	ck_assert_uint_eq(a->nfuncs, b->nfuncs);
	for (uint32_t i = 0; i < a->nfuncs; i++) {
		const struct vm_func *f = &a->funcs[i], *g = &b->funcs[i];
		ck_assert_str_eq(f->name, g->name);
		ck_assert_uint_eq(f->nparams, g->nparams);
		ck_assert_uint_eq(f->nregs, g->nregs);
		ck_assert_uint_eq(f->nupvals, g->nupvals);
		if (f->nupvals)
			ck_assert(memcmp(f->upval_src, g->upval_src, f->nupvals * 4) == 0);
		ck_assert_uint_eq(f->ncode, g->ncode);
		ck_assert(memcmp(f->code, g->code, f->ncode * 8) == 0);
		ck_assert_int_eq(f->lines == NULL, g->lines == NULL);
		if (f->lines)
			ck_assert(memcmp(f->lines, g->lines, f->ncode * 4) == 0);
	}
}

/* ---- a second packer, with faults ---- */

enum fault {
	F_NONE,
	F_KEY_ORDER,         /* module: "source" and "name" swapped */
	F_EXTRA_KEY,         /* module: a 7th key */
	F_MISSING_KEY,       /* module: no "funcs" */
	F_KEY_BIN,           /* module: the key "name" as a bin */
	F_FUNC_KEY_ORDER,    /* funcs[0]: "regs" before "params" */
	F_VERSION,           /* "rift": 2 */
	F_NAME_BIN,          /* "name" as a bin */
	F_NAME_EMPTY,
	F_NAME_NUL,
	F_NAME_UTF8,
	F_FUNC_NAME_EMPTY,
	F_SOURCE_INT,
	F_ENTRY_STR,
	F_ENTRY_RANGE,       /* entry == nfuncs */
	F_ENTRY_NEG,
	F_CONST_STR,         /* a const as a str */
	F_CONST_NIL,
	F_CONST_U64,         /* 2^63 */
	F_CONST_FLOAT32,
	F_CONSTS_MAP,        /* "consts" as a map */
	F_FUNCS_EMPTY,
	F_FUNC_ARRAY,        /* funcs[0] as an array */
	F_PARAMS_NEG,
	F_REGS_ZERO,
	F_REGS_BIG,          /* 4097 */
	F_REGS_LT_PARAMS,
	F_UPVALS_BIG,        /* 4097 of them */
	F_UPVAL_RANGE,       /* an entry of 4096 */
	F_CODE_13,           /* 13 bytes */
	F_CODE_EMPTY,
	F_CODE_STR,
	F_LINES_SHORT,
	F_LINES_FLOAT,
	F_ENTRY_WIDE,        /* entry 0 as uint8: not canonical */
	F_NFAULTS
};

static int pk_str(msgpack_packer *pk, const char *s, size_t n)
{
	return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n);
}

#define S(s) pk_str(pk, s, strlen(s))

static void pack_func(msgpack_packer *pk, const struct vm_func *f, enum fault ft, bool first)
{
	if (!first)
		ft = F_NONE;
	if (ft == F_FUNC_ARRAY) {
		msgpack_pack_array(pk, 0);
		return;
	}
	msgpack_pack_map(pk, 6);
	S("name");
	if (ft == F_FUNC_NAME_EMPTY)
		S("");
	else
		S(f->name);
	if (ft == F_FUNC_KEY_ORDER) {
		S("regs");
		msgpack_pack_uint32(pk, f->nregs);
		S("params");
		msgpack_pack_uint32(pk, f->nparams);
	} else {
		S("params");
		if (ft == F_PARAMS_NEG)
			msgpack_pack_int(pk, -1);
		else
			msgpack_pack_uint32(pk, f->nparams);
		S("regs");
		msgpack_pack_uint32(pk, ft == F_REGS_ZERO ? 0 : ft == F_REGS_BIG ? 4097
		                            : ft == F_REGS_LT_PARAMS ? f->nparams - 1 : f->nregs);
	}
	S("upvals");
	if (ft == F_UPVALS_BIG) {
		msgpack_pack_array(pk, 4097);
		for (int i = 0; i < 4097; i++)
			msgpack_pack_uint32(pk, 0);
	} else if (ft == F_UPVAL_RANGE) {
		msgpack_pack_array(pk, 1);
		msgpack_pack_uint32(pk, 4096);
	} else {
		msgpack_pack_array(pk, f->nupvals);
		for (uint32_t i = 0; i < f->nupvals; i++)
			msgpack_pack_uint32(pk, f->upval_src[i]);
	}
	S("code");
	uint8_t code[64 * 8];
	ck_assert_uint_le(f->ncode, 64);
	for (uint32_t i = 0; i < f->ncode; i++)
		for (int b = 0; b < 8; b++)
			code[8 * i + b] = (uint8_t)(f->code[i] >> (8 * b));
	size_t clen = ft == F_CODE_13 ? 13 : ft == F_CODE_EMPTY ? 0 : f->ncode * 8;
	if (ft == F_CODE_STR) {
		pk_str(pk, (const char *)code, clen);
	} else {
		msgpack_pack_bin(pk, clen);
		msgpack_pack_bin_body(pk, code, clen);
	}
	S("lines");
	if (ft == F_LINES_SHORT) {
		msgpack_pack_array(pk, 1);
		msgpack_pack_uint32(pk, 1);
	} else if (ft == F_LINES_FLOAT) {
		msgpack_pack_array(pk, f->ncode);
		for (uint32_t i = 0; i < f->ncode; i++)
			msgpack_pack_double(pk, 1.0);
	} else {
		uint32_t n = f->lines ? f->ncode : 0;
		msgpack_pack_array(pk, n);
		for (uint32_t i = 0; i < n; i++)
			msgpack_pack_uint32(pk, f->lines[i]);
	}
}

/* The document of m, with one fault. Returns malloc'd bytes. */
static uint8_t *pack_doc(const struct vm_module *m, enum fault ft, size_t *len)
{
	msgpack_sbuffer sb;
	msgpack_packer pkv, *pk = &pkv;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(pk, &sb, msgpack_sbuffer_write);

	msgpack_pack_map(pk, ft == F_EXTRA_KEY ? 7 : ft == F_MISSING_KEY ? 5 : 6);
	S("rift");
	msgpack_pack_uint32(pk, ft == F_VERSION ? 2 : 1);
	if (ft == F_KEY_ORDER) {
		S("source");
		S(m->source);
		S("name");
		S(m->name);
	} else {
		if (ft == F_KEY_BIN) {
			msgpack_pack_bin(pk, 4);
			msgpack_pack_bin_body(pk, "name", 4);
		} else {
			S("name");
		}
		if (ft == F_NAME_BIN) {
			msgpack_pack_bin(pk, 1);
			msgpack_pack_bin_body(pk, "x", 1);
		} else if (ft == F_NAME_EMPTY) {
			S("");
		} else if (ft == F_NAME_NUL) {
			pk_str(pk, "a\0b", 3);
		} else if (ft == F_NAME_UTF8) {
			S("caf\xe9");
		} else {
			S(m->name);
		}
		S("source");
		if (ft == F_SOURCE_INT)
			msgpack_pack_uint32(pk, 5);
		else
			S(m->source);
	}
	S("entry");
	if (ft == F_ENTRY_STR)
		S("0");
	else if (ft == F_ENTRY_NEG)
		msgpack_pack_int(pk, -1);
	else if (ft == F_ENTRY_RANGE)
		msgpack_pack_uint32(pk, m->nfuncs);
	else if (ft == F_ENTRY_WIDE) {
		const char w[2] = {(char)0xcc, (char)m->entry};
		msgpack_sbuffer_write(&sb, w, 2);
	} else
		msgpack_pack_uint32(pk, m->entry);
	S("consts");
	if (ft == F_CONSTS_MAP) {
		msgpack_pack_map(pk, 0);
	} else {
		bool extra = ft == F_CONST_STR || ft == F_CONST_NIL || ft == F_CONST_U64 ||
		             ft == F_CONST_FLOAT32;
		msgpack_pack_array(pk, m->nconsts + extra);
		for (uint32_t i = 0; i < m->nconsts; i++) {
			const struct vm_const *k = &m->consts[i];
			if (k->kind == VM_K_INT)
				msgpack_pack_int64(pk, k->u.i);
			else if (k->kind == VM_K_FLOAT)
				msgpack_pack_double(pk, k->u.f);
			else {
				msgpack_pack_bin(pk, k->len);
				msgpack_pack_bin_body(pk, k->u.bytes, k->len);
			}
		}
		if (ft == F_CONST_STR)
			S("k");
		else if (ft == F_CONST_NIL)
			msgpack_pack_nil(pk);
		else if (ft == F_CONST_U64)
			msgpack_pack_uint64(pk, 1ull << 63);
		else if (ft == F_CONST_FLOAT32)
			msgpack_pack_float(pk, 1.5f);
	}
	if (ft != F_MISSING_KEY) {
		S("funcs");
		if (ft == F_FUNCS_EMPTY) {
			msgpack_pack_array(pk, 0);
		} else {
			msgpack_pack_array(pk, m->nfuncs);
			for (uint32_t i = 0; i < m->nfuncs; i++)
				pack_func(pk, &m->funcs[i], ft, i == 0);
		}
	}
	if (ft == F_EXTRA_KEY) {
		S("extra");
		msgpack_pack_nil(pk);
	}
	*len = sb.size;
	return (uint8_t *)msgpack_sbuffer_release(&sb);
}

/* Decoding must fail with -EINVAL, a message containing phrase, and m
 * left zeroed. */
static void assert_rejects(const uint8_t *buf, size_t len, const char *phrase)
{
	struct vm_module m;
	memset(err, 0, sizeof err);
	int r = vm_decode(buf, len, &m, err, sizeof err);
	ck_assert_msg(r == -EINVAL, "decode gave %d (%s), expected -EINVAL with \"%s\"", r, err,
	              phrase);
	ck_assert_msg(strstr(err, phrase) != NULL, "error \"%s\" lacks \"%s\"", err, phrase);
	struct vm_module zero;
	memset(&zero, 0, sizeof zero);
	ck_assert(memcmp(&m, &zero, sizeof m) == 0);
}

static void assert_fault(enum fault ft, const char *phrase)
{
	struct vm_module m;
	size_t len;
	build_rich(&m); /* funcs[0] is helper: params 2, regs 3, code 2 */
	uint8_t *doc = pack_doc(&m, ft, &len);
	vm_module_free(&m);
	assert_rejects(doc, len, phrase);
	free(doc);
}

/* ---- round trips and the canonical form ---- */

START_TEST(encode_decode_encode_gives_equal_bytes)
{
	struct vm_module m, d;
	uint8_t *a, *b;
	size_t alen, blen;

	build_rich(&m);
	encode(&m, &a, &alen);
	ck_assert_msg(vm_decode(a, alen, &d, err, sizeof err) == 0, "%s", err);
	assert_same_module(&m, &d);
	encode(&d, &b, &blen);
	ck_assert_uint_eq(alen, blen);
	ck_assert(memcmp(a, b, alen) == 0);
	free(a);
	free(b);
	vm_module_free(&m);
	vm_module_free(&d);

	build_min(&m);
	encode(&m, &a, &alen);
	ck_assert_msg(vm_decode(a, alen, &d, err, sizeof err) == 0, "%s", err);
	assert_same_module(&m, &d);
	free(a);
	vm_module_free(&m);
	vm_module_free(&d);
}
END_TEST

START_TEST(encoding_matches_an_independent_packer)
{
	struct vm_module m;
	uint8_t *a, *b;
	size_t alen, blen;
	build_rich(&m);
	encode(&m, &a, &alen);
	b = pack_doc(&m, F_NONE, &blen);
	ck_assert_uint_eq(alen, blen);
	ck_assert(memcmp(a, b, alen) == 0);
	free(a);
	free(b);
	vm_module_free(&m);
}
END_TEST

START_TEST(encoding_of_the_minimal_module_is_exactly_as_expected)
{
	static const uint8_t want[] = {
		0x86, 0xa4, 'r', 'i', 'f', 't', 0x01,
		0xa4, 'n', 'a', 'm', 'e', 0xa1, 'm',
		0xa6, 's', 'o', 'u', 'r', 'c', 'e', 0xa6, 'm', '.', 'r', 'a', 's', 'm',
		0xa5, 'e', 'n', 't', 'r', 'y', 0x00,
		0xa6, 'c', 'o', 'n', 's', 't', 's', 0x90,
		0xa5, 'f', 'u', 'n', 'c', 's', 0x91,
		0x86, 0xa4, 'n', 'a', 'm', 'e', 0xa4, 'm', 'a', 'i', 'n',
		0xa6, 'p', 'a', 'r', 'a', 'm', 's', 0x00,
		0xa4, 'r', 'e', 'g', 's', 0x01,
		0xa6, 'u', 'p', 'v', 'a', 'l', 's', 0x90,
		0xa4, 'c', 'o', 'd', 'e', 0xc4, 0x08, 0x05, 0, 0, 0, 0, 0, 0, 0,
		0xa5, 'l', 'i', 'n', 'e', 's', 0x90,
	};
	struct vm_module m;
	uint8_t *a;
	size_t alen;
	build_min(&m);
	encode(&m, &a, &alen);
	ck_assert_uint_eq(alen, sizeof want);
	ck_assert(memcmp(a, want, alen) == 0);
	free(a);
	vm_module_free(&m);
}
END_TEST

START_TEST(ints_take_their_smallest_form_and_floats_float64)
{
	struct vm_module m;
	uint8_t *a;
	size_t alen;
	build_min(&m);
	static const struct {
		int64_t v;
		uint8_t first;
		size_t size;
	} cases[] = {
		{0, 0x00, 1}, {127, 0x7f, 1}, {128, 0xcc, 2}, {256, 0xcd, 3}, {65536, 0xce, 5},
		{4294967296LL, 0xcf, 9}, {-1, 0xff, 1}, {-32, 0xe0, 1}, {-33, 0xd0, 2},
		{-129, 0xd1, 3}, {-32769, 0xd2, 5}, {INT64_MIN, 0xd3, 9},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		vm_module_free(&m);
		build_min(&m);
		add_const(&m, (struct vm_const){.kind = VM_K_INT, .u.i = cases[i].v});
		encode(&m, &a, &alen);
		/* consts: 0xa6 "consts" 0x91 <int> */
		uint8_t *p = memmem(a, alen, "\xa6" "consts\x91", 8);
		ck_assert_ptr_nonnull(p);
		ck_assert_uint_eq(p[8], cases[i].first);
		uint8_t *q = memmem(a, alen, "\xa5" "funcs", 6);
		ck_assert_uint_eq((size_t)(q - (p + 8)), cases[i].size);
		free(a);
	}
	vm_module_free(&m);
	build_min(&m);
	add_const(&m, (struct vm_const){.kind = VM_K_FLOAT, .u.f = 0.5});
	encode(&m, &a, &alen);
	uint8_t *p = memmem(a, alen, "\xa6" "consts\x91", 8);
	ck_assert_uint_eq(p[8], 0xcb);
	free(a);
	vm_module_free(&m);
}
END_TEST

START_TEST(bytes_constants_get_a_trailing_nul_not_counted)
{
	struct vm_module m, d;
	uint8_t *a;
	size_t alen;
	build_min(&m);
	add_bytes(&m, "abc", 3);
	add_bytes(&m, "", 0);
	encode(&m, &a, &alen);
	ck_assert_int_eq(vm_decode(a, alen, &d, err, sizeof err), 0);
	ck_assert_uint_eq(d.consts[0].len, 3);
	ck_assert_str_eq((char *)d.consts[0].u.bytes, "abc");
	ck_assert_uint_eq(d.consts[1].len, 0);
	ck_assert_ptr_nonnull(d.consts[1].u.bytes);
	ck_assert_uint_eq(d.consts[1].u.bytes[0], 0);
	ck_assert_ptr_null(d.funcs[0].lines);
	ck_assert_ptr_null(d.funcs[0].upval_src);
	free(a);
	vm_module_free(&m);
	vm_module_free(&d);
}
END_TEST

START_TEST(encode_refuses_a_module_with_missing_parts)
{
	struct vm_module m;
	uint8_t *a = (uint8_t *)"x";
	size_t alen = 1;
	build_min(&m);
	m.nconsts = 3; /* consts is NULL */
	ck_assert_int_eq(vm_encode(&m, &a, &alen), -EINVAL);
	ck_assert_ptr_null(a);
	ck_assert_uint_eq(alen, 0);
	m.nconsts = 0;
	vm_module_free(&m);
}
END_TEST

/* ---- the hash ---- */

START_TEST(hash_is_blake2b_256_of_the_encoding_and_stable)
{
	struct vm_module m, d;
	uint8_t h1[32], h2[32], h3[32], want[32];
	uint8_t *a;
	size_t alen;

	build_rich(&m);
	ck_assert_int_eq(vm_module_hash(&m, h1), 0);
	ck_assert_int_eq(vm_module_hash(&m, h2), 0);
	ck_assert(memcmp(h1, h2, 32) == 0);
	encode(&m, &a, &alen);
	crypto_generichash(want, 32, a, alen, NULL, 0);
	ck_assert(memcmp(h1, want, 32) == 0);
	ck_assert_int_eq(vm_decode(a, alen, &d, err, sizeof err), 0);
	ck_assert_int_eq(vm_module_hash(&d, h3), 0);
	ck_assert(memcmp(h1, h3, 32) == 0);

	/* Any change changes it. */
	d.funcs[1].code[0] ^= 1ull << 40;
	ck_assert_int_eq(vm_module_hash(&d, h3), 0);
	ck_assert(memcmp(h1, h3, 32) != 0);
	free(a);
	vm_module_free(&m);
	vm_module_free(&d);
}
END_TEST

START_TEST(hash_of_the_minimal_module_is_pinned)
{
	/* A module's address must not drift between versions: BLAKE2b-256 of
	 * the bytes in encoding_of_the_minimal_module_is_exactly_as_expected,
	 * computed independently (Python hashlib). */
	struct vm_module m;
	uint8_t h[32];
	char hex[65];
	build_min(&m);
	ck_assert_int_eq(vm_module_hash(&m, h), 0);
	sodium_bin2hex(hex, sizeof hex, h, 32);
	ck_assert_str_eq(hex, "6512b18daba94ef5f3943abc279e946ed19dd1ae264e0ac7adbc5684b0e690bf");
	vm_module_free(&m);
}
END_TEST

/* ---- rejections: the raw document ---- */

START_TEST(truncated_input_at_every_length_fails_cleanly)
{
	struct vm_module m;
	uint8_t *a;
	size_t alen;
	build_rich(&m);
	encode(&m, &a, &alen);
	vm_module_free(&m);
	for (size_t n = 0; n < alen; n++) {
		/* A copy of exactly n bytes, so ASan sees any over-read. */
		uint8_t *cut = malloc(n ? n : 1);
		memcpy(cut, a, n);
		assert_rejects(cut, n, n == 0 ? "empty input" : "truncated");
		free(cut);
	}
	free(a);
}
END_TEST

START_TEST(trailing_bytes_are_an_error)
{
	struct vm_module m;
	uint8_t *a;
	size_t alen;
	build_min(&m);
	encode(&m, &a, &alen);
	vm_module_free(&m);
	uint8_t *b = malloc(alen + 3);
	memcpy(b, a, alen);
	memcpy(b + alen, "\x01\x02\x03", 3);
	char want[64];
	snprintf(want, sizeof want, "3 trailing bytes after the document (at byte %zu)", alen);
	assert_rejects(b, alen + 1, "1 trailing bytes");
	assert_rejects(b, alen + 3, want);
	free(a);
	free(b);
}
END_TEST

START_TEST(input_over_the_size_limit_is_refused)
{
	size_t n = (size_t)VM_MAX_MODULE_BYTES + 1;
	uint8_t *big = calloc(n, 1);
	ck_assert_ptr_nonnull(big);
	assert_rejects(big, n, "is more than a module may have");
	free(big);
}
END_TEST

START_TEST(container_counts_larger_than_the_input_are_refused_before_allocating)
{
	/* array32 of 2^32-1 items, map32 of 2^32-1 pairs: msgpack-c would
	 * allocate ~100 GB for either. */
	static const uint8_t arr[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01};
	static const uint8_t map[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0x01, 0x01};
	assert_rejects(arr, sizeof arr, "cannot fit in the 1 bytes left");
	assert_rejects(map, sizeof map, "a container of 4294967295 items cannot fit");
	/* The consts array of a real module claiming VM_MAX_CONSTS + 1. */
	static const uint8_t hdr[] = {0x86, 0xa4, 'r', 'i', 'f', 't', 0x01, 0xa4, 'n', 'a', 'm',
	                              'e', 0xa1, 'm', 0xa6, 's', 'o', 'u', 'r', 'c', 'e', 0xa0,
	                              0xa5, 'e', 'n', 't', 'r', 'y', 0x00, 0xa6, 'c', 'o', 'n',
	                              's', 't', 's', 0xdd, 0x01, 0x00, 0x00, 0x01, 0x00};
	assert_rejects(hdr, sizeof hdr, "byte 36: truncated or corrupt: a container of 16777217 items cannot fit");
}
END_TEST

START_TEST(nesting_deeper_than_the_format_is_refused)
{
	uint8_t deep[200];
	memset(deep, 0x91, sizeof deep); /* [[[[...]]]] */
	deep[sizeof deep - 1] = 0x00;
	assert_rejects(deep, sizeof deep, "nested deeper than a module can be");
}
END_TEST

START_TEST(bytes_that_are_not_msgpack_are_refused)
{
	static const uint8_t c1[] = {0xc1};
	assert_rejects(c1, 1, "byte 0: 0xc1 is not a msgpack type");
	static const uint8_t str[] = {0xa3, 'a', 'b', 'c'};
	assert_rejects(str, sizeof str, "module: expected a map, got a str");
	static const uint8_t ext[] = {0x81, 0xa4, 'r', 'i', 'f', 't', 0xd4, 0x01, 0x00};
	assert_rejects(ext, sizeof ext, "module: the map has 1 keys, expected 6");
}
END_TEST

/* ---- rejections: the document's shape ---- */

START_TEST(wrong_key_order_is_refused)
{
	assert_fault(F_KEY_ORDER, "module: key 1 is \"source\", expected \"name\"");
	assert_fault(F_FUNC_KEY_ORDER, "funcs[0]: key 1 is \"regs\", expected \"params\"");
}
END_TEST

START_TEST(unknown_or_missing_keys_are_refused)
{
	assert_fault(F_EXTRA_KEY, "module: the map has 7 keys, expected 6");
	assert_fault(F_MISSING_KEY, "module: the map has 5 keys, expected 6");
	assert_fault(F_KEY_BIN, "module: key 1 is a bin, expected \"name\"");
}
END_TEST

START_TEST(wrong_types_are_refused)
{
	assert_fault(F_NAME_BIN, "name: expected a str, got a bin");
	assert_fault(F_SOURCE_INT, "source: expected a str, got an int");
	assert_fault(F_ENTRY_STR, "entry: expected an int, got a str");
	assert_fault(F_CONST_STR, "consts[29]: expected an int, a float or a bin, got a str");
	assert_fault(F_CONST_NIL, "consts[29]: expected an int, a float or a bin, got nil");
	assert_fault(F_CONSTS_MAP, "consts: expected an array, got a map");
	assert_fault(F_FUNC_ARRAY, "funcs[0]: expected a map, got an array");
	assert_fault(F_CODE_STR, "funcs[0].code: expected a bin, got a str");
	assert_fault(F_LINES_FLOAT, "funcs[0].lines[0]: expected an int, got a float");
}
END_TEST

START_TEST(wrong_format_version_is_refused)
{
	assert_fault(F_VERSION, "rift: 2 is outside 1..1");
}
END_TEST

START_TEST(bad_names_are_refused)
{
	assert_fault(F_NAME_EMPTY, "name: is empty");
	assert_fault(F_NAME_NUL, "name: contains a NUL byte");
	assert_fault(F_NAME_UTF8, "name: is not valid UTF-8");
	assert_fault(F_FUNC_NAME_EMPTY, "funcs[0].name: is empty");
}
END_TEST

START_TEST(out_of_range_numbers_are_refused)
{
	assert_fault(F_ENTRY_RANGE, "entry: 4 is outside 0..3 (the functions)");
	assert_fault(F_ENTRY_NEG, "entry: -1 is outside 0..4095");
	assert_fault(F_CONST_U64, "consts[29]: 9223372036854775808 does not fit in an int64");
	assert_fault(F_PARAMS_NEG, "funcs[0].params: -1 is outside 0..4096");
	assert_fault(F_REGS_ZERO, "funcs[0].regs: 0 is outside 1..4096");
	assert_fault(F_REGS_BIG, "funcs[0].regs: 4097 is outside 1..4096");
	assert_fault(F_REGS_LT_PARAMS, "funcs[0].regs: 1 is less than params (2)");
	assert_fault(F_UPVAL_RANGE, "funcs[0].upvals[0]: 4096 is outside 0..4095");
}
END_TEST

START_TEST(oversized_counts_are_refused)
{
	assert_fault(F_FUNCS_EMPTY, "funcs: 0 items, expected 1..4096");
	assert_fault(F_UPVALS_BIG, "funcs[0].upvals: 4097 items, expected 0..4096");
	assert_fault(F_CODE_EMPTY, "funcs[0].code: 0 instructions, expected 1..");
	assert_fault(F_LINES_SHORT, "funcs[0].lines: 1 entries, expected 0 or 2");

	/* 4097 functions. */
	struct vm_module m;
	build_min(&m);
	struct vm_func f = m.funcs[0];
	m.funcs = realloc(m.funcs, 4097 * sizeof *m.funcs);
	for (int i = 1; i < 4097; i++) {
		m.funcs[i] = f;
		m.funcs[i].name = dupstr("f");
		m.funcs[i].code = malloc(8);
		m.funcs[i].code[0] = RET0;
	}
	m.nfuncs = 4097;
	uint8_t *a;
	size_t alen;
	encode(&m, &a, &alen);
	vm_module_free(&m);
	assert_rejects(a, alen, "funcs: 4097 items, expected 1..4096");
	free(a);
}
END_TEST

START_TEST(code_length_not_a_multiple_of_8_is_refused)
{
	assert_fault(F_CODE_13, "funcs[0].code: length 13 is not a multiple of 8");
}
END_TEST

START_TEST(non_canonical_encodings_are_refused)
{
	assert_fault(F_ENTRY_WIDE, "byte 37: not the canonical encoding");
	assert_fault(F_CONST_FLOAT32, "not the canonical encoding");
}
END_TEST

/* Flipping, inserting and deleting bytes of a valid document never
 * crashes or leaks the decoder; failures leave the module zeroed with a
 * message; successes re-encode to the input. */
static uint64_t rng_state;

static uint64_t rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

START_TEST(mutated_documents_never_crash_the_decoder)
{
	struct vm_module m, d;
	uint8_t *a;
	size_t alen;
	build_rich(&m);
	encode(&m, &a, &alen);
	vm_module_free(&m);
	uint8_t *b = malloc(alen + 16);
	rng_state = 7;
	int ok = 0;
	for (int i = 0; i < 20000; i++) {
		size_t n = alen;
		memcpy(b, a, alen);
		int edits = 1 + (int)(rng() % 3);
		for (int e = 0; e < edits; e++) {
			size_t at = rng() % n;
			switch (rng() % 3) {
			case 0:
				b[at] = (uint8_t)rng();
				break;
			case 1:
				if (n < alen + 16) {
					memmove(b + at + 1, b + at, n - at);
					b[at] = (uint8_t)rng();
					n++;
				}
				break;
			default:
				if (n > 1) {
					memmove(b + at, b + at + 1, n - at - 1);
					n--;
				}
			}
		}
		err[0] = 'x';
		int r = vm_decode(b, n, &d, err, sizeof err);
		if (r == 0) {
			uint8_t *c;
			size_t clen;
			encode(&d, &c, &clen);
			ck_assert_uint_eq(clen, n);
			ck_assert(memcmp(c, b, n) == 0);
			free(c);
			vm_module_free(&d);
			ok++;
		} else {
			ck_assert_int_eq(r, -EINVAL);
			ck_assert_uint_gt(strlen(err), 0);
			ck_assert_ptr_null(d.funcs);
			ck_assert_ptr_null(d.consts);
			ck_assert_ptr_null(d.name);
		}
	}
	ck_assert_int_gt(ok, 0);
	free(a);
	free(b);
}
END_TEST

/* ---- files ---- */

static char tmpdir[64];

static void write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(p, 1, n, f), n);
	fclose(f);
}

static void mk_tmpdir(void)
{
	strcpy(tmpdir, "/tmp/rift-codec-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

START_TEST(load_file_decodes_and_verifies)
{
	struct vm_module m, d;
	uint8_t *a;
	size_t alen;
	char path[128];
	mk_tmpdir();
	snprintf(path, sizeof path, "%s/ok.rbc", tmpdir);
	build_rich(&m);
	encode(&m, &a, &alen);
	write_file(path, a, alen);
	ck_assert_msg(vm_load_file(path, &d, err, sizeof err) == 0, "%s", err);
	assert_same_module(&m, &d);
	vm_module_free(&d);
	unlink(path);
	rmdir(tmpdir);
	free(a);
	vm_module_free(&m);
}
END_TEST

START_TEST(load_file_errors_are_prefixed_by_the_path)
{
	struct vm_module m, d;
	uint8_t *a;
	size_t alen;
	char path[128], want[256];
	mk_tmpdir();

	/* Missing. */
	snprintf(path, sizeof path, "%s/none.rbc", tmpdir);
	ck_assert_int_eq(vm_load_file(path, &d, err, sizeof err), -ENOENT);
	snprintf(want, sizeof want, "%s: ", path);
	ck_assert_int_eq(strncmp(err, want, strlen(want)), 0);

	/* Decodes, but fails verification: main ends with LOAD NIL. */
	snprintf(path, sizeof path, "%s/bad.rbc", tmpdir);
	build_min(&m);
	m.funcs[0].code[0] = vm_word(VM_LOAD, 0, 0, 0, 0, 1);
	encode(&m, &a, &alen);
	write_file(path, a, alen);
	ck_assert_int_eq(vm_load_file(path, &d, err, sizeof err), -EINVAL);
	snprintf(want, sizeof want, "%s: function 'main', pc 0 (load.nil): the last", path);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);
	ck_assert_ptr_null(d.funcs);
	unlink(path);

	/* Does not decode. */
	write_file(path, a, alen - 1);
	ck_assert_int_eq(vm_load_file(path, &d, err, sizeof err), -EINVAL);
	snprintf(want, sizeof want, "%s: truncated", path);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);
	unlink(path);

	/* Too large (sparse). */
	snprintf(path, sizeof path, "%s/big.rbc", tmpdir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)VM_MAX_MODULE_BYTES + 1), 0);
	close(fd);
	ck_assert_int_eq(vm_load_file(path, &d, err, sizeof err), -EFBIG);
	ck_assert_msg(strstr(err, "is more than a module may have") != NULL, "%s", err);
	unlink(path);

	/* A directory. */
	ck_assert_int_lt(vm_load_file(tmpdir, &d, err, sizeof err), 0);
	snprintf(want, sizeof want, "%s: ", tmpdir);
	ck_assert_int_eq(strncmp(err, want, strlen(want)), 0);

	rmdir(tmpdir);
	free(a);
	vm_module_free(&m);
}
END_TEST

static Suite *codec_suite(void)
{
	Suite *s = suite_create("vm-codec");

	TCase *rt = tcase_create("round_trip");
	tcase_add_test(rt, encode_decode_encode_gives_equal_bytes);
	tcase_add_test(rt, encoding_matches_an_independent_packer);
	tcase_add_test(rt, encoding_of_the_minimal_module_is_exactly_as_expected);
	tcase_add_test(rt, ints_take_their_smallest_form_and_floats_float64);
	tcase_add_test(rt, bytes_constants_get_a_trailing_nul_not_counted);
	tcase_add_test(rt, encode_refuses_a_module_with_missing_parts);
	suite_add_tcase(s, rt);

	TCase *h = tcase_create("hash");
	tcase_add_test(h, hash_is_blake2b_256_of_the_encoding_and_stable);
	tcase_add_test(h, hash_of_the_minimal_module_is_pinned);
	suite_add_tcase(s, h);

	TCase *raw = tcase_create("raw");
	tcase_set_timeout(raw, 60);
	tcase_add_test(raw, truncated_input_at_every_length_fails_cleanly);
	tcase_add_test(raw, trailing_bytes_are_an_error);
	tcase_add_test(raw, input_over_the_size_limit_is_refused);
	tcase_add_test(raw, container_counts_larger_than_the_input_are_refused_before_allocating);
	tcase_add_test(raw, nesting_deeper_than_the_format_is_refused);
	tcase_add_test(raw, bytes_that_are_not_msgpack_are_refused);
	tcase_add_test(raw, mutated_documents_never_crash_the_decoder);
	suite_add_tcase(s, raw);

	TCase *sh = tcase_create("shape");
	tcase_add_test(sh, wrong_key_order_is_refused);
	tcase_add_test(sh, unknown_or_missing_keys_are_refused);
	tcase_add_test(sh, wrong_types_are_refused);
	tcase_add_test(sh, wrong_format_version_is_refused);
	tcase_add_test(sh, bad_names_are_refused);
	tcase_add_test(sh, out_of_range_numbers_are_refused);
	tcase_add_test(sh, oversized_counts_are_refused);
	tcase_add_test(sh, code_length_not_a_multiple_of_8_is_refused);
	tcase_add_test(sh, non_canonical_encodings_are_refused);
	suite_add_tcase(s, sh);

	TCase *f = tcase_create("files");
	tcase_add_test(f, load_file_decodes_and_verifies);
	tcase_add_test(f, load_file_errors_are_prefixed_by_the_path);
	suite_add_tcase(s, f);
	return s;
}

int main(void)
{
	if (sodium_init() < 0)
		return EXIT_FAILURE;
	SRunner *sr = srunner_create(codec_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
