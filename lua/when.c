/*
 * when.c - a rule's `when`: conditions on the event's fields, tested in C
 * before the rule is called, so that a rule that could not fire costs no
 * call (Marble's trigger conditions, rspamd's rule conditions).
 *
 *   when = {
 *     payee_type = "individual",            -- the field equals this text
 *     settle_method = { "cash", "card" },   -- ... one of these texts
 *     amount = { gt = "limit" },            -- gt ge lt le: an integer, or
 *                                           -- the name of an integer param
 *     econ_class = { list = "codes_list" }, -- in the etc list named by a
 *                                           -- string param
 *     econ_class = { one_of = "classes" },  -- one of the texts of an array
 *                                           -- param
 *     amount = { present = true },          -- the field is there (not null)
 *   }
 *
 * Every condition must hold for the rule to be called.  A condition only
 * skips a call when it can tell: a field that is absent, or not a string
 * (text conditions) or not an integer (comparisons), lets the call happen
 * and check decides, as it did without `when` (present is the one that
 * judges absence).  So `when` can only remove
 * calls whose check would return nothing, if it restates the check's own
 * first test; `fundwatch rules test` checks that for every case (it runs
 * check on each event `when` skipped and fails the case if check hits).
 *
 * Param references are resolved each time the params are set (defaults,
 * config overrides, test case params), list names against etc/lists.
 * `when` applies to events with a body (voucher.*, indicator.*, reimburse,
 * subsidy): a rule on payroll.* or tick may not have one.
 */
#include <lauxlib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua/rule_int.h"

enum { W_TEXT, W_GT, W_GE, W_LT, W_LE, W_LIST, W_ONEOF, W_PRESENT };

static const char *const cmp_names[] = {"gt", "ge", "lt", "le", "list", "one_of", "present"};

typedef struct when_cond {
    char *field;
    uint64_t hash; /* of field (FNV-1a): the cache's first compare */
    int op;
    char *param;  /* comparisons and list: the param named, or NULL (literal) */
    int64_t num;  /* comparisons: the bound (literal or resolved) */
    char **texts; /* W_TEXT, W_ONEOF: the texts (owned); W_LIST: the list's items (etc's) */
    int ntexts;
} when_cond;

struct fw_when {
    when_cond *c;
    int n;
};

/* Release c's texts if they are its own (W_LIST's items are etc's). */
static void free_texts(when_cond *c)
{
    if (c->op == W_TEXT || c->op == W_ONEOF) {
        for (int k = 0; k < c->ntexts; k++)
            free(c->texts[k]);
        free(c->texts);
    }
    c->texts = NULL;
    c->ntexts = 0;
}

