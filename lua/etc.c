/*
 * etc.c - data files the rules read: the holiday calendar and named lists,
 * loaded once per rule generation, plus the GB 11643 ID number check.
 *
 * etc/calendar/<year>.txt: "2024-10-01 holiday 国庆节" or
 * "2024-09-29 workday 国庆节调休"; '#' starts a comment line.  A date not
 * listed is a working day unless it is a Saturday or Sunday.
 * etc/lists/<name>.txt: one item per line (its first whitespace-separated
 * token; the rest of the line is a comment); '#' comment lines.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/log.h"
#include "daemon/timeutil.h"
#include "lua/rule_int.h"

typedef struct cal_day {
    int64_t days;
    int workday;
} cal_day;

typedef struct etc_list {
    char *name;
    char **items;
    int n;
    /* for fw_etc_find_word: bit (b0 << 8 | b1) set when an item of 2+
     * bytes starts with bytes b0 b1, bit b0 of firsts when a 1-byte item
     * is b0; the items' lengths */
    uint64_t *pairs; /* 65,536 bits */
    uint64_t firsts[4];
    int has_one;    /* an item of 1 byte */
    int cont_start; /* an item starting with a UTF-8 continuation byte */
    size_t *lens;
    unsigned *heads; /* an item's first two bytes (b0 << 8 | b1), or b0 << 8 */
} etc_list;

struct fw_etc {
    int refs;
    cal_day *days;
    int ndays;
    etc_list *lists;
    int nlists;
};

static int cmp_day(const void *a, const void *b)
{
    const cal_day *x = a, *y = b;
    return x->days < y->days ? -1 : x->days > y->days;
}

static int cmp_list(const void *a, const void *b)
{
    return strcmp(((const etc_list *)a)->name, ((const etc_list *)b)->name);
}

static int name_ok(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '_'))
            return 0;
    return 1;
}

/* Next line's first token (and for the calendar its second). */
static char *first_token(char *line, char **rest)
{
    while (*line == ' ' || *line == '\t')
        line++;
    if (*line == '#' || *line == '\0' || *line == '\n' || *line == '\r')
        return NULL;
    char *t = line;
    while (*line && !isspace((unsigned char)*line))
        line++;
    if (*line)
        *line++ = '\0';
    if (rest) {
        while (*line == ' ' || *line == '\t')
            line++;
        *rest = line;
    }
    return t;
}

static int load_calendar_file(fw_etc *e, const char *path, char *err, int errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, (size_t)errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char line[1024];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *rest;
        char *date = first_token(line, &rest);
        if (!date)
            continue;
        char *kind = first_token(rest, NULL);
        int y, m, d;
        const char *why = NULL;
        if (fw_date_parse(date, &y, &m, &d, &why) != 0 || !kind ||
            (strcmp(kind, "holiday") != 0 && strcmp(kind, "workday") != 0)) {
            snprintf(err, (size_t)errlen, "%s:%d: expected \"YYYY-MM-DD holiday|workday ...\"",
                     path, lineno);
            rc = -1;
            break;
        }
        cal_day *nd = realloc(e->days, (size_t)(e->ndays + 1) * sizeof *nd);
        if (!nd) {
            rc = -1;
            break;
        }
        e->days = nd;
        e->days[e->ndays].days = fw_days_from_civil(y, m, d);
        e->days[e->ndays].workday = strcmp(kind, "workday") == 0;
        e->ndays++;
    }
    fclose(f);
    return rc;
}

