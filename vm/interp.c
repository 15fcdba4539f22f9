/*
 * interp.c - the interpreter (vm.h): fibers with their own register stack
 * and frame stack, so VM calls never recurse in C; one-shot continuations
 * (CONT) switch between fibers inside the dispatch loop; a fiber whose
 * channel operation would block parks on that channel and the loop runs
 * the next ready fiber.
 *
 * The dispatch loop keeps the current fiber, frame, register base and pc
 * in locals; anything that may grow the register stack (a call, a fiber
 * switch) reloads them (RELOAD()).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "isa.h"
#include "value.h"
#include "vm.h"

#define DEFAULT_DEPTH 100000
#define IO_CHUNK      (64 * 1024) /* at most this much per READ */

enum fstate { F_NEW, F_READY, F_RUNNING, F_SUSPENDED, F_PARKED, F_DONE };

struct frame {
	uint32_t func;
	uint32_t pc;            /* the next instruction, while not running */
	uint32_t base;          /* R[0] is stack[base] */
	uint32_t ret;           /* where results go in the caller (absolute) */
	uint32_t nret;
	struct vm_closure *cl;  /* the running closure, or NULL */
};

struct vm_chan {
	struct vm_obj h;
	void *handle;
	struct vm_fiber *waiters;
	uint8_t *rbuf;          /* bytes read but not yet taken (LINE, POLL) */
	uint32_t rlen, rcap;
	int eof;
	struct vm_chan *next_open;
};

struct vm_fiber {
	struct vm_obj h;
	uint8_t state;
	uint8_t scheduled;      /* spawned (or the main fiber), not a coroutine */
	uint8_t polling;        /* parked in POLL */
	struct vm_value *stack;
	uint32_t scap;
	struct frame *frames;
	uint32_t nframes, fcap;
	struct vm_fiber *resumer;   /* coroutine: who runs when it yields */
	uint32_t resume_dst;        /* absolute register in resumer for the value */
	uint32_t yield_dst;         /* absolute register here for RESUME's value */
	struct vm_value entry, arg; /* F_NEW: what to call */
	struct vm_value result;
	struct vm_fiber *next;      /* run queue, or a wait list */
	struct vm_fiber *joiners;
	struct vm_chan *wait;       /* parked on this channel */
	uint32_t join_dst;          /* JOIN: where the result goes */
	size_t io_off;              /* WRITE: bytes already written */
};

struct vm {
	const struct vm_module *m;
	struct vm_io io;
	struct vm_heap heap;
	uint32_t max_depth;
	struct vm_value *k;         /* constants as values (bytes frozen) */
	struct vm_value *fnval;     /* lazily made closures of F[i] */
	struct vm_chan **chans;     /* opened channels by constant index */
	uint64_t **code;            /* per function: the code as run (quickened) */
	struct xi **xcode;          /* ... and with each handler's address */
	struct vm_chan *open;       /* every channel opened */
	struct vm_fiber *main;
	struct vm_fiber *cur;       /* running */
	struct vm_fiber *rq_head, *rq_tail;
	struct vm_fiber *pollers;   /* parked in POLL */
	uint32_t nfibers;
	int status;
	char err[512];
	uint8_t scratch[IO_CHUNK];
};

/* ---- fibers ---- */

static void rq_push(struct vm *v, struct vm_fiber *f)
{
	if (f->state != F_NEW)
		f->state = F_READY; /* a new one starts when it first runs */
	f->next = NULL;
	if (v->rq_tail)
		v->rq_tail->next = f;
	else
		v->rq_head = f;
	v->rq_tail = f;
}

static struct vm_fiber *rq_pop(struct vm *v)
{
	struct vm_fiber *f = v->rq_head;
	if (f) {
		v->rq_head = f->next;
		if (!v->rq_head)
			v->rq_tail = NULL;
		f->next = NULL;
	}
	return f;
}

static struct vm_fiber *fiber_new(struct vm *v, struct vm_value entry, struct vm_value arg,
                                  bool scheduled)
{
	struct vm_fiber *f = vm_obj_new(&v->heap, VT_FIBER, sizeof *f);
	if (!f)
		return NULL;
	f->entry = entry;
	f->arg = arg;
	f->scheduled = scheduled;
	f->state = F_NEW;
	v->nfibers++;
	return f;
}

/* Room for n registers from base on, nil-filled past the old top. */
static bool stack_need(struct vm *v, struct vm_fiber *f, size_t n)
{
	if (n <= f->scap)
		return true;
	size_t ncap = f->scap ? f->scap : 16;
	while (ncap < n)
		ncap *= 2;
	if (!vm_heap_charge(&v->heap, (ptrdiff_t)((ncap - f->scap) * sizeof *f->stack)))
		return false;
	struct vm_value *s = realloc(f->stack, ncap * sizeof *s);
	if (!s) {
		vm_heap_charge(&v->heap, -(ptrdiff_t)((ncap - f->scap) * sizeof *f->stack));
		return false;
	}
	memset(s + f->scap, 0, (ncap - f->scap) * sizeof *s);
	f->stack = s;
	f->scap = (uint32_t)ncap;
	return true;
}

static struct frame *frame_push(struct vm *v, struct vm_fiber *f)
{
	if (f->nframes == f->fcap) {
		uint32_t ncap = f->fcap ? f->fcap * 2 : 2;
		if (!vm_heap_charge(&v->heap, (ptrdiff_t)((ncap - f->fcap) * sizeof *f->frames)))
			return NULL;
		struct frame *fr = realloc(f->frames, ncap * sizeof *fr);
		if (!fr) {
			vm_heap_charge(&v->heap, -(ptrdiff_t)((ncap - f->fcap) * sizeof *f->frames));
			return NULL;
		}
		f->frames = fr;
		f->fcap = ncap;
	}
	return &f->frames[f->nframes++];
}

/* ---- the heap's hooks ---- */

static void mark_fiber(struct vm_heap *h, struct vm *v, struct vm_fiber *f)
{
	/* The whole stack, not just up to the top frame: a call does not
	 * clear its registers (a program may read one before writing it, and
	 * must then see a live value, never a freed one). What lies above
	 * the top stays alive until it is overwritten. */
	(void)v;
	for (uint32_t i = 0; i < f->scap; i++)
		vm_mark(h, f->stack[i]);
	for (uint32_t i = 0; i < f->nframes; i++)
		vm_mark_obj(h, (struct vm_obj *)f->frames[i].cl);
	vm_mark(h, f->entry);
	vm_mark(h, f->arg);
	vm_mark(h, f->result);
	vm_mark_obj(h, (struct vm_obj *)f->resumer);
	vm_mark_obj(h, (struct vm_obj *)f->wait);
	for (struct vm_fiber *j = f->joiners; j; j = j->next)
		vm_mark_obj(h, (struct vm_obj *)j);
}

static struct vm *heap_vm(struct vm_heap *h)
{
	return h->owner;
}

static void mark_object(struct vm_heap *h, struct vm_obj *o)
{
	struct vm *v = heap_vm(h);
	if (o->tag == VT_FIBER) {
		mark_fiber(h, v, (struct vm_fiber *)o);
	} else if (o->tag == VT_CHAN) {
		struct vm_chan *c = (struct vm_chan *)o;
		for (struct vm_fiber *w = c->waiters; w; w = w->next)
			vm_mark_obj(h, (struct vm_obj *)w);
	}
}

