/*
 * isa.h - the Rift VM's instruction set: 13 core instructions in 64-bit
 * words (docs/vm.md is the reference with examples; this header is the
 * source of truth for numbers and operand layout).
 *
 * One instruction is one little-endian 64-bit word:
 *
 *   63      56 55        44 43        32 31        20 19         8 7       0
 *  +----------+------------+------------+------------+------------+---------+
 *  |    E     |     D      |     C      |     B      |     A      |   op    |
 *  +----------+------------+------------+------------+------------+---------+
 *     8 bits     12 bits      12 bits      12 bits      12 bits     8 bits
 *
 *   A, B, C, D  12-bit operands: a register (0..4095), a constant or function
 *               index, or a small immediate, as the instruction says.
 *   E           8 bits: the variant (sub-operation) of the instruction.
 *   BX          B | C << 12, 24 bits unsigned (a constant or function index).
 *   SBX         BX as a signed 24-bit number (two's complement): jumps, ints.
 *   SC          C as a signed 12-bit number.
 *
 * R[x] is register x of the current frame, K[x] constant x of the module,
 * F[x] function x of the module, U[x] upvalue x of the running closure.
 * pc is the index of the current instruction; after it, pc := pc + 1 unless
 * the instruction says otherwise. Every "traps" below stops the fiber with
 * an error that names the function, pc and source line (TRAP semantics).
 *
 * Only these 13 opcodes and their listed variants exist on the wire; the
 * verifier (verify.h) rejects everything else. It also keeps one encoding
 * per instruction (operand fields an instruction does not use are 0) and
 * a few rules stated there rather than here: a function never runs off
 * its end, call.f/call.ftail and the entry name functions without
 * upvalues, function names are unique. The table at the top of verify.c
 * lists every variant's operand kinds. The interpreter may rewrite
 * a verified function into private forms; those never leave the process.
 */
#ifndef RIFT_VM_ISA_H
#define RIFT_VM_ISA_H

#include <stdint.h>

#define VM_MAX_REGS   4096 /* per frame: operands are 12 bits */
#define VM_MAX_CONSTS (1u << 20) /* decoding 2^20 tiny constants takes ~25 MB */
#define VM_MAX_FUNCS  4096 /* CALL's direct form names F[D] */
#define VM_MAX_CODE   (1u << 24)

