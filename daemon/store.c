/* store.c - see store.h */
#include "daemon/store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/log.h"
#include "daemon/metrics.h"

/* Prepared statements are cached in an open-addressing table keyed by the
 * SQL text.  Callers pass string literals, so the pointer is checked first
 * and the text only on a pointer miss. */
typedef struct stmt_slot {
    const char *sql; /* owned copy */
    sqlite3_stmt *stmt;
} stmt_slot;

/* The loop asks the checkpointer thread for a checkpoint once this many
 * frames were appended since its last request (4 MiB of 4 KiB pages): what
 * is left to copy when the intake is held for a big WAL stays small, and a
 * page rewritten by several batches is copied once per step (in bench_e2e,
 * steps of 1 MiB took ~15% more of the checkpointer's CPU, and 1.7 times
 * as many checkpoints, each with its fdatasyncs). */
static const int k_ckpt_frames = 1024;
/* The WAL restarts (is written from its start again) only when a checkpoint
 * copied all of it and no reader needs it; while batches keep coming, each
 * checkpoint copies what was committed when it started, and the WAL grows.
 * Past this size (64 MiB) the intake is held for one quiet moment (see
 * fw_store_wal_too_big). */
static const int k_wal_max_frames = 16384;
/* While the WAL is too big and a reader keeps a checkpoint from copying
 * all of it, the checkpointer tries again this often. */
static const long k_ckpt_retry_ns = 5 * 1000 * 1000;

struct fw_store {
    sqlite3 *db;
    char *path;
    int depth; /* nested begin count */
    stmt_slot *slots;
    size_t nslots, nused;

    /* Deferred durability (see store.h).  Loop-only fields first. */
    fw_sync_mode sync;
    int deferred;         /* the sync and checkpointer threads run */
    int deferring;        /* inside fw_store_commit_deferred's COMMIT */
    int hook_error;       /* an inline fdatasync failed in the WAL hook */
    uint64_t commits;     /* commits made (WAL hook) */
    uint64_t durable;     /* highest commit known durable */
    int wal_frames;       /* frames in the WAL after the last commit */
    int unasked;          /* frames appended since the last checkpoint request */
    uint64_t asked;       /* the last checkpoint request (want_ckpt) */
    uint64_t asked_at;    /* ... made after this commit */
    int restart_ready;    /* a checkpoint after the last commit copied all */
    uint64_t checkpoints; /* checkpoints that copied frames, as last polled */
    int wal_fd, db_fd;    /* opened by the store for fdatasync only */
    int pipe_rd, pipe_wr;

    /* The checkpointer thread's own connection (see store.h): opened
     * before the thread starts, used by it alone, closed after it ends. */
    sqlite3 *ckpt_db;

    /* Shared with the sync and checkpointer threads: guarded by lock. */
    pthread_t thr, ckpt_thr;
    int ckpt_running;
    pthread_mutex_t lock;
    pthread_cond_t cond;           /* the sync thread waits on it */
    pthread_cond_t ckpt_cond;      /* the checkpointer waits on it */
    uint64_t want_wal, done_wal;   /* commit counts */
    uint64_t want_ckpt, done_ckpt; /* checkpoint requests */
    int want_full;                 /* the WAL is too big: copy all of it */
    int ckpt_log, ckpt_copied;     /* the last checkpoint's WAL and backfill */
    uint64_t ckpt_count;           /* checkpoints that copied frames */
    int sync_failed, ckpt_failed, stop;

    fw_metric *m_sync, *m_ckpt;
};

static const double k_sync_bounds[] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.025,
                                       0.05,   0.1,   0.25,  0.5,   1};

static double mono_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

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

