/*
 * sms.h - staff and supervisor SMS: templates, durable outbox, carriers,
 * the curl-multi sender on the event loop, and delivery receipts.
 *
 * Flow (contract §6):
 *
 *   pipeline txn:  fw_sms_on_event() / fw_sms_enqueue_alert()
 *                    render the kind's template, check the phone, and
 *                    INSERT OR IGNORE one outbox row keyed by out_id
 *   after commit:  fw_sms_kick() -> the sender (on the libevent loop)
 *                    picks due rows, marks them `sending` and COMMITS,
 *                    then POSTs them through one curl multi handle
 *   response:      sent (+message_id) | queued again with backoff
 *                    (429/5xx/timeout/refused) | per-number hold
 *                    (THROTTLED) | failed (other 4xx / other code)
 *                    | expired (sms.expiry after queued_at)
 *   receipts:      POST /sms/dlr moves sent -> delivered/undelivered
 *
 * out_id is derived from the cause ("pay:<run_id>:<emp_id>",
 * "rmb:<reimb_id>", "sub:<payout_id>", alerts: the caller's), so a
 * redelivered message, or a payroll run re-sent under a new event id,
 * never queues a second SMS.
 *
 * Carriers (sms.carrier): `log` (default; writes the SMS to the log with
 * the phone masked and marks it sent), `generic-json` (§6 reference
 * protocol; idempotent by out_id, so a row found `sending` after a crash is
 * simply sent again), `aliyun` (dysmsapi SendSms, RPC signature v1; not
 * idempotent, so a row found `sending` after a crash, or whose request
 * timed out after it was sent, is marked `failed` with the error
 * "in flight ...; not resent (carrier not idempotent)" rather than risk a
 * duplicate; a later SmsReport receipt still moves it to delivered).
 *
 * aliyun renders remotely: register each kind's template at Aliyun with
 * the same variable names as etc/templates/<kind>.txt (TemplateParam holds
 * the placeholders that template uses) and set sms.aliyun_template_<kind>.
 *
 * Receipts (POST /sms/dlr): generic-json posts one JSON object with
 * "Authorization: Bearer <sms.dlr_secret>"; Aliyun's SmsReport push (a JSON
 * array, answered {"code":0}) cannot set headers, so the secret may also be
 * given as ?secret= in the callback URL.  No secret configured: 401 always.
 * A receipt moves any not-yet-final row to delivered/undelivered (it proves
 * the carrier took it); delivered/undelivered never change again.
 *
 * Quiet hours (sms.quiet_hours, business zone) hold every row except
 * urgent ones (red alerts).  Rate: sms.rate messages per second overall
 * (paced by a token bucket, capped by a sliding
 * 1 s window; 0 = unlimited), and at most one SMS per number per
 * sms.per_number_interval.
 *
 * Content longer than 500 characters (signature included): the payroll
 * deduction detail is replaced by its count and total; an alert's message
 * is cut with "…"; anything still too long is queued as `failed` with the
 * reason.  Segments: <= 70 characters is one, else ceil(n / 67).
 *
 * Everything runs on the loop thread.  With base == NULL (replay, CLI) the
 * module only queues and reads: nothing is ever sent.
 */
#ifndef FW_SMS_H
#define FW_SMS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/config.h"
#include "daemon/event.h"
#include "daemon/http.h"
#include "daemon/store.h"

struct event_base;
typedef struct fw_sms fw_sms;

extern const char fw_sms_schema[]; /* migration 5 (daemon/schema.c) */

extern const fw_config_key fw_sms_config_keys[];
extern const int fw_sms_config_nkeys;

/* Load templates and, when base != NULL, reconcile rows left `sending` by a
 * crash and start the sender.  NULL with err on failure (bad template,
 * carrier config). */
fw_sms *fw_sms_new(fw_store *st, const fw_config *cfg, struct event_base *base, char *err,
                   int errlen);
void fw_sms_free(fw_sms *s);

/* Queue the staff SMS an event causes, inside the caller's transaction.
 * payroll: one per line whose arithmetic holds; reimburse; subsidy; other
 * kinds: nothing.  A bad phone queues a `failed` row with the reason.
 * Returns 0, or -1 on a store error (the caller rolls back). */
int fw_sms_on_event(fw_sms *s, const fw_event *ev);
/* An alert SMS to one supervisor.  `alert` is the §4 alert object; urgent
 * (red) bypasses quiet hours.  0 or -1. */
int fw_sms_enqueue_alert(fw_sms *s, const char *out_id, const char *phone, const char *name,
                         const json_t *alert, int urgent);

/* After commit: let the sender look for due rows (cheap; coalesced). */
void fw_sms_kick(fw_sms *s);
/* SIGHUP: reload templates; the old set stays on error. */
int fw_sms_reload_templates(fw_sms *s, char *err, int errlen);
/* GET /api/sms (viewer), POST /sms/dlr (checks sms.dlr_secret itself). */
void fw_sms_register_http(fw_sms *s, fw_http *h);
/* argv[0] == "sms": `sms list [--status S] [--kind K] [--phone-tail NNNN]
 * [--limit N] [--json]`.  Exit status 0, or 2 on bad usage. */
int fw_sms_cli_main(fw_sms *s, int argc, char **argv);
/* SIGTERM: start no new sends, run the loop until the in-flight requests
 * finish or timeout_ms passes; unanswered rows stay `sending` (reconciled
 * at the next start), the rest stay queued. */
void fw_sms_shutdown(fw_sms *s, int timeout_ms);

/* The shared HTTP client: curl multi on the loop (alerts webhooks use it).
 * status -1 = transport error or timeout (error says which).  `done` is
 * always called exactly once, also when the module is freed first
 * (status -1, error "cancelled").  0, or -1 when it could not start
 * (offline module, bad arguments): then done is not called. */
typedef void (*fw_httpc_done_fn)(void *ud, long status, const char *body, const char *error);
int fw_sms_http_post(fw_sms *s, const char *url, const char *const *headers, const char *body,
                     long timeout_ms, fw_httpc_done_fn done, void *ud);

/* ---- exposed for tests and tools ---- */

/* Mainland mobile: 11 digits, 1[3-9]xxxxxxxxx.  1 if valid, else 0 with a
 * static reason. */
int fw_sms_phone_ok(const char *phone, const char **reason);
/* UTF-8 code points of text; segments as carriers bill them. */
int fw_sms_text_chars(const char *text);
int fw_sms_segments(int chars);

/* Alibaba Cloud RPC signature v1.  percent-encode per their rules
 * (RFC 3986 unreserved kept, space %20, '*' %2A, '~' kept); malloc'd. */
char *fw_sms_aliyun_encode(const char *s);
typedef struct fw_sms_kv {
    const char *key;
    const char *value;
} fw_sms_kv;
/* StringToSign = METHOD + "&%2F&" + encode(canonical sorted query);
 * Signature = base64(HMAC-SHA1(secret + "&", StringToSign)).  Fills sig
 * (>= 32 bytes) and, if non-NULL, the malloc'd string_to_sign and canonical
 * query.  0 or -1. */
int fw_sms_aliyun_sign(const char *method, const fw_sms_kv *params, int n, const char *secret,
                       char *sig, size_t siglen, char **string_to_sign, char **canonical);

/* Counts by status (tests, CLI): rows with this status (NULL: all). */
int64_t fw_sms_count(fw_sms *s, const char *status);

#endif
