/*
 * cli.c - `fundwatch alerts|silences|audit ...` on the store of a running or
 * stopped daemon.
 *
 *   alerts list [--status S] [--level L] [--unit U] [--rule R] [--since T]
 *               [--limit N] [--json]
 *   alerts show ID [--json]
 *   alerts transition ID TO --by NAME [--note TEXT]
 *   silences add [--rule R] [--unit U] [--from T] (--until T | --for DUR)
 *                --by NAME --reason TEXT
 *   silences list [--status active|pending|expired] [--json]
 *   silences expire ID --by NAME
 *   audit verify
 *
 * Times: RFC 3339, YYYY-MM-DD, "now", or a duration (--since 24h is a day
 * ago, --until 2h two hours from now).  Exit status: 0 done, 1 not found /
 * refused / audit broken / store error, 2 bad usage.  Changes made here are
 * published and notified by the running daemon at its next tick (the CLI
 * has no NATS connection): the rows wait in the store.
 */
#include "alerts/alerts_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/timeutil.h"

typedef struct cli_opt {
    const char *name;   /* "status" for --status */
    const char **value; /* NULL for a flag */
    int *flag;
} cli_opt;

/* Parse argv[start..] into opts and up to maxpos positionals.  -c/-o and
 * their values (handled by main) are skipped.  0, or 2 on bad usage. */
static int parse_args(const char *cmd, int argc, char **argv, int start, cli_opt *opts,
                      const char **pos, int maxpos, int *npos)
{
    *npos = 0;
    for (int i = start; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "-c") == 0 || strcmp(arg, "-o") == 0 || strcmp(arg, "--config") == 0) {
            i++;
            continue;
        }
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            if (*npos >= maxpos) {
                fprintf(stderr, "%s: unexpected argument \"%s\"\n", cmd, arg);
                return 2;
            }
            pos[(*npos)++] = arg;
            continue;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        cli_opt *o = NULL;
        for (cli_opt *p = opts; p && p->name; p++)
            if (strlen(p->name) == nlen && strncmp(p->name, name, nlen) == 0)
                o = p;
        if (!o) {
            fprintf(stderr, "%s: unknown option --%.*s\n", cmd, (int)nlen, name);
            return 2;
        }
        if (o->flag) {
            if (eq) {
                fprintf(stderr, "%s: --%s takes no value\n", cmd, o->name);
                return 2;
            }
            *o->flag = 1;
        } else if (eq) {
            *o->value = eq + 1;
        } else if (i + 1 < argc) {
            *o->value = argv[++i];
        } else {
            fprintf(stderr, "%s: --%s needs a value\n", cmd, o->name);
            return 2;
        }
    }
    return 0;
}

static void print_json(json_t *o)
{
    char *text = json_dumps(o, JSON_INDENT(2));
    if (text) {
        puts(text);
        free(text);
    }
}

static const char *jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static int exit_for(int rc)
{
    if (rc == FW_ALERTS_OK)
        return 0;
    return rc == FW_ALERTS_BAD ? 2 : 1;
}

static void alerts_usage(void)
{
    fprintf(stderr, "usage: fundwatch alerts list [--status S] [--level L] [--unit U] [--rule R]"
                    " [--since T] [--limit N] [--json]\n"
                    "       fundwatch alerts show ID [--json]\n"
                    "       fundwatch alerts transition ID TO --by NAME [--note TEXT]\n"
                    "  TO: acknowledged, confirmed, dismissed, resolved\n");
}

