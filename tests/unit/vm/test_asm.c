/*
 * test_asm.c - the assembler and the disassembler (vm/asm.c; the syntax is
 * docs/vm.md, "Assembly").
 *
 * Every example of vm/examples assembles and verifies; a program that
 * uses every op.variant assembles to exactly the words isa.h describes;
 * disassembling and assembling again gives the same module (the structs,
 * and the same vm_encode bytes once the lines are set aside); every class
 * of error names the file and the exact line.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "asm.h"
#include "codec.h"
#include "isa.h"
#include "module.h"

/* ---- helpers ---- */

static char err[1024];

static void assemble_ok(const char *src, struct vm_module *m)
{
	int rc = vm_assemble(src, strlen(src), "t.rasm", m, err, sizeof err);
	ck_assert_msg(rc == 0, "assemble failed: %s", err);
}

/* Assembling src fails with exactly "t.rasm:LINE: " and then a message
 * that contains want. */
static void assemble_fails(const char *src, unsigned line, const char *want)
{
	struct vm_module m;
	int rc = vm_assemble(src, strlen(src), "t.rasm", &m, err, sizeof err);
	ck_assert_int_eq(rc, -EINVAL);
	char prefix[64];
	snprintf(prefix, sizeof prefix, "t.rasm:%u: ", line);
	ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0, "wanted '%s...', got '%s'",
	              prefix, err);
	ck_assert_msg(strstr(err, want) != NULL, "wanted '%s' in '%s'", want, err);
	ck_assert_ptr_null(m.funcs);
	ck_assert_ptr_null(m.consts);
}

static char *disassemble(const struct vm_module *m)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(vm_disassemble(m, f), 0);
	ck_assert_int_eq(fclose(f), 0);
	return text;
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
			ck_assert_int_eq(x->u.i, y->u.i);
		else if (x->kind == VM_K_FLOAT)
			ck_assert_mem_eq(&x->u.f, &y->u.f, sizeof x->u.f);
		else {
			ck_assert_uint_eq(x->len, y->len);
			ck_assert_mem_eq(x->u.bytes, y->u.bytes, x->len);
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
			ck_assert_mem_eq(f->upval_src, g->upval_src, f->nupvals * sizeof *f->upval_src);
		ck_assert_uint_eq(f->ncode, g->ncode);
		for (uint32_t pc = 0; pc < f->ncode; pc++)
			ck_assert_msg(f->code[pc] == g->code[pc],
			              "function '%s', pc %u: %016llx != %016llx", f->name, pc,
			              (unsigned long long)f->code[pc], (unsigned long long)g->code[pc]);
	}
}

/* The canonical encoding without the lines (they may differ). */
static void encode_without_lines(struct vm_module *m, uint8_t **buf, size_t *len)
{
	for (uint32_t i = 0; i < m->nfuncs; i++) {
		free(m->funcs[i].lines);
		m->funcs[i].lines = NULL;
	}
	ck_assert_int_eq(vm_encode(m, buf, len), 0);
}

/* Assemble src, disassemble, assemble that: the same module, the same
 * encoding, and the second disassembly is the first. */
static void round_trip(const char *src, size_t len, const char *file)
{
	struct vm_module a, b;
	int rc = vm_assemble(src, len, file, &a, err, sizeof err);
	ck_assert_msg(rc == 0, "assemble failed: %s", err);
	char *text = disassemble(&a);
	rc = vm_assemble(text, strlen(text), "disassembly", &b, err, sizeof err);
	ck_assert_msg(rc == 0, "reassemble failed: %s\n%s", err, text);
	assert_same_module(&a, &b);
	char *again = disassemble(&b);
	ck_assert_str_eq(text, again);

	uint8_t *ea, *eb;
	size_t la, lb;
	encode_without_lines(&a, &ea, &la);
	encode_without_lines(&b, &eb, &lb);
	ck_assert_uint_eq(la, lb);
	ck_assert_mem_eq(ea, eb, la);
	/* And the bytes decode to the same module. */
	struct vm_module c;
	rc = vm_decode(ea, la, &c, err, sizeof err);
	ck_assert_msg(rc == 0, "decode failed: %s", err);
	assert_same_module(&a, &c);
	vm_module_free(&c);
	free(ea);
	free(eb);
	free(text);
	free(again);
	vm_module_free(&a);
	vm_module_free(&b);
}

/* vm/examples, found from this file's path (meson compiles it by a path
 * relative to the build directory, where the test runs). */
static void examples_dir(char *out, size_t len)
{
	const char *me = __FILE__;
	const char *tail = strstr(me, "tests/unit/vm/test_asm.c");
	ck_assert_ptr_nonnull(tail);
	snprintf(out, len, "%.*svm/examples", (int)(tail - me), me);
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	long n = ftell(f);
	ck_assert_int_ge(n, 0);
	rewind(f);
	char *buf = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	buf[n] = 0;
	*len = (size_t)n;
	return buf;
}

