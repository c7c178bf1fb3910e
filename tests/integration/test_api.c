/*
 * test_api.c - the daemon's HTTP API (contract §8), the alert lifecycle and
 * its NATS feed (§4), and the CLI on a live store (§7), from outside the
 * process.
 *
 * Each test starts its own nats-server and daemon (shipped rule pack),
 * publishes events through JetStream and then talks to the daemon as a
 * supervisor's tool would: bearer tokens and roles, alert filters and shape,
 * transitions with notes and their history, the refused ones, dedup by
 * fingerprint, the fundwatch.alert.<level>.<unit> messages, the ledger and
 * voucher views, the SMS outbox view, /metrics, `fundwatch alerts ...` and
 * `fundwatch audit verify` (intact, then after a row is changed by hand).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <nats/nats.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support/harness.h"

#define UNIT "101001"
#define IND "ZB2024-101001-API1"     /* 3,000.00 */
#define BIG_IND "ZB2024-101001-API2" /* 1,000,000.00 */

/* ---- what the daemon publishes on fundwatch.alert.> ---- */

typedef struct feed {
    pthread_mutex_t mu;
    char **subjects, **payloads;
    int n, cap;
} feed;

static void on_alert_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc, (void)sub;
    feed *f = closure;
    pthread_mutex_lock(&f->mu);
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 64;
        f->subjects = realloc(f->subjects, (size_t)f->cap * sizeof *f->subjects);
        f->payloads = realloc(f->payloads, (size_t)f->cap * sizeof *f->payloads);
    }
    f->subjects[f->n] = strdup(natsMsg_GetSubject(msg));
    f->payloads[f->n] = strndup(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg));
    f->n++;
    pthread_mutex_unlock(&f->mu);
    natsMsg_Destroy(msg);
}

/* The statuses published for alert_id, in order, comma-joined; and the
 * subject they came on (all must be the same). */
static void feed_statuses(feed *f, const char *alert_id, char *out, size_t outlen, char *subject,
                          size_t sublen)
{
    out[0] = 0;
    if (subject)
        subject[0] = 0;
    pthread_mutex_lock(&f->mu);
    for (int i = 0; i < f->n; i++) {
        json_t *j = json_loads(f->payloads[i], 0, NULL);
        const char *id = json_string_value(json_object_get(j, "alert_id"));
        if (id && strcmp(id, alert_id) == 0) {
            size_t l = strlen(out);
            snprintf(out + l, outlen - l, "%s%s", l ? "," : "",
                     json_string_value(json_object_get(j, "status")));
            if (subject && !subject[0])
                snprintf(subject, sublen, "%s", f->subjects[i]);
            else if (subject && strcmp(subject, f->subjects[i]) != 0)
                snprintf(subject, sublen, "MIXED (also %s)", f->subjects[i]);
        }
        json_decref(j);
    }
    pthread_mutex_unlock(&f->mu);
}

static void feed_free(feed *f)
{
    for (int i = 0; i < f->n; i++) {
        free(f->subjects[i]);
        free(f->payloads[i]);
    }
    free(f->subjects);
    free(f->payloads);
    pthread_mutex_destroy(&f->mu);
}

typedef struct feed_wait {
    feed *f;
    const char *alert_id, *want;
} feed_wait;

static int feed_has(void *ud)
{
    feed_wait *w = ud;
    char got[256];
    feed_statuses(w->f, w->alert_id, got, sizeof got, NULL, 0);
    return strcmp(got, w->want) == 0;
}

/* ---- environment ---- */

typedef struct env {
    char *tmp;
    fw_t_nats nats;
    fw_t_daemon d;
    natsConnection *nc;
    natsSubscription *sub;
    feed feed;
} env;

static int ready(void *ud)
{
    env *e = ud;
    return fw_t_http(e->d.http_port, "GET", "/readyz", NULL, NULL, NULL) == 200;
}

static int setup_with(void **state, const char *extra_ini)
{
    env *e = calloc(1, sizeof *e);
    pthread_mutex_init(&e->feed.mu, NULL);
    e->tmp = fw_t_tmpdir("api");
    assert_non_null(e->tmp);
    assert_int_equal(fw_t_nats_start(&e->nats, e->tmp), 0);
    /* Subscribe before anything is published. */
    assert_int_equal(natsConnection_ConnectTo(&e->nc, e->nats.url), NATS_OK);
    assert_int_equal(
        natsConnection_Subscribe(&e->sub, e->nc, "fundwatch.alert.>", on_alert_msg, &e->feed),
        NATS_OK);
    assert_int_equal(natsConnection_Flush(e->nc), NATS_OK);
    char dir[600];
    snprintf(dir, sizeof dir, "%s/daemon", e->tmp);
    mkdir(dir, 0755);
    assert_int_equal(fw_t_daemon_start(&e->d, dir, e->nats.url, NULL, extra_ini), 0);
    assert_true(fw_t_wait_until(ready, e, 30000));
    *state = e;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, "[sms]\nrate = 1000\nquiet_hours = off\n");
}

/* Supervisors and a route for unit 101001: red and orange to li by SMS,
 * escalated to the deputy after the shortest deadline allowed (60 s). */
static int setup_routes(void **state)
{
    return setup_with(state, "[sms]\nrate = 1000\nquiet_hours = off\n"
                             "[alerts]\nescalate_red = 60s\ngroup_window = 0\n"
                             "[supervisor.li]\nphone = 13900000002\n"
                             "[supervisor.deputy]\nphone = 13900000003\n"
                             "[route.education]\nunits = 101\nlevels = red, orange\nto = li\n"
                             "channels = nats, sms\nescalate_to = deputy\n");
}

static int teardown(void **state)
{
    env *e = *state;
    if (e->d.pid)
        fw_t_daemon_kill(&e->d, SIGKILL);
    natsSubscription_Destroy(e->sub);
    natsConnection_Destroy(e->nc);
    feed_free(&e->feed);
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

static void wait_sql(env *e, const char *sql, int64_t want)
{
    if (!fw_t_wait_sql(e->d.db, sql, want, 60000))
        fail_msg("timed out: %s >= %lld (is %lld)", sql, (long long)want,
                 (long long)fw_t_sql_int(e->d.db, sql));
}

/* Wait until the event with this id is committed. */
static void wait_event(env *e, const char *evt_id)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM events WHERE id = '%s'", evt_id);
    wait_sql(e, sql, 1);
}

static void allocate(env *e, const char *evt_id, const char *indicator, const char *amount)
{
    char body[1024];
    snprintf(body, sizeof body,
             "{\"id\":\"%s\",\"op\":\"allocate\",\"occurred_at\":\"2024-01-05T09:00:00+08:00\","
             "\"doc_no\":\"三财预〔2024〕7号\",\"indicator_id\":\"%s\",\"year\":2024,"
             "\"unit_code\":\"" UNIT "\",\"func_class\":\"2050201\",\"econ_class\":\"30201\","
             "\"fund_type\":\"1\",\"fund_source\":\"一般公共预算\",\"amount\":\"%s\","
             "\"note\":\"年初预算\"}",
             evt_id, indicator, amount);
    publish1(e, "fiscal.indicator." UNIT, body);
    wait_event(e, evt_id);
}

