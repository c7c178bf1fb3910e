/*
 * voucher_cache.h - an in-memory copy of the vouchers' (unit, payee
 * account) history, answering the rules' ctx.history queries of the form
 * {unit=, payee_account=, [amount= | amount_below=], since=, until=,
 * exclude_voucher=} (spend, no state) without SQL.  duplicate_payment and
 * split_payment ask two such queries per voucher; the vouchers table has no
 * (unit, payee) index, so SQLite answered each by walking one of the two
 * single-column indexes and fetching rows (~5 us).
 *
 * Exactly consistent with SQLite, whatever the transaction does:
 *   - The cache is loaded from the table (one scan: 1.8 s and 118 MiB of
 *     heap for 1,000,000 vouchers) when it is made and after each
 *     invalidation, lazily (126 MiB with the voucher numbers' set below).
 *   - An update hook records the rowid of every row of `vouchers` written on
 *     the connection; before answering, the cache re-reads those rows from
 *     SQLite (so it sees what the connection sees, committed or not),
 *     except a new voucher's row, whose values the ledger hands over right
 *     after its INSERT (fw_vcache_voucher_inserted).
 *   - Any ROLLBACK (of the transaction or to a savepoint, seen by a statement
 *     trace and by the rollback hook) invalidates the whole cache: rows the
 *     cache already re-read may have been undone.  Rollbacks are the
 *     failure paths (a poison message, a failed batch), so the reload is
 *     rare.  Writes by another connection (PRAGMA data_version) also
 *     invalidate it.
 * The hooks are the connection's update hook, trace callback and rollback
 * hook (SQLite keeps one of each per connection): nothing else in the daemon
 * uses them, and only one cache can be attached to a connection (a second
 * fw_vcache_new on it returns NULL and callers use SQL).
 *
 * Indicators (ctx.indicator: class_mismatch, over_balance, sangong_* ...
 * read the voucher's indicator on every voucher, ~3 us by SQL) are kept
 * too, row by row as they are asked (found or not), and exact the same
 * way, except that `indicators` is a WITHOUT ROWID table, for which SQLite
 * calls no update hook: the ledger calls fw_vcache_indicator_written() at
 * each of its writes to that table (daemon/ledger.c: the allocate INSERT and
 * the balances UPDATE, the only writes to it in the daemon), which drops
 * that entry, and fw_vcache_indicator_balances() after the UPDATE, which
 * puts the new balances back into it; any ROLLBACK (to a savepoint too) after such a write, and
 * another connection's commit, drop them all.  A new write path to
 * `indicators` must call it too (test_ledger_vcache compares with SQL).
 *
 * Voucher records (fw_voucher_rec: state, amount, indicator, the *_at
 * times, the reservation's state, the last event's number) are kept too,
 * by voucher number, found or not, as they are asked: the ledger reads one
 * for every voucher event (its flow and reservation) and ctx.voucher on
 * every voucher event (flow_out_of_order), each an SQL join of three
 * tables before.  They are written through: every ledger operation on a
 * voucher (daemon/ledger.c apply_voucher, the only writer of vouchers,
 * reservations and voucher_events in the daemon) reads the record, calls
 * fw_vcache_voucher_begin (which drops it), writes, and hands the record
 * as it left it to fw_vcache_voucher_put.  Exact the same way as the
 * indicators: any ROLLBACK (to a savepoint too) after such an operation
 * and another connection's commit drop them all, and so does a row of
 * vouchers or voucher_events written between operations (the update hook
 * counts them; reservations, WITHOUT ROWID, has no hook: a new write path
 * to it must go through an operation).  test_ledger_vcache compares them
 * with SQL.
 *
 * "No such voucher" is answered without SQL: every voucher.created asks for
 * its own number (ctx.voucher in the flow rules, the ledger's `created`),
 * which no record holds, and the vouchers table's unique index answered
 * (~6,600 instructions, cache misses at 1,000,000 rows).  With the history
 * entries the cache keeps a set of 32-bit fingerprints of every voucher
 * number they held since the last load: filled by the load's scan, by the
 * re-read of each row the update hook noted and by
 * fw_vcache_voucher_inserted, i.e. exact the same way as the history
 * (rebuilt with it after a ROLLBACK or another connection's commit).  A
 * number gone (a row deleted or renumbered) stays in it until the next
 * load, so the set holds at least the numbers in the table: a number whose
 * fingerprint is absent does not exist (fw_vcache_voucher returns 0,
 * fw_vcache_voucher_peek 0: the ledger's `created` then treats an INSERT
 * that finds the number taken as a bug and fails the batch), one present
 * goes on to the records and SQL (1,000,000 numbers: a false "maybe" for
 * ~0.02 % of new numbers).  Size: a power of two at most half full, 4 bytes
 * a slot (8 MiB for 1,000,000 vouchers), built in the load's scan (+~0.1 s
 * to its ~1.1-1.8 s, the slots prefetched).  Stores without a cache (the
 * check thread's connection, the rule tests' ledgers) ask SQL as before.
 *
 * Loop thread only (the hooks run inside SQLite calls made on that thread).
 */
