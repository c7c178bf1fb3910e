/* carrier.c - see carrier.h */
#include "tests/support/carrier.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sms/sms.h"

typedef struct seen_id {
    char out_id[128];
    char message_id[32];
} seen_id;

typedef struct pending_reply {
    struct fw_t_carrier *c;
    struct evhttp_request *req;
    struct event *timer;
    int status;
    char *body;
    struct pending_reply *next, *prev;
} pending_reply;

struct fw_t_carrier {
    int port;
    pthread_t thread;
    struct event_base *base;
    struct evhttp *http;
    struct event *stop_check;
    atomic_int stop;
    pthread_mutex_t mu;
    /* script */
    char token[256];
    int aliyun;
    char aliyun_secret[256];
    int fail_n, fail_status;
    int delay_ms;
    char throttle_phone[32];
    int throttle_n;
    /* records */
    fw_t_carrier_req *reqs;
    int nreqs, capreqs;
    seen_id *seen;
    int nseen, capseen;
    int *index; /* open addressing over seen[], size capindex */
    int capindex;
    int next_msg;
    pending_reply *pending; /* loop thread only */
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int pct_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decode an x-www-form-urlencoded value in place. */
static void form_decode(char *s)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        if (*p == '%' && pct_val(p[1]) >= 0 && pct_val(p[2]) >= 0) {
            *o++ = (char)(pct_val(p[1]) * 16 + pct_val(p[2]));
            p += 2;
        } else if (*p == '+') {
            *o++ = ' ';
        } else {
            *o++ = *p;
        }
    }
    *o = 0;
}

static void send_now(struct evhttp_request *req, int status, const char *body)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, body, strlen(body));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, status, status == 200 ? "OK" : "Error", b);
    evbuffer_free(b);
}

static void pending_unlink(fw_t_carrier *c, pending_reply *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        c->pending = p->next;
    if (p->next)
        p->next->prev = p->prev;
}

static void on_delayed(evutil_socket_t fd, short what, void *arg)
{
    pending_reply *p = arg;
    pending_unlink(p->c, p);
    send_now(p->req, p->status, p->body);
    event_free(p->timer);
    free(p->body);
    free(p);
}

static void reply(fw_t_carrier *c, struct evhttp_request *req, int status, const char *body,
                  int delay_ms)
{
    if (delay_ms <= 0) {
        send_now(req, status, body);
        return;
    }
    pending_reply *p = calloc(1, sizeof *p);
    p->c = c;
    p->req = req;
    p->status = status;
    p->body = strdup(body);
    p->timer = evtimer_new(c->base, on_delayed, p);
    p->next = c->pending;
    if (c->pending)
        c->pending->prev = p;
    c->pending = p;
    struct timeval tv = {delay_ms / 1000, (delay_ms % 1000) * 1000};
    evtimer_add(p->timer, &tv);
}

static fw_t_carrier_req *record_new(fw_t_carrier *c)
{
    if (c->nreqs == c->capreqs) {
        c->capreqs = c->capreqs ? c->capreqs * 2 : 256;
        c->reqs = realloc(c->reqs, sizeof *c->reqs * (size_t)c->capreqs);
    }
    fw_t_carrier_req *r = &c->reqs[c->nreqs++];
    memset(r, 0, sizeof *r);
    r->at_ms = mono_ms();
    return r;
}