static void voucher_body(char *buf, size_t cap, const char *evt_id, const char *vno,
                         const char *indicator, const char *amount, const char *settle,
                         const char *account, const char *purpose)
{
    snprintf(buf, cap,
             "{\"id\":\"%s\",\"event\":\"created\",\"occurred_at\":\"2024-06-03T10:15:00+08:00\","
             "\"voucher_no\":\"%s\",\"year\":2024,\"unit_code\":\"" UNIT "\","
             "\"unit_name\":\"三门峡市教育局\",\"indicator_id\":\"%s\","
             "\"func_class\":\"2050201\",\"econ_class\":\"30201\",\"pay_method\":\"direct\","
             "\"settle_method\":\"%s\",\"payee_name\":\"三门峡市某某办公用品有限公司\","
             "\"payee_account\":\"%s\",\"payee_bank\":\"中国建设银行三门峡分行\","
             "\"payee_type\":\"company\",\"payer_name\":\"三门峡市教育局\","
             "\"payer_account\":\"41050166880800000001\",\"fund_type\":\"1\","
             "\"amount\":\"%s\",\"purpose\":\"%s\"}",
             evt_id, vno, indicator, settle, account, amount, purpose);
}

static void create_voucher(env *e, const char *evt_id, const char *vno, const char *indicator,
                           const char *amount, const char *settle, const char *account,
                           const char *purpose)
{
    char body[2048];
    voucher_body(body, sizeof body, evt_id, vno, indicator, amount, settle, account, purpose);
    publish1(e, "fiscal.voucher." UNIT, body);
    wait_event(e, evt_id);
}

static void voucher_step(env *e, const char *evt_id, const char *vno, const char *event,
                         const char *at)
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"id\":\"%s\",\"event\":\"%s\",\"occurred_at\":\"%s\",\"voucher_no\":\"%s\","
             "\"unit_code\":\"" UNIT "\"}",
             evt_id, event, at, vno);
    publish1(e, "fiscal.voucher." UNIT, body);
    wait_event(e, evt_id);
}

static const char *jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* HTTP with a JSON answer; every answer of the API must be JSON. */
static json_t *api(env *e, const char *method, const char *path, const char *token,
                   const char *body, int want_status)
{
    char *resp = NULL;
    int status = fw_t_http(e->d.http_port, method, path, token, body, &resp);
    json_error_t jerr;
    json_t *j = resp ? json_loads(resp, 0, &jerr) : NULL;
    if (status != want_status || !j)
        fail_msg("%s %s -> %d (want %d): %s", method, path, status, want_status,
                 resp ? resp : "(no body)");
    free(resp);
    return j;
}

/* An error answer: {"error": "..."} with the given status; returns the
 * message (static copy). */
static const char *api_error(env *e, const char *method, const char *path, const char *token,
                             const char *body, int want_status)
{
    static char msg[512];
    json_t *j = api(e, method, path, token, body, want_status);
    assert_true(json_is_string(json_object_get(j, "error")));
    snprintf(msg, sizeof msg, "%s", jstr(j, "error"));
    json_decref(j);
    return msg;
}

/* The id of the only alert of `rule` on subject id `subject_id`. */
static void alert_id_of(env *e, const char *rule, const char *subject_id, char *out, size_t len)
{
    char path[256];
    snprintf(path, sizeof path, "/api/alerts?rule=%s&limit=1000", rule);
    json_t *j = api(e, "GET", path, "viewer-token", NULL, 200);
    size_t i;
    json_t *a;
    int found = 0;
    json_array_foreach(json_object_get(j, "items"), i, a)
    {
        const char *sid = jstr(json_object_get(a, "subject"), "id");
        if (sid && strcmp(sid, subject_id) == 0) {
            snprintf(out, len, "%s", jstr(a, "alert_id"));
            found++;
        }
    }
    json_decref(j);
    if (found != 1)
        fail_msg("%d alerts of %s on %s", found, rule, subject_id);
}

static json_t *transition(env *e, const char *alert_id, const char *to, const char *by,
                          const char *note, int want_status)
{
    char path[128];
    snprintf(path, sizeof path, "/api/alerts/%s/transition", alert_id);
    json_t *b = json_pack("{s:s}", "to", to);
    if (by)
        json_object_set_new(b, "by", json_string(by));
    if (note)
        json_object_set_new(b, "note", json_string(note));
    char *body = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    json_t *r = api(e, "POST", path, "super-token", body, want_status);
    free(body);
    return r;
}

/* Every §4 field is present with the right type. */
static void assert_alert_shape(const json_t *a)
{
    static const char *const strings[] = {"alert_id",  "rule",    "level",       "status",
                                          "unit_code", "message", "fingerprint", "first_seen",
                                          "last_seen", "ruleset"};
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
        if (!json_is_string(json_object_get(a, strings[i])))
            fail_msg("alert field %s missing or not a string", strings[i]);
    const json_t *subj = json_object_get(a, "subject");
    assert_true(json_is_object(subj));
    assert_true(json_is_string(json_object_get(subj, "kind")));
    assert_true(json_is_string(json_object_get(subj, "id")));
    assert_true(json_is_object(json_object_get(a, "details")));
    assert_true(json_is_integer(json_object_get(a, "occurrences")));
    assert_true(strlen(jstr(a, "ruleset")) > 0);
    assert_true(strlen(jstr(a, "fingerprint")) > 0);
}

/* Three vouchers: red over_balance (V1), orange cash_over_limit plus
 * yellow card_mandatory (V2), yellow vague_purpose (V3). */
static void raise_sample_alerts(env *e)
{
    allocate(e, "api-ind-1", IND, "3000.00");
    allocate(e, "api-ind-2", BIG_IND, "1000000.00");
    create_voucher(e, "api-v1", "ZF2024API0001", IND, "12345.67", "transfer",
                   "41050166880800000123", "办公用品采购");
    create_voucher(e, "api-v2", "ZF2024API0002", BIG_IND, "25000.00", "cash",
                   "41050166880800000124", "办公用品采购");
    create_voucher(e, "api-v3", "ZF2024API0003", BIG_IND, "800.00", "transfer",
                   "41050166880800000125", "其他");
    wait_sql(e, "SELECT count(*) FROM alerts", 4);
}

typedef struct sms_wait {
    env *e;
    const char *phone_masked;
    int want;
} sms_wait;

