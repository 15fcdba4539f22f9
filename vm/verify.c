/*
 * verify.c - the loader's verifier (verify.h): every instruction of every
 * function is checked against isa.h, so that a verified module cannot
 * name a register, constant, function, upvalue or jump target outside
 * what exists, and every instruction has exactly one encoding (operand
 * fields that a variant does not use must be zero).
 *
 * The operand rules, per opcode and variant, derived from isa.h. Kinds:
 *   R      a register: < the function's regs
 *   U      an upvalue index: < the function's upvals
 *   K      a constant index: < the module's consts, any kind
 *   Kb     a constant index whose constant is bytes
 *   F      a function index: < the module's funcs
 *   imm    an immediate, any value of the field
 *   0      unused: must be 0
 * BX (B and C together, 24 bits) and SBX (signed BX) are one operand.
 * A jump's target, pc + 1 + SBX, must be within 0..ncode-1.
 *
 *   op.variant     A     B        C        D       notes
 *   load.k         R     BX: K             0
 *   load.nil       R     0        0        0
 *   load.bool      R     0..1     0        0       (B != 0 is true: 1 is the one encoding)
 *   load.int       R     SBX: imm          0
 *   load.move      R     R        0        0
 *   load.upval     R     U        0        0
 *   load.env       R     BX: Kb            0
 *   arith.add sub mul div idiv mod band bor bxor shl shr concat
 *                  R     R        R        0
 *   arith.neg bnot len toint tofloat not tobytes
 *                  R     R        0        0       (unary)
 *   arith.addi     R     R        imm (SC) 0
 *   cmp.*          R     R        R        0
 *   jmp.always     0     SBX: jump         0
 *   jmp.if ifnot   R     SBX: jump         0
 *   jmp.lt le eq ne R    SBX: jump         R
 *   call.value     R     imm      imm      0       R[A..A+B] (callee and args) and,
 *                                                  when C > 0, R[A..A+C-1] (results) < regs
 *   call.tail      R     imm      0        0       R[A..A+B] < regs
 *   call.f         R     imm      imm      F       args R[A+1..A+B], results R[A..A+C-1]
 *                                                  < regs; F[D] must have no upvals
 *   call.ftail     R     imm      0        F       args R[A+1..A+B] < regs; F[D] as call.f
 *   call.name      R     imm      imm      Kb      args and results as call.f
 *   ret            R     imm      0        0       B > 0: R[A..A+B-1] < regs; B = 0: A = 0
 *   closure        R     BX: F             0       each F[BX].upval_src[i] < this
 *                                                  function's regs (they are its registers)
 *   new.array      R     imm      0        0       (capacity)
 *   new.map        R     0        0        0
 *   new.bytes      R     imm      0        0       (capacity)
 *   new.list       R     R        imm      0       C > 0: R[B..B+C-1] < regs; C = 0: B = 0
 *   get.index      R     R        R        0
 *   get.slice      R     R        R        R
 *   get.imm        R     R        imm      0
 *   get.find       R     R        0..255   R       (C is a byte)
 *   set.index      R     R        R        0
 *   set.append     R     R        0        0
 *   cont.new       R     R        0        0
 *   cont.resume    R     R        R        0
 *   cont.yield     R     R        0        0
 *   cont.spawn     R     R        R        0
 *   cont.join      R     R        0        0
 *   cont.pass      0     0        0        0
 *   io.open        R     BX: Kb            0
 *   io.read        R     R        R        0
 *   io.write       R     R        R        0
 *   io.close       0     R        0        0
 *   io.seek        R     R        R        0..2    (D is whence)
 *   io.poll        R     R        0        0
 *   io.line        R     R        0        0
 *   trap.reg       R     0        0        0
 *   trap.k         0     BX: Kb            0
 *   trap.assert    R     0        0        Kb
 *
 * A function must not fall off its end: its last instruction is one that
 * never goes on to pc + 1: jmp.always, ret, call.tail, call.ftail,
 * trap.reg or trap.k.
 *
 * Besides: the module has 1..VM_MAX_FUNCS functions and entry < funcs;
 * the entry function has no upvals (a run calls it without a closure);
 * every function has 1..VM_MAX_REGS regs, params <= regs, 1..VM_MAX_CODE
 * instructions, at most VM_MAX_REGS upvals; constants have a known kind.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "isa.h"
#include "verify.h"

enum kind {
	O_ZERO = 0, /* unused: must be 0 */
	O_REG,      /* register */
	O_IMM,      /* any immediate */
	O_UPV,      /* upvalue index */
	O_BOOL,     /* 0 or 1 */
	O_BYTE,     /* 0..255 */
	O_WHENCE,   /* 0..2 */
	O_K,        /* any constant */
	O_KB,       /* bytes constant */
	O_FN,       /* function */
	O_SPECIAL,  /* checked by code below (ranges) */
};

