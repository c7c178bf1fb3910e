/*
 * test_lua_event_table.c - the event table v (a per-call view of the event
 * converted once per evaluation and shared by the rules) behaves as the
 * plain table it replaces: reads, writes and deletes,
 * pairs/next/rawget/getmetatable, v in hit details, a v kept past its call
 * (across garbage collections); the lazy conversion of a flat body (a
 * field becomes Lua on its first read): pairs after partial reads, a kept
 * v reading fields nobody read in its own evaluation, writes first, unknown
 * and null fields, nested and large bodies (converted whole); and the
 * per-evaluation memo of ctx reads:
 * each rule gets its own copy, and a new evaluation sees the ledger as it
 * is then.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "daemon/voucher_cache.h"
#include "tests/unit/test_lua_util.h"

#define RULE(id, body)                                                                             \
    "return { id = '" id "', name = '" id "', level = 'yellow', on = { 'voucher.created' },\n"     \
    "  check = function(v, ctx)\n" body "\n  end }\n"

#define NFIELDS 18           /* fields of TL_VOUCHER */
#define FW_T_BIG (17 * 1024) /* a string field past FW_SBX_LAZY_MAX_BYTES */

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

/* Rules run in id order: aa reads two fields, ab walks v after reading one
 * (every field, the unread ones converted then), ac reads after the walk. */
static void pairs_after_partial_reads(void **state)
{
    (void)state;
    tl_env e;
    tl_open(&e);
    tl_write(e.dir, "aa.lua",
             RULE("aa", "    return ('%%s %%s %%s'):format(math.type(v.amount), v.amount, "
                        "v.purpose)"));
    tl_write(e.dir, "ab.lua",
             RULE("ab",
                  "    local no = v.voucher_no\n"
                  "    local keys = {}\n"
                  "    for k, x in pairs(v) do keys[#keys + 1] = k .. '=' .. tostring(x) end\n"
                  "    table.sort(keys)\n"
                  "    return no .. ' ' .. #keys .. ' ' .. table.concat(keys, ',')"));
    tl_write(e.dir, "ac.lua",
             RULE("ac", "    return ('%%s %%s %%s %%s'):format(v.payee_bank, v.amount, "
                        "tostring(v.nope), rawget(v, 'func_class'))"));
    fw_rules *r = open_dir(&e);
    fw_hit_list hits = {0};
    tl_feed(&e, r, "fiscal.voucher.101001", TL_VOUCHER("ZF1", "1234.50"), &hits);
    assert_string_equal(msg_of(&hits, "aa"), "integer 123450 办公用品采购");
    char want[2048];
    snprintf(want, sizeof want,
             "ZF1 %d amount=123450,econ_class=30201,event=created,func_class=2050201,"
             "id=evt-ZF1,indicator_id=ZB2024-101001-0001,occurred_at=2024-06-03T10:15:00+08:00,"
             "pay_method=direct,payee_account=41050166880800000123,payee_bank=建行,"
             "payee_name=某公司,payee_type=company,purpose=办公用品采购,settle_method=transfer,"
             "unit_code=101001,unit_name=教育局,voucher_no=ZF1,year=2024",
             NFIELDS);
    assert_string_equal(msg_of(&hits, "ab"), want);
    assert_string_equal(msg_of(&hits, "ac"), "建行 123450 nil 2050201");
    fw_hit_list_free(&hits);
    fw_rules_free(r);
    tl_close(&e);
}

/* A v kept past its call reads, in later calls, fields that no rule read
 * during its own evaluation (converted from its event's body, which the
 * caller freed long before; ASan checks the body is still there), and
 * walks them all; a garbage collection in between changes nothing. */