enum vm_op {
	/* LOAD A, E: put a value in R[A].
	 *   E=0 K      R[A] := K[BX]
	 *   E=1 NIL    R[A] := nil
	 *   E=2 BOOL   R[A] := (B != 0)
	 *   E=3 INT    R[A] := SBX                       (-8388608..8388607)
	 *   E=4 MOVE   R[A] := R[B]
	 *   E=5 UPVAL  R[A] := U[B]
	 *   E=6 ENV    R[A] := the binding named K[BX] (bytes) in the
	 *              environment: the module's functions by name, then the
	 *              host's; traps when unbound */
	VM_LOAD = 0,
	/* ARITH A B C, E: R[A] := R[B] <op> R[C] (unary ops read R[B] only).
	 * Integers are int64 and wrap on overflow; an int and a float give a
	 * float; other types trap.
	 *   E=0 ADD  1 SUB  2 MUL
	 *   E=3 DIV    float division (ints are converted)
	 *   E=4 IDIV   floor division; traps on division by zero (ints)
	 *   E=5 MOD    floor modulo;   traps on division by zero (ints)
	 *   E=6 NEG    R[A] := -R[B]
	 *   E=7 BAND  8 BOR  9 BXOR  10 SHL  11 SHR (logical)   ints only
	 *   E=12 BNOT  R[A] := ~R[B]
	 *   E=13 CONCAT R[A] := new bytes R[B] .. R[C] (both bytes)
	 *   E=14 LEN   R[A] := length of R[B] (bytes, array, map)
	 *   E=15 TOINT R[A] := R[B] as int (floats truncate; bytes parse as
	 *              decimal; traps when not a number)
	 *   E=16 TOFLOAT R[A] := R[B] as float
	 *   E=17 NOT   R[A] := not truthy(R[B])  (nil and false are falsy)
	 *   E=18 ADDI  R[A] := R[B] + SC         (int or float R[B])
	 *   E=19 TOBYTES R[A] := decimal text of R[B] (int, float) or R[B] */
	VM_ARITH = 1,
	/* CMP A B C, E: R[A] := R[B] <op> R[C], a bool.
	 *   E=0 EQ  1 NE  2 LT  3 LE
	 * Numbers compare by value (int with float too), bytes
	 * lexicographically; EQ/NE on other values compare identity, and
	 * LT/LE on them trap. */
	VM_CMP = 2,
	/* JMP A, SBX, D, E: pc := pc + 1 + SBX when the condition holds.
	 *   E=0 always      1 if truthy(R[A])     2 if not truthy(R[A])
	 *   E=3 if R[A] < R[D]   4 if R[A] <= R[D]   5 if R[A] == R[D]
	 *   E=6 if R[A] != R[D]                      (CMP's rules) */
	VM_JMP = 3,
	/* CALL A B C D, E: call with the B arguments R[A+1..A+B]; the C
	 * results land in R[A..A+C-1] (missing ones are nil).
	 *   E=0 the function value in R[A]
	 *   E=1 the same as a tail call (C ignored: the caller's RET count)
	 *   E=2 F[D] directly
	 *   E=3 F[D] as a tail call
	 *   E=4 the binding named K[D] in the environment (LOAD ENV's rules)
	 * Calls never recurse in C. Depth beyond the run's limit traps;
	 * calling a non-function traps; missing arguments are nil, extra
	 * ones are dropped. */
	VM_CALL = 4,
	/* RET A B: return R[A..A+B-1] to the caller (B = 0: nothing). A
	 * fiber's first function returning ends the fiber. */
	VM_RET = 5,
	/* CLOSURE A BX: R[A] := a closure of F[BX]; its upvalue i is a copy
	 * of R[F[BX].upval_src[i]] of this frame (by value: bindings are
	 * immutable). */
	VM_CLOSURE = 6,
	/* NEW A B C, E: a new aggregate in R[A].
	 *   E=0 ARRAY  empty array, room for B elements
	 *   E=1 MAP    empty map (keys: int, bytes, bool)
	 *   E=2 BYTES  empty byte buffer, room for B bytes
	 *   E=3 LIST   array of the C values R[B..B+C-1] */
	VM_NEW = 7,
	/* GET A B C D, E: read from an aggregate.
	 *   E=0 R[A] := R[B][R[C]]  array (0-based; out of range traps), map
	 *              (absent: nil), bytes (the byte as an int; traps out of
	 *              range)
	 *   E=1 R[A] := R[B][R[C] .. R[D]) a new bytes (or array) slice,
	 *              indices clamped to 0..len
	 *   E=2 R[A] := R[B][C]      array or bytes, immediate index
	 *   E=3 R[A] := index of byte C in bytes R[B] from R[D] on, or -1 */
	VM_GET = 8,
	/* SET A B C, E: change an aggregate.
	 *   E=0 R[A][R[B]] := R[C]  array (index == length appends; beyond
	 *              traps), map (nil deletes), bytes (an int 0..255)
	 *   E=1 APPEND  append R[B] to array R[A]; to bytes R[A] append bytes
	 *              R[B], or the byte R[B] when it is an int */
	VM_SET = 9,
	/* CONT A B C, E: continuations and fibers (one-shot: a continuation
	 * runs once from where it was suspended, as Lua's coroutines).
	 *   E=0 NEW    R[A] := a suspended continuation that calls closure R[B]
	 *   E=1 RESUME R[A] := resume R[B] with value R[C]: it runs until it
	 *              yields or returns; R[A] gets that value. Resuming one
	 *              that finished, or is running, traps.
	 *   E=2 YIELD  R[A] := yield R[B] to whoever resumed this
	 *              continuation; R[A] gets the next RESUME's value
	 *   E=3 SPAWN  R[A] := a new fiber running R[B](R[C]), scheduled on
	 *              the event loop: fibers run in turn, and one that waits
	 *              for I/O lets the others run
	 *   E=4 JOIN   R[A] := the return value of fiber R[B] (waits for it;
	 *              a fiber that trapped makes JOIN trap)
	 *   E=5 PASS   let the other ready fibers run, then go on */
	VM_CONT = 10,
	/* IO A B C D, E: channels of the manifest, by alias. Blocking forms
	 * park only the running fiber; the event loop runs the others.
	 *   E=0 OPEN   R[A] := the channel whose alias is K[BX] (traps when
	 *              the manifest has none)
	 *   E=1 READ   R[A] := up to R[C] bytes from channel R[B]; empty
	 *              bytes at end of stream
	 *   E=2 WRITE  R[A] := write all of bytes R[C] to channel R[B]; the
	 *              count
	 *   E=3 CLOSE  close channel R[B] (end of stream for its reader)
	 *   E=4 SEEK   R[A] := seek channel R[B] to R[C], whence D (0 set,
	 *              1 cur, 2 end)
	 *   E=5 POLL   R[A] := the index in array R[B] of a channel that has
	 *              data or end of stream (waits for one)
	 *   E=6 LINE   R[A] := the next line from channel R[B], '\n' included
	 *              (the last one may lack it); empty bytes at the end
	 * A failed channel operation traps with the channel's error. */
	VM_IO = 11,
	/* TRAP A, E: stop the fiber with an error.
	 *   E=0 the message is R[A] (bytes, or any value printed)
	 *   E=1 the message is K[BX]
	 *   E=2 if not truthy(R[A]), trap with message K[D] (an assertion)
	 * An uncaught trap ends the run with a non-zero status and prints the
	 * function, the pc and the source line. */
	VM_TRAP = 12,
	VM_NOPS = 13
};

