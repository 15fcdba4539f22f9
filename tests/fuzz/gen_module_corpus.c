/*
 * gen_module_corpus.c - writes the seed corpus of fuzz_module.c: a few
 * valid modules made with vm_encode (together they use every opcode and
 * variant, constants of each kind, closures, upvalues, lines) and a few
 * malformed ones (truncated, trailing bytes, a bad code length, a huge
 * container count, code the verifier refuses).
 *
 *   build/tests/fuzz/gen-module-corpus tests/fuzz/corpus/module
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "isa.h"
#include "module.h"

#define W vm_word
#define WBX vm_word_bx
#define RET0 vm_word(VM_RET, 0, 0, 0, 0, 0)

static const char *dir;

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) {
		perror("malloc");
		exit(1);
	}
	return p;
}

static char *xstrdup(const char *s)
{
	char *d = xmalloc(strlen(s) + 1);
	strcpy(d, s);
	return d;
}

static void add_const(struct vm_module *m, struct vm_const k)
{
	struct vm_const *c = xmalloc((m->nconsts + 1) * sizeof *c);
	if (m->nconsts)
		memcpy(c, m->consts, m->nconsts * sizeof *c);
	free(m->consts);
	m->consts = c;
	m->consts[m->nconsts++] = k;
}

static void add_bytes(struct vm_module *m, const char *s)
{
	struct vm_const k = {.kind = VM_K_BYTES, .len = (uint32_t)strlen(s)};
	k.u.bytes = (uint8_t *)xstrdup(s);
	add_const(m, k);
}

static void add_func(struct vm_module *m, const char *name, uint32_t params, uint32_t regs,
                     const uint32_t *upv, uint32_t nupv, const uint64_t *code, uint32_t ncode,
                     int lines)
{
	struct vm_func *fs = xmalloc((m->nfuncs + 1) * sizeof *fs);
	if (m->nfuncs)
		memcpy(fs, m->funcs, m->nfuncs * sizeof *fs);
	free(m->funcs);
	m->funcs = fs;
	struct vm_func *f = &m->funcs[m->nfuncs++];
	memset(f, 0, sizeof *f);
	f->name = xstrdup(name);
	f->nparams = params;
	f->nregs = regs;
	if (nupv) {
		f->upval_src = xmalloc(nupv * sizeof *upv);
		memcpy(f->upval_src, upv, nupv * sizeof *upv);
		f->nupvals = nupv;
	}
	f->code = xmalloc(ncode * sizeof *code);
	memcpy(f->code, code, ncode * sizeof *code);
	f->ncode = ncode;
	if (lines) {
		f->lines = xmalloc(ncode * sizeof *f->lines);
		for (uint32_t i = 0; i < ncode; i++)
			f->lines[i] = 10 + i;
	}
}

static void write_seed(const char *name, const uint8_t *p, size_t n)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

static uint8_t *enc(const struct vm_module *m, size_t *n)
{
	uint8_t *p;
	if (vm_encode(m, &p, n) < 0) {
		fprintf(stderr, "vm_encode failed\n");
		exit(1);
	}
	return p;
}

int main(int argc, char **argv)
{
	struct vm_module m;
	uint8_t *p;
	size_t n;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	dir = argv[1];

	/* minimal: one function, one RET. */
	memset(&m, 0, sizeof m);
	m.name = xstrdup("min");
	m.source = xstrdup("");
	add_func(&m, "main", 0, 1, NULL, 0, (const uint64_t[]){RET0}, 1, 0);
	p = enc(&m, &n);
	write_seed("minimal", p, n);
	/* Malformed variants of it. */
	write_seed("truncated", p, n - 3);
	uint8_t *t = xmalloc(n + 2);
	memcpy(t, p, n);
	t[n] = 0xc0;
	t[n + 1] = 0xc0;
	write_seed("trailing", t, n + 2);
	free(t);
	free(p);
	vm_module_free(&m);

	/* every_variant: all opcodes and variants, valid. */
	memset(&m, 0, sizeof m);
	m.name = xstrdup("every_variant");
	m.source = xstrdup("every.rasm");
	add_const(&m, (struct vm_const){.kind = VM_K_INT, .u.i = -123456789});
	add_const(&m, (struct vm_const){.kind = VM_K_FLOAT, .u.f = 2.5});
	add_bytes(&m, "print");
	add_bytes(&m, "/dev/stdout");
	const uint64_t all[] = {
		WBX(VM_LOAD, 1, 0, 0, 0), W(VM_LOAD, 1, 0, 0, 0, 1), W(VM_LOAD, 1, 1, 0, 0, 2),
		WBX(VM_LOAD, 1, 0xfffffb, 0, 3), W(VM_LOAD, 1, 2, 0, 0, 4),
		WBX(VM_LOAD, 1, 2, 0, 6),
		W(VM_ARITH, 1, 2, 3, 0, 0), W(VM_ARITH, 1, 2, 3, 0, 1), W(VM_ARITH, 1, 2, 3, 0, 2),
		W(VM_ARITH, 1, 2, 3, 0, 3), W(VM_ARITH, 1, 2, 3, 0, 4), W(VM_ARITH, 1, 2, 3, 0, 5),
		W(VM_ARITH, 1, 2, 0, 0, 6), W(VM_ARITH, 1, 2, 3, 0, 7), W(VM_ARITH, 1, 2, 3, 0, 8),
		W(VM_ARITH, 1, 2, 3, 0, 9), W(VM_ARITH, 1, 2, 3, 0, 10), W(VM_ARITH, 1, 2, 3, 0, 11),
		W(VM_ARITH, 1, 2, 0, 0, 12), W(VM_ARITH, 1, 2, 3, 0, 13), W(VM_ARITH, 1, 2, 0, 0, 14),
		W(VM_ARITH, 1, 2, 0, 0, 15), W(VM_ARITH, 1, 2, 0, 0, 16), W(VM_ARITH, 1, 2, 0, 0, 17),
		W(VM_ARITH, 1, 2, 0xfff, 0, 18), W(VM_ARITH, 1, 2, 0, 0, 19),
		W(VM_CMP, 1, 2, 3, 0, 0), W(VM_CMP, 1, 2, 3, 0, 1), W(VM_CMP, 1, 2, 3, 0, 2),
		W(VM_CMP, 1, 2, 3, 0, 3),
		WBX(VM_JMP, 0, 0, 0, 0), WBX(VM_JMP, 1, 0, 0, 1), WBX(VM_JMP, 1, 0, 0, 2),
		WBX(VM_JMP, 1, 0, 2, 3), WBX(VM_JMP, 1, 0, 2, 4), WBX(VM_JMP, 1, 0, 2, 5),
		WBX(VM_JMP, 1, 0xfffffe, 2, 6),
		W(VM_CALL, 1, 2, 3, 0, 0), W(VM_CALL, 1, 2, 3, 1, 2), W(VM_CALL, 1, 2, 3, 2, 4),
		WBX(VM_CLOSURE, 4, 2, 0, 0),
		W(VM_NEW, 1, 100, 0, 0, 0), W(VM_NEW, 1, 0, 0, 0, 1), W(VM_NEW, 1, 100, 0, 0, 2),
		W(VM_NEW, 1, 2, 6, 0, 3),
		W(VM_GET, 1, 2, 3, 0, 0), W(VM_GET, 1, 2, 3, 4, 1), W(VM_GET, 1, 2, 7, 0, 2),
		W(VM_GET, 1, 2, 10, 4, 3),
		W(VM_SET, 1, 2, 3, 0, 0), W(VM_SET, 1, 2, 0, 0, 1),
		W(VM_CONT, 1, 2, 0, 0, 0), W(VM_CONT, 1, 2, 3, 0, 1), W(VM_CONT, 1, 2, 0, 0, 2),
		W(VM_CONT, 1, 2, 3, 0, 3), W(VM_CONT, 1, 2, 0, 0, 4), W(VM_CONT, 0, 0, 0, 0, 5),
		WBX(VM_IO, 1, 3, 0, 0), W(VM_IO, 1, 2, 3, 0, 1), W(VM_IO, 1, 2, 3, 0, 2),
		W(VM_IO, 0, 2, 0, 0, 3), W(VM_IO, 1, 2, 3, 1, 4), W(VM_IO, 1, 2, 0, 0, 5),
		W(VM_IO, 1, 2, 0, 0, 6),
		W(VM_TRAP, 1, 0, 0, 2, 2), W(VM_TRAP, 1, 0, 0, 0, 0),
	};
	const uint32_t all_n = sizeof all / sizeof all[0];
	const uint32_t up[] = {0, 3};
	add_func(&m, "main", 0, 8, NULL, 0, all, all_n, 1);
	add_func(&m, "helper", 2, 4,  NULL, 0,
	         (const uint64_t[]){W(VM_CALL, 0, 1, 0, 0, 1)}, 1, 0);
	add_func(&m, "inner", 1, 2, up, 2,
	         (const uint64_t[]){W(VM_LOAD, 0, 1, 0, 0, 5), WBX(VM_TRAP, 0, 2, 0, 1),
	                            W(VM_CALL, 0, 1, 0, 1, 3), W(VM_RET, 0, 2, 0, 0, 0)},
	         4, 1);
	p = enc(&m, &n);
	write_seed("every_variant", p, n);
	free(p);

	/* verify_fails: decodes, but a jump leaves the code. */
	m.funcs[1].code[0] = WBX(VM_JMP, 0, 5, 0, 0);
	p = enc(&m, &n);
	write_seed("verify_fails_jump", p, n);
	free(p);
	vm_module_free(&m);

	/* loop: a counting loop with lines, two functions and an env call. */
	memset(&m, 0, sizeof m);
	m.name = xstrdup("loop");
	m.source = xstrdup("loop.rasm");
	add_bytes(&m, "print");
	add_const(&m, (struct vm_const){.kind = VM_K_INT, .u.i = 1000000});
	const uint64_t loop[] = {
		WBX(VM_LOAD, 0, 0, 0, 3),            /* r0 = 0 */
		WBX(VM_LOAD, 1, 1, 0, 0),            /* r1 = K1 */
		W(VM_ARITH, 0, 0, 1, 0, 18),         /* r0 += 1 */
		WBX(VM_JMP, 0, 0xfffffe, 1, 3),      /* if r0 < r1 goto 2 */
		W(VM_LOAD, 3, 0, 0, 0, 4),           /* r3 = r0 */
		W(VM_CALL, 2, 1, 1, 0, 4),           /* r2 = print(r3) */
		W(VM_CALL, 2, 1, 1, 1, 2),           /* r2 = twice(r3) */
		W(VM_RET, 2, 1, 0, 0, 0),
	};
	add_func(&m, "main", 0, 4, NULL, 0, loop, 8, 1);
	add_func(&m, "twice", 1, 2, NULL, 0,
	         (const uint64_t[]){W(VM_ARITH, 1, 0, 0, 0, 0), W(VM_RET, 1, 1, 0, 0, 0)}, 2, 1);
	p = enc(&m, &n);
	write_seed("loop", p, n);

	/* bad_code_length: the first function's code bin one byte short. The
	 * "code" key is followed by 0xc4 <len>: shorten len, drop a byte. */
	for (size_t i = 0; i + 6 < n; i++) {
		if (memcmp(p + i, "\xa4" "code\xc4", 6) == 0) {
			uint8_t *b = xmalloc(n);
			memcpy(b, p, n);
			b[i + 6]--;
			memmove(b + i + 7 + b[i + 6], b + i + 8 + b[i + 6], n - (i + 8 + b[i + 6]));
			write_seed("bad_code_length", b, n - 1);
			free(b);
			break;
		}
	}
	free(p);
	vm_module_free(&m);

	/* huge_count: "consts" as an array32 header claiming 2^32-1 items
	 * (msgpack-c alone would try to allocate ~100 GB for it). */
	static const char huge[] = "\x86\xa4" "rift\x01\xa4" "name\xa1m\xa6" "source\xa0\xa5"
	                           "entry\x00\xa6" "consts\xdd\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00";
	write_seed("huge_count", (const uint8_t *)huge, sizeof huge - 1);
	return 0;
}
