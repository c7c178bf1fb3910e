/*
 * bench_check.c - pre-payment check latency, idle and under ingest load
 * (issue 7 §1: p99 under 2 ms at 2,000 checks/s while the daemon ingests
 * 20,000 vouchers/s).
 *
 *   bench_check [SECONDS] [INGEST_RATE] [CHECK_RATE] [CITY.jsonl]
 *   (defaults: 20, 20000, 2000; a fresh `bench/city.py --seed 42` city;
 *    INGEST_RATE 0 = publish as fast as JetStream takes it)
 *
 * nats-server (JetStream, file storage) and `fundwatch run` (shipped rules,
 * the configuration defaults, check thread included) on loopback.
 * The ledger is the sample city's: its indicator operations (and the
 * top-ups of city_msgs.h) are published and committed first.  Then:
 *
 *   idle   checks only, CHECK_RATE/s for min(SECONDS, 10) s;
 *   load   a publisher thread pushes the city's voucher events (replayed,
 *          see city_msgs.h) into JetStream at INGEST_RATE/s while the
 *          checker sends CHECK_RATE checks/s, for SECONDS s.
 *
 *   floor  the same ingest load for min(SECONDS, 10) s more, with the
 *          checks sent instead to a responder that does nothing (a child
 *          process of this bench: its own NATS connection with SendAsap, a
 *          synchronous queue subscription, nice -10, the fixed reply
 *          {"decision":"allow"}): what request/reply itself costs on this
 *          machine under this load (nats-server, the load generator and the
 *          daemon's ingest sharing the cores), the floor of the check's
 *          latency.
 *
 * The checker is open-loop: request i leaves at t0 + i / CHECK_RATE on
 * `fundwatch.check` (core NATS request/reply, the reply subject carries i),
 * whatever the replies do, so a slow daemon cannot slow the load down and
 * hide its own latency; any number of requests may be in flight.  Latency
 * is from the publish call to the reply callback (client side, includes
 * both NATS hops).  Reported: p50/p90/p99/max, lost replies, the achieved
 * check rate; under load also the publish rate JetStream acked, the rate
 * the daemon committed (the store's intake.last_seq) and the backlog left,
 * and the daemon's own histograms over the window (batch size, commit
 * time, check handling time).
 *
 * Machine-readable lines for bench/run:  RESULT name=<key> value=<v> unit=<u>
 */
#include <arpa/inet.h>
#include <nats/nats.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/city_msgs.h"
#include "bench/bench_util.h"
#include "tests/support/harness.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_until(double t)
{
    double d = t - now_s();
    if (d > 0) {
        struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---- the daemon's histograms (Prometheus text), for per-window deltas ---- */

typedef struct hist {
    int n;
    double le[32], cum[32], sum, count;
} hist;

static hist hist_parse(const char *text, const char *base)
{
    hist h = {0};
    char prefix[128], s[140], c[140];
    snprintf(prefix, sizeof prefix, "%s_bucket{le=\"", base);
    snprintf(s, sizeof s, "%s_sum ", base);
    snprintf(c, sizeof c, "%s_count ", base);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, prefix, strlen(prefix)) == 0 && h.n < 32) {
            const char *v = p + strlen(prefix);
            h.le[h.n] = strncmp(v, "+Inf", 4) == 0 ? 1e300 : atof(v);
            const char *e = strchr(v, '}');
            h.cum[h.n++] = e ? atof(e + 2) : 0;
        } else if (strncmp(p, s, strlen(s)) == 0)
            h.sum = atof(p + strlen(s));
        else if (strncmp(p, c, strlen(c)) == 0)
            h.count = atof(p + strlen(c));
    }
    return h;
}

static hist hist_delta(hist a, hist b)
{
    hist d = b;
    for (int i = 0; i < b.n && i < a.n; i++)
        d.cum[i] = b.cum[i] - a.cum[i];
    d.sum = b.sum - a.sum;
    d.count = b.count - a.count;
    return d;
}

/* Upper bound of the bucket holding quantile q ("<= x"). */
static double hist_q(hist h, double q)
{
    for (int i = 0; i < h.n; i++)
        if (h.cum[i] >= q * h.count && h.count > 0)
            return h.le[i];
    return 0;
}

