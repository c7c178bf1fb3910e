/*
 * test_lua_engine.c - the rule engine: dispatch by `on`, return forms,
 * params from config, shadow mode, validation errors, ctx functions, the
 * version, reload (keeping the old version of a broken or failing rule),
 * metrics, and the test-case runner / CLI.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "daemon/config.h"
#include "daemon/metrics.h"
#include "lua/rule_int.h"
#include "tests/unit/test_lua_util.h"

#define RULE(id, on, extra, body)                                                                  \
    "return { id = '" id "', name = '" id "', level = 'yellow', on = { " on " },\n" extra          \
    "  check = function(v, ctx)\n" body "\n  end }\n"

static const char PAYROLL2[] =
    "{\"id\":\"evt-p1\",\"run_id\":\"GZ-1\",\"part\":1,\"parts\":1,"
    "\"occurred_at\":\"2024-06-12T08:00:00+08:00\",\"unit_code\":\"101001\","
    "\"unit_name\":\"教育局\",\"period\":\"2024-06\",\"pay_date\":\"2024-06-12\","
    "\"indicator_id\":\"ZB2024-101001-0001\",\"lines\":["
    "{\"emp_id\":\"E0001\",\"name\":\"张三\",\"id_no\":\"411202198001011236\","
    "\"phone\":\"13800000000\",\"account\":\"6222021234567890123\","
    "\"earnings\":[{\"name\":\"岗位工资\",\"amount\":\"100.00\"}],"
    "\"deductions\":[{\"name\":\"个税\",\"amount\":\"10.00\"}],\"gross\":\"100.00\","
    "\"net\":\"90.00\"},"
    "{\"emp_id\":\"E0002\",\"name\":\"李四\",\"id_no\":\"11010519491231002X\","
    "\"phone\":\"13900000000\",\"account\":\"6222021234567890999\","
    "\"earnings\":[{\"name\":\"岗位工资\",\"amount\":\"200.00\"}],"
    "\"deductions\":[],\"gross\":\"200.00\",\"net\":\"200.00\"}]}";

static fw_rules *open_rules(tl_env *e, const fw_config *cfg, int run_tests, char *err, int errlen)
{
    char etc[1024];
    snprintf(etc, sizeof etc, "%s/etc", fw_t_src());
    fw_rules_opts o = {
        .dir = e->dir, .etc_dir = etc, .ledger = e->lg, .cfg = cfg, .run_tests = run_tests};
    fw_rules *r = fw_rules_new(&o, err, errlen);
    assert_non_null(r);
    return r;
}

static void dispatch_by_on(void **state)
{
    (void)state;
    tl_env e;
    tl_open(&e);
    tl_write(e.dir, "a_created.lua",
             RULE("a_created", "'voucher.created'", "", "return 'A ' .. v.voucher_no"));
    tl_write(e.dir, "b_any.lua", RULE("b_any", "'voucher.*'", "", "return 'B ' .. ctx.event"));
    tl_write(e.dir, "c_alloc.lua",
             RULE("c_alloc", "'indicator.allocate'", "", "return 'C ' .. v.indicator_id"));
    tl_write(e.dir, "d_pay.lua",
             RULE("d_pay", "'payroll.run', 'payroll.line'", "",
                  "if ctx.event == 'payroll.run' then\n"
                  "  return ('run %%s %%s %%d %%d'):format(v.run_id, tostring(v.complete),"
                  " v.total_net, #v.lines)\n"
                  "end\n"
                  "return ('line %%s %%s %%d'):format(v.emp_id, ctx.run.period, v.net)"));
    tl_write(e.dir, "e_tick.lua",
             RULE("e_tick", "'tick'", "",
                  "return { { message = 'tick ' .. v.at, subject = { kind = 'voucher', id = "
                  "'ZFX' }, unit = '101001' } }"));
    char err[1024];
    fw_rules *r = open_rules(&e, NULL, 0, err, sizeof err);
    assert_string_equal(err, "");
    assert_int_equal(fw_rules_count(r), 5);
    fw_hit_list h = {0};

    assert_int_equal(
        tl_feed(&e, r, "fiscal.indicator.101001", TL_ALLOCATE("ZB2024-101001-0001", "1000.00"), &h),
        1);
    assert_string_equal(h.items[0].message, "C ZB2024-101001-0001");
    assert_string_equal(h.items[0].subject_kind, "indicator");
    assert_string_equal(h.items[0].subject_id, "ZB2024-101001-0001");
    assert_string_equal(h.items[0].event_id, "evt-alloc-ZB2024-101001-0001");
    fw_hit_list_clear(&h);

    assert_int_equal(tl_feed(&e, r, "fiscal.voucher.101001", TL_VOUCHER("ZF1", "10.00"), &h), 2);
    assert_string_equal(tl_find(&h, "a_created", "ZF1")->message, "A ZF1");
    assert_string_equal(tl_find(&h, "b_any", "ZF1")->message, "B voucher.created");
    assert_int_equal(tl_find(&h, "a_created", "ZF1")->at, 1717380900);
    fw_hit_list_clear(&h);

    assert_int_equal(tl_feed(&e, r, "fiscal.voucher.101001",
                             "{\"id\":\"evt-s1\",\"event\":\"signed\",\"occurred_at\":"
                             "\"2024-06-03T11:00:00+08:00\",\"voucher_no\":\"ZF1\","
                             "\"unit_code\":\"101001\"}",
                             &h),
                     1);
    assert_string_equal(h.items[0].message, "B voucher.signed");
    fw_hit_list_clear(&h);

    assert_int_equal(tl_feed(&e, r, "fiscal.payroll.101001", PAYROLL2, &h), 3);
    assert_string_equal(h.items[0].message, "run GZ-1 true 29000 2");
    assert_string_equal(h.items[0].subject_kind, "payroll_run");
    assert_string_equal(h.items[0].subject_id, "GZ-1");
    assert_string_equal(h.items[1].message, "line E0001 2024-06 9000");
    assert_string_equal(h.items[1].subject_kind, "payroll_line");
    assert_string_equal(h.items[1].subject_id, "GZ-1/E0001");
    assert_string_equal(h.items[2].subject_id, "GZ-1/E0002");
    fw_hit_list_clear(&h);

    assert_int_equal(fw_rules_tick(r, 1717660800, &h), 1);
    assert_string_equal(h.items[0].message, "tick 1717660800");
    assert_string_equal(h.items[0].subject_id, "ZFX");
    assert_string_equal(h.items[0].unit_code, "101001");
    assert_null(h.items[0].event_id);

    /* metrics: one evaluation of a_created per voucher.created */
    fw_metric *m = fw_metric_counter("fundwatch_rule_evaluations_total",
                                     "Rule check calls, per rule", "rule=\"a_created\"");
    assert_true(fw_metric_value(m) >= 1.0);
    fw_metric *hm =
        fw_metric_counter("fundwatch_rule_hits_total", "Rule hits, per rule", "rule=\"d_pay\"");
    assert_true(fw_metric_value(hm) >= 3.0);
    fw_hit_list_free(&h);
    fw_rules_free(r);
    tl_close(&e);
}