/* How B and C are read as one BX operand, when they are. */
enum bx { BX_NONE = 0, BX_K, BX_KB, BX_FN, BX_INT, BX_JUMP };

struct rule {
	uint8_t a, b, c, d; /* enum kind; b and c unused when bx != BX_NONE */
	uint8_t bx;         /* enum bx */
	bool terminal;      /* never goes on to pc + 1 */
};

#define R_  O_REG
#define Z_  O_ZERO
#define I_  O_IMM
#define S_  O_SPECIAL

static const struct rule load_r[VM_LOAD_N] = {
	{R_, Z_, Z_, Z_, BX_K, false},       /* k */
	{R_, Z_, Z_, Z_, 0, false},          /* nil */
	{R_, O_BOOL, Z_, Z_, 0, false},      /* bool */
	{R_, Z_, Z_, Z_, BX_INT, false},     /* int */
	{R_, R_, Z_, Z_, 0, false},          /* move */
	{R_, O_UPV, Z_, Z_, 0, false},       /* upval */
	{R_, Z_, Z_, Z_, BX_KB, false},      /* env */
};

#define BIN {R_, R_, R_, Z_, 0, false}
#define UN  {R_, R_, Z_, Z_, 0, false}
static const struct rule arith_r[VM_ARITH_N] = {
	BIN, BIN, BIN, BIN, BIN, BIN,        /* add sub mul div idiv mod */
	UN,                                  /* neg */
	BIN, BIN, BIN, BIN, BIN,             /* band bor bxor shl shr */
	UN,                                  /* bnot */
	BIN,                                 /* concat */
	UN, UN, UN, UN,                      /* len toint tofloat not */
	{R_, R_, I_, Z_, 0, false},          /* addi */
	UN,                                  /* tobytes */
};

static const struct rule cmp_r[VM_CMP_N] = {BIN, BIN, BIN, BIN};

static const struct rule jmp_r[VM_JMP_N] = {
	{Z_, Z_, Z_, Z_, BX_JUMP, true},     /* always */
	{R_, Z_, Z_, Z_, BX_JUMP, false},    /* if */
	{R_, Z_, Z_, Z_, BX_JUMP, false},    /* ifnot */
	{R_, Z_, Z_, R_, BX_JUMP, false},    /* lt */
	{R_, Z_, Z_, R_, BX_JUMP, false},    /* le */
	{R_, Z_, Z_, R_, BX_JUMP, false},    /* eq */
	{R_, Z_, Z_, R_, BX_JUMP, false},    /* ne */
};

static const struct rule call_r[VM_CALL_N] = {
	{S_, S_, S_, Z_, 0, false},          /* value */
	{S_, S_, Z_, Z_, 0, true},           /* tail */
	{S_, S_, S_, O_FN, 0, false},        /* f */
	{S_, S_, Z_, O_FN, 0, true},         /* ftail */
	{S_, S_, S_, O_KB, 0, false},        /* name */
};

static const struct rule ret_r[1] = {{S_, S_, Z_, Z_, 0, true}};

static const struct rule closure_r[1] = {{R_, Z_, Z_, Z_, BX_FN, false}};

static const struct rule new_r[VM_NEW_N] = {
	{R_, I_, Z_, Z_, 0, false},          /* array */
	{R_, Z_, Z_, Z_, 0, false},          /* map */
	{R_, I_, Z_, Z_, 0, false},          /* bytes */
	{R_, S_, S_, Z_, 0, false},          /* list */
};

static const struct rule get_r[VM_GET_N] = {
	{R_, R_, R_, Z_, 0, false},          /* index */
	{R_, R_, R_, R_, 0, false},          /* slice */
	{R_, R_, I_, Z_, 0, false},          /* imm */
	{R_, R_, O_BYTE, R_, 0, false},      /* find */
};

static const struct rule set_r[VM_SET_N] = {
	{R_, R_, R_, Z_, 0, false},          /* index */
	{R_, R_, Z_, Z_, 0, false},          /* append */
};

