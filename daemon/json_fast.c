/* json_fast.c - see json_fast.h */
#include "daemon/json_fast.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_DEPTH = 64, MAX_DIGITS = 18 };

typedef struct scan {
    const unsigned char *p, *end;
    int depth;
} scan;

static json_t *parse_value(scan *s);

static void skip_ws(scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

/* Length of the UTF-8 sequence at p (a byte >= 0x80), 0 when jansson would
 * reject it: a continuation or invalid lead byte, a truncated sequence, an
 * overlong form, a surrogate or a code point past U+10FFFF. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned char c = p[0];
    size_t n;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2, cp = c & 0x1Fu;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3, cp = c & 0x0Fu;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, cp = c & 0x07u;
    else
        return 0;
    if ((size_t)(end - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3Fu);
    }
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000))
        return 0;
    return n;
}

static int hex4(const unsigned char *p, const unsigned char *end, uint32_t *out)
{
    if (end - p < 4)
        return -1;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t utf8_put(uint32_t cp, unsigned char *o)
{
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A string at s->p (its opening quote): its bytes, either in the input
 * (*owned NULL) or, when it has escapes, decoded into *owned (the caller
 * frees it).  -1 when it has a control byte, invalid UTF-8, an escape
 * jansson rejects (an unknown one, a bad \u, a lone or mismatched
 * surrogate) or \u0000 (jansson rejects NUL without JSON_ALLOW_NUL), or
 * is not closed. */
static int scan_string(scan *s, const char **out, size_t *len, char **owned)
{
    const unsigned char *p = s->p + 1, *start = p;
    unsigned char *dec = NULL; /* decoded copy, once an escape is seen */
    size_t n = 0;
    *owned = NULL;
    while (p < s->end) {
        unsigned char c = *p;
        if (c == '"') {
            if (dec) {
                *owned = (char *)dec;
                *out = (const char *)dec;
                *len = n;
            } else {
                *out = (const char *)start;
                *len = (size_t)(p - start);
            }
            s->p = p + 1;
            return 0;
        }
        if (c < 0x20)
            goto fail;
        if (c == '\\') {
            if (!dec) {
                /* Decoded text is never longer than its source. */
                dec = malloc((size_t)(s->end - start));
                if (!dec)
                    return -1;
                n = (size_t)(p - start);
                memcpy(dec, start, n);
            }
            if (s->end - p < 2)
                goto fail;
            unsigned char e = p[1];
            static const char plain[] = "\"\\/bfnrt", real[] = "\"\\/\b\f\n\r\t";
            const char *k = e ? strchr(plain, e) : NULL;
            if (k) {
                dec[n++] = (unsigned char)real[k - plain];
                p += 2;
                continue;
            }
            uint32_t cp, lo;
            if (e != 'u' || hex4(p + 2, s->end, &cp) != 0)
                goto fail;
            p += 6;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (s->end - p < 2 || p[0] != '\\' || p[1] != 'u' ||
                    hex4(p + 2, s->end, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF)
                    goto fail;
                p += 6;
                cp = ((cp - 0xD800) << 10) + (lo - 0xDC00) + 0x10000;
            } else if ((cp >= 0xDC00 && cp <= 0xDFFF) || cp == 0) {
                goto fail;
            }
            n += utf8_put(cp, dec + n);
            continue;
        }
        size_t k = c < 0x80 ? 1 : utf8_seq(p, s->end);
        if (!k)
            goto fail;
        if (dec) {
            memcpy(dec + n, p, k);
            n += k;
        }
        p += k;
    }
fail:
    free(dec);
    return -1;
}

static json_t *parse_integer(scan *s)
{
    const unsigned char *p = s->p;
    int neg = 0;
    if (*p == '-')
        neg = 1, p++;
    if (p >= s->end || *p < '0' || *p > '9')
        return NULL;
    const unsigned char *digits = p;
    if (*p == '0') {
        p++;
        if (p < s->end && *p >= '0' && *p <= '9')
            return NULL; /* a leading zero: jansson's error */
    } else {
        while (p < s->end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p - digits > MAX_DIGITS)
        return NULL; /* may not fit: jansson decides */
    if (p < s->end && (*p == '.' || *p == 'e' || *p == 'E'))
        return NULL; /* a real */
    json_int_t v = 0;
    for (const unsigned char *q = digits; q < p; q++)
        v = v * 10 + (*q - '0');
    s->p = p;
    return json_integer(neg ? -v : v);
}

static int keyword(scan *s, const char *word, size_t n)
{
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return 0;
    s->p += n; /* "truex": the caller finds no separator after it */
    return 1;
}

static json_t *parse_object(scan *s)
{
    if (++s->depth > MAX_DEPTH)
        return NULL;
    s->p++; /* { */
    json_t *obj = json_object();
    if (!obj)
        return NULL;
    skip_ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        s->depth--;
        return obj;
    }
    for (;;) {
        const char *key;
        size_t klen;
        char *owned;
        if (s->p >= s->end || *s->p != '"' || scan_string(s, &key, &klen, &owned) != 0)
            break;
        skip_ws(s);
        json_t *v = NULL;
        if (s->p < s->end && *s->p == ':') {
            s->p++;
            skip_ws(s);
            v = parse_value(s);
        }
        int ok = 0;
        if (v) {
            if (json_object_getn(obj, key, klen))
                json_decref(v); /* a duplicate key: jansson's error */
            else                /* setn releases v when it fails */
                ok = json_object_setn_new_nocheck(obj, key, klen, v) == 0;
        }
        free(owned);
        if (!ok)
            break;
        skip_ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            skip_ws(s);
            continue;
        }
        if (s->p < s->end && *s->p == '}') {
            s->p++;
            s->depth--;
            return obj;
        }
        break;
    }
    json_decref(obj);
    return NULL;
}

