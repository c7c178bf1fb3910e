/* test_alerts_lifecycle.c - alert creation, dedup (repeats and redelivery),
 * every lifecycle path, every refused transition, notes, shadow hits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/sha.h>

#include "tests/unit/test_alerts_util.h"

static json_t *pub_json(at_fx *f, int i)
{
    assert_true(i < f->npubs);
    json_t *o = json_loads(f->pubs[i].b, 0, NULL);
    assert_non_null(o);
    return o;
}

static void test_raise_creates_alert_with_contract_shape(void **state)
{
    (void)state;
    at_fx *f = at_open(NULL);
    fw_hit h = at_hit("split_payment", "yellow", "101001", "ZF2024000123", "evt-1");
    h.details = json_pack("{s:i, s:s}", "count", 3, "total", "60000.00");
    h.key = (char *)"acct-0123";
    json_t *alert = NULL;
    assert_int_equal(fw_store_begin(f->st), 0);
    assert_int_equal(fw_alerts_raise(f->a, &h, "3f9a", &alert), 1);
    assert_int_equal(fw_store_commit(f->st), 0);
    json_decref(h.details);
    fw_alerts_flush(f->a);

    assert_string_equal(json_string_value(json_object_get(alert, "alert_id")), "AL-000001");
    assert_string_equal(json_string_value(json_object_get(alert, "rule")), "split_payment");
    assert_string_equal(json_string_value(json_object_get(alert, "level")), "yellow");
    assert_string_equal(json_string_value(json_object_get(alert, "status")), "open");
    assert_string_equal(json_string_value(json_object_get(alert, "unit_code")), "101001");
    json_t *subj = json_object_get(alert, "subject");
    assert_string_equal(json_string_value(json_object_get(subj, "kind")), "voucher");
    assert_string_equal(json_string_value(json_object_get(subj, "id")), "ZF2024000123");
    assert_string_equal(json_string_value(json_object_get(alert, "message")), "测试预警");
    json_t *details = json_object_get(alert, "details");
    assert_int_equal(json_integer_value(json_object_get(details, "count")), 3);
    assert_string_equal(json_string_value(json_object_get(details, "total")), "60000.00");
    assert_int_equal(json_integer_value(json_object_get(alert, "occurrences")), 1);
    assert_string_equal(json_string_value(json_object_get(alert, "first_seen")),
                        "2024-06-03T10:15:00+08:00");
    assert_string_equal(json_string_value(json_object_get(alert, "last_seen")),
                        "2024-06-03T10:15:00+08:00");
    assert_string_equal(json_string_value(json_object_get(alert, "ruleset")), "3f9a");

    /* fingerprint = hex sha256("rule|kind|id|key") */
    const char *src = "split_payment|voucher|ZF2024000123|acct-0123";
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)src, strlen(src), md);
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    assert_string_equal(json_string_value(json_object_get(alert, "fingerprint")), hex);

    /* Published once on fundwatch.alert.<level>.<unit>, same JSON. */
    assert_int_equal(f->npubs, 1);
    assert_string_equal(f->pubs[0].a, "fundwatch.alert.yellow.101001");
    json_t *p = pub_json(f, 0);
    assert_true(
        json_equal(json_object_get(p, "fingerprint"), json_object_get(alert, "fingerprint")));
    assert_string_equal(json_string_value(json_object_get(p, "status")), "open");
    json_decref(p);
    /* Audited, and nothing waits in the feed after the flush. */
    assert_int_equal(at_sql(f, "SELECT count(*) FROM audit WHERE action = 'alert.create'"
                               " AND object = 'AL-000001'"),
                     1);
    assert_int_equal(at_sql(f, "SELECT count(*) FROM alert_feed"), 0);
    json_decref(alert);

    /* Ids are sequential. */
    fw_hit h2 = at_hit("split_payment", "yellow", "101001", "ZF2024000124", "evt-2");
    char id[32];
    assert_int_equal(at_raise(f, &h2, id), 1);
    assert_string_equal(id, "AL-000002");
    at_close(f);
}