static int alerts_list(fw_alerts *a, int argc, char **argv)
{
    const char *status = NULL, *level = NULL, *unit = NULL, *rule = NULL, *since = NULL,
               *limit = NULL, *pos[1];
    int json = 0, npos = 0;
    cli_opt opts[] = {{"status", &status, NULL}, {"level", &level, NULL}, {"unit", &unit, NULL},
                      {"rule", &rule, NULL},     {"since", &since, NULL}, {"limit", &limit, NULL},
                      {"json", NULL, &json},     {NULL, NULL, NULL}};
    if (parse_args("alerts list", argc, argv, 2, opts, pos, 0, &npos) != 0) {
        alerts_usage();
        return 2;
    }
    int64_t since_t = 0;
    if (since && fw_al_parse_when(since, fw_clock_now(), -1, &since_t) != 0) {
        fprintf(stderr, "alerts list: --since: must be an RFC 3339 time, a date or a duration\n");
        return 2;
    }
    long n = 100;
    if (limit) {
        char *end = NULL;
        n = strtol(limit, &end, 10);
        if (*end || n < 1 || n > 100000) {
            fprintf(stderr, "alerts list: --limit: must be a positive number\n");
            return 2;
        }
    }
    if (status) {
        char buf[128];
        snprintf(buf, sizeof buf, "%s", status);
        char *save = NULL;
        for (char *w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save))
            if (!fw_al_status_ok(w)) {
                fprintf(stderr, "alerts list: --status: unknown status \"%s\"\n", w);
                return 2;
            }
    }
    if (level) {
        char buf[128];
        snprintf(buf, sizeof buf, "%s", level);
        char *save = NULL;
        for (char *w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save))
            if (fw_level_rank(w) < 0) {
                fprintf(stderr, "alerts list: --level: unknown level \"%s\"\n", w);
                return 2;
            }
    }
    json_t *list = fw_al_list_json(a, status, level, unit, rule, since_t, (int)n);
    json_t *items = json_object_get(list, "items");
    if (json) {
        print_json(list);
    } else {
        printf("%-10s %-7s %-13s %-10s %-26s %5s  %-25s %s\n", "ID", "LEVEL", "STATUS", "UNIT",
               "RULE", "OCC", "LAST SEEN", "MESSAGE");
        size_t i;
        json_t *it;
        json_array_foreach(items, i, it)
        {
            printf("%-10s %-7s %-13s %-10s %-26s %5lld  %-25s %s%s\n", jstr(it, "alert_id"),
                   jstr(it, "level"), jstr(it, "status"), jstr(it, "unit_code"), jstr(it, "rule"),
                   (long long)json_integer_value(json_object_get(it, "occurrences")),
                   jstr(it, "last_seen"), jstr(it, "message"),
                   json_is_true(json_object_get(it, "shadow"))     ? " [shadow]"
                   : json_is_true(json_object_get(it, "silenced")) ? " [silenced]"
                                                                   : "");
        }
        printf("%zu alert(s)\n", json_array_size(items));
    }
    json_decref(list);
    return 0;
}

static void print_alert(const json_t *o)
{
    const json_t *subj = json_object_get(o, "subject");
    printf("%s  %s  %s\n", jstr(o, "alert_id"), jstr(o, "level"), jstr(o, "status"));
    printf("  rule:        %s\n", jstr(o, "rule"));
    printf("  unit:        %s\n", jstr(o, "unit_code"));
    printf("  subject:     %s %s\n", jstr(subj, "kind"), jstr(subj, "id"));
    printf("  message:     %s\n", jstr(o, "message"));
    char *details = json_dumps(json_object_get(o, "details"), JSON_COMPACT);
    printf("  details:     %s\n", details ? details : "{}");
    free(details);
    printf("  occurrences: %lld (first %s, last %s)\n",
           (long long)json_integer_value(json_object_get(o, "occurrences")), jstr(o, "first_seen"),
           jstr(o, "last_seen"));
    printf("  ruleset:     %s\n", jstr(o, "ruleset"));
    printf("  fingerprint: %s\n", jstr(o, "fingerprint"));
    if (json_is_true(json_object_get(o, "shadow")))
        printf("  shadow:      yes (stored, never notified)\n");
    if (json_is_true(json_object_get(o, "silenced")))
        printf("  silenced:    by %s\n", jstr(o, "silence_id"));
    if (json_object_get(o, "escalate_at"))
        printf("  escalates:   %s\n", jstr(o, "escalate_at"));
    const json_t *hist = json_object_get(o, "history");
    printf("  history:%s\n", json_array_size(hist) ? "" : "     (none)");
    size_t i;
    const json_t *h;
    json_array_foreach(hist, i, h)
    {
        printf("    %s  %s -> %s  by %s%s%s\n", jstr(h, "at"), jstr(h, "from"), jstr(h, "to"),
               jstr(h, "by"), *jstr(h, "note") ? ": " : "", jstr(h, "note"));
    }
}

