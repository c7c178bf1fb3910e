/*
 * rule_int.h - internals shared by the files of lua/ (not a public API).
 *
 *   sandbox.c  the sandboxed lua_State (one per generation): counting allocator
 *              (per-call and state memory caps),
 *              count hook (instruction budget), allow-listed libraries,
 *              guarded pattern functions, read-only proxies, JSON <-> Lua.
 *   etc.c      calendar and lists from etc/, GB 11643 ID check.
 *   ctx.c      the `ctx` table handed to check(v, ctx).
 *   rule.c     one rule: load + validate, params, evaluate, hits.
 *   when.c     a rule's `when`: conditions on the event's fields tested in C
 *              before the call.
 *   rules.c    the rule set (public rules.h): dispatch, reload, version, metrics.
 *   rules_test.c  test cases runner and the `rules check|test` CLI.
 */
#ifndef FW_RULE_INT_H
#define FW_RULE_INT_H

#include <jansson.h>
#include <lua.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "daemon/config.h"
#include "daemon/event.h"
#include "daemon/hit.h"
#include "daemon/ledger.h"
#include "daemon/metrics.h"

/* ---- sandbox.c ---- */

#define FW_SBX_POOL_MAX 256 /* blocks up to this size come from the state's pool */

typedef struct fw_sbx {
    lua_State *L;
    int refs;                     /* fw_sbx_new: holders (the rules living in it) */
    size_t used, limit;           /* bytes held by the whole state, its cap */
    size_t call_base, call_limit; /* during a call: used may not pass base + limit */
    int in_call;
    int mem_tripped;             /* an allocation was refused during this call */
    int refused, tripped_before; /* the last allocation was refused (see sbx_alloc) */
    void *refused_ptr;
    size_t refused_osize, refused_nsize;
    int64_t instr_used, instr_budget;
    int instr_tripped;
    int hook_step;   /* the current hook count */
    int env_written; /* the current call wrote a global (env_newindex, sandbox.c) */
    int genv_ref;    /* registry: the sandbox globals (never handed out) */
    int envmt_ref;   /* registry: metatable of the rules' environments */
    int lazy_mt_ref, lazy_body_mt_ref; /* registry: metatables of a lazy event (sandbox.c) */
    int mtkeys_ref;                    /* registry: {"__index", "__newindex", "__pairs"} */
    int lazy_keys_ref;                 /* registry: the lazy events' keys by position */
    void *owner;  /* the fw_rule being called (NULL: the engine, a test file) */
    json_t *keep; /* json values to release after the current call */
    void *pool_free[FW_SBX_POOL_MAX / 16 + 1]; /* free blocks by 16-byte class */
    void *pool_chunks;                         /* chunks to free at close */
    char *pool_cur;                            /* the rest of the newest chunk */
    size_t pool_left;
    uint64_t eval_serial; /* evaluation whose event eval_ref holds (0: none) */
    int eval_ref;         /* registry: that evaluation's shared event values */
    int eval_failed;      /* building them failed: eval_err says why */
    char eval_err[200];
} fw_sbx;

/* Open a sandboxed state in *s (one owner: a test file, with one cap for
 * the state and a call).  0 or -1. */
int fw_sbx_open(fw_sbx *s, size_t mem_limit, int64_t instr_budget, void *owner);
void fw_sbx_close(fw_sbx *s);
/* A reference-counted state for the rules of a generation: each call may
 * grow it by call_limit bytes, the whole state is capped at state_limit. */
fw_sbx *fw_sbx_new(size_t call_limit, size_t state_limit, int64_t instr_budget);
fw_sbx *fw_sbx_ref(fw_sbx *s);
void fw_sbx_unref(fw_sbx *s);
fw_sbx *fw_sbx_of(lua_State *L);

/* Run f(L) (with ud as a light userdata at index 1) under the budgets.
 * Returns 0, or -1 with the reason in err ("instruction budget exceeded",
 * "memory budget exceeded", or the Lua error text with file:line). */
int fw_sbx_call(fw_sbx *s, lua_CFunction f, void *ud, char *err, int errlen);

/* Push a new environment table whose reads fall through to the sandbox
 * globals (writes stay in it). */