static void test_dedup_repeats_and_redelivery(void **state)
{
    (void)state;
    at_fx *f = at_open(NULL);
    char id[32], id2[32];
    fw_hit h = at_hit("duplicate_payment", "orange", "101001", "ZF1", "evt-1");
    assert_int_equal(at_raise(f, &h, id), 1);
    assert_int_equal(f->npubs, 1);

    /* Redelivery of the same event: nothing changes. */
    g_at_now += 100;
    h.at = g_at_now;
    assert_int_equal(at_raise(f, &h, id2), 0);
    assert_string_equal(id, id2);
    assert_int_equal(at_sql(f, "SELECT occurrences FROM alerts"), 1);
    assert_int_equal(at_sql(f, "SELECT last_seen FROM alerts"), AT_T0);

    /* A new event for the same case: one more occurrence, last_seen moves. */
    h.event_id = (char *)"evt-2";
    assert_int_equal(at_raise(f, &h, id2), 0);
    assert_string_equal(id, id2);
    assert_int_equal(at_sql(f, "SELECT occurrences FROM alerts"), 2);
    assert_int_equal(at_sql(f, "SELECT last_seen FROM alerts"), AT_T0 + 100);
    /* ... and that one redelivered again changes nothing. */
    assert_int_equal(at_raise(f, &h, NULL), 0);
    assert_int_equal(at_sql(f, "SELECT occurrences FROM alerts"), 2);
    /* Tick hits have no event id: each one is a repeat. */
    h.event_id = NULL;
    assert_int_equal(at_raise(f, &h, NULL), 0);
    assert_int_equal(at_raise(f, &h, NULL), 0);
    assert_int_equal(at_sql(f, "SELECT occurrences FROM alerts"), 4);
    /* Repeats are not status changes: still one publish. */
    assert_int_equal(f->npubs, 1);

    /* A different key or subject is a different case. */
    h.key = (char *)"other";
    h.event_id = (char *)"evt-3";
    assert_int_equal(at_raise(f, &h, id2), 1);
    assert_string_equal(id2, "AL-000002");
    h.key = NULL;
    h.subject_id = (char *)"ZF2";
    assert_int_equal(at_raise(f, &h, id2), 1);
    assert_string_equal(id2, "AL-000003");
    assert_int_equal(at_sql(f, "SELECT count(*) FROM alerts"), 3);
    at_close(f);
}

static void test_closed_alert_does_not_absorb_but_redelivery_stays_idempotent(void **state)
{
    (void)state;
    at_fx *f = at_open(NULL);
    char id[32], id2[32];
    fw_hit h = at_hit("vague_purpose", "yellow", "101001", "ZF9", "evt-1");
    assert_int_equal(at_raise(f, &h, id), 1);
    assert_int_equal(at_transition(f, id, "acknowledged", NULL), 0);
    /* acknowledged and confirmed still absorb repeats */
    h.event_id = (char *)"evt-2";
    assert_int_equal(at_raise(f, &h, id2), 0);
    assert_string_equal(id, id2);
    assert_int_equal(at_transition(f, id, "confirmed", NULL), 0);
    h.event_id = (char *)"evt-3";
    assert_int_equal(at_raise(f, &h, id2), 0);
    assert_string_equal(id, id2);
    assert_int_equal(at_sql(f, "SELECT occurrences FROM alerts"), 3);
    assert_int_equal(at_transition(f, id, "resolved", "付款已退回"), 0);

    /* Resolved: a new hit opens a new alert ... */
    h.event_id = (char *)"evt-4";
    assert_int_equal(at_raise(f, &h, id2), 1);
    assert_string_equal(id2, "AL-000002");
    /* ... but a redelivered old event opens nothing. */
    h.event_id = (char *)"evt-3";
    assert_int_equal(at_raise(f, &h, NULL), 0);
    assert_int_equal(at_sql(f, "SELECT count(*) FROM alerts"), 2);

    /* Dismissed does not absorb either. */
    assert_int_equal(at_transition(f, id2, "acknowledged", NULL), 0);
    assert_int_equal(at_transition(f, id2, "dismissed", NULL), 0);
    h.event_id = (char *)"evt-5";
    assert_int_equal(at_raise(f, &h, id2), 1);
    assert_string_equal(id2, "AL-000003");
    at_close(f);
}

