/*
 * city_msgs.h - benchmark traffic made from the sample city (bench/city.py).
 *
 * Included by bench_e2e.c and bench_check.c (static functions only; the
 * bench CMakeLists builds one program per bench_*.c).
 *
 * The city file holds one business day: about 1,400 indicator operations
 * and 8,000 voucher events (created -> signed -> sent -> paid, returns,
 * cancellations, the planted violations).  A benchmark needs more vouchers
 * than one day, so the day's voucher events are replayed R times: replica k
 * of a voucher gets its own event id (`<id>-rNN`), voucher number
 * (`<no>RNN`) and payee account (two digits of the account replaced by k,
 * so per-payee rules see what the city's day shows and no more); dates,
 * units, indicators, amounts and purposes stay the city's.  Message i of
 * the replayed stream is template i / R, replica i % R, so every voucher's
 * events stay in order.  Before them, the city's indicator operations, and
 * one top-up adjust (追加) per indicator that the R-fold spending would
 * otherwise overdraw: the ledger then looks like a city R times as busy.
 */
#ifndef FW_BENCH_CITY_MSGS_H
#define FW_BENCH_CITY_MSGS_H

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/money.h"
#include "tests/support/harness.h"

typedef struct city_msgs {
    int n, cap;
    char **subjects, **bodies;
} city_msgs;

typedef struct city_ind {
    char *id, *unit;
    int64_t allocated, spent; /* fen: operations in the file; created vouchers */
} city_ind;

typedef struct city {
    city_msgs ind; /* indicator operations, in file order */
    int nv;        /* voucher event templates, in file order */
    char **vsubj;  /* their subjects */
    json_t **vt;   /* their bodies */
    int *created;  /* indices into vt of the `created` events */
    int ncreated;
    city_ind *inds;
    int ninds;
} city;

static inline void city_msgs_add(city_msgs *m, const char *subject, char *body)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 4096;
        m->subjects = realloc(m->subjects, sizeof *m->subjects * (size_t)m->cap);
        m->bodies = realloc(m->bodies, sizeof *m->bodies * (size_t)m->cap);
        if (!m->subjects || !m->bodies)
            abort();
    }
    m->subjects[m->n] = strdup(subject);
    m->bodies[m->n] = body;
    m->n++;
}

static inline void city_msgs_free(city_msgs *m)
{
    for (int i = 0; i < m->n; i++)
        free(m->subjects[i]), free(m->bodies[i]);
    free(m->subjects);
    free(m->bodies);
    memset(m, 0, sizeof *m);
}

static inline city_ind *city_ind_get(city *c, const char *id, const char *unit)
{
    for (int i = c->ninds - 1; i >= 0; i--)
        if (strcmp(c->inds[i].id, id) == 0)
            return &c->inds[i];
    if (!unit)
        return NULL;
    c->inds = realloc(c->inds, sizeof *c->inds * (size_t)(c->ninds + 1));
    if (!c->inds)
        abort();
    city_ind *d = &c->inds[c->ninds++];
    d->id = strdup(id);
    d->unit = strdup(unit);
    d->allocated = d->spent = 0;
    return d;
}

static inline int64_t city_amount(json_t *body)
{
    const char *s = json_string_value(json_object_get(body, "amount"));
    int64_t fen = 0;
    const char *why;
    if (!s || fw_money_parse(s, strlen(s), 1, &fen, &why) != 0)
        return 0;
    return fen;
}

/* Write the city with bench/city.py (seed 42, small scale) into dir. */
static inline char *city_generate(const char *dir)
{
    char *path = malloc(1024), cmd[4096];
    snprintf(path, 1024, "%s/city.jsonl", dir);
    snprintf(cmd, sizeof cmd, "cd '%s' && python3 bench/city.py --seed 42 --out '%s' 2>/dev/null",
             fw_t_src(), path);
    if (system(cmd) != 0) {
        free(path);
        return NULL;
    }
    return path;
}

/* Read the indicator operations and voucher events of a city file. */
static inline int city_load(city *c, const char *path)
{
    memset(c, 0, sizeof *c);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    int vcap = 0;
    while (getline(&line, &cap, f) > 0) {
        int is_v = strncmp(line, "{\"subject\":\"fiscal.voucher.", 27) == 0;
        int is_i = strncmp(line, "{\"subject\":\"fiscal.indicator.", 29) == 0;
        if (!is_v && !is_i)
            continue; /* payroll, reimbursements, subsidies, malformed lines */
        json_t *j = json_loads(line, 0, NULL);
        json_t *data = json_object_get(j, "data");
        const char *subject = json_string_value(json_object_get(j, "subject"));
        if (!json_is_object(data) || !subject) {
            json_decref(j);
            continue; /* a deliberately malformed message: not traffic */
        }
        if (is_i) {
            const char *op = json_string_value(json_object_get(data, "op"));
            const char *ind = json_string_value(json_object_get(data, "indicator_id"));
            const char *unit = json_string_value(json_object_get(data, "unit_code"));
            if (op && ind && unit) {
                int64_t fen = city_amount(data);
                city_ind_get(c, ind, unit)->allocated += fen;
                const char *from = json_string_value(json_object_get(data, "from_indicator_id"));
                if (strcmp(op, "transfer") == 0 && from)
                    city_ind_get(c, from, unit)->allocated -= fen;
            }
            city_msgs_add(&c->ind, subject, json_dumps(data, JSON_COMPACT));
        } else {
            if (c->nv == vcap) {
                vcap = vcap ? vcap * 2 : 8192;
                c->vt = realloc(c->vt, sizeof *c->vt * (size_t)vcap);
                c->vsubj = realloc(c->vsubj, sizeof *c->vsubj * (size_t)vcap);
                c->created = realloc(c->created, sizeof *c->created * (size_t)vcap);
                if (!c->vt || !c->vsubj || !c->created)
                    abort();
            }
            const char *ev = json_string_value(json_object_get(data, "event"));
            if (ev && strcmp(ev, "created") == 0) {
                c->created[c->ncreated++] = c->nv;
                const char *ind = json_string_value(json_object_get(data, "indicator_id"));
                city_ind *d = ind ? city_ind_get(c, ind, NULL) : NULL;
                if (d)
                    d->spent += city_amount(data);
            }
            c->vsubj[c->nv] = strdup(subject);
            c->vt[c->nv++] = json_incref(data);
        }
        json_decref(j);
    }
    free(line);
    fclose(f);
    return c->nv > 0 && c->ind.n > 0 ? 0 : -1;
}

