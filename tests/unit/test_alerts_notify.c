/* test_alerts_notify.c - routing by unit prefix and level, grouping,
 * escalation on a controlled clock, silences (start, expiry, resolved
 * notice), webhook retries against a failing sink, the durable NATS feed,
 * and configuration errors that name the key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/test_alerts_util.h"

static const char k_ini[] = "[alerts]\n"
                            "group_window = 60s\n"
                            "escalate_red = 30m\n"
                            "escalate_orange = 4h\n"
                            "webhook_retries = 3\n"
                            "webhook_backoff = 30s\n"
                            "[supervisor.wang]\n"
                            "phone = 13800000001\n"
                            "webhook = http://hooks.test/wang\n"
                            "[supervisor.li]\n"
                            "phone = 13800000002\n"
                            "[supervisor.zhao]\n"
                            "webhook = http://hooks.test/zhao\n"
                            "[supervisor.qian]\n"
                            "phone = 13800000004\n"
                            "[supervisor.sun]\n"
                            "webhook = http://hooks.test/sun\n"
                            "[route.edu]\n"
                            "units = 101\n"
                            "levels = red, orange, yellow\n"
                            "to = wang\n"
                            "channels = nats, webhook, sms\n"
                            "escalate_to = zhao, qian+sun\n"
                            "[route.health]\n"
                            "units = 102, 103\n"
                            "levels = red\n"
                            "to = li\n"
                            "channels = sms\n";

static json_t *body_of(const at_rec *r, int which)
{
    json_t *o = json_loads(which == 0 ? r->b : r->c, 0, NULL);
    assert_non_null(o);
    return o;
}

static const char *notif_kind(json_t *o)
{
    return json_string_value(json_object_get(json_object_get(o, "notification"), "kind"));
}

static void test_routing_by_unit_prefix_and_level(void **state)
{
    (void)state;
    at_fx *f = at_open(k_ini);
    char id[32];
    /* 101001 yellow: route edu -> wang by webhook and SMS */
    fw_hit h = at_hit("vague_purpose", "yellow", "101001", "ZF1", "e1");
    assert_int_equal(at_raise(f, &h, id), 1);
    assert_int_equal(f->nhooks, 1);
    assert_string_equal(f->hooks[0].a, "http://hooks.test/wang");
    json_t *o = body_of(&f->hooks[0], 0);
    assert_string_equal(json_string_value(json_object_get(o, "alert_id")), id);
    assert_string_equal(notif_kind(o), "alert");
    json_decref(o);
    assert_int_equal(f->nsms, 1);
    assert_string_equal(f->sms[0].b, "13800000001");
    assert_int_equal(f->sms[0].id, 0); /* yellow: not urgent */
    assert_string_equal(f->sms[0].a, "alert:AL-000001:wang");

    /* 102001 yellow: health takes only red -> NATS only */
    h = at_hit("vague_purpose", "yellow", "102001", "ZF2", "e2");
    assert_int_equal(at_raise(f, &h, NULL), 1);
    assert_int_equal(f->nhooks, 1);
    assert_int_equal(f->nsms, 1);
    /* 103009 red: health -> li by SMS, urgent; not wang (unit 101 only) */
    h = at_hit("over_balance", "red", "103009", "ZF3", "e3");
    assert_int_equal(at_raise(f, &h, NULL), 1);
    assert_int_equal(f->nhooks, 1);
    assert_int_equal(f->nsms, 2);
    assert_string_equal(f->sms[1].b, "13800000002");
    assert_int_equal(f->sms[1].id, 1);
    /* 201001 blue: no route; 101 blue: edu has no blue */
    h = at_hit("vague_purpose", "blue", "201001", "ZF4", "e4");
    assert_int_equal(at_raise(f, &h, NULL), 1);
    h = at_hit("vague_purpose", "blue", "101001", "ZF5", "e5");
    assert_int_equal(at_raise(f, &h, NULL), 1);
    assert_int_equal(f->nhooks, 1);
    assert_int_equal(f->nsms, 2);
    /* NATS saw every one of them, on its level and unit */
    assert_int_equal(f->npubs, 5);
    assert_string_equal(f->pubs[1].a, "fundwatch.alert.yellow.102001");
    assert_string_equal(f->pubs[2].a, "fundwatch.alert.red.103009");
    assert_string_equal(f->pubs[3].a, "fundwatch.alert.blue.201001");
    /* an alert without a unit still has a valid subject */
    h = at_hit("rule_error", "yellow", "", "stuck_voucher", NULL);
    assert_int_equal(at_raise(f, &h, NULL), 1);
    assert_string_equal(f->pubs[5].a, "fundwatch.alert.yellow.none");
    at_close(f);
}