static void kept_v_converts_its_own_fields_later(void **state)
{
    (void)state;
    tl_env e;
    tl_open(&e);
    tl_write(e.dir, "ev_keep.lua",
             "local saved = {}\n" RULE(
                 "ev_keep", "    saved[#saved + 1] = v\n"
                            "    if #saved < 3 then return nil end\n"
                            "    local junk = {}\n"
                            "    for i = 1, 20000 do junk[i %% 100 + 1] = { i } end\n"
                            "    local a, b = saved[1], saved[2]\n"
                            "    local n = 0\n"
                            "    for k in pairs(b) do n = n + 1 end\n"
                            "    return ('%%s %%s %%s %%s %%d %%s %%s'):format(a.payee_bank, "
                            "a.voucher_no, a.amount, b.payee_account, n, b.voucher_no, "
                            "v.voucher_no)"));
    fw_rules *r = open_dir(&e);
    fw_hit_list hits = {0};
    tl_feed(&e, r, "fiscal.voucher.101001", TL_VOUCHER("ZF1", "1.00"), &hits);
    tl_feed(&e, r, "fiscal.voucher.101001", TL_VOUCHER("ZF2", "2.00"), &hits);
    assert_int_equal(hits.n, 0);
    tl_feed(&e, r, "fiscal.voucher.101001", TL_VOUCHER("ZF3", "3.00"), &hits);
    assert_int_equal(hits.n, 1);
    char want[256];
    snprintf(want, sizeof want, "建行 ZF1 100 41050166880800000123 %d ZF2 ZF3", NFIELDS);
    assert_string_equal(hits.items[0].message, want);
    fw_hit_list_free(&hits);
    fw_rules_free(r);
    tl_close(&e);
}

/* A write before any read makes v the rule's own table with every field;
 * the next rules still read the event, lazily. */
static void write_first_then_others_read(void **state)
{
    (void)state;
    tl_env e;
    tl_open(&e);
    tl_write(e.dir, "wa.lua",
             RULE("wa",
                  "    v.amount = 1\n"
                  "    v.payee_bank = nil\n"
                  "    v.more = 'x'\n"
                  "    local n = 0\n"
                  "    for k in pairs(v) do n = n + 1 end\n"
                  "    return ('%%s %%s %%s %%s %%d'):format(v.amount, tostring(v.payee_bank), "
                  "v.more, v.purpose, n)"));
    tl_write(e.dir, "wb.lua",
             RULE("wb", "    return ('%%s %%s %%s'):format(v.amount, v.payee_bank, "
                        "tostring(v.more))"));
    fw_rules *r = open_dir(&e);
    fw_hit_list hits = {0};
    tl_feed(&e, r, "fiscal.voucher.101001", TL_VOUCHER("ZF1", "7.00"), &hits);
    char want[128];
    snprintf(want, sizeof want, "1 nil x 办公用品采购 %d", NFIELDS);
    assert_string_equal(msg_of(&hits, "wa"), want);
    assert_string_equal(msg_of(&hits, "wb"), "700 建行 nil");
    fw_hit_list_free(&hits);
    fw_rules_free(r);
    tl_close(&e);
}

/* Fields the body lacks read as nil, every time, whatever the key's type;
 * a field the body holds as null (a field the contract does not name is
 * kept as it came) is absent, for reads and for pairs. */
static void unknown_and_null_fields_are_nil(void **state)
{
    (void)state;
    tl_env e;
    tl_open(&e);
    tl_write(e.dir, "un.lua",
             RULE("un", "    local s = tostring(v.nope) .. tostring(v.nope) .. tostring(v[1])\n"
                        "      .. tostring(v[true]) .. tostring(v.memo) .. tostring(v[2.5])\n"
                        "    local n, memo = 0, false\n"
                        "    for k in pairs(v) do n = n + 1; memo = memo or k == 'memo' end\n"
                        "    return s .. ' ' .. n .. ' ' .. tostring(memo) .. ' ' .. v.note"));
    fw_rules *r = open_dir(&e);
    fw_hit_list hits = {0};
    char json[4096];
    snprintf(json, sizeof json, "%s", TL_VOUCHER("ZF1", "1.00"));
    json[strlen(json) - 1] = '\0'; /* the closing brace: two more fields */
    strcat(json, ",\"memo\":null,\"note\":\"附注\"}");
    tl_feed(&e, r, "fiscal.voucher.101001", json, &hits);
    char want[128];
    snprintf(want, sizeof want, "nilnilnilnilnilnil %d false 附注", NFIELDS + 1);
    assert_string_equal(msg_of(&hits, "un"), want);
    fw_hit_list_free(&hits);
    fw_rules_free(r);
    tl_close(&e);
}

/* A body with nested values (and one with more than FW_SBX_LAZY_MAX_BYTES
 * of text) is converted whole, as before: nested tables are read-only and
 * the same table for every read and every rule. */
