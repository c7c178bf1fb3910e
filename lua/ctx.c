/*
 * ctx.c - the `ctx` argument of check(v, ctx): read-only views of the ledger
 * and history as they were before the event, time helpers in the business
 * zone, the calendar and lists from etc/, and small text helpers.
 * lua/README.md is the reference for rule authors.
 *
 * Each rule has one ctx, made when it is loaded: a read-only proxy over a
 * fields table {params, event, run} (the engine sets params when the rule's
 * params change, event and run before each call) that also holds the
 * functions below (copied in when it is made).  Nothing is built per call, and a rule
 * cannot write into ctx.  Every function reads through the ledger's
 * indexed queries (daemon/ledger.h); none scans.  JSON results from the
 * ledger are held by the sandbox until the call ends, so a Lua error while
 * converting them leaks nothing.
 *
 * ctx.history on (unit, payee_account) is answered by the voucher cache
 * (daemon/voucher_cache.h) when the rule set has one, else by SQL.
 *
 * The ledger reads go through the rule's fw_memo when it has one: all rules
 * of one evaluation see the same pre-event ledger, so the first rule that
 * asks runs the query and the others reuse its C result (the memo owns it,
 * which also covers a Lua error while converting).
 *
 * Per thread, the last time ctx.time converted (time_local).
 */
#include <lauxlib.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/money.h"
#include "daemon/timeutil.h"
#include "daemon/voucher_cache.h"
#include "lua/rule_int.h"

#define CTX_FUNCS "fw.ctxfuncs"
#define CTX_MT "fw.ctxmt"
#define CTX_LISTS "fw.lists"

static fw_rule *ctx_rule(lua_State *L)
{
    fw_rule *r = fw_sbx_of(L)->owner;
    if (!r)
        luaL_error(L, "ctx is not available here");
    return r;
}

static fw_ledger *ctx_ledger(lua_State *L)
{
    fw_rule *r = ctx_rule(L);
    if (!r->ledger)
        luaL_error(L, "ctx: no ledger");
    return r->ledger;
}

/* ---- the per-evaluation memo ---- */

typedef struct memo_entry {
    uint64_t hash;
    size_t klen;
    int found;    /* ctx.indicator: 1 found, 0 no such indicator */
    int64_t a, b; /* integer results */
    json_t *j;    /* JSON result (owned); NULL stands for nil */
    fw_indicator ind;
    char key[]; /* klen bytes */
} memo_entry;

/* Entries come from chunks that live until the memo is cleared (once per
 * evaluation): a malloc and a free per ctx call were a sixth of
 * ctx.indicator and ctx.history in the pipeline. */
typedef struct memo_chunk {
    struct memo_chunk *next;
    size_t size, used;
    _Alignas(16) char data[];
} memo_chunk;

struct fw_memo {
    memo_entry **slots; /* open addressing, cap a power of two */
    size_t cap, n;
    memo_chunk *chunks; /* the newest first */
    char *kbuf;         /* the key being built: function tag, then the arguments */
    size_t klen, kcap;
    uint64_t khash; /* its hash, when khash_ok (memo_find computed it) */
    int khash_ok;
};

fw_memo *fw_memo_new(void)
{
    fw_memo *m = calloc(1, sizeof *m);
    if (!m)
        abort();
    m->cap = 64;
    m->slots = calloc(m->cap, sizeof *m->slots);
    if (!m->slots)
        abort();
    return m;
}

void fw_memo_clear(fw_memo *m)
{
    if (!m || m->n == 0)
        return;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slots[i])
            continue;
        json_decref(m->slots[i]->j);
        m->slots[i] = NULL;
    }
    m->n = 0;
    /* Keep the newest (largest) chunk for the next evaluation. */
    while (m->chunks && m->chunks->next) {
        memo_chunk *c = m->chunks->next;
        m->chunks->next = c->next;
        free(c);
    }
    if (m->chunks)
        m->chunks->used = 0;
}