/* Variants per opcode: the count of valid E values. */
#define VM_LOAD_N  7
#define VM_ARITH_N 20
#define VM_CMP_N   4
#define VM_JMP_N   7
#define VM_CALL_N  5
#define VM_NEW_N   4
#define VM_GET_N   4
#define VM_SET_N   2
#define VM_CONT_N  6
#define VM_IO_N    7
#define VM_TRAP_N  3

/* Field access. */
#define VM_OP(w)  ((unsigned)((w) & 0xff))
#define VM_A(w)   ((unsigned)(((w) >> 8) & 0xfff))
#define VM_B(w)   ((unsigned)(((w) >> 20) & 0xfff))
#define VM_C(w)   ((unsigned)(((w) >> 32) & 0xfff))
#define VM_D(w)   ((unsigned)(((w) >> 44) & 0xfff))
#define VM_E(w)   ((unsigned)(((w) >> 56) & 0xff))
#define VM_BX(w)  ((uint32_t)(VM_B(w) | (VM_C(w) << 12)))
#define VM_SBX(w) ((int32_t)(VM_BX(w) ^ 0x800000u) - 0x800000)
#define VM_SC(w)  ((int32_t)(VM_C(w) ^ 0x800u) - 0x800)

static inline uint64_t vm_word(unsigned op, unsigned a, unsigned b, unsigned c, unsigned d,
                               unsigned e)
{
	return (uint64_t)(op & 0xff) | (uint64_t)(a & 0xfff) << 8 | (uint64_t)(b & 0xfff) << 20 |
	       (uint64_t)(c & 0xfff) << 32 | (uint64_t)(d & 0xfff) << 44 | (uint64_t)(e & 0xff) << 56;
}

/* BX / SBX into B and C. */
static inline uint64_t vm_word_bx(unsigned op, unsigned a, uint32_t bx, unsigned d, unsigned e)
{
	return vm_word(op, a, bx & 0xfff, (bx >> 12) & 0xfff, d, e);
}

/* Names, for the assembler, the disassembler and messages. */
extern const char *const vm_op_names[VM_NOPS];
/* vm_variant_names[op][e], NULL past the opcode's count. */
extern const char *const *const vm_variant_names[VM_NOPS];
extern const unsigned vm_variant_count[VM_NOPS];

#endif
