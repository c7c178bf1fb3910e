/*
 * test_lua_when.c - a rule's `when` (lua/when.c): the conditions skip the
 * call exactly when they are false, a field it cannot judge lets the call
 * happen, params (defaults, config, arrays) and lists are resolved, skips are
 * counted, bad forms are load errors naming the line, and `rules test`
 * fails a case whose event `when` skipped although check hits it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "daemon/config.h"
#include "daemon/metrics.h"
#include "tests/unit/test_lua_util.h"

/* A rule whose check always hits: its hits are its calls. */
#define CALLED(id, when)                                                                           \
    "return { id = '" id "', name = '" id "', level = 'yellow', on = { 'voucher.created' },\n"     \
    "  params = { limit = 100000, codes_list = 'card_mandatory', classes = { '30211', '39999' } "  \
    "},\n"                                                                                         \
    "  when = " when ",\n"                                                                         \
    "  check = function(v, ctx) return 'called ' .. v.voucher_no end }\n"

/* A voucher with these payee_type, econ_class and amount (yuan text). */
static void voucher(char *out, size_t n, const char *no, const char *payee_type, const char *econ,
                    const char *amount)
{
    snprintf(out, n,
             "{\"id\":\"evt-%s\",\"event\":\"created\",\"occurred_at\":"
             "\"2024-06-03T10:15:00+08:00\",\"voucher_no\":\"%s\",\"year\":2024,"
             "\"unit_code\":\"101001\",\"unit_name\":\"教育局\",\"indicator_id\":"
             "\"ZB2024-101001-0001\",\"func_class\":\"2050201\",\"econ_class\":\"%s\","
             "\"pay_method\":\"direct\",\"settle_method\":\"transfer\",\"payee_name\":\"某人\","
             "\"payee_account\":\"41050166880800000123\",\"payee_bank\":\"建行\","
             "\"payee_type\":\"%s\",\"amount\":\"%s\",\"purpose\":\"办公用品采购\"}",
             no, no, econ, payee_type, amount);
}

static fw_rules *open_rules(tl_env *e, const fw_config *cfg, char *err, int errlen)
{
    char etc[1024];
    snprintf(etc, sizeof etc, "%s/etc", fw_t_src());
    fw_rules_opts o = {.dir = e->dir, .etc_dir = etc, .ledger = e->lg, .cfg = cfg};
    err[0] = '\0';
    return fw_rules_new(&o, err, errlen);
}

static double skipped(const char *id)
{
    char labels[128];
    snprintf(labels, sizeof labels, "rule=\"%s\"", id);
    return fw_metric_value(fw_metric_counter("fundwatch_rule_skipped_total",
                                             "Events a rule's when kept from its check, per rule",
                                             labels));
}

/* Feed one voucher; the number of hits of rule id it caused (0 or 1). */
static int calls(tl_env *e, fw_rules *r, const char *id, const char *no, const char *payee_type,
                 const char *econ, const char *amount)
{
    char json[2048];
    voucher(json, sizeof json, no, payee_type, econ, amount);
    fw_hit_list h = {0};
    tl_feed(e, r, "fiscal.voucher.101001", json, &h);
    int n = tl_count(&h, id);
    fw_hit_list_free(&h);
    return n;
}

