/*
 * voucher_cache.c - see voucher_cache.h.
 *
 * Layout: entries (one per voucher row, by rowid through an open-addressing
 * map), pairs (one per (unit_code, payee_account), through a second map)
 * each holding its entries' indexes sorted by (created_at, rowid), so a
 * query is a binary search for `since` and a walk to `until`.  Strings
 * (pair keys, voucher numbers) live in one growing arena, addressed by
 * offset; an entry rewritten with a new voucher number leaves its old bytes
 * behind until the next load.
 */
#include "daemon/voucher_cache.h"
#include "daemon/ledger_internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon/log.h"

#define PENDING_MAX 200000 /* more rows written than this: reload instead */
#define IND_MAX 65536      /* more indicators asked than this: start again */
#define REC_MAX 131072     /* more voucher records than this: start again */
#define REC_NO_MAX 48      /* longer voucher numbers are not kept (SQL answers) */

typedef struct vc_entry {
    int64_t rowid, created_at, amount;
    uint32_t pair;
    uint32_t vno_off, vno_len;
    int spend, live;
} vc_entry;

typedef struct vc_pair {
    uint32_t key_off, key_len; /* "unit\0payee" */
    uint32_t *ids;             /* entry indexes, sorted by (created_at, rowid) */
    uint32_t n, cap;
} vc_pair;

/* One indicator as SQL gave it (found) or its absence (!found); the key is
 * ind.indicator_id (ids of 64 bytes or more are not cached). */
typedef struct ic_entry {
    uint64_t gen;     /* valid while equal to the cache's igen */
    uint64_t was_gen; /* igen when fw_vcache_indicator_written dropped it */
    int was_valid;    /* it was valid then (the UPDATE's new balances may be put) */
    int found;
    fw_indicator ind;
} ic_entry;

/* One voucher's record (fw_ledger_voucher_rec) or its absence (!found),
 * keyed by its number. */
typedef struct vr_entry {
    uint64_t gen; /* valid while equal to the cache's rgen */
    int found;
    char no[REC_NO_MAX];
    fw_voucher_rec rec;
} vr_entry;

/* What PRAGMA data_version said when a kind of entry last looked (the
 * indicators, the voucher records): another connection's commit changes it. */
typedef struct dv_watch {
    uint64_t txn; /* txn_seq when it was last checked */
    int64_t dv;   /* data_version the entries reflect */
    int known;
} dv_watch;

struct fw_vcache {
    fw_ledger *l;
    sqlite3 *db;
    vc_entry *ents;
    size_t nents, capents;
    uint32_t *rowmap; /* entry index + 1, 0 = empty; cap a power of two */
    size_t rowcap;
    vc_pair *pairs;
    size_t npairs, cappairs;
    uint32_t *pairmap; /* pair index + 1 */
    size_t paircap;
    char *arena;
    size_t alen, acap;
    uint32_t *nos; /* fingerprints of every voucher number the entries held
                      since the load (0 = empty); cap a power of two */
    size_t nnos, nocap;
    uint32_t nos_ahead[16]; /* during a load: added soon, their slots prefetched */
    unsigned nnos_ahead;
    int nos_defer; /* a load is adding: through nos_ahead */
    int64_t *pending;
    size_t npending, cappending;
    long txn_writes;  /* voucher rows written since the connection was last
                         seen outside a transaction */
    uint64_t txn_seq; /* + 1 each time a statement starts outside a transaction */
    uint64_t dv_txn;  /* txn_seq when data_version was last checked */
    int loaded;       /* the maps reflect the table (plus pending) */
    int invalid;      /* a rollback or another connection: reload before use */
    int64_t data_version;
    long loads;
    /* indicators (ctx.indicator) */
    ic_entry *inds;
    size_t ninds, capinds;
    uint32_t *indmap; /* entry index + 1; cap a power of two */
    size_t indcap;
    uint64_t igen;       /* + 1 invalidates every entry */
    long txn_ind_writes; /* indicator writes noted since last outside a transaction */
    dv_watch ind_dv;     /* another connection's commits, for them */
    long ind_reads;      /* indicator rows read from SQL (tests) */
    /* voucher records (the ledger's voucher reads, ctx.voucher) */
    vr_entry *recs;
    size_t nrecs, caprecs;
    uint32_t *recmap; /* entry index + 1; cap a power of two */
    size_t reccap;
    uint64_t rgen;        /* + 1 invalidates every record */
    long txn_rec_writes;  /* ledger voucher operations since last outside a transaction */
    dv_watch rec_dv;      /* another connection's commits, for them */
    long rec_rows_hooked; /* rows of vouchers / voucher_events written (update hook) */
    long rec_rows_seen;   /* ... of which the records account for */
    int rec_op;           /* inside fw_vcache_voucher_begin .. _put */
    uint64_t rec_op_gen;  /* rgen at _begin */
    long rec_reads;       /* voucher records read from SQL (tests) */
    long row_reads;       /* voucher rows re-read from SQL after a write (tests) */
    long absent_answers;  /* "no such voucher" answered from the fingerprints (tests) */
};

