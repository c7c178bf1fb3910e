/*
 * routing.c - the alerts.* keys, [supervisor.<name>] and [route.<name>]
 * sections, and matching an alert to its recipients.
 *
 *   [supervisor.wang]
 *   phone = 13800000001                    # SMS channel (optional)
 *   webhook = https://im.example/hook/wang # webhook channel (optional)
 *
 *   [route.education]
 *   units = 101, 102         # unit code prefixes; "*" or absent: all units
 *   levels = red, orange     # absent or "*": all levels
 *   to = wang, li            # supervisors notified of a new alert
 *   channels = nats, webhook, sms   # default all; NATS is always on anyway
 *   escalate_to = zhao, qian+sun    # step 1: zhao; step 2: qian and sun
 *
 * Every route that matches an alert's unit and level contributes its
 * recipients; a supervisor named by two routes is notified once per
 * channel.  A channel the supervisor has no address for is skipped (with a
 * warning at start).
 */
#include "alerts/alerts_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/log.h"
#include "daemon/timeutil.h"

const fw_config_key fw_alerts_config_keys[] = {
    {"alerts.group_window", FW_CFG_DURATION, "60s", 0, 86400, NULL,
     "alerts for one unit+rule+recipient within this window after a notice go out as one "
     "summary at its end (0: no grouping)"},
    {"alerts.escalate_red", FW_CFG_DURATION, "30m", 60, 30 * 86400, NULL,
     "a red alert not acknowledged within this is escalated (per step)"},
    {"alerts.escalate_orange", FW_CFG_DURATION, "4h", 60, 30 * 86400, NULL,
     "escalation deadline for orange alerts"},
    {"alerts.escalate_yellow", FW_CFG_DURATION, "24h", 60, 30 * 86400, NULL,
     "escalation deadline for yellow alerts (blue never escalates)"},
    {"alerts.webhook_retries", FW_CFG_INT, "8", 1, 100, NULL,
     "attempts of a webhook notification before it is marked failed"},
    {"alerts.webhook_backoff", FW_CFG_DURATION, "30s", 1, 86400, NULL,
     "first retry delay of a failed webhook; doubles per attempt, plus up to 50% jitter"},
};
const int fw_alerts_config_nkeys =
    (int)(sizeof fw_alerts_config_keys / sizeof fw_alerts_config_keys[0]);

const char *const fw_alerts_config_prefixes[] = {"supervisor.", "route."};
const int fw_alerts_config_nprefixes = 2;

int fw_al_parse_duration(const char *s, int64_t *secs)
{
    if (!s || !isdigit((unsigned char)*s))
        return -1;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    int64_t mul = 1;
    if (*end == 's')
        end++;
    else if (*end == 'm')
        mul = 60, end++;
    else if (*end == 'h')
        mul = 3600, end++;
    else if (*end == 'd')
        mul = 86400, end++;
    if (*end != '\0' || v < 0 || v > 100LL * 365 * 86400 / mul)
        return -1;
    *secs = (int64_t)v * mul;
    return 0;
}

int fw_al_parse_when(const char *s, int64_t now, int sign, int64_t *out)
{
    int64_t secs = 0;
    int y, m, d;
    if (!s || !*s)
        return -1;
    if (strcmp(s, "now") == 0) {
        *out = now;
        return 0;
    }
    if (fw_al_parse_duration(s, &secs) == 0) {
        *out = now + (sign < 0 ? -secs : secs);
        return 0;
    }
    if (strlen(s) == 10 && fw_date_parse(s, &y, &m, &d, NULL) == 0) {
        *out = fw_time_from_local(y, m, d, 0, 0, 0);
        return 0;
    }
    return fw_time_parse(s, out, NULL) == 0 ? 0 : -1;
}