void fw_when_free(fw_when *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->n; i++) {
        free(w->c[i].field);
        free(w->c[i].param);
        free_texts(&w->c[i]);
    }
    free(w->c);
    free(w);
}

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int field_name_ok(const char *s)
{
    if (!*s || strlen(s) >= 64)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

/* Parse one condition (the value at the top of the stack) into c. */
static int parse_cond(lua_State *L, when_cond *c, char *err, size_t errlen)
{
    int v = lua_gettop(L);
    if (lua_type(L, v) == LUA_TSTRING) {
        c->op = W_TEXT;
        c->texts = calloc(1, sizeof *c->texts);
        if (!c->texts || !(c->texts[0] = strdup(lua_tostring(L, v))))
            return snprintf(err, errlen, "out of memory"), -1;
        c->ntexts = 1;
        return 0;
    }
    if (lua_type(L, v) != LUA_TTABLE)
        return snprintf(err, errlen,
                        "when.%s: a text, an array of texts, or {gt|ge|lt|le|list = ...}",
                        c->field),
               -1;
    size_t n = lua_rawlen(L, v);
    if (n > 0) { /* one of these texts */
        c->op = W_TEXT;
        if (!(c->texts = calloc(n, sizeof *c->texts)))
            return snprintf(err, errlen, "out of memory"), -1;
        size_t count = 0;
        lua_pushnil(L);
        while (lua_next(L, v)) {
            count++;
            lua_pop(L, 1);
        }
        if (count != n)
            return snprintf(err, errlen, "when.%s: an array of texts (keys 1..n)", c->field), -1;
        for (size_t i = 1; i <= n; i++) {
            if (lua_rawgeti(L, v, (lua_Integer)i) != LUA_TSTRING)
                return snprintf(err, errlen, "when.%s: an array of texts", c->field), -1;
            if (!(c->texts[c->ntexts] = strdup(lua_tostring(L, -1))))
                return snprintf(err, errlen, "out of memory"), -1;
            c->ntexts++;
            lua_pop(L, 1);
        }
        return 0;
    }
    int found = 0;
    lua_pushnil(L);
    while (lua_next(L, v)) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
        int op = -1;
        for (int i = 0; i < 7; i++)
            if (strcmp(k, cmp_names[i]) == 0)
                op = W_GT + i;
        if (op < 0 || found++)
            return snprintf(err, errlen, "when.%s: one of gt, ge, lt, le, list, one_of or present",
                            c->field),
                   -1;
        c->op = op;
        if (op == W_PRESENT) {
            if (lua_type(L, -1) != LUA_TBOOLEAN || !lua_toboolean(L, -1))
                return snprintf(err, errlen, "when.%s.present: must be true", c->field), -1;
        } else if (lua_type(L, -1) == LUA_TSTRING) {
            if (!(c->param = strdup(lua_tostring(L, -1))))
                return snprintf(err, errlen, "out of memory"), -1;
        } else if (op != W_LIST && op != W_ONEOF && lua_isinteger(L, -1)) {
            c->num = (int64_t)lua_tointeger(L, -1);
        } else {
            return snprintf(err, errlen, "when.%s.%s: %s", c->field, k,
                            op == W_LIST    ? "the name of a string param (a list name)"
                            : op == W_ONEOF ? "the name of an array param"
                                            : "an integer or the name of an integer param"),
                   -1;
        }
        lua_pop(L, 1);
    }
    if (!found)
        return snprintf(err, errlen, "when.%s: one of gt, ge, lt, le, list, one_of or present",
                        c->field),
               -1;
    return 0;
}

int fw_when_parse(lua_State *L, int idx, fw_when **out, char *err, size_t errlen)
{
    idx = lua_absindex(L, idx);
    *out = NULL;
    if (lua_type(L, idx) != LUA_TTABLE)
        return snprintf(err, errlen, "when must be a table of field = condition"), -1;
    fw_when *w = calloc(1, sizeof *w);
    if (!w)
        return snprintf(err, errlen, "out of memory"), -1;
    *out = w; /* the caller owns it from here, whatever happens */
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        n++;
        lua_pop(L, 1);
    }
    if (n == 0)
        return snprintf(err, errlen, "when must name at least one field"), -1;
    if (!(w->c = calloc((size_t)n, sizeof *w->c)))
        return snprintf(err, errlen, "out of memory"), -1;
    int top = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING || !field_name_ok(lua_tostring(L, -2))) {
            lua_settop(L, top);
            return snprintf(err, errlen, "when: keys must be field names ([a-z0-9_]+)"), -1;
        }
        when_cond *c = &w->c[w->n++];
        if (!(c->field = strdup(lua_tostring(L, -2)))) {
            lua_settop(L, top);
            return snprintf(err, errlen, "out of memory"), -1;
        }
        c->hash = name_hash(c->field);
        int k = lua_gettop(L) - 1;
        if (parse_cond(L, c, err, errlen) != 0) {
            lua_settop(L, top);
            return -1;
        }
        lua_settop(L, k);
    }
    lua_settop(L, top);
    return 0;
}

