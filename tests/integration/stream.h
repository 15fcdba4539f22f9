/*
 * stream.h - a deterministic, non-repeating byte stream for the integration
 * tests: a writer program emits it, the test regenerates it to check that
 * what a reader got is exactly a prefix of what was sent (no byte lost,
 * duplicated or reordered). xorshift64*, eight bytes per step.
 */
#ifndef RIFT_IT_STREAM_H
#define RIFT_IT_STREAM_H

#include <stddef.h>
#include <stdint.h>

struct it_stream {
	uint64_t x;
	unsigned char word[8];
	unsigned int used;       /* bytes of word already handed out */
};

static inline void it_stream_init(struct it_stream *s, uint64_t seed)
{
	s->x = seed ? seed : 0x9e3779b97f4a7c15ull;
	s->used = 8;
}

static inline void it_stream_fill(struct it_stream *s, unsigned char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s->used == 8) {
			s->x ^= s->x >> 12;
			s->x ^= s->x << 25;
			s->x ^= s->x >> 27;
			uint64_t v = s->x * 0x2545f4914f6cdd1dull;
			for (int k = 0; k < 8; k++)
				s->word[k] = (unsigned char)(v >> (8 * k));
			s->used = 0;
		}
		buf[i] = s->word[s->used++];
	}
}

#endif
