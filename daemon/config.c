/* config.c - see config.h */
#include "daemon/config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/timeutil.h"

typedef struct entry {
    char *name; /* "section.key" */
    char *value;
    const fw_config_key *key; /* NULL for prefix sections */
} entry;

struct fw_config {
    const fw_config_key **keys;
    int nkeys, capkeys;
    char **prefixes;
    int nprefixes;
    entry *entries;
    int nentries, capentries;
    char *path;
    /* parse state */
    int line;
    char err[1024];
    int failed;
};

static const char *validate_zone(const char *v)
{
    int m;
    return fw_time_zone_parse(v, &m) == 0 ? NULL : "must be a UTC offset like +08:00";
}

static const char *validate_listen(const char *v)
{
    if (strcmp(v, "off") == 0)
        return NULL;
    const char *colon = strrchr(v, ':');
    if (!colon || colon == v || !colon[1])
        return "must be HOST:PORT or off";
    for (const char *p = colon + 1; *p; p++)
        if (!isdigit((unsigned char)*p))
            return "port must be a number";
    long port = strtol(colon + 1, NULL, 10);
    return port > 0 && port < 65536 ? NULL : "port out of range";
}

static const char *validate_sync(const char *v)
{
    return strcmp(v, "deferred") == 0 || strcmp(v, "full") == 0 || strcmp(v, "normal") == 0
               ? NULL
               : "must be deferred, full or normal";
}

static const char *validate_level(const char *v)
{
    return strcmp(v, "debug") == 0 || strcmp(v, "info") == 0 || strcmp(v, "warn") == 0 ||
                   strcmp(v, "error") == 0
               ? NULL
               : "must be debug, info, warn or error";
}

static const char *validate_name(const char *v)
{
    if (!*v)
        return "must not be empty";
    for (const char *p = v; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
            return "may hold only letters, digits, _ and -";
    return NULL;
}

const fw_config_key fw_core_config_keys[] = {
    {"nats.url", FW_CFG_STRING, "nats://127.0.0.1:4222", 0, 0, NULL,
     "NATS server URL(s), comma-separated"},
    {"nats.stream", FW_CFG_STRING, "FISCAL", 0, 0, validate_name, "JetStream stream name"},
    {"nats.consumer", FW_CFG_STRING, "fundwatch", 0, 0, validate_name, "durable consumer name"},
    {"nats.subjects", FW_CFG_STRING, "fiscal.>", 0, 0, NULL,
     "stream subjects when the daemon creates the stream"},
    {"nats.max_ack_pending", FW_CFG_INT, "20000", 1, 1000000, NULL,
     "messages delivered but not yet acked"},
    {"nats.event_loop", FW_CFG_BOOL, "false", 0, 0, NULL,
     "read the NATS socket on the libevent loop (cnats adapter; see README)"},
    {"nats.ack_wait", FW_CFG_DURATION, "60", 1, 86400, NULL, "server redelivery timeout"},
    {"store.path", FW_CFG_STRING, "var/fundwatch.db", 0, 0, NULL, "SQLite database file"},
    {"store.synchronous", FW_CFG_STRING, "deferred", 0, 0, validate_sync,
     "deferred or full: an ack survives power loss (deferred fsyncs off the loop); normal: only "
     "a process crash"},
    {"store.batch_max", FW_CFG_INT, "2048", 1, 100000, NULL, "messages per transaction at most"},
    {"rules.dir", FW_CFG_STRING, "rules", 0, 0, NULL, "rules directory"},
    {"rules.tick", FW_CFG_DURATION, "60", 1, 86400, NULL, "seconds between tick evaluations"},
    {"rules.etc", FW_CFG_STRING, "etc", 0, 0, NULL, "directory holding calendar/ and lists/"},
    {"rules.watch", FW_CFG_BOOL, "true", 0, 0, NULL, "reload when the rules directory changes"},
    {"check.thread", FW_CFG_BOOL, "true", 0, 0, NULL,
     "answer NATS pre-payment checks on a thread of their own (own read-only connection and "
     "rule set) instead of the loop"},
    {"check.ingest_nice", FW_CFG_INT, "5", 0, 19, NULL,
     "nice value of the ingest loop while the check thread runs: bulk ingest yields the CPU to "
     "checks and to nats-server, which routes them (0: the same priority)"},
    {"http.listen", FW_CFG_STRING, "127.0.0.1:8640", 0, 0, validate_listen,
     "admin/API address, or off"},
    {"auth.tokens", FW_CFG_STRING, "etc/tokens", 0, 0, NULL, "file of `token role name` lines"},
    {"time.zone", FW_CFG_STRING, "+08:00", 0, 0, validate_zone, "business time zone"},
    {"log.level", FW_CFG_STRING, "info", 0, 0, validate_level, "debug, info, warn, error"},
};
const int fw_core_config_nkeys = (int)(sizeof fw_core_config_keys / sizeof fw_core_config_keys[0]);

fw_config *fw_config_new(void)
{
    fw_config *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    return c;
}

void fw_config_free(fw_config *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->nentries; i++) {
        free(c->entries[i].name);
        free(c->entries[i].value);
    }
    for (int i = 0; i < c->nprefixes; i++)
        free(c->prefixes[i]);
    free(c->prefixes);
    free(c->entries);
    free(c->keys);
    free(c->path);
    free(c);
}

