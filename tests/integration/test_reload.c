/*
 * test_reload.c - rules hot reload (contract §5, §9) and shadow rules (§4)
 * from outside the process.
 *
 * The daemon runs on a rules directory of its own (a few rules of the
 * shipped pack copied with their test cases).  While it runs, the test
 * adds, breaks and replaces rule files and then sends SIGHUP (or lets the
 * directory watch notice), publishes events and looks at the alerts they
 * raise and the `ruleset` version those alerts carry:
 *
 * - a new rule with passing cases: its hits appear, under a new ruleset;
 * - a rule file with a syntax error: reported in the log, the previous
 *   version keeps running, the ruleset does not change;
 * - a new rule whose own case fails: reported, not loaded;
 * - the directory watch reloads without a signal;
 * - a shadow rule: its hits are stored, never published on NATS, and never
 *   make the pre-payment check block;
 * - SIGTERM: exit 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <nats/nats.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/support/harness.h"

#define UNIT "101001"
#define IND "ZB2024-101001-RLD1" /* 1,000,000.00 */

/* ---- alerts published on fundwatch.alert.> ---- */

typedef struct feed {
    pthread_mutex_t mu;
    char **payloads;
    int n, cap;
} feed;

static void on_alert_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc, (void)sub;
    feed *f = closure;
    pthread_mutex_lock(&f->mu);
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 64;
        f->payloads = realloc(f->payloads, (size_t)f->cap * sizeof *f->payloads);
    }
    f->payloads[f->n++] = strndup(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg));
    pthread_mutex_unlock(&f->mu);
    natsMsg_Destroy(msg);
}

/* Published alerts of `rule` about voucher `vno` (vno NULL: any). */
static int feed_count(feed *f, const char *rule, const char *vno)
{
    int n = 0;
    pthread_mutex_lock(&f->mu);
    for (int i = 0; i < f->n; i++) {
        json_t *j = json_loads(f->payloads[i], 0, NULL);
        const char *r = json_string_value(json_object_get(j, "rule"));
        const char *id = json_string_value(json_object_get(json_object_get(j, "subject"), "id"));
        if (r && strcmp(r, rule) == 0 && (!vno || (id && strcmp(id, vno) == 0)))
            n++;
        json_decref(j);
    }
    pthread_mutex_unlock(&f->mu);
    return n;
}

/* ---- environment ---- */

typedef struct env {
    char *tmp;
    char rules[600];
    fw_t_nats nats;
    fw_t_daemon d;
    natsConnection *nc;
    natsSubscription *sub;
    feed feed;
    int vouchers; /* numbering of published vouchers */
} env;

static int ready(void *ud)
{
    env *e = ud;
    return fw_t_http(e->d.http_port, "GET", "/readyz", NULL, NULL, NULL) == 200;
}

static void copy_file(const char *from, const char *to)
{
    char *text = fw_t_read_file(from, NULL);
    assert_non_null(text);
    assert_int_equal(fw_t_write_file(to, text), 0);
    free(text);
}

/* Write rules/<name> as a whole: a temp name the loader and the watch
 * ignore, then rename. */
static void put_rule_file(env *e, const char *name, const char *text)
{
    char tmp[700], path[700];
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", e->rules, name);
    snprintf(path, sizeof path, "%s/%s", e->rules, name);
    assert_int_equal(fw_t_write_file(tmp, text), 0);
    assert_int_equal(rename(tmp, path), 0);
}

static void copy_pack_rule(env *e, const char *id)
{
    char from[700], to[700];
    snprintf(from, sizeof from, "%s/rules/%s.lua", fw_t_src(), id);
    snprintf(to, sizeof to, "%s/%s.lua", e->rules, id);
    copy_file(from, to);
    snprintf(from, sizeof from, "%s/rules/%s.test.lua", fw_t_src(), id);
    snprintf(to, sizeof to, "%s/%s.test.lua", e->rules, id);
    copy_file(from, to);
}

