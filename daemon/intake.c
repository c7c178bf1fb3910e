/* intake.c - see intake.h */
#include "daemon/intake.h"

#include <event2/event.h>
#include <nats/adapters/libevent.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/log.h"
#include "daemon/metrics.h"

typedef struct msg_queue {
    fw_intake_msg **items;
    int head, n, cap;
} msg_queue;

struct fw_intake {
    struct event_base *base;
    natsConnection *nc;
    /* Pre-payment checks have a connection of their own, which writes each
     * reply at once (SendAsap): on the stream connection a reply waits for
     * cnats's flusher thread, which sleeps 1 ms to gather more data, and it
     * would queue behind acks.  Its callbacks only log. */
    natsConnection *check_nc;
    jsCtx *js;
    char *stream, *consumer, *subjects;
    int64_t max_ack_pending, ack_wait;
    fw_intake_handler handler;
    fw_intake_committed_fn committed;
    void *ud;
    int batch_max;
    int batch_cur; /* adaptive: keeps one handler call near k_slice_ms */
    int held;      /* fw_intake_hold: no stream messages to the handler */

    /* Shared between cnats threads and the loop: guarded by lock. */
    pthread_mutex_t lock;
    msg_queue stream_q, check_q;
    struct event *ev_wakeup;

    /* Consumer generation: bumped by the loop when it asks for a resync;
     * the setup thread installs subscription `gen` and then marks it live. */
    natsSubscription *sub, *old_sub, *check_sub;
    atomic_int gen;         /* generation messages must carry */
    atomic_int live_gen;    /* generation whose consumer is in place */
    atomic_int want_resync; /* set by reconnect callback */
    atomic_int connected;
    atomic_int stopping;
    atomic_uint_fast64_t lag;
    /* The closed callback is the last one cnats delivers: free waits for it
     * so that no callback runs on a freed intake. */
    pthread_mutex_t closed_lock;
    pthread_cond_t closed_cond;
    int closed;
    uint64_t expect_dseq; /* loop only */

    /* setup thread */
    pthread_t setup_thr;
    int setup_running;
    uint64_t setup_start_seq;
    int setup_gen;
    struct event *ev_setup_done;
    struct event *ev_resync;

    /* flush-then */
    pthread_t flush_thr;
    int flush_running;
    void (*flush_done)(void *);
    void *flush_ud;
    struct event *ev_flushed;

    fw_metric *m_received, *m_resyncs, *m_redelivered;
};

/* ---- queue ---- */

static void queue_push(msg_queue *q, fw_intake_msg *m)
{
    if (q->n == q->cap) {
        int cap = q->cap ? q->cap * 2 : 1024;
        fw_intake_msg **items = malloc((size_t)cap * sizeof *items);
        if (!items)
            abort();
        for (int i = 0; i < q->n; i++)
            items[i] = q->items[(q->head + i) % q->cap];
        free(q->items);
        q->items = items;
        q->head = 0;
        q->cap = cap;
    }
    q->items[(q->head + q->n) % q->cap] = m;
    q->n++;
}

static fw_intake_msg *queue_pop(msg_queue *q)
{
    if (!q->n)
        return NULL;
    fw_intake_msg *m = q->items[q->head];
    q->head = (q->head + 1) % q->cap;
    q->n--;
    return m;
}

static void msg_free(fw_intake_msg *m)
{
    if (!m)
        return;
    free(m->subject);
    free(m->data);
    free(m->reply);
    free(m);
}

/* $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>
 * or, with domain and account hash (v2):
 * $JS.ACK.<domain>.<hash>.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>[.<rand>] */
static int parse_ack_subject(const char *reply, fw_intake_msg *m)
{
    if (!reply || strncmp(reply, "$JS.ACK.", 8) != 0)
        return -1;
    const char *tok[16];
    int nt = 0;
    for (const char *p = reply; nt < 16;) {
        tok[nt++] = p;
        p = strchr(p, '.');
        if (!p)
            break;
        p++;
    }
    int base = nt == 9 ? 4 : (nt >= 11 ? 6 : -1);
    if (base < 0)
        return -1;
    m->deliveries = atoi(tok[base]);
    m->stream_seq = strtoull(tok[base + 1], NULL, 10);
    m->consumer_seq = strtoull(tok[base + 2], NULL, 10);
    m->pending = strtoull(tok[base + 4], NULL, 10);
    return 0;
}