/* n bytes for an entry, 16-aligned, valid until fw_memo_clear. */
static void *memo_alloc(fw_memo *m, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    memo_chunk *c = m->chunks;
    if (!c || c->size - c->used < n) {
        size_t size = c ? c->size * 2 : 16384;
        while (size < n)
            size *= 2;
        c = malloc(sizeof *c + size);
        if (!c)
            abort();
        c->size = size;
        c->used = 0;
        c->next = m->chunks;
        m->chunks = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

void fw_memo_free(fw_memo *m)
{
    if (!m)
        return;
    fw_memo_clear(m);
    free(m->chunks); /* the one clear keeps */
    free(m->slots);
    free(m->kbuf);
    free(m);
}

static void key_bytes(fw_memo *m, const void *p, size_t n)
{
    if (m->klen + n > m->kcap) {
        size_t cap = m->kcap ? m->kcap : 256;
        while (cap < m->klen + n)
            cap *= 2;
        char *b = realloc(m->kbuf, cap);
        if (!b)
            abort();
        m->kbuf = b;
        m->kcap = cap;
    }
    memcpy(m->kbuf + m->klen, p, n);
    m->klen += n;
    m->khash_ok = 0;
}

static void key_start(fw_memo *m, char fn)
{
    m->klen = 0;
    key_bytes(m, &fn, 1);
}

/* NULL and "" are different keys. */
static void key_str(fw_memo *m, const char *s)
{
    if (!s) {
        key_bytes(m, "N", 1);
        return;
    }
    key_bytes(m, "S", 1);
    key_bytes(m, s, strlen(s) + 1);
}

static void key_int(fw_memo *m, int64_t v)
{
    key_bytes(m, "I", 1);
    key_bytes(m, &v, sizeof v);
}

/* Hash of the key just built, 8 bytes at a time (a ctx.history key is
 * ~100 bytes: byte-wise FNV was a third of the memo's cost). */
static uint64_t key_hash(const fw_memo *m)
{
    uint64_t h = 1469598103934665603ULL ^ m->klen;
    size_t i = 0;
    for (; i + 8 <= m->klen; i += 8) {
        uint64_t w;
        memcpy(&w, m->kbuf + i, 8);
        h = (h ^ w) * 0x9E3779B97F4A7C15ULL;
        h ^= h >> 29;
    }
    for (; i < m->klen; i++)
        h = (h ^ (unsigned char)m->kbuf[i]) * 1099511628211ULL;
    return h ^ (h >> 32);
}

/* The entry for the key just built, or NULL (m may be NULL: no memo). */
static memo_entry *memo_find(fw_memo *m)
{
    if (!m)
        return NULL;
    uint64_t h = m->khash = key_hash(m);
    m->khash_ok = 1;
    size_t mask = m->cap - 1;
    for (size_t i = h & mask; m->slots[i]; i = (i + 1) & mask) {
        memo_entry *e = m->slots[i];
        if (e->hash == h && e->klen == m->klen && memcmp(e->key, m->kbuf, m->klen) == 0)
            return e;
    }
    return NULL;
}

static void memo_put(memo_entry **slots, size_t cap, memo_entry *e)
{
    size_t mask = cap - 1, i = e->hash & mask;
    while (slots[i])
        i = (i + 1) & mask;
    slots[i] = e;
}

/* A new zeroed entry for the key just built (not present), or NULL when
 * there is no memo. */
static memo_entry *memo_add(fw_memo *m)
{
    if (!m)
        return NULL;
    if ((m->n + 1) * 2 > m->cap) {
        size_t cap = m->cap * 2;
        memo_entry **slots = calloc(cap, sizeof *slots);
        if (!slots)
            abort();
        for (size_t i = 0; i < m->cap; i++)
            if (m->slots[i])
                memo_put(slots, cap, m->slots[i]);
        free(m->slots);
        m->slots = slots;
        m->cap = cap;
    }
    memo_entry *e = memo_alloc(m, sizeof *e + m->klen);
    memset(e, 0, offsetof(memo_entry, ind));        /* ind is written by who uses it */
    e->hash = m->khash_ok ? m->khash : key_hash(m); /* memo_find hashed it */
    e->klen = m->klen;
    memcpy(e->key, m->kbuf, m->klen);
    memo_put(m->slots, m->cap, e);
    m->n++;
    return e;
}

static fw_memo *ctx_memo(lua_State *L)
{
    return ctx_rule(L)->memo;
}

/* Check that the table at idx has only the given keys. */
static void check_keys(lua_State *L, int idx, const char *fn, const char *const *allowed)
{
    fw_lazy_settle(L, idx);                /* v itself passed as the criteria */
    int pushed = fw_sbx_push_real(L, idx); /* a read-only table: walk the real one */
    if (pushed)
        idx = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "%s: keys must be strings", fn);
        const char *k = lua_tostring(L, -1);
        const char *const *a = allowed;
        while (*a && strcmp(*a, k) != 0)
            a++;
        if (!*a)
            luaL_error(L, "%s: unknown field '%s'", fn, k);
    }
    if (pushed)
        lua_pop(L, 1);
}

/* Push t[name]; return it as a string or NULL (left on the stack). */
static const char *field_str(lua_State *L, int t, const char *name, const char *fn)
{
    int ty = lua_getfield(L, t, name);
    if (ty == LUA_TNIL)
        return NULL;
    if (ty != LUA_TSTRING && ty != LUA_TNUMBER)
        luaL_error(L, "%s: %s must be a string", fn, name);
    return lua_tostring(L, -1);
}

static int field_int(lua_State *L, int t, const char *name, const char *fn, int64_t *out)
{
    int ty = lua_getfield(L, t, name);
    int present = ty != LUA_TNIL;
    if (present) {
        int ok;
        lua_Integer v = lua_tointegerx(L, -1, &ok);
        if (!ok)
            luaL_error(L, "%s: %s must be an integer", fn, name);
        *out = v;
    }
    lua_pop(L, 1);
    return present;
}

/* Keys of the tables the ctx functions build, made once per state: the
 * functions' shared upvalue 1 is the array of them (fw_ctx_open), so that
 * a key is pushed with one rawgeti instead of lua_setfield's lookup of the
 * C string (a hash of its address, a strcmp, often a miss and a new
 * hash), which was a third of building an indicator or a ctx.time table. */
enum {
    K_INDICATOR_ID = 1,
    K_UNIT_CODE,
    K_YEAR,
    K_FUNC_CLASS,
    K_ECON_CLASS,
    K_FUND_TYPE,
    K_FUND_SOURCE,
    K_PROJECT_CODE,
    K_FLAGS,
    K_ALLOCATED,
    K_FROZEN,
    K_PAID,
    K_AVAILABLE,
    K_MONTH,
    K_DAY,
    K_HOUR,
    K_MIN,
    K_SEC,
    K_WDAY,
    K_COUNT,
    K_TOTAL,
    K__END
};
static const char *const key_names[K__END] = {
    NULL,        "indicator_id", "unit_code",    "year",  "func_class", "econ_class",
    "fund_type", "fund_source",  "project_code", "flags", "allocated",  "frozen",
    "paid",      "available",    "month",        "day",   "hour",       "min",
    "sec",       "wday",         "count",        "total"};

/* t[key k] = the value on top (popped); t is the table below it.  Only in
 * the ctx functions (upvalue 1). */
static void set_key(lua_State *L, int k)
{
    lua_rawgeti(L, lua_upvalueindex(1), k);
    lua_insert(L, -2);
    lua_rawset(L, -3);
}

static void set_key_int(lua_State *L, int k, lua_Integer v)
{
    lua_rawgeti(L, lua_upvalueindex(1), k);
    lua_pushinteger(L, v);
    lua_rawset(L, -3);
}

static void set_key_str(lua_State *L, int k, const char *v)
{
    lua_rawgeti(L, lua_upvalueindex(1), k);
    lua_pushstring(L, v);
    lua_rawset(L, -3);
}

