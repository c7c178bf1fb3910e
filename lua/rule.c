/*
 * rule.c - one rule: load and validate its file, hold its params, evaluate
 * check(v, ctx) in its sandbox, and turn what it returns into hits.
 *
 * Loading runs the chunk (under the same budgets as a call) with a fresh
 * _ENV and validates the returned table: id equals the file name, name,
 * level, on, params (numbers, strings, booleans, arrays of strings or
 * numbers), mode, check, description, when (when.c); any other key is an
 * error that names the file and the line where the key appears.
 *
 * The rules of a generation live in one shared state (sandbox.c).  The
 * chunk's _ENV upvalue (shared by every function of the file) is the rule's
 * own environment table, made at load and kept; it reads through to the
 * sandbox globals, and it is emptied after any call (and the load) that
 * wrote into it, so a global written during a call is gone afterwards.
 * ctx is made once per rule (ctx.c).  The event is converted once per
 * evaluation per state (build_eval: the body, for payroll also the run
 * table ctx.run and the lines), and each call gets a fresh overlay of it
 * (sandbox.c, "the event").  Hits are built in a pending list and only
 * appended to the caller's list when the whole call succeeded; any failure
 * (error, budget) replaces them with one rule_error hit.
 */
#include <ctype.h>
#include <errno.h>
#include <lauxlib.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/log.h"
#include "lua/rule_int.h"

#define RULE_MAX_FILE (1 << 20)

static const char *const on_names[FW_ON__COUNT] = {"voucher.created",
                                                   "voucher.signed",
                                                   "voucher.sent",
                                                   "voucher.paid",
                                                   "voucher.returned",
                                                   "voucher.cancelled",
                                                   "indicator.allocate",
                                                   "indicator.adjust",
                                                   "indicator.transfer",
                                                   "payroll.run",
                                                   "payroll.line",
                                                   "reimburse",
                                                   "subsidy",
                                                   "tick"};

static const char *const rule_keys[] = {"id",   "name",  "level",       "on",   "params",
                                        "mode", "check", "description", "when", NULL};

int fw_on_index(const char *type)
{
    for (int i = 0; i < FW_ON__COUNT; i++)
        if (strcmp(type, on_names[i]) == 0)
            return i;
    return -1;
}

static int level_ok(const char *l)
{
    return fw_level_rank(l) >= 0;
}

/* Line (1-based) of the first "key =" in the source, 0 if not found. */
static int find_key_line(const char *src, size_t len, const char *key)
{
    size_t kl = strlen(key);
    int line = 1;
    for (size_t i = 0; i + kl <= len; i++) {
        if (src[i] == '\n') {
            line++;
            continue;
        }
        if (memcmp(src + i, key, kl) != 0)
            continue;
        if (i > 0 && (isalnum((unsigned char)src[i - 1]) || src[i - 1] == '_'))
            continue;
        size_t j = i + kl;
        while (j < len && (src[j] == ' ' || src[j] == '\t'))
            j++;
        if (j < len && src[j] == '=' && (j + 1 >= len || src[j + 1] != '='))
            return line;
    }
    return 0;
}

typedef struct load_args {
    fw_rule *r;
    const char *src;
    size_t len;
} load_args;

static int load_fail(lua_State *L, load_args *a, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int load_fail(lua_State *L, load_args *a, const char *key, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int line = key ? find_key_line(a->src, a->len, key) : 0;
    if (line)
        return luaL_error(L, "%s:%d: %s", a->r->path, line, msg);
    return luaL_error(L, "%s: %s", a->r->path, msg);
}

/* Push a validated copy of params value at idx. */
static void copy_param(lua_State *L, load_args *a, int idx, const char *name)
{
    idx = lua_absindex(L, idx);
    int t = lua_type(L, idx);
    if (t == LUA_TNUMBER || t == LUA_TSTRING || t == LUA_TBOOLEAN) {
        lua_pushvalue(L, idx);
        return;
    }
    if (t == LUA_TTABLE) {
        size_t n = lua_rawlen(L, idx), count = 0;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            count++;
            int vt = lua_type(L, -1);
            if (!lua_isinteger(L, -2) || (vt != LUA_TSTRING && vt != LUA_TNUMBER))
                load_fail(L, a, name, "params.%s: an array may hold only strings or numbers", name);
            lua_pop(L, 1);
        }
        if (count != n)
            load_fail(L, a, name, "params.%s: must be an array (keys 1..n)", name);
        lua_createtable(L, (int)n, 0);
        for (size_t i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, (lua_Integer)i);
            lua_rawseti(L, -2, (lua_Integer)i);
        }
        return;
    }
    load_fail(L, a, name, "params.%s: must be a number, string, boolean or array, not %s", name,
              luaL_typename(L, idx));
}

