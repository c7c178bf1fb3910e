/*
 * test_lua_ctx_voucher.c - ctx.voucher in an evaluation is a lazy table
 * whose `events` are queried only when a rule first reads them (or walks,
 * writes or keeps the voucher): whatever a rule does with it, it must see
 * the values of the whole voucher as it was before the event.  The
 * reference is ctx.voucher in a tick, which builds the whole voucher at
 * once (fw_ledger_voucher_json).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/unit/test_lua_util.h"

/* A rule on voucher.* and tick: on a tick it returns the reference dump of
 * ctx.voucher('ZF1') (d: every field in key order, events serialised; ev:
 * the events alone); on a voucher event it runs `body` (which returns the
 * string it saw, or nil). */
static void write_rule(tl_env *e, const char *body)
{
    tl_write(e->dir, "x_vch.lua", "%s%s%s",
             "local function evdump(x)\n"
             "  local out = {}\n"
             "  for i = 1, #x do\n"
             "    local r = x[i]\n"
             "    out[#out + 1] = r.event .. '@' .. r.occurred_at .. '#' .. r.id .. '/' .. "
             "r.outcome\n"
             "  end\n"
             "  return '[' .. table.concat(out, ',') .. ']'\n"
             "end\n"
             "local function dump(t)\n"
             "  local keys = {}\n"
             "  for k in pairs(t) do keys[#keys + 1] = k end\n"
             "  table.sort(keys)\n"
             "  local out = {}\n"
             "  for _, k in ipairs(keys) do\n"
             "    local x = t[k]\n"
             "    if type(x) == 'table' then x = evdump(x) end\n"
             "    out[#out + 1] = k .. '=' .. tostring(x)\n"
             "  end\n"
             "  return table.concat(out, ';')\n"
             "end\n"
             "local kept\n"
             "return { id = 'x_vch', name = 'x_vch', level = 'yellow',\n"
             "  on = { 'voucher.*', 'tick' },\n"
             "  check = function(v, ctx)\n"
             "    if ctx.event == 'tick' then\n"
             "      local t = ctx.voucher('ZF1')\n"
             "      return { { message = 'ref', subject = { kind = 'rule', id = 'x' },\n"
             "                 details = { d = dump(t), ev = evdump(t.events) } } }\n"
             "    end\n"
             "    if v.event == 'created' then return nil end\n"
             "    local function run()\n",
             body,
             "\n    end\n"
             "    local s = run()\n"
             "    if s == nil then return nil end\n"
             "    return { message = 'got', details = { s = s } }\n"
             "  end }\n");
}

static void feed_event(tl_env *e, fw_rules *r, const char *event, const char *id, const char *at,
                       fw_hit_list *h)
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"id\":\"%s\",\"event\":\"%s\",\"occurred_at\":\"%s\",\"voucher_no\":\"ZF1\","
             "\"unit_code\":\"101001\",\"amount\":\"10.00\"}",
             id, event, at);
    tl_feed(e, r, "fiscal.voucher.101001", body, h);
}

/* The rule set of `body`, with ZF1 created and signed. */
static fw_rules *setup(tl_env *e, const char *body, fw_hit_list *h)
{
    tl_open(e);
    write_rule(e, body);
    char etc[1024], err[1024];
    snprintf(etc, sizeof etc, "%s/etc", fw_t_src());
    fw_rules_opts o = {.dir = e->dir, .etc_dir = etc, .ledger = e->lg};
    fw_rules *r = fw_rules_new(&o, err, sizeof err);
    if (!r)
        fail_msg("rules: %s", err);
    tl_feed(e, r, "fiscal.indicator.101001", TL_ALLOCATE("ZB2024-101001-0001", "1000.00"), h);
    tl_feed(e, r, "fiscal.voucher.101001", TL_VOUCHER("ZF1", "10.00"), h);
    feed_event(e, r, "signed", "evt-s1", "2024-06-03T11:00:00+08:00", h);
    fw_hit_list_clear(h);
    return r;
}

/* The reference dump (key "d" or "ev") of ZF1 as it is now; a copy. */
static char *reference(fw_rules *r, const char *key)
{
    fw_hit_list h = {0};
    assert_int_equal(fw_rules_tick(r, 1717660800, &h), 1);
    const char *s = json_string_value(json_object_get(h.items[0].details, key));
    assert_non_null(s);
    char *copy = strdup(s);
    fw_hit_list_free(&h);
    return copy;
}

/* What the rule returned on the voucher event just fed (NULL: nothing). */
static const char *got(const fw_hit_list *h)
{
    const fw_hit *x = tl_find(h, "x_vch", NULL);
    if (!x)
        return NULL;
    if (strcmp(x->message, "got") != 0)
        fail_msg("%s", x->message);
    return json_string_value(json_object_get(x->details, "s"));
}

/* Run `body` on the voucher.sent of ZF1 and compare what it returned
 * with the reference `key` taken just before. */
static void check_on_sent(const char *body, const char *key)
{
    tl_env e;
    fw_hit_list h = {0};
    fw_rules *r = setup(&e, body, &h);
    char *ref = reference(r, key);
    assert_non_null(strstr(ref, "signed@"));
    feed_event(&e, r, "sent", "evt-t1", "2024-06-03T12:00:00+08:00", &h);
    const char *s = got(&h);
    assert_non_null(s);
    assert_string_equal(s, ref);
    free(ref);
    fw_hit_list_free(&h);
    fw_rules_free(r);
    tl_close(&e);
}

