/* metrics.c - see metrics.h */
#include "daemon/metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { M_COUNTER, M_GAUGE, M_HISTOGRAM, M_GAUGE_FN } m_type;

#define MAX_BOUNDS 16

/* Values are doubles stored as fixed-point micro-units in atomics, so that
 * cnats threads and the loop can update without a lock.  Metrics are not
 * money: a double here is fine. */
struct fw_metric {
    m_type type;
    char *name, *help, *labels;
    _Atomic int64_t value_u; /* value * 1e6 */
    int nbounds;
    double bounds[MAX_BOUNDS];
    _Atomic int64_t buckets[MAX_BOUNDS + 1];
    _Atomic int64_t count;
    _Atomic int64_t sum_u;
    fw_metric_fn fn;
    void *ud;
    struct fw_metric *next;
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static fw_metric *g_head, *g_tail;

static int64_t to_u(double v)
{
    return (int64_t)(v * 1e6);
}

static fw_metric *lookup_or_add(m_type type, const char *name, const char *help, const char *labels)
{
    labels = labels ? labels : "";
    pthread_mutex_lock(&g_lock);
    fw_metric *m;
    for (m = g_head; m; m = m->next)
        if (strcmp(m->name, name) == 0 && strcmp(m->labels, labels) == 0)
            goto out;
    m = calloc(1, sizeof *m);
    if (!m)
        abort();
    m->type = type;
    m->name = strdup(name);
    m->help = strdup(help ? help : "");
    m->labels = strdup(labels);
    /* Keep metrics of one name together so render emits HELP/TYPE once:
     * insert after the last metric of the same name. */
    fw_metric *after = NULL;
    for (fw_metric *p = g_head; p; p = p->next)
        if (strcmp(p->name, name) == 0)
            after = p;
    if (after) {
        m->next = after->next;
        after->next = m;
        if (g_tail == after)
            g_tail = m;
    } else {
        if (g_tail)
            g_tail->next = m;
        else
            g_head = m;
        g_tail = m;
    }
out:
    pthread_mutex_unlock(&g_lock);
    return m;
}

fw_metric *fw_metric_counter(const char *name, const char *help, const char *labels)
{
    return lookup_or_add(M_COUNTER, name, help, labels);
}

fw_metric *fw_metric_find(const char *name, const char *labels)
{
    labels = labels ? labels : "";
    pthread_mutex_lock(&g_lock);
    fw_metric *m = g_head;
    while (m && (strcmp(m->name, name) != 0 || strcmp(m->labels, labels) != 0))
        m = m->next;
    pthread_mutex_unlock(&g_lock);
    return m;
}

fw_metric *fw_metric_gauge(const char *name, const char *help, const char *labels)
{
    return lookup_or_add(M_GAUGE, name, help, labels);
}

fw_metric *fw_metric_histogram(const char *name, const char *help, const char *labels,
                               const double *bounds, int n)
{
    fw_metric *m = lookup_or_add(M_HISTOGRAM, name, help, labels);
    if (m->nbounds == 0 && bounds && n > 0) {
        if (n > MAX_BOUNDS)
            n = MAX_BOUNDS;
        memcpy(m->bounds, bounds, (size_t)n * sizeof *bounds);
        m->nbounds = n;
    }
    return m;
}

void fw_metric_gauge_fn(const char *name, const char *help, const char *labels, fw_metric_fn fn,
                        void *ud)
{
    fw_metric *m = lookup_or_add(M_GAUGE_FN, name, help, labels);
    m->fn = fn;
    m->ud = ud;
}

void fw_metric_add(fw_metric *m, double v)
{
    if (!m)
        return;
    atomic_fetch_add(&m->value_u, to_u(v));
}

void fw_metric_set(fw_metric *m, double v)
{
    if (!m)
        return;
    atomic_store(&m->value_u, to_u(v));
}

void fw_metric_observe(fw_metric *m, double v)
{
    if (!m)
        return;
    int i = 0;
    while (i < m->nbounds && v > m->bounds[i])
        i++;
    atomic_fetch_add(&m->buckets[i], 1);
    atomic_fetch_add(&m->count, 1);
    atomic_fetch_add(&m->sum_u, to_u(v));
}

double fw_metric_value(const fw_metric *m)
{
    if (m->type == M_HISTOGRAM)
        return (double)atomic_load(&m->count);
    return (double)atomic_load(&m->value_u) / 1e6;
}

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static void bprintf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bprintf(buf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (size_t)(n > 0 ? n : 0);
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            abort();
    }
}

static void labels_with(buf *b, const char *labels, const char *extra)
{
    if (!*labels && !extra)
        return;
    bprintf(b, "{%s%s%s}", labels, (*labels && extra) ? "," : "", extra ? extra : "");
}

char *fw_metrics_render(void)
{
    buf b = {malloc(4096), 0, 4096};
    if (!b.p)
        abort();
    b.p[0] = 0;
    static const char *const tnames[] = {"counter", "gauge", "histogram", "gauge"};
    pthread_mutex_lock(&g_lock);
    const char *last = NULL;
    for (fw_metric *m = g_head; m; m = m->next) {
        if (!last || strcmp(last, m->name) != 0) {
            bprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name, tnames[m->type]);
            last = m->name;
        }
        if (m->type == M_HISTOGRAM) {
            int64_t cum = 0;
            for (int i = 0; i <= m->nbounds; i++) {
                cum += atomic_load(&m->buckets[i]);
                char le[48];
                if (i < m->nbounds)
                    snprintf(le, sizeof le, "le=\"%g\"", m->bounds[i]);
                else
                    snprintf(le, sizeof le, "le=\"+Inf\"");
                bprintf(&b, "%s_bucket", m->name);
                labels_with(&b, m->labels, le);
                bprintf(&b, " %lld\n", (long long)cum);
            }
            bprintf(&b, "%s_sum", m->name);
            labels_with(&b, m->labels, NULL);
            bprintf(&b, " %.6f\n", (double)atomic_load(&m->sum_u) / 1e6);
            bprintf(&b, "%s_count", m->name);
            labels_with(&b, m->labels, NULL);
            bprintf(&b, " %lld\n", (long long)atomic_load(&m->count));
            continue;
        }
        double v = m->type == M_GAUGE_FN ? m->fn(m->ud) : fw_metric_value(m);
        bprintf(&b, "%s", m->name);
        labels_with(&b, m->labels, NULL);
        bprintf(&b, " %.15g\n", v);
    }
    pthread_mutex_unlock(&g_lock);
    return b.p;
}

void fw_metrics_reset(void)
{
    pthread_mutex_lock(&g_lock);
    fw_metric *m = g_head;
    while (m) {
        fw_metric *next = m->next;
        free(m->name);
        free(m->help);
        free(m->labels);
        free(m);
        m = next;
    }
    g_head = g_tail = NULL;
    pthread_mutex_unlock(&g_lock);
}
