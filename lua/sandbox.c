/*
 * sandbox.c - the sandboxed lua_State shared by the rules of one rule-set
 * generation (or owned by one rule / one test file).
 *
 * Why one state per generation: a call into a state per rule cost a fresh
 * _ENV, ctx and event table per call, and the event was converted once per
 * rule; with one state the event is converted once per evaluation and each
 * rule keeps its environment and ctx between calls (lua/README.md, "Engine
 * notes").  What keeps rules apart in the shared state:
 *   - each rule has its own environment table E (reads fall through to the
 *     sandbox globals); E is emptied after any call that wrote into it, so
 *     no global outlives a call and no rule ever sees another's E;
 *   - a rule's file-level locals are upvalues of its own closures, which no
 *     other rule can reach (no debug library, no registry access);
 *   - everything shared is read-only: the library tables, the string
 *     metatable, ctx (per rule, a read-only proxy), ctx.list sets and the
 *     event (see "the event" below);
 *   - a reload builds a new generation in a new state, so an old and a new
 *     version never share anything (a rule carried over keeps its old state
 *     alive through the reference count).
 *
 * What a rule sees (its globals, via its _ENV):
 *   base:   assert error ipairs next pairs pcall xpcall rawequal rawget
 *           rawlen select tonumber tostring type getmetatable setmetatable
 *           (no __gc: finalizers run with hooks off) _VERSION
 *   string: all but rep, dump, pack, unpack, packsize; find/match/gmatch/
 *           gsub with a pattern are guarded (see below)
 *   table, utf8, math (no random/randomseed)
 * No io, os, require, load, loadfile, dofile, collectgarbage, rawset, debug,
 * coroutine, print.  The library tables are read-only proxies, the string
 * metatable's __index is the sanitized string table and its __metatable is
 * false.
 *
 * Budgets (per call): a count hook every 1000 instructions; when the budget
 * is spent the hook re-arms itself with count 1 before raising, so a pcall
 * inside the rule cannot swallow it (the next instruction raises again).
 * Memory is counted by the allocator over the whole state: during a call
 * the state may grow by at most call_limit bytes over what it held when the
 * call began (net of what the collector frees meanwhile), and never past
 * the state cap.  A refused allocation trips the call (even if the rule
 * caught the error) unless Lua's emergency collection made room and the
 * retried allocation succeeded.  Frees and shrinks never fail.  The
 * trade-off: memory a rule keeps between calls (upvalue caches) is no
 * longer charged to that rule; it only counts towards the state cap.
 *
 * The count hook only sees VM instructions, so work done in C is charged to
 * the same budget: every 64 bytes allocated cost one instruction (string
 * building, concatenation of long strings), linear scans (utf8.len,
 * tonumber, plain find, ctx.contains/utf8len) one per 256 bytes, and
 * table.move one per 4 elements (at most 10^6).  Not charged: comparing two
 * long strings with == or <, bounded by the memory cap.
 *
 * Patterns: the hook never fires inside C, and Lua's matcher backtracks
 * (('a'):rep(600):find('.-.-.-b') runs for tens of seconds).  So a pattern
 * may be at most 64 bytes, its subject at most 4096 bytes, and its
 * worst-case matcher work, bounded as (subject+1)^(unbounded quantifiers +
 * 1 unless anchored), must stay under 10^7 steps; the bound is charged to the
 * instruction budget (1 instruction per 32 steps).  Plain find is linear and
 * free of these limits.
 */
#include <lauxlib.h>
#include <lualib.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/log.h"
#include "lua/rule_int.h"

#define HOOK_EVERY 1000
#define PAT_MAX_LEN 64
#define PAT_MAX_SUBJECT 4096
#define PAT_MAX_WORK 1e7
#define PAT_STEPS_PER_INSTR 32
#define ALLOC_BYTES_PER_INSTR 64
#define SCAN_BYTES_PER_INSTR 256
#define MOVE_MAX 1000000

fw_sbx *fw_sbx_of(lua_State *L)
{
    return *(fw_sbx **)lua_getextraspace(L);
}

/* Small blocks (tables, short strings, closures: most of what a rule call
 * allocates) come from per-state free lists by 16-byte size class, carved
 * from 64 KiB chunks that go back to malloc when the state closes: a rule
 * call's garbage is recycled without malloc/free.  Sanitizer builds use
 * malloc for every block, so that ASan still sees each one. */
#if defined(__SANITIZE_ADDRESS__)
#define SBX_POOL 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SBX_POOL 0
#endif
#endif
#ifndef SBX_POOL
#define SBX_POOL 1
#endif
#define POOL_CHUNK (64 * 1024)

typedef struct pool_block {
    struct pool_block *next;
} pool_block;

typedef struct pool_chunk {
    struct pool_chunk *next;
    max_align_t align[]; /* the blocks */
} pool_chunk;

static void *pool_get(fw_sbx *s, size_t n)
{
    size_t c = (n + 15) >> 4;
    pool_block *b = s->pool_free[c];
    if (b) {
        s->pool_free[c] = b->next;
        return b;
    }
    size_t sz = c << 4;
    if (s->pool_left < sz) {
        pool_chunk *ch = malloc(sizeof *ch + POOL_CHUNK);
        if (!ch)
            return NULL;
        ch->next = s->pool_chunks;
        s->pool_chunks = ch;
        s->pool_cur = (char *)ch->align;
        s->pool_left = POOL_CHUNK;
    }
    void *p = s->pool_cur;
    s->pool_cur += sz;
    s->pool_left -= sz;
    return p;
}

static void pool_put(fw_sbx *s, void *p, size_t n)
{
    size_t c = (n + 15) >> 4;
    pool_block *b = p;
    b->next = s->pool_free[c];
    s->pool_free[c] = b;
}

static void pool_release(fw_sbx *s)
{
    while (s->pool_chunks) {
        pool_chunk *ch = s->pool_chunks;
        s->pool_chunks = ch->next;
        free(ch);
    }
    memset(s->pool_free, 0, sizeof s->pool_free);
    s->pool_cur = NULL;
    s->pool_left = 0;
}

