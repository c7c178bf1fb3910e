/* test_core_config.c - the INI configuration: defaults, types, errors with
 * file, line and key, -o overrides, prefix sections. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/config.h"
#include "tests/support/harness.h"

static char *g_tmp;

static fw_config *fresh(void)
{
    fw_config *c = fw_config_new();
    fw_config_add_keys(c, fw_core_config_keys, fw_core_config_nkeys);
    fw_config_add_prefix(c, "rule.");
    return c;
}

static const char *write_conf(const char *text)
{
    static char path[600];
    snprintf(path, sizeof path, "%s/t.conf", g_tmp);
    assert_int_equal(fw_t_write_file(path, text), 0);
    return path;
}

static void test_defaults(void **state)
{
    (void)state;
    fw_config *c = fresh();
    char err[512];
    assert_int_equal(fw_config_load(c, NULL, NULL, 0, err, sizeof err), 0);
    assert_string_equal(fw_config_get(c, "nats.url"), "nats://127.0.0.1:4222");
    assert_string_equal(fw_config_get(c, "nats.stream"), "FISCAL");
    assert_string_equal(fw_config_get(c, "nats.consumer"), "fundwatch");
    assert_string_equal(fw_config_get(c, "store.path"), "var/fundwatch.db");
    assert_string_equal(fw_config_get(c, "rules.dir"), "rules");
    assert_string_equal(fw_config_get(c, "http.listen"), "127.0.0.1:8640");
    assert_string_equal(fw_config_get(c, "auth.tokens"), "etc/tokens");
    assert_string_equal(fw_config_get(c, "time.zone"), "+08:00");
    assert_int_equal(fw_config_int(c, "rules.tick"), 60);
    fw_config_free(c);
}

static void test_file_and_overrides(void **state)
{
    (void)state;
    fw_config *c = fresh();
    char err[512];
    const char *path = write_conf("# comment\n[nats]\nurl = nats://10.0.0.1:4222\n\n[rules]\n"
                                  "tick = 5m\n[rule.cash_over_limit]\nlimit = 1000\n");
    char *over[] = {"nats.stream=OTHER", "rule.cash_over_limit.limit=2000"};
    assert_int_equal(fw_config_load(c, path, over, 2, err, sizeof err), 0);
    assert_string_equal(fw_config_get(c, "nats.url"), "nats://10.0.0.1:4222");
    assert_string_equal(fw_config_get(c, "nats.stream"), "OTHER");
    assert_int_equal(fw_config_int(c, "rules.tick"), 300);
    assert_string_equal(fw_config_get(c, "rule.cash_over_limit.limit"), "2000");
    fw_config_free(c);
}

static void expect_error(const char *text, const char *needle)
{
    fw_config *c = fresh();
    char err[512] = "";
    const char *path = write_conf(text);
    assert_int_equal(fw_config_load(c, path, NULL, 0, err, sizeof err), -1);
    if (!strstr(err, needle))
        fail_msg("error \"%s\" lacks \"%s\"", err, needle);
    fw_config_free(c);
}

static void test_errors_name_file_line_key(void **state)
{
    (void)state;
    expect_error("[nats]\nurl = x\n[bogus]\nk = v\n", "t.conf:4: unknown section [bogus]");
    expect_error("[nats]\nurl = x\nspeed = 3\n", "t.conf:3: nats.speed: unknown key");
    expect_error("[rules]\ntick = soon\n", "t.conf:2: rules.tick: must be a duration");
    expect_error("[store]\nbatch_max = 0\n", "store.batch_max: out of range");
    expect_error("[http]\nlisten = 8640\n", "http.listen: must be HOST:PORT or off");
    expect_error("[time]\nzone = CST\n", "time.zone");
    expect_error("k = v\n", "outside any [section]");
}

static void test_bad_override(void **state)
{
    (void)state;
    fw_config *c = fresh();
    char err[512];
    char *over[] = {"nats.nope=1"};
    assert_int_equal(fw_config_load(c, NULL, over, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "-o nats.nope: nats.nope: unknown key"));
    char *over2[] = {"novalue"};
    assert_int_equal(fw_config_load(c, NULL, over2, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "expected section.key=value"));
    fw_config_free(c);
}

typedef struct seen {
    int n;
    char last[128];
} seen;

static void on_each(const char *section, const char *key, const char *value, void *ud)
{
    seen *s = ud;
    s->n++;
    snprintf(s->last, sizeof s->last, "%s|%s|%s", section, key, value);
}

static void test_each_prefix(void **state)
{
    (void)state;
    fw_config *c = fresh();
    char err[512];
    const char *path = write_conf("[rule.split_payment]\nn = 4\n");
    assert_int_equal(fw_config_load(c, path, NULL, 0, err, sizeof err), 0);
    seen s = {0};
    fw_config_each(c, "rule.", on_each, &s);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.last, "rule.split_payment|n|4");
    fw_config_free(c);
}

int main(void)
{
    g_tmp = fw_t_tmpdir("config");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_file_and_overrides),
        cmocka_unit_test(test_errors_name_file_line_key),
        cmocka_unit_test(test_bad_override),
        cmocka_unit_test(test_each_prefix),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    fw_t_rmtree(g_tmp);
    free(g_tmp);
    return rc;
}