/* Calls fn on every .rasm file of vm/examples; returns how many. */
static int each_example(void (*fn)(const char *path, const char *src, size_t len))
{
	char dir[1024];
	examples_dir(dir, sizeof dir);
	DIR *d = opendir(dir);
	ck_assert_msg(d != NULL, "%s: %s", dir, strerror(errno));
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);
		if (l < 6 || strcmp(e->d_name + l - 5, ".rasm") != 0)
			continue;
		char path[2048];
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		size_t len;
		char *src = read_file(path, &len);
		fn(path, src, len);
		free(src);
		n++;
	}
	closedir(d);
	return n;
}

/* ---- every op.variant ---- */

static const char every_src[] =
	"; every op.variant of isa.h, and the aliases\n"
	"module every\n"
	"source \"every.rasm\"\n"
	"entry main\n"
	"const \"spare\"\n"
	"\n"
	"func helper 2\n"
	"\tret r0, 1\n"
	"end\n"
	"\n"
	"func inner 0 upvals x r2\n"
	"\tload.upval r0, x\n"
	"\tload.upval r0, 1\n"
	"\tret r0, 1\n"
	"end\n"
	"\n"
	"func main 0\n"
	"\t.reg x r5\n"
	"\tload.k r0, 42\n"
	"\tload.nil r1\n"
	"\tload.bool r2, true\n"
	"\tload.int r3, -7\n"
	"\tmove r4, r3\n"
	"\tload.move r4, r3\n"
	"\tload.env r6, \"helper\"\n"
	"\tload.k r7, 1.5\n"
	"\tarith.add r8, r0, r3\n"
	"\tarith.sub r8, r0, r3\n"
	"\tarith.mul r8, r0, r3\n"
	"\tarith.div r8, r0, r3\n"
	"\tarith.idiv r8, r0, r3\n"
	"\tarith.mod r8, r0, r3\n"
	"\tarith.neg r8, r0\n"
	"\tarith.band r8, r0, r3\n"
	"\tarith.bor r8, r0, r3\n"
	"\tarith.bxor r8, r0, r3\n"
	"\tarith.shl r8, r0, r3\n"
	"\tarith.shr r8, r0, r3\n"
	"\tarith.bnot r8, r0\n"
	"\tarith.tobytes r9, r0\n"
	"\tarith.concat r8, r9, r9\n"
	"\tarith.len r8, r9\n"
	"\tarith.toint r8, r7\n"
	"\tarith.tofloat r8, r0\n"
	"\tarith.not r8, r2\n"
	"\tarith.addi r8, r0, -2048\n"
	"\tcmp.eq r8, r0, r3\n"
	"\tcmp.ne r8, r0, r3\n"
	"\tcmp.lt r8, r0, r3\n"
	"\tcmp.le r8, r0, r3\n"
	"top:\n"
	"\tjmp.if r2, fwd\n"
	"\tjmp.ifnot r2, fwd\n"
	"\tjmp.lt r0, r3, fwd\n"
	"\tjmp.le r0, r3, fwd\n"
	"\tjmp.eq r0, r3, fwd\n"
	"\tjmp.ne r0, r3, top\n"
	"\tjmp fwd\n"
	"fwd:\n"
	"\tcall r6, 2, 1\n"
	"\tcall.value r6, 2, 0\n"
	"\tcall.f r10, 2, 1, helper\n"
	"\tcall.name r10, 2, 1, \"helper\"\n"
	"\tclosure r16, inner\n"
	"\tnew.array r11, 16\n"
	"\tnew.map r12\n"
	"\tnew.bytes r13, 64\n"
	"\tnew.list r14, r0, 3\n"
	"\tget r15, r14, r0\n"
	"\tget.index r15, r14, r0\n"
	"\tget.slice r15, r13, r0, r3\n"
	"\tget.imm r15, r14, 4\n"
	"\tget.find r15, r13, 10, r0\n"
	"\tset r12, r0, r3\n"
	"\tset.index r12, r0, r3\n"
	"\tset.append r11, r0\n"
	"\tcont.new r17, r16\n"
	"\tcont.resume r18, r17, r0\n"
	"\tcont.yield r18, r0\n"
	"\tcont.spawn r18, r16, r0\n"
	"\tcont.join r18, r18\n"
	"\tcont.pass\n"
	"\tio.open r19, \"/dev/stdin\"\n"
	"\tio.read r20, r19, r0\n"
	"\tio.write r20, r19, r20\n"
	"\tio.close r19\n"
	"\tio.seek r20, r19, r0, 2\n"
	"\tio.poll r20, r11\n"
	"\tio.line r20, r19\n"
	"\ttrap.assert r2, \"assert\"\n"
	"\tjmp.ifnot r2, t1\n"
	"\ttrap r0\n"
	"t1:\n"
	"\tjmp.if r2, t2\n"
	"\ttrap.reg r0\n"
	"t2:\n"
	"\tjmp.if r2, t3\n"
	"\tcall.ftail r10, 2, helper\n"
	"t3:\n"
	"\tjmp.if r2, t4\n"
	"\ttrap.k \"message\"\n"
	"t4:\n"
	"\tjmp.if r2, t5\n"
	"\tcall.tail r6, 2\n"
	"t5:\n"
	"\tret r0, 1\n"
	"end\n";