static void start(env *e, const char *extra_ini)
{
    e->tmp = fw_t_tmpdir("reload");
    assert_non_null(e->tmp);
    pthread_mutex_init(&e->feed.mu, NULL);
    snprintf(e->rules, sizeof e->rules, "%s/rules", e->tmp);
    mkdir(e->rules, 0755);
    copy_pack_rule(e, "over_balance");
    copy_pack_rule(e, "cash_over_limit");
    copy_pack_rule(e, "vague_purpose");
    /* The SMS templates too, so that a test may edit them. */
    static const char *const kinds[] = {"payroll", "reimburse", "subsidy", "alert"};
    char tdir[700];
    snprintf(tdir, sizeof tdir, "%s/templates", e->tmp);
    mkdir(tdir, 0755);
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        char from[700], to[800];
        snprintf(from, sizeof from, "%s/etc/templates/%s.txt", fw_t_src(), kinds[i]);
        snprintf(to, sizeof to, "%s/%s.txt", tdir, kinds[i]);
        copy_file(from, to);
    }
    assert_int_equal(fw_t_nats_start(&e->nats, e->tmp), 0);
    assert_int_equal(natsConnection_ConnectTo(&e->nc, e->nats.url), NATS_OK);
    assert_int_equal(
        natsConnection_Subscribe(&e->sub, e->nc, "fundwatch.alert.>", on_alert_msg, &e->feed),
        NATS_OK);
    assert_int_equal(natsConnection_Flush(e->nc), NATS_OK);
    char dir[600];
    snprintf(dir, sizeof dir, "%s/daemon", e->tmp);
    mkdir(dir, 0755);
    char ini[1400];
    snprintf(ini, sizeof ini, "%s[sms]\ntemplates = %s\nquiet_hours = off\n", extra_ini, tdir);
    assert_int_equal(fw_t_daemon_start(&e->d, dir, e->nats.url, e->rules, ini), 0);
    assert_true(fw_t_wait_until(ready, e, 30000));
}

static int setup_sighup(void **state)
{
    env *e = calloc(1, sizeof *e);
    /* No directory watch here, so only the signal can reload. */
    start(e, "[rules]\nwatch = false\n");
    *state = e;
    return 0;
}

static int setup_watch(void **state)
{
    env *e = calloc(1, sizeof *e);
    start(e, "");
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    env *e = *state;
    if (e->d.pid)
        fw_t_daemon_kill(&e->d, SIGKILL);
    natsSubscription_Destroy(e->sub);
    natsConnection_Destroy(e->nc);
    for (int i = 0; i < e->feed.n; i++)
        free(e->feed.payloads[i]);
    free(e->feed.payloads);
    pthread_mutex_destroy(&e->feed.mu);
    fw_t_nats_stop(&e->nats);
    fw_t_rmtree(e->tmp);
    free(e->tmp);
    free(e);
    return 0;
}

/* ---- helpers ---- */

static void publish1(env *e, const char *subject, const char *body)
{
    assert_int_equal(fw_t_js_publish(e->nats.url, 1, &subject, &body), 1);
}

static void wait_event(env *e, const char *evt_id)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM events WHERE id = '%s'", evt_id);
    if (!fw_t_wait_sql(e->d.db, sql, 1, 60000))
        fail_msg("event %s never stored", evt_id);
}

static void allocate(env *e)
{
    publish1(
        e, "fiscal.indicator." UNIT,
        "{\"id\":\"rld-ind\",\"op\":\"allocate\",\"occurred_at\":\"2024-01-05T09:00:00+08:00\","
        "\"doc_no\":\"三财预〔2024〕9号\",\"indicator_id\":\"" IND "\",\"year\":2024,"
        "\"unit_code\":\"" UNIT "\",\"func_class\":\"2050201\",\"econ_class\":\"30201\","
        "\"fund_type\":\"1\",\"amount\":\"1000000.00\"}");
    wait_event(e, "rld-ind");
}

static void voucher_json(char *buf, size_t cap, const char *id_member, const char *vno,
                         const char *purpose)
{
    snprintf(buf, cap,
             "{%s\"event\":\"created\",\"occurred_at\":\"2024-06-03T10:15:00+08:00\","
             "\"voucher_no\":\"%s\",\"year\":2024,\"unit_code\":\"" UNIT "\","
             "\"unit_name\":\"三门峡市教育局\",\"indicator_id\":\"" IND "\","
             "\"func_class\":\"2050201\",\"econ_class\":\"30201\",\"pay_method\":\"direct\","
             "\"settle_method\":\"transfer\",\"payee_name\":\"三门峡市某某办公用品有限公司\","
             "\"payee_account\":\"4105016688080000%04d\",\"payee_bank\":\"中国建设银行\","
             "\"payee_type\":\"company\",\"fund_type\":\"1\",\"amount\":\"100.00\","
             "\"purpose\":\"%s\"}",
             id_member, vno, (int)(strlen(vno) * 37 % 10000), purpose);
}

