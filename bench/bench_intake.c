/*
 * bench_intake.c - sustained intake rate of the daemon against the ceiling.
 *
 *   bench_intake [N] [RULES_DIR]
 *
 * Starts a nats-server (JetStream, file storage) on a free loopback port,
 * publishes N voucher `created` events (default 200,000) for 100 indicators,
 * then measures:
 *
 *   ceiling  a plain C consumer (cnats push consumer, explicit ack) that
 *            only acks each message: the most this machine can consume;
 *   daemon   `fundwatch run` from a fresh store: every message validated,
 *            run through the rules of RULES_DIR (default: an empty rules
 *            directory, i.e. the intake alone; pass `rules` for the pack),
 *            applied to the ledger, committed (synchronous=FULL) and acked.
 *
 * The daemon's rate is measured from its first committed message to its
 * last, by polling the store.  Prints both rates and their ratio.
 */
#include <nats/nats.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tests/support/harness.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char **subjects, **bodies;

static void build(int n)
{
    subjects = calloc((size_t)n + 100, sizeof *subjects);
    bodies = calloc((size_t)n + 100, sizeof *bodies);
    char buf[2048];
    int k = 0;
    for (int i = 0; i < 100; i++) {
        char unit[16];
        snprintf(unit, sizeof unit, "1%05d", i);
        snprintf(buf, sizeof buf, "fiscal.indicator.%s", unit);
        subjects[k] = strdup(buf);
        snprintf(
            buf, sizeof buf,
            "{\"id\":\"ind-%d\",\"op\":\"allocate\",\"occurred_at\":\"2024-01-05T09:00:00+08:00\","
            "\"doc_no\":\"三财预〔2024〕%d号\",\"indicator_id\":\"ZB2024-%s-0001\",\"year\":2024,"
            "\"unit_code\":\"%s\",\"func_class\":\"2050201\",\"econ_class\":\"30201\","
            "\"fund_type\":\"1\",\"amount\":\"9000000000.00\"}",
            i, i + 1, unit, unit);
        bodies[k++] = strdup(buf);
    }
    for (int v = 0; v < n - 100; v++) {
        char unit[16];
        snprintf(unit, sizeof unit, "1%05d", v % 100);
        snprintf(buf, sizeof buf, "fiscal.voucher.%s", unit);
        subjects[k] = strdup(buf);
        int64_t fen = 100000 + (int64_t)((v * 7919) % 900000);
        snprintf(
            buf, sizeof buf,
            "{\"id\":\"v%d\",\"event\":\"created\",\"occurred_at\":\"2024-06-12T10:%02d:%02d+08:"
            "00\","
            "\"voucher_no\":\"ZF2024%08d\",\"year\":2024,\"unit_code\":\"%s\","
            "\"unit_name\":\"三门峡市某单位\",\"indicator_id\":\"ZB2024-%s-0001\","
            "\"func_class\":\"2050201\",\"econ_class\":\"30201\",\"pay_method\":\"direct\","
            "\"settle_method\":\"transfer\",\"payee_name\":\"三门峡市某某有限公司%d\","
            "\"payee_account\":\"41050166%012d\",\"payee_bank\":\"中国建设银行三门峡分行\","
            "\"payee_type\":\"company\",\"amount\":\"%lld.%02lld\",\"purpose\":\"办公用品采购\"}",
            v, (v / 60) % 60, v % 60, v, unit, unit, v % 5000, v, (long long)(fen / 100),
            (long long)(fen % 100));
        bodies[k++] = strdup(buf);
    }
}

/* ---- the ceiling: consume and ack, nothing else ---- */

static atomic_int acked;

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)sub, (void)closure;
    const char *reply = natsMsg_GetReply(msg);
    if (reply)
        natsConnection_Publish(nc, reply, "+ACK", 4);
    natsMsg_Destroy(msg);
    atomic_fetch_add(&acked, 1);
}

static double ceiling_rate(const char *url, int n)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    natsSubscription *sub = NULL;
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr;
    natsConnection_ConnectTo(&nc, url);
    natsConnection_JetStream(&js, nc, NULL);
    natsConnection_Subscribe(&sub, nc, "_bench.ceiling", on_msg, NULL);
    natsSubscription_SetPendingLimits(sub, -1, -1);
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = "ceiling";
    cc.DeliverSubject = "_bench.ceiling";
    cc.AckPolicy = js_AckExplicit;
    cc.MaxAckPending = 20000;
    double t0 = now_s();
    if (js_AddConsumer(&ci, js, "FISCAL", &cc, NULL, &jerr) != NATS_OK) {
        fprintf(stderr, "ceiling: cannot add consumer: %s\n", nats_GetLastError(NULL));
        return 0;
    }
    while (atomic_load(&acked) < n)
        usleep(1000);
    natsConnection_Flush(nc);
    double dt = now_s() - t0;
    jsConsumerInfo_Destroy(ci);
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return n / dt;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 200000;
    const char *rules = argc > 2 ? argv[2] : NULL;
    char *tmp = fw_t_tmpdir("bench-intake");
    fw_t_nats nats = {0};
    if (fw_t_nats_start(&nats, tmp) != 0) {
        fprintf(stderr, "cannot start nats-server\n");
        return 1;
    }
    build(n);
    double t0 = now_s();
    int pub =
        fw_t_js_publish(nats.url, n, (const char *const *)subjects, (const char *const *)bodies);
    printf("published %d messages in %.2f s\n", pub, now_s() - t0);

    double ceiling = ceiling_rate(nats.url, n);
    printf("ceiling: plain consumer, ack only:      %9.0f msg/s\n", ceiling);

    char dir[600], empty[600];
    snprintf(dir, sizeof dir, "%s/daemon", tmp);
    snprintf(empty, sizeof empty, "%s/norules", tmp);
    mkdir(dir, 0755);
    mkdir(empty, 0755);
    fw_t_daemon d = {0};
    /* store.batch_max large: under load the loop drains whatever arrived. */
    /* BENCH_DAEMON_INI adds configuration for experiments, e.g.
     * "[store]\nsynchronous = normal\n". */
    char ini[1024];
    snprintf(ini, sizeof ini, "[log]\nlevel = warn\n[sms]\nquiet_hours = off\n%s",
             getenv("BENCH_DAEMON_INI") ? getenv("BENCH_DAEMON_INI") : "");
    if (fw_t_daemon_start(&d, dir, nats.url, rules ? rules : empty, ini) != 0) {
        fprintf(stderr, "cannot start daemon\n");
        return 1;
    }
    double first = 0, last = 0;
    int64_t first_count = 0, count = 0;
    double deadline = now_s() + 600;
    while (count < n && now_s() < deadline) {
        count = fw_t_sql_int(d.db, "SELECT count(*) FROM events");
        if (count > 0 && first == 0) {
            first = now_s();
            first_count = count;
        }
        last = now_s();
        usleep(20000);
    }
    fw_t_daemon_kill(&d, SIGTERM);
    double rate = (double)(count - first_count) / (last - first);
    printf("daemon: validate+rules+ledger+commit+ack: %9.0f msg/s (%lld msgs, rules: %s)\n", rate,
           (long long)count, rules ? rules : "none");
    printf("ratio daemon/ceiling: %.2f\n", rate / ceiling);
    fw_t_nats_stop(&nats);
    fw_t_rmtree(tmp);
    free(tmp);
    return count == n ? 0 : 1;
}