/* Caches by connection, to refuse a second one and to find a connection's
 * cache from the ledger's writes.  Per thread: a cache and its connection
 * belong to the thread that made them (the loop's); the check thread's rule
 * tests write only to in-memory ledgers of their own and must find nothing
 * here, without racing the loop. */
static _Thread_local fw_vcache *attached[8];

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        abort();
    return q;
}

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static uint64_t hash_int(int64_t v)
{
    uint64_t x = (uint64_t)v;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static uint32_t arena_add(fw_vcache *c, const char *p, size_t n)
{
    if (c->alen + n > c->acap) {
        size_t cap = c->acap ? c->acap : 1 << 16;
        while (cap < c->alen + n)
            cap *= 2;
        c->arena = xrealloc(c->arena, cap);
        c->acap = cap;
    }
    memcpy(c->arena + c->alen, p, n);
    uint32_t off = (uint32_t)c->alen;
    c->alen += n;
    return off;
}

static void clear_all(fw_vcache *c)
{
    for (size_t i = 0; i < c->npairs; i++)
        free(c->pairs[i].ids);
    c->npairs = 0;
    c->nents = 0;
    c->alen = 0;
    if (c->rowmap)
        memset(c->rowmap, 0, c->rowcap * sizeof *c->rowmap);
    if (c->pairmap)
        memset(c->pairmap, 0, c->paircap * sizeof *c->pairmap);
    c->nnos = 0;
    if (c->nos)
        memset(c->nos, 0, c->nocap * sizeof *c->nos);
    c->loaded = 0;
}

/* ---- the voucher numbers' fingerprints ----
 *
 * 32 bits of the number's hash (0 is the empty slot); the slot follows from
 * the fingerprint alone, so the table can grow without the numbers.  Two
 * numbers with one fingerprint are one element: the set answers "maybe"
 * for both, never "absent" for either. */

static uint32_t no_fingerprint(const char *no, size_t n)
{
    uint32_t f = (uint32_t)(hash_bytes(no, n) >> 32);
    return f ? f : 1;
}

static uint32_t *no_slot(fw_vcache *c, uint32_t f)
{
    size_t mask = c->nocap - 1;
    for (size_t i = hash_int(f) & mask;; i = (i + 1) & mask)
        if (!c->nos[i] || c->nos[i] == f)
            return &c->nos[i];
}

static void no_grow(fw_vcache *c)
{
    uint32_t *old = c->nos;
    size_t oldcap = c->nocap;
    c->nocap = oldcap ? oldcap * 2 : 4096;
    c->nos = calloc(c->nocap, sizeof *c->nos);
    if (!c->nos)
        abort();
    for (size_t i = 0; i < oldcap; i++)
        if (old[i])
            *no_slot(c, old[i]) = old[i];
    free(old);
}

/* Before a load fills the (empty) set: room for `rows` numbers at once,
 * instead of growing through every power of two on the way (each growth
 * re-inserts all, at random places). */
static void no_reserve(fw_vcache *c, int64_t rows)
{
    size_t cap = c->nocap ? c->nocap : 4096;
    while ((int64_t)cap < rows * 2 && cap < ((size_t)1 << 22))
        cap *= 2;
    if (cap == c->nocap)
        return;
    free(c->nos);
    c->nos = calloc(cap, sizeof *c->nos);
    if (!c->nos)
        abort();
    c->nocap = cap;
}

static void no_insert(fw_vcache *c, uint32_t f)
{
    if ((c->nnos + 1) * 2 > c->nocap)
        no_grow(c);
    uint32_t *slot = no_slot(c, f);
    if (!*slot) {
        *slot = f;
        c->nnos++;
    }
}

static void no_flush(fw_vcache *c)
{
    for (unsigned i = 0; i < c->nnos_ahead; i++)
        no_insert(c, c->nos_ahead[i]);
    c->nnos_ahead = 0;
}

/* A load adds a million numbers at random places of a table larger than
 * the CPU caches: each slot is prefetched, and the number added 16 rows
 * later (1,000,000 vouchers: the set adds ~0.1 s to a ~1.1 s load this
 * way, ~0.3 s without). */
static void no_add(fw_vcache *c, const char *no, size_t n)
{
    uint32_t f = no_fingerprint(no, n);
    if (!c->nos_defer) {
        no_insert(c, f);
        return;
    }
    if (c->nnos_ahead == sizeof c->nos_ahead / sizeof c->nos_ahead[0])
        no_flush(c);
    if (c->nocap)
        __builtin_prefetch(&c->nos[hash_int(f) & (c->nocap - 1)], 1);
    c->nos_ahead[c->nnos_ahead++] = f;
}

/* ---- the rowid map ---- */

static uint32_t *row_slot(fw_vcache *c, int64_t rowid)
{
    size_t mask = c->rowcap - 1;
    for (size_t i = hash_int(rowid) & mask;; i = (i + 1) & mask)
        if (!c->rowmap[i] || c->ents[c->rowmap[i] - 1].rowid == rowid)
            return &c->rowmap[i];
}

static void row_grow(fw_vcache *c)
{
    size_t cap = c->rowcap ? c->rowcap * 2 : 1024;
    free(c->rowmap);
    c->rowmap = calloc(cap, sizeof *c->rowmap);
    if (!c->rowmap)
        abort();
    c->rowcap = cap;
    for (size_t e = 0; e < c->nents; e++)
        *row_slot(c, c->ents[e].rowid) = (uint32_t)e + 1;
}

/* ---- the pair map ---- */

static uint32_t *pair_slot(fw_vcache *c, const char *key, size_t klen, uint64_t h)
{
    size_t mask = c->paircap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        if (!c->pairmap[i])
            return &c->pairmap[i];
        const vc_pair *p = &c->pairs[c->pairmap[i] - 1];
        if (p->key_len == klen && memcmp(c->arena + p->key_off, key, klen) == 0)
            return &c->pairmap[i];
    }
}