/* ---- WAL writes coalesced (the "fw_walbuf" VFS) ----
 *
 * SQLite appends a WAL frame as two pwrite()s (its 24-byte header, then the
 * page), so a batch's COMMIT of a few hundred dirty pages made twice as
 * many system calls, each taking the inode lock and touching one or two
 * page-cache folios: the pwrites were ~19% of the loop under bench_intake.
 * The store's writing connection opens its files through this VFS, which is
 * the default (unix) VFS except that the WAL file buffers a run of
 * contiguous frames and writes it with one pwrite():
 *
 * - Only the pattern SQLite uses to append frames is buffered: a 24-byte
 *   frame header followed by a page-sized write right after it, each at
 *   the offset where the buffer ends.  Any other write (the WAL header at a
 *   restart, a frame rewritten in place) first writes out the buffer and
 *   then goes straight to the file.
 * - The buffer is written out when the frame just buffered is a commit
 *   frame (its header's "database size after commit" field is not zero:
 *   the WAL file format, https://sqlite.org/fileformat.html#walformat), and
 *   an error doing so is that frame's write error, so the COMMIT fails as
 *   it would have.  SQLite publishes a commit to other connections (the
 *   wal-index header) only after its last frame's write returned, so no
 *   reader, in this process or another, can be told about a frame that is
 *   not in the file yet.
 * - It is also written out before anything else touches the file (read,
 *   sync, size, truncate, file-control, lock, close) and when it is full:
 *   frames spilled before a commit (cache spill) may be read back by the
 *   writer, and reach the file before they are read.
 * - The connection runs with cache_spill=OFF once migrated (fw_store_open),
 *   so SQLite writes frames only inside a COMMIT, which ends with the commit
 *   frame: the buffer is empty whenever a transaction ends.  A frame spilled
 *   by a transaction that then rolled back would otherwise stay buffered,
 *   and be written out later over frames that another writer (a CLI
 *   process) may have committed at the same offsets meanwhile.  (A batch
 *   dirties a few MiB; the cache is 64 MiB.)
 * Nothing else changes: the same bytes reach the file at the same offsets,
 * before the commit is visible, and fdatasync (the sync thread's, or
 * SQLite's own with synchronous=FULL) sees them as before.  Files other
 * than the WAL are the unix VFS's own files, opened in place. */
#define WALBUF_VFS "fw_walbuf"
enum { WALBUF_CAP = 512 * 1024, WALBUF_PIECE = 124 * 1024, WAL_FRAME_HDR = 24 };

typedef struct walbuf_file {
    sqlite3_file base; /* pMethods = &walbuf_io */
    sqlite3_file *real;
    char *buf;
    int len;
    sqlite3_int64 off;  /* file offset of buf[0] */
    int want_page;      /* a frame header is buffered, its page comes next */
    int commit_pending; /* that header is a commit frame's */
} walbuf_file;

static sqlite3_vfs *walbuf_real(sqlite3_vfs *v)
{
    return v->pAppData;
}

static int walbuf_flush(walbuf_file *w)
{
    int rc = SQLITE_OK;
    /* In pieces: the unix VFS writes at most 128 KiB - 1 bytes per call (it
     * masks the length: SQLite itself never writes more than a page). */
    for (int done = 0; rc == SQLITE_OK && done < w->len; done += WALBUF_PIECE) {
        int n = w->len - done < WALBUF_PIECE ? w->len - done : WALBUF_PIECE;
        rc = w->real->pMethods->xWrite(w->real, w->buf + done, n, w->off + done);
    }
    w->len = 0;
    w->want_page = w->commit_pending = 0;
    return rc;
}

static int walbuf_close(sqlite3_file *f)
{
    walbuf_file *w = (walbuf_file *)f;
    int rc = walbuf_flush(w);
    int rc2 = w->real->pMethods->xClose(w->real);
    sqlite3_free(w->buf);
    w->buf = NULL;
    return rc != SQLITE_OK ? rc : rc2;
}

static int walbuf_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off)
{
    walbuf_file *w = (walbuf_file *)f;
    int rc = walbuf_flush(w);
    return rc != SQLITE_OK ? rc : w->real->pMethods->xRead(w->real, p, n, off);
}

static int walbuf_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
    walbuf_file *w = (walbuf_file *)f;
    int header = n == WAL_FRAME_HDR && !w->want_page;
    int page = w->want_page && n > WAL_FRAME_HDR;
    int follows = w->len == 0 || off == w->off + w->len;
    if ((header || page) && follows && w->len + n <= WALBUF_CAP) {
        if (w->len == 0)
            w->off = off;
        memcpy(w->buf + w->len, p, (size_t)n);
        w->len += n;
        if (header) {
            const unsigned char *h = p;
            w->want_page = 1;
            w->commit_pending = (h[4] | h[5] | h[6] | h[7]) != 0;
            return SQLITE_OK;
        }
        w->want_page = 0;
        /* A commit frame: everything to the file before SQLite publishes
         * the commit. */
        return w->commit_pending ? walbuf_flush(w) : SQLITE_OK;
    }
    /* Anything else (or no room): what is buffered first, in order, then
     * this write straight to the file (a frame whose header went out this
     * way has its page follow the same way: want_page is cleared). */
    int rc = walbuf_flush(w);
    return rc != SQLITE_OK ? rc : w->real->pMethods->xWrite(w->real, p, n, off);
}