static int alerts_show(fw_alerts *a, int argc, char **argv)
{
    const char *pos[1];
    int json = 0, npos = 0;
    cli_opt opts[] = {{"json", NULL, &json}, {NULL, NULL, NULL}};
    if (parse_args("alerts show", argc, argv, 2, opts, pos, 1, &npos) != 0 || npos != 1) {
        alerts_usage();
        return 2;
    }
    json_t *o = fw_alerts_get_json(a, pos[0]);
    if (!o) {
        fprintf(stderr, "alerts show: alert %s not found\n", pos[0]);
        return 1;
    }
    if (json)
        print_json(o);
    else
        print_alert(o);
    json_decref(o);
    return 0;
}

static int alerts_transition(fw_alerts *a, int argc, char **argv)
{
    const char *by = NULL, *note = NULL, *pos[2];
    int npos = 0;
    char err[256];
    cli_opt opts[] = {{"by", &by, NULL}, {"note", &note, NULL}, {NULL, NULL, NULL}};
    if (parse_args("alerts transition", argc, argv, 2, opts, pos, 2, &npos) != 0 || npos != 2) {
        alerts_usage();
        return 2;
    }
    if (!by || !*by) {
        fprintf(stderr, "alerts transition: --by NAME is required\n");
        return 2;
    }
    int rc = fw_alerts_transition(a, pos[0], pos[1], by, note, err, sizeof err);
    if (rc != FW_ALERTS_OK) {
        fprintf(stderr, "alerts transition: %s\n", err);
        return exit_for(rc);
    }
    printf("%s: %s\n", pos[0], pos[1]);
    return 0;
}

static void silences_usage(void)
{
    fprintf(stderr, "usage: fundwatch silences add [--rule R] [--unit U] [--from T]"
                    " (--until T | --for DUR) --by NAME --reason TEXT\n"
                    "       fundwatch silences list [--status active|pending|expired] [--json]\n"
                    "       fundwatch silences expire ID --by NAME\n");
}

static int silences_add(fw_alerts *a, int argc, char **argv)
{
    const char *rule = NULL, *unit = NULL, *from = NULL, *until = NULL, *dur = NULL, *by = NULL,
               *reason = NULL, *pos[1];
    int npos = 0;
    char err[256], id[16];
    cli_opt opts[] = {{"rule", &rule, NULL},     {"unit", &unit, NULL}, {"from", &from, NULL},
                      {"until", &until, NULL},   {"for", &dur, NULL},   {"by", &by, NULL},
                      {"reason", &reason, NULL}, {NULL, NULL, NULL}};
    if (parse_args("silences add", argc, argv, 2, opts, pos, 0, &npos) != 0) {
        silences_usage();
        return 2;
    }
    int64_t now = fw_clock_now(), t_from = now, t_until = 0, secs = 0;
    if (from && fw_al_parse_when(from, now, 1, &t_from) != 0) {
        fprintf(stderr, "silences add: --from: must be an RFC 3339 time, a date or \"now\"\n");
        return 2;
    }
    if ((until != NULL) == (dur != NULL)) {
        fprintf(stderr, "silences add: give one of --until T or --for DUR\n");
        return 2;
    }
    if (until && fw_al_parse_when(until, now, 1, &t_until) != 0) {
        fprintf(stderr, "silences add: --until: must be an RFC 3339 time, a date or a"
                        " duration\n");
        return 2;
    }
    if (dur) {
        if (fw_al_parse_duration(dur, &secs) != 0 || secs <= 0) {
            fprintf(stderr, "silences add: --for: must be a duration such as 30m, 4h, 2d\n");
            return 2;
        }
        t_until = t_from + secs;
    }
    int rc = fw_alerts_silence_add(a, rule, unit, t_from, t_until, by, reason, id, err, sizeof err);
    if (rc != FW_ALERTS_OK) {
        fprintf(stderr, "silences add: %s\n", err);
        return exit_for(rc);
    }
    printf("%s\n", id);
    return 0;
}

