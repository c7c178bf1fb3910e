/*
 * json_fast.h - a fast path in front of jansson's json_loadb for inbound
 * bodies.
 *
 * json_loadb reads its input through a character stream (a function call
 * per byte, a string buffer per token) and cost ~7.5 us for a 500-byte
 * voucher body, while building the same jansson object from its parts costs
 * ~1.2 us: decoding was ~13% of the loop under bench_intake.
 *
 * fw_json_load_fast() parses the common form of a body directly into
 * jansson values and returns NULL for anything else, so the caller falls
 * back to json_loadb(data, len, JSON_REJECT_DUPLICATES, ...), which then
 * gives its usual result or error.  The common form: a top-level object;
 * strings of valid UTF-8 (the same rules as jansson: no overlong forms, no
 * surrogates, nothing past U+10FFFF) without control bytes, whose escapes
 * (\" \\ \/ \b \f \n \r \t, \uXXXX and surrogate pairs) decode
 * to a character other than NUL; integers of at most 18 digits without a
 * leading zero;
 * true, false, null; nesting up to 64 levels; whitespace as JSON defines it.
 * A duplicate key, a real number, \u0000 or anything malformed is "not
 * the common form".
 *
 * Whatever it returns is exactly what json_loadb with JSON_REJECT_DUPLICATES
 * returns for the same bytes: the same values of the same types, keys in
 * the same (insertion) order.  tests/unit/test_core_json_fast.c checks that
 * on hand-written edge cases and on random and mutated documents.
 */
#ifndef FW_JSON_FAST_H
#define FW_JSON_FAST_H

#include <jansson.h>
#include <stddef.h>

/* New reference, or NULL: not of the common form (or out of memory). */
json_t *fw_json_load_fast(const char *data, size_t len);

#endif