/* GET /metrics with a deadline (the harness's client has none): the loop
 * serves HTTP, and a loop held by a backlog must not hold the benchmark.
 * Returns the body ("" when it did not answer in time). */
static char *metrics(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {3, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    buf[0] = 0;
    static const char req[] = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1))
        goto cleanup;
    for (;;) {
        if (len + 4096 > cap)
            buf = realloc(buf, cap *= 2);
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r <= 0)
            break;
        len += (size_t)r;
        buf[len] = 0;
    }
cleanup:
    if (fd >= 0)
        close(fd);
    char *body = strstr(buf, "\r\n\r\n");
    char *out = strdup(body ? body + 4 : "");
    free(buf);
    return out;
}

/* ---- the checker ---- */

typedef struct checker {
    natsConnection *nc;
    natsSubscription *sub;
    char prefix[64];
    int n;
    char **bodies;
    double *sent, *lat;
    atomic_int replies, errors, rejected;
} checker;

static void on_reply(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc, (void)sub;
    double t = now_s();
    checker *k = closure;
    const char *subj = natsMsg_GetSubject(msg);
    const char *dot = strrchr(subj, '.');
    int i = dot ? atoi(dot + 1) : -1;
    if (i >= 0 && i < k->n && k->lat[i] < 0) {
        k->lat[i] = t - k->sent[i];
        /* {"error": ...}: the city's planted malformed vouchers (amount as a
         * number, ...) are among the request bodies; anything else is a
         * failure of the check. */
        const char *d = natsMsg_GetData(msg);
        if (d && strncmp(d, "{\"error\"", 8) == 0)
            atomic_fetch_add(&k->rejected, 1);
        else if (!d || !strstr(d, "\"decision\"")) {
            if (atomic_fetch_add(&k->errors, 1) == 0)
                fprintf(stderr, "bench_check: unexpected reply to request %d: %.300s\n", i,
                        d ? d : "(empty)");
        }
        atomic_fetch_add(&k->replies, 1);
    }
    natsMsg_Destroy(msg);
}

static int checker_open(checker *k, const char *url, const city *c, int n)
{
    memset(k, 0, sizeof *k);
    natsOptions *o = NULL;
    natsOptions_Create(&o);
    natsOptions_SetURL(o, url);
    natsOptions_SetSendAsap(o, true); /* no client-side batching of requests */
    natsStatus s = natsConnection_Connect(&k->nc, o);
    natsOptions_Destroy(o);
    if (s != NATS_OK)
        return -1;
    snprintf(k->prefix, sizeof k->prefix, "_bench.check.%d", (int)getpid());
    char wild[80];
    snprintf(wild, sizeof wild, "%s.*", k->prefix);
    if (natsConnection_Subscribe(&k->sub, k->nc, wild, on_reply, k) != NATS_OK)
        return -1;
    natsSubscription_SetPendingLimits(k->sub, -1, -1);
    natsConnection_Flush(k->nc);
    k->n = n;
    k->bodies = calloc((size_t)n, sizeof *k->bodies);
    k->sent = calloc((size_t)n, sizeof *k->sent);
    k->lat = malloc(sizeof *k->lat * (size_t)n);
    for (int i = 0; i < n; i++) {
        k->bodies[i] = city_check_body(c, i);
        k->lat[i] = -1;
    }
    return 0;
}

static void checker_close(checker *k)
{
    natsSubscription_Unsubscribe(k->sub);
    natsSubscription_Destroy(k->sub);
    natsConnection_Destroy(k->nc);
    for (int i = 0; i < k->n; i++)
        free(k->bodies[i]);
    free(k->bodies);
    free(k->sent);
    free(k->lat);
}

/* Send requests [from, to) open-loop at `rate`/s; wait up to 5 s for the
 * stragglers; print and report the latencies under `tag`. */
