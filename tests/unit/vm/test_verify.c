/*
 * test_verify.c - the loader's verifier (vm/verify.c): each bound that
 * keeps crafted bytecode inside its registers, constants, functions,
 * upvalues and code, and the one-encoding rule (unused fields are 0).
 *
 * Every test builds a module in C: F0 "main" holds the code under test
 * (its regs vary), F1 "helper" (4 regs, no upvals), F2 "inner" (2 regs,
 * upvals captured from registers 0 and 3 of whoever makes the closure).
 * Constants: K0 int 7, K1 float 1.5, K2 bytes "print", K3 bytes "stdout".
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "isa.h"
#include "module.h"
#include "verify.h"

/* ---- helpers ---- */

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

static void add_bytes(struct vm_module *m, const char *s)
{
	struct vm_const k = {.kind = VM_K_BYTES, .len = (uint32_t)strlen(s)};
	k.u.bytes = (uint8_t *)dupstr(s);
	add_const(m, k);
}

static struct vm_func *add_func(struct vm_module *m, const char *name, uint32_t params,
                                uint32_t regs, const uint32_t *upv, uint32_t nupv,
                                const uint64_t *code, uint32_t ncode)
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
	if (ncode) {
		f->code = malloc(ncode * sizeof *code);
		ck_assert_ptr_nonnull(f->code);
		memcpy(f->code, code, ncode * sizeof *code);
		f->ncode = ncode;
	}
	return f;
}

#define RET0 vm_word(VM_RET, 0, 0, 0, 0, 0)

/* The standard module around main's code. */
static void build(struct vm_module *m, uint32_t regs, const uint64_t *code, uint32_t n)
{
	const uint64_t ret[] = {RET0};
	static const uint32_t inner_up[] = {0, 3};

	memset(m, 0, sizeof *m);
	m->name = dupstr("t");
	m->source = dupstr("t.rasm");
	add_const(m, (struct vm_const){.kind = VM_K_INT, .u.i = 7});
	add_const(m, (struct vm_const){.kind = VM_K_FLOAT, .u.f = 1.5});
	add_bytes(m, "print");
	add_bytes(m, "stdout");
	add_func(m, "main", 0, regs, NULL, 0, code, n);
	add_func(m, "helper", 0, 4, NULL, 0, ret, 1);
	add_func(m, "inner", 1, 2, inner_up, 2, ret, 1);
}

static int verify_code(uint32_t regs, const uint64_t *code, uint32_t n)
{
	struct vm_module m;
	build(&m, regs, code, n);
	memset(err, 0, sizeof err);
	int r = vm_verify(&m, err, sizeof err);
	vm_module_free(&m);
	return r;
}

#define CODE(...) ((const uint64_t[]){__VA_ARGS__})
#define NCODE(...) ((uint32_t)(sizeof CODE(__VA_ARGS__) / sizeof(uint64_t)))
#define V(regs, ...) verify_code(regs, CODE(__VA_ARGS__), NCODE(__VA_ARGS__))

#define ACCEPTS(regs, ...) \
	ck_assert_msg(V(regs, __VA_ARGS__) == 0, "rejected: %s", err)

#define REJECTS(phrase, regs, ...)                                                     \
	do {                                                                             \
		ck_assert_int_eq(V(regs, __VA_ARGS__), -EINVAL);                         \
		ck_assert_msg(strstr(err, phrase) != NULL, "error \"%s\" lacks \"%s\"", err, \
		              phrase);                                                   \
	} while (0)

#define W vm_word
#define WBX vm_word_bx

/* ---- the valid forms ---- */

