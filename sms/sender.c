/*
 * sender.c - the send loop: picks due outbox rows and hands them to the
 * carrier, within the overall rate, per-number limits and quiet hours.
 *
 * Everything happens in one libevent timer callback, the pump, which is
 * only ever scheduled (fw_sms_kick, a finished request, a timer), never
 * called directly, so nothing re-enters it.  One pump:
 *
 *   1. skips its turn while another module holds a transaction open (our
 *      `sending` mark must be COMMITTED before the request leaves);
 *   2. in one transaction: writes the outcomes of the requests answered
 *      since the last pump, then takes due rows (status queued, next_at <=
 *      now; only urgent ones in quiet hours), expires the stale, pushes back
 *      rows whose number is held (THROTTLED) or was texted less than
 *      sms.per_number_interval ago, and marks the rest `sending` with
 *      attempts + 1, as many as the rate limit (a pacing token bucket and
 *      a sliding window: no 1 s window holds more than sms.rate sends) and
 *      sms.max_inflight allow;
 *   3. commits (one fsync per pump, not two per message), then starts the
 *      HTTP requests (log carrier: writes the log line and marks the row
 *      sent in the same transaction instead);
 *   4. sleeps until the earliest of: next due row, room in the rate window, end of
 *      quiet hours (and at most 30 s, so clock changes are noticed).
 *
 * A finished request moves its row from `sending` only (a receipt that got
 * there first wins): sent / queued with backoff min(max, min*2^(n-1))
 * jittered to [d/2, d] / held number / failed; a row past its expiry goes
 * to `expired` instead of being queued again.
 */
#include <event2/event.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/log.h"
#include "daemon/timeutil.h"
#include "sms/sms_impl.h"

#define PUMP_BATCH 256
#define PUMP_MAX_ROUNDS 16
#define PUMP_MAX_SLEEP_MS 30000

/* ---- per-number state: when may this number next get an SMS ---- */

struct sms_number {
    char phone[16];
    int64_t next_ok_ms;
    struct sms_number *next;
};

static uint64_t hash_phone(const char *p)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h;
}

static sms_number *number_get(fw_sms *s, const char *phone, int create)
{
    if (!s->numbers) {
        if (!create)
            return NULL;
        s->nbuckets = 1024;
        s->numbers = calloc(s->nbuckets, sizeof *s->numbers);
        if (!s->numbers)
            return NULL;
    }
    size_t b = hash_phone(phone) % s->nbuckets;
    for (sms_number *n = s->numbers[b]; n; n = n->next)
        if (strcmp(n->phone, phone) == 0)
            return n;
    if (!create)
        return NULL;
    sms_number *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    snprintf(n->phone, sizeof n->phone, "%s", phone);
    n->next = s->numbers[b];
    s->numbers[b] = n;
    s->nnumbers++;
    return n;
}

/* Forget numbers whose limits have passed (keeps the table small). */
static void numbers_prune(fw_sms *s, int64_t now_ms)
{
    for (size_t b = 0; b < s->nbuckets; b++) {
        sms_number **pp = &s->numbers[b];
        while (*pp) {
            if ((*pp)->next_ok_ms <= now_ms) {
                sms_number *dead = *pp;
                *pp = dead->next;
                free(dead);
                s->nnumbers--;
            } else {
                pp = &(*pp)->next;
            }
        }
    }
}

static void numbers_free(fw_sms *s)
{
    for (size_t b = 0; s->numbers && b < s->nbuckets; b++) {
        sms_number *n = s->numbers[b];
        while (n) {
            sms_number *next = n->next;
            free(n);
            n = next;
        }
    }
    free(s->numbers);
    s->numbers = NULL;
    s->nnumbers = 0;
}

static void number_hold_until(fw_sms *s, const char *phone, int64_t until_ms)
{
    sms_number *n = number_get(s, phone, 1);
    if (n && n->next_ok_ms < until_ms)
        n->next_ok_ms = until_ms;
}

/* ---- time, randomness ---- */

