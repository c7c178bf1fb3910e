/*
 * carrier.c - carrier adapters: build the HTTP request for one SMS and
 * classify the answer into sent / retry / throttled / failed.
 *
 * generic-json (contract §6): POST JSON {out_id, phone, sign, template,
 * content} with "Authorization: Bearer <sms.token>".  The carrier dedups
 * by out_id, so every transport failure, also one after the request was
 * sent, is simply retried.
 *
 * aliyun: dysmsapi SendSms, RPC style, signature v1 (HMAC-SHA1) as
 * documented by Alibaba Cloud ("Request syntax and signature method V2 for
 * RPC APIs" / 签名机制): parameters percent-encoded (RFC 3986 unreserved
 * kept; space %20, '*' %2A, '~' kept), sorted by name, joined with '&';
 * StringToSign = METHOD & %2F & encode(canonical query); key = secret + "&".
 * SendSms is not idempotent: a failure after the request reached the
 * server is not retried (the row is failed with a clear error; a later
 * SmsReport receipt still moves it forward).
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/timeutil.h"
#include "sms/sms_impl.h"

char *fw_sms_aliyun_encode(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = malloc(n * 3 + 1);
    size_t o = 0;
    if (!out)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = 0;
    return out;
}

static int kv_cmp(const void *a, const void *b)
{
    const fw_sms_kv *x = a, *y = b;
    return strcmp(x->key, y->key);
}

/* Append src to *buf (growing). */
static int buf_cat(char **buf, size_t *len, size_t *cap, const char *src)
{
    size_t n = strlen(src);
    if (*len + n + 1 > *cap) {
        size_t nc = (*cap ? *cap : 256);
        while (nc < *len + n + 1)
            nc *= 2;
        char *nb = realloc(*buf, nc);
        if (!nb)
            return -1;
        *buf = nb;
        *cap = nc;
    }
    memcpy(*buf + *len, src, n + 1);
    *len += n;
    return 0;
}

/* The canonical query: encoded k=v pairs sorted by key, joined by '&'. */
static char *canonical_query(const fw_sms_kv *params, int n)
{
    fw_sms_kv *sorted = malloc(sizeof *sorted * (size_t)(n > 0 ? n : 1));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    if (!sorted)
        return NULL;
    memcpy(sorted, params, sizeof *sorted * (size_t)n);
    qsort(sorted, (size_t)n, sizeof *sorted, kv_cmp);
    if (buf_cat(&buf, &len, &cap, "") < 0)
        goto fail;
    for (int i = 0; i < n; i++) {
        char *k = fw_sms_aliyun_encode(sorted[i].key);
        char *v = fw_sms_aliyun_encode(sorted[i].value ? sorted[i].value : "");
        int bad = !k || !v || (i && buf_cat(&buf, &len, &cap, "&") < 0) ||
                  buf_cat(&buf, &len, &cap, k) < 0 || buf_cat(&buf, &len, &cap, "=") < 0 ||
                  buf_cat(&buf, &len, &cap, v) < 0;
        free(k);
        free(v);
        if (bad)
            goto fail;
    }
    free(sorted);
    return buf;
fail:
    free(sorted);
    free(buf);
    return NULL;
}

int fw_sms_aliyun_sign(const char *method, const fw_sms_kv *params, int n, const char *secret,
                       char *sig, size_t siglen, char **string_to_sign, char **canonical)
{
    int rc = -1;
    char *canon = canonical_query(params, n);
    char *enc = canon ? fw_sms_aliyun_encode(canon) : NULL;
    char *sts = NULL, *key = NULL;
    if (!enc)
        goto cleanup;
    size_t stslen = strlen(method) + strlen(enc) + 8;
    sts = malloc(stslen);
    key = malloc(strlen(secret) + 2);
    if (!sts || !key)
        goto cleanup;
    snprintf(sts, stslen, "%s&%%2F&%s", method, enc);
    snprintf(key, strlen(secret) + 2, "%s&", secret);

    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (!HMAC(EVP_sha1(), key, (int)strlen(key), (const unsigned char *)sts, strlen(sts), mac,
              &maclen))
        goto cleanup;
    unsigned char b64[64];
    int b64len = EVP_EncodeBlock(b64, mac, (int)maclen);
    if (b64len < 0 || (size_t)b64len + 1 > siglen)
        goto cleanup;
    memcpy(sig, b64, (size_t)b64len + 1);
    rc = 0;
    if (string_to_sign) {
        *string_to_sign = sts;
        sts = NULL;
    }
    if (canonical) {
        *canonical = canon;
        canon = NULL;
    }
cleanup:
    free(canon);
    free(enc);
    free(sts);
    free(key);
    return rc;
}

void sms_carrier_free_headers(char **headers)
{
    for (int i = 0; headers && headers[i]; i++)
        free(headers[i]);
    free(headers);
}

static char **headers_new(const char *a, const char *b)
{
    char **h = calloc(3, sizeof *h);
    if (!h)
        return NULL;
    h[0] = strdup(a);
    h[1] = b ? strdup(b) : NULL;
    if (!h[0] || (b && !h[1])) {
        sms_carrier_free_headers(h);
        return NULL;
    }
    return h;
}