/* Alert SMS rows to this (masked) phone. */
static int alert_sms_to(env *e, const char *masked)
{
    json_t *j = api(e, "GET", "/api/sms?kind=alert", "viewer-token", NULL, 200);
    size_t i;
    json_t *it;
    int n = 0;
    json_array_foreach(json_object_get(j, "items"), i, it)
    {
        if (strcmp(jstr(it, "phone"), masked) == 0)
            n++;
    }
    json_decref(j);
    return n;
}

static int sms_reaches(void *ud)
{
    sms_wait *w = ud;
    return alert_sms_to(w->e, w->phone_masked) >= w->want;
}

static int escalated(void *ud)
{
    env *e = ud;
    return fw_t_sql_int(e->d.db, "SELECT count(*) FROM alert_history WHERE kind = 'escalation'") >=
           1;
}

/* Routing by unit and level to supervisors by SMS, silences (no notice,
 * still stored), escalation of an alert nobody acknowledged. */
static void test_routing_silence_escalation(void **state)
{
    env *e = *state;
    /* Silence cash_over_limit for an hour before anything happens. */
    json_t *sl = api(e, "POST", "/api/silences", "super-token",
                     "{\"rule\":\"cash_over_limit\",\"unit\":\"*\",\"for\":\"1h\","
                     "\"reason\":\"现金管理专项检查期间\"}",
                     201);
    json_decref(sl);
    api_error(e, "POST", "/api/silences", "viewer-token",
              "{\"rule\":\"*\",\"for\":\"1h\",\"reason\":\"x\"}", 403);
    raise_sample_alerts(e);
    char red[32], orange[32];
    alert_id_of(e, "over_balance", "ZF2024API0001", red, sizeof red);
    alert_id_of(e, "cash_over_limit", "ZF2024API0002", orange, sizeof orange);

    /* The red alert went to li by SMS. */
    sms_wait w = {e, "139****0002", 1};
    assert_true(fw_t_wait_until(sms_reaches, &w, 30000));
    /* The silenced orange one is stored and marked, but sends nothing; the
     * yellow ones are outside the route. */
    char path[128];
    snprintf(path, sizeof path, "/api/alerts/%s", orange);
    json_t *j = api(e, "GET", path, "viewer-token", NULL, 200);
    assert_true(json_is_true(json_object_get(j, "silenced")));
    json_decref(j);
    sleep(2);
    assert_int_equal(alert_sms_to(e, "139****0002"), 1);

    /* Nobody acknowledges the red one: after its deadline it escalates to
     * the deputy (history entry, SMS).  The orange one is acknowledged in
     * time and does not escalate. */
    json_decref(transition(e, orange, "acknowledged", "li", NULL, 200));
    assert_true(fw_t_wait_until(escalated, e, 180000));
    snprintf(path, sizeof path, "/api/alerts/%s", red);
    j = api(e, "GET", path, "viewer-token", NULL, 200);
    char *dump = json_dumps(json_object_get(j, "history"), JSON_COMPACT);
    print_message("red history after the deadline: %s\n", dump);
    free(dump);
    assert_true(json_integer_value(json_object_get(j, "escalations")) >= 1);
    assert_string_equal(jstr(j, "status"), "open");
    json_decref(j);
    sms_wait w2 = {e, "139****0003", 1};
    assert_true(fw_t_wait_until(sms_reaches, &w2, 30000));
    snprintf(path, sizeof path, "/api/alerts/%s", orange);
    j = api(e, "GET", path, "viewer-token", NULL, 200);
    assert_int_equal(json_integer_value(json_object_get(j, "escalations")), 0);
    json_decref(j);
    assert_int_equal(fw_t_daemon_kill(&e->d, SIGTERM), 0);
}

static int readyz_is(env *e, int want)
{
    return fw_t_http(e->d.http_port, "GET", "/readyz", NULL, NULL, NULL) == want;
}

static int not_ready(void *ud)
{
    return readyz_is(ud, 503);
}

static int is_ready(void *ud)
{
    return readyz_is(ud, 200);
}

/* /readyz follows the NATS connection; /healthz does not. */
static void test_readyz(void **state)
{
    env *e = *state;
    json_t *j = api(e, "GET", "/readyz", NULL, NULL, 200);
    assert_true(json_is_true(json_object_get(j, "nats_connected")));
    json_decref(j);
    fw_t_nats_stop(&e->nats);
    assert_true(fw_t_wait_until(not_ready, e, 30000));
    j = api(e, "GET", "/readyz", NULL, NULL, 503);
    assert_false(json_is_true(json_object_get(j, "nats_connected")));
    json_decref(j);
    json_decref(api(e, "GET", "/healthz", NULL, NULL, 200));
    assert_int_equal(fw_t_nats_start(&e->nats, e->tmp), 0);
    assert_true(fw_t_wait_until(is_ready, e, 60000));
    /* And it consumes again. */
    allocate(e, "api-ind-rz", IND, "3000.00");
    assert_int_equal(fw_t_daemon_kill(&e->d, SIGTERM), 0);
}

/* Run `fundwatch ARGS...` from the source tree (as the daemon runs);
 * stdout+stderr into *out.  Returns the exit status. */
static int run_cli(env *e, char **out, const char *const *args)
{
    char path[700];
    snprintf(path, sizeof path, "%s/cli.out", e->tmp);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || chdir(fw_t_src()) != 0)
            _exit(126);
        dup2(fd, 1);
        dup2(fd, 2);
        char *argv[32];
        int n = 0;
        argv[n++] = "fundwatch";
        for (; args[n - 1] && n < 31; n++)
            argv[n] = (char *)args[n - 1];
        argv[n] = NULL;
        execv(fw_t_bin(), argv);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    *out = fw_t_read_file(path, NULL);
    assert_non_null(*out);
    print_message("$ fundwatch %s %s ... -> %d\n%s", args[0], args[1],
                  WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), *out);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- tests ---- */