/* realloc through the pool for blocks of at most FW_SBX_POOL_MAX bytes. */
static void *block_realloc(fw_sbx *s, void *ptr, size_t old, size_t nsize)
{
    if (!SBX_POOL) {
        if (nsize == 0) { /* realloc(p, 0) need not free */
            free(ptr);
            return NULL;
        }
        return realloc(ptr, nsize);
    }
    int old_small = ptr && old <= FW_SBX_POOL_MAX, new_small = nsize <= FW_SBX_POOL_MAX;
    if (nsize == 0) {
        if (old_small)
            pool_put(s, ptr, old);
        else
            free(ptr);
        return NULL;
    }
    if (!ptr)
        return new_small ? pool_get(s, nsize) : malloc(nsize);
    if (old_small && new_small && ((old + 15) >> 4) == ((nsize + 15) >> 4))
        return ptr;
    if (!old_small && !new_small)
        return realloc(ptr, nsize);
    void *p = new_small ? pool_get(s, nsize) : malloc(nsize);
    if (!p) {
        /* Lua assumes a shrink never fails, and a small block must be the
         * pool's (freed by size): out of memory for a 64 KiB chunk here. */
        if (nsize <= old) {
            FW_ERROR("rules.out_of_memory", "what=pool_chunk");
            abort();
        }
        return NULL;
    }
    memcpy(p, ptr, old < nsize ? old : nsize);
    if (old_small)
        pool_put(s, ptr, old);
    else
        free(ptr);
    return p;
}

/* The counting allocator: the state cap, and the per-call growth cap.
 * Lua retries a refused allocation once after an emergency collection,
 * with the same arguments: when that retry succeeds, the refusal did not
 * trip the call (garbage, possibly other rules', made the room). */
static void *sbx_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    fw_sbx *s = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        block_realloc(s, ptr, old, 0);
        s->used -= old;
        return NULL;
    }
    if (nsize > old) {
        size_t grow = nsize - old;
        int retry = s->refused && s->refused_ptr == ptr && s->refused_osize == osize &&
                    s->refused_nsize == nsize;
        s->refused = 0;
        if (s->used + grow > s->limit ||
            (s->in_call && s->used + grow > s->call_base + s->call_limit)) {
            if (!retry)
                s->tripped_before = s->mem_tripped;
            s->mem_tripped = 1;
            s->refused = 1;
            s->refused_ptr = ptr;
            s->refused_osize = osize;
            s->refused_nsize = nsize;
            return NULL;
        }
        if (retry)
            s->mem_tripped = s->tripped_before;
        /* Bytes allocated cost instructions too: C functions and the VM's
         * concatenation copy whole strings in one "instruction". */
        s->instr_used += (int64_t)(grow / ALLOC_BYTES_PER_INSTR);
        if (s->instr_budget && s->instr_used > s->instr_budget) {
            s->instr_tripped = 1;
            return NULL;
        }
    }
    void *p = block_realloc(s, ptr, old, nsize);
    if (!p) {
        if (nsize <= old)
            return ptr; /* a shrink never fails: keep the bigger block */
        return NULL;
    }
    s->used = s->used - old + nsize;
    return p;
}

static int sbx_panic(lua_State *L)
{
    const char *msg = lua_tostring(L, -1);
    FW_ERROR("rules.lua_panic", "msg=%s", msg ? msg : "?");
    abort();
    return 0;
}

static void sbx_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    fw_sbx *s = fw_sbx_of(L);
    s->instr_used += s->hook_step;
    if (s->instr_tripped || s->instr_used > s->instr_budget) {
        s->instr_tripped = 1;
        if (s->hook_step != 1) {
            /* Raise again on the very next instruction, should the rule
             * catch this error with pcall. */
            s->hook_step = 1;
            lua_sethook(L, sbx_hook, LUA_MASKCOUNT, 1);
        }
        luaL_error(L, "instruction budget exceeded");
    }
}

void fw_sbx_charge(lua_State *L, int64_t n)
{
    fw_sbx *s = fw_sbx_of(L);
    s->instr_used += n;
    if (s->instr_used > s->instr_budget) {
        s->instr_tripped = 1;
        s->hook_step = 1;
        lua_sethook(L, sbx_hook, LUA_MASKCOUNT, 1);
        luaL_error(L, "instruction budget exceeded");
    }
}

json_t *fw_sbx_keep(lua_State *L, json_t *j)
{
    fw_sbx *s = fw_sbx_of(L);
    if (!j)
        return NULL;
    if (!s->keep)
        s->keep = json_array();
    json_array_append_new(s->keep, j);
    return j;
}

/* ---- read-only proxies ---- */

static int ro_newindex(lua_State *L)
{
    return luaL_error(L, "attempt to modify a read-only table");
}

/* The real table behind proxy at idx (pushes it), or 0 if not a proxy. */
static int ro_push_real(lua_State *L, int idx)
{
    if (!lua_getmetatable(L, idx))
        return 0;
    lua_pushliteral(L, "__newindex");
    lua_rawget(L, -2);
    int is_proxy = lua_tocfunction(L, -1) == ro_newindex;
    lua_pop(L, 1);
    if (!is_proxy) {
        lua_pop(L, 1);
        return 0;
    }
    lua_pushliteral(L, "__index");
    lua_rawget(L, -2);
    lua_remove(L, -2);
    return 1;
}

static int ro_len(lua_State *L)
{
    if (!ro_push_real(L, 1))
        return luaL_error(L, "not a read-only table");
    lua_pushinteger(L, (lua_Integer)lua_rawlen(L, -1));
    return 1;
}

static int ro_next(lua_State *L)
{
    lua_settop(L, 2);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 2);
    if (lua_next(L, -2))
        return 2;
    lua_pushnil(L);
    return 1;
}

static int ro_pairs(lua_State *L)
{
    if (!ro_push_real(L, 1))
        return luaL_error(L, "not a read-only table");
    lua_pushcclosure(L, ro_next, 1);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

void fw_sbx_readonly_nested(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    luaL_checkstack(L, 6, "read-only table too deep");
    /* Nested tables become proxies (in place: the table is ours). */
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -1) == LUA_TTABLE && !lua_getmetatable(L, -1)) {
            fw_sbx_push_readonly(L, -1);
            lua_pushvalue(L, -3); /* key */
            lua_insert(L, -2);
            lua_rawset(L, idx);
        } else if (lua_type(L, -1) == LUA_TTABLE) {
            lua_pop(L, 1); /* its metatable */
        }
        lua_pop(L, 1);
    }
}

