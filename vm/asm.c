/*
 * asm.c - the text assembler and the disassembler (asm.h; the syntax is
 * docs/vm.md, "Assembly").
 *
 * The assembler makes two passes over the text. The first finds every
 * `func` header, so that calls and closures may name a function defined
 * further down. The second assembles the bodies, one function at a time:
 * labels are resolved when the function's `end` is reached, constants are
 * added to the pool as they are met (one entry per distinct value), and
 * every instruction records its line. The result goes through vm_verify;
 * its complaint is given the line of the instruction it names.
 *
 * The disassembler writes the constant pool first as `const` lines, so
 * the pool keeps its order, then each function with `.regs`, labels
 * L<pc> at the jump targets and full mnemonics (load.move, not move).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "asm.h"
#include "isa.h"
#include "verify.h"

/* ---- operand kinds ----
 *
 * One string per op.variant, one character per operand:
 *   A B C D  a register, into that field
 *   k        a constant (int, float, "string" or kN), into BX
 *   s        a string constant, into BX;  S  the same into D (0..4095)
 *   i        an integer -8388608..8388607, into SBX
 *   b        true or false, into B
 *   u        an upvalue: its index or its name in `upvals`, into B
 *   c        an integer -2048..2047, into C
 *   L        a label (or a signed offset), into SBX
 *   f        a function name, into D;  F  the same into BX
 *   2 3      a count 0..4095, into B (2) or C (3)
 *   8        a byte 0..255, into C
 *   w        0, 1 or 2 (seek's whence), into D
 */
static const char *const spec_load[] = {"Ak", "A", "Ab", "Ai", "AB", "Au", "As"};
static const char *const spec_arith[] = {
	"ABC", "ABC", "ABC", "ABC", "ABC", "ABC", "AB",         /* add..neg */
	"ABC", "ABC", "ABC", "ABC", "ABC", "AB",                /* band..bnot */
	"ABC", "AB", "AB", "AB", "AB", "ABc", "AB",             /* concat..tobytes */
};
static const char *const spec_cmp[] = {"ABC", "ABC", "ABC", "ABC"};
static const char *const spec_jmp[] = {"L", "AL", "AL", "ADL", "ADL", "ADL", "ADL"};
static const char *const spec_call[] = {"A23", "A2", "A23f", "A2f", "A23S"};
static const char *const spec_ret[] = {"A2"};
static const char *const spec_closure[] = {"AF"};
static const char *const spec_new[] = {"A2", "A", "A2", "AB3"};
static const char *const spec_get[] = {"ABC", "ABCD", "AB3", "AB8D"};
static const char *const spec_set[] = {"ABC", "AB"};
static const char *const spec_cont[] = {"AB", "ABC", "AB", "ABC", "AB", ""};
static const char *const spec_io[] = {"As", "ABC", "ABC", "B", "ABCw", "AB", "AB"};
static const char *const spec_trap[] = {"A", "s", "AS"};

static const char *const *const specs[VM_NOPS] = {
	spec_load, spec_arith, spec_cmp, spec_jmp, spec_call, spec_ret, spec_closure,
	spec_new, spec_get, spec_set, spec_cont, spec_io, spec_trap,
};

/* Mnemonics without a variant, and what they stand for. */
static const struct {
	const char *name;
	unsigned op, e;
} aliases[] = {
	{"move", VM_LOAD, 4}, {"jmp", VM_JMP, 0}, {"call", VM_CALL, 0},
	{"get", VM_GET, 0}, {"set", VM_SET, 0}, {"trap", VM_TRAP, 0},
};

static const char *kind_name(char k)
{
	switch (k) {
	case 'A': case 'B': case 'C': case 'D': return "a register";
	case 'k': return "a constant";
	case 's': case 'S': return "a string constant";
	case 'i': return "an integer";
	case 'b': return "true or false";
	case 'u': return "an upvalue";
	case 'c': return "an integer -2048..2047";
	case 'L': return "a label";
	case 'f': case 'F': return "a function name";
	case '2': case '3': return "a count 0..4095";
	case '8': return "a byte 0..255";
	case 'w': return "0, 1 or 2";
	}
	return "?";
}

/* ---- a set of indices, by hash (labels and constants) ----
 *
 * slot[i] is 0 (empty) or index + 1. The owner gives the hash of an
 * index (for rehashing) and compares. */
struct hset {
	uint32_t *slot;
	size_t cap;             /* a power of two, or 0 */
	size_t n;
};

static uint64_t fnv(const void *p, size_t n, uint64_t h)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

#define FNV0 0xcbf29ce484222325ull

/* Calls eq(ctx, index) on the candidates of hash h; the first match, or -1. */
static long hset_find(const struct hset *s, uint64_t h, bool (*eq)(const void *, uint32_t),
                      const void *ctx)
{
	if (!s->cap)
		return -1;
	for (size_t i = h & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
		if (!s->slot[i])
			return -1;
		if (eq(ctx, s->slot[i] - 1))
			return (long)(s->slot[i] - 1);
	}
}

static int hset_add(struct hset *s, uint64_t h, uint32_t idx,
                    uint64_t (*hash_of)(const void *, uint32_t), const void *owner)
{
	if (2 * (s->n + 1) > s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 64;
		uint32_t *ns = calloc(nc, sizeof *ns);
		if (!ns)
			return -ENOMEM;
		for (size_t i = 0; i < s->cap; i++) {
			if (!s->slot[i])
				continue;
			size_t j = hash_of(owner, s->slot[i] - 1) & (nc - 1);
			while (ns[j])
				j = (j + 1) & (nc - 1);
			ns[j] = s->slot[i];
		}
		free(s->slot);
		s->slot = ns;
		s->cap = nc;
	}
	size_t j = h & (s->cap - 1);
	while (s->slot[j])
		j = (j + 1) & (s->cap - 1);
	s->slot[j] = idx + 1;
	s->n++;
	return 0;
}

static void hset_clear(struct hset *s)
{
	if (s->cap)
		memset(s->slot, 0, s->cap * sizeof *s->slot);
	s->n = 0;
}

/* ---- tokens ---- */

enum tok_kind { T_WORD, T_STR, T_COMMA, T_COLON };

struct tok {
	enum tok_kind kind;
	const char *p;          /* the text in the source (a string: with quotes) */
	size_t n;
	size_t soff, slen;      /* a string: its bytes in st->sbuf */
};

struct upv {
	const char *p;          /* a name, or NULL: reg is the register */
	size_t n;
	unsigned reg;
};

/* What the first pass learns about a function. */
struct fdecl {
	unsigned line;
	uint32_t nup;
	struct upv *up;
	bool named;             /* some upvals are names */
	bool resolved;          /* upval_src is set */
	unsigned rline;         /* the line of the closure that resolved it */
};

struct label {
	const char *p;
	size_t n;
	uint32_t pc;
	unsigned line;
};

struct fixup {
	const char *p;
	size_t n;
	uint32_t pc;
	unsigned line;
};

struct regname {
	const char *p;
	size_t n;
	unsigned reg;
};

struct st {
	const char *file;
	char *err;
	size_t errlen;
	bool failed;
	struct vm_module *m;
	uint32_t kcap;
	struct hset kset;       /* the first entry of each constant value */
	struct hset lset;       /* the current function's labels */

	unsigned line;
	struct tok *toks;
	size_t ntoks, tokcap;
	uint8_t *sbuf;
	size_t sbuflen, sbufcap;