/* Create a voucher with this purpose; returns its number (static buffer
 * per call site is not needed: the caller passes out). */
static void create_voucher(env *e, const char *purpose, char *vno, size_t vlen)
{
    char id[64], idm[80], body[2048];
    e->vouchers++;
    snprintf(vno, vlen, "ZF2024RLD%04d", e->vouchers);
    snprintf(id, sizeof id, "rld-v%d", e->vouchers);
    snprintf(idm, sizeof idm, "\"id\":\"%s\",", id);
    voucher_json(body, sizeof body, idm, vno, purpose);
    publish1(e, "fiscal.voucher." UNIT, body);
    wait_event(e, id);
}

/* The ruleset of the alert of `rule` on voucher vno into out; 0, or -1
 * when there is no such alert. */
static int alert_ruleset(env *e, const char *rule, const char *vno, char *out, size_t len,
                         int *shadow)
{
    char path[256], *resp = NULL;
    snprintf(path, sizeof path, "/api/alerts?rule=%s&limit=1000", rule);
    assert_int_equal(fw_t_http(e->d.http_port, "GET", path, "viewer-token", NULL, &resp), 200);
    json_t *j = json_loads(resp, 0, NULL);
    free(resp);
    assert_non_null(j);
    size_t i;
    json_t *a;
    int found = -1;
    json_array_foreach(json_object_get(j, "items"), i, a)
    {
        const char *id = json_string_value(json_object_get(json_object_get(a, "subject"), "id"));
        if (id && strcmp(id, vno) == 0) {
            snprintf(out, len, "%s", json_string_value(json_object_get(a, "ruleset")));
            if (shadow)
                *shadow = json_is_true(json_object_get(a, "shadow"));
            found = 0;
        }
    }
    json_decref(j);
    return found;
}

static int log_count(env *e, const char *needle)
{
    char *log = fw_t_read_file(e->d.log, NULL);
    int n = 0;
    for (const char *p = log; p && (p = strstr(p, needle)); p += strlen(needle))
        n++;
    free(log);
    return n;
}

typedef struct log_wait {
    env *e;
    const char *needle;
    int want;
} log_wait;

static int log_reaches(void *ud)
{
    log_wait *w = ud;
    return log_count(w->e, w->needle) >= w->want;
}

/* SIGHUP and wait for the reload to be logged. */
static void sighup(env *e)
{
    log_wait w = {e, "event=rules.reloaded", log_count(e, "event=rules.reloaded") + 1};
    assert_int_equal(kill(e->d.pid, SIGHUP), 0);
    assert_true(fw_t_wait_until(log_reaches, &w, 60000));
}

static const char hot_rule[] =
    "-- hot_keyword (orange): a test rule added while the daemon runs.\n"
    "return {\n"
    "  id = \"hot_keyword\",\n"
    "  name = \"热加载关键词\",\n"
    "  level = \"orange\",\n"
    "  on = { \"voucher.created\" },\n"
    "  params = { word = \"热加载\" },\n"
    "  check = function(v, ctx)\n"
    "    if string.find(v.purpose or \"\", ctx.params.word, 1, true) then\n"
    "      return (\"摘要含“%s”，支付金额 %s 元\"):format(ctx.params.word, ctx.yuan(v.amount))\n"
    "    end\n"
    "  end,\n"
    "}\n";

static const char hot_rule_test[] =
    "return {\n"
    "  { name = \"hit\",\n"
    "    events = { fx.indicator{ amount = \"100000.00\" },\n"
    "               fx.voucher{ amount = \"100.00\", purpose = \"热加载测试采购\" } },\n"
    "    expect = { { level = \"orange\" } } },\n"
    "  { name = \"miss\",\n"
    "    events = { fx.indicator{ amount = \"100000.00\" },\n"
    "               fx.voucher{ amount = \"100.00\" } },\n"
    "    expect = {} },\n"
    "}\n";