/* ctx.yuan(fen) -> "12345.67" */
static int ctx_yuan(lua_State *L)
{
    char buf[40];
    lua_pushstring(L, fw_money_format((int64_t)luaL_checkinteger(L, 1), buf, sizeof buf));
    return 1;
}

/* ctx.now() -> unix seconds of the event (tick: the tick time) */
static int ctx_now(lua_State *L)
{
    lua_pushinteger(L, ctx_rule(L)->now);
    return 1;
}

static int64_t opt_time(lua_State *L, int idx)
{
    if (lua_isnoneornil(L, idx))
        return ctx_rule(L)->now;
    return (int64_t)luaL_checkinteger(L, idx);
}

/* fw_time_local of t, remembering the last conversion (per thread, as
 * the rule sets are): the rules of an evaluation ask about the same time,
 * mostly ctx.now(). */
static void time_local(int64_t t, int *y, int *mo, int *d, int *h, int *mi, int *s, int *wd)
{
    static _Thread_local struct {
        int64_t t;
        int zone, ok;
        int y, mo, d, h, mi, s, wd;
    } last;
    int zone = fw_time_zone();
    if (!last.ok || last.t != t || last.zone != zone) {
        fw_time_local(t, &last.y, &last.mo, &last.d, &last.h, &last.mi, &last.s, &last.wd);
        last.t = t;
        last.zone = zone;
        last.ok = 1;
    }
    *y = last.y;
    *mo = last.mo;
    *d = last.d;
    *h = last.h;
    *mi = last.mi;
    *s = last.s;
    *wd = last.wd;
}

/* ctx.time(t) -> {year, month, day, hour, min, sec, wday} (business zone) */
static int ctx_time(lua_State *L)
{
    int y, mo, d, h, mi, s, wd;
    time_local(opt_time(L, 1), &y, &mo, &d, &h, &mi, &s, &wd);
    lua_createtable(L, 0, 7);
    set_key_int(L, K_YEAR, y);
    set_key_int(L, K_MONTH, mo);
    set_key_int(L, K_DAY, d);
    set_key_int(L, K_HOUR, h);
    set_key_int(L, K_MIN, mi);
    set_key_int(L, K_SEC, s);
    set_key_int(L, K_WDAY, wd);
    return 1;
}

/* ctx.date(t) -> "YYYY-MM-DD" */
static int ctx_date(lua_State *L)
{
    int y, mo, d, h, mi, s, wd;
    time_local(opt_time(L, 1), &y, &mo, &d, &h, &mi, &s, &wd);
    lua_pushfstring(L, "%d-%s%d-%s%d", y, mo < 10 ? "0" : "", mo, d < 10 ? "0" : "", d);
    return 1;
}

/* ctx.parse_time(s) -> unix seconds or nil (RFC 3339, or a date = local
 * midnight) */
static int ctx_parse_time(lua_State *L)
{
    const char *s = luaL_checkstring(L, 1);
    const char *why;
    int64_t t;
    int y, m, d;
    if (fw_time_parse(s, &t, &why) == 0)
        lua_pushinteger(L, t);
    else if (strlen(s) == 10 && fw_date_parse(s, &y, &m, &d, &why) == 0)
        lua_pushinteger(L, fw_time_from_local(y, m, d, 0, 0, 0));
    else
        lua_pushnil(L);
    return 1;
}

static const char *const flag_names[] = {"salary", "sangong", "direct", "subsidy", "union"};

/* Push the read-only set {flag = true} of the flags bits: one per state
 * and combination, made once (registry "fw.flagsets"). */
static void push_flag_set(lua_State *L, int flags)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, "fw.flagsets") != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, "fw.flagsets");
    }
    if (lua_rawgeti(L, -1, flags) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        for (int i = 0; i < 5; i++)
            if (flags & fw_flag_from_name(flag_names[i])) {
                lua_pushboolean(L, 1);
                lua_setfield(L, -2, flag_names[i]);
            }
        fw_sbx_push_readonly(L, -1);
        lua_remove(L, -2);
        lua_pushvalue(L, -1);
        lua_rawseti(L, -3, flags);
    }
    lua_remove(L, -2);
}

/* Push the Lua table of an indicator; shared: its flags set is the state's
 * read-only one (the table is going to be shared by the rules). */
static void push_indicator(lua_State *L, const fw_indicator *found, int shared)
{
    const fw_indicator ind = *found;
    lua_createtable(L, 0, 14);
    set_key_str(L, K_INDICATOR_ID, ind.indicator_id);
    set_key_str(L, K_UNIT_CODE, ind.unit_code);
    set_key_int(L, K_YEAR, ind.year);
    set_key_str(L, K_FUNC_CLASS, ind.func_class);
    set_key_str(L, K_ECON_CLASS, ind.econ_class);
    set_key_str(L, K_FUND_TYPE, ind.fund_type);
    set_key_str(L, K_FUND_SOURCE, ind.fund_source);
    set_key_str(L, K_PROJECT_CODE, ind.project_code);
    if (shared) {
        push_flag_set(L, ind.flags & 31);
    } else {
        lua_newtable(L);
        for (int i = 0; i < 5; i++)
            if (ind.flags & fw_flag_from_name(flag_names[i])) {
                lua_pushboolean(L, 1);
                lua_setfield(L, -2, flag_names[i]);
            }
    }
    set_key(L, K_FLAGS);
    set_key_int(L, K_ALLOCATED, ind.allocated);
    set_key_int(L, K_FROZEN, ind.frozen);
    set_key_int(L, K_PAID, ind.paid);
    set_key_int(L, K_AVAILABLE, ind.available);
}
/* Slot of the evaluation's ctx cache (fw_eval_push_ctx_cache) that holds
 * the indicator tables by id (false: no such indicator). */
#define CTX_CACHE_IND 1
/* ... and the shared voucher tables by number (false: no such voucher) */
#define CTX_CACHE_VCH 2

