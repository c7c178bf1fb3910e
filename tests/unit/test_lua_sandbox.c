/*
 * test_lua_sandbox.c - hostile rules (tests/rules/sec_*.lua) each fail with
 * a rule_error hit naming the rule and the reason, within a bounded time,
 * while a good rule next to them keeps working, call after call.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "daemon/metrics.h"
#include "tests/unit/test_lua_util.h"

typedef struct expectation {
    const char *rule;
    const char *reason;
} expectation;

static const expectation hostile[] = {
    {"sec_os_execute", "global 'os'"},
    {"sec_io_open", "global 'io'"},
    {"sec_load_bytecode", "attempt to call a nil value"},
    {"sec_string_dump", "field 'dump'"},
    {"sec_debug", "global 'debug'"},
    {"sec_string_metatable", "attempt to index a boolean value"},
    {"sec_string_rep", "method 'rep'"},
    {"sec_rawset_g", "global 'rawset'"},
    {"sec_lib_poison", "read-only table"},
    {"sec_coroutine", "global 'coroutine'"},
    {"sec_pcall_loop", "instruction budget exceeded"},
    {"sec_mem_table", "memory budget exceeded"},
    {"sec_mem_concat", "memory budget exceeded"},
    {"sec_pattern", "too complex"},
    {"sec_gc", "__gc metamethods are not allowed"},
    {"sec_ctx_tamper", "read-only table"},
    {"sec_table_move", "table.move of more than"},
    {"sec_copy_loop", "instruction budget exceeded"},
    {"sec_scan_loop", "instruction budget exceeded"},
};
#define NHOSTILE (int)(sizeof hostile / sizeof hostile[0])

static fw_rules *open_hostile(tl_env *e)
{
    char dir[1024], etc[1024], err[2048];
    snprintf(dir, sizeof dir, "%s/tests/rules", fw_t_src());
    snprintf(etc, sizeof etc, "%s/etc", fw_t_src());
    fw_rules_opts o = {.dir = dir, .etc_dir = etc, .ledger = e->lg, .mem_budget = (size_t)8 << 20};
    fw_rules *r = fw_rules_new(&o, err, sizeof err);
    assert_non_null(r);
    if (err[0])
        fail_msg("load problems: %s", err);
    return r;
}

static void hostile_rules_fail_cleanly(void **state)
{
    (void)state;
    tl_env e;
    tl_open(&e);
    fw_rules *r = open_hostile(&e);
    assert_int_equal(fw_rules_count(r), NHOSTILE + 2);
    for (int round = 0; round < 3; round++) {
        fw_hit_list hits = {0};
        double t0 = tl_now();
        char no[32], json[4096];
        snprintf(no, sizeof no, "ZF%04d", round);
        snprintf(json, sizeof json, TL_VOUCHER("%s", "1234.50"), no, no);
        tl_feed(&e, r, "fiscal.voucher.101001", json, &hits);
        double dt = tl_now() - t0;
        assert_true(dt < 2.0); /* every budget bounded, sanitizers included */

        const fw_hit *good = tl_find(&hits, "good_rule", no);
        assert_non_null(good);
        assert_string_equal(good->message, "good 1234.50");
        assert_string_equal(good->subject_kind, "voucher");
        const fw_hit *counter = tl_find(&hits, "sec_global_counter", no);
        assert_non_null(counter);
        assert_string_equal(counter->message, "calls 1"); /* the global did not survive */

        assert_int_equal(tl_count(&hits, "rule_error"), NHOSTILE);
        for (int i = 0; i < NHOSTILE; i++) {
            const fw_hit *h = tl_find(&hits, "rule_error", hostile[i].rule);
            if (!h)
                fail_msg("no rule_error for %s", hostile[i].rule);
            assert_string_equal(h->level, "orange");
            assert_string_equal(h->subject_kind, "rule");
            assert_string_equal(h->key, hostile[i].rule);
            assert_non_null(strstr(h->message, hostile[i].rule));
            if (!strstr(h->message, hostile[i].reason))
                fail_msg("%s: message \"%s\" lacks \"%s\"", hostile[i].rule, h->message,
                         hostile[i].reason);
            /* Errors (not budget trips) carry file:line. */
            if (!strstr(hostile[i].reason, "budget")) {
                char where[128];
                snprintf(where, sizeof where, "%s.lua:", hostile[i].rule);
                assert_non_null(strstr(h->message, where));
            }
            assert_false(strstr(h->message, "escaped"));
        }
        for (int i = 0; i < hits.n; i++)
            assert_null(strstr(hits.items[i].message, "escaped"));
        fw_hit_list_free(&hits);
    }
    FILE *f = fopen("/tmp/fundwatch-pwned", "r");
    assert_null(f);
    fw_rules_free(r);
    tl_close(&e);
}

