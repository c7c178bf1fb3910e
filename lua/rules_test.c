/*
 * rules_test.c - rule test cases and the `rules check|test` command.
 *
 * A test file rules/<id>.test.lua runs in its own sandbox whose globals add
 * `fx` (lua/fixture.lua, compiled in) and `require_fixture()`; it returns a
 * list of cases {name, params, events, expect}.  The cases are turned into
 * JSON there, then each case runs with a fresh copy of the rule and an
 * empty in-memory ledger (one store per file, each case in a transaction
 * that is rolled back): every event goes through the real decoder
 * (fw_event_decode), this rule alone (fw_rule_eval, pre-state), then
 * fw_ledger_apply; an event with subject "tick" runs the rule's tick.  The
 * hits of the whole case are compared, in order, with `expect` (level,
 * match = plain substring of the message, key, subject id); their number
 * must equal #expect.  A rule with `when` also has check called on the
 * events `when` skipped: a hit there fails the case (`when` must only skip
 * what check would not hit).
 */
#include <ctype.h>
#include <dirent.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon/log.h"
#include "daemon/timeutil.h"
#include "lua/rule_int.h"
#include "lua/rules.h"

extern const unsigned char fw_fixture_lua[];
extern const unsigned long fw_fixture_lua_len;

#define TEST_MEM ((size_t)256 << 20)
#define TEST_INSTR 100000000

typedef struct cases_args {
    const char *path;
    const char *src;
    size_t len;
    json_t *root; /* {"cases": [...]} filled as converted */
} cases_args;

static int push_fixture(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "fw.fx");
    return 1;
}

static int do_load_cases(lua_State *L)
{
    cases_args *a = lua_touserdata(L, 1);
    if (luaL_loadbufferx(L, (const char *)fw_fixture_lua, fw_fixture_lua_len, "=fixture.lua",
                         "t") != LUA_OK)
        return lua_error(L);
    fw_sbx_push_env(L);
    lua_setupvalue(L, -2, 1);
    lua_call(L, 0, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "fw.fx");

    char chunk[1100];
    snprintf(chunk, sizeof chunk, "@%s", a->path);
    if (luaL_loadbufferx(L, a->src, a->len, chunk, "t") != LUA_OK)
        return lua_error(L);
    fw_sbx_push_env(L);
    lua_getfield(L, LUA_REGISTRYINDEX, "fw.fx");
    lua_setfield(L, -2, "fx");
    lua_pushcfunction(L, push_fixture);
    lua_setfield(L, -2, "require_fixture");
    lua_setupvalue(L, -2, 1);
    lua_call(L, 0, 1);
    if (lua_type(L, -1) != LUA_TTABLE)
        return luaL_error(L, "%s: must return a list of cases", a->path);
    fw_lua_to_json(L, -1, a->root, "cases", 1, 0);
    return 0;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 && n <= (1 << 22) ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        *len = (size_t)n;
    }
    return buf;
}

/* Describe the hits of a case for a failure line. */
static void describe_hits(const fw_hit_list *h, char *out, size_t outlen)
{
    size_t l = 0;
    out[0] = '\0';
    for (int i = 0; i < h->n && l + 8 < outlen; i++)
        l += (size_t)snprintf(out + l, outlen - l, "%s[%s %s] %s", i ? "; " : "", h->items[i].rule,
                              h->items[i].level, h->items[i].message);
}