static int do_load(lua_State *L)
{
    load_args *a = lua_touserdata(L, 1);
    fw_rule *r = a->r;
    char chunk[1100];
    snprintf(chunk, sizeof chunk, "@%s", r->path);
    fw_ctx_open(L);
    if (luaL_loadbufferx(L, a->src, a->len, chunk, "t") != LUA_OK)
        return lua_error(L);
    lua_pushvalue(L, -1);
    r->main_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    fw_sbx_push_env(L);
    lua_pushvalue(L, -1);
    r->env_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (!lua_setupvalue(L, -2, 1))
        lua_pop(L, 1);
    fw_ctx_create(L);
    r->ctx_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    r->ctxr_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_call(L, 0, 1);
    /* Globals the chunk set while loading are not seen by calls. */
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->env_ref);
    fw_sbx_clear_env(L, -1);
    lua_pop(L, 1);
    int t = lua_gettop(L);
    if (lua_type(L, t) != LUA_TTABLE)
        return load_fail(L, a, NULL, "must return a table (got %s)", luaL_typename(L, t));

    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            return load_fail(L, a, NULL, "rule table keys must be strings");
        const char *k = lua_tostring(L, -1);
        const char *const *ok = rule_keys;
        while (*ok && strcmp(*ok, k) != 0)
            ok++;
        if (!*ok)
            return load_fail(L, a, k, "unknown key '%s'", k);
    }

    if (lua_getfield(L, t, "id") != LUA_TSTRING)
        return load_fail(L, a, "id", "id must be a string");
    if (strcmp(lua_tostring(L, -1), r->id) != 0)
        return load_fail(L, a, "id", "id '%s' does not match the file name (%s.lua)",
                         lua_tostring(L, -1), r->id);
    lua_pop(L, 1);

    if (lua_getfield(L, t, "name") != LUA_TSTRING || lua_rawlen(L, -1) == 0)
        return load_fail(L, a, "name", "name must be a non-empty string");
    snprintf(r->name, sizeof r->name, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);

    if (lua_getfield(L, t, "level") != LUA_TSTRING || !level_ok(lua_tostring(L, -1)))
        return load_fail(L, a, "level", "level must be red, orange, yellow or blue");
    snprintf(r->level, sizeof r->level, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);

    if (lua_getfield(L, t, "on") != LUA_TTABLE || lua_rawlen(L, -1) == 0)
        return load_fail(L, a, "on", "on must be a non-empty array of event names");
    for (lua_Integer i = 1; i <= (lua_Integer)lua_rawlen(L, -1); i++) {
        lua_rawgeti(L, -1, i);
        const char *ev = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
        int idx = fw_on_index(ev);
        if (idx >= 0)
            r->on |= 1u << idx;
        else if (strcmp(ev, "voucher.*") == 0)
            r->on |= 0x3fu << FW_ON_VOUCHER_CREATED;
        else if (strcmp(ev, "indicator.*") == 0)
            r->on |= 0x7u << FW_ON_INDICATOR_ALLOCATE;
        else
            return load_fail(L, a, "on", "on: unknown event name '%s'", ev);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);

    int mt = lua_getfield(L, t, "mode");
    if (mt == LUA_TSTRING && strcmp(lua_tostring(L, -1), "shadow") == 0)
        r->shadow = 1;
    else if (mt != LUA_TNIL && !(mt == LUA_TSTRING && strcmp(lua_tostring(L, -1), "live") == 0))
        return load_fail(L, a, "mode", "mode must be \"live\" or \"shadow\"");
    lua_pop(L, 1);

    int dt = lua_getfield(L, t, "description");
    if (dt != LUA_TNIL && dt != LUA_TSTRING)
        return load_fail(L, a, "description", "description must be a string");
    lua_pop(L, 1);

    if (lua_getfield(L, t, "check") != LUA_TFUNCTION)
        return load_fail(L, a, "check", "check must be a function(v, ctx)");
    r->check_ref = luaL_ref(L, LUA_REGISTRYINDEX);

    int pt = lua_getfield(L, t, "params");
    lua_newtable(L); /* defaults */
    if (pt == LUA_TTABLE) {
        int p = lua_gettop(L) - 1;
        lua_pushnil(L);
        while (lua_next(L, p)) {
            if (lua_type(L, -2) != LUA_TSTRING)
                return load_fail(L, a, "params", "params keys must be strings");
            const char *k = lua_tostring(L, -2);
            copy_param(L, a, -1, k);
            lua_setfield(L, -4, k);
            lua_pop(L, 1);
        }
    } else if (pt != LUA_TNIL) {
        return load_fail(L, a, "params", "params must be a table");
    }
    r->defaults_ref = luaL_ref(L, LUA_REGISTRYINDEX);

    if (lua_getfield(L, t, "when") != LUA_TNIL) {
        char why[256];
        if (r->on & ((1u << FW_ON_PAYROLL_RUN) | (1u << FW_ON_PAYROLL_LINE) | (1u << FW_ON_TICK)))
            return load_fail(L, a, "when", "when: not with payroll.run, payroll.line or tick");
        if (fw_when_parse(L, -1, &r->when, why, sizeof why) != 0)
            return load_fail(L, a, "when", "%s", why);
        /* Param names must exist now; their values are checked by
         * set_params (defaults, config, test params). */
        lua_rawgeti(L, LUA_REGISTRYINDEX, r->defaults_ref);
        if (fw_when_resolve(r->when, L, -1, r->etc, why, sizeof why) != 0)
            return load_fail(L, a, "when", "%s", why);
    }
    lua_settop(L, t);
    return 0;
}

/* ---- params ---- */

typedef struct params_args {
    fw_rule *r;
    const json_t *over;
    int from_config; /* values are INI strings to parse by the default's type */
} params_args;

static int parse_bool(const char *s, int *out)
{
    static const char *const t[] = {"true", "yes", "on", "1"}, *const f[] = {"false", "no", "off",
                                                                             "0"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, t[i]) == 0)
            return *out = 1, 0;
        if (strcasecmp(s, f[i]) == 0)
            return *out = 0, 0;
    }
    return -1;
}

/* Push the INI string s converted to the type of the default at d. */
static void push_from_string(lua_State *L, int d, const char *name, const char *s)
{
    char *end;
    errno = 0;
    if (lua_isinteger(L, d)) {
        long long v = strtoll(s, &end, 10);
        if (errno || end == s || *end)
            luaL_error(L, "param %s: '%s' is not an integer", name, s);
        lua_pushinteger(L, v);
    } else if (lua_type(L, d) == LUA_TNUMBER) {
        /* Only a parameter whose default is a float (a ratio, never money:
         * money params are integer fen and take the branch above). */
        double v = strtod(s, &end);
        if (errno || end == s || *end)
            luaL_error(L, "param %s: '%s' is not a number", name, s);
        lua_pushnumber(L, v);
    } else if (lua_type(L, d) == LUA_TBOOLEAN) {
        int b = 0;
        if (parse_bool(s, &b) != 0)
            luaL_error(L, "param %s: '%s' is not a boolean", name, s);
        lua_pushboolean(L, b);
    } else if (lua_type(L, d) == LUA_TSTRING) {
        lua_pushstring(L, s);
    } else { /* array: comma-separated */
        lua_rawgeti(L, d, 1);
        int numbers = lua_isinteger(L, -1);
        lua_pop(L, 1);
        lua_newtable(L);
        lua_Integer n = 0;
        const char *p = s;
        while (*p) {
            while (*p == ' ' || *p == '\t' || *p == ',')
                p++;
            if (!*p)
                break;
            const char *q = p;
            while (*q && *q != ',')
                q++;
            const char *e = q;
            while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            if (numbers) {
                char tmp[32];
                snprintf(tmp, sizeof tmp, "%.*s", (int)(e - p), p);
                long long v = strtoll(tmp, &end, 10);
                if (end == tmp || *end)
                    luaL_error(L, "param %s: '%s' is not an integer", name, tmp);
                lua_pushinteger(L, v);
            } else {
                lua_pushlstring(L, p, (size_t)(e - p));
            }
            lua_rawseti(L, -2, ++n);
            p = q;
        }
    }
}