static int walbuf_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    walbuf_file *w = (walbuf_file *)f;
    int rc = walbuf_flush(w);
    return rc != SQLITE_OK ? rc : w->real->pMethods->xTruncate(w->real, size);
}

static int walbuf_sync(sqlite3_file *f, int flags)
{
    walbuf_file *w = (walbuf_file *)f;
    int rc = walbuf_flush(w);
    return rc != SQLITE_OK ? rc : w->real->pMethods->xSync(w->real, flags);
}

static int walbuf_size(sqlite3_file *f, sqlite3_int64 *size)
{
    walbuf_file *w = (walbuf_file *)f;
    int rc = walbuf_flush(w);
    return rc != SQLITE_OK ? rc : w->real->pMethods->xFileSize(w->real, size);
}

static int walbuf_lock(sqlite3_file *f, int level)
{
    walbuf_file *w = (walbuf_file *)f;
    int rc = walbuf_flush(w);
    return rc != SQLITE_OK ? rc : w->real->pMethods->xLock(w->real, level);
}

static int walbuf_unlock(sqlite3_file *f, int level)
{
    walbuf_file *w = (walbuf_file *)f;
    int rc = walbuf_flush(w);
    return rc != SQLITE_OK ? rc : w->real->pMethods->xUnlock(w->real, level);
}

static int walbuf_reserved(sqlite3_file *f, int *out)
{
    walbuf_file *w = (walbuf_file *)f;
    return w->real->pMethods->xCheckReservedLock(w->real, out);
}

static int walbuf_fcntl(sqlite3_file *f, int op, void *arg)
{
    walbuf_file *w = (walbuf_file *)f;
    int rc = walbuf_flush(w);
    return rc != SQLITE_OK ? rc : w->real->pMethods->xFileControl(w->real, op, arg);
}

static int walbuf_sector(sqlite3_file *f)
{
    walbuf_file *w = (walbuf_file *)f;
    return w->real->pMethods->xSectorSize(w->real);
}

static int walbuf_caps(sqlite3_file *f)
{
    walbuf_file *w = (walbuf_file *)f;
    return w->real->pMethods->xDeviceCharacteristics(w->real);
}

/* Version 1: SQLite uses neither shared memory nor memory mapping on a WAL
 * file. */
static const sqlite3_io_methods walbuf_io = {
    .iVersion = 1,
    .xClose = walbuf_close,
    .xRead = walbuf_read,
    .xWrite = walbuf_write,
    .xTruncate = walbuf_truncate,
    .xSync = walbuf_sync,
    .xFileSize = walbuf_size,
    .xLock = walbuf_lock,
    .xUnlock = walbuf_unlock,
    .xCheckReservedLock = walbuf_reserved,
    .xFileControl = walbuf_fcntl,
    .xSectorSize = walbuf_sector,
    .xDeviceCharacteristics = walbuf_caps,
};

static int walbuf_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags, int *out)
{
    sqlite3_vfs *real = walbuf_real(v);
    if (!(flags & SQLITE_OPEN_WAL))
        return real->xOpen(real, name, f, flags, out); /* the unix file itself */
    walbuf_file *w = (walbuf_file *)f;
    memset(w, 0, sizeof *w);
    w->real = (sqlite3_file *)(w + 1);
    w->buf = sqlite3_malloc(WALBUF_CAP);
    if (!w->buf)
        return SQLITE_NOMEM;
    int rc = real->xOpen(real, name, w->real, flags, out);
    if (rc != SQLITE_OK) {
        sqlite3_free(w->buf);
        w->buf = NULL;
        w->base.pMethods = NULL; /* nothing to close */
        return rc;
    }
    w->base.pMethods = &walbuf_io;
    return SQLITE_OK;
}

/* The rest is the unix VFS's, called with its own object (it keeps its
 * state in pAppData). */
