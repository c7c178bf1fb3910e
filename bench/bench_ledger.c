/*
 * bench_ledger.c - ledger throughput and the cost of its views.
 *
 *   bench_ledger [VOUCHERS] [BATCH]     (defaults: 50000, 500)
 *
 * On a database file in TMPDIR (WAL, synchronous=FULL, the daemon's
 * durable setting) it builds one indicator funded by an allocation and by
 * transfers from three others (each with its own documents), then runs
 * VOUCHERS vouchers through created -> signed -> sent -> paid on it, with an
 * adjust every 100 vouchers, in transactions of BATCH operations.  Reported:
 * operations applied and committed per second (fw_ledger_apply + commit;
 * decoding is timed apart), and the same with a commit per operation on a
 * short run.  With the default 50,000 vouchers the indicator ends with
 * 100,000+ entries (a freeze and a post per voucher); then the latency of
 * fw_ledger_indicator_view, fw_ledger_trace_view (a voucher on it: trace to
 * its funding documents and through the transfers to their sources) and
 * fw_ledger_entries_view(limit 100) is measured over repeated calls:
 * median, p99, max.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/event.h"
#include "daemon/ledger.h"
#include "daemon/log.h"
#include "daemon/money.h"
#include "daemon/store.h"
#include "daemon/timeutil.h"
#include "tests/support/harness.h"

#define T0 1717380900LL /* 2024-06-03T10:15:00+08:00 */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct bench {
    fw_store *st;
    fw_ledger *l;
    int batch, in_batch;
    long ops;
    double t_apply, t_commit, t_decode;
} bench;

static void die(const char *what)
{
    fprintf(stderr, "bench_ledger: %s\n", what);
    exit(1);
}

static void commit(bench *b)
{
    double t = now_s();
    if (fw_store_commit(b->st) != 0)
        die("commit failed");
    b->t_commit += now_s() - t;
    b->in_batch = 0;
}

/* Decode (timed apart), then apply inside the open batch; commit every
 * `batch` operations. */