/* Push the JSON value j checked against the type of the default at d. */
static void push_from_json(lua_State *L, int d, const char *name, const json_t *j)
{
    int dt = lua_type(L, d);
    int ok = (dt == LUA_TNUMBER && lua_isinteger(L, d) && json_is_integer(j)) ||
             (dt == LUA_TNUMBER && !lua_isinteger(L, d) && json_is_number(j)) ||
             (dt == LUA_TBOOLEAN && json_is_boolean(j)) ||
             (dt == LUA_TSTRING && json_is_string(j)) || (dt == LUA_TTABLE && json_is_array(j));
    if (!ok)
        luaL_error(L, "param %s: expected a %s like the default", name,
                   dt == LUA_TTABLE ? "array" : lua_typename(L, dt));
    fw_push_json(L, j);
}

static int do_set_params(lua_State *L)
{
    params_args *a = lua_touserdata(L, 1);
    fw_rule *r = a->r;
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->defaults_ref); /* 2 */
    lua_newtable(L);                                    /* 3 */
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        if (lua_type(L, -1) == LUA_TTABLE) { /* arrays: copy, proxies come later */
            size_t n = lua_rawlen(L, -1);
            lua_createtable(L, (int)n, 0);
            for (size_t i = 1; i <= n; i++) {
                lua_rawgeti(L, -2, (lua_Integer)i);
                lua_rawseti(L, -2, (lua_Integer)i);
            }
            lua_remove(L, -2);
        }
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, 3);
    }
    if (a->over) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)a->over, k, v)
        {
            if (a->from_config && strcmp(k, "mode") == 0) {
                const char *m = json_string_value(v);
                if (!m || (strcmp(m, "live") != 0 && strcmp(m, "shadow") != 0))
                    return luaL_error(L, "mode must be live or shadow");
                r->shadow = strcmp(m, "shadow") == 0;
                continue;
            }
            if (lua_getfield(L, 2, k) == LUA_TNIL)
                return luaL_error(L, "no param '%s'", k);
            int d = lua_gettop(L);
            if (a->from_config)
                push_from_string(L, d, k, json_string_value(v) ? json_string_value(v) : "");
            else
                push_from_json(L, d, k, v);
            lua_setfield(L, 3, k);
            lua_pop(L, 1);
        }
    }
    char why[256];
    if (fw_when_resolve(r->when, L, 3, r->etc, why, sizeof why) != 0)
        return luaL_error(L, "%s", why);
    fw_sbx_push_readonly(L, 3);
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->ctxr_ref);
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "params");
    lua_pop(L, 1);
    luaL_unref(L, LUA_REGISTRYINDEX, r->params_ref);
    r->params_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

static int set_params(fw_rule *r, const json_t *over, int from_config, char *err, int errlen)
{
    params_args a = {r, over, from_config};
    char why[512];
    r->sbx->owner = r;
    if (fw_sbx_call(r->sbx, do_set_params, &a, why, sizeof why) != 0) {
        snprintf(err, (size_t)errlen, "%s: %s%s%s", r->path, from_config ? "config [rule." : "",
                 from_config ? r->id : "", from_config ? "]: " : "");
        size_t l = strlen(err);
        snprintf(err + l, (size_t)errlen > l ? (size_t)errlen - l : 0, "%s", why);
        return -1;
    }
    return 0;
}

int fw_rule_set_params_json(fw_rule *r, const json_t *over, char *err, int errlen)
{
    return set_params(r, over, 0, err, errlen);
}

typedef struct cfg_collect {
    char section[96];
    json_t *over;
} cfg_collect;

static void collect_cfg(const char *section, const char *key, const char *value, void *ud)
{
    cfg_collect *c = ud;
    if (strcmp(section, c->section) == 0)
        json_object_set_new(c->over, key, json_string(value ? value : ""));
}

/* ---- load / free ---- */

static int id_from_path(const char *path, char *id, size_t idlen)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n <= 4 || strcmp(base + n - 4, ".lua") != 0 || n - 4 >= idlen)
        return -1;
    for (size_t i = 0; i < n - 4; i++)
        if (!(islower((unsigned char)base[i]) || isdigit((unsigned char)base[i]) || base[i] == '_'))
            return -1;
    memcpy(id, base, n - 4);
    id[n - 4] = '\0';
    return 0;
}

