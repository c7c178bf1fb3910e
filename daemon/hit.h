/*
 * hit.h - a rule hit: what the rule engine hands to the alert store.
 *
 * The engine (lua/) produces hits; the alert store (alerts/) turns each into
 * a new alert or a new occurrence of an open one (fingerprint = rule +
 * subject + key).  The pre-payment check turns hits into its reply.
 *
 * All strings are owned by the hit (fw_hit_list_clear frees them).
 */
#ifndef FW_HIT_H
#define FW_HIT_H

#include <jansson.h>
#include <stdint.h>

typedef struct fw_hit {
    char *rule;         /* rule id, or "rule_error" */
    char *level;        /* "red" | "orange" | "yellow" | "blue" */
    int shadow;         /* mode = "shadow": stored, never notified, never blocks */
    char *message;      /* human text (Chinese), never NULL */
    json_t *details;    /* object, owned; {} when the rule gave none */
    char *key;          /* refines the fingerprint, may be NULL */
    char *subject_kind; /* voucher | indicator | payroll_line | payroll_run |
                           reimburse | subsidy | rule */
    char *subject_id;
    char *unit_code; /* may be "" for tick hits with no unit */
    char *event_id;  /* the inbound event id that caused it, or NULL (tick) */
    int64_t at;      /* ctx.now() of the evaluation (unix seconds) */
} fw_hit;

typedef struct fw_hit_list {
    fw_hit *items;
    int n, cap;
} fw_hit_list;

/* Append a hit; strings are copied, details is stolen (may be NULL).
 * Returns the new hit. */
fw_hit *fw_hit_list_add(fw_hit_list *l, const char *rule, const char *level, int shadow,
                        const char *message, json_t *details, const char *key,
                        const char *subject_kind, const char *subject_id, const char *unit_code,
                        const char *event_id, int64_t at);
void fw_hit_list_clear(fw_hit_list *l); /* frees items' contents, keeps capacity */
void fw_hit_list_free(fw_hit_list *l);

/* Level ordering: red 3, orange 2, yellow 1, blue 0, unknown -1. */
int fw_level_rank(const char *level);

#endif