static void pair_grow(fw_vcache *c)
{
    size_t cap = c->paircap ? c->paircap * 2 : 1024;
    free(c->pairmap);
    c->pairmap = calloc(cap, sizeof *c->pairmap);
    if (!c->pairmap)
        abort();
    c->paircap = cap;
    for (size_t i = 0; i < c->npairs; i++) {
        const vc_pair *p = &c->pairs[i];
        const char *k = c->arena + p->key_off;
        *pair_slot(c, k, p->key_len, hash_bytes(k, p->key_len)) = (uint32_t)i + 1;
    }
}

/* "unit\0payee" into buf (NULL when too long for it). */
static size_t pair_key(char *buf, size_t n, const char *unit, const char *payee)
{
    size_t ul = strlen(unit), pl = strlen(payee);
    if (ul + pl + 1 > n)
        return 0;
    memcpy(buf, unit, ul);
    buf[ul] = '\0';
    memcpy(buf + ul + 1, payee, pl);
    return ul + 1 + pl;
}

/* Index of the pair, or -1 when absent and !create. */
static long pair_find(fw_vcache *c, const char *key, size_t klen, int create)
{
    if (!c->paircap) {
        if (!create)
            return -1;
        pair_grow(c);
    }
    uint64_t h = hash_bytes(key, klen);
    uint32_t *slot = pair_slot(c, key, klen, h);
    if (*slot)
        return (long)*slot - 1;
    if (!create)
        return -1;
    if (c->npairs == c->cappairs) {
        c->cappairs = c->cappairs ? c->cappairs * 2 : 1024;
        c->pairs = xrealloc(c->pairs, c->cappairs * sizeof *c->pairs);
    }
    vc_pair *p = &c->pairs[c->npairs];
    memset(p, 0, sizeof *p);
    p->key_off = arena_add(c, key, klen);
    p->key_len = (uint32_t)klen;
    *slot = (uint32_t)++c->npairs;
    if (c->npairs * 2 > c->paircap)
        pair_grow(c);
    return (long)c->npairs - 1;
}

static int ent_before(const vc_entry *a, const vc_entry *b)
{
    return a->created_at < b->created_at || (a->created_at == b->created_at && a->rowid < b->rowid);
}

static void pair_insert(fw_vcache *c, vc_pair *p, uint32_t e)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 2;
        p->ids = xrealloc(p->ids, p->cap * sizeof *p->ids);
    }
    uint32_t i = p->n; /* usually the newest: appended */
    while (i > 0 && ent_before(&c->ents[e], &c->ents[p->ids[i - 1]]))
        i--;
    memmove(p->ids + i + 1, p->ids + i, (p->n - i) * sizeof *p->ids);
    p->ids[i] = e;
    p->n++;
}

static void pair_remove(vc_pair *p, uint32_t e)
{
    for (uint32_t i = 0; i < p->n; i++)
        if (p->ids[i] == e) {
            memmove(p->ids + i, p->ids + i + 1, (p->n - i - 1) * sizeof *p->ids);
            p->n--;
            return;
        }
}

/* Put the row of that rowid with these values (replacing what the cache had
 * for it). */