void fw_sbx_push_env(lua_State *L);
/* Remove every key of the (environment) table at idx. */
void fw_sbx_clear_env(lua_State *L, int idx);
/* Replace value at idx with a read-only proxy (deep for nested tables). */
void fw_sbx_push_readonly(lua_State *L, int idx);
/* Make the nested tables of the table at idx read-only proxies (in place). */
void fw_sbx_readonly_nested(lua_State *L, int idx);
/* If idx is a read-only proxy push the real table and return 1, else 0. */
int fw_sbx_push_real(lua_State *L, int idx);
/* Charge n instructions to the running call (C work done for the rule). */
void fw_sbx_charge(lua_State *L, int64_t n);
/* Hold j (stolen) until the current call ends. */
json_t *fw_sbx_keep(lua_State *L, json_t *j);

/* JSON -> Lua (objects -> tables, null -> nil). */
void fw_push_json(lua_State *L, const json_t *j);

/* The shared event (see sandbox.c): push the metatable of the overlays of
 * the table at src (which no rule may get), and push a fresh overlay with
 * the metatable at mt (one per call: reads fall through to src). */
void fw_sbx_push_overlay_mt(lua_State *L, int src);
void fw_sbx_push_overlay(lua_State *L, int mt);
/* A flat event body (no object or array values) of at most this many
 * fields and string bytes is converted lazily (sandbox.c, "lazy S"). */
#define FW_SBX_LAZY_MAX_FIELDS 64
#define FW_SBX_LAZY_MAX_BYTES (16 * 1024)
/* If body is flat and small enough, push an empty S for it whose fields
 * are converted on their first read, from a copy of the body that S holds
 * (the caller may free body at once), and return 1; else push nothing and
 * return 0. */
int fw_sbx_push_lazy_event(lua_State *L, const json_t *body);
/* Push the body userdata of the lazy S at idx (fw_sbx_push_lazy_event;
 * nothing else may be done with it but hand it to fw_sbx_lazy_prefill) and
 * return its type (LUA_TNIL once S was completed). */
int fw_sbx_push_lazy_body(lua_State *L, int idx);
/* Convert now the fields of the lazy S at idx (an event's) that an earlier
 * S holds: prev is that S's body (fw_sbx_push_lazy_body, taken when S was
 * made: the fields converted into S), or a table (raw string keys: the
 * fields of an earlier, not lazy, event). */
void fw_sbx_lazy_prefill(lua_State *L, int idx, int prev);
/* Adds to the partial body what a read of key needs (key NULL: all that
 * is missing); raises a Lua error on failure, leaving body consistent. */
typedef void (*fw_sbx_fill_fn)(lua_State *L, void *arg, json_t *aux, json_t *body, const char *key);
/* The same for a partial body: fill(L, arg, aux, body, key) is called on a
 * read of a key that body lacks (then the key is looked up again), and with
 * key NULL before S is completed (sandbox.c, "lazy S").  S holds a
 * reference to aux (or NULL) as to body.  Returns arg: arg_len zeroed
 * bytes, aligned, kept with S, for the caller to fill in.  Used by
 * ctx.voucher. */
void *fw_sbx_push_lazy_fill(lua_State *L, json_t *body, json_t *aux, fw_sbx_fill_fn fill,
                            size_t arg_len);
/* Convert every field of the lazy S at idx not converted yet, make S a
 * plain table and release the body (nothing when S is not lazy). */
void fw_sbx_lazy_complete(lua_State *L, int idx);
/* If the value at idx is an unsettled overlay, copy its source's fields
 * into it and make it a plain table (anything that walks a table raw calls
 * this first). */
void fw_lazy_settle(lua_State *L, int idx);
/* Lua value at idx -> JSON, attached into `parent` under key (object) or
 * appended (array, key NULL) as it is built, so nothing leaks if Lua raises.
 * empty_array: an empty table becomes [] (fixtures) instead of {}. */
void fw_lua_to_json(lua_State *L, int idx, json_t *parent, const char *key, int empty_array,
                    int depth);

/* ---- etc.c ---- */