static char *read_file(const char *path, size_t *len, char *err, int errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, (size_t)errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(RULE_MAX_FILE + 1);
    size_t n = buf ? fread(buf, 1, RULE_MAX_FILE + 1, f) : 0;
    fclose(f);
    if (!buf || n > RULE_MAX_FILE) {
        snprintf(err, (size_t)errlen, "%s: larger than %d bytes", path, RULE_MAX_FILE);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

fw_rule *fw_rule_load(const char *path, const fw_rule_env *env, char *err, int errlen)
{
    fw_rule *r = NULL;
    size_t len = 0;
    char *src = NULL;
    json_t *over = NULL;
    r = calloc(1, sizeof *r);
    if (!r)
        goto fail;
    r->main_ref = r->check_ref = r->defaults_ref = r->params_ref = LUA_NOREF;
    r->env_ref = r->ctxr_ref = r->ctx_ref = LUA_NOREF;
    snprintf(r->path, sizeof r->path, "%s", path);
    if (id_from_path(path, r->id, sizeof r->id) != 0) {
        snprintf(err, (size_t)errlen, "%s: file name must be <id>.lua with id [a-z0-9_]+", path);
        goto fail;
    }
    src = read_file(path, &len, err, errlen);
    if (!src)
        goto fail;
    EVP_Digest(src, len, r->sha, NULL, EVP_sha256(), NULL);
    r->names_env = memmem(src, len, "_ENV", 4) != NULL;
    r->etc = fw_etc_ref(env->etc);
    r->ledger = env->ledger;
    if (env->shared) {
        r->sbx = fw_sbx_ref(env->shared);
    } else {
        size_t mem = env->mem_budget ? env->mem_budget : ((size_t)32 << 20);
        r->sbx = fw_sbx_new(mem, mem, env->instr_budget ? env->instr_budget : 1000000);
    }
    if (!r->sbx) {
        snprintf(err, (size_t)errlen, "%s: cannot create a Lua state", path);
        goto fail;
    }
    load_args a = {r, src, len};
    r->sbx->owner = r;
    if (fw_sbx_call(r->sbx, do_load, &a, err, errlen) != 0) {
        /* Budget trips have no file in the message. */
        if (strncmp(err, path, strlen(path)) != 0) {
            char tmp[512];
            snprintf(tmp, sizeof tmp, "%s", err);
            snprintf(err, (size_t)errlen, "%s: %s", path, tmp);
        }
        goto fail;
    }
    over = json_object();
    if (env->cfg) {
        cfg_collect c;
        snprintf(c.section, sizeof c.section, "rule.%s", r->id);
        c.over = over;
        fw_config_each(env->cfg, "rule.", collect_cfg, &c);
    }
    if (set_params(r, over, 1, err, errlen) != 0)
        goto fail;
    json_decref(over);
    free(src);

    if (!env->live_metrics)
        return r; /* the metric handles stay NULL: fw_metric_* ignore NULL */
    char labels[128];
    snprintf(labels, sizeof labels, "rule=\"%s\"", r->id);
    r->m_evals =
        fw_metric_counter("fundwatch_rule_evaluations_total", "Rule check calls, per rule", labels);
    r->m_hits = fw_metric_counter("fundwatch_rule_hits_total", "Rule hits, per rule", labels);
    r->m_errors = fw_metric_counter("fundwatch_rule_errors_total",
                                    "Rule failures (error or budget), per rule", labels);
    r->m_seconds = fw_metric_counter("fundwatch_rule_seconds_total",
                                     "Time spent in rule calls, per rule", labels);
    if (r->when)
        r->m_skipped =
            fw_metric_counter("fundwatch_rule_skipped_total",
                              "Events a rule's when kept from its check, per rule", labels);
    return r;
fail:
    json_decref(over);
    free(src);
    fw_rule_free(r);
    return NULL;
}

void fw_rule_free(fw_rule *r)
{
    if (!r)
        return;
    if (r->sbx && r->sbx->refs > 1) {
        /* The state lives on with the other rules: release what was ours. */
        lua_State *L = r->sbx->L;
        int refs[] = {r->main_ref, r->check_ref, r->defaults_ref, r->params_ref,
                      r->env_ref,  r->ctxr_ref,  r->ctx_ref};
        for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++)
            luaL_unref(L, LUA_REGISTRYINDEX, refs[i]);
        if (r->sbx->owner == r)
            r->sbx->owner = NULL;
    }
    fw_sbx_unref(r->sbx);
    fw_when_free(r->when);
    fw_etc_unref(r->etc);
    free(r);
}

/* ---- evaluation ---- */

typedef enum { CALL_EVENT, CALL_LINE, CALL_TICK } call_mode;

typedef struct call_args {
    fw_rule *r;
    call_mode mode;
    const char *event;  /* dispatch name */
    const json_t *body; /* CALL_EVENT */
    lua_Integer line;   /* CALL_LINE: 1-based */
    const char *subject_kind;
    char subject_id[300];
    const char *unit;
    const char *event_id;
    fw_hit_list pending;
} call_args;

static void move_hits(fw_hit_list *dst, fw_hit_list *src)
{
    for (int i = 0; i < src->n; i++) {
        if (dst->n == dst->cap) {
            int cap = dst->cap ? dst->cap * 2 : 8;
            fw_hit *items = realloc(dst->items, (size_t)cap * sizeof *items);
            if (!items)
                abort();
            dst->items = items;
            dst->cap = cap;
        }
        dst->items[dst->n++] = src->items[i];
    }
    src->n = 0;
}

/* Whether k (n bytes) is a field a hit table may have. */
static int hit_key_ok(const char *k, size_t n)
{
    switch (n) {
    case 3:
        return memcmp(k, "key", 3) == 0;
    case 4:
        return memcmp(k, "unit", 4) == 0;
    case 5:
        return memcmp(k, "level", 5) == 0;
    case 7:
        return memcmp(k, "message", 7) == 0 || memcmp(k, "details", 7) == 0 ||
               memcmp(k, "subject", 7) == 0;
    default:
        return 0;
    }
}

/* Whether s is valid UTF-8 as jansson requires of a string (no overlong
 * forms, no surrogates, at most U+10FFFF): checked without building a JSON
 * string. */
static int utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            if (c == 0)
                return 0;
            i++;
            continue;
        }
        size_t len;
        unsigned cp;
        if (c >= 0xC2 && c <= 0xDF)
            len = 2, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF)
            len = 3, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4)
            len = 4, cp = c & 0x07;
        else
            return 0;
        if (i + len > n)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