/* ctx.indicator(id) -> nil or the indicator with balances (fen) */
static int ctx_indicator(lua_State *L)
{
    luaL_checkstring(L, 1);
    lua_settop(L, 1);
    /* In an evaluation, the table is built once and each call gets an
     * overlay of it (like v: reads fall through, a write makes the copy the
     * rule's own; flags is read-only).  Looked up first: the later calls of
     * an evaluation (most of them) need neither the memo nor the cache. */
    int t = 0;
    if (fw_eval_push_ctx_cache(L)) { /* 2 */
        if (lua_rawgeti(L, 2, CTX_CACHE_IND) != LUA_TTABLE) {
            lua_pop(L, 1);
            lua_newtable(L);
            lua_pushvalue(L, -1);
            lua_rawseti(L, 2, CTX_CACHE_IND);
        }
        t = 3;
        lua_pushvalue(L, 1);
        int ty = lua_rawget(L, t);
        if (ty == LUA_TTABLE) {
            fw_sbx_push_overlay(L, -1);
            return 1;
        }
        if (ty == LUA_TBOOLEAN) {
            lua_pushnil(L);
            return 1;
        }
        lua_pop(L, 1);
    }
    const char *id = lua_tostring(L, 1);
    fw_ledger *lg = ctx_ledger(L);
    fw_memo *m = ctx_memo(L);
    fw_indicator local;
    const fw_indicator *found = &local;
    if (m) {
        key_start(m, 'i');
        key_str(m, id);
    }
    memo_entry *e = memo_find(m);
    if (e) {
        found = e->found ? &e->ind : NULL;
    } else {
        fw_vcache *vc = ctx_rule(L)->vcache;
        int rc = vc ? fw_vcache_indicator(vc, id, &local) : fw_ledger_get_indicator(lg, id, &local);
        if (rc < 0)
            return luaL_error(L, "ctx.indicator: store error");
        if ((e = memo_add(m)) != NULL) {
            e->found = rc;
            e->ind = local;
        }
        if (rc == 0)
            found = NULL;
    }
    if (!found) {
        if (t) {
            lua_pushvalue(L, 1);
            lua_pushboolean(L, 0);
            lua_rawset(L, t);
        }
        lua_pushnil(L);
        return 1;
    }
    if (!t) {
        push_indicator(L, found, 0);
        return 1;
    }
    push_indicator(L, found, 1);
    fw_sbx_push_overlay_mt(L, -1);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, -2);
    lua_rawset(L, t);
    fw_sbx_push_overlay(L, -1);
    return 1;
}

static int push_kept_json(lua_State *L, json_t *j)
{
    if (!j) {
        lua_pushnil(L);
        return 1;
    }
    fw_sbx_keep(L, j);
    fw_push_json(L, j);
    return 1;
}

/* Push a JSON read result: into the memo entry e for the key just built
 * (when there is a memo; the memo owns it), else held by the sandbox. */
static int push_memo_json(lua_State *L, memo_entry *e, json_t *j)
{
    if (!e)
        return push_kept_json(L, j);
    e->j = j;
    if (!j)
        lua_pushnil(L);
    else
        fw_push_json(L, j);
    return 1;
}

/* Push a memoised JSON result (NULL: nil). */
static int push_memo_hit(lua_State *L, const memo_entry *e)
{
    if (!e->j)
        lua_pushnil(L);
    else
        fw_push_json(L, e->j);
    return 1;
}

/* What the lazy voucher S needs to add to its columns (kept with S). */
typedef struct voucher_fill_arg {
    int64_t last_event; /* voucher_events.n of its last event when it was read */
    int body_added;
    char no[]; /* the voucher number, NUL-terminated */
} voucher_fill_arg;

/* fw_sbx_fill_fn of the lazy voucher: for `events`, its events as they
 * were when the row was read (fw_ledger_voucher_events_json); for any
 * other key the columns lack, the fields of the stored body (which never
 * changes once stored), read only now.  Both through the ledger of the
 * rule being called (S may outlive the evaluation, a rule set, its
 * ledger). */
static void voucher_fill(lua_State *L, void *arg, json_t *aux, json_t *v, const char *key)
{
    (void)aux;
    voucher_fill_arg *a = arg;
    fw_rule *r = fw_sbx_of(L)->owner;
    fw_ledger *lg = r ? r->ledger : NULL;
    int events = !key || strcmp(key, "events") == 0;
    if (!a->body_added && (!key || !events)) {
        if (!lg || fw_ledger_voucher_add_stored_body(lg, v, a->no) != 0)
            luaL_error(L, "ctx.voucher: stored body of %s does not parse", a->no);
        a->body_added = 1;
    }
    if (events && !json_object_get(v, "events")) {
        json_t *ev = lg ? fw_ledger_voucher_events_json(lg, a->no, a->last_event) : NULL;
        if (!ev)
            luaL_error(L, "ctx.voucher: store error");
        json_object_set_new(v, "events", ev);
    }
}

/* Push the shared S of voucher `no` for this evaluation, or nil (no such
 * voucher).  S is lazy (sandbox.c, "lazy S"): it starts with the row's
 * columns (amount, state, the *_at times, reservation: what the flow rules
 * read; from the voucher cache's record on the loop, by SQL elsewhere), a
 * field becomes a Lua value when a rule first reads it, the stored body is
 * read and parsed only when a rule reads a field the columns lack, and
 * `events` is queried only when a rule reads it (or walks or writes the
 * voucher, or reads a kept one later): no shipped rule reads either.  The
 * columns are read once per rule set and evaluation (memo key 'V': the
 * columns, a = the number of its last event). */