static void put_values(fw_vcache *c, int64_t rowid, const char *unit, const char *payee,
                       int64_t created_at, int64_t amount, int spend, const char *vno)
{
    char key[512];
    size_t klen = pair_key(key, sizeof key, unit, payee);
    if (!klen) { /* never in practice: such a row makes the cache unusable */
        c->invalid = 1;
        return;
    }
    if ((c->nents + 1) * 2 > c->rowcap)
        row_grow(c);
    uint32_t *slot = row_slot(c, rowid);
    uint32_t e;
    if (*slot) {
        e = *slot - 1;
        if (c->ents[e].live)
            pair_remove(&c->pairs[c->ents[e].pair], e);
    } else {
        if (c->nents == c->capents) {
            c->capents = c->capents ? c->capents * 2 : 4096;
            c->ents = xrealloc(c->ents, c->capents * sizeof *c->ents);
        }
        e = (uint32_t)c->nents++;
        memset(&c->ents[e], 0, sizeof c->ents[e]); /* the array is reused after a clear */
        *slot = e + 1;
    }
    vc_entry *x = &c->ents[e];
    x->rowid = rowid;
    x->created_at = created_at;
    x->amount = amount;
    x->spend = spend != 0;
    size_t vl = strlen(vno);
    if (!(x->live && x->vno_len == vl && memcmp(c->arena + x->vno_off, vno, vl) == 0)) {
        x->vno_off = arena_add(c, vno, vl);
        x->vno_len = (uint32_t)vl;
        no_add(c, vno, vl); /* an old number stays in the set: "maybe" is safe */
    }
    x->pair = (uint32_t)pair_find(c, key, klen, 1);
    x->live = 1;
    pair_insert(c, &c->pairs[x->pair], e);
}

/* The row as SQLite has it now (columns: n, unit_code, payee_account,
 * created_at, amount, spend, voucher_no). */
static void put_row(fw_vcache *c, sqlite3_stmt *s)
{
    put_values(c, sqlite3_column_int64(s, 0), fw_col_text(s, 1), fw_col_text(s, 2),
               sqlite3_column_int64(s, 3), sqlite3_column_int64(s, 4), sqlite3_column_int(s, 5),
               fw_col_text(s, 6));
}

static void drop_row(fw_vcache *c, int64_t rowid)
{
    if (!c->rowcap)
        return;
    uint32_t *slot = row_slot(c, rowid);
    if (!*slot)
        return;
    vc_entry *x = &c->ents[*slot - 1];
    if (x->live)
        pair_remove(&c->pairs[x->pair], *slot - 1);
    x->live = 0; /* the slot stays: the rowid may come back */
}

static int64_t data_version(fw_vcache *c)
{
    sqlite3_stmt *s = fw_store_stmt(c->l->st, "PRAGMA data_version");
    int64_t v = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
    fw_store_done(s);
    return v;
}

/* Another connection's commit: visible at any time outside a transaction,
 * inside one only at its start; checked once per transaction.  One seen
 * bumps *gen (every entry of that kind is stale).  0, or -1 on a store
 * error. */
static int dv_check(fw_vcache *c, dv_watch *w, uint64_t *gen)
{
    if (!sqlite3_get_autocommit(c->db) && w->txn == c->txn_seq)
        return 0;
    int64_t dv = data_version(c);
    if (dv < 0)
        return -1;
    if (!w->known || dv != w->dv)
        (*gen)++;
    w->dv = dv;
    w->known = 1;
    w->txn = c->txn_seq;
    return 0;
}

static int load(fw_vcache *c)
{
    clear_all(c);
    c->npending = 0;
    c->invalid = 0;
    c->data_version = data_version(c);
    c->dv_txn = c->txn_seq;
    /* The largest rowid bounds the rows (near enough: the ledger deletes
     * none), at the cost of one b-tree descent. */
    sqlite3_stmt *s = fw_store_stmt(c->l->st, "SELECT max(n) FROM vouchers");
    if (sqlite3_step(s) == SQLITE_ROW)
        no_reserve(c, sqlite3_column_int64(s, 0));
    fw_store_done(s);
    s = fw_store_stmt(c->l->st, "SELECT n, unit_code, payee_account, created_at,"
                                " amount, spend, voucher_no FROM vouchers");
    int rc;
    c->nos_defer = 1;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        put_row(c, s);
    fw_store_done(s);
    no_flush(c);
    c->nos_defer = 0;
    if (rc != SQLITE_DONE || c->invalid) {
        FW_ERROR("ledger.vcache_load", "rc=%d", rc);
        clear_all(c);
        c->invalid = 1;
        return -1;
    }
    c->loaded = 1;
    c->loads++;
    return 0;
}

/* Bring the cache up to what the connection sees. */
static int sync_cache(fw_vcache *c)
{
    /* Another connection's commit is visible outside a transaction at any
     * time, inside one only at its start (its snapshot then stays): check
     * once per transaction. */
    int check_dv = sqlite3_get_autocommit(c->db) || c->dv_txn != c->txn_seq;
    if (c->invalid || !c->loaded || c->npending > PENDING_MAX ||
        (check_dv && data_version(c) != c->data_version))
        return load(c);
    c->dv_txn = c->txn_seq;
    if (!c->npending)
        return 0;
    sqlite3_stmt *s = fw_store_stmt(c->l->st, "SELECT n, unit_code, payee_account, created_at,"
                                              " amount, spend, voucher_no FROM vouchers"
                                              " WHERE n = ?1");
    for (size_t i = 0; i < c->npending; i++) {
        sqlite3_bind_int64(s, 1, c->pending[i]);
        c->row_reads++;
        int rc = sqlite3_step(s);
        if (rc == SQLITE_ROW)
            put_row(c, s);
        else if (rc == SQLITE_DONE)
            drop_row(c, c->pending[i]);
        fw_store_done(s);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
            c->invalid = 1;
            return -1;
        }
    }
    c->npending = 0;
    return c->invalid ? load(c) : 0;
}

