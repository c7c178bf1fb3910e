/*
 * ledger.h - the budget indicator ledger (预算指标账) and payment history.
 *
 * Every payment draws on a budget indicator.  The ledger keeps, per
 * indicator, allocated / frozen / paid and their difference, available:
 *
 *     allocated - frozen - paid = available
 *
 * and an append-only list of entries, each naming its cause (doc_no,
 * voucher, payroll run, transfer pair) and the event id that made it.
 * Vouchers are two-phase transfers: `created` opens a pending reservation
 * (frozen), `paid` posts it, `cancelled` voids it, `returned` voids it
 * (before payment) or refunds it (after).  Indicator operations (allocate,
 * adjust, transfer) never make available negative: a reduction below what
 * is frozen plus paid is refused, nothing changes, and the refusal is
 * recorded.  A voucher over the balance is still frozen in full (it happened
 * upstream): available goes negative and the indicator reports overdrawn.
 *
 * The ledger also owns the payment history that rules query: vouchers and
 * their states, payroll lines, reimbursements and subsidies, with indexes so
 * that windowed counts and totals never scan.
 *
 * All functions run on the loop thread inside the caller's transaction
 * (fw_store_begin/commit); the ledger never commits by itself.
 */
#ifndef FW_LEDGER_H
#define FW_LEDGER_H

#include <jansson.h>
#include <stdint.h>

#include "daemon/event.h"
#include "daemon/store.h"

typedef struct fw_ledger fw_ledger;

extern const char fw_ledger_schema[];
/* The ledger's migrations in order (fw_ledger_schema first): what the
 * daemon's store applies of them, interleaved there with the other
 * modules' (daemon/schema.c).  A store that holds the ledger alone (the
 * rule-test runner, unit tests, benchmarks) opens with this list, so the
 * ledger has one schema to write and read. */
extern const fw_migration fw_ledger_migrations[];
extern const int fw_ledger_nmigrations;

/* Indicator flags (bitmask). */
enum {
    FW_FLAG_SALARY = 1 << 0,
    FW_FLAG_SANGONG = 1 << 1,
    FW_FLAG_DIRECT = 1 << 2,
    FW_FLAG_SUBSIDY = 1 << 3,
    FW_FLAG_UNION = 1 << 4,
};
/* "salary" -> FW_FLAG_SALARY; 0 if unknown. */
int fw_flag_from_name(const char *name);

typedef struct fw_indicator {
    char indicator_id[64];
    char unit_code[32];
    int year;
    char func_class[16];
    char econ_class[16];
    char fund_type[16];
    char fund_source[64];
    char project_code[64];
    int flags;
    int64_t allocated, frozen, paid, available; /* fen */
} fw_indicator;

/* What applying an event did (for logs, metrics and tests). */
typedef enum {
    FW_LEDGER_APPLIED = 0, /* balances changed as the contract says */
    FW_LEDGER_NOOP,        /* nothing to do (e.g. signed/sent, reimburse) */
    FW_LEDGER_REFUSED,     /* indicator op refused (reduction below frozen+paid) */
    FW_LEDGER_FLOW_ERROR,  /* out of order / unknown voucher: kept, no balance change */
    FW_LEDGER_OVERDRAWN,   /* applied, and the indicator is now below zero */
} fw_ledger_outcome;

typedef struct fw_ledger_result {
    fw_ledger_outcome outcome;
    char reason[160]; /* for REFUSED / FLOW_ERROR */
} fw_ledger_result;

fw_ledger *fw_ledger_new(fw_store *st);
void fw_ledger_free(fw_ledger *l);

/* Apply one decoded event.  Returns 0 (see res->outcome), -1 on a store
 * error (the caller rolls back the batch). */
int fw_ledger_apply(fw_ledger *l, const fw_event *ev, fw_ledger_result *res);

/* ---- reads (rules, pre-check, API, CLI) ---- */

/* 1 found, 0 unknown, -1 error. */
int fw_ledger_get_indicator(fw_ledger *l, const char *indicator_id, fw_indicator *out);

/* The voucher as stored: its created fields (amount as integer fen),
 * `state` (created|signed|sent|paid|returned|cancelled), `events` (list of
 * {event, occurred_at, id, outcome}: every event received for it, also the
 * ones the flow refused, outcome "flow_error"), created_at and, once
 * reached, signed_at / sent_at / paid_at / returned_at / cancelled_at (unix
 * seconds), `reservation` (pending|posted|voided|refunded, or null when
 * nothing was frozen: unknown indicator).  New reference or NULL if the
 * voucher was never created. */