static void push_voucher_shared(lua_State *L, const char *no)
{
    fw_memo *m = ctx_memo(L);
    if (m) {
        key_start(m, 'V');
        key_str(m, no);
    }
    memo_entry *e = memo_find(m);
    json_t *cols;
    int64_t last = 0;
    if (e) {
        cols = e->j;
        last = e->a;
    } else {
        cols = fw_ledger_voucher_columns_json(ctx_ledger(L), no, &last);
        if ((e = memo_add(m)) != NULL) {
            e->j = cols;
            e->a = last;
        } else {
            cols = fw_sbx_keep(L, cols); /* no memo: held until the call ends */
        }
    }
    if (!cols) {
        lua_pushnil(L);
        return;
    }
    size_t nl = strlen(no);
    voucher_fill_arg *a = fw_sbx_push_lazy_fill(L, cols, NULL, voucher_fill, sizeof *a + nl + 1);
    a->last_event = last;
    memcpy(a->no, no, nl + 1);
}

/* ctx.voucher(no) -> nil or the stored voucher (state, events, created_at) */
static int ctx_voucher(lua_State *L)
{
    const char *no = luaL_checkstring(L, 1);
    lua_settop(L, 1);
    fw_ledger *lg = ctx_ledger(L);
    /* In an evaluation, the table is built once and each call gets an
     * overlay of it, as ctx.indicator: the flow rules ask for the same
     * voucher on every voucher event, and converting it for each of them
     * was most of the cost. */
    if (!fw_eval_push_ctx_cache(L)) {
        fw_memo *m = ctx_memo(L);
        if (m) {
            key_start(m, 'v');
            key_str(m, no);
        }
        memo_entry *e = memo_find(m);
        if (e)
            return push_memo_hit(L, e);
        return push_memo_json(L, memo_add(m), fw_ledger_voucher_json(lg, no));
    }
    /* Raw lookups by the argument's Lua string (both tables are plain):
     * lua_getfield/setfield with a C string look it up in Lua's string
     * cache first, and the voucher number misses it every time. */
    if (lua_rawgeti(L, 2, CTX_CACHE_VCH) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_rawseti(L, 2, CTX_CACHE_VCH);
    }
    int t = 3;
    lua_pushvalue(L, 1);
    int type = lua_rawget(L, t);
    if (type == LUA_TBOOLEAN) { /* known not to exist */
        lua_pushnil(L);
        return 1;
    }
    if (type != LUA_TTABLE) {
        lua_pop(L, 1);
        push_voucher_shared(L, no);
        if (lua_isnil(L, -1)) {
            lua_pushvalue(L, 1);
            lua_pushboolean(L, 0);
            lua_rawset(L, t);
            return 1;
        }
        fw_sbx_push_overlay_mt(L, -1);
        lua_pushvalue(L, 1);
        lua_pushvalue(L, -2);
        lua_rawset(L, t);
    }
    fw_sbx_push_overlay(L, -1);
    return 1;
}

/* The criteria of ctx.history, in the order of its `allowed` list. */
enum {
    H_UNIT,
    H_PAYEE,
    H_ECON,
    H_ECONS,
    H_SETTLE,
    H_PTYPE,
    H_AMOUNT,
    H_BELOW,
    H_SINCE,
    H_UNTIL,
    H_EXCL,
    H_STATE,
    H_IND,
    H_N
};

static int history_key(const char *k, size_t n)
{
    static const struct {
        const char *name;
        size_t len;
    } keys[H_N] = {{"unit", 4},          {"payee_account", 13},   {"econ_class", 10},
                   {"econ_classes", 12}, {"settle_method", 13},   {"payee_type", 10},
                   {"amount", 6},        {"amount_below", 12},    {"since", 5},
                   {"until", 5},         {"exclude_voucher", 15}, {"state", 5},
                   {"indicator", 9}};
    for (int i = 0; i < H_N; i++)
        if (keys[i].len == n && memcmp(keys[i].name, k, n) == 0)
            return i;
    return -1;
}

/* The criterion at stack index idx (0: absent) as a string, or NULL. */
static const char *hist_str(lua_State *L, int idx, const char *name, const char *fn)
{
    if (!idx)
        return NULL;
    int ty = lua_type(L, idx);
    if (ty != LUA_TSTRING && ty != LUA_TNUMBER)
        luaL_error(L, "%s: %s must be a string", fn, name);
    return lua_tostring(L, idx); /* a number is converted in place, on the stack */
}

static int hist_int(lua_State *L, int idx, const char *name, const char *fn, int64_t *out)
{
    if (!idx)
        return 0;
    int ok;
    lua_Integer v = lua_tointegerx(L, idx, &ok);
    if (!ok)
        luaL_error(L, "%s: %s must be an integer", fn, name);
    *out = v;
    return 1;
}