static int walbuf_delete(sqlite3_vfs *v, const char *name, int dirsync)
{
    return walbuf_real(v)->xDelete(walbuf_real(v), name, dirsync);
}
static int walbuf_access(sqlite3_vfs *v, const char *name, int flags, int *out)
{
    return walbuf_real(v)->xAccess(walbuf_real(v), name, flags, out);
}
static int walbuf_fullpath(sqlite3_vfs *v, const char *name, int n, char *out)
{
    return walbuf_real(v)->xFullPathname(walbuf_real(v), name, n, out);
}
static void *walbuf_dlopen(sqlite3_vfs *v, const char *name)
{
    return walbuf_real(v)->xDlOpen(walbuf_real(v), name);
}
static void walbuf_dlerror(sqlite3_vfs *v, int n, char *msg)
{
    walbuf_real(v)->xDlError(walbuf_real(v), n, msg);
}
static void (*walbuf_dlsym(sqlite3_vfs *v, void *h, const char *sym))(void)
{
    return walbuf_real(v)->xDlSym(walbuf_real(v), h, sym);
}
static void walbuf_dlclose(sqlite3_vfs *v, void *h)
{
    walbuf_real(v)->xDlClose(walbuf_real(v), h);
}
static int walbuf_random(sqlite3_vfs *v, int n, char *out)
{
    return walbuf_real(v)->xRandomness(walbuf_real(v), n, out);
}
static int walbuf_sleep(sqlite3_vfs *v, int us)
{
    return walbuf_real(v)->xSleep(walbuf_real(v), us);
}
static int walbuf_time(sqlite3_vfs *v, double *out)
{
    return walbuf_real(v)->xCurrentTime(walbuf_real(v), out);
}
static int walbuf_lasterror(sqlite3_vfs *v, int n, char *out)
{
    return walbuf_real(v)->xGetLastError(walbuf_real(v), n, out);
}
static int walbuf_time64(sqlite3_vfs *v, sqlite3_int64 *out)
{
    return walbuf_real(v)->xCurrentTimeInt64(walbuf_real(v), out);
}

static sqlite3_vfs walbuf_vfs;
static pthread_once_t walbuf_once = PTHREAD_ONCE_INIT;

static void walbuf_register(void)
{
    sqlite3_vfs *real = sqlite3_vfs_find(NULL);
    if (!real || real->iVersion < 2)
        return; /* then the store opens with the default VFS */
    walbuf_vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)sizeof(walbuf_file) + real->szOsFile,
        .mxPathname = real->mxPathname,
        .zName = WALBUF_VFS,
        .pAppData = real,
        .xOpen = walbuf_open,
        .xDelete = walbuf_delete,
        .xAccess = walbuf_access,
        .xFullPathname = walbuf_fullpath,
        .xDlOpen = walbuf_dlopen,
        .xDlError = walbuf_dlerror,
        .xDlSym = walbuf_dlsym,
        .xDlClose = walbuf_dlclose,
        .xRandomness = walbuf_random,
        .xSleep = walbuf_sleep,
        .xCurrentTime = walbuf_time,
        .xGetLastError = walbuf_lasterror,
        .xCurrentTimeInt64 = walbuf_time64,
    };
    sqlite3_vfs_register(&walbuf_vfs, 0);
}

/* The VFS name for the store's writing connection (NULL: the default). */
static const char *walbuf_vfs_name(void)
{
    pthread_once(&walbuf_once, walbuf_register);
    return sqlite3_vfs_find(WALBUF_VFS) ? WALBUF_VFS : NULL;
}

/* ---- deferred durability ---- */

static void notify_loop(fw_store *st)
{
    char one = 1;
    if (write(st->pipe_wr, &one, 1) < 0 && errno != EAGAIN) {
        /* the loop reads it; a full pipe already wakes it */
    }
}

/* The sync thread: fdatasync the WAL up to the commit count asked for,
 * then tell the loop through the pipe.  It never calls SQLite.  fsync on
 * Linux writes back the inode's dirty pages whichever descriptor they were
 * written through. */