static void nested_and_large_bodies(void **state)
{
    (void)state;
    tl_env e;
    tl_open(&e);
    tl_write(e.dir, "na.lua",
             "local seen\n" RULE(
                 "na",
                 "    if v.extra == nil then return ('big %%d %%s'):format(#v.big, v.purpose) end\n"
                 "    local same = v.extra == v.extra\n"
                 "    local ok, err = pcall(function() v.extra.b = 'y' end)\n"
                 "    seen = v.extra\n"
                 "    return ('%%s %%s %%s %%d %%s %%s %%s'):format(v.extra.b, v.extra.a[2], "
                 "tostring(same), #v.extra.a, tostring(ok), "
                 "tostring(err):match('read%%-only') or err, v.amount)"));
    tl_write(e.dir, "nb.lua",
             "local seen\n" RULE("nb", "    if v.extra == nil then return nil end\n"
                                       "    local n = 0\n"
                                       "    for k in pairs(v.extra) do n = n + 1 end\n"
                                       "    return ('%%s %%d'):format(v.extra.b, n)"));
    fw_rules *r = open_dir(&e);
    fw_hit_list hits = {0};
    char json[40000];
    snprintf(json, sizeof json, "%s", TL_VOUCHER("ZF1", "2.00"));
    json[strlen(json) - 1] = '\0';
    strcat(json, ",\"extra\":{\"a\":[1,2,3],\"b\":\"x\"}}");
    tl_feed(&e, r, "fiscal.voucher.101001", json, &hits);
    assert_string_equal(msg_of(&hits, "na"), "x 2 true 3 false read-only 200");
    assert_string_equal(msg_of(&hits, "nb"), "x 2");
    fw_hit_list_clear(&hits);

    snprintf(json, sizeof json, "%s", TL_VOUCHER("ZF2", "3.00"));
    json[strlen(json) - 1] = '\0';
    strcat(json, ",\"big\":\"");
    size_t at = strlen(json), big = FW_T_BIG;
    memset(json + at, 'a', big);
    strcpy(json + at + big, "\"}");
    tl_feed(&e, r, "fiscal.voucher.101001", json, &hits);
    char want[64];
    snprintf(want, sizeof want, "big %zu 办公用品采购", big);
    assert_string_equal(msg_of(&hits, "na"), want);
    fw_hit_list_free(&hits);
    fw_rules_free(r);
    tl_close(&e);
}

/* ctx.indicator's table (shared by the rules of an evaluation, an overlay
 * per call): ia reads one field and walks it (every field: 12 and flags);
 * ib reads after that walk; ic keeps its table and reads fields nobody read
 * in a later call, after the ledger moved on and the state collected
 * garbage (the values it had); flags stays read-only. */
