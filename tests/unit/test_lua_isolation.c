/*
 * test_lua_isolation.c - the rules of a generation share one Lua state;
 * none can see or change another's globals, upvalues, params or ctx, and
 * none can modify the event table they share (top level or nested), while
 * each still gets a v it may write into as its own table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/unit/test_lua_util.h"

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

static const char *msg_of(const fw_hit_list *h, const char *rule, const char *subject)
{
    const fw_hit *x = tl_find(h, rule, subject);
    if (!x)
        fail_msg("no hit from %s", rule);
    return x->message;
}

/* iso_a runs before iso_b (id order) and tries everything; iso_b reports
 * what it sees. */
static void rules_cannot_reach_each_other(void **state)
{
    (void)state;
    tl_env e;
    tl_open(&e);
    tl_write(
        e.dir, "iso_a.lua",
        "local count = 0\n"
        "secret_a = 'chunk global'\n"
        "return { id = 'iso_a', name = 'a', level = 'blue', on = { 'voucher.created' },\n"
        "  params = { limit = 1 },\n"
        "  check = function(v, ctx)\n"
        "    count = count + 1\n"
        "    leaked = 'from a'\n"
        "    function helper() return 'a' end\n"
        "    local saw = tostring(leaked_before)\n"
        "    leaked_before = true\n"
        "    v.amount = 0\n"
        "    v.extra = 'a'\n"
        "    v.purpose = nil\n"
        "    local ok1 = pcall(function() ctx.params.limit = 5 end)\n"
        "    local ok2 = pcall(function() ctx.foo = 1 end)\n"
        "    local ok3 = pcall(setmetatable, _ENV, {})\n"
        "    local ok4 = pcall(function() ctx.params = {} end)\n"
        "    return ('a count=%%d limit=%%d amount=%%d saw=%%s chunk=%%s writes=%%s%%s%%s%%s')\n"
        "      :format(count, ctx.params.limit, v.amount, saw, tostring(secret_a),\n"
        "        tostring(ok1), tostring(ok2), tostring(ok3), tostring(ok4))\n"
        "  end }\n");
    tl_write(e.dir, "iso_b.lua",
             "local count = 100\n"
             "return { id = 'iso_b', name = 'b', level = 'blue', on = { 'voucher.created' },\n"
             "  params = { limit = 2 },\n"
             "  check = function(v, ctx)\n"
             "    count = count + 1\n"
             "    local n = 0\n"
             "    for _ in pairs(v) do n = n + 1 end\n"
             "    return ('b count=%%d limit=%%d leaked=%%s helper=%%s secret=%%s amount=%%s '\n"
             "      .. 'extra=%%s purpose=%%s fields=%%d count_a=%%s')\n"
             "      :format(count, ctx.params.limit, tostring(leaked), tostring(helper),\n"
             "        tostring(secret_a), tostring(v.amount), tostring(v.extra),\n"
             "        tostring(v.purpose), n, tostring(count_a))\n"
             "  end }\n");
    fw_rules *r = open_dir(&e);
    fw_hit_list hits = {0};
    tl_feed(&e, r, "fiscal.voucher.101001", TL_VOUCHER("ZF1", "1234.50"), &hits);
    tl_feed(&e, r, "fiscal.voucher.101001", TL_VOUCHER("ZF2", "1.00"), &hits);
    assert_int_equal(hits.n, 4);
    assert_string_equal(msg_of(&hits, "iso_a", "ZF1"),
                        "a count=1 limit=1 amount=0 saw=nil chunk=nil writes=falsefalsefalsefalse");
    /* The upvalue persists for a; the global written in the previous call
     * does not. */
    assert_string_equal(msg_of(&hits, "iso_a", "ZF2"),
                        "a count=2 limit=1 amount=0 saw=nil chunk=nil writes=falsefalsefalsefalse");
    assert_string_equal(msg_of(&hits, "iso_b", "ZF1"),
                        "b count=101 limit=2 leaked=nil helper=nil secret=nil amount=123450 "
                        "extra=nil purpose=办公用品采购 fields=18 count_a=nil");
    assert_string_equal(msg_of(&hits, "iso_b", "ZF2"),
                        "b count=102 limit=2 leaked=nil helper=nil secret=nil amount=100 "
                        "extra=nil purpose=办公用品采购 fields=18 count_a=nil");
    fw_hit_list_free(&hits);
    fw_rules_free(r);
    tl_close(&e);
}