static void test_burst_is_grouped_into_one_summary(void **state)
{
    (void)state;
    at_fx *f = at_open(k_ini);
    char ids[4][32];
    for (int i = 0; i < 4; i++) {
        char subj[16], ev[16];
        snprintf(subj, sizeof subj, "ZF%d", i);
        snprintf(ev, sizeof ev, "e%d", i);
        fw_hit h = at_hit("split_payment", "yellow", "101001", subj, ev);
        assert_int_equal(at_raise(f, &h, ids[i]), 1);
        g_at_now += 15; /* 0, 15, 30, 45 s */
    }
    /* The first went at once; the other three are held. */
    assert_int_equal(f->nhooks, 1);
    assert_int_equal(f->nsms, 1);
    /* Another rule in the same unit is its own group. */
    fw_hit other = at_hit("vague_purpose", "yellow", "101001", "ZF9", "e9");
    assert_int_equal(at_raise(f, &other, NULL), 1);
    assert_int_equal(f->nhooks, 2);
    assert_int_equal(f->nsms, 2);

    /* Before the window ends nothing more goes out. */
    g_at_now = AT_T0 + 59;
    assert_int_equal(fw_alerts_tick(f->a, g_at_now), 0);
    assert_int_equal(f->nhooks, 2);
    /* At its end: one summary per channel that says how many. */
    g_at_now = AT_T0 + 60;
    assert_int_equal(fw_alerts_tick(f->a, g_at_now), 2);
    assert_int_equal(f->nhooks, 3);
    assert_int_equal(f->nsms, 3);
    json_t *o = body_of(&f->hooks[2], 0);
    json_t *n = json_object_get(o, "notification");
    assert_string_equal(notif_kind(o), "summary");
    assert_int_equal(json_integer_value(json_object_get(n, "count")), 3);
    json_t *alert_ids = json_object_get(n, "alert_ids");
    assert_int_equal(json_array_size(alert_ids), 3);
    for (int i = 0; i < 3; i++)
        assert_string_equal(json_string_value(json_array_get(alert_ids, (size_t)i)), ids[i + 1]);
    assert_non_null(strstr(json_string_value(json_object_get(n, "text")), "3 条"));
    json_decref(o);
    o = body_of(&f->sms[2], 1);
    assert_string_equal(notif_kind(o), "summary");
    assert_non_null(strstr(json_string_value(json_object_get(o, "message")), "【汇总】"));
    assert_non_null(strstr(json_string_value(json_object_get(o, "message")), "另有 3 条预警"));
    json_decref(o);
    /* Nothing more at the next tick. */
    g_at_now += 60;
    assert_int_equal(fw_alerts_tick(f->a, g_at_now), 0);
    /* After the window a new alert goes at once again. */
    fw_hit h = at_hit("split_payment", "yellow", "101001", "ZF7", "e7");
    assert_int_equal(at_raise(f, &h, NULL), 1);
    assert_int_equal(f->nhooks, 4);
    o = body_of(&f->hooks[3], 0);
    assert_string_equal(notif_kind(o), "alert");
    json_decref(o);
    at_close(f);
}

static int64_t history_count(at_fx *f, const char *kind)
{
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM alert_history WHERE kind = '%s'", kind);
    return at_sql(f, sql);
}

