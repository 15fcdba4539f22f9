/*
 * test_interp.c - the interpreter (vm/interp.c) on modules built in C:
 * what a program computes, what a trap says, and fibers parked on I/O
 * (a fake channel that has data only when the test says so).
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "isa.h"
#include "module.h"
#include "vm.h"

#define W(op, a, b, c, d, e) vm_word(VM_##op, a, b, c, d, e)
#define WX(op, a, bx, d, e)  vm_word_bx(VM_##op, a, (uint32_t)(bx) & 0xffffff, d, e)

static uint32_t add_func(struct vm_module *m, const char *name, uint32_t nparams,
                         uint32_t nregs, const uint64_t *code, uint32_t n)
{
	m->funcs = realloc(m->funcs, (m->nfuncs + 1) * sizeof *m->funcs);
	struct vm_func *f = &m->funcs[m->nfuncs];
	memset(f, 0, sizeof *f);
	f->name = strdup(name);
	f->nparams = nparams;
	f->nregs = nregs;
	f->ncode = n;
	f->code = malloc(n * sizeof *code);
	memcpy(f->code, code, n * sizeof *code);
	return m->nfuncs++;
}

static uint32_t add_bytes(struct vm_module *m, const char *s)
{
	m->consts = realloc(m->consts, (m->nconsts + 1) * sizeof *m->consts);
	struct vm_const *k = &m->consts[m->nconsts];
	k->kind = VM_K_BYTES;
	k->len = (uint32_t)strlen(s);
	k->u.bytes = (uint8_t *)strdup(s);
	return m->nconsts++;
}

/* ---- a fake channel: "in" has what the test fed, "out" collects ---- */

struct fake {
	char in[65536];
	size_t in_len, in_off;
	int in_eof;
	char out[65536];
	size_t out_len;
	int reads_blocked;
	char log[512];
};

static int f_open(void *ctx, const char *alias, size_t len, void **chan)
{
	struct fake *fk = ctx;
	if (len == 2 && memcmp(alias, "in", 2) == 0)
		*chan = &fk->in;
	else if (len == 3 && memcmp(alias, "out", 3) == 0)
		*chan = &fk->out;
	else
		return -ENOENT;
	return 0;
}

static int64_t f_read(void *ctx, void *chan, void *buf, size_t len)
{
	struct fake *fk = ctx;
	ck_assert_ptr_eq(chan, &fk->in);
	if (fk->in_off == fk->in_len) {
		if (fk->in_eof)
			return 0;
		fk->reads_blocked++;
		return -EAGAIN;
	}
	size_t n = fk->in_len - fk->in_off;
	if (n > len)
		n = len;
	if (n > 1)
		n = 1; /* one byte per read: every fiber gets a turn */
	memcpy(buf, fk->in + fk->in_off, n);
	fk->in_off += n;
	return (int64_t)n;
}

static int64_t f_write(void *ctx, void *chan, const void *buf, size_t len)
{
	struct fake *fk = ctx;
	ck_assert_ptr_eq(chan, &fk->out);
	if (len > sizeof fk->out - fk->out_len)
		len = sizeof fk->out - fk->out_len;
	memcpy(fk->out + fk->out_len, buf, len);
	fk->out_len += len;
	return (int64_t)len;
}

static int64_t f_seek(void *ctx, void *chan, int64_t off, int whence)
{
	(void)ctx, (void)chan, (void)off, (void)whence;
	return -ESPIPE;
}

static int f_close(void *ctx, void *chan)
{
	(void)ctx, (void)chan;
	return 0;
}

static void f_log(void *ctx, const char *msg)
{
	struct fake *fk = ctx;
	snprintf(fk->log, sizeof fk->log, "%s", msg);
}

static struct fake fk;
static const struct vm_io fake_io = {&fk, f_open, f_read, f_write, f_seek, f_close, f_log};

/* Run m to the end (no I/O waits expected): the status or -1 on a trap. */
static int run(struct vm_module *m, size_t memory, char *err, size_t errlen)
{
	memset(&fk, 0, sizeof fk);
	struct vm_limits lim = {.memory = memory, .max_depth = 1000};
	struct vm *v = vm_new(m, &fake_io, &lim);
	ck_assert_ptr_nonnull(v);
	enum vm_status st;
	int guard = 0;
	while ((st = vm_run(v, 100000)) == VM_RUN_MORE)
		ck_assert_int_lt(++guard, 1000000);
	ck_assert_int_ne(st, VM_RUN_WAIT);
	int r = st == VM_RUN_DONE ? vm_exit_status(v) : -1;
	if (err)
		snprintf(err, errlen, "%s", vm_error(v));
	vm_free(v);
	vm_module_free(m);
	return r;
}