static void *sync_main(void *arg)
{
    fw_store *st = arg;
    pthread_setname_np(pthread_self(), "fw-walsync");
    pthread_mutex_lock(&st->lock);
    for (;;) {
        while (!st->stop && st->want_wal <= st->done_wal)
            pthread_cond_wait(&st->cond, &st->lock);
        if (st->want_wal <= st->done_wal)
            break; /* stop, and nothing left */
        uint64_t wal = st->want_wal;
        pthread_mutex_unlock(&st->lock);
        double t0 = mono_seconds();
        int rc = fdatasync(st->wal_fd) != 0 ? errno : 0;
        fw_metric_observe(st->m_sync, mono_seconds() - t0);
        if (rc)
            FW_ERROR("store.fsync_failed", "file=wal error=\"%s\"", strerror(rc));
        pthread_mutex_lock(&st->lock);
        if (rc) {
            /* After a failed fsync the kernel may have dropped the dirty
             * pages: nothing written since can be trusted to be on disk. */
            st->sync_failed = 1;
        } else {
            st->done_wal = wal;
        }
        pthread_mutex_unlock(&st->lock);
        notify_loop(st);
        pthread_mutex_lock(&st->lock);
        if (st->sync_failed)
            break;
    }
    pthread_mutex_unlock(&st->lock);
    return NULL;
}

/* The checkpointer thread: a PASSIVE checkpoint from its own connection
 * whenever the loop asks (after every ~4 MiB of WAL), then a word to the
 * loop.  The connection runs with synchronous=FULL, so SQLite itself
 * fdatasyncs the WAL before copying frames and the database file before
 * recording that the whole WAL was copied (store.h, points 2 and 3). */
static void *checkpoint_main(void *arg)
{
    fw_store *st = arg;
    pthread_setname_np(pthread_self(), "fw-checkpoint");
    int retry = 0, prev_log = 0, prev_copied = 0;
    pthread_mutex_lock(&st->lock);
    for (;;) {
        if (retry && !st->stop && st->want_ckpt <= st->done_ckpt) {
            /* The WAL is too big and a reader's snapshot (or another
             * process's checkpoint) kept this one from copying all of it:
             * again shortly, or at the next request. */
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += k_ckpt_retry_ns;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&st->ckpt_cond, &st->lock, &until);
        } else {
            while (!st->stop && st->want_ckpt <= st->done_ckpt)
                pthread_cond_wait(&st->ckpt_cond, &st->lock);
        }
        if (st->stop)
            break;
        uint64_t req = st->want_ckpt;
        int full = st->want_full;
        pthread_mutex_unlock(&st->lock);
        double t0 = mono_seconds();
        int log = -1, copied = -1;
        int rc =
            sqlite3_wal_checkpoint_v2(st->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
        int failed = rc != SQLITE_OK && rc != SQLITE_BUSY;
        if (failed)
            FW_ERROR("store.checkpoint_failed", "error=\"%s\"", sqlite3_errmsg(st->ckpt_db));
        /* Frames copied this time (or the WAL restarted since the last). */
        int progressed = rc == SQLITE_OK && copied > 0 && (copied != prev_copied || log < prev_log);
        if (progressed && copied < log && fdatasync(st->db_fd) != 0) {
            /* Not needed for safety (SQLite syncs the database file before
             * it records the whole WAL as copied), but then that sync, in
             * the checkpoint the intake may be held for, has only this
             * step's pages left to write, not those of the whole WAL. */
            FW_ERROR("store.fsync_failed", "file=db error=\"%s\"", strerror(errno));
            failed = 1;
        }
        double secs = mono_seconds() - t0;
        fw_metric_observe(st->m_ckpt, secs);
        FW_DEBUG("store.checkpoint", "wal_frames=%d backfilled=%d busy=%d ms=%.3f", log, copied,
                 rc == SQLITE_BUSY, secs * 1e3);
        prev_log = rc == SQLITE_OK ? log : prev_log;
        prev_copied = rc == SQLITE_OK ? copied : prev_copied;
        pthread_mutex_lock(&st->lock);
        /* The loop trusts a result only when the checkpoint started after
         * its last commit (the WAL may have restarted meanwhile). */
        st->ckpt_count += progressed;
        st->done_ckpt = req;
        st->ckpt_log = rc == SQLITE_OK ? log : -1;
        st->ckpt_copied = rc == SQLITE_OK ? copied : -1;
        if (failed)
            st->ckpt_failed = 1;
        pthread_mutex_unlock(&st->lock);
        notify_loop(st);
        pthread_mutex_lock(&st->lock);
        if (failed)
            break;
        retry = full && (rc == SQLITE_BUSY || copied < log);
    }
    pthread_mutex_unlock(&st->lock);
    return NULL;
}