static void free_object(struct vm_heap *h, struct vm_obj *o)
{
	struct vm *v = heap_vm(h);
	if (o->tag == VT_FIBER) {
		struct vm_fiber *f = (struct vm_fiber *)o;
		vm_heap_charge(h, -(ptrdiff_t)(sizeof *f + f->scap * sizeof *f->stack +
		                               f->fcap * sizeof *f->frames));
		free(f->stack);
		free(f->frames);
		v->nfibers--;
	} else if (o->tag == VT_CHAN) {
		struct vm_chan *c = (struct vm_chan *)o;
		vm_heap_charge(h, -(ptrdiff_t)(sizeof *c + c->rcap));
		free(c->rbuf);
	}
	free(o);
}

static void mark_roots(struct vm_heap *h, void *owner)
{
	struct vm *v = owner;
	for (uint32_t i = 0; i < v->m->nconsts; i++)
		vm_mark(h, v->k[i]);
	for (uint32_t i = 0; i < v->m->nfuncs; i++)
		vm_mark(h, v->fnval[i]);
	for (struct vm_chan *c = v->open; c; c = c->next_open)
		vm_mark_obj(h, &c->h);
	vm_mark_obj(h, (struct vm_obj *)v->main);
	vm_mark_obj(h, (struct vm_obj *)v->cur);
	for (struct vm_fiber *f = v->rq_head; f; f = f->next)
		vm_mark_obj(h, (struct vm_obj *)f);
	for (struct vm_fiber *f = v->pollers; f; f = f->next)
		vm_mark_obj(h, (struct vm_obj *)f);
}

/* ---- set-up ---- */

/* An instruction as the loop runs it: the address of its handler next to
 * the word (direct threading: one load finds where to go). */
struct xi {
	const void *h;
	uint64_t w;             /* the word, for the general path */
	uint16_t a, b, c, d;    /* its fields, decoded */
	uint32_t t;             /* a jump's target pc */
	int32_t imm;            /* load: BX or SBX; addi: SC; addi_jlt: SB */
};

/* Private instructions: quickened forms that never leave the process. */
enum { XOP_ADDI_JLT = 32 }; /* A += B (signed 12); if A < R[D] goto C|E<<12 */

/* The function's code as the loop runs it: a copy in which the pair
 * `arith.addi rA, rA, imm` + `jmp.lt rA, rD, L` (a counting loop's step
 * and test) is one XOP_ADDI_JLT at the addi's place; the jmp stays, for
 * jumps that land on it. perf: three dispatches per loop turn became
 * two. */
static uint64_t *quicken(const struct vm_func *fn)
{
	uint64_t *c = malloc(fn->ncode * sizeof *c);
	if (!c)
		return NULL;
	memcpy(c, fn->code, fn->ncode * sizeof *c);
	for (uint32_t pc = 0; pc + 1 < fn->ncode; pc++) {
		uint64_t w = c[pc], j = fn->code[pc + 1];
		if (VM_OP(w) != VM_ARITH || VM_E(w) != 18 || VM_A(w) != VM_B(w) ||
		    VM_OP(j) != VM_JMP || VM_E(j) != 3 || VM_A(j) != VM_A(w))
			continue;
		int64_t target = (int64_t)pc + 2 + VM_SBX(j);
		if (target < 0 || target >= (1 << 20))
			continue;
		c[pc] = vm_word(XOP_ADDI_JLT, VM_A(w), VM_C(w), (unsigned)target & 0xfff, VM_D(j),
		                (unsigned)target >> 12);
	}
	return c;
}

struct vm *vm_new(const struct vm_module *m, const struct vm_io *io, const struct vm_limits *lim)
{
	struct vm *v = calloc(1, sizeof *v);
	if (!v)
		return NULL;
	v->m = m;
	v->io = *io;
	v->max_depth = lim && lim->max_depth ? lim->max_depth : DEFAULT_DEPTH;
	v->heap.limit = lim ? lim->memory : 0;
	v->heap.owner = v;
	v->heap.mark_roots = mark_roots;
	v->heap.mark_object = mark_object;
	v->heap.free_object = free_object;
	v->heap.next_gc = 4u << 20;
	v->k = calloc(m->nconsts ? m->nconsts : 1, sizeof *v->k);
	v->fnval = calloc(m->nfuncs ? m->nfuncs : 1, sizeof *v->fnval);
	v->chans = calloc(m->nconsts ? m->nconsts : 1, sizeof *v->chans);
	if (!v->k || !v->fnval || !v->chans)
		goto fail;
	for (uint32_t i = 0; i < m->nconsts; i++) {
		const struct vm_const *c = &m->consts[i];
		if (c->kind == VM_K_INT) {
			v->k[i] = VM_INT(c->u.i);
		} else if (c->kind == VM_K_FLOAT) {
			v->k[i] = VM_FLT(c->u.f);
		} else {
			struct vm_bytes *b = vm_bytes_new(&v->heap, c->u.bytes, c->len, c->len);
			if (!b)
				goto fail;
			b->h.frozen = 1;
			v->k[i] = VM_OBJ(VT_BYTES, b);
		}
	}
	if (!(v->code = calloc(m->nfuncs, sizeof *v->code)) ||
	    !(v->xcode = calloc(m->nfuncs, sizeof *v->xcode)))
		goto fail;
	for (uint32_t i = 0; i < m->nfuncs; i++)
		if (!(v->code[i] = quicken(&m->funcs[i])))
			goto fail;
	v->main = fiber_new(v, VM_NIL, VM_NIL, true);
	if (!v->main)
		goto fail;
	rq_push(v, v->main);
	return v;
fail:
	vm_free(v);
	return NULL;
}

void vm_free(struct vm *v)
{
	if (!v)
		return;
	vm_heap_free(&v->heap);
	free(v->k);
	free(v->fnval);
	free(v->chans);
	for (uint32_t i = 0; v->code && i < v->m->nfuncs; i++)
		free(v->code[i]);
	free(v->code);
	for (uint32_t i = 0; v->xcode && i < v->m->nfuncs; i++)
		free(v->xcode[i]);
	free(v->xcode);
	free(v);
}

const char *vm_error(const struct vm *v)
{
	return v->err;
}

int vm_exit_status(const struct vm *v)
{
	return v->status;
}

size_t vm_memory(const struct vm *v)
{
	return v->heap.bytes;
}

uint32_t vm_fibers(const struct vm *v)
{
	return v->nfibers;
}

/* ---- helpers of the loop ---- */

static const char *type_name(struct vm_value x)
{
	static const char *const n[] = {"nil", "bool", "int", "float", "bytes", "array",
	                                "map", "function", "fiber", "channel"};
	return x.tag < sizeof n / sizeof n[0] ? n[x.tag] : "?";
}