static void test_escalation_steps_once_each(void **state)
{
    (void)state;
    at_fx *f = at_open(k_ini);
    char id[32], acked[32];
    fw_hit h = at_hit("over_balance", "red", "101001", "ZF1", "e1");
    assert_int_equal(at_raise(f, &h, id), 1);
    h = at_hit("class_mismatch", "red", "101001", "ZF2", "e2");
    assert_int_equal(at_raise(f, &h, acked), 1);
    assert_int_equal(at_transition(f, acked, "acknowledged", NULL), 0);
    h = at_hit("vague_purpose", "blue", "101001", "ZF3", "e3");
    char blue[32];
    assert_int_equal(at_raise(f, &h, blue), 1);
    int hooks0 = f->nhooks, sms0 = f->nsms;

    g_at_now = AT_T0 + 29 * 60;
    assert_int_equal(fw_alerts_tick(f->a, g_at_now), 0);
    assert_int_equal(history_count(f, "escalation"), 0);

    /* 30 min: step 1 -> zhao (webhook) */
    g_at_now = AT_T0 + 30 * 60;
    assert_int_equal(fw_alerts_tick(f->a, g_at_now), 1);
    assert_int_equal(f->nhooks, hooks0 + 1);
    assert_string_equal(f->hooks[hooks0].a, "http://hooks.test/zhao");
    json_t *o = body_of(&f->hooks[hooks0], 0);
    assert_string_equal(notif_kind(o), "escalation");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(o, "notification"), "step")), 1);
    assert_string_equal(json_string_value(json_object_get(o, "alert_id")), id);
    json_decref(o);
    json_t *a = fw_alerts_get_json(f->a, id);
    json_t *hist = json_object_get(a, "history");
    assert_int_equal(json_array_size(hist), 1);
    json_t *e = json_array_get(hist, 0);
    assert_string_equal(json_string_value(json_object_get(e, "kind")), "escalation");
    assert_string_equal(json_string_value(json_object_get(e, "by")), "fundwatch");
    assert_non_null(strstr(json_string_value(json_object_get(e, "note")), "step 1"));
    assert_non_null(strstr(json_string_value(json_object_get(e, "note")), "zhao"));
    assert_int_equal(json_integer_value(json_object_get(a, "escalations")), 1);
    json_decref(a);
    assert_int_equal(at_sql(f, "SELECT count(*) FROM audit WHERE action = 'alert.escalate'"), 1);

    /* once per step */
    g_at_now = AT_T0 + 45 * 60;
    assert_int_equal(fw_alerts_tick(f->a, g_at_now), 0);
    assert_int_equal(f->nhooks, hooks0 + 1);

    /* 60 min: step 2 -> qian (SMS) and sun (webhook) */
    g_at_now = AT_T0 + 60 * 60;
    assert_int_equal(fw_alerts_tick(f->a, g_at_now), 1);
    assert_int_equal(f->nhooks, hooks0 + 2);
    assert_string_equal(f->hooks[hooks0 + 1].a, "http://hooks.test/sun");
    assert_int_equal(f->nsms, sms0 + 1);
    assert_string_equal(f->sms[sms0].b, "13800000004");
    assert_string_equal(f->sms[sms0].a, "alert:AL-000001:esc2:qian");
    assert_non_null(strstr(f->sms[sms0].c, "升级第2级"));

    /* no step 3; the acknowledged and the blue alert never escalate */
    g_at_now = AT_T0 + 10 * 3600;
    assert_int_equal(fw_alerts_tick(f->a, g_at_now), 0);
    assert_int_equal(history_count(f, "escalation"), 2);
    fw_metric *m = fw_metric_counter("fundwatch_alert_escalations_total", "", "level=\"red\"");
    assert_true(fw_metric_value(m) == 2.0);

    /* Acknowledging stops it: the ack after escalation is kept in history. */
    assert_int_equal(at_transition(f, id, "acknowledged", NULL), 0);
    a = fw_alerts_get_json(f->a, id);
    assert_int_equal(json_array_size(json_object_get(a, "history")), 3);
    assert_null(json_object_get(a, "escalate_at"));
    json_decref(a);
    at_close(f);
}