json_t *fw_ledger_voucher_json(fw_ledger *l, const char *voucher_no);
/* The same in two parts (ctx.voucher asks for `events` only when a rule
 * reads them): the voucher without `events`, and *last_event = the number
 * (voucher_events.n) of its last event, 0 if none; then its events up to
 * that one (NULL on error).  Events are only ever appended, with growing
 * numbers: the second call gives the events as they were at the first,
 * even after more were added. */
json_t *fw_ledger_voucher_row_json(fw_ledger *l, const char *voucher_no, int64_t *last_event);
json_t *fw_ledger_voucher_events_json(fw_ledger *l, const char *voucher_no, int64_t last_event);
/* The voucher without its body: amount, state, the *_at times and
 * reservation from the columns, *last_event as above (from the voucher
 * cache's record when one is attached to the connection: no SQL).  Then
 * fw_ledger_voucher_add_stored_body adds the stored body's other fields
 * (as fw_ledger_voucher_row_json has them; 0, or -1 if the voucher is gone
 * or its body does not parse).  ctx.voucher reads and parses the body only
 * when a rule reads a field the columns do not hold (a voucher's body
 * never changes once stored). */
json_t *fw_ledger_voucher_columns_json(fw_ledger *l, const char *voucher_no, int64_t *last_event);
int fw_ledger_voucher_add_stored_body(fw_ledger *l, json_t *v, const char *voucher_no);

/* What the ledger and ctx.voucher need of a voucher, as one record: the
 * columns of its row, its reservation's state and the number of its last
 * event.  Text longer than a field is cut (truncated = 1; the ledger used
 * such cut values before, ctx.voucher then reads the row by SQL). */
enum { FW_VAT_CREATED, FW_VAT_SIGNED, FW_VAT_SENT, FW_VAT_PAID, FW_VAT_RETURNED, FW_VAT_CANCELLED };
typedef struct fw_voucher_rec {
    char state[16];
    char indicator_id[128];
    char reservation[16]; /* "" when the voucher has none (has_reservation 0) */
    int has_reservation;
    int truncated;
    unsigned has_at; /* bit FW_VAT_x: at[x] is not NULL */
    int64_t amount;
    int64_t at[6];      /* created_at .. cancelled_at, unix s */
    int64_t last_event; /* voucher_events.n of its last event, 0 if none */
    int64_t rowid;      /* vouchers.n */
} fw_voucher_rec;
/* By SQL: 1 found (*out filled), 0 unknown, -1 store error. */
int fw_ledger_voucher_rec(fw_ledger *l, const char *voucher_no, fw_voucher_rec *out);

/* Spend history (rules.md "Spend": created and not later cancelled or
 * returned, at the created time).  Any criterion may be NULL/0 = any. */
typedef struct fw_history_query {
    const char *unit_code;
    const char *payee_account;
    const char *econ_class;
    const char *const *econ_classes; /* NULL-terminated set, or NULL */
    const char *settle_method;
    const char *payee_type;
    int64_t amount; /* exact amount match when has_amount */
    int has_amount;
    int64_t amount_below;        /* only vouchers with amount < this, when > 0 */
    int64_t since, until;        /* created_at in [since, until] (unix s) */
    const char *exclude_voucher; /* leave this voucher out */
    const char *state;           /* NULL: spend; "returned": returned vouchers
                                    (by returned time); "paid": paid (by paid time) */
    const char *indicator_id;
} fw_history_query;

typedef struct fw_history_result {
    int64_t count;
    int64_t total; /* fen */
} fw_history_result;

int fw_ledger_history(fw_ledger *l, const fw_history_query *q, fw_history_result *r);

/* Sum of `allocated` over the unit's indicators of `year` having flag. */
int fw_ledger_allocated_by_flag(fw_ledger *l, const char *unit_code, int year, int flag,
                                int64_t *allocated);

/* Earlier payroll lines of a person (any unit), newest period first:
 * [{run_id, unit_code, period, emp_id, name, account, gross, net}], only
 * periods < before_period ("YYYY-MM"; NULL = all).  New reference. */
json_t *fw_ledger_employee_json(fw_ledger *l, const char *id_no, const char *before_period);
/* Stored lines of the period whose ID number or account matches (either
 * may be NULL): [{run_id, unit_code, emp_id, id_no, account}], in arrival
 * order.  All stored runs, including earlier parts of the caller's own run
 * (the caller tells them apart by run_id).  New reference. */