/* Nested tables of the shared event are read-only for every rule; the next
 * rule sees them unchanged.  Raw access gives a rule its own copy, never
 * the shared table. */
static void shared_event_is_not_modifiable(void **state)
{
    (void)state;
    tl_env e;
    tl_open(&e);
    tl_write(e.dir, "iso_c.lua",
             "return { id = 'iso_c', name = 'c', level = 'blue', on = { 'indicator.allocate' },\n"
             "  check = function(v, ctx)\n"
             "    local ok1, err = pcall(function() v.flags[1] = 'x' end)\n"
             "    local ok2 = pcall(table.insert, v.flags, 'y')\n"
             "    local ok3 = pcall(function() rawget(v, 'flags')[2] = 'z' end)\n"
             "    local mt = getmetatable(v)\n"
             "    local k = next(v)\n"
             "    v.flags = { 'mine' }\n"
             "    v.unit_code = 'changed'\n"
             "    return ('c %%s %%s %%s %%s %%s %%s'):format(tostring(ok1), tostring(ok2),\n"
             "      tostring(ok3), tostring(mt), tostring(k ~= nil),\n"
             "      err:find('read-only', 1, true) and 'ro' or err)\n"
             "  end }\n");
    tl_write(e.dir, "iso_d.lua",
             "return { id = 'iso_d', name = 'd', level = 'blue', on = { 'indicator.allocate' },\n"
             "  check = function(v, ctx)\n"
             "    local n = 0\n"
             "    for _, f in ipairs(v.flags) do n = n + 1 end\n"
             "    return ('d %%s %%d %%d %%s %%s'):format(v.flags[1], #v.flags, n,\n"
             "      tostring(v.flags[2]), v.unit_code)\n"
             "  end }\n");
    fw_rules *r = open_dir(&e);
    fw_hit_list hits = {0};
    tl_feed(&e, r, "fiscal.indicator.101001", TL_ALLOCATE("ZB2024-101001-0001", "1000.00"), &hits);
    assert_int_equal(hits.n, 2);
    assert_string_equal(msg_of(&hits, "iso_c", NULL), "c false false false nil true ro");
    assert_string_equal(msg_of(&hits, "iso_d", NULL), "d salary 1 1 nil 101001");
    fw_hit_list_free(&hits);
    fw_rules_free(r);
    tl_close(&e);
}

/* A rule that fails mid-call (after writing a global), or replaces its
 * _ENV, leaves nothing for its next call, and the other rules are
 * unaffected. */
