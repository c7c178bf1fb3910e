/* test_alerts_api.c - the HTTP handlers (called directly: shapes, filters,
 * status codes), the same routes behind the real fw_http server (bearer
 * tokens: missing, wrong, viewer acting, supervisor acting), and the CLI. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include "daemon/http.h"
#include "tests/unit/test_alerts_util.h"

/* AL-000001 red 101001 over_balance (acknowledged), AL-000002 yellow
 * 102001 vague_purpose, AL-000003 orange 101002 duplicate_payment. */
static at_fx *seeded(void)
{
    at_fx *f = at_open(NULL);
    fw_hit h = at_hit("over_balance", "red", "101001", "ZF1", "e1");
    assert_int_equal(at_raise(f, &h, NULL), 1);
    g_at_now += 60;
    h = at_hit("vague_purpose", "yellow", "102001", "ZF2", "e2");
    assert_int_equal(at_raise(f, &h, NULL), 1);
    g_at_now += 60;
    h = at_hit("duplicate_payment", "orange", "101002", "ZF3", "e3");
    assert_int_equal(at_raise(f, &h, NULL), 1);
    assert_int_equal(at_transition(f, "AL-000001", "acknowledged", NULL), 0);
    return f;
}

typedef void (*handler)(const fw_http_req *, fw_http_resp *, void *);

/* Call a handler; returns the status, *body the parsed JSON. */
static int call(at_fx *f, handler fn, const char *query, const char *param, const char *body,
                json_t **out)
{
    fw_http_req req = {0};
    fw_http_resp resp = {0};
    req.method = body ? "POST" : "GET";
    req.path = "/api/test";
    req.query = query ? query : "";
    req.body = body ? body : "";
    req.body_len = body ? strlen(body) : 0;
    if (param) {
        req.params[0] = param;
        req.nparams = 1;
    }
    req.role = FW_ROLE_SUPERVISOR;
    req.user = "sam";
    fn(&req, &resp, f->a);
    assert_non_null(resp.body);
    json_t *o = json_loads(resp.body, 0, NULL);
    free(resp.body);
    assert_non_null(o);
    if (out)
        *out = o;
    else
        json_decref(o);
    return resp.status ? resp.status : 200;
}

static void ids_are(json_t *list, const char *const *ids, size_t n)
{
    json_t *items = json_object_get(list, "items");
    assert_true(json_is_array(items));
    if (json_array_size(items) != n)
        fail_msg("expected %zu items, got %zu", n, json_array_size(items));
    for (size_t i = 0; i < n; i++)
        assert_string_equal(
            json_string_value(json_object_get(json_array_get(items, i), "alert_id")), ids[i]);
    json_decref(list);
}

static void expect_error(int status, int want, json_t *o, const char *needle)
{
    assert_int_equal(status, want);
    const char *e = json_string_value(json_object_get(o, "error"));
    if (!e || !strstr(e, needle))
        fail_msg("error \"%s\" lacks \"%s\"", e ? e : "(none)", needle);
    json_decref(o);
}

static void test_list_filters_newest_first(void **state)
{
    (void)state;
    at_fx *f = seeded();
    json_t *o;
    static const char *const all[] = {"AL-000003", "AL-000002", "AL-000001"};
    assert_int_equal(call(f, fw_al_h_list, NULL, NULL, NULL, &o), 200);
    json_t *first = json_array_get(json_object_get(o, "items"), 0);
    assert_string_equal(json_string_value(json_object_get(first, "level")), "orange");
    assert_non_null(json_object_get(first, "fingerprint"));
    assert_non_null(json_object_get(first, "subject"));
    ids_are(o, all, 3);
    static const char *const open[] = {"AL-000003", "AL-000002"};
    assert_int_equal(call(f, fw_al_h_list, "status=open", NULL, NULL, &o), 200);
    ids_are(o, open, 2);
    static const char *const redor[] = {"AL-000003", "AL-000001"};
    assert_int_equal(call(f, fw_al_h_list, "level=red,orange", NULL, NULL, &o), 200);
    ids_are(o, redor, 2);
    assert_int_equal(call(f, fw_al_h_list, "unit=101", NULL, NULL, &o), 200);
    ids_are(o, redor, 2);
    static const char *const one[] = {"AL-000002"};
    assert_int_equal(call(f, fw_al_h_list, "rule=vague_purpose&status=open", NULL, NULL, &o), 200);
    ids_are(o, one, 1);
    static const char *const newest[] = {"AL-000003"};
    assert_int_equal(call(f, fw_al_h_list, "limit=1", NULL, NULL, &o), 200);
    ids_are(o, newest, 1);
    assert_int_equal(
        call(f, fw_al_h_list, "since=2024-06-03T10%3A16%3A00%2B08%3A00", NULL, NULL, &o), 200);
    ids_are(o, open, 2);
    assert_int_equal(call(f, fw_al_h_list, "unit=999", NULL, NULL, &o), 200);
    ids_are(o, NULL, 0);

    int st = call(f, fw_al_h_list, "status=closed", NULL, NULL, &o);
    expect_error(st, 400, o, "status");
    st = call(f, fw_al_h_list, "level=pink", NULL, NULL, &o);
    expect_error(st, 400, o, "level");
    st = call(f, fw_al_h_list, "limit=0", NULL, NULL, &o);
    expect_error(st, 400, o, "limit");
    st = call(f, fw_al_h_list, "since=yesterday", NULL, NULL, &o);
    expect_error(st, 400, o, "since");
    at_close(f);
}

