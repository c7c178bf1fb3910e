/*
 * sms_impl.h - private to sms/: the fw_sms struct and the interfaces
 * between its files (templates, outbox, HTTP client, carriers, sender).
 * Nothing outside sms/ includes this; the public API is sms/sms.h.
 */
#ifndef FW_SMS_IMPL_H
#define FW_SMS_IMPL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/metrics.h"
#include "sms/sms.h"

#define SMS_MAX_CHARS 500

typedef enum { SMS_PAYROLL = 0, SMS_REIMBURSE, SMS_SUBSIDY, SMS_ALERT, SMS_NKINDS } sms_kind;
typedef enum { SMS_CARRIER_LOG = 0, SMS_CARRIER_GENERIC, SMS_CARRIER_ALIYUN } sms_carrier;

const char *sms_kind_name(int kind);
int sms_kind_parse(const char *s); /* -1 if unknown */

/* ---- templates (template.c) ---- */

/* The placeholders each kind knows, NULL-terminated; index = variable. */
extern const char *const *const sms_kind_vars[SMS_NKINDS];
int sms_var_index(int kind, const char *name); /* -1 if unknown */

typedef struct sms_templates sms_templates;
/* Load <dir>/{payroll,reimburse,subsidy,alert}.txt.  An unknown
 * placeholder fails with "<file>: unknown placeholder {x}". */
sms_templates *sms_templates_load(const char *dir, char *err, int errlen);
void sms_templates_free(sms_templates *t);
/* "【sign】" + the template with vals[] (indexed like sms_kind_vars; NULL
 * = ""); malloc'd. */
char *sms_render(const sms_templates *t, int kind, const char *sign, const char *const *vals);
/* The placeholders the kind's template uses, as a JSON object (aliyun's
 * TemplateParam). */
json_t *sms_params(const sms_templates *t, int kind, const char *const *vals);

/* ---- HTTP client (httpc.c): curl multi on libevent, hiperfifo style ---- */

typedef struct sms_httpc sms_httpc;
typedef struct sms_http_result {
    long status;       /* HTTP status, or -1 on a transport error */
    const char *body;  /* response body ("" if none) */
    const char *error; /* transport error text, or NULL */
    int sent;          /* the request reached the server (a failure is ambiguous) */
    int cancelled;     /* the client was freed before an answer */
    double seconds;    /* total time */
} sms_http_result;
typedef void (*sms_httpc_cb)(void *ud, const sms_http_result *r);

struct event_base;
sms_httpc *sms_httpc_new(struct event_base *base, int max_conns, char *err, int errlen);
/* Cancels what is outstanding (each callback gets cancelled = 1). */
void sms_httpc_free(sms_httpc *h);
/* headers: NULL-terminated "K: V" or NULL.  0 or -1 (cb not called). */
int sms_httpc_post(sms_httpc *h, const char *url, const char *const *headers, const char *body,
                   long timeout_ms, sms_httpc_cb cb, void *ud);
int sms_httpc_pending(const sms_httpc *h);

/* ---- carriers (carrier.c) ---- */

typedef enum {
    SMS_OUT_SENT = 0,  /* accepted; message_id set */
    SMS_OUT_RETRY,     /* back to queued with backoff */
    SMS_OUT_THROTTLED, /* hold this number, retry later */
    SMS_OUT_FAILED,    /* permanent */
} sms_outcome_kind;

typedef struct sms_outcome {
    sms_outcome_kind kind;
    char message_id[128];
    char error[256];
    const char *metric_reason; /* carrier error label: "http_5xx", "timeout"... */
} sms_outcome;

/* One row being sent. */
typedef struct sms_msg {
    int64_t n;
    int kind;
    int attempts; /* including this one */
    char out_id[128];
    char phone[32];
    char *content;
    char *params; /* JSON text */
    int segments;
    int64_t expires_ms;
    int64_t started_ms;
    struct fw_sms *s;
    struct sms_outcome out;    /* set when the answer is in */
    struct sms_msg *next_done; /* in fw_sms.done_* until written */
} sms_msg;

/* Build the carrier request for m: url, headers (malloc'd array of
 * malloc'd strings, NULL-terminated), body (malloc'd).  0 or -1. */
int sms_carrier_request(struct fw_sms *s, const sms_msg *m, char ***headers, char **body, char *err,
                        int errlen);
void sms_carrier_free_headers(char **headers);
/* Classify the carrier's answer. */
void sms_carrier_classify(struct fw_sms *s, const sms_http_result *r, sms_outcome *out);

/* ---- per-number state (sender.c) ---- */
typedef struct sms_number sms_number;

/* ---- the module ---- */

struct fw_sms {
    fw_store *st;
    const fw_config *cfg;
    struct event_base *base;

    /* configuration */
    sms_carrier carrier;
    char *url, *token, *sign, *dlr_secret, *templates_dir;
    char *ak_id, *ak_secret, *ali_sign_name, *ali_region, *ali_tpl[SMS_NKINDS];
    int64_t rate;          /* per second; 0 = unlimited */
    int64_t per_number_ms; /* min interval between two SMS to one number */
    int64_t expiry_ms;
    int64_t timeout_ms;
    int64_t retry_min_ms, retry_max_ms;
    int max_inflight;
    int quiet_on, quiet_start, quiet_end; /* minutes after local midnight */

    sms_templates *tpl;

    /* sender */
    sms_httpc *hc;
    struct event *pump_ev;
    int pump_pending;
    int64_t pump_at_ms;
    double tokens;        /* pacing bucket */
    int64_t tokens_at_ms; /* monotonic */
    int64_t *win;         /* send times (monotonic ms) of the last second, a ring */
    int win_tail, win_n;
    int inflight;
    int stopping;
    int shutdown_looping;           /* fw_sms_shutdown is running the loop */
    sms_msg *done_head, *done_tail; /* answered, not yet written */
    uint64_t log_seq;
    uint64_t rng;
    sms_number **numbers;
    size_t nbuckets, nnumbers;

    /* metrics */
    fw_metric *m_queued[SMS_NKINDS];
    fw_metric *m_sent[SMS_NKINDS];
    fw_metric *m_segments[SMS_NKINDS];
    fw_metric *m_latency;
    fw_metric *m_err_5xx, *m_err_429, *m_err_timeout, *m_err_transport, *m_err_throttled,
        *m_err_rejected, *m_err_bad_answer;
};

/* outbox.c */
int sms_outbox_reconcile(fw_sms *s);          /* rows left `sending` at start */
json_t *sms_outbox_row_json(sqlite3_stmt *q); /* list query row -> API JSON */
/* DLR: apply one receipt; returns 1 applied/idempotent, 0 unknown, -1 store
 * error.  *new_status set to the row's status after. */
int sms_outbox_apply_receipt(fw_sms *s, const char *out_id, const char *message_id, int delivered,
                             const char *error, const char **new_status);

/* sender.c */
int sms_sender_start(fw_sms *s, char *err, int errlen);
void sms_sender_stop(fw_sms *s);
void sms_sender_schedule(fw_sms *s, int64_t delay_ms);
int sms_in_quiet_hours(const fw_sms *s, int64_t now_s, int64_t *quiet_end_s);
void sms_metrics_init(fw_sms *s);
void sms_metrics_detach(fw_sms *s);

#endif