static void test_escalation_without_recipients_is_recorded_once(void **state)
{
    (void)state;
    at_fx *f = at_open(k_ini);
    char id[32];
    fw_hit h = at_hit("over_balance", "orange", "909001", "ZF1", "e1");
    assert_int_equal(at_raise(f, &h, id), 1);
    g_at_now = AT_T0 + 4 * 3600 - 1;
    assert_int_equal(fw_alerts_tick(f->a, g_at_now), 0);
    g_at_now = AT_T0 + 4 * 3600;
    assert_int_equal(fw_alerts_tick(f->a, g_at_now), 1);
    g_at_now = AT_T0 + 40 * 3600;
    assert_int_equal(fw_alerts_tick(f->a, g_at_now), 0);
    assert_int_equal(history_count(f, "escalation"), 1);
    assert_int_equal(at_sql(f, "SELECT count(*) FROM alert_history WHERE note LIKE"
                               " '%within 4h: overdue%no escalation recipients%'"),
                     1);
    assert_int_equal(f->nhooks + f->nsms, 0);
    at_close(f);
}

static void test_silence_suppresses_notice_not_storage_and_expires(void **state)
{
    (void)state;
    at_fx *f = at_open(k_ini);
    char sid[16], err[256], id[32], later[32];
    /* A silence for unit prefix 101, all rules, for one hour. */
    assert_int_equal(fw_alerts_silence_add(f->a, "*", "101", AT_T0, AT_T0 + 3600, "wang",
                                           "系统升级窗口", sid, err, sizeof err),
                     0);
    assert_string_equal(sid, "SL-000001");
    assert_int_equal(at_sql(f, "SELECT count(*) FROM audit WHERE action = 'silence.add'"
                               " AND actor = 'wang' AND object = 'SL-000001'"),
                     1);

    fw_hit h = at_hit("over_balance", "red", "101001", "ZF1", "e1");
    assert_int_equal(at_raise(f, &h, id), 1);
    /* stored and on NATS (marked), but no webhook, no SMS */
    assert_int_equal(at_sql(f, "SELECT count(*) FROM alerts"), 1);
    assert_int_equal(f->npubs, 1);
    json_t *p = json_loads(f->pubs[0].b, 0, NULL);
    assert_true(json_is_true(json_object_get(p, "silenced")));
    assert_string_equal(json_string_value(json_object_get(p, "silence_id")), "SL-000001");
    json_decref(p);
    assert_int_equal(f->nhooks + f->nsms, 0);
    /* another unit is not silenced */
    h = at_hit("over_balance", "red", "102001", "ZF2", "e2");
    assert_int_equal(at_raise(f, &h, NULL), 1);
    assert_int_equal(f->nsms, 1);

    /* The escalation deadline (30m) passes while silenced: deferred (the
     * unsilenced one in 102001 is recorded overdue: its route has no
     * escalate_to). */
    g_at_now = AT_T0 + 30 * 60;
    assert_int_equal(fw_alerts_tick(f->a, g_at_now), 1);
    assert_int_equal(at_sql(f, "SELECT count(*) FROM alert_history WHERE alert_n = 1"), 0);
    assert_int_equal(at_sql(f, "SELECT count(*) FROM alert_history WHERE alert_n = 2"), 1);
    json_t *list = fw_al_silences_list_json(f->a, "active", g_at_now, 10);
    assert_int_equal(json_array_size(json_object_get(list, "items")), 1);
    json_decref(list);

    /* The silence ends by itself at 60m: expiry audited, escalation goes. */
    g_at_now = AT_T0 + 3600;
    assert_int_equal(fw_alerts_tick(f->a, g_at_now), 2);
    assert_int_equal(at_sql(f, "SELECT count(*) FROM audit WHERE action = 'silence.expire'"
                               " AND actor = 'fundwatch'"),
                     1);
    assert_int_equal(at_sql(f, "SELECT count(*) FROM alert_history WHERE alert_n = 1"), 1);
    assert_int_equal(f->nhooks, 1);
    assert_string_equal(f->hooks[0].a, "http://hooks.test/zhao");
    list = fw_al_silences_list_json(f->a, "expired", g_at_now, 10);
    assert_int_equal(json_array_size(json_object_get(list, "items")), 1);
    json_decref(list);

    /* A new alert after expiry is notified normally. */
    h = at_hit("over_balance", "red", "101001", "ZF3", "e3");
    assert_int_equal(at_raise(f, &h, later), 1);
    assert_int_equal(f->nhooks, 2);
    assert_string_equal(f->hooks[1].a, "http://hooks.test/wang");

    /* The silenced alert resolves: its resolved notice still goes, to wang
     * (route) and zhao (escalated to). */
    int hooks = f->nhooks, sms = f->nsms;
    assert_int_equal(at_transition(f, id, "acknowledged", NULL), 0);
    assert_int_equal(at_transition(f, id, "confirmed", NULL), 0);
    assert_int_equal(f->nhooks, hooks); /* intermediate steps: NATS only */
    assert_int_equal(at_transition(f, id, "resolved", "已冻结支付"), 0);
    assert_int_equal(f->nhooks, hooks + 2);
    assert_int_equal(f->nsms, sms + 1);
    json_t *o = body_of(&f->hooks[hooks], 0);
    assert_string_equal(notif_kind(o), "resolved");
    assert_string_equal(json_string_value(json_object_get(o, "status")), "resolved");
    assert_true(json_is_true(json_object_get(o, "silenced")));
    json_decref(o);
    assert_string_equal(f->sms[sms].a, "alert:AL-000001:resolved:wang");
    assert_non_null(strstr(f->sms[sms].c, "【已处理完毕】"));
    at_close(f);
}