int sms_in_quiet_hours(const fw_sms *s, int64_t now_s, int64_t *quiet_end_s)
{
    if (!s->quiet_on || s->quiet_start == s->quiet_end)
        return 0;
    int y, mo, d, h, mi, sec, wd;
    fw_time_local(now_s, &y, &mo, &d, &h, &mi, &sec, &wd);
    int m = h * 60 + mi;
    int quiet = s->quiet_start < s->quiet_end ? (m >= s->quiet_start && m < s->quiet_end)
                                              : (m >= s->quiet_start || m < s->quiet_end);
    if (quiet && quiet_end_s) {
        int64_t end = fw_time_from_local(y, mo, d, s->quiet_end / 60, s->quiet_end % 60, 0);
        if (end <= now_s)
            end += 86400;
        *quiet_end_s = end;
    }
    return quiet;
}

static uint64_t next_rand(fw_sms *s)
{
    /* xorshift64*: jitter only, not security */
    uint64_t x = s->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    s->rng = x;
    return x * 2685821657736338717ULL;
}

static int64_t backoff_ms(fw_sms *s, int attempts)
{
    int64_t d = s->retry_min_ms;
    for (int i = 1; i < attempts && d < s->retry_max_ms; i++)
        d *= 2;
    if (d > s->retry_max_ms)
        d = s->retry_max_ms;
    if (d < 2)
        return d;
    return d / 2 + (int64_t)(next_rand(s) % (uint64_t)(d / 2 + 1));
}

/* ---- scheduling ---- */

/* The pump timer is a libevent (monotonic) timer: compare against the same
 * clock, not fw_clock (which tests move, and which may jump). */
static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sms_sender_schedule(fw_sms *s, int64_t delay_ms)
{
    if (!s->pump_ev || s->stopping)
        return;
    if (delay_ms < 0)
        delay_ms = 0;
    int64_t at = mono_ms() + delay_ms;
    if (s->pump_pending && s->pump_at_ms <= at)
        return;
    struct timeval tv = {(time_t)(delay_ms / 1000), (suseconds_t)((delay_ms % 1000) * 1000)};
    evtimer_add(s->pump_ev, &tv);
    s->pump_pending = 1;
    s->pump_at_ms = at;
}

void fw_sms_kick(fw_sms *s)
{
    if (s)
        sms_sender_schedule(s, 0);
}

/* The rate limit has two parts.  A token bucket (depth max(1, rate/20))
 * paces the sends evenly, so that the carrier, which sees our requests with
 * some jitter, never gets bursts; a sliding window over the send times of
 * the last second (monotonic ms, a ring of sms.rate entries) makes sure no
 * 1-second window ever holds more than sms.rate sends, which the bucket
 * alone would allow (rate + depth). */
static void refill_tokens(fw_sms *s, int64_t now)
{
    double cap = (double)s->rate / 20.0;
    if (cap < 1.0)
        cap = 1.0;
    if (now > s->tokens_at_ms)
        s->tokens += (double)(now - s->tokens_at_ms) * (double)s->rate / 1000.0;
    s->tokens_at_ms = now;
    if (s->tokens > cap)
        s->tokens = cap;
}

static int rate_room(fw_sms *s, int64_t now)
{
    while (s->win_n > 0 && s->win[s->win_tail] <= now - 1000) {
        s->win_tail = (s->win_tail + 1) % (int)s->rate;
        s->win_n--;
    }
    return (int)s->rate - s->win_n;
}

static void rate_record(fw_sms *s, int64_t now)
{
    int head = (s->win_tail + s->win_n) % (int)s->rate;
    s->win[head] = now;
    s->win_n++;
}

/* ms until at least `k` more sends are allowed (k <= rate). */
static int64_t rate_wait(fw_sms *s, int64_t now, int k)
{
    int room = (int)s->rate - s->win_n;
    if (room >= k)
        return 0;
    int64_t t = s->win[(s->win_tail + (k - room) - 1) % (int)s->rate] + 1000 - now;
    return t > 0 ? t : 1;
}

/* ---- finishing a request ---- */

static void msg_free(sms_msg *m)
{
    if (!m)
        return;
    free(m->content);
    free(m->params);
    free(m);
}

static fw_metric *err_metric(fw_sms *s, const char *reason)
{
    if (!reason)
        return NULL;
    if (strcmp(reason, "http_5xx") == 0)
        return s->m_err_5xx;
    if (strcmp(reason, "http_429") == 0)
        return s->m_err_429;
    if (strcmp(reason, "timeout") == 0)
        return s->m_err_timeout;
    if (strcmp(reason, "transport") == 0)
        return s->m_err_transport;
    if (strcmp(reason, "throttled") == 0)
        return s->m_err_throttled;
    if (strcmp(reason, "bad_answer") == 0)
        return s->m_err_bad_answer;
    return s->m_err_rejected;
}