/* Loop: ask the checkpointer for a checkpoint of what is committed now. */
static void ask_checkpoint(fw_store *st, int full)
{
    pthread_mutex_lock(&st->lock);
    st->asked = ++st->want_ckpt;
    st->want_full = full;
    pthread_cond_signal(&st->ckpt_cond);
    pthread_mutex_unlock(&st->lock);
    st->asked_at = st->commits;
    st->unasked = 0;
}

/* After every commit of the main database (SQLite calls it on the
 * committing thread, the loop, once the commit is in the WAL and visible
 * to other connections).  Commits other than fw_store_commit_deferred's are
 * made durable here and now, as synchronous=FULL would have. */
static int on_wal_commit(void *ud, sqlite3 *db, const char *name, int frames)
{
    (void)db;
    fw_store *st = ud;
    if (strcmp(name, "main") != 0)
        return SQLITE_OK;
    /* Fewer frames than before: this commit restarted the WAL. */
    st->unasked += frames < st->wal_frames ? frames : frames - st->wal_frames;
    st->wal_frames = frames;
    st->commits++;
    /* Whether the next commit restarts the WAL is known only from a
     * checkpoint that starts after this one. */
    st->restart_ready = 0;
    int full = frames >= k_wal_max_frames;
    if (full || st->unasked >= k_ckpt_frames)
        ask_checkpoint(st, full);
    if (st->deferring)
        return SQLITE_OK;
    if (fdatasync(st->wal_fd) != 0) {
        FW_ERROR("store.fsync_failed", "file=wal error=\"%s\"", strerror(errno));
        st->hook_error = 1;
        return SQLITE_IOERR;
    }
    st->durable = st->commits;
    return SQLITE_OK;
}

/* The checkpointer's connection: the default VFS (it never writes the WAL,
 * and the writer's WAL buffer is that connection's own), synchronous=FULL
 * for the checkpoint's own fdatasyncs, and a first read so that it has
 * the WAL open (a checkpoint on a connection without it does nothing). */
static int open_checkpointer_db(fw_store *st, char *err, int errlen)
{
    if (sqlite3_open_v2(st->path, &st->ckpt_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        snprintf(err, (size_t)errlen, "%s: cannot open the checkpointer's connection: %s", st->path,
                 st->ckpt_db ? sqlite3_errmsg(st->ckpt_db) : "out of memory");
        return -1;
    }
    sqlite3_busy_timeout(st->ckpt_db, 5000);
    char e[512];
    if (exec_sql(st->ckpt_db,
                 "PRAGMA synchronous=FULL; PRAGMA wal_autocheckpoint=0;"
                 "SELECT count(*) FROM sqlite_schema;",
                 e, sizeof e) != 0) {
        snprintf(err, (size_t)errlen, "%s: checkpointer: %s", st->path, e);
        return -1;
    }
    return 0;
}

static int start_deferred(fw_store *st, char *err, int errlen)
{
    char wal[1100];
    snprintf(wal, sizeof wal, "%s-wal", st->path);
    /* The WAL exists from the first write (migrations, meta) and lives as
     * long as this connection is open.  These descriptors stay open until
     * after sqlite3_close (see close_fds). */
    st->wal_fd = open(wal, O_RDONLY | O_CLOEXEC);
    st->db_fd = open(st->path, O_RDONLY | O_CLOEXEC);
    int p[2] = {-1, -1};
    if (st->wal_fd < 0 || st->db_fd < 0 || pipe(p) != 0) {
        snprintf(err, (size_t)errlen, "%s: cannot open for fdatasync: %s", wal, strerror(errno));
        return -1;
    }
    st->pipe_rd = p[0];
    st->pipe_wr = p[1];
    fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_NONBLOCK);
    fcntl(p[1], F_SETFL, fcntl(p[1], F_GETFL) | O_NONBLOCK);
    fcntl(p[0], F_SETFD, FD_CLOEXEC);
    fcntl(p[1], F_SETFD, FD_CLOEXEC);
    char e[512];
    /* wal_autocheckpoint=0 first: the pragma installs SQLite's own WAL hook,
     * which ours then replaces.  The writer never checkpoints. */
    if (exec_sql(st->db, "PRAGMA wal_autocheckpoint=0; PRAGMA synchronous=OFF;", e, sizeof e) !=
        0) {
        snprintf(err, (size_t)errlen, "%s: %s", st->path, e);
        return -1;
    }
    sqlite3_wal_hook(st->db, on_wal_commit, st);
    if (open_checkpointer_db(st, err, errlen) != 0)
        return -1;
    st->m_sync =
        fw_metric_histogram("fundwatch_wal_sync_seconds", "fdatasync of the WAL on the sync thread",
                            NULL, k_sync_bounds, 11);
    st->m_ckpt =
        fw_metric_histogram("fundwatch_checkpoint_seconds",
                            "WAL checkpoints on the checkpointer thread", NULL, k_sync_bounds, 11);
    pthread_mutex_init(&st->lock, NULL);
    pthread_cond_init(&st->cond, NULL);
    pthread_cond_init(&st->ckpt_cond, NULL);
    if (pthread_create(&st->thr, NULL, sync_main, st) != 0) {
        pthread_mutex_destroy(&st->lock);
        pthread_cond_destroy(&st->cond);
        pthread_cond_destroy(&st->ckpt_cond);
        snprintf(err, (size_t)errlen, "%s: cannot start the sync thread", st->path);
        return -1;
    }
    st->deferred = 1; /* from here on stop_deferred ends what runs */
    if (pthread_create(&st->ckpt_thr, NULL, checkpoint_main, st) != 0) {
        snprintf(err, (size_t)errlen, "%s: cannot start the checkpointer thread", st->path);
        return -1;
    }
    st->ckpt_running = 1;
    return 0;
}