static fw_intake_msg *copy_msg(natsMsg *msg)
{
    fw_intake_msg *m = calloc(1, sizeof *m);
    if (!m)
        abort();
    m->subject = strdup(natsMsg_GetSubject(msg));
    m->len = natsMsg_GetDataLength(msg);
    m->data = malloc((size_t)m->len + 1);
    if (!m->subject || !m->data)
        abort();
    memcpy(m->data, natsMsg_GetData(msg), (size_t)m->len);
    m->data[m->len] = 0;
    const char *reply = natsMsg_GetReply(msg);
    m->reply = reply ? strdup(reply) : NULL;
    return m;
}

/* cnats thread: stream message for generation `gen` (closure). */
typedef struct sub_closure {
    fw_intake *in;
    int gen;
} sub_closure;

static void on_stream_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc, (void)sub;
    sub_closure *c = closure;
    fw_intake *in = c->in;
    /* Status messages (heartbeats, flow control) carry no ack subject. */
    if (natsMsg_GetDataLength(msg) == 0 && !natsMsg_GetReply(msg)) {
        natsMsg_Destroy(msg);
        return;
    }
    fw_intake_msg *m = copy_msg(msg);
    natsMsg_Destroy(msg);
    m->gen = c->gen;
    if (parse_ack_subject(m->reply, m) != 0) {
        FW_WARN("intake.bad_ack_subject", "subject=%s", m->subject);
        msg_free(m);
        return;
    }
    fw_metric_add(in->m_received, 1);
    pthread_mutex_lock(&in->lock);
    /* Wake the loop only when the queue turns non-empty: the loop drains it
     * and re-arms itself while messages remain.  Activating the event for
     * each of 20,000 messages a second kept libevent's active queue from
     * ever emptying, and the loop from polling its sockets. */
    int wake = in->stream_q.n == 0;
    queue_push(&in->stream_q, m);
    pthread_mutex_unlock(&in->lock);
    if (wake)
        event_active(in->ev_wakeup, EV_READ, 0);
}

static void on_check_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc, (void)sub;
    fw_intake *in = closure;
    fw_intake_msg *m = copy_msg(msg);
    natsMsg_Destroy(msg);
    m->is_check = 1;
    pthread_mutex_lock(&in->lock);
    queue_push(&in->check_q, m);
    pthread_mutex_unlock(&in->lock);
    event_active(in->ev_wakeup, EV_READ, 0);
}

static void sub_closure_free(void *closure)
{
    free(closure);
}

/* ---- setup thread: stream, consumer, subscription ---- */

static natsStatus ensure_stream(fw_intake *in)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, in->js, in->stream, NULL, &jerr);
    if (s == NATS_OK) {
        jsStreamInfo_Destroy(si);
        return NATS_OK;
    }
    if (s != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr)
        return s;
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = in->stream;
    const char *subjects[1] = {in->subjects};
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    s = js_AddStream(&si, in->js, &sc, NULL, &jerr);
    if (s == NATS_OK) {
        FW_INFO("intake.stream_created", "stream=%s subjects=%s", in->stream, in->subjects);
        jsStreamInfo_Destroy(si);
    }
    return s;
}