START_TEST(every_variant_in_a_valid_form_is_accepted)
{
	/* 8 registers; one instruction per variant, in isa.h's order. */
	ACCEPTS(8,
		WBX(VM_LOAD, 1, 0, 0, 0), W(VM_LOAD, 1, 0, 0, 0, 1), W(VM_LOAD, 1, 1, 0, 0, 2),
		WBX(VM_LOAD, 1, (uint32_t)-5 & 0xffffff, 0, 3), W(VM_LOAD, 1, 2, 0, 0, 4),
		WBX(VM_LOAD, 1, 2, 0, 6),
		W(VM_ARITH, 1, 2, 3, 0, 0), W(VM_ARITH, 1, 2, 0, 0, 6), W(VM_ARITH, 1, 2, 3, 0, 13),
		W(VM_ARITH, 1, 2, 0, 0, 17), W(VM_ARITH, 1, 2, 0xfff, 0, 18),
		W(VM_ARITH, 1, 2, 0, 0, 19),
		W(VM_CMP, 1, 2, 3, 0, 3),
		WBX(VM_JMP, 0, 0, 0, 0), WBX(VM_JMP, 1, 0, 0, 1), WBX(VM_JMP, 1, 0, 0, 2),
		WBX(VM_JMP, 1, 0, 2, 3), WBX(VM_JMP, 1, 0, 2, 6),
		W(VM_CALL, 1, 2, 3, 0, 0), W(VM_CALL, 1, 2, 3, 1, 2), W(VM_CALL, 1, 2, 3, 2, 4),
		WBX(VM_CLOSURE, 4, 2, 0, 0),
		W(VM_NEW, 1, 100, 0, 0, 0), W(VM_NEW, 1, 0, 0, 0, 1), W(VM_NEW, 1, 100, 0, 0, 2),
		W(VM_NEW, 1, 2, 6, 0, 3), W(VM_NEW, 1, 0, 0, 0, 3),
		W(VM_GET, 1, 2, 3, 0, 0), W(VM_GET, 1, 2, 3, 4, 1), W(VM_GET, 1, 2, 4000, 0, 2),
		W(VM_GET, 1, 2, 255, 4, 3),
		W(VM_SET, 1, 2, 3, 0, 0), W(VM_SET, 1, 2, 0, 0, 1),
		W(VM_CONT, 1, 2, 0, 0, 0), W(VM_CONT, 1, 2, 3, 0, 1), W(VM_CONT, 1, 2, 0, 0, 2),
		W(VM_CONT, 1, 2, 3, 0, 3), W(VM_CONT, 1, 2, 0, 0, 4), W(VM_CONT, 0, 0, 0, 0, 5),
		WBX(VM_IO, 1, 3, 0, 0), W(VM_IO, 1, 2, 3, 0, 1), W(VM_IO, 1, 2, 3, 0, 2),
		W(VM_IO, 0, 2, 0, 0, 3), W(VM_IO, 1, 2, 3, 2, 4), W(VM_IO, 1, 2, 0, 0, 5),
		W(VM_IO, 1, 2, 0, 0, 6),
		W(VM_TRAP, 1, 0, 0, 2, 2),
		W(VM_RET, 0, 8, 0, 0, 0));
}
END_TEST

START_TEST(every_terminal_form_may_end_a_function)
{
	ACCEPTS(4, WBX(VM_JMP, 0, (uint32_t)-1 & 0xffffff, 0, 0));
	ACCEPTS(4, RET0);
	ACCEPTS(4, W(VM_RET, 1, 3, 0, 0, 0));
	ACCEPTS(4, W(VM_CALL, 0, 3, 0, 0, 1));
	ACCEPTS(4, W(VM_CALL, 0, 3, 0, 1, 3));
	ACCEPTS(4, W(VM_TRAP, 3, 0, 0, 0, 0));
	ACCEPTS(4, WBX(VM_TRAP, 0, 2, 0, 1));
}
END_TEST

START_TEST(registers_at_the_last_index_and_ranges_that_just_fit_are_accepted)
{
	ACCEPTS(4, W(VM_ARITH, 3, 3, 3, 0, 0), RET0);
	ACCEPTS(4, W(VM_CALL, 0, 3, 4, 0, 0), RET0);         /* R[0..3] */
	ACCEPTS(4, W(VM_CALL, 3, 0, 1, 1, 2), RET0);         /* results R[3] */
	ACCEPTS(4, W(VM_NEW, 0, 0, 4, 0, 3), RET0);          /* R[0..3] */
	ACCEPTS(4, W(VM_RET, 0, 4, 0, 0, 0));
	ACCEPTS(VM_MAX_REGS, W(VM_LOAD, 4095, 4095, 0, 0, 4), RET0);
}
END_TEST

START_TEST(a_load_k_may_name_a_constant_of_any_kind)
{
	ACCEPTS(2, WBX(VM_LOAD, 0, 0, 0, 0), WBX(VM_LOAD, 0, 1, 0, 0), WBX(VM_LOAD, 0, 2, 0, 0),
	        RET0);
}
END_TEST

START_TEST(the_entry_may_take_parameters)
{
	struct vm_module m;
	build(&m, 4, CODE(RET0), 1);
	m.funcs[0].nparams = 4;
	ck_assert_int_eq(vm_verify(&m, err, sizeof err), 0);
	vm_module_free(&m);
}
END_TEST

/* ---- opcode and variant ---- */

