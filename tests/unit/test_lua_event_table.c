/*
 * test_lua_event_table.c - the event table v (a per-call view of the event
 * converted once per evaluation and shared by the rules) behaves as the
 * plain table it replaces: reads, writes and deletes,
 * pairs/next/rawget/getmetatable, v in hit details, a v kept past its call
 * (across garbage collections); and the per-evaluation memo of ctx reads:
 * each rule gets its own copy, and a new evaluation sees the ledger as it
 * is then.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/unit/test_lua_util.h"

#define RULE(id, body)                                                                             \
    "return { id = '" id "', name = '" id "', level = 'yellow', on = { 'voucher.created' },\n"     \
    "  check = function(v, ctx)\n" body "\n  end }\n"

#define NFIELDS 18 /* fields of TL_VOUCHER */

static fw_rules *open_dir(tl_env *e)
{
    char etc[1024], err[1024];
    snprintf(etc, sizeof etc, "%s/etc", fw_t_src());
    fw_rules_opts o = {.dir = e->dir, .etc_dir = etc, .ledger = e->lg};
    fw_rules *r = fw_rules_new(&o, err, sizeof err);
    assert_non_null(r);
    if (err[0])
        fail_msg("load problems: %s", err);
    return r;
}

static const char *msg_of(const fw_hit_list *h, const char *rule)
{
    const fw_hit *x = tl_find(h, rule, NULL);
    if (!x)
        fail_msg("no hit from %s", rule);
    return x->message;
}

static void reads_writes_and_raw_access(void **state)
{
    (void)state;
    tl_env e;
    tl_open(&e);
    tl_write(
        e.dir, "ev_fields.lua",
        RULE("ev_fields",
             "    local a, p = v.amount, v.purpose\n"
             "    v.purpose = nil            -- delete a field already read\n"
             "    v.payee_name = nil         -- delete one never read\n"
             "    v.extra = 7\n"
             "    local n = 0\n"
             "    for k, x in pairs(v) do n = n + 1 end\n"
             "    return ('%%d %%s %%s %%s %%d %%s %%s n=%%d'):format(a, p, tostring(v.purpose),\n"
             "      tostring(v.payee_name), v.extra, tostring(v.nope), tostring(v[1]), n)"));
    tl_write(e.dir, "ev_raw.lua",
             RULE("ev_raw",
                  "    local u = rawget(v, 'unit_code')\n"
                  "    local k = next(v)\n"
                  "    local n = 0\n"
                  "    for _ in next, v do n = n + 1 end\n"
                  "    return tostring(u) .. ' ' .. tostring(k ~= nil) .. ' ' .. n .. ' '\n"
                  "      .. tostring(getmetatable(v)) .. ' ' .. #v"));
    tl_write(e.dir, "ev_meta.lua",
             RULE("ev_meta", "    setmetatable(v, { __index = function() return 'dflt' end })\n"
                             "    return v.voucher_no .. ' ' .. v.missing"));
    tl_write(e.dir, "ev_details.lua",
             RULE("ev_details", "    return { message = 'd', details = "
                                "{ ev = v, n = v.amount } }"));
    fw_rules *r = open_dir(&e);
    fw_hit_list hits = {0};
    tl_feed(&e, r, "fiscal.voucher.101001", TL_VOUCHER("ZF1", "1234.50"), &hits);

    char want[128];
    snprintf(want, sizeof want, "123450 办公用品采购 nil nil 7 nil nil n=%d", NFIELDS - 1);
    assert_string_equal(msg_of(&hits, "ev_fields"), want);
    snprintf(want, sizeof want, "101001 true %d nil 0", NFIELDS);
    assert_string_equal(msg_of(&hits, "ev_raw"), want);
    assert_string_equal(msg_of(&hits, "ev_meta"), "ZF1 dflt");

    const fw_hit *d = tl_find(&hits, "ev_details", NULL);
    assert_non_null(d);
    json_t *ev = json_object_get(d->details, "ev");
    assert_true(json_is_object(ev));
    assert_int_equal(json_object_size(ev), NFIELDS);
    assert_string_equal(json_string_value(json_object_get(ev, "voucher_no")), "ZF1");
    assert_int_equal(json_integer_value(json_object_get(ev, "amount")), 123450);
    assert_int_equal(json_integer_value(json_object_get(d->details, "n")), 123450);

    fw_hit_list_free(&hits);
    fw_rules_free(r);
    tl_close(&e);
}