static void lazy_indicator_table(void **state)
{
    (void)state;
    tl_env e;
    tl_open(&e);
    tl_write(
        e.dir, "ia.lua",
        RULE("ia",
             "    local ind = ctx.indicator(v.indicator_id)\n"
             "    local first = ind.econ_class\n"
             "    local n, src = 0, nil\n"
             "    for k, x in pairs(ind) do n = n + 1; if k == 'fund_source' then src = x end end\n"
             "    return ('%%s %%d %%s %%s'):format(first, n, src, tostring(ind.flags.salary))"));
    tl_write(e.dir, "ib.lua",
             RULE("ib",
                  "    local ind = ctx.indicator(v.indicator_id)\n"
                  "    local ok = pcall(function() ind.flags.salary = false end)\n"
                  "    return ('%%s %%d %%s'):format(ind.unit_code, ind.available, tostring(ok))"));
    tl_write(e.dir, "ic.lua",
             "local saved\n" RULE("ic", "    local before = saved\n"
                                        "    saved = ctx.indicator(v.indicator_id)\n"
                                        "    if before == nil then return nil end\n"
                                        "    local junk = {}\n"
                                        "    for i = 1, 20000 do junk[i %% 100 + 1] = { i } end\n"
                                        "    return ('%%d %%d %%s %%d'):format(before.frozen, "
                                        "before.year, before.project_code, saved.frozen)"));
    fw_rules *r = open_dir(&e);
    fw_hit_list hits = {0};
    tl_feed(&e, r, "fiscal.indicator.101001", TL_ALLOCATE("ZB2024-101001-0001", "1000.00"), &hits);
    tl_feed(&e, r, "fiscal.voucher.101001", TL_VOUCHER("ZF1", "100.00"), &hits);
    assert_string_equal(msg_of(&hits, "ia"), "30201 13 一般公共预算 true");
    assert_string_equal(msg_of(&hits, "ib"), "101001 100000 false");
    assert_null(tl_find(&hits, "ic", NULL));
    fw_hit_list_clear(&hits);
    tl_feed(&e, r, "fiscal.voucher.101001", TL_VOUCHER("ZF2", "50.00"), &hits);
    assert_string_equal(msg_of(&hits, "ic"), "0 2024  10000");
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

/* ctx.indicator across evaluations: a later evaluation sees the new
 * balances, a table kept from an earlier one its own (walked too: all 13
 * fields), a write stays in the writer's table, a class changed in the
 * ledger (the cache told, as the ledger does for its own writes) is seen,
 * and in hit details the table is converted whole. */
static void indicator_across_evaluations(void **state)
{
    (void)state;
    tl_env e;
    tl_open(&e);
    tl_write(e.dir, "kb_keep.lua",
             "local saved\n" RULE(
                 "kb_keep",
                 "    local before = saved\n"
                 "    local ind = ctx.indicator(v.indicator_id)\n"
                 "    saved = ind\n"
                 "    local prev = '-'\n"
                 "    if before ~= nil then\n"
                 "      local n = 0\n"
                 "      for _ in pairs(before) do n = n + 1 end\n"
                 "      prev = ('%%s %%d %%d %%d'):format(before.econ_class, before.frozen,\n"
                 "        before.available, n)\n"
                 "    end\n"
                 "    ind.available = -1\n"
                 "    return ('%%s %%d %%d %%s | %%s'):format(ind.econ_class, ind.frozen,\n"
                 "      ind.available, tostring(ind.flags.salary), prev)"));
    tl_write(e.dir, "kb_walk.lua",
             RULE("kb_walk", "    local ind = ctx.indicator(v.indicator_id)\n"
                             "    local n, av = 0, nil\n"
                             "    for k, x in pairs(ind) do n = n + 1; if k == 'available' then "
                             "av = x end end\n"
                             "    return ('%%d %%d %%s %%s'):format(n, av, ind.unit_code,\n"
                             "      tostring(getmetatable(ind)))"));
    tl_write(e.dir, "kb_none.lua",
             RULE("kb_none", "    return tostring(ctx.indicator('ZB-NONE'))"));
    tl_write(e.dir, "kb_details.lua",
             RULE("kb_details", "    return { message = 'd', details = "
                                "{ ind = ctx.indicator(v.indicator_id) } }"));
    fw_rules *r = open_dir(&e);
    fw_hit_list hits = {0};
    tl_feed(&e, r, "fiscal.indicator.101001", TL_ALLOCATE("ZB2024-101001-0001", "1000.00"), &hits);
    fw_hit_list_clear(&hits);
    tl_feed(&e, r, "fiscal.voucher.101001", TL_VOUCHER("ZF1", "100.00"), &hits);
    assert_string_equal(msg_of(&hits, "kb_keep"), "30201 0 -1 true | -");
    assert_string_equal(msg_of(&hits, "kb_walk"), "13 100000 101001 nil");
    assert_string_equal(msg_of(&hits, "kb_none"), "nil");
    fw_hit_list_clear(&hits);
    tl_feed(&e, r, "fiscal.voucher.101001", TL_VOUCHER("ZF2", "50.00"), &hits);
    assert_string_equal(msg_of(&hits, "kb_keep"), "30201 10000 -1 true | 30201 0 -1 13");
    assert_string_equal(msg_of(&hits, "kb_walk"), "13 90000 101001 nil");
    /* an indicator in hit details is converted whole */
    const fw_hit *d = tl_find(&hits, "kb_details", NULL);
    assert_non_null(d);
    json_t *ind = json_object_get(d->details, "ind");
    assert_int_equal(json_object_size(ind), 13);
    assert_string_equal(json_string_value(json_object_get(ind, "econ_class")), "30201");
    assert_int_equal(json_integer_value(json_object_get(ind, "frozen")), 10000);
    assert_true(json_is_true(json_object_get(json_object_get(ind, "flags"), "salary")));
    fw_hit_list_clear(&hits);
    fw_vcache_indicator_written(e.lg, "ZB2024-101001-0001");
    assert_int_equal(fw_store_exec(e.st, "UPDATE indicators SET econ_class = '30299'"
                                         " WHERE indicator_id = 'ZB2024-101001-0001'"),
                     0);
    tl_feed(&e, r, "fiscal.voucher.101001", TL_VOUCHER("ZF3", "1.00"), &hits);
    assert_string_equal(msg_of(&hits, "kb_keep"), "30299 15000 -1 true | 30201 10000 -1 13");
    assert_string_equal(msg_of(&hits, "kb_walk"), "13 85000 101001 nil");
    fw_hit_list_free(&hits);
    fw_rules_free(r);
    tl_close(&e);
}

/* ctx.time, ctx.date and ctx.is_workday remember the last time converted:
 * other times in the same evaluation and in the next ones are converted
 * afresh, and each call gets a table of its own. */
static void time_across_calls(void **state)
{
    (void)state;
    tl_env e;
    tl_open(&e);
    tl_write(e.dir, "tm.lua",
             RULE("tm",
                  "    local a = ctx.time(ctx.now())\n"
                  "    a.hour = 99\n"
                  "    local b = ctx.time(ctx.now())\n"
                  "    local c = ctx.time(ctx.now() + 86400 * 40 + 3661)\n"
                  "    local d = ctx.time(ctx.now())\n"
                  "    return ('%%d-%%d-%%d %%d:%%d:%%d w%%d %%d | %%d-%%d-%%d %%d:%%d:%%d w%%d | "
                  "%%d %%s %%s %%s'):format(\n"
                  "      b.year, b.month, b.day, b.hour, b.min, b.sec, b.wday, a.hour,\n"
                  "      c.year, c.month, c.day, c.hour, c.min, c.sec, c.wday, d.hour,\n"
                  "      ctx.date(ctx.now() - 86400), ctx.date(), "
                  "tostring(ctx.is_workday(ctx.now() + 86400 * 6)))"));
    fw_rules *r = open_dir(&e);
    fw_hit_list hits = {0};
    tl_feed(&e, r, "fiscal.voucher.101001", TL_VOUCHER("ZF1", "100.00"), &hits);
    /* 2024-06-03 10:15:00 +08:00 was a Monday; 40 days and 1:01:01 later,
     * Saturday 2024-07-13 11:16:01; 2024-06-09 a Sunday, 2025-01-06 a Monday */
    assert_string_equal(msg_of(&hits, "tm"), "2024-6-3 10:15:0 w1 99 | 2024-7-13 11:16:1 w6 | 10 "
                                             "2024-06-02 2024-06-03 false");
    fw_hit_list_clear(&hits);
    char json[2048];
    snprintf(json, sizeof json, "%s", TL_VOUCHER("ZF2", "1.00"));
    char *at = strstr(json, "2024-06-03T10:15:00");
    assert_non_null(at);
    memcpy(at, "2024-12-31T23:59:59", 19);
    tl_feed(&e, r, "fiscal.voucher.101001", json, &hits);
    assert_string_equal(msg_of(&hits, "tm"), "2024-12-31 23:59:59 w2 99 | 2025-2-10 1:1:0 w1 | 23 "
                                             "2024-12-30 2024-12-31 true");
    fw_hit_list_free(&hits);
    fw_rules_free(r);
    tl_close(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_writes_and_raw_access),
        cmocka_unit_test(kept_event_outlives_its_call),
        cmocka_unit_test(pairs_after_partial_reads),
        cmocka_unit_test(kept_v_converts_its_own_fields_later),
        cmocka_unit_test(write_first_then_others_read),
        cmocka_unit_test(unknown_and_null_fields_are_nil),
        cmocka_unit_test(nested_and_large_bodies),
        cmocka_unit_test(lazy_indicator_table),
        cmocka_unit_test(memo_copies_and_clears),
        cmocka_unit_test(indicator_across_evaluations),
        cmocka_unit_test(time_across_calls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