static void stop_deferred(fw_store *st)
{
    if (st->deferred) {
        pthread_mutex_lock(&st->lock);
        st->stop = 1;
        pthread_cond_broadcast(&st->cond);
        pthread_cond_broadcast(&st->ckpt_cond);
        pthread_mutex_unlock(&st->lock);
        /* The sync thread finishes the fdatasyncs asked for; the
         * checkpointer only the checkpoint it is in. */
        if (st->ckpt_running)
            pthread_join(st->ckpt_thr, NULL);
        st->ckpt_running = 0;
        pthread_join(st->thr, NULL);
        pthread_mutex_destroy(&st->lock);
        pthread_cond_destroy(&st->cond);
        pthread_cond_destroy(&st->ckpt_cond);
        st->deferred = 0;
        /* SQLite checkpoints and deletes the WAL when the last connection
         * closes: with FULL it syncs the WAL before and the database after
         * copying (with OFF a power loss right after the close could lose
         * what the deleted WAL held). */
        sqlite3_wal_hook(st->db, NULL, NULL);
        sqlite3_exec(st->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
    }
    /* Before the main connection: the last connection to close checkpoints
     * and removes the WAL. */
    if (st->ckpt_db)
        sqlite3_close_v2(st->ckpt_db);
    st->ckpt_db = NULL;
}

/* After sqlite3_close: closing any descriptor of a file drops every POSIX
 * lock the process holds on it, SQLite's included. */
static void close_fds(fw_store *st)
{
    int fds[] = {st->wal_fd, st->db_fd, st->pipe_rd, st->pipe_wr};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    st->wal_fd = st->db_fd = st->pipe_rd = st->pipe_wr = -1;
}

int fw_store_commit_deferred(fw_store *st, uint64_t *ticket)
{
    int outer = st->depth == 1;
    st->deferring = st->deferred && outer;
    int rc = fw_store_commit(st);
    st->deferring = 0;
    if (!st->deferred) {
        /* full / normal / :memory:: as durable as the mode makes it, now. */
        if (rc == 0 && outer)
            st->commits++;
        st->durable = st->commits;
    } else if (rc == 0 && st->commits > st->durable) {
        pthread_mutex_lock(&st->lock);
        st->want_wal = st->commits;
        pthread_cond_signal(&st->cond);
        pthread_mutex_unlock(&st->lock);
    }
    *ticket = st->commits;
    return rc;
}

uint64_t fw_store_durable(const fw_store *st)
{
    return st->durable;
}

uint64_t fw_store_committed(const fw_store *st)
{
    return st->commits;
}

int fw_store_sync_fd(const fw_store *st)
{
    return st->deferred ? st->pipe_rd : -1;
}

int fw_store_sync_poll(fw_store *st)
{
    if (!st->deferred)
        return 0;
    char buf[64];
    while (read(st->pipe_rd, buf, sizeof buf) > 0)
        ;
    pthread_mutex_lock(&st->lock);
    uint64_t done = st->done_wal;
    uint64_t ckpt_done = st->done_ckpt;
    int log = st->ckpt_log, copied = st->ckpt_copied;
    st->checkpoints = st->ckpt_count;
    int failed = st->sync_failed || st->ckpt_failed;
    pthread_mutex_unlock(&st->lock);
    if (failed)
        return -1;
    if (done > st->durable)
        st->durable = done;
    /* A checkpoint asked for after the last commit saw all of the WAL; if
     * it copied all of it, the next write transaction restarts the WAL
     * (unless a reader still has a snapshot then). */
    if (ckpt_done >= st->asked && st->asked_at == st->commits && log >= 0 && copied >= log)
        st->restart_ready = 1;
    return 0;
}

int fw_store_sync_now(fw_store *st)
{
    if (!st->deferred || st->durable == st->commits)
        return 0;
    /* The WAL holds every committed frame (the WAL buffer is written out
     * at each commit frame); the sync thread may fdatasync the same
     * descriptor meanwhile, which is harmless. */
    if (fdatasync(st->wal_fd) != 0) {
        FW_ERROR("store.fsync_failed", "file=wal error=\"%s\"", strerror(errno));
        return -1;
    }
    st->durable = st->commits;
    return 0;
}

uint64_t fw_store_checkpoints(const fw_store *st)
{
    return st->checkpoints;
}

int fw_store_wal_too_big(const fw_store *st)
{
    return st->deferred && st->wal_frames >= k_wal_max_frames && !st->restart_ready;
}

fw_store *fw_store_open(const char *path, const fw_migration *migs, int nmigs, int readonly,
                        fw_sync_mode sync, char *err, int errlen)
{
    fw_store *st = calloc(1, sizeof *st);
    if (!st)
        goto oom;
    st->path = strdup(path);
    st->nslots = 256;
    st->sync = sync;
    st->wal_fd = st->db_fd = st->pipe_rd = st->pipe_wr = -1;
    st->slots = calloc(st->nslots, sizeof *st->slots);
    if (!st->path || !st->slots)
        goto oom;
    int memory = strcmp(path, ":memory:") == 0;
    if (!memory && !readonly && mkdir_parents(path) != 0) {
        snprintf(err, (size_t)errlen, "%s: cannot create directory: %s", path, strerror(errno));
        goto cleanup;
    }
    int flags = readonly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    /* The writing connection's WAL appends are coalesced (walbuf above). */
    const char *vfs = memory || readonly ? NULL : walbuf_vfs_name();
    if (sqlite3_open_v2(path, &st->db, flags | SQLITE_OPEN_NOMUTEX, vfs) != SQLITE_OK) {
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
    const char *pragmas = sync != FW_SYNC_NORMAL
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
        /* After the migrations (a big CREATE INDEX may spill): see walbuf. */
        if (vfs && exec_sql(st->db, "PRAGMA cache_spill=OFF", e, sizeof e) != 0) {
            snprintf(err, (size_t)errlen, "%s: %s", path, e);
            goto cleanup;
        }
        if (sync == FW_SYNC_DEFERRED && !memory && start_deferred(st, err, errlen) != 0)
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
    stop_deferred(st);
    for (size_t i = 0; i < st->nslots; i++) {
        if (st->slots && st->slots[i].sql) {
            sqlite3_finalize(st->slots[i].stmt);
            free((char *)st->slots[i].sql);
        }
    }
    free(st->slots);
    if (st->db)
        sqlite3_close_v2(st->db);
    close_fds(st);
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

int fw_store_read_begin(fw_store *st)
{
    if (st->depth > 0 || !sqlite3_get_autocommit(st->db))
        return 0;
    sqlite3_stmt *s = fw_store_stmt(st, "BEGIN");
    int rc = sqlite3_step(s);
    fw_store_done(s);
    return rc == SQLITE_DONE;
}

void fw_store_read_end(fw_store *st, int token)
{
    if (!token || sqlite3_get_autocommit(st->db))
        return;
    /* Nothing was written: COMMIT only ends the read snapshot. */
    sqlite3_stmt *s = fw_store_stmt(st, "COMMIT");
    sqlite3_step(s);
    fw_store_done(s);
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