/* Split a comma list into trimmed, non-empty, malloc'd tokens. */
static int split_list(const char *value, char sep, char ***out)
{
    int n = 0, cap = 4;
    char **v = malloc((size_t)cap * sizeof *v);
    const char *p = value;
    while (v && *p) {
        const char *q = strchr(p, sep);
        size_t len = q ? (size_t)(q - p) : strlen(p);
        const char *b = p, *e = p + len;
        while (b < e && isspace((unsigned char)*b))
            b++;
        while (e > b && isspace((unsigned char)e[-1]))
            e--;
        if (e > b) {
            if (n == cap) {
                char **nv = realloc(v, (size_t)(cap *= 2) * sizeof *v);
                if (!nv)
                    break;
                v = nv;
            }
            v[n++] = strndup(b, (size_t)(e - b));
        }
        p = q ? q + 1 : p + len;
    }
    *out = v;
    return n;
}

static void free_list(char **v, int n)
{
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static int sup_find(const fw_alerts *a, const char *name)
{
    for (int i = 0; i < a->nsups; i++)
        if (strcmp(a->sups[i].name, name) == 0)
            return i;
    return -1;
}

static int name_ok(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-')
            return 0;
    return 1;
}

typedef struct load_ctx {
    fw_alerts *a;
    char *err;
    int errlen;
    int failed;
} load_ctx;

static void load_fail(load_ctx *c, const char *section, const char *key, const char *fmt,
                      const char *arg)
{
    if (c->failed)
        return;
    c->failed = 1;
    char why[200];
    snprintf(why, sizeof why, fmt, arg ? arg : "");
    snprintf(c->err, (size_t)c->errlen, "%s.%s: %s", section, key, why);
}

static void on_supervisor(const char *section, const char *key, const char *value, void *ud)
{
    load_ctx *c = ud;
    fw_alerts *a = c->a;
    if (c->failed)
        return;
    const char *name = section + strlen("supervisor.");
    if (!name_ok(name)) {
        load_fail(c, section, key, "supervisor name must be letters, digits, '_' or '-'", NULL);
        return;
    }
    int i = sup_find(a, name);
    if (i < 0) {
        fw_al_sup *ns = realloc(a->sups, (size_t)(a->nsups + 1) * sizeof *ns);
        if (!ns) {
            load_fail(c, section, key, "out of memory", NULL);
            return;
        }
        a->sups = ns;
        i = a->nsups++;
        a->sups[i] = (fw_al_sup){.name = strdup(name)};
    }
    fw_al_sup *s = &a->sups[i];
    if (strcmp(key, "phone") == 0) {
        size_t len = strlen(value);
        int ok = len == 11 && value[0] == '1';
        for (size_t k = 0; ok && k < len; k++)
            ok = isdigit((unsigned char)value[k]) != 0;
        if (!ok) {
            load_fail(c, section, key, "must be an 11-digit mobile number", NULL);
            return;
        }
        free(s->phone);
        s->phone = strdup(value);
    } else if (strcmp(key, "webhook") == 0) {
        if (strncmp(value, "http://", 7) != 0 && strncmp(value, "https://", 8) != 0) {
            load_fail(c, section, key, "must be an http:// or https:// URL", NULL);
            return;
        }
        free(s->webhook);
        s->webhook = strdup(value);
    } else {
        load_fail(c, section, key, "unknown key (supervisor keys: phone, webhook)", NULL);
    }
}

static fw_al_route *route_get(fw_alerts *a, const char *name)
{
    for (int i = 0; i < a->nroutes; i++)
        if (strcmp(a->routes[i].name, name) == 0)
            return &a->routes[i];
    fw_al_route *nr = realloc(a->routes, (size_t)(a->nroutes + 1) * sizeof *nr);
    if (!nr)
        return NULL;
    a->routes = nr;
    fw_al_route *r = &a->routes[a->nroutes++];
    *r = (fw_al_route){.name = strdup(name),
                       .channels = FW_AL_CH_NATS | FW_AL_CH_WEBHOOK | FW_AL_CH_SMS};
    return r;
}

/* Resolve names to supervisor indexes; -1 and an error on an unknown one. */
static int resolve_names(load_ctx *c, const char *section, const char *key, char **names, int n,
                         int **out)
{
    int *idx = malloc((size_t)(n ? n : 1) * sizeof *idx);
    if (!idx) {
        load_fail(c, section, key, "out of memory", NULL);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        idx[i] = sup_find(c->a, names[i]);
        if (idx[i] < 0) {
            load_fail(c, section, key, "unknown supervisor \"%s\" (no [supervisor.<name>])",
                      names[i]);
            free(idx);
            return -1;
        }
    }
    *out = idx;
    return 0;
}

static void on_route(const char *section, const char *key, const char *value, void *ud)
{
    load_ctx *c = ud;
    if (c->failed)
        return;
    const char *name = section + strlen("route.");
    if (!name_ok(name)) {
        load_fail(c, section, key, "route name must be letters, digits, '_' or '-'", NULL);
        return;
    }
    fw_al_route *r = route_get(c->a, name);
    if (!r) {
        load_fail(c, section, key, "out of memory", NULL);
        return;
    }
    char **items = NULL;
    int n = split_list(value, ',', &items);
    if (strcmp(key, "units") == 0) {
        free_list(r->units, r->nunits);
        r->units = NULL;
        r->nunits = 0;
        int all = 0;
        for (int i = 0; i < n; i++) {
            if (strcmp(items[i], "*") == 0)
                all = 1;
            else if (!name_ok(items[i]))
                load_fail(c, section, key, "\"%s\" is not a unit code prefix", items[i]);
        }
        if (!all && !c->failed) {
            r->units = items;
            r->nunits = n;
            items = NULL;
        }
    } else if (strcmp(key, "levels") == 0) {
        r->levels = 0;
        for (int i = 0; i < n && !c->failed; i++) {
            int rank = fw_level_rank(items[i]);
            if (strcmp(items[i], "*") == 0)
                r->levels = 0xf;
            else if (rank < 0)
                load_fail(c, section, key, "unknown level \"%s\" (red, orange, yellow, blue)",
                          items[i]);
            else
                r->levels |= 1u << rank;
        }
    } else if (strcmp(key, "channels") == 0) {
        r->channels = 0;
        for (int i = 0; i < n && !c->failed; i++) {
            if (strcmp(items[i], "nats") == 0)
                r->channels |= FW_AL_CH_NATS;
            else if (strcmp(items[i], "webhook") == 0)
                r->channels |= FW_AL_CH_WEBHOOK;
            else if (strcmp(items[i], "sms") == 0)
                r->channels |= FW_AL_CH_SMS;
            else
                load_fail(c, section, key, "unknown channel \"%s\" (nats, webhook, sms)", items[i]);
        }
    } else if (strcmp(key, "to") == 0) {
        int *idx = NULL;
        if (n == 0)
            load_fail(c, section, key, "names no supervisor", NULL);
        else if (resolve_names(c, section, key, items, n, &idx) == 0) {
            free(r->to);
            r->to = idx;
            r->nto = n;
        }
    } else if (strcmp(key, "escalate_to") == 0) {
        for (int k = 0; k < r->nsteps; k++)
            free(r->steps[k]);
        free(r->steps);
        free(r->nstep);
        r->steps = calloc((size_t)(n ? n : 1), sizeof *r->steps);
        r->nstep = calloc((size_t)(n ? n : 1), sizeof *r->nstep);
        r->nsteps = 0;
        for (int k = 0; k < n && !c->failed && r->steps && r->nstep; k++) {
            char **names = NULL;
            int m = split_list(items[k], '+', &names);
            int *idx = NULL;
            if (m == 0)
                load_fail(c, section, key, "empty escalation step", NULL);
            else if (resolve_names(c, section, key, names, m, &idx) == 0) {
                r->steps[k] = idx;
                r->nstep[k] = m;
                r->nsteps = k + 1;
            }
            free_list(names, m);
        }
    } else {
        load_fail(c, section, key,
                  "unknown key (route keys: units, levels, to, channels, escalate_to)", NULL);
    }
    free_list(items, items ? n : 0);
}

int fw_al_routes_load(fw_alerts *a, const fw_config *cfg, char *err, int errlen)
{
    load_ctx c = {.a = a, .err = err, .errlen = errlen};
    if (!cfg)
        return 0;
    /* Supervisors first: routes name them. */
    fw_config_each(cfg, "supervisor.", on_supervisor, &c);
    if (!c.failed)
        fw_config_each(cfg, "route.", on_route, &c);
    if (c.failed)
        return -1;
    for (int i = 0; i < a->nroutes; i++) {
        fw_al_route *r = &a->routes[i];
        if (r->nto == 0) {
            snprintf(err, (size_t)errlen, "route.%s.to: required (the supervisors to notify)",
                     r->name);
            return -1;
        }
        for (int k = 0; k < r->nto; k++) {
            const fw_al_sup *s = &a->sups[r->to[k]];
            if ((r->channels & FW_AL_CH_SMS) && !s->phone && (r->channels & ~FW_AL_CH_SMS) == 0)
                FW_WARN("alerts.route_no_address", "route=%s supervisor=%s channel=sms", r->name,
                        s->name);
            if ((r->channels & FW_AL_CH_WEBHOOK) && !s->webhook &&
                (r->channels & ~FW_AL_CH_WEBHOOK) == 0)
                FW_WARN("alerts.route_no_address", "route=%s supervisor=%s channel=webhook",
                        r->name, s->name);
        }
    }
    FW_DEBUG("alerts.routes", "supervisors=%d routes=%d", a->nsups, a->nroutes);
    return 0;
}

void fw_al_routes_free(fw_alerts *a)
{
    for (int i = 0; i < a->nsups; i++) {
        free(a->sups[i].name);
        free(a->sups[i].phone);
        free(a->sups[i].webhook);
    }
    free(a->sups);
    a->sups = NULL;
    a->nsups = 0;
    for (int i = 0; i < a->nroutes; i++) {
        fw_al_route *r = &a->routes[i];
        free(r->name);
        free_list(r->units, r->nunits);
        free(r->to);
        for (int k = 0; k < r->nsteps; k++)
            free(r->steps[k]);
        free(r->steps);
        free(r->nstep);
    }
    free(a->routes);
    a->routes = NULL;
    a->nroutes = 0;
}

static int route_matches(const fw_al_route *r, const char *unit, const char *level)
{
    int rank = fw_level_rank(level);
    if (r->levels && (rank < 0 || !(r->levels & (1u << rank))))
        return 0;
    if (r->nunits == 0)
        return 1;
    for (int i = 0; i < r->nunits; i++)
        if (strncmp(unit, r->units[i], strlen(r->units[i])) == 0)
            return 1;
    return 0;
}

int fw_al_recipients(const fw_alerts *a, const char *unit, const char *level, int step,
                     fw_al_rcpt *out, int max)
{
    int n = 0;
    static const unsigned chans[2] = {FW_AL_CH_WEBHOOK, FW_AL_CH_SMS};
    for (int i = 0; i < a->nroutes; i++) {
        const fw_al_route *r = &a->routes[i];
        if (!route_matches(r, unit ? unit : "", level))
            continue;
        const int *list = NULL;
        int nlist = 0;
        if (step == 0) {
            list = r->to;
            nlist = r->nto;
        } else if (step <= r->nsteps) {
            list = r->steps[step - 1];
            nlist = r->nstep[step - 1];
        }
        for (int k = 0; k < nlist; k++) {
            const fw_al_sup *s = &a->sups[list[k]];
            for (int ch = 0; ch < 2; ch++) {
                if (!(r->channels & chans[ch]))
                    continue;
                if ((chans[ch] == FW_AL_CH_SMS && !s->phone) ||
                    (chans[ch] == FW_AL_CH_WEBHOOK && !s->webhook))
                    continue;
                int dup = 0;
                for (int j = 0; j < n && !dup; j++)
                    dup = out[j].sup == list[k] && out[j].channel == chans[ch];
                if (!dup && n < max)
                    out[n++] = (fw_al_rcpt){.sup = list[k], .channel = chans[ch]};
            }
        }
    }
    return n;
}

int fw_al_escalation_steps(const fw_alerts *a, const char *unit, const char *level)
{
    int steps = 0;
    for (int i = 0; i < a->nroutes; i++)
        if (route_matches(&a->routes[i], unit ? unit : "", level) && a->routes[i].nsteps > steps)
            steps = a->routes[i].nsteps;
    return steps;
}