START_TEST(every_variant_assembles_and_covers_the_isa)
{
	struct vm_module m;
	assemble_ok(every_src, &m);
	bool seen[VM_NOPS][32] = {{false}};
	for (uint32_t i = 0; i < m.nfuncs; i++)
		for (uint32_t pc = 0; pc < m.funcs[i].ncode; pc++) {
			uint64_t w = m.funcs[i].code[pc];
			ck_assert_uint_lt(VM_OP(w), VM_NOPS);
			ck_assert_uint_lt(VM_E(w), vm_variant_count[VM_OP(w)]);
			seen[VM_OP(w)][VM_E(w)] = true;
		}
	for (unsigned op = 0; op < VM_NOPS; op++)
		for (unsigned e = 0; e < vm_variant_count[op]; e++)
			ck_assert_msg(seen[op][e], "%s.%s is not used", vm_op_names[op],
			              vm_variant_names[op][e]);
	ck_assert_str_eq(m.name, "every");
	ck_assert_str_eq(m.source, "every.rasm");
	ck_assert_uint_eq(m.entry, 2);
	/* inner's upvalues: main's r5 (by name) and r2. */
	ck_assert_uint_eq(m.funcs[1].nupvals, 2);
	ck_assert_uint_eq(m.funcs[1].upval_src[0], 5);
	ck_assert_uint_eq(m.funcs[1].upval_src[1], 2);
	ck_assert_uint_eq(VM_B(m.funcs[1].code[0]), 0);
	ck_assert_uint_eq(VM_B(m.funcs[1].code[1]), 1);
	vm_module_free(&m);
}
END_TEST

/* The exact words of a few forms, against isa.h's layout. */
START_TEST(operands_land_in_the_fields_isa_h_gives)
{
	struct vm_module m;
	assemble_ok("func f 2\n"
	            "\tload.int r1, -5\n"              /* 0 */
	            "\tload.int r2, 8388607\n"         /* 1 */
	            "\tload.bool r3, true\n"           /* 2 */
	            "\tarith.addi r0, r1, -1\n"        /* 3 */
	            "\tget.find r4, r5, 255, r6\n"     /* 4 */
	            "\tio.seek r1, r2, r3, 1\n"        /* 5 */
	            "\tio.close r7\n"                  /* 6 */
	            "\tcall.f r8, 2, 3, f\n"           /* 7 */
	            "\tnew.list r0, r1, 2\n"           /* 8 */
	            "\tload.k r0, \"s\"\n"             /* 9 */
	            "\ttrap.assert r0, \"s\"\n"        /* 10 */
	            "\tret r0, 1\n"                    /* 11 */
	            "end\n", &m);
	const uint64_t *c = m.funcs[0].code;
	ck_assert_uint_eq(c[0], vm_word_bx(VM_LOAD, 1, (uint32_t)-5 & 0xffffff, 0, 3));
	ck_assert_int_eq(VM_SBX(c[0]), -5);
	ck_assert_int_eq(VM_SBX(c[1]), 8388607);
	ck_assert_uint_eq(c[2], vm_word(VM_LOAD, 3, 1, 0, 0, 2));
	ck_assert_int_eq(VM_SC(c[3]), -1);
	ck_assert_uint_eq(c[3], vm_word(VM_ARITH, 0, 1, 0xfff, 0, 18));
	ck_assert_uint_eq(c[4], vm_word(VM_GET, 4, 5, 255, 6, 3));
	ck_assert_uint_eq(c[5], vm_word(VM_IO, 1, 2, 3, 1, 4));
	ck_assert_uint_eq(c[6], vm_word(VM_IO, 0, 7, 0, 0, 3));
	ck_assert_uint_eq(c[7], vm_word(VM_CALL, 8, 2, 3, 0, 2));
	ck_assert_uint_eq(c[8], vm_word(VM_NEW, 0, 1, 2, 0, 3));
	ck_assert_uint_eq(c[9], vm_word_bx(VM_LOAD, 0, 0, 0, 0));
	ck_assert_uint_eq(c[10], vm_word(VM_TRAP, 0, 0, 0, 0, 2));
	ck_assert_uint_eq(c[11], vm_word(VM_RET, 0, 1, 0, 0, 0));
	/* call.f r8 with 2 arguments and 3 results reaches r10. */
	ck_assert_uint_eq(m.funcs[0].nregs, 11);
	vm_module_free(&m);
}
END_TEST