/* A rule that keeps v in a file-level local reads that event's fields in a
 * later call, after the engine dropped the event and the state collected
 * garbage. */
static void kept_event_outlives_its_call(void **state)
{
    (void)state;
    tl_env e;
    tl_open(&e);
    tl_write(e.dir, "ev_keep.lua",
             "local saved\n" RULE("ev_keep",
                                  "    local before = saved\n"
                                  "    saved = v\n"
                                  "    if before == nil then return nil end\n"
                                  "    local junk = {}\n"
                                  "    for i = 1, 20000 do junk[i %% 100 + 1] = { i } end\n"
                                  "    return before.voucher_no .. ' ' .. before.amount .. "
                                  "' ' .. v.voucher_no"));
    fw_rules *r = open_dir(&e);
    fw_hit_list hits = {0};
    tl_feed(&e, r, "fiscal.voucher.101001", TL_VOUCHER("ZF1", "1.00"), &hits);
    assert_int_equal(hits.n, 0);
    tl_feed(&e, r, "fiscal.voucher.101001", TL_VOUCHER("ZF2", "2.00"), &hits);
    tl_feed(&e, r, "fiscal.voucher.101001", TL_VOUCHER("ZF3", "3.00"), &hits);
    assert_int_equal(hits.n, 2);
    assert_string_equal(hits.items[0].message, "ZF1 100 ZF2");
    assert_string_equal(hits.items[1].message, "ZF2 200 ZF3");
    fw_hit_list_free(&hits);
    fw_rules_free(r);
    tl_close(&e);
}

/* The memo: every rule gets its own table from the shared C result (one
 * rule's change is not seen by the next), and the next evaluation sees the
 * ledger after the previous event was applied. */
static void memo_copies_and_clears(void **state)
{
    (void)state;
    tl_env e;
    tl_open(&e);
    const char *q = "    local ind = ctx.indicator(v.indicator_id)\n"
                    "    local h = ctx.history { unit = v.unit_code, since = 0 }\n"
                    "    local s = ('%d %d %d'):format(ind.available, h.count, h.total)\n"
                    "    ind.available = -1\n"
                    "    return s";
    tl_write(e.dir, "memo_a.lua", RULE("memo_a", "%s"), q);
    tl_write(e.dir, "memo_b.lua", RULE("memo_b", "%s"), q);
    fw_rules *r = open_dir(&e);
    fw_hit_list hits = {0};
    tl_feed(&e, r, "fiscal.indicator.101001", TL_ALLOCATE("ZB2024-101001-0001", "1000.00"), &hits);
    tl_feed(&e, r, "fiscal.voucher.101001", TL_VOUCHER("ZF1", "100.00"), &hits);
    assert_string_equal(msg_of(&hits, "memo_a"), "100000 0 0");
    assert_string_equal(msg_of(&hits, "memo_b"), "100000 0 0");
    fw_hit_list_clear(&hits);
    tl_feed(&e, r, "fiscal.voucher.101001", TL_VOUCHER("ZF2", "50.00"), &hits);
    assert_string_equal(msg_of(&hits, "memo_a"), "90000 1 10000");
    assert_string_equal(msg_of(&hits, "memo_b"), "90000 1 10000");
    fw_hit_list_free(&hits);
    fw_rules_free(r);
    tl_close(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_writes_and_raw_access),
        cmocka_unit_test(kept_event_outlives_its_call),
        cmocka_unit_test(memo_copies_and_clears),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
