/* hit.c - see hit.h */
#include "daemon/hit.h"

#include <stdlib.h>
#include <string.h>

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

fw_hit *fw_hit_list_add(fw_hit_list *l, const char *rule, const char *level, int shadow,
                        const char *message, json_t *details, const char *key,
                        const char *subject_kind, const char *subject_id, const char *unit_code,
                        const char *event_id, int64_t at)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 8;
        fw_hit *items = realloc(l->items, (size_t)cap * sizeof *items);
        if (!items)
            abort();
        l->items = items;
        l->cap = cap;
    }
    fw_hit *h = &l->items[l->n++];
    h->rule = strdup(rule);
    h->level = strdup(level);
    h->shadow = shadow;
    h->message = strdup(message ? message : "");
    h->details = details ? details : json_object();
    h->key = dup_or_null(key);
    h->subject_kind = strdup(subject_kind ? subject_kind : "");
    h->subject_id = strdup(subject_id ? subject_id : "");
    h->unit_code = strdup(unit_code ? unit_code : "");
    h->event_id = dup_or_null(event_id);
    h->at = at;
    return h;
}

void fw_hit_list_clear(fw_hit_list *l)
{
    for (int i = 0; i < l->n; i++) {
        fw_hit *h = &l->items[i];
        free(h->rule);
        free(h->level);
        free(h->message);
        json_decref(h->details);
        free(h->key);
        free(h->subject_kind);
        free(h->subject_id);
        free(h->unit_code);
        free(h->event_id);
    }
    l->n = 0;
}

void fw_hit_list_free(fw_hit_list *l)
{
    fw_hit_list_clear(l);
    free(l->items);
    l->items = NULL;
    l->cap = 0;
}

int fw_level_rank(const char *level)
{
    static const char *const names[] = {"blue", "yellow", "orange", "red"};
    for (int i = 0; i < 4; i++)
        if (level && strcmp(level, names[i]) == 0)
            return i;
    return -1;
}