START_TEST(opcode_beyond_the_instruction_set_is_rejected)
{
	REJECTS("opcode 13 is not an instruction", 4, W(13, 0, 0, 0, 0, 0), RET0);
	REJECTS("opcode 255 is not an instruction", 4, W(255, 0, 0, 0, 0, 0), RET0);
}
END_TEST

START_TEST(variant_beyond_the_opcodes_count_is_rejected)
{
	static const unsigned op[] = {VM_LOAD, VM_ARITH, VM_CMP, VM_JMP, VM_CALL, VM_RET,
	                              VM_CLOSURE, VM_NEW, VM_GET, VM_SET, VM_CONT, VM_IO,
	                              VM_TRAP};
	for (unsigned i = 0; i < VM_NOPS; i++) {
		char want[64];
		snprintf(want, sizeof want, "(%s): variant %u is outside", vm_op_names[op[i]],
		         vm_variant_count[op[i]]);
		REJECTS(want, 4, W(op[i], 0, 0, 0, 0, vm_variant_count[op[i]]), RET0);
	}
	REJECTS("variant 255", 4, W(VM_LOAD, 0, 0, 0, 0, 255), RET0);
}
END_TEST

/* ---- registers ---- */

START_TEST(register_operands_beyond_regs_are_rejected)
{
	REJECTS("A: register 4 is outside 0..3", 4, W(VM_LOAD, 4, 0, 0, 0, 1), RET0);
	REJECTS("B: register 4 is outside 0..3", 4, W(VM_LOAD, 0, 4, 0, 0, 4), RET0);
	REJECTS("C: register 9 is outside 0..3", 4, W(VM_ARITH, 0, 1, 9, 0, 2), RET0);
	REJECTS("D: register 4 is outside 0..3", 4, W(VM_GET, 0, 1, 2, 4, 1), RET0);
	REJECTS("D: register 4095 is outside", 4, WBX(VM_JMP, 0, 0, 4095, 5), RET0);
	REJECTS("A: register 4", 4, WBX(VM_JMP, 4, 0, 0, 1), RET0);
	REJECTS("A: register 4", 4, WBX(VM_CLOSURE, 4, 1, 0, 0), RET0);
	REJECTS("B: register 4", 4, W(VM_IO, 0, 4, 0, 0, 3), RET0);
	REJECTS("A: register 4", 4, W(VM_TRAP, 4, 0, 0, 2, 2), RET0);
	REJECTS("D: register 7", 4, W(VM_GET, 0, 1, 65, 7, 3), RET0);
}
END_TEST

START_TEST(call_value_callee_and_arguments_beyond_regs_are_rejected)
{
	/* A=1, B=3: R[1..4] with 4 registers. */
	REJECTS("callee and arguments R[1..4] are outside registers 0..3", 4,
	        W(VM_CALL, 1, 3, 0, 0, 0), RET0);
	REJECTS("callee and arguments R[2..5]", 4, W(VM_CALL, 2, 3, 0, 0, 1));
	REJECTS("A: register 4", 4, W(VM_CALL, 4, 0, 0, 0, 0), RET0);
}
END_TEST

START_TEST(call_results_beyond_regs_are_rejected)
{
	REJECTS("results R[2..4] are outside registers 0..3", 4, W(VM_CALL, 2, 0, 3, 0, 0),
	        RET0);
	REJECTS("results R[3..4]", 4, W(VM_CALL, 3, 0, 2, 1, 2), RET0);
	REJECTS("results R[0..4]", 4, W(VM_CALL, 0, 0, 5, 2, 4), RET0);
}
END_TEST

START_TEST(direct_call_arguments_beyond_regs_are_rejected)
{
	REJECTS("arguments R[2..4] are outside registers 0..3", 4, W(VM_CALL, 1, 3, 0, 1, 2),
	        RET0);
	REJECTS("arguments R[4..4]", 4, W(VM_CALL, 3, 1, 0, 1, 3));
	REJECTS("arguments R[1..4]", 4, W(VM_CALL, 0, 4, 0, 2, 4), RET0);
	/* B = 0 at the last register: nothing passed, fine. */
	ACCEPTS(4, W(VM_CALL, 3, 0, 0, 1, 3));
}
END_TEST

START_TEST(ret_range_beyond_regs_is_rejected)
{
	REJECTS("returned values R[2..4] are outside registers 0..3", 4,
	        W(VM_RET, 2, 3, 0, 0, 0));
	REJECTS("returned values R[4095..4097]", 4, W(VM_RET, 4095, 3, 0, 0, 0));
}
END_TEST