static void test_show_and_transition(void **state)
{
    (void)state;
    at_fx *f = seeded();
    json_t *o;
    assert_int_equal(call(f, fw_al_h_show, NULL, "AL-000001", NULL, &o), 200);
    assert_string_equal(json_string_value(json_object_get(o, "status")), "acknowledged");
    json_t *h0 = json_array_get(json_object_get(o, "history"), 0);
    assert_string_equal(json_string_value(json_object_get(h0, "from")), "open");
    assert_string_equal(json_string_value(json_object_get(h0, "to")), "acknowledged");
    assert_string_equal(json_string_value(json_object_get(h0, "by")), "sam");
    assert_non_null(json_object_get(h0, "at"));
    assert_non_null(json_object_get(h0, "note"));
    json_decref(o);
    int st = call(f, fw_al_h_show, NULL, "AL-000404", NULL, &o);
    expect_error(st, 404, o, "AL-000404");

    /* by defaults to the token's name */
    assert_int_equal(
        call(f, fw_al_h_transition, NULL, "AL-000002", "{\"to\": \"acknowledged\"}", &o), 200);
    assert_string_equal(json_string_value(json_object_get(o, "status")), "acknowledged");
    h0 = json_array_get(json_object_get(o, "history"), 0);
    assert_string_equal(json_string_value(json_object_get(h0, "by")), "sam");
    json_decref(o);
    assert_int_equal(call(f, fw_al_h_transition, NULL, "AL-000002",
                          "{\"to\": \"confirmed\", \"by\": \"王科长\", \"note\": \"核实违规\"}",
                          &o),
                     200);
    h0 = json_array_get(json_object_get(o, "history"), 1);
    assert_string_equal(json_string_value(json_object_get(h0, "by")), "王科长");
    assert_string_equal(json_string_value(json_object_get(h0, "note")), "核实违规");
    json_decref(o);

    st = call(f, fw_al_h_transition, NULL, "AL-000003", "{\"to\": \"dismissed\"}", &o);
    expect_error(st, 409, o, "acknowledge");
    st = call(f, fw_al_h_transition, NULL, "AL-000002", "{\"to\": \"resolved\"}", &o);
    expect_error(st, 400, o, "note");
    assert_int_equal(
        call(f, fw_al_h_transition, NULL, "AL-000003", "{\"to\": \"acknowledged\"}", NULL), 200);
    st = call(f, fw_al_h_transition, NULL, "AL-000003", "{\"to\": \"dismissed\"}", &o);
    expect_error(st, 400, o, "evidence");
    st = call(f, fw_al_h_transition, NULL, "AL-000404", "{\"to\": \"acknowledged\"}", &o);
    expect_error(st, 404, o, "not found");
    st = call(f, fw_al_h_transition, NULL, "AL-000003", "{\"note\": \"x\"}", &o);
    expect_error(st, 400, o, "to");
    st = call(f, fw_al_h_transition, NULL, "AL-000003", "{\"to\": 3}", &o);
    expect_error(st, 400, o, "to");
    st = call(f, fw_al_h_transition, NULL, "AL-000003", "not json", &o);
    expect_error(st, 400, o, "JSON");
    at_close(f);
}