typedef struct fw_etc fw_etc;
fw_etc *fw_etc_load(const char *etc_dir, char *err, int errlen);
fw_etc *fw_etc_ref(fw_etc *e);
void fw_etc_unref(fw_etc *e);
/* -1 when the date is outside every calendar file? no: weekends rule then. */
int fw_etc_is_workday(const fw_etc *e, int64_t days_since_epoch);
/* Items of etc/lists/<name>.txt, or NULL when there is no such list. */
const char *const *fw_etc_list(const fw_etc *e, const char *name, int *n);
/* Of the items of list `name`, the one that starts earliest in s (n
 * bytes; ties: the longer, then the first in the file): 1 with it, its
 * length and its 0-based byte offset; 0 when none occurs; -1 when there is
 * no such list. */
int fw_etc_find_word(const fw_etc *e, const char *name, const char *s, size_t n, const char **word,
                     size_t *wlen, size_t *at);
/* GB 11643 check.  Returns 1 ok, 0 not; reason static; birth "YYYY-MM-DD"
 * filled when the birth date is valid (else ""). */
int fw_id_check(const char *id_no, const char **reason, char birth[11]);

/* ---- when.c ---- */

/* A rule's `when` (see when.c): conditions on the event body's fields that
 * must all hold for the rule to be called. */
typedef struct fw_when fw_when;
/* Parse the `when` table at idx into *out (set even on failure: the
 * caller frees it).  0, or -1 with the reason (no file or line) in err. */
int fw_when_parse(lua_State *L, int idx, fw_when **out, char *err, size_t errlen);
/* Resolve w's param references against the params table at idx and its
 * list names against etc (w NULL: nothing to do).  0 or -1 with err. */
int fw_when_resolve(fw_when *w, lua_State *L, int idx, const fw_etc *etc, char *err, size_t errlen);
/* The fields of one body looked up by fw_when_pass (names borrowed from
 * the rules, which outlive an evaluation); n = 0 for a new body. */
#define FW_WHEN_CACHE_FIELDS 8
typedef struct fw_when_cache {
    int n;
    uint64_t hashes[FW_WHEN_CACHE_FIELDS];
    const char *names[FW_WHEN_CACHE_FIELDS];
    const json_t *values[FW_WHEN_CACHE_FIELDS];
} fw_when_cache;
/* 0 when a condition is false for body (skip the call), else 1 (w NULL:
 * 1).  cache: the evaluation's (NULL: none). */
int fw_when_pass(const fw_when *w, const json_t *body, fw_when_cache *cache);
void fw_when_free(fw_when *w);

/* ---- ctx.c ---- */

/* Per-evaluation memo of the ctx ledger reads.  Every rule of one
 * evaluation sees the same pre-event ledger, so ctx.indicator(id),
 * ctx.voucher(no), ctx.history{...} (same criteria), ... are answered once
 * at the C level and shared by all rules (each rule still gets Lua values
 * of its own: fresh tables, or for ctx.indicator an overlay of a table
 * shared per state and evaluation).  The owner clears it before each evaluation or tick, i.e.
 * before the ledger can change.  Only successful reads are kept. */
typedef struct fw_memo fw_memo;
fw_memo *fw_memo_new(void);
void fw_memo_clear(fw_memo *m);
void fw_memo_free(fw_memo *m);

/* Register the ctx function table in a state (registry "fw.ctxmt"), once. */
void fw_ctx_open(lua_State *L);
/* Push a rule's ctx: its fields table R ({params, event, run}, set by the
 * engine: params at set-up, event and run per call; and the ctx functions,
 * copied in), then the read-only proxy of R that the rule gets. */
void fw_ctx_create(lua_State *L);

/* ---- rule.c ---- */

/* Event names a rule may listen to; bit i of fw_rule.on. */
enum {
    FW_ON_VOUCHER_CREATED = 0,
    FW_ON_VOUCHER_SIGNED,
    FW_ON_VOUCHER_SENT,
    FW_ON_VOUCHER_PAID,
    FW_ON_VOUCHER_RETURNED,
    FW_ON_VOUCHER_CANCELLED,
    FW_ON_INDICATOR_ALLOCATE,
    FW_ON_INDICATOR_ADJUST,
    FW_ON_INDICATOR_TRANSFER,
    FW_ON_PAYROLL_RUN,
    FW_ON_PAYROLL_LINE,
    FW_ON_REIMBURSE,
    FW_ON_SUBSIDY,
    FW_ON_TICK,
    FW_ON__COUNT
};
/* Bit index of an event type ("voucher.paid"), or -1. */
int fw_on_index(const char *type);