static void test_silence_matching_and_manual_expiry(void **state)
{
    (void)state;
    at_fx *f = at_open(k_ini);
    char sid[16], sid2[16], err[256];
    /* one rule only, starting in ten minutes */
    assert_int_equal(fw_alerts_silence_add(f->a, "split_payment", "*", AT_T0 + 600, AT_T0 + 7200,
                                           "li", "已知批量补录", sid, err, sizeof err),
                     0);
    fw_hit h = at_hit("split_payment", "yellow", "101001", "ZF1", "e1");
    assert_int_equal(at_raise(f, &h, NULL), 1); /* pending silence: notified */
    assert_int_equal(f->nsms, 1);
    g_at_now = AT_T0 + 600;
    h = at_hit("split_payment", "yellow", "101002", "ZF2", "e2");
    assert_int_equal(at_raise(f, &h, NULL), 1); /* silenced */
    h = at_hit("vague_purpose", "yellow", "101002", "ZF3", "e3");
    assert_int_equal(at_raise(f, &h, NULL), 1); /* other rule: notified */
    assert_int_equal(f->nsms, 2);
    assert_int_equal(at_sql(f, "SELECT count(*) FROM alerts WHERE silence_n = 1"), 1);

    /* expire by hand */
    assert_int_equal(fw_alerts_silence_expire(f->a, sid, "li", err, sizeof err), 0);
    assert_int_equal(fw_alerts_silence_expire(f->a, sid, "li", err, sizeof err), FW_ALERTS_REFUSED);
    assert_int_equal(fw_alerts_silence_expire(f->a, "SL-000099", "li", err, sizeof err),
                     FW_ALERTS_NOT_FOUND);
    h = at_hit("split_payment", "yellow", "101003", "ZF4", "e4");
    assert_int_equal(at_raise(f, &h, NULL), 1);
    assert_int_equal(f->nsms, 3);
    /* bad silences */
    assert_int_equal(fw_alerts_silence_add(f->a, "*", "*", g_at_now, g_at_now + 60, "li", "", sid2,
                                           err, sizeof err),
                     FW_ALERTS_BAD);
    assert_non_null(strstr(err, "reason"));
    assert_int_equal(fw_alerts_silence_add(f->a, "*", "*", g_at_now, g_at_now - 60, "li", "x", sid2,
                                           err, sizeof err),
                     FW_ALERTS_BAD);
    assert_int_equal(fw_alerts_silence_add(f->a, "Bad Rule", "*", g_at_now, g_at_now + 60, "li",
                                           "x", sid2, err, sizeof err),
                     FW_ALERTS_BAD);
    assert_int_equal(fw_alerts_silence_add(f->a, "*", "*", g_at_now, g_at_now + 60, "", "x", sid2,
                                           err, sizeof err),
                     FW_ALERTS_BAD);
    json_t *o = fw_al_silence_json(f->a, 1);
    assert_string_equal(json_string_value(json_object_get(o, "status")), "expired");
    assert_string_equal(json_string_value(json_object_get(o, "expired_by")), "li");
    json_decref(o);
    at_close(f);
}