/* Turn the hit table at idx into a pending hit. */
static void collect_hit_table(lua_State *L, call_args *a, int idx)
{
    fw_rule *r = a->r;
    idx = lua_absindex(L, idx);
    fw_lazy_settle(L, idx); /* walked raw below */
    int top = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        size_t kl = 1;
        const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &kl) : "?";
        if (!hit_key_ok(k, kl))
            luaL_error(L, "check returned a hit with unknown field '%s'", k);
    }
    if (lua_getfield(L, idx, "message") != LUA_TSTRING)
        luaL_error(L, "check returned a hit without a string message");
    const char *msg = lua_tostring(L, -1);
    const char *level = r->level;
    int lt = lua_getfield(L, idx, "level");
    if (lt != LUA_TNIL) {
        if (lt != LUA_TSTRING || !level_ok(lua_tostring(L, -1)))
            luaL_error(L, "check returned an invalid level");
        level = lua_tostring(L, -1);
    }
    const char *key = NULL;
    int kt = lua_getfield(L, idx, "key");
    if (kt == LUA_TSTRING || kt == LUA_TNUMBER)
        key = lua_tostring(L, -1);
    else if (kt != LUA_TNIL)
        luaL_error(L, "check returned a non-string key");
    const char *skind = a->subject_kind, *sid = a->subject_id;
    int st = lua_getfield(L, idx, "subject");
    if (st == LUA_TTABLE) {
        int s = lua_gettop(L);
        if (lua_getfield(L, s, "kind") != LUA_TSTRING ||
            (lua_getfield(L, s, "id") != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER))
            luaL_error(L, "check returned a subject without string kind and id");
        skind = lua_tostring(L, -2);
        sid = lua_tostring(L, -1);
    } else if (st != LUA_TNIL) {
        luaL_error(L, "check returned a subject that is not a table {kind=, id=}");
    } else if (a->mode == CALL_TICK) {
        luaL_error(L, "tick hits must name a subject {kind=, id=}");
    }
    const char *unit = a->unit;
    int ut = lua_getfield(L, idx, "unit");
    if (ut == LUA_TSTRING)
        unit = lua_tostring(L, -1);
    else if (ut != LUA_TNIL)
        luaL_error(L, "check returned a unit that is not a string");
    if (!utf8_valid(msg, strlen(msg))) /* as far as the hit will keep it */
        luaL_error(L, "check returned a message that is not valid UTF-8");
    fw_hit *h = fw_hit_list_add(&a->pending, r->id, level, r->shadow, msg, NULL, key, skind, sid,
                                unit, a->event_id, r->now);
    int dt = lua_getfield(L, idx, "details");
    if (dt == LUA_TTABLE) {
        fw_lazy_settle(L, -1);
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            if (lua_type(L, -2) != LUA_TSTRING)
                luaL_error(L, "details keys must be strings");
            fw_lua_to_json(L, -1, h->details, lua_tostring(L, -2), 0, 1);
            lua_pop(L, 1);
        }
    } else if (dt != LUA_TNIL) {
        luaL_error(L, "check returned details that are not a table");
    }
    lua_settop(L, top);
}

static void collect_result(lua_State *L, call_args *a, int idx)
{
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        return;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx))
            luaL_error(L, "check returned true (return a message instead)");
        return;
    case LUA_TSTRING: {
        const char *m = lua_tostring(L, idx);
        if (!utf8_valid(m, strlen(m))) /* as far as the hit will keep it */
            luaL_error(L, "check returned a message that is not valid UTF-8");
        if (a->mode == CALL_TICK)
            luaL_error(L, "tick hits must name a subject {kind=, id=}");
        fw_hit_list_add(&a->pending, a->r->id, a->r->level, a->r->shadow, lua_tostring(L, idx),
                        NULL, NULL, a->subject_kind, a->subject_id, a->unit, a->event_id,
                        a->r->now);
        return;
    }
    case LUA_TTABLE:
        fw_lazy_settle(L, idx); /* read raw below */
        break;
    default:
        luaL_error(L, "check returned a %s", luaL_typename(L, idx));
    }
    lua_pushliteral(L, "message");
    int has_msg = lua_rawget(L, idx) != LUA_TNIL;
    lua_pop(L, 1);
    if (has_msg) {
        collect_hit_table(L, a, idx);
        return;
    }
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_rawgeti(L, idx, i) != LUA_TTABLE)
            luaL_error(L, "check returned a list whose item %d is not a table", (int)i);
        collect_hit_table(L, a, -1);
        lua_pop(L, 1);
    }
}

/* The evaluation's shared event values in a state, registry[eval_ref]:
 * [1] the overlay metatable of v (payroll.run: the part with complete and
 * total_net), [2] the read-only run table (payroll: ctx.run), [3] the
 * overlay metatables of the lines, made at first use, [4] ctx results
 * shared by the rules (fw_eval_push_ctx_cache), [5] the body of a lazy
 * v (fw_sbx_push_lazy_body: what the next evaluation prefills). */
enum { EV_MT = 1, EV_RUN = 2, EV_LINES = 3, EV_CTX = 4, EV_BODY = 5 };

/* Per thread: each rule set (its lua_State) is used by one thread only; the
 * pre-payment check thread has a rule set of its own (daemon/precheck.h). */
static _Thread_local uint64_t eval_serial = 1;

/* The clock read that ended the previous rule call of this evaluation
 * starts the next one (half the clock reads; what runs between two calls is
 * the dispatch of the next rule).  ensure_eval breaks the chain: building
 * the event is no rule's time.  Only one evaluation in TIME_SAMPLE is
 * timed, its times counted TIME_SAMPLE-fold: a clock read (~25 ns) per
 * rule call was ~2 % of an evaluation, and at thousands of evaluations a
 * second the sample makes the same per-rule sums within a scrape. */
#define TIME_SAMPLE 8
static _Thread_local struct {
    uint64_t serial; /* eval_serial of end; 0: no chain */
    double end;
    int timed; /* this evaluation is timed */
} call_clock;

void fw_rule_eval_begin(void)
{
    eval_serial++;
    call_clock.timed = eval_serial % TIME_SAMPLE == 0;
}

typedef struct build_args {
    const json_t *body;
    int payroll;
    const fw_payroll_info *pi;
} build_args;