int fw_when_resolve(fw_when *w, lua_State *L, int params, const fw_etc *etc, char *err,
                    size_t errlen)
{
    if (!w)
        return 0;
    params = lua_absindex(L, params);
    for (int i = 0; i < w->n; i++) {
        when_cond *c = &w->c[i];
        if (!c->param)
            continue;
        int t = lua_getfield(L, params, c->param);
        if (t == LUA_TNIL) {
            lua_pop(L, 1);
            return snprintf(err, errlen, "when.%s.%s: no param '%s'", c->field,
                            cmp_names[c->op - W_GT], c->param),
                   -1;
        }
        if (c->op == W_ONEOF) {
            free_texts(c);
            size_t n = t == LUA_TTABLE ? lua_rawlen(L, -1) : 0;
            int ok = t == LUA_TTABLE && (c->texts = calloc(n + 1, sizeof *c->texts)) != NULL;
            for (size_t k = 1; ok && k <= n; k++) {
                ok = lua_rawgeti(L, -1, (lua_Integer)k) == LUA_TSTRING &&
                     (c->texts[c->ntexts] = strdup(lua_tostring(L, -1))) != NULL;
                c->ntexts += ok;
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
            if (!ok)
                return snprintf(err, errlen, "when.%s.one_of: params.%s must be an array of texts",
                                c->field, c->param),
                       -1;
            continue;
        }
        if (c->op == W_LIST) {
            const char *name = t == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
            int n = 0;
            const char *const *items = name ? fw_etc_list(etc, name, &n) : NULL;
            lua_pop(L, 1);
            if (!name)
                return snprintf(err, errlen,
                                "when.%s.list: params.%s must be a string (a list name)", c->field,
                                c->param),
                       -1;
            if (!items)
                return snprintf(err, errlen, "when.%s.list: no list '%s' in etc/lists", c->field,
                                name),
                       -1;
            c->texts = (char **)items; /* etc's, held by the rule's reference */
            c->ntexts = n;
            continue;
        }
        int ok = t == LUA_TNUMBER && lua_isinteger(L, -1);
        int64_t v = ok ? (int64_t)lua_tointeger(L, -1) : 0;
        lua_pop(L, 1);
        if (!ok)
            return snprintf(err, errlen, "when.%s: params.%s must be an integer", c->field,
                            c->param),
                   -1;
        c->num = v;
    }
    return 0;
}

static int text_in(const char *s, char *const *texts, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s, texts[i]) == 0)
            return 1;
    return 0;
}

/* body's field `name`, through the evaluation's cache: the rules of a set
 * test the same few fields (a string compare each instead of a jansson
 * lookup: hashing the name, then a compare). */
static const json_t *field_of(fw_when_cache *cache, const json_t *body, const when_cond *c)
{
    if (!cache)
        return json_object_get(body, c->field);
    for (int i = 0; i < cache->n; i++)
        if (cache->hashes[i] == c->hash && strcmp(cache->names[i], c->field) == 0)
            return cache->values[i];
    const json_t *v = json_object_get(body, c->field);
    if (cache->n < FW_WHEN_CACHE_FIELDS) {
        cache->hashes[cache->n] = c->hash;
        cache->names[cache->n] = c->field;
        cache->values[cache->n++] = v;
    }
    return v;
}

int fw_when_pass(const fw_when *w, const json_t *body, fw_when_cache *cache)
{
    if (!w)
        return 1;
    for (int i = 0; i < w->n; i++) {
        const when_cond *c = &w->c[i];
        const json_t *f = field_of(cache, body, c);
        if (c->op == W_PRESENT) { /* v.field ~= nil: null fields are nil too */
            if (!f || json_is_null(f))
                return 0;
            continue;
        }
        if (c->op == W_TEXT || c->op == W_LIST || c->op == W_ONEOF) {
            if (!json_is_string(f))
                continue; /* cannot tell: check decides */
            if (!text_in(json_string_value(f), c->texts, c->ntexts))
                return 0;
            continue;
        }
        if (!json_is_integer(f))
            continue;
        int64_t x = (int64_t)json_integer_value(f);
        int hold = c->op == W_GT   ? x > c->num
                   : c->op == W_GE ? x >= c->num
                   : c->op == W_LT ? x < c->num
                                   : x <= c->num;
        if (!hold)
            return 0;
    }
    return 1;
}