static void check_history(json_t *hist, int i, const char *from, const char *to, const char *by,
                          const char *note)
{
    json_t *e = json_array_get(hist, (size_t)i);
    assert_non_null(e);
    assert_string_equal(json_string_value(json_object_get(e, "from")), from);
    assert_string_equal(json_string_value(json_object_get(e, "to")), to);
    assert_string_equal(json_string_value(json_object_get(e, "by")), by);
    assert_string_equal(json_string_value(json_object_get(e, "note")), note);
    assert_non_null(json_string_value(json_object_get(e, "at")));
}

static void run_path(const char *verdict, const char *level)
{
    at_fx *f = at_open(NULL);
    char id[32], err[256];
    fw_hit h = at_hit("cash_over_limit", level, "101001", "ZF1", "evt-1");
    assert_int_equal(at_raise(f, &h, id), 1);
    g_at_now += 60;
    assert_int_equal(fw_alerts_transition(f->a, id, "acknowledged", "wang", "", err, sizeof err),
                     0);
    g_at_now += 60;
    assert_int_equal(
        fw_alerts_transition(f->a, id, verdict, "li", "凭证附件已核对", err, sizeof err), 0);
    g_at_now += 60;
    assert_int_equal(
        fw_alerts_transition(f->a, id, "resolved", "zhao", "已追回资金", err, sizeof err), 0);

    json_t *o = fw_alerts_get_json(f->a, id);
    assert_string_equal(json_string_value(json_object_get(o, "status")), "resolved");
    json_t *hist = json_object_get(o, "history");
    assert_int_equal(json_array_size(hist), 3);
    check_history(hist, 0, "open", "acknowledged", "wang", "");
    check_history(hist, 1, "acknowledged", verdict, "li", "凭证附件已核对");
    check_history(hist, 2, verdict, "resolved", "zhao", "已追回资金");
    assert_string_equal(json_string_value(json_object_get(json_array_get(hist, 0), "at")),
                        "2024-06-03T10:16:00+08:00");
    assert_string_equal(json_string_value(json_object_get(o, "acknowledged_at")),
                        "2024-06-03T10:16:00+08:00");
    json_decref(o);

    /* Each change published with its new status, and audited with its actor. */
    assert_int_equal(f->npubs, 4);
    const char *expect[4] = {"open", "acknowledged", verdict, "resolved"};
    for (int i = 0; i < 4; i++) {
        json_t *p = pub_json(f, i);
        assert_string_equal(json_string_value(json_object_get(p, "status")), expect[i]);
        json_decref(p);
    }
    assert_int_equal(at_sql(f, "SELECT count(*) FROM audit WHERE action = 'alert.transition'"), 3);
    assert_int_equal(at_sql(f, "SELECT count(*) FROM audit WHERE action = 'alert.transition'"
                               " AND actor = 'zhao' AND detail LIKE '%\"to\":\"resolved\"%'"),
                     1);
    assert_int_equal(fw_audit_verify(f->st, err, sizeof err), 0);
    at_close(f);
}

static void test_path_confirm_then_resolve(void **state)
{
    (void)state;
    run_path("confirmed", "red");
}

static void test_path_dismiss_then_resolve(void **state)
{
    (void)state;
    run_path("dismissed", "orange");
}

typedef struct refusal {
    const char *from; /* state to bring the alert to first */
    const char *to;
    int rc;
    const char *why; /* substring of the error */
} refusal;