START_TEST(new_list_range_beyond_regs_is_rejected)
{
	REJECTS("list items R[1..4] are outside registers 0..3", 4, W(VM_NEW, 0, 1, 4, 0, 3),
	        RET0);
	REJECTS("list items R[4095..4095]", 4, W(VM_NEW, 0, 4095, 1, 0, 3), RET0);
}
END_TEST

/* ---- constants ---- */

START_TEST(constant_index_beyond_the_constants_is_rejected)
{
	REJECTS("BX: constant 4 is outside the module's 4 constants", 4,
	        WBX(VM_LOAD, 0, 4, 0, 0), RET0);
	REJECTS("BX: constant 16777215", 4, WBX(VM_LOAD, 0, 0xffffff, 0, 0), RET0);
	REJECTS("D: constant 4", 4, W(VM_CALL, 0, 0, 0, 4, 4), RET0);
	REJECTS("D: constant 4000", 4, W(VM_TRAP, 0, 0, 0, 4000, 2), RET0);
	REJECTS("BX: constant 5", 4, WBX(VM_IO, 0, 5, 0, 0), RET0);
	REJECTS("BX: constant 4", 4, WBX(VM_TRAP, 0, 4, 0, 1));
}
END_TEST

START_TEST(names_and_messages_must_be_bytes_constants)
{
	REJECTS("(load.env): BX: constant 0 must be bytes, not an int", 4,
	        WBX(VM_LOAD, 0, 0, 0, 6), RET0);
	REJECTS("(call.name): D: constant 1 must be bytes, not a float", 4,
	        W(VM_CALL, 0, 0, 0, 1, 4), RET0);
	REJECTS("(io.open): BX: constant 0 must be bytes", 4, WBX(VM_IO, 0, 0, 0, 0), RET0);
	REJECTS("(trap.k): BX: constant 1 must be bytes", 4, WBX(VM_TRAP, 0, 1, 0, 1));
	REJECTS("(trap.assert): D: constant 0 must be bytes", 4, W(VM_TRAP, 0, 0, 0, 0, 2),
	        RET0);
}
END_TEST

/* ---- functions and upvalues ---- */

START_TEST(function_index_beyond_the_functions_is_rejected)
{
	REJECTS("(closure): BX: function 3 is outside the module's 3 functions", 4,
	        WBX(VM_CLOSURE, 0, 3, 0, 0), RET0);
	REJECTS("BX: function 65536", 4, WBX(VM_CLOSURE, 0, 65536, 0, 0), RET0);
	REJECTS("(call.f): D: function 3 is outside", 4, W(VM_CALL, 0, 0, 0, 3, 2), RET0);
	REJECTS("(call.ftail): D: function 4095", 4, W(VM_CALL, 0, 0, 0, 4095, 3));
}
END_TEST

START_TEST(upvalue_index_beyond_the_functions_upvals_is_rejected)
{
	/* main has none. */
	REJECTS("(load.upval): B: upvalue 0 is outside the function's 0 upvalues", 4,
	        W(VM_LOAD, 0, 0, 0, 0, 5), RET0);

	/* inner has 2: U[1] is fine, U[2] is not. */
	struct vm_module m;
	build(&m, 4, CODE(RET0), 1);
	m.funcs[2].code[0] = W(VM_LOAD, 0, 1, 0, 0, 5);
	m.funcs[2].code = realloc(m.funcs[2].code, 2 * sizeof(uint64_t));
	m.funcs[2].code[1] = RET0;
	m.funcs[2].ncode = 2;
	ck_assert_int_eq(vm_verify(&m, err, sizeof err), 0);
	m.funcs[2].code[0] = W(VM_LOAD, 0, 2, 0, 0, 5);
	ck_assert_int_eq(vm_verify(&m, err, sizeof err), -EINVAL);
	ck_assert_str_eq(err, "function 'inner', pc 0 (load.upval): B: upvalue 2 is outside "
	                      "the function's 2 upvalues");
	vm_module_free(&m);
}
END_TEST

START_TEST(closure_capturing_a_register_beyond_the_current_regs_is_rejected)
{
	/* inner captures R[0] and R[3]: main needs 4 registers. */
	ACCEPTS(4, WBX(VM_CLOSURE, 0, 2, 0, 0), RET0);
	REJECTS("function 'inner' captures register 3 (upvals[1]), outside this function's "
	        "registers 0..2", 3, WBX(VM_CLOSURE, 0, 2, 0, 0), RET0);
}
END_TEST