static int step_done(sqlite3_stmt *q)
{
    int rc = sqlite3_step(q);
    fw_store_done(q);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* Write a finished request's outcome (inside the caller's transaction). */
static int write_outcome(fw_sms *s, sms_msg *m, const sms_outcome *o)
{
    int64_t now_ms = fw_clock_now_ms();
    char mp[32], q1[300];
    fw_mask_phone(m->phone, mp);
    int rc = 0;
    sqlite3_stmt *q;
    switch (o->kind) {
    case SMS_OUT_SENT:
        q = fw_store_stmt(s->st,
                          "UPDATE sms_outbox SET status = CASE WHEN status = 'sending' THEN 'sent'"
                          " ELSE status END, sent_at = coalesce(sent_at, ?2),"
                          " message_id = coalesce(message_id, ?3), error = NULL WHERE n = ?1");
        sqlite3_bind_int64(q, 1, m->n);
        sqlite3_bind_int64(q, 2, now_ms / 1000);
        sqlite3_bind_text(q, 3, o->message_id, -1, SQLITE_STATIC);
        rc = step_done(q);
        fw_metric_add(s->m_sent[m->kind], 1);
        fw_metric_add(s->m_segments[m->kind], m->segments);
        FW_DEBUG("sms.sent", "out_id=%s kind=%s phone=%s attempts=%d message_id=%s ms=%lld",
                 m->out_id, sms_kind_name(m->kind), mp, m->attempts, o->message_id,
                 (long long)(now_ms - m->started_ms));
        break;
    case SMS_OUT_RETRY:
    case SMS_OUT_THROTTLED: {
        int64_t delay = backoff_ms(s, m->attempts);
        if (o->kind == SMS_OUT_THROTTLED)
            number_hold_until(s, m->phone, now_ms + delay);
        if (now_ms + delay >= m->expires_ms) {
            q = fw_store_stmt(s->st, "UPDATE sms_outbox SET status = 'expired', error = ?2"
                                     " WHERE n = ?1 AND status = 'sending'");
            char e[300];
            snprintf(e, sizeof e, "expired after %d attempts; last: %s", m->attempts, o->error);
            sqlite3_bind_text(q, 2, e, -1, SQLITE_TRANSIENT);
        } else {
            q = fw_store_stmt(s->st, "UPDATE sms_outbox SET status = 'queued', next_at = ?3,"
                                     " error = ?2 WHERE n = ?1 AND status = 'sending'");
            sqlite3_bind_text(q, 2, o->error, -1, SQLITE_STATIC);
            sqlite3_bind_int64(q, 3, now_ms + delay);
        }
        sqlite3_bind_int64(q, 1, m->n);
        rc = step_done(q);
        FW_WARN("sms.retry", "out_id=%s phone=%s attempts=%d in_ms=%lld error=%s", m->out_id, mp,
                m->attempts, (long long)delay, fw_log_quote(o->error, q1, sizeof q1));
        break;
    }
    case SMS_OUT_FAILED:
        q = fw_store_stmt(s->st, "UPDATE sms_outbox SET status = 'failed', error = ?2"
                                 " WHERE n = ?1 AND status = 'sending'");
        sqlite3_bind_int64(q, 1, m->n);
        sqlite3_bind_text(q, 2, o->error, -1, SQLITE_STATIC);
        rc = step_done(q);
        FW_WARN("sms.failed", "out_id=%s phone=%s attempts=%d error=%s", m->out_id, mp, m->attempts,
                fw_log_quote(o->error, q1, sizeof q1));
        break;
    }
    fw_metric *em = o->kind == SMS_OUT_SENT ? NULL : err_metric(s, o->metric_reason);
    if (em)
        fw_metric_add(em, 1);
    if (rc != 0)
        FW_ERROR("sms.update_failed", "out_id=%s", m->out_id);
    return rc;
}

/* Outcomes wait in s->done until the next pump writes them together with
 * its claims: one commit (one fsync) per pump, not two per message. */