static void return_forms(void **state)
{
    (void)state;
    tl_env e;
    tl_open(&e);
    tl_write(
        e.dir, "f_table.lua",
        RULE("f_table", "'voucher.created'", "",
             "return { message = 'T', level = 'red', key = 'k1',\n"
             "  details = { amount = v.amount, ratio = 0.5, list = { 'a', 'b' }, none = {} } }"));
    tl_write(e.dir, "g_list.lua",
             RULE("g_list", "'voucher.created'", "",
                  "return { { message = 'one', key = 1 },\n"
                  "  { message = 'two', subject = { kind = 'indicator', id = 'ZB9' }, unit = "
                  "'999' } }"));
    tl_write(e.dir, "h_nil.lua", RULE("h_nil", "'voucher.created'", "", "return nil"));
    tl_write(e.dir, "h_false.lua", RULE("h_false", "'voucher.created'", "", "return false"));
    tl_write(e.dir, "h_empty.lua", RULE("h_empty", "'voucher.created'", "", "return {}"));
    tl_write(e.dir, "i_bad.lua", RULE("i_bad", "'voucher.created'", "", "return 42"));
    tl_write(e.dir, "j_err.lua", RULE("j_err", "'voucher.created'", "", "error('boom')"));
    tl_write(e.dir, "k_field.lua",
             RULE("k_field", "'voucher.created'", "", "return { message = 'x', colour = 'red' }"));
    char err[1024];
    fw_rules *r = open_rules(&e, NULL, 0, err, sizeof err);
    assert_string_equal(err, "");
    fw_hit_list h = {0};
    tl_feed(&e, r, "fiscal.voucher.101001", TL_VOUCHER("ZF1", "12.34"), &h);

    const fw_hit *t = tl_find(&h, "f_table", NULL);
    assert_non_null(t);
    assert_string_equal(t->level, "red");
    assert_string_equal(t->key, "k1");
    assert_int_equal(t->shadow, 0);
    assert_int_equal(json_integer_value(json_object_get(t->details, "amount")), 1234);
    assert_true(json_is_real(json_object_get(t->details, "ratio")));
    assert_int_equal(json_array_size(json_object_get(t->details, "list")), 2);
    assert_true(json_is_object(json_object_get(t->details, "none")));

    assert_int_equal(tl_count(&h, "g_list"), 2);
    const fw_hit *one = tl_find(&h, "g_list", "ZF1");
    assert_string_equal(one->key, "1");
    assert_string_equal(one->level, "yellow");
    assert_string_equal(one->unit_code, "101001");
    const fw_hit *two = tl_find(&h, "g_list", "ZB9");
    assert_string_equal(two->subject_kind, "indicator");
    assert_string_equal(two->unit_code, "999");
    assert_null(tl_find(&h, "h_nil", NULL));
    assert_null(tl_find(&h, "h_false", NULL));
    assert_null(tl_find(&h, "h_empty", NULL));

    const fw_hit *bad = tl_find(&h, "rule_error", "i_bad");
    assert_non_null(bad);
    assert_non_null(strstr(bad->message, "check returned a number"));
    const fw_hit *boom = tl_find(&h, "rule_error", "j_err");
    assert_non_null(boom);
    assert_non_null(strstr(boom->message, "j_err.lua:3: boom"));
    assert_string_equal(boom->event_id, "evt-ZF1");
    const fw_hit *field = tl_find(&h, "rule_error", "k_field");
    assert_non_null(strstr(field->message, "unknown field 'colour'"));
    assert_int_equal(h.n, 6);
    fw_hit_list_free(&h);
    fw_rules_free(r);
    tl_close(&e);
}