static const struct rule cont_r[VM_CONT_N] = {
	{R_, R_, Z_, Z_, 0, false},          /* new */
	{R_, R_, R_, Z_, 0, false},          /* resume */
	{R_, R_, Z_, Z_, 0, false},          /* yield */
	{R_, R_, R_, Z_, 0, false},          /* spawn */
	{R_, R_, Z_, Z_, 0, false},          /* join */
	{Z_, Z_, Z_, Z_, 0, false},          /* pass */
};

static const struct rule io_r[VM_IO_N] = {
	{R_, Z_, Z_, Z_, BX_KB, false},      /* open */
	{R_, R_, R_, Z_, 0, false},          /* read */
	{R_, R_, R_, Z_, 0, false},          /* write */
	{Z_, R_, Z_, Z_, 0, false},          /* close */
	{R_, R_, R_, O_WHENCE, 0, false},    /* seek */
	{R_, R_, Z_, Z_, 0, false},          /* poll */
	{R_, R_, Z_, Z_, 0, false},          /* line */
};

static const struct rule trap_r[VM_TRAP_N] = {
	{R_, Z_, Z_, Z_, 0, true},           /* reg */
	{Z_, Z_, Z_, Z_, BX_KB, true},       /* k */
	{R_, Z_, Z_, O_KB, 0, false},        /* assert */
};

static const struct rule *const rules[VM_NOPS] = {
	load_r, arith_r, cmp_r, jmp_r, call_r, ret_r, closure_r,
	new_r, get_r, set_r, cont_r, io_r, trap_r,
};

/* The tables above must cover exactly isa.h's variants. */
_Static_assert(sizeof load_r / sizeof load_r[0] == VM_LOAD_N, "load");
_Static_assert(sizeof arith_r / sizeof arith_r[0] == VM_ARITH_N, "arith");
_Static_assert(sizeof jmp_r / sizeof jmp_r[0] == VM_JMP_N, "jmp");
_Static_assert(sizeof trap_r / sizeof trap_r[0] == VM_TRAP_N, "trap");
_Static_assert(VM_NOPS == 13, "a new opcode needs its rules here");

/* ---- checking ---- */

struct ver {
	const struct vm_module *m;
	const struct vm_func *f;
	uint32_t pc;
	unsigned op, e;
	char *err;
	size_t errlen;
};