START_TEST(every_variant_round_trips_through_the_disassembler)
{
	round_trip(every_src, strlen(every_src), "every.rasm");
}
END_TEST

/* ---- the examples ---- */

static void example_assembles(const char *path, const char *src, size_t len)
{
	struct vm_module m;
	int rc = vm_assemble(src, len, path, &m, err, sizeof err);
	ck_assert_msg(rc == 0, "%s", err);
	ck_assert_str_eq(m.source, path);
	ck_assert_str_eq(m.funcs[m.entry].name, "main");
	vm_module_free(&m);
}

START_TEST(examples_assemble_and_verify)
{
	ck_assert_int_ge(each_example(example_assembles), 4);
}
END_TEST

static void example_round_trips(const char *path, const char *src, size_t len)
{
	round_trip(src, len, path);
}

START_TEST(examples_round_trip_through_the_disassembler)
{
	ck_assert_int_ge(each_example(example_round_trips), 4);
}
END_TEST

/* ---- labels, constants, names, defaults ---- */

START_TEST(labels_forward_and_backward)
{
	struct vm_module m;
	assemble_ok("func main 0\n"
	            "back:\n"
	            "\tload.int r0, 1\n"        /* 0 */
	            "\tjmp fwd\n"               /* 1: to 3 */
	            "\tjmp back\n"              /* 2: to 0 */
	            "fwd: jmp.if r0, back\n"    /* 3: to 0 */
	            "\tjmp.lt r0, r0, here\n"   /* 4: to 5 */
	            "here:\n"
	            "\tjmp.always here\n"       /* 5: to itself */
	            "end\n", &m);
	const uint64_t *c = m.funcs[0].code;
	ck_assert_int_eq(VM_SBX(c[1]), 1);
	ck_assert_int_eq(VM_SBX(c[2]), -3);
	ck_assert_int_eq(VM_SBX(c[3]), -4);
	ck_assert_int_eq(VM_SBX(c[4]), 0);
	ck_assert_int_eq(VM_SBX(c[5]), -1);
	ck_assert_uint_eq(VM_A(c[4]), 0);
	ck_assert_uint_eq(VM_D(c[4]), 0);
	vm_module_free(&m);
}
END_TEST

START_TEST(constants_are_deduplicated_in_order_of_first_use)
{
	struct vm_module m;
	assemble_ok("func main 0\n"
	            "\tload.k r0, \"a\"\n"
	            "\tload.k r1, 5\n"
	            "\tload.k r2, \"a\"\n"
	            "\tload.k r3, 5.0\n"
	            "\tload.k r4, 0x5\n"
	            "\tload.env r5, \"a\"\n"
	            "\ttrap.assert r0, \"a\"\n"
	            "\tload.k r6, -0.0\n"
	            "\tload.k r7, 0.0\n"
	            "\tload.k r8, \"a\\0b\"\n"
	            "\tload.k r9, \"\"\n"
	            "\tret r0, 1\n"
	            "end\n", &m);
	ck_assert_uint_eq(m.nconsts, 7);
	ck_assert_uint_eq(m.consts[0].kind, VM_K_BYTES);
	ck_assert_uint_eq(m.consts[1].kind, VM_K_INT);
	ck_assert_int_eq(m.consts[1].u.i, 5);
	ck_assert_uint_eq(m.consts[2].kind, VM_K_FLOAT);
	ck_assert_uint_eq(m.consts[3].kind, VM_K_FLOAT); /* -0.0 is not 0.0 */
	ck_assert_uint_eq(m.consts[4].kind, VM_K_FLOAT);
	ck_assert_uint_eq(m.consts[5].len, 3);
	ck_assert_mem_eq(m.consts[5].u.bytes, "a\0b", 3);
	ck_assert_uint_eq(m.consts[6].len, 0);
	const uint64_t *c = m.funcs[0].code;
	static const uint32_t want[] = {0, 1, 0, 2, 1, 0};
	for (int i = 0; i < 6; i++)
		ck_assert_uint_eq(VM_BX(c[i]), want[i]);
	ck_assert_uint_eq(VM_D(c[6]), 0);
	vm_module_free(&m);
}
END_TEST

START_TEST(string_escapes_decode)
{
	struct vm_module m;
	assemble_ok("func main 0\n"
	            "\tload.k r0, \"\\n\\t\\r\\0\\\\\\\"\\x41\\xfF;#\"  ; a comment\n"
	            "\tret r0, 1  # another\n"
	            "end\n", &m);
	ck_assert_uint_eq(m.nconsts, 1);
	ck_assert_uint_eq(m.consts[0].len, 10);
	ck_assert_mem_eq(m.consts[0].u.bytes, "\n\t\r\0\\\"A\xff;#", 10);
	vm_module_free(&m);
}
END_TEST