typedef struct feed_wait {
    feed *f;
    const char *rule, *vno;
} feed_wait;

static int feed_has(void *ud)
{
    feed_wait *w = ud;
    return feed_count(w->f, w->rule, w->vno) > 0;
}

/* ---- tests ---- */

static void test_sighup_reload(void **state)
{
    env *e = *state;
    allocate(e);
    char v1[32], v2[32], v3[32], v4[32], r0[64], r1[64], r[64];

    /* The starting set: vague_purpose fires, hot_keyword does not exist. */
    create_voucher(e, "热加载其他", v1, sizeof v1); /* 5 chars: not vague */
    create_voucher(e, "其他", v2, sizeof v2);
    assert_int_equal(alert_ruleset(e, "vague_purpose", v2, r0, sizeof r0, NULL), 0);
    assert_int_equal(alert_ruleset(e, "hot_keyword", v1, r, sizeof r, NULL), -1);
    print_message("ruleset at start: %s\n", r0);

    /* A new rule with passing cases, then SIGHUP: its hits appear under a
     * new ruleset version. */
    put_rule_file(e, "hot_keyword.test.lua", hot_rule_test);
    put_rule_file(e, "hot_keyword.lua", hot_rule);
    /* The watch is off in this daemon: nothing happens without the signal. */
    sleep(3);
    assert_int_equal(log_count(e, "event=rules.reloaded"), 0);
    sighup(e);
    create_voucher(e, "热加载测试采购", v3, sizeof v3);
    assert_int_equal(alert_ruleset(e, "hot_keyword", v3, r1, sizeof r1, NULL), 0);
    print_message("ruleset after adding hot_keyword: %s\n", r1);
    /* The check thread has its own rule set, reloaded with the loop's. */
    char body[2048];
    voucher_json(body, sizeof body, "", "ZF2024RLDHOT", "热加载测试采购");
    natsMsg *reply = NULL;
    assert_int_equal(natsConnection_RequestString(&reply, e->nc, "fundwatch.check", body, 10000),
                     NATS_OK);
    assert_non_null(strstr(natsMsg_GetData(reply), "\"hot_keyword\""));
    natsMsg_Destroy(reply);
    assert_string_not_equal(r1, r0);
    create_voucher(e, "其他", v4, sizeof v4);
    assert_int_equal(alert_ruleset(e, "vague_purpose", v4, r, sizeof r, NULL), 0);
    assert_string_equal(r, r1);
    /* Published like any live alert. */
    feed_wait fw = {&e->feed, "hot_keyword", v3};
    assert_true(fw_t_wait_until(feed_has, &fw, 20000));
    assert_int_equal(fw_t_sql_int(e->d.db, "SELECT count(*) FROM rule_versions"), 2);

    /* A syntax error in an existing rule: reported, the old version runs
     * on, the ruleset is unchanged. */
    int failed_before = log_count(e, "event=rules.load_failed");
    put_rule_file(e, "vague_purpose.lua", "return { id = \"vague_purpose\", check = function(\n");
    sighup(e);
    assert_true(log_count(e, "event=rules.load_failed") > failed_before);
    char *log = fw_t_read_file(e->d.log, NULL);
    const char *at = strstr(log, "event=rules.load_failed");
    while (at && strstr(at + 1, "event=rules.load_failed"))
        at = strstr(at + 1, "event=rules.load_failed");
    assert_non_null(at);
    assert_non_null(strstr(at, "vague_purpose.lua:")); /* file and line */
    free(log);
    char v5[32], v6[32];
    create_voucher(e, "其他", v5, sizeof v5);
    assert_int_equal(alert_ruleset(e, "vague_purpose", v5, r, sizeof r, NULL), 0);
    assert_string_equal(r, r1);
    create_voucher(e, "热加载测试", v6, sizeof v6);
    assert_int_equal(alert_ruleset(e, "hot_keyword", v6, r, sizeof r, NULL), 0);
    assert_string_equal(r, r1);

    /* A new file that does not load at all: reported, nothing else moves. */
    failed_before = log_count(e, "event=rules.load_failed");
    put_rule_file(e, "half_written.lua", "return {\n  id = \"half_written\",\n  level = ");
    sighup(e);
    assert_true(log_count(e, "event=rules.load_failed") > failed_before);

    /* A new rule whose own test case fails: reported, not loaded. */
    put_rule_file(
        e, "failing_case.test.lua",
        "return {\n"
        "  { name = \"expects a hit it cannot get\",\n"
        "    events = { fx.indicator{ amount = \"100000.00\" },\n"
        "               fx.voucher{ amount = \"100.00\", purpose = \"办公用品采购\" } },\n"
        "    expect = { { level = \"yellow\" } } },\n"
        "}\n");
    put_rule_file(e, "failing_case.lua",
                  "return {\n"
                  "  id = \"failing_case\", name = \"用例失败的规则\", level = \"yellow\",\n"
                  "  on = { \"voucher.created\" },\n"
                  "  check = function(v, ctx)\n"
                  "    if string.find(v.purpose or \"\", \"失败用例\", 1, true) then\n"
                  "      return \"摘要含“失败用例”\"\n"
                  "    end\n"
                  "  end,\n"
                  "}\n");
    sighup(e);
    log = fw_t_read_file(e->d.log, NULL);
    assert_non_null(strstr(log, "failing_case.lua"));
    free(log);
    char v7[32];
    create_voucher(e, "失败用例：热加载测试", v7, sizeof v7);
    assert_int_equal(alert_ruleset(e, "failing_case", v7, r, sizeof r, NULL), -1);
    assert_int_equal(alert_ruleset(e, "hot_keyword", v7, r, sizeof r, NULL), 0);
    assert_string_equal(r, r1);
    assert_int_equal(fw_t_sql_int(e->d.db, "SELECT count(*) FROM alerts WHERE rule = "
                                           "'failing_case' OR rule = 'half_written'"),
                     0);

    /* Repaired: the fixed vague_purpose loads again (same text as the
     * shipped one: the ruleset comes back to r1). */
    char from[700], to[700];
    snprintf(from, sizeof from, "%s/rules/vague_purpose.lua", fw_t_src());
    snprintf(to, sizeof to, "%s/.vp.tmp", e->rules);
    copy_file(from, to);
    snprintf(from, sizeof from, "%s/vague_purpose.lua", e->rules);
    assert_int_equal(rename(to, from), 0);
    char hw[700], fc[700];
    snprintf(hw, sizeof hw, "%s/half_written.lua", e->rules);
    snprintf(fc, sizeof fc, "%s/failing_case.lua", e->rules);
    unlink(hw);
    unlink(fc);
    sighup(e);
    char v8[32];
    create_voucher(e, "其他", v8, sizeof v8);
    assert_int_equal(alert_ruleset(e, "vague_purpose", v8, r, sizeof r, NULL), 0);
    assert_string_equal(r, r1);

    /* Every live alert above was published. */
    assert_int_equal(feed_count(&e->feed, "failing_case", NULL), 0);
    assert_int_equal(fw_t_daemon_kill(&e->d, SIGTERM), 0);
}