static void check_phase(checker *k, const char *subject, const char *tag, int from, int to,
                        double rate)
{
    double t0 = now_s();
    for (int i = from; i < to; i++) {
        sleep_until(t0 + (i - from) / rate);
        char reply[96];
        snprintf(reply, sizeof reply, "%s.%d", k->prefix, i);
        k->sent[i] = now_s();
        natsConnection_PublishRequest(k->nc, subject, reply, k->bodies[i],
                                      (int)strlen(k->bodies[i]));
    }
    double t_sent = now_s();
    double wait_until = t_sent + 5;
    int want = to - from;
    while (now_s() < wait_until) {
        int got = 0;
        for (int i = from; i < to; i++)
            got += k->lat[i] >= 0;
        if (got == want)
            break;
        usleep(10000);
    }
    int n = 0;
    double *l = malloc(sizeof *l * (size_t)want);
    for (int i = from; i < to; i++)
        if (k->lat[i] >= 0)
            l[n++] = k->lat[i] * 1000;
    qsort(l, (size_t)n, sizeof *l, cmp_d);
    double p50 = n ? l[n / 2] : 0, p90 = n ? l[(int)(n * 0.90)] : 0,
           p99 = n ? l[(int)(n * 0.99)] : 0, mx = n ? l[n - 1] : 0;
    printf("check %-5s %d requests at %.0f/s (sent in %.2f s = %.0f/s): p50 %.3f ms  p90 %.3f ms  "
           "p99 %.3f ms  max %.3f ms; %d unanswered after 5 s\n",
           tag, want, rate, t_sent - t0, want / (t_sent - t0), p50, p90, p99, mx, want - n);
    char name[64];
    snprintf(name, sizeof name, "check_%s_p50_ms", tag);
    result(name, p50, "ms");
    snprintf(name, sizeof name, "check_%s_p90_ms", tag);
    result(name, p90, "ms");
    snprintf(name, sizeof name, "check_%s_p99_ms", tag);
    result(name, p99, "ms");
    snprintf(name, sizeof name, "check_%s_max_ms", tag);
    result(name, mx, "ms");
    snprintf(name, sizeof name, "check_%s_rate", tag);
    result(name, want / (t_sent - t0), "req/s");
    snprintf(name, sizeof name, "check_%s_lost", tag);
    result(name, want - n, "req");
    free(l);
}

/* ---- the floor: a responder that does nothing ---- */

#define ECHO_SUBJECT "_bench.echo"

/* `bench_check --echo URL` (exec'd by the bench: cnats is not fork-safe):
 * answer ECHO_SUBJECT requests with a fixed decision until killed, set up
 * as the daemon's check thread is (nice -10, SendAsap, a synchronous queue
 * subscription), so that the difference is the check's own work. */
static int echo_main(const char *url)
{
    if (setpriority(PRIO_PROCESS, 0, -10) != 0)
        fprintf(stderr, "bench_check --echo: cannot raise priority (not root?): running at 0\n");
    natsOptions *o = NULL;
    natsConnection *nc = NULL;
    natsSubscription *sub = NULL;
    natsOptions_Create(&o);
    natsOptions_SetURL(o, url);
    natsOptions_SetSendAsap(o, true);
    if (natsConnection_Connect(&nc, o) != NATS_OK ||
        natsConnection_QueueSubscribeSync(&sub, nc, ECHO_SUBJECT, "echo") != NATS_OK ||
        natsConnection_Flush(nc) != NATS_OK)
        return 1;
    natsOptions_Destroy(o);
    printf("ready\n");
    fflush(stdout);
    static const char reply[] = "{\"decision\":\"allow\",\"hits\":[]}";
    for (;;) {
        natsMsg *m = NULL;
        natsStatus st = natsSubscription_NextMsg(&m, sub, 1000);
        if (st == NATS_TIMEOUT)
            continue;
        if (st != NATS_OK)
            return 1;
        if (natsMsg_GetReply(m))
            natsConnection_Publish(nc, natsMsg_GetReply(m), reply, (int)sizeof reply - 1);
        natsMsg_Destroy(m);
    }
}

/* Start the echo responder; its pid, or -1.  Returns once it subscribed. */
static pid_t echo_start(const char *url)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        execl("/proc/self/exe", "bench_check", "--echo", url, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char buf[16] = "";
    ssize_t n = pid > 0 ? read(fds[0], buf, sizeof buf - 1) : -1;
    close(fds[0]);
    if (n <= 0 || strncmp(buf, "ready", 5) != 0) {
        if (pid > 0)
            kill(pid, SIGKILL);
        return -1;
    }
    return pid;
}