void fw_sbx_push_readonly(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    luaL_checkstack(L, 6, "read-only table too deep");
    if (lua_type(L, idx) != LUA_TTABLE) {
        lua_pushvalue(L, idx);
        return;
    }
    fw_sbx_readonly_nested(L, idx);
    lua_newtable(L); /* proxy */
    lua_createtable(L, 0, 5);
    lua_pushvalue(L, idx);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, ro_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, ro_len);
    lua_setfield(L, -2, "__len");
    lua_pushcfunction(L, ro_pairs);
    lua_setfield(L, -2, "__pairs");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
}

int fw_sbx_push_real(lua_State *L, int idx)
{
    return ro_push_real(L, idx);
}

/* ---- the event: one shared table, a fresh overlay per call ----
 *
 * The event body is converted once per evaluation (per state) into a table
 * S whose nested tables are read-only proxies.  No rule ever gets S: each
 * call gets an empty table T whose metatable (one per S) has __index = S,
 * so reads are plain table lookups.  T behaves as the plain table it
 * stands for: the first write, pairs(v), next, rawget, getmetatable,
 * setmetatable, or any C code that walks T raw first copies S's fields
 * into T and removes the metatable ("settling"); from then on T is the
 * rule's own plain table.  So a rule's writes never reach S or another
 * rule, and a v kept past its call keeps reading its own event (T keeps
 * its metatable, which keeps S).  The metatable carries a private
 * light-userdata key no rule can make, which marks T as unsettled. */

static const char overlay_key = 0; /* overlay metatable[&overlay_key] = true */

/* ---- lazy S: fields converted on first read ----
 *
 * Converting the whole body cost ~12 us per voucher when the caches are
 * cold (every key and value becomes a Lua string, most of them new), while
 * the pack reads ~14 of ~21 voucher fields.  So for a flat body (no object
 * or array values, bounded size) S starts empty and holds a copy of the
 * body's fields in one userdata (the "blob": keys and string values in one
 * block) under a private key (&lazy_body_key, which no rule can make).
 * S's metatable (one per state) has __index = lazy_index, which finds the
 * key in the blob, converts that one field exactly as fw_push_json does
 * (money is already integer fen), stores it in S and returns it; later
 * reads of it, by any rule, are plain lookups in S.  A key the body lacks
 * (or holds as null) reads as nil and is looked up again on each read.
 *
 * Anything that walks S (fw_lazy_settle: pairs, next, rawget, a first
 * write, ...) first completes it (fw_sbx_lazy_complete): every field not yet
 * read is converted, then the private key and S's metatable go.  Otherwise
 * S stays lazy after its evaluation: the blob holds nothing outside the
 * state (no __gc), so a v kept past its call converts its own event's
 * fields from it, and the collector frees it with S.  Why a copy: the
 * engine used to convert the fields no rule read when the evaluation ended
 * (so that the JSON body, which the caller frees, could be released):
 * that conversion (interning ~7 keys and values) and the protected call
 * around it were ~6 % of an evaluation (bench_rules realistic, perf),
 * where copying the body costs one walk and one block; and leaving the JSON
 * body to the collector instead was slower still (bodies freed tens at a
 * time at a minor collection).
 *
 * fw_sbx_push_lazy_fill makes an S whose body is partial, with a function
 * that adds to it (ctx.voucher: the row's columns first; the stored body
 * when a rule reads a key they lack, `events` when it reads `events`):
 * called on a read of a key the body lacks, and with key NULL (add
 * everything) before S is completed, so pairs, next, rawget or a write see
 * every field.  It must add the same values whenever it runs (ctx.voucher's
 * events are bounded by the last event number read with the row), since S
 * may be read after its evaluation.  Such an S is not completed at the end
 * of the evaluation: that would do the work laziness avoids; the collector
 * drops its body. */

static const char lazy_body_key = 0; /* S[&lazy_body_key] = body userdata */

/* The two kinds of body userdata: an event's copy (blob) and a JSON body
 * with what adds to it (ctx.voucher). */
enum { LAZY_JSON = 1, LAZY_BLOB = 2 };

/* The body userdata of fw_sbx_push_lazy_fill: the body, and what adds to
 * it, with aux (held) and its argument bytes. */
typedef struct lazy_ud {
    int kind; /* LAZY_JSON */
    json_t *body;
    json_t *aux;
    fw_sbx_fill_fn fill; /* NULL: nothing to add */
    max_align_t arg[];
} lazy_ud;

/* The body userdata of an event's S (fw_sbx_push_lazy_event): the body's
 * non-null fields copied into one block (keys and string values in text).
 * It holds nothing outside the state, so it needs no __gc: a kept v reads
 * its fields from it for as long as S lives, and the collector frees it
 * with S. */
enum { BLOB_STR, BLOB_INT, BLOB_REAL, BLOB_TRUE, BLOB_FALSE };
typedef struct blob_field {
    uint32_t key, klen; /* in text */
    uint8_t type;
    uint8_t conv;  /* converted into S (read, prefilled or completed) */
    uint32_t slen; /* BLOB_STR: the value is text + s */
    union {
        uint32_t s;
        int64_t i;
        double d;
    } v;
} blob_field;
typedef struct lazy_blob {
    int kind; /* LAZY_BLOB */
    int n;
    blob_field f[]; /* then the text */
} lazy_blob;
#define BLOB_TEXT(b) ((const char *)((b)->f + (b)->n))
#define BLOB_MAX_KEY_BYTES 4096

/* __gc of the body userdata: release the references taken by
 * fw_sbx_push_lazy_fill (NULL once S was completed). */
static int lazy_body_gc(lua_State *L)
{
    lazy_ud *u = lua_touserdata(L, 1);
    if (u && u->kind == LAZY_JSON) {
        json_decref(u->body);
        json_decref(u->aux);
        u->body = u->aux = NULL;
    }
    return 0;
}

/* The body userdata of the lazy S at idx (its kind is its first int), or
 * NULL (not lazy, or completed). */
static void *lazy_get(lua_State *L, int idx)
{
    void *u = NULL;
    if (lua_rawgetp(L, idx, &lazy_body_key) == LUA_TUSERDATA)
        u = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (u && *(int *)u == LAZY_JSON && !((lazy_ud *)u)->body)
        return NULL;
    return u;
}

/* Push the Lua value of field j of the body as the eager conversion did:
 * nested tables become read-only proxies. */
static void lazy_push_field(lua_State *L, const json_t *j)
{
    fw_push_json(L, j);
    if (lua_type(L, -1) == LUA_TTABLE) {
        fw_sbx_push_readonly(L, -1);
        lua_remove(L, -2);
    }
}