typedef struct fw_rule_env {
    fw_sbx *shared; /* the generation's state (the rule takes a reference), or
                       NULL: a state of its own (test cases, check) */
    fw_etc *etc;    /* borrowed; the rule takes a reference */
    fw_ledger *ledger;
    const fw_config *cfg; /* [rule.<id>] overrides, may be NULL */
    int64_t instr_budget;
    size_t mem_budget;
    /* Count evaluations, hits, errors and time in the daemon's per-rule
     * metrics.  Off for rules loaded to run their test cases or to check
     * them: those calls are not live traffic. */
    int live_metrics;
} fw_rule_env;

typedef struct fw_rule {
    char id[64];
    char path[1024];
    char name[256];
    char level[8];
    int shadow;
    unsigned on;           /* FW_ON_* bits */
    unsigned char sha[32]; /* of the file content */
    fw_sbx *sbx;           /* shared with the other rules of its generation */
    fw_etc *etc;
    fw_ledger *ledger;
    fw_memo *memo;            /* borrowed: the evaluation's ctx memo, or NULL (no memo) */
    struct fw_vcache *vcache; /* borrowed: history cache (daemon/voucher_cache.h) or NULL */
    /* registry refs in sbx (LUA_NOREF when unset): the chunk, check, the
     * params, the environment table, ctx's fields table and its proxy */
    int main_ref, check_ref, defaults_ref, params_ref, env_ref, ctxr_ref, ctx_ref;
    /* what ctx.event and ctx.run were last set to (do_call sets them only
     * when they change) */
    char ctx_event[32];
    int ctx_run_set;
    /* current call */
    const fw_event *ev;
    const char *event_name;
    int64_t now;
    fw_hit_list *pending;
    /* `when` (NULL: none).  when_audit (the test runner): call check on
     * the events `when` skips too, and count in when_missed those where it
     * hit (when_missed_msg: the first such hit's message), dropping the hits. */
    fw_when *when;
    int names_env; /* the source says _ENV: a call may have rebound it */
    int when_audit, when_missed;
    char when_missed_msg[200];
    /* metrics */
    fw_metric *m_evals, *m_hits, *m_errors, *m_seconds, *m_skipped;
    double errors_logged_at; /* monotonic seconds of the last rule_error log line */
} fw_rule;

/* Compile, run and validate one rule file.  NULL with "FILE[:LINE]: msg". */
fw_rule *fw_rule_load(const char *path, const fw_rule_env *env, char *err, int errlen);
void fw_rule_free(fw_rule *r);
/* Reset params to the file's defaults, then apply overrides from a JSON
 * object (test case params); values are checked against the defaults' types. */
int fw_rule_set_params_json(fw_rule *r, const json_t *over, char *err, int errlen);

/* What the engine computed once per payroll part for payroll.run. */
typedef struct fw_payroll_info {
    int complete;
    int64_t total_net;
} fw_payroll_info;

/* Start a new evaluation (an event or a tick): the event values shared by
 * the rules of a state are built again at their first use.  Call before
 * the fw_rule_eval/fw_rule_tick calls of each event. */
void fw_rule_eval_begin(void);
/* Push the current evaluation's table for ctx results shared by the rules
 * of the state and return 1, or return 0 (nothing pushed) outside an
 * event evaluation. */
int fw_eval_push_ctx_cache(lua_State *L);
/* Evaluate this rule for one event (all its dispatch keys).  Appends hits
 * (a failure appends one rule_error hit).  Returns hits appended. */
int fw_rule_eval(fw_rule *r, const fw_event *ev, const fw_payroll_info *pi, fw_hit_list *hits);
int fw_rule_tick(fw_rule *r, int64_t now, fw_hit_list *hits);
/* Compute payroll.run's complete / total_net before the ledger applies. */
int fw_payroll_info_get(fw_ledger *l, const fw_event *ev, fw_payroll_info *pi);

/* ---- rules_test.c ---- */

/* fw_rules_test_file() with the etc data already loaded. */
int fw_rules_test_file_etc(const char *rule_path, fw_etc *etc, FILE *out, int *passed, int *failed,
                           char *err, int errlen);

#endif
