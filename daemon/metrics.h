/*
 * metrics.h - Prometheus metrics registry.
 *
 * A process-wide registry of counters, gauges and histograms.  A metric is
 * looked up (or created) by name and label string once, and the handle is
 * kept by the caller:
 *
 *   static fw_metric *m;
 *   m = fw_metric_counter("fundwatch_messages_total", "Messages in by kind",
 *                         "kind=\"voucher\"");
 *   fw_metric_add(m, 1);
 *
 * Updates are atomic, so cnats threads may count too.  fw_metrics_render()
 * produces the text exposition format for GET /metrics.  Gauges that are
 * computed on demand (queue depths, lag) are registered as callbacks.
 */
#ifndef FW_METRICS_H
#define FW_METRICS_H

#include <stdint.h>

typedef struct fw_metric fw_metric;

fw_metric *fw_metric_counter(const char *name, const char *help, const char *labels);
fw_metric *fw_metric_gauge(const char *name, const char *help, const char *labels);
/* Histogram with upper bounds `bounds[n]` (ascending, in the metric's unit,
 * e.g. seconds); +Inf is implicit. */
fw_metric *fw_metric_histogram(const char *name, const char *help, const char *labels,
                               const double *bounds, int n);

/* The metric registered under name and labels, or NULL (never creates one:
 * for code that must find another module's series, not invent it). */
fw_metric *fw_metric_find(const char *name, const char *labels);

/* Updates on a NULL metric do nothing (a caller may run uncounted). */
void fw_metric_add(fw_metric *m, double v);     /* counters, gauges */
void fw_metric_set(fw_metric *m, double v);     /* gauges */
void fw_metric_observe(fw_metric *m, double v); /* histograms */
double fw_metric_value(const fw_metric *m);     /* counter/gauge value (tests) */

/* Gauge computed when scraped (runs on the loop thread). */
typedef double (*fw_metric_fn)(void *ud);
void fw_metric_gauge_fn(const char *name, const char *help, const char *labels, fw_metric_fn fn,
                        void *ud);

/* Malloc'd exposition text. */
char *fw_metrics_render(void);
/* Drop everything (tests). */
void fw_metrics_reset(void);

#endif
