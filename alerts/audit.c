/*
 * audit.c - the append-only, hash-chained audit log.
 *
 * Row k stores prev_hash (row k-1's hash; 64 zeros for row 1) and
 * hash = hex sha256(prev_hash || canonical(k)), where canonical(k) is
 *
 *   "<seq>\n<at>\n<len>:<actor>\n<len>:<action>\n<len>:<object>\n<len>:<detail>"
 *
 * (lengths in bytes, so no field can borrow from its neighbour).  audit_head
 * holds the last seq and hash, written in the same transaction as the row.
 *
 * What verify detects, walking seq order:
 * - an edited row: its hash no longer matches its content;
 * - an edited hash: the next row's prev_hash no longer matches;
 * - a deleted row in the middle or at the start: a gap in seq (seq must run
 *   1, 2, 3, ...), and the prev_hash link breaks;
 * - deleted rows at the end: audit_head names a later seq / other hash;
 * - a deleted or edited head, or rows without a head.
 * Someone who can run SQL and compute sha256 can rewrite the whole chain
 * and its head; the chain makes tampering evident to anyone who kept an
 * earlier head hash (the `audit verify` output prints it), it does not make
 * it impossible.
 */
#include "alerts/alerts_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/log.h"
#include "daemon/timeutil.h"

static const char genesis_hash[] =
    "0000000000000000000000000000000000000000000000000000000000000000";

/* Canonical content of a row, malloc'd. */
static char *audit_canonical(int64_t seq, int64_t at, const char *actor, const char *action,
                             const char *object, const char *detail, size_t *len)
{
    size_t la = strlen(actor), lc = strlen(action), lo = strlen(object), ld = strlen(detail);
    size_t cap = la + lc + lo + ld + 160;
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    int n = snprintf(buf, cap, "%" PRId64 "\n%" PRId64 "\n%zu:%s\n%zu:%s\n%zu:%s\n%zu:%s", seq, at,
                     la, actor, lc, action, lo, object, ld, detail);
    if (n < 0 || (size_t)n >= cap) {
        free(buf);
        return NULL;
    }
    *len = (size_t)n;
    return buf;
}

static int audit_hash(const char *prev, int64_t seq, int64_t at, const char *actor,
                      const char *action, const char *object, const char *detail, char out[65])
{
    size_t len = 0;
    char *canon = audit_canonical(seq, at, actor, action, object, detail, &len);
    if (!canon)
        return -1;
    fw_al_sha256_hex(prev, strlen(prev), canon, len, out);
    free(canon);
    return 0;
}

int fw_audit_append(fw_store *st, const char *actor, const char *action, const char *object,
                    const char *detail_json)
{
    int rc = -1, own = 0;
    int64_t seq = 0;
    char prev[65], hash[65];
    int64_t at = fw_clock_now();
    if (!actor || !*actor)
        actor = "fundwatch";
    if (!object)
        object = "";
    if (!detail_json || !*detail_json)
        detail_json = "{}";

    if (!fw_store_in_txn(st)) {
        if (fw_store_begin(st) != 0)
            return -1;
        own = 1;
    }
    sqlite3_stmt *s = fw_store_stmt(st, "SELECT seq, hash FROM audit_head WHERE id = 1");
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW) {
        seq = sqlite3_column_int64(s, 0);
        snprintf(prev, sizeof prev, "%s", fw_col_text(s, 1));
    } else {
        seq = 0;
        snprintf(prev, sizeof prev, "%s", genesis_hash);
    }
    fw_store_done(s);
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        goto cleanup;
    seq++;
    if (audit_hash(prev, seq, at, actor, action, object, detail_json, hash) != 0)
        goto cleanup;

    s = fw_store_stmt(st, "INSERT INTO audit (seq, at, actor, action, object, detail, prev_hash,"
                          " hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    sqlite3_bind_int64(s, 1, seq);
    sqlite3_bind_int64(s, 2, at);
    fw_bind_text(s, 3, actor);
    fw_bind_text(s, 4, action);
    fw_bind_text(s, 5, object);
    fw_bind_text(s, 6, detail_json);
    fw_bind_text(s, 7, prev);
    fw_bind_text(s, 8, hash);
    step = sqlite3_step(s);
    fw_store_done(s);
    if (step != SQLITE_DONE)
        goto cleanup;

    s = fw_store_stmt(st,
                      "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?)"
                      " ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash");
    sqlite3_bind_int64(s, 1, seq);
    fw_bind_text(s, 2, hash);
    step = sqlite3_step(s);
    fw_store_done(s);
    if (step != SQLITE_DONE)
        goto cleanup;
    rc = 0;

cleanup:
    if (rc != 0) {
        char q[200];
        FW_ERROR("audit.append_failed", "action=%s err=%s", action,
                 fw_log_quote(sqlite3_errmsg(fw_store_db(st)), q, sizeof q));
    }
    if (own) {
        if (rc == 0)
            rc = fw_store_commit(st) == 0 ? 0 : -1;
        else
            fw_store_rollback(st);
    }
    return rc;
}