START_TEST(direct_call_of_a_function_with_upvalues_is_rejected)
{
	REJECTS("calls function 'inner' directly, but it has 2 upvalues", 4,
	        W(VM_CALL, 0, 0, 0, 2, 2), RET0);
	REJECTS("calls function 'inner' directly", 4, W(VM_CALL, 0, 0, 0, 2, 3));
}
END_TEST

START_TEST(entry_function_with_upvalues_is_rejected)
{
	struct vm_module m;
	build(&m, 4, CODE(RET0), 1);
	m.entry = 2;
	ck_assert_int_eq(vm_verify(&m, err, sizeof err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "the entry function 'inner' has 2 upvalues"));
	vm_module_free(&m);
}
END_TEST

START_TEST(two_functions_with_one_name_are_rejected)
{
	struct vm_module m;
	build(&m, 4, CODE(RET0), 1);
	free(m.funcs[2].name);
	m.funcs[2].name = dupstr("helper"); /* load.env "helper" would be ambiguous */
	ck_assert_int_eq(vm_verify(&m, err, sizeof err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "functions 1 and 2 are both named 'helper'"));
	vm_module_free(&m);
}
END_TEST

/* ---- jumps and the end ---- */

START_TEST(jump_target_outside_the_code_is_rejected)
{
	/* pc 1 of 3: target 1 + 1 + SBX must be in 0..2. */
	ACCEPTS(4, RET0, WBX(VM_JMP, 0, 0xffffff & (uint32_t)-2, 0, 0), RET0);
	ACCEPTS(4, RET0, WBX(VM_JMP, 0, 0, 0, 0), RET0);
	REJECTS("function 'main', pc 1 (jmp.always): jump target -1 is outside 0..2", 4, RET0,
	        WBX(VM_JMP, 0, 0xffffff & (uint32_t)-3, 0, 0), RET0);
	REJECTS("pc 1 (jmp.if): jump target 3 is outside 0..2", 4, RET0,
	        WBX(VM_JMP, 0, 1, 0, 1), RET0);
	REJECTS("pc 1 (jmp.lt): jump target 8388609 is outside 0..2", 4, RET0,
	        WBX(VM_JMP, 0, 0x7fffff, 1, 3), RET0);
	REJECTS("jump target -8388606", 4, RET0, WBX(VM_JMP, 0, 0x800000, 1, 6), RET0);
}
END_TEST

START_TEST(a_function_that_can_fall_off_its_end_is_rejected)
{
	REJECTS("pc 0 (load.nil): the last instruction can fall off the end", 4,
	        W(VM_LOAD, 0, 0, 0, 0, 1));
	REJECTS("pc 1 (jmp.if): the last instruction can fall off", 4, RET0,
	        WBX(VM_JMP, 0, 0xffffff & (uint32_t)-2, 0, 1));
	REJECTS("(call.value): the last instruction can fall off", 4, W(VM_CALL, 0, 0, 0, 0, 0));
	REJECTS("(call.f): the last instruction can fall off", 4, W(VM_CALL, 0, 0, 0, 1, 2));
	REJECTS("(trap.assert): the last instruction can fall off", 4,
	        W(VM_TRAP, 0, 0, 0, 2, 2));
	REJECTS("(cont.yield): the last instruction can fall off", 4, W(VM_CONT, 0, 0, 0, 0, 2));
}
END_TEST

/* ---- one encoding: unused fields and small immediates ---- */