static blob_field *blob_find(lazy_blob *b, const char *k, size_t kl)
{
    const char *text = BLOB_TEXT(b);
    for (int i = 0; i < b->n; i++)
        if (b->f[i].klen == kl && memcmp(text + b->f[i].key, k, kl) == 0)
            return &b->f[i];
    return NULL;
}

/* Push the value of a blob field, as fw_push_json would have. */
static void blob_push(lua_State *L, const lazy_blob *b, const blob_field *f)
{
    switch (f->type) {
    case BLOB_STR:
        lua_pushlstring(L, BLOB_TEXT(b) + f->v.s, f->slen);
        break;
    case BLOB_INT:
        lua_pushinteger(L, (lua_Integer)f->v.i);
        break;
    case BLOB_REAL:
        lua_pushnumber(L, f->v.d);
        break;
    default:
        lua_pushboolean(L, f->type == BLOB_TRUE);
        break;
    }
}

/* S's __index(S, k): convert field k on its first read. */
static int lazy_index(lua_State *L)
{
    size_t kl;
    if (lua_type(L, 2) != LUA_TSTRING)
        return 0;
    const char *k = lua_tolstring(L, 2, &kl);
    void *p = lazy_get(L, 1);
    if (!p)
        return 0;
    if (*(int *)p == LAZY_BLOB) {
        blob_field *f = blob_find(p, k, kl);
        if (!f)
            return 0;
        blob_push(L, p, f);
        f->conv = 1;
    } else {
        lazy_ud *u = p;
        const json_t *j = json_object_getn(u->body, k, kl);
        if (!j && u->fill) {
            u->fill(L, u->arg, u->aux, u->body, k);
            j = json_object_getn(u->body, k, kl);
        }
        if (!j || json_is_null(j))
            return 0;
        lazy_push_field(L, j);
    }
    lua_pushvalue(L, 2);
    lua_pushvalue(L, -2);
    lua_rawset(L, 1);
    return 1;
}

void fw_sbx_lazy_complete(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    void *p = lazy_get(L, idx);
    if (!p)
        return;
    luaL_checkstack(L, 8, "event");
    if (*(int *)p == LAZY_BLOB) {
        lazy_blob *b = p;
        const char *text = BLOB_TEXT(b);
        for (int i = 0; i < b->n; i++) {
            b->f[i].conv = 1;
            lua_pushlstring(L, text + b->f[i].key, b->f[i].klen);
            lua_pushvalue(L, -1);
            if (lua_rawget(L, idx) != LUA_TNIL) {
                lua_pop(L, 2);
                continue;
            }
            lua_pop(L, 1);
            blob_push(L, b, &b->f[i]);
            lua_rawset(L, idx);
        }
        lua_pushnil(L);
        lua_rawsetp(L, idx, &lazy_body_key);
        lua_pushnil(L);
        lua_setmetatable(L, idx);
        return;
    }
    lazy_ud *u = p;
    if (u->fill) {
        u->fill(L, u->arg, u->aux, u->body, NULL);
        u->fill = NULL;
    }
    json_t *body = u->body;
    const char *k;
    json_t *j;
    json_object_foreach(body, k, j)
    {
        if (json_is_null(j))
            continue;
        lua_pushlstring(L, k, strlen(k)); /* key (made once: kept for the rawset) */
        lua_pushvalue(L, -1);
        if (lua_rawget(L, idx) != LUA_TNIL) {
            lua_pop(L, 2);
            continue;
        }
        lua_pop(L, 1);
        lazy_push_field(L, j);
        lua_rawset(L, idx);
    }
    lua_pushnil(L);
    lua_rawsetp(L, idx, &lazy_body_key);
    lua_pushnil(L);
    lua_setmetatable(L, idx);
    json_decref(u->body);
    json_decref(u->aux);
    u->body = u->aux = NULL;
}

void *fw_sbx_push_lazy_fill(lua_State *L, json_t *body, json_t *aux, fw_sbx_fill_fn fill,
                            size_t arg_len)
{
    fw_sbx *s = fw_sbx_of(L);
    luaL_checkstack(L, 4, "event");
    lua_createtable(L, 0, (int)json_object_size(body) + 1); /* S */
    lazy_ud *u = lua_newuserdatauv(L, sizeof *u + arg_len, 0);
    memset(u, 0, sizeof *u + arg_len);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->lazy_body_mt_ref);
    lua_setmetatable(L, -2);
    u->kind = LAZY_JSON;
    u->body = json_incref(body);
    u->aux = json_incref(aux);
    u->fill = fill;
    lua_rawsetp(L, -2, &lazy_body_key);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->lazy_mt_ref);
    lua_setmetatable(L, -2);
    return u->arg;
}

int fw_sbx_push_lazy_event(lua_State *L, const json_t *body)
{
    /* One walk to size the copy, see that the body is flat and small and
     * note its fields; then the copy from the notes (jansson's iteration
     * and strlen were a third of this function). */
    if (!json_is_object(body) || json_object_size(body) > FW_SBX_LAZY_MAX_FIELDS)
        return 0;
    struct {
        const char *k;
        size_t kl, sl; /* sl: a string's length */
        const json_t *j;
    } note[FW_SBX_LAZY_MAX_FIELDS];
    size_t n = 0, kbytes = 0, sbytes = 0;
    const char *k;
    json_t *j;
    json_object_foreach((json_t *)body, k, j)
    {
        if (json_is_object(j) || json_is_array(j))
            return 0;
        if (json_is_null(j))
            continue;
        if (n == FW_SBX_LAZY_MAX_FIELDS)
            return 0;
        note[n].k = k;
        note[n].kl = strlen(k);
        note[n].j = j;
        note[n].sl = json_is_string(j) ? json_string_length(j) : 0;
        kbytes += note[n].kl;
        sbytes += note[n].sl;
        n++;
    }
    if (sbytes > FW_SBX_LAZY_MAX_BYTES || kbytes > BLOB_MAX_KEY_BYTES)
        return 0;
    fw_sbx *s = fw_sbx_of(L);
    luaL_checkstack(L, 4, "event");
    lua_createtable(L, 0, (int)n + 1); /* S */
    lazy_blob *b = lua_newuserdatauv(L, sizeof *b + n * sizeof(blob_field) + kbytes + sbytes, 0);
    b->kind = LAZY_BLOB;
    b->n = (int)n;
    char *text = (char *)(b->f + n);
    uint32_t off = 0;
    for (size_t i = 0; i < n; i++) {
        blob_field *f = &b->f[i];
        size_t kl = note[i].kl;
        j = (json_t *)note[i].j;
        memcpy(text + off, note[i].k, kl);
        f->key = off;
        f->klen = (uint32_t)kl;
        off += (uint32_t)kl;
        f->slen = 0;
        f->conv = 0;
        switch (json_typeof(j)) {
        case JSON_STRING:
            f->type = BLOB_STR;
            f->slen = (uint32_t)note[i].sl;
            memcpy(text + off, json_string_value(j), f->slen);
            f->v.s = off;
            off += f->slen;
            break;
        case JSON_INTEGER:
            f->type = BLOB_INT;
            f->v.i = (int64_t)json_integer_value(j);
            break;
        case JSON_REAL:
            f->type = BLOB_REAL;
            f->v.d = json_real_value(j);
            break;
        default:
            f->type = json_is_true(j) ? BLOB_TRUE : BLOB_FALSE;
            break;
        }
    }
    lua_rawsetp(L, -2, &lazy_body_key);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->lazy_mt_ref);
    lua_setmetatable(L, -2);
    return 1;
}