static json_t *parse_array(scan *s)
{
    if (++s->depth > MAX_DEPTH)
        return NULL;
    s->p++; /* [ */
    json_t *arr = json_array();
    if (!arr)
        return NULL;
    skip_ws(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        s->depth--;
        return arr;
    }
    for (;;) {
        json_t *v = parse_value(s);
        if (!v || json_array_append_new(arr, v) != 0)
            break;
        skip_ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            skip_ws(s);
            continue;
        }
        if (s->p < s->end && *s->p == ']') {
            s->p++;
            s->depth--;
            return arr;
        }
        break;
    }
    json_decref(arr);
    return NULL;
}

static json_t *parse_value(scan *s)
{
    if (s->p >= s->end)
        return NULL;
    switch (*s->p) {
    case '{':
        return parse_object(s);
    case '[':
        return parse_array(s);
    case '"': {
        const char *t;
        size_t n;
        char *owned;
        if (scan_string(s, &t, &n, &owned) != 0)
            return NULL;
        json_t *v = json_stringn_nocheck(t, n);
        free(owned);
        return v;
    }
    case 't':
        return keyword(s, "true", 4) ? json_true() : NULL;
    case 'f':
        return keyword(s, "false", 5) ? json_false() : NULL;
    case 'n':
        return keyword(s, "null", 4) ? json_null() : NULL;
    default:
        return parse_integer(s);
    }
}

json_t *fw_json_load_fast(const char *data, size_t len)
{
    if (!data)
        return NULL;
    scan s = {(const unsigned char *)data, (const unsigned char *)data + len, 0};
    skip_ws(&s);
    if (s.p >= s.end || *s.p != '{')
        return NULL;
    json_t *obj = parse_object(&s);
    if (!obj)
        return NULL;
    skip_ws(&s);
    if (s.p != s.end) {
        json_decref(obj); /* trailing bytes: jansson's "end of file expected" */
        return NULL;
    }
    return obj;
}
