/*
 * template.c - SMS templates: load, check, render; phone check; segments.
 *
 * A template file is UTF-8 text with named placeholders `{name}`; `{{` and
 * `}}` are literal braces; lines starting with '#' are comments; trailing
 * newlines are dropped.  Each kind accepts only its own placeholders
 * (sms_kind_vars), so a typo is a load error naming the file and the
 * placeholder instead of an SMS with a hole in it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sms/sms_impl.h"

static const char *const payroll_vars[] = {
    "name",     "unit",       "emp_id",          "period", "date",         "gross",
    "earnings", "deductions", "deduction_total", "net",    "account_tail", NULL};
static const char *const reimburse_vars[] = {"name", "unit",     "emp_id",  "amount", "card_tail",
                                             "date", "spent_on", "summary", NULL};
static const char *const subsidy_vars[] = {"name",   "unit", "emp_id", "kind",
                                           "amount", "date", NULL};
static const char *const alert_vars[] = {"name", "level",   "rule", "message", "alert_id",
                                         "unit", "subject", "date", "action",  NULL};

const char *const *const sms_kind_vars[SMS_NKINDS] = {payroll_vars, reimburse_vars, subsidy_vars,
                                                      alert_vars};

static const char *const kind_names[SMS_NKINDS] = {"payroll", "reimburse", "subsidy", "alert"};

const char *sms_kind_name(int kind)
{
    return kind >= 0 && kind < SMS_NKINDS ? kind_names[kind] : "unknown";
}

int sms_kind_parse(const char *s)
{
    for (int k = 0; s && k < SMS_NKINDS; k++)
        if (strcmp(s, kind_names[k]) == 0)
            return k;
    return -1;
}

int sms_var_index(int kind, const char *name)
{
    const char *const *v = sms_kind_vars[kind];
    for (int i = 0; v[i]; i++)
        if (strcmp(v[i], name) == 0)
            return i;
    return -1;
}

typedef struct tpl_part {
    int var;    /* variable index, or -1 for literal text */
    char *text; /* literal text */
} tpl_part;

typedef struct sms_tpl {
    tpl_part *parts;
    int nparts;
} sms_tpl;

struct sms_templates {
    sms_tpl t[SMS_NKINDS];
};

static void tpl_clear(sms_tpl *t)
{
    for (int i = 0; i < t->nparts; i++)
        free(t->parts[i].text);
    free(t->parts);
    t->parts = NULL;
    t->nparts = 0;
}

void sms_templates_free(sms_templates *t)
{
    if (!t)
        return;
    for (int k = 0; k < SMS_NKINDS; k++)
        tpl_clear(&t->t[k]);
    free(t);
}

static int tpl_add(sms_tpl *t, int var, const char *text, size_t len)
{
    tpl_part *p = realloc(t->parts, sizeof *p * (size_t)(t->nparts + 1));
    if (!p)
        return -1;
    t->parts = p;
    p[t->nparts].var = var;
    p[t->nparts].text = NULL;
    if (var < 0) {
        p[t->nparts].text = strndup(text ? text : "", len);
        if (!p[t->nparts].text)
            return -1;
    }
    t->nparts++;
    return 0;
}

/* Drop comment lines and trailing whitespace; returns malloc'd text. */
static char *strip_comments(const char *raw)
{
    size_t n = strlen(raw);
    char *out = malloc(n + 1);
    size_t o = 0;
    if (!out)
        return NULL;
    const char *p = raw;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) + 1 : strlen(p);
        if (*p != '#') {
            memcpy(out + o, p, len);
            o += len;
        }
        p += len;
    }
    while (o > 0 &&
           (out[o - 1] == '\n' || out[o - 1] == '\r' || out[o - 1] == ' ' || out[o - 1] == '\t'))
        o--;
    out[o] = 0;
    return out;
}

static int tpl_parse(sms_tpl *t, int kind, const char *path, const char *raw, char *err, int errlen)
{
    char *text = strip_comments(raw);
    int rc = -1;
    if (!text) {
        snprintf(err, (size_t)errlen, "%s: out of memory", path);
        return -1;
    }
    if (!*text) {
        snprintf(err, (size_t)errlen, "%s: empty template", path);
        goto cleanup;
    }
    char lit[4096];
    size_t nlit = 0;
    for (const char *p = text; *p;) {
        if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
            if (nlit < sizeof lit)
                lit[nlit++] = p[0];
            p += 2;
            continue;
        }
        if (*p == '}') {
            snprintf(err, (size_t)errlen, "%s: unmatched '}' (write '}}' for a brace)", path);
            goto cleanup;
        }
        if (*p != '{') {
            if (nlit >= sizeof lit) {
                snprintf(err, (size_t)errlen, "%s: template too long", path);
                goto cleanup;
            }
            lit[nlit++] = *p++;
            continue;
        }
        const char *end = strchr(p, '}');
        if (!end) {
            snprintf(err, (size_t)errlen, "%s: unterminated placeholder", path);
            goto cleanup;
        }
        char name[64];
        size_t len = (size_t)(end - p - 1);
        if (len == 0 || len >= sizeof name) {
            snprintf(err, (size_t)errlen, "%s: bad placeholder {%.*s}", path,
                     (int)(len < 64 ? len : 64), p + 1);
            goto cleanup;
        }
        memcpy(name, p + 1, len);
        name[len] = 0;
        int var = sms_var_index(kind, name);
        if (var < 0) {
            snprintf(err, (size_t)errlen,
                     "%s: unknown placeholder {%s} (a %s template knows:", path, name,
                     sms_kind_name(kind));
            for (const char *const *v = sms_kind_vars[kind]; *v; v++) {
                size_t el = strlen(err);
                snprintf(err + el, (size_t)errlen - el, " {%s}", *v);
            }
            size_t el = strlen(err);
            snprintf(err + el, (size_t)errlen - el, ")");
            goto cleanup;
        }
        if (nlit && tpl_add(t, -1, lit, nlit) < 0)
            goto oom;
        nlit = 0;
        if (tpl_add(t, var, NULL, 0) < 0)
            goto oom;
        p = end + 1;
    }
    if (nlit && tpl_add(t, -1, lit, nlit) < 0)
        goto oom;
    rc = 0;
    goto cleanup;