int fw_sbx_push_lazy_body(lua_State *L, int idx)
{
    return lua_rawgetp(L, idx, &lazy_body_key);
}

/* Push the Lua string of the key of b's field j, from the state's key
 * cache kt (kt[j + 1]: the key at that position in an earlier blob; the
 * events of a state have the same fields in the same order, so it is
 * almost always there, and pushing it costs no hashing or interning). */
static void blob_push_key(lua_State *L, int kt, const lazy_blob *b, int j)
{
    const char *k = BLOB_TEXT(b) + b->f[j].key;
    size_t kl = b->f[j].klen, cl;
    if (lua_rawgeti(L, kt, j + 1) == LUA_TSTRING) {
        const char *c = lua_tolstring(L, -1, &cl);
        if (cl == kl && memcmp(c, k, kl) == 0)
            return;
    }
    lua_pop(L, 1);
    lua_pushlstring(L, k, kl);
    lua_pushvalue(L, -1);
    lua_rawseti(L, kt, j + 1);
}

void fw_sbx_lazy_prefill(lua_State *L, int idx, int prev)
{
    idx = lua_absindex(L, idx);
    prev = lua_absindex(L, prev);
    void *p = lazy_get(L, idx);
    if (!p || *(int *)p != LAZY_BLOB)
        return;
    lazy_blob *b = p;
    luaL_checkstack(L, 6, "event");
    if (lua_type(L, prev) == LUA_TUSERDATA) {
        /* The previous event's blob: its fields marked converted are the
         * keys its S holds (lazy_index, this loop and fw_sbx_lazy_complete
         * mark them, nothing else writes into S), found here at the same
         * position in the new blob or else by a scan. */
        const lazy_blob *pb = lua_touserdata(L, prev);
        if (!pb || pb->kind != LAZY_BLOB)
            return;
        fw_sbx *s = fw_sbx_of(L);
        lua_rawgeti(L, LUA_REGISTRYINDEX, s->lazy_keys_ref);
        int kt = lua_gettop(L);
        const char *ptext = BLOB_TEXT(pb), *text = BLOB_TEXT(b);
        for (int i = 0; i < pb->n; i++) {
            const blob_field *pf = &pb->f[i];
            if (!pf->conv)
                continue;
            blob_field *f = NULL;
            if (i < b->n && b->f[i].klen == pf->klen &&
                memcmp(text + b->f[i].key, ptext + pf->key, pf->klen) == 0)
                f = &b->f[i];
            else if (!(f = blob_find(b, ptext + pf->key, pf->klen)))
                continue;
            blob_push_key(L, kt, b, (int)(f - b->f));
            blob_push(L, b, f);
            lua_rawset(L, idx);
            f->conv = 1;
        }
        lua_pop(L, 1);
        return;
    }
    lua_pushnil(L);
    while (lua_next(L, prev)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            continue; /* the private key of a lazy S */
        size_t kl;
        const char *k = lua_tolstring(L, -1, &kl);
        blob_field *f = blob_find(b, k, kl);
        if (!f)
            continue;
        lua_pushvalue(L, -1);
        blob_push(L, b, f);
        lua_rawset(L, idx);
        f->conv = 1;
    }
}

/* Whether the value at idx is an unsettled overlay (T). */
static int overlay_is(lua_State *L, int idx)
{
    if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx))
        return 0;
    int is = lua_rawgetp(L, -1, &overlay_key) != LUA_TNIL;
    lua_pop(L, 2);
    return is;
}

void fw_lazy_settle(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    luaL_checkstack(L, 6, "event");
    if (!overlay_is(L, idx))
        return;
    int top = lua_gettop(L);
    lua_getmetatable(L, idx);
    lua_pushliteral(L, "__index");
    if (lua_rawget(L, -2) == LUA_TTABLE) {
        int src = lua_gettop(L);
        fw_sbx_lazy_complete(L, src);
        lua_pushnil(L);
        while (lua_next(L, src)) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, idx);
        }
    }
    lua_settop(L, top);
    lua_pushnil(L);
    lua_setmetatable(L, idx);
}

/* __newindex(T, k, v): T becomes the rule's own table, then takes v. */
static int ev_newindex(lua_State *L)
{
    lua_settop(L, 3);
    fw_lazy_settle(L, 1);
    lua_rawset(L, 1);
    return 0;
}

static int raw_next(lua_State *L)
{
    lua_settop(L, 2);
    if (lua_next(L, 1))
        return 2;
    lua_pushnil(L);
    return 1;
}

