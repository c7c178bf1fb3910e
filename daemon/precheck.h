/*
 * precheck.h - the pre-payment check (contract §3) and the thread that
 * answers it.
 *
 * fw_precheck_decide() is the check itself: decode a voucher `created`
 * body, run the rule pack on it against the current state of the ledger in
 * one read transaction, and build the reply (decision, available balance,
 * hits).  It changes nothing.  The loop uses it for POST /api/check.
 *
 * fw_checker answers the NATS requests (`fundwatch.check`) on a thread of
 * its own.  Why: issue 7 wants a check answered in under 2 ms while the
 * daemon ingests 20,000 vouchers/s, and on the loop a check waits for the
 * message in progress, a batch COMMIT (up to 5 ms) or a checkpoint step.
 * The standard "only the event-loop thread touches Lua and SQLite" exists
 * so that no Lua state and no SQLite connection is ever used by two
 * threads; the checker keeps that property by owning its own:
 *
 *   - a read-only SQLite connection to the same database file, opened,
 *     used and closed only by the checker thread (WAL: it reads the last
 *     committed state, never the loop's batch in progress);
 *   - its own rule set (fw_rules: its own lua_State, loaded from the same
 *     directory with the same tests run, reloaded when the loop reloads),
 *     answering ctx history by SQL (the voucher cache belongs to the loop's
 *     connection).
 *
 *   - its own NATS connection and a synchronous subscription to
 *     fundwatch.check: cnats's reader thread hands a request straight to
 *     the checker (one thread hop), and the reply is written at once
 *     (SendAsap).
 *
 * The checker runs at a higher priority than the loop (see precheck.c,
 * checker_raise_priority): a check is small, bounded work, and on a busy
 * machine it should not queue for a CPU behind a batch.
 *
 * Nothing that the loop owns is touched by the checker, and nothing the
 * checker owns is touched by the loop; they share only the configuration
 * (read-only after start), the metrics registry (atomic) and the log.
 *
 * [check] thread = false answers NATS checks on the loop as before.
 */
#ifndef FW_PRECHECK_H
#define FW_PRECHECK_H

#include <jansson.h>
#include <stddef.h>

#include "daemon/config.h"
#include "daemon/hit.h"
#include "daemon/ledger.h"
#include "daemon/store.h"
#include "lua/rules.h"

/* The check of one request body.  *status is 200 (a decision), 400 (a
 * malformed request: {"error": "<field>: <reason>"}) or 500.  `hits` is
 * scratch space, left empty.  Returns a new JSON object. */
json_t *fw_precheck_decide(fw_rules *rules, fw_ledger *ledger, fw_store *st, fw_hit_list *hits,
                           const char *body, size_t len, int *status);

typedef struct fw_checker fw_checker;

/* Start the checker thread.  It raises its own priority (nice -10, when
 * allowed), opens `store_path` read-only, loads the rules of cfg's
 * rules.dir / rules.etc (running their tests, as the loop does), connects
 * to nats.url and subscribes to fundwatch.check in queue group fundwatch;
 * this call returns once that is done.  NULL when any of it fails (err
 * says why). */
fw_checker *fw_checker_start(const fw_config *cfg, const char *store_path, char *err, int errlen);
/* Reload the checker's rule set before its next request (the loop calls it
 * after its own reload: the same files, the same tests). */
void fw_checker_reload(fw_checker *c);
/* Unsubscribe and stop the thread, closing what it owns (within about
 * 50 ms; a request not yet read goes to another member of the group or
 * times out).  Idempotent. */
void fw_checker_stop(fw_checker *c);
void fw_checker_free(fw_checker *c);

#endif