START_TEST(const_directives_keep_the_pool_order)
{
	struct vm_module m;
	assemble_ok("const 7\nconst \"x\"\nconst 7\n"
	            "func main 0\n"
	            "\tload.k r0, \"x\"\n"
	            "\tload.k r0, k2\n"
	            "\tload.k r0, 7\n"
	            "\tret r0, 1\n"
	            "end\n", &m);
	ck_assert_uint_eq(m.nconsts, 3);
	ck_assert_uint_eq(VM_BX(m.funcs[0].code[0]), 1);
	ck_assert_uint_eq(VM_BX(m.funcs[0].code[1]), 2);
	ck_assert_uint_eq(VM_BX(m.funcs[0].code[2]), 0);
	vm_module_free(&m);
	const char *src = "const 7\nconst \"x\"\nconst 7\nconst 2.5\nconst nan\n"
	                  "func main 0\n\tload.k r0, k2\n\tload.k r0, k4\n\tret r0, 1\nend\n";
	round_trip(src, strlen(src), "t.rasm");
}
END_TEST

START_TEST(register_names_are_per_function)
{
	struct vm_module m;
	assemble_ok("func a 1\n"
	            "\t.reg n r0\n"
	            "\t.reg t 7\n"
	            "\tarith.add t, n, n\n"
	            "\tret t, 1\n"
	            "end\n"
	            "func main 0\n"
	            "\t.reg n r3\n"
	            "\tload.int n, 1\n"
	            "\tret n, 1\n"
	            "end\n", &m);
	ck_assert_uint_eq(m.funcs[0].code[0], vm_word(VM_ARITH, 7, 0, 0, 0, 0));
	ck_assert_uint_eq(m.funcs[0].nregs, 8);
	ck_assert_uint_eq(VM_A(m.funcs[1].code[0]), 3);
	ck_assert_uint_eq(m.funcs[1].nregs, 4);
	vm_module_free(&m);
	assemble_fails("func a 0\n\t.reg n r0\n\tret r0, 1\nend\nfunc main 0\n\tload.int n, 1\n"
	               "\tret r0, 1\nend\n", 6, "unknown register 'n'");
}
END_TEST

START_TEST(register_count_follows_use_params_and_regs)
{
	struct vm_module m;
	assemble_ok("func f 5\n\tret r0, 1\nend\n"
	            "func g 0\n\t.regs 9\n\tret r0, 1\nend\n"
	            "func h 0\n\tcall r10, 3, 0\n\tnew.list r1, r20, 4\n\tret r0, 1\nend\n"
	            "func main 0\n\tret r0, 0\nend\n", &m);
	ck_assert_uint_eq(m.funcs[0].nregs, 5);
	ck_assert_uint_eq(m.funcs[1].nregs, 9);
	ck_assert_uint_eq(m.funcs[2].nregs, 24);
	ck_assert_uint_eq(m.funcs[3].nregs, 1);
	ck_assert_uint_eq(m.entry, 3);
	vm_module_free(&m);
}
END_TEST

START_TEST(defaults_entry_main_else_first_and_name_from_the_file)
{
	struct vm_module m;
	const char *src = "func a 0\n\tret r0, 0\nend\nfunc b 0\n\tret r0, 0\nend\n";
	ck_assert_int_eq(vm_assemble(src, strlen(src), "dir/prog.rasm", &m, err, sizeof err), 0);
	ck_assert_uint_eq(m.entry, 0);
	ck_assert_str_eq(m.name, "prog");
	ck_assert_str_eq(m.source, "dir/prog.rasm");
	vm_module_free(&m);
	assemble_ok("module x\nentry b\nfunc a 0\n\tret r0, 0\nend\nfunc b 0\n\tret r0, 0\nend\n",
	            &m);
	ck_assert_uint_eq(m.entry, 1);
	ck_assert_str_eq(m.name, "x");
	vm_module_free(&m);
}
END_TEST

START_TEST(every_instruction_records_its_line)
{
	struct vm_module m;
	assemble_ok("; comment\n"
	            "\n"
	            "func main 0\n"
	            "\tload.int r0, 1\n"
	            "  # comment\n"
	            "l: load.int r1, 2\n"
	            "\n"
	            "\tret r0, 1\n"
	            "end\n", &m);
	ck_assert_uint_eq(m.funcs[0].ncode, 3);
	ck_assert_uint_eq(m.funcs[0].lines[0], 4);
	ck_assert_uint_eq(m.funcs[0].lines[1], 6);
	ck_assert_uint_eq(m.funcs[0].lines[2], 8);
	vm_module_free(&m);
}
END_TEST