/* A pattern just within the bound runs; its cost is charged to the budget. */
static void pattern_within_bound_runs(void **state)
{
    (void)state;
    tl_env e;
    tl_open(&e);
    fw_rules_opts o = {.dir = e.dir, .etc_dir = "/nonexistent", .ledger = e.lg};
    char err[512];
    fw_rules *r;
    fw_hit_list hits = {0};
    tl_write(e.dir, "pat.lua",
             "return { id = 'pat', name = 'p', level = 'blue', on = { 'voucher.created' },\n"
             "  check = function(v, ctx)\n"
             "    local s = 'a'; for _ = 1, 7 do s = s .. s end\n"
             "    local a = s:find('.-.-b')\n"
             "    local y, m, d = ('2024-06-03'):match('^(%%d+)%%-(%%d+)%%-(%%d+)$')\n"
             "    local long = s; for _ = 1, 6 do long = long .. long end -- 8 KiB\n"
             "    local p = long:find('ab', 1, true)                       -- plain: fine\n"
             "    local ok = pcall(string.find, long, 'a+b')               -- too long\n"
             "    return tostring(a) .. ' ' .. y .. m .. d .. ' ' .. tostring(p) .. ' ' .. "
             "tostring(ok)\n"
             "  end }\n");
    r = fw_rules_new(&o, err, sizeof err);
    assert_non_null(r);
    if (err[0])
        fail_msg("%s", err);
    tl_feed(&e, r, "fiscal.voucher.101001", TL_VOUCHER("ZF2", "1.00"), &hits);
    assert_int_equal(hits.n, 1);
    assert_string_equal(hits.items[0].rule, "pat");
    assert_string_equal(hits.items[0].message, "nil 20240603 nil false");
    fw_hit_list_free(&hits);
    fw_rules_free(r);
    tl_close(&e);
}

/* Bytecode files never load (text mode only); a budget trip at load time
 * is a load error, not a crash. */
static void bytecode_and_load_time_bombs_rejected(void **state)
{
    (void)state;
    tl_env e;
    tl_open(&e);
    tl_write(e.dir, "bin.lua", "\033Lua\x54%s", "");
    tl_write(e.dir, "loop.lua", "while true do end\nreturn {}\n");
    tl_write(e.dir, "ok.lua",
             "return { id = 'ok', name = 'ok', level = 'blue', on = { 'voucher.created' },\n"
             "  check = function(v, ctx) return 'ok' end }\n");
    fw_rules_opts o = {.dir = e.dir, .etc_dir = "/nonexistent", .ledger = e.lg};
    char err[2048];
    fw_rules *r = fw_rules_new(&o, err, sizeof err);
    assert_non_null(r);
    assert_int_equal(fw_rules_count(r), 1);
    assert_non_null(strstr(err, "bin.lua"));
    assert_non_null(strstr(err, "binary chunk"));
    assert_non_null(strstr(err, "loop.lua: instruction budget exceeded"));
    fw_rules_free(r);
    tl_close(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hostile_rules_fail_cleanly),
        cmocka_unit_test(pattern_within_bound_runs),
        cmocka_unit_test(bytecode_and_load_time_bombs_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