static void test_silences_api(void **state)
{
    (void)state;
    at_fx *f = seeded();
    json_t *o;
    assert_int_equal(call(f, fw_al_h_silences_add, NULL, NULL,
                          "{\"rule\": \"split_payment\", \"unit\": \"101\", \"for\": \"2h\","
                          " \"reason\": \"批量补录\"}",
                          &o),
                     201);
    assert_string_equal(json_string_value(json_object_get(o, "silence_id")), "SL-000001");
    assert_string_equal(json_string_value(json_object_get(o, "author")), "sam");
    assert_string_equal(json_string_value(json_object_get(o, "status")), "active");
    assert_string_equal(json_string_value(json_object_get(o, "ends_at")),
                        "2024-06-03T12:17:00+08:00");
    json_decref(o);
    assert_int_equal(call(f, fw_al_h_silences_add, NULL, NULL,
                          "{\"from\": \"2024-06-04T00:00:00+08:00\","
                          " \"until\": \"2024-06-04T06:00:00+08:00\", \"by\": \"li\","
                          " \"reason\": \"夜间维护\"}",
                          &o),
                     201);
    assert_string_equal(json_string_value(json_object_get(o, "status")), "pending");
    assert_string_equal(json_string_value(json_object_get(o, "rule")), "*");
    json_decref(o);
    int st = call(f, fw_al_h_silences_add, NULL, NULL, "{\"for\": \"2h\"}", &o);
    expect_error(st, 400, o, "reason");
    st = call(f, fw_al_h_silences_add, NULL, NULL, "{\"reason\": \"x\"}", &o);
    expect_error(st, 400, o, "until");
    st = call(f, fw_al_h_silences_add, NULL, NULL, "{\"reason\": \"x\", \"for\": \"soon\"}", &o);
    expect_error(st, 400, o, "for");

    assert_int_equal(call(f, fw_al_h_silences_list, NULL, NULL, NULL, &o), 200);
    assert_int_equal(json_array_size(json_object_get(o, "items")), 2);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(o, "items"), 0), "silence_id")),
                        "SL-000002");
    json_decref(o);
    assert_int_equal(call(f, fw_al_h_silences_list, "status=active", NULL, NULL, &o), 200);
    assert_int_equal(json_array_size(json_object_get(o, "items")), 1);
    json_decref(o);

    assert_int_equal(call(f, fw_al_h_silences_expire, NULL, "SL-000001", "", &o), 200);
    assert_string_equal(json_string_value(json_object_get(o, "status")), "expired");
    assert_string_equal(json_string_value(json_object_get(o, "expired_by")), "sam");
    json_decref(o);
    st = call(f, fw_al_h_silences_expire, NULL, "SL-000001", "", &o);
    expect_error(st, 409, o, "already expired");
    st = call(f, fw_al_h_silences_expire, NULL, "SL-000077", "", &o);
    expect_error(st, 404, o, "not found");
    at_close(f);
}

/* ---- the real server: tokens and roles ---- */

static void *loop_thread(void *arg)
{
    event_base_loop(arg, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static void test_http_auth_and_roles(void **state)
{
    (void)state;
    at_fx *f = seeded();
    char tokens[700], listen[64], err[256];
    snprintf(tokens, sizeof tokens, "%s/tokens", f->dir);
    assert_int_equal(
        fw_t_write_file(tokens, "viewer-token viewer vera\nsuper-token supervisor sam\n"), 0);
    evthread_use_pthreads();
    struct event_base *base = event_base_new();
    int port = fw_t_free_port();
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    fw_http *h = fw_http_start(base, listen, tokens, err, sizeof err);
    if (!h)
        fail_msg("http: %s", err);
    fw_alerts_register_http(f->a, h);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, loop_thread, base), 0);

    char *body = NULL;
    const char *tr = "{\"to\": \"acknowledged\", \"note\": \"接手核实\"}";
    /* missing and wrong token: 401 with a JSON error */
    assert_int_equal(fw_t_http(port, "GET", "/api/alerts", NULL, NULL, &body), 401);
    assert_non_null(strstr(body, "\"error\""));
    free(body);
    assert_int_equal(fw_t_http(port, "GET", "/api/alerts", "nope", NULL, &body), 401);
    free(body);
    assert_int_equal(fw_t_http(port, "POST", "/api/alerts/AL-000002/transition", NULL, tr, &body),
                     401);
    free(body);
    /* viewer reads, may not act */
    assert_int_equal(fw_t_http(port, "GET", "/api/alerts?status=open", "viewer-token", NULL, &body),
                     200);
    assert_non_null(strstr(body, "\"items\""));
    assert_non_null(strstr(body, "AL-000002"));
    free(body);
    assert_int_equal(fw_t_http(port, "GET", "/api/alerts/AL-000001", "viewer-token", NULL, &body),
                     200);
    assert_non_null(strstr(body, "\"history\""));
    free(body);
    assert_int_equal(
        fw_t_http(port, "POST", "/api/alerts/AL-000002/transition", "viewer-token", tr, &body),
        403);
    assert_non_null(strstr(body, "\"error\""));
    free(body);
    assert_int_equal(fw_t_http(port, "POST", "/api/silences", "viewer-token",
                               "{\"for\": \"1h\", \"reason\": \"x\"}", &body),
                     403);
    free(body);
    assert_int_equal(at_sql(f, "SELECT count(*) FROM alert_history WHERE alert_n = 2"), 0);
    /* supervisor acts; the history names the token's user */
    assert_int_equal(
        fw_t_http(port, "POST", "/api/alerts/AL-000002/transition", "super-token", tr, &body), 200);
    assert_non_null(strstr(body, "\"acknowledged\""));
    free(body);
    assert_int_equal(at_sql(f, "SELECT count(*) FROM alert_history WHERE alert_n = 2 AND"
                               " by = 'sam' AND to_status = 'acknowledged'"),
                     1);
    assert_int_equal(
        fw_t_http(port, "POST", "/api/alerts/AL-000002/transition", "super-token", tr, &body), 409);
    free(body);
    assert_int_equal(fw_t_http(port, "GET", "/api/alerts/AL-000404", "super-token", NULL, &body),
                     404);
    free(body);

    event_base_loopbreak(base);
    pthread_join(th, NULL);
    fw_http_stop(h);
    event_base_free(base);
    at_close(f);
}