/* ---- hooks ---- */

static void on_update(void *ud, int op, const char *dbname, const char *table, sqlite3_int64 rowid)
{
    (void)op;
    fw_vcache *c = ud;
    if (strcmp(dbname, "main") != 0)
        return;
    if (strcmp(table, "voucher_events") == 0) {
        c->rec_rows_hooked++;
        return;
    }
    if (strcmp(table, "vouchers") != 0)
        return;
    c->rec_rows_hooked++;
    c->txn_writes++;
    if (c->npending == c->cappending) {
        if (c->npending > PENDING_MAX) {
            c->invalid = 1; /* a reload is cheaper than re-reading them all */
            return;
        }
        c->cappending = c->cappending ? c->cappending * 2 : 64;
        c->pending = xrealloc(c->pending, c->cappending * sizeof *c->pending);
    }
    c->pending[c->npending++] = rowid;
}

/* A rollback (explicit or automatic) of a transaction that wrote vouchers
 * invalidates the cache.  One that wrote none (the readiness probe's
 * BEGIN; ROLLBACK) undoes nothing the cache holds. */
static void on_rollback(void *ud)
{
    fw_vcache *c = ud;
    if (c->txn_writes)
        c->invalid = 1;
    if (c->txn_ind_writes)
        c->igen++;
    if (c->txn_rec_writes)
        c->rgen++;
}

/* Statement start.  Outside a transaction every earlier write is settled
 * (committed, or rolled back and seen here), so the count restarts.  A
 * ROLLBACK, also "ROLLBACK TO <savepoint>" which the rollback hook does not
 * see, after voucher writes invalidates the cache. */
static int on_trace(unsigned type, void *ud, void *p, void *x)
{
    (void)p;
    fw_vcache *c = ud;
    if (type != SQLITE_TRACE_STMT || !x)
        return 0;
    if (sqlite3_get_autocommit(c->db)) {
        c->txn_writes = 0;
        c->txn_ind_writes = 0;
        c->txn_rec_writes = 0;
        c->txn_seq++;
    }
    if (!c->txn_writes && !c->txn_ind_writes && !c->txn_rec_writes)
        return 0;
    const char *sql = x;
    while (isspace((unsigned char)*sql))
        sql++;
    if (strncasecmp(sql, "ROLLBACK", 8) == 0) {
        if (c->txn_writes)
            c->invalid = 1;
        if (c->txn_ind_writes)
            c->igen++;
        if (c->txn_rec_writes)
            c->rgen++;
    }
    return 0;
}

fw_vcache *fw_vcache_new(fw_ledger *l)
{
    sqlite3 *db = fw_store_db(l->st);
    size_t slot = sizeof attached / sizeof attached[0];
    for (size_t i = 0; i < sizeof attached / sizeof attached[0]; i++) {
        if (attached[i] && attached[i]->db == db)
            return NULL;
        if (!attached[i] && slot == sizeof attached / sizeof attached[0])
            slot = i;
    }
    if (slot == sizeof attached / sizeof attached[0])
        return NULL;
    fw_vcache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->l = l;
    c->db = db;
    c->igen = 1;
    c->rgen = 1;
    attached[slot] = c;
    sqlite3_update_hook(db, on_update, c);
    sqlite3_rollback_hook(db, on_rollback, c);
    sqlite3_trace_v2(db, SQLITE_TRACE_STMT, on_trace, c);
    if (load(c) != 0) {
        fw_vcache_free(c);
        return NULL;
    }
    return c;
}

void fw_vcache_free(fw_vcache *c)
{
    if (!c)
        return;
    sqlite3_update_hook(c->db, NULL, NULL);
    sqlite3_rollback_hook(c->db, NULL, NULL);
    sqlite3_trace_v2(c->db, 0, NULL, NULL);
    for (size_t i = 0; i < sizeof attached / sizeof attached[0]; i++)
        if (attached[i] == c)
            attached[i] = NULL;
    clear_all(c);
    free(c->ents);
    free(c->rowmap);
    free(c->pairs);
    free(c->pairmap);
    free(c->arena);
    free(c->nos);
    free(c->pending);
    free(c->inds);
    free(c->indmap);
    free(c->recs);
    free(c->recmap);
    free(c);
}

long fw_vcache_loads(const fw_vcache *c)
{
    return c ? c->loads : 0;
}