oom:
    snprintf(err, (size_t)errlen, "%s: out of memory", path);
cleanup:
    free(text);
    return rc;
}

static char *read_text(const char *path, char *err, int errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    if (!f) {
        snprintf(err, (size_t)errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 0, len = 0;
    for (;;) {
        if (len + 1024 + 1 > cap) {
            cap = cap ? cap * 2 : 4096;
            char *nb = realloc(buf, cap);
            if (!nb)
                break;
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0)
            break;
        if (len > 16384) {
            snprintf(err, (size_t)errlen, "%s: template file over 16 KiB", path);
            free(buf);
            fclose(f);
            return NULL;
        }
    }
    fclose(f);
    if (!buf) {
        snprintf(err, (size_t)errlen, "%s: out of memory", path);
        return NULL;
    }
    buf[len] = 0;
    if (strlen(buf) != len) {
        snprintf(err, (size_t)errlen, "%s: NUL byte in template", path);
        free(buf);
        return NULL;
    }
    return buf;
}

sms_templates *sms_templates_load(const char *dir, char *err, int errlen)
{
    sms_templates *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, (size_t)errlen, "out of memory");
        return NULL;
    }
    for (int k = 0; k < SMS_NKINDS; k++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.txt", dir, kind_names[k]);
        char *raw = read_text(path, err, errlen);
        if (!raw)
            goto fail;
        int rc = tpl_parse(&t->t[k], k, path, raw, err, errlen);
        free(raw);
        if (rc < 0)
            goto fail;
    }
    return t;
fail:
    sms_templates_free(t);
    return NULL;
}

char *sms_render(const sms_templates *t, int kind, const char *sign, const char *const *vals)
{
    const sms_tpl *tp = &t->t[kind];
    size_t len = strlen(sign) + 8;
    for (int i = 0; i < tp->nparts; i++) {
        const char *v = tp->parts[i].var < 0 ? tp->parts[i].text : vals[tp->parts[i].var];
        len += v ? strlen(v) : 0;
    }
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    size_t o = (size_t)snprintf(out, len + 1, "【%s】", sign);
    for (int i = 0; i < tp->nparts; i++) {
        const char *v = tp->parts[i].var < 0 ? tp->parts[i].text : vals[tp->parts[i].var];
        size_t vl = v ? strlen(v) : 0;
        memcpy(out + o, v ? v : "", vl);
        o += vl;
    }
    out[o] = 0;
    return out;
}

json_t *sms_params(const sms_templates *t, int kind, const char *const *vals)
{
    const sms_tpl *tp = &t->t[kind];
    json_t *o = json_object();
    for (int i = 0; o && i < tp->nparts; i++) {
        int var = tp->parts[i].var;
        if (var >= 0) {
            const char *v = vals[var] ? vals[var] : "";
            json_object_set_new(o, sms_kind_vars[kind][var], json_string(v));
        }
    }
    return o;
}

int fw_sms_phone_ok(const char *phone, const char **reason)
{
    static const char *bad_len = "phone: must be 11 digits (mainland mobile)";
    if (!phone || !*phone) {
        *reason = "phone: missing";
        return 0;
    }
    size_t n = strlen(phone);
    if (n != 11) {
        *reason = bad_len;
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        if (phone[i] < '0' || phone[i] > '9') {
            *reason = "phone: digits only (mainland mobile, 11 digits)";
            return 0;
        }
    if (phone[0] != '1' || phone[1] < '3') {
        *reason = "phone: not a mainland mobile prefix (must start 13-19)";
        return 0;
    }
    return 1;
}

int fw_sms_text_chars(const char *text)
{
    int n = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        if ((*p & 0xC0) != 0x80)
            n++;
    return n;
}

int fw_sms_segments(int chars)
{
    if (chars <= 70)
        return 1;
    return (chars + 66) / 67;
}