/* fib(n), the classic doubly recursive one, with direct calls. */
static void add_fib(struct vm_module *m, uint32_t self)
{
	const uint64_t fib[] = {
		WX(LOAD, 1, 2, 0, 3),            /* r1 := 2 */
		WX(JMP, 0, 6, 1, 3),             /* if r0 < r1 goto 8 */
		W(ARITH, 2, 0, 0xfff, 0, 18),    /* r2 := r0 - 1 (addi -1) */
		W(CALL, 1, 1, 1, self, 2),       /* r1 := fib(r2) */
		W(ARITH, 3, 0, 0xffe, 0, 18),    /* r3 := r0 - 2 */
		W(CALL, 2, 1, 1, self, 2),       /* r2 := fib(r3) */
		W(ARITH, 1, 1, 2, 0, 0),         /* r1 := r1 + r2 */
		W(RET, 1, 1, 0, 0, 0),
		W(RET, 0, 1, 0, 0, 0),           /* n < 2: n */
	};
	add_func(m, "fib", 1, 4, fib, 9);
}

START_TEST(fib_10_is_55)
{
	struct vm_module m = {0};
	const uint64_t main_[] = {
		WX(LOAD, 1, 10, 0, 3),           /* r1 := 10 */
		W(CALL, 0, 1, 1, 1, 2),          /* r0 := fib(r1) */
		W(RET, 0, 1, 0, 0, 0),
	};
	add_func(&m, "main", 0, 2, main_, 3);
	add_fib(&m, 1);
	ck_assert_int_eq(run(&m, 0, NULL, 0), 55);
}
END_TEST

START_TEST(loop_sums_with_fused_compare_and_jump)
{
	/* s := 0; for i := 0; i < 100; i++ { s += i }; return s % 251 */
	struct vm_module m = {0};
	const uint64_t main_[] = {
		WX(LOAD, 0, 0, 0, 3),            /* 0 s := 0 */
		WX(LOAD, 1, 0, 0, 3),            /* 1 i := 0 */
		WX(LOAD, 2, 100, 0, 3),          /* 2 n := 100 */
		WX(JMP, 0, 2, 0, 0),             /* 3 goto 6 */
		W(ARITH, 0, 0, 1, 0, 0),         /* 4 s += i */
		W(ARITH, 1, 1, 1, 0, 18),        /* 5 i += 1 */
		WX(JMP, 1, (uint32_t)-3, 2, 3),  /* 6 if i < n goto 4 */
		WX(LOAD, 3, 251, 0, 3),          /* 7 */
		W(ARITH, 0, 0, 3, 0, 5),         /* 8 s := s mod 251 */
		W(RET, 0, 1, 0, 0, 0),
	};
	add_func(&m, "main", 0, 4, main_, 10);
	ck_assert_int_eq(run(&m, 0, NULL, 0), 4950 % 251);
}
END_TEST

/* The quickened loop step (addi + jmp.lt as one) and the fast add when
 * the counter is a float: the general path must give the same result. */
START_TEST(float_counter_takes_the_general_path_with_the_same_result)
{
	struct vm_module m = {0};
	m.consts = calloc(1, sizeof *m.consts);
	m.consts[0].kind = VM_K_FLOAT;
	m.consts[0].u.f = 0.0;
	m.nconsts = 1;
	const uint64_t main_[] = {
		WX(LOAD, 0, 0, 0, 3),            /* 0 s := 0 */
		WX(LOAD, 1, 0, 0, 0),            /* 1 i := 0.0 */
		WX(LOAD, 2, 10, 0, 3),           /* 2 n := 10 */
		WX(JMP, 0, 2, 0, 0),             /* 3 goto 6 */
		W(ARITH, 0, 0, 1, 0, 0),         /* 4 s += i (a float from now on) */
		W(ARITH, 1, 1, 1, 0, 18),        /* 5 i += 1 */
		WX(JMP, 1, (uint32_t)-3, 2, 3),  /* 6 if i < n goto 4 */
		W(ARITH, 0, 0, 0, 0, 15),        /* 7 s := toint(s) */
		W(RET, 0, 1, 0, 0, 0),
	};
	add_func(&m, "main", 0, 3, main_, 9);
	ck_assert_int_eq(run(&m, 0, NULL, 0), 45);
}
END_TEST

START_TEST(division_by_zero_traps_with_function_and_pc)
{
	struct vm_module m = {0};
	const uint64_t main_[] = {
		WX(LOAD, 0, 7, 0, 3),
		WX(LOAD, 1, 0, 0, 3),
		W(ARITH, 2, 0, 1, 0, 4),         /* idiv */
		W(RET, 2, 1, 0, 0, 0),
	};
	add_func(&m, "main", 0, 3, main_, 4);
	char err[512];
	ck_assert_int_eq(run(&m, 0, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "function 'main' at pc 2 (arith.idiv)") &&
	              strstr(err, "integer division by zero"), "%s", err);
}
END_TEST