/* Record a trap at the current instruction. */
static enum vm_status trap(struct vm *v, struct vm_fiber *f, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum vm_status trap(struct vm *v, struct vm_fiber *f, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (f && f->nframes) {
		const struct frame *fr = &f->frames[f->nframes - 1];
		const struct vm_func *fn = &v->m->funcs[fr->func];
		uint32_t pc = fr->pc < fn->ncode ? fr->pc : fn->ncode - 1;
		uint64_t w = fn->code[pc];
		unsigned op = VM_OP(w) % VM_NOPS, e = VM_E(w);
		const char *vn = e < vm_variant_count[op] ? vm_variant_names[op][e] : "?";
		unsigned line = fn->lines ? fn->lines[pc] : 0;
		char where[300] = "";
		if (line)
			snprintf(where, sizeof where, ", %s:%u",
			         v->m->source && v->m->source[0] ? v->m->source : "line", line);
		snprintf(v->err, sizeof v->err, "trap in function '%s' at pc %u (%s%s%s)%s: %s",
		         fn->name, pc, vm_op_names[op], vn[0] ? "." : "", vn, where, msg);
	} else {
		snprintf(v->err, sizeof v->err, "trap: %s", msg);
	}
	v->status = 1;
	if (v->io.log)
		v->io.log(v->io.ctx, v->err);
	return VM_RUN_TRAP;
}

static struct vm_value fn_value(struct vm *v, uint32_t i)
{
	if (v->fnval[i].tag == VT_NIL) {
		struct vm_closure *c = vm_obj_new(&v->heap, VT_CLOSURE, sizeof *c);
		if (c) {
			c->func = i;
			v->fnval[i] = VM_OBJ(VT_CLOSURE, c);
		}
	}
	return v->fnval[i];
}

static bool num(struct vm_value x, double *d)
{
	if (x.tag == VT_INT)
		*d = (double)x.u.i;
	else if (x.tag == VT_FLOAT)
		*d = x.u.f;
	else
		return false;
	return true;
}

/* CMP's order: -1, 0, 1; 2 when not comparable (LT/LE trap, EQ false). */
static int compare(struct vm_value a, struct vm_value b)
{
	if (a.tag == VT_INT && b.tag == VT_INT)
		return (a.u.i > b.u.i) - (a.u.i < b.u.i);
	double x, y;
	if (num(a, &x) && num(b, &y))
		return x != x || y != y ? 2 : (x > y) - (x < y);
	if (a.tag == VT_BYTES && b.tag == VT_BYTES) {
		const struct vm_bytes *p = (const void *)a.u.o, *q = (const void *)b.u.o;
		uint32_t n = p->len < q->len ? p->len : q->len;
		int c = n ? memcmp(p->data, q->data, n) : 0;
		if (c)
			return c < 0 ? -1 : 1;
		return (p->len > q->len) - (p->len < q->len);
	}
	return 2;
}

static bool equal(struct vm_value a, struct vm_value b)
{
	int c = compare(a, b);
	if (c != 2)
		return c == 0;
	if (a.tag != b.tag)
		return false;
	if (a.tag == VT_NIL)
		return true;
	if (a.tag == VT_BOOL)
		return a.u.b == b.u.b;
	return a.u.o == b.u.o;
}

/* ---- channels ---- */

static struct vm_chan *chan_of(struct vm_value x)
{
	return x.tag == VT_CHAN ? (struct vm_chan *)x.u.o : NULL;
}

/* Fill c->rbuf with what the channel has: 1 data or EOF there, 0 would
 * block, -errno. */
static int chan_fill(struct vm *v, struct vm_chan *c)
{
	if (c->rlen || c->eof)
		return 1;
	int64_t n = v->io.read(v->io.ctx, c->handle, v->scratch, sizeof v->scratch);
	if (n == -EAGAIN)
		return 0;
	if (n < 0)
		return (int)n;
	if (n == 0) {
		c->eof = 1;
		return 1;
	}
	if ((uint32_t)n > c->rcap) {
		uint8_t *nb = realloc(c->rbuf, (size_t)n);
		if (!nb || !vm_heap_charge(&v->heap, (ptrdiff_t)((size_t)n - c->rcap))) {
			if (nb)
				c->rbuf = nb;
			return -ENOMEM;
		}
		c->rbuf = nb;
		c->rcap = (uint32_t)n;
	}
	memcpy(c->rbuf, v->scratch, (size_t)n);
	c->rlen = (uint32_t)n;
	return 1;
}

static void park(struct vm *v, struct vm_fiber *f, struct vm_chan *c)
{
	(void)v;
	f->state = F_PARKED;
	f->wait = c;
	f->next = c->waiters;
	c->waiters = f;
}

void vm_io_ready(struct vm *v, void *handle)
{
	for (struct vm_chan *c = v->open; c; c = c->next_open) {
		if (c->handle != handle)
			continue;
		struct vm_fiber *w = c->waiters;
		c->waiters = NULL;
		while (w) {
			struct vm_fiber *n = w->next;
			w->wait = NULL;
			rq_push(v, w);
			w = n;
		}
	}
	struct vm_fiber *p = v->pollers;
	v->pollers = NULL;
	while (p) {
		struct vm_fiber *n = p->next;
		p->polling = 0;
		rq_push(v, p);
		p = n;
	}
}

/* ---- calls ---- */

/* Enter function value fnv with args at absolute stack[argbase..+nargs):
 * the new frame's R[0] is stack[argbase]. 0, or a trap message. */
static const char *enter(struct vm *v, struct vm_fiber *f, struct vm_value fnv, uint32_t argbase,
                         uint32_t nargs, uint32_t ret, uint32_t nret)
{
	if (fnv.tag != VT_CLOSURE)
		return "call of a value that is not a function";
	struct vm_closure *cl = (struct vm_closure *)fnv.u.o;
	const struct vm_func *fn = &v->m->funcs[cl->func];
	if (f->nframes >= v->max_depth)
		return "call depth limit reached (stack overflow)";
	if (!stack_need(v, f, (size_t)argbase + fn->nregs))
		return "out of memory (the manifest's Memory)";
	for (uint32_t i = nargs; i < fn->nparams; i++)
		f->stack[argbase + i] = VM_NIL; /* missing arguments */
	struct frame *fr = frame_push(v, f);
	if (!fr)
		return "out of memory (the manifest's Memory)";
	fr->func = cl->func;
	fr->pc = 0;
	fr->base = argbase;
	fr->ret = ret;
	fr->nret = nret;
	fr->cl = cl->nup ? cl : NULL;
	return NULL;
}

/* Start a new fiber: its entry closure called with its argument. */
static const char *start_fiber(struct vm *v, struct vm_fiber *f)
{
	if (!stack_need(v, f, 2))
		return "out of memory (the manifest's Memory)";
	f->stack[0] = f->arg;
	f->state = F_RUNNING;
	return enter(v, f, f->entry, 0, 1, 0, 1);
}

/* ---- the loop ---- */

#define R(i) (RB[(i)])
/* B as a signed 12-bit number: XOP_ADDI_JLT's step. */
#define VM_SB(w) ((int32_t)(VM_B(w) ^ 0x800u) - 0x800)

/* The threaded form of function fi, made on its first call. */
static const struct xi *thread_code(struct vm *v, uint32_t fi, const void *const *fast)
{
	const struct vm_func *fn = &v->m->funcs[fi];
	struct xi *x = malloc(fn->ncode * sizeof *x);
	if (!x)
		return NULL;
	for (uint32_t pc = 0; pc < fn->ncode; pc++) {
		uint64_t w = v->code[fi][pc];
		struct xi *p = &x[pc];
		p->w = w;
		p->h = fast[(VM_OP(w) & 63) << 5 | (VM_E(w) & 31)];
		p->a = (uint16_t)VM_A(w);
		p->b = (uint16_t)VM_B(w);
		p->c = (uint16_t)VM_C(w);
		p->d = (uint16_t)VM_D(w);
		p->t = (uint32_t)((int64_t)pc + 1 + VM_SBX(w)); /* jmp */
		p->imm = VM_OP(w) == VM_LOAD ? (VM_E(w) == 0 ? (int32_t)VM_BX(w) : VM_SBX(w))
		                             : VM_SC(w);
		if (VM_OP(w) == XOP_ADDI_JLT) {
			p->t = VM_C(w) | VM_E(w) << 12;
			p->imm = VM_SB(w);
		}
	}
	v->xcode[fi] = x;
	return x;
}

/* Keep each handler's own dispatch jump: gcc would otherwise merge the
 * identical DISPATCH() tails into one indirect jump (crossjumping), which
 * the branch predictor cannot tell apart (perf: a quarter of the loop row's
 * samples sat behind that one jump). */
__attribute__((optimize("no-crossjumping", "no-gcse")))
enum vm_status vm_run(struct vm *v, uint64_t budget)
{
	const struct vm_module *m = v->m;
	struct vm_heap *h = &v->heap;
	struct vm_fiber *f;
	struct frame *fr;
	const struct vm_func *fn;
	const struct xi *xc;  /* the running function's threaded code */
	struct vm_value *RB; /* R[0] of the running frame */
	uint32_t pc;
	const char *why;

next_fiber:
	f = rq_pop(v);
	if (!f) {
		v->cur = NULL;
		return v->main->state == F_DONE ? VM_RUN_DONE : VM_RUN_WAIT;
	}
	v->cur = f;
	if (f->state == F_NEW) {
		if (f == v->main) {
			/* The entry function, with no arguments. */
			struct vm_value ev = fn_value(v, m->entry);
			why = ev.tag == VT_NIL ? "out of memory (the manifest's Memory)"
			                       : enter(v, f, ev, 0, 0, 0, 1);
		} else {
			why = start_fiber(v, f);
		}
		if (why)
			return trap(v, f, "%s", why);
	}
	f->state = F_RUNNING;

#define RELOAD()                                   \
	do {                                       \
		fr = &f->frames[f->nframes - 1];   \
		fn = &m->funcs[fr->func];          \
		xc = v->xcode[fr->func];           \
		if (!xc && !(xc = thread_code(v, fr->func, fast))) \
			return trap(v, f, "out of memory"); \
		pc = fr->pc;                       \
		RB = f->stack + fr->base;          \
	} while (0)
#define SAVE() (fr->pc = pc)
#define TRAP(...)                                  \
	do {                                       \
		SAVE();                            \
		return trap(v, f, __VA_ARGS__);    \
	} while (0)
#define OOM() TRAP("out of memory (the manifest's Memory is %zu bytes)", h->limit)

	/* Threaded dispatch: the common cases have a handler of their own,
	 * found by op and variant at once in one table (GNU C's computed
	 * goto), each ending in its own indirect jump; everything else goes
	 * to the general switch below. perf: gcc compiled a switch over
	 * these sparse keys into a tree of compares (the loop row). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverride-init"
	static const void *const fast[64 << 5] = {
		[0 ... (64 << 5) - 1] = &&slow,
		[VM_LOAD << 5 | 0] = &&load_k,
		[VM_LOAD << 5 | 3] = &&load_int,
		[VM_LOAD << 5 | 4] = &&load_move,
		[VM_ARITH << 5 | 0] = &&arith_add,
		[VM_ARITH << 5 | 1] = &&arith_sub,
		[VM_CALL << 5 | 2] = &&call_f,
		[VM_RET << 5 | 0] = &&ret,
		[VM_ARITH << 5 | 18] = &&arith_addi,
		[VM_JMP << 5 | 0] = &&jmp,
		[VM_JMP << 5 | 3] = &&jmp_lt,
		[VM_JMP << 5 | 4] = &&jmp_le,
		[XOP_ADDI_JLT << 5 ... (XOP_ADDI_JLT << 5) + 31] = &&addi_jlt,
	};
#pragma GCC diagnostic pop
	uint64_t w;
	unsigned a, e;
#define DISPATCH()                                                   \
	do {                                                         \
		ip = &xc[pc];                                        \
		goto *ip->h;                                         \
	} while (0)

	const struct xi *ip;
	RELOAD();
	for (;;) {
		DISPATCH();
	load_k:
		RB[ip->a] = v->k[ip->imm];
		pc++;
		DISPATCH();
	load_int:
		RB[ip->a] = VM_INT(ip->imm);
		pc++;
		DISPATCH();
	load_move:
		RB[ip->a] = RB[ip->b];
		pc++;
		DISPATCH();
	arith_add: {
		struct vm_value x = RB[ip->b], y = RB[ip->c];
		if (x.tag == VT_INT && y.tag == VT_INT) {
			RB[ip->a] = VM_INT((int64_t)((uint64_t)x.u.i + (uint64_t)y.u.i));
			pc++;
			DISPATCH();
		}
		goto slow;
	}
	arith_sub: {
		struct vm_value x = RB[ip->b], y = RB[ip->c];
		if (x.tag == VT_INT && y.tag == VT_INT) {
			RB[ip->a] = VM_INT((int64_t)((uint64_t)x.u.i - (uint64_t)y.u.i));
			pc++;
			DISPATCH();
		}
		goto slow;
	}
	call_f: {
		/* A direct call (the verifier: F[D] has no upvalues) when the
		 * stack, the frames and the budget have room and every
		 * parameter is passed; else the general path. */
		uint32_t fi = ip->d, nb = fr->base + ip->a + 1;
		const struct vm_func *cf = &m->funcs[fi];
		const struct xi *cx = v->xcode[fi];
		if (cx && f->nframes < f->fcap && f->nframes < v->max_depth &&
		    nb + cf->nregs <= f->scap && ip->b >= cf->nparams && budget) {
			budget--;
			fr->pc = pc + 1;
			struct frame *nf = &f->frames[f->nframes++];
			nf->func = fi;
			nf->base = nb;
			nf->ret = fr->base + ip->a;
			nf->nret = ip->c;
			nf->cl = NULL;
			fr = nf;
			fn = cf;
			xc = cx;
			pc = 0;
			RB = f->stack + nb;
			DISPATCH();
		}
		goto slow;
	}
	ret:
		if (f->nframes > 1 && fr->nret <= 1) {
			/* Back to a caller that wants at most one result. */
			struct vm_value r = ip->b ? RB[ip->a] : VM_NIL;
			uint32_t dst = fr->ret, want = fr->nret;
			f->nframes--;
			fr = &f->frames[f->nframes - 1];
			fn = &m->funcs[fr->func];
			xc = v->xcode[fr->func];
			pc = fr->pc;
			RB = f->stack + fr->base;
			if (want)
				f->stack[dst] = r;
			DISPATCH();
		}
		goto slow;
	arith_addi:
		if (RB[ip->b].tag == VT_INT) {
			RB[ip->a] = VM_INT((int64_t)((uint64_t)RB[ip->b].u.i + (uint64_t)(int64_t)ip->imm));
			pc++;
			DISPATCH();
		}
		goto slow;
	jmp:
		pc = ip->t;
		if (budget-- == 0)
			goto preempt;
		DISPATCH();
	jmp_lt: {
		struct vm_value x = RB[ip->a], y = RB[ip->d];
		if (x.tag == VT_INT && y.tag == VT_INT) {
			if (x.u.i < y.u.i)
				goto jmp;
			pc++;
			DISPATCH();
		}
		goto slow;
	}
	jmp_le: {
		struct vm_value x = RB[ip->a], y = RB[ip->d];
		if (x.tag == VT_INT && y.tag == VT_INT) {
			if (x.u.i <= y.u.i)
				goto jmp;
			pc++;
			DISPATCH();
		}
		goto slow;
	}
	addi_jlt: {
		struct vm_value *x = &RB[ip->a], y = RB[ip->d];
		if (x->tag == VT_INT && y.tag == VT_INT) {
			int64_t n = (int64_t)((uint64_t)x->u.i + (uint64_t)(int64_t)ip->imm);
			x->u.i = n;
			if (n < y.u.i)
				goto jmp; /* ip->t is the loop's head */
			pc += 2;
			DISPATCH();
		}
		/* Not ints: run the two instructions as written. */
		w = fn->code[pc];
		goto generic;
	}
	slow:
		w = ip->w;
	generic:
		a = VM_A(w);
		e = VM_E(w);
		switch (VM_OP(w)) {
		case VM_LOAD:
			switch (e) {
			case 0: R(a) = v->k[VM_BX(w)]; break;
			case 1: R(a) = VM_NIL; break;
			case 2: R(a) = VM_BOOL(VM_B(w) != 0); break;
			case 3: R(a) = VM_INT(VM_SBX(w)); break;
			case 4: R(a) = R(VM_B(w)); break;
			case 5: R(a) = fr->cl ? fr->cl->up[VM_B(w)] : VM_NIL; break;
			default: { /* 6 ENV */
				const struct vm_const *k = &m->consts[VM_BX(w)];
				int i = vm_module_find(m, (const char *)k->u.bytes);
				if (i < 0)
					TRAP("'%s' is not bound in the environment", (const char *)k->u.bytes);
				SAVE();
				struct vm_value fv = fn_value(v, (uint32_t)i);
				if (fv.tag == VT_NIL)
					OOM();
				R(a) = fv;
			}
			}
			pc++;
			break;

		case VM_ARITH: {
			/* ADDI's C is an immediate, not a register. */
			struct vm_value x = R(VM_B(w)), y = e == 18 ? VM_NIL : R(VM_C(w));
			struct vm_value *d = &R(a);
			if (e <= 2 && x.tag == VT_INT && y.tag == VT_INT) {
				uint64_t p = (uint64_t)x.u.i, q = (uint64_t)y.u.i;
				*d = VM_INT((int64_t)(e == 0 ? p + q : e == 1 ? p - q : p * q));
				pc++;
				break;
			}
			double dx, dy;
			switch (e) {
			case 0: case 1: case 2: case 3:
				if (!num(x, &dx) || !num(y, &dy))
					TRAP("arithmetic on %s and %s", type_name(x), type_name(y));
				*d = VM_FLT(e == 0 ? dx + dy : e == 1 ? dx - dy : e == 2 ? dx * dy : dx / dy);
				break;
			case 4: case 5:
				if (x.tag == VT_INT && y.tag == VT_INT) {
					if (y.u.i == 0)
						TRAP("integer division by zero");
					int64_t q, r;
					if (y.u.i == -1) { /* INT64_MIN / -1 wraps */
						q = (int64_t)(0 - (uint64_t)x.u.i);
						r = 0;
					} else {
						q = x.u.i / y.u.i;
						r = x.u.i % y.u.i;
						if (r != 0 && ((r < 0) != (y.u.i < 0))) {
							q--;
							r += y.u.i;
						}
					}
					*d = VM_INT(e == 4 ? q : r);
				} else {
					if (!num(x, &dx) || !num(y, &dy))
						TRAP("arithmetic on %s and %s", type_name(x), type_name(y));
					double q = floor(dx / dy);
					*d = VM_FLT(e == 4 ? q : dx - q * dy);
				}
				break;
			case 6:
				if (x.tag == VT_INT)
					*d = VM_INT((int64_t)(0 - (uint64_t)x.u.i));
				else if (x.tag == VT_FLOAT)
					*d = VM_FLT(-x.u.f);
				else
					TRAP("negation of %s", type_name(x));
				break;
			case 7: case 8: case 9: case 10: case 11:
				if (x.tag != VT_INT || y.tag != VT_INT)
					TRAP("bitwise operation on %s and %s", type_name(x), type_name(y));
				{
					uint64_t p = (uint64_t)x.u.i, q = (uint64_t)y.u.i;
					uint64_t r = e == 7 ? p & q : e == 8 ? p | q : e == 9 ? p ^ q
					           : q >= 64 ? 0 : e == 10 ? p << q : p >> q;
					*d = VM_INT((int64_t)r);
				}
				break;
			case 12:
				if (x.tag != VT_INT)
					TRAP("bitwise not of %s", type_name(x));
				*d = VM_INT(~x.u.i);
				break;
			case 13: {
				if (x.tag != VT_BYTES || y.tag != VT_BYTES)
					TRAP("concatenation of %s and %s", type_name(x), type_name(y));
				const struct vm_bytes *p = (const void *)x.u.o, *q = (const void *)y.u.o;
				SAVE();
				struct vm_bytes *b = vm_bytes_new(h, NULL, 0, (size_t)p->len + q->len);
				if (!b)
					OOM();
				/* The collector may have run: re-read the operands. */
				p = (const void *)R(VM_B(w)).u.o;
				q = (const void *)R(VM_C(w)).u.o;
				if (p->len)
					memcpy(b->data, p->data, p->len);
				if (q->len)
					memcpy(b->data + p->len, q->data, q->len);
				b->len = p->len + q->len;
				R(a) = VM_OBJ(VT_BYTES, b);
				break;
			}
			case 14:
				if (x.tag == VT_BYTES)
					*d = VM_INT(((struct vm_bytes *)x.u.o)->len);
				else if (x.tag == VT_ARRAY)
					*d = VM_INT(((struct vm_array *)x.u.o)->len);
				else if (x.tag == VT_MAP)
					*d = VM_INT(((struct vm_map *)x.u.o)->len);
				else
					TRAP("length of %s", type_name(x));
				break;
			case 15:
				if (x.tag == VT_INT) {
					*d = x;
				} else if (x.tag == VT_FLOAT) {
					if (!(x.u.f > -9.3e18 && x.u.f < 9.3e18))
						TRAP("float %g does not fit an int", x.u.f);
					*d = VM_INT((int64_t)x.u.f);
				} else if (x.tag == VT_BYTES) {
					const struct vm_bytes *b = (const void *)x.u.o;
					char buf[32];
					if (b->len == 0 || b->len >= sizeof buf)
						TRAP("'%.*s' is not an integer", (int)(b->len < 40 ? b->len : 40),
						     (const char *)b->data);
					memcpy(buf, b->data, b->len);
					buf[b->len] = 0;
					char *end;
					errno = 0;
					long long n = strtoll(buf, &end, 10);
					if (*end || errno)
						TRAP("'%s' is not an integer", buf);
					*d = VM_INT(n);
				} else {
					TRAP("%s is not a number", type_name(x));
				}
				break;
			case 16:
				if (!num(x, &dx))
					TRAP("%s is not a number", type_name(x));
				*d = VM_FLT(dx);
				break;
			case 17:
				*d = VM_BOOL(!vm_truthy(x));
				break;
			case 18:
				if (x.tag == VT_INT)
					*d = VM_INT((int64_t)((uint64_t)x.u.i + (uint64_t)(int64_t)VM_SC(w)));
				else if (x.tag == VT_FLOAT)
					*d = VM_FLT(x.u.f + VM_SC(w));
				else
					TRAP("arithmetic on %s", type_name(x));
				break;
			default: { /* 19 TOBYTES */
				char buf[64];
				int n;
				if (x.tag == VT_BYTES) {
					*d = x;
					break;
				}
				if (x.tag == VT_INT)
					n = snprintf(buf, sizeof buf, "%" PRId64, x.u.i);
				else if (x.tag == VT_FLOAT)
					n = snprintf(buf, sizeof buf, "%.14g", x.u.f);
				else if (x.tag == VT_BOOL)
					n = snprintf(buf, sizeof buf, "%s", x.u.b ? "true" : "false");
				else if (x.tag == VT_NIL)
					n = snprintf(buf, sizeof buf, "nil");
				else
					TRAP("%s has no text form", type_name(x));
				SAVE();
				struct vm_bytes *b = vm_bytes_new(h, buf, (size_t)n, (size_t)n);
				if (!b)
					OOM();
				R(a) = VM_OBJ(VT_BYTES, b);
			}
			}
			pc++;
			break;
		}

		case VM_CMP: {
			struct vm_value x = R(VM_B(w)), y = R(VM_C(w));
			bool r;
			if (e <= 1) {
				r = equal(x, y) == (e == 0);
			} else {
				int c = compare(x, y);
				if (c == 2)
					TRAP("comparison of %s and %s", type_name(x), type_name(y));
				r = e == 2 ? c < 0 : c <= 0;
			}
			R(a) = VM_BOOL(r);
			pc++;
			break;
		}

		case VM_JMP: {
			bool take;
			if (e == 0) {
				take = true;
			} else if (e <= 2) {
				take = vm_truthy(R(a)) == (e == 1);
			} else {
				struct vm_value x = R(a), y = R(VM_D(w));
				if (x.tag == VT_INT && y.tag == VT_INT) {
					take = e == 3 ? x.u.i < y.u.i : e == 4 ? x.u.i <= y.u.i
					     : e == 5 ? x.u.i == y.u.i : x.u.i != y.u.i;
				} else if (e >= 5) {
					take = equal(x, y) == (e == 5);
				} else {
					int c = compare(x, y);
					if (c == 2)
						TRAP("comparison of %s and %s", type_name(x), type_name(y));
					take = e == 3 ? c < 0 : c <= 0;
				}
			}
			if (take) {
				pc = (uint32_t)((int64_t)pc + 1 + VM_SBX(w));
				if (budget-- == 0)
					goto preempt;
			} else {
				pc++;
			}
			break;
		}

		case VM_CALL: {
			unsigned nargs = VM_B(w), nres = VM_C(w);
			struct vm_value fv;
			if (e == 2 || e == 3) {
				fv = fn_value(v, VM_D(w));
			} else if (e == 4) {
				const struct vm_const *k = &m->consts[VM_D(w)];
				int i = vm_module_find(m, (const char *)k->u.bytes);
				if (i < 0)
					TRAP("'%s' is not bound in the environment", (const char *)k->u.bytes);
				fv = fn_value(v, (uint32_t)i);
			} else {
				fv = R(a);
			}
			if (fv.tag == VT_NIL && (e >= 2))
				OOM();
			if (fv.tag != VT_CLOSURE)
				TRAP("call of %s, not a function", type_name(fv));
			if (budget-- == 0)
				goto preempt;
			bool tail = e == 1 || e == 3;
			if (tail) {
				/* Move the arguments down to this frame's R[0] and
				 * replace the frame. */
				uint32_t base = fr->base, ret = fr->ret, nret = fr->nret;
				for (unsigned i = 0; i < nargs; i++)
					f->stack[base + i] = R(a + 1 + i);
				f->nframes--;
				SAVE();
				why = enter(v, f, fv, base, nargs, ret, nret);
			} else {
				fr->pc = pc + 1;
				why = enter(v, f, fv, fr->base + a + 1, nargs, fr->base + a, nres);
			}
			if (why) {
				if (!tail)
					fr->pc = pc;
				else
					f->nframes++; /* report at the caller */
				return trap(v, f, "%s", why);
			}
			RELOAD();
			break;
		}

		case VM_RET: {
			unsigned n = VM_B(w);
			uint32_t src = fr->base + a, dst = fr->ret, want = fr->nret;
			f->nframes--;
			if (f->nframes == 0) {
				/* The fiber's first function returned: it is done. */
				f->result = n ? f->stack[src] : VM_NIL;
				f->state = F_DONE;
				if (f == v->main) {
					struct vm_value r = f->result;
					v->status = r.tag == VT_INT && r.u.i >= 0 && r.u.i <= 255 ? (int)r.u.i : 0;
					v->cur = NULL;
					return VM_RUN_DONE;
				}
				if (!f->scheduled) {
					/* A continuation finished: back to its resumer. */
					struct vm_fiber *r = f->resumer;
					f->resumer = NULL;
					r->stack[f->resume_dst] = f->result;
					f = r;
					v->cur = f;
					f->state = F_RUNNING;
					RELOAD();
					break;
				}
				for (struct vm_fiber *j = f->joiners, *nx; j; j = nx) {
					nx = j->next;
					j->stack[j->join_dst] = f->result;
					rq_push(v, j);
				}
				f->joiners = NULL;
				goto next_fiber;
			}
			for (unsigned i = 0; i < want; i++)
				f->stack[dst + i] = i < n ? f->stack[src + i] : VM_NIL;
			RELOAD();
			break;
		}

		case VM_CLOSURE: {
			uint32_t fi = VM_BX(w);
			const struct vm_func *tf = &m->funcs[fi];
			SAVE();
			struct vm_closure *c = vm_obj_new(h, VT_CLOSURE,
			                                  sizeof *c + tf->nupvals * sizeof c->up[0]);
			if (!c)
				OOM();
			c->func = fi;
			c->nup = tf->nupvals;
			for (uint32_t i = 0; i < tf->nupvals; i++)
				c->up[i] = R(tf->upval_src[i]);
			R(a) = VM_OBJ(VT_CLOSURE, c);
			pc++;
			break;
		}

		case VM_NEW: {
			SAVE();
			void *o;
			if (e == 0) {
				o = vm_array_new(h, VM_B(w));
			} else if (e == 1) {
				o = vm_map_new(h);
			} else if (e == 2) {
				o = vm_bytes_new(h, NULL, 0, VM_B(w));
			} else {
				struct vm_array *arr = vm_array_new(h, VM_C(w));
				if (arr) {
					for (unsigned i = 0; i < VM_C(w); i++)
						arr->items[i] = R(VM_B(w) + i);
					arr->len = VM_C(w);
				}
				o = arr;
			}
			if (!o)
				OOM();
			R(a) = VM_OBJ(e == 1 ? VT_MAP : e == 2 ? VT_BYTES : VT_ARRAY, o);
			pc++;
			break;
		}

		case VM_GET: {
			struct vm_value x = R(VM_B(w));
			if (e == 0 || e == 2) {
				struct vm_value key = e == 0 ? R(VM_C(w)) : VM_INT(VM_C(w));
				if (x.tag == VT_MAP) {
					R(a) = vm_map_get((struct vm_map *)x.u.o, key);
				} else if (x.tag == VT_ARRAY || x.tag == VT_BYTES) {
					if (key.tag != VT_INT)
						TRAP("index of %s is %s, not an int", type_name(x), type_name(key));
					uint32_t len = x.tag == VT_ARRAY ? ((struct vm_array *)x.u.o)->len
					                                 : ((struct vm_bytes *)x.u.o)->len;
					if (key.u.i < 0 || key.u.i >= len)
						TRAP("index %" PRId64 " out of range 0..%d", key.u.i, (int)len - 1);
					R(a) = x.tag == VT_ARRAY ? ((struct vm_array *)x.u.o)->items[key.u.i]
					     : VM_INT(((struct vm_bytes *)x.u.o)->data[key.u.i]);
				} else {
					TRAP("indexing %s", type_name(x));
				}
			} else if (e == 1) {
				struct vm_value lo = R(VM_C(w)), hi = R(VM_D(w));
				if ((x.tag != VT_BYTES && x.tag != VT_ARRAY) || lo.tag != VT_INT || hi.tag != VT_INT)
					TRAP("slice of %s with %s, %s", type_name(x), type_name(lo), type_name(hi));
				uint32_t len = x.tag == VT_ARRAY ? ((struct vm_array *)x.u.o)->len
				                                 : ((struct vm_bytes *)x.u.o)->len;
				int64_t i = lo.u.i < 0 ? 0 : lo.u.i > len ? len : lo.u.i;
				int64_t j = hi.u.i < i ? i : hi.u.i > len ? len : hi.u.i;
				SAVE();
				if (x.tag == VT_BYTES) {
					struct vm_bytes *b = vm_bytes_new(h, NULL, 0, (size_t)(j - i));
					if (!b)
						OOM();
					const struct vm_bytes *s = (const void *)R(VM_B(w)).u.o;
					if (j > i)
						memcpy(b->data, s->data + i, (size_t)(j - i));
					b->len = (uint32_t)(j - i);
					R(a) = VM_OBJ(VT_BYTES, b);
				} else {
					struct vm_array *b = vm_array_new(h, (size_t)(j - i));
					if (!b)
						OOM();
					const struct vm_array *s = (const void *)R(VM_B(w)).u.o;
					for (int64_t k = i; k < j; k++)
						b->items[b->len++] = s->items[k];
					R(a) = VM_OBJ(VT_ARRAY, b);
				}
			} else { /* 3 FIND */
				struct vm_value from = R(VM_D(w));
				if (x.tag != VT_BYTES || from.tag != VT_INT)
					TRAP("find in %s from %s", type_name(x), type_name(from));
				const struct vm_bytes *b = (const void *)x.u.o;
				int64_t i = from.u.i < 0 ? 0 : from.u.i;
				const uint8_t *p = i < b->len ? memchr(b->data + i, (int)VM_C(w), b->len - (size_t)i)
				                              : NULL;
				R(a) = VM_INT(p ? p - b->data : -1);
			}
			pc++;
			break;
		}

		case VM_SET: {
			struct vm_value t = R(a), key = R(VM_B(w)), val = R(VM_C(w));
			SAVE();
			if (e == 1) {
				val = key; /* APPEND R[A] += R[B] */
				if (t.tag == VT_ARRAY) {
					if (!vm_array_push(h, (struct vm_array *)t.u.o, val))
						OOM();
				} else if (t.tag == VT_BYTES) {
					struct vm_bytes *b = (struct vm_bytes *)t.u.o;
					if (b->h.frozen)
						TRAP("append to a bytes constant (make one with new.bytes)");
					if (val.tag == VT_INT) {
						if (val.u.i < 0 || val.u.i > 255)
							TRAP("byte %" PRId64 " out of range 0..255", val.u.i);
						if (!vm_bytes_reserve(h, b, 1))
							OOM();
						b->data[b->len++] = (uint8_t)val.u.i;
					} else if (val.tag == VT_BYTES) {
						const struct vm_bytes *s = (const void *)val.u.o;
						uint32_t n = s->len;
						if (!vm_bytes_reserve(h, b, n))
							OOM();
						if (n)
							memmove(b->data + b->len, s->data, n);
						b->len += n;
					} else {
						TRAP("append of %s to bytes", type_name(val));
					}
				} else {
					TRAP("append to %s", type_name(t));
				}
			} else if (t.tag == VT_MAP) {
				if (!vm_map_key_ok(key))
					TRAP("a map key must be an int, a bool or bytes, not %s", type_name(key));
				if (!vm_map_set(h, (struct vm_map *)t.u.o, key, val))
					OOM();
			} else if (t.tag == VT_ARRAY) {
				struct vm_array *arr = (struct vm_array *)t.u.o;
				if (key.tag != VT_INT || key.u.i < 0 || key.u.i > arr->len)
					TRAP("array index %s out of range 0..%u",
					     key.tag == VT_INT ? "" : type_name(key), arr->len);
				if (key.u.i == arr->len) {
					if (!vm_array_push(h, arr, val))
						OOM();
				} else {
					arr->items[key.u.i] = val;
				}
			} else if (t.tag == VT_BYTES) {
				struct vm_bytes *b = (struct vm_bytes *)t.u.o;
				if (b->h.frozen)
					TRAP("change of a bytes constant (make one with new.bytes)");
				if (key.tag != VT_INT || key.u.i < 0 || key.u.i >= b->len)
					TRAP("bytes index out of range 0..%d", (int)b->len - 1);
				if (val.tag != VT_INT || val.u.i < 0 || val.u.i > 255)
					TRAP("a byte is an int 0..255, not %s", type_name(val));
				b->data[key.u.i] = (uint8_t)val.u.i;
			} else {
				TRAP("indexing %s", type_name(t));
			}
			pc++;
			break;
		}

		case VM_CONT: {
			SAVE();
			if (e == 0 || e == 3) { /* NEW, SPAWN */
				if (R(VM_B(w)).tag != VT_CLOSURE)
					TRAP("%s of %s, not a function", e ? "spawn" : "continuation",
					     type_name(R(VM_B(w))));
				struct vm_fiber *nf = fiber_new(v, R(VM_B(w)), e ? R(VM_C(w)) : VM_NIL, e == 3);
				if (!nf)
					OOM();
				R(a) = VM_OBJ(VT_FIBER, nf);
				if (e == 3)
					rq_push(v, nf);
				pc++;
				break;
			}
			if (e == 1) { /* RESUME */
				struct vm_value cv = R(VM_B(w));
				struct vm_fiber *co = cv.tag == VT_FIBER ? (struct vm_fiber *)cv.u.o : NULL;
				if (!co || co->scheduled)
					TRAP("resume of %s, not a continuation", co ? "a fiber" : type_name(cv));
				if (co->state != F_NEW && co->state != F_SUSPENDED)
					TRAP("resume of a continuation that is %s",
					     co->state == F_DONE ? "finished" : "running");
				fr->pc = pc + 1;
				co->resumer = f;
				co->resume_dst = fr->base + a;
				f->state = F_SUSPENDED;
				if (co->state == F_NEW) {
					co->arg = R(VM_C(w));
					why = start_fiber(v, co);
					if (why)
						return trap(v, co, "%s", why);
				} else {
					co->stack[co->yield_dst] = R(VM_C(w));
				}
				co->state = F_RUNNING;
				f = co;
				v->cur = f;
				RELOAD();
				break;
			}
			if (e == 2) { /* YIELD */
				struct vm_fiber *r = f->resumer;
				if (!r)
					TRAP("yield outside a continuation");
				f->yield_dst = fr->base + a;
				fr->pc = pc + 1;
				f->state = F_SUSPENDED;
				f->resumer = NULL;
				r->stack[f->resume_dst] = R(VM_B(w));
				f = r;
				v->cur = f;
				f->state = F_RUNNING;
				RELOAD();
				break;
			}
			if (e == 4) { /* JOIN */
				struct vm_value fv = R(VM_B(w));
				struct vm_fiber *t = fv.tag == VT_FIBER ? (struct vm_fiber *)fv.u.o : NULL;
				if (!t || !t->scheduled)
					TRAP("join of %s, not a fiber", t ? "a continuation" : type_name(fv));
				if (t == f)
					TRAP("a fiber cannot join itself");
				if (t->state == F_DONE) {
					R(a) = t->result;
					pc++;
					break;
				}
				fr->pc = pc + 1;
				f->join_dst = fr->base + a;
				f->state = F_PARKED;
				f->next = t->joiners;
				t->joiners = f;
				goto next_fiber;
			}
			/* 5 PASS */
			fr->pc = pc + 1;
			rq_push(v, f);
			goto next_fiber;
		}

		case VM_IO: {
			SAVE();
			if (e == 0) { /* OPEN */
				uint32_t ki = VM_BX(w);
				if (!v->chans[ki]) {
					const struct vm_const *k = &m->consts[ki];
					void *hd;
					int rc = v->io.open(v->io.ctx, (const char *)k->u.bytes, k->len, &hd);
					if (rc < 0)
						TRAP("no channel '%s' in the manifest", (const char *)k->u.bytes);
					struct vm_chan *c = vm_obj_new(h, VT_CHAN, sizeof *c);
					if (!c)
						OOM();
					c->handle = hd;
					c->next_open = v->open;
					v->open = c;
					v->chans[ki] = c;
				}
				R(a) = VM_OBJ(VT_CHAN, v->chans[ki]);
				pc++;
				break;
			}
			if (e == 5) { /* POLL */
				struct vm_value av = R(VM_B(w));
				if (av.tag != VT_ARRAY)
					TRAP("poll of %s, not an array of channels", type_name(av));
				struct vm_array *arr = (struct vm_array *)av.u.o;
				int found = -1;
				for (uint32_t i = 0; i < arr->len && found < 0; i++) {
					struct vm_chan *c = chan_of(arr->items[i]);
					if (!c)
						TRAP("poll: item %u is %s, not a channel", i, type_name(arr->items[i]));
					int rc = chan_fill(v, c);
					if (rc < 0)
						TRAP("poll: %s", strerror(-rc));
					if (rc > 0)
						found = (int)i;
				}
				if (found < 0) {
					f->state = F_PARKED;
					f->polling = 1;
					f->next = v->pollers;
					v->pollers = f;
					goto next_fiber;
				}
				R(a) = VM_INT(found);
				pc++;
				break;
			}
			struct vm_chan *c = chan_of(R(VM_B(w)));
			if (!c)
				TRAP("%s is not a channel", type_name(R(VM_B(w))));
			if (e == 1 || e == 6) { /* READ, LINE */
				int64_t max = IO_CHUNK;
				if (e == 1) {
					struct vm_value n = R(VM_C(w));
					if (n.tag != VT_INT || n.u.i < 0)
						TRAP("read size %s is not a count", type_name(n));
					max = n.u.i < IO_CHUNK ? n.u.i : IO_CHUNK;
				}
				size_t take = 0;
				for (;;) {
					int rc = chan_fill(v, c);
					if (rc < 0)
						TRAP("read: %s", strerror(-rc));
					if (rc == 0) {
						park(v, f, c);
						goto next_fiber;
					}
					if (e == 1) {
						take = c->rlen < (size_t)max ? c->rlen : (size_t)max;
						break;
					}
					if (c->eof) { /* the last line, however long */
						take = c->rlen;
						break;
					}
					const uint8_t *nl = memchr(c->rbuf, '\n', c->rlen);
					if (nl) {
						take = (size_t)(nl - c->rbuf) + 1;
						break;
					}
					/* A line longer than what came: keep what we have
					 * and read more behind it. */
					int64_t n = v->io.read(v->io.ctx, c->handle, v->scratch, sizeof v->scratch);
					if (n == -EAGAIN) {
						park(v, f, c);
						goto next_fiber;
					}
					if (n < 0)
						TRAP("read: %s", strerror((int)-n));
					if (n == 0) {
						c->eof = 1;
						continue;
					}
					size_t need = (size_t)c->rlen + (size_t)n;
					if (need > c->rcap) {
						uint8_t *nb = realloc(c->rbuf, need);
						if (!nb)
							OOM();
						c->rbuf = nb;
						if (!vm_heap_charge(h, (ptrdiff_t)(need - c->rcap)))
							OOM();
						c->rcap = (uint32_t)need;
					}
					memcpy(c->rbuf + c->rlen, v->scratch, (size_t)n);
					c->rlen = (uint32_t)need;
				}
				struct vm_bytes *b = vm_bytes_new(h, c->rbuf, take, take);
				if (!b)
					OOM();
				memmove(c->rbuf, c->rbuf + take, c->rlen - take);
				c->rlen -= (uint32_t)take;
				R(a) = VM_OBJ(VT_BYTES, b);
				pc++;
				break;
			}
			if (e == 2) { /* WRITE */
				struct vm_value bv = R(VM_C(w));
				if (bv.tag != VT_BYTES)
					TRAP("write of %s, not bytes", type_name(bv));
				const struct vm_bytes *b = (const void *)bv.u.o;
				while (f->io_off < b->len) {
					int64_t n = v->io.write(v->io.ctx, c->handle, b->data + f->io_off,
					                        b->len - f->io_off);
					if (n == -EAGAIN) {
						park(v, f, c);
						goto next_fiber;
					}
					if (n < 0)
						TRAP("write: %s", strerror((int)-n));
					f->io_off += (size_t)n;
				}
				f->io_off = 0;
				R(a) = VM_INT(b->len);
				pc++;
				break;
			}
			if (e == 3) { /* CLOSE */
				int rc = v->io.close(v->io.ctx, c->handle);
				if (rc < 0 && rc != -EAGAIN)
					TRAP("close: %s", strerror(-rc));
				pc++;
				break;
			}
			/* 4 SEEK */
			{
				struct vm_value off = R(VM_C(w));
				if (off.tag != VT_INT)
					TRAP("seek offset is %s, not an int", type_name(off));
				int64_t r = v->io.seek(v->io.ctx, c->handle, off.u.i, (int)VM_D(w));
				if (r < 0)
					TRAP("seek: %s", strerror((int)-r));
				c->rlen = 0;
				c->eof = 0;
				R(a) = VM_INT(r);
				pc++;
				break;
			}
		}

		default: { /* VM_TRAP; the verifier let nothing else in */
			struct vm_value x = e == 0 ? R(a) : VM_NIL;
			if (e == 2) {
				if (vm_truthy(R(a))) {
					pc++;
					break;
				}
				TRAP("%s", (const char *)m->consts[VM_D(w)].u.bytes);
			}
			if (e == 1)
				TRAP("%s", (const char *)m->consts[VM_BX(w)].u.bytes);
			if (x.tag == VT_BYTES) {
				const struct vm_bytes *b = (const void *)x.u.o;
				TRAP("%.*s", (int)(b->len < 200 ? b->len : 200), (const char *)b->data);
			}
			if (x.tag == VT_INT)
				TRAP("%" PRId64, x.u.i);
			TRAP("error value %s", type_name(x));
		}
		}
	}

preempt:
	/* The budget is spent: this fiber goes to the back of the queue, and
	 * the owner's loop runs before the next slice. */
	SAVE();
	rq_push(v, f);
	v->cur = NULL;
	return VM_RUN_MORE;
}