json_t *fw_ledger_period_lines_json(fw_ledger *l, const char *period, const char *id_no,
                                    const char *account);
/* Payroll run progress before this part is applied: parts already stored
 * (distinct part numbers) and their total net (fen). */
int fw_ledger_run_progress(fw_ledger *l, const char *run_id, int *parts_seen, int64_t *net_so_far);

/* Earlier subsidies of a person/kind in a calendar month: count. */
int fw_ledger_subsidy_count(fw_ledger *l, const char *emp_id, const char *unit_code,
                            const char *kind, int year, int month, const char *exclude_payout,
                            int64_t *count);

/* Vouchers in state `sent` whose sent time is <= before (for stuck_voucher):
 * [{voucher_no, unit_code, sent_at, amount}].  New reference. */
json_t *fw_ledger_vouchers_sent_before(fw_ledger *l, int64_t before);
/* Indicators with a project_code: [{indicator_id, unit_code, allocated}]. */
json_t *fw_ledger_project_indicators(fw_ledger *l);

/* ---- people-facing views (API and CLI), contract §8 shapes ----
 * Money as yuan strings, times as RFC 3339 in the business zone; NULL when
 * the indicator / voucher is unknown (404).
 * - indicator: indicator_id, unit_code, year, func_class, econ_class,
 *   fund_type, fund_source, project_code, flags ["salary", ...], allocated,
 *   frozen, paid, available, overdrawn (bool), created_doc, created_at.
 * - entries: {indicator_id, items: [{seq, kind, amount, allocated, frozen,
 *   paid, available (after the entry), cause {type, id}, counterparty?,
 *   pair_id?, event_id, occurred_at}]}: the latest `limit` entries (all when
 *   limit <= 0), oldest first.
 * - voucher: the created fields, state, known (false: only events for a
 *   voucher never created), reservation {indicator_id, amount, state, ...}
 *   or null, events [{event, id, occurred_at, outcome, reason?}].
 * - trace: {voucher_no, voucher (summary), events, reservation, entries (the
 *   voucher's own), indicator: the indicator view plus funding [{seq, kind
 *   allocate|adjust|transfer_in|transfer_out, doc_no, amount, event_id,
 *   occurred_at, from|to, source (transfer_in: the source indicator's own
 *   trace, or {indicator_id, see_above|depth_limit|limit_reached})}] (the
 *   latest 200 documents per indicator) and funding_truncated}. */

json_t *fw_ledger_indicator_view(fw_ledger *l,
                                 const char *indicator_id); /* money as yuan strings */
json_t *fw_ledger_entries_view(fw_ledger *l, const char *indicator_id, int limit);
json_t *fw_ledger_voucher_view(fw_ledger *l, const char *voucher_no);
json_t *fw_ledger_trace_view(fw_ledger *l, const char *voucher_no);

/* ---- additions (ledger module) ---- */

/* "applied", "noop", "refused", "flow_error", "overdrawn". */
const char *fw_ledger_outcome_name(fw_ledger_outcome o);
/* FW_FLAG_SALARY -> "salary"; NULL for anything but a single known flag. */
const char *fw_flag_name(int flag);

/* Check every indicator: allocated, frozen, paid >= 0; frozen equals the
 * sum of its pending reservations; the entries' deltas sum to the balances
 * and each entry's balances follow from the previous one; reservations
 * agree with their vouchers' states; unit_flag_totals equals a recount.
 * 0 when all hold, else -1 with the first violation in err.  (Tests, and
 * `fundwatch ledger check` if ever wanted; it scans everything.) */
int fw_ledger_check_invariants(fw_ledger *l, char *err, int errlen);

/* `fundwatch ledger show INDICATOR_ID [--json] [--limit N]` and
 * `fundwatch ledger trace VOUCHER_NO [--json]`: argv[0] is "show" or
 * "trace" (main.c has opened config and store and removed -c).  Human
 * tables on stdout, or the view JSON with --json (show: the shape of
 * GET /api/indicators/{id}; trace: that of GET /api/vouchers/{no}/trace).
 * Returns the exit status: 0 found, 1 not found (stderr names the id),
 * 2 bad usage. */
int fw_ledger_cli_main(fw_ledger *l, int argc, char **argv);

#endif
