/* store.c - see store.h */
#include "daemon/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon/log.h"

/* Prepared statements are cached in an open-addressing table keyed by the
 * SQL text.  Callers pass string literals, so the pointer is checked first
 * and the text only on a pointer miss. */
typedef struct stmt_slot {
    const char *sql; /* owned copy */
    sqlite3_stmt *stmt;
} stmt_slot;

struct fw_store {
    sqlite3 *db;
    char *path;
    int depth; /* nested begin count */
    stmt_slot *slots;
    size_t nslots, nused;
};

/* Every query goes through the cache, so the hash looks at the length and
 * at most the first and last 32 bytes (strcmp settles any collision):
 * hashing long statements byte by byte was a visible cost. */
static uint64_t hash_sql(const char *s)
{
    size_t n = strlen(s);
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)n;
    size_t head = n <= 64 ? n : 32;
    for (size_t i = 0; i < head; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    if (n > 64) {
        for (size_t i = n - 32; i < n; i++) {
            h ^= (unsigned char)s[i];
            h *= 1099511628211ULL;
        }
    }
    return h;
}

static int mkdir_parents(const char *path)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return 0;
}

static int exec_sql(sqlite3 *db, const char *sql, char *err, int errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, (size_t)errlen, "%s", msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int migrate(fw_store *st, const fw_migration *migs, int nmigs, char *err, int errlen)
{
    sqlite3_stmt *s;
    int version = 0;
    if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
        goto fail;
    if (sqlite3_step(s) == SQLITE_ROW)
        version = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    if (version > nmigs) {
        snprintf(err, (size_t)errlen, "%s: schema version %d is newer than this build knows (%d)",
                 st->path, version, nmigs);
        return -1;
    }
    for (int i = version; i < nmigs; i++) {
        char e[512];
        char pragma[64];
        snprintf(pragma, sizeof pragma, "PRAGMA user_version=%d", i + 1);
        if (exec_sql(st->db, "BEGIN IMMEDIATE", e, sizeof e) != 0 ||
            exec_sql(st->db, migs[i].sql, e, sizeof e) != 0 ||
            exec_sql(st->db, pragma, e, sizeof e) != 0 ||
            exec_sql(st->db, "COMMIT", e, sizeof e) != 0) {
            sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
            snprintf(err, (size_t)errlen, "%s: migration %d (%s): %s", st->path, i + 1,
                     migs[i].name, e);
            return -1;
        }
        /* In-memory stores (replay, rule tests) migrate all the time: only a
         * real database's migration is worth an info line. */
        fw_log(strcmp(st->path, ":memory:") == 0 ? FW_LOG_DEBUG : FW_LOG_INFO, "store.migrated",
               "version=%d module=%s", i + 1, migs[i].name);
    }
    return 0;
fail:
    snprintf(err, (size_t)errlen, "%s: %s", st->path, sqlite3_errmsg(st->db));
    return -1;
}

fw_store *fw_store_open(const char *path, const fw_migration *migs, int nmigs, int readonly,
                        fw_sync_mode sync, char *err, int errlen)
{
    fw_store *st = calloc(1, sizeof *st);
    if (!st)
        goto oom;
    st->path = strdup(path);
    st->nslots = 256;
    st->slots = calloc(st->nslots, sizeof *st->slots);
    if (!st->path || !st->slots)
        goto oom;
    int memory = strcmp(path, ":memory:") == 0;
    if (!memory && !readonly && mkdir_parents(path) != 0) {
        snprintf(err, (size_t)errlen, "%s: cannot create directory: %s", path, strerror(errno));
        goto cleanup;
    }
    int flags = readonly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    if (sqlite3_open_v2(path, &st->db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        snprintf(err, (size_t)errlen, "%s: %s", path,
                 st->db ? sqlite3_errmsg(st->db) : "cannot open");
        goto cleanup;
    }
    sqlite3_busy_timeout(st->db, 5000);
    char e[512];
    /* WAL lets the CLI and API readers work beside the writer.  The
     * synchronous level decides what an ack promises; see README. */
    /* A 64 MiB page cache and memory-mapped reads: with SQLite's 2 MiB
     * default, a growing store turned every index probe into a read()
     * syscall (44% of the intake's time was in the kernel). */
    const char *pragmas = sync == FW_SYNC_FULL
                              ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                                "PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;"
                                "PRAGMA cache_size=-65536; PRAGMA mmap_size=1073741824;"
                                "PRAGMA wal_autocheckpoint=16384;"
                              : "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                                "PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;"
                                "PRAGMA cache_size=-65536; PRAGMA mmap_size=1073741824;"
                                "PRAGMA wal_autocheckpoint=16384;";
    if (!readonly && exec_sql(st->db, pragmas, e, sizeof e) != 0) {
        snprintf(err, (size_t)errlen, "%s: %s", path, e);
        goto cleanup;
    }
    if (!readonly) {
        if (exec_sql(st->db,
                     "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value ANY) STRICT", e,
                     sizeof e) != 0) {
            snprintf(err, (size_t)errlen, "%s: %s", path, e);
            goto cleanup;
        }
        if (migrate(st, migs, nmigs, err, errlen) != 0)
            goto cleanup;
    }
    return st;
oom:
    snprintf(err, (size_t)errlen, "out of memory");
cleanup:
    fw_store_close(st);
    return NULL;
}

void fw_store_close(fw_store *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->nslots; i++) {
        if (st->slots && st->slots[i].sql) {
            sqlite3_finalize(st->slots[i].stmt);
            free((char *)st->slots[i].sql);
        }
    }
    free(st->slots);
    if (st->db)
        sqlite3_close_v2(st->db);
    free(st->path);
    free(st);
}

sqlite3 *fw_store_db(fw_store *st)
{
    return st->db;
}

const char *fw_store_path(const fw_store *st)
{
    return st->path;
}

static void grow_slots(fw_store *st)
{
    size_t n = st->nslots * 2;
    stmt_slot *slots = calloc(n, sizeof *slots);
    if (!slots)
        abort();
    for (size_t i = 0; i < st->nslots; i++) {
        if (!st->slots[i].sql)
            continue;
        size_t j = hash_sql(st->slots[i].sql) & (n - 1);
        while (slots[j].sql)
            j = (j + 1) & (n - 1);
        slots[j] = st->slots[i];
    }
    free(st->slots);
    st->slots = slots;
    st->nslots = n;
}

sqlite3_stmt *fw_store_stmt(fw_store *st, const char *sql)
{
    size_t mask = st->nslots - 1;
    size_t i = hash_sql(sql) & mask;
    while (st->slots[i].sql) {
        if (strcmp(st->slots[i].sql, sql) == 0)
            return st->slots[i].stmt;
        i = (i + 1) & mask;
    }
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, NULL) != SQLITE_OK) {
        char q[200];
        FW_ERROR("store.prepare_failed", "error=%s sql=%s",
                 fw_log_quote(sqlite3_errmsg(st->db), q, sizeof q), sql);
        abort();
    }
    if ((st->nused + 1) * 2 > st->nslots) {
        grow_slots(st);
        mask = st->nslots - 1;
        i = hash_sql(sql) & mask;
        while (st->slots[i].sql)
            i = (i + 1) & mask;
    }
    st->slots[i].sql = strdup(sql);
    st->slots[i].stmt = stmt;
    st->nused++;
    return stmt;
}