int fw_audit_verify(fw_store *st, char *err, int errlen)
{
    int64_t expect_seq = 1, rows = 0;
    char prev[65], calc[65];
    int step;
    snprintf(prev, sizeof prev, "%s", genesis_hash);

    sqlite3_stmt *s = fw_store_stmt(st, "SELECT seq, at, actor, action, object, detail,"
                                        " prev_hash, hash FROM audit ORDER BY seq");
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t seq = sqlite3_column_int64(s, 0);
        int64_t at = sqlite3_column_int64(s, 1);
        const char *row_prev = fw_col_text(s, 6);
        const char *row_hash = fw_col_text(s, 7);
        if (seq != expect_seq) {
            if (seq > expect_seq)
                snprintf(err, (size_t)errlen,
                         "audit row %" PRId64 " is missing (deleted): row %" PRId64
                         " follows row %" PRId64,
                         expect_seq, seq, expect_seq - 1);
            else
                snprintf(err, (size_t)errlen, "audit row %" PRId64 ": out of sequence", seq);
            fw_store_done(s);
            return 1;
        }
        if (strcmp(row_prev, prev) != 0) {
            snprintf(err, (size_t)errlen,
                     "audit row %" PRId64 ": prev_hash does not match row %" PRId64
                     " (a row was changed or removed)",
                     seq, seq - 1);
            fw_store_done(s);
            return 1;
        }
        if (audit_hash(prev, seq, at, fw_col_text(s, 2), fw_col_text(s, 3), fw_col_text(s, 4),
                       fw_col_text(s, 5), calc) != 0) {
            fw_store_done(s);
            snprintf(err, (size_t)errlen, "out of memory");
            return -1;
        }
        if (strcmp(calc, row_hash) != 0) {
            snprintf(err, (size_t)errlen,
                     "audit row %" PRId64 ": hash does not match its content (row changed)", seq);
            fw_store_done(s);
            return 1;
        }
        snprintf(prev, sizeof prev, "%s", row_hash);
        expect_seq++;
        rows++;
    }
    fw_store_done(s);
    if (step != SQLITE_DONE) {
        snprintf(err, (size_t)errlen, "audit: %s", sqlite3_errmsg(fw_store_db(st)));
        return -1;
    }

    s = fw_store_stmt(st, "SELECT seq, hash FROM audit_head WHERE id = 1");
    step = sqlite3_step(s);
    if (step == SQLITE_ROW) {
        int64_t head_seq = sqlite3_column_int64(s, 0);
        char head_hash[65];
        snprintf(head_hash, sizeof head_hash, "%s", fw_col_text(s, 1));
        fw_store_done(s);
        if (head_seq != rows) {
            if (head_seq > rows)
                snprintf(err, (size_t)errlen,
                         "audit row %" PRId64 " is missing (deleted): the log ends at row %" PRId64
                         " but its head records %" PRId64 " rows",
                         rows + 1, rows, head_seq);
            else
                snprintf(err, (size_t)errlen,
                         "audit row %" PRId64
                         ": not recorded in the head (which ends at row %" PRId64 ")",
                         head_seq + 1, head_seq);
            return 1;
        }
        if (strcmp(head_hash, prev) != 0) {
            snprintf(err, (size_t)errlen,
                     "audit row %" PRId64 ": hash differs from the one recorded in the head", rows);
            return 1;
        }
    } else {
        fw_store_done(s);
        if (step != SQLITE_DONE) {
            snprintf(err, (size_t)errlen, "audit: %s", sqlite3_errmsg(fw_store_db(st)));
            return -1;
        }
        if (rows > 0) {
            snprintf(err, (size_t)errlen, "audit head is missing (deleted) for %" PRId64 " rows",
                     rows);
            return 1;
        }
    }
    snprintf(err, (size_t)errlen, "%" PRId64 " rows, head %s", rows, prev);
    return 0;
}