static int write_done(fw_sms *s)
{
    for (sms_msg *m = s->done_head; m; m = m->next_done)
        if (write_outcome(s, m, &m->out) != 0)
            return -1;
    return 0;
}

static void free_done(fw_sms *s)
{
    while (s->done_head) {
        sms_msg *m = s->done_head;
        s->done_head = m->next_done;
        msg_free(m);
    }
    s->done_tail = NULL;
}

/* Write what is waiting now, in a transaction of its own (or the
 * caller's).  On failure the rows stay `sending`: reconciled at start. */
static void flush_done_now(fw_sms *s)
{
    if (!s->done_head)
        return;
    int own = !fw_store_in_txn(s->st);
    if (fw_store_begin(s->st) != 0) {
        free_done(s);
        return;
    }
    if (write_done(s) != 0 && own)
        fw_store_rollback(s->st);
    else
        fw_store_commit(s->st);
    free_done(s);
}

static void push_done(fw_sms *s, sms_msg *m)
{
    m->next_done = NULL;
    if (s->done_tail)
        s->done_tail->next_done = m;
    else
        s->done_head = m;
    s->done_tail = m;
}

static void on_http_done(void *ud, const sms_http_result *r)
{
    sms_msg *m = ud;
    fw_sms *s = m->s;
    if (r->cancelled) {
        /* Shutting down: the row stays `sending`, reconciled at start. */
        msg_free(m);
        return;
    }
    s->inflight--;
    if (r->status > 0)
        fw_metric_observe(s->m_latency, r->seconds);
    sms_carrier_classify(s, r, &m->out);
    push_done(s, m);
    if (s->stopping) {
        /* no more pumps: write it now */
        flush_done_now(s);
        /* only our own shutdown loop: never break the caller's */
        if (s->inflight == 0 && s->shutdown_looping)
            event_base_loopbreak(s->base);
        return;
    }
    /* 1 ms: let the answers that arrive together share one commit */
    sms_sender_schedule(s, 1);
}

static void dispatch(fw_sms *s, sms_msg *m)
{
    char **headers = NULL;
    char *body = NULL;
    char err[200];
    if (sms_carrier_request(s, m, &headers, &body, err, sizeof err) != 0 ||
        sms_httpc_post(s->hc, s->url, (const char *const *)headers, body, (long)s->timeout_ms,
                       on_http_done, m) != 0) {
        sms_carrier_free_headers(headers);
        free(body);
        memset(&m->out, 0, sizeof m->out);
        m->out.kind = SMS_OUT_RETRY;
        m->out.metric_reason = "transport";
        snprintf(m->out.error, sizeof m->out.error, "could not start the request: %s", err);
        push_done(s, m);
        sms_sender_schedule(s, 1);
        return;
    }
    sms_carrier_free_headers(headers);
    free(body);
    s->inflight++;
}

/* ---- the pump ---- */

static const char *due_sql(int urgent_only)
{
    return urgent_only
               ? "SELECT n, out_id, kind, phone, content, params, segments, attempts, expires_at"
                 " FROM sms_outbox WHERE status = 'queued' AND urgent = 1 AND next_at <= ?1"
                 " ORDER BY next_at LIMIT ?2"
               : "SELECT n, out_id, kind, phone, content, params, segments, attempts, expires_at"
                 " FROM sms_outbox WHERE status = 'queued' AND next_at <= ?1"
                 " ORDER BY next_at LIMIT ?2";
}

/* Claim up to `want` due rows (inside the pump's transaction); returns how
 * many rows the query saw (>= claimed), or -1 (the caller rolls back).
 * Claimed messages are appended to out[]. */