static natsStatus create_consumer(fw_intake *in, int gen, uint64_t start_seq)
{
    char deliver[256];
    snprintf(deliver, sizeof deliver, "_FW.deliver.%s.%d.%ld", in->consumer, gen, (long)time(NULL));
    jsErrCode jerr = 0;
    natsStatus s = js_DeleteConsumer(in->js, in->stream, in->consumer, NULL, &jerr);
    if (s != NATS_OK && s != NATS_NOT_FOUND && jerr != JSConsumerNotFoundErr)
        return s;

    /* Subscribe before the consumer exists so no delivery is missed. */
    sub_closure *c = calloc(1, sizeof *c);
    c->in = in;
    c->gen = gen;
    natsSubscription *sub = NULL;
    s = natsConnection_Subscribe(&sub, in->nc, deliver, on_stream_msg, c);
    if (s != NATS_OK) {
        free(c);
        return s;
    }
    natsSubscription_SetOnCompleteCB(sub, sub_closure_free, c);
    /* The consumer's MaxAckPending bounds what is in flight; never let the
     * client drop messages as a slow consumer. */
    natsSubscription_SetPendingLimits(sub, -1, -1);

    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = in->consumer;
    cc.DeliverSubject = deliver;
    /* Ack all: the daemon acks in stream order once a batch is durable, so
     * acking a batch's last message is enough (app.c, release_durable). */
    cc.AckPolicy = js_AckAll;
    cc.AckWait = in->ack_wait * (int64_t)1000000000;
    cc.MaxAckPending = in->max_ack_pending;
    if (start_seq > 1) {
        cc.DeliverPolicy = js_DeliverByStartSequence;
        cc.OptStartSeq = start_seq;
    } else {
        cc.DeliverPolicy = js_DeliverAll;
    }
    jsConsumerInfo *ci = NULL;
    s = js_AddConsumer(&ci, in->js, in->stream, &cc, NULL, &jerr);
    if (s != NATS_OK) {
        natsSubscription_Unsubscribe(sub);
        natsSubscription_Destroy(sub);
        return s;
    }
    /* A consumer that has delivered before is not the fresh one asked for
     * (a delete that timed out during a reconnect, then an add that bound
     * the old one): delete it and try again, or sequences would not match. */
    int stale = ci->Delivered.Consumer != 0 ||
                (start_seq > 1 && ci->Config && ci->Config->OptStartSeq != start_seq);
    jsConsumerInfo_Destroy(ci);
    if (stale) {
        natsSubscription_Unsubscribe(sub);
        natsSubscription_Destroy(sub);
        js_DeleteConsumer(in->js, in->stream, in->consumer, NULL, &jerr);
        return NATS_ERR;
    }
    pthread_mutex_lock(&in->lock);
    if (in->old_sub) {
        natsSubscription_Unsubscribe(in->old_sub);
        natsSubscription_Destroy(in->old_sub);
    }
    in->old_sub = in->sub;
    in->sub = sub;
    pthread_mutex_unlock(&in->lock);
    return NATS_OK;
}