static void test_webhook_retries_with_backoff_then_gives_up(void **state)
{
    (void)state;
    at_fx *f = at_open(k_ini);
    char err[256];
    f->webhook_fail = 1; /* the first start fails outright */
    fw_hit h = at_hit("vague_purpose", "yellow", "101001", "ZF1", "e1");
    assert_int_equal(at_raise(f, &h, NULL), 1);
    assert_int_equal(f->nhooks, 1);
    int64_t id = f->hooks[0].id;
    assert_int_equal(at_sql(f, "SELECT count(*) FROM alert_notifications WHERE status ="
                               " 'pending' AND channel = 'webhook' AND attempts = 1"),
                     1);
    int64_t due = at_sql(f, "SELECT due_at FROM alert_notifications WHERE channel = 'webhook'");
    assert_true(due >= AT_T0 + 30 && due <= AT_T0 + 45); /* 30 s + up to 50% jitter */

    g_at_now = AT_T0 + 29;
    fw_alerts_tick(f->a, g_at_now);
    assert_int_equal(f->nhooks, 1);
    g_at_now = AT_T0 + 45;
    fw_alerts_tick(f->a, g_at_now);
    assert_int_equal(f->nhooks, 2); /* retried, same notification, same body */
    assert_int_equal(f->hooks[1].id, id);
    assert_string_equal(f->hooks[1].b, f->hooks[0].b);
    assert_int_equal(at_sql(f, "SELECT count(*) FROM alert_notifications WHERE status ="
                               " 'sending'"),
                     1);
    /* the endpoint answers 500: second backoff is 60..90 s */
    fw_alerts_webhook_done(f->a, id, 0, "HTTP 500");
    due = at_sql(f, "SELECT due_at FROM alert_notifications WHERE channel = 'webhook'");
    assert_true(due >= g_at_now + 60 && due <= g_at_now + 90);
    g_at_now = due;
    fw_alerts_tick(f->a, g_at_now);
    assert_int_equal(f->nhooks, 3);
    /* third failure = webhook_retries: failed, counted */
    fw_alerts_webhook_done(f->a, id, 0, "HTTP 502");
    assert_int_equal(at_sql(f, "SELECT count(*) FROM alert_notifications WHERE status ="
                               " 'failed' AND error = 'HTTP 502' AND attempts = 3"),
                     1);
    fw_metric *m =
        fw_metric_counter("fundwatch_alert_notification_failures_total", "", "channel=\"webhook\"");
    assert_true(fw_metric_value(m) == 1.0);
    g_at_now += 6 * 3600; /* long after any backoff (and before the 24h escalation) */
    fw_alerts_tick(f->a, g_at_now);
    assert_int_equal(f->nhooks, 3);

    /* A webhook that succeeds on the second try ends `sent`. */
    h = at_hit("vague_purpose", "yellow", "101001", "ZF2", "e2");
    g_at_now += 3600;
    h.at = g_at_now;
    assert_int_equal(at_raise(f, &h, NULL), 1);
    int64_t id2 = f->hooks[3].id;
    fw_alerts_webhook_done(f->a, id2, 0, "timeout");
    g_at_now += 46;
    fw_alerts_tick(f->a, g_at_now);
    assert_int_equal(f->nhooks, 5);
    fw_alerts_webhook_done(f->a, id2, 1, NULL);
    char sql[160];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM alert_notifications WHERE n = %lld AND status = 'sent'"
             " AND error IS NULL AND attempts = 2",
             (long long)id2);
    assert_int_equal(at_sql(f, sql), 1);
    /* a late duplicate answer changes nothing */
    fw_alerts_webhook_done(f->a, id2, 0, "late");
    assert_int_equal(at_sql(f, sql), 1);
    (void)err;
    at_close(f);
}

