/* http.c - see http.h */
#include "daemon/http.h"

#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon/log.h"
#include "daemon/metrics.h"

#define MAX_ROUTES 64
#define MAX_BODY (1 << 20)

typedef struct route {
    char method[8];
    char *pattern;
    fw_role need;
    fw_http_handler fn;
    void *ud;
} route;

typedef struct token {
    char *token, *name;
    fw_role role;
} token;

struct fw_tokens {
    token *items;
    int n;
};

struct fw_http {
    struct evhttp *http;
    route routes[MAX_ROUTES];
    int nroutes;
    fw_tokens *tokens;
    char *tokens_path;
    fw_metric *m_requests;
};

/* ---- tokens ---- */

fw_tokens *fw_tokens_load(const char *path, char *err, int errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, (size_t)errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    fw_tokens *t = calloc(1, sizeof *t);
    char line[512];
    int lineno = 0;
    while (t && fgets(line, sizeof line, f)) {
        lineno++;
        char tok[256], role[32], name[128];
        char *p = line;
        while (isspace((unsigned char)*p))
            p++;
        if (!*p || *p == '#')
            continue;
        if (sscanf(p, "%255s %31s %127s", tok, role, name) != 3) {
            snprintf(err, (size_t)errlen, "%s:%d: expected `token role name`", path, lineno);
            goto fail;
        }
        fw_role r;
        if (strcmp(role, "viewer") == 0)
            r = FW_ROLE_VIEWER;
        else if (strcmp(role, "supervisor") == 0)
            r = FW_ROLE_SUPERVISOR;
        else {
            snprintf(err, (size_t)errlen, "%s:%d: role must be viewer or supervisor", path, lineno);
            goto fail;
        }
        if (strlen(tok) < 8) {
            snprintf(err, (size_t)errlen, "%s:%d: token too short (8 characters at least)", path,
                     lineno);
            goto fail;
        }
        token *items = realloc(t->items, (size_t)(t->n + 1) * sizeof *items);
        if (!items)
            goto fail;
        t->items = items;
        t->items[t->n++] = (token){strdup(tok), strdup(name), r};
    }
    fclose(f);
    return t;
fail:
    fclose(f);
    fw_tokens_free(t);
    return NULL;
}

void fw_tokens_free(fw_tokens *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->n; i++) {
        free(t->items[i].token);
        free(t->items[i].name);
    }
    free(t->items);
    free(t);
}

/* Constant-time comparison: a token check must not leak how many leading
 * characters matched. */
static int same_secret(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = (unsigned char)(la != lb);
    for (size_t i = 0; i < la; i++)
        d |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
    return d == 0;
}

fw_role fw_tokens_check(const fw_tokens *t, const char *authorization, const char **name)
{
    /* The auth scheme is case-insensitive (RFC 9110); the token is not. */
    if (!t || !authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
        return FW_ROLE_NONE;
    const char *given = authorization + 7;
    for (int i = 0; i < t->n; i++) {
        if (same_secret(given, t->items[i].token)) {
            if (name)
                *name = t->items[i].name;
            return t->items[i].role;
        }
    }
    return FW_ROLE_NONE;
}

/* ---- responses ---- */

void fw_http_json(fw_http_resp *r, int status, json_t *j)
{
    r->status = status;
    free(r->body);
    r->body = json_dumps(j, JSON_COMPACT);
    r->content_type = "application/json";
    json_decref(j);
}

void fw_http_error(fw_http_resp *r, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fw_http_json(r, status, json_pack("{s:s}", "error", msg));
}

int fw_http_query(const fw_http_req *req, const char *name, char *buf, size_t buflen)
{
    struct evkeyvalq q;
    if (!req->query || !*req->query)
        return 0;
    if (evhttp_parse_query_str(req->query, &q) != 0)
        return 0;
    const char *v = evhttp_find_header(&q, name);
    int found = v != NULL;
    if (found)
        snprintf(buf, buflen, "%s", v);
    evhttp_clear_headers(&q);
    return found;
}

/* ---- routing ---- */

static int match_route(const route *r, const char *path, fw_http_req *req)
{
    const char *p = r->pattern, *s = path;
    req->nparams = 0;
    while (*p && *s) {
        if (*p == '*') {
            const char *end = strchr(s, '/');
            size_t n = end ? (size_t)(end - s) : strlen(s);
            if (n == 0 || req->nparams == FW_HTTP_MAX_PARAMS)
                return 0;
            req->params[req->nparams++] = strndup(s, n);
            s += n;
            p++;
            continue;
        }
        if (*p != *s)
            return 0;
        p++;
        s++;
    }
    return *p == 0 && *s == 0;
}

static void free_params(fw_http_req *req)
{
    for (int i = 0; i < req->nparams; i++) {
        free((char *)req->params[i]);
        req->params[i] = NULL;
    }
    req->nparams = 0;
}

static void send_resp(struct evhttp_request *er, fw_http_resp *resp)
{
    struct evbuffer *out = evbuffer_new();
    if (resp->body)
        evbuffer_add(out, resp->body, strlen(resp->body));
    struct evkeyvalq *h = evhttp_request_get_output_headers(er);
    evhttp_add_header(h, "Content-Type",
                      resp->content_type ? resp->content_type : "application/json");
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_send_reply(er, resp->status ? resp->status : 200, NULL, out);
    evbuffer_free(out);
    free(resp->body);
    resp->body = NULL;
}

static const char *method_name(enum evhttp_cmd_type t)
{
    switch (t) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    default:
        return "OTHER";
    }
}