START_TEST(unused_operand_fields_must_be_zero)
{
	REJECTS("(load.nil): B is unused and must be 0, not 1", 4, W(VM_LOAD, 0, 1, 0, 0, 1),
	        RET0);
	REJECTS("(load.k): D is unused", 4, WBX(VM_LOAD, 0, 0, 1, 0), RET0);
	REJECTS("(load.int): D is unused", 4, WBX(VM_LOAD, 0, 5, 7, 3), RET0);
	REJECTS("(load.move): C is unused", 4, W(VM_LOAD, 0, 1, 1, 0, 4), RET0);
	REJECTS("(arith.add): D is unused", 4, W(VM_ARITH, 0, 1, 2, 3, 0), RET0);
	REJECTS("(cmp.eq): D is unused", 4, W(VM_CMP, 0, 1, 2, 3, 0), RET0);
	REJECTS("(jmp.always): A is unused", 4, WBX(VM_JMP, 1, 0, 0, 0), RET0);
	REJECTS("(jmp.always): D is unused", 4, WBX(VM_JMP, 0, 0, 1, 0), RET0);
	REJECTS("(jmp.if): D is unused", 4, WBX(VM_JMP, 0, 0, 1, 1), RET0);
	REJECTS("(call.value): D is unused", 4, W(VM_CALL, 0, 0, 0, 1, 0), RET0);
	REJECTS("(call.tail): C is unused", 4, W(VM_CALL, 0, 0, 1, 0, 1));
	REJECTS("(call.ftail): C is unused", 4, W(VM_CALL, 0, 0, 1, 1, 3));
	REJECTS("(ret): A (nothing returned) is unused", 4, W(VM_RET, 2, 0, 0, 0, 0));
	REJECTS("(ret): C is unused", 4, W(VM_RET, 0, 1, 1, 0, 0));
	REJECTS("(ret): D is unused", 4, W(VM_RET, 0, 1, 0, 1, 0));
	REJECTS("(closure): D is unused", 4, WBX(VM_CLOSURE, 0, 1, 1, 0), RET0);
	REJECTS("(new.array): C is unused", 4, W(VM_NEW, 0, 1, 1, 0, 0), RET0);
	REJECTS("(new.map): B is unused", 4, W(VM_NEW, 0, 1, 0, 0, 1), RET0);
	REJECTS("(new.list): B (an empty list) is unused", 4, W(VM_NEW, 0, 2, 0, 0, 3), RET0);
	REJECTS("(get.index): D is unused", 4, W(VM_GET, 0, 1, 2, 3, 0), RET0);
	REJECTS("(get.imm): D is unused", 4, W(VM_GET, 0, 1, 2, 3, 2), RET0);
	REJECTS("(set.append): C is unused", 4, W(VM_SET, 0, 1, 2, 0, 1), RET0);
	REJECTS("(cont.new): C is unused", 4, W(VM_CONT, 0, 1, 2, 0, 0), RET0);
	REJECTS("(cont.pass): A is unused", 4, W(VM_CONT, 1, 0, 0, 0, 5), RET0);
	REJECTS("(cont.pass): B is unused", 4, W(VM_CONT, 0, 1, 0, 0, 5), RET0);
	REJECTS("(io.close): A is unused", 4, W(VM_IO, 1, 1, 0, 0, 3), RET0);
	REJECTS("(io.poll): C is unused", 4, W(VM_IO, 0, 1, 1, 0, 5), RET0);
	REJECTS("(trap.reg): B is unused", 4, W(VM_TRAP, 0, 1, 0, 0, 0));
	REJECTS("(trap.k): A is unused", 4, WBX(VM_TRAP, 1, 2, 0, 1));
	REJECTS("(trap.assert): B is unused", 4, W(VM_TRAP, 0, 1, 0, 2, 2), RET0);
}
END_TEST

START_TEST(unary_arith_variants_must_have_c_zero)
{
	static const unsigned unary[] = {6, 12, 14, 15, 16, 17, 19};
	static const char *const names[] = {"neg", "bnot", "len", "toint", "tofloat", "not",
	                                    "tobytes"};
	unsigned e = unary[_i];
	char want[64];
	ACCEPTS(4, W(VM_ARITH, 0, 1, 0, 0, e), RET0);
	snprintf(want, sizeof want, "(arith.%s): C is unused and must be 0, not 2", names[_i]);
	REJECTS(want, 4, W(VM_ARITH, 0, 1, 2, 0, e), RET0);
}
END_TEST

START_TEST(binary_arith_variants_need_c_a_register)
{
	static const unsigned binary[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 13};
	ACCEPTS(4, W(VM_ARITH, 0, 1, 3, 0, binary[_i]), RET0);
	REJECTS("C: register 4 is outside", 4, W(VM_ARITH, 0, 1, 4, 0, binary[_i]), RET0);
}
END_TEST

START_TEST(addi_and_get_imm_take_any_immediate_in_c)
{
	ACCEPTS(2, W(VM_ARITH, 0, 1, 0xfff, 0, 18), W(VM_GET, 0, 1, 4095, 0, 2), RET0);
}
END_TEST

START_TEST(load_bool_b_must_be_0_or_1)
{
	ACCEPTS(2, W(VM_LOAD, 0, 0, 0, 0, 2), W(VM_LOAD, 0, 1, 0, 0, 2), RET0);
	REJECTS("(load.bool): B: bool 2 is not 0 or 1", 2, W(VM_LOAD, 0, 2, 0, 0, 2), RET0);
}
END_TEST