static int do_build_eval(lua_State *L)
{
    build_args *b = lua_touserdata(L, 1);
    fw_sbx *s = fw_sbx_of(L);
    lua_createtable(L, 5, 0); /* 2 */
    if (!b->payroll && fw_sbx_push_lazy_event(L, b->body)) {
        /* 3: S, fields converted on first read (sandbox.c, "lazy S"); the
         * fields the rules read in the previous evaluation's S are
         * converted now, in one go: the rules of a state read the same
         * fields of event after event, and a first read through S's
         * __index (a metamethod call) cost several times as much.  The
         * previous S's body says which (kept as [EV_BODY]: S drops it
         * when completed); a previous event that was not lazy, by its
         * table's keys. */
        fw_sbx_push_lazy_body(L, 3); /* 4 */
        if (s->eval_ref != LUA_NOREF &&
            lua_rawgeti(L, LUA_REGISTRYINDEX, s->eval_ref) == LUA_TTABLE) { /* 5 */
            if (lua_rawgeti(L, 5, EV_BODY) == LUA_TUSERDATA) {
                fw_sbx_lazy_prefill(L, 3, -1);
            } else if (lua_rawgeti(L, 5, EV_MT) == LUA_TTABLE) {
                lua_pushliteral(L, "__index");
                if (lua_rawget(L, -2) == LUA_TTABLE)
                    fw_sbx_lazy_prefill(L, 3, -1);
            }
        }
        lua_settop(L, 4);
        lua_rawseti(L, 2, EV_BODY);
        fw_sbx_push_overlay_mt(L, 3);
        lua_rawseti(L, 2, EV_MT);
        lua_settop(L, 2);
    } else if (json_is_object(b->body)) {
        fw_push_json(L, b->body); /* 3: S */
        const char *k;
        const json_t *v;
        int nested = 0;
        json_object_foreach((json_t *)b->body, k, v) nested |=
            json_is_object(v) || json_is_array(v);
        if (nested)
            fw_sbx_readonly_nested(L, 3);
        if (b->payroll) {
            fw_sbx_push_readonly(L, 3);
            lua_rawseti(L, 2, EV_RUN);
            lua_newtable(L);
            lua_rawseti(L, 2, EV_LINES);
            /* payroll.run's v: the part plus what the engine computed */
            lua_createtable(L, 0, (int)json_object_size(b->body) + 2);
            lua_pushnil(L);
            while (lua_next(L, 3)) {
                lua_pushvalue(L, -2);
                lua_insert(L, -2);
                lua_rawset(L, 4);
            }
            lua_pushboolean(L, b->pi ? b->pi->complete : 0);
            lua_setfield(L, 4, "complete");
            lua_pushinteger(L, b->pi ? b->pi->total_net : 0);
            lua_setfield(L, 4, "total_net");
            lua_replace(L, 3);
        }
        fw_sbx_push_overlay_mt(L, 3);
        lua_rawseti(L, 2, EV_MT);
        lua_settop(L, 2);
    }
    if (s->eval_ref == LUA_NOREF)
        s->eval_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    else
        lua_rawseti(L, LUA_REGISTRYINDEX, s->eval_ref);
    return 0;
}

/* Build the event values of this evaluation in r's state unless done.
 * 0, or -1 with the reason. */
static int ensure_eval(fw_rule *r, const fw_event *ev, const fw_payroll_info *pi, char *why,
                       int whylen)
{
    fw_sbx *s = r->sbx;
    if (s->eval_serial == eval_serial)
        return s->eval_failed ? (snprintf(why, (size_t)whylen, "%s", s->eval_err), -1) : 0;
    build_args b = {ev->body, ev->kind == FW_KIND_PAYROLL, pi};
    call_clock.serial = 0;
    s->owner = NULL;
    s->eval_serial = eval_serial;
    s->eval_failed = fw_sbx_call(s, do_build_eval, &b, s->eval_err, sizeof s->eval_err) != 0;
    if (s->eval_failed) {
        snprintf(why, (size_t)whylen, "%s", s->eval_err);
        return -1;
    }
    return 0;
}

/* Push the evaluation's value [i] (nil when absent). */
static int push_eval(lua_State *L, int i)
{
    fw_sbx *s = fw_sbx_of(L);
    if (s->eval_ref == LUA_NOREF || lua_rawgeti(L, LUA_REGISTRYINDEX, s->eval_ref) != LUA_TTABLE) {
        lua_pop(L, s->eval_ref == LUA_NOREF ? 0 : 1);
        lua_pushnil(L);
        return LUA_TNIL;
    }
    int t = lua_rawgeti(L, -1, i);
    lua_remove(L, -2);
    return t;
}

int fw_eval_push_ctx_cache(lua_State *L)
{
    fw_sbx *s = fw_sbx_of(L);
    if (s->eval_serial != eval_serial || s->eval_failed || s->eval_ref == LUA_NOREF)
        return 0;
    if (lua_rawgeti(L, LUA_REGISTRYINDEX, s->eval_ref) != LUA_TTABLE) {
        lua_pop(L, 1);
        return 0;
    }
    if (lua_rawgeti(L, -1, EV_CTX) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_rawseti(L, -3, EV_CTX);
    }
    lua_remove(L, -2);
    return 1;
}

/* Push v for payroll line i: an overlay of the line (its metatable made
 * once per evaluation and line). */
static void push_line(lua_State *L, lua_Integer i)
{
    int top = lua_gettop(L);
    if (push_eval(L, EV_LINES) != LUA_TTABLE) {
        lua_settop(L, top);
        lua_pushnil(L);
        return;
    }
    int cache = top + 1;
    if (lua_rawgeti(L, cache, i) == LUA_TTABLE) {
        fw_sbx_push_overlay(L, -1);
        lua_replace(L, top + 1);
        lua_settop(L, top + 1);
        return;
    }
    lua_pop(L, 1);
    push_eval(L, EV_RUN);
    int found = 0;
    if (fw_sbx_push_real(L, -1) && lua_getfield(L, -1, "lines") == LUA_TTABLE &&
        fw_sbx_push_real(L, -1) && lua_rawgeti(L, -1, i) == LUA_TTABLE && fw_sbx_push_real(L, -1)) {
        fw_sbx_push_overlay_mt(L, -1);
        lua_pushvalue(L, -1);
        lua_rawseti(L, cache, i);
        fw_sbx_push_overlay(L, -1);
        found = 1;
    }
    if (found) {
        lua_replace(L, top + 1);
        lua_settop(L, top + 1);
    } else {
        lua_settop(L, top);
        lua_pushnil(L);
    }
}

