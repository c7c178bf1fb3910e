/*
 * http.h - the admin/API HTTP server (libevent evhttp on the loop).
 *
 * Modules register handlers by method and path pattern; handlers see a
 * plain request struct and fill a response, so alerts/, sms/ and the ledger
 * need no libevent types.  Handlers run on the loop thread and may read and
 * write the store directly.
 *
 * Patterns are literal paths where a star segment matches one path segment:
 * "/api/alerts/{*}" matches "/api/alerts/AL-000017"; captured segments are in
 * req->params[] (URL-decoded).  Every path under /api/ is authenticated with
 * a bearer token from auth.tokens; a route says which role it needs
 * (FW_ROLE_VIEWER reads, FW_ROLE_SUPERVISOR acts).  FW_ROLE_NONE routes
 * (/healthz, /sms/dlr) do their own checks.
 *
 * Errors are JSON: {"error": "..."}.
 */
#ifndef FW_HTTP_H
#define FW_HTTP_H

#include <jansson.h>
#include <stddef.h>

typedef struct fw_http fw_http;
struct event_base;

typedef enum { FW_ROLE_NONE = 0, FW_ROLE_VIEWER = 1, FW_ROLE_SUPERVISOR = 2 } fw_role;

#define FW_HTTP_MAX_PARAMS 4

typedef struct fw_http_req {
    const char *method; /* "GET", "POST" */
    const char *path;   /* decoded path without query */
    const char *query;  /* raw query string or "" */
    const char *body;   /* NUL-terminated copy of the body ("" if none) */
    size_t body_len;
    const char *authorization;              /* the Authorization header or NULL */
    const char *params[FW_HTTP_MAX_PARAMS]; /* captured `*` segments */
    int nparams;
    fw_role role;     /* the caller's role (from the token) */
    const char *user; /* the token's name, or NULL */
} fw_http_req;

typedef struct fw_http_resp {
    int status;               /* default 200 */
    char *body;               /* malloc'd, taken by the server */
    const char *content_type; /* default application/json */
} fw_http_resp;

typedef void (*fw_http_handler)(const fw_http_req *req, fw_http_resp *resp, void *ud);

/* listen "127.0.0.1:8640"; tokens_path may be NULL (no tokens: /api/ all 401).
 * Returns NULL with err filled. */
fw_http *fw_http_start(struct event_base *base, const char *listen, const char *tokens_path,
                       char *err, int errlen);
void fw_http_stop(fw_http *h);
/* Re-read the tokens file (SIGHUP). */
int fw_http_reload_tokens(fw_http *h, char *err, int errlen);

void fw_http_route(fw_http *h, const char *method, const char *pattern, fw_role need,
                   fw_http_handler fn, void *ud);

/* Response helpers. fw_http_json steals `j`. */
void fw_http_json(fw_http_resp *r, int status, json_t *j);
void fw_http_error(fw_http_resp *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Copy a URL-decoded query parameter into buf; 1 if present. */
int fw_http_query(const fw_http_req *req, const char *name, char *buf, size_t buflen);

/* Token file parsing, exposed for tests: "token role name" per line. */
typedef struct fw_tokens fw_tokens;
fw_tokens *fw_tokens_load(const char *path, char *err, int errlen);
void fw_tokens_free(fw_tokens *t);
/* Role of "Bearer xxx", FW_ROLE_NONE if not valid; *name set when found. */
fw_role fw_tokens_check(const fw_tokens *t, const char *authorization, const char **name);

#endif