static void test_auth_and_errors(void **state)
{
    env *e = *state;
    raise_sample_alerts(e);
    char red[32];
    alert_id_of(e, "over_balance", "ZF2024API0001", red, sizeof red);
    char path[128];
    snprintf(path, sizeof path, "/api/alerts/%s/transition", red);

    /* 401 without a token or with a wrong one, on every /api/ path. */
    static const char *const paths[] = {"/api/alerts", "/api/indicators/" IND, "/api/sms",
                                        "/api/vouchers/ZF2024API0001"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        api_error(e, "GET", paths[i], NULL, NULL, 401);
        api_error(e, "GET", paths[i], "wrong-token", NULL, 401);
        json_decref(api(e, "GET", paths[i], "viewer-token", NULL, 200));
    }
    api_error(e, "POST", path, NULL, "{\"to\":\"acknowledged\"}", 401);
    /* 403: a viewer may read, not act; nothing changes. */
    const char *msg = api_error(e, "POST", path, "viewer-token", "{\"to\":\"acknowledged\"}", 403);
    assert_true(strlen(msg) > 0);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM alerts WHERE alert_id = '%s' AND status='open'",
             red);
    assert_int_equal(fw_t_sql_int(e->d.db, sql), 1);

    /* 404s are JSON errors too. */
    api_error(e, "GET", "/api/alerts/AL-999999", "viewer-token", NULL, 404);
    api_error(e, "POST", "/api/alerts/AL-999999/transition", "super-token",
              "{\"to\":\"acknowledged\"}", 404);
    api_error(e, "GET", "/api/indicators/ZB-NO-SUCH", "viewer-token", NULL, 404);
    api_error(e, "GET", "/api/indicators/ZB-NO-SUCH/ledger", "viewer-token", NULL, 404);
    api_error(e, "GET", "/api/vouchers/ZF-NO-SUCH", "viewer-token", NULL, 404);
    api_error(e, "GET", "/api/vouchers/ZF-NO-SUCH/trace", "viewer-token", NULL, 404);

    /* Bad requests name the field. */
    msg = api_error(e, "POST", path, "super-token", "{\"by\":\"sam\"}", 400);
    assert_non_null(strstr(msg, "to"));
    msg = api_error(e, "POST", path, "super-token", "{\"to\":\"sideways\"}", 400);
    assert_non_null(strstr(msg, "to:"));
    api_error(e, "POST", path, "super-token", "not json", 400);
    msg = api_error(e, "GET", "/api/alerts?level=purple", "viewer-token", NULL, 400);
    assert_non_null(strstr(msg, "level"));
    msg = api_error(e, "GET", "/api/alerts?status=lost", "viewer-token", NULL, 400);
    assert_non_null(strstr(msg, "status"));
    api_error(e, "GET", "/api/no-such-thing", "viewer-token", NULL, 404);
    api_error(e, "POST", "/api/alerts", "super-token", "{}", 405);
    /* Every error is {"error": ...}, also for a method the API has no use
     * for at all. */
    char *resp = NULL;
    int st = fw_t_http(e->d.http_port, "DELETE", "/api/alerts", "super-token", NULL, &resp);
    json_t *ej = resp ? json_loads(resp, 0, NULL) : NULL;
    print_message("DELETE /api/alerts -> %d %.80s\n", st, resp ? resp : "");
    free(resp);
    assert_true(st >= 400);
    assert_true(json_is_string(json_object_get(ej, "error")));
    json_decref(ej);
    assert_int_equal(fw_t_daemon_kill(&e->d, SIGTERM), 0);
}

static void test_alert_list_and_filters(void **state)
{
    env *e = *state;
    raise_sample_alerts(e);
    json_t *j = api(e, "GET", "/api/alerts", "viewer-token", NULL, 200);
    json_t *items = json_object_get(j, "items");
    assert_true(json_is_array(items));
    assert_true(json_array_size(items) >= 4);
    size_t i;
    json_t *a;
    int prev_n = 1 << 30;
    json_array_foreach(items, i, a)
    {
        assert_alert_shape(a);
        assert_string_equal(jstr(a, "unit_code"), UNIT);
        /* Newest first: AL-000017 > AL-000016. */
        int n = atoi(strchr(jstr(a, "alert_id"), '-') + 1);
        assert_true(n < prev_n);
        prev_n = n;
    }
    json_decref(j);

    /* over_balance: red, open, about voucher V1, with the figures. */
    char red[32];
    alert_id_of(e, "over_balance", "ZF2024API0001", red, sizeof red);
    char path[128];
    snprintf(path, sizeof path, "/api/alerts/%s", red);
    j = api(e, "GET", path, "viewer-token", NULL, 200);
    assert_alert_shape(j);
    assert_string_equal(jstr(j, "level"), "red");
    assert_string_equal(jstr(j, "status"), "open");
    assert_string_equal(jstr(json_object_get(j, "subject"), "kind"), "voucher");
    assert_string_equal(jstr(json_object_get(j, "subject"), "id"), "ZF2024API0001");
    assert_string_equal(jstr(j, "message"), "支付金额 12345.67 元超过指标可用余额 3000.00 元");
    assert_int_equal(json_integer_value(json_object_get(j, "occurrences")), 1);
    assert_true(json_is_array(json_object_get(j, "history")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "details"), "amount")),
                     1234567);
    json_decref(j);

    /* Filters: each item matches, and limit caps the list. */
    static const struct {
        const char *query, *field, *value;
        size_t min;
    } filters[] = {
        {"level=red", "level", "red", 1},
        {"level=orange", "level", "orange", 1},
        {"level=yellow", "level", "yellow", 2},
        {"status=open", "status", "open", 4},
        {"unit=" UNIT, "unit_code", UNIT, 4},
        {"rule=cash_over_limit", "rule", "cash_over_limit", 1},
        {"rule=vague_purpose&level=yellow", "rule", "vague_purpose", 1},
    };
    for (size_t k = 0; k < sizeof filters / sizeof filters[0]; k++) {
        snprintf(path, sizeof path, "/api/alerts?%s", filters[k].query);
        j = api(e, "GET", path, "viewer-token", NULL, 200);
        items = json_object_get(j, "items");
        if (json_array_size(items) < filters[k].min)
            fail_msg("%s: %zu items", filters[k].query, json_array_size(items));
        json_array_foreach(items, i, a)
        {
            assert_string_equal(jstr(a, filters[k].field), filters[k].value);
        }
        json_decref(j);
    }
    j = api(e, "GET", "/api/alerts?unit=999999", "viewer-token", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(j, "items")), 0);
    json_decref(j);
    j = api(e, "GET", "/api/alerts?status=resolved", "viewer-token", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(j, "items")), 0);
    json_decref(j);
    j = api(e, "GET", "/api/alerts?limit=2", "viewer-token", NULL, 200);
    items = json_object_get(j, "items");
    assert_int_equal(json_array_size(items), 2);
    json_t *all = api(e, "GET", "/api/alerts", "viewer-token", NULL, 200);
    /* The two newest. */
    assert_string_equal(jstr(json_array_get(items, 0), "alert_id"),
                        jstr(json_array_get(json_object_get(all, "items"), 0), "alert_id"));
    assert_string_equal(jstr(json_array_get(items, 1), "alert_id"),
                        jstr(json_array_get(json_object_get(all, "items"), 1), "alert_id"));
    json_decref(all);
    json_decref(j);
    assert_int_equal(fw_t_daemon_kill(&e->d, SIGTERM), 0);
}

/* The history entries of an alert as "from>to by note" lines. */
static void history_text(const json_t *alert, char *out, size_t len)
{
    out[0] = 0;
    size_t i;
    json_t *h;
    json_array_foreach(json_object_get(alert, "history"), i, h)
    {
        size_t l = strlen(out);
        assert_true(json_is_string(json_object_get(h, "at")) ||
                    json_is_integer(json_object_get(h, "at")));
        snprintf(out + l, len - l, "%s>%s by %s: %s\n", jstr(h, "from"), jstr(h, "to"),
                 jstr(h, "by"), jstr(h, "note"));
    }
}