int fw_vcache_history(fw_vcache *c, const fw_history_query *q, fw_history_result *r)
{
    if (!c || q->state || !q->unit_code || !q->payee_account || q->indicator_id || q->econ_class ||
        q->econ_classes || q->settle_method || q->payee_type)
        return 0;
    if (sync_cache(c) != 0)
        return -1;
    r->count = r->total = 0;
    char key[512];
    size_t klen = pair_key(key, sizeof key, q->unit_code, q->payee_account);
    if (!klen)
        return 0;
    long pi = pair_find(c, key, klen, 0);
    if (pi < 0)
        return 1;
    const vc_pair *p = &c->pairs[pi];
    /* The SQL path's bounds: 0 means "no bound" for since and until. */
    int64_t since = q->since ? q->since : INT64_MIN;
    int64_t until = q->until ? q->until : INT64_MAX;
    uint32_t lo = 0, hi = p->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (c->ents[p->ids[mid]].created_at < since)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t exl = q->exclude_voucher ? strlen(q->exclude_voucher) : 0;
    for (uint32_t i = lo; i < p->n; i++) {
        const vc_entry *x = &c->ents[p->ids[i]];
        if (x->created_at > until)
            break;
        if (!x->spend || (q->has_amount && x->amount != q->amount) ||
            (q->amount_below > 0 && x->amount >= q->amount_below))
            continue;
        if (q->exclude_voucher && x->vno_len == exl &&
            memcmp(c->arena + x->vno_off, q->exclude_voucher, exl) == 0)
            continue;
        r->count++;
        r->total += x->amount;
    }
    return 1;
}

/* ---- indicators ---- */

static uint32_t *ind_slot(fw_vcache *c, const char *id, size_t n)
{
    size_t mask = c->indcap - 1;
    for (size_t i = hash_bytes(id, n) & mask;; i = (i + 1) & mask) {
        if (!c->indmap[i])
            return &c->indmap[i];
        const char *k = c->inds[c->indmap[i] - 1].ind.indicator_id;
        if (strncmp(k, id, n) == 0 && k[n] == '\0')
            return &c->indmap[i];
    }
}

static void ind_grow(fw_vcache *c)
{
    size_t cap = c->indcap ? c->indcap * 2 : 2048;
    free(c->indmap);
    c->indmap = calloc(cap, sizeof *c->indmap);
    if (!c->indmap)
        abort();
    c->indcap = cap;
    for (size_t e = 0; e < c->ninds; e++) {
        const char *k = c->inds[e].ind.indicator_id;
        *ind_slot(c, k, strlen(k)) = (uint32_t)e + 1;
    }
}

int fw_vcache_indicator(fw_vcache *c, const char *id, fw_indicator *out)
{
    size_t n = id ? strlen(id) : 0;
    if (!id || n >= sizeof out->indicator_id)
        return fw_ledger_get_indicator(c->l, id, out);
    if (dv_check(c, &c->ind_dv, &c->igen) != 0)
        return -1;
    if (!c->indcap)
        ind_grow(c);
    uint32_t *slot = ind_slot(c, id, n);
    if (*slot && c->inds[*slot - 1].gen == c->igen) {
        const ic_entry *e = &c->inds[*slot - 1];
        if (e->found && out)
            *out = e->ind;
        return e->found;
    }
    fw_indicator ind;
    int rc = fw_ledger_get_indicator(c->l, id, &ind);
    c->ind_reads++;
    if (rc < 0)
        return -1;
    uint32_t idx;
    if (*slot) {
        idx = *slot - 1;
    } else {
        if (c->ninds >= IND_MAX) { /* junk ids: start again */
            c->ninds = 0;
            memset(c->indmap, 0, c->indcap * sizeof *c->indmap);
            slot = ind_slot(c, id, n);
        }
        if (c->ninds == c->capinds) {
            c->capinds = c->capinds ? c->capinds * 2 : 1024;
            c->inds = xrealloc(c->inds, c->capinds * sizeof *c->inds);
        }
        idx = (uint32_t)c->ninds++;
        memcpy(c->inds[idx].ind.indicator_id, id, n + 1); /* the key, before a rehash */
        *slot = idx + 1;
        if (c->ninds * 2 > c->indcap)
            ind_grow(c);
    }
    ic_entry *e = &c->inds[idx];
    e->was_valid = 0;
    e->found = rc;
    if (rc)
        e->ind = ind;
    else
        memset(&e->ind, 0, sizeof e->ind);
    memcpy(e->ind.indicator_id, id, n + 1); /* the key, as asked (SQL's id is equal) */
    e->gen = c->igen;
    if (rc && out)
        *out = ind;
    return rc;
}

static fw_vcache *attached_to(fw_ledger *l)
{
    if (!l)
        return NULL;
    sqlite3 *db = fw_store_db(l->st);
    for (size_t i = 0; i < sizeof attached / sizeof attached[0]; i++)
        if (attached[i] && attached[i]->db == db)
            return attached[i];
    return NULL;
}