static void params_from_config_and_shadow(void **state)
{
    (void)state;
    tl_env e;
    tl_open(&e);
    tl_write(e.dir, "p_rule.lua",
             RULE("p_rule", "'voucher.created'",
                  "  params = { limit = 100, words = { 'x' }, share = 0.5, on = true, label = "
                  "'a' },\n",
                  "return ('%%d %%s %%s %%s %%s'):format(ctx.params.limit, "
                  "table.concat(ctx.params.words, '+'), ctx.params.share, "
                  "tostring(ctx.params.on), ctx.params.label)"));
    tl_write(e.dir, "s_rule.lua",
             "return { id = 's_rule', name = 's', level = 'red', mode = 'shadow',\n"
             "  on = { 'voucher.created' }, check = function() return 'shadowed' end }\n");
    tl_write(e.dir, "m_rule.lua", RULE("m_rule", "'voucher.created'", "", "return 'm'"));
    fw_config *c = fw_config_new();
    fw_config_add_prefix(c, "rule.");
    char err[1024];
    assert_int_equal(fw_config_set(c, "rule.p_rule.limit", "5", err, sizeof err), 0);
    assert_int_equal(fw_config_set(c, "rule.p_rule.words", "y, z", err, sizeof err), 0);
    assert_int_equal(fw_config_set(c, "rule.p_rule.share", "0.25", err, sizeof err), 0);
    assert_int_equal(fw_config_set(c, "rule.p_rule.on", "no", err, sizeof err), 0);
    assert_int_equal(fw_config_set(c, "rule.p_rule.label", "b", err, sizeof err), 0);
    assert_int_equal(fw_config_set(c, "rule.m_rule.mode", "shadow", err, sizeof err), 0);
    fw_rules *r = open_rules(&e, c, 0, err, sizeof err);
    assert_string_equal(err, "");
    fw_hit_list h = {0};
    tl_feed(&e, r, "fiscal.voucher.101001", TL_VOUCHER("ZF1", "1.00"), &h);
    assert_string_equal(tl_find(&h, "p_rule", NULL)->message, "5 y+z 0.25 false b");
    assert_int_equal(tl_find(&h, "p_rule", NULL)->shadow, 0);
    assert_int_equal(tl_find(&h, "s_rule", NULL)->shadow, 1);
    assert_int_equal(tl_find(&h, "m_rule", NULL)->shadow, 1);
    fw_hit_list_free(&h);
    fw_rules_free(r);

    /* An override of a param the rule does not have, or of the wrong type,
     * is a load problem naming the rule. */
    assert_int_equal(fw_config_set(c, "rule.p_rule.nope", "1", err, sizeof err), 0);
    r = open_rules(&e, c, 0, err, sizeof err);
    assert_non_null(strstr(err, "[rule.p_rule]"));
    assert_non_null(strstr(err, "no param 'nope'"));
    assert_int_equal(fw_rules_count(r), 2);
    fw_rules_free(r);
    fw_config_free(c);
    tl_close(&e);
}