static void test_lifecycle_and_feed(void **state)
{
    env *e = *state;
    raise_sample_alerts(e);
    char red[32], orange[32], yellow[32];
    alert_id_of(e, "over_balance", "ZF2024API0001", red, sizeof red);
    alert_id_of(e, "cash_over_limit", "ZF2024API0002", orange, sizeof orange);
    alert_id_of(e, "vague_purpose", "ZF2024API0003", yellow, sizeof yellow);

    /* open -> confirmed and open -> resolved skip the verification: 409. */
    json_t *r = transition(e, red, "confirmed", "sam", "查实", 409);
    assert_true(json_is_string(json_object_get(r, "error")));
    json_decref(r);
    json_decref(transition(e, red, "resolved", "sam", "已处理", 409));

    /* open -> acknowledged -> confirmed -> resolved, with notes and `by`. */
    r = transition(e, red, "acknowledged", "张科长", "已接手核实", 200);
    assert_string_equal(jstr(r, "status"), "acknowledged");
    json_decref(r);
    r = transition(e, red, "confirmed", "张科长", "核实为超指标支付", 200);
    assert_string_equal(jstr(r, "status"), "confirmed");
    json_decref(r);
    r = transition(e, red, "resolved", NULL, "已退回单位重新申请指标", 200);
    assert_string_equal(jstr(r, "status"), "resolved");
    char hist[2048];
    history_text(r, hist, sizeof hist);
    print_message("history of %s:\n%s", red, hist);
    assert_string_equal(hist, "open>acknowledged by 张科长: 已接手核实\n"
                              "acknowledged>confirmed by 张科长: 核实为超指标支付\n"
                              "confirmed>resolved by sam: 已退回单位重新申请指标\n");
    json_decref(r);
    /* Out of resolved, nothing: 409; the history is unchanged. */
    r = transition(e, red, "acknowledged", "sam", "重新打开", 409);
    json_decref(r);
    char path[128];
    snprintf(path, sizeof path, "/api/alerts/%s", red);
    r = api(e, "GET", path, "viewer-token", NULL, 200);
    char again[2048];
    history_text(r, again, sizeof again);
    assert_string_equal(again, hist);
    assert_string_equal(jstr(r, "status"), "resolved");
    json_decref(r);

    /* Dismissing an orange alert needs a note (the evidence). */
    json_decref(transition(e, orange, "acknowledged", "sam", NULL, 200));
    snprintf(path, sizeof path, "/api/alerts/%s/transition", orange);
    char *resp = NULL;
    int st = fw_t_http(e->d.http_port, "POST", path, "super-token",
                       "{\"to\":\"dismissed\",\"by\":\"sam\"}", &resp);
    print_message("dismiss without a note: %d %s\n", st, resp);
    assert_true(st == 400 || st == 409);
    json_t *ej = json_loads(resp, 0, NULL);
    free(resp);
    assert_non_null(ej);
    assert_non_null(strstr(jstr(ej, "error"), "note"));
    json_decref(ej);
    st = fw_t_http(e->d.http_port, "POST", path, "super-token",
                   "{\"to\":\"dismissed\",\"by\":\"sam\",\"note\":\"\"}", NULL);
    assert_true(st == 400 || st == 409); /* an empty note is no evidence either */
    snprintf(path, sizeof path, "/api/alerts/%s", orange);
    r = api(e, "GET", path, "viewer-token", NULL, 200);
    assert_string_equal(jstr(r, "status"), "acknowledged");
    json_decref(r);
    r = transition(e, orange, "dismissed", "sam", "现场核实：经批准的备用金支取，附审批单", 200);
    assert_string_equal(jstr(r, "status"), "dismissed");
    json_decref(r);
    /* A yellow one may be dismissed without a note. */
    json_decref(transition(e, yellow, "acknowledged", "sam", NULL, 200));
    json_decref(transition(e, yellow, "dismissed", "sam", NULL, 200));

    /* Every change was published on fundwatch.alert.<level>.<unit>. */
    feed_wait w = {&e->feed, red, "open,acknowledged,confirmed,resolved"};
    assert_true(fw_t_wait_until(feed_has, &w, 20000));
    char got[256], subject[256];
    feed_statuses(&e->feed, red, got, sizeof got, subject, sizeof subject);
    assert_string_equal(subject, "fundwatch.alert.red." UNIT);
    feed_wait w2 = {&e->feed, orange, "open,acknowledged,dismissed"};
    assert_true(fw_t_wait_until(feed_has, &w2, 20000));
    feed_statuses(&e->feed, orange, got, sizeof got, subject, sizeof subject);
    assert_string_equal(subject, "fundwatch.alert.orange." UNIT);
    feed_wait w3 = {&e->feed, yellow, "open,acknowledged,dismissed"};
    assert_true(fw_t_wait_until(feed_has, &w3, 20000));
    feed_statuses(&e->feed, yellow, got, sizeof got, subject, sizeof subject);
    assert_string_equal(subject, "fundwatch.alert.yellow." UNIT);
    /* The published JSON has the §4 shape. */
    pthread_mutex_lock(&e->feed.mu);
    for (int i = 0; i < e->feed.n; i++) {
        json_t *a = json_loads(e->feed.payloads[i], 0, NULL);
        assert_non_null(a);
        assert_alert_shape(a);
        json_decref(a);
    }
    pthread_mutex_unlock(&e->feed.mu);
    assert_int_equal(fw_t_daemon_kill(&e->d, SIGTERM), 0);
}

static int64_t occurrences(env *e, const char *alert_id)
{
    char path[128];
    snprintf(path, sizeof path, "/api/alerts/%s", alert_id);
    json_t *r = api(e, "GET", path, "viewer-token", NULL, 200);
    int64_t n = json_integer_value(json_object_get(r, "occurrences"));
    json_decref(r);
    return n;
}