static int claim_batch(fw_sms *s, int64_t now_ms, int quiet, int want, sms_msg **out, int *nout)
{
    sqlite3_stmt *q = fw_store_stmt(s->st, due_sql(quiet));
    sqlite3_bind_int64(q, 1, now_ms);
    sqlite3_bind_int(q, 2, want);
    int seen = 0;
    sms_msg *rows[PUMP_BATCH];
    while (seen < want && seen < PUMP_BATCH && sqlite3_step(q) == SQLITE_ROW) {
        sms_msg *m = calloc(1, sizeof *m);
        if (!m)
            break;
        m->s = s;
        m->n = sqlite3_column_int64(q, 0);
        snprintf(m->out_id, sizeof m->out_id, "%s", fw_col_text(q, 1));
        m->kind = sms_kind_parse(fw_col_text(q, 2));
        if (m->kind < 0)
            m->kind = SMS_ALERT;
        snprintf(m->phone, sizeof m->phone, "%s", fw_col_text(q, 3));
        m->content = strdup(fw_col_text(q, 4));
        m->params = strdup(fw_col_text(q, 5));
        m->segments = sqlite3_column_int(q, 6);
        m->attempts = sqlite3_column_int(q, 7) + 1;
        m->expires_ms = sqlite3_column_int64(q, 8);
        m->started_ms = now_ms;
        rows[seen++] = m;
    }
    fw_store_done(q);
    if (seen == 0)
        return 0;

    for (int i = 0; i < seen; i++) {
        sms_msg *m = rows[i];
        if (!m->content || !m->params)
            goto fail_txn;
        if (m->expires_ms <= now_ms) {
            q = fw_store_stmt(s->st, "UPDATE sms_outbox SET status = 'expired',"
                                     " error = 'expired before it could be sent; last: ' ||"
                                     " coalesce(error, 'none') WHERE n = ?1");
            sqlite3_bind_int64(q, 1, m->n);
            if (step_done(q) != 0)
                goto fail_txn;
            FW_WARN("sms.expired", "out_id=%s attempts=%d", m->out_id, m->attempts - 1);
            msg_free(m);
            rows[i] = NULL;
            continue;
        }
        sms_number *num = number_get(s, m->phone, 0);
        if (num && num->next_ok_ms > now_ms) {
            q = fw_store_stmt(s->st, "UPDATE sms_outbox SET next_at = ?2 WHERE n = ?1");
            sqlite3_bind_int64(q, 1, m->n);
            sqlite3_bind_int64(q, 2, num->next_ok_ms);
            if (step_done(q) != 0)
                goto fail_txn;
            msg_free(m);
            rows[i] = NULL;
            continue;
        }
        if (s->carrier == SMS_CARRIER_LOG) {
            char mid[32], mp[32], qc[1600];
            snprintf(mid, sizeof mid, "log-%llu", (unsigned long long)++s->log_seq);
            q = fw_store_stmt(s->st,
                              "UPDATE sms_outbox SET status = 'sent', attempts = attempts + 1,"
                              " sent_at = ?2, message_id = ?3, error = NULL WHERE n = ?1");
            sqlite3_bind_int64(q, 1, m->n);
            sqlite3_bind_int64(q, 2, now_ms / 1000);
            sqlite3_bind_text(q, 3, mid, -1, SQLITE_TRANSIENT);
            if (step_done(q) != 0)
                goto fail_txn;
            FW_INFO("sms.log", "out_id=%s kind=%s phone=%s segments=%d message_id=%s content=%s",
                    m->out_id, sms_kind_name(m->kind), fw_mask_phone(m->phone, mp), m->segments,
                    mid, fw_log_quote(m->content, qc, sizeof qc));
            fw_metric_add(s->m_sent[m->kind], 1);
            fw_metric_add(s->m_segments[m->kind], m->segments);
        } else {
            q = fw_store_stmt(s->st, "UPDATE sms_outbox SET status = 'sending',"
                                     " attempts = attempts + 1 WHERE n = ?1 AND status = 'queued'");
            sqlite3_bind_int64(q, 1, m->n);
            if (step_done(q) != 0)
                goto fail_txn;
        }
        if (s->per_number_ms > 0)
            number_hold_until(s, m->phone, now_ms + s->per_number_ms);
        if (s->rate > 0) {
            rate_record(s, mono_ms());
            s->tokens -= 1.0;
        }
        if (s->carrier == SMS_CARRIER_LOG) {
            msg_free(m);
            rows[i] = NULL;
        }
    }
    for (int i = 0; i < seen; i++)
        if (rows[i])
            out[(*nout)++] = rows[i];
    return seen;
fail_txn:
    FW_ERROR("sms.claim_failed", "rows=%d", seen);
    for (int i = 0; i < seen; i++)
        msg_free(rows[i]);
    return -1;
}