/* ctx.history{...} -> {count=, total=} */
static int ctx_history(lua_State *L)
{
    static const char *const allowed[] = {"unit",
                                          "payee_account",
                                          "econ_class",
                                          "econ_classes",
                                          "settle_method",
                                          "payee_type",
                                          "amount",
                                          "amount_below",
                                          "since",
                                          "until",
                                          "exclude_voucher",
                                          "state",
                                          "indicator",
                                          NULL};
    const char *fn = "ctx.history";
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_checkstack(L, 128, fn);
    fw_history_query q;
    memset(&q, 0, sizeof q);
    /* A plain criteria table (what rules write) is read in one walk; one
     * with a metatable (v itself, a proxy) field by field as before, so
     * that inherited fields count. */
    int vidx[H_N] = {0};
    int plain = !lua_getmetatable(L, 1);
    if (!plain) {
        lua_pop(L, 1);
        check_keys(L, 1, fn, allowed);
        for (int i = 0; i < H_N; i++) {
            lua_getfield(L, 1, allowed[i]); /* stays on the stack while q is used */
            vidx[i] = lua_isnil(L, -1) ? 0 : lua_gettop(L);
        }
    } else {
        lua_pushnil(L);
        while (lua_next(L, 1)) {
            if (lua_type(L, -2) != LUA_TSTRING)
                return luaL_error(L, "%s: keys must be strings", fn);
            size_t kl;
            const char *k = lua_tolstring(L, -2, &kl);
            int h = history_key(k, kl);
            if (h < 0)
                return luaL_error(L, "%s: unknown field '%s'", fn, k);
            vidx[h] = lua_gettop(L); /* the value stays on the stack */
            lua_pushvalue(L, -2);
        }
    }
    q.unit_code = hist_str(L, vidx[H_UNIT], "unit", fn);
    q.payee_account = hist_str(L, vidx[H_PAYEE], "payee_account", fn);
    q.econ_class = hist_str(L, vidx[H_ECON], "econ_class", fn);
    q.settle_method = hist_str(L, vidx[H_SETTLE], "settle_method", fn);
    q.payee_type = hist_str(L, vidx[H_PTYPE], "payee_type", fn);
    q.exclude_voucher = hist_str(L, vidx[H_EXCL], "exclude_voucher", fn);
    q.state = hist_str(L, vidx[H_STATE], "state", fn);
    q.indicator_id = hist_str(L, vidx[H_IND], "indicator", fn);
    if (q.state && strcmp(q.state, "returned") != 0 && strcmp(q.state, "paid") != 0)
        return luaL_error(L, "%s: state must be \"returned\" or \"paid\"", fn);
    q.has_amount = hist_int(L, vidx[H_AMOUNT], "amount", fn, &q.amount);
    hist_int(L, vidx[H_BELOW], "amount_below", fn, &q.amount_below);
    hist_int(L, vidx[H_SINCE], "since", fn, &q.since);
    if (!hist_int(L, vidx[H_UNTIL], "until", fn, &q.until))
        q.until = INT64_MAX;
    const char *classes[65];
    int ty = vidx[H_ECONS] ? lua_type(L, vidx[H_ECONS]) : LUA_TNIL;
    lua_pushvalue(L, vidx[H_ECONS] ? vidx[H_ECONS] : 1);
    if (ty == LUA_TTABLE) {
        int t = lua_gettop(L);
        lua_Integer n = luaL_len(L, t);
        if (n > 64)
            return luaL_error(L, "%s: at most 64 econ_classes", fn);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_geti(L, t, i); /* stays on the stack while q is used */
            if (!lua_isstring(L, -1))
                return luaL_error(L, "%s: econ_classes must hold strings", fn);
            classes[i - 1] = lua_tostring(L, -1);
        }
        classes[n] = NULL;
        q.econ_classes = classes;
    } else if (ty != LUA_TNIL) {
        return luaL_error(L, "%s: econ_classes must be a table", fn);
    }
    fw_history_result res = {0, 0};
    fw_ledger *lg = ctx_ledger(L);
    /* The voucher cache answers its queries from memory, the same answer
     * all through the evaluation (the ledger does not move during it): the
     * memo is for the queries that go to SQL (building and hashing the
     * ~100-byte key cost more than the cache's answer). */
    int rc = fw_vcache_history(ctx_rule(L)->vcache, &q, &res);
    if (rc < 0)
        return luaL_error(L, "%s: store error", fn);
    if (rc == 0) {
        fw_memo *m = ctx_memo(L);
        if (m) {
            key_start(m, 'h');
            key_str(m, q.unit_code);
            key_str(m, q.payee_account);
            key_str(m, q.econ_class);
            key_str(m, q.settle_method);
            key_str(m, q.payee_type);
            key_str(m, q.exclude_voucher);
            key_str(m, q.state);
            key_str(m, q.indicator_id);
            key_int(m, q.has_amount);
            key_int(m, q.amount);
            key_int(m, q.amount_below);
            key_int(m, q.since);
            key_int(m, q.until);
            key_int(m, q.econ_classes ? 1 : 0);
            for (const char *const *c = q.econ_classes; c && *c; c++)
                key_str(m, *c);
        }
        memo_entry *e = memo_find(m);
        if (e) {
            res.count = e->a;
            res.total = e->b;
        } else {
            if (fw_ledger_history(lg, &q, &res) != 0)
                return luaL_error(L, "%s: store error", fn);
            if ((e = memo_add(m)) != NULL) {
                e->a = res.count;
                e->b = res.total;
            }
        }
    }
    lua_createtable(L, 0, 2);
    set_key_int(L, K_COUNT, res.count);
    set_key_int(L, K_TOTAL, res.total);
    return 1;
}

/* ctx.allocated_by_flag(unit, year, flag) -> fen */
static int ctx_allocated_by_flag(lua_State *L)
{
    const char *unit = luaL_checkstring(L, 1);
    int year = (int)luaL_checkinteger(L, 2);
    const char *flag = luaL_checkstring(L, 3);
    int f = fw_flag_from_name(flag);
    if (!f)
        return luaL_error(L, "ctx.allocated_by_flag: unknown flag '%s'", flag);
    int64_t total = 0;
    fw_ledger *lg = ctx_ledger(L);
    fw_memo *m = ctx_memo(L);
    if (m) {
        key_start(m, 'a');
        key_str(m, unit);
        key_int(m, year);
        key_int(m, f);
    }
    memo_entry *e = memo_find(m);
    if (e) {
        total = e->a;
    } else {
        if (fw_ledger_allocated_by_flag(lg, unit, year, f, &total) != 0)
            return luaL_error(L, "ctx.allocated_by_flag: store error");
        if ((e = memo_add(m)) != NULL)
            e->a = total;
    }
    lua_pushinteger(L, total);
    return 1;
}

/* ctx.employee(id_no, before_period) -> earlier lines, newest first */
static int ctx_employee(lua_State *L)
{
    const char *id = luaL_checkstring(L, 1);
    const char *before = luaL_optstring(L, 2, NULL);
    fw_ledger *lg = ctx_ledger(L);
    fw_memo *m = ctx_memo(L);
    if (m) {
        key_start(m, 'e');
        key_str(m, id);
        key_str(m, before);
    }
    memo_entry *e = memo_find(m);
    if (e)
        return push_memo_hit(L, e);
    json_t *j = fw_ledger_employee_json(lg, id, before);
    if (!j)
        return luaL_error(L, "ctx.employee: store error");
    return push_memo_json(L, memo_add(m), j);
}

