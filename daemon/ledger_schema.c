/*
 * ledger_schema.c - the ledger's tables (migration "ledger").
 *
 * Balances live on `indicators` (allocated, frozen, paid in fen; available is
 * always computed as allocated - frozen - paid).  Every balance change is one
 * append-only row of `ledger_entries` carrying its deltas, the balances after
 * it, and its cause, so the balances can be re-derived from the entries.
 * Each voucher's two-phase state is one row of `reservations`
 * (pending -> posted -> refunded, or pending -> voided).  `unit_flag_totals`
 * is maintained with every allocated change so that per-flag totals are a
 * primary-key lookup.  The history tables (vouchers, payroll, reimbursements,
 * subsidies) carry the indexes the rules' windowed queries use.
 *
 * No column holds the wall clock: replaying the same events gives the same
 * rows.
 */
#include "daemon/ledger.h"
#include "daemon/schema.h"

const char fw_ledger_schema[] =
    "CREATE TABLE indicators ("
    "  indicator_id TEXT PRIMARY KEY,"
    "  unit_code TEXT NOT NULL,"
    "  year INTEGER NOT NULL,"
    "  func_class TEXT NOT NULL,"
    "  econ_class TEXT NOT NULL,"
    "  fund_type TEXT NOT NULL,"
    "  fund_source TEXT NOT NULL,"
    "  project_code TEXT NOT NULL,"
    "  flags INTEGER NOT NULL,"
    "  allocated INTEGER NOT NULL,"
    "  frozen INTEGER NOT NULL,"
    "  paid INTEGER NOT NULL,"
    "  created_doc TEXT NOT NULL,"
    "  created_event TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  CHECK (allocated >= 0 AND frozen >= 0 AND paid >= 0)"
    ") STRICT, WITHOUT ROWID;"
    "CREATE INDEX indicators_unit_year ON indicators(unit_code, year);"
    "CREATE INDEX indicators_project ON indicators(project_code) WHERE project_code <> '';"

    "CREATE TABLE unit_flag_totals ("
    "  unit_code TEXT NOT NULL,"
    "  year INTEGER NOT NULL,"
    "  flag INTEGER NOT NULL,"
    "  allocated INTEGER NOT NULL,"
    "  PRIMARY KEY (unit_code, year, flag)"
    ") STRICT, WITHOUT ROWID;"

    /* kind: allocate adjust transfer_in transfer_out freeze post void refund
     * payroll refused; cause_type: doc voucher payroll transfer. */
    "CREATE TABLE ledger_entries ("
    "  seq INTEGER PRIMARY KEY,"
    "  indicator_id TEXT NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  amount INTEGER NOT NULL,"
    "  d_allocated INTEGER NOT NULL,"
    "  d_frozen INTEGER NOT NULL,"
    "  d_paid INTEGER NOT NULL,"
    "  allocated INTEGER NOT NULL,"
    "  frozen INTEGER NOT NULL,"
    "  paid INTEGER NOT NULL,"
    "  cause_type TEXT NOT NULL,"
    "  cause_id TEXT NOT NULL,"
    "  counterparty TEXT,"
    "  pair_id TEXT,"
    "  event_id TEXT NOT NULL,"
    "  occurred_at INTEGER NOT NULL"
    ") STRICT;"
    "CREATE INDEX ledger_entries_indicator ON ledger_entries(indicator_id, seq);"
    "CREATE INDEX ledger_entries_funding ON ledger_entries(indicator_id, cause_type, seq);"
    "CREATE INDEX ledger_entries_cause ON ledger_entries(cause_type, cause_id);"

    /* Refused indicator operations: indicator_id names the indicator that
     * would have gone below frozen+paid (the source of a transfer). */
    "CREATE TABLE refusals ("
    "  n INTEGER PRIMARY KEY,"
    "  event_id TEXT NOT NULL,"
    "  op TEXT NOT NULL,"
    "  indicator_id TEXT NOT NULL,"
    "  doc_no TEXT NOT NULL,"
    "  amount INTEGER NOT NULL,"
    "  reason TEXT NOT NULL,"
    "  occurred_at INTEGER NOT NULL"
    ") STRICT;"
    "CREATE INDEX refusals_indicator ON refusals(indicator_id, n);"

    "CREATE TABLE vouchers ("
    "  n INTEGER PRIMARY KEY,"
    "  voucher_no TEXT NOT NULL UNIQUE,"
    "  unit_code TEXT NOT NULL,"
    "  indicator_id TEXT NOT NULL,"
    "  year INTEGER,"
    "  func_class TEXT NOT NULL,"
    "  econ_class TEXT NOT NULL,"
    "  pay_method TEXT NOT NULL,"
    "  settle_method TEXT NOT NULL,"
    "  payee_type TEXT NOT NULL,"
    "  payee_name TEXT NOT NULL,"
    "  payee_account TEXT NOT NULL,"
    "  amount INTEGER NOT NULL,"
    "  state TEXT NOT NULL,"
    "  spend INTEGER NOT NULL,"
    "  created_event TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  signed_at INTEGER,"
    "  sent_at INTEGER,"
    "  paid_at INTEGER,"
    "  returned_at INTEGER,"
    "  cancelled_at INTEGER,"
    "  body TEXT NOT NULL"
    ") STRICT;"
    "CREATE INDEX vouchers_unit_created ON vouchers(unit_code, created_at);"
    "CREATE INDEX vouchers_payee_created ON vouchers(payee_account, created_at);"
    "CREATE INDEX vouchers_indicator_created ON vouchers(indicator_id, created_at);"
    "CREATE INDEX vouchers_created ON vouchers(created_at);"
    /* Covering indexes for the unit-wide windows: cash per month
     * (cash_over_limit) and 三公 classes per year (sangong_budget) would
     * otherwise visit every voucher of the unit in the window. */
    "CREATE INDEX vouchers_unit_settle_created ON vouchers(unit_code, settle_method, created_at,"
    "  spend, amount);"
    "CREATE INDEX vouchers_unit_econ_created ON vouchers(unit_code, econ_class, created_at, spend,"
    "  amount);"
    "CREATE INDEX vouchers_unit_returned ON vouchers(unit_code, returned_at)"
    "  WHERE returned_at IS NOT NULL;"
    "CREATE INDEX vouchers_payee_returned ON vouchers(payee_account, returned_at)"
    "  WHERE returned_at IS NOT NULL;"
    "CREATE INDEX vouchers_returned ON vouchers(returned_at) WHERE returned_at IS NOT NULL;"
    "CREATE INDEX vouchers_indicator_paid ON vouchers(indicator_id, paid_at)"
    "  WHERE paid_at IS NOT NULL;"
    "CREATE INDEX vouchers_unit_paid ON vouchers(unit_code, paid_at) WHERE paid_at IS NOT NULL;"
    "CREATE INDEX vouchers_paid ON vouchers(paid_at) WHERE paid_at IS NOT NULL;"
    "CREATE INDEX vouchers_sent ON vouchers(sent_at) WHERE state = 'sent';"

    /* One row per voucher whose amount was frozen on an indicator. */
    "CREATE TABLE reservations ("
    "  voucher_no TEXT PRIMARY KEY,"
    "  indicator_id TEXT NOT NULL,"
    "  amount INTEGER NOT NULL,"
    "  state TEXT NOT NULL," /* pending | posted | voided | refunded */
    "  created_event TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  resolved_event TEXT,"
    "  resolved_at INTEGER"
    ") STRICT, WITHOUT ROWID;"
    "CREATE INDEX reservations_indicator ON reservations(indicator_id, state);"

    /* Every voucher event as received, also the ones the flow refused. */
    "CREATE TABLE voucher_events ("
    "  n INTEGER PRIMARY KEY,"
    "  event_id TEXT NOT NULL,"
    "  voucher_no TEXT NOT NULL,"
    "  unit_code TEXT NOT NULL,"
    "  event TEXT NOT NULL,"
    "  occurred_at INTEGER NOT NULL,"
    "  outcome TEXT NOT NULL,"
    "  reason TEXT NOT NULL,"
    "  body TEXT NOT NULL"
    ") STRICT;"
    "CREATE INDEX voucher_events_voucher ON voucher_events(voucher_no, n);"

    "CREATE TABLE payroll_runs ("
    "  run_id TEXT PRIMARY KEY,"
    "  unit_code TEXT NOT NULL,"
    "  period TEXT NOT NULL,"
    "  pay_date TEXT NOT NULL,"
    "  indicator_id TEXT NOT NULL,"
    "  parts INTEGER NOT NULL,"
    "  parts_seen INTEGER NOT NULL,"
    "  gross INTEGER NOT NULL,"
    "  net INTEGER NOT NULL,"
    "  complete INTEGER NOT NULL,"
    "  debited INTEGER NOT NULL," /* 1 when the net was paid from the indicator */
    "  completed_event TEXT,"
    "  first_at INTEGER NOT NULL"
    ") STRICT, WITHOUT ROWID;"
    "CREATE TABLE payroll_parts ("
    "  run_id TEXT NOT NULL,"
    "  part INTEGER NOT NULL,"
    "  event_id TEXT NOT NULL,"
    "  nlines INTEGER NOT NULL,"
    "  gross INTEGER NOT NULL,"
    "  net INTEGER NOT NULL,"
    "  occurred_at INTEGER NOT NULL,"
    "  PRIMARY KEY (run_id, part)"
    ") STRICT, WITHOUT ROWID;"
    "CREATE TABLE payroll_lines ("
    "  n INTEGER PRIMARY KEY,"
    "  run_id TEXT NOT NULL,"
    "  part INTEGER NOT NULL,"
    "  line_no INTEGER NOT NULL,"
    "  unit_code TEXT NOT NULL,"
    "  period TEXT NOT NULL,"
    "  emp_id TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  id_no TEXT NOT NULL,"
    "  account TEXT NOT NULL,"
    "  gross INTEGER NOT NULL,"
    "  net INTEGER NOT NULL"
    ") STRICT;"
    "CREATE INDEX payroll_lines_person ON payroll_lines(id_no, period);"
    "CREATE INDEX payroll_lines_account ON payroll_lines(account, period);"
    "CREATE INDEX payroll_lines_run ON payroll_lines(run_id, part);"

    "CREATE TABLE reimbursements ("
    "  reimb_id TEXT PRIMARY KEY,"
    "  event_id TEXT NOT NULL,"
    "  unit_code TEXT NOT NULL,"
    "  emp_id TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  amount INTEGER NOT NULL,"
    "  card_last4 TEXT NOT NULL,"
    "  spent_on TEXT NOT NULL,"
    "  paid_at INTEGER,"
    "  summary TEXT NOT NULL,"
    "  occurred_at INTEGER NOT NULL"
    ") STRICT, WITHOUT ROWID;"
    "CREATE INDEX reimbursements_person ON reimbursements(emp_id, occurred_at);"

    "CREATE TABLE subsidies ("
    "  payout_id TEXT PRIMARY KEY,"
    "  event_id TEXT NOT NULL,"
    "  unit_code TEXT NOT NULL,"
    "  emp_id TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  amount INTEGER NOT NULL,"
    "  paid_at INTEGER,"
    "  pay_year INTEGER NOT NULL," /* business-zone month of paid_at (else occurred_at) */
    "  pay_month INTEGER NOT NULL,"
    "  occurred_at INTEGER NOT NULL"
    ") STRICT, WITHOUT ROWID;"
    "CREATE INDEX subsidies_person ON subsidies(emp_id, kind, pay_year, pay_month);";