static void test_feed_waits_for_a_publisher_and_sms_for_a_sink(void **state)
{
    (void)state;
    at_fx *f = at_open(k_ini);
    char id[32];
    /* The CLI has no sinks: everything waits in the store. */
    fw_alerts_set_sinks(f->a, NULL);
    fw_hit h = at_hit("vague_purpose", "yellow", "101001", "ZF1", "e1");
    assert_int_equal(at_raise(f, &h, id), 1);
    assert_int_equal(at_transition(f, id, "acknowledged", NULL), 0);
    assert_int_equal(fw_alerts_tick(f->a, g_at_now), 0);
    assert_int_equal(at_sql(f, "SELECT count(*) FROM alert_feed"), 2);
    assert_int_equal(at_sql(f, "SELECT count(*) FROM alert_notifications WHERE status ="
                               " 'pending'"),
                     2);
    /* The daemon's next tick publishes in order and sends. */
    fw_alerts_sinks s = {at_sink_publish, at_sink_webhook, at_sink_sms, f};
    fw_alerts_set_sinks(f->a, &s);
    assert_int_equal(fw_alerts_tick(f->a, g_at_now), 1);
    assert_int_equal(f->npubs, 2);
    json_t *p0 = json_loads(f->pubs[0].b, 0, NULL), *p1 = json_loads(f->pubs[1].b, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(p0, "status")), "open");
    assert_string_equal(json_string_value(json_object_get(p1, "status")), "acknowledged");
    json_decref(p0);
    json_decref(p1);
    assert_int_equal(at_sql(f, "SELECT count(*) FROM alert_feed"), 0);
    assert_int_equal(f->nsms, 1);
    assert_int_equal(f->nhooks, 1);
    /* nothing twice */
    assert_int_equal(fw_alerts_tick(f->a, g_at_now), 0);
    fw_alerts_flush(f->a);
    assert_int_equal(f->npubs + f->nsms, 3);
    at_close(f);
}

/* The daemon publishes a batch's notices once that batch is durable: the
 * rows up to the newest one at its commit, not those queued since.  And a
 * number is never given twice, even after every row was published and
 * deleted, so such a bound never lets a later row through. */
static void test_feed_upto_publishes_a_prefix_and_numbers_never_repeat(void **state)
{
    (void)state;
    at_fx *f = at_open(k_ini);
    char id[32];
    fw_alerts_set_sinks(f->a, NULL); /* queued, as between a commit and its fsync */
    fw_hit h1 = at_hit("vague_purpose", "yellow", "101001", "ZF1", "e1");
    assert_int_equal(at_raise(f, &h1, id), 1);
    int64_t first = fw_alerts_feed_last(f->a);
    assert_true(first > 0);
    fw_hit h2 = at_hit("vague_purpose", "yellow", "101001", "ZF2", "e2");
    assert_int_equal(at_raise(f, &h2, id), 1);
    int64_t second = fw_alerts_feed_last(f->a);
    assert_true(second > first);

    fw_alerts_sinks s = {at_sink_publish, at_sink_webhook, at_sink_sms, f};
    fw_alerts_set_sinks(f->a, &s);
    fw_alerts_flush_upto(f->a, first);
    assert_int_equal(f->npubs, 1);
    assert_int_equal(at_sql(f, "SELECT count(*) FROM alert_feed"), 1);
    fw_alerts_flush_upto(f->a, second);
    assert_int_equal(f->npubs, 2);
    assert_int_equal(at_sql(f, "SELECT count(*) FROM alert_feed"), 0);
    json_t *p1 = json_loads(f->pubs[1].b, 0, NULL);
    assert_non_null(p1);
    const char *sid = json_string_value(json_object_get(json_object_get(p1, "subject"), "id"));
    assert_non_null(sid);
    assert_string_equal(sid, "ZF2");
    json_decref(p1);

    /* the table is empty now; the next row still gets a new number */
    fw_alerts_set_sinks(f->a, NULL);
    fw_hit h3 = at_hit("vague_purpose", "yellow", "101001", "ZF3", "e3");
    assert_int_equal(at_raise(f, &h3, id), 1);
    assert_true(fw_alerts_feed_last(f->a) > second);
    fw_alerts_set_sinks(f->a, &s);
    fw_alerts_flush_upto(f->a, second);
    assert_int_equal(f->npubs, 2);
    fw_alerts_flush(f->a);
    assert_int_equal(f->npubs, 3);
    at_close(f);
}