typedef struct hits_wait {
    env *e;
    const char *rule, *vno;
} hits_wait;

static int alert_exists(void *ud)
{
    hits_wait *w = ud;
    char r[64];
    return alert_ruleset(w->e, w->rule, w->vno, r, sizeof r, NULL) == 0;
}

static int rule_versions_2(void *ud)
{
    env *e = ud;
    return fw_t_sql_int(e->d.db, "SELECT count(*) FROM rule_versions") >= 2;
}

static void test_directory_watch(void **state)
{
    env *e = *state;
    allocate(e);
    char v1[32], v2[32], r0[64], r1[64];
    create_voucher(e, "其他", v1, sizeof v1);
    assert_int_equal(alert_ruleset(e, "vague_purpose", v1, r0, sizeof r0, NULL), 0);
    /* Saved by an author; no signal. */
    put_rule_file(e, "hot_keyword.test.lua", hot_rule_test);
    put_rule_file(e, "hot_keyword.lua", hot_rule);
    assert_true(fw_t_wait_until(rule_versions_2, e, 30000));
    create_voucher(e, "热加载测试采购", v2, sizeof v2);
    hits_wait w = {e, "hot_keyword", v2};
    assert_true(fw_t_wait_until(alert_exists, &w, 10000));
    assert_int_equal(alert_ruleset(e, "hot_keyword", v2, r1, sizeof r1, NULL), 0);
    assert_string_not_equal(r1, r0);
    assert_true(log_count(e, "event=rules.reloaded") >= 1);

    /* The author deletes the rule again: it goes away, and the ruleset is
     * the starting one again (the version names the active rules). */
    log_wait lw = {e, "event=rules.reloaded", log_count(e, "event=rules.reloaded") + 1};
    char path[700];
    snprintf(path, sizeof path, "%s/hot_keyword.lua", e->rules);
    assert_int_equal(unlink(path), 0);
    assert_true(fw_t_wait_until(log_reaches, &lw, 30000));
    char v3[32], v4[32], r[64];
    create_voucher(e, "热加载测试采购", v3, sizeof v3);
    create_voucher(e, "其他", v4, sizeof v4);
    assert_int_equal(alert_ruleset(e, "vague_purpose", v4, r, sizeof r, NULL), 0);
    assert_int_equal(alert_ruleset(e, "hot_keyword", v3, r1, sizeof r1, NULL), -1);
    assert_string_equal(r, r0);
    assert_int_equal(fw_t_daemon_kill(&e->d, SIGTERM), 0);
}

