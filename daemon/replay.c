/*
 * replay.c - `fundwatch replay`: the daemon's pipeline, offline.
 *
 * Each input line {"subject": ..., "data": {...}} goes through the same
 * fw_app pipeline as a NATS message, on a fresh in-memory store, with SMS
 * queued but never sent.  Alerts are printed as JSON lines when created.
 *
 * --compare DIR2 runs a second pipeline with the rules of DIR2 over the same
 * input and prints the difference instead: "- " alerts that only the first
 * rule set raises, "+ " those only the second raises (matched by
 * fingerprint), a backtest before a rule goes live.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/app.h"
#include "daemon/cli.h"

typedef struct alert_set {
    json_t *by_fp; /* fingerprint -> alert */
    json_t *order; /* fingerprints in creation order */
} alert_set;

static void collect(alert_set *set, char *buf, size_t len)
{
    json_error_t je;
    size_t off = 0;
    while (off < len) {
        size_t used = 0;
        json_t *a = json_loadb(buf + off, len - off, JSON_DISABLE_EOF_CHECK, &je);
        if (!a)
            break;
        used = je.position;
        const char *fp = json_string_value(json_object_get(a, "fingerprint"));
        if (fp && !json_object_get(set->by_fp, fp)) {
            json_array_append_new(set->order, json_string(fp));
            json_object_set(set->by_fp, fp, a);
        }
        json_decref(a);
        off += used ? used : len;
        while (off < len && (buf[off] == '\n' || buf[off] == ' '))
            off++;
    }
}

static void print_diff(const char *sign, alert_set *a, alert_set *b, int *count)
{
    size_t i;
    json_t *fp;
    json_array_foreach(a->order, i, fp)
    {
        if (json_object_get(b->by_fp, json_string_value(fp)))
            continue;
        char *s = json_dumps(json_object_get(a->by_fp, json_string_value(fp)), JSON_COMPACT);
        printf("%s%s\n", sign, s);
        free(s);
        (*count)++;
    }
}

int fw_cli_replay(fw_cli *c)
{
    const char *rules = NULL, *compare = NULL, *input = NULL;
    for (int i = 0; i < c->argc; i++) {
        if (strcmp(c->argv[i], "--rules") == 0 && i + 1 < c->argc)
            rules = c->argv[++i];
        else if (strcmp(c->argv[i], "--compare") == 0 && i + 1 < c->argc)
            compare = c->argv[++i];
        else if (!input && c->argv[i][0] != '-')
            input = c->argv[i];
        else {
            fprintf(stderr, "fundwatch replay: unexpected argument %s\n", c->argv[i]);
            return 2;
        }
    }
    if (!input) {
        fprintf(stderr, "usage: fundwatch replay [-c FILE] [--rules DIR] [--compare DIR2] "
                        "INPUT.jsonl\n");
        return 2;
    }
    FILE *f = strcmp(input, "-") == 0 ? stdin : fopen(input, "r");
    if (!f) {
        perror(input);
        return 1;
    }
    char err[1024];
    char *buf1 = NULL, *buf2 = NULL;
    size_t len1 = 0, len2 = 0;
    FILE *out1 = compare ? open_memstream(&buf1, &len1) : stdout;
    FILE *out2 = compare ? open_memstream(&buf2, &len2) : NULL;
    fw_app *a1 = fw_app_open_offline(c->cfg, rules, out1, err, sizeof err);
    fw_app *a2 = NULL;
    int rc = 0;
    if (!a1) {
        fprintf(stderr, "fundwatch replay: %s\n", err);
        rc = 1;
        goto out;
    }
    if (compare && !(a2 = fw_app_open_offline(c->cfg, compare, out2, err, sizeof err))) {
        fprintf(stderr, "fundwatch replay: %s: %s\n", compare, err);
        rc = 1;
        goto out;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0, bad = 0, fed = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        lineno++;
        if (strspn(line, " \t\r\n") == (size_t)n)
            continue;
        json_error_t je;
        json_t *j = json_loadb(line, (size_t)n, 0, &je);
        const char *subject = json_string_value(json_object_get(j, "subject"));
        json_t *data = json_object_get(j, "data");
        if (!j || !subject || !data) {
            fprintf(stderr, "%s:%ld: %s\n", input, lineno,
                    !j ? je.text : "needs \"subject\" (string) and \"data\"");
            bad++;
            json_decref(j);
            continue;
        }
        char *body =
            json_is_string(data) ? strdup(json_string_value(data)) : json_dumps(data, JSON_COMPACT);
        if (fw_app_feed(a1, subject, body, (int)strlen(body), err, sizeof err) != 0) {
            fprintf(stderr, "%s:%ld: %s\n", input, lineno, err);
            bad++;
        }
        if (a2)
            fw_app_feed(a2, subject, body, (int)strlen(body), err, sizeof err);
        fed++;
        free(body);
        json_decref(j);
        if (!compare)
            fflush(stdout);
    }
    free(line);
    if (compare) {
        fclose(out1);
        fclose(out2);
        out1 = out2 = NULL;
        alert_set s1 = {json_object(), json_array()}, s2 = {json_object(), json_array()};
        collect(&s1, buf1, len1);
        collect(&s2, buf2, len2);
        int gone = 0, added = 0;
        print_diff("- ", &s1, &s2, &gone);
        print_diff("+ ", &s2, &s1, &added);
        fprintf(stderr,
                "replay: %ld messages; %s: %zu alerts, %s: %zu alerts; %d disappear, %d "
                "appear\n",
                fed, rules ? rules : "rules", json_array_size(s1.order), compare,
                json_array_size(s2.order), gone, added);
        json_decref(s1.by_fp);
        json_decref(s1.order);
        json_decref(s2.by_fp);
        json_decref(s2.order);
    } else {
        fprintf(stderr, "replay: %ld messages, %lld alerts, %ld bad lines\n", fed,
                (long long)fw_app_alerts_created(a1), bad);
    }
    rc = bad ? 1 : 0;
out:
    fw_app_close(a1);
    fw_app_close(a2);
    if (out1 && out1 != stdout)
        fclose(out1);
    if (out2)
        fclose(out2);
    free(buf1);
    free(buf2);
    if (f != stdin)
        fclose(f);
    return rc;
}
