/* app.c - see app.h */
#include "daemon/app.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>
#include <nats/nats.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alerts/alerts.h"
#include "daemon/event.h"
#include "daemon/hit.h"
#include "daemon/http.h"
#include "daemon/intake.h"
#include "daemon/ledger.h"
#include "daemon/log.h"
#include "daemon/metrics.h"
#include "daemon/money.h"
#include "daemon/precheck.h"
#include "daemon/schema.h"
#include "daemon/store.h"
#include "daemon/timeutil.h"
#include "lua/rules.h"
#include "sms/sms.h"

/* nats adapter functions are defined in exactly one translation unit
 * (intake.c); natsLibevent_Init is declared there too. */
extern natsStatus natsLibevent_Init(void);

typedef struct pending_pub {
    char *subject, *data, *error, *orig_subject;
    int len;
    uint64_t ticket; /* the commit it waits for; 0 while its batch is open */
} pending_pub;

/* A stream message's ack, waiting for its batch to be durable. */
typedef struct pending_ack {
    uint64_t ticket;
    char *reply;
} pending_ack;

struct fw_app {
    fw_config *cfg;
    fw_store *store;
    fw_ledger *ledger;
    fw_rules *rules;
    fw_alerts *alerts;
    fw_sms *sms;
    fw_hit_list hits;

    /* run mode */
    struct event_base *base;
    fw_intake *intake;
    fw_checker *checker; /* NATS checks on their own thread, or NULL: on the loop */
    fw_http *http;
    struct event *ev_sigterm, *ev_sigint, *ev_sighup, *ev_tick, *ev_alerts_tick, *ev_watch,
        *ev_drain;
    int stopping;
    int exit_code;
    uint64_t committed_seq;
    pending_pub *dlq_pubs;
    int ndlq, capdlq;
    /* Acks in commit order (a ring), released by release_durable. */
    pending_ack *acks;
    size_t ack_head, nacks, capacks;
    /* Alert notices and SMS of committed batches go out once the batch is
     * durable (release_durable): the first batch not flushed yet (its
     * ticket, and the newest alert_feed row at its commit), and whether
     * later ones queued more. */
    int flush_due;
    uint64_t flush_ticket;
    int64_t flush_feed;
    int flush_more;
    int intake_held; /* we asked the intake to hold stream messages */
    double held_since;
    double wal_hold_backoff; /* no hold for a big WAL before this time */
    struct event *ev_hold_timeout;
    struct event *ev_synced;
    char rules_sig[65];

    /* offline mode */
    FILE *alerts_out;
    int64_t last_tick_hour; /* unix seconds of the last simulated tick */
    int64_t alerts_created;

    /* The optimistic batch (see on_messages): what its undo needs. */
    fw_metric **batch_dlq_counted; /* dlq counters bumped by this batch, once per bump */
    int nbatch_dlq, capbatch_dlq;
    int batch_optimistic;   /* inside a batch run without per-message savepoints */
    fw_metric *m_module[8]; /* alerts created by level, SMS queued by kind */

    fw_metric *m_in[FW_KIND__COUNT];
    fw_metric *m_dup, *m_batch, *m_commit, *m_check, *m_check_lat, *m_hold, *m_held, *m_wal_holds;
};

static const double k_batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
static const double k_lat_bounds[] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.025,
                                      0.05,   0.1,   0.25,  0.5,   1};

void fw_app_register_config(fw_config *cfg)
{
    fw_config_add_keys(cfg, fw_core_config_keys, fw_core_config_nkeys);
    fw_config_add_keys(cfg, fw_alerts_config_keys, fw_alerts_config_nkeys);
    fw_config_add_keys(cfg, fw_sms_config_keys, fw_sms_config_nkeys);
    for (int i = 0; i < fw_alerts_config_nprefixes; i++)
        fw_config_add_prefix(cfg, fw_alerts_config_prefixes[i]);
    fw_config_add_prefix(cfg, "rule.");
}

static void init_metrics(fw_app *a)
{
    for (int k = 0; k < FW_KIND__COUNT; k++) {
        char labels[64];
        snprintf(labels, sizeof labels, "kind=\"%s\"", fw_kind_name((fw_kind)k));
        a->m_in[k] = fw_metric_counter("fundwatch_messages_total",
                                       "Inbound messages accepted, by kind", labels);
    }
    a->m_dup = fw_metric_counter("fundwatch_duplicates_total",
                                 "Redelivered messages that changed nothing", NULL);
    a->m_batch = fw_metric_histogram("fundwatch_batch_messages", "Messages per committed batch",
                                     NULL, k_batch_bounds, 11);
    a->m_commit = fw_metric_histogram("fundwatch_commit_seconds", "Batch commit latency", NULL,
                                      k_lat_bounds, 11);
    a->m_held = fw_metric_counter("fundwatch_intake_held_seconds_total",
                                  "Time the intake held batches back: a WAL past 64 MiB waiting "
                                  "for a checkpoint of all of it",
                                  NULL);
    a->m_wal_holds = fw_metric_counter("fundwatch_intake_wal_holds_total",
                                       "Holds of the intake for a WAL past 64 MiB", NULL);
    a->m_hold = fw_metric_histogram(
        "fundwatch_loop_hold_seconds",
        "Per batch, the longest stretch the loop could not answer a check (a message, or the "
        "commit and acks)",
        NULL, k_lat_bounds, 11);
    a->m_check = fw_metric_counter("fundwatch_checks_total", "Pre-payment checks answered", NULL);
    a->m_check_lat = fw_metric_histogram("fundwatch_check_seconds", "Pre-payment check latency",
                                         NULL, k_lat_bounds, 11);
}

/* "lines[3].net" -> "lines[].net": a bounded label for the DLQ metric. */
static void field_label(const char *field, char *out, size_t outlen)
{
    size_t o = 0;
    for (const char *p = field; *p && o + 1 < outlen; p++) {
        if (*p == '[') {
            out[o++] = '[';
            while (*p && *p != ']')
                p++;
            if (!*p)
                break;
        }
        if (*p == '"' || *p == '\\')
            continue;
        out[o++] = *p;
    }
    out[o] = 0;
}

static void count_dlq(fw_app *a, const char *kind, const char *field)
{
    char f[64], labels[160];
    field_label(field, f, sizeof f);
    snprintf(labels, sizeof labels, "kind=\"%s\",field=\"%s\"", kind, f);
    fw_metric *m = fw_metric_counter("fundwatch_dlq_total", "Dead-lettered messages", labels);
    fw_metric_add(m, 1);
    if (!a->batch_optimistic)
        return;
    /* Remembered so that a batch that falls back to per-message savepoints
     * can take it back (undo_batch). */
    if (a->nbatch_dlq == a->capbatch_dlq) {
        a->capbatch_dlq = a->capbatch_dlq ? a->capbatch_dlq * 2 : 16;
        a->batch_dlq_counted =
            realloc(a->batch_dlq_counted, (size_t)a->capbatch_dlq * sizeof *a->batch_dlq_counted);
        if (!a->batch_dlq_counted)
            abort();
    }
    a->batch_dlq_counted[a->nbatch_dlq++] = m;
}