static void on_request(struct evhttp_request *er, void *arg)
{
    fw_http *h = arg;
    fw_http_resp resp = {0};
    fw_http_req req = {0};
    char *path = NULL, *body = NULL;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(er);
    const char *raw_path = uri ? evhttp_uri_get_path(uri) : NULL;
    path = evhttp_uridecode(raw_path ? raw_path : "/", 0, NULL);
    req.method = method_name(evhttp_request_get_command(er));
    req.path = path;
    req.query = uri && evhttp_uri_get_query(uri) ? evhttp_uri_get_query(uri) : "";
    req.authorization = evhttp_find_header(evhttp_request_get_input_headers(er), "Authorization");

    struct evbuffer *in = evhttp_request_get_input_buffer(er);
    size_t len = evbuffer_get_length(in);
    if (len > MAX_BODY) {
        fw_http_error(&resp, 413, "body too large");
        goto reply;
    }
    body = malloc(len + 1);
    if (!body)
        goto reply;
    evbuffer_copyout(in, body, len);
    body[len] = 0;
    req.body = body;
    req.body_len = len;

    int path_matched = 0;
    for (int i = 0; i < h->nroutes; i++) {
        route *r = &h->routes[i];
        if (!match_route(r, path, &req)) {
            free_params(&req);
            continue;
        }
        path_matched = 1;
        if (strcmp(r->method, req.method) != 0) {
            free_params(&req);
            continue;
        }
        if (r->need != FW_ROLE_NONE) {
            req.role = fw_tokens_check(h->tokens, req.authorization, &req.user);
            if (req.role == FW_ROLE_NONE) {
                fw_http_error(&resp, 401, "a valid bearer token is required");
                goto reply;
            }
            if (req.role < r->need) {
                fw_http_error(&resp, 403, "role %s may not do this",
                              req.role == FW_ROLE_VIEWER ? "viewer" : "supervisor");
                goto reply;
            }
        }
        r->fn(&req, &resp, r->ud);
        if (!resp.body && !resp.status)
            fw_http_error(&resp, 500, "handler gave no answer");
        goto reply;
    }
    /* Unknown paths under /api/ still need a token: do not reveal which
     * paths exist to an anonymous caller. */
    if (strncmp(path, "/api/", 5) == 0 &&
        fw_tokens_check(h->tokens, req.authorization, NULL) == FW_ROLE_NONE)
        fw_http_error(&resp, 401, "a valid bearer token is required");
    else if (path_matched)
        fw_http_error(&resp, 405, "method %s not allowed on %s", req.method, path);
    else
        fw_http_error(&resp, 404, "no such path: %s", path);
reply:
    fw_metric_add(h->m_requests, 1);
    FW_DEBUG("http.request", "method=%s path=%s status=%d", req.method, path,
             resp.status ? resp.status : 200);
    send_resp(er, &resp);
    free_params(&req);
    free(body);
    free(path);
}

fw_http *fw_http_start(struct event_base *base, const char *listen, const char *tokens_path,
                       char *err, int errlen)
{
    fw_http *h = calloc(1, sizeof *h);
    char host[256];
    if (!h)
        return NULL;
    const char *colon = strrchr(listen, ':');
    if (!colon) {
        snprintf(err, (size_t)errlen, "http.listen: expected HOST:PORT, got %s", listen);
        goto fail;
    }
    snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);
    int port = atoi(colon + 1);
    h->http = evhttp_new(base);
    if (!h->http || evhttp_bind_socket(h->http, host, (ev_uint16_t)port) != 0) {
        snprintf(err, (size_t)errlen, "http.listen: cannot listen on %s: %s", listen,
                 strerror(errno));
        goto fail;
    }
    /* Every method reaches on_request, which answers 405 in JSON for the
     * ones a path does not take (libevent's own 501 page is HTML). */
    evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_max_body_size(h->http, MAX_BODY);
    evhttp_set_timeout(h->http, 30);
    evhttp_set_gencb(h->http, on_request, h);
    h->m_requests = fw_metric_counter("fundwatch_http_requests_total", "HTTP requests", NULL);
    if (tokens_path) {
        h->tokens_path = strdup(tokens_path);
        h->tokens = fw_tokens_load(tokens_path, err, errlen);
        if (!h->tokens) {
            /* No token file: the API stays closed (401), the rest works. */
            FW_WARN("http.no_tokens", "file=%s detail=\"%s\"", tokens_path, err);
            err[0] = 0;
        }
    }
    FW_INFO("http.listening", "addr=%s", listen);
    return h;
fail:
    fw_http_stop(h);
    return NULL;
}

void fw_http_stop(fw_http *h)
{
    if (!h)
        return;
    if (h->http)
        evhttp_free(h->http);
    for (int i = 0; i < h->nroutes; i++)
        free(h->routes[i].pattern);
    fw_tokens_free(h->tokens);
    free(h->tokens_path);
    free(h);
}

int fw_http_reload_tokens(fw_http *h, char *err, int errlen)
{
    if (!h->tokens_path)
        return 0;
    fw_tokens *t = fw_tokens_load(h->tokens_path, err, errlen);
    if (!t)
        return -1;
    fw_tokens_free(h->tokens);
    h->tokens = t;
    return 0;
}

void fw_http_route(fw_http *h, const char *method, const char *pattern, fw_role need,
                   fw_http_handler fn, void *ud)
{
    if (h->nroutes == MAX_ROUTES) {
        FW_ERROR("http.too_many_routes", "pattern=%s", pattern);
        abort();
    }
    route *r = &h->routes[h->nroutes++];
    snprintf(r->method, sizeof r->method, "%s", method);
    r->pattern = strdup(pattern);
    r->need = need;
    r->fn = fn;
    r->ud = ud;
}