void fw_config_add_keys(fw_config *c, const fw_config_key *keys, int n)
{
    for (int i = 0; i < n; i++) {
        if (c->nkeys == c->capkeys) {
            c->capkeys = c->capkeys ? c->capkeys * 2 : 64;
            c->keys = realloc(c->keys, (size_t)c->capkeys * sizeof *c->keys);
            if (!c->keys)
                abort();
        }
        c->keys[c->nkeys++] = &keys[i];
    }
}

void fw_config_add_prefix(fw_config *c, const char *section_prefix)
{
    c->prefixes = realloc(c->prefixes, (size_t)(c->nprefixes + 1) * sizeof *c->prefixes);
    if (!c->prefixes)
        abort();
    c->prefixes[c->nprefixes++] = strdup(section_prefix);
}

static const fw_config_key *find_key(const fw_config *c, const char *name)
{
    for (int i = 0; i < c->nkeys; i++)
        if (strcmp(c->keys[i]->name, name) == 0)
            return c->keys[i];
    return NULL;
}

static int is_prefixed(const fw_config *c, const char *section)
{
    for (int i = 0; i < c->nprefixes; i++)
        if (strncmp(section, c->prefixes[i], strlen(c->prefixes[i])) == 0 &&
            strlen(section) > strlen(c->prefixes[i]))
            return 1;
    return 0;
}

static int known_section(const fw_config *c, const char *section)
{
    size_t n = strlen(section);
    for (int i = 0; i < c->nkeys; i++)
        if (strncmp(c->keys[i]->name, section, n) == 0 && c->keys[i]->name[n] == '.')
            return 1;
    return is_prefixed(c, section);
}

static int parse_int(const char *v, int64_t *out)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end)
        return -1;
    *out = x;
    return 0;
}

static int parse_duration(const char *v, int64_t *out)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || x < 0)
        return -1;
    int64_t mul = 1;
    if (*end == 's')
        end++;
    else if (*end == 'm')
        mul = 60, end++;
    else if (*end == 'h')
        mul = 3600, end++;
    else if (*end == 'd')
        mul = 86400, end++;
    if (*end)
        return -1;
    *out = x * mul;
    return 0;
}

static int parse_bool(const char *v, int *out)
{
    static const char *const t[] = {"true", "yes", "on", "1"};
    static const char *const f[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(v, t[i]) == 0)
            return *out = 1, 0;
        if (strcmp(v, f[i]) == 0)
            return *out = 0, 0;
    }
    return -1;
}

static const char *check_value(const fw_config_key *k, const char *v)
{
    int64_t x;
    int b;
    switch (k->type) {
    case FW_CFG_INT:
        if (parse_int(v, &x) != 0)
            return "must be an integer";
        if (k->min < k->max && (x < k->min || x > k->max))
            return "out of range";
        break;
    case FW_CFG_DURATION:
        if (parse_duration(v, &x) != 0)
            return "must be a duration like 30s, 5m, 4h, 1d";
        if (k->min < k->max && (x < k->min || x > k->max))
            return "out of range";
        break;
    case FW_CFG_BOOL:
        if (parse_bool(v, &b) != 0)
            return "must be true or false";
        break;
    case FW_CFG_STRING:
        break;
    }
    return k->validate ? k->validate(v) : NULL;
}

static void put_entry(fw_config *c, const char *name, const char *value, const fw_config_key *k)
{
    for (int i = 0; i < c->nentries; i++) {
        if (strcmp(c->entries[i].name, name) == 0) {
            free(c->entries[i].value);
            c->entries[i].value = strdup(value);
            return;
        }
    }
    if (c->nentries == c->capentries) {
        c->capentries = c->capentries ? c->capentries * 2 : 64;
        c->entries = realloc(c->entries, (size_t)c->capentries * sizeof *c->entries);
        if (!c->entries)
            abort();
    }
    c->entries[c->nentries++] = (entry){strdup(name), strdup(value), k};
}