	struct fdecl *decl;

	/* The function being assembled. */
	int cur;                /* index, or -1 outside a function */
	uint64_t *code;
	uint32_t *lines;
	uint32_t ncode, codecap;
	long maxreg;
	long regs_set;          /* .regs N, or -1 */
	struct label *labels;
	size_t nlabels, labcap;
	struct fixup *fix;
	size_t nfix, fixcap;
	struct regname *rn;
	size_t nrn, rncap;
};

static int fail(struct st *st, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct st *st, unsigned line, const char *fmt, ...)
{
	if (st->failed)
		return -EINVAL;
	st->failed = true;
	if (st->errlen == 0)
		return -EINVAL;
	int n = snprintf(st->err, st->errlen, "%s:%u: ", st->file, line);
	if (n < 0 || (size_t)n >= st->errlen)
		return -EINVAL;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(st->err + n, st->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int nomem(struct st *st)
{
	return fail(st, st->line, "out of memory"), -ENOMEM;
}

/* Make room for one more element in a growable array. */
static int grow(void **arr, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return 0;
	size_t nc = *cap ? *cap * 2 : 16;
	void *p = realloc(*arr, nc * size);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = nc;
	return 0;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static bool word_char(char c)
{
	return !is_space(c) && c != '\n' && c != ',' && c != ':' && c != '"' && c != ';' &&
	       c != '#' && c != '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Split the line [p, end) into tokens. */
static int tokenize(struct st *st, const char *p, const char *end)
{
	st->ntoks = 0;
	st->sbuflen = 0;
	while (p < end) {
		char c = *p;
		if (is_space(c)) {
			p++;
			continue;
		}
		if (c == ';' || c == '#')
			break;
		if (grow((void **)&st->toks, &st->tokcap, st->ntoks, sizeof *st->toks))
			return nomem(st);
		struct tok *t = &st->toks[st->ntoks++];
		memset(t, 0, sizeof *t);
		t->p = p;
		if (c == ',' || c == ':') {
			t->kind = c == ',' ? T_COMMA : T_COLON;
			t->n = 1;
			p++;
			continue;
		}
		if (c == '"') {
			t->kind = T_STR;
			t->soff = st->sbuflen;
			p++;
			if (!st->sbuf && !(st->sbuf = malloc(st->sbufcap = 256)))
				return nomem(st);
			for (;;) {
				if (p >= end)
					return fail(st, st->line, "unterminated string");
				c = *p++;
				if (c == '"')
					break;
				uint8_t b = (uint8_t)c;
				if (c == '\\') {
					if (p >= end)
						return fail(st, st->line, "unterminated string");
					char e = *p++;
					switch (e) {
					case 'n': b = '\n'; break;
					case 't': b = '\t'; break;
					case 'r': b = '\r'; break;
					case '0': b = 0; break;
					case '\\': b = '\\'; break;
					case '"': b = '"'; break;
					case 'x': {
						int h = p < end ? hexval(p[0]) : -1;
						int l = p + 1 < end ? hexval(p[1]) : -1;
						if (h < 0 || l < 0)
							return fail(st, st->line,
							            "\\x needs two hex digits");
						b = (uint8_t)(h << 4 | l);
						p += 2;
						break;
					}
					default:
						return fail(st, st->line,
						            "unknown escape '\\%c' (known: \\n \\t \\r "
						            "\\0 \\\\ \\\" \\xHH)", e);
					}
				}
				if (st->sbuflen + 1 >= st->sbufcap) {
					size_t nc = st->sbufcap ? st->sbufcap * 2 : 256;
					uint8_t *nb = realloc(st->sbuf, nc);
					if (!nb)
						return nomem(st);
					st->sbuf = nb;
					st->sbufcap = nc;
				}
				st->sbuf[st->sbuflen++] = b;
			}
			t->slen = st->sbuflen - t->soff;
			t->n = (size_t)(p - t->p);
			continue;
		}
		if (c == '\0')
			return fail(st, st->line, "NUL byte in the source");
		t->kind = T_WORD;
		while (p < end && word_char(*p))
			p++;
		if (p < end && *p == '\0')
			return fail(st, st->line, "NUL byte in the source");
		t->n = (size_t)(p - t->p);
	}
	return 0;
}

static bool tok_is(const struct tok *t, const char *w)
{
	return t->kind == T_WORD && strlen(w) == t->n && memcmp(t->p, w, t->n) == 0;
}

static bool is_ident(const char *p, size_t n)
{
	if (n == 0 || !((p[0] >= 'a' && p[0] <= 'z') || (p[0] >= 'A' && p[0] <= 'Z') || p[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++) {
		char c = p[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '$'))
			return false;
	}
	return true;
}

/* A token's text, for messages: at most 40 characters. */
#define TOKF "%.*s%s"
#define TOKA(t) (int)((t)->n > 40 ? 40 : (t)->n), (t)->p, (t)->n > 40 ? "..." : ""

/* "123", "-5", "0x1f": an int64. */
static bool parse_int(const char *p, size_t n, int64_t *out, bool *range)
{
	char buf[72];
	*range = false;
	if (n == 0 || n >= sizeof buf)
		return false;
	memcpy(buf, p, n);
	buf[n] = 0;
	const char *s = buf;
	bool neg = false;
	if (*s == '-' || *s == '+')
		neg = *s++ == '-';
	int base = 10;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	if (!*s)
		return false;
	for (const char *q = s; *q; q++)
		if (base == 10 ? !(*q >= '0' && *q <= '9') : hexval(*q) < 0)
			return false;
	errno = 0;
	unsigned long long v = strtoull(s, NULL, base);
	if (errno == ERANGE || v > (neg ? (unsigned long long)INT64_MAX + 1 : (unsigned long long)INT64_MAX)) {
		*range = true;
		return true;
	}
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return true;
}

static bool parse_float(const char *p, size_t n, double *out)
{
	char buf[128];
	if (n == 0 || n >= sizeof buf)
		return false;
	memcpy(buf, p, n);
	buf[n] = 0;
	char *end;
	*out = strtod(buf, &end);
	return *end == 0;
}

/* "rN": N, or -1. */
static long reg_number(const char *p, size_t n)
{
	if (n < 2 || n > 12 || p[0] != 'r')
		return -1;
	long v = 0;
	for (size_t i = 1; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v;
}

/* ---- the constant pool ---- */

static bool const_eq(const struct vm_const *k, const struct vm_const *x)
{
	if (k->kind != x->kind)
		return false;
	switch (k->kind) {
	case VM_K_INT: return k->u.i == x->u.i;
	case VM_K_FLOAT: return memcmp(&k->u.f, &x->u.f, sizeof k->u.f) == 0;
	default: return k->len == x->len && (x->len == 0 || memcmp(k->u.bytes, x->u.bytes, x->len) == 0);
	}
}

static uint64_t const_hash(const struct vm_const *k)
{
	uint64_t h = fnv(&k->kind, 1, FNV0);
	switch (k->kind) {
	case VM_K_INT: return fnv(&k->u.i, sizeof k->u.i, h);
	case VM_K_FLOAT: return fnv(&k->u.f, sizeof k->u.f, h);
	default: return k->len ? fnv(k->u.bytes, k->len, h) : h;
	}
}

struct const_key {
	const struct vm_module *m;
	const struct vm_const *x;
};

static bool const_key_eq(const void *ctx, uint32_t i)
{
	const struct const_key *k = ctx;
	return const_eq(&k->m->consts[i], k->x);
}

static uint64_t const_hash_of(const void *m, uint32_t i)
{
	return const_hash(&((const struct vm_module *)m)->consts[i]);
}

/* The first entry equal to x, or -1. */
static long const_find(const struct vm_module *m, const struct hset *set,
                       const struct vm_const *x)
{
	struct const_key k = {m, x};
	return hset_find(set, const_hash(x), const_key_eq, &k);
}

/* The set of first entries of m's pool. */
static int const_index(const struct vm_module *m, struct hset *set)
{
	for (uint32_t i = 0; i < m->nconsts; i++)
		if (const_find(m, set, &m->consts[i]) < 0 &&
		    hset_add(set, const_hash(&m->consts[i]), i, const_hash_of, m))
			return -ENOMEM;
	return 0;
}

/* Append x (its bytes copied). The index, or -1 (error set). */
static long const_add(struct st *st, const struct vm_const *x)
{
	struct vm_module *m = st->m;
	if (m->nconsts >= VM_MAX_CONSTS)
		return fail(st, st->line, "more than %u constants", VM_MAX_CONSTS), -1;
	size_t cap = st->kcap;
	if (grow((void **)&m->consts, &cap, m->nconsts, sizeof *m->consts))
		return nomem(st), -1;
	st->kcap = (uint32_t)cap;
	struct vm_const k = *x;
	if (k.kind == VM_K_BYTES) {
		k.u.bytes = malloc((size_t)k.len + 1);
		if (!k.u.bytes)
			return nomem(st), -1;
		if (k.len)
			memcpy(k.u.bytes, x->u.bytes, k.len);
		k.u.bytes[k.len] = 0;
	}
	m->consts[m->nconsts] = k;
	if (const_find(m, &st->kset, &k) < 0 &&
	    hset_add(&st->kset, const_hash(&k), m->nconsts, const_hash_of, m)) {
		if (k.kind == VM_K_BYTES)
			free(k.u.bytes);
		return nomem(st), -1;
	}
	return (long)m->nconsts++;
}

/* A constant token: int, float, "string". false: not one. */
static bool const_of(struct st *st, const struct tok *t, struct vm_const *k, bool *range)
{
	memset(k, 0, sizeof *k);
	*range = false;
	if (t->kind == T_STR) {
		k->kind = VM_K_BYTES;
		k->len = (uint32_t)t->slen;
		k->u.bytes = st->sbuf + t->soff;
		return true;
	}
	if (t->kind != T_WORD)
		return false;
	if (parse_int(t->p, t->n, &k->u.i, range)) {
		k->kind = VM_K_INT;
		return true;
	}
	char c = t->p[0];
	bool numeric = (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' ||
	               tok_is(t, "inf") || tok_is(t, "nan");
	if (numeric && parse_float(t->p, t->n, &k->u.f)) {
		k->kind = VM_K_FLOAT;
		return true;
	}
	return false;
}

/* ---- the first pass: function headers ---- */

/* A name: a word or a "string" (no NUL). malloc'd, or NULL (error set). */
/* Well-formed UTF-8 (no overlong forms, surrogates or values past
 * U+10FFFF). */
static bool utf8_ok(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n;) {
		uint8_t c = p[i];
		size_t k;
		uint32_t min, v;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			k = 1, min = 0x80, v = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			k = 2, min = 0x800, v = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			k = 3, min = 0x10000, v = c & 0x07;
		} else {
			return false;
		}
		if (n - i <= k)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((p[i + j] & 0xc0) != 0x80)
				return false;
			v = v << 6 | (p[i + j] & 0x3f);
		}
		if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
			return false;
		i += k + 1;
	}
	return true;
}

static char *name_of(struct st *st, const struct tok *t, const char *what)
{
	if (t->kind == T_STR) {
		if (memchr(st->sbuf + t->soff, 0, t->slen))
			return fail(st, st->line, "%s contains a NUL byte", what), NULL;
		if (!utf8_ok(st->sbuf + t->soff, t->slen))
			return fail(st, st->line, "%s is not UTF-8", what), NULL;
		char *s = strndup((const char *)st->sbuf + t->soff, t->slen);
		if (!s)
			nomem(st);
		return s;
	}
	if (t->kind != T_WORD || !is_ident(t->p, t->n))
		return fail(st, st->line, "expected %s, got '" TOKF "'", what, TOKA(t)), NULL;
	char *s = strndup(t->p, t->n);
	if (!s)
		nomem(st);
	return s;
}

/* The function a token names, or -1 (error set). */
static int func_ref(struct st *st, const struct tok *t)
{
	const char *p;
	size_t n;
	if (t->kind == T_STR) {
		p = (const char *)st->sbuf + t->soff;
		n = t->slen;
	} else if (t->kind == T_WORD) {
		p = t->p;
		n = t->n;
	} else {
		return fail(st, st->line, "expected a function name, got '" TOKF "'", TOKA(t)), -1;
	}
	for (uint32_t i = 0; i < st->m->nfuncs; i++) {
		const char *f = st->m->funcs[i].name;
		if (f && strlen(f) == n && memcmp(f, p, n) == 0)
			return (int)i;
	}
	return fail(st, st->line, "unknown function '%.*s'", (int)(n > 60 ? 60 : n), p), -1;
}

/* Calls fn(st, line start, line end) for every line. */
static int each_line(struct st *st, const char *src, size_t len,
                     int (*fn)(struct st *, void *), void *arg)
{
	const char *p = src, *end = src + len;
	st->line = 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		st->line++;
		int r = tokenize(st, p, le);
		if (r)
			return r;
		if (st->ntoks && (r = fn(st, arg)))
			return r;
		p = nl ? nl + 1 : end;
	}
	return 0;
}

struct pass1 {
	uint32_t n, cap;
	bool infunc;
	unsigned funcline;
};

static int pass1_line(struct st *st, void *arg)
{
	struct pass1 *p1 = arg;
	struct tok *t = st->toks;
	struct vm_module *m = st->m;
	if (st->ntoks >= 2 && t[1].kind == T_COLON) {
		if (st->ntoks > 2 && (tok_is(&t[2], "func") || tok_is(&t[2], "end")))
			return fail(st, st->line, "a label must be followed by an instruction, "
			            "not '" TOKF "'", TOKA(&t[2]));
		return 0; /* pass 2 checks the rest */
	}
	if (tok_is(&t[0], "end")) {
		p1->infunc = false;
		return 0;
	}
	if (!tok_is(&t[0], "func"))
		return 0;
	if (p1->infunc)
		return fail(st, st->line, "'func' inside function (line %u has no 'end')",
		            p1->funcline);
	p1->infunc = true;
	p1->funcline = st->line;
	if (st->ntoks < 3)
		return fail(st, st->line, "expected 'func NAME NPARAMS [upvals R ...]'");
	if (m->nfuncs >= VM_MAX_FUNCS)
		return fail(st, st->line, "more than %u functions", VM_MAX_FUNCS);
	size_t cap = p1->cap;
	if (grow((void **)&m->funcs, &cap, m->nfuncs, sizeof *m->funcs) ||
	    (cap != p1->cap && !(st->decl = realloc(st->decl, cap * sizeof *st->decl))))
		return nomem(st);
	p1->cap = (uint32_t)cap;
	struct vm_func *f = &m->funcs[m->nfuncs];
	struct fdecl *d = &st->decl[m->nfuncs];
	memset(f, 0, sizeof *f);
	memset(d, 0, sizeof *d);
	m->nfuncs++;
	d->line = st->line;
	if (!(f->name = name_of(st, &t[1], "a function name")))
		return -EINVAL;
	if (!f->name[0])
		return fail(st, st->line, "a function name cannot be empty");
	for (uint32_t i = 0; i + 1 < m->nfuncs; i++)
		if (strcmp(m->funcs[i].name, f->name) == 0)
			return fail(st, st->line, "function '%s' is already defined at line %u",
			            f->name, st->decl[i].line);
	int64_t np;
	bool range;
	if (t[2].kind != T_WORD || !parse_int(t[2].p, t[2].n, &np, &range) || range || np < 0 ||
	    np > VM_MAX_REGS)
		return fail(st, st->line, "the parameter count must be 0..%d, got '" TOKF "'",
		            VM_MAX_REGS, TOKA(&t[2]));
	f->nparams = (uint32_t)np;
	d->resolved = true;
	if (st->ntoks == 3)
		return 0;
	if (!tok_is(&t[3], "upvals"))
		return fail(st, st->line, "expected 'upvals' after the parameter count, got '" TOKF
		            "'", TOKA(&t[3]));
	size_t nu = st->ntoks - 4;
	if (nu > VM_MAX_REGS)
		return fail(st, st->line, "more than %d upvalues", VM_MAX_REGS);
	d->up = calloc(nu ? nu : 1, sizeof *d->up);
	f->upval_src = calloc(nu ? nu : 1, sizeof *f->upval_src);
	if (!d->up || !f->upval_src)
		return nomem(st);
	for (size_t i = 0; i < nu; i++) {
		const struct tok *u = &t[4 + i];
		if (u->kind != T_WORD)
			return fail(st, st->line, "an upvalue is a register (rN) or a register name, "
			            "got '" TOKF "'", TOKA(u));
		long r = reg_number(u->p, u->n);
		if (r < 0 && parse_int(u->p, u->n, &np, &range) && !range && np >= 0)
			r = np > VM_MAX_REGS ? VM_MAX_REGS : (long)np;
		if (r >= VM_MAX_REGS)
			return fail(st, st->line, "register '" TOKF "' is beyond r%d", TOKA(u),
			            VM_MAX_REGS - 1);
		if (r < 0) {
			if (!is_ident(u->p, u->n))
				return fail(st, st->line, "bad upvalue '" TOKF "'", TOKA(u));
			d->up[i].p = u->p;
			d->up[i].n = u->n;
			d->named = true;
		} else {
			d->up[i].reg = (unsigned)r;
			f->upval_src[i] = (uint32_t)r;
		}
	}
	d->nup = (uint32_t)nu;
	f->nupvals = (uint32_t)nu;
	d->resolved = !d->named;
	return 0;
}

/* ---- the second pass ---- */

static int reg_of(struct st *st, const struct tok *t, unsigned *out)
{
	if (t->kind != T_WORD || !is_ident(t->p, t->n))
		return fail(st, st->line, "expected a register (rN or a .reg name), got '" TOKF
		            "'", TOKA(t));
	long r = reg_number(t->p, t->n);
	if (r < 0) {
		for (size_t i = st->nrn; i-- > 0;)
			if (st->rn[i].n == t->n && memcmp(st->rn[i].p, t->p, t->n) == 0) {
				r = st->rn[i].reg;
				break;
			}
		if (r < 0)
			return fail(st, st->line, "unknown register '" TOKF "' (rN, or a name given "
			            "by .reg)", TOKA(t));
	}
	if (r >= VM_MAX_REGS)
		return fail(st, st->line, "register '" TOKF "' is beyond r%d", TOKA(t),
		            VM_MAX_REGS - 1);
	*out = (unsigned)r;
	return 0;
}

/* The registers r..r+n-1 are used (n may be 0: none). */
static int use_regs(struct st *st, long r, long n, const char *what)
{
	if (n <= 0)
		return 0;
	long hi = r + n - 1;
	if (hi >= VM_MAX_REGS)
		return fail(st, st->line, "%s reaches r%ld, beyond r%d", what, hi, VM_MAX_REGS - 1);
	if (hi > st->maxreg)
		st->maxreg = hi;
	return 0;
}

static int uint_of(struct st *st, const struct tok *t, long max, const char *what, unsigned *out)
{
	int64_t v;
	bool range;
	if (t->kind != T_WORD || !parse_int(t->p, t->n, &v, &range))
		return fail(st, st->line, "expected %s, got '" TOKF "'", what, TOKA(t));
	if (range || v < 0 || v > max)
		return fail(st, st->line, "'" TOKF "' is out of range: expected %s", TOKA(t), what);
	*out = (unsigned)v;
	return 0;
}

/* A constant operand: a literal, or kN. Its index, or -1. */
static long const_operand(struct st *st, const struct tok *t, bool want_bytes)
{
	if (t->kind == T_WORD && t->n >= 2 && t->p[0] == 'k' && t->p[1] >= '0' && t->p[1] <= '9') {
		int64_t v;
		bool range;
		if (!parse_int(t->p + 1, t->n - 1, &v, &range) || range || v < 0)
			return fail(st, st->line, "bad constant index '" TOKF "'", TOKA(t)), -1;
		if (v >= (int64_t)st->m->nconsts)
			return fail(st, st->line, "constant '" TOKF "' is not defined (%" PRIu32
			            " constants so far)", TOKA(t), st->m->nconsts), -1;
		return (long)v;
	}
	struct vm_const k;
	bool range;
	if (!const_of(st, t, &k, &range))
		return fail(st, st->line, "expected %s, got '" TOKF "'",
		            want_bytes ? "a string constant (\"...\")" : "a constant (int, float "
		            "or \"string\")", TOKA(t)), -1;
	if (range)
		return fail(st, st->line, "integer '" TOKF "' does not fit in 64 bits", TOKA(t)), -1;
	if (want_bytes && k.kind != VM_K_BYTES)
		return fail(st, st->line, "expected a string constant (\"...\"), got '" TOKF "'",
		            TOKA(t)), -1;
	long i = const_find(st->m, &st->kset, &k);
	return i >= 0 ? i : const_add(st, &k);
}

static int emit(struct st *st, uint64_t w)
{
	if (st->ncode >= VM_MAX_CODE)
		return fail(st, st->line, "function has more than %u instructions", VM_MAX_CODE);
	if (st->ncode >= st->codecap) {
		uint32_t nc = st->codecap ? st->codecap * 2 : 64;
		uint64_t *c = realloc(st->code, (size_t)nc * sizeof *c);
		if (!c)
			return nomem(st);
		st->code = c;
		uint32_t *l = realloc(st->lines, (size_t)nc * sizeof *l);
		if (!l)
			return nomem(st);
		st->lines = l;
		st->codecap = nc;
	}
	st->code[st->ncode] = w;
	st->lines[st->ncode] = st->line;
	st->ncode++;
	return 0;
}

/* Names of an opcode's variants, for a message: "load.k, load.nil, ...". */
static void variant_list(unsigned op, char *buf, size_t len)
{
	size_t n = 0;
	buf[0] = 0;
	for (unsigned e = 0; e < vm_variant_count[op] && n < len; e++) {
		int r = snprintf(buf + n, len - n, "%s%s.%s", e ? ", " : "", vm_op_names[op],
		                 vm_variant_names[op][e]);
		if (r < 0)
			break;
		n += (size_t)r;
	}
}

static int mnemonic(struct st *st, const struct tok *t, unsigned *op, unsigned *e)
{
	for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
		if (tok_is(t, aliases[i].name)) {
			*op = aliases[i].op;
			*e = aliases[i].e;
			return 0;
		}
	const char *dot = memchr(t->p, '.', t->n);
	size_t on = dot ? (size_t)(dot - t->p) : t->n;
	for (unsigned o = 0; o < VM_NOPS; o++) {
		if (strlen(vm_op_names[o]) != on || memcmp(vm_op_names[o], t->p, on) != 0)
			continue;
		const char *v = dot ? dot + 1 : "";
		size_t vn = dot ? t->n - on - 1 : 0;
		for (unsigned k = 0; k < vm_variant_count[o]; k++) {
			const char *name = vm_variant_names[o][k];
			if (strlen(name) == vn && memcmp(name, v, vn) == 0) {
				*op = o;
				*e = k;
				return 0;
			}
		}
		char list[400];
		variant_list(o, list, sizeof list);
		if (vm_variant_count[o] == 1)
			return fail(st, st->line, "'%s' has no variants", vm_op_names[o]);
		if (!dot)
			return fail(st, st->line, "'%s' needs a variant: %s", vm_op_names[o], list);
		return fail(st, st->line, "unknown variant '" TOKF "': %s", TOKA(t), list);
	}
	return fail(st, st->line, "unknown instruction '" TOKF "'", TOKA(t));
}

/* Resolve the upvalue names of F[fi] at a closure in the current function. */
static int closure_upvals(struct st *st, int fi)
{
	struct fdecl *d = &st->decl[fi];
	struct vm_func *f = &st->m->funcs[fi];
	for (uint32_t i = 0; i < d->nup; i++) {
		unsigned r = d->up[i].reg;
		if (d->up[i].p) {
			struct tok t = {.kind = T_WORD, .p = d->up[i].p, .n = d->up[i].n};
			long found = -1;
			for (size_t j = st->nrn; j-- > 0;)
				if (st->rn[j].n == t.n && memcmp(st->rn[j].p, t.p, t.n) == 0) {
					found = st->rn[j].reg;
					break;
				}
			if (found < 0)
				return fail(st, st->line, "upvalue '%.*s' of '%s' is not a register name "
				            "here (.reg)", (int)t.n, t.p, f->name);
			r = (unsigned)found;
			if (d->resolved && f->upval_src[i] != r)
				return fail(st, st->line, "upvalue '%.*s' of '%s' is r%u here but r%u at "
				            "line %u", (int)t.n, t.p, f->name, r, f->upval_src[i],
				            d->rline);
			f->upval_src[i] = r;
		}
		int rc = use_regs(st, r, 1, "an upvalue");
		if (rc)
			return rc;
	}
	if (!d->resolved) {
		d->resolved = true;
		d->rline = st->line;
	}
	return 0;
}

static int instruction(struct st *st, const struct tok *t, size_t n)
{
	unsigned op = 0, e = 0;
	int rc = mnemonic(st, &t[0], &op, &e);
	if (rc)
		return rc;
	const char *sp = specs[op][e];
	size_t want = strlen(sp);
	char name[40];
	snprintf(name, sizeof name, "%s%s%s", vm_op_names[op], *vm_variant_names[op][e] ? "." : "",
	         vm_variant_names[op][e]);
	/* Operands: t[1], t[3], ... with commas between. */
	size_t got = 0;
	const struct tok *ops[8];
	for (size_t i = 1; i < n; i++) {
		if ((i & 1) == 0) {
			if (t[i].kind != T_COMMA)
				return fail(st, st->line, "expected ',' between operands of %s, got '"
				            TOKF "'", name, TOKA(&t[i]));
			if (i + 1 == n)
				return fail(st, st->line, "a ',' ends the operands of %s", name);
			continue;
		}
		if (t[i].kind == T_COMMA)
			return fail(st, st->line, "an operand of %s is missing", name);
		if (got < 8)
			ops[got] = &t[i];
		got++;
	}
	if (got != want) {
		char kinds[200] = "";
		size_t kn = 0;
		for (size_t i = 0; i < want && kn < sizeof kinds; i++) {
			int r = snprintf(kinds + kn, sizeof kinds - kn, "%s%s", i ? ", " : "",
			                 kind_name(sp[i]));
			if (r > 0)
				kn += (size_t)r;
		}
		return fail(st, st->line, "%s takes %zu operand%s%s%s%s, got %zu", name, want,
		            want == 1 ? "" : "s", want ? " (" : "", kinds, want ? ")" : "", got);
	}
	unsigned f[4] = {0, 0, 0, 0}; /* A B C D */
	uint32_t bx = 0;
	bool has_bx = false;
	int32_t sbx = 0;
	const struct tok *label = NULL;
	for (size_t i = 0; i < want; i++) {
		const struct tok *o = ops[i];
		char k = sp[i];
		unsigned v;
		long idx;
		int64_t iv;
		bool range;
		switch (k) {
		case 'A': case 'B': case 'C': case 'D':
			if ((rc = reg_of(st, o, &v)))
				return rc;
			f[k - 'A'] = v;
			if ((rc = use_regs(st, v, 1, "a register")))
				return rc;
			break;
		case 'k': case 's': case 'S':
			if ((idx = const_operand(st, o, k != 'k')) < 0)
				return -EINVAL;
			if (k == 'S') {
				if (idx >= VM_MAX_REGS)
					return fail(st, st->line, "constant k%ld is beyond k%d, the last one "
					            "%s can name: declare it earlier with 'const'", idx,
					            VM_MAX_REGS - 1, name);
				f[3] = (unsigned)idx;
			} else {
				bx = (uint32_t)idx;
				has_bx = true;
			}
			break;
		case 'i':
			if (o->kind != T_WORD || !parse_int(o->p, o->n, &iv, &range))
				return fail(st, st->line, "expected an integer, got '" TOKF "'", TOKA(o));
			if (range || iv < -8388608 || iv > 8388607)
				return fail(st, st->line, "'" TOKF "' does not fit load.int "
				            "(-8388608..8388607): use load.k", TOKA(o));
			sbx = (int32_t)iv;
			bx = (uint32_t)sbx & 0xffffff;
			has_bx = true;
			break;
		case 'b':
			if (tok_is(o, "true"))
				f[1] = 1;
			else if (tok_is(o, "false"))
				f[1] = 0;
			else
				return fail(st, st->line, "expected true or false, got '" TOKF "'",
				            TOKA(o));
			break;
		case 'u': {
			const struct fdecl *d = &st->decl[st->cur];
			bool found = false;
			for (uint32_t j = 0; o->kind == T_WORD && j < d->nup; j++)
				if (d->up[j].p && d->up[j].n == o->n && memcmp(d->up[j].p, o->p, o->n) == 0) {
					f[1] = j;
					found = true;
					break;
				}
			if (!found && (rc = uint_of(st, o, VM_MAX_REGS - 1, "an upvalue (its index "
			                            "or its name in 'upvals')", &f[1])))
				return rc;
			break;
		}
		case 'c':
			if (o->kind != T_WORD || !parse_int(o->p, o->n, &iv, &range))
				return fail(st, st->line, "expected an integer, got '" TOKF "'", TOKA(o));
			if (range || iv < -2048 || iv > 2047)
				return fail(st, st->line, "'" TOKF "' does not fit %s's immediate "
				            "(-2048..2047)", TOKA(o), name);
			f[2] = (unsigned)iv & 0xfff;
			break;
		case 'L':
			if (o->kind == T_WORD && (o->p[0] == '-' || o->p[0] == '+' ||
			                          (o->p[0] >= '0' && o->p[0] <= '9'))) {
				if (!parse_int(o->p, o->n, &iv, &range) || range || iv < -8388608 ||
				    iv > 8388607)
					return fail(st, st->line, "bad jump offset '" TOKF "'", TOKA(o));
				sbx = (int32_t)iv;
			} else if (o->kind != T_WORD || !is_ident(o->p, o->n)) {
				return fail(st, st->line, "expected a label, got '" TOKF "'", TOKA(o));
			} else {
				label = o;
			}
			bx = (uint32_t)sbx & 0xffffff;
			has_bx = true;
			break;
		case 'f': case 'F': {
			int fi = func_ref(st, o);
			if (fi < 0)
				return -EINVAL;
			if (k == 'f') {
				f[3] = (unsigned)fi;
			} else {
				bx = (uint32_t)fi;
				has_bx = true;
				if ((rc = closure_upvals(st, fi)))
					return rc;
			}
			break;
		}
		case '2': case '3':
			if ((rc = uint_of(st, o, VM_MAX_REGS - 1, "a count 0..4095", &f[k == '2' ? 1 : 2])))
				return rc;
			break;
		case '8':
			if ((rc = uint_of(st, o, 255, "a byte 0..255", &f[2])))
				return rc;
			break;
		case 'w':
			if ((rc = uint_of(st, o, 2, "0, 1 or 2 (set, cur, end)", &f[3])))
				return rc;
			break;
		}
	}
	/* Registers that a count reaches. */
	if (op == VM_CALL) {
		rc = use_regs(st, f[0], (long)f[1] + 1, "the call's arguments");
		if (!rc && (e == 0 || e == 2 || e == 4))
			rc = use_regs(st, f[0], f[2], "the call's results");
	} else if (op == VM_RET) {
		rc = use_regs(st, f[0], f[1], "the returned values");
	} else if (op == VM_NEW && e == 3) {
		rc = use_regs(st, f[1], f[2], "the list's values");
	}
	if (rc)
		return rc;
	if (label) {
		if (grow((void **)&st->fix, &st->fixcap, st->nfix, sizeof *st->fix))
			return nomem(st);
		st->fix[st->nfix++] = (struct fixup){label->p, label->n, st->ncode, st->line};
	}
	uint64_t w = has_bx ? vm_word_bx(op, f[0], bx, f[3], e) : vm_word(op, f[0], f[1], f[2], f[3], e);
	return emit(st, w);
}

struct label_key {
	const struct st *st;
	const char *p;
	size_t n;
};

static bool label_key_eq(const void *ctx, uint32_t i)
{
	const struct label_key *k = ctx;
	const struct label *l = &k->st->labels[i];
	return l->n == k->n && memcmp(l->p, k->p, k->n) == 0;
}

static uint64_t label_hash_of(const void *st, uint32_t i)
{
	const struct label *l = &((const struct st *)st)->labels[i];
	return fnv(l->p, l->n, FNV0);
}

static const struct label *label_find(const struct st *st, const char *p, size_t n)
{
	struct label_key k = {st, p, n};
	long i = hset_find(&st->lset, fnv(p, n, FNV0), label_key_eq, &k);
	return i < 0 ? NULL : &st->labels[i];
}

static int func_begin(struct st *st)
{
	st->cur++;
	st->ncode = 0;
	st->codecap = 0;
	st->code = NULL;
	st->lines = NULL;
	st->maxreg = -1;
	st->regs_set = -1;
	st->nlabels = st->nfix = st->nrn = 0;
	hset_clear(&st->lset);
	return 0;
}

static int func_end(struct st *st)
{
	struct vm_func *f = &st->m->funcs[st->cur];
	struct fdecl *d = &st->decl[st->cur];
	for (size_t i = 0; i < st->nfix; i++) {
		struct fixup *x = &st->fix[i];
		const struct label *l = label_find(st, x->p, x->n);
		if (!l)
			return fail(st, x->line, "unknown label '%.*s' in function '%s'", (int)x->n,
			            x->p, f->name);
		int64_t off = (int64_t)l->pc - ((int64_t)x->pc + 1);
		if (off < -8388608 || off > 8388607)
			return fail(st, x->line, "label '%.*s' is too far: %" PRId64
			            " instructions (a jump reaches -8388608..8388607)", (int)x->n, x->p,
			            off);
		uint64_t w = st->code[x->pc];
		st->code[x->pc] = vm_word_bx(VM_OP(w), VM_A(w), (uint32_t)off & 0xffffff, VM_D(w),
		                             VM_E(w));
	}
	if (st->ncode == 0)
		return fail(st, d->line, "function '%s' has no instructions", f->name);
	long nregs = st->maxreg + 1;
	if (nregs < (long)f->nparams)
		nregs = f->nparams;
	if (nregs < 1)
		nregs = 1;
	if (st->regs_set >= 0)
		nregs = st->regs_set;
	f->nregs = (uint32_t)nregs;
	f->code = st->code;
	f->lines = st->lines;
	f->ncode = st->ncode;
	st->code = NULL;
	st->lines = NULL;
	return 0;
}

struct pass2 {
	bool infunc;
	bool have_module, have_source, have_entry;
};

static int directive_name(struct st *st, const char *what, char **dst)
{
	if (st->ntoks != 2)
		return fail(st, st->line, "expected '%s NAME'", what);
	char *s = name_of(st, &st->toks[1], "a name");
	if (!s)
		return -EINVAL;
	free(*dst);
	*dst = s;
	return 0;
}

static int pass2_line(struct st *st, void *arg)
{
	struct pass2 *p2 = arg;
	struct tok *t = st->toks;
	size_t n = st->ntoks;
	int rc;

	/* A label, maybe followed by an instruction. */
	if (n >= 2 && t[0].kind == T_WORD && t[1].kind == T_COLON) {
		if (!p2->infunc)
			return fail(st, st->line, "label '" TOKF "' outside a function", TOKA(&t[0]));
		if (!is_ident(t[0].p, t[0].n))
			return fail(st, st->line, "bad label name '" TOKF "'", TOKA(&t[0]));
		const struct label *dup = label_find(st, t[0].p, t[0].n);
		if (dup)
			return fail(st, st->line, "label '" TOKF "' is already defined at line %u",
			            TOKA(&t[0]), dup->line);
		if (grow((void **)&st->labels, &st->labcap, st->nlabels, sizeof *st->labels))
			return nomem(st);
		st->labels[st->nlabels] = (struct label){t[0].p, t[0].n, st->ncode, st->line};
		if (hset_add(&st->lset, fnv(t[0].p, t[0].n, FNV0), (uint32_t)st->nlabels,
		             label_hash_of, st))
			return nomem(st);
		st->nlabels++;
		t += 2;
		n -= 2;
		if (n == 0)
			return 0;
		static const char *const dirs[] = {"func", "end", ".reg", ".regs", "module",
		                                   "source", "entry", "const"};
		for (size_t j = 0; j < sizeof dirs / sizeof dirs[0]; j++)
			if (tok_is(&t[0], dirs[j]))
				return fail(st, st->line, "a label must be followed by an instruction, "
				            "not '%s'", dirs[j]);
	}
	if (t[0].kind != T_WORD)
		return fail(st, st->line, "expected an instruction or a directive, got '" TOKF "'",
		            TOKA(&t[0]));

	if (tok_is(&t[0], "func")) {
		p2->infunc = true;
		return func_begin(st);
	}
	if (tok_is(&t[0], "end")) {
		if (!p2->infunc)
			return fail(st, st->line, "'end' outside a function");
		if (n != 1)
			return fail(st, st->line, "'end' takes nothing");
		p2->infunc = false;
		return func_end(st);
	}
	if (tok_is(&t[0], ".reg")) {
		if (!p2->infunc)
			return fail(st, st->line, ".reg outside a function");
		if (n != 3 || t[1].kind != T_WORD)
			return fail(st, st->line, "expected '.reg NAME rN'");
		if (!is_ident(t[1].p, t[1].n) || reg_number(t[1].p, t[1].n) >= 0)
			return fail(st, st->line, "bad register name '" TOKF "'", TOKA(&t[1]));
		unsigned r;
		int64_t v;
		bool range;
		if (t[2].kind == T_WORD && parse_int(t[2].p, t[2].n, &v, &range)) {
			if (range || v < 0 || v >= VM_MAX_REGS)
				return fail(st, st->line, "register '" TOKF "' is beyond r%d", TOKA(&t[2]),
				            VM_MAX_REGS - 1);
			r = (unsigned)v;
		} else if ((rc = reg_of(st, &t[2], &r))) {
			return rc;
		}
		if (grow((void **)&st->rn, &st->rncap, st->nrn, sizeof *st->rn))
			return nomem(st);
		st->rn[st->nrn++] = (struct regname){t[1].p, t[1].n, r};
		return 0;
	}
	if (tok_is(&t[0], ".regs")) {
		if (!p2->infunc)
			return fail(st, st->line, ".regs outside a function");
		unsigned v;
		if (n != 2)
			return fail(st, st->line, "expected '.regs N'");
		if ((rc = uint_of(st, &t[1], VM_MAX_REGS, "a register count 1..4096", &v)))
			return rc;
		const struct vm_func *f = &st->m->funcs[st->cur];
		if (v < 1 || v < f->nparams)
			return fail(st, st->line, ".regs %u is less than %s", v,
			            v < 1 ? "1" : "the parameter count");
		st->regs_set = v;
		return 0;
	}
	if (tok_is(&t[0], "module") || tok_is(&t[0], "source") || tok_is(&t[0], "entry") ||
	    tok_is(&t[0], "const")) {
		if (p2->infunc)
			return fail(st, st->line, "'" TOKF "' inside a function", TOKA(&t[0]));
		if (tok_is(&t[0], "module")) {
			if (p2->have_module)
				return fail(st, st->line, "a second 'module'");
			p2->have_module = true;
			if ((rc = directive_name(st, "module", &st->m->name)))
				return rc;
			if (!st->m->name[0])
				return fail(st, st->line, "a module name cannot be empty");
			return 0;
		}
		if (tok_is(&t[0], "source")) {
			if (p2->have_source)
				return fail(st, st->line, "a second 'source'");
			p2->have_source = true;
			if (n != 2 || t[1].kind != T_STR)
				return fail(st, st->line, "expected 'source \"FILE\"'");
			return directive_name(st, "source", &st->m->source);
		}
		if (tok_is(&t[0], "entry")) {
			if (p2->have_entry)
				return fail(st, st->line, "a second 'entry'");
			p2->have_entry = true;
			if (n != 2)
				return fail(st, st->line, "expected 'entry NAME'");
			int fi = func_ref(st, &t[1]);
			if (fi < 0)
				return -EINVAL;
			st->m->entry = (uint32_t)fi;
			return 0;
		}
		/* const VALUE: always a new entry, in this order. */
		if (n != 2)
			return fail(st, st->line, "expected 'const VALUE'");
		struct vm_const k;
		bool range;
		if (!const_of(st, &t[1], &k, &range))
			return fail(st, st->line, "expected a constant (int, float or \"string\"), got '"
			            TOKF "'", TOKA(&t[1]));
		if (range)
			return fail(st, st->line, "integer '" TOKF "' does not fit in 64 bits",
			            TOKA(&t[1]));
		return const_add(st, &k) < 0 ? -EINVAL : 0;
	}
	if (!p2->infunc)
		return fail(st, st->line, "'" TOKF "' outside a function (func NAME NPARAMS ... end)",
		            TOKA(&t[0]));
	return instruction(st, t, n);
}

/* The line a verifier message is about: "function 'NAME', pc N ..." is
 * that instruction's; "function 'NAME': ..." or "the entry function
 * 'NAME' ..." the function's header. 0 when it names none. */
static unsigned verify_line(const struct st *st, const char *msg)
{
	const struct vm_module *m = st->m;
	const char *p = strstr(msg, "function '");
	if (!p)
		return 0;
	p += strlen("function '");
	for (uint32_t i = 0; i < m->nfuncs; i++) {
		const struct vm_func *f = &m->funcs[i];
		size_t n = strlen(f->name);
		if (strncmp(p, f->name, n) != 0 || p[n] != '\'')
			continue;
		if (strncmp(p + n, "', pc ", 6) != 0)
			return st->decl[i].line;
		char *end;
		unsigned long pc = strtoul(p + n + 6, &end, 10);
		if (end != p + n + 6 && pc < f->ncode && f->lines)
			return f->lines[pc];
		return st->decl[i].line;
	}
	return 0;
}

/* The file's base name without its extension: the default module name. */
static char *default_name(const char *file)
{
	const char *b = strrchr(file, '/');
	b = b ? b + 1 : file;
	const char *dot = strrchr(b, '.');
	size_t n = dot && dot != b ? (size_t)(dot - b) : strlen(b);
	return strndup(n ? b : "main", n ? n : 4);
}

int vm_assemble(const char *src, size_t len, const char *file, struct vm_module *m, char *err,
                size_t errlen)
{
	struct st st = {.file = file ? file : "<input>", .err = err, .errlen = errlen, .m = m,
	                .cur = -1};
	struct pass1 p1 = {0};
	struct pass2 p2 = {0};
	int rc;

	if (errlen)
		err[0] = 0;
	memset(m, 0, sizeof *m);
	rc = each_line(&st, src, len, pass1_line, &p1);
	if (!rc && p1.infunc)
		rc = fail(&st, p1.funcline, "function '%s' has no 'end'",
		          m->funcs[m->nfuncs - 1].name);
	if (!rc && m->nfuncs == 0)
		rc = fail(&st, st.line ? st.line : 1, "no function (func NAME NPARAMS ... end)");
	if (!rc)
		rc = each_line(&st, src, len, pass2_line, &p2);
	for (uint32_t i = 0; !rc && i < m->nfuncs; i++)
		if (!st.decl[i].resolved)
			rc = fail(&st, st.decl[i].line, "the upvals of '%s' name registers, but no "
			          "closure makes '%s'", m->funcs[i].name, m->funcs[i].name);
	if (!rc && !m->name && !(m->name = default_name(st.file)))
		rc = nomem(&st);
	if (!rc && !m->source && !(m->source = strdup(st.file)))
		rc = nomem(&st);
	if (!rc && !p2.have_entry) {
		int e = vm_module_find(m, "main");
		m->entry = e >= 0 ? (uint32_t)e : 0;
	}
	if (!rc) {
		char verr[512];
		if (vm_verify(m, verr, sizeof verr) != 0) {
			unsigned l = verify_line(&st, verr);
			if (l)
				rc = fail(&st, l, "%s", verr);
			else if (errlen) {
				snprintf(err, errlen, "%s: %s", st.file, verr);
				rc = -EINVAL;
			} else {
				rc = -EINVAL;
			}
		}
	}
	free(st.code);
	free(st.lines);
	free(st.toks);
	free(st.sbuf);
	free(st.labels);
	free(st.fix);
	free(st.rn);
	free(st.kset.slot);
	free(st.lset.slot);
	for (uint32_t i = 0; st.decl && i < m->nfuncs; i++)
		free(st.decl[i].up);
	free(st.decl);
	if (rc) {
		vm_module_free(m);
		return rc == -ENOMEM ? -ENOMEM : -EINVAL;
	}
	return 0;
}

/* ---- the disassembler ---- */

static void put_str(FILE *out, const uint8_t *p, size_t n)
{
	fputc('"', out);
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];
		switch (c) {
		case '\n': fputs("\\n", out); break;
		case '\t': fputs("\\t", out); break;
		case '\r': fputs("\\r", out); break;
		case 0: fputs("\\0", out); break;
		case '\\': fputs("\\\\", out); break;
		case '"': fputs("\\\"", out); break;
		default:
			if (c >= 0x20 && c < 0x7f)
				fputc(c, out);
			else
				fprintf(out, "\\x%02x", c);
		}
	}
	fputc('"', out);
}

static void put_name(FILE *out, const char *s)
{
	if (is_ident(s, strlen(s)) && reg_number(s, strlen(s)) < 0)
		fputs(s, out);
	else
		put_str(out, (const uint8_t *)s, strlen(s));
}

static void put_const(FILE *out, const struct vm_const *k)
{
	char buf[64];
	switch (k->kind) {
	case VM_K_INT:
		fprintf(out, "%" PRId64, k->u.i);
		break;
	case VM_K_FLOAT:
		if (isnan(k->u.f)) {
			fputs(signbit(k->u.f) ? "-nan" : "nan", out);
			break;
		}
		if (isinf(k->u.f)) {
			fputs(k->u.f < 0 ? "-inf" : "inf", out);
			break;
		}
		snprintf(buf, sizeof buf, "%.17g", k->u.f);
		if (!strpbrk(buf, ".e"))
			strcat(buf, ".0");
		fputs(buf, out);
		break;
	default:
		put_str(out, k->u.bytes, k->len);
	}
}

/* A constant operand: the literal when it names this entry, else kN. */
static void put_kref(FILE *out, const struct vm_module *m, const struct hset *ks, uint32_t i)
{
	if (i < m->nconsts && const_find(m, ks, &m->consts[i]) == (long)i) {
		put_const(out, &m->consts[i]);
	} else {
		fprintf(out, "k%" PRIu32, i);
	}
}

int vm_disassemble(const struct vm_module *m, FILE *out)
{
	int bad = 0;
	struct hset ks = {0};
	if (const_index(m, &ks))
		return -ENOMEM;
	fputs("module ", out);
	put_name(out, m->name ? m->name : "");
	fputs("\nsource ", out);
	put_str(out, (const uint8_t *)(m->source ? m->source : ""),
	        m->source ? strlen(m->source) : 0);
	fputc('\n', out);
	if (m->entry < m->nfuncs) {
		fputs("entry ", out);
		put_name(out, m->funcs[m->entry].name);
		fputc('\n', out);
	}
	if (m->nconsts)
		fputc('\n', out);
	for (uint32_t i = 0; i < m->nconsts; i++) {
		fputs("const ", out);
		put_const(out, &m->consts[i]);
		fprintf(out, "\t; k%" PRIu32 "\n", i);
	}
	for (uint32_t fi = 0; fi < m->nfuncs; fi++) {
		const struct vm_func *f = &m->funcs[fi];
		fputs("\nfunc ", out);
		put_name(out, f->name);
		fprintf(out, " %" PRIu32, f->nparams);
		if (f->nupvals) {
			fputs(" upvals", out);
			for (uint32_t i = 0; i < f->nupvals; i++)
				fprintf(out, " r%" PRIu32, f->upval_src[i]);
		}
		fprintf(out, "\t; F%" PRIu32 "\n\t.regs %" PRIu32 "\n", fi, f->nregs);
		bool *target = calloc((size_t)f->ncode + 1, 1);
		if (!target) {
			free(ks.slot);
			return -ENOMEM;
		}
		for (uint32_t pc = 0; pc < f->ncode; pc++) {
			uint64_t w = f->code[pc];
			if (VM_OP(w) == VM_JMP) {
				int64_t t = (int64_t)pc + 1 + VM_SBX(w);
				if (t >= 0 && t < (int64_t)f->ncode)
					target[t] = true;
			}
		}
		for (uint32_t pc = 0; pc < f->ncode; pc++) {
			uint64_t w = f->code[pc];
			unsigned op = VM_OP(w), e = VM_E(w);
			if (target[pc])
				fprintf(out, "L%" PRIu32 ":\n", pc);
			if (op >= VM_NOPS || e >= vm_variant_count[op]) {
				fprintf(out, "\t; pc %" PRIu32 ": not an instruction: 0x%016" PRIx64 "\n",
				        pc, w);
				bad = -EINVAL;
				continue;
			}
			const char *v = vm_variant_names[op][e];
			fprintf(out, "\t%s%s%s", vm_op_names[op], *v ? "." : "", v);
			const char *sp = specs[op][e];
			unsigned fld[4] = {VM_A(w), VM_B(w), VM_C(w), VM_D(w)};
			for (size_t i = 0; sp[i]; i++) {
				fputs(i ? ", " : " ", out);
				switch (sp[i]) {
				case 'A': case 'B': case 'C': case 'D':
					fprintf(out, "r%u", fld[sp[i] - 'A']);
					break;
				case 'k': case 's':
					put_kref(out, m, &ks, VM_BX(w));
					break;
				case 'S':
					put_kref(out, m, &ks, fld[3]);
					break;
				case 'i':
					fprintf(out, "%" PRId32, VM_SBX(w));
					break;
				case 'b':
					fputs(fld[1] ? "true" : "false", out);
					break;
				case 'u': case '2':
					fprintf(out, "%u", fld[1]);
					break;
				case 'c':
					fprintf(out, "%" PRId32, VM_SC(w));
					break;
				case '3': case '8':
					fprintf(out, "%u", fld[2]);
					break;
				case 'w':
					fprintf(out, "%u", fld[3]);
					break;
				case 'L': {
					int64_t t = (int64_t)pc + 1 + VM_SBX(w);
					if (t >= 0 && t < (int64_t)f->ncode)
						fprintf(out, "L%" PRId64, t);
					else
						fprintf(out, "%+" PRId32, VM_SBX(w));
					break;
				}
				case 'f': case 'F': {
					unsigned x = sp[i] == 'f' ? fld[3] : VM_BX(w);
					if (x < m->nfuncs) {
						put_name(out, m->funcs[x].name);
					} else {
						fprintf(out, "F%u", x);
						bad = -EINVAL;
					}
					break;
				}
				}
			}
			fputc('\n', out);
		}
		free(target);
		fputs("end\n", out);
	}
	free(ks.slot);
	if (ferror(out))
		return -EIO;
	return bad;
}