static void test_dedup(void **state)
{
    env *e = *state;
    raise_sample_alerts(e);
    char red[32];
    alert_id_of(e, "over_balance", "ZF2024API0001", red, sizeof red);
    int64_t events = fw_t_sql_int(e->d.db, "SELECT count(*) FROM events");
    int64_t alerts = fw_t_sql_int(e->d.db, "SELECT count(*) FROM alerts");

    /* The same event redelivered (same id, same body): nothing changes. */
    char body[2048];
    voucher_body(body, sizeof body, "api-v1", "ZF2024API0001", IND, "12345.67", "transfer",
                 "41050166880800000123", "办公用品采购");
    publish1(e, "fiscal.voucher." UNIT, body);
    /* A marker event behind it tells when the redelivery was handled. */
    create_voucher(e, "api-v9", "ZF2024API0009", BIG_IND, "100.00", "transfer",
                   "41050166880800000199", "办公用品采购");
    assert_int_equal(fw_t_sql_int(e->d.db, "SELECT count(*) FROM events"), events + 1);
    assert_int_equal(fw_t_sql_int(e->d.db, "SELECT count(*) FROM alerts"), alerts);
    assert_int_equal(occurrences(e, red), 1);
    assert_int_equal(
        fw_t_sql_int(e->d.db, "SELECT frozen FROM indicators WHERE indicator_id = '" IND "'"),
        1234567);

    /* Two distinct events with the same fingerprint: one alert, two
     * occurrences (an unknown voucher signed twice). */
    voucher_step(e, "api-x1", "ZF2024APIX", "signed", "2024-06-03T11:00:00+08:00");
    char ux[32];
    alert_id_of(e, "flow_unknown_voucher", "ZF2024APIX", ux, sizeof ux);
    assert_int_equal(occurrences(e, ux), 1);
    voucher_step(e, "api-x2", "ZF2024APIX", "signed", "2024-06-03T11:05:00+08:00");
    assert_int_equal(occurrences(e, ux), 2);
    /* ... and redelivering the second does not count it again. */
    char step[512];
    snprintf(
        step, sizeof step,
        "{\"id\":\"api-x2\",\"event\":\"signed\",\"occurred_at\":\"2024-06-03T11:05:00+08:00\","
        "\"voucher_no\":\"ZF2024APIX\",\"unit_code\":\"" UNIT "\"}");
    publish1(e, "fiscal.voucher." UNIT, step);
    create_voucher(e, "api-v10", "ZF2024API0010", BIG_IND, "101.00", "transfer",
                   "41050166880800000198", "办公用品采购");
    assert_int_equal(occurrences(e, ux), 2);
    alert_id_of(e, "flow_unknown_voucher", "ZF2024APIX", ux, sizeof ux); /* still one */
    /* The live alert's last_seen moved to the second event. */
    char path[128];
    snprintf(path, sizeof path, "/api/alerts/%s", ux);
    json_t *r = api(e, "GET", path, "viewer-token", NULL, 200);
    print_message("deduplicated: first_seen %s last_seen %s\n", jstr(r, "first_seen"),
                  jstr(r, "last_seen"));
    assert_string_not_equal(jstr(r, "first_seen"), jstr(r, "last_seen"));
    json_decref(r);

    /* Once resolved, the same case again is a new alert. */
    json_decref(transition(e, ux, "acknowledged", "sam", NULL, 200));
    json_decref(transition(e, ux, "confirmed", "sam", "上游补发凭证", 200));
    json_decref(transition(e, ux, "resolved", "sam", "已联系代理银行", 200));
    voucher_step(e, "api-x3", "ZF2024APIX", "signed", "2024-06-03T11:10:00+08:00");
    assert_int_equal(fw_t_sql_int(e->d.db, "SELECT count(*) FROM alerts WHERE rule = "
                                           "'flow_unknown_voucher' AND subject_id = 'ZF2024APIX'"),
                     2);
    r = api(e, "GET", "/api/alerts?rule=flow_unknown_voucher&status=open", "viewer-token", NULL,
            200);
    json_t *items = json_object_get(r, "items");
    assert_int_equal(json_array_size(items), 1);
    json_t *fresh = json_array_get(items, 0);
    assert_string_equal(jstr(json_object_get(fresh, "subject"), "id"), "ZF2024APIX");
    assert_string_not_equal(jstr(fresh, "alert_id"), ux);
    assert_int_equal(json_integer_value(json_object_get(fresh, "occurrences")), 1);
    json_decref(r);
    assert_int_equal(fw_t_daemon_kill(&e->d, SIGTERM), 0);
}

static void test_ledger_views(void **state)
{
    env *e = *state;
    allocate(e, "api-ind-2", BIG_IND, "1000000.00");
    json_t *j = api(e, "GET", "/api/indicators/" BIG_IND, "viewer-token", NULL, 200);
    assert_string_equal(jstr(j, "indicator_id"), BIG_IND);
    assert_string_equal(jstr(j, "unit_code"), UNIT);
    assert_string_equal(jstr(j, "allocated"), "1000000.00");
    assert_string_equal(jstr(j, "frozen"), "0.00");
    assert_string_equal(jstr(j, "paid"), "0.00");
    assert_string_equal(jstr(j, "available"), "1000000.00");
    json_decref(j);

    create_voucher(e, "api-l1", "ZF2024APIL01", BIG_IND, "12345.67", "transfer",
                   "41050166880800000300", "办公用品采购");
    j = api(e, "GET", "/api/indicators/" BIG_IND, "viewer-token", NULL, 200);
    assert_string_equal(jstr(j, "frozen"), "12345.67");
    assert_string_equal(jstr(j, "paid"), "0.00");
    assert_string_equal(jstr(j, "available"), "987654.33");
    json_decref(j);
    j = api(e, "GET", "/api/vouchers/ZF2024APIL01", "viewer-token", NULL, 200);
    assert_string_equal(jstr(j, "voucher_no"), "ZF2024APIL01");
    assert_string_equal(jstr(j, "state"), "created");
    assert_string_equal(jstr(j, "amount"), "12345.67");
    assert_int_equal(json_array_size(json_object_get(j, "events")), 1);
    json_decref(j);

    voucher_step(e, "api-l2", "ZF2024APIL01", "signed", "2024-06-03T11:00:00+08:00");
    voucher_step(e, "api-l3", "ZF2024APIL01", "sent", "2024-06-03T12:00:00+08:00");
    voucher_step(e, "api-l4", "ZF2024APIL01", "paid", "2024-06-03T15:00:00+08:00");
    j = api(e, "GET", "/api/indicators/" BIG_IND, "viewer-token", NULL, 200);
    assert_string_equal(jstr(j, "allocated"), "1000000.00");
    assert_string_equal(jstr(j, "frozen"), "0.00");
    assert_string_equal(jstr(j, "paid"), "12345.67");
    assert_string_equal(jstr(j, "available"), "987654.33");
    json_decref(j);

    /* The voucher: paid, its four events in order. */
    j = api(e, "GET", "/api/vouchers/ZF2024APIL01", "viewer-token", NULL, 200);
    assert_string_equal(jstr(j, "state"), "paid");
    json_t *evs = json_object_get(j, "events");
    assert_int_equal(json_array_size(evs), 4);
    static const char *const flow[] = {"created", "signed", "sent", "paid"};
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(jstr(json_array_get(evs, i), "event"), flow[i]);
    json_decref(j);

    /* The ledger, oldest first: the allocation, then the voucher's entries;
     * each entry names its cause. */
    j = api(e, "GET", "/api/indicators/" BIG_IND "/ledger", "viewer-token", NULL, 200);
    json_t *items = json_object_get(j, "items");
    assert_true(json_array_size(items) >= 3);
    size_t i;
    json_t *it;
    int64_t prev = -1;
    int doc = 0, voucher = 0;
    json_array_foreach(items, i, it)
    {
        int64_t seq = json_integer_value(json_object_get(it, "seq"));
        assert_true(seq > prev);
        prev = seq;
        const json_t *cause = json_object_get(it, "cause");
        assert_true(json_is_object(cause));
        if (strcmp(jstr(cause, "type"), "doc") == 0 &&
            strcmp(jstr(cause, "id"), "三财预〔2024〕7号") == 0)
            doc++;
        if (strcmp(jstr(cause, "id"), "ZF2024APIL01") == 0)
            voucher++;
    }
    assert_int_equal(doc, 1);
    assert_true(voucher >= 2); /* frozen, then paid */
    assert_string_equal(jstr(json_array_get(items, 0), "allocated"), "1000000.00");
    assert_string_equal(jstr(json_array_get(items, json_array_size(items) - 1), "paid"),
                        "12345.67");
    json_decref(j);

    /* The trace: voucher -> indicator -> funding document. */
    j = api(e, "GET", "/api/vouchers/ZF2024APIL01/trace", "viewer-token", NULL, 200);
    char *dump = json_dumps(j, JSON_COMPACT);
    print_message("trace: %.600s\n", dump);
    free(dump);
    assert_string_equal(jstr(j, "voucher_no"), "ZF2024APIL01");
    const json_t *ind = json_object_get(j, "indicator");
    assert_true(json_is_object(ind));
    assert_string_equal(jstr(ind, "indicator_id"), BIG_IND);
    const json_t *funding = json_object_get(ind, "funding");
    assert_true(json_array_size(funding) >= 1);
    dump = json_dumps(funding, JSON_COMPACT);
    assert_non_null(strstr(dump, "三财预〔2024〕7号"));
    free(dump);
    json_decref(j);

    /* The CLI's --json shapes are those of the API (contract §7). */
    char *out = NULL;
    const char *show[] = {"ledger", "show", "-c", e->d.conf, BIG_IND, "--json", NULL};
    assert_int_equal(run_cli(e, &out, show), 0);
    json_t *cli = json_loads(out, 0, NULL);
    free(out);
    j = api(e, "GET", "/api/indicators/" BIG_IND, "viewer-token", NULL, 200);
    assert_non_null(cli);
    assert_true(json_equal(cli, j));
    json_decref(cli);
    json_decref(j);
    const char *trace[] = {"ledger", "trace", "-c", e->d.conf, "ZF2024APIL01", "--json", NULL};
    assert_int_equal(run_cli(e, &out, trace), 0);
    cli = json_loads(out, 0, NULL);
    free(out);
    assert_non_null(cli);
    j = api(e, "GET", "/api/vouchers/ZF2024APIL01/trace", "viewer-token", NULL, 200);
    assert_true(json_equal(cli, j));
    json_decref(cli);
    json_decref(j);
    const char *unknown[] = {"ledger", "show", "-c", e->d.conf, "ZB-NO-SUCH", NULL};
    assert_int_equal(run_cli(e, &out, unknown), 1);
    free(out);
    assert_int_equal(fw_t_daemon_kill(&e->d, SIGTERM), 0);
}