/* The reference itself: what today's whole voucher holds. */
static void reference_is_the_whole_voucher(void **state)
{
    (void)state;
    tl_env e;
    fw_hit_list h = {0};
    fw_rules *r = setup(&e, "return nil", &h);
    char *ref = reference(r, "d");
    assert_non_null(strstr(ref, "amount=1000;"));
    assert_non_null(strstr(ref, "state=signed;"));
    assert_non_null(strstr(ref, "reservation=pending;"));
    assert_non_null(strstr(ref, "signed_at=1717383600;"));
    assert_non_null(strstr(ref, "events=[created@1717380900#evt-ZF1/applied,"
                                "signed@1717383600#evt-s1/noop];"));
    free(ref);
    fw_hit_list_free(&h);
    fw_rules_free(r);
    tl_close(&e);
}

static void pairs_after_partial_read(void **state)
{
    (void)state;
    check_on_sent("local t = ctx.voucher(v.voucher_no)\n"
                  "assert(t.state == 'signed' and t.amount == 1000)\n"
                  "return dump(t)",
                  "d");
}

static void pairs_first(void **state)
{
    (void)state;
    check_on_sent("return dump(ctx.voucher(v.voucher_no))", "d");
}

static void next_and_rawget(void **state)
{
    (void)state;
    check_on_sent("local t = ctx.voucher(v.voucher_no)\n"
                  "assert(t.payee_account == '41050166880800000123')\n"
                  "assert(next(t) ~= nil)\n"
                  "return evdump(rawget(t, 'events'))",
                  "ev");
}

static void events_after_other_fields(void **state)
{
    (void)state;
    check_on_sent("local t = ctx.voucher(v.voucher_no)\n"
                  "assert(t.state == 'signed' and t.amount == 1000 and t.nope == nil)\n"
                  "assert(t.sent_at == nil and t.signed_at == 1717383600)\n"
                  "local a = evdump(t.events)\n"
                  "assert(evdump(t.events) == a and #t.events == 2)\n"
                  "return a",
                  "ev");
}

/* The body is parsed when a rule reads a field the columns lack: the
 * created event's id and name are not the voucher's, the columns win. */
static void body_fields_after_columns(void **state)
{
    (void)state;
    check_on_sent(
        "local t = ctx.voucher(v.voucher_no)\n"
        "assert(t.amount == 1000 and t.state == 'signed' and t.reservation == 'pending')\n"
        "assert(t.id == nil and t.event == nil and t.purpose == '办公用品采购')\n"
        "assert(t.created_at == 1717380900 and t.voucher_no == 'ZF1')\n"
        "return dump(t)",
        "d");
}

static void write_makes_own_copy(void **state)
{
    (void)state;
    check_on_sent("local t = ctx.voucher(v.voucher_no)\n"
                  "local s = t.state\n"
                  "t.extra = 'x'\n"
                  "assert(rawget(t, 'extra') == 'x' and rawget(t, 'state') == s)\n"
                  "t.extra = nil\n"
                  "assert(ctx.voucher(v.voucher_no).extra == nil)\n"
                  "return dump(t)",
                  "d");
    /* events stay read-only */
    check_on_sent("local t = ctx.voucher(v.voucher_no)\n"
                  "local ok = pcall(function() t.events[1] = 1 end)\n"
                  "assert(not ok)\n"
                  "return evdump(t.events)",
                  "ev");
}

/* A voucher kept past its call, read in a later evaluation (after the
 * ledger applied the event and more): the voucher as it was. */
static void kept_past_its_call(void **state)
{
    (void)state;
    const char *body = "if v.event == 'sent' then kept = ctx.voucher(v.voucher_no) return nil end\n"
                       "if v.event == 'paid' then return dump(kept) end\n"
                       "return nil";
    tl_env e;
    fw_hit_list h = {0};
    fw_rules *r = setup(&e, body, &h);
    char *ref = reference(r, "d");
    feed_event(&e, r, "sent", "evt-t1", "2024-06-03T12:00:00+08:00", &h);
    assert_null(got(&h));
    feed_event(&e, r, "paid", "evt-p1", "2024-06-03T13:00:00+08:00", &h);
    const char *s = got(&h);
    assert_non_null(s);
    assert_string_equal(s, ref); /* state signed, two events */
    /* and the voucher now has four events */
    char *now = reference(r, "ev");
    assert_non_null(strstr(now, "paid@"));
    free(now);
    free(ref);
    fw_hit_list_free(&h);
    fw_rules_free(r);
    tl_close(&e);
}

static void missing_voucher(void **state)
{
    (void)state;
    const char *body = "local t = ctx.voucher(v.voucher_no)\n"
                       "local u = ctx.voucher('NOPE')\n"
                       "return tostring(t) .. ' ' .. tostring(u) .. ' ' .. "
                       "tostring(ctx.voucher('NOPE'))";
    tl_env e;
    fw_hit_list h = {0};
    fw_rules *r = setup(&e, body, &h);
    tl_feed(&e, r, "fiscal.voucher.101001",
            "{\"id\":\"evt-x1\",\"event\":\"signed\",\"occurred_at\":"
            "\"2024-06-03T11:00:00+08:00\",\"voucher_no\":\"ZF9\",\"unit_code\":\"101001\"}",
            &h);
    assert_string_equal(got(&h), "nil nil nil");
    fw_hit_list_free(&h);
    fw_rules_free(r);
    tl_close(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reference_is_the_whole_voucher),
        cmocka_unit_test(pairs_after_partial_read),
        cmocka_unit_test(pairs_first),
        cmocka_unit_test(next_and_rawget),
        cmocka_unit_test(events_after_other_fields),
        cmocka_unit_test(body_fields_after_columns),
        cmocka_unit_test(write_makes_own_copy),
        cmocka_unit_test(kept_past_its_call),
        cmocka_unit_test(missing_voucher),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
