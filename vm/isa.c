/*
 * isa.c - the names of the instruction set (isa.h), shared by the
 * assembler, the disassembler, the verifier's messages and traps.
 */
#include <stddef.h>

#include "isa.h"

const char *const vm_op_names[VM_NOPS] = {
	"load", "arith", "cmp", "jmp", "call", "ret", "closure",
	"new", "get", "set", "cont", "io", "trap",
};

static const char *const load_v[] = {"k", "nil", "bool", "int", "move", "upval", "env", NULL};
static const char *const arith_v[] = {"add", "sub", "mul", "div", "idiv", "mod", "neg",
                                      "band", "bor", "bxor", "shl", "shr", "bnot", "concat",
                                      "len", "toint", "tofloat", "not", "addi", "tobytes",
                                      NULL};
static const char *const cmp_v[] = {"eq", "ne", "lt", "le", NULL};
static const char *const jmp_v[] = {"always", "if", "ifnot", "lt", "le", "eq", "ne", NULL};
static const char *const call_v[] = {"value", "tail", "f", "ftail", "name", NULL};
static const char *const none_v[] = {"", NULL};
static const char *const new_v[] = {"array", "map", "bytes", "list", NULL};
static const char *const get_v[] = {"index", "slice", "imm", "find", NULL};
static const char *const set_v[] = {"index", "append", NULL};
static const char *const cont_v[] = {"new", "resume", "yield", "spawn", "join", "pass", NULL};
static const char *const io_v[] = {"open", "read", "write", "close", "seek", "poll", "line",
                                   NULL};
static const char *const trap_v[] = {"reg", "k", "assert", NULL};

const char *const *const vm_variant_names[VM_NOPS] = {
	load_v, arith_v, cmp_v, jmp_v, call_v, none_v, none_v,
	new_v, get_v, set_v, cont_v, io_v, trap_v,
};

const unsigned vm_variant_count[VM_NOPS] = {
	VM_LOAD_N, VM_ARITH_N, VM_CMP_N, VM_JMP_N, VM_CALL_N, 1, 1,
	VM_NEW_N, VM_GET_N, VM_SET_N, VM_CONT_N, VM_IO_N, VM_TRAP_N,
};
