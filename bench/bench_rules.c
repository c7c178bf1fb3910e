/*
 * bench_rules.c - throughput of the rule engine on voucher.created.
 *
 *   bench_rules [RULES_DIR] [HISTORY_VOUCHERS] [MEASURED_VOUCHERS]
 *   (defaults: ./rules, 1000000, 20000; etc/ next to RULES_DIR or ./etc)
 *
 * Builds a ledger in an in-memory SQLite database (BENCH_RULES_FILE=1: a
 * file in TMPDIR, WAL, synchronous=NORMAL) with
 * 1,000 indicators over 100 units and HISTORY_VOUCHERS past vouchers (five
 * months, 5,000 payee accounts, a third paid, some cancelled), all through
 * fw_event_decode + fw_ledger_apply in transactions of 20,000.  Then feeds
 * MEASURED_VOUCHERS new vouchers through fw_rules_eval (every rule that sees
 * voucher.created) followed by fw_ledger_apply, the pipeline's order, and
 * reports vouchers/s and the p50/p99/max of the eval time per voucher.
 * Last, the sandbox overhead: evaluations with 1 and with 20 empty rules
 * give the cost of one rule call (budgets, overlay of the shared event,
 * ctx, pcall, environment check, metrics) and the fixed cost of an
 * evaluation (the event converted to the shared Lua table once).
 * The measured stream (see measure()): BENCH_STREAM=realistic (default:
 * working hours, few hits) or adversarial (the first round's: ~0.8 hits
 * per voucher).
 * BENCH_CLOCK=cpu measures thread CPU time instead of wall time (either
 * clock's own cost, an empty interval measured at the start and printed,
 * is subtracted from each timed evaluation);
 * BENCH_EVAL_ONLY=1 leaves the measured vouchers unapplied (profiling).
 */
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "daemon/event.h"
#include "daemon/hit.h"
#include "daemon/ledger.h"
#include "daemon/log.h"
#include "daemon/metrics.h"
#include "daemon/money.h"
#include "daemon/store.h"
#include "daemon/timeutil.h"
#include "lua/rules.h"
#include "tests/support/harness.h"

#define NUNITS 100
#define NIND 1000
#define NPAYEES 5000
#define T_START 1704067200LL /* 2024-01-01T00:00:00+08:00 minus 8h: near enough */

/* BENCH_CLOCK=cpu: time with this thread's CPU clock instead of the wall
 * clock, so that figures stay comparable on a loaded (shared) machine. */