static void *setup_main(void *arg)
{
    fw_intake *in = arg;
    int delay_ms = 200;
    while (!atomic_load(&in->stopping)) {
        natsStatus s = ensure_stream(in);
        if (s == NATS_OK)
            s = create_consumer(in, in->setup_gen, in->setup_start_seq);
        if (s == NATS_OK) {
            FW_INFO("intake.consumer_ready", "stream=%s consumer=%s start_seq=%llu gen=%d",
                    in->stream, in->consumer, (unsigned long long)in->setup_start_seq,
                    in->setup_gen);
            break;
        }
        FW_WARN("intake.setup_retry", "status=%s detail=\"%s\" retry_ms=%d", natsStatus_GetText(s),
                nats_GetLastError(NULL), delay_ms);
        struct timespec ts = {delay_ms / 1000, (long)(delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        if (delay_ms < 5000)
            delay_ms *= 2;
    }
    event_active(in->ev_setup_done, EV_READ, 0);
    return NULL;
}

/* Loop thread: start a setup for a new generation from committed + 1. */
static void begin_setup(fw_intake *in)
{
    if (in->setup_running) {
        atomic_store(&in->want_resync, 1); /* redo when the current one ends */
        return;
    }
    atomic_store(&in->want_resync, 0);
    in->setup_gen = atomic_load(&in->gen) + 1;
    atomic_store(&in->gen, in->setup_gen);
    in->setup_start_seq = in->committed(in->ud) + 1;
    in->expect_dseq = 1;
    in->setup_running = 1;
    if (pthread_create(&in->setup_thr, NULL, setup_main, in) != 0) {
        FW_ERROR("intake.thread_failed", NULL);
        abort();
    }
}

static void on_setup_done(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    fw_intake *in = arg;
    pthread_join(in->setup_thr, NULL);
    in->setup_running = 0;
    if (atomic_load(&in->stopping))
        return;
    atomic_store(&in->live_gen, in->setup_gen);
    if (atomic_load(&in->want_resync))
        begin_setup(in);
    else
        event_active(in->ev_wakeup, EV_READ, 0); /* deliveries held while setting up */
}

static void on_resync(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    fw_intake *in = arg;
    if (!atomic_load(&in->stopping)) {
        fw_metric_add(in->m_resyncs, 1);
        begin_setup(in);
    }
}

/* ---- loop: hand messages to the app ---- */

/* One handler call (a batch and its commit) must stay short: HTTP (health
 * checks, /metrics, POST /api/check) and timers are served between calls,
 * and with nats.event_loop the NATS socket is read there too (a loop that
 * stops reading for seconds is closed by the server as a slow consumer).
 * The batch size adapts so that a call takes at most about k_slice_ms:
 * under light load batches are small anyway (whatever arrived), under a
 * backlog they grow to amortise the commit and the index pages every batch
 * dirties.  Pre-payment checks do not wait for it: they have their own
 * thread (daemon/precheck.h).  40 ms, not 20: batches of 1,024 instead of
 * 512 gave bench_e2e 16.7-17.5k msg/s against 15.1-15.9k in alternating
 * runs. */
static const double k_slice_ms = 40.0;

static void adapt_batch(fw_intake *in, int n, double ms)
{
    if (ms > 2 * k_slice_ms && in->batch_cur > 1)
        in->batch_cur = in->batch_cur / 2 > 0 ? in->batch_cur / 2 : 1;
    else if (ms < k_slice_ms * 0.75 && n >= in->batch_cur && in->batch_cur < in->batch_max)
        in->batch_cur = in->batch_cur * 2 < in->batch_max ? in->batch_cur * 2 : in->batch_max;
}

static void on_wakeup(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    fw_intake *in = arg;
    fw_intake_msg **batch = malloc((size_t)in->batch_max * sizeof *batch);
    if (!batch)
        abort();
    int n = 0, more = 0;

    /* Check requests first: they must not wait behind a batch. */
    pthread_mutex_lock(&in->lock);
    while (n < in->batch_max && in->check_q.n)
        batch[n++] = queue_pop(&in->check_q);
    pthread_mutex_unlock(&in->lock);
    if (n) {
        in->handler(in->ud, batch, n);
        for (int i = 0; i < n; i++)
            msg_free(batch[i]);
        n = 0;
    }

    int gen = atomic_load(&in->gen);
    int live = atomic_load(&in->live_gen) == gen;
    int resync = 0;
    pthread_mutex_lock(&in->lock);
    while (!in->held && n < in->batch_cur && in->stream_q.n) {
        fw_intake_msg *m = in->stream_q.items[in->stream_q.head];
        if (m->gen == gen && !live && !resync)
            break; /* the consumer is being set up: keep them until it is live */
        queue_pop(&in->stream_q);
        if (m->gen != gen || resync) {
            msg_free(m); /* an older consumer's delivery: the new one resends it */
            continue;
        }
        if (m->consumer_seq != in->expect_dseq) {
            /* A hole in the delivery (lost while disconnected): start a new
             * consumer from the last committed message, in order. */
            FW_WARN("intake.delivery_gap", "expected_dseq=%llu got_dseq=%llu stream_seq=%llu",
                    (unsigned long long)in->expect_dseq, (unsigned long long)m->consumer_seq,
                    (unsigned long long)m->stream_seq);
            msg_free(m);
            resync = 1;
            continue;
        }
        in->expect_dseq++;
        atomic_store(&in->lag, m->pending);
        if (m->deliveries > 1)
            fw_metric_add(in->m_redelivered, 1);
        batch[n++] = m;
    }
    /* While held, fw_intake_hold(in, 0) wakes the loop again. */
    more = !in->held && in->stream_q.n > 0 && atomic_load(&in->live_gen) == gen;
    pthread_mutex_unlock(&in->lock);

    if (n) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        in->handler(in->ud, batch, n);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        adapt_batch(
            in, n, (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
    }
    for (int i = 0; i < n; i++)
        msg_free(batch[i]);
    free(batch);
    if (resync)
        event_active(in->ev_resync, EV_READ, 0);
    if (more || in->check_q.n) {
        /* Come back after the loop has polled its sockets: re-activating
         * the event from its own callback would run it again in the same
         * pass, and with a backlog HTTP (/healthz, /metrics) and timers would
         * starve until the backlog is gone.  A zero timeout waits one poll. */
        static const struct timeval now = {0, 0};
        event_add(in->ev_wakeup, &now);
    }
}

/* ---- connection callbacks (cnats threads) ---- */

static void on_disconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    fw_intake *in = closure;
    atomic_store(&in->connected, 0);
    FW_WARN("nats.disconnected", NULL);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    fw_intake *in = closure;
    atomic_store(&in->connected, 1);
    FW_INFO("nats.reconnected", NULL);
    /* Anything in flight during the outage may be lost or redelivered out
     * of order: start over from the last committed sequence. */
    if (!atomic_load(&in->stopping))
        event_active(in->ev_resync, EV_READ, 0);
}

static void on_closed(natsConnection *nc, void *closure)
{
    (void)nc;
    fw_intake *in = closure;
    pthread_mutex_lock(&in->closed_lock);
    in->closed = 1;
    pthread_cond_signal(&in->closed_cond);
    pthread_mutex_unlock(&in->closed_lock);
}

static void on_nats_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
    (void)nc, (void)sub, (void)closure;
    FW_WARN("nats.async_error", "status=%s", natsStatus_GetText(err));
}

static void on_flushed(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    fw_intake *in = arg;
    pthread_join(in->flush_thr, NULL);
    in->flush_running = 0;
    if (in->flush_done)
        in->flush_done(in->flush_ud);
}

static void on_check_disconnected(natsConnection *nc, void *closure)
{
    (void)nc, (void)closure;
    FW_WARN("nats.check_disconnected", NULL);
}

static void on_check_connected(natsConnection *nc, void *closure)
{
    (void)nc, (void)closure;
    FW_INFO("nats.check_connected", NULL);
}

static void *flush_main(void *arg)
{
    fw_intake *in = arg;
    if (atomic_load(&in->connected))
        natsConnection_FlushTimeout(in->nc, 3000);
    event_active(in->ev_flushed, EV_READ, 0);
    return NULL;
}

/* Options both connections share: the servers of nats.url (several may be
 * listed, comma-separated), reconnecting forever every 250 ms (also when
 * the first connect fails), the given callbacks, and a name. */
static natsStatus common_options(natsOptions **opts, const fw_config *cfg, const char *name,
                                 natsConnectionHandler connected,
                                 natsConnectionHandler disconnected, void *ud)
{
    char *urls = strdup(fw_config_get(cfg, "nats.url"));
    const char *list[16];
    int nurls = 0;
    for (char *save = NULL, *u = urls ? strtok_r(urls, ",", &save) : NULL; u && nurls < 16;
         u = strtok_r(NULL, ",", &save)) {
        while (*u == ' ')
            u++;
        list[nurls++] = u;
    }
    natsStatus s = urls ? natsOptions_Create(opts) : NATS_NO_MEMORY;
    if (s == NATS_OK)
        s = natsOptions_SetServers(*opts, list, nurls); /* copies the strings */
    free(urls);
    if (s == NATS_OK)
        s = natsOptions_SetName(*opts, name);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(*opts, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(*opts, 250);
    if (s == NATS_OK)
        s = natsOptions_SetRetryOnFailedConnect(*opts, true, connected, ud);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(*opts, disconnected, ud);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(*opts, connected, ud);
    if (s == NATS_OK)
        s = natsOptions_SetErrorHandler(*opts, on_nats_error, ud);
    return s;
}

/* A connection for the check service: its own reader thread (never the
 * loop's adapter), replies written as soon as they are published (no
 * flusher thread: a reply must not wait 1 ms for company). */
int fw_nats_connect_checks(const fw_config *cfg, natsConnection **nc)
{
    natsOptions *opts = NULL;
    natsStatus s = common_options(&opts, cfg, "fundwatch-check", on_check_connected,
                                  on_check_disconnected, NULL);
    if (s == NATS_OK)
        s = natsOptions_SetSendAsap(opts, true);
    if (s == NATS_OK) {
        s = natsConnection_Connect(nc, opts);
        if (s == NATS_NOT_YET_CONNECTED)
            s = NATS_OK; /* retried in the background, like the stream connection */
    }
    natsOptions_Destroy(opts);
    return s;
}

fw_intake *fw_intake_new(struct event_base *base, const fw_config *cfg, fw_intake_handler fn,
                         fw_intake_committed_fn committed, void *ud, char *err, int errlen)
{
    fw_intake *in = calloc(1, sizeof *in);
    natsOptions *opts = NULL;
    if (!in)
        return NULL;
    in->base = base;
    in->handler = fn;
    in->committed = committed;
    in->ud = ud;
    in->batch_max = (int)fw_config_int(cfg, "store.batch_max");
    in->batch_cur = in->batch_max < 64 ? in->batch_max : 64;
    in->stream = strdup(fw_config_get(cfg, "nats.stream"));
    in->consumer = strdup(fw_config_get(cfg, "nats.consumer"));
    in->subjects = strdup(fw_config_get(cfg, "nats.subjects"));
    in->max_ack_pending = fw_config_int(cfg, "nats.max_ack_pending");
    in->ack_wait = fw_config_int(cfg, "nats.ack_wait");
    pthread_mutex_init(&in->lock, NULL);
    pthread_mutex_init(&in->closed_lock, NULL);
    pthread_cond_init(&in->closed_cond, NULL);
    in->ev_wakeup = event_new(base, -1, 0, on_wakeup, in);
    in->ev_setup_done = event_new(base, -1, 0, on_setup_done, in);
    in->ev_resync = event_new(base, -1, 0, on_resync, in);
    in->ev_flushed = event_new(base, -1, 0, on_flushed, in);
    in->m_received = fw_metric_counter("fundwatch_nats_received_total",
                                       "Stream messages received from NATS", NULL);
    in->m_resyncs = fw_metric_counter("fundwatch_consumer_resyncs_total",
                                      "Consumer re-creations after a reconnect or a gap", NULL);
    in->m_redelivered = fw_metric_counter("fundwatch_redeliveries_total",
                                          "Messages delivered more than once", NULL);

    natsStatus s = common_options(&opts, cfg, "fundwatch", on_reconnected, on_disconnected, in);
    if (s == NATS_OK && fw_config_bool(cfg, "nats.event_loop"))
        s = natsOptions_SetEventLoop(opts, base, natsLibevent_Attach, natsLibevent_Read,
                                     natsLibevent_Write, natsLibevent_Detach);
    if (s == NATS_OK)
        s = natsOptions_SetClosedCB(opts, on_closed, in);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectBufSize(opts, 64 * 1024 * 1024);
    if (s == NATS_OK) {
        s = natsConnection_Connect(&in->nc, opts);
        if (s == NATS_NOT_YET_CONNECTED) {
            FW_WARN("nats.not_yet_connected", "url=%s detail=\"retrying in background\"",
                    fw_config_get(cfg, "nats.url"));
            s = NATS_OK;
        } else if (s == NATS_OK) {
            atomic_store(&in->connected, 1);
        }
    }
    if (s == NATS_OK)
        s = natsConnection_JetStream(&in->js, in->nc, NULL);
    /* The check connection, when the loop answers checks (check.thread =
     * false); else the check thread has its own (daemon/precheck.h). */
    if (s == NATS_OK && !fw_config_bool(cfg, "check.thread"))
        s = fw_nats_connect_checks(cfg, &in->check_nc);
    natsOptions_Destroy(opts);
    if (s != NATS_OK) {
        snprintf(err, (size_t)errlen, "nats.url: cannot connect to %s: %s (%s)",
                 fw_config_get(cfg, "nats.url"), natsStatus_GetText(s), nats_GetLastError(NULL));
        fw_intake_free(in);
        return NULL;
    }
    return in;
}

int fw_intake_start(fw_intake *in)
{
    if (!in->check_nc) { /* the check thread answers them */
        begin_setup(in);
        return 0;
    }
    natsStatus s = natsConnection_QueueSubscribe(&in->check_sub, in->check_nc, FW_CHECK_SUBJECT,
                                                 FW_CHECK_QUEUE, on_check_msg, in);
    if (s != NATS_OK) {
        FW_ERROR("intake.check_subscribe_failed", "status=%s", natsStatus_GetText(s));
        return -1;
    }
    begin_setup(in);
    return 0;
}

int fw_intake_serve_checks(fw_intake *in, void (*fn)(void *ud, const fw_intake_msg *m), void *ud,
                           int max)
{
    int n = 0;
    while (n < max) {
        pthread_mutex_lock(&in->lock);
        fw_intake_msg *m = queue_pop(&in->check_q);
        pthread_mutex_unlock(&in->lock);
        if (!m)
            return n;
        fn(ud, m);
        msg_free(m);
        n++;
    }
    return n;
}

void fw_intake_set_batch(fw_intake *in, int max)
{
    in->batch_max = max > 0 ? max : 1;
    in->batch_cur = in->batch_max;
}

void fw_intake_stop(fw_intake *in)
{
    atomic_store(&in->stopping, 1);
    pthread_mutex_lock(&in->lock);
    if (in->sub)
        natsSubscription_Unsubscribe(in->sub);
    if (in->check_sub)
        natsSubscription_Unsubscribe(in->check_sub);
    pthread_mutex_unlock(&in->lock);
}

void fw_intake_flush_then(fw_intake *in, void (*done)(void *ud), void *ud)
{
    in->flush_done = done;
    in->flush_ud = ud;
    in->flush_running = 1;
    if (pthread_create(&in->flush_thr, NULL, flush_main, in) != 0) {
        in->flush_running = 0;
        done(ud);
    }
}

void fw_intake_free(fw_intake *in)
{
    if (!in)
        return;
    atomic_store(&in->stopping, 1);
    if (in->setup_running)
        pthread_join(in->setup_thr, NULL);
    if (in->flush_running)
        pthread_join(in->flush_thr, NULL);
    /* Destroying subscriptions waits for their callbacks; close first so no
     * new message arrives meanwhile. */
    if (in->check_nc)
        natsConnection_Close(in->check_nc);
    if (in->nc) {
        natsConnection_Close(in->nc);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 5;
        pthread_mutex_lock(&in->closed_lock);
        while (!in->closed &&
               pthread_cond_timedwait(&in->closed_cond, &in->closed_lock, &until) == 0)
            ;
        pthread_mutex_unlock(&in->closed_lock);
    }
    natsSubscription_Destroy(in->sub);
    natsSubscription_Destroy(in->old_sub);
    natsSubscription_Destroy(in->check_sub);
    natsConnection_Destroy(in->check_nc);
    jsCtx_Destroy(in->js);
    natsConnection_Destroy(in->nc);
    fw_intake_msg *m;
    while ((m = queue_pop(&in->stream_q)))
        msg_free(m);
    while ((m = queue_pop(&in->check_q)))
        msg_free(m);
    free(in->stream_q.items);
    free(in->check_q.items);
    if (in->ev_wakeup)
        event_free(in->ev_wakeup);
    if (in->ev_setup_done)
        event_free(in->ev_setup_done);
    if (in->ev_resync)
        event_free(in->ev_resync);
    if (in->ev_flushed)
        event_free(in->ev_flushed);
    pthread_mutex_destroy(&in->lock);
    pthread_mutex_destroy(&in->closed_lock);
    pthread_cond_destroy(&in->closed_cond);
    free(in->stream);
    free(in->consumer);
    free(in->subjects);
    free(in);
}

void fw_intake_ack(fw_intake *in, const fw_intake_msg *m)
{
    fw_intake_ack_reply(in, m->reply);
}

void fw_intake_ack_reply(fw_intake *in, const char *reply)
{
    if (reply)
        natsConnection_Publish(in->nc, reply, "+ACK", 4);
}

void fw_intake_hold(fw_intake *in, int hold)
{
    pthread_mutex_lock(&in->lock);
    int was = in->held;
    in->held = hold;
    int wake = was && !hold && in->stream_q.n > 0;
    pthread_mutex_unlock(&in->lock);
    if (wake)
        event_active(in->ev_wakeup, EV_READ, 0);
}

int fw_intake_publish(fw_intake *in, const char *subject, const char *data, int len,
                      const char *const *hdr_keys, const char *const *hdr_vals, int nh)
{
    natsMsg *msg = NULL;
    natsStatus s = natsMsg_Create(&msg, subject, NULL, data, len);
    for (int i = 0; s == NATS_OK && i < nh; i++)
        s = natsMsgHeader_Set(msg, hdr_keys[i], hdr_vals[i]);
    if (s == NATS_OK)
        s = natsConnection_PublishMsg(in->nc, msg);
    natsMsg_Destroy(msg);
    if (s != NATS_OK) {
        FW_WARN("nats.publish_failed", "subject=%s status=%s", subject, natsStatus_GetText(s));
        return -1;
    }
    return 0;
}

int fw_intake_reply(fw_intake *in, const fw_intake_msg *m, const char *data, int len)
{
    if (!m->reply)
        return -1;
    return natsConnection_Publish(in->check_nc, m->reply, data, len) == NATS_OK ? 0 : -1;
}

int fw_intake_ready(const fw_intake *in)
{
    return atomic_load(&in->connected) && !in->setup_running &&
           atomic_load(&in->live_gen) == atomic_load(&in->gen) && atomic_load(&in->gen) > 0 &&
           !atomic_load(&in->stopping);
}

int fw_intake_connected(const fw_intake *in)
{
    return atomic_load(&in->connected);
}

uint64_t fw_intake_lag(const fw_intake *in)
{
    return atomic_load(&in->lag);
}

int fw_intake_queued(fw_intake *in)
{
    pthread_mutex_lock(&in->lock);
    int n = in->stream_q.n + in->check_q.n;
    pthread_mutex_unlock(&in->lock);
    return n;
}