static unsigned hash_str(const char *p)
{
    unsigned h = 2166136261u;
    for (; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h;
}

static seen_id *seen_find(fw_t_carrier *c, const char *out_id)
{
    if (!c->capindex)
        return NULL;
    for (unsigned i = hash_str(out_id) % (unsigned)c->capindex;;
         i = (i + 1) % (unsigned)c->capindex) {
        int k = c->index[i];
        if (k < 0)
            return NULL;
        if (strcmp(c->seen[k].out_id, out_id) == 0)
            return &c->seen[k];
    }
}

static void index_put(fw_t_carrier *c, int k)
{
    unsigned i = hash_str(c->seen[k].out_id) % (unsigned)c->capindex;
    while (c->index[i] >= 0)
        i = (i + 1) % (unsigned)c->capindex;
    c->index[i] = k;
}

static seen_id *seen_add(fw_t_carrier *c, const char *out_id)
{
    if (c->nseen == c->capseen) {
        c->capseen = c->capseen ? c->capseen * 2 : 256;
        c->seen = realloc(c->seen, sizeof *c->seen * (size_t)c->capseen);
    }
    seen_id *s = &c->seen[c->nseen++];
    snprintf(s->out_id, sizeof s->out_id, "%s", out_id);
    snprintf(s->message_id, sizeof s->message_id, "msg-%d", ++c->next_msg);
    if (c->nseen * 2 > c->capindex) {
        free(c->index);
        c->capindex = c->capindex ? c->capindex * 2 : 1024;
        c->index = malloc(sizeof *c->index * (size_t)c->capindex);
        for (int i = 0; i < c->capindex; i++)
            c->index[i] = -1;
        for (int k = 0; k < c->nseen; k++)
            index_put(c, k);
    } else {
        index_put(c, c->nseen - 1);
    }
    return s;
}

/* Parse "a=b&c=d" into kv pairs (decoded, pointing into buf). */
static int form_parse(char *buf, fw_sms_kv *kv, int max)
{
    int n = 0;
    for (char *tok = strtok(buf, "&"); tok && n < max; tok = strtok(NULL, "&")) {
        char *eq = strchr(tok, '=');
        if (!eq)
            continue;
        *eq = 0;
        form_decode(tok);
        form_decode(eq + 1);
        kv[n].key = tok;
        kv[n].value = eq + 1;
        n++;
    }
    return n;
}

static void handle_aliyun(fw_t_carrier *c, struct evhttp_request *req, char *body,
                          fw_t_carrier_req *r, int *status, char *answer, size_t alen)
{
    fw_sms_kv kv[64];
    int n = form_parse(body, kv, 64);
    const char *sig = NULL;
    fw_sms_kv rest[64];
    int nr = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(kv[i].key, "Signature") == 0)
            sig = kv[i].value;
        else
            rest[nr++] = kv[i];
        if (strcmp(kv[i].key, "OutId") == 0)
            snprintf(r->out_id, sizeof r->out_id, "%s", kv[i].value);
        if (strcmp(kv[i].key, "PhoneNumbers") == 0)
            snprintf(r->phone, sizeof r->phone, "%s", kv[i].value);
        if (strcmp(kv[i].key, "TemplateCode") == 0)
            snprintf(r->template_name, sizeof r->template_name, "%s", kv[i].value);
        if (strcmp(kv[i].key, "TemplateParam") == 0)
            snprintf(r->content, sizeof r->content, "%s", kv[i].value);
    }
    char want[64];
    r->sig_ok = sig &&
                fw_sms_aliyun_sign("POST", rest, nr, c->aliyun_secret, want, sizeof want, NULL,
                                   NULL) == 0 &&
                strcmp(want, sig) == 0;
    if (!r->sig_ok) {
        *status = 400;
        snprintf(r->code, sizeof r->code, "SignatureDoesNotMatch");
        snprintf(answer, alen, "{\"Code\":\"SignatureDoesNotMatch\",\"Message\":\"bad\"}");
        return;
    }
    if (c->fail_n > 0) {
        c->fail_n--;
        *status = c->fail_status;
        const char *code = *status >= 500   ? "InternalError"
                           : *status == 429 ? "Throttling.User"
                                            : "isv.MOBILE_NUMBER_ILLEGAL";
        snprintf(r->code, sizeof r->code, "%s", code);
        snprintf(answer, alen, "{\"Code\":\"%s\",\"Message\":\"scripted\"}", code);
        return;
    }
    if (c->throttle_n != 0 && strcmp(c->throttle_phone, r->phone) == 0) {
        if (c->throttle_n > 0)
            c->throttle_n--;
        snprintf(r->code, sizeof r->code, "isv.BUSINESS_LIMIT_CONTROL");
        snprintf(answer, alen, "{\"Code\":\"isv.BUSINESS_LIMIT_CONTROL\",\"Message\":\"limit\"}");
        return;
    }
    r->duplicate = seen_find(c, r->out_id) != NULL;
    seen_id *s = seen_add(c, r->out_id); /* SendSms does not dedup */
    snprintf(r->code, sizeof r->code, "OK");
    snprintf(answer, alen, "{\"Code\":\"OK\",\"Message\":\"OK\",\"BizId\":\"%s\"}", s->message_id);
}