static int compare_hits(const fw_hit_list *hits, const json_t *expect, char *why, size_t whylen)
{
    size_t want = json_array_size(expect);
    char got[700];
    describe_hits(hits, got, sizeof got);
    if ((size_t)hits->n != want) {
        snprintf(why, whylen, "expected %zu hit(s), got %d%s%s", want, hits->n, hits->n ? ": " : "",
                 got);
        return -1;
    }
    for (size_t i = 0; i < want; i++) {
        const json_t *e = json_array_get(expect, i);
        const fw_hit *h = &hits->items[i];
        const char *level = json_string_value(json_object_get(e, "level"));
        const char *match = json_string_value(json_object_get(e, "match"));
        const char *key = json_string_value(json_object_get(e, "key"));
        const char *subject = json_string_value(json_object_get(e, "subject"));
        if (strcmp(h->rule, "rule_error") == 0) {
            snprintf(why, whylen, "hit %zu: %s", i + 1, h->message);
            return -1;
        }
        if (level && strcmp(level, h->level) != 0) {
            snprintf(why, whylen, "hit %zu: level %s, expected %s (%s)", i + 1, h->level, level,
                     h->message);
            return -1;
        }
        if (match && !strstr(h->message, match)) {
            snprintf(why, whylen, "hit %zu: message \"%s\" does not contain \"%s\"", i + 1,
                     h->message, match);
            return -1;
        }
        if (key && (!h->key || strcmp(key, h->key) != 0)) {
            snprintf(why, whylen, "hit %zu: key %s, expected %s", i + 1, h->key ? h->key : "nil",
                     key);
            return -1;
        }
        if (subject && strcmp(subject, h->subject_id) != 0) {
            snprintf(why, whylen, "hit %zu: subject %s, expected %s", i + 1, h->subject_id,
                     subject);
            return -1;
        }
    }
    return 0;
}

/* Feed the case's events; 0 or -1 with why. */
static int feed_events(fw_rule *r, fw_ledger *lg, const json_t *events, fw_hit_list *hits,
                       char *why, size_t whylen)
{
    size_t i;
    const json_t *e;
    json_array_foreach(events, i, e)
    {
        const char *subject = json_string_value(json_object_get(e, "subject"));
        const json_t *data = json_object_get(e, "data");
        if (!subject || !json_is_object(data)) {
            snprintf(why, whylen, "event %zu: not a fixture {subject=, data=}", i + 1);
            return -1;
        }
        if (strcmp(subject, "tick") == 0) {
            const json_t *at = json_object_get(data, "at");
            int64_t t = 0;
            const char *reason;
            if (json_is_integer(at))
                t = json_integer_value(at);
            else if (!json_is_string(at) || fw_time_parse(json_string_value(at), &t, &reason)) {
                snprintf(why, whylen, "event %zu: tick needs at = RFC 3339 time", i + 1);
                return -1;
            }
            fw_memo_clear(r->memo);
            fw_rule_eval_begin();
            fw_rule_tick(r, t, hits);
            continue;
        }
        char *text = json_dumps(data, JSON_COMPACT);
        fw_event ev;
        fw_decode_error derr;
        memset(&ev, 0, sizeof ev);
        int rc = fw_event_decode(subject, text, strlen(text), &ev, &derr);
        free(text);
        if (rc != 0) {
            snprintf(why, whylen, "event %zu (%s): malformed: %s: %s", i + 1, subject, derr.field,
                     derr.reason);
            return -1;
        }
        fw_payroll_info pi = {0, 0};
        if (ev.kind == FW_KIND_PAYROLL)
            fw_payroll_info_get(lg, &ev, &pi);
        fw_memo_clear(r->memo); /* as fw_rules_eval does */
        fw_rule_eval_begin();
        fw_rule_eval(r, &ev, &pi, hits);
        fw_ledger_result res;
        memset(&res, 0, sizeof res);
        rc = fw_ledger_apply(lg, &ev, &res);
        fw_event_clear(&ev);
        if (rc != 0) {
            snprintf(why, whylen, "event %zu: ledger store error", i + 1);
            return -1;
        }
    }
    return 0;
}

/* One case, inside a transaction that is rolled back afterwards, so every
 * case starts from an empty ledger.  0 passed, -1 failed (why filled). */