static void test_shadow_rule(void **state)
{
    env *e = *state;
    allocate(e);
    /* A red rule in shadow mode, without test cases (it loads). */
    put_rule_file(e, "shadow_watch.lua",
                  "return {\n"
                  "  id = \"shadow_watch\", name = \"试运行：影子规则\", level = \"red\",\n"
                  "  mode = \"shadow\",\n"
                  "  on = { \"voucher.created\" },\n"
                  "  check = function(v, ctx)\n"
                  "    if string.find(v.purpose or \"\", \"影子\", 1, true) then\n"
                  "      return (\"试运行规则命中，支付金额 %s 元\"):format(ctx.yuan(v.amount))\n"
                  "    end\n"
                  "  end,\n"
                  "}\n");
    sighup(e);

    /* One event: a live yellow hit (short purpose) and the shadow red one. */
    char vno[32], r[64];
    create_voucher(e, "影子", vno, sizeof vno);
    int shadow = 0;
    assert_int_equal(alert_ruleset(e, "shadow_watch", vno, r, sizeof r, &shadow), 0);
    assert_true(shadow); /* stored and visible, marked shadow */
    assert_int_equal(fw_t_sql_int(e->d.db, "SELECT count(*) FROM alerts WHERE rule = "
                                           "'shadow_watch' AND level = 'red'"),
                     1);
    /* The live alert of the same event is published; the shadow one not. */
    feed_wait w = {&e->feed, "vague_purpose", vno};
    assert_true(fw_t_wait_until(feed_has, &w, 20000));
    usleep(500000);
    assert_int_equal(feed_count(&e->feed, "shadow_watch", NULL), 0);

    /* Its status changes are not published either. */
    char *resp = NULL;
    char sql[256], path[128];
    snprintf(sql, sizeof sql, "SELECT n FROM alerts WHERE rule = 'shadow_watch'");
    snprintf(path, sizeof path, "/api/alerts/AL-%06lld/transition",
             (long long)fw_t_sql_int(e->d.db, sql));
    assert_int_equal(fw_t_http(e->d.http_port, "POST", path, "super-token",
                               "{\"to\":\"acknowledged\",\"note\":\"观察中\"}", &resp),
                     200);
    free(resp);
    char v2[32];
    create_voucher(e, "其他", v2, sizeof v2); /* a live alert after it, to sync on */
    feed_wait w2 = {&e->feed, "vague_purpose", v2};
    assert_true(fw_t_wait_until(feed_has, &w2, 20000));
    usleep(500000);
    assert_int_equal(feed_count(&e->feed, "shadow_watch", NULL), 0);

    /* The pre-payment check never blocks on it (NATS and HTTP). */
    char body[2048];
    voucher_json(body, sizeof body, "", "ZF2024RLDCHK", "影子");
    natsMsg *reply = NULL;
    assert_int_equal(natsConnection_RequestString(&reply, e->nc, "fundwatch.check", body, 10000),
                     NATS_OK);
    json_t *j = json_loadb(natsMsg_GetData(reply), (size_t)natsMsg_GetDataLength(reply), 0, NULL);
    natsMsg_Destroy(reply);
    assert_non_null(j);
    char *dump = json_dumps(j, JSON_COMPACT);
    print_message("check with a shadow hit: %s\n", dump);
    assert_null(strstr(dump, "shadow_watch"));
    free(dump);
    assert_string_equal(json_string_value(json_object_get(j, "decision")), "warn");
    json_decref(j);
    assert_int_equal(fw_t_http(e->d.http_port, "POST", "/api/check", "viewer-token", body, &resp),
                     200);
    j = json_loads(resp, 0, NULL);
    free(resp);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "decision")), "warn");
    json_decref(j);
    /* A purpose with only the shadow finding: allow. */
    voucher_json(body, sizeof body, "", "ZF2024RLDCHK2", "影子办公用品采购");
    assert_int_equal(natsConnection_RequestString(&reply, e->nc, "fundwatch.check", body, 10000),
                     NATS_OK);
    j = json_loadb(natsMsg_GetData(reply), (size_t)natsMsg_GetDataLength(reply), 0, NULL);
    natsMsg_Destroy(reply);
    assert_string_equal(json_string_value(json_object_get(j, "decision")), "allow");
    json_decref(j);

    /* SIGTERM: drain and exit 0. */
    assert_int_equal(fw_t_daemon_kill(&e->d, SIGTERM), 0);
    char *log = fw_t_read_file(e->d.log, NULL);
    assert_non_null(strstr(log, "event=daemon.stopped"));
    free(log);
}

