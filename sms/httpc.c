/*
 * httpc.c - an asynchronous HTTP POST client: libcurl's multi interface
 * driven by the libevent loop (the hiperfifo.c pattern).
 *
 * curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION) and when
 * its next timeout is (CURLMOPT_TIMERFUNCTION); we turn those into libevent
 * events and call curl_multi_socket_action() from their callbacks.  The
 * timer callback from curl only (re)arms a libevent timer: calling curl
 * from inside it would recurse.  One multi handle for the process keeps the
 * connection cache, so requests to the carrier reuse keep-alive
 * connections.  No threads, no signals (CURLOPT_NOSIGNAL).
 */
#include <curl/curl.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/log.h"
#include "sms/sms_impl.h"

#define HTTPC_MAX_BODY (1024 * 1024)

typedef struct httpc_req {
    CURL *easy;
    struct curl_slist *hdrs;
    char *body;
    char *resp;
    size_t resp_len;
    char errbuf[CURL_ERROR_SIZE];
    sms_httpc_cb cb;
    void *ud;
    struct httpc_req *prev, *next;
} httpc_req;

typedef struct httpc_sock {
    struct event *ev;
    struct sms_httpc *h;
    curl_socket_t fd;
} httpc_sock;

struct sms_httpc {
    CURLM *multi;
    struct event_base *base;
    struct event *timer;
    int running;
    int pending;
    httpc_req *reqs;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void req_free(httpc_req *r)
{
    if (!r)
        return;
    if (r->easy)
        curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->hdrs);
    free(r->body);
    free(r->resp);
    free(r);
}

static void req_unlink(sms_httpc *h, httpc_req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        h->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
    h->pending--;
}

/* Hand every finished transfer to its callback. */
static void check_multi_info(sms_httpc *h)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(h->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode res = msg->data.result;
        httpc_req *r = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
        curl_multi_remove_handle(h->multi, easy);
        req_unlink(h, r);

        sms_http_result out = {0};
        long code = 0, reqsize = 0;
        double total = 0;
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &reqsize);
        curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME, &total);
        out.seconds = total;
        out.sent = reqsize > 0;
        out.body = r->resp ? r->resp : "";
        if (res == CURLE_OK) {
            out.status = code;
        } else {
            out.status = -1;
            out.error = r->errbuf[0] ? r->errbuf : curl_easy_strerror(res);
        }
        r->cb(r->ud, &out);
        req_free(r);
    }
}

static void on_socket_event(evutil_socket_t fd, short what, void *arg)
{
    sms_httpc *h = arg;
    int action =
        ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    curl_multi_socket_action(h->multi, fd, action, &h->running);
    check_multi_info(h);
    if (h->running <= 0)
        evtimer_del(h->timer);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    sms_httpc *h = arg;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &h->running);
    check_multi_info(h);
}

/* CURLMOPT_TIMERFUNCTION: only arm our timer (never call curl here). */
static int curl_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    sms_httpc *h = userp;
    if (timeout_ms < 0) {
        evtimer_del(h->timer);
    } else {
        struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
        evtimer_add(h->timer, &tv);
    }
    return 0;
}

/* CURLMOPT_SOCKETFUNCTION: watch (or stop watching) a socket. */
static int curl_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *sockp)
{
    sms_httpc *h = userp;
    httpc_sock *si = sockp;
    if (what == CURL_POLL_REMOVE) {
        if (si) {
            event_free(si->ev);
            free(si);
        }
        curl_multi_assign(h->multi, fd, NULL);
        return 0;
    }
    short kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) |
                         ((what & CURL_POLL_OUT) ? EV_WRITE : 0) | EV_PERSIST);
    if (!si) {
        si = calloc(1, sizeof *si);
        if (!si)
            return -1;
        si->h = h;
        si->fd = fd;
        curl_multi_assign(h->multi, fd, si);
    } else {
        event_free(si->ev);
    }
    si->ev = event_new(h->base, fd, kind, on_socket_event, h);
    if (!si->ev)
        return -1;
    event_add(si->ev, NULL);
    return 0;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    httpc_req *r = userdata;
    size_t n = size * nmemb;
    if (r->resp_len + n > HTTPC_MAX_BODY)
        return 0; /* abort: carriers answer small JSON */
    char *nb = realloc(r->resp, r->resp_len + n + 1);
    if (!nb)
        return 0;
    r->resp = nb;
    memcpy(r->resp + r->resp_len, ptr, n);
    r->resp_len += n;
    r->resp[r->resp_len] = 0;
    return n;
}

sms_httpc *sms_httpc_new(struct event_base *base, int max_conns, char *err, int errlen)
{
    pthread_once(&curl_once, curl_init_once);
    sms_httpc *h = calloc(1, sizeof *h);
    if (!h)
        goto fail;
    h->base = base;
    h->multi = curl_multi_init();
    h->timer = evtimer_new(base, on_timer, h);
    if (!h->multi || !h->timer)
        goto fail;
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, curl_socket_cb);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, (long)(max_conns > 4 ? max_conns : 4));
    curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)max_conns);
    return h;
fail:
    snprintf(err, (size_t)errlen, "http client: out of memory");
    sms_httpc_free(h);
    return NULL;
}

void sms_httpc_free(sms_httpc *h)
{
    if (!h)
        return;
    while (h->reqs) {
        httpc_req *r = h->reqs;
        curl_multi_remove_handle(h->multi, r->easy);
        req_unlink(h, r);
        sms_http_result out = {.status = -1, .body = "", .error = "cancelled", .cancelled = 1};
        r->cb(r->ud, &out);
        req_free(r);
    }
    if (h->multi)
        curl_multi_cleanup(h->multi);
    if (h->timer)
        event_free(h->timer);
    free(h);
}

int sms_httpc_pending(const sms_httpc *h)
{
    return h ? h->pending : 0;
}

int sms_httpc_post(sms_httpc *h, const char *url, const char *const *headers, const char *body,
                   long timeout_ms, sms_httpc_cb cb, void *ud)
{
    if (!h || !url || !cb)
        return -1;
    httpc_req *r = calloc(1, sizeof *r);
    if (!r)
        return -1;
    r->cb = cb;
    r->ud = ud;
    r->body = strdup(body ? body : "");
    r->easy = curl_easy_init();
    if (!r->body || !r->easy)
        goto fail;
    for (int i = 0; headers && headers[i]; i++) {
        struct curl_slist *n = curl_slist_append(r->hdrs, headers[i]);
        if (!n)
            goto fail;
        r->hdrs = n;
    }
    /* No "Expect: 100-continue" round trip. */
    struct curl_slist *n = curl_slist_append(r->hdrs, "Expect:");
    if (!n)
        goto fail;
    r->hdrs = n;

    CURL *e = r->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(r->body));
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 10000L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 10000L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "fundwatch/0.1");
    if (curl_multi_add_handle(h->multi, e) != CURLM_OK)
        goto fail;
    r->next = h->reqs;
    if (h->reqs)
        h->reqs->prev = r;
    h->reqs = r;
    h->pending++;
    return 0;
fail:
    req_free(r);
    return -1;
}
