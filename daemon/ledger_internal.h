/*
 * ledger_internal.h - what the ledger's own files share (not for others).
 *
 * ledger.c applies events, ledger_read.c answers the rules' and the API's
 * queries, ledger_view.c builds the people-facing views and the CLI.
 */
#ifndef FW_LEDGER_INTERNAL_H
#define FW_LEDGER_INTERNAL_H

#include <jansson.h>
#include <stdint.h>

#include "daemon/store.h"

struct fw_ledger {
    fw_store *st;
    char *text; /* body_text()'s buffer, reused from event to event */
    size_t text_len, text_cap;
};

/* body[key] as a string, "" when absent or not a string. */
const char *fw_ledger_jstr(const json_t *obj, const char *key);
/* body[key] as an integer: 1 and *out, or 0 when absent / not an integer. */
int fw_ledger_jint(const json_t *obj, const char *key, int64_t *out);
/* Step a statement that returns no row (or whose row is ignored), release
 * it; logs and returns -1 on an SQLite error. */
int fw_ledger_step_done(struct fw_ledger *l, sqlite3_stmt *s, const char *what);

#endif