static void op(bench *b, const char *subject, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void op(bench *b, const char *subject, const char *fmt, ...)
{
    char json[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(json, sizeof json, fmt, ap);
    va_end(ap);
    fw_event ev;
    fw_decode_error e;
    double t = now_s();
    if (fw_event_decode(subject, json, strlen(json), &ev, &e) != 0) {
        fprintf(stderr, "decode: %s: %s: %s\n", json, e.field, e.reason);
        exit(1);
    }
    double t1 = now_s();
    b->t_decode += t1 - t;
    if (b->in_batch == 0 && fw_store_begin(b->st) != 0)
        die("begin failed");
    fw_ledger_result res;
    if (fw_ledger_apply(b->l, &ev, &res) != 0)
        die("apply failed");
    b->t_apply += now_s() - t1;
    fw_event_clear(&ev);
    b->ops++;
    if (++b->in_batch >= b->batch)
        commit(b);
}

static const char *tm(int64_t at, char buf[40])
{
    return fw_time_format(at, buf, 40);
}

static void allocate(bench *b, const char *id, int64_t fen, int64_t at)
{
    char y[32], t[40];
    op(b, "fiscal.indicator.101001",
       "{\"id\":\"al-%s-%lld\",\"op\":\"allocate\",\"occurred_at\":\"%s\",\"doc_no\":"
       "\"三财预〔2024〕%lld号\","
       "\"indicator_id\":\"%s\",\"year\":2024,\"unit_code\":\"101001\",\"func_class\":\"2050201\","
       "\"econ_class\":\"30201\",\"amount\":\"%s\",\"flags\":[\"direct\"]}",
       id, (long long)at, tm(at, t), (long long)(at % 1000), id, fw_money_format(fen, y, 32));
}

static void transfer(bench *b, const char *from, const char *to, int64_t fen, int64_t at)
{
    char y[32], t[40];
    op(b, "fiscal.indicator.101001",
       "{\"id\":\"tr-%s-%s-%lld\",\"op\":\"transfer\",\"occurred_at\":\"%s\",\"doc_no\":\"调剂%"
       "lld\","
       "\"indicator_id\":\"%s\",\"from_indicator_id\":\"%s\",\"unit_code\":\"101001\","
       "\"amount\":\"%s\"}",
       from, to, (long long)at, tm(at, t), (long long)at, to, from, fw_money_format(fen, y, 32));
}

static void voucher_flow(bench *b, long i, const char *ind, int64_t at)
{
    char y[32], t[40];
    op(b, "fiscal.voucher.101001",
       "{\"id\":\"vc-%ld\",\"event\":\"created\",\"occurred_at\":\"%s\",\"voucher_no\":\"ZF%08ld\","
       "\"year\":2024,\"unit_code\":\"101001\",\"unit_name\":\"三门峡市教育局\","
       "\"indicator_id\":\"%s\",\"func_class\":\"2050201\",\"econ_class\":\"30201\","
       "\"pay_method\":\"direct\",\"settle_method\":\"transfer\",\"payee_name\":\"某公司%ld\","
       "\"payee_account\":\"4105016688080%07ld\",\"payee_bank\":\"建设银行\","
       "\"payee_type\":\"company\",\"amount\":\"%s\",\"purpose\":\"办公用品采购\"}",
       i, tm(at, t), i, ind, i % 500, i % 5000, fw_money_format(1000 + (i * 7919) % 900000, y, 32));
    static const char *const evs[] = {"signed", "sent", "paid"};
    for (int k = 0; k < 3; k++)
        op(b, "fiscal.voucher.101001",
           "{\"id\":\"v%c-%ld\",\"event\":\"%s\",\"occurred_at\":\"%s\",\"voucher_no\":\"ZF%08ld\","
           "\"unit_code\":\"101001\"}",
           evs[k][1], i, evs[k], tm(at + 60 * (k + 1), t), i);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void time_view(const char *name, int reps, json_t *(*fn)(fw_ledger *, const char *, int),
                      fw_ledger *l, const char *arg, int n)
{
    double *t = malloc(sizeof(double) * (size_t)reps);
    size_t bytes = 0;
    for (int i = 0; i < reps; i++) {
        double s = now_s();
        json_t *v = fn(l, arg, n);
        t[i] = (now_s() - s) * 1000.0;
        if (!v)
            die("view returned NULL");
        if (i == 0) {
            char *text = json_dumps(v, JSON_COMPACT);
            bytes = text ? strlen(text) : 0;
            free(text);
        }
        json_decref(v);
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_d);
    printf("  %-34s median %7.3f ms  p99 %7.3f ms  max %7.3f ms  (%d calls, %zu bytes JSON)\n",
           name, t[reps / 2], t[(reps * 99) / 100], t[reps - 1], reps, bytes);
    free(t);
}

static json_t *indicator_view(fw_ledger *l, const char *id, int n)
{
    (void)n;
    return fw_ledger_indicator_view(l, id);
}
static json_t *trace_view(fw_ledger *l, const char *no, int n)
{
    (void)n;
    return fw_ledger_trace_view(l, no);
}

int main(int argc, char **argv)
{
    long vouchers = argc > 1 ? atol(argv[1]) : 50000;
    int batch = argc > 2 ? atoi(argv[2]) : 500;
    if (vouchers < 10 || batch < 1)
        die("usage: bench_ledger [VOUCHERS>=10] [BATCH>=1]");
    fw_log_set_level(FW_LOG_WARN);
    printf("command: %s %ld %d\n", argv[0], vouchers, batch);

    char *dir = fw_t_tmpdir("bench_ledger");
    char path[1024], err[256];
    snprintf(path, sizeof path, "%s/ledger.db", dir);
    bench b = {.batch = batch};
    b.st = fw_store_open(path, fw_ledger_migrations, fw_ledger_nmigrations, 0, FW_SYNC_FULL, err,
                         sizeof err);
    if (!b.st)
        die(err);
    b.l = fw_ledger_new(b.st);
    printf("store: %s (WAL, synchronous=FULL), sqlite %s\n", path, sqlite3_libversion());

    /* Funding: BIG gets an allocation and transfers from three sources,
     * each with two allocations of its own. */
    int64_t at = T0 - 86400 * 100;
    const char *srcs[] = {"ZB2024-101001-S1", "ZB2024-101001-S2", "ZB2024-101001-S3"};
    for (int i = 0; i < 3; i++) {
        allocate(&b, srcs[i], 500000000000LL, at++);
        allocate(&b, srcs[i], 100000000000LL, at++);
    }
    const char *big = "ZB2024-101001-BIG";
    allocate(&b, big, 1000000000LL, at++);
    for (int i = 0; i < 3; i++)
        transfer(&b, srcs[i], big, 300000000000LL, at++);

    /* The measured run. */
    double wall = now_s();
    b.ops = 0, b.t_apply = b.t_commit = b.t_decode = 0;
    for (long i = 0; i < vouchers; i++) {
        voucher_flow(&b, i, big, T0 + i * 30);
        if (i % 100 == 99)
            op(&b, "fiscal.indicator.101001",
               "{\"id\":\"adj-%ld\",\"op\":\"adjust\",\"occurred_at\":\"%s\",\"doc_no\":\"追加%"
               "ld\","
               "\"indicator_id\":\"%s\",\"unit_code\":\"101001\",\"amount\":\"100.00\"}",
               i, tm(T0 + i * 30, (char[40]){0}), i, big);
    }
    if (b.in_batch)
        commit(&b);
    wall = now_s() - wall;
    printf("\nledger operations, %ld in transactions of %d:\n", b.ops, batch);
    printf("  apply+commit   %9.0f ops/s  (apply %.2f s, commit %.2f s; %.1f us/op)\n",
           (double)b.ops / (b.t_apply + b.t_commit), b.t_apply, b.t_commit,
           1e6 * (b.t_apply + b.t_commit) / (double)b.ops);
    printf("  with decode    %9.0f ops/s  (decode %.2f s)   wall %.2f s\n",
           (double)b.ops / (b.t_apply + b.t_commit + b.t_decode), b.t_decode, wall);

    /* One commit per operation, for comparison (fsync-bound). */
    bench one = b;
    one.batch = 1, one.in_batch = 0, one.ops = 0;
    one.t_apply = one.t_commit = one.t_decode = 0;
    allocate(&one, "ZB2024-101001-ONE", 100000000000LL, T0);
    one.ops = 0, one.t_apply = one.t_commit = 0;
    for (long i = 0; i < 250; i++)
        voucher_flow(&one, 10000000 + i, "ZB2024-101001-ONE", T0 + i);
    printf("  commit per op  %9.0f ops/s  (%ld ops)\n",
           (double)one.ops / (one.t_apply + one.t_commit), one.ops);

    fw_indicator ind;
    if (fw_ledger_get_indicator(b.l, big, &ind) != 1)
        die("indicator missing");
    sqlite3_stmt *s = fw_store_stmt(b.st, "SELECT count(*) FROM ledger_entries"
                                          " WHERE indicator_id = ?1");
    fw_bind_text(s, 1, big);
    sqlite3_step(s);
    long long entries = sqlite3_column_int64(s, 0);
    fw_store_done(s);
    char ya[32], yp[32];
    printf("\nviews on %s: %lld entries, allocated %s, paid %s\n", big, entries,
           fw_money_format(ind.allocated, ya, 32), fw_money_format(ind.paid, yp, 32));
    char no[32];
    snprintf(no, sizeof no, "ZF%08ld", vouchers / 2);
    time_view("fw_ledger_indicator_view", 2000, indicator_view, b.l, big, 0);
    time_view("fw_ledger_trace_view (voucher)", 500, trace_view, b.l, no, 0);
    time_view("fw_ledger_entries_view (limit 100)", 500, fw_ledger_entries_view, b.l, big, 100);
    char err2[256];
    double t = now_s();
    int inv = fw_ledger_check_invariants(b.l, err2, sizeof err2);
    printf("  fw_ledger_check_invariants (full scan) %.1f ms: %s\n", (now_s() - t) * 1000.0,
           inv == 0 ? "ok" : err2);

    fw_ledger_free(b.l);
    fw_store_close(b.st);
    fw_t_rmtree(dir);
    free(dir);
    return inv == 0 ? 0 : 1;
}