fw_vcache *fw_vcache_of(fw_ledger *l)
{
    return attached_to(l);
}

void fw_vcache_indicator_written(fw_ledger *l, const char *id)
{
    fw_vcache *c = attached_to(l);
    if (!c)
        return;
    c->txn_ind_writes++;
    size_t n = id ? strlen(id) : 0;
    if (!c->indcap || n >= sizeof c->inds[0].ind.indicator_id)
        return; /* never cached */
    uint32_t *slot = ind_slot(c, id, n);
    if (*slot) {
        ic_entry *e = &c->inds[*slot - 1];
        e->was_valid = e->gen == c->igen;
        e->was_gen = c->igen;
        e->gen = 0;
    }
}

void fw_vcache_indicator_balances(fw_ledger *l, const fw_indicator *ind)
{
    fw_vcache *c = attached_to(l);
    size_t n = strlen(ind->indicator_id);
    if (!c || !c->indcap || n >= sizeof ind->indicator_id - 1)
        return; /* a 63-byte id may be a truncated one: leave it dropped */
    uint32_t *slot = ind_slot(c, ind->indicator_id, n);
    if (!*slot)
        return;
    ic_entry *e = &c->inds[*slot - 1];
    /* Only an entry that was valid when fw_vcache_indicator_written dropped
     * it just before this UPDATE, and still in this generation: its other
     * columns are unchanged, the balances are what the UPDATE wrote. */
    if (!e->was_valid || e->was_gen != c->igen || !e->found)
        return;
    e->was_valid = 0;
    e->ind.allocated = ind->allocated;
    e->ind.frozen = ind->frozen;
    e->ind.paid = ind->paid;
    e->ind.available = ind->allocated - ind->frozen - ind->paid;
    e->gen = c->igen;
}

void fw_vcache_voucher_inserted(fw_ledger *l, int64_t rowid, const char *unit_code,
                                const char *payee_account, int64_t created_at, int64_t amount,
                                const char *voucher_no)
{
    fw_vcache *c = attached_to(l);
    /* Only when the update hook's last note is this very insert: then every
     * other pending row is still re-read, and this one's columns are the
     * values just bound (an INTEGER PRIMARY KEY table, TEXT/INTEGER columns
     * that keep them as given, no trigger).  A cache to be reloaded anyway
     * is left alone. */
    if (!c || !c->loaded || c->invalid || !c->npending || c->pending[c->npending - 1] != rowid ||
        !unit_code || !payee_account || !voucher_no)
        return;
    put_values(c, rowid, unit_code, payee_account, created_at, amount, 1, voucher_no);
    c->npending--;
}

void fw_vcache_voucher_state_updated(fw_ledger *l, int64_t rowid, int spend_cleared)
{
    fw_vcache *c = attached_to(l);
    if (!c || !c->loaded || c->invalid || !c->npending || c->pending[c->npending - 1] != rowid ||
        !c->rowcap)
        return;
    uint32_t *slot = row_slot(c, rowid);
    if (!*slot || !c->ents[*slot - 1].live)
        return; /* not held: re-read as any other write */
    if (spend_cleared)
        c->ents[*slot - 1].spend = 0;
    c->npending--;
}

long fw_vcache_row_reads(const fw_vcache *c)
{
    return c ? c->row_reads : 0;
}

long fw_vcache_indicator_reads(const fw_vcache *c)
{
    return c ? c->ind_reads : 0;
}

/* ---- voucher records ---- */

static uint32_t *rec_slot(fw_vcache *c, const char *no, size_t n)
{
    size_t mask = c->reccap - 1;
    for (size_t i = hash_bytes(no, n) & mask;; i = (i + 1) & mask) {
        if (!c->recmap[i])
            return &c->recmap[i];
        const char *k = c->recs[c->recmap[i] - 1].no;
        if (strncmp(k, no, n) == 0 && k[n] == '\0')
            return &c->recmap[i];
    }
}

static void rec_grow(fw_vcache *c)
{
    size_t cap = c->reccap ? c->reccap * 2 : 4096;
    free(c->recmap);
    c->recmap = calloc(cap, sizeof *c->recmap);
    if (!c->recmap)
        abort();
    c->reccap = cap;
    for (size_t e = 0; e < c->nrecs; e++) {
        const char *k = c->recs[e].no;
        *rec_slot(c, k, strlen(k)) = (uint32_t)e + 1;
    }
}