/* The index of fw_etc_find_word (see etc_list). */
static int index_list(etc_list *l)
{
    l->pairs = calloc(65536 / 64, sizeof *l->pairs);
    l->lens = calloc((size_t)l->n + 1, sizeof *l->lens);
    l->heads = calloc((size_t)l->n + 1, sizeof *l->heads);
    if (!l->pairs || !l->lens || !l->heads)
        return -1;
    for (int i = 0; i < l->n; i++) {
        const unsigned char *w = (const unsigned char *)l->items[i];
        size_t n = strlen(l->items[i]);
        l->lens[i] = n;
        l->cont_start |= n > 0 && (w[0] & 0xC0) == 0x80;
        l->heads[i] = n >= 2 ? (unsigned)(w[0] << 8 | w[1]) : n == 1 ? (unsigned)w[0] << 8 : 0;
        if (n == 1) {
            l->firsts[w[0] >> 6] |= (uint64_t)1 << (w[0] & 63);
            l->has_one = 1;
        } else if (n >= 2)
            l->pairs[(w[0] << 8 | w[1]) >> 6] |= (uint64_t)1 << ((w[0] << 8 | w[1]) & 63);
    }
    return 0;
}

static int load_list_file(fw_etc *e, const char *path, const char *name, size_t nlen, char *err,
                          int errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, (size_t)errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    etc_list *nl = realloc(e->lists, (size_t)(e->nlists + 1) * sizeof *nl);
    if (!nl) {
        fclose(f);
        return -1;
    }
    e->lists = nl;
    etc_list *l = &e->lists[e->nlists++];
    l->name = strndup(name, nlen);
    l->items = NULL;
    l->n = 0;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        char *t = first_token(line, NULL);
        if (!t)
            continue;
        char **ni = realloc(l->items, (size_t)(l->n + 1) * sizeof *ni);
        if (!ni)
            break;
        l->items = ni;
        l->items[l->n++] = strdup(t);
    }
    fclose(f);
    return index_list(l);
}

/* Calls fn for each "<name>.txt" in dir with a valid name, sorted. */
static int each_txt(fw_etc *e, const char *dir, int calendar, char *err, int errlen)
{
    struct dirent **ents = NULL;
    int n = scandir(dir, &ents, NULL, alphasort);
    if (n < 0)
        return 0; /* no such directory: no data of that kind */
    int rc = 0;
    for (int i = 0; i < n; i++) {
        const char *nm = ents[i]->d_name;
        size_t len = strlen(nm);
        if (rc == 0 && len > 4 && strcmp(nm + len - 4, ".txt") == 0 && name_ok(nm, len - 4)) {
            char path[2048];
            snprintf(path, sizeof path, "%s/%s", dir, nm);
            rc = calendar ? load_calendar_file(e, path, err, errlen)
                          : load_list_file(e, path, nm, len - 4, err, errlen);
        }
        free(ents[i]);
    }
    free(ents);
    return rc;
}

fw_etc *fw_etc_load(const char *etc_dir, char *err, int errlen)
{
    fw_etc *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->refs = 1;
    char dir[2048];
    snprintf(dir, sizeof dir, "%s/calendar", etc_dir ? etc_dir : "etc");
    if (each_txt(e, dir, 1, err, errlen) != 0)
        goto fail;
    snprintf(dir, sizeof dir, "%s/lists", etc_dir ? etc_dir : "etc");
    if (each_txt(e, dir, 0, err, errlen) != 0)
        goto fail;
    if (e->ndays)
        qsort(e->days, (size_t)e->ndays, sizeof *e->days, cmp_day);
    if (e->nlists)
        qsort(e->lists, (size_t)e->nlists, sizeof *e->lists, cmp_list);
    return e;
fail:
    fw_etc_unref(e);
    return NULL;
}

fw_etc *fw_etc_ref(fw_etc *e)
{
    if (e)
        e->refs++;
    return e;
}

void fw_etc_unref(fw_etc *e)
{
    if (!e || --e->refs > 0)
        return;
    for (int i = 0; i < e->nlists; i++) {
        for (int j = 0; j < e->lists[i].n; j++)
            free(e->lists[i].items[j]);
        free(e->lists[i].items);
        free(e->lists[i].name);
        free(e->lists[i].pairs);
        free(e->lists[i].lens);
        free(e->lists[i].heads);
    }
    free(e->lists);
    free(e->days);
    free(e);
}

