/*
 * event.h - inbound messages: kinds, validation, the decoded form.
 *
 * The decoder takes a NATS subject and the raw body and either returns a
 * validated fw_event or an error naming the field and the reason
 * ("amount: must be a string of yuan").  Errors go to the dead-letter subject
 * fundwatch.dlq.<kind> with the header "Fundwatch-Error: <field>: <reason>".
 *
 * The decoded body is a jansson object in which every money field has been
 * replaced by a JSON integer of fen (contract §1), so that the ledger, the
 * rules and the SMS templates all see exact integers:
 *   voucher:   amount (when present)
 *   indicator: amount (may be negative for adjust)
 *   payroll:   lines[].earnings[].amount, lines[].deductions[].amount,
 *              lines[].gross, lines[].net
 *   reimburse / subsidy: amount
 * Every other field keeps its JSON type.  `occurred_at` stays a string; its
 * parsed instant is ev->occurred_at.
 *
 * The type string names the rule dispatch key of contract §5:
 *   "voucher.<event>", "indicator.<op>", "payroll.run", "reimburse",
 *   "subsidy".  (payroll.line is dispatched per line by the engine.)
 */
#ifndef FW_EVENT_H
#define FW_EVENT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define FW_EVENT_MAX_BYTES (4 * 1024 * 1024) /* larger bodies are malformed */

typedef enum {
    FW_KIND_VOUCHER = 0,
    FW_KIND_INDICATOR,
    FW_KIND_PAYROLL,
    FW_KIND_REIMBURSE,
    FW_KIND_SUBSIDY,
    FW_KIND_UNKNOWN,
    FW_KIND__COUNT
} fw_kind;

typedef struct fw_event {
    fw_kind kind;
    char type[32];         /* "voucher.created", "indicator.adjust", "payroll.run", ... */
    char subject[256];     /* the NATS subject it came on */
    const char *id;        /* body.id (borrowed from body) */
    const char *unit_code; /* body.unit_code (borrowed) */
    int64_t occurred_at;   /* unix seconds */
    json_t *body;          /* owned; money fields as integer fen */
} fw_event;

typedef struct fw_decode_error {
    char field[64];   /* "amount", "lines[3].net", "body" ... */
    char reason[160]; /* "must be a string of yuan" */
} fw_decode_error;

/* "voucher", "indicator", ... "unknown" */
const char *fw_kind_name(fw_kind k);
/* Kind from a subject "fiscal.<kind>.<unit>"; FW_KIND_UNKNOWN otherwise. */
fw_kind fw_kind_from_subject(const char *subject);

/* Validate and decode.  On success returns 0 and fills *ev (release with
 * fw_event_clear).  On failure returns -1, fills *err, and *ev is cleared.
 * The kind for the DLQ subject is fw_kind_from_subject(subject). */
int fw_event_decode(const char *subject, const char *data, size_t len, fw_event *ev,
                    fw_decode_error *err);

/* Decode a pre-payment check request (contract §3): a voucher `created`
 * body without `id` and without a subject (unit from the body). */
int fw_event_decode_check(const char *data, size_t len, fw_event *ev, fw_decode_error *err);

void fw_event_clear(fw_event *ev);

/* A payroll line's arithmetic: gross == sum(earnings) and
 * net == gross - sum(deductions).  `line` is a decoded line (fen ints).
 * Returns 1 when both hold. */
int fw_payroll_line_arith_ok(const json_t *line);

#endif