static void validation_names_file_and_line(void **state)
{
    (void)state;
    static const struct {
        const char *file, *text, *want;
    } cases[] = {
        {"v_unknown.lua",
         "return { id = 'v_unknown', name = 'n', level = 'red',\n"
         "  on = { 'voucher.created' },\n  colour = 'red',\n  check = function() end }\n",
         "v_unknown.lua:3: unknown key 'colour'"},
        {"v_id.lua",
         "return { id = 'other', name = 'n', level = 'red', on = { 'tick' }, check = "
         "function() end }\n",
         "v_id.lua:1: id 'other' does not match the file name"},
        {"v_level.lua",
         "return { id = 'v_level', name = 'n', level = 'purple', on = { 'tick' }, check = "
         "function() end }\n",
         "v_level.lua:1: level must be"},
        {"v_on.lua",
         "return { id = 'v_on', name = 'n', level = 'red', on = { 'voucher.eaten' }, check = "
         "function() end }\n",
         "unknown event name 'voucher.eaten'"},
        {"v_params.lua",
         "return { id = 'v_params', name = 'n', level = 'red', on = { 'tick' },\n"
         "  params = { f = function() end }, check = function() end }\n",
         "params.f: must be a number, string, boolean or array"},
        {"v_check.lua", "return { id = 'v_check', name = 'n', level = 'red', on = { 'tick' } }\n",
         "check must be a function"},
        {"v_syntax.lua", "return { id = 'v_syntax',\n  name = = 'n' }\n", "v_syntax.lua:2:"},
        {"v_mode.lua",
         "return { id = 'v_mode', name = 'n', level = 'red', on = { 'tick' }, mode = 'loud', "
         "check = function() end }\n",
         "mode must be"},
        {"Bad-Name.lua", "return {}", NULL},
    };
    tl_env e;
    tl_open(&e);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        tl_write(e.dir, cases[i].file, "%s", cases[i].text);
    tl_write(e.dir, "v_test_only.test.lua", "return {}\n");
    char err[4096];
    fw_rules *r = open_rules(&e, NULL, 0, err, sizeof err);
    assert_int_equal(fw_rules_count(r), 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (cases[i].want && !strstr(err, cases[i].want))
            fail_msg("\"%s\" not in: %s", cases[i].want, err);
    assert_null(strstr(err, "Bad-Name"));
    assert_null(strstr(err, "v_test_only"));
    fw_rules_free(r);

    char *argv[] = {"check", e.dir};
    assert_int_equal(fw_rules_cli_main(2, argv, NULL), 1);
    char *usage[] = {"frobnicate"};
    assert_int_equal(fw_rules_cli_main(1, usage, NULL), 2);
    tl_close(&e);
}

static void ctx_functions(void **state)
{
    (void)state;
    tl_env e;
    tl_open(&e);
    tl_write(
        e.dir, "x_ctx.lua",
        RULE("x_ctx", "'voucher.created'", "",
             "local ind = ctx.indicator(v.indicator_id)\n"
             "local ok, why, birth = ctx.id_check('411202198001011236')\n"
             "local bad_ok, bad_why = ctx.id_check('411202198001011237')\n"
             "local t = ctx.time(ctx.now())\n"
             "local hist = ctx.history{ unit = v.unit_code, since = 0 }\n"
             "local words = ctx.list('sensitive_words')\n"
             "local n = 0; for w in pairs(words) do n = n + 1 end\n"
             "return { message = 'ctx', details = {\n"
             "  yuan = ctx.yuan(-50), neg = ctx.yuan(123456789),\n"
             "  holiday = ctx.is_workday('2024-10-01'), makeup = ctx.is_workday('2024-09-29'),\n"
             "  saturday = ctx.is_workday('2024-06-08'), today = ctx.is_workday(ctx.now()),\n"
             "  gift = words['礼品'] == true, nwords = n, missing = words['苹果'] == nil,\n"
             "  id_ok = ok, birth = birth, bad_ok = bad_ok, bad_why = bad_why,\n"
             "  len = ctx.utf8len('三门峡x'), has = ctx.contains(v.purpose, '办公'),\n"
             "  date = ctx.date(ctx.now()), wday = t.wday, hour = t.hour,\n"
             "  midnight = ctx.parse_time('2024-06-03'),\n"
             "  rfc = ctx.parse_time('2024-06-03T10:15:00+08:00'), junk = "
             "ctx.parse_time('x') == nil,\n"
             "  available = ind.available, salary = ind.flags.salary,\n"
             "  count = hist.count, total = hist.total, event = ctx.event,\n"
             "  nov = ctx.voucher('NOPE') == nil } }"));
    char err[1024];
    fw_rules *r = open_rules(&e, NULL, 0, err, sizeof err);
    assert_string_equal(err, "");
    fw_hit_list h = {0};
    tl_feed(&e, r, "fiscal.indicator.101001", TL_ALLOCATE("ZB2024-101001-0001", "1000.00"), &h);
    tl_feed(&e, r, "fiscal.voucher.101001", TL_VOUCHER("ZF0", "100.00"), &h);
    fw_hit_list_clear(&h);
    tl_feed(&e, r, "fiscal.voucher.101001", TL_VOUCHER("ZF1", "1.00"), &h);
    assert_int_equal(h.n, 1);
    if (strcmp(h.items[0].rule, "x_ctx") != 0)
        fail_msg("%s", h.items[0].message);
    json_t *d = h.items[0].details;
    assert_string_equal(json_string_value(json_object_get(d, "yuan")), "-0.50");
    assert_string_equal(json_string_value(json_object_get(d, "neg")), "1234567.89");
    assert_true(json_is_false(json_object_get(d, "holiday")));
    assert_true(json_is_true(json_object_get(d, "makeup")));
    assert_true(json_is_false(json_object_get(d, "saturday")));
    assert_true(json_is_true(json_object_get(d, "today")));
    assert_true(json_is_true(json_object_get(d, "gift")));
    assert_true(json_integer_value(json_object_get(d, "nwords")) >= 10);
    assert_true(json_is_true(json_object_get(d, "missing")));
    assert_true(json_is_true(json_object_get(d, "id_ok")));
    assert_string_equal(json_string_value(json_object_get(d, "birth")), "1980-01-01");
    assert_true(json_is_false(json_object_get(d, "bad_ok")));
    assert_string_equal(json_string_value(json_object_get(d, "bad_why")), "check digit mismatch");
    assert_int_equal(json_integer_value(json_object_get(d, "len")), 4);
    assert_true(json_is_true(json_object_get(d, "has")));
    assert_string_equal(json_string_value(json_object_get(d, "date")), "2024-06-03");
    assert_int_equal(json_integer_value(json_object_get(d, "wday")), 1);
    assert_int_equal(json_integer_value(json_object_get(d, "hour")), 10);
    assert_int_equal(json_integer_value(json_object_get(d, "midnight")), 1717344000);
    assert_int_equal(json_integer_value(json_object_get(d, "rfc")), 1717380900);
    assert_true(json_is_true(json_object_get(d, "junk")));
    /* pre-state: ZF0 froze 100.00, ZF1 not yet applied */
    assert_int_equal(json_integer_value(json_object_get(d, "available")), 90000);
    assert_true(json_is_true(json_object_get(d, "salary")));
    assert_int_equal(json_integer_value(json_object_get(d, "count")), 1);
    assert_int_equal(json_integer_value(json_object_get(d, "total")), 10000);
    assert_string_equal(json_string_value(json_object_get(d, "event")), "voucher.created");
    assert_true(json_is_true(json_object_get(d, "nov")));
    fw_hit_list_free(&h);
    fw_rules_free(r);
    tl_close(&e);
}

/* ctx.find_word: the list word that occurs earliest (ties: the longer),
 * its byte position, nil for none; an unknown list is an error. */
static void ctx_find_word(void **state)
{
    (void)state;
    tl_env e;
    tl_open(&e);
    char etc[1100], lists[1200], path[1300];
    snprintf(etc, sizeof etc, "%s/etc", e.dir);
    snprintf(lists, sizeof lists, "%s/lists", etc);
    assert_int_equal(mkdir(etc, 0700), 0);
    assert_int_equal(mkdir(lists, 0700), 0);
    snprintf(path, sizeof path, "%s/t_words.txt", lists);
    assert_int_equal(fw_t_write_file(path, "# test words\nab\nabc x\nb\n烟\n礼品 gift\n"), 0);
    char rules[1100];
    snprintf(rules, sizeof rules, "%s/rules", e.dir);
    assert_int_equal(mkdir(rules, 0700), 0);
    tl_write(rules, "fw.lua",
             RULE("fw", "'voucher.created'", "",
                  "local function f(s) local w, at = ctx.find_word(s, 't_words')\n"
                  "  return tostring(w) .. '@' .. tostring(at) end\n"
                  "local ok, err = pcall(ctx.find_word, 'x', 'no_such_list')\n"
                  "return table.concat({ f('zzabcz'), f('zzbab'), f('xyz'), f(''), f('a'),\n"
                  "  f('买礼品和烟'), f('烟q'), f('aaaaaaaaaaaaab'),\n"
                  "  tostring(ok), tostring(err):match('no list') or err }, ' ')"));
    fw_rules_opts o = {.dir = rules, .etc_dir = etc, .ledger = e.lg};
    char err[1024];
    fw_rules *r = fw_rules_new(&o, err, sizeof err);
    assert_non_null(r);
    assert_string_equal(err, "");
    fw_hit_list h = {0};
    tl_feed(&e, r, "fiscal.voucher.101001", TL_VOUCHER("ZF1", "1.00"), &h);
    assert_int_equal(h.n, 1);
    assert_string_equal(h.items[0].message, "abc@3 b@3 nil@nil nil@nil nil@nil 礼品@4 烟@1 "
                                            "ab@13 false no list");
    fw_hit_list_free(&h);
    fw_rules_free(r);
    tl_close(&e);
}

/* fw_etc_find_word (the index behind ctx.find_word) against the plain
 * definition, on random lists and texts over a small alphabet of 1- to
 * 3-byte characters (so words overlap, share first bytes, and a match may
 * start inside a character). */
static void find_word_index_matches_definition(void **state)
{
    (void)state;
    static const char *const chars[] = {"a", "b", "é", "烟", "酒"};
    char *dir = fw_t_tmpdir("words");
    char lists[1100], path[1200];
    snprintf(lists, sizeof lists, "%s/lists", dir);
    assert_int_equal(mkdir(lists, 0700), 0);
    srand(7);
    for (int round = 0; round < 200; round++) {
        char words[16][16], file[512] = "";
        int nw = 1 + rand() % 8;
        for (int i = 0; i < nw; i++) {
            words[i][0] = '\0';
            for (int k = 1 + rand() % 3; k > 0; k--)
                strcat(words[i], chars[rand() % 5]);
            strcat(file, words[i]);
            strcat(file, "\n");
        }
        snprintf(path, sizeof path, "%s/w.txt", lists);
        assert_int_equal(fw_t_write_file(path, file), 0);
        char err[256];
        fw_etc *etc = fw_etc_load(dir, err, sizeof err);
        assert_non_null(etc);
        for (int t = 0; t < 50; t++) {
            char text[128] = "";
            for (int k = rand() % 12; k > 0; k--)
                strcat(text, chars[rand() % 5]);
            size_t n = strlen(text);
            /* the definition: earliest start, then longer, then first in the file */
            int best = -1;
            size_t best_at = 0;
            for (int i = 0; i < nw; i++) {
                const char *p = strstr(text, words[i]);
                if (!p)
                    continue;
                size_t at = (size_t)(p - text);
                if (best < 0 || at < best_at ||
                    (at == best_at && strlen(words[i]) > strlen(words[best]))) {
                    best = i;
                    best_at = at;
                }
            }
            const char *w = NULL;
            size_t wl = 0, at = 0;
            int rc = fw_etc_find_word(etc, "w", text, n, &w, &wl, &at);
            if (rc != (best >= 0) || (best >= 0 && (at != best_at || wl != strlen(words[best]) ||
                                                    memcmp(w, words[best], wl) != 0)))
                fail_msg("list %s text '%s': got %d '%.*s'@%zu, expected '%s'@%zu", file, text, rc,
                         (int)wl, w ? w : "", at, best >= 0 ? words[best] : "-", best_at);
        }
        assert_int_equal(
            fw_etc_find_word(etc, "nope", "a", 1, &(const char *){0}, &(size_t){0}, &(size_t){0}),
            -1);
        fw_etc_unref(etc);
    }
    fw_t_rmtree(dir);
    free(dir);
}

#define V_RULE(msg)                                                                                \
    "return { id = 'ver', name = 'v', level = 'blue', on = { 'voucher.created' },\n"               \
    "  check = function(v, ctx) if v.amount > 100 then return '" msg "' end end }\n"

static const char *eval_message(tl_env *e, fw_rules *r, const char *no)
{
    static char msg[256];
    char json[4096];
    fw_hit_list h = {0};
    snprintf(json, sizeof json, TL_VOUCHER("%s", "5.00"), no, no);
    tl_feed(e, r, "fiscal.voucher.101001", json, &h);
    snprintf(msg, sizeof msg, "%s", h.n ? h.items[0].message : "(none)");
    fw_hit_list_free(&h);
    return msg;
}

static void version_and_reload(void **state)
{
    (void)state;
    tl_env e;
    tl_open(&e);
    tl_write(e.dir, "ver.lua", V_RULE("one"));
    char err[1024], v1[17], v2[17];
    fw_rules *r = open_rules(&e, NULL, 0, err, sizeof err);
    snprintf(v1, sizeof v1, "%s", fw_rules_version(r));
    assert_int_equal(strlen(v1), 16);
    assert_string_equal(eval_message(&e, r, "ZF1"), "one");

    assert_int_equal(fw_rules_reload(r, err, sizeof err), 0);
    assert_string_equal(fw_rules_version(r), v1); /* same content, same version */

    tl_write(e.dir, "ver.lua", V_RULE("two"));
    assert_int_equal(fw_rules_reload(r, err, sizeof err), 0);
    snprintf(v2, sizeof v2, "%s", fw_rules_version(r));
    assert_string_not_equal(v1, v2);
    assert_string_equal(eval_message(&e, r, "ZF2"), "two");

    /* Broken file: reported with its line, the old version keeps running. */
    tl_write(e.dir, "ver.lua", "return { id = 'ver',\n  check = function( }\n");
    assert_int_equal(fw_rules_reload(r, err, sizeof err), 1);
    assert_non_null(strstr(err, "ver.lua:2:"));
    assert_string_equal(fw_rules_version(r), v2);
    assert_int_equal(fw_rules_count(r), 1);
    assert_string_equal(eval_message(&e, r, "ZF3"), "two");

    /* A new file next to it loads; a deleted one goes away. */
    tl_write(e.dir, "ver.lua", V_RULE("two"));
    tl_write(e.dir, "zz.lua", RULE("zz", "'tick'", "", "return nil"));
    assert_int_equal(fw_rules_reload(r, err, sizeof err), 0);
    assert_int_equal(fw_rules_count(r), 2);
    assert_string_not_equal(fw_rules_version(r), v2);
    char path[1024];
    snprintf(path, sizeof path, "%s/zz.lua", e.dir);
    unlink(path);
    assert_int_equal(fw_rules_reload(r, err, sizeof err), 0);
    assert_int_equal(fw_rules_count(r), 1);
    assert_string_equal(fw_rules_version(r), v2);
    fw_rules_free(r);
    tl_close(&e);
}

static void reload_keeps_old_when_tests_fail(void **state)
{
    (void)state;
    tl_env e;
    tl_open(&e);
    tl_write(e.dir, "ver.lua", V_RULE("one"));
    tl_write(e.dir, "ver.test.lua",
             "return {\n"
             "  { name = 'hit over one yuan', events = { fx.voucher{ amount = '1.01' } },\n"
             "    expect = { { level = 'blue', match = 'one' } } },\n"
             "  { name = 'near miss', events = { fx.voucher{ amount = '1.00' } }, expect = {} },\n"
             "}\n");
    char err[1024];
    fw_rules *r = open_rules(&e, NULL, 1, err, sizeof err);
    assert_string_equal(err, "");
    assert_int_equal(fw_rules_count(r), 1);
    char v1[17];
    snprintf(v1, sizeof v1, "%s", fw_rules_version(r));

    /* v2 loads but fails its own cases: rejected, v1 stays. */
    tl_write(e.dir, "ver.lua", V_RULE("uno"));
    assert_int_equal(fw_rules_reload(r, err, sizeof err), 1);
    assert_non_null(strstr(err, "1 of 2 test cases failed"));
    assert_string_equal(fw_rules_version(r), v1);
    assert_string_equal(eval_message(&e, r, "ZF1"), "one");
    fw_rules_free(r);
    tl_close(&e);
}

static void test_runner_and_cli(void **state)
{
    (void)state;
    tl_env e;
    tl_open(&e);
    tl_write(e.dir, "cash.lua",
             "return { id = 'cash', name = '现金', level = 'orange', on = { 'voucher.created' },\n"
             "  params = { limit = 2000000 },\n"
             "  check = function(v, ctx)\n"
             "    if v.settle_method == 'cash' and v.amount > ctx.params.limit then\n"
             "      return { message = '现金 ' .. ctx.yuan(v.amount), key = v.payee_account }\n"
             "    end\n"
             "  end }\n");
    tl_write(e.dir, "cash.test.lua",
             "return {\n"
             "  { name = 'hit', events = { fx.indicator{}, fx.voucher{ settle_method = 'cash', "
             "amount = '20000.01' } },\n"
             "    expect = { { level = 'orange', match = '现金 20000.01', key = "
             "'41050166880800000123', subject = 'ZF2024FX0001' } } },\n"
             "  { name = 'params override', params = { limit = 100 },\n"
             "    events = { fx.voucher{ settle_method = 'cash', amount = '1.01' } },\n"
             "    expect = { { match = '现金' } } },\n"
             "  { name = 'wrong on purpose', events = { fx.voucher{ settle_method = 'cash', "
             "amount = '1.00' } },\n"
             "    expect = { { level = 'orange' } } },\n"
             "  { name = 'malformed event', events = { fx.voucher{ amount = 5 } }, expect = {} },\n"
             "  { name = 'bad param', params = { limit = 'x' }, events = {}, expect = {} },\n"
             "}\n");
    tl_write(e.dir, "flow.lua",
             "return { id = 'flow', name = '流程', level = 'yellow', on = { 'voucher.paid', "
             "'tick' },\n"
             "  check = function(v, ctx)\n"
             "    if ctx.event == 'tick' then\n"
             "      local out = {}\n"
             "      for _, s in ipairs(ctx.sent_before(v.at)) do\n"
             "        out[#out + 1] = { message = 'stuck ' .. s.voucher_no, subject = { kind = "
             "'voucher', id = s.voucher_no }, unit = s.unit_code }\n"
             "      end\n"
             "      return out\n"
             "    end\n"
             "    local st = ctx.voucher(v.voucher_no)\n"
             "    return 'paid from ' .. st.state\n"
             "  end }\n");
    tl_write(e.dir, "flow.test.lua",
             "local v = fx.voucher{}\n"
             "return {\n"
             "  { name = 'paid sees pre-state', events = { fx.indicator{}, v,\n"
             "      fx.voucher_event{ event = 'signed' }, fx.voucher_event{ event = 'sent' }, "
             "fx.voucher_event{ event = 'paid', "
             "occurred_at = '2024-06-05T10:00:00+08:00' } },\n"
             "    expect = { { match = 'paid from sent' } } },\n"
             "  { name = 'stuck at tick', events = { fx.indicator{}, v, fx.voucher_event{ "
             "voucher_no = v.data.voucher_no, event = 'signed' },\n"
             "      fx.voucher_event{ voucher_no = v.data.voucher_no, event = 'sent' },\n"
             "      fx.tick{ at = '2024-06-09T10:00:00+08:00' } },\n"
             "    expect = { { subject = v.data.voucher_no, match = 'stuck' } } },\n"
             "}\n");
    char path[1024], err[1024];
    snprintf(path, sizeof path, "%s/cash.lua", e.dir);
    char *outbuf = NULL;
    size_t outlen = 0;
    FILE *out = open_memstream(&outbuf, &outlen);
    int passed = 0, failed = 0;
    char etc[1024];
    snprintf(etc, sizeof etc, "%s/etc", fw_t_src());
    assert_int_equal(fw_rules_test_file(path, etc, out, &passed, &failed, err, sizeof err), 1);
    fclose(out);
    assert_int_equal(passed, 2);
    assert_int_equal(failed, 3);
    assert_non_null(strstr(outbuf, "ok   cash: hit\n"));
    assert_non_null(strstr(outbuf, "ok   cash: params override\n"));
    assert_non_null(strstr(outbuf, "FAIL cash: wrong on purpose: expected 1 hit(s), got 0"));
    assert_non_null(strstr(outbuf, "FAIL cash: malformed event: event 1"));
    assert_non_null(strstr(outbuf, "FAIL cash: bad param: params:"));
    free(outbuf);

    snprintf(path, sizeof path, "%s/flow.lua", e.dir);
    passed = failed = 0;
    err[0] = '\0';
    if (fw_rules_test_file(path, etc, NULL, &passed, &failed, err, sizeof err) != 0)
        fail_msg("flow: %d failed %s", failed, err);
    assert_int_equal(passed, 2);

    char *argv[] = {"test", e.dir};
    assert_int_equal(fw_rules_cli_main(2, argv, NULL), 1);
    snprintf(path, sizeof path, "%s/cash.test.lua", e.dir);
    unlink(path);
    assert_int_equal(fw_rules_cli_main(2, argv, NULL), 0);
    char *check[] = {"check", e.dir};
    assert_int_equal(fw_rules_cli_main(2, check, NULL), 0);
    tl_close(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dispatch_by_on),
        cmocka_unit_test(return_forms),
        cmocka_unit_test(params_from_config_and_shadow),
        cmocka_unit_test(validation_names_file_and_line),
        cmocka_unit_test(ctx_functions),
        cmocka_unit_test(ctx_find_word),
        cmocka_unit_test(find_word_index_matches_definition),
        cmocka_unit_test(version_and_reload),
        cmocka_unit_test(reload_keeps_old_when_tests_fail),
        cmocka_unit_test(test_runner_and_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