/* The entry of that number (n < REC_NO_MAX), made (not valid) if absent. */
static vr_entry *rec_entry(fw_vcache *c, const char *no, size_t n)
{
    if (!c->reccap)
        rec_grow(c);
    uint32_t *slot = rec_slot(c, no, n);
    if (*slot)
        return &c->recs[*slot - 1];
    if (c->nrecs >= REC_MAX) { /* start again: the recent vouchers come back */
        c->nrecs = 0;
        memset(c->recmap, 0, c->reccap * sizeof *c->recmap);
        slot = rec_slot(c, no, n);
    }
    if (c->nrecs == c->caprecs) {
        c->caprecs = c->caprecs ? c->caprecs * 2 : 4096;
        c->recs = xrealloc(c->recs, c->caprecs * sizeof *c->recs);
    }
    uint32_t idx = (uint32_t)c->nrecs++;
    vr_entry *e = &c->recs[idx];
    e->gen = 0;
    memcpy(e->no, no, n + 1); /* the key, before a rehash */
    *slot = idx + 1;
    if (c->nrecs * 2 > c->reccap)
        rec_grow(c);
    return &c->recs[idx];
}

/* Drop every record when something else may have changed the rows they
 * hold: another connection's commit (checked once per transaction), or a
 * row of vouchers / voucher_events written outside the ledger's voucher
 * operations (the update hook counted more rows than those accounted for). */
static int rec_check_other_writers(fw_vcache *c)
{
    if (c->rec_rows_hooked != c->rec_rows_seen) {
        c->rgen++;
        c->rec_rows_seen = c->rec_rows_hooked;
    }
    return dv_check(c, &c->rec_dv, &c->rgen);
}

/* 1 when no voucher of that number exists as the connection sees it: once
 * sync_cache has brought the entries up to the table, every number in the
 * table has its fingerprint in the set.  0: it may exist, or the cache
 * cannot tell (a store error): ask SQL. */
static int no_absent(fw_vcache *c, const char *no, size_t n)
{
    if (!no || sync_cache(c) != 0)
        return 0;
    if (c->nocap && *no_slot(c, no_fingerprint(no, n)))
        return 0;
    c->absent_answers++;
    return 1;
}

int fw_vcache_voucher(fw_vcache *c, const char *no, fw_voucher_rec *out)
{
    size_t n = no ? strlen(no) : 0;
    if (!no || n >= REC_NO_MAX)
        return no_absent(c, no, n) ? 0 : fw_ledger_voucher_rec(c->l, no, out);
    if (rec_check_other_writers(c) != 0)
        return -1;
    if (c->reccap) {
        uint32_t *slot = rec_slot(c, no, n);
        const vr_entry *e = *slot ? &c->recs[*slot - 1] : NULL;
        if (e && e->gen == c->rgen) {
            if (e->found)
                *out = e->rec;
            return e->found;
        }
    }
    /* Not kept as a record: a new number is most of these (every
     * voucher.created asks for its own), answered without SQL and without
     * taking a record's place. */
    if (no_absent(c, no, n))
        return 0;
    vr_entry *e = rec_entry(c, no, n);
    int rc = fw_ledger_voucher_rec(c->l, no, out);
    c->rec_reads++;
    if (rc < 0)
        return -1;
    e->found = rc;
    if (rc)
        e->rec = *out;
    e->gen = c->rgen;
    return rc;
}

int fw_vcache_voucher_peek(fw_vcache *c, const char *no, fw_voucher_rec *out)
{
    size_t n = no ? strlen(no) : 0;
    if (!no || n >= REC_NO_MAX)
        return -2;
    if (rec_check_other_writers(c) != 0)
        return -1;
    uint32_t *slot = c->reccap ? rec_slot(c, no, n) : NULL;
    if (!slot || !*slot || c->recs[*slot - 1].gen != c->rgen)
        return no_absent(c, no, n) ? 0 : -2;
    const vr_entry *e = &c->recs[*slot - 1];
    if (e->found)
        *out = e->rec;
    return e->found;
}

void fw_vcache_voucher_begin(fw_vcache *c, const char *no)
{
    size_t n = no ? strlen(no) : 0;
    c->txn_rec_writes++;
    c->rec_op = rec_check_other_writers(c) == 0;
    c->rec_op_gen = c->rgen;
    if (!no || n >= REC_NO_MAX || !c->reccap)
        return;
    uint32_t *slot = rec_slot(c, no, n);
    if (*slot)
        c->recs[*slot - 1].gen = 0;
}

void fw_vcache_voucher_put(fw_vcache *c, const char *no, const fw_voucher_rec *rec)
{
    size_t n = no ? strlen(no) : 0;
    if (!c->rec_op)
        return;
    c->rec_op = 0;
    /* The rows written since _begin are the operation's own; another
     * connection's commit in between (autocommit mode) leaves the entry
     * dropped. */
    c->rec_rows_seen = c->rec_rows_hooked;
    if (rec_check_other_writers(c) != 0 || c->rgen != c->rec_op_gen)
        return;
    if (!no || n >= REC_NO_MAX)
        return;
    vr_entry *e = rec_entry(c, no, n);
    e->found = rec != NULL;
    if (rec)
        e->rec = *rec;
    e->gen = c->rgen;
}

long fw_vcache_voucher_reads(const fw_vcache *c)
{
    return c ? c->rec_reads : 0;
}

long fw_vcache_absent_answers(const fw_vcache *c)
{
    return c ? c->absent_answers : 0;
}