static inline void city_free(city *c)
{
    city_msgs_free(&c->ind);
    for (int i = 0; i < c->nv; i++)
        free(c->vsubj[i]), json_decref(c->vt[i]);
    for (int i = 0; i < c->ninds; i++)
        free(c->inds[i].id), free(c->inds[i].unit);
    free(c->vsubj);
    free(c->vt);
    free(c->created);
    free(c->inds);
    memset(c, 0, sizeof *c);
}

/* Replicas needed for `nvoucher` voucher messages. */
static inline int city_replicas(const city *c, long nvoucher)
{
    long r = (nvoucher + c->nv - 1) / c->nv;
    return r < 1 ? 1 : (r > 99 ? 99 : (int)r);
}

/* The indicator operations, then a top-up adjust for every indicator whose
 * allocation would not cover `replicas` times the day's spending (+10 %). */
static inline void city_indicator_msgs(const city *c, int replicas, city_msgs *out)
{
    for (int i = 0; i < c->ind.n; i++)
        city_msgs_add(out, c->ind.subjects[i], strdup(c->ind.bodies[i]));
    int k = 0;
    for (int i = 0; i < c->ninds; i++) {
        const city_ind *d = &c->inds[i];
        int64_t need = d->spent * replicas + d->spent * replicas / 10;
        if (need <= d->allocated || d->spent == 0)
            continue;
        char subj[64], amt[40], body[512];
        snprintf(subj, sizeof subj, "fiscal.indicator.%s", d->unit);
        snprintf(body, sizeof body,
                 "{\"id\":\"bench-topup-%05d\",\"op\":\"adjust\",\"occurred_at\":"
                 "\"2024-06-11T09:00:00+08:00\",\"doc_no\":\"三财预〔2024〕%d号\","
                 "\"indicator_id\":\"%s\",\"unit_code\":\"%s\",\"amount\":\"%s\","
                 "\"note\":\"追加\"}",
                 k, 900 + k, d->id, d->unit, fw_money_format(need - d->allocated, amt, sizeof amt));
        k++;
        city_msgs_add(out, subj, strdup(body));
    }
}

static inline void city_set_suffix(json_t *o, const char *key, const char *suffix)
{
    const char *v = json_string_value(json_object_get(o, key));
    if (!v)
        return;
    char buf[256];
    snprintf(buf, sizeof buf, "%s%s", v, suffix);
    json_object_set_new(o, key, json_string(buf));
}

/* Message i of the replayed voucher stream (malloc'd body; subject is the
 * template's). */
static inline char *city_voucher_msg(const city *c, int replicas, long i, const char **subject)
{
    int t = (int)((i / replicas) % c->nv), k = (int)(i % replicas);
    long round = i / ((long)replicas * c->nv); /* past the last replica: start over */
    json_t *o = json_deep_copy(c->vt[t]);
    char sfx[32];
    snprintf(sfx, sizeof sfx, "-r%02d%s", k, round ? "x" : "");
    if (round)
        snprintf(sfx + strlen(sfx), sizeof sfx - strlen(sfx), "%ld", round);
    city_set_suffix(o, "id", sfx);
    snprintf(sfx, sizeof sfx, "R%02d", k);
    if (round)
        snprintf(sfx + strlen(sfx), sizeof sfx - strlen(sfx), "x%ld", round);
    city_set_suffix(o, "voucher_no", sfx);
    const char *acct = json_string_value(json_object_get(o, "payee_account"));
    const char *own = json_string_value(json_object_get(o, "payer_account"));
    size_t len = acct ? strlen(acct) : 0;
    if (len >= 12 && (!own || strcmp(acct, own) != 0)) {
        char buf[128];
        snprintf(buf, sizeof buf, "%s", acct);
        buf[len - 8] = (char)('0' + k / 10);
        buf[len - 7] = (char)('0' + k % 10);
        json_object_set_new(o, "payee_account", json_string(buf));
    }
    *subject = c->vsubj[t];
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

/* A pre-payment check request: the j-th created voucher of the day with a
 * fresh voucher number and no id (contract §3: the request needs none). */
static inline char *city_check_body(const city *c, long j)
{
    json_t *o = json_deep_copy(c->vt[c->created[j % c->ncreated]]);
    json_object_del(o, "id");
    char no[64];
    snprintf(no, sizeof no, "CK2024%08ld", j);
    json_object_set_new(o, "voucher_no", json_string(no));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

#endif