static int run_case(const char *rule_path, fw_etc *etc, fw_store *st, fw_ledger *lg,
                    const json_t *c, char *why, size_t whylen)
{
    int rc = -1;
    char err[600] = "";
    fw_rule *r = NULL;
    fw_memo *memo = NULL;
    fw_hit_list hits = {0};
    const json_t *params = json_object_get(c, "params");
    const json_t *events = json_object_get(c, "events");
    const json_t *expect = json_object_get(c, "expect");
    if (!json_is_array(events) || !json_is_array(expect)) {
        snprintf(why, whylen, "a case needs events = {...} and expect = {...}");
        return -1;
    }
    fw_rule_env env = {NULL, etc, lg, NULL, 0, 0, 0};
    r = fw_rule_load(rule_path, &env, err, sizeof err);
    if (!r) {
        snprintf(why, whylen, "%s", err);
        goto cleanup;
    }
    /* The cases run through the same memoised ctx reads as live traffic. */
    memo = fw_memo_new();
    r->memo = memo;
    r->when_audit = 1; /* `when` must only skip events check would not hit */
    if (json_is_object(params) && fw_rule_set_params_json(r, params, err, sizeof err) != 0) {
        snprintf(why, whylen, "params: %s", err);
        goto cleanup;
    }
    if (fw_store_begin(st) != 0) {
        snprintf(why, whylen, "store: cannot begin");
        goto cleanup;
    }
    int fed = feed_events(r, lg, events, &hits, why, whylen);
    fw_store_rollback(st);
    if (fed != 0)
        goto cleanup;
    if (r->when_missed) {
        snprintf(why, whylen, "when skipped %d event(s) that check hits (first: %s)",
                 r->when_missed, r->when_missed_msg);
        goto cleanup;
    }
    rc = compare_hits(&hits, expect, why, whylen);
cleanup:
    fw_hit_list_free(&hits);
    fw_rule_free(r);
    fw_memo_free(memo);
    return rc;
}

static void rule_id_of(const char *path, char *id, size_t n)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t bl = strlen(b);
    if (bl >= n)
        bl = n - 1;
    memcpy(id, b, bl);
    id[bl] = '\0';
    size_t l = bl;
    if (l > 4 && strcmp(id + l - 4, ".lua") == 0)
        id[l - 4] = '\0';
}

int fw_rules_test_file_etc(const char *rule_path, fw_etc *etc, FILE *out, int *passed, int *failed,
                           char *err, int errlen)
{
    char test_path[2048], id[256];
    size_t pl = strlen(rule_path);
    if (pl < 5 || pl + 10 > sizeof test_path) {
        snprintf(err, (size_t)errlen, "%s: bad rule path", rule_path);
        return -1;
    }
    snprintf(test_path, sizeof test_path, "%.*s.test.lua", (int)(pl - 4), rule_path);
    rule_id_of(rule_path, id, sizeof id);

    /* The rule must load by itself first (a rule without tests loads). */
    fw_rule_env env = {NULL, etc, NULL, NULL, 0, 0, 0};
    fw_rule *probe = fw_rule_load(rule_path, &env, err, errlen);
    if (!probe)
        return -1;
    fw_rule_free(probe);
    struct stat sb;
    if (stat(test_path, &sb) != 0) {
        if (out)
            fprintf(out, "--   %s: no test cases\n", id);
        return 0;
    }

    size_t len = 0;
    char *src = slurp(test_path, &len);
    if (!src) {
        snprintf(err, (size_t)errlen, "%s: cannot read", test_path);
        return -1;
    }
    fw_sbx ts;
    if (fw_sbx_open(&ts, TEST_MEM, TEST_INSTR, NULL) != 0) {
        free(src);
        snprintf(err, (size_t)errlen, "%s: cannot create a Lua state", test_path);
        return -1;
    }
    cases_args a = {test_path, src, len, json_object()};
    int rc = fw_sbx_call(&ts, do_load_cases, &a, err, errlen);
    fw_sbx_close(&ts);
    free(src);
    const json_t *cases = json_object_get(a.root, "cases");
    if (rc != 0 || !json_is_array(cases)) {
        if (rc == 0)
            snprintf(err, (size_t)errlen, "%s: must return a list of cases", test_path);
        json_decref(a.root);
        return -1;
    }
    fw_store *st = fw_store_open(":memory:", fw_ledger_migrations, fw_ledger_nmigrations, 0,
                                 FW_SYNC_NORMAL, err, errlen);
    if (!st) {
        json_decref(a.root);
        return -1;
    }
    fw_ledger *lg = fw_ledger_new(st);
    int any_failed = 0;
    size_t i;
    const json_t *c;
    json_array_foreach(cases, i, c)
    {
        char why[1200] = "";
        const char *name = json_string_value(json_object_get(c, "name"));
        char namebuf[32];
        if (!name) {
            snprintf(namebuf, sizeof namebuf, "case %zu", i + 1);
            name = namebuf;
        }
        if (run_case(rule_path, etc, st, lg, c, why, sizeof why) == 0) {
            (*passed)++;
            if (out)
                fprintf(out, "ok   %s: %s\n", id, name);
        } else {
            (*failed)++;
            any_failed = 1;
            if (out)
                fprintf(out, "FAIL %s: %s: %s\n", id, name, why);
        }
        if (out)
            fflush(out);
    }
    fw_ledger_free(lg);
    fw_store_close(st);
    json_decref(a.root);
    return any_failed;
}