/* Migration "ledger_lean": indexes no query of the daemon uses.  Every
 * secondary index costs each insert (or state change) a B-tree descent and
 * a dirty page that the commit writes to the WAL, and the ones keyed by unit
 * or indicator first spread a batch's inserts over dozens of pages.  The
 * rule pack's windows use: vouchers_unit_settle_created (cash_over_limit),
 * vouchers_unit_econ_created (sangong_budget), vouchers_payee_created
 * (duplicate_payment, split_payment), vouchers_payee_returned
 * (returned_repeatedly), vouchers_indicator_paid (year_end_rush),
 * vouchers_sent (stuck_voucher); the views and the trace use voucher_no and
 * the ledger_entries indexes.  A window by unit, indicator or time alone
 * (no shipped rule asks one) is still answered through the unit's or the
 * indicator's other indexes. */
const char fw_ledger_lean_schema[] = "DROP INDEX vouchers_unit_created;"
                                     "DROP INDEX vouchers_indicator_created;"
                                     "DROP INDEX vouchers_created;"
                                     "DROP INDEX vouchers_unit_returned;"
                                     "DROP INDEX vouchers_returned;"
                                     "DROP INDEX vouchers_unit_paid;"
                                     "DROP INDEX vouchers_paid;";

/* Migration "ledger_write_lean": two indexes that every voucher event wrote
 * and only rare reads use.  An index keyed by indicator first takes each
 * batch's inserts on as many leaf pages as the batch has indicators, and
 * the commit writes every one of those pages to the WAL (and a checkpoint
 * copies it again): with reservations_indicator and ledger_entries_funding,
 * a bench_intake batch dirtied about 100 pages each.
 * - reservations_indicator (indicator_id, state): only
 *   fw_ledger_check_invariants used it, and it now sums reservations per
 *   indicator in one scan.
 * - ledger_entries_funding keeps its name and columns (trace_funding asks
 *   for it by name) but holds only the funding entries it is read for
 *   (cause_type 'doc' or 'transfer'); a voucher's freeze, post, void or
 *   refund entry no longer goes into it.  The OR form lets SQLite see that
 *   `cause_type = 'doc'` (or 'transfer') in the query implies the index's
 *   WHERE. */