static void handle_generic(fw_t_carrier *c, struct evhttp_request *req, const char *body,
                           fw_t_carrier_req *r, int *status, char *answer, size_t alen)
{
    const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    json_error_t je;
    json_t *j = json_loads(body, 0, &je);
    const char *out_id = json_string_value(json_object_get(j, "out_id"));
    const char *phone = json_string_value(json_object_get(j, "phone"));
    const char *tpl = json_string_value(json_object_get(j, "template"));
    const char *content = json_string_value(json_object_get(j, "content"));
    snprintf(r->out_id, sizeof r->out_id, "%s", out_id ? out_id : "");
    snprintf(r->phone, sizeof r->phone, "%s", phone ? phone : "");
    snprintf(r->template_name, sizeof r->template_name, "%s", tpl ? tpl : "");
    snprintf(r->content, sizeof r->content, "%s", content ? content : "");
    char want[300];
    snprintf(want, sizeof want, "Bearer %s", c->token);
    if (c->token[0] && (!auth || strcmp(auth, want) != 0)) {
        *status = 401;
        snprintf(answer, alen, "{\"code\":\"UNAUTHORIZED\"}");
    } else if (!out_id || !phone || !content || !tpl) {
        *status = 400;
        snprintf(answer, alen, "{\"code\":\"BAD_REQUEST\"}");
    } else if (c->fail_n > 0) {
        c->fail_n--;
        *status = c->fail_status;
        snprintf(answer, alen, "{\"code\":\"SCRIPTED_%d\",\"message\":\"scripted failure\"}",
                 *status);
    } else if (c->throttle_n != 0 && strcmp(c->throttle_phone, phone) == 0) {
        if (c->throttle_n > 0)
            c->throttle_n--;
        snprintf(r->code, sizeof r->code, "THROTTLED");
        snprintf(answer, alen, "{\"code\":\"THROTTLED\"}");
    } else {
        seen_id *s = seen_find(c, out_id);
        r->duplicate = s != NULL;
        if (!s)
            s = seen_add(c, out_id);
        snprintf(r->code, sizeof r->code, "OK");
        snprintf(answer, alen, "{\"code\":\"OK\",\"message_id\":\"%s\"}", s->message_id);
    }
    json_decref(j);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    fw_t_carrier *c = arg;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    char *body = malloc(len + 1);
    evbuffer_copyout(in, body, len);
    body[len] = 0;

    int status = 200, delay;
    char answer[512];
    pthread_mutex_lock(&c->mu);
    fw_t_carrier_req *r = record_new(c);
    if (c->aliyun)
        handle_aliyun(c, req, body, r, &status, answer, sizeof answer);
    else
        handle_generic(c, req, body, r, &status, answer, sizeof answer);
    r->status = status;
    delay = c->delay_ms;
    pthread_mutex_unlock(&c->mu);
    free(body);
    reply(c, req, status, answer, delay);
}

static void on_stop_check(evutil_socket_t fd, short what, void *arg)
{
    fw_t_carrier *c = arg;
    if (atomic_load(&c->stop))
        event_base_loopbreak(c->base);
}

static void *carrier_thread(void *arg)
{
    fw_t_carrier *c = arg;
    event_base_dispatch(c->base);
    /* Answer what is still waiting so nothing leaks. */
    while (c->pending) {
        pending_reply *p = c->pending;
        pending_unlink(c, p);
        event_free(p->timer);
        send_now(p->req, 503, "{\"code\":\"DOWN\"}");
        free(p->body);
        free(p);
    }
    return NULL;
}

fw_t_carrier *fw_t_carrier_start(int port)
{
    fw_t_carrier *c = calloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    c->base = event_base_new();
    c->http = evhttp_new(c->base);
    if (!c->base || !c->http)
        goto fail;
    evhttp_set_gencb(c->http, on_request, c);
    evhttp_set_timeout(c->http, 30);
    struct evhttp_bound_socket *bs =
        evhttp_bind_socket_with_handle(c->http, "127.0.0.1", (ev_uint16_t)port);
    if (!bs)
        goto fail;
    evutil_socket_t fd = evhttp_bound_socket_get_fd(bs);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    c->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    c->stop_check = event_new(c->base, -1, EV_PERSIST, on_stop_check, c);
    struct timeval tv = {0, 10000};
    event_add(c->stop_check, &tv);
    if (pthread_create(&c->thread, NULL, carrier_thread, c) != 0)
        goto fail;
    return c;
fail:
    if (c->http)
        evhttp_free(c->http);
    if (c->stop_check)
        event_free(c->stop_check);
    if (c->base)
        event_base_free(c->base);
    pthread_mutex_destroy(&c->mu);
    free(c);
    return NULL;
}