static void conditions_skip_exactly_when_false(void **state)
{
    (void)state;
    tl_env e;
    tl_open(&e);
    tl_write(e.dir, "w_text.lua", CALLED("w_text", "{ payee_type = 'individual' }"));
    tl_write(e.dir, "w_oneof.lua",
             CALLED("w_oneof", "{ payee_type = { 'own_unit', 'individual' } }"));
    tl_write(e.dir, "w_gt.lua", CALLED("w_gt", "{ amount = { gt = 'limit' } }"));
    tl_write(e.dir, "w_ge.lua", CALLED("w_ge", "{ amount = { ge = 100000 } }"));
    tl_write(e.dir, "w_lt.lua", CALLED("w_lt", "{ amount = { lt = 'limit' } }"));
    tl_write(e.dir, "w_le.lua", CALLED("w_le", "{ amount = { le = 'limit' } }"));
    tl_write(e.dir, "w_list.lua", CALLED("w_list", "{ econ_class = { list = 'codes_list' } }"));
    tl_write(e.dir, "w_oneofp.lua", CALLED("w_oneofp", "{ econ_class = { one_of = 'classes' } }"));
    tl_write(e.dir, "w_both.lua",
             CALLED("w_both", "{ payee_type = 'individual', amount = { gt = 'limit' } }"));
    /* not in the body: cannot tell, so check is called */
    tl_write(e.dir, "w_absent.lua", CALLED("w_absent", "{ no_such_field = 'x' }"));
    /* ... except for present */
    tl_write(e.dir, "w_present.lua", CALLED("w_present", "{ no_such_field = { present = true } }"));
    tl_write(e.dir, "w_present2.lua", CALLED("w_present2", "{ payee_type = { present = true } }"));
    /* a text condition on a number: cannot tell either */
    tl_write(e.dir, "w_type.lua",
             CALLED("w_type", "{ amount = 'x', year = { list = 'codes_list' } }"));
    char err[1024];
    fw_rules *r = open_rules(&e, NULL, err, sizeof err);
    assert_non_null(r);
    assert_string_equal(err, "");
    struct {
        const char *id, *payee_type, *econ, *amount;
        int called;
    } cases[] = {
        {"w_text", "individual", "30201", "1.00", 1},
        {"w_text", "company", "30201", "1.00", 0},
        {"w_oneof", "own_unit", "30201", "1.00", 1},
        {"w_oneof", "individual", "30201", "1.00", 1},
        {"w_oneof", "company", "30201", "1.00", 0},
        {"w_gt", "company", "30201", "1000.01", 1}, /* limit = 100000 fen */
        {"w_gt", "company", "30201", "1000.00", 0},
        {"w_ge", "company", "30201", "1000.00", 1},
        {"w_ge", "company", "30201", "999.99", 0},
        {"w_lt", "company", "30201", "999.99", 1},
        {"w_lt", "company", "30201", "1000.00", 0},
        {"w_le", "company", "30201", "1000.00", 1},
        {"w_le", "company", "30201", "1000.01", 0},
        {"w_list", "company", "30211", "1.00", 1}, /* 差旅费: on the card list */
        {"w_list", "company", "31002", "1.00", 0},
        {"w_oneofp", "company", "39999", "1.00", 1},
        {"w_oneofp", "company", "30201", "1.00", 0},
        {"w_both", "individual", "30201", "1000.01", 1},
        {"w_both", "individual", "30201", "1000.00", 0},
        {"w_both", "company", "30201", "1000.01", 0},
        {"w_absent", "company", "30201", "1.00", 1},
        {"w_present", "company", "30201", "1.00", 0},
        {"w_present2", "company", "30201", "1.00", 1},
        {"w_type", "company", "30201", "1.00", 1},
    };
    double skips_before = skipped("w_text");
    int not_individual = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        not_individual += strcmp(cases[i].payee_type, "individual") != 0;
        char no[32];
        snprintf(no, sizeof no, "ZF%zu", i);
        int n = calls(&e, r, cases[i].id, no, cases[i].payee_type, cases[i].econ, cases[i].amount);
        if (n != cases[i].called)
            fail_msg("case %zu (%s %s %s %s): %d call(s), expected %d", i, cases[i].id,
                     cases[i].payee_type, cases[i].econ, cases[i].amount, n, cases[i].called);
    }
    /* w_text skipped the vouchers to others than individuals, and only those */
    assert_true(skipped("w_text") - skips_before == not_individual);
    fw_rules_free(r);
    tl_close(&e);
}

static void params_from_config(void **state)
{
    (void)state;
    tl_env e;
    tl_open(&e);
    tl_write(
        e.dir, "w_cfg.lua",
        CALLED("w_cfg", "{ amount = { gt = 'limit' }, econ_class = { list = 'codes_list' } }"));
    tl_write(e.dir, "w_cfg2.lua", CALLED("w_cfg2", "{ econ_class = { one_of = 'classes' } }"));
    fw_config *c = fw_config_new();
    fw_config_add_prefix(c, "rule.");
    char err[1024];
    assert_int_equal(fw_config_set(c, "rule.w_cfg.limit", "500", err, sizeof err), 0);
    assert_int_equal(fw_config_set(c, "rule.w_cfg.codes_list", "catchall_econ", err, sizeof err),
                     0);
    assert_int_equal(fw_config_set(c, "rule.w_cfg2.classes", "31099", err, sizeof err), 0);
    fw_rules *r = open_rules(&e, c, err, sizeof err);
    assert_non_null(r);
    assert_string_equal(err, "");
    assert_int_equal(calls(&e, r, "w_cfg", "ZF1", "company", "39999", "5.01"), 1);
    assert_int_equal(calls(&e, r, "w_cfg", "ZF2", "company", "39999", "5.00"), 0);
    assert_int_equal(calls(&e, r, "w_cfg", "ZF3", "company", "30211", "5.01"), 0);
    assert_int_equal(calls(&e, r, "w_cfg2", "ZF4", "company", "31099", "5.01"), 1);
    assert_int_equal(calls(&e, r, "w_cfg2", "ZF5", "company", "30211", "5.01"), 0);
    fw_rules_free(r);

    /* a config list that does not exist is a load problem */
    assert_int_equal(fw_config_set(c, "rule.w_cfg.codes_list", "no_such_list", err, sizeof err), 0);
    r = open_rules(&e, c, err, sizeof err);
    assert_non_null(strstr(err, "no list 'no_such_list'"));
    fw_rules_free(r);
    fw_config_free(c);
    tl_close(&e);
}