const char fw_ledger_write_lean_schema[] =
    "DROP INDEX reservations_indicator;"
    "DROP INDEX ledger_entries_funding;"
    "CREATE INDEX ledger_entries_funding ON ledger_entries(indicator_id, cause_type, seq)"
    "  WHERE cause_type = 'doc' OR cause_type = 'transfer';";

/* Migration "ledger_bodies": a voucher's body (its created event as
 * stored, ~600 bytes) moves from its row to a table of its own, keyed by
 * the row's rowid.  Every later event of the voucher (signed, sent, paid,
 * returned, cancelled) UPDATEs its row, and SQLite rewrites the whole row
 * for it: in an experiment (Python's sqlite3, WAL, 60,000 rows with
 * 600-byte bodies, batches of 1,000) an UPDATE took 6.5 us with the body in
 * the row and 3.5 us without; and a page holds 4-5 such rows with their
 * bodies (so a batch's state changes dirtied as many pages), 20+ without.  The body is read only by
 * ctx.voucher (when a rule reads a field the columns lack) and the voucher view.  A store made with
 * the ledger schema alone (the rule-test runner's in-memory ledgers) keeps the body in the row:
 * fw_ledger_new() looks which it is. */
const char fw_ledger_bodies_schema[] =
    "CREATE TABLE voucher_bodies ("
    "  n INTEGER PRIMARY KEY," /* vouchers.n */
    "  body TEXT NOT NULL"
    ") STRICT;"
    "INSERT INTO voucher_bodies(n, body) SELECT n, body FROM vouchers;"
    "ALTER TABLE vouchers DROP COLUMN body;";

const fw_migration fw_ledger_migrations[] = {
    {"ledger", fw_ledger_schema},
    {"ledger_lean", fw_ledger_lean_schema},
    {"ledger_write_lean", fw_ledger_write_lean_schema},
    {"ledger_bodies", fw_ledger_bodies_schema},
};
const int fw_ledger_nmigrations =
    (int)(sizeof fw_ledger_migrations / sizeof fw_ledger_migrations[0]);