static int generic_request(fw_sms *s, const sms_msg *m, char ***headers, char **body, char *err,
                           int errlen)
{
    json_t *j =
        json_pack("{s:s, s:s, s:s, s:s, s:s}", "out_id", m->out_id, "phone", m->phone, "sign",
                  s->sign, "template", sms_kind_name(m->kind), "content", m->content);
    *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    char auth[1024];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", s->token ? s->token : "");
    *headers = headers_new("Content-Type: application/json", auth);
    if (!*body || !*headers) {
        snprintf(err, (size_t)errlen, "out of memory");
        return -1;
    }
    return 0;
}

static int aliyun_request(fw_sms *s, const sms_msg *m, char ***headers, char **body, char *err,
                          int errlen)
{
    unsigned char rnd[16];
    char nonce[40], ts[32], sig[64];
    if (RAND_bytes(rnd, sizeof rnd) != 1) {
        snprintf(err, (size_t)errlen, "no randomness for SignatureNonce");
        return -1;
    }
    for (int i = 0; i < 16; i++)
        snprintf(nonce + 2 * i, 3, "%02x", rnd[i]);
    int64_t now = fw_clock_now();
    int64_t days = now >= 0 ? now / 86400 : (now - 86399) / 86400;
    int64_t secs = now - days * 86400;
    int y, mo, d;
    fw_civil_from_days(days, &y, &mo, &d);
    snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02dZ", y, mo, d, (int)(secs / 3600),
             (int)(secs / 60 % 60), (int)(secs % 60));
    const char *tpl = s->ali_tpl[m->kind];
    if (!tpl || !*tpl) {
        snprintf(err, (size_t)errlen, "sms.aliyun_template_%s is not set", sms_kind_name(m->kind));
        return -1;
    }
    fw_sms_kv p[] = {
        {"AccessKeyId", s->ak_id},
        {"Action", "SendSms"},
        {"Format", "JSON"},
        {"OutId", m->out_id},
        {"PhoneNumbers", m->phone},
        {"RegionId", s->ali_region},
        {"SignName", s->ali_sign_name && *s->ali_sign_name ? s->ali_sign_name : s->sign},
        {"SignatureMethod", "HMAC-SHA1"},
        {"SignatureNonce", nonce},
        {"SignatureVersion", "1.0"},
        {"TemplateCode", tpl},
        {"TemplateParam", m->params ? m->params : "{}"},
        {"Timestamp", ts},
        {"Version", "2017-05-25"},
    };
    int n = (int)(sizeof p / sizeof p[0]);
    char *canon = NULL;
    if (fw_sms_aliyun_sign("POST", p, n, s->ak_secret ? s->ak_secret : "", sig, sizeof sig, NULL,
                           &canon) < 0) {
        snprintf(err, (size_t)errlen, "signing failed");
        return -1;
    }
    char *esig = fw_sms_aliyun_encode(sig);
    size_t blen = strlen(canon) + (esig ? strlen(esig) : 0) + 16;
    *body = malloc(blen);
    if (*body && esig)
        snprintf(*body, blen, "Signature=%s&%s", esig, canon);
    free(esig);
    free(canon);
    *headers = headers_new("Content-Type: application/x-www-form-urlencoded", NULL);
    if (!*body || !*headers) {
        snprintf(err, (size_t)errlen, "out of memory");
        return -1;
    }
    return 0;
}

int sms_carrier_request(fw_sms *s, const sms_msg *m, char ***headers, char **body, char *err,
                        int errlen)
{
    *headers = NULL;
    *body = NULL;
    int rc = s->carrier == SMS_CARRIER_ALIYUN ? aliyun_request(s, m, headers, body, err, errlen)
                                              : generic_request(s, m, headers, body, err, errlen);
    if (rc < 0) {
        sms_carrier_free_headers(*headers);
        free(*body);
        *headers = NULL;
        *body = NULL;
    }
    return rc;
}

static void set_out(sms_outcome *o, sms_outcome_kind k, const char *reason, const char *fmt,
                    const char *a, const char *b)
{
    o->kind = k;
    o->metric_reason = reason;
    snprintf(o->error, sizeof o->error, fmt, a ? a : "", b ? b : "");
}

/* A short printable prefix of a carrier body for the error column. */
static void snippet(const char *body, char *out, size_t outlen)
{
    size_t o = 0;
    for (const char *p = body ? body : ""; *p && o + 1 < outlen; p++)
        out[o++] = (*p == '\n' || *p == '\r' || *p == '\t') ? ' ' : *p;
    /* do not cut a UTF-8 sequence in half */
    while (o > 0 && ((unsigned char)out[o - 1] & 0xC0) == 0x80)
        o--;
    if (o > 0 && ((unsigned char)out[o - 1] & 0xC0) == 0xC0)
        o--;
    out[o] = 0;
}