/* ---- the pipeline ---- */

static int record_dlq(fw_app *a, const char *subject, const char *data, int len, uint64_t seq,
                      const fw_decode_error *de)
{
    const char *kind = fw_kind_name(fw_kind_from_subject(subject));
    sqlite3_stmt *s = fw_store_stmt(
        a->store, "INSERT OR IGNORE INTO dlq(stream_seq, subject, kind, field, reason, body, at) "
                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    if (seq)
        sqlite3_bind_int64(s, 1, (sqlite3_int64)seq);
    else
        sqlite3_bind_null(s, 1);
    sqlite3_bind_text(s, 2, subject, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, de->field, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, de->reason, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 6, data, len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 7, fw_clock_now());
    int rc = sqlite3_step(s);
    int fresh = sqlite3_changes(fw_store_db(a->store)) > 0;
    fw_store_done(s);
    if (rc != SQLITE_DONE)
        return -1;
    if (!fresh)
        return 0; /* a redelivered malformed message: recorded and published once */
    count_dlq(a, kind, de->field);
    char q[400];
    FW_WARN("intake.dlq", "subject=%s seq=%llu field=%s reason=%s", subject,
            (unsigned long long)seq, de->field, fw_log_quote(de->reason, q, sizeof q));
    if (!a->intake)
        return 0;
    if (a->ndlq == a->capdlq) {
        a->capdlq = a->capdlq ? a->capdlq * 2 : 16;
        a->dlq_pubs = realloc(a->dlq_pubs, (size_t)a->capdlq * sizeof *a->dlq_pubs);
        if (!a->dlq_pubs)
            abort();
    }
    pending_pub *p = &a->dlq_pubs[a->ndlq++];
    char dsub[128], err[256];
    snprintf(dsub, sizeof dsub, "fundwatch.dlq.%s", kind);
    snprintf(err, sizeof err, "%s: %s", de->field, de->reason);
    p->subject = strdup(dsub);
    p->data = malloc((size_t)len + 1);
    memcpy(p->data, data, (size_t)len);
    p->len = len;
    p->error = strdup(err);
    p->orig_subject = strdup(subject);
    p->ticket = 0;
    return 0;
}

/* Publish the DLQ copies of durable batches (ticket <= durable): published
 * earlier, a power loss would redeliver the message and publish it twice. */
static void publish_dlq(fw_app *a, uint64_t durable)
{
    static const char *const keys[2] = {"Fundwatch-Error", "Fundwatch-Subject"};
    int i = 0;
    for (; i < a->ndlq; i++) {
        pending_pub *p = &a->dlq_pubs[i];
        if (p->ticket == 0 || p->ticket > durable)
            break;
        const char *vals[2] = {p->error, p->orig_subject};
        fw_intake_publish(a->intake, p->subject, p->data, p->len, keys, vals, 2);
        free(p->subject);
        free(p->data);
        free(p->error);
        free(p->orig_subject);
    }
    if (i == 0)
        return;
    memmove(a->dlq_pubs, a->dlq_pubs + i, (size_t)(a->ndlq - i) * sizeof *a->dlq_pubs);
    a->ndlq -= i;
}

static int raise_hits(fw_app *a)
{
    const char *version = a->rules ? fw_rules_version(a->rules) : "";
    for (int i = 0; i < a->hits.n; i++) {
        json_t *alert = NULL;
        int rc =
            fw_alerts_raise(a->alerts, &a->hits.items[i], version, a->alerts_out ? &alert : NULL);
        if (rc < 0) {
            json_decref(alert);
            return -1;
        }
        if (rc == 1) {
            a->alerts_created++;
            if (a->alerts_out && alert) {
                char *s = json_dumps(alert, JSON_COMPACT);
                fprintf(a->alerts_out, "%s\n", s);
                free(s);
            }
        }
        json_decref(alert);
    }
    fw_hit_list_clear(&a->hits);
    return 0;
}

/* Returns 1 applied, 0 duplicate, -1 failure (the caller rolls back to the
 * savepoint). */
static int apply_event(fw_app *a, const fw_event *ev, uint64_t seq, const char *data, int len)
{
    sqlite3_stmt *s = fw_store_stmt(
        a->store, "INSERT OR IGNORE INTO events(id, kind, type, subject, unit_code, stream_seq,"
                  " occurred_at, received_at, body) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)");
    sqlite3_bind_text(s, 1, ev->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, fw_kind_name(ev->kind), -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, ev->type, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, ev->subject, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, ev->unit_code, -1, SQLITE_STATIC);
    if (seq)
        sqlite3_bind_int64(s, 6, (sqlite3_int64)seq);
    else
        sqlite3_bind_null(s, 6);
    sqlite3_bind_int64(s, 7, ev->occurred_at);
    sqlite3_bind_int64(s, 8, fw_clock_now());
    sqlite3_bind_text(s, 9, data, len, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    int fresh = sqlite3_changes(fw_store_db(a->store)) > 0;
    fw_store_done(s);
    if (rc != SQLITE_DONE)
        return -1;
    if (!fresh) {
        fw_metric_add(a->m_dup, 1);
        return 0;
    }
    fw_metric_add(a->m_in[ev->kind], 1);

    /* Rules judge the state before the event, as the pre-payment check does. */
    if (a->rules && fw_rules_eval(a->rules, ev, &a->hits) < 0)
        return -1;
    fw_ledger_result lr;
    if (fw_ledger_apply(a->ledger, ev, &lr) != 0)
        return -1;
    if (lr.outcome == FW_LEDGER_REFUSED || lr.outcome == FW_LEDGER_FLOW_ERROR) {
        char q[200];
        FW_INFO("ledger.outcome", "id=%s type=%s outcome=%s reason=%s", ev->id, ev->type,
                lr.outcome == FW_LEDGER_REFUSED ? "refused" : "flow_error",
                fw_log_quote(lr.reason, q, sizeof q));
    }
    if (raise_hits(a) != 0)
        return -1;
    if (fw_sms_on_event(a->sms, ev) != 0)
        return -1;
    return 1;
}

static int savepoint(fw_app *a, const char *sql)
{
    sqlite3_stmt *s = fw_store_stmt(a->store, sql);
    int rc = sqlite3_step(s);
    fw_store_done(s);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* process_message: a module failed on the message in the optimistic mode
 * (no savepoint to undo just that message): the caller must redo the batch
 * carefully (on_messages). */
enum { MSG_REDO = -2 };

/* One message inside the open batch transaction.  `careful`: in its own
 * savepoint, so that a module failing on it undoes only its effects and
 * dead-letters it (field `internal`).  Without (the optimistic mode) such a
 * failure returns MSG_REDO with the message's partial effects left in the
 * transaction.  Returns 0 when the message is dealt with (applied,
 * duplicate), 1 when it is dead-lettered (de_out says why), -1 when the
 * store itself failed (the batch must be rolled back and nothing acked).
 * A malformed message needs no undo: it is dead-lettered in both modes. */
static int process_message(fw_app *a, const char *subject, const char *data, int len, uint64_t seq,
                           int careful, fw_decode_error *de_out)
{
    fw_event ev;
    fw_decode_error de = {{0}, {0}};
    if (careful && savepoint(a, "SAVEPOINT msg") != 0)
        return -1;
    int rc;
    if (fw_event_decode(subject, data, (size_t)len, &ev, &de) != 0) {
        rc = record_dlq(a, subject, data, len, seq, &de);
    } else {
        rc = apply_event(a, &ev, seq, data, len);
        if (rc < 0 && !careful) {
            fw_hit_list_clear(&a->hits);
            fw_event_clear(&ev);
            return MSG_REDO;
        }
        if (rc < 0) {
            /* A module failed on this message: undo its partial effects and
             * dead-letter it, so one poison message never stalls the stream. */
            fw_hit_list_clear(&a->hits);
            /* The module's error, before the ROLLBACK TO replaces it. */
            snprintf(de.reason, sizeof de.reason, "processing failed: %s",
                     sqlite3_errmsg(fw_store_db(a->store)));
            if (savepoint(a, "ROLLBACK TO msg") != 0)
                return -1;
            snprintf(de.field, sizeof de.field, "internal");
            rc = record_dlq(a, subject, data, len, seq, &de);
        }
        fw_event_clear(&ev);
    }
    if (rc < 0 || (careful && savepoint(a, "RELEASE msg") != 0))
        return -1;
    if (de_out)
        *de_out = de;
    return de.field[0] ? 1 : 0;
}

/* ---- offline (replay) ---- */

static int run_tick(fw_app *a, int64_t now)
{
    if (!a->rules)
        return 0;
    if (fw_rules_tick(a->rules, now, &a->hits) < 0)
        return -1;
    return raise_hits(a);
}

fw_app *fw_app_open_offline(fw_config *cfg, const char *rules_dir, FILE *alerts_out, char *err,
                            int errlen)
{
    fw_app *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->cfg = cfg;
    a->alerts_out = alerts_out;
    init_metrics(a);
    a->store =
        fw_store_open(":memory:", fw_migrations, fw_nmigrations, 0, FW_SYNC_NORMAL, err, errlen);
    if (!a->store)
        goto fail;
    a->ledger = fw_ledger_new(a->store);
    fw_rules_opts ro = {0};
    ro.dir = rules_dir ? rules_dir : fw_config_get(cfg, "rules.dir");
    ro.etc_dir = fw_config_get(cfg, "rules.etc");
    ro.ledger = a->ledger;
    ro.cfg = cfg;
    a->rules = fw_rules_new(&ro, err, errlen);
    if (!a->rules)
        goto fail;
    a->alerts = fw_alerts_new(a->store, cfg, err, errlen);
    if (!a->alerts)
        goto fail;
    a->sms = fw_sms_new(a->store, cfg, NULL, err, errlen);
    if (!a->sms)
        goto fail;
    a->last_tick_hour = -1;
    return a;
fail:
    fw_app_close(a);
    return NULL;
}

int fw_app_feed(fw_app *a, const char *subject, const char *data, int len, char *err, int errlen)
{
    /* Simulated ticks: one per hour boundary crossed since the last event
     * (contract §11), before the event itself. */
    fw_event ev;
    fw_decode_error de;
    int64_t t = -1;
    if (fw_event_decode(subject, data, (size_t)len, &ev, &de) == 0) {
        t = ev.occurred_at;
        fw_event_clear(&ev);
    }
    if (fw_store_begin(a->store) != 0)
        goto store_fail;
    if (t >= 0) {
        if (a->last_tick_hour < 0)
            a->last_tick_hour = t - t % 3600;
        while (a->last_tick_hour + 3600 <= t) {
            a->last_tick_hour += 3600;
            if (run_tick(a, a->last_tick_hour) != 0)
                goto store_fail;
        }
    }
    int rc = process_message(a, subject, data, len, 0, 1, &de);
    if (rc < 0 || fw_store_commit(a->store) != 0)
        goto store_fail;
    if (rc == 1) {
        snprintf(err, (size_t)errlen, "%s: %s", de.field, de.reason);
        return -1;
    }
    return 0;
store_fail:
    fw_store_rollback(a->store);
    snprintf(err, (size_t)errlen, "store: %s", sqlite3_errmsg(fw_store_db(a->store)));
    return -1;
}

int64_t fw_app_alerts_created(const fw_app *a)
{
    return a->alerts_created;
}

void fw_app_close(fw_app *a)
{
    if (!a)
        return;
    fw_hit_list_free(&a->hits);
    if (a->sms)
        fw_sms_free(a->sms);
    if (a->alerts)
        fw_alerts_free(a->alerts);
    if (a->rules)
        fw_rules_free(a->rules);
    if (a->ledger)
        fw_ledger_free(a->ledger);
    if (a->store)
        fw_store_close(a->store);
    for (int i = 0; i < a->ndlq; i++) {
        free(a->dlq_pubs[i].subject);
        free(a->dlq_pubs[i].data);
        free(a->dlq_pubs[i].error);
        free(a->dlq_pubs[i].orig_subject);
    }
    free(a->dlq_pubs);
    free(a->batch_dlq_counted);
    for (size_t i = 0; i < a->nacks; i++)
        free(a->acks[(a->ack_head + i) % a->capacks].reply);
    free(a->acks);
    free(a);
}

/* ---- run: batches from NATS ---- */

static uint64_t committed_seq(void *ud)
{
    return ((fw_app *)ud)->committed_seq;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void answer_check(fw_app *a, const fw_intake_msg *m);

static void answer_check_cb(void *ud, const fw_intake_msg *m)
{
    answer_check(ud, m);
}

static void push_ack(fw_app *a, uint64_t ticket, char *reply)
{
    if (a->nacks == a->capacks) {
        size_t cap = a->capacks ? a->capacks * 2 : 1024;
        pending_ack *acks = malloc(cap * sizeof *acks);
        if (!acks)
            abort();
        for (size_t i = 0; i < a->nacks; i++)
            acks[i] = a->acks[(a->ack_head + i) % a->capacks];
        free(a->acks);
        a->acks = acks;
        a->ack_head = 0;
        a->capacks = cap;
    }
    a->acks[(a->ack_head + a->nacks) % a->capacks] = (pending_ack){ticket, reply};
    a->nacks++;
}

/* Batches stop coming while held (checks are still answered). */
static void hold_intake(fw_app *a, int hold)
{
    if (a->intake_held != hold && a->intake) {
        a->intake_held = hold;
        if (hold) {
            a->held_since = now_seconds();
            fw_metric_add(a->m_wal_holds, 1);
            /* A hold ends when the checkpoint it waits for is done; a
             * reader (of another process, too) can keep a checkpoint from
             * copying all, so a hold gives up after a while. */
            static const struct timeval limit = {0, 500000};
            if (a->ev_hold_timeout)
                event_add(a->ev_hold_timeout, &limit);
        } else {
            fw_metric_add(a->m_held, now_seconds() - a->held_since);
            if (a->ev_hold_timeout)
                event_del(a->ev_hold_timeout);
        }
        fw_intake_hold(a->intake, hold);
    }
}

/* Hold batches for a big WAL (see fw_store_wal_too_big)? */
static int wal_hold_wanted(fw_app *a)
{
    return fw_store_wal_too_big(a->store) && now_seconds() >= a->wal_hold_backoff;
}

/* A committed batch queued alert notices or SMS (no transaction open). */
static void note_flush(fw_app *a, uint64_t ticket)
{
    if (a->flush_due) {
        a->flush_more = 1; /* after the first one's flush */
        return;
    }
    a->flush_due = 1;
    a->flush_ticket = ticket;
    a->flush_feed = fw_alerts_feed_last(a->alerts);
}

/* Everything that waits for a batch to be durable, in commit order: acks
 * (JetStream may forget an acked message), then DLQ copies, then the alert
 * notices and SMS of the batches now durable.  Notices: the alert_feed rows
 * up to the one noted at the batch's commit (later batches, still in
 * flight, may have queued more: a notice of an alert that a power loss
 * then erases would be sent again, with another id, when the message is
 * redelivered).  SMS: the sender marks the rows it sends in a commit of
 * its own, whose fdatasync makes every earlier batch durable before a
 * request leaves.  (It used to wait for a moment when every commit was
 * durable, and under a steady backlog held the intake for one fdatasync
 * every 0.1 s: ~6 % of bench_e2e's time.)  Then whether the intake is
 * still held for a big WAL; checkpoints are the store's checkpointer
 * thread's. */
static void release_durable(fw_app *a)
{
    fw_store *st = a->store;
    uint64_t durable = fw_store_durable(st);
    /* The consumer acks all (intake.h): acking the last durable message
     * acks every message before it, so one ack goes out per release instead
     * of one per message (12,000 acks/s for nats-server to process while it
     * also routes checks). */
    char *last = NULL;
    while (a->nacks && a->acks[a->ack_head].ticket <= durable) {
        pending_ack *p = &a->acks[a->ack_head];
        free(last);
        last = p->reply;
        a->ack_head = (a->ack_head + 1) % a->capacks;
        a->nacks--;
    }
    if (last) {
        fw_intake_ack_reply(a->intake, last);
        free(last);
    }
    publish_dlq(a, durable);
    if (fw_store_in_txn(st))
        return;
    while (a->flush_due && durable >= a->flush_ticket) {
        a->flush_due = 0;
        fw_alerts_flush_upto(a->alerts, a->flush_feed);
        fw_sms_kick(a->sms);
        if (a->flush_more) { /* the batches committed since: their turn */
            a->flush_more = 0;
            note_flush(a, fw_store_committed(st));
        }
    }
    hold_intake(a, wal_hold_wanted(a));
}

static void on_hold_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    fw_app *a = arg;
    FW_WARN("store.hold_timeout", "wal_too_big=%d in_flight=%llu", fw_store_wal_too_big(a->store),
            (unsigned long long)(fw_store_committed(a->store) - fw_store_durable(a->store)));
    a->wal_hold_backoff = now_seconds() + 5;
    hold_intake(a, 0);
}

/* The store's sync thread finished an fdatasync, or its checkpointer a
 * checkpoint (deferred mode). */
static void on_synced(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    fw_app *a = arg;
    if (fw_store_sync_poll(a->store) != 0) {
        /* The disk refused: nothing more can be acked.  Stop; the unacked
         * messages are redelivered after a restart. */
        FW_ERROR("store.sync_failed", "action=exit");
        a->exit_code = 1;
        event_base_loopbreak(a->base);
        return;
    }
    release_durable(a);
}

/*
 * A batch runs optimistically: its messages without per-message savepoints
 * (SQLite copies every page a savepoint's statements touch into its
 * statement journal: ~17-20% of the intake loop).  When a module fails on
 * message k, nothing undoes just that message: the whole transaction is
 * rolled back (the batch opened it; nothing else is in it), the in-memory
 * effects of the optimistic pass are taken back, messages 0..k-1 run again
 * with per-message savepoints, k is dead-lettered as before, and the rest
 * of the batch runs in that careful mode.
 *
 * The in-memory effects of a message, and how they are taken back:
 * - DLQ copies to publish (a->dlq_pubs): truncated to the batch's start
 *   (the redo adds them again);
 * - counters: messages, duplicates, DLQ (the series bumped are remembered),
 *   alerts created by level and SMS queued by kind (alerts/, sms/: their
 *   only per-message memory besides log lines; found by name at start,
 *   which fails if one is missing) go back to the batch's start and the
 *   redo counts again.  Only these series are touched: the check thread
 *   counts its own (checks, rule evaluations) meanwhile.  Nothing reads
 *   them during a batch (the loop serves no HTTP then).  The rule engine's own counters
 *   (evaluations, hits, seconds per rule) count the redo's evaluations too:
 *   they measure the engine's work, checks included;
 * - log lines: the redo of 0..k-1 runs with the log level at error (they
 *   logged once already); what k logged before failing is logged again;
 * - the voucher cache drops itself on the ROLLBACK; rules keep no
 *   per-message memory (file-level locals of the shipped pack are caches of
 *   pure functions; lua/README.md tells authors not to rely on them).
 * Everything is deterministic given the same state, so the redo of 0..k-1
 * gives the same rows (alert numbers included) as the optimistic pass.
 */
typedef struct batch_mark {
    int ndlq;
    int64_t alerts_created;
    double in[FW_KIND__COUNT], dup, module[8];
} batch_mark;

static void mark_batch(fw_app *a, batch_mark *mk)
{
    mk->ndlq = a->ndlq;
    mk->alerts_created = a->alerts_created;
    for (int k = 0; k < FW_KIND__COUNT; k++)
        mk->in[k] = fw_metric_value(a->m_in[k]);
    mk->dup = fw_metric_value(a->m_dup);
    for (int i = 0; i < 8; i++)
        mk->module[i] = a->m_module[i] ? fw_metric_value(a->m_module[i]) : 0;
    a->nbatch_dlq = 0;
    a->batch_optimistic = 1;
}

/* Back to the mark: counters (fw_metric_add of the difference) and the DLQ
 * copies not yet published (all of this batch's have ticket 0). */
static void undo_batch(fw_app *a, const batch_mark *mk)
{
    for (int i = mk->ndlq; i < a->ndlq; i++) {
        free(a->dlq_pubs[i].subject);
        free(a->dlq_pubs[i].data);
        free(a->dlq_pubs[i].error);
        free(a->dlq_pubs[i].orig_subject);
    }
    if (a->ndlq > mk->ndlq)
        a->ndlq = mk->ndlq;
    a->alerts_created = mk->alerts_created;
    for (int k = 0; k < FW_KIND__COUNT; k++)
        fw_metric_add(a->m_in[k], mk->in[k] - fw_metric_value(a->m_in[k]));
    fw_metric_add(a->m_dup, mk->dup - fw_metric_value(a->m_dup));
    for (int i = 0; i < 8; i++)
        if (a->m_module[i])
            fw_metric_add(a->m_module[i], mk->module[i] - fw_metric_value(a->m_module[i]));
    for (int i = 0; i < a->nbatch_dlq; i++)
        fw_metric_add(a->batch_dlq_counted[i], -1);
    a->nbatch_dlq = 0;
}

/* Message k of the batch failed in the optimistic mode: roll the batch back
 * and run messages 0..k-1 again, each in its own savepoint.  0, or -1 when
 * the store failed. */
static int redo_batch_carefully(fw_app *a, fw_intake_msg **msgs, int k, const batch_mark *mk)
{
    char q[200];
    FW_WARN("intake.batch_redo", "seq=%llu position=%d error=%s",
            (unsigned long long)msgs[k]->stream_seq, k,
            fw_log_quote(sqlite3_errmsg(fw_store_db(a->store)), q, sizeof q));
    fw_store_rollback(a->store);
    undo_batch(a, mk);
    if (fw_store_begin(a->store) != 0)
        return -1;
    int level = fw_log_level_parse(fw_config_get(a->cfg, "log.level"));
    if (level < 0)
        level = FW_LOG_INFO;
    if (level < FW_LOG_ERROR)
        fw_log_set_level(FW_LOG_ERROR);
    int rc = 0;
    for (int i = 0; i < k && rc >= 0; i++)
        if (msgs[i]->stream_seq > a->committed_seq)
            rc = process_message(a, msgs[i]->subject, msgs[i]->data, msgs[i]->len,
                                 msgs[i]->stream_seq, 1, NULL);
    fw_log_set_level((fw_log_level)level);
    return rc < 0 ? -1 : 0;
}

/* The counters alerts/ and sms/ bump per message (see redo_batch_carefully);
 * looked up after both registered them.  A series that is not there (a
 * module renamed it) fails the start: the undo would silently miss it. */
static int watch_module_counters(fw_app *a, char *err, int errlen)
{
    static const char *const levels[4] = {"blue", "yellow", "orange", "red"};
    static const char *const kinds[4] = {"payroll", "reimburse", "subsidy", "alert"};
    char labels[8][64];
    const char *names[8];
    for (int i = 0; i < 4; i++) {
        names[i] = "fundwatch_alerts_created_total";
        snprintf(labels[i], sizeof labels[i], "level=\"%s\"", levels[i]);
        names[4 + i] = "fundwatch_sms_queued_total";
        snprintf(labels[4 + i], sizeof labels[4 + i], "kind=\"%s\"", kinds[i]);
    }
    for (int i = 0; i < 8; i++) {
        a->m_module[i] = fw_metric_find(names[i], labels[i]);
        if (!a->m_module[i]) {
            snprintf(err, (size_t)errlen,
                     "internal: counter %s{%s} is not registered (the batch undo needs it)",
                     names[i], labels[i]);
            return -1;
        }
    }
    return 0;
}

static void on_messages(void *ud, fw_intake_msg **msgs, int n)
{
    fw_app *a = ud;
    if (msgs[0]->is_check) {
        for (int i = 0; i < n; i++)
            answer_check(a, msgs[i]);
        return;
    }
    double mark = now_seconds(), hold = 0;
    /* Optimistic only when this batch opens the transaction: the redo rolls
     * the whole transaction back. */
    int careful = fw_store_in_txn(a->store);
    if (fw_store_begin(a->store) != 0)
        goto fatal;
    batch_mark mk = {0};
    if (!careful)
        mark_batch(a, &mk);
    int applied = 0;
    for (int i = 0; i < n; i++) {
        if (msgs[i]->stream_seq <= a->committed_seq)
            continue; /* already committed before a restart or resync: just ack */
        int rc = process_message(a, msgs[i]->subject, msgs[i]->data, msgs[i]->len,
                                 msgs[i]->stream_seq, careful, NULL);
        if (rc == MSG_REDO) {
            careful = 1;
            a->batch_optimistic = 0;
            if (redo_batch_carefully(a, msgs, i, &mk) != 0)
                goto fatal;
            /* This message again, as today: it fails again and is
             * dead-lettered (or, if the failure was transient, applied). */
            rc = process_message(a, msgs[i]->subject, msgs[i]->data, msgs[i]->len,
                                 msgs[i]->stream_seq, 1, NULL);
        }
        if (rc < 0)
            goto fatal;
        applied++;
        double t = now_seconds();
        if (t - mark > hold)
            hold = t - mark;
        /* A pre-payment check must not wait for the whole batch: answer
         * the ones that came in meanwhile.  They read the state as of the
         * messages applied so far in this batch (same connection), which
         * is the current state: those messages are received and are about
         * to commit. */
        fw_intake_serve_checks(a->intake, answer_check_cb, a, 2);
        mark = now_seconds();
    }
    /* The last sequence commits with the effects (once per batch: the
     * messages are in stream order). */
    uint64_t last = 0;
    for (int i = 0; i < n; i++)
        if (msgs[i]->stream_seq > last)
            last = msgs[i]->stream_seq;
    if (applied && fw_store_meta_set_int(a->store, "intake.last_seq", (int64_t)last) != 0)
        goto fatal;
    /* In deferred mode the COMMIT writes the WAL without fsync; the acks
     * wait for the sync thread (release_durable). */
    double t0 = now_seconds();
    uint64_t ticket;
    a->batch_optimistic = 0;
    if (fw_store_commit_deferred(a->store, &ticket) != 0)
        goto fatal;
    double t1 = now_seconds();
    fw_metric_observe(a->m_commit, t1 - t0);
    fw_metric_observe(a->m_batch, applied);
    for (int i = 0; i < n; i++) {
        if (msgs[i]->stream_seq > a->committed_seq)
            a->committed_seq = msgs[i]->stream_seq;
        /* Even a message committed earlier (a redelivery) waits for this
         * ticket: its commit may be one still in flight. */
        push_ack(a, ticket, msgs[i]->reply);
        msgs[i]->reply = NULL;
    }
    for (int i = a->ndlq - 1; i >= 0 && a->dlq_pubs[i].ticket == 0; i--)
        a->dlq_pubs[i].ticket = ticket;
    if (applied)
        note_flush(a, ticket);
    /* full / normal: durable now, acked at once.  A hold it starts ends in
     * a later release_durable (after an fdatasync or a checkpoint). */
    release_durable(a);
    double t = now_seconds();
    fw_metric_observe(a->m_hold, t - mark > hold ? t - mark : hold);
    return;
fatal:
    /* The store refused a write (disk full, I/O error): nothing of this batch
     * is acked, so NATS redelivers it; stop rather than skip it. */
    a->batch_optimistic = 0;
    fw_store_rollback(a->store);
    fw_hit_list_clear(&a->hits);
    FW_ERROR("store.batch_failed", "error=\"%s\" action=exit",
             sqlite3_errmsg(fw_store_db(a->store)));
    a->exit_code = 1;
    event_base_loopbreak(a->base);
}

/* ---- pre-payment check (§3) ---- */

static void answer_check(fw_app *a, const fw_intake_msg *m)
{
    double t0 = now_seconds();
    int status;
    json_t *j = fw_precheck_decide(a->rules, a->ledger, a->store, &a->hits, m->data, (size_t)m->len,
                                   &status);
    char *s = json_dumps(j, JSON_COMPACT);
    fw_intake_reply(a->intake, m, s, (int)strlen(s));
    free(s);
    json_decref(j);
    fw_metric_add(a->m_check, 1);
    fw_metric_observe(a->m_check_lat, now_seconds() - t0);
}

/* ---- HTTP handlers ---- */

static void h_healthz(const fw_http_req *req, fw_http_resp *resp, void *ud)
{
    (void)req, (void)ud;
    fw_http_json(resp, 200, json_pack("{s:s}", "status", "ok"));
}

static void h_readyz(const fw_http_req *req, fw_http_resp *resp, void *ud)
{
    (void)req;
    fw_app *a = ud;
    int connected = fw_intake_connected(a->intake);
    int consuming = fw_intake_ready(a->intake);
    /* The store is writable if a write transaction can start now. */
    int writable = 0;
    if (!fw_store_in_txn(a->store) && fw_store_begin(a->store) == 0) {
        writable = 1;
        fw_store_rollback(a->store);
    }
    int ok = connected && consuming && writable && !a->stopping;
    fw_http_json(resp, ok ? 200 : 503,
                 json_pack("{s:s,s:b,s:b,s:b,s:b}", "status", ok ? "ready" : "not ready",
                           "nats_connected", connected, "consuming", consuming, "store_writable",
                           writable, "stopping", a->stopping));
}

static void h_metrics(const fw_http_req *req, fw_http_resp *resp, void *ud)
{
    (void)req, (void)ud;
    resp->status = 200;
    resp->body = fw_metrics_render();
    resp->content_type = "text/plain; version=0.0.4";
}

static void h_check(const fw_http_req *req, fw_http_resp *resp, void *ud)
{
    fw_app *a = ud;
    double t0 = now_seconds();
    int status;
    json_t *j = fw_precheck_decide(a->rules, a->ledger, a->store, &a->hits, req->body,
                                   req->body_len, &status);
    fw_http_json(resp, status, j);
    fw_metric_add(a->m_check, 1);
    fw_metric_observe(a->m_check_lat, now_seconds() - t0);
}

static void reply_view(fw_http_resp *resp, json_t *view, const char *what, const char *id)
{
    if (!view)
        fw_http_error(resp, 404, "no such %s: %s", what, id);
    else
        fw_http_json(resp, 200, view);
}

static void h_indicator(const fw_http_req *req, fw_http_resp *resp, void *ud)
{
    fw_app *a = ud;
    reply_view(resp, fw_ledger_indicator_view(a->ledger, req->params[0]), "indicator",
               req->params[0]);
}

static void h_indicator_ledger(const fw_http_req *req, fw_http_resp *resp, void *ud)
{
    fw_app *a = ud;
    char lim[16];
    int limit = fw_http_query(req, "limit", lim, sizeof lim) ? atoi(lim) : 1000;
    json_t *entries = fw_ledger_entries_view(a->ledger, req->params[0], limit);
    if (!entries) {
        fw_http_error(resp, 404, "no such indicator: %s", req->params[0]);
        return;
    }
    if (json_is_array(entries))
        entries = json_pack("{s:o}", "items", entries);
    fw_http_json(resp, 200, entries);
}

static void h_voucher(const fw_http_req *req, fw_http_resp *resp, void *ud)
{
    fw_app *a = ud;
    reply_view(resp, fw_ledger_voucher_view(a->ledger, req->params[0]), "voucher", req->params[0]);
}

static void h_voucher_trace(const fw_http_req *req, fw_http_resp *resp, void *ud)
{
    fw_app *a = ud;
    reply_view(resp, fw_ledger_trace_view(a->ledger, req->params[0]), "voucher", req->params[0]);
}

/* ---- alert sinks ---- */

static void sink_publish(void *ud, const char *subject, const char *json)
{
    fw_app *a = ud;
    if (a->intake)
        fw_intake_publish(a->intake, subject, json, (int)strlen(json), NULL, NULL, 0);
}

typedef struct webhook_ctx {
    fw_app *a;
    int64_t notif_id;
} webhook_ctx;

static void webhook_done(void *ud, long status, const char *body, const char *error)
{
    (void)body;
    webhook_ctx *w = ud;
    int ok = status >= 200 && status < 300;
    char err[200];
    if (!ok)
        snprintf(err, sizeof err, "%s", error ? error : "HTTP error");
    if (!ok && !error)
        snprintf(err, sizeof err, "HTTP %ld", status);
    fw_alerts_webhook_done(w->a->alerts, w->notif_id, ok, ok ? NULL : err);
    free(w);
}

static int sink_webhook(void *ud, const char *url, const char *json, int64_t notif_id)
{
    fw_app *a = ud;
    static const char *const headers[] = {"Content-Type: application/json", NULL};
    webhook_ctx *w = malloc(sizeof *w);
    if (!w)
        return -1;
    w->a = a;
    w->notif_id = notif_id;
    if (fw_sms_http_post(a->sms, url, headers, json, 10000, webhook_done, w) != 0) {
        free(w);
        return -1;
    }
    return 0;
}

static int sink_sms(void *ud, const char *out_id, const char *phone, const char *name,
                    const json_t *alert, int urgent)
{
    fw_app *a = ud;
    return fw_sms_enqueue_alert(a->sms, out_id, phone, name, alert, urgent);
}

/* ---- timers, signals, reload ---- */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    fw_app *a = arg;
    if (a->stopping)
        return;
    if (fw_store_begin(a->store) != 0)
        return;
    if (run_tick(a, fw_clock_now()) != 0) {
        fw_store_rollback(a->store);
        fw_hit_list_clear(&a->hits);
        return;
    }
    if (fw_store_commit(a->store) == 0) {
        fw_alerts_flush(a->alerts);
        fw_sms_kick(a->sms);
    }
}

static void on_alerts_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    fw_app *a = arg;
    fw_alerts_tick(a->alerts, fw_clock_now());
    /* With batches in flight (not durable yet) release_durable flushes. */
    if (fw_store_durable(a->store) == fw_store_committed(a->store)) {
        fw_alerts_flush(a->alerts);
        fw_sms_kick(a->sms);
    }
}

/* A signature of the rules directory (names, sizes, mtimes): polled to
 * reload when an author saves a file. */
static void rules_signature(const char *dir, char out[65])
{
    uint64_t h = 1469598103934665603ULL;
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            char path[1024];
            struct stat st;
            if (e->d_name[0] == '.')
                continue;
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            if (stat(path, &st) != 0)
                continue;
            uint64_t x = (uint64_t)st.st_size * 31 + (uint64_t)st.st_mtim.tv_sec * 1000003 +
                         (uint64_t)st.st_mtim.tv_nsec;
            for (const char *p = e->d_name; *p; p++)
                x = x * 131 + (unsigned char)*p;
            h ^= x * 0x9E3779B97F4A7C15ULL; /* order-independent: readdir order varies */
        }
        closedir(d);
    }
    snprintf(out, 65, "%016llx", (unsigned long long)h);
}