static int64_t next_wake_ms(fw_sms *s, int64_t now_ms, int quiet, int64_t quiet_end_s)
{
    int64_t wake = now_ms + PUMP_MAX_SLEEP_MS;
    sqlite3_stmt *q = fw_store_stmt(
        s->st, quiet ? "SELECT min(next_at) FROM sms_outbox WHERE status = 'queued' AND urgent = 1"
                     : "SELECT min(next_at) FROM sms_outbox WHERE status = 'queued'");
    if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL) {
        int64_t t = sqlite3_column_int64(q, 0);
        if (t < wake)
            wake = t;
    }
    fw_store_done(q);
    if (quiet && quiet_end_s * 1000 < wake)
        wake = quiet_end_s * 1000;
    return wake;
}

static void on_pump(evutil_socket_t fd, short what, void *arg)
{
    fw_sms *s = arg;
    s->pump_pending = 0;
    if (s->stopping)
        return;
    if (fw_store_in_txn(s->st)) {
        /* Someone's batch is open: our `sending` mark could not be committed
         * on its own.  Come back right after. */
        sms_sender_schedule(s, 2);
        return;
    }
    int64_t now_ms = fw_clock_now_ms();
    int64_t quiet_end_s = 0;
    int quiet = sms_in_quiet_hours(s, now_ms / 1000, &quiet_end_s);
    if (s->nnumbers > 100000)
        numbers_prune(s, now_ms);

    for (int round = 0; round < PUMP_MAX_ROUNDS; round++) {
        int room = s->max_inflight - s->inflight;
        if (s->carrier == SMS_CARRIER_LOG)
            room = PUMP_BATCH;
        int want = room < PUMP_BATCH ? room : PUMP_BATCH;
        int64_t token_wait = -1;
        if (want > 0 && s->rate > 0) {
            /* claim several at once when we can: one commit per pump */
            int64_t mnow = mono_ms();
            int batch = (int)(s->rate / 100);
            batch = batch < 1 ? 1 : batch > 16 ? 16 : batch;
            refill_tokens(s, mnow);
            int room = rate_room(s, mnow);
            if ((int)s->tokens < room)
                room = (int)s->tokens;
            int k = batch < want ? batch : want;
            if (room < k) {
                int64_t tw = (int64_t)ceil(((double)k - s->tokens) * 1000.0 / (double)s->rate);
                int64_t ww = rate_wait(s, mnow, k);
                token_wait = tw > ww ? tw : ww;
                if (token_wait < 1)
                    token_wait = 1;
                want = 0;
            } else if (room < want) {
                want = room;
            }
        }
        if (want <= 0 && !s->done_head) {
            if (token_wait >= 0)
                sms_sender_schedule(s, token_wait > 0 ? token_wait : 1);
            return; /* else a finishing request schedules the next pump */
        }
        /* One transaction: the answers that came in, and the next claims.
         * It is committed before any of the claimed requests starts. */
        sms_msg *claimed[PUMP_BATCH];
        int nclaimed = 0, seen = 0;
        if (fw_store_begin(s->st) != 0) {
            sms_sender_schedule(s, 1000);
            return;
        }
        if (write_done(s) != 0 ||
            (want > 0 && (seen = claim_batch(s, now_ms, quiet, want, claimed, &nclaimed)) < 0)) {
            fw_store_rollback(s->st);
            sms_sender_schedule(s, 1000);
            return;
        }
        if (fw_store_commit(s->st) != 0) {
            for (int i = 0; i < nclaimed; i++)
                msg_free(claimed[i]);
            sms_sender_schedule(s, 1000);
            return;
        }
        free_done(s);
        /* The per-number interval counts from when a request leaves, and the
         * claim's commit (an fsync) may have taken a while since now_ms. */
        if (s->per_number_ms > 0 && nclaimed > 0) {
            int64_t sent_ms = fw_clock_now_ms();
            for (int i = 0; i < nclaimed; i++)
                number_hold_until(s, claimed[i]->phone, sent_ms + s->per_number_ms);
        }
        for (int i = 0; i < nclaimed; i++)
            dispatch(s, claimed[i]);
        if (want <= 0) {
            if (token_wait >= 0)
                sms_sender_schedule(s, token_wait > 0 ? token_wait : 1);
            return;
        }
        if (seen < want)
            break; /* nothing more due now */
        if (round == PUMP_MAX_ROUNDS - 1) {
            sms_sender_schedule(s, 0); /* let the loop breathe, then go on */
            return;
        }
    }
    int64_t wake = next_wake_ms(s, now_ms, quiet, quiet_end_s);
    sms_sender_schedule(s, wake - now_ms);
}