START_TEST(quoted_names_round_trip)
{
	const char *src = "module \"my module\"\n"
	                  "source \"\"\n"
	                  "func \"two words\" 0\n\tret r0, 0\nend\n"
	                  "func r1 0\n\tret r0, 0\nend\n"
	                  "func main 0\n"
	                  "\tcall.f r0, 0, 0, \"two words\"\n"
	                  "\tcall.f r0, 0, 0, r1\n"
	                  "\tret r0, 0\nend\n";
	struct vm_module m;
	assemble_ok(src, &m);
	ck_assert_str_eq(m.name, "my module");
	ck_assert_str_eq(m.source, "");
	ck_assert_str_eq(m.funcs[0].name, "two words");
	ck_assert_uint_eq(VM_D(m.funcs[2].code[0]), 0);
	ck_assert_uint_eq(VM_D(m.funcs[2].code[1]), 1);
	vm_module_free(&m);
	round_trip(src, strlen(src), "t.rasm");
}
END_TEST

START_TEST(floats_round_trip_exactly)
{
	const char *src = "func main 0\n"
	                  "\tload.k r0, 0.1\n"
	                  "\tload.k r0, 1e300\n"
	                  "\tload.k r0, -2.5e-300\n"
	                  "\tload.k r0, 3.0\n"
	                  "\tload.k r0, inf\n"
	                  "\tload.k r0, -inf\n"
	                  "\tload.k r0, 0x1.8p2\n"
	                  "\tload.k r0, 4.9e-324\n"
	                  "\tload.k r0, -9223372036854775808\n"
	                  "\tload.k r0, 9223372036854775807\n"
	                  "\tret r0, 1\nend\n";
	struct vm_module m;
	assemble_ok(src, &m);
	ck_assert_uint_eq(m.nconsts, 10);
	ck_assert(m.consts[3].u.f == 3.0);
	ck_assert(m.consts[6].u.f == 6.0);
	ck_assert_int_eq(m.consts[8].u.i, INT64_MIN);
	vm_module_free(&m);
	round_trip(src, strlen(src), "t.rasm");
}
END_TEST

/* ---- errors: one test per class, each with its exact line ---- */

START_TEST(error_int_too_big_for_load_int_suggests_load_k)
{
	assemble_fails("func main 0\n\tload.int r0, 1\n\tload.int r0, 8388608\n\tret r0, 1\nend\n",
	               3, "use load.k");
	assemble_fails("func main 0\n\tload.int r0, -8388609\n\tret r0, 1\nend\n", 2,
	               "use load.k");
	assemble_fails("func main 0\n\tload.k r0, 9223372036854775808\n\tret r0, 1\nend\n", 2,
	               "does not fit in 64 bits");
}
END_TEST

START_TEST(error_immediate_out_of_range)
{
	assemble_fails("func main 0\n\tarith.addi r0, r0, 2048\n\tret r0, 1\nend\n", 2,
	               "-2048..2047");
	assemble_fails("func main 0\n\tget.find r0, r0, 256, r0\n\tret r0, 1\nend\n", 2,
	               "0..255");
	assemble_fails("func main 0\n\tnew.array r0, 4096\n\tret r0, 1\nend\n", 2, "0..4095");
	assemble_fails("func main 0\n\tio.seek r0, r0, r0, 3\n\tret r0, 1\nend\n", 2,
	               "0, 1 or 2");
}
END_TEST

START_TEST(error_label_too_far)
{
	/* A jump over 2^23 instructions: one more than SBX reaches. */
	const size_t n = 8388608;
	const char head[] = "func main 0\n\tjmp far\n";
	const char body[] = "cont.pass\n";
	const char tail[] = "far: ret r0, 0\nend\n";
	size_t len = sizeof head - 1 + n * (sizeof body - 1) + sizeof tail - 1;
	char *src = malloc(len + 1);
	ck_assert_ptr_nonnull(src);
	char *p = src;
	memcpy(p, head, sizeof head - 1);
	p += sizeof head - 1;
	for (size_t i = 0; i < n; i++, p += sizeof body - 1)
		memcpy(p, body, sizeof body - 1);
	memcpy(p, tail, sizeof tail);
	struct vm_module m;
	int rc = vm_assemble(src, len, "t.rasm", &m, err, sizeof err);
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_msg(strncmp(err, "t.rasm:2: label 'far' is too far", 32) == 0, "%s", err);
	free(src);
}
END_TEST

START_TEST(error_register_beyond_4095)
{
	assemble_fails("func main 0\n\tload.int r4096, 1\n\tret r0, 1\nend\n", 2, "beyond r4095");
	assemble_fails("func main 0\n\n\tcall r4000, 100, 1\n\tret r0, 1\nend\n", 3,
	               "reaches r4100");
	assemble_fails("func main 0\n\t.reg x 4096\n\tret r0, 1\nend\n", 2, "beyond r4095");
	assemble_fails("func f 0 upvals r4096\n\tret r0, 1\nend\n", 1, "beyond r4095");
}
END_TEST

START_TEST(error_unknown_label)
{
	assemble_fails("func main 0\n\tload.int r0, 1\n\tjmp.if r0, nowhere\n\tret r0, 1\nend\n",
	               3, "unknown label 'nowhere'");
	/* Labels are per function. */
	assemble_fails("func a 0\nx:\n\tret r0, 0\nend\nfunc main 0\n\tjmp x\nend\n", 6,
	               "unknown label 'x'");
}
END_TEST