void fw_t_carrier_stop(fw_t_carrier *c)
{
    if (!c)
        return;
    atomic_store(&c->stop, 1);
    pthread_join(c->thread, NULL);
    evhttp_free(c->http);
    event_free(c->stop_check);
    event_base_free(c->base);
    pthread_mutex_destroy(&c->mu);
    free(c->reqs);
    free(c->seen);
    free(c->index);
    free(c);
}

int fw_t_carrier_port(const fw_t_carrier *c)
{
    return c->port;
}

void fw_t_carrier_url(int port, char *buf, size_t n)
{
    snprintf(buf, n, "http://127.0.0.1:%d/sms", port);
}

void fw_t_carrier_set_token(fw_t_carrier *c, const char *token)
{
    pthread_mutex_lock(&c->mu);
    snprintf(c->token, sizeof c->token, "%s", token ? token : "");
    pthread_mutex_unlock(&c->mu);
}

void fw_t_carrier_set_aliyun(fw_t_carrier *c, const char *secret)
{
    pthread_mutex_lock(&c->mu);
    c->aliyun = secret != NULL;
    snprintf(c->aliyun_secret, sizeof c->aliyun_secret, "%s", secret ? secret : "");
    pthread_mutex_unlock(&c->mu);
}

void fw_t_carrier_fail_next(fw_t_carrier *c, int n, int status)
{
    pthread_mutex_lock(&c->mu);
    c->fail_n = n;
    c->fail_status = status;
    pthread_mutex_unlock(&c->mu);
}

void fw_t_carrier_set_delay_ms(fw_t_carrier *c, int ms)
{
    pthread_mutex_lock(&c->mu);
    c->delay_ms = ms;
    pthread_mutex_unlock(&c->mu);
}

void fw_t_carrier_throttle(fw_t_carrier *c, const char *phone, int n)
{
    pthread_mutex_lock(&c->mu);
    snprintf(c->throttle_phone, sizeof c->throttle_phone, "%s", phone ? phone : "");
    c->throttle_n = n;
    pthread_mutex_unlock(&c->mu);
}

int fw_t_carrier_count(fw_t_carrier *c)
{
    pthread_mutex_lock(&c->mu);
    int n = c->nreqs;
    pthread_mutex_unlock(&c->mu);
    return n;
}

int fw_t_carrier_unique(fw_t_carrier *c)
{
    pthread_mutex_lock(&c->mu);
    int n = c->nseen;
    pthread_mutex_unlock(&c->mu);
    return n;
}

int fw_t_carrier_count_out_id(fw_t_carrier *c, const char *out_id)
{
    int n = 0;
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < c->nreqs; i++)
        n += strcmp(c->reqs[i].out_id, out_id) == 0;
    pthread_mutex_unlock(&c->mu);
    return n;
}

int fw_t_carrier_max_per_second(fw_t_carrier *c)
{
    int best = 0;
    pthread_mutex_lock(&c->mu);
    int lo = 0;
    int *ok = malloc(sizeof *ok * (size_t)(c->nreqs + 1));
    int nok = 0;
    for (int i = 0; i < c->nreqs; i++)
        if (strcmp(c->reqs[i].code, "OK") == 0 && !c->reqs[i].duplicate)
            ok[nok++] = i;
    for (int hi = 0; hi < nok; hi++) {
        while (c->reqs[ok[hi]].at_ms - c->reqs[ok[lo]].at_ms >= 1000)
            lo++;
        if (hi - lo + 1 > best)
            best = hi - lo + 1;
    }
    free(ok);
    pthread_mutex_unlock(&c->mu);
    return best;
}

int fw_t_carrier_get(fw_t_carrier *c, int i, fw_t_carrier_req *out)
{
    int rc = -1;
    pthread_mutex_lock(&c->mu);
    if (i >= 0 && i < c->nreqs) {
        *out = c->reqs[i];
        rc = 0;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}