START_TEST(index_out_of_range_traps)
{
	struct vm_module m = {0};
	const uint64_t main_[] = {
		W(NEW, 0, 4, 0, 0, 0),           /* r0 := [] */
		WX(LOAD, 1, 3, 0, 3),
		W(GET, 2, 0, 1, 0, 0),           /* r0[3] */
		W(RET, 2, 1, 0, 0, 0),
	};
	add_func(&m, "main", 0, 3, main_, 4);
	char err[512];
	ck_assert_int_eq(run(&m, 0, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "index 3 out of range"), "%s", err);
}
END_TEST

START_TEST(endless_recursion_hits_the_depth_limit)
{
	struct vm_module m = {0};
	const uint64_t main_[] = {
		W(CALL, 0, 0, 1, 0, 2),          /* r0 := main() */
		W(RET, 0, 1, 0, 0, 0),
	};
	add_func(&m, "main", 0, 1, main_, 2);
	char err[512];
	ck_assert_int_eq(run(&m, 0, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "call depth limit"), "%s", err);
}
END_TEST

START_TEST(memory_limit_traps_a_growing_buffer)
{
	struct vm_module m = {0};
	uint32_t k = add_bytes(&m, "0123456789abcdef");
	const uint64_t main_[] = {
		W(NEW, 0, 16, 0, 0, 2),          /* r0 := bytes */
		WX(LOAD, 1, k, 0, 0),            /* r1 := K */
		W(SET, 0, 1, 0, 0, 1),           /* r0 += r1 */
		WX(JMP, 0, (uint32_t)-2, 0, 0),  /* forever */
	};
	add_func(&m, "main", 0, 2, main_, 4);
	char err[512];
	ck_assert_int_eq(run(&m, 1 << 20, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "out of memory"), "%s", err);
}
END_TEST

START_TEST(continuation_yields_values_to_its_resumer)
{
	/* gen(x): yield 1; yield 2; return 3. main sums what resume gives. */
	struct vm_module m = {0};
	const uint64_t main_[] = {
		W(CLOSURE, 0, 1, 0, 0, 0),       /* r0 := gen */
		W(CONT, 1, 0, 0, 0, 0),          /* r1 := cont(gen) */
		W(CONT, 2, 1, 3, 0, 1),          /* r2 := resume r1 (r3 nil) */
		W(CONT, 4, 1, 3, 0, 1),          /* r4 := resume */
		W(ARITH, 2, 2, 4, 0, 0),
		W(CONT, 4, 1, 3, 0, 1),
		W(ARITH, 2, 2, 4, 0, 0),         /* 1 + 2 + 3 */
		W(RET, 2, 1, 0, 0, 0),
	};
	const uint64_t gen[] = {
		WX(LOAD, 1, 1, 0, 3),
		W(CONT, 2, 1, 0, 0, 2),          /* yield 1 */
		WX(LOAD, 1, 2, 0, 3),
		W(CONT, 2, 1, 0, 0, 2),          /* yield 2 */
		WX(LOAD, 1, 3, 0, 3),
		W(RET, 1, 1, 0, 0, 0),
	};
	add_func(&m, "main", 0, 5, main_, 8);
	add_func(&m, "gen", 1, 3, gen, 6);
	ck_assert_int_eq(run(&m, 0, NULL, 0), 6);
}
END_TEST

START_TEST(resuming_a_finished_continuation_traps)
{
	struct vm_module m = {0};
	const uint64_t main_[] = {
		W(CLOSURE, 0, 1, 0, 0, 0),
		W(CONT, 1, 0, 0, 0, 0),
		W(CONT, 2, 1, 3, 0, 1),
		W(CONT, 2, 1, 3, 0, 1),          /* again: it finished */
		W(RET, 2, 1, 0, 0, 0),
	};
	const uint64_t once[] = {W(RET, 0, 1, 0, 0, 0)};
	add_func(&m, "main", 0, 4, main_, 5);
	add_func(&m, "once", 1, 1, once, 1);
	char err[512];
	ck_assert_int_eq(run(&m, 0, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "finished"), "%s", err);
}
END_TEST

/* 10,000 fibers each parked on a read of one empty channel: the VM says
 * it waits; as bytes come, each fiber takes one and ends; main joins
 * them all and writes how many bytes the fibers got. */