/* SIGHUP reloads the SMS templates too (contract §9). */
static void test_sighup_templates(void **state)
{
    env *e = *state;
    char path[700];
    snprintf(path, sizeof path, "%s/templates/reimburse.txt", e->tmp);
    char *before = fw_t_read_file(path, NULL);
    assert_non_null(before);
    const char *reimb =
        "{\"id\":\"rld-r%d\",\"reimb_id\":\"BX2024-RLD%d\",\"occurred_at\":"
        "\"2024-06-05T10:00:00+08:00\",\"unit_code\":\"" UNIT "\",\"emp_id\":\"E0001\","
        "\"name\":\"张三\",\"phone\":\"13800000000\",\"amount\":\"1234.00\","
        "\"card_last4\":\"1234\",\"spent_on\":\"2024-05-28\","
        "\"paid_at\":\"2024-06-05T10:00:00+08:00\",\"summary\":\"差旅费\"}";
    char body[1024];
    snprintf(body, sizeof body, reimb, 1, 1);
    publish1(e, "fiscal.reimburse." UNIT, body);
    wait_event(e, "rld-r1");
    assert_int_equal(fw_t_sql_int(e->d.db, "SELECT count(*) FROM sms_outbox WHERE content LIKE "
                                           "'%新版模板%'"),
                     0);
    /* An operator edits the template and sends SIGHUP. */
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s/templates/.reimburse.tmp", e->tmp);
    assert_int_equal(fw_t_write_file(tmp,
                                     "{name}您好（新版模板），您的公务卡报销{amount}元已还款至尾号"
                                     "{card_tail}的公务卡。\n"),
                     0);
    assert_int_equal(rename(tmp, path), 0);
    log_wait w = {e, "event=sms.templates_reloaded",
                  log_count(e, "event=sms.templates_reloaded") + 1};
    assert_int_equal(kill(e->d.pid, SIGHUP), 0);
    assert_true(fw_t_wait_until(log_reaches, &w, 60000));
    snprintf(body, sizeof body, reimb, 2, 2);
    publish1(e, "fiscal.reimburse." UNIT, body);
    wait_event(e, "rld-r2");
    assert_int_equal(fw_t_sql_int(e->d.db, "SELECT count(*) FROM sms_outbox WHERE content LIKE "
                                           "'%新版模板%1,234.00%'"),
                     1);
    free(before);
    assert_int_equal(fw_t_daemon_kill(&e->d, SIGINT), 0); /* SIGINT stops like SIGTERM */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sighup_reload, setup_sighup, teardown),
        cmocka_unit_test_setup_teardown(test_directory_watch, setup_watch, teardown),
        cmocka_unit_test_setup_teardown(test_shadow_rule, setup_sighup, teardown),
        cmocka_unit_test_setup_teardown(test_sighup_templates, setup_sighup, teardown),
    };
    if (getenv("FW_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FW_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