static int vfail(struct ver *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "function 'NAME', pc N (op.variant): ..." */
static int vfail(struct ver *v, const char *fmt, ...)
{
	if (!v->err || !v->errlen)
		return -EINVAL;
	size_t n = 0;
	const char *name = v->f->name ? v->f->name : "?";
	if (v->op >= VM_NOPS) {
		n = (size_t)snprintf(v->err, v->errlen, "function '%s', pc %u: ", name, v->pc);
	} else if (v->e >= vm_variant_count[v->op]) {
		n = (size_t)snprintf(v->err, v->errlen, "function '%s', pc %u (%s): ", name, v->pc,
		                     vm_op_names[v->op]);
	} else {
		const char *vn = vm_variant_names[v->op][v->e];
		n = (size_t)snprintf(v->err, v->errlen, "function '%s', pc %u (%s%s%s): ", name,
		                     v->pc, vm_op_names[v->op], vn[0] ? "." : "", vn);
	}
	if (n < v->errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(v->err + n, v->errlen - n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static int mfail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int mfail(char *err, size_t errlen, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static const char *kind_name(uint8_t k)
{
	switch (k) {
	case VM_K_INT: return "an int";
	case VM_K_FLOAT: return "a float";
	default: return "bytes";
	}
}

static int check_const(struct ver *v, const char *field, uint32_t x, bool bytes)
{
	if (x >= v->m->nconsts)
		return vfail(v, "%s: constant %u is outside the module's %u constants", field, x,
		             v->m->nconsts);
	if (bytes && v->m->consts[x].kind != VM_K_BYTES)
		return vfail(v, "%s: constant %u must be bytes, not %s", field, x,
		             kind_name(v->m->consts[x].kind));
	return 0;
}

static int check_func(struct ver *v, const char *field, uint32_t x)
{
	if (x >= v->m->nfuncs)
		return vfail(v, "%s: function %u is outside the module's %u functions", field, x,
		             v->m->nfuncs);
	return 0;
}

/* One 12-bit field. */
static int check_field(struct ver *v, const char *field, uint8_t kind, unsigned x)
{
	switch (kind) {
	case O_ZERO:
		if (x != 0)
			return vfail(v, "%s is unused and must be 0, not %u", field, x);
		return 0;
	case O_REG:
		if (x >= v->f->nregs)
			return vfail(v, "%s: register %u is outside 0..%u", field, x, v->f->nregs - 1);
		return 0;
	case O_UPV:
		if (x >= v->f->nupvals)
			return vfail(v, "%s: upvalue %u is outside the function's %u upvalues", field,
			             x, v->f->nupvals);
		return 0;
	case O_BOOL:
		if (x > 1)
			return vfail(v, "%s: bool %u is not 0 or 1", field, x);
		return 0;
	case O_BYTE:
		if (x > 255)
			return vfail(v, "%s: byte %u is outside 0..255", field, x);
		return 0;
	case O_WHENCE:
		if (x > 2)
			return vfail(v, "%s: whence %u is outside 0..2", field, x);
		return 0;
	case O_K:
		return check_const(v, field, x, false);
	case O_KB:
		return check_const(v, field, x, true);
	case O_FN:
		return check_func(v, field, x);
	default: /* O_IMM, O_SPECIAL */
		return 0;
	}
}

/* Registers first..first+n-1 (n > 0) all exist. */
static int check_range(struct ver *v, const char *what, unsigned first, unsigned n)
{
	if (first + n > v->f->nregs)
		return vfail(v, "%s R[%u..%u] are outside registers 0..%u", what, first,
		             first + n - 1, v->f->nregs - 1);
	return 0;
}

static int check_special(struct ver *v, uint64_t w)
{
	unsigned a = VM_A(w), b = VM_B(w), c = VM_C(w), d = VM_D(w);
	int r;

	switch (v->op) {
	case VM_CALL:
		if ((r = check_field(v, "A", O_REG, a)) < 0)
			return r;
		if (v->e <= 1 && (r = check_range(v, "callee and arguments", a, b + 1)) < 0)
			return r;
		if (v->e >= 2 && b && (r = check_range(v, "arguments", a + 1, b)) < 0)
			return r;
		if (c && (r = check_range(v, "results", a, c)) < 0)
			return r;
		if ((v->e == 2 || v->e == 3) && v->m->funcs[d].nupvals)
			return vfail(v, "calls function '%s' directly, but it has %u upvalues (make a "
			             "closure of it)", v->m->funcs[d].name ? v->m->funcs[d].name : "?",
			             v->m->funcs[d].nupvals);
		return 0;
	case VM_RET:
		if (b == 0)
			return check_field(v, "A (nothing returned)", O_ZERO, a);
		return check_range(v, "returned values", a, b);
	case VM_NEW: /* list */
		if (c == 0)
			return check_field(v, "B (an empty list)", O_ZERO, b);
		return check_range(v, "list items", b, c);
	}
	return 0;
}

static int check_insn(struct ver *v, uint64_t w)
{
	const struct rule *ru = &rules[v->op][v->e];
	int r;

	if ((r = check_field(v, "A", ru->a, VM_A(w))) < 0)
		return r;
	switch (ru->bx) {
	case BX_NONE:
		if ((r = check_field(v, "B", ru->b, VM_B(w))) < 0 ||
		    (r = check_field(v, "C", ru->c, VM_C(w))) < 0)
			return r;
		break;
	case BX_K:
		if ((r = check_const(v, "BX", VM_BX(w), false)) < 0)
			return r;
		break;
	case BX_KB:
		if ((r = check_const(v, "BX", VM_BX(w), true)) < 0)
			return r;
		break;
	case BX_FN:
		if ((r = check_func(v, "BX", VM_BX(w))) < 0)
			return r;
		break;
	case BX_INT:
		break;
	case BX_JUMP: {
		int64_t t = (int64_t)v->pc + 1 + VM_SBX(w);
		if (t < 0 || t >= (int64_t)v->f->ncode)
			return vfail(v, "jump target %lld is outside 0..%u", (long long)t,
			             v->f->ncode - 1);
		break;
	}
	}
	if ((r = check_field(v, "D", ru->d, VM_D(w))) < 0)
		return r;
	if (ru->a == O_SPECIAL || ru->b == O_SPECIAL || ru->c == O_SPECIAL)
		if ((r = check_special(v, w)) < 0)
			return r;

	if (v->op == VM_CLOSURE) {
		const struct vm_func *g = &v->m->funcs[VM_BX(w)];
		for (uint32_t i = 0; i < g->nupvals; i++)
			if (g->upval_src[i] >= v->f->nregs)
				return vfail(v, "function '%s' captures register %u (upvals[%u]), "
				             "outside this function's registers 0..%u",
				             g->name ? g->name : "?", g->upval_src[i], i,
				             v->f->nregs - 1);
	}
	return 0;
}

/* The shape of one function, before its code. */
static int check_shape(const struct vm_func *f, uint32_t i, char *err, size_t errlen)
{
	if (!f->name || !f->name[0])
		return mfail(err, errlen, "function %u has no name", i);
	if (f->nregs < 1 || f->nregs > VM_MAX_REGS)
		return mfail(err, errlen, "function '%s': regs %u is outside 1..%u", f->name,
		             f->nregs, VM_MAX_REGS);
	if (f->nparams > f->nregs)
		return mfail(err, errlen, "function '%s': params %u is more than regs %u", f->name,
		             f->nparams, f->nregs);
	if (f->ncode < 1 || f->ncode > VM_MAX_CODE || !f->code)
		return mfail(err, errlen, "function '%s': %u instructions is outside 1..%u",
		             f->name, f->ncode, VM_MAX_CODE);
	if (f->nupvals > VM_MAX_REGS || (f->nupvals && !f->upval_src))
		return mfail(err, errlen, "function '%s': %u upvals is more than %u", f->name,
		             f->nupvals, VM_MAX_REGS);
	return 0;
}

int vm_verify(const struct vm_module *m, char *err, size_t errlen)
{
	int r;

	if (err && errlen)
		err[0] = '\0';
	if (m->nfuncs < 1 || m->nfuncs > VM_MAX_FUNCS || !m->funcs)
		return mfail(err, errlen, "the module has %u functions, expected 1..%u", m->nfuncs,
		             VM_MAX_FUNCS);
	if (m->entry >= m->nfuncs)
		return mfail(err, errlen, "entry %u is outside the functions 0..%u", m->entry,
		             m->nfuncs - 1);
	if (m->nconsts > VM_MAX_CONSTS || (m->nconsts && !m->consts))
		return mfail(err, errlen, "the module has %u constants, more than %u", m->nconsts,
		             VM_MAX_CONSTS);
	for (uint32_t i = 0; i < m->nconsts; i++) {
		const struct vm_const *k = &m->consts[i];
		if (k->kind > VM_K_BYTES)
			return mfail(err, errlen, "constant %u has an unknown kind %u", i, k->kind);
		if (k->kind == VM_K_BYTES && !k->u.bytes)
			return mfail(err, errlen, "constant %u: bytes without a buffer", i);
	}
	for (uint32_t i = 0; i < m->nfuncs; i++)
		if ((r = check_shape(&m->funcs[i], i, err, errlen)) < 0)
			return r;
	/* Names are how load.env and call.name find a function: one each. */
	for (uint32_t i = 0; i < m->nfuncs; i++)
		for (uint32_t j = i + 1; j < m->nfuncs; j++)
			if (m->funcs[i].name && m->funcs[j].name &&
			    strcmp(m->funcs[i].name, m->funcs[j].name) == 0)
				return mfail(err, errlen, "functions %u and %u are both named '%s'", i, j,
				             m->funcs[i].name);
	if (m->funcs[m->entry].nupvals)
		return mfail(err, errlen, "the entry function '%s' has %u upvalues (a run calls it "
		             "without a closure)", m->funcs[m->entry].name,
		             m->funcs[m->entry].nupvals);

	for (uint32_t i = 0; i < m->nfuncs; i++) {
		struct ver v = {.m = m, .f = &m->funcs[i], .err = err, .errlen = errlen};
		for (v.pc = 0; v.pc < v.f->ncode; v.pc++) {
			uint64_t w = v.f->code[v.pc];
			v.op = VM_OP(w);
			v.e = VM_E(w);
			if (v.op >= VM_NOPS)
				return vfail(&v, "opcode %u is not an instruction (0..%u)", v.op,
				             VM_NOPS - 1);
			if (v.e >= vm_variant_count[v.op])
				return vfail(&v, "variant %u is outside 0..%u", v.e,
				             vm_variant_count[v.op] - 1);
			if ((r = check_insn(&v, w)) < 0)
				return r;
		}
		v.pc = v.f->ncode - 1;
		uint64_t last = v.f->code[v.pc];
		v.op = VM_OP(last);
		v.e = VM_E(last);
		if (!rules[v.op][v.e].terminal)
			return vfail(&v, "the last instruction can fall off the end of the function "
			             "(end with jmp.always, ret, a tail call or trap)");
	}
	return 0;
}