int fw_etc_is_workday(const fw_etc *e, int64_t days)
{
    if (e && e->ndays) {
        cal_day key = {days, 0};
        const cal_day *hit = bsearch(&key, e->days, (size_t)e->ndays, sizeof key, cmp_day);
        if (hit)
            return hit->workday;
    }
    int64_t wd = (days + 4) % 7; /* 1970-01-01 was a Thursday; 0 = Sunday */
    if (wd < 0)
        wd += 7;
    return wd != 0 && wd != 6;
}

const char *const *fw_etc_list(const fw_etc *e, const char *name, int *n)
{
    if (!e || !e->nlists)
        return NULL;
    etc_list key = {.name = (char *)name};
    const etc_list *l = bsearch(&key, e->lists, (size_t)e->nlists, sizeof key, cmp_list);
    if (!l)
        return NULL;
    *n = l->n;
    return (const char *const *)l->items;
}

int fw_etc_find_word(const fw_etc *e, const char *name, const char *s, size_t n, const char **word,
                     size_t *wlen, size_t *at)
{
    if (!e || !e->nlists)
        return -1;
    etc_list key = {.name = (char *)name};
    const etc_list *l = bsearch(&key, e->lists, (size_t)e->nlists, sizeof key, cmp_list);
    if (!l)
        return -1;
    const unsigned char *u = (const unsigned char *)s;
    /* The first position where any item starts, then the longest item
     * there (ties: the first in the file).  The bitmaps rule out almost
     * every position at the cost of one or two bit tests. */
    for (size_t i = 0; i < n; i++) {
        if ((u[i] & 0xC0) == 0x80 && !l->cont_start)
            continue; /* inside a character: no item starts there */
        if (i + 1 < n) {
            unsigned pair = (unsigned)(u[i] << 8 | u[i + 1]);
            if (!((l->pairs[pair >> 6] >> (pair & 63)) & 1) &&
                !(l->has_one && ((l->firsts[u[i] >> 6] >> (u[i] & 63)) & 1)))
                continue;
        } else if (!(l->has_one && ((l->firsts[u[i] >> 6] >> (u[i] & 63)) & 1))) {
            continue;
        }
        int best = -1;
        unsigned head = i + 1 < n ? (unsigned)(u[i] << 8 | u[i + 1]) : 0;
        for (int k = 0; k < l->n; k++) {
            size_t wl = l->lens[k];
            if (wl == 0 || wl > n - i || (best >= 0 && wl <= l->lens[best]))
                continue;
            if (wl >= 2 ? l->heads[k] != head : l->heads[k] != (unsigned)u[i] << 8)
                continue;
            if (memcmp(s + i, l->items[k], wl) == 0)
                best = k;
        }
        if (best >= 0) {
            *word = l->items[best];
            *wlen = l->lens[best];
            *at = i;
            return 1;
        }
    }
    return 0;
}

int fw_id_check(const char *id, const char **reason, char birth[11])
{
    static const int weights[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
    static const char codes[] = "10X98765432";
    birth[0] = '\0';
    *reason = NULL;
    if (!id || strlen(id) != 18) {
        *reason = "length is not 18";
        return 0;
    }
    for (int i = 0; i < 17; i++)
        if (!isdigit((unsigned char)id[i])) {
            *reason = "non-digit in the first 17 characters";
            return 0;
        }
    char bd[11];
    snprintf(bd, sizeof bd, "%.4s-%.2s-%.2s", id + 6, id + 10, id + 12);
    int y, m, d;
    const char *why;
    int date_ok = fw_date_parse(bd, &y, &m, &d, &why) == 0 && y >= 1900;
    if (date_ok)
        memcpy(birth, bd, 11);
    int sum = 0;
    for (int i = 0; i < 17; i++)
        sum += (id[i] - '0') * weights[i];
    char want = codes[sum % 11];
    char got = (char)toupper((unsigned char)id[17]);
    if (got != want) {
        *reason = "check digit mismatch";
        return 0;
    }
    if (!date_ok) {
        *reason = "invalid birth date";
        return 0;
    }
    return 1;
}