static void bring_to(at_fx *f, const char *id, const char *state)
{
    static const char *const chain_confirm[] = {"acknowledged", "confirmed", "resolved"};
    static const char *const chain_dismiss[] = {"acknowledged", "dismissed"};
    if (strcmp(state, "open") == 0)
        return;
    if (strcmp(state, "dismissed") == 0) {
        for (int i = 0; i < 2; i++)
            assert_int_equal(at_transition(f, id, chain_dismiss[i], "n"), 0);
        return;
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(at_transition(f, id, chain_confirm[i], "n"), 0);
        if (strcmp(chain_confirm[i], state) == 0)
            return;
    }
}

static void test_refused_transitions(void **state)
{
    (void)state;
    static const refusal cases[] = {
        {"open", "confirmed", FW_ALERTS_REFUSED, "acknowledge"},
        {"open", "dismissed", FW_ALERTS_REFUSED, "acknowledge"},
        {"open", "resolved", FW_ALERTS_REFUSED, "confirmed or dismissed"},
        {"open", "open", FW_ALERTS_REFUSED, "already open"},
        {"acknowledged", "acknowledged", FW_ALERTS_REFUSED, "already acknowledged"},
        {"acknowledged", "resolved", FW_ALERTS_REFUSED, "confirmed or dismissed"},
        {"acknowledged", "open", FW_ALERTS_REFUSED, "reopened"},
        {"confirmed", "dismissed", FW_ALERTS_REFUSED, "already verified"},
        {"confirmed", "acknowledged", FW_ALERTS_REFUSED, "only an open alert"},
        {"dismissed", "confirmed", FW_ALERTS_REFUSED, "already verified"},
        {"resolved", "acknowledged", FW_ALERTS_REFUSED, "final"},
        {"resolved", "resolved", FW_ALERTS_REFUSED, "already resolved"},
        {"open", "closed", FW_ALERTS_BAD, "to:"},
        {"open", "", FW_ALERTS_BAD, "to:"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        at_fx *f = at_open(NULL);
        char id[32], err[256] = "";
        fw_hit h = at_hit("vague_purpose", "yellow", "101001", "ZF1", "evt-1");
        assert_int_equal(at_raise(f, &h, id), 1);
        bring_to(f, id, cases[i].from);
        int64_t hist = at_sql(f, "SELECT count(*) FROM alert_history");
        int64_t audit = at_sql(f, "SELECT count(*) FROM audit");
        int pubs = f->npubs;
        int rc = fw_alerts_transition(f->a, id, cases[i].to, "sam", "note", err, sizeof err);
        if (rc != cases[i].rc || !strstr(err, cases[i].why))
            fail_msg("%s -> %s: rc %d err \"%s\"", cases[i].from, cases[i].to, rc, err);
        /* A refusal changes nothing and tells no one. */
        assert_int_equal(at_sql(f, "SELECT count(*) FROM alert_history"), hist);
        assert_int_equal(at_sql(f, "SELECT count(*) FROM audit"), audit);
        fw_alerts_flush(f->a);
        assert_int_equal(f->npubs, pubs);
        at_close(f);
    }
}

static void test_bad_arguments_and_unknown_alert(void **state)
{
    (void)state;
    at_fx *f = at_open(NULL);
    char id[32], err[256];
    fw_hit h = at_hit("vague_purpose", "yellow", "101001", "ZF1", "evt-1");
    assert_int_equal(at_raise(f, &h, id), 1);
    assert_int_equal(
        fw_alerts_transition(f->a, "AL-999999", "acknowledged", "sam", NULL, err, sizeof err),
        FW_ALERTS_NOT_FOUND);
    assert_non_null(strstr(err, "AL-999999"));
    assert_int_equal(fw_alerts_transition(f->a, id, "acknowledged", "", NULL, err, sizeof err),
                     FW_ALERTS_BAD);
    assert_non_null(strstr(err, "by"));
    assert_int_equal(fw_alerts_transition(f->a, id, "acknowledged", NULL, NULL, err, sizeof err),
                     FW_ALERTS_BAD);
    json_t *o = fw_alerts_get_json(f->a, id);
    assert_string_equal(json_string_value(json_object_get(o, "status")), "open");
    assert_int_equal(json_array_size(json_object_get(o, "history")), 0);
    json_decref(o);
    at_close(f);
}

static void test_notes_required(void **state)
{
    (void)state;
    at_fx *f = at_open(NULL);
    char id[32], err[256];
    const char *levels[4] = {"orange", "red", "yellow", "blue"};
    const int need_note[4] = {1, 1, 0, 0};
    for (int i = 0; i < 4; i++) {
        char subj[16];
        snprintf(subj, sizeof subj, "ZF%d", i);
        fw_hit h = at_hit("own_account_transfer", levels[i], "101001", subj, subj);
        assert_int_equal(at_raise(f, &h, id), 1);
        assert_int_equal(at_transition(f, id, "acknowledged", NULL), 0);
        int rc = fw_alerts_transition(f->a, id, "dismissed", "sam", "  ", err, sizeof err);
        if (need_note[i]) {
            assert_int_equal(rc, FW_ALERTS_BAD);
            assert_non_null(strstr(err, "note"));
            assert_non_null(strstr(err, "evidence"));
            assert_int_equal(at_transition(f, id, "dismissed", "收款方为本单位食堂，合同已核"), 0);
        } else {
            assert_int_equal(rc, 0);
        }
        /* resolving always needs the action taken */
        rc = fw_alerts_transition(f->a, id, "resolved", "sam", NULL, err, sizeof err);
        assert_int_equal(rc, FW_ALERTS_BAD);
        assert_non_null(strstr(err, "action"));
        assert_int_equal(at_transition(f, id, "resolved", "无需处理，已归档"), 0);
    }
    at_close(f);
}

static void test_shadow_hits_are_stored_never_published(void **state)
{
    (void)state;
    at_fx *f = at_open("[supervisor.wang]\nphone = 13800000001\nwebhook = http://h.test/w\n"
                       "[route.all]\nto = wang\n");
    char id[32];
    fw_hit h = at_hit("new_rule", "red", "101001", "ZF1", "evt-1");
    h.shadow = 1;
    assert_int_equal(at_raise(f, &h, id), 1);
    json_t *o = fw_alerts_get_json(f->a, id);
    assert_true(json_is_true(json_object_get(o, "shadow")));
    assert_null(json_object_get(o, "escalate_at"));
    json_decref(o);
    assert_int_equal(f->npubs, 0);
    assert_int_equal(f->nhooks, 0);
    assert_int_equal(f->nsms, 0);
    /* not even after a deadline or a transition */
    g_at_now += 2 * 86400;
    assert_int_equal(fw_alerts_tick(f->a, g_at_now), 0);
    assert_int_equal(at_transition(f, id, "acknowledged", NULL), 0);
    assert_int_equal(at_transition(f, id, "confirmed", NULL), 0);
    assert_int_equal(at_transition(f, id, "resolved", "done"), 0);
    assert_int_equal(f->npubs + f->nhooks + f->nsms, 0);
    /* ... yet it is visible in the list */
    json_t *list = fw_al_list_json(f->a, NULL, NULL, NULL, NULL, 0, 10);
    assert_int_equal(json_array_size(json_object_get(list, "items")), 1);
    json_decref(list);
    at_close(f);
}

static void test_rollback_leaves_nothing(void **state)
{
    (void)state;
    at_fx *f = at_open(NULL);
    fw_hit h = at_hit("vague_purpose", "yellow", "101001", "ZF1", "evt-1");
    assert_int_equal(fw_store_begin(f->st), 0);
    assert_int_equal(fw_alerts_raise(f->a, &h, "rs", NULL), 1);
    fw_store_rollback(f->st);
    fw_alerts_flush(f->a);
    assert_int_equal(f->npubs, 0);
    assert_int_equal(at_sql(f, "SELECT count(*) FROM alerts"), 0);
    assert_int_equal(at_sql(f, "SELECT count(*) FROM audit"), 0);
    /* the redelivered batch then creates it once */
    char id[32];
    assert_int_equal(at_raise(f, &h, id), 1);
    assert_string_equal(id, "AL-000001");
    assert_int_equal(f->npubs, 1);
    at_close(f);
}

static void test_gauges_and_ack_metric(void **state)
{
    (void)state;
    at_fx *f = at_open(NULL);
    char id[32];
    fw_hit h = at_hit("vague_purpose", "yellow", "101001", "ZF1", "evt-1");
    assert_int_equal(at_raise(f, &h, id), 1);
    h = at_hit("over_balance", "red", "101001", "ZF2", "evt-2");
    assert_int_equal(at_raise(f, &h, NULL), 1);
    fw_metric *yo = fw_metric_gauge("fundwatch_alerts", "", "level=\"yellow\",status=\"open\"");
    fw_metric *ya =
        fw_metric_gauge("fundwatch_alerts", "", "level=\"yellow\",status=\"acknowledged\"");
    fw_metric *ro = fw_metric_gauge("fundwatch_alerts", "", "level=\"red\",status=\"open\"");
    assert_true(fw_metric_value(yo) == 1.0);
    assert_true(fw_metric_value(ro) == 1.0);
    g_at_now += 300;
    assert_int_equal(at_transition(f, id, "acknowledged", NULL), 0);
    assert_true(fw_metric_value(yo) == 0.0);
    assert_true(fw_metric_value(ya) == 1.0);
    char *text = fw_metrics_render();
    assert_non_null(strstr(text, "fundwatch_alert_ack_seconds"));
    assert_non_null(strstr(text, "fundwatch_alerts_created_total{level=\"red\"} 1"));
    free(text);
    at_close(f);
}

/* replay prints raise's JSON: it must depend on the input, not the clock. */
static char *raise_dump(int64_t wall, int reversed)
{
    at_fx *f = at_open(NULL);
    g_at_now = wall;
    fw_hit h = at_hit("over_balance", "red", "101001", "ZF1", "e1");
    h.at = AT_T0;
    /* details built in a different order (as from a Lua table) */
    h.details = reversed ? json_pack("{s:i, s:i}", "b", 1, "a", 2)
                         : json_pack("{s:i, s:i}", "a", 2, "b", 1);
    json_t *alert = NULL;
    assert_int_equal(fw_store_begin(f->st), 0);
    assert_int_equal(fw_alerts_raise(f->a, &h, "rs", &alert), 1);
    assert_int_equal(fw_store_commit(f->st), 0);
    json_decref(h.details);
    char *text = json_dumps(alert, JSON_COMPACT);
    json_decref(alert);
    /* the API view does carry the wall-clock bookkeeping */
    json_t *full = fw_alerts_get_json(f->a, "AL-000001");
    assert_non_null(json_object_get(full, "created_at"));
    assert_non_null(json_object_get(full, "escalate_at"));
    json_decref(full);
    at_close(f);
    return text;
}

static void test_raise_output_depends_on_input_only(void **state)
{
    (void)state;
    char *a = raise_dump(AT_T0 + 5, 0);
    char *b = raise_dump(AT_T0 + 86400 * 400, 1);
    assert_string_equal(a, b);
    free(a);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raise_creates_alert_with_contract_shape),
        cmocka_unit_test(test_dedup_repeats_and_redelivery),
        cmocka_unit_test(test_closed_alert_does_not_absorb_but_redelivery_stays_idempotent),
        cmocka_unit_test(test_path_confirm_then_resolve),
        cmocka_unit_test(test_path_dismiss_then_resolve),
        cmocka_unit_test(test_refused_transitions),
        cmocka_unit_test(test_bad_arguments_and_unknown_alert),
        cmocka_unit_test(test_notes_required),
        cmocka_unit_test(test_shadow_hits_are_stored_never_published),
        cmocka_unit_test(test_rollback_leaves_nothing),
        cmocka_unit_test(test_gauges_and_ack_metric),
        cmocka_unit_test(test_raise_output_depends_on_input_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