/* ctx.period_lines(period, {id_no=, account=}) -> lines in other runs */
static int ctx_period_lines(lua_State *L)
{
    static const char *const allowed[] = {"id_no", "account", NULL};
    const char *period = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    check_keys(L, 2, "ctx.period_lines", allowed);
    const char *id_no = field_str(L, 2, "id_no", "ctx.period_lines");
    const char *account = field_str(L, 2, "account", "ctx.period_lines");
    fw_ledger *lg = ctx_ledger(L);
    fw_memo *m = ctx_memo(L);
    if (m) {
        key_start(m, 'p');
        key_str(m, period);
        key_str(m, id_no);
        key_str(m, account);
    }
    memo_entry *e = memo_find(m);
    if (e)
        return push_memo_hit(L, e);
    json_t *j = fw_ledger_period_lines_json(lg, period, id_no, account);
    if (!j)
        return luaL_error(L, "ctx.period_lines: store error");
    return push_memo_json(L, memo_add(m), j);
}

/* ctx.run_progress(run_id) -> parts_seen, net_so_far (before this part) */
static int ctx_run_progress(lua_State *L)
{
    const char *run = luaL_checkstring(L, 1);
    int parts = 0;
    int64_t net = 0;
    fw_ledger *lg = ctx_ledger(L);
    fw_memo *m = ctx_memo(L);
    if (m) {
        key_start(m, 'r');
        key_str(m, run);
    }
    memo_entry *e = memo_find(m);
    if (e) {
        parts = (int)e->a;
        net = e->b;
    } else {
        if (fw_ledger_run_progress(lg, run, &parts, &net) != 0)
            return luaL_error(L, "ctx.run_progress: store error");
        if ((e = memo_add(m)) != NULL) {
            e->a = parts;
            e->b = net;
        }
    }
    lua_pushinteger(L, parts);
    lua_pushinteger(L, net);
    return 2;
}

/* ctx.subsidy_count{emp_id=, unit=, kind=, year=, month=, exclude=} -> n */
static int ctx_subsidy_count(lua_State *L)
{
    static const char *const allowed[] = {"emp_id", "unit",    "kind", "year",
                                          "month",  "exclude", NULL};
    const char *fn = "ctx.subsidy_count";
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    check_keys(L, 1, fn, allowed);
    const char *emp = field_str(L, 1, "emp_id", fn);
    const char *unit = field_str(L, 1, "unit", fn);
    const char *kind = field_str(L, 1, "kind", fn);
    const char *excl = field_str(L, 1, "exclude", fn);
    int64_t year = 0, month = 0, n = 0;
    if (!field_int(L, 1, "year", fn, &year) || !field_int(L, 1, "month", fn, &month))
        return luaL_error(L, "%s: year and month are required", fn);
    fw_ledger *lg = ctx_ledger(L);
    fw_memo *m = ctx_memo(L);
    if (m) {
        key_start(m, 's');
        key_str(m, emp);
        key_str(m, unit);
        key_str(m, kind);
        key_int(m, (int)year);
        key_int(m, (int)month);
        key_str(m, excl);
    }
    memo_entry *e = memo_find(m);
    if (e) {
        n = e->a;
    } else {
        if (fw_ledger_subsidy_count(lg, emp, unit, kind, (int)year, (int)month, excl, &n) != 0)
            return luaL_error(L, "%s: store error", fn);
        if ((e = memo_add(m)) != NULL)
            e->a = n;
    }
    lua_pushinteger(L, n);
    return 1;
}

/* ctx.sent_before(t) -> [{voucher_no, unit_code, sent_at, amount}] */
static int ctx_sent_before(lua_State *L)
{
    int64_t t = (int64_t)luaL_checkinteger(L, 1);
    fw_ledger *lg = ctx_ledger(L);
    fw_memo *m = ctx_memo(L);
    if (m) {
        key_start(m, 'b');
        key_int(m, t);
    }
    memo_entry *e = memo_find(m);
    if (e)
        return push_memo_hit(L, e);
    json_t *j = fw_ledger_vouchers_sent_before(lg, t);
    if (!j)
        return luaL_error(L, "ctx.sent_before: store error");
    return push_memo_json(L, memo_add(m), j);
}

/* ctx.project_indicators() -> [{indicator_id, unit_code, allocated}] */
static int ctx_project_indicators(lua_State *L)
{
    fw_ledger *lg = ctx_ledger(L);
    fw_memo *m = ctx_memo(L);
    if (m)
        key_start(m, 'j');
    memo_entry *e = memo_find(m);
    if (e)
        return push_memo_hit(L, e);
    json_t *j = fw_ledger_project_indicators(lg);
    if (!j)
        return luaL_error(L, "ctx.project_indicators: store error");
    return push_memo_json(L, memo_add(m), j);
}

/* ctx.is_workday(date_or_time) -> boolean */
static int ctx_is_workday(lua_State *L)
{
    int64_t days;
    if (lua_type(L, 1) == LUA_TSTRING) {
        int y, m, d;
        const char *why;
        if (fw_date_parse(lua_tostring(L, 1), &y, &m, &d, &why) != 0)
            return luaL_error(L, "ctx.is_workday: bad date '%s'", lua_tostring(L, 1));
        days = fw_days_from_civil(y, m, d);
    } else {
        int y, mo, d, h, mi, s, wd;
        time_local(opt_time(L, 1), &y, &mo, &d, &h, &mi, &s, &wd);
        days = fw_days_from_civil(y, mo, d);
    }
    lua_pushboolean(L, fw_etc_is_workday(ctx_rule(L)->etc, days));
    return 1;
}