static int set_value(fw_config *c, const char *section, const char *key, const char *value,
                     const char *where, char *err, int errlen)
{
    char name[256];
    snprintf(name, sizeof name, "%s.%s", section, key);
    if (!known_section(c, section)) {
        snprintf(err, (size_t)errlen, "%s: unknown section [%s]", where, section);
        return -1;
    }
    if (is_prefixed(c, section)) {
        put_entry(c, name, value, NULL);
        return 0;
    }
    const fw_config_key *k = find_key(c, name);
    if (!k) {
        snprintf(err, (size_t)errlen, "%s: %s: unknown key", where, name);
        return -1;
    }
    const char *why = check_value(k, value);
    if (why) {
        snprintf(err, (size_t)errlen, "%s: %s: %s (got \"%s\")", where, name, why, value);
        return -1;
    }
    put_entry(c, name, value, k);
    return 0;
}

/* inih's reader callback: counting lines here gives every error its line
 * number without depending on inih's compile-time INI_HANDLER_LINENO. */
typedef struct reader_state {
    FILE *f;
    fw_config *c;
} reader_state;

static char *read_line(char *str, int num, void *stream)
{
    reader_state *rs = stream;
    char *r = fgets(str, num, rs->f);
    if (r)
        rs->c->line++;
    return r;
}

static int on_ini(void *user, const char *section, const char *name, const char *value)
{
    fw_config *c = user;
    if (c->failed)
        return 0;
    char where[300];
    snprintf(where, sizeof where, "%.256s:%d", c->path, c->line);
    if (!*section) {
        snprintf(c->err, sizeof c->err, "%s: %s: key outside any [section]", where, name);
        c->failed = 1;
        return 0;
    }
    if (set_value(c, section, name, value, where, c->err, sizeof c->err) != 0) {
        c->failed = 1;
        return 0;
    }
    return 1;
}

int fw_config_set(fw_config *c, const char *name, const char *value, char *err, int errlen)
{
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name || !dot[1]) {
        snprintf(err, (size_t)errlen, "-o %s: expected section.key=value", name);
        return -1;
    }
    char section[200];
    snprintf(section, sizeof section, "%.*s", (int)(dot - name), name);
    char where[300];
    snprintf(where, sizeof where, "-o %s", name);
    return set_value(c, section, dot + 1, value, where, err, errlen);
}

int fw_config_load(fw_config *c, const char *path, char *const *overrides, int noverrides,
                   char *err, int errlen)
{
    for (int i = 0; i < c->nkeys; i++)
        if (c->keys[i]->def)
            put_entry(c, c->keys[i]->name, c->keys[i]->def, c->keys[i]);
    if (path) {
        free(c->path);
        c->path = strdup(path);
        FILE *f = fopen(path, "r");
        if (!f) {
            snprintf(err, (size_t)errlen, "%s: %s", path, strerror(errno));
            return -1;
        }
        reader_state rs = {f, c};
        c->line = 0;
        int rc = ini_parse_stream(read_line, &rs, on_ini, c);
        fclose(f);
        if (c->failed) {
            snprintf(err, (size_t)errlen, "%s", c->err);
            return -1;
        }
        if (rc != 0) {
            snprintf(err, (size_t)errlen, "%s:%d: syntax error", path, rc > 0 ? rc : c->line);
            return -1;
        }
    }
    for (int i = 0; i < noverrides; i++) {
        char buf[1024];
        snprintf(buf, sizeof buf, "%s", overrides[i]);
        char *eq = strchr(buf, '=');
        if (!eq) {
            snprintf(err, (size_t)errlen, "-o %s: expected section.key=value", overrides[i]);
            return -1;
        }
        *eq = 0;
        if (fw_config_set(c, buf, eq + 1, err, errlen) != 0)
            return -1;
    }
    return 0;
}

const char *fw_config_get(const fw_config *c, const char *name)
{
    if (!c)
        return NULL;
    for (int i = 0; i < c->nentries; i++)
        if (strcmp(c->entries[i].name, name) == 0)
            return c->entries[i].value;
    return NULL;
}

int64_t fw_config_int(const fw_config *c, const char *name)
{
    const char *v = fw_config_get(c, name);
    int64_t x = 0;
    if (!v)
        return 0;
    const fw_config_key *k = find_key(c, name);
    if (k && k->type == FW_CFG_DURATION)
        parse_duration(v, &x);
    else
        parse_int(v, &x);
    return x;
}

int fw_config_bool(const fw_config *c, const char *name)
{
    const char *v = fw_config_get(c, name);
    int b = 0;
    if (v)
        parse_bool(v, &b);
    return b;
}

const char *fw_config_path(const fw_config *c)
{
    return c->path;
}

void fw_config_each(const fw_config *c, const char *prefix, fw_config_iter_fn fn, void *ud)
{
    size_t n = strlen(prefix);
    for (int i = 0; i < c->nentries; i++) {
        const entry *e = &c->entries[i];
        if (e->key || strncmp(e->name, prefix, n) != 0)
            continue;
        const char *dot = strrchr(e->name, '.');
        char section[256];
        snprintf(section, sizeof section, "%.*s", (int)(dot - e->name), e->name);
        fn(section, dot + 1, e->value, ud);
    }
}