static int silences_list(fw_alerts *a, int argc, char **argv)
{
    const char *status = NULL, *pos[1];
    int json = 0, npos = 0;
    cli_opt opts[] = {{"status", &status, NULL}, {"json", NULL, &json}, {NULL, NULL, NULL}};
    if (parse_args("silences list", argc, argv, 2, opts, pos, 0, &npos) != 0) {
        silences_usage();
        return 2;
    }
    if (status && strcmp(status, "active") != 0 && strcmp(status, "pending") != 0 &&
        strcmp(status, "expired") != 0) {
        fprintf(stderr, "silences list: --status: must be active, pending or expired\n");
        return 2;
    }
    json_t *list = fw_al_silences_list_json(a, status, fw_clock_now(), 1000);
    if (json) {
        print_json(list);
    } else {
        json_t *items = json_object_get(list, "items");
        printf("%-10s %-8s %-24s %-10s %-25s %-25s %-12s %s\n", "ID", "STATUS", "RULE", "UNIT",
               "FROM", "UNTIL", "BY", "REASON");
        size_t i;
        json_t *it;
        json_array_foreach(items, i, it)
        {
            printf("%-10s %-8s %-24s %-10s %-25s %-25s %-12s %s\n", jstr(it, "silence_id"),
                   jstr(it, "status"), jstr(it, "rule"), jstr(it, "unit"), jstr(it, "starts_at"),
                   jstr(it, "ends_at"), jstr(it, "author"), jstr(it, "reason"));
        }
        printf("%zu silence(s)\n", json_array_size(items));
    }
    json_decref(list);
    return 0;
}

static int silences_expire(fw_alerts *a, int argc, char **argv)
{
    const char *by = NULL, *pos[1];
    int npos = 0;
    char err[256];
    cli_opt opts[] = {{"by", &by, NULL}, {NULL, NULL, NULL}};
    if (parse_args("silences expire", argc, argv, 2, opts, pos, 1, &npos) != 0 || npos != 1) {
        silences_usage();
        return 2;
    }
    int rc = fw_alerts_silence_expire(a, pos[0], by, err, sizeof err);
    if (rc != FW_ALERTS_OK) {
        fprintf(stderr, "silences expire: %s\n", err);
        return exit_for(rc);
    }
    printf("%s: expired\n", pos[0]);
    return 0;
}

static int audit_main(fw_alerts *a, int argc, char **argv)
{
    const char *pos[1];
    int npos = 0;
    if (argc < 2 || strcmp(argv[1], "verify") != 0 ||
        parse_args("audit verify", argc, argv, 2, NULL, pos, 0, &npos) != 0) {
        fprintf(stderr, "usage: fundwatch audit verify [-c FILE]\n");
        return 2;
    }
    char msg[512];
    int rc = fw_audit_verify(a->st, msg, sizeof msg);
    if (rc == 0) {
        printf("audit: intact (%s)\n", msg);
        return 0;
    }
    printf("audit: BROKEN: %s\n", msg);
    return 1;
}

int fw_alerts_cli_main(fw_alerts *a, int argc, char **argv)
{
    if (argc < 1)
        return 2;
    if (strcmp(argv[0], "audit") == 0)
        return audit_main(a, argc, argv);
    const char *sub = argc >= 2 ? argv[1] : "";
    if (strcmp(argv[0], "alerts") == 0) {
        if (strcmp(sub, "list") == 0)
            return alerts_list(a, argc, argv);
        if (strcmp(sub, "show") == 0)
            return alerts_show(a, argc, argv);
        if (strcmp(sub, "transition") == 0)
            return alerts_transition(a, argc, argv);
        alerts_usage();
        return 2;
    }
    if (strcmp(argv[0], "silences") == 0) {
        if (strcmp(sub, "add") == 0)
            return silences_add(a, argc, argv);
        if (strcmp(sub, "list") == 0)
            return silences_list(a, argc, argv);
        if (strcmp(sub, "expire") == 0)
            return silences_expire(a, argc, argv);
        silences_usage();
        return 2;
    }
    fprintf(stderr, "fundwatch: unknown command %s\n", argv[0]);
    return 2;
}