/* ---- CLI ---- */

static int run_cli(at_fx *f, char **out, int argc, char **argv)
{
    char path[700];
    snprintf(path, sizeof path, "%s/stdout.txt", f->dir);
    fflush(stdout);
    int saved = dup(1);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 1);
    close(fd);
    int rc = fw_alerts_cli_main(f->a, argc, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    *out = fw_t_read_file(path, NULL);
    assert_non_null(*out);
    return rc;
}

#define CLI(rc, ...)                                                                               \
    do {                                                                                           \
        char *argv_[] = {__VA_ARGS__};                                                             \
        char *out_ = NULL;                                                                         \
        int got_ = run_cli(f, &out_, (int)(sizeof argv_ / sizeof argv_[0]), argv_);                \
        if (got_ != (rc))                                                                          \
            fail_msg("exit %d, expected %d; stdout: %s", got_, rc, out_);                          \
        free(last);                                                                                \
        last = out_;                                                                               \
    } while (0)

static void test_cli(void **state)
{
    (void)state;
    at_fx *f = seeded();
    char *last = NULL;
    CLI(0, "alerts", "list");
    assert_non_null(strstr(last, "AL-000003"));
    assert_non_null(strstr(last, "3 alert(s)"));
    CLI(0, "alerts", "list", "--status", "open", "--level=yellow");
    assert_non_null(strstr(last, "AL-000002"));
    assert_null(strstr(last, "AL-000003"));
    CLI(0, "alerts", "list", "--unit", "101", "--json");
    json_t *o = json_loads(last, 0, NULL);
    assert_int_equal(json_array_size(json_object_get(o, "items")), 2);
    json_decref(o);
    CLI(2, "alerts", "list", "--status", "closed");
    CLI(2, "alerts", "list", "--bogus");
    CLI(0, "alerts", "show", "AL-000001");
    assert_non_null(strstr(last, "over_balance"));
    assert_non_null(strstr(last, "open -> acknowledged  by sam"));
    CLI(1, "alerts", "show", "AL-000404");
    CLI(0, "alerts", "transition", "AL-000001", "confirmed", "--by", "wang", "--note",
        "凭证与指标不符");
    CLI(1, "alerts", "transition", "AL-000001", "dismissed", "--by", "wang", "--note", "x");
    CLI(2, "alerts", "transition", "AL-000001", "resolved", "--by", "wang"); /* note needed */
    CLI(2, "alerts", "transition", "AL-000001", "resolved", "--note", "x");  /* by needed */
    CLI(0, "alerts", "transition", "AL-000001", "resolved", "--by", "wang", "--note", "已拦截");
    CLI(0, "alerts", "show", "AL-000001", "--json");
    o = json_loads(last, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(o, "status")), "resolved");
    assert_int_equal(json_array_size(json_object_get(o, "history")), 3);
    json_decref(o);
    CLI(2, "alerts", "frobnicate");

    CLI(0, "silences", "add", "--rule", "split_payment", "--unit", "101", "--for", "2h", "--by",
        "li", "--reason", "批量补录");
    assert_non_null(strstr(last, "SL-000001"));
    CLI(2, "silences", "add", "--for", "2h", "--by", "li"); /* reason */
    CLI(2, "silences", "add", "--for", "2h", "--until", "2030-01-01", "--by", "li", "--reason",
        "x");
    CLI(0, "silences", "list");
    assert_non_null(strstr(last, "active"));
    assert_non_null(strstr(last, "split_payment"));
    CLI(0, "silences", "expire", "SL-000001", "--by", "li");
    CLI(1, "silences", "expire", "SL-000001", "--by", "li");
    CLI(0, "silences", "list", "--status", "expired", "--json");
    o = json_loads(last, 0, NULL);
    assert_int_equal(json_array_size(json_object_get(o, "items")), 1);
    json_decref(o);
    CLI(0, "audit", "verify");
    CLI(2, "audit", "check");
    free(last);
    at_close(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_filters_newest_first),
        cmocka_unit_test(test_show_and_transition),
        cmocka_unit_test(test_silences_api),
        cmocka_unit_test(test_http_auth_and_roles),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