START_TEST(get_find_byte_must_be_0_to_255)
{
	REJECTS("(get.find): C: byte 256 is outside 0..255", 4, W(VM_GET, 0, 1, 256, 2, 3),
	        RET0);
}
END_TEST

START_TEST(io_seek_whence_must_be_0_to_2)
{
	ACCEPTS(4, W(VM_IO, 0, 1, 2, 2, 4), RET0);
	REJECTS("(io.seek): D: whence 3 is outside 0..2", 4, W(VM_IO, 0, 1, 2, 3, 4), RET0);
}
END_TEST

/* ---- the module and function shapes ---- */

START_TEST(params_beyond_regs_is_rejected)
{
	struct vm_module m;
	build(&m, 4, CODE(RET0), 1);
	m.funcs[1].nparams = 5;
	ck_assert_int_eq(vm_verify(&m, err, sizeof err), -EINVAL);
	ck_assert_str_eq(err, "function 'helper': params 5 is more than regs 4");
	vm_module_free(&m);
}
END_TEST

START_TEST(regs_outside_1_to_max_is_rejected)
{
	struct vm_module m;
	build(&m, 4, CODE(RET0), 1);
	m.funcs[0].nregs = 0;
	ck_assert_int_eq(vm_verify(&m, err, sizeof err), -EINVAL);
	ck_assert_str_eq(err, "function 'main': regs 0 is outside 1..4096");
	m.funcs[0].nregs = VM_MAX_REGS + 1;
	ck_assert_int_eq(vm_verify(&m, err, sizeof err), -EINVAL);
	ck_assert_str_eq(err, "function 'main': regs 4097 is outside 1..4096");
	vm_module_free(&m);
}
END_TEST

START_TEST(a_function_without_code_is_rejected)
{
	struct vm_module m;
	build(&m, 4, CODE(RET0), 1);
	m.funcs[1].ncode = 0;
	ck_assert_int_eq(vm_verify(&m, err, sizeof err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "function 'helper': 0 instructions is outside"));
	vm_module_free(&m);
}
END_TEST

START_TEST(entry_beyond_the_functions_is_rejected)
{
	struct vm_module m;
	build(&m, 4, CODE(RET0), 1);
	m.entry = 3;
	ck_assert_int_eq(vm_verify(&m, err, sizeof err), -EINVAL);
	ck_assert_str_eq(err, "entry 3 is outside the functions 0..2");
	vm_module_free(&m);
}
END_TEST

START_TEST(a_module_without_functions_is_rejected)
{
	struct vm_module m = {0};
	ck_assert_int_eq(vm_verify(&m, err, sizeof err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "the module has 0 functions"));
}
END_TEST

START_TEST(unknown_constant_kind_is_rejected)
{
	struct vm_module m;
	build(&m, 4, CODE(RET0), 1);
	m.consts[0].kind = 3;
	ck_assert_int_eq(vm_verify(&m, err, sizeof err), -EINVAL);
	ck_assert_str_eq(err, "constant 0 has an unknown kind 3");
	m.consts[0].kind = VM_K_INT;
	vm_module_free(&m);
}
END_TEST

START_TEST(a_later_function_is_checked_too)
{
	struct vm_module m;
	build(&m, 4, CODE(RET0), 1);
	m.funcs[1].code[0] = W(VM_RET, 3, 2, 0, 0, 0);
	ck_assert_int_eq(vm_verify(&m, err, sizeof err), -EINVAL);
	ck_assert_str_eq(err, "function 'helper', pc 0 (ret): returned values R[3..4] are "
	                      "outside registers 0..3");
	vm_module_free(&m);
}
END_TEST

/* Random words never crash the verifier, and what it accepts obeys the
 * register rule for the plain-register fields it can check simply. */
static uint64_t rng_state;

static uint64_t rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

START_TEST(random_instructions_never_crash_and_accepted_ones_stay_in_registers)
{
	rng_state = 42;
	int accepted = 0;
	for (int i = 0; i < 50000; i++) {
		uint64_t w = rng();
		/* Bias toward valid opcodes, variants and small operands. */
		unsigned op = (unsigned)(w % VM_NOPS);
		unsigned e = (unsigned)((w >> 8) % (vm_variant_count[op] + 1));
		unsigned mask = (w >> 16) & 1 ? 0x7 : 0xfff;
		uint64_t x = rng();
		uint64_t word = W(op, x & mask, (x >> 12) & mask, (x >> 24) & mask,
		                  (x >> 36) & mask, e);
		if (V(6, word, RET0) == 0) {
			accepted++;
			ck_assert_uint_lt(VM_A(word), 4096);
			if (op == VM_ARITH || op == VM_CMP)
				ck_assert_msg(VM_A(word) < 6 && VM_B(word) < 6,
				              "accepted %016llx", (unsigned long long)word);
		} else {
			ck_assert_msg(strncmp(err, "function 'main', pc 0", 21) == 0, "%s", err);
		}
	}
	ck_assert_int_gt(accepted, 250);
}
END_TEST