static void reload_rules(fw_app *a, const char *why)
{
    char err[1024] = "";
    const char *before = fw_rules_version(a->rules);
    char old[65];
    snprintf(old, sizeof old, "%s", before);
    /* The check thread reloads the same files with the same tests; asked
     * first, so that a check sent after rules.reloaded is logged is judged
     * by the new set. */
    fw_checker_reload(a->checker);
    int problems = fw_rules_reload(a->rules, err, sizeof err);
    const char *now = fw_rules_version(a->rules);
    char detail[1400];
    char q[1100];
    snprintf(detail, sizeof detail,
             "{\"why\":\"%s\",\"from\":\"%s\",\"to\":\"%s\",\"problems\":%d}", why, old, now,
             problems);
    if (fw_store_begin(a->store) == 0) {
        fw_audit_append(a->store, "fundwatch", "rules.reload", fw_config_get(a->cfg, "rules.dir"),
                        detail);
        fw_rules_record_version(a->rules, a->store, fw_clock_now());
        fw_store_commit(a->store);
    }
    if (problems)
        FW_WARN("rules.reload", "why=%s version=%s problems=%d detail=%s", why, now, problems,
                fw_log_quote(err, q, sizeof q));
    else
        FW_INFO("rules.reload", "why=%s version=%s rules=%d", why, now, fw_rules_count(a->rules));
}