/* ---- the ingest publisher ---- */

typedef struct publisher {
    const char *url;
    city_msgs *msgs;
    double rate; /* 0: as fast as it goes */
    int start;   /* first message to publish; next: the one after the last */
    int next;
    atomic_int stop;
    int published;
    double seconds;
    int failed, stalls;
} publisher;

static void on_pub_error(jsCtx *js, jsPubAckErr *pae, void *closure)
{
    (void)js, (void)pae;
    (*(int *)closure)++;
}

static void *publish_thread(void *arg)
{
    publisher *p = arg;
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    if (natsConnection_ConnectTo(&nc, p->url) != NATS_OK)
        return NULL;
    jsOptions o;
    jsOptions_Init(&o);
    o.PublishAsync.MaxPending = 4096;
    o.PublishAsync.StallWait = 2000; /* ms; a stall is retried below */
    o.PublishAsync.ErrHandler = on_pub_error;
    o.PublishAsync.ErrHandlerClosure = &p->failed;
    natsConnection_JetStream(&js, nc, &o);
    double t0 = now_s();
    int i = p->start;
    while (!atomic_load(&p->stop) && i < p->msgs->n) {
        if (p->rate > 0) {
            int due = p->start + (int)((now_s() - t0) * p->rate);
            if (i >= due) {
                usleep(500);
                continue;
            }
        }
        natsStatus st = js_PublishAsync(js, p->msgs->subjects[i], p->msgs->bodies[i],
                                        (int)strlen(p->msgs->bodies[i]), NULL);
        if (st == NATS_TIMEOUT) {
            p->stalls++; /* MaxPending unacked: the server is behind; try again */
            continue;
        }
        if (st != NATS_OK) {
            fprintf(stderr, "bench_check: publish failed: %s\n", natsStatus_GetText(st));
            break;
        }
        i++;
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 30000;
    js_PublishAsyncComplete(js, &po);
    p->seconds = now_s() - t0;
    p->published = i - p->start - p->failed;
    p->next = i;
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return NULL;
}

/* Messages the daemon has applied (committed or in the open batch): the
 * sum of fundwatch_messages_total over its kinds. */
static double applied(const char *text)
{
    double sum = 0;
    const char *key = "fundwatch_messages_total{";
    for (const char *p = strstr(text, key); p; p = strstr(p + 1, key)) {
        const char *v = strchr(p, '}');
        if (v)
            sum += atof(v + 2);
    }
    return sum;
}

static int64_t last_seq(const fw_t_daemon *d)
{
    return fw_t_sql_int(d->db, "SELECT value FROM meta WHERE key = 'intake.last_seq'");
}

static void print_daemon_window(const char *tag, const char *before, const char *after)
{
    hist b = hist_delta(hist_parse(before, "fundwatch_batch_messages"),
                        hist_parse(after, "fundwatch_batch_messages"));
    hist c = hist_delta(hist_parse(before, "fundwatch_commit_seconds"),
                        hist_parse(after, "fundwatch_commit_seconds"));
    hist k = hist_delta(hist_parse(before, "fundwatch_check_seconds"),
                        hist_parse(after, "fundwatch_check_seconds"));
    printf("  daemon (%s window): %.0f batches, mean %.1f msgs (p50 <= %g, p99 <= %g); commit mean "
           "%.2f ms (p50 <= %g ms, p99 <= %g ms); check handling mean %.3f ms (p99 <= %g ms) over "
           "%.0f checks\n",
           tag, b.count, b.count > 0 ? b.sum / b.count : 0, hist_q(b, 0.5), hist_q(b, 0.99),
           c.count > 0 ? c.sum / c.count * 1000 : 0, hist_q(c, 0.5) * 1000, hist_q(c, 0.99) * 1000,
           k.count > 0 ? k.sum / k.count * 1000 : 0, hist_q(k, 0.99) * 1000, k.count);
    char name[64];
    snprintf(name, sizeof name, "check_%s_batch_mean", tag);
    result(name, b.count > 0 ? b.sum / b.count : 0, "msgs");
    snprintf(name, sizeof name, "check_%s_commit_ms_mean", tag);
    result(name, c.count > 0 ? c.sum / c.count * 1000 : 0, "ms");
    snprintf(name, sizeof name, "check_%s_commit_ms_p99", tag);
    result(name, hist_q(c, 0.99) * 1000, "ms");
    snprintf(name, sizeof name, "check_%s_handling_ms_mean", tag);
    result(name, k.count > 0 ? k.sum / k.count * 1000 : 0, "ms");
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--echo") == 0)
        return echo_main(argv[2]);
    double seconds = argc > 1 ? atof(argv[1]) : 20;
    double ingest = argc > 2 ? atof(argv[2]) : 20000;
    double check_rate = argc > 3 ? atof(argv[3]) : 2000;
    const char *city_path = argc > 4 ? argv[4] : NULL;
    if (seconds <= 0 || ingest < 0 || check_rate <= 0) {
        fprintf(stderr, "usage: bench_check [SECONDS] [INGEST_RATE] [CHECK_RATE] [CITY.jsonl]\n");
        return 2;
    }
    double idle_s = seconds < 10 ? seconds : 10, t_setup = now_s();
    char *tmp = fw_t_tmpdir("bench-check");
    char *gen = NULL;
    if (!city_path) {
        if (!(gen = city_generate(tmp))) {
            fprintf(stderr, "bench_check: bench/city.py failed\n");
            return 1;
        }
        city_path = gen;
    }
    city c;
    if (city_load(&c, city_path) != 0) {
        fprintf(stderr, "bench_check: cannot read the city %s\n", city_path);
        return 1;
    }
    /* Enough voucher messages for the window (as fast as it goes: up to
     * 60,000/s, well above what this machine's JetStream takes). */
    double floor_s = seconds < 10 ? seconds : 10;
    long nvoucher = (long)((ingest > 0 ? ingest : 60000) * (seconds + floor_s) * 1.05) + 1000;
    int replicas = city_replicas(&c, nvoucher);
    city_msgs ind = {0}, vouchers = {0};
    city_indicator_msgs(&c, replicas, &ind);
    for (long i = 0; i < nvoucher; i++) {
        const char *subject;
        char *body = city_voucher_msg(&c, replicas, i, &subject);
        city_msgs_add(&vouchers, subject, body);
    }

    fw_t_nats nats = {0};
    if (fw_t_nats_start(&nats, tmp) != 0) {
        fprintf(stderr, "bench_check: cannot start nats-server\n");
        return 1;
    }
    if (fw_t_js_publish(nats.url, ind.n, (const char *const *)ind.subjects,
                        (const char *const *)ind.bodies) != ind.n) {
        fprintf(stderr, "bench_check: publishing the indicators failed\n");
        return 1;
    }
    char dir[700];
    snprintf(dir, sizeof dir, "%s/daemon", tmp);
    mkdir(dir, 0755);
    fw_t_daemon d = {0};
    if (fw_t_daemon_start(&d, dir, nats.url, NULL, daemon_ini()) != 0) {
        fprintf(stderr, "bench_check: cannot start the daemon\n");
        return 1;
    }
    double deadline = now_s() + 60;
    while (last_seq(&d) < ind.n && now_s() < deadline)
        usleep(20000);
    printf("ledger: the city's %d indicator operations and %d top-ups committed (%d indicators); "
           "check bodies: the city's %d created vouchers; %ld voucher messages ready; set-up "
           "%.1f s\n",
           c.ind.n, ind.n - c.ind.n, c.ninds, c.ncreated, nvoucher, now_s() - t_setup);

    int n_idle = (int)(idle_s * check_rate), n_load = (int)(seconds * check_rate);
    int n_floor = (int)(floor_s * check_rate);
    checker k;
    if (checker_open(&k, nats.url, &c, n_idle + n_load + n_floor) != 0) {
        fprintf(stderr, "bench_check: checker cannot connect\n");
        return 1;
    }
    /* warm-up: first calls compile paths, fill caches */
    check_phase(&k, "fundwatch.check", "warm", 0, n_idle / 10 > 0 ? n_idle / 10 : 1, check_rate);
    for (int i = 0; i < n_idle / 10; i++)
        k.lat[i] = -1;

    char *m0 = metrics(d.http_port);
    check_phase(&k, "fundwatch.check", "idle", 0, n_idle, check_rate);
    char *m1 = metrics(d.http_port);
    print_daemon_window("idle", m0, m1);

    publisher p = {.url = nats.url, .msgs = &vouchers, .rate = ingest};
    pthread_t thr;
    int64_t seq0 = last_seq(&d);
    double tl0 = now_s();
    pthread_create(&thr, NULL, publish_thread, &p);
    check_phase(&k, "fundwatch.check", "load", n_idle, n_idle + n_load, check_rate);
    atomic_store(&p.stop, 1);
    int64_t seq1 = last_seq(&d);
    double tl1 = now_s();
    double tm = now_s();
    char *m2 = metrics(d.http_port);
    tm = now_s() - tm;
    pthread_join(thr, NULL);
    double committed = (double)(seq1 - seq0) / (tl1 - tl0);
    int64_t backlog = (int64_t)ind.n + p.published - seq1;
    printf("ingest: target %.0f/s; JetStream acked %d in %.2f s = %.0f/s; the daemon committed "
           "%lld in the %.2f s window = %.0f msg/s; backlog at the end %lld\n",
           ingest, p.published, p.seconds, p.published / p.seconds, (long long)(seq1 - seq0),
           tl1 - tl0, committed, (long long)backlog);
    /* /metrics is served by the loop: a slow answer means the loop was held
     * (the histograms then cover more than the window). */
    if (!m2[0])
        printf("  GET /metrics right after the window: no answer within 3 s (the loop did not "
               "serve HTTP); the daemon's histograms for this window are missing\n");
    else
        printf("  GET /metrics right after the window took %.2f s; messages applied by then %.0f\n",
               tm, applied(m2) - applied(m1));
    result("check_metrics_fetch_s", tm, "s");
    if (p.stalls)
        printf("  the publisher stalled %d times (%d unacked publishes for 2 s)\n", p.stalls, 4096);
    if (m2[0])
        print_daemon_window("load", m1, m2);
    result("check_ingest_published_rate", p.published / p.seconds, "msg/s");
    result("check_ingest_committed_rate", committed, "msg/s");
    result("check_ingest_backlog", (double)backlog, "msgs");

    /* The floor: the same load, the checks to a responder that does nothing. */
    pid_t echo = echo_start(nats.url);
    if (echo < 0) {
        fprintf(stderr, "bench_check: the echo responder did not start\n");
    } else {
        publisher p2 = {.url = nats.url, .msgs = &vouchers, .rate = ingest, .start = p.next};
        pthread_create(&thr, NULL, publish_thread, &p2);
        check_phase(&k, ECHO_SUBJECT, "floor", n_idle + n_load, n_idle + n_load + n_floor,
                    check_rate);
        atomic_store(&p2.stop, 1);
        pthread_join(thr, NULL);
        printf("  (floor: the same checks answered by a do-nothing responder, same ingest load: "
               "JetStream took %.0f/s)\n",
               p2.published / p2.seconds);
        kill(echo, SIGKILL);
        waitpid(echo, NULL, 0);
    }
    int errors = atomic_load(&k.errors);
    printf("replies: %d decisions, %d {\"error\"} for malformed request bodies (planted in the "
           "city), %d neither\n",
           atomic_load(&k.replies) - errors - atomic_load(&k.rejected), atomic_load(&k.rejected),
           errors);

    free(m0);
    free(m1);
    free(m2);
    checker_close(&k);
    printf("wind-down %.1f s\n", now_s() - tl1);
    /* SIGKILL: a graceful stop would first work off what it holds of the
     * backlog, which measures nothing and costs the suite seconds. */
    fw_t_daemon_kill(&d, SIGKILL);
    fw_t_nats_stop(&nats);
    city_msgs_free(&ind);
    city_msgs_free(&vouchers);
    city_free(&c);
    if (!getenv("BENCH_KEEP"))
        fw_t_rmtree(tmp);
    else
        printf("kept %s\n", tmp);
    free(tmp);
    free(gen);
    return errors ? 1 : 0;
}
