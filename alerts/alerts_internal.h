/*
 * alerts_internal.h - what the alerts/ files share with each other and with
 * their unit tests; not for other modules (they use alerts.h).
 *
 *   alerts.c    store, dedup, lifecycle, JSON views, metrics
 *   routing.c   [supervisor.*] and [route.*]: parsing and matching
 *   notify.c    the feed, notification queue, grouping, escalation,
 *               webhook retries, flush and tick
 *   silences.c  silences
 *   audit.c     the hash-chained audit log
 *   api.c       HTTP handlers
 *   cli.c       `alerts`, `silences`, `audit` subcommands
 */
#ifndef FW_ALERTS_INTERNAL_H
#define FW_ALERTS_INTERNAL_H

#include "alerts/alerts.h"

#include <stddef.h>

#include "daemon/metrics.h"

#define FW_AL_CH_WEBHOOK 1u
#define FW_AL_CH_SMS 2u
#define FW_AL_CH_NATS 4u

typedef struct fw_al_sup {
    char *name;
    char *phone;   /* NULL: no SMS */
    char *webhook; /* NULL: no webhook */
} fw_al_sup;

typedef struct fw_al_route {
    char *name;
    char **units; /* prefixes; nunits == 0: every unit */
    int nunits;
    unsigned levels;   /* bit (1 << rank); 0: every level */
    unsigned channels; /* FW_AL_CH_* */
    int *to;           /* supervisor indexes */
    int nto;
    int **steps; /* escalate_to: steps[k] has nstep[k] supervisor indexes */
    int *nstep;
    int nsteps;
} fw_al_route;

/* One recipient of one notification. */
typedef struct fw_al_rcpt {
    int sup;
    unsigned channel; /* exactly one of FW_AL_CH_WEBHOOK / FW_AL_CH_SMS */
} fw_al_rcpt;

struct fw_alerts {
    fw_store *st;
    int64_t group_window;
    int64_t deadline[4]; /* by fw_level_rank; [0] (blue) unused */
    int webhook_retries;
    int64_t webhook_backoff;
    fw_al_sup *sups;
    int nsups;
    fw_al_route *routes;
    int nroutes;
    fw_alerts_sinks sinks;
    int sending_reset; /* rows left `sending` by a crash were requeued */
    int gauges_dirty;
    uint64_t rng; /* xorshift state for retry jitter */
    /* metrics (handles live in the process-wide registry) */
    fw_metric *m_gauge[4][5]; /* [level rank][status] */
    fw_metric *m_created[4];
    fw_metric *m_escalations[4];
    fw_metric *m_notify_failures[2]; /* webhook, sms */
    fw_metric *m_ack_seconds;
};

/* ---- alerts.c ---- */
int64_t fw_al_alert_n(fw_alerts *a, const char *alert_id); /* 0 unknown, -1 error */
/* The alert as published, sent and returned by raise (no wall-clock
 * fields, see alerts.c); NULL unknown.  The API's views add them. */
json_t *fw_al_alert_json(fw_alerts *a, int64_t n);
json_t *fw_al_history_json(fw_alerts *a, int64_t n);
/* Filters may be NULL; unit is a prefix; since is first_seen >= since
 * (0: any).  {"items": [...]} newest first. */
json_t *fw_al_list_json(fw_alerts *a, const char *status, const char *level, const char *unit,
                        const char *rule, int64_t since, int limit);
void fw_al_sha256_hex(const char *a, size_t alen, const char *b, size_t blen, char out[65]);
/* Level and status words. */
int fw_al_status_ok(const char *s);
void fw_al_refresh_gauges(fw_alerts *a);
/* "30m", "4h", "90s" for messages (buf >= 32). */
const char *fw_al_duration_text(int64_t secs, char *buf, size_t buflen);
/* Begin a transaction unless one is open; *own says whether to end it. */
int fw_al_begin(fw_alerts *a, int *own);
/* Commit (rc == 0) or roll back our own transaction; returns rc, or -1 when
 * the commit failed. */
int fw_al_end(fw_alerts *a, int own, int rc);

/* ---- routing.c ---- */
int fw_al_routes_load(fw_alerts *a, const fw_config *cfg, char *err, int errlen);
void fw_al_routes_free(fw_alerts *a);
/* Recipients for an alert of unit/level: step 0 is the routes' `to`, step
 * k >= 1 their k-th escalate_to step.  Deduplicated (sup, channel) pairs,
 * only channels the supervisor has an address for.  Returns the count
 * (at most max). */
int fw_al_recipients(const fw_alerts *a, const char *unit, const char *level, int step,
                     fw_al_rcpt *out, int max);
/* Number of escalate_to steps over the matching routes (0 if none). */
int fw_al_escalation_steps(const fw_alerts *a, const char *unit, const char *level);
int fw_al_parse_duration(const char *s, int64_t *secs); /* "90", "30s", "5m", "4h", "1d" */
/* A point in time for the CLI and API: "now", RFC 3339, "YYYY-MM-DD"
 * (midnight in the business zone), or a duration taken from now in the
 * direction of sign (+1 ahead: --until 2h; -1 back: --since 24h).  0/-1. */
int fw_al_parse_when(const char *s, int64_t now, int sign, int64_t *out);

/* ---- silences.c ---- */
/* The active silence (n) matching rule/unit at `now`, 0 if none, -1 error. */
int64_t fw_al_silence_match(fw_alerts *a, const char *rule, const char *unit, int64_t now);
json_t *fw_al_silence_json(fw_alerts *a, int64_t n);
/* status: NULL all, or "active", "pending", "expired". */
json_t *fw_al_silences_list_json(fw_alerts *a, const char *status, int64_t now, int limit);
/* Record the natural expiry of silences whose end passed (audit). -1/count. */
int fw_al_silences_expire_due(fw_alerts *a, int64_t now);
int64_t fw_al_silence_n(const char *silence_id); /* "SL-000003" or "3" -> 3; 0 bad */

/* ---- notify.c ---- */
/* Queue the NATS publish of the alert's current state (not for shadow). */
int fw_al_feed_queue(fw_alerts *a, const json_t *alert);
/* Notify a new, routed alert (grouping applies); inside the txn. */
int fw_al_notify_new(fw_alerts *a, int64_t alert_n, const json_t *alert, int64_t now);
/* Resolved notice to the `to` recipients and the escalation steps taken. */
int fw_al_notify_resolved(fw_alerts *a, int64_t alert_n, const json_t *alert, int64_t now);
/* Escalations due at now; count done or -1. */
int fw_al_escalate_due(fw_alerts *a, int64_t now);

/* ---- api.c (handlers are exposed for the unit tests) ---- */
void fw_al_h_list(const fw_http_req *req, fw_http_resp *resp, void *ud);
void fw_al_h_show(const fw_http_req *req, fw_http_resp *resp, void *ud);
void fw_al_h_transition(const fw_http_req *req, fw_http_resp *resp, void *ud);
void fw_al_h_silences_list(const fw_http_req *req, fw_http_resp *resp, void *ud);
void fw_al_h_silences_add(const fw_http_req *req, fw_http_resp *resp, void *ud);
void fw_al_h_silences_expire(const fw_http_req *req, fw_http_resp *resp, void *ud);

#endif