static void on_watch(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    fw_app *a = arg;
    char sig[65];
    rules_signature(fw_config_get(a->cfg, "rules.dir"), sig);
    if (strcmp(sig, a->rules_sig) != 0) {
        snprintf(a->rules_sig, sizeof a->rules_sig, "%s", sig);
        reload_rules(a, "changed");
    }
}

static void on_sighup(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    fw_app *a = arg;
    FW_INFO("signal.hup", "action=reload");
    reload_rules(a, "sighup");
    rules_signature(fw_config_get(a->cfg, "rules.dir"), a->rules_sig);
    char err[512];
    if (fw_sms_reload_templates(a->sms, err, sizeof err) != 0)
        FW_WARN("sms.templates_reload_failed", "detail=\"%s\"", err);
    if (a->http && fw_http_reload_tokens(a->http, err, sizeof err) != 0)
        FW_WARN("http.tokens_reload_failed", "detail=\"%s\"", err);
}

static void on_flushed_exit(void *ud)
{
    fw_app *a = ud;
    event_base_loopexit(a->base, NULL);
}

static void on_drain(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    fw_app *a = arg;
    if (fw_intake_queued(a->intake) > 0 || a->nacks > 0)
        return; /* still committing what is in hand, or waiting for its fsync */
    if (a->flush_due)
        release_durable(a);
    event_del(a->ev_drain);
    FW_INFO("daemon.drained", "committed_seq=%llu", (unsigned long long)a->committed_seq);
    fw_intake_flush_then(a->intake, on_flushed_exit, a);
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    fw_app *a = arg;
    if (a->stopping)
        return;
    a->stopping = 1;
    FW_INFO("signal.stop", "signal=%s action=drain", sig == SIGTERM ? "TERM" : "INT");
    fw_intake_stop(a->intake);
    fw_checker_stop(a->checker);
    struct timeval tv = {0, 10000};
    event_add(a->ev_drain, &tv);
}