static void failed_call_leaves_no_globals(void **state)
{
    (void)state;
    tl_env e;
    tl_open(&e);
    tl_write(e.dir, "iso_e.lua",
             "return { id = 'iso_e', name = 'e', level = 'blue', on = { 'voucher.created' },\n"
             "  check = function(v, ctx)\n"
             "    if marker then return 'marker survived' end\n"
             "    marker = true\n"
             "    error('boom')\n"
             "  end }\n");
    tl_write(e.dir, "iso_g.lua",
             "return { id = 'iso_g', name = 'g', level = 'blue', on = { 'voucher.created' },\n"
             "  check = function(v, ctx)\n"
             "    local seen = tostring(kept)\n"
             "    local mine = setmetatable({ kept = 1 }, { __index = { tostring = tostring } })\n"
             "    _ENV = mine\n"
             "    return 'g ' .. seen\n"
             "  end }\n");
    /* globals written by a call that succeeds, by assignment and through
     * a library function (table.insert writes a new key of _ENV) */
    tl_write(e.dir, "iso_h.lua",
             "return { id = 'iso_h', name = 'h', level = 'blue', on = { 'voucher.created' },\n"
             "  check = function(v, ctx)\n"
             "    local before = tostring(rawget(_ENV, 1)) .. tostring(y)\n"
             "    table.insert(_ENV, 't')\n"
             "    y = 2\n"
             "    return 'h ' .. before\n"
             "  end }\n");
    tl_write(e.dir, "iso_f.lua",
             "return { id = 'iso_f', name = 'f', level = 'blue', on = { 'voucher.created' },\n"
             "  check = function(v, ctx) return 'f ' .. tostring(marker) end }\n");
    fw_rules *r = open_dir(&e);
    fw_hit_list hits = {0};
    tl_feed(&e, r, "fiscal.voucher.101001", TL_VOUCHER("ZF1", "1.00"), &hits);
    tl_feed(&e, r, "fiscal.voucher.101001", TL_VOUCHER("ZF2", "1.00"), &hits);
    assert_int_equal(hits.n, 8);
    assert_string_equal(msg_of(&hits, "iso_h", "ZF1"), "h nilnil");
    assert_string_equal(msg_of(&hits, "iso_h", "ZF2"), "h nilnil");
    assert_int_equal(tl_count(&hits, "rule_error"), 2);
    assert_int_equal(tl_count(&hits, "iso_e"), 0);
    /* A rule that replaced its _ENV starts the next call with its own
     * (empty) environment again. */
    assert_string_equal(msg_of(&hits, "iso_g", "ZF1"), "g nil");
    assert_string_equal(msg_of(&hits, "iso_g", "ZF2"), "g nil");
    assert_string_equal(msg_of(&hits, "iso_f", "ZF1"), "f nil");
    assert_string_equal(msg_of(&hits, "iso_f", "ZF2"), "f nil");
    fw_hit_list_free(&hits);
    fw_rules_free(r);
    tl_close(&e);
}

/* Messages must be valid UTF-8 (checked without jansson now): invalid
 * bytes, an overlong form, a surrogate and a code point past U+10FFFF are
 * each a rule_error; valid text of 1-4 byte characters is a hit. */
static void messages_must_be_utf8(void **state)
{
    (void)state;
    tl_env e;
    tl_open(&e);
    static const char *const bad[] = {"\\255abc", "\\192\\175", "\\237\\160\\128",
                                      "\\244\\144\\128\\128", "ab\\226\\130"};
    for (int i = 0; i < 5; i++) {
        char path[1024], text[4096];
        snprintf(path, sizeof path, "%s/utf_bad%d.lua", e.dir, i);
        snprintf(
            text, sizeof text,
            "return { id = 'utf_bad%d', name = 'u', level = 'blue', on = { 'voucher.created' },\n"
            "  check = function(v, ctx) return %s'%s'%s end }\n",
            i, i % 2 ? "" : "{ message = ", bad[i], i % 2 ? "" : " }");
        assert_int_equal(fw_t_write_file(path, text), 0);
    }
    tl_write(e.dir, "utf_good.lua",
             "return { id = 'utf_good', name = 'u', level = 'blue', on = { 'voucher.created' },\n"
             "  check = function(v, ctx) return 'a\\195\\169\\228\\184\\173\\240\\159\\152\\128' "
             "end }\n");
    fw_rules *r = open_dir(&e);
    fw_hit_list hits = {0};
    tl_feed(&e, r, "fiscal.voucher.101001", TL_VOUCHER("ZF1", "1.00"), &hits);
    assert_int_equal(hits.n, 6);
    assert_int_equal(tl_count(&hits, "rule_error"), 5);
    for (int i = 0; i < hits.n; i++)
        if (strcmp(hits.items[i].rule, "rule_error") == 0)
            assert_non_null(strstr(hits.items[i].message, "not valid UTF-8"));
    assert_string_equal(msg_of(&hits, "utf_good", NULL), "a\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80");
    fw_hit_list_free(&hits);
    fw_rules_free(r);
    tl_close(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rules_cannot_reach_each_other),
        cmocka_unit_test(shared_event_is_not_modifiable),
        cmocka_unit_test(failed_call_leaves_no_globals),
        cmocka_unit_test(messages_must_be_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