static int sms_settled(void *ud)
{
    env *e = ud;
    return fw_t_sql_int(e->d.db, "SELECT count(*) FROM sms_outbox WHERE status = 'sent'") >= 1;
}

static void test_sms_and_metrics(void **state)
{
    env *e = *state;
    raise_sample_alerts(e);
    const char *subj = "fiscal.reimburse." UNIT;
    const char *body =
        "{\"id\":\"api-r1\",\"reimb_id\":\"BX2024-API1\",\"occurred_at\":\"2024-06-05T10:00:00+"
        "08:00\",\"unit_code\":\"" UNIT "\",\"emp_id\":\"E0001\",\"name\":\"张三\","
        "\"phone\":\"13812340000\",\"amount\":\"1234.00\",\"card_last4\":\"1234\","
        "\"spent_on\":\"2024-05-28\",\"paid_at\":\"2024-06-05T10:00:00+08:00\","
        "\"summary\":\"差旅费\"}";
    publish1(e, subj, body);
    wait_event(e, "api-r1");
    /* The log carrier sends at once. */
    assert_true(fw_t_wait_until(sms_settled, e, 30000));

    json_t *j = api(e, "GET", "/api/sms?kind=reimburse", "viewer-token", NULL, 200);
    json_t *items = json_object_get(j, "items");
    assert_int_equal(json_array_size(items), 1);
    json_t *row = json_array_get(items, 0);
    char *dump = json_dumps(row, JSON_COMPACT);
    print_message("sms row: %s\n", dump);
    assert_null(strstr(dump, "13812340000")); /* never the whole phone */
    free(dump);
    static const char *const fields[] = {"out_id",     "kind",     "phone",     "status",
                                         "segments",   "attempts", "queued_at", "sent_at",
                                         "message_id", "error"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (!json_object_get(row, fields[i]))
            fail_msg("sms row lacks %s", fields[i]);
    assert_string_equal(jstr(row, "phone"), "138****0000");
    assert_string_equal(jstr(row, "kind"), "reimburse");
    assert_true(json_is_string(json_object_get(row, "out_id")));
    assert_true(json_integer_value(json_object_get(row, "segments")) >= 1);
    json_decref(j);
    j = api(e, "GET", "/api/sms?status=sent", "viewer-token", NULL, 200);
    size_t i;
    json_t *it;
    assert_true(json_array_size(json_object_get(j, "items")) >= 1);
    json_array_foreach(json_object_get(j, "items"), i, it)
    {
        assert_string_equal(jstr(it, "status"), "sent");
    }
    json_decref(j);
    api_error(e, "GET", "/api/sms?status=lost", "viewer-token", NULL, 400);
    /* The CLI masks the phone too. */
    char *out = NULL;
    const char *sms[] = {"sms", "list", "-c", e->d.conf, "--kind", "reimburse", NULL};
    assert_int_equal(run_cli(e, &out, sms), 0);
    assert_null(strstr(out, "13812340000"));
    assert_non_null(strstr(out, "138****0000"));
    free(out);

    /* /metrics: per rule, alerts by level and status, SMS by state. */
    char *m = NULL;
    assert_int_equal(fw_t_http(e->d.http_port, "GET", "/metrics", NULL, NULL, &m), 200);
    static const char *const want[] = {
        "fundwatch_rule_evaluations_total{rule=\"over_balance\"}",
        "fundwatch_rule_hits_total{rule=\"over_balance\"}",
        "fundwatch_rule_errors_total{rule=\"over_balance\"}",
        "fundwatch_alerts{level=\"red\",status=\"open\"} 1",
        "fundwatch_alerts{level=\"orange\",status=\"open\"} 1",
        "fundwatch_sms_outbox{status=\"sent\",kind=\"reimburse\"} 1",
        "fundwatch_messages_total{kind=\"voucher\"} 3",
        "fundwatch_consumer_lag",
    };
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++)
        if (!strstr(m, want[k]))
            fail_msg("/metrics lacks %s", want[k]);
    free(m);
    assert_int_equal(fw_t_daemon_kill(&e->d, SIGTERM), 0);
}