static double gauge_lag(void *ud)
{
    return (double)fw_intake_lag(((fw_app *)ud)->intake);
}

static double gauge_queued(void *ud)
{
    return fw_intake_queued(((fw_app *)ud)->intake);
}

/* The loop thread's own nice value (only this thread: the threads made
 * before it, cnats's and the check thread, keep theirs).  Why: a check is
 * latency-bound and ingest is throughput-bound.  With 20,000 vouchers/s
 * published on 2 cores, the loop at the same priority as nats-server and
 * the check thread made checks wait for a CPU: bench_check's p99 was 31 ms
 * with the loop at nice 0 and 11 ms at nice 5 (same machine, minutes
 * apart), with the same ingest rate.  Raising one's own nice value needs no
 * privilege; it is done after the check thread started, which therefore
 * does not inherit it. */
static void lower_loop_priority(long nice_value)
{
    if (nice_value <= 0)
        return;
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), (int)nice_value) != 0)
        FW_WARN("daemon.ingest_nice", "nice=%ld error=\"%s\"", nice_value, strerror(errno));
}

int fw_app_run(fw_config *cfg)
{
    char err[1024] = "";
    int rc = 1;
    fw_app *a = calloc(1, sizeof *a);
    if (!a)
        return 1;
    a->cfg = cfg;
    init_metrics(a);
    const char *sync_name = fw_config_get(cfg, "store.synchronous");
    fw_sync_mode sync = strcmp(sync_name, "normal") == 0 ? FW_SYNC_NORMAL
                        : strcmp(sync_name, "full") == 0 ? FW_SYNC_FULL
                                                         : FW_SYNC_DEFERRED;
    signal(SIGPIPE, SIG_IGN);
    natsLibevent_Init();
    /* Go back to polling sockets after every few callbacks: a busy intake
     * must not keep HTTP (health checks, /metrics) and timers waiting. */
    struct event_config *ecfg = event_config_new();
    if (ecfg) {
        event_config_set_max_dispatch_interval(ecfg, NULL, 4, 0);
        a->base = event_base_new_with_config(ecfg);
        event_config_free(ecfg);
    }
    if (!a->base) {
        snprintf(err, sizeof err, "cannot create the event loop");
        goto out;
    }
    a->store = fw_store_open(fw_config_get(cfg, "store.path"), fw_migrations, fw_nmigrations, 0,
                             sync, err, sizeof err);
    if (!a->store)
        goto out;
    int64_t last = 0;
    if (fw_store_meta_get_int(a->store, "intake.last_seq", &last) < 0) {
        snprintf(err, sizeof err, "store: cannot read intake.last_seq");
        goto out;
    }
    a->committed_seq = (uint64_t)last;
    a->ledger = fw_ledger_new(a->store);
    fw_rules_opts ro = {0};
    ro.dir = fw_config_get(cfg, "rules.dir");
    ro.etc_dir = fw_config_get(cfg, "rules.etc");
    ro.ledger = a->ledger;
    ro.cfg = cfg;
    ro.run_tests = 1;
    a->rules = fw_rules_new(&ro, err, sizeof err);
    if (!a->rules)
        goto out;
    a->alerts = fw_alerts_new(a->store, cfg, err, sizeof err);
    if (!a->alerts)
        goto out;
    a->sms = fw_sms_new(a->store, cfg, a->base, err, sizeof err);
    if (!a->sms)
        goto out;
    if (watch_module_counters(a, err, sizeof err) != 0)
        goto out;
    fw_alerts_sinks sinks = {sink_publish, sink_webhook, sink_sms, a};
    fw_alerts_set_sinks(a->alerts, &sinks);
    if (fw_store_begin(a->store) == 0) {
        fw_rules_record_version(a->rules, a->store, fw_clock_now());
        fw_store_commit(a->store);
    }

    const char *listen = fw_config_get(cfg, "http.listen");
    if (strcmp(listen, "off") != 0) {
        a->http =
            fw_http_start(a->base, listen, fw_config_get(cfg, "auth.tokens"), err, sizeof err);
        if (!a->http)
            goto out;
        fw_http_route(a->http, "GET", "/healthz", FW_ROLE_NONE, h_healthz, a);
        fw_http_route(a->http, "GET", "/readyz", FW_ROLE_NONE, h_readyz, a);
        fw_http_route(a->http, "GET", "/metrics", FW_ROLE_NONE, h_metrics, a);
        fw_http_route(a->http, "POST", "/api/check", FW_ROLE_VIEWER, h_check, a);
        fw_http_route(a->http, "GET", "/api/indicators/*", FW_ROLE_VIEWER, h_indicator, a);
        fw_http_route(a->http, "GET", "/api/indicators/*/ledger", FW_ROLE_VIEWER,
                      h_indicator_ledger, a);
        fw_http_route(a->http, "GET", "/api/vouchers/*", FW_ROLE_VIEWER, h_voucher, a);
        fw_http_route(a->http, "GET", "/api/vouchers/*/trace", FW_ROLE_VIEWER, h_voucher_trace, a);
        fw_alerts_register_http(a->alerts, a->http);
        fw_sms_register_http(a->sms, a->http);
    }

    a->intake = fw_intake_new(a->base, cfg, on_messages, committed_seq, a, err, sizeof err);
    if (!a->intake)
        goto out;
    fw_metric_gauge_fn("fundwatch_consumer_lag", "Stream messages not yet delivered", NULL,
                       gauge_lag, a);
    fw_metric_gauge_fn("fundwatch_intake_queued", "Messages received, not yet handled", NULL,
                       gauge_queued, a);
    if (fw_config_bool(cfg, "check.thread")) {
        a->checker = fw_checker_start(cfg, fw_store_path(a->store), err, sizeof err);
        if (!a->checker)
            goto out;
        lower_loop_priority(fw_config_int(cfg, "check.ingest_nice"));
    }
    if (fw_intake_start(a->intake) != 0) {
        snprintf(err, sizeof err, "nats: cannot subscribe");
        goto out;
    }

    if (fw_store_sync_fd(a->store) >= 0) {
        a->ev_synced =
            event_new(a->base, fw_store_sync_fd(a->store), EV_READ | EV_PERSIST, on_synced, a);
        event_add(a->ev_synced, NULL);
    }
    a->ev_hold_timeout = event_new(a->base, -1, 0, on_hold_timeout, a);
    a->ev_sigterm = evsignal_new(a->base, SIGTERM, on_stop_signal, a);
    a->ev_sigint = evsignal_new(a->base, SIGINT, on_stop_signal, a);
    a->ev_sighup = evsignal_new(a->base, SIGHUP, on_sighup, a);
    a->ev_drain = event_new(a->base, -1, EV_PERSIST, on_drain, a);
    a->ev_tick = event_new(a->base, -1, EV_PERSIST, on_tick, a);
    a->ev_alerts_tick = event_new(a->base, -1, EV_PERSIST, on_alerts_tick, a);
    a->ev_watch = event_new(a->base, -1, EV_PERSIST, on_watch, a);
    event_add(a->ev_sigterm, NULL);
    event_add(a->ev_sigint, NULL);
    event_add(a->ev_sighup, NULL);
    struct timeval tick = {fw_config_int(cfg, "rules.tick"), 0};
    struct timeval five = {5, 0}, two = {2, 0};
    event_add(a->ev_tick, &tick);
    event_add(a->ev_alerts_tick, &five);
    rules_signature(fw_config_get(cfg, "rules.dir"), a->rules_sig);
    if (fw_config_bool(cfg, "rules.watch"))
        event_add(a->ev_watch, &two);

    FW_INFO("daemon.started", "version=%s store=%s rules=%d ruleset=%s committed_seq=%llu", "0.1.0",
            fw_config_get(cfg, "store.path"), fw_rules_count(a->rules), fw_rules_version(a->rules),
            (unsigned long long)a->committed_seq);
    event_base_dispatch(a->base);
    /* In-flight SMS get up to 2 s to finish; fw_sms_shutdown runs the loop
     * itself, which it cannot do from inside a loop callback. */
    fw_sms_shutdown(a->sms, 2000);
    rc = a->exit_code;
    FW_INFO("daemon.stopped", "exit=%d", rc);
out:
    if (err[0]) {
        FW_ERROR("daemon.start_failed", "detail=\"%s\"", err);
        fprintf(stderr, "fundwatch: %s\n", err);
    }
    fw_checker_free(a->checker);
    if (a->intake)
        fw_intake_free(a->intake);
    if (a->http)
        fw_http_stop(a->http);
    struct event *evs[] = {a->ev_sigterm, a->ev_sigint, a->ev_sighup,
                           a->ev_drain,   a->ev_tick,   a->ev_alerts_tick,
                           a->ev_watch,   a->ev_synced, a->ev_hold_timeout};
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (evs[i])
            event_free(evs[i]);
    a->intake = NULL;
    struct event_base *base = a->base;
    fw_app_close(a);
    if (base)
        event_base_free(base);
    nats_Close();
    return rc;
}