static int do_call(lua_State *L)
{
    call_args *a = lua_touserdata(L, 1);
    fw_rule *r = a->r;
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->check_ref);
    if (a->mode == CALL_EVENT) {
        if (push_eval(L, EV_MT) == LUA_TTABLE) {
            fw_sbx_push_overlay(L, -1);
            lua_remove(L, -2);
        } else {
            lua_pop(L, 1);
            fw_push_json(L, a->body);
        }
    } else if (a->mode == CALL_LINE) {
        push_line(L, a->line);
    } else {
        lua_createtable(L, 0, 1);
        lua_pushinteger(L, r->now);
        lua_setfield(L, -2, "at");
    }
    /* ctx's fields change only with the event name (and for each line) */
    if (a->mode == CALL_LINE || r->ctx_run_set || strcmp(r->ctx_event, a->event) != 0) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, r->ctxr_ref);
        lua_pushstring(L, a->event);
        lua_setfield(L, -2, "event");
        if (a->mode == CALL_LINE)
            push_eval(L, EV_RUN);
        else
            lua_pushnil(L);
        lua_setfield(L, -2, "run");
        lua_pop(L, 1);
        size_t el = strlen(a->event);
        if (el < sizeof r->ctx_event)
            memcpy(r->ctx_event, a->event, el + 1);
        else
            r->ctx_event[0] = '\0'; /* not kept: set again next time */
        r->ctx_run_set = a->mode == CALL_LINE;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->ctx_ref);
    lua_call(L, 2, 1);
    collect_result(L, a, -1);
    return 0;
}

static double mono_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A rule's error text may quote data (error("bad " .. v.payee_account)):
 * runs of 7 or more digits become "****" + their last four. */
static void mask_digit_runs(const char *in, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; in[i] && o + 9 < outlen;) {
        size_t j = i;
        while (in[j] >= '0' && in[j] <= '9')
            j++;
        if (j - i >= 7) {
            memcpy(out + o, "****", 4);
            memcpy(out + o + 4, in + j - 4, 4);
            o += 8;
            i = j;
        } else if (j > i) {
            while (i < j && o + 1 < outlen)
                out[o++] = in[i++];
        } else {
            out[o++] = in[i++];
        }
    }
    out[o] = '\0';
}

/* One protected call; on failure a rule_error hit. Returns hits added or
 * -1 on failure (after adding the rule_error hit). */
static int run_call(fw_rule *r, call_args *a, fw_hit_list *hits)
{
    char why[512];
    double t0 = !call_clock.timed                  ? 0
                : call_clock.serial == eval_serial ? call_clock.end
                                                   : mono_seconds();
    memset(&a->pending, 0, sizeof a->pending);
    r->sbx->owner = r;
    int rc = fw_sbx_call(r->sbx, do_call, a, why, sizeof why);
    /* Globals written during the call die with it (the environment's
     * __newindex tells which calls wrote one).  A rule that assigned _ENV
     * itself (the chunk's upvalue, shared by its functions; only source
     * that names _ENV can) gets its own environment back. */
    lua_State *L = r->sbx->L;
    if (r->sbx->env_written) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, r->env_ref);
        fw_sbx_clear_env(L, -1);
        lua_pop(L, 1);
    }
    if (r->names_env) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, r->env_ref);
        lua_rawgeti(L, LUA_REGISTRYINDEX, r->main_ref);
        lua_getupvalue(L, -1, 1);
        if (!lua_rawequal(L, -1, -3)) {
            lua_pushvalue(L, -3);
            lua_setupvalue(L, -3, 1);
        }
        lua_pop(L, 3);
    }
    fw_metric_add(r->m_evals, 1);
    if (rc == 0) {
        int n = a->pending.n;
        move_hits(hits, &a->pending);
        fw_hit_list_free(&a->pending);
        if (n)
            fw_metric_add(r->m_hits, n);
        if (call_clock.timed) {
            call_clock.end = mono_seconds();
            call_clock.serial = eval_serial;
            fw_metric_add(r->m_seconds, (call_clock.end - t0) * TIME_SAMPLE);
        }
        return n;
    }
    call_clock.serial = 0; /* the failure path below is charged to no rule */
    if (call_clock.timed)
        fw_metric_add(r->m_seconds, (mono_seconds() - t0) * TIME_SAMPLE);
    fw_hit_list_free(&a->pending);
    fw_metric_add(r->m_errors, 1);
    /* At most one log line per rule per minute (a rule may fail on every
     * message); the hits and the errors counter carry the rest. */
    double t = mono_seconds();
    if (r->errors_logged_at == 0 || t - r->errors_logged_at >= 60) {
        char masked[512], q[300];
        mask_digit_runs(why, masked, sizeof masked);
        FW_WARN("rules.rule_error", "rule=%s event=%s reason=%s", r->id, a->event,
                fw_log_quote(masked, q, sizeof q));
        r->errors_logged_at = t;
    }
    char msg[700];
    snprintf(msg, sizeof msg, "规则 %s 执行失败: %s", r->id, why);
    json_t *details = json_pack("{s:s, s:s}", "event", a->event, "reason", why);
    fw_hit_list_add(hits, "rule_error", "orange", r->shadow, msg, details, r->id, "rule", r->id,
                    a->unit, a->event_id, r->now);
    return -1;
}

/* dst (a call_args.subject_id) = id, truncated as snprintf would (no
 * printf machinery). */
#define SUBJECT_ID_SIZE sizeof(((call_args *)0)->subject_id)
static void copy_subject_id(char dst[SUBJECT_ID_SIZE], const char *id)
{
    size_t n = strlen(id);
    if (n >= SUBJECT_ID_SIZE)
        n = SUBJECT_ID_SIZE - 1;
    memcpy(dst, id, n);
    dst[n] = '\0';
}

static void set_subject_id(call_args *a, const char *id)
{
    copy_subject_id(a->subject_id, id);
}

/* The call arguments of a rule that is going to be called: made only then
 * (most rules of a set do not listen to a given event). */
static void init_call_args(call_args *a, fw_rule *r, const fw_event *ev)
{
    memset(a, 0, sizeof *a);
    a->r = r;
    a->unit = ev->unit_code ? ev->unit_code : "";
    a->event_id = ev->id;
    a->body = ev->body;
}