static int ev_pairs(lua_State *L)
{
    fw_lazy_settle(L, 1);
    lua_pushcfunction(L, raw_next);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

void fw_sbx_push_overlay_mt(lua_State *L, int src)
{
    src = lua_absindex(L, src);
    /* keys from the state's array (made once): lua_setfield would look
     * each C string up first (made once per evaluation and ctx table) */
    lua_createtable(L, 0, 4);
    lua_rawgeti(L, LUA_REGISTRYINDEX, fw_sbx_of(L)->mtkeys_ref);
    lua_rawgeti(L, -1, 1);
    lua_pushvalue(L, src);
    lua_rawset(L, -4);
    lua_rawgeti(L, -1, 2);
    lua_pushcfunction(L, ev_newindex);
    lua_rawset(L, -4);
    lua_rawgeti(L, -1, 3);
    lua_pushcfunction(L, ev_pairs);
    lua_rawset(L, -4);
    lua_pop(L, 1);
    lua_pushboolean(L, 1);
    lua_rawsetp(L, -2, &overlay_key);
}

void fw_sbx_push_overlay(lua_State *L, int mt)
{
    mt = lua_absindex(L, mt);
    lua_createtable(L, 0, 0);
    lua_pushvalue(L, mt);
    lua_setmetatable(L, -2);
}

/* next, rawget, getmetatable: see the settled (plain) table.
 * upvalue 1: the real function. */
static int settle_first(lua_State *L)
{
    fw_lazy_settle(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* ---- guarded patterns ---- */

static int has_specials(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strchr("^$*+?.([%-", p[i]))
            return 1;
    return 0;
}

/* Worst-case number of matcher steps for pattern p on a subject of n bytes:
 * each start position times, per quantified item, the lengths it may try. */
static double pattern_work(const char *p, size_t pl, size_t n)
{
    double nn = (double)n + 1, f = 1;
    size_t i = 0;
    int anchored = 0;
    if (pl && p[0] == '^') {
        anchored = 1;
        i = 1;
    }
    while (i < pl) {
        char c = p[i];
        if (c == '(' || c == ')' || (c == '$' && i + 1 == pl)) {
            i++;
            continue;
        }
        if (c == '%' && i + 1 < pl) {
            char d = p[i + 1];
            if (d == 'b') { /* %bxy scans: count it like a quantifier */
                f *= nn;
                i += 4;
                continue;
            }
            if (d >= '0' && d <= '9') { /* back-reference: a scan */
                f *= nn;
                i += 2;
                continue;
            }
            if (d == 'f') { /* frontier: one set test */
                i += 2;
                if (i < pl && p[i] == '[') {
                    i++;
                    if (i < pl && p[i] == '^')
                        i++;
                    do {
                        if (i >= pl)
                            break;
                        if (p[i++] == '%')
                            i++;
                    } while (i < pl && p[i] != ']');
                    i++;
                }
                continue;
            }
            i += 2;
        } else if (c == '[') {
            i++;
            if (i < pl && p[i] == '^')
                i++;
            do {
                if (i >= pl)
                    break;
                if (p[i++] == '%')
                    i++;
            } while (i < pl && p[i] != ']');
            i++;
        } else {
            i++;
        }
        if (i < pl) {
            if (p[i] == '*' || p[i] == '+' || p[i] == '-') {
                f *= nn;
                i++;
            } else if (p[i] == '?') {
                f *= 2;
                i++;
            }
        }
    }
    return (anchored ? 1 : nn) * f;
}

/* upvalue 1: the real string function; upvalue 2: 1 for find (plain ok). */
static int guarded_pattern(lua_State *L)
{
    size_t n, pl;
    luaL_checklstring(L, 1, &n);
    const char *p = luaL_checklstring(L, 2, &pl);
    int is_find = (int)lua_tointeger(L, lua_upvalueindex(2));
    if (is_find && (lua_toboolean(L, 4) || !has_specials(p, pl))) {
        fw_sbx_charge(L, (int64_t)(n / 256));
    } else {
        if (pl > PAT_MAX_LEN)
            return luaL_error(L, "pattern longer than %d bytes", PAT_MAX_LEN);
        if (n > PAT_MAX_SUBJECT)
            return luaL_error(L,
                              "subject of %d bytes is too long for a pattern (max %d; use "
                              "string.find(s, w, 1, true) or ctx.contains)",
                              (int)n, PAT_MAX_SUBJECT);
        double work = pattern_work(p, pl, n);
        if (work > PAT_MAX_WORK)
            return luaL_error(L, "pattern '%s' too complex for a subject of %d bytes", p, (int)n);
        fw_sbx_charge(L, (int64_t)(work / PAT_STEPS_PER_INSTR));
    }
    int nargs = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, nargs, LUA_MULTRET);
    return lua_gettop(L);
}

/* Linear scans in C (utf8.len, tonumber on a string): charge the length of
 * the first string argument.  upvalue 1: the real function. */
static int charged_scan(lua_State *L)
{
    if (lua_type(L, 1) == LUA_TSTRING)
        fw_sbx_charge(L, (int64_t)(lua_rawlen(L, 1) / SCAN_BYTES_PER_INSTR));
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* table.move loops in C over the whole range, even over nils. */
static int safe_move(lua_State *L)
{
    lua_Integer f = luaL_checkinteger(L, 2), e = luaL_checkinteger(L, 3);
    if (e >= f) {
        if (e - f >= MOVE_MAX)
            return luaL_error(L, "table.move of more than %d elements", MOVE_MAX);
        fw_sbx_charge(L, (int64_t)(e - f) / 4);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* __newindex of the rules' environments: every global a rule writes is a
 * new key of its (emptied) environment, so this sees each call that wrote
 * one, and run_call empties the environment only after those.  No raw
 * write reaches an environment: rawset is not in the sandbox and no C
 * function writes raw into a table a rule hands it. */
static int env_newindex(lua_State *L)
{
    fw_sbx_of(L)->env_written = 1;
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 0;
}

static int safe_setmetatable(lua_State *L)
{
    fw_lazy_settle(L, 1);
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        lua_rawget(L, 2);
        if (!lua_isnil(L, -1))
            return luaL_error(L, "__gc metamethods are not allowed in rules");
        lua_pop(L, 1);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* Copy the named fields of the table at src into the table at dst. */
static void copy_fields(lua_State *L, int src, int dst, const char *const *names)
{
    for (; *names; names++) {
        lua_getfield(L, src, *names);
        lua_setfield(L, dst, *names);
    }
}

static int sbx_setup(lua_State *L)
{
    fw_sbx *s = fw_sbx_of(L);
    static const char *const base_names[] = {
        "assert",   "error",    "ipairs",       "next",     "pairs",  "pcall",
        "xpcall",   "rawequal", "rawget",       "rawlen",   "select", "tonumber",
        "tostring", "type",     "getmetatable", "_VERSION", NULL};
    static const char *const string_names[] = {"byte",    "char", "format", "len", "lower",
                                               "reverse", "sub",  "upper",  NULL};
    static const char *const table_names[] = {"concat", "insert", "move",   "pack",
                                              "remove", "sort",   "unpack", NULL};
    static const char *const math_names[] = {
        "abs", "ceil",       "cos",  "deg",        "exp",  "floor", "fmod", "huge", "log",
        "max", "maxinteger", "min",  "mininteger", "modf", "pi",    "rad",  "sin",  "sqrt",
        "tan", "tointeger",  "type", "ult",        "acos", "asin",  "atan", NULL};
    static const char *const utf8_names[] = {"char", "charpattern", "codes", "codepoint",
                                             "len",  "offset",      NULL};
    static const char *const pattern_names[] = {"find", "match", "gmatch", "gsub"};

    luaL_requiref(L, "_G", luaopen_base, 0);       /* 1 */
    luaL_requiref(L, "string", luaopen_string, 0); /* 2 */
    luaL_requiref(L, "table", luaopen_table, 0);   /* 3 */
    luaL_requiref(L, "math", luaopen_math, 0);     /* 4 */
    luaL_requiref(L, "utf8", luaopen_utf8, 0);     /* 5 */
    lua_newtable(L);                               /* 6: G */
    copy_fields(L, 1, 6, base_names);
    lua_getfield(L, 1, "setmetatable");
    lua_pushcclosure(L, safe_setmetatable, 1);
    lua_setfield(L, 6, "setmetatable");
    lua_getfield(L, 1, "tonumber");
    lua_pushcclosure(L, charged_scan, 1);
    lua_setfield(L, 6, "tonumber");
    static const char *const settle_names[] = {"next", "rawget", "getmetatable", NULL};
    for (const char *const *n = settle_names; *n; n++) {
        lua_getfield(L, 1, *n);
        lua_pushcclosure(L, settle_first, 1);
        lua_setfield(L, 6, *n);
    }

    lua_newtable(L); /* 7: sanitized string table */
    copy_fields(L, 2, 7, string_names);
    for (int i = 0; i < 4; i++) {
        lua_getfield(L, 2, pattern_names[i]);
        lua_pushinteger(L, i == 0);
        lua_pushcclosure(L, guarded_pattern, 2);
        lua_setfield(L, 7, pattern_names[i]);
    }
    /* Strings index the sanitized table; getmetatable("") gives false. */
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushvalue(L, 7);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);
    fw_sbx_push_readonly(L, 7);
    lua_setfield(L, 6, "string");

    lua_newtable(L);
    copy_fields(L, 3, lua_gettop(L), table_names);
    lua_getfield(L, 3, "move");
    lua_pushcclosure(L, safe_move, 1);
    lua_setfield(L, -2, "move");
    fw_sbx_push_readonly(L, -1);
    lua_setfield(L, 6, "table");
    lua_pop(L, 1);
    lua_newtable(L);
    copy_fields(L, 4, lua_gettop(L), math_names);
    fw_sbx_push_readonly(L, -1);
    lua_setfield(L, 6, "math");
    lua_pop(L, 1);
    lua_newtable(L);
    copy_fields(L, 5, lua_gettop(L), utf8_names);
    lua_getfield(L, 5, "len");
    lua_pushcclosure(L, charged_scan, 1);
    lua_setfield(L, -2, "len");
    fw_sbx_push_readonly(L, -1);
    lua_setfield(L, 6, "utf8");
    lua_pop(L, 1);

    /* The real globals stay unreachable (every chunk gets its own _ENV),
     * but empty them anyway. */
    lua_pushglobaltable(L);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_pushnil(L);
        lua_rawset(L, -4);
    }
    lua_pop(L, 1);

    lua_pushvalue(L, 6);
    s->genv_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_createtable(L, 0, 3); /* env metatable */
    lua_pushvalue(L, 6);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, env_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    s->envmt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_createtable(L, 0, 1); /* metatable of a lazy S */
    lua_pushcfunction(L, lazy_index);
    lua_setfield(L, -2, "__index");
    s->lazy_mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_createtable(L, 0, 2); /* metatable of the body userdata */
    lua_pushcfunction(L, lazy_body_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    s->lazy_body_mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_createtable(L, 32, 0); /* keys of the events' fields by position */
    s->lazy_keys_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_createtable(L, 3, 0); /* keys of an overlay's metatable */
    lua_pushliteral(L, "__index");
    lua_rawseti(L, -2, 1);
    lua_pushliteral(L, "__newindex");
    lua_rawseti(L, -2, 2);
    lua_pushliteral(L, "__pairs");
    lua_rawseti(L, -2, 3);
    s->mtkeys_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

void fw_sbx_push_env(lua_State *L)
{
    fw_sbx *s = fw_sbx_of(L);
    lua_newtable(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->envmt_ref);
    lua_setmetatable(L, -2);
}

void fw_sbx_clear_env(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_pushnil(L);
        lua_rawset(L, idx);
    }
}

int fw_sbx_open(fw_sbx *s, size_t mem_limit, int64_t instr_budget, void *owner)
{
    memset(s, 0, sizeof *s);
    s->limit = mem_limit;
    s->call_limit = mem_limit;
    s->instr_budget = instr_budget;
    s->owner = owner;
    s->eval_ref = LUA_NOREF;
    s->L = lua_newstate(sbx_alloc, s);
    if (!s->L)
        return -1;
    *(fw_sbx **)lua_getextraspace(s->L) = s;
    lua_atpanic(s->L, sbx_panic);
    lua_gc(s->L, LUA_GCGEN, 0, 0);
    lua_pushcfunction(s->L, sbx_setup);
    if (lua_pcall(s->L, 0, 0, 0) != LUA_OK) {
        FW_ERROR("rules.sandbox_setup", "msg=%s", lua_tostring(s->L, -1));
        fw_sbx_close(s);
        return -1;
    }
    return 0;
}

void fw_sbx_close(fw_sbx *s)
{
    if (s->L)
        lua_close(s->L);
    s->L = NULL;
    pool_release(s);
    json_decref(s->keep);
    s->keep = NULL;
}

fw_sbx *fw_sbx_new(size_t call_limit, size_t state_limit, int64_t instr_budget)
{
    fw_sbx *s = malloc(sizeof *s);
    if (!s)
        return NULL;
    if (fw_sbx_open(s, state_limit, instr_budget, NULL) != 0) {
        free(s);
        return NULL;
    }
    s->call_limit = call_limit;
    s->refs = 1;
    return s;
}

fw_sbx *fw_sbx_ref(fw_sbx *s)
{
    if (s)
        s->refs++;
    return s;
}

void fw_sbx_unref(fw_sbx *s)
{
    if (!s || --s->refs > 0)
        return;
    fw_sbx_close(s);
    free(s);
}

int fw_sbx_call(fw_sbx *s, lua_CFunction f, void *ud, char *err, int errlen)
{
    lua_State *L = s->L;
    lua_settop(L, 0);
    s->instr_used = 0;
    s->instr_tripped = 0;
    s->mem_tripped = 0;
    s->refused = 0;
    s->call_base = s->used;
    s->env_written = 0;
    s->in_call = 1;
    s->hook_step = HOOK_EVERY;
    lua_sethook(L, sbx_hook, LUA_MASKCOUNT, HOOK_EVERY);
    lua_pushcfunction(L, f);
    lua_pushlightuserdata(L, ud);
    int rc = lua_pcall(L, 1, 0, 0);
    lua_sethook(L, NULL, 0, 0);
    s->in_call = 0;
    int failed = rc != LUA_OK || s->instr_tripped || s->mem_tripped;
    if (failed && err && errlen > 0) {
        if (s->instr_tripped)
            snprintf(err, (size_t)errlen, "instruction budget exceeded");
        else if (s->mem_tripped)
            snprintf(err, (size_t)errlen, "memory budget exceeded");
        else if (lua_type(L, -1) == LUA_TSTRING)
            snprintf(err, (size_t)errlen, "%s", lua_tostring(L, -1));
        else
            snprintf(err, (size_t)errlen, "error object is a %s value", luaL_typename(L, -1));
    }
    lua_settop(L, 0);
    json_decref(s->keep);
    s->keep = NULL;
    /* After a memory trip, give its garbage back at once.  Not after other
     * failures: in the shared state a full collection costs ~1 ms, and a
     * rule failing on every message must not cost the pipeline that. */
    if (s->mem_tripped)
        lua_gc(L, LUA_GCCOLLECT);
    return failed ? -1 : 0;
}

/* ---- JSON <-> Lua ---- */

void fw_push_json(lua_State *L, const json_t *j)
{
    luaL_checkstack(L, 4, "JSON nested too deeply");
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *v;
        lua_createtable(L, 0, (int)json_object_size(j));
        json_object_foreach((json_t *)j, k, v)
        {
            if (json_is_null(v))
                continue;
            /* pushlstring + rawset: lua_setfield would first look the key's
             * address up in Lua's C-string cache (a miss: each body has its
             * own keys) and strcmp its entries */
            lua_pushlstring(L, k, strlen(k));
            fw_push_json(L, v);
            lua_rawset(L, -3);
        }
        break;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        lua_createtable(L, (int)n, 0);
        for (size_t i = 0; i < n; i++) {
            fw_push_json(L, json_array_get(j, i));
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        break;
    }
    case JSON_STRING:
        lua_pushlstring(L, json_string_value(j), json_string_length(j));
        break;
    case JSON_INTEGER:
        lua_pushinteger(L, (lua_Integer)json_integer_value(j));
        break;
    case JSON_REAL:
        /* Not money: the decoder turned every money field into integer fen;
         * a real here is some other number an upstream system sent. */
        lua_pushnumber(L, json_real_value(j));
        break;
    case JSON_TRUE:
        lua_pushboolean(L, 1);
        break;
    case JSON_FALSE:
        lua_pushboolean(L, 0);
        break;
    default:
        lua_pushnil(L);
        break;
    }
}

static void attach(json_t *parent, const char *key, json_t *v)
{
    if (json_is_array(parent))
        json_array_append_new(parent, v);
    else
        json_object_set_new(parent, key, v);
}

void fw_lua_to_json(lua_State *L, int idx, json_t *parent, const char *key, int empty_array,
                    int depth)
{
    idx = lua_absindex(L, idx);
    if (depth > 16)
        luaL_error(L, "table nested too deeply");
    luaL_checkstack(L, 6, "table nested too deeply");
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        return;
    case LUA_TBOOLEAN:
        attach(parent, key, json_boolean(lua_toboolean(L, idx)));
        return;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            attach(parent, key, json_integer((json_int_t)lua_tointeger(L, idx)));
        } else {
            double d = lua_tonumber(L, idx);
            if (!isfinite(d))
                luaL_error(L, "number is not finite");
            attach(parent, key, json_real(d));
        }
        return;
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        json_t *v = json_stringn(s, len);
        if (!v)
            luaL_error(L, "string is not valid UTF-8");
        attach(parent, key, v);
        return;
    }
    case LUA_TTABLE:
        break;
    default:
        luaL_error(L, "cannot convert a %s value to JSON", luaL_typename(L, idx));
        return;
    }
    fw_lazy_settle(L, idx);
    int pushed = ro_push_real(L, idx);
    if (pushed)
        idx = lua_absindex(L, -1);
    size_t n = lua_rawlen(L, idx), count = 0;
    int all_int = 1;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        count++;
        if (!lua_isinteger(L, -2) || lua_tointeger(L, -2) < 1 || (size_t)lua_tointeger(L, -2) > n)
            all_int = 0;
        lua_pop(L, 1);
    }
    if (all_int && count == n && (n > 0 || empty_array)) {
        json_t *a = json_array();
        attach(parent, key, a);
        for (size_t i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, (lua_Integer)i);
            if (lua_isnil(L, -1))
                json_array_append_new(a, json_null());
            else
                fw_lua_to_json(L, -1, a, NULL, empty_array, depth + 1);
            lua_pop(L, 1);
        }
    } else {
        json_t *o = json_object();
        attach(parent, key, o);
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            char kbuf[32];
            const char *k;
            if (lua_type(L, -2) == LUA_TSTRING) {
                k = lua_tostring(L, -2);
            } else if (lua_isinteger(L, -2)) {
                snprintf(kbuf, sizeof kbuf, "%lld", (long long)lua_tointeger(L, -2));
                k = kbuf;
            } else {
                luaL_error(L, "table key must be a string, not a %s", luaL_typename(L, -2));
                return;
            }
            fw_lua_to_json(L, -1, o, k, empty_array, depth + 1);
            lua_pop(L, 1);
        }
    }
    if (pushed)
        lua_pop(L, 1);
}