START_TEST(error_duplicate_label_or_function)
{
	assemble_fails("func main 0\nx:\n\tload.nil r0\nx:\n\tret r0, 1\nend\n", 4,
	               "already defined at line 2");
	assemble_fails("func main 0\n\tret r0, 0\nend\nfunc main 0\n\tret r0, 0\nend\n", 4,
	               "already defined at line 1");
}
END_TEST

START_TEST(error_unknown_function)
{
	assemble_fails("func main 0\n\tcall.f r0, 0, 1, nothere\n\tret r0, 1\nend\n", 2,
	               "unknown function 'nothere'");
	assemble_fails("func main 0\n\tclosure r0, nothere\n\tret r0, 1\nend\n", 2,
	               "unknown function 'nothere'");
	assemble_fails("entry nothere\nfunc main 0\n\tret r0, 1\nend\n", 1,
	               "unknown function 'nothere'");
}
END_TEST

START_TEST(error_unknown_register_name)
{
	assemble_fails("func main 0\n\t.reg a r1\n\tmove r0, bogus\n\tret r0, 1\nend\n", 3,
	               "unknown register 'bogus'");
	/* A name counts from its .reg on. */
	assemble_fails("func main 0\n\tmove r0, a\n\t.reg a r1\n\tret r0, 1\nend\n", 2,
	               "unknown register 'a'");
}
END_TEST

START_TEST(error_unknown_upvalue_name)
{
	assemble_fails("func f 0 upvals v\n\tret r0, 0\nend\n"
	               "func main 0\n\tclosure r0, f\n\tret r0, 1\nend\n", 5,
	               "upvalue 'v' of 'f' is not a register name");
	assemble_fails("func f 0 upvals v\n\tret r0, 0\nend\n"
	               "func main 0\n\tret r0, 1\nend\n", 1, "no closure makes 'f'");
	assemble_fails("func f 0 upvals v\n\tret r0, 0\nend\n"
	               "func main 0\n\t.reg v r1\n\tclosure r0, f\n\t.reg v r2\n"
	               "\tclosure r0, f\n\tret r0, 1\nend\n", 8, "is r2 here but r1 at line 6");
}
END_TEST

START_TEST(error_wrong_operand_count)
{
	assemble_fails("func main 0\n\tarith.add r0, r1\n\tret r0, 1\nend\n", 2,
	               "arith.add takes 3 operands (a register, a register, a register), got 2");
	assemble_fails("func main 0\n\tcont.pass r0\n\tret r0, 1\nend\n", 2,
	               "cont.pass takes 0 operands, got 1");
	assemble_fails("func main 0\n\tload.nil r0,\n\tret r0, 1\nend\n", 2, "a ',' ends");
	assemble_fails("func main 0\n\tarith.add r0,, r1\n\tret r0, 1\nend\n", 2, "is missing");
	assemble_fails("func main 0\n\tarith.add r0 r1, r2\n\tret r0, 1\nend\n", 2,
	               "expected ','");
}
END_TEST

START_TEST(error_wrong_operand_kind)
{
	assemble_fails("func main 0\n\tload.int r0, \"x\"\n\tret r0, 1\nend\n", 2,
	               "expected an integer");
	assemble_fails("func main 0\n\tarith.add r0, r1, 5\n\tret r0, 1\nend\n", 2,
	               "expected a register");
	assemble_fails("func main 0\n\tload.env r0, 5\n\tret r0, 1\nend\n", 2,
	               "expected a string constant");
	assemble_fails("func main 0\n\tload.bool r0, yes\n\tret r0, 1\nend\n", 2,
	               "expected true or false");
	assemble_fails("func main 0\n\tload.k r0, k0\n\tret r0, 1\nend\n", 2,
	               "constant 'k0' is not defined");
	assemble_fails("func main 0\n\tjmp \"x\"\n\tret r0, 1\nend\n", 2, "expected a label");
}
END_TEST

START_TEST(error_unknown_instruction_or_variant)
{
	assemble_fails("func main 0\n\tfrob r0\n\tret r0, 1\nend\n", 2,
	               "unknown instruction 'frob'");
	assemble_fails("func main 0\n\tarith.pow r0, r0, r0\n\tret r0, 1\nend\n", 2,
	               "unknown variant 'arith.pow'");
	assemble_fails("func main 0\n\tarith r0, r0, r0\n\tret r0, 1\nend\n", 2,
	               "'arith' needs a variant: arith.add, arith.sub");
}
END_TEST

START_TEST(error_bad_string)
{
	assemble_fails("func main 0\n\tload.k r0, \"abc\n\tret r0, 1\nend\n", 2,
	               "unterminated string");
	assemble_fails("func main 0\n\tload.k r0, \"\\q\"\n\tret r0, 1\nend\n", 2,
	               "unknown escape '\\q'");
	assemble_fails("func main 0\n\tload.k r0, \"\\x4\"\n\tret r0, 1\nend\n", 2,
	               "two hex digits");
}
END_TEST