#ifndef FW_VOUCHER_CACHE_H
#define FW_VOUCHER_CACHE_H

#include "daemon/ledger.h"

typedef struct fw_vcache fw_vcache;

/* Attach a cache to the ledger's connection and load it.  NULL when the
 * connection already has one (or on a store error). */
fw_vcache *fw_vcache_new(fw_ledger *l);
/* Detach (the hooks are removed) and free. */
void fw_vcache_free(fw_vcache *c);

/* Answer q when it has the cached form: 1 with *r filled, 0 when q is not
 * of that form (use fw_ledger_history), -1 on a store error. */
int fw_vcache_history(fw_vcache *c, const fw_history_query *q, fw_history_result *r);

/* How many times the cache was (re)loaded from the table (tests, metrics). */
long fw_vcache_loads(const fw_vcache *c);

/* fw_ledger_get_indicator() through the cache: 1 found (*out filled), 0 no
 * such indicator, -1 store error. */
int fw_vcache_indicator(fw_vcache *c, const char *indicator_id, fw_indicator *out);
/* The ledger is about to write the indicators row of that id (called before
 * the statement: dropping an entry is always safe).  No-op when no cache is
 * attached to the ledger's connection. */
void fw_vcache_indicator_written(fw_ledger *l, const char *indicator_id);
/* The ledger's balances UPDATE of that indicator (allocated, frozen, paid,
 * the only columns it sets) succeeded with these values: a valid entry
 * takes them instead of being read again (every voucher freezes its
 * indicator, which the next voucher on it reads). */
void fw_vcache_indicator_balances(fw_ledger *l, const fw_indicator *ind);
/* The ledger's INSERT of a new voucher (state 'created', spend 1) wrote
 * row `rowid` with these values: the cache takes them instead of re-reading
 * the row before its next answer (the next voucher of the same payee asks).
 * No-op unless the update hook's last noted row is that rowid. */
void fw_vcache_voucher_inserted(fw_ledger *l, int64_t rowid, const char *unit_code,
                                const char *payee_account, int64_t created_at, int64_t amount,
                                const char *voucher_no);
/* The ledger's state UPDATE of a voucher (set_voucher_state: state and one
 * *_at column, and spend 0 when `spend_cleared`) changed row `rowid`: of
 * what the history keeps, only spend may differ, so a held row takes it
 * instead of being re-read (every signed, sent and paid event updates its
 * voucher, and the next history answer re-read each such row: ~3 reads per
 * new voucher in bench_e2e).  No-op unless the update hook's last noted
 * row is that rowid. */
void fw_vcache_voucher_state_updated(fw_ledger *l, int64_t rowid, int spend_cleared);
/* The cache attached to the ledger's connection, or NULL (the ledger reads
 * an indicator through it before moving a reservation's amount). */
fw_vcache *fw_vcache_of(fw_ledger *l);
/* fw_ledger_voucher_rec() through the cache: 1 found (*out filled), 0 no
 * such voucher (from the fingerprints when no record is kept: no SQL), -1
 * store error.  May bring the history entries up to date first (re-read
 * noted rows, reload after an invalidation), as fw_vcache_history does. */
int fw_vcache_voucher(fw_vcache *c, const char *voucher_no, fw_voucher_rec *out);
/* The same from the cache alone: -2 when it holds no record for it and
 * its fingerprint is in the set (no SQL for the voucher; the ledger's
 * `created` finds out by its INSERT). */
int fw_vcache_voucher_peek(fw_vcache *c, const char *voucher_no, fw_voucher_rec *out);
/* The ledger is about to write the rows of that voucher (its row, its
 * reservation, an event for it): the record is dropped. */
void fw_vcache_voucher_begin(fw_vcache *c, const char *voucher_no);
/* ... and wrote them without error: the record is now *rec (NULL: the
 * voucher does not exist).  Not called on an error: the record stays
 * dropped. */
void fw_vcache_voucher_put(fw_vcache *c, const char *voucher_no, const fw_voucher_rec *rec);
/* Voucher records read from SQL by the cache (tests). */
long fw_vcache_voucher_reads(const fw_vcache *c);
/* Answers "no such voucher" from the fingerprints, without SQL (tests). */
long fw_vcache_absent_answers(const fw_vcache *c);
/* Voucher rows re-read from SQL after a write (tests). */
long fw_vcache_row_reads(const fw_vcache *c);
/* Indicator rows read from SQL by the cache (tests). */
long fw_vcache_indicator_reads(const fw_vcache *c);

#endif