static void classify_generic(fw_sms *s, const sms_http_result *r, sms_outcome *o)
{
    char snip[160], num[16];
    snippet(r->body, snip, sizeof snip);
    snprintf(num, sizeof num, "%ld", r->status);
    if (r->status < 0) {
        int timeout = r->error && strstr(r->error, "imed out");
        set_out(o, SMS_OUT_RETRY, timeout ? "timeout" : "transport", "%s%s",
                timeout ? "timeout: " : "transport: ", r->error);
        return;
    }
    if (r->status == 429) {
        set_out(o, SMS_OUT_RETRY, "http_429", "HTTP 429 %s%s", snip, NULL);
        return;
    }
    if (r->status >= 500) {
        set_out(o, SMS_OUT_RETRY, "http_5xx", "HTTP %s %s", num, snip);
        return;
    }
    if (r->status != 200) {
        set_out(o, SMS_OUT_FAILED, "rejected", "HTTP %s %s", num, snip);
        return;
    }
    json_error_t je;
    json_t *j = json_loads(r->body, 0, &je);
    const char *code = json_string_value(json_object_get(j, "code"));
    const char *mid = json_string_value(json_object_get(j, "message_id"));
    if (!code) {
        /* An answer we cannot read: the carrier dedups by out_id, so asking
         * again is safe and yields the first message_id. */
        set_out(o, SMS_OUT_RETRY, "bad_answer", "unreadable carrier answer: %s%s", snip, NULL);
    } else if (strcmp(code, "OK") == 0 && mid && *mid) {
        o->kind = SMS_OUT_SENT;
        snprintf(o->message_id, sizeof o->message_id, "%s", mid);
    } else if (strcmp(code, "OK") == 0) {
        set_out(o, SMS_OUT_RETRY, "bad_answer", "carrier OK without message_id%s%s", NULL, NULL);
    } else if (strcmp(code, "THROTTLED") == 0) {
        set_out(o, SMS_OUT_THROTTLED, "throttled", "carrier THROTTLED%s%s", NULL, NULL);
    } else {
        const char *msg = json_string_value(json_object_get(j, "message"));
        set_out(o, SMS_OUT_FAILED, "rejected", "carrier code %s: %s", code, msg ? msg : snip);
    }
    json_decref(j);
}

static void classify_aliyun(fw_sms *s, const sms_http_result *r, sms_outcome *o)
{
    char snip[160], num[16];
    snippet(r->body, snip, sizeof snip);
    snprintf(num, sizeof num, "%ld", r->status);
    if (r->status < 0) {
        int timeout = r->error && strstr(r->error, "imed out");
        if (!r->sent) {
            set_out(o, SMS_OUT_RETRY, timeout ? "timeout" : "transport", "not sent: %s%s", r->error,
                    NULL);
        } else {
            set_out(o, SMS_OUT_FAILED, timeout ? "timeout" : "transport",
                    "in flight (%s); outcome unknown, not resent (carrier not idempotent)%s",
                    r->error, NULL);
        }
        return;
    }
    json_error_t je;
    json_t *j = json_loads(r->body, 0, &je);
    const char *code = json_string_value(json_object_get(j, "Code"));
    const char *msg = json_string_value(json_object_get(j, "Message"));
    const char *biz = json_string_value(json_object_get(j, "BizId"));
    if (code && strcmp(code, "OK") == 0 && r->status == 200) {
        o->kind = SMS_OUT_SENT;
        snprintf(o->message_id, sizeof o->message_id, "%s", biz && *biz ? biz : "aliyun");
    } else if (code && strcmp(code, "isv.BUSINESS_LIMIT_CONTROL") == 0) {
        set_out(o, SMS_OUT_THROTTLED, "throttled", "aliyun %s: %s", code, msg);
    } else if (code && strcmp(code, "isv.MOBILE_NUMBER_ILLEGAL") == 0) {
        set_out(o, SMS_OUT_FAILED, "rejected", "aliyun %s: %s", code, msg);
    } else if (r->status == 429 || (code && strncmp(code, "Throttling", 10) == 0)) {
        set_out(o, SMS_OUT_RETRY, "http_429", "aliyun %s: %s", code ? code : num, msg);
    } else if (r->status >= 500 || (code && (strcmp(code, "ServiceUnavailable") == 0 ||
                                             strcmp(code, "InternalError") == 0))) {
        set_out(o, SMS_OUT_RETRY, "http_5xx", "aliyun %s: %s", code ? code : num, msg ? msg : snip);
    } else if (!code) {
        set_out(o, SMS_OUT_FAILED, "bad_answer", "aliyun HTTP %s without Code: %s", num, snip);
    } else {
        set_out(o, SMS_OUT_FAILED, "rejected", "aliyun %s: %s", code, msg);
    }
    json_decref(j);
}

void sms_carrier_classify(fw_sms *s, const sms_http_result *r, sms_outcome *out)
{
    memset(out, 0, sizeof *out);
    if (s->carrier == SMS_CARRIER_ALIYUN)
        classify_aliyun(s, r, out);
    else
        classify_generic(s, r, out);
}
