/* test_http_server.c - the evhttp server: routing with captured segments,
 * bearer tokens and roles (401 / 403), JSON errors, 404 and 405. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/http.h"
#include "tests/support/harness.h"

static struct event_base *g_base;
static fw_http *g_http;
static int g_port;
static pthread_t g_thr;

static void h_echo(const fw_http_req *req, fw_http_resp *resp, void *ud)
{
    (void)ud;
    char status[32] = "";
    fw_http_query(req, "status", status, sizeof status);
    fw_http_json(resp, 200,
                 json_pack("{s:s,s:s,s:s,s:s,s:i,s:s?}", "method", req->method, "id",
                           req->nparams > 0 ? req->params[0] : "", "status", status, "body",
                           req->body, "role", (int)req->role, "user", req->user));
}

static void *loop_main(void *arg)
{
    (void)arg;
    event_base_dispatch(g_base);
    return NULL;
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    event_base_loopexit(g_base, NULL);
}

static int setup(void **state)
{
    (void)state;
    char *tmp = fw_t_tmpdir("http");
    char tokens[600], listen[64], err[256];
    snprintf(tokens, sizeof tokens, "%s/tokens", tmp);
    fw_t_write_file(tokens, "# comment\nviewer-token viewer vera\nsuper-token supervisor sam\n");
    g_port = fw_t_free_port();
    snprintf(listen, sizeof listen, "127.0.0.1:%d", g_port);
    evthread_use_pthreads(); /* teardown stops the loop from another thread */
    g_base = event_base_new();
    g_http = fw_http_start(g_base, listen, tokens, err, sizeof err);
    assert_non_null(g_http);
    fw_http_route(g_http, "GET", "/open", FW_ROLE_NONE, h_echo, NULL);
    fw_http_route(g_http, "GET", "/api/things/*", FW_ROLE_VIEWER, h_echo, NULL);
    fw_http_route(g_http, "POST", "/api/things/*/act", FW_ROLE_SUPERVISOR, h_echo, NULL);
    fw_t_rmtree(tmp);
    free(tmp);
    pthread_create(&g_thr, NULL, loop_main, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    event_base_once(g_base, -1, EV_TIMEOUT, on_stop, NULL, NULL);
    pthread_join(g_thr, NULL);
    fw_http_stop(g_http);
    event_base_free(g_base);
    return 0;
}

static void expect(const char *method, const char *path, const char *token, const char *body,
                   int status, const char *needle)
{
    char *resp = NULL;
    int got = fw_t_http(g_port, method, path, token, body, &resp);
    if (got != status || (needle && !strstr(resp, needle)))
        fail_msg("%s %s -> %d %s (wanted %d with %s)", method, path, got, resp, status,
                 needle ? needle : "-");
    free(resp);
}

static void test_routes_and_auth(void **state)
{
    (void)state;
    expect("GET", "/open", NULL, NULL, 200, "\"method\":\"GET\"");
    expect("GET", "/api/things/AL-000017?status=open", NULL, NULL, 401, "\"error\"");
    expect("GET", "/api/things/AL-000017?status=open", "wrong-token", NULL, 401, "\"error\"");
    expect("GET", "/api/things/AL-000017?status=open", "viewer-token", NULL, 200,
           "\"id\":\"AL-000017\",\"status\":\"open\"");
    expect("GET", "/api/things/AL%2D000018", "viewer-token", NULL, 200, "\"id\":\"AL-000018\"");
    expect("POST", "/api/things/AL-1/act", "viewer-token", "{}", 403, "\"error\"");
    expect("POST", "/api/things/AL-1/act", "super-token", "{\"to\":\"x\"}", 200,
           "\"body\":\"{\\\"to\\\":\\\"x\\\"}\"");
    expect("POST", "/api/things/AL-1/act", "super-token", "{}", 200, "\"user\":\"sam\"");
    expect("GET", "/api/nothing", NULL, NULL, 401, "\"error\"");
    expect("GET", "/api/nothing", "viewer-token", NULL, 404, "no such path");
    expect("GET", "/nothing", NULL, NULL, 404, "\"error\"");
    expect("POST", "/open", NULL, "{}", 405, "not allowed");
}

static void test_tokens_file(void **state)
{
    (void)state;
    char *tmp = fw_t_tmpdir("tokens");
    char path[600], err[256];
    snprintf(path, sizeof path, "%s/t", tmp);
    fw_t_write_file(path, "abcdefgh1 admin bob\n");
    assert_null(fw_tokens_load(path, err, sizeof err));
    assert_non_null(strstr(err, ":1: role must be viewer or supervisor"));
    fw_t_write_file(path, "short viewer bob\n");
    assert_null(fw_tokens_load(path, err, sizeof err));
    assert_non_null(strstr(err, "too short"));
    fw_t_write_file(path, "abcdefgh1 viewer\n");
    assert_null(fw_tokens_load(path, err, sizeof err));
    fw_t_write_file(path, "abcdefgh1 supervisor bob\n");
    fw_tokens *t = fw_tokens_load(path, err, sizeof err);
    assert_non_null(t);
    const char *name = NULL;
    assert_int_equal(fw_tokens_check(t, "Bearer abcdefgh1", &name), FW_ROLE_SUPERVISOR);
    assert_string_equal(name, "bob");
    assert_int_equal(fw_tokens_check(t, "Bearer abcdefgh", NULL), FW_ROLE_NONE);
    assert_int_equal(fw_tokens_check(t, "Bearer abcdefgh12", NULL), FW_ROLE_NONE);
    assert_int_equal(fw_tokens_check(t, "Basic abcdefgh1", NULL), FW_ROLE_NONE);
    assert_int_equal(fw_tokens_check(t, NULL, NULL), FW_ROLE_NONE);
    fw_tokens_free(t);
    fw_t_rmtree(tmp);
    free(tmp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_routes_and_auth, setup, teardown),
        cmocka_unit_test(test_tokens_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