START_TEST(error_structure)
{
	assemble_fails("\n\nfunc main 0\n\tret r0, 1\n", 3, "has no 'end'");
	assemble_fails("func main 0\n\tret r0, 1\nend\nend\n", 4, "'end' outside a function");
	assemble_fails("load.nil r0\nfunc main 0\n\tret r0, 1\nend\n", 1, "outside a function");
	assemble_fails("func a 0\nfunc b 0\n", 2, "'func' inside function");
	assemble_fails("; nothing\n", 1, "no function");
	assemble_fails("func main 0\nend\n", 1, "has no instructions");
	assemble_fails("func main 0\n\tret r0, 1\n\tmodule x\nend\n", 3, "inside a function");
	assemble_fails("func main 0\nl: end\n", 2, "a label must be followed by an instruction");
	assemble_fails("func main 0\n\tret r0, 0\nend\nfunc \"\" 0\n", 4, "cannot be empty");
	assemble_fails("module \"\"\nfunc main 0\n\tret r0, 0\nend\n", 1, "cannot be empty");
	assemble_fails("func \"\\xff\" 0\n\tret r0, 0\nend\n", 1, "is not UTF-8");
}
END_TEST

START_TEST(error_from_the_verifier_names_the_instruction_line)
{
	/* Falls off the end: the last instruction's line. */
	assemble_fails("func main 0\n\tload.int r0, 1\n\n\tload.int r1, 2\nend\n", 4,
	               "function 'main', pc 1 (load.int): the last instruction can fall off");
	/* ret with nothing returned must name r0. */
	assemble_fails("func main 0\n\tload.int r3, 1\n\tret r3, 0\nend\n", 3, "pc 1 (ret)");
	/* .regs smaller than what the code uses. */
	assemble_fails("func main 0\n\t.regs 2\n\tload.int r0, 1\n\tload.int r5, 1\n"
	               "\tret r0, 1\nend\n", 4, "register 5 is outside 0..1");
	/* A direct call of a function that has upvalues. */
	assemble_fails("func f 0 upvals r0\n\tret r0, 0\nend\n"
	               "func main 0\n\tcall.f r0, 0, 0, f\n\tret r0, 0\nend\n", 5,
	               "has 1 upvalues");
	/* The entry function has upvalues: its header's line. */
	assemble_fails("func main 0 upvals r0\n\tret r0, 0\nend\n", 1, "the entry function");
}
END_TEST

static Suite *asm_suite(void)
{
	Suite *s = suite_create("vm-asm");

	TCase *a = tcase_create("assemble");
	tcase_add_test(a, every_variant_assembles_and_covers_the_isa);
	tcase_add_test(a, operands_land_in_the_fields_isa_h_gives);
	tcase_add_test(a, examples_assemble_and_verify);
	tcase_add_test(a, labels_forward_and_backward);
	tcase_add_test(a, constants_are_deduplicated_in_order_of_first_use);
	tcase_add_test(a, string_escapes_decode);
	tcase_add_test(a, const_directives_keep_the_pool_order);
	tcase_add_test(a, register_names_are_per_function);
	tcase_add_test(a, register_count_follows_use_params_and_regs);
	tcase_add_test(a, defaults_entry_main_else_first_and_name_from_the_file);
	tcase_add_test(a, every_instruction_records_its_line);
	suite_add_tcase(s, a);

	TCase *r = tcase_create("round_trip");
	tcase_add_test(r, every_variant_round_trips_through_the_disassembler);
	tcase_add_test(r, examples_round_trip_through_the_disassembler);
	tcase_add_test(r, quoted_names_round_trip);
	tcase_add_test(r, floats_round_trip_exactly);
	suite_add_tcase(s, r);

	TCase *e = tcase_create("errors");
	tcase_set_timeout(e, 50);
	tcase_add_test(e, error_int_too_big_for_load_int_suggests_load_k);
	tcase_add_test(e, error_immediate_out_of_range);
	tcase_add_test(e, error_label_too_far);
	tcase_add_test(e, error_register_beyond_4095);
	tcase_add_test(e, error_unknown_label);
	tcase_add_test(e, error_duplicate_label_or_function);
	tcase_add_test(e, error_unknown_function);
	tcase_add_test(e, error_unknown_register_name);
	tcase_add_test(e, error_unknown_upvalue_name);
	tcase_add_test(e, error_wrong_operand_count);
	tcase_add_test(e, error_wrong_operand_kind);
	tcase_add_test(e, error_unknown_instruction_or_variant);
	tcase_add_test(e, error_bad_string);
	tcase_add_test(e, error_structure);
	tcase_add_test(e, error_from_the_verifier_names_the_instruction_line);
	suite_add_tcase(s, e);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(asm_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
