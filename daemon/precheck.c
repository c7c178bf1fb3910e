/* precheck.c - see precheck.h */
#include "daemon/precheck.h"

#include <errno.h>
#include <nats/nats.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/event.h"
#include "daemon/intake.h"
#include "daemon/log.h"
#include "daemon/metrics.h"
#include "daemon/money.h"

json_t *fw_precheck_decide(fw_rules *rules, fw_ledger *ledger, fw_store *st, fw_hit_list *hits,
                           const char *body, size_t len, int *status)
{
    fw_event ev;
    fw_decode_error de;
    *status = 200;
    if (fw_event_decode_check(body, len, &ev, &de) != 0) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s: %s", de.field, de.reason);
        *status = 400;
        return json_pack("{s:s}", "error", msg);
    }
    /* One snapshot for the rules and the balance: the reply is consistent
     * even when a batch commits meanwhile. */
    int rtok = fw_store_read_begin(st);
    int rc = fw_rules_eval(rules, &ev, hits);
    json_t *jhits = json_array();
    int rank = -1;
    for (int i = 0; rc >= 0 && i < hits->n; i++) {
        fw_hit *h = &hits->items[i];
        if (h->shadow)
            continue; /* shadow rules never block */
        if (fw_level_rank(h->level) > rank)
            rank = fw_level_rank(h->level);
        json_array_append_new(jhits, json_pack("{s:s,s:s,s:s}", "rule", h->rule, "level", h->level,
                                               "message", h->message));
    }
    fw_hit_list_clear(hits);
    const char *decision = rank == 3 ? "block" : (rank >= 1 ? "warn" : "allow");
    json_t *avail = json_null();
    const char *ind = json_string_value(json_object_get(ev.body, "indicator_id"));
    fw_indicator fi;
    if (ind && fw_ledger_get_indicator(ledger, ind, &fi) == 1) {
        char buf[40];
        avail = json_string(fw_money_format(fi.available, buf, sizeof buf));
    }
    fw_store_read_end(st, rtok);
    json_t *j = json_pack("{s:s,s:s?,s:o,s:o}", "decision", decision, "voucher_no",
                          json_string_value(json_object_get(ev.body, "voucher_no")), "available",
                          avail, "hits", jhits);
    fw_event_clear(&ev);
    if (rc < 0) {
        json_decref(j);
        *status = 500;
        return json_pack("{s:s}", "error", "rule evaluation failed");
    }
    return j;
}

/* ---- the checker thread ---- */

struct fw_checker {
    /* Set before the thread starts, read-only afterwards. */
    const fw_config *cfg;
    char *store_path;
    fw_metric *m_check, *m_check_lat;

    pthread_t thread;
    int joined;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int started; /* under lock: 1 ready, -1 failed */
    _Atomic int stop, reload;

    /* Owned by the checker thread alone (see precheck.h). */
    natsConnection *nc;
    natsSubscription *sub;
    fw_store *store;
    fw_ledger *ledger;
    fw_rules *rules;
    fw_hit_list hits;
    char err[1024];
};

/* How long the thread waits for a request before it looks at stop/reload. */
#define CHECKER_POLL_MS 50
/* The checker thread's nice value (the loop's is [check] ingest_nice, 5). */
#define CHECKER_NICE (-10)

static double mono_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Why: on 2 cores shared with nats-server and a loop that is never idle
 * while a backlog drains, a check spent most of its time waiting for a CPU
 * (bench_check under 20,000/s of ingest: p50 3.3 ms with the thread at the
 * loop's priority, 0.9 ms above it).  A checker's work is small and
 * bounded (2,000 checks/s x 0.1-0.2 ms), so it may go first; its NATS
 * connection is made afterwards from this thread, so cnats's reader thread
 * for it inherits the same nice value.  Without the privilege (not root,
 * no CAP_SYS_NICE) it runs at the normal priority, and says so once. */
static void checker_raise_priority(void)
{
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), CHECKER_NICE) != 0)
        FW_WARN("check.thread_priority",
                "nice=%d error=\"%s\" detail=\"checks run at the "
                "loop's priority\"",
                CHECKER_NICE, strerror(errno));
}

/* Checker thread: its connection, rule set and subscription.  0 or -1
 * (c->err says why). */
static int checker_open(fw_checker *c)
{
    c->store = fw_store_open(c->store_path, NULL, 0, 1, FW_SYNC_NORMAL, c->err, sizeof c->err);
    if (!c->store)
        return -1;
    /* The loop's connection has a big cache and mmap too: history and
     * balance probes must not become read() calls. */
    if (fw_store_exec(c->store, "PRAGMA cache_size=-32768; PRAGMA mmap_size=1073741824;") != 0) {
        snprintf(c->err, sizeof c->err, "%s: cannot size the read connection's cache",
                 c->store_path);
        return -1;
    }
    c->ledger = fw_ledger_new(c->store);
    fw_rules_opts ro = {0};
    ro.dir = fw_config_get(c->cfg, "rules.dir");
    ro.etc_dir = fw_config_get(c->cfg, "rules.etc");
    ro.ledger = c->ledger;
    ro.cfg = c->cfg;
    ro.run_tests = 1;        /* accept exactly what the loop's rule set accepts */
    ro.no_history_cache = 1; /* the voucher cache follows the loop's connection */
    ro.quiet = 1;            /* the loop logs the same load; this thread logs a summary */
    c->rules = fw_rules_new(&ro, c->err, sizeof c->err);
    if (!c->rules)
        return -1;
    natsStatus s = fw_nats_connect_checks(c->cfg, &c->nc);
    if (s != NATS_OK) {
        snprintf(c->err, sizeof c->err, "nats.url: cannot connect to %s: %s",
                 fw_config_get(c->cfg, "nats.url"), natsStatus_GetText(s));
        return -1;
    }
    s = natsConnection_QueueSubscribeSync(&c->sub, c->nc, FW_CHECK_SUBJECT, FW_CHECK_QUEUE);
    if (s != NATS_OK) {
        snprintf(c->err, sizeof c->err, "subscribe %s: %s", FW_CHECK_SUBJECT,
                 natsStatus_GetText(s));
        return -1;
    }
    return 0;
}