/* ctx.list(name) -> read-only set {item = true}; built once per state */
static int ctx_list(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, CTX_LISTS);
    if (lua_getfield(L, -1, name) != LUA_TNIL)
        return 1;
    lua_pop(L, 1);
    int n = 0;
    const char *const *items = fw_etc_list(ctx_rule(L)->etc, name, &n);
    if (!items)
        return luaL_error(L, "ctx.list: no list '%s' in etc/lists", name);
    lua_createtable(L, 0, n);
    for (int i = 0; i < n; i++) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, items[i]);
    }
    fw_sbx_push_readonly(L, -1);
    lua_pushvalue(L, -1);
    lua_setfield(L, -4, name);
    return 1;
}

/* ctx.id_check(id_no) -> ok, reason, birth_date */
static int ctx_id_check(lua_State *L)
{
    const char *reason;
    char birth[11];
    int ok = fw_id_check(luaL_checkstring(L, 1), &reason, birth);
    lua_pushboolean(L, ok);
    if (reason)
        lua_pushstring(L, reason);
    else
        lua_pushnil(L);
    if (birth[0])
        lua_pushstring(L, birth);
    else
        lua_pushnil(L);
    return 3;
}

/* ctx.utf8len(s) -> characters */
static int ctx_utf8len(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    fw_sbx_charge(L, (int64_t)(n / 256));
    lua_Integer c = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            c++;
    lua_pushinteger(L, c);
    return 1;
}

/* The first occurrence of w (wl bytes) in s (n bytes), or NULL, as
 * memmem.  memchr for the first byte and memcmp for the rest, at most 8
 * times, then memmem for what is left: faster than memmem alone on the
 * short texts and words of rules (glibc's memmem sets up a 256-entry shift
 * table on each call), and still linear on long ones. */
static const char *find_plain(const char *s, size_t n, const char *w, size_t wl)
{
    if (wl == 0)
        return s;
    if (wl > n)
        return NULL;
    const char *p = s, *last = s + (n - wl); /* the last possible start */
    for (int tries = 0; tries < 8; tries++) {
        p = memchr(p, (unsigned char)w[0], (size_t)(last - p) + 1);
        if (!p)
            return NULL;
        if (memcmp(p + 1, w + 1, wl - 1) == 0)
            return p;
        if (p == last)
            return NULL;
        p++;
    }
    return memmem(p, (size_t)(s + n - p), w, wl);
}

/* ctx.contains(s, word) -> plain substring test */
static int ctx_contains(lua_State *L)
{
    size_t n, wn;
    const char *s = luaL_checklstring(L, 1, &n);
    const char *w = luaL_checklstring(L, 2, &wn);
    fw_sbx_charge(L, (int64_t)(n / 256));
    lua_pushboolean(L, find_plain(s, n, w, wn) != NULL);
    return 1;
}

/* ctx.find_word(s, list_name) -> word, position | nil: of the items of
 * etc/lists/<list_name>.txt (the words of ctx.list(list_name)), the one
 * that occurs earliest in s by plain substring search (ties: the longer
 * word, then the first in the file), and its 1-based byte position.  One C
 * call instead of a ctx.contains per word (sensitive_keywords made 15),
 * one pass over s with the list's index (fw_etc_find_word). */
static int ctx_find_word(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    const char *name = luaL_checkstring(L, 2);
    int nitems = 0;
    if (!fw_etc_list(ctx_rule(L)->etc, name, &nitems))
        return luaL_error(L, "ctx.find_word: no list '%s' in etc/lists", name);
    /* charged as the word-by-word search it replaced (as many ctx.contains) */
    fw_sbx_charge(L, (int64_t)(n / 256) * nitems + nitems / 16);
    const char *word;
    size_t wl, at;
    if (fw_etc_find_word(ctx_rule(L)->etc, name, s, n, &word, &wl, &at) != 1) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushlstring(L, word, wl);
    lua_pushinteger(L, (lua_Integer)at + 1);
    return 2;
}

static const luaL_Reg ctx_funcs[] = {
    {"yuan", ctx_yuan},
    {"now", ctx_now},
    {"time", ctx_time},
    {"date", ctx_date},
    {"parse_time", ctx_parse_time},
    {"indicator", ctx_indicator},
    {"voucher", ctx_voucher},
    {"history", ctx_history},
    {"allocated_by_flag", ctx_allocated_by_flag},
    {"employee", ctx_employee},
    {"period_lines", ctx_period_lines},
    {"run_progress", ctx_run_progress},
    {"subsidy_count", ctx_subsidy_count},
    {"sent_before", ctx_sent_before},
    {"project_indicators", ctx_project_indicators},
    {"is_workday", ctx_is_workday},
    {"list", ctx_list},
    {"id_check", ctx_id_check},
    {"utf8len", ctx_utf8len},
    {"contains", ctx_contains},
    {"find_word", ctx_find_word},
    {NULL, NULL},
};

void fw_ctx_open(lua_State *L)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, CTX_MT) == LUA_TTABLE) {
        lua_pop(L, 1); /* the state already has it (another rule of the generation) */
        return;
    }
    lua_pop(L, 1);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, CTX_LISTS);
    luaL_newlibtable(L, ctx_funcs);
    lua_createtable(L, K__END - 1, 0); /* the keys: upvalue 1 of every function */
    for (int k = 1; k < K__END; k++) {
        lua_pushstring(L, key_names[k]);
        lua_rawseti(L, -2, k);
    }
    luaL_setfuncs(L, ctx_funcs, 1);
    lua_createtable(L, 0, 2);
    lua_insert(L, -2);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setfield(L, LUA_REGISTRYINDEX, CTX_MT);
}

void fw_ctx_create(lua_State *L)
{
    /* The functions are copied into R, next to params, event and run: a
     * rule's ctx.<function> is then one table lookup behind the proxy, not
     * two (R's metatable still falls through to them). */
    lua_createtable(L, 0, (int)(sizeof ctx_funcs / sizeof ctx_funcs[0]) + 3);
    lua_getfield(L, LUA_REGISTRYINDEX, CTX_MT);
    lua_getfield(L, -1, "__index");
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, -6);
    }
    lua_pop(L, 1);
    lua_setmetatable(L, -2);
    fw_sbx_push_readonly(L, -1);
}