static Suite *verify_suite(void)
{
	Suite *s = suite_create("vm-verify");

	TCase *ok = tcase_create("valid");
	tcase_add_test(ok, every_variant_in_a_valid_form_is_accepted);
	tcase_add_test(ok, every_terminal_form_may_end_a_function);
	tcase_add_test(ok, registers_at_the_last_index_and_ranges_that_just_fit_are_accepted);
	tcase_add_test(ok, a_load_k_may_name_a_constant_of_any_kind);
	tcase_add_test(ok, the_entry_may_take_parameters);
	tcase_add_test(ok, addi_and_get_imm_take_any_immediate_in_c);
	suite_add_tcase(s, ok);

	TCase *ins = tcase_create("instruction");
	tcase_add_test(ins, opcode_beyond_the_instruction_set_is_rejected);
	tcase_add_test(ins, variant_beyond_the_opcodes_count_is_rejected);
	suite_add_tcase(s, ins);

	TCase *reg = tcase_create("registers");
	tcase_add_test(reg, register_operands_beyond_regs_are_rejected);
	tcase_add_test(reg, call_value_callee_and_arguments_beyond_regs_are_rejected);
	tcase_add_test(reg, call_results_beyond_regs_are_rejected);
	tcase_add_test(reg, direct_call_arguments_beyond_regs_are_rejected);
	tcase_add_test(reg, ret_range_beyond_regs_is_rejected);
	tcase_add_test(reg, new_list_range_beyond_regs_is_rejected);
	tcase_add_loop_test(reg, binary_arith_variants_need_c_a_register, 0, 12);
	suite_add_tcase(s, reg);

	TCase *k = tcase_create("constants_functions_upvalues");
	tcase_add_test(k, constant_index_beyond_the_constants_is_rejected);
	tcase_add_test(k, names_and_messages_must_be_bytes_constants);
	tcase_add_test(k, function_index_beyond_the_functions_is_rejected);
	tcase_add_test(k, upvalue_index_beyond_the_functions_upvals_is_rejected);
	tcase_add_test(k, closure_capturing_a_register_beyond_the_current_regs_is_rejected);
	tcase_add_test(k, direct_call_of_a_function_with_upvalues_is_rejected);
	tcase_add_test(k, entry_function_with_upvalues_is_rejected);
	tcase_add_test(k, two_functions_with_one_name_are_rejected);
	suite_add_tcase(s, k);

	TCase *j = tcase_create("control");
	tcase_add_test(j, jump_target_outside_the_code_is_rejected);
	tcase_add_test(j, a_function_that_can_fall_off_its_end_is_rejected);
	suite_add_tcase(s, j);

	TCase *enc = tcase_create("one_encoding");
	tcase_add_test(enc, unused_operand_fields_must_be_zero);
	tcase_add_loop_test(enc, unary_arith_variants_must_have_c_zero, 0, 7);
	tcase_add_test(enc, load_bool_b_must_be_0_or_1);
	tcase_add_test(enc, get_find_byte_must_be_0_to_255);
	tcase_add_test(enc, io_seek_whence_must_be_0_to_2);
	suite_add_tcase(s, enc);

	TCase *sh = tcase_create("shape");
	tcase_add_test(sh, params_beyond_regs_is_rejected);
	tcase_add_test(sh, regs_outside_1_to_max_is_rejected);
	tcase_add_test(sh, a_function_without_code_is_rejected);
	tcase_add_test(sh, entry_beyond_the_functions_is_rejected);
	tcase_add_test(sh, a_module_without_functions_is_rejected);
	tcase_add_test(sh, unknown_constant_kind_is_rejected);
	tcase_add_test(sh, a_later_function_is_checked_too);
	suite_add_tcase(s, sh);

	TCase *rnd = tcase_create("random");
	tcase_set_timeout(rnd, 60);
	tcase_add_test(rnd, random_instructions_never_crash_and_accepted_ones_stay_in_registers);
	suite_add_tcase(s, rnd);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(verify_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