static void checker_close(fw_checker *c)
{
    if (c->sub) {
        natsSubscription_Unsubscribe(c->sub);
        natsSubscription_Destroy(c->sub);
        c->sub = NULL;
    }
    if (c->nc) {
        natsConnection_Close(c->nc);
        natsConnection_Destroy(c->nc);
        c->nc = NULL;
    }
    fw_hit_list_free(&c->hits);
    fw_rules_free(c->rules);
    fw_ledger_free(c->ledger);
    fw_store_close(c->store);
    c->rules = NULL;
    c->ledger = NULL;
    c->store = NULL;
}

static void checker_answer(fw_checker *c, natsMsg *msg)
{
    double t0 = mono_seconds();
    int status;
    json_t *j = fw_precheck_decide(c->rules, c->ledger, c->store, &c->hits, natsMsg_GetData(msg),
                                   (size_t)natsMsg_GetDataLength(msg), &status);
    char *s = json_dumps(j, JSON_COMPACT);
    const char *reply = natsMsg_GetReply(msg);
    if (s && reply) {
        natsStatus ns = natsConnection_Publish(c->nc, reply, s, (int)strlen(s));
        if (ns != NATS_OK)
            FW_WARN("check.reply_failed", "status=%s", natsStatus_GetText(ns));
    }
    free(s);
    json_decref(j);
    fw_metric_add(c->m_check, 1);
    fw_metric_observe(c->m_check_lat, mono_seconds() - t0);
}

static void checker_reload(fw_checker *c)
{
    char err[1024] = "";
    int problems = fw_rules_reload(c->rules, err, sizeof err);
    FW_INFO("check.rules_reloaded", "rules=%d problems=%d ruleset=%s", fw_rules_count(c->rules),
            problems, fw_rules_version(c->rules));
}

static void *checker_main(void *arg)
{
    fw_checker *c = arg;
    checker_raise_priority();
    int ok = checker_open(c) == 0;
    if (ok)
        FW_INFO("check.thread_started", "rules=%d ruleset=%s", fw_rules_count(c->rules),
                fw_rules_version(c->rules));
    pthread_mutex_lock(&c->lock);
    c->started = ok ? 1 : -1;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->lock);
    if (!ok) {
        checker_close(c);
        return NULL;
    }
    while (!atomic_load(&c->stop)) {
        natsMsg *msg = NULL;
        natsStatus s = natsSubscription_NextMsg(&msg, c->sub, CHECKER_POLL_MS);
        /* After the wait: a request read after the loop's reload returned
         * is judged by the new rule set. */
        if (atomic_exchange(&c->reload, 0))
            checker_reload(c);
        if (s == NATS_OK) {
            checker_answer(c, msg);
            natsMsg_Destroy(msg);
        } else if (s != NATS_TIMEOUT) {
            /* Closed connection or subscription: only shutdown does that;
             * do not spin until it asks. */
            struct timespec ts = {0, CHECKER_POLL_MS * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    checker_close(c);
    return NULL;
}

fw_checker *fw_checker_start(const fw_config *cfg, const char *store_path, char *err, int errlen)
{
    if (strcmp(store_path, ":memory:") == 0) {
        snprintf(err, (size_t)errlen,
                 "check.thread: the check thread reads the store through a connection of its "
                 "own, which store.path = :memory: cannot give; set [check] thread = false");
        return NULL;
    }
    fw_checker *c = calloc(1, sizeof *c);
    if (!c || !(c->store_path = strdup(store_path))) {
        snprintf(err, (size_t)errlen, "out of memory");
        free(c);
        return NULL;
    }
    c->cfg = cfg;
    /* The series the loop's /api/check updates (the app made them first). */
    c->m_check = fw_metric_counter("fundwatch_checks_total", "Pre-payment checks answered", NULL);
    c->m_check_lat =
        fw_metric_histogram("fundwatch_check_seconds", "Pre-payment check latency", NULL, NULL, 0);
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    int e = pthread_create(&c->thread, NULL, checker_main, c);
    if (e != 0) {
        snprintf(err, (size_t)errlen, "check thread: %s", strerror(e));
        c->joined = 1;
        fw_checker_free(c);
        return NULL;
    }
    /* Wait until the rule set is loaded and the subscription is in place, so
     * that start-up errors are reported here, like the loop's own. */
    pthread_mutex_lock(&c->lock);
    while (c->started == 0)
        pthread_cond_wait(&c->cond, &c->lock);
    int started = c->started;
    pthread_mutex_unlock(&c->lock);
    if (started < 0) {
        snprintf(err, (size_t)errlen, "check thread: %s", c->err);
        fw_checker_free(c);
        return NULL;
    }
    return c;
}

void fw_checker_reload(fw_checker *c)
{
    if (c)
        atomic_store(&c->reload, 1);
}

void fw_checker_stop(fw_checker *c)
{
    if (!c || c->joined)
        return;
    atomic_store(&c->stop, 1);
    pthread_join(c->thread, NULL);
    c->joined = 1;
}

void fw_checker_free(fw_checker *c)
{
    if (!c)
        return;
    fw_checker_stop(c);
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->lock);
    free(c->store_path);
    free(c);
}