static const char *body_str(const json_t *body, const char *k)
{
    const char *s = json_string_value(json_object_get(body, k));
    return s ? s : "";
}

int fw_payroll_info_get(fw_ledger *l, const fw_event *ev, fw_payroll_info *pi)
{
    int seen = 0;
    int64_t net = 0;
    memset(pi, 0, sizeof *pi);
    const char *run_id = body_str(ev->body, "run_id");
    if (l && fw_ledger_run_progress(l, run_id, &seen, &net) != 0)
        return -1;
    json_t *lines = json_object_get(ev->body, "lines"), *line;
    size_t i;
    json_array_foreach(lines, i, line) net += json_integer_value(json_object_get(line, "net"));
    json_int_t parts = json_integer_value(json_object_get(ev->body, "parts"));
    pi->complete = seen + 1 >= parts;
    pi->total_net = net;
    return 0;
}

/* One rule_error hit for a failure outside a rule's call. */
static void add_rule_error(fw_rule *r, call_args *a, const char *why, fw_hit_list *hits)
{
    char msg[400];
    snprintf(msg, sizeof msg, "规则 %s 执行失败: %s", r->id, why);
    fw_metric_add(r->m_errors, 1);
    json_t *details = json_pack("{s:s, s:s}", "event", a->event, "reason", why);
    fw_hit_list_add(hits, "rule_error", "orange", r->shadow, msg, details, r->id, "rule", r->id,
                    a->unit, a->event_id, r->now);
}

int fw_rule_eval(fw_rule *r, const fw_event *ev, const fw_payroll_info *pi, fw_hit_list *hits)
{
    int added = 0;
    char why[256];
    r->now = ev->occurred_at;
    call_args a;
    if (ev->kind == FW_KIND_PAYROLL) {
        if (!(r->on & ((1u << FW_ON_PAYROLL_RUN) | (1u << FW_ON_PAYROLL_LINE))))
            return 0;
        init_call_args(&a, r, ev);
        const char *run_id = body_str(ev->body, "run_id");
        if (ensure_eval(r, ev, pi, why, sizeof why) != 0) {
            a.event = (r->on & (1u << FW_ON_PAYROLL_RUN)) ? "payroll.run" : "payroll.line";
            add_rule_error(r, &a, why, hits);
            return 1;
        }
        if (r->on & (1u << FW_ON_PAYROLL_RUN)) {
            a.mode = CALL_EVENT;
            a.event = "payroll.run";
            a.subject_kind = "payroll_run";
            set_subject_id(&a, run_id);
            int n = run_call(r, &a, hits);
            added += n < 0 ? 1 : n;
        }
        if (r->on & (1u << FW_ON_PAYROLL_LINE)) {
            a.mode = CALL_LINE;
            a.event = "payroll.line";
            a.subject_kind = "payroll_line";
            json_t *lines = json_object_get(ev->body, "lines"), *line;
            size_t i;
            json_array_foreach(lines, i, line)
            {
                a.line = (lua_Integer)i + 1;
                snprintf(a.subject_id, sizeof a.subject_id, "%s/%s", run_id,
                         body_str(line, "emp_id"));
                int n = run_call(r, &a, hits);
                if (n < 0) { /* one rule_error per rule and part is enough */
                    added++;
                    break;
                }
                added += n;
            }
        }
        return added;
    }
    /* The dispatch bit and the subject are the same for every rule of the
     * evaluation: found once. */
    static _Thread_local struct {
        uint64_t serial;
        const fw_event *ev;
        int bit;
        const char *kind;
        char id[SUBJECT_ID_SIZE];
        fw_when_cache when;
    } once;
    if (once.serial != eval_serial || once.ev != ev) {
        once.serial = eval_serial;
        once.ev = ev;
        once.bit = fw_on_index(ev->type);
        once.when.n = 0;
        const char *idkey = NULL;
        switch (ev->kind) {
        case FW_KIND_VOUCHER:
            once.kind = "voucher", idkey = "voucher_no";
            break;
        case FW_KIND_INDICATOR:
            once.kind = "indicator", idkey = "indicator_id";
            break;
        case FW_KIND_REIMBURSE:
            once.kind = "reimburse", idkey = "reimb_id";
            break;
        case FW_KIND_SUBSIDY:
            once.kind = "subsidy", idkey = "payout_id";
            break;
        default:
            once.kind = NULL;
            break;
        }
        copy_subject_id(once.id, idkey ? body_str(ev->body, idkey) : "");
    }
    if (once.bit < 0 || !(r->on & (1u << once.bit)) || !once.kind)
        return 0;
    int skip = r->when && !fw_when_pass(r->when, ev->body, &once.when);
    if (skip && !r->when_audit) {
        fw_metric_add(r->m_skipped, 1);
        return 0;
    }
    init_call_args(&a, r, ev);
    a.mode = CALL_EVENT;
    a.event = ev->type;
    a.subject_kind = once.kind;
    memcpy(a.subject_id, once.id, strlen(once.id) + 1);
    if (ensure_eval(r, ev, pi, why, sizeof why) != 0) {
        add_rule_error(r, &a, why, hits);
        return 1;
    }
    if (skip) { /* the test runner's audit: would check have hit? */
        fw_hit_list audit = {0};
        if (run_call(r, &a, &audit) > 0) {
            if (!r->when_missed++)
                snprintf(r->when_missed_msg, sizeof r->when_missed_msg, "%s",
                         audit.items[0].message);
        }
        fw_hit_list_free(&audit);
        return 0;
    }
    int n = run_call(r, &a, hits);
    return n < 0 ? 1 : n;
}

int fw_rule_tick(fw_rule *r, int64_t now, fw_hit_list *hits)
{
    if (!(r->on & (1u << FW_ON_TICK)))
        return 0;
    r->now = now;
    call_args a;
    memset(&a, 0, sizeof a);
    a.r = r;
    a.mode = CALL_TICK;
    a.event = "tick";
    a.unit = "";
    a.subject_kind = "rule";
    set_subject_id(&a, r->id);
    int n = run_call(r, &a, hits);
    return n < 0 ? 1 : n;
}