int fw_rules_test_file(const char *rule_path, const char *etc_dir, FILE *out, int *passed,
                       int *failed, char *err, int errlen)
{
    fw_etc *etc = fw_etc_load(etc_dir, err, errlen);
    if (!etc)
        return -1;
    int rc = fw_rules_test_file_etc(rule_path, etc, out, passed, failed, err, errlen);
    fw_etc_unref(etc);
    return rc;
}

static int is_rule_file(const struct dirent *d)
{
    const char *n = d->d_name;
    size_t len = strlen(n);
    if (len <= 4 || strcmp(n + len - 4, ".lua") != 0)
        return 0;
    for (size_t i = 0; i < len - 4; i++)
        if (!(islower((unsigned char)n[i]) || isdigit((unsigned char)n[i]) || n[i] == '_'))
            return 0;
    return 1;
}

/* For an explicit DIR, the etc/ next to it when there is one; otherwise the
 * configured rules.etc, else ./etc. */
static void pick_etc_dir(const char *dir, int explicit_dir, const fw_config *cfg, char *out,
                         size_t n)
{
    struct stat sb;
    snprintf(out, n, "%s/../etc", dir);
    if (explicit_dir && stat(out, &sb) == 0 && S_ISDIR(sb.st_mode))
        return;
    const char *conf = cfg ? fw_config_get(cfg, "rules.etc") : NULL;
    snprintf(out, n, "%s", conf ? conf : "etc");
}

int fw_rules_cli_main(int argc, char **argv, const fw_config *cfg)
{
    if (argc < 1 || argc > 2 || (strcmp(argv[0], "check") != 0 && strcmp(argv[0], "test") != 0)) {
        fprintf(stderr, "usage: fundwatch rules check|test [DIR]\n");
        return 2;
    }
    int test = strcmp(argv[0], "test") == 0;
    if (test) /* each case opens a store: keep its info lines out of the report */
        fw_log_set_level(FW_LOG_WARN);
    const char *dir = argc > 1 ? argv[1] : NULL;
    if (!dir && cfg)
        dir = fw_config_get(cfg, "rules.dir");
    if (!dir)
        dir = "rules";
    char etc_dir[2048], err[2048];
    pick_etc_dir(dir, argc > 1, cfg, etc_dir, sizeof etc_dir);
    fw_etc *etc = fw_etc_load(etc_dir, err, sizeof err);
    if (!etc) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    struct dirent **ents = NULL;
    int nf = scandir(dir, &ents, is_rule_file, alphasort);
    if (nf < 0) {
        fprintf(stderr, "%s: cannot read the rules directory\n", dir);
        fw_etc_unref(etc);
        return 1;
    }
    int passed = 0, failed = 0, ok = 0, bad = 0;
    for (int i = 0; i < nf; i++) {
        char path[2300];
        snprintf(path, sizeof path, "%s/%s", dir, ents[i]->d_name);
        free(ents[i]);
        err[0] = '\0';
        if (test) {
            if (fw_rules_test_file_etc(path, etc, stdout, &passed, &failed, err, sizeof err) < 0) {
                char id[256];
                rule_id_of(path, id, sizeof id);
                printf("FAIL %s: %s\n", id, err);
                failed++;
            }
        } else {
            fw_rule_env env = {NULL, etc, NULL, cfg, 0, 0, 0};
            fw_rule *r = fw_rule_load(path, &env, err, sizeof err);
            if (r) {
                ok++;
                fw_rule_free(r);
            } else {
                fprintf(stderr, "%s\n", err);
                bad++;
            }
        }
    }
    free(ents);
    fw_etc_unref(etc);
    fflush(stderr);
    if (test) {
        printf("%d passed, %d failed\n", passed, failed);
        return failed ? 1 : 0;
    }
    printf("%d rules ok, %d failed\n", ok, bad);
    return bad ? 1 : 0;
}