static double now_s(void)
{
    static int cpu = -1;
    if (cpu < 0) {
        const char *c = getenv("BENCH_CLOCK");
        cpu = c && strcmp(c, "cpu") == 0;
    }
    struct timespec ts;
    clock_gettime(cpu ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* What an empty interval measures with now_s(): the clock's own cost.
 * The thread CPU clock is a system call (~0.5 us here: vDSO serves only
 * the wall clocks), and one voucher's evaluation is ~20 us, so each timed
 * evaluation has it subtracted; the figure is printed. */
static double clock_overhead_s(void)
{
    double d[101];
    for (int i = 0; i < 101; i++) {
        double a = now_s();
        d[i] = now_s() - a;
    }
    for (int i = 1; i < 101; i++) /* median, insertion sort */
        for (int j = i; j > 0 && d[j] < d[j - 1]; j--) {
            double x = d[j];
            d[j] = d[j - 1];
            d[j - 1] = x;
        }
    return d[50];
}

static uint64_t rng = 88172645463325252ULL;
static uint64_t xr(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void apply_json(fw_ledger *lg, const char *subject, const char *json)
{
    fw_event ev;
    fw_decode_error e;
    if (fw_event_decode(subject, json, strlen(json), &ev, &e) != 0) {
        fprintf(stderr, "decode: %s: %s\n%s\n", e.field, e.reason, json);
        exit(1);
    }
    fw_ledger_result res;
    if (fw_ledger_apply(lg, &ev, &res) != 0) {
        fprintf(stderr, "ledger apply failed\n");
        exit(1);
    }
    fw_event_clear(&ev);
}

/* A voucher.created body.  econ/purpose NULL: the history's (and the
 * adversarial stream's) choice, econ by indicator and purpose by seq. */
static int voucher_json(char *buf, size_t n, long seq, int64_t at, int unit, int ind, int payee,
                        int64_t fen, const char *settle, const char *econ, const char *purpose)
{
    char ts[40], amt[32];
    fw_time_format(at, ts, sizeof ts);
    fw_money_format(fen, amt, sizeof amt);
    return snprintf(
        buf, n,
        "{\"id\":\"evt-v%ld\",\"event\":\"created\",\"occurred_at\":\"%s\","
        "\"voucher_no\":\"ZF%09ld\",\"year\":2024,\"unit_code\":\"%06d\",\"unit_name\":\"单位%d\","
        "\"indicator_id\":\"ZB2024-%06d-%04d\",\"func_class\":\"2050201\",\"econ_class\":\"%s\","
        "\"pay_method\":\"direct\",\"settle_method\":\"%s\",\"payee_name\":\"供应商%d\","
        "\"payee_account\":\"6222%012d\",\"payee_bank\":\"建行\",\"payee_type\":\"%s\","
        "\"payer_name\":\"单位%d\",\"payer_account\":\"4105%012d\",\"fund_type\":\"1\","
        "\"amount\":\"%s\",\"purpose\":\"%s\"}",
        seq, ts, seq, 101000 + unit, unit, 101000 + unit, ind,
        econ ? econ : ((ind % 3) ? "30201" : "30211"), settle, payee, payee,
        payee % 10 == 0 ? "individual" : "company", unit, unit, amt,
        purpose ? purpose : ((seq % 7) ? "办公用品采购" : "会议费"));
}

static void voucher_event_json(char *buf, size_t n, long seq, long vno, int64_t at, int unit,
                               const char *event)
{
    char ts[40];
    fw_time_format(at, ts, sizeof ts);
    snprintf(buf, n,
             "{\"id\":\"evt-e%ld\",\"event\":\"%s\",\"occurred_at\":\"%s\",\"voucher_no\":"
             "\"ZF%09ld\",\"unit_code\":\"%06d\"%s}",
             seq, event, ts, vno, 101000 + unit,
             strcmp(event, "cancelled") == 0 ? ",\"reason\":\"作废\"" : "");
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---- the measured stream ----
 *
 * realistic (default): vouchers created on working days (weekends and the
 * holidays of etc/calendar/<year>.txt are not, its make-up days are) from
 * 08:30 to 17:30 business time (UTC+8), about one every 10 s of working
 * time; the econ class is the indicator's except for a planted 1.6%
 * (1 in 64); 1% are cash (100..3,000 yuan); payments to individuals are
 * official-card repayments (settle_method "card", 50..5,000 yuan); purposes
 * are ordinary descriptions of the econ class.  What a real day looks like:
 * a few hits per hundred vouchers.
 * adversarial (BENCH_STREAM=adversarial): the first round's stream, round
 * the clock (t0 + i*30 s: most vouchers fall at night or on a weekend), 2%
 * cash of up to 50,000 yuan, individuals paid by transfer in card-mandatory
 * classes, every 7th purpose "会议费" (too short): about 0.8 hits per
 * voucher, the worst case for the hit path. */

#define BIZ_ZONE (8 * 3600)

/* Dates (days since the epoch) listed as holiday / make-up workday. */
static int64_t cal_days[1024];
static char cal_kind[1024]; /* 'h' or 'w' */
static int ncal;

static void calendar_load(const char *etc, int year)
{
    char path[2300], line[512];
    snprintf(path, sizeof path, "%s/calendar/%d.txt", etc, year);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "bench: no calendar %s (weekends only)\n", path);
        return;
    }
    while (fgets(line, sizeof line, f) && ncal < 1024) {
        int y, m, d;
        char kind[16];
        if (line[0] == '#' || sscanf(line, "%d-%d-%d %15s", &y, &m, &d, kind) != 4)
            continue;
        cal_days[ncal] = fw_days_from_civil(y, m, d);
        cal_kind[ncal++] = kind[0];
    }
    fclose(f);
}

static int is_working_day(int64_t day)
{
    for (int i = 0; i < ncal; i++)
        if (cal_days[i] == day)
            return cal_kind[i] == 'w';
    int64_t wday = (day + 4) % 7; /* 1970-01-01 was a Thursday */
    return wday >= 1 && wday <= 5;
}

/* The first moment at or after t inside working hours (08:30-17:30). */
static int64_t next_working_time(int64_t t)
{
    for (;;) {
        int64_t local = t + BIZ_ZONE, day = local / 86400, sec = local % 86400;
        if (is_working_day(day) && sec >= 8 * 3600 + 1800 && sec < 17 * 3600 + 1800)
            return t;
        if (is_working_day(day) && sec < 8 * 3600 + 1800)
            return day * 86400 + 8 * 3600 + 1800 - BIZ_ZONE;
        t = (day + 1) * 86400 + 8 * 3600 + 1800 - BIZ_ZONE;
    }
}

static const char *const PURPOSE_30201[] = {"办公用品采购", "打印纸及墨盒采购",
                                            "办公设备维修配件采购", "档案盒及文具采购"};
static const char *const PURPOSE_30211[] = {"赴省厅参加业务培训差旅费", "市外调研差旅费",
                                            "差旅费报销（住宿及交通）"};

static void measure(fw_rules *r, fw_ledger *lg, fw_store *st, long first, int n, int64_t t0,
                    int adversarial, double *per, double *total)
{
    char json[4096], subj[64];
    fw_hit_list hits = {0};
    long hitc = 0, hit_vouchers = 0;
    /* BENCH_EVAL_ONLY=1: do not apply the measured vouchers (to profile
     * the evaluation alone; the figures are then not the pipeline's). */
    int eval_only = getenv("BENCH_EVAL_ONLY") != NULL;
    int64_t at = next_working_time(t0);
    double clock_cost = clock_overhead_s();
    printf("clock: an empty interval reads %.3f us (%s clock), subtracted from each evaluation\n",
           clock_cost * 1e6, getenv("BENCH_CLOCK") ? getenv("BENCH_CLOCK") : "wall");
    double start = now_s();
    fw_store_begin(st);
    for (int i = 0; i < n; i++) {
        int unit = (int)(xr() % NUNITS), ind = unit * 10 + (int)(xr() % 10);
        int payee = (int)(xr() % NPAYEES);
        int64_t fen = (int64_t)(xr() % 5000000) + 100;
        if (adversarial) {
            voucher_json(json, sizeof json, first + i, t0 + i * 30, unit, ind % 10 + 1, payee, fen,
                         (i % 50) ? "transfer" : "cash", NULL, NULL);
        } else {
            int k = ind % 10 + 1;
            const char *econ = (k % 3) ? "30201" : "30211", *settle = "transfer", *purpose;
            if (k % 3)
                purpose = PURPOSE_30201[xr() % 4];
            else
                purpose = PURPOSE_30211[xr() % 3];
            if (i % 64 == 17) /* planted: another class than the indicator's */
                econ = (k % 3) ? "30213" : "30202";
            if (i % 100 == 37) {
                settle = "cash";
                fen = (int64_t)(xr() % 290000) + 10000;
            } else if (payee % 10 == 0) { /* an individual: 公务卡报销还款 */
                settle = "card";
                fen = (int64_t)(xr() % 495000) + 5000;
            }
            voucher_json(json, sizeof json, first + i, at, unit, k, payee, fen, settle, econ,
                         purpose);
            at = next_working_time(at + 1 + (int64_t)(xr() % 19));
        }
        snprintf(subj, sizeof subj, "fiscal.voucher.%06d", 101000 + unit);
        fw_event ev;
        fw_decode_error e;
        if (fw_event_decode(subj, json, strlen(json), &ev, &e) != 0) {
            fprintf(stderr, "decode: %s: %s\n", e.field, e.reason);
            exit(1);
        }
        double a = now_s();
        fw_rules_eval(r, &ev, &hits);
        per[i] = now_s() - a - clock_cost;
        if (per[i] < 0)
            per[i] = 0;
        fw_ledger_result res;
        if (!eval_only)
            fw_ledger_apply(lg, &ev, &res);
        fw_event_clear(&ev);
        hitc += hits.n;
        hit_vouchers += hits.n > 0;
        fw_hit_list_clear(&hits);
        if (i % 1000 == 999) {
            fw_store_commit(st);
            fw_store_begin(st);
        }
    }
    fw_store_commit(st);
    *total = now_s() - start;
    fw_hit_list_free(&hits);
    printf("  stream %s: hits: %ld (%.3f per voucher; %.1f%% of vouchers have a hit)\n",
           adversarial ? "adversarial" : "realistic", hitc, (double)hitc / n,
           100.0 * (double)hit_vouchers / n);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "rules";
    long nhist = argc > 2 ? atol(argv[2]) : 1000000;
    int nmeas = argc > 3 ? atoi(argv[3]) : 20000;
    fw_log_set_level(FW_LOG_ERROR);

    char etc[2048];
    struct stat sb;
    snprintf(etc, sizeof etc, "%s/../etc", dir);
    if (stat(etc, &sb) != 0)
        snprintf(etc, sizeof etc, "etc");

    char *tmp = fw_t_tmpdir("bench-rules");
    char dbpath[1024], err[4096];
    /* BENCH_RULES_FILE=1: a database file in TMPDIR instead of memory. */
    if (getenv("BENCH_RULES_FILE"))
        snprintf(dbpath, sizeof dbpath, "%s/ledger.db", tmp);
    else
        snprintf(dbpath, sizeof dbpath, ":memory:");
    fw_store *st = fw_store_open(dbpath, fw_ledger_migrations, fw_ledger_nmigrations, 0,
                                 FW_SYNC_NORMAL, err, sizeof err);
    if (!st) {
        fprintf(stderr, "store: %s\n", err);
        return 1;
    }
    fw_ledger *lg = fw_ledger_new(st);
    char json[4096], subj[64];

    /* Loading is set-up, not what is measured: no fsync while loading. */
    fw_store_exec(st, "PRAGMA synchronous=OFF");
    /* 1,000 indicators: 10 per unit. */
    double t = now_s();
    fw_store_begin(st);
    for (int i = 0; i < NIND; i++) {
        int unit = i / 10, k = i % 10 + 1;
        snprintf(json, sizeof json,
                 "{\"id\":\"evt-i%d\",\"op\":\"allocate\",\"occurred_at\":"
                 "\"2024-01-02T09:00:00+08:00\",\"doc_no\":\"三财预〔2024〕%d号\","
                 "\"indicator_id\":\"ZB2024-%06d-%04d\",\"year\":2024,\"unit_code\":\"%06d\","
                 "\"func_class\":\"2050201\",\"econ_class\":\"%s\",\"fund_type\":\"1\","
                 "\"fund_source\":\"一般公共预算\",\"amount\":\"900000000.00\",\"flags\":[%s]}",
                 i, i, 101000 + unit, k, 101000 + unit, (k % 3) ? "30201" : "30211",
                 k == 1 ? "\"salary\"" : (k == 2 ? "\"sangong\"" : ""));
        snprintf(subj, sizeof subj, "fiscal.indicator.%06d", 101000 + unit);
        apply_json(lg, subj, json);
    }
    fw_store_commit(st);

    /* History: nhist vouchers over Jan..May 2024. */
    int64_t span = 150LL * 86400;
    fw_store_begin(st);
    long ev_seq = 0;
    for (long i = 0; i < nhist; i++) {
        int unit = (int)(xr() % NUNITS), k = (int)(xr() % 10) + 1;
        int payee = (int)(xr() % NPAYEES);
        int64_t at = T_START + (int64_t)((double)span * (double)i / (double)nhist);
        int64_t fen = (int64_t)(xr() % 2000000) + 100;
        voucher_json(json, sizeof json, i, at, unit, k, payee, fen, (i % 40) ? "transfer" : "cash",
                     NULL, NULL);
        snprintf(subj, sizeof subj, "fiscal.voucher.%06d", 101000 + unit);
        apply_json(lg, subj, json);
        if (i % 3 == 0) {
            static const char *const flow[] = {"signed", "sent", "paid"};
            for (int f = 0; f < 3; f++) {
                voucher_event_json(json, sizeof json, ev_seq++, i, at + 3600 * (f + 1), unit,
                                   flow[f]);
                apply_json(lg, subj, json);
            }
        } else if (i % 50 == 1) {
            voucher_event_json(json, sizeof json, ev_seq++, i, at + 600, unit, "cancelled");
            apply_json(lg, subj, json);
        }
        if (i % 20000 == 19999) {
            fw_store_commit(st);
            fw_store_begin(st);
        }
    }
    fw_store_commit(st);
    double load_s = now_s() - t;
    printf("ledger: %d indicators, %ld past vouchers (+%ld later events) loaded in %.1f s "
           "(%.0f events/s)\n",
           NIND, nhist, ev_seq, load_s, (double)(nhist + ev_seq + NIND) / load_s);

    fw_store_exec(st, "PRAGMA synchronous=NORMAL");
    /* BENCH_NO_HISTORY_CACHE=1: ctx.history by SQL only. */
    fw_rules_opts o = {.dir = dir,
                       .etc_dir = etc,
                       .ledger = lg,
                       .no_history_cache = getenv("BENCH_NO_HISTORY_CACHE") != NULL};
    double rt0 = now_s();
    struct mallinfo2 mi0 = mallinfo2(); /* small blocks + mmapped ones */
    size_t heap0 = mi0.uordblks + mi0.hblkhd;
    fw_rules *r = fw_rules_new(&o, err, sizeof err);
    double rules_s = now_s() - rt0;
    struct mallinfo2 mi1 = mallinfo2();
    double rules_mb = ((double)(mi1.uordblks + mi1.hblkhd) - (double)heap0) / 1048576.0;
    if (!r) {
        fprintf(stderr, "rules: %s\n", err);
        return 1;
    }
    if (err[0])
        fprintf(stderr, "rule problems: %s\n", err);
    printf("rules: %d loaded from %s (version %s) in %.2f s, +%.1f MiB heap (voucher history "
           "cache %s)\n",
           fw_rules_count(r), dir, fw_rules_version(r), rules_s, rules_mb,
           o.no_history_cache ? "off" : "included");

    double *per = malloc(sizeof *per * (size_t)nmeas), total;
    int64_t t0 = T_START + span + 86400;
    const char *stream = getenv("BENCH_STREAM");
    int adversarial = stream && strcmp(stream, "adversarial") == 0;
    if (stream && !adversarial && strcmp(stream, "realistic") != 0) {
        fprintf(stderr, "BENCH_STREAM: realistic (default) or adversarial\n");
        return 1;
    }
    calendar_load(etc, 2024);
    measure(r, lg, st, nhist + 1, nmeas, t0, adversarial, per, &total);
    double eval_sum = 0;
    for (int i = 0; i < nmeas; i++)
        eval_sum += per[i];
    qsort(per, (size_t)nmeas, sizeof *per, cmp_d);
    printf("voucher.created through all rules: %.0f vouchers/s eval only, %.0f vouchers/s "
           "eval+ledger+commit; eval p50 %.1f us, p99 %.1f us, max %.1f us (%d vouchers)\n",
           nmeas / eval_sum, nmeas / total, per[nmeas / 2] * 1e6, per[(int)(nmeas * 0.99)] * 1e6,
           per[nmeas - 1] * 1e6, nmeas);
    /* Where the time goes: the slowest rules by their seconds counter. */
    typedef struct {
        const char *id;
        double s, n, hits;
    } cost;
    cost costs[256];
    int nc = 0;
    for (int i = 0; i < fw_rules_count(r) && nc < 256; i++) {
        char labels[128];
        snprintf(labels, sizeof labels, "rule=\"%s\"", fw_rules_id(r, i));
        costs[nc].id = fw_rules_id(r, i);
        costs[nc].s = fw_metric_value(fw_metric_counter(
            "fundwatch_rule_seconds_total", "Time spent in rule calls, per rule", labels));
        costs[nc].n = fw_metric_value(fw_metric_counter("fundwatch_rule_evaluations_total",
                                                        "Rule check calls, per rule", labels));
        costs[nc].hits = fw_metric_value(
            fw_metric_counter("fundwatch_rule_hits_total", "Rule hits, per rule", labels));
        nc++;
    }
    for (int i = 0; i < nc; i++)
        for (int j = i + 1; j < nc; j++)
            if (costs[j].s > costs[i].s) {
                cost x = costs[i];
                costs[i] = costs[j];
                costs[j] = x;
            }
    printf("  slowest rules (mean per call):");
    int show = getenv("BENCH_ALL_RULES") ? nc : 6;
    for (int i = 0; i < nc && i < show; i++)
        if (costs[i].n > 0)
            printf(show > 6 ? " %s %.1f us (%.0f%% hits);" : " %s %.1f us;", costs[i].id,
                   costs[i].s / costs[i].n * 1e6, 100 * costs[i].hits / costs[i].n);
    printf("\n  hits by rule:");
    for (int i = 0; i < nc; i++)
        if (costs[i].hits > 0)
            printf(" %s %.0f;", costs[i].id, costs[i].hits);
    printf("\n");
    fw_rules_free(r);

    /* Sandbox overhead: evaluations with 1 and with EMPTY_RULES empty rules;
     * the difference is the cost of a rule call, the rest the cost of an
     * evaluation (event -> shared Lua table, memo reset). */
    voucher_json(json, sizeof json, 999999999, t0, 1, 1, 1, 100000, "transfer", NULL, NULL);
    fw_event ev;
    fw_decode_error de;
    fw_event_decode("fiscal.voucher.101001", json, strlen(json), &ev, &de);
    fw_hit_list hits = {0};
    int calls = 200000;
    if (getenv("BENCH_EMPTY_CALLS")) /* e.g. fewer under valgrind */
        calls = atoi(getenv("BENCH_EMPTY_CALLS")) > 0 ? atoi(getenv("BENCH_EMPTY_CALLS")) : 1;
    enum { EMPTY_RULES = 20 };
    double per_eval[2];
    for (int pass = 0; pass < 2; pass++) {
        int nrules = pass ? EMPTY_RULES : 1;
        char edir[1100], path[1200];
        snprintf(edir, sizeof edir, "%s/empty%d", tmp, nrules);
        mkdir(edir, 0700);
        for (int k = 0; k < nrules; k++) {
            char text[300];
            snprintf(path, sizeof path, "%s/empty%02d.lua", edir, k);
            snprintf(text, sizeof text,
                     "return { id = 'empty%02d', name = 'empty', level = 'blue',\n"
                     "  on = { 'voucher.created' }, check = function(v, ctx) end }\n",
                     k);
            fw_t_write_file(path, text);
        }
        /* no ctx.history here: no voucher cache to load */
        fw_rules_opts eo = {.dir = edir, .etc_dir = etc, .ledger = lg, .no_history_cache = 1};
        fw_rules *er = fw_rules_new(&eo, err, sizeof err);
        int n = pass ? calls / EMPTY_RULES : calls;
        double a = now_s();
        for (int i = 0; i < n; i++)
            fw_rules_eval(er, &ev, &hits);
        per_eval[pass] = (now_s() - a) / n;
        fw_rules_free(er);
    }
    double per_rule = (per_eval[1] - per_eval[0]) / (EMPTY_RULES - 1);
    printf("sandbox overhead: empty rule call %.2f us (budgets, overlay v, ctx, pcall, env check, "
           "metrics); per evaluation %.2f us (event -> shared Lua table, memo reset); "
           "one empty rule per evaluation %.2f us\n",
           per_rule * 1e6, (per_eval[0] - per_rule) * 1e6, per_eval[0] * 1e6);
    fw_event_clear(&ev);
    fw_hit_list_free(&hits);
    free(per);
    fw_ledger_free(lg);
    fw_store_close(st);
    fw_t_rmtree(tmp);
    free(tmp);
    return 0;
}