/* ---- lifecycle ---- */

int sms_sender_start(fw_sms *s, char *err, int errlen)
{
    s->rng = (uint64_t)fw_clock_now_ms() * 6364136223846793005ULL + (uint64_t)(uintptr_t)s;
    if (!s->rng)
        s->rng = 1;
    s->tokens = s->rate > 0 ? 1.0 : 0.0;
    s->tokens_at_ms = mono_ms();
    if (s->rate > 0) {
        s->win = calloc((size_t)s->rate, sizeof *s->win);
        if (!s->win) {
            snprintf(err, (size_t)errlen, "sms: out of memory");
            return -1;
        }
    }
    /* Also with the log carrier: alert webhooks use the same client. */
    s->hc = sms_httpc_new(s->base, s->max_inflight, err, errlen);
    if (!s->hc)
        return -1;
    s->pump_ev = evtimer_new(s->base, on_pump, s);
    if (!s->pump_ev) {
        snprintf(err, (size_t)errlen, "sms: cannot create the sender timer");
        return -1;
    }
    sms_sender_schedule(s, 0);
    return 0;
}

void sms_sender_stop(fw_sms *s)
{
    s->stopping = 1;
    flush_done_now(s);
    if (s->pump_ev) {
        event_free(s->pump_ev);
        s->pump_ev = NULL;
    }
    sms_httpc_free(s->hc);
    s->hc = NULL;
    numbers_free(s);
    free(s->win);
    s->win = NULL;
}

static void mute_libevent_log(int severity, const char *msg)
{
    (void)severity, (void)msg;
}

static void on_shutdown_tick(evutil_socket_t fd, short what, void *arg)
{
    fw_sms *s = arg;
    event_base_loopbreak(s->base);
}