static int64_t metric_value(env *e, const char *series)
{
    char *m = NULL, want[256];
    assert_int_equal(fw_t_http(e->d.http_port, "GET", "/metrics", NULL, NULL, &m), 200);
    snprintf(want, sizeof want, "\n%s ", series);
    const char *at = strstr(m, want);
    int64_t v = at ? atoll(at + strlen(want)) : -1;
    free(m);
    return v;
}

/* The per-rule counters count live traffic: over_balance evaluated the
 * three vouchers and hit one of them. */
static void test_rule_metrics(void **state)
{
    env *e = *state;
    int64_t evals0 = metric_value(e, "fundwatch_rule_evaluations_total{rule=\"over_balance\"}");
    int64_t hits0 = metric_value(e, "fundwatch_rule_hits_total{rule=\"over_balance\"}");
    print_message("before any event: over_balance evaluations %lld hits %lld\n", (long long)evals0,
                  (long long)hits0);
    raise_sample_alerts(e);
    int64_t evals = metric_value(e, "fundwatch_rule_evaluations_total{rule=\"over_balance\"}");
    int64_t hits = metric_value(e, "fundwatch_rule_hits_total{rule=\"over_balance\"}");
    print_message("after 3 vouchers: over_balance evaluations %lld hits %lld\n", (long long)evals,
                  (long long)hits);
    assert_int_equal(evals - evals0, 3);
    assert_int_equal(hits - hits0, 1);
    /* Contract §8: the counters are about the daemon's traffic.  The rule's
     * own test cases (run when a rule loads) are not traffic. */
    assert_int_equal(evals0, 0);
    assert_int_equal(hits0, 0);
    assert_int_equal(fw_t_daemon_kill(&e->d, SIGTERM), 0);
}

static void test_cli_and_audit(void **state)
{
    env *e = *state;
    raise_sample_alerts(e);
    char red[32], orange[32];
    alert_id_of(e, "over_balance", "ZF2024API0001", red, sizeof red);
    alert_id_of(e, "cash_over_limit", "ZF2024API0002", orange, sizeof orange);
    char *out = NULL;

    /* alerts list --level red: the red alert, not the others. */
    const char *list[] = {"alerts", "list", "-c", e->d.conf, "--level", "red", NULL};
    assert_int_equal(run_cli(e, &out, list), 0);
    assert_non_null(strstr(out, red));
    assert_null(strstr(out, orange));
    free(out);
    const char *listj[] = {"alerts", "list", "-c", e->d.conf, "--level", "red", "--json", NULL};
    assert_int_equal(run_cli(e, &out, listj), 0);
    json_t *j = json_loads(out, 0, NULL);
    free(out);
    assert_non_null(j);
    json_t *items = json_is_array(j) ? j : json_object_get(j, "items");
    assert_int_equal(json_array_size(items), 1);
    assert_string_equal(jstr(json_array_get(items, 0), "alert_id"), red);
    json_decref(j);

    /* alerts show ID */
    const char *show[] = {"alerts", "show", red, "-c", e->d.conf, NULL};
    assert_int_equal(run_cli(e, &out, show), 0);
    assert_non_null(strstr(out, "over_balance"));
    assert_non_null(strstr(out, "ZF2024API0001"));
    free(out);
    const char *show_none[] = {"alerts", "show", "AL-999999", "-c", e->d.conf, NULL};
    assert_int_equal(run_cli(e, &out, show_none), 1);
    free(out);

    /* alerts transition, against the running daemon's store. */
    const char *ack[] = {"alerts", "transition",   red,      "acknowledged", "-c", e->d.conf,
                         "--by",   "cli-operator", "--note", "由命令行接手", NULL};
    assert_int_equal(run_cli(e, &out, ack), 0);
    free(out);
    char path[128];
    snprintf(path, sizeof path, "/api/alerts/%s", red);
    j = api(e, "GET", path, "viewer-token", NULL, 200);
    assert_string_equal(jstr(j, "status"), "acknowledged");
    json_t *h = json_array_get(json_object_get(j, "history"), 0);
    assert_string_equal(jstr(h, "by"), "cli-operator");
    assert_string_equal(jstr(h, "note"), "由命令行接手");
    json_decref(j);
    /* A refused one: exit 1. */
    const char *bad[] = {"alerts", "transition",   orange,   "resolved", "-c", e->d.conf,
                         "--by",   "cli-operator", "--note", "x",        NULL};
    assert_int_equal(run_cli(e, &out, bad), 1);
    free(out);
    /* The daemon publishes the CLI's change at its next tick. */
    feed_wait w = {&e->feed, red, "open,acknowledged"};
    assert_true(fw_t_wait_until(feed_has, &w, 30000));

    /* The audit chain is intact ... */
    const char *verify[] = {"audit", "verify", "-c", e->d.conf, NULL};
    assert_int_equal(run_cli(e, &out, verify), 0);
    free(out);
    assert_int_equal(fw_t_daemon_kill(&e->d, SIGTERM), 0);
    int64_t rows = fw_t_sql_int(e->d.db, "SELECT count(*) FROM audit");
    assert_true(rows >= 3);

    /* ... until a row is changed by hand: exit 1, naming the row. */
    int64_t victim = fw_t_sql_int(e->d.db, "SELECT min(seq) + 1 FROM audit");
    char cmd[1400];
    snprintf(cmd, sizeof cmd,
             "sqlite3 '%s' \"UPDATE audit SET detail = detail || ' ' WHERE seq = %lld\"", e->d.db,
             (long long)victim);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(run_cli(e, &out, verify), 1);
    char row[64];
    snprintf(row, sizeof row, "row %lld", (long long)victim);
    assert_non_null(strstr(out, row));
    free(out);

    /* Put it back: intact again.  Then drop the newest row: detected. */
    snprintf(cmd, sizeof cmd,
             "sqlite3 '%s' \"UPDATE audit SET detail = substr(detail, 1, length(detail) - 1) "
             "WHERE seq = %lld\"",
             e->d.db, (long long)victim);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(run_cli(e, &out, verify), 0);
    free(out);
    snprintf(cmd, sizeof cmd,
             "sqlite3 '%s' \"DELETE FROM audit WHERE seq = (SELECT max(seq) FROM audit)\"",
             e->d.db);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(run_cli(e, &out, verify), 1);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_auth_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alert_list_and_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lifecycle_and_feed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dedup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ledger_views, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sms_and_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rule_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_and_audit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readyz, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routing_silence_escalation, setup_routes, teardown),
    };
    if (getenv("FW_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FW_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
