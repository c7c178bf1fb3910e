/*
 * test_lua_util.h - helpers for the rule engine's unit tests: an in-memory
 * ledger, wire-format events decoded by the real decoder, temp rule dirs,
 * and hit lookups.  Include after cmocka.h.
 */
#ifndef FW_TEST_LUA_UTIL_H
#define FW_TEST_LUA_UTIL_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon/event.h"
#include "daemon/hit.h"
#include "daemon/ledger.h"
#include "daemon/store.h"
#include "lua/rules.h"
#include "tests/support/harness.h"

typedef struct tl_env {
    fw_store *st;
    fw_ledger *lg;
    char *dir; /* temp dir, removed by tl_close */
} tl_env;

static inline void tl_open(tl_env *e)
{
    char err[256];
    e->st = fw_store_open(":memory:", fw_ledger_migrations, fw_ledger_nmigrations, 0,
                          FW_SYNC_NORMAL, err, sizeof err);
    if (!e->st)
        fail_msg("store: %s", err);
    e->lg = fw_ledger_new(e->st);
    e->dir = fw_t_tmpdir("lua");
    assert_non_null(e->dir);
}

static inline void tl_close(tl_env *e)
{
    fw_ledger_free(e->lg);
    fw_store_close(e->st);
    fw_t_rmtree(e->dir);
    free(e->dir);
}

/* Write <dir>/<name> with printf-built text. */
static inline void tl_write(const char *dir, const char *name, const char *fmt, ...)
{
    char path[1024], text[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(fw_t_write_file(path, text), 0);
}

static inline void tl_decode(fw_event *ev, const char *subject, const char *json)
{
    fw_decode_error e;
    memset(ev, 0, sizeof *ev);
    if (fw_event_decode(subject, json, strlen(json), ev, &e) != 0)
        fail_msg("decode %s: %s: %s", json, e.field, e.reason);
}

/* Evaluate then apply (the pipeline's order); returns hits added. */
static inline int tl_feed(tl_env *e, fw_rules *r, const char *subject, const char *json,
                          fw_hit_list *hits)
{
    fw_event ev;
    tl_decode(&ev, subject, json);
    int n = fw_rules_eval(r, &ev, hits);
    fw_ledger_result res;
    assert_int_equal(fw_ledger_apply(e->lg, &ev, &res), 0);
    fw_event_clear(&ev);
    return n;
}

static inline const fw_hit *tl_find(const fw_hit_list *h, const char *rule, const char *subject_id)
{
    for (int i = 0; i < h->n; i++)
        if (strcmp(h->items[i].rule, rule) == 0 &&
            (!subject_id || strcmp(h->items[i].subject_id, subject_id) == 0))
            return &h->items[i];
    return NULL;
}

static inline int tl_count(const fw_hit_list *h, const char *rule)
{
    int n = 0;
    for (int i = 0; i < h->n; i++)
        n += strcmp(h->items[i].rule, rule) == 0;
    return n;
}

/* CPU time of this thread: the budgets bound the work a rule can do, and
 * CPU time measures that work whatever else the (shared, 2-core) machine
 * is doing; wall time made the bound flaky under load. */
static inline double tl_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define TL_VOUCHER(no, amount)                                                                      \
    "{\"id\":\"evt-" no "\",\"event\":\"created\",\"occurred_at\":\"2024-06-03T10:15:00+08:00\","   \
    "\"voucher_no\":\"" no "\",\"year\":2024,\"unit_code\":\"101001\",\"unit_name\":\"教育局\"," \
    "\"indicator_id\":\"ZB2024-101001-0001\",\"func_class\":\"2050201\",\"econ_class\":\"30201\","  \
    "\"pay_method\":\"direct\",\"settle_method\":\"transfer\",\"payee_name\":\"某公司\","        \
    "\"payee_account\":\"41050166880800000123\",\"payee_bank\":\"建行\",\"payee_type\":"          \
    "\"company\",\"amount\":\"" amount "\",\"purpose\":\"办公用品采购\"}"

#define TL_ALLOCATE(id, amount)                                                                    \
    "{\"id\":\"evt-alloc-" id "\",\"op\":\"allocate\",\"occurred_at\":"                            \
    "\"2024-06-01T09:00:00+08:00\",\"doc_no\":\"三财预〔2024〕1号\",\"indicator_id\":\"" id "\","  \
    "\"year\":2024,\"unit_code\":\"101001\",\"func_class\":\"2050201\",\"econ_class\":\"30201\","  \
    "\"fund_type\":\"1\",\"fund_source\":\"一般公共预算\",\"amount\":\"" amount "\","              \
    "\"flags\":[\"salary\"]}"

#endif