void fw_store_done(sqlite3_stmt *stmt)
{
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
}

int fw_store_begin(fw_store *st)
{
    if (st->depth++ > 0)
        return 0;
    sqlite3_stmt *s = fw_store_stmt(st, "BEGIN IMMEDIATE");
    int rc = sqlite3_step(s);
    fw_store_done(s);
    if (rc != SQLITE_DONE) {
        st->depth = 0;
        FW_ERROR("store.begin_failed", "error=\"%s\"", sqlite3_errmsg(st->db));
        return -1;
    }
    return 0;
}

int fw_store_commit(fw_store *st)
{
    if (st->depth == 0)
        return 0;
    if (--st->depth > 0)
        return 0;
    sqlite3_stmt *s = fw_store_stmt(st, "COMMIT");
    int rc = sqlite3_step(s);
    fw_store_done(s);
    if (rc != SQLITE_DONE) {
        FW_ERROR("store.commit_failed", "error=\"%s\"", sqlite3_errmsg(st->db));
        fw_store_rollback(st);
        return -1;
    }
    return 0;
}

void fw_store_rollback(fw_store *st)
{
    st->depth = 0;
    if (!sqlite3_get_autocommit(st->db))
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
}

int fw_store_in_txn(const fw_store *st)
{
    return st->depth > 0;
}

int fw_store_exec(fw_store *st, const char *sql)
{
    char e[512];
    if (exec_sql(st->db, sql, e, sizeof e) != 0) {
        char q[600];
        FW_ERROR("store.exec_failed", "error=%s", fw_log_quote(e, q, sizeof q));
        return -1;
    }
    return 0;
}

int fw_store_meta_get_int(fw_store *st, const char *key, int64_t *out)
{
    sqlite3_stmt *s = fw_store_stmt(st, "SELECT value FROM meta WHERE key = ?1");
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    int found = rc == SQLITE_ROW;
    if (found)
        *out = sqlite3_column_int64(s, 0);
    fw_store_done(s);
    return found ? 1 : (rc == SQLITE_DONE ? 0 : -1);
}

int fw_store_meta_set_int(fw_store *st, const char *key, int64_t v)
{
    sqlite3_stmt *s = fw_store_stmt(st, "INSERT INTO meta(key, value) VALUES (?1, ?2) "
                                        "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, v);
    int rc = sqlite3_step(s);
    fw_store_done(s);
    return rc == SQLITE_DONE ? 0 : -1;
}

int fw_bind_text(sqlite3_stmt *s, int idx, const char *v)
{
    return v ? sqlite3_bind_text(s, idx, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(s, idx);
}

const char *fw_col_text(sqlite3_stmt *s, int col)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    return t ? (const char *)t : "";
}