START_TEST(ten_thousand_fibers_park_on_io_and_all_finish)
{
	struct vm_module m = {0};
	uint32_t kin = add_bytes(&m, "in"), kout = add_bytes(&m, "out");
	enum { N = 10000 };
	const uint64_t main_[] = {
		W(CLOSURE, 0, 1, 0, 0, 0),       /* 0 r0 := reader */
		W(NEW, 1, 0, 0, 0, 0),           /* 1 r1 := [] fibers */
		WX(LOAD, 2, 0, 0, 3),            /* 2 i := 0 */
		WX(LOAD, 3, N, 0, 3),            /* 3 n := N */
		W(CONT, 4, 0, 5, 0, 3),          /* 4 r4 := spawn reader(r5) */
		W(SET, 1, 4, 0, 0, 1),           /* 5 append */
		W(ARITH, 2, 2, 1, 0, 18),        /* 6 i += 1 */
		WX(JMP, 2, (uint32_t)-4, 3, 3),  /* 7 if i < n goto 4 */
		WX(LOAD, 2, 0, 0, 3),            /* 8 i := 0 */
		WX(LOAD, 6, 0, 0, 3),            /* 9 total := 0 */
		W(GET, 4, 1, 2, 0, 0),           /* 10 r4 := fibers[i] */
		W(CONT, 4, 4, 0, 0, 4),          /* 11 r4 := join */
		W(ARITH, 6, 6, 4, 0, 0),         /* 12 total += r4 */
		W(ARITH, 2, 2, 1, 0, 18),        /* 13 i += 1 */
		WX(JMP, 2, (uint32_t)-5, 3, 3),  /* 14 if i < n goto 10 */
		WX(IO, 7, kout, 0, 0),           /* 15 r7 := open out */
		W(ARITH, 6, 6, 0, 0, 19),        /* 16 r6 := text(total) */
		W(IO, 8, 7, 6, 0, 2),            /* 17 write */
		WX(LOAD, 0, 0, 0, 3),
		W(RET, 0, 1, 0, 0, 0),
	};
	const uint64_t reader[] = {
		WX(IO, 1, kin, 0, 0),            /* r1 := open in */
		WX(LOAD, 2, 1, 0, 3),
		W(IO, 3, 1, 2, 0, 1),            /* r3 := read(in, 1) */
		W(ARITH, 3, 3, 0, 0, 14),        /* len */
		W(RET, 3, 1, 0, 0, 0),
	};
	add_func(&m, "main", 0, 9, main_, 20);
	add_func(&m, "reader", 1, 4, reader, 5);
	memset(&fk, 0, sizeof fk);
	struct vm *v = vm_new(&m, &fake_io, &(struct vm_limits){0});
	ck_assert_ptr_nonnull(v);
	enum vm_status st;
	while ((st = vm_run(v, 1 << 20)) == VM_RUN_MORE)
		;
	ck_assert_int_eq(st, VM_RUN_WAIT);
	ck_assert_uint_eq(vm_fibers(v), N + 1);
	ck_assert_int_ge(fk.reads_blocked, N);
	/* Every parked fiber is small: the heap holds all of them. */
	ck_assert_msg(vm_memory(v) < (size_t)N * 1024, "%zu bytes for %d parked fibers",
	              vm_memory(v), N);
	/* Feed them in two halves. */
	for (int half = 0; half < 2; half++) {
		memset(fk.in + fk.in_len, 'x', N / 2);
		fk.in_len += N / 2;
		vm_io_ready(v, &fk.in);
		while ((st = vm_run(v, 1 << 20)) == VM_RUN_MORE)
			;
	}
	ck_assert_int_eq(st, VM_RUN_DONE);
	ck_assert_int_eq(vm_exit_status(v), 0);
	fk.out[fk.out_len] = 0;
	ck_assert_str_eq(fk.out, "10000");
	vm_free(v);
	vm_module_free(&m);
}
END_TEST

START_TEST(unknown_channel_traps_with_its_alias)
{
	struct vm_module m = {0};
	uint32_t k = add_bytes(&m, "/dev/nothere");
	const uint64_t main_[] = {
		WX(IO, 0, k, 0, 0),
		W(RET, 0, 0, 0, 0, 0),
	};
	add_func(&m, "main", 0, 1, main_, 2);
	char err[512];
	ck_assert_int_eq(run(&m, 0, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "no channel '/dev/nothere'"), "%s", err);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("vm-interp");
	TCase *tc = tcase_create("interp");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, fib_10_is_55);
	tcase_add_test(tc, loop_sums_with_fused_compare_and_jump);
	tcase_add_test(tc, float_counter_takes_the_general_path_with_the_same_result);
	tcase_add_test(tc, division_by_zero_traps_with_function_and_pc);
	tcase_add_test(tc, index_out_of_range_traps);
	tcase_add_test(tc, endless_recursion_hits_the_depth_limit);
	tcase_add_test(tc, memory_limit_traps_a_growing_buffer);
	tcase_add_test(tc, continuation_yields_values_to_its_resumer);
	tcase_add_test(tc, resuming_a_finished_continuation_traps);
	tcase_add_test(tc, ten_thousand_fibers_park_on_io_and_all_finish);
	tcase_add_test(tc, unknown_channel_traps_with_its_alias);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