static void bad_forms_name_the_line(void **state)
{
    (void)state;
    static const struct {
        const char *when, *msg;
    } bad[] = {
        {"5", "when must be a table"},
        {"{}", "at least one field"},
        {"{ Amount = 1 }", "keys must be field names"},
        {"{ amount = { gt = 1, lt = 2 } }", "one of gt, ge, lt, le, list, one_of or present"},
        {"{ amount = { eq = 1 } }", "one of gt, ge, lt, le, list, one_of or present"},
        {"{ amount = { 1, 2 } }", "an array of texts"},
        {"{ payee_type = { 'a', x = 1 } }", "keys 1..n"},
        {"{ amount = { gt = 'nope' } }", "no param 'nope'"},
        {"{ amount = { gt = 'codes_list' } }", "params.codes_list must be an integer"},
        {"{ amount = { gt = 1.5 } }", "an integer or the name of an integer param"},
        {"{ econ_class = { list = 'limit' } }", "must be a string (a list name)"},
        {"{ econ_class = { list = 3 } }", "the name of a string param"},
        {"{ econ_class = { one_of = 'limit' } }", "params.limit must be an array of texts"},
        {"{ amount = { present = false } }", "when.amount.present: must be true"},
        {"{ econ_class = { one_of = { 'a' } } }", "the name of an array param"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tl_env e;
        tl_open(&e);
        char text[1024];
        snprintf(text, sizeof text, CALLED("w_bad", "%s"), bad[i].when);
        tl_write(e.dir, "w_bad.lua", "%s", text);
        char err[1024];
        fw_rules *r = open_rules(&e, NULL, err, sizeof err);
        if (!strstr(err, "w_bad.lua:3:") || !strstr(err, bad[i].msg))
            fail_msg("when = %s: got \"%s\", expected line 3 and \"%s\"", bad[i].when, err,
                     bad[i].msg);
        fw_rules_free(r);
        tl_close(&e);
    }
    /* not with the events that have no flat body */
    tl_env e;
    tl_open(&e);
    tl_write(e.dir, "w_tick.lua",
             "return { id = 'w_tick', name = 't', level = 'yellow', on = { 'tick' },\n"
             "  when = { amount = { gt = 1 } },\n"
             "  check = function() end }\n");
    char err[1024];
    fw_rules *r = open_rules(&e, NULL, err, sizeof err);
    assert_non_null(strstr(err, "w_tick.lua:2: when: not with payroll.run, payroll.line or tick"));
    fw_rules_free(r);
    tl_close(&e);
}

static void rules_test_fails_a_when_that_hides_a_hit(void **state)
{
    (void)state;
    tl_env e;
    tl_open(&e);
    /* when says "above the limit", check fires at or above it */
    tl_write(e.dir, "w_audit.lua",
             "return { id = 'w_audit', name = 'a', level = 'yellow', on = { 'voucher.created' },\n"
             "  params = { limit = 100000 }, when = { amount = { gt = 'limit' } },\n"
             "  check = function(v, ctx)\n"
             "    if v.amount >= ctx.params.limit then return 'big' end\n"
             "  end }\n");
    tl_write(e.dir, "w_audit.test.lua",
             "return {\n"
             "  { name = 'above', events = { fx.voucher{ amount = '1000.01' } },\n"
             "    expect = { { match = 'big' } } },\n"
             "  { name = 'at the limit', events = { fx.voucher{ amount = '1000.00' } },\n"
             "    expect = {} },\n"
             "  { name = 'below', events = { fx.voucher{ amount = '999.99' } }, expect = {} },\n"
             "}\n");
    char path[1024], err[1024] = "", etc[1024];
    snprintf(path, sizeof path, "%s/w_audit.lua", e.dir);
    snprintf(etc, sizeof etc, "%s/etc", fw_t_src());
    char *outbuf = NULL;
    size_t outlen = 0;
    FILE *out = open_memstream(&outbuf, &outlen);
    int passed = 0, failed = 0;
    assert_int_equal(fw_rules_test_file(path, etc, out, &passed, &failed, err, sizeof err), 1);
    fclose(out);
    assert_int_equal(passed, 2);
    assert_int_equal(failed, 1);
    assert_non_null(strstr(outbuf, "FAIL w_audit: at the limit: when skipped 1 event(s) that "
                                   "check hits (first: big)"));
    free(outbuf);
    tl_close(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(conditions_skip_exactly_when_false),
        cmocka_unit_test(params_from_config),
        cmocka_unit_test(bad_forms_name_the_line),
        cmocka_unit_test(rules_test_fails_a_when_that_hides_a_hit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