void fw_sms_shutdown(fw_sms *s, int timeout_ms)
{
    if (!s || !s->base)
        return;
    s->stopping = 1;
    if (s->pump_ev)
        evtimer_del(s->pump_ev);
    s->pump_pending = 0;
    if (s->inflight == 0)
        return;
    FW_INFO("sms.shutdown", "in_flight=%d wait_ms=%d", s->inflight, timeout_ms);
    /* From inside a loop callback the loop cannot be run again: libevent
     * refuses re-entry (event_base_loop returns -1 and warns).  A
     * non-blocking probe, with the warning muted, finds out (libevent 2.1's
     * event_base_get_running_event cannot: it crashes outside a callback).
     * Then the requests finish while the caller's loop keeps turning, and
     * whatever is still open at fw_sms_free stays `sending`, reconciled at
     * the next start.  Our own wait uses a private timer and loopbreak, not
     * loopexit, so nothing is left behind to stop the caller's loop later. */
    event_set_log_callback(mute_libevent_log);
    int probe = event_base_loop(s->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    event_set_log_callback(NULL);
    if (probe < 0) {
        FW_INFO("sms.shutdown_in_loop", "in_flight=%d", s->inflight);
        return;
    }
    struct event *tick = evtimer_new(s->base, on_shutdown_tick, s);
    int64_t deadline = mono_ms() + timeout_ms;
    s->shutdown_looping = 1;
    while (tick && s->inflight > 0) {
        int64_t left = deadline - mono_ms();
        if (left <= 0)
            break;
        if (left > 100)
            left = 100;
        struct timeval tv = {0, (suseconds_t)(left * 1000)};
        evtimer_add(tick, &tv);
        if (event_base_loop(s->base, 0) < 0)
            break;
    }
    if (tick)
        event_free(tick);
    s->shutdown_looping = 0;
    if (s->inflight > 0)
        FW_WARN("sms.shutdown_unfinished", "in_flight=%d", s->inflight);
}

/* ---- metrics ---- */

static const char *const status_names[] = {"queued",      "sending", "sent",   "delivered",
                                           "undelivered", "failed",  "expired"};
#define NSTATUS 7

typedef struct gauge_cell {
    fw_sms *s;
    int status, kind;
} gauge_cell;

static gauge_cell cells[NSTATUS * SMS_NKINDS];
static struct {
    fw_sms *s;
    int64_t at_ms;
    int64_t count[NSTATUS][SMS_NKINDS];
} snap;

static double gauge_outbox(void *ud)
{
    gauge_cell *c = ud;
    fw_sms *s = c ? c->s : NULL;
    if (!s)
        return 0;
    int64_t now = fw_clock_now_ms();
    if (snap.s != s || now - snap.at_ms > 1000 || now < snap.at_ms) {
        memset(snap.count, 0, sizeof snap.count);
        sqlite3_stmt *q = fw_store_stmt(
            s->st, "SELECT status, kind, count(*) FROM sms_outbox GROUP BY status, kind");
        while (sqlite3_step(q) == SQLITE_ROW) {
            int k = sms_kind_parse(fw_col_text(q, 1));
            for (int st = 0; k >= 0 && st < NSTATUS; st++)
                if (strcmp(status_names[st], fw_col_text(q, 0)) == 0)
                    snap.count[st][k] = sqlite3_column_int64(q, 2);
        }
        fw_store_done(q);
        snap.s = s;
        snap.at_ms = now;
    }
    return (double)snap.count[c->status][c->kind];
}

void sms_metrics_init(fw_sms *s)
{
    static const double lat[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
    char labels[96];
    /* Same-name series registered together: the exposition groups them. */
    for (int k = 0; k < SMS_NKINDS; k++) {
        snprintf(labels, sizeof labels, "kind=\"%s\"", sms_kind_name(k));
        s->m_queued[k] = fw_metric_counter("fundwatch_sms_queued_total",
                                           "SMS written to the outbox, by kind", labels);
    }
    for (int k = 0; k < SMS_NKINDS; k++) {
        snprintf(labels, sizeof labels, "kind=\"%s\"", sms_kind_name(k));
        s->m_sent[k] = fw_metric_counter("fundwatch_sms_sent_total",
                                         "SMS accepted by the carrier, by kind", labels);
    }
    for (int k = 0; k < SMS_NKINDS; k++) {
        snprintf(labels, sizeof labels, "kind=\"%s\"", sms_kind_name(k));
        s->m_segments[k] = fw_metric_counter("fundwatch_sms_segments_total",
                                             "Billed SMS segments accepted, by kind", labels);
    }
    for (int st = 0; st < NSTATUS; st++) {
        for (int k = 0; k < SMS_NKINDS; k++) {
            gauge_cell *c = &cells[st * SMS_NKINDS + k];
            c->s = s;
            c->status = st;
            c->kind = k;
            snprintf(labels, sizeof labels, "status=\"%s\",kind=\"%s\"", status_names[st],
                     sms_kind_name(k));
            fw_metric_gauge_fn("fundwatch_sms_outbox", "SMS in the outbox by status and kind",
                               labels, gauge_outbox, c);
        }
    }
    s->m_latency = fw_metric_histogram("fundwatch_sms_send_seconds",
                                       "Carrier request latency (answered requests)", "", lat,
                                       (int)(sizeof lat / sizeof lat[0]));
    static const char *help = "Carrier errors by reason";
    s->m_err_5xx =
        fw_metric_counter("fundwatch_sms_carrier_errors_total", help, "reason=\"http_5xx\"");
    s->m_err_429 =
        fw_metric_counter("fundwatch_sms_carrier_errors_total", help, "reason=\"http_429\"");
    s->m_err_timeout =
        fw_metric_counter("fundwatch_sms_carrier_errors_total", help, "reason=\"timeout\"");
    s->m_err_transport =
        fw_metric_counter("fundwatch_sms_carrier_errors_total", help, "reason=\"transport\"");
    s->m_err_throttled =
        fw_metric_counter("fundwatch_sms_carrier_errors_total", help, "reason=\"throttled\"");
    s->m_err_rejected =
        fw_metric_counter("fundwatch_sms_carrier_errors_total", help, "reason=\"rejected\"");
    s->m_err_bad_answer =
        fw_metric_counter("fundwatch_sms_carrier_errors_total", help, "reason=\"bad_answer\"");
}

/* The gauges outlive this fw_sms in the registry: point them at nothing. */
void sms_metrics_detach(fw_sms *s)
{
    for (int i = 0; i < NSTATUS * SMS_NKINDS; i++)
        if (cells[i].s == s)
            cells[i].s = NULL;
    if (snap.s == s)
        snap.s = NULL;
}