static void check_config_error(const char *ini, const char *expect)
{
    char err[512], path[700];
    char *dir = fw_t_tmpdir("alerts-cfg");
    snprintf(path, sizeof path, "%s/fw.conf", dir);
    assert_int_equal(fw_t_write_file(path, ini), 0);
    fw_config *cfg = fw_config_new();
    fw_config_add_keys(cfg, fw_alerts_config_keys, fw_alerts_config_nkeys);
    for (int i = 0; i < fw_alerts_config_nprefixes; i++)
        fw_config_add_prefix(cfg, fw_alerts_config_prefixes[i]);
    if (fw_config_load(cfg, path, NULL, 0, err, sizeof err) != 0)
        fail_msg("config: %s", err);
    fw_store *st = fw_store_open(":memory:", fw_alerts_migrations, fw_alerts_nmigrations, 0,
                                 FW_SYNC_NORMAL, err, sizeof err);
    assert_non_null(st);
    err[0] = '\0';
    fw_alerts *a = fw_alerts_new(st, cfg, err, sizeof err);
    if (a || !strstr(err, expect))
        fail_msg("expected an error with \"%s\", got \"%s\"", expect, err);
    fw_store_close(st);
    fw_config_free(cfg);
    fw_t_rmtree(dir);
    free(dir);
}

static void test_config_errors_name_the_key(void **state)
{
    (void)state;
    check_config_error("[route.x]\nto = nobody\n", "route.x.to: unknown supervisor \"nobody\"");
    check_config_error("[supervisor.a]\nphone = 123\n", "supervisor.a.phone:");
    check_config_error("[supervisor.a]\nemail = a@b\n", "supervisor.a.email: unknown key");
    check_config_error("[supervisor.a]\nphone = 13800000001\n[route.x]\nto = a\nlevels = pink\n",
                       "route.x.levels: unknown level \"pink\"");
    check_config_error("[supervisor.a]\nphone = 13800000001\n[route.x]\nto = a\nchannels = fax\n",
                       "route.x.channels: unknown channel \"fax\"");
    check_config_error("[supervisor.a]\nphone = 13800000001\n[route.x]\nunits = 101\n",
                       "route.x.to: required");
    check_config_error("[supervisor.a]\nphone = 13800000001\n[route.x]\nto = a\n"
                       "escalate_to = a, b\n",
                       "route.x.escalate_to: unknown supervisor \"b\"");
    check_config_error("[supervisor.a]\nwebhook = ftp://x\n", "supervisor.a.webhook:");
}

static void test_example_config_loads_and_routes(void **state)
{
    (void)state;
    char path[600];
    snprintf(path, sizeof path, "%s/etc/alerts.example.conf", fw_t_src());
    char *ini = fw_t_read_file(path, NULL);
    assert_non_null(ini);
    at_fx *f = at_open(ini);
    free(ini);
    assert_int_equal(f->a->nsups, 3);
    assert_int_equal(f->a->nroutes, 2);
    assert_int_equal(f->a->group_window, 60);
    assert_int_equal(f->a->deadline[3], 1800);
    fw_hit h = at_hit("over_balance", "red", "102003", "ZF1", "e1");
    assert_int_equal(at_raise(f, &h, NULL), 1);
    assert_int_equal(f->nhooks, 1); /* wang */
    assert_int_equal(f->nsms, 2);   /* wang, li */
    h = at_hit("over_balance", "red", "301001", "ZF2", "e2");
    assert_int_equal(at_raise(f, &h, NULL), 1);
    assert_int_equal(f->nhooks, 1);
    assert_int_equal(f->nsms, 3); /* li */
    at_close(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routing_by_unit_prefix_and_level),
        cmocka_unit_test(test_burst_is_grouped_into_one_summary),
        cmocka_unit_test(test_escalation_steps_once_each),
        cmocka_unit_test(test_escalation_without_recipients_is_recorded_once),
        cmocka_unit_test(test_silence_suppresses_notice_not_storage_and_expires),
        cmocka_unit_test(test_silence_matching_and_manual_expiry),
        cmocka_unit_test(test_webhook_retries_with_backoff_then_gives_up),
        cmocka_unit_test(test_feed_waits_for_a_publisher_and_sms_for_a_sink),
        cmocka_unit_test(test_feed_upto_publishes_a_prefix_and_numbers_never_repeat),
        cmocka_unit_test(test_config_errors_name_the_key),
        cmocka_unit_test(test_example_config_loads_and_routes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
