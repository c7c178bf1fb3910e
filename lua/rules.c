/*
 * rules.c - the rule set: every rules/<id>.lua of a directory, evaluated in
 * id order for each event, reloaded as a whole generation.
 *
 * A generation is the list of rule files found by one scan plus the etc/
 * data read at the same time, compiled into one shared Lua state
 * (sandbox.c says what keeps the rules apart in it).  Reload compiles every
 * file again in a fresh state (so new calendar/lists data reaches every
 * rule), runs a file's test cases when run_tests is set, and swaps.  A file that fails to load, or
 * whose tests fail, keeps its previous version (if there was one): the old
 * fw_rule object, with its own etc reference and a reference to its old
 * state (which lives on while such a rule does), moves into the new
 * generation.
 * A deleted file's rule goes away.
 *
 * The version is a sha256 over (id, mode, content hash) of the active rules,
 * so a carried-over old version counts as what it is.
 */
#include <ctype.h>
#include <dirent.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/log.h"
#include "daemon/schema.h"
#include "daemon/voucher_cache.h"
#include "lua/rule_int.h"
#include "lua/rules.h"

/* Rule-set versions ever active, for the alerts' `ruleset` field. */
const char fw_rules_schema[] = "CREATE TABLE rule_versions ("
                               "  version TEXT PRIMARY KEY,"
                               "  first_loaded INTEGER NOT NULL,"
                               "  rules TEXT NOT NULL"
                               ") STRICT, WITHOUT ROWID;";

struct fw_rules {
    char *dir, *etc_dir;
    fw_ledger *ledger;
    const fw_config *cfg;
    int run_tests;
    int quiet; /* fw_rules_opts.quiet */
    int64_t instr_budget;
    size_t mem_budget, state_mem_budget;
    fw_rule **rules;
    int n;
    char version[17];
    fw_memo *memo;     /* ctx reads shared by the rules of one evaluation */
    fw_vcache *vcache; /* (unit, payee) history in memory, or NULL */
};

static void append_err(char *err, int errlen, const char *msg)
{
    if (!err || errlen <= 0)
        return;
    size_t l = strlen(err);
    if (l + 3 >= (size_t)errlen)
        return;
    snprintf(err + l, (size_t)errlen - l, "%s%s", l ? "; " : "", msg);
}

static int rule_file_name(const struct dirent *d)
{
    const char *n = d->d_name;
    size_t len = strlen(n);
    if (len <= 4 || strcmp(n + len - 4, ".lua") != 0)
        return 0;
    for (size_t i = 0; i < len - 4; i++)
        if (!(islower((unsigned char)n[i]) || isdigit((unsigned char)n[i]) || n[i] == '_'))
            return 0;
    return 1;
}

static void compute_version(fw_rules *r)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_DigestInit_ex(c, EVP_sha256(), NULL);
    for (int i = 0; i < r->n; i++) {
        fw_rule *x = r->rules[i];
        EVP_DigestUpdate(c, x->id, strlen(x->id) + 1);
        EVP_DigestUpdate(c, x->shadow ? "s" : "l", 1);
        EVP_DigestUpdate(c, x->sha, sizeof x->sha);
    }
    EVP_DigestFinal_ex(c, md, &mdlen);
    EVP_MD_CTX_free(c);
    for (int i = 0; i < 8; i++)
        snprintf(r->version + 2 * i, 3, "%02x", md[i]);
}

/* Build a new generation; old rules that are carried over are taken out of
 * *old (set to NULL).  Returns problems; -1 when etc/ cannot be read. */
static int load_generation(fw_rules *r, fw_rule **old, int nold, fw_rule ***out, int *nout,
                           char *err, int errlen)
{
    char why[1024];
    why[0] = '\0';
    fw_etc *etc = fw_etc_load(r->etc_dir, why, sizeof why);
    if (!etc) {
        append_err(err, errlen, why);
        if (!r->quiet)
            FW_ERROR("rules.etc_failed", "dir=%s", r->etc_dir);
        return -1;
    }
    struct dirent **ents = NULL;
    int nf = scandir(r->dir, &ents, rule_file_name, alphasort);
    if (nf < 0) {
        snprintf(why, sizeof why, "%s: cannot read the rules directory", r->dir);
        append_err(err, errlen, why);
        fw_etc_unref(etc);
        return -1;
    }
    fw_sbx *sbx = fw_sbx_new(r->mem_budget, r->state_mem_budget, r->instr_budget);
    if (!sbx) {
        append_err(err, errlen, "cannot create a Lua state");
        free(ents);
        fw_etc_unref(etc);
        return -1;
    }
    fw_rule **rules = calloc((size_t)nf + 1, sizeof *rules);
    int n = 0, problems = 0;
    fw_rule_env env = {sbx, etc, r->ledger, r->cfg, r->instr_budget, r->mem_budget, 1};
    for (int i = 0; i < nf; i++) {
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", r->dir, ents[i]->d_name);
        free(ents[i]);
        why[0] = '\0';
        fw_rule *x = fw_rule_load(path, &env, why, sizeof why);
        if (x && r->run_tests) {
            int passed = 0, failed = 0;
            char terr[512] = "";
            int rc = fw_rules_test_file_etc(path, etc, NULL, &passed, &failed, terr, sizeof terr);
            if (rc != 0) {
                if (rc < 0)
                    memcpy(why, terr, sizeof terr);
                else
                    snprintf(why, sizeof why, "%.900s: %d of %d test cases failed", path, failed,
                             passed + failed);
                fw_rule_free(x);
                x = NULL;
            }
        }
        if (!x) {
            problems++;
            append_err(err, errlen, why);
            char q[600];
            if (!r->quiet)
                FW_WARN("rules.load_failed", "file=%s reason=%s", path,
                        fw_log_quote(why, q, sizeof q));
            /* Keep the previous version of this rule, if any. */
            char id[256];
            const char *base = strrchr(path, '/');
            base = base ? base + 1 : path;
            snprintf(id, sizeof id, "%.*s", (int)(strlen(base) - 4), base);
            for (int j = 0; j < nold; j++)
                if (old[j] && strcmp(old[j]->id, id) == 0) {
                    x = old[j];
                    old[j] = NULL;
                    if (!r->quiet)
                        FW_WARN("rules.kept_old", "rule=%s", id);
                }
            if (!x)
                continue;
        }
        x->memo = r->memo;
        x->vcache = r->vcache;
        rules[n++] = x;
    }
    free(ents);
    fw_etc_unref(etc);
    fw_sbx_unref(sbx); /* the rules hold it */
    *out = rules;
    *nout = n;
    return problems;
}

fw_rules *fw_rules_new(const fw_rules_opts *o, char *err, int errlen)
{
    if (err && errlen > 0)
        err[0] = '\0';
    fw_rules *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->dir = strdup(o->dir ? o->dir : "rules");
    r->etc_dir = strdup(o->etc_dir ? o->etc_dir : "etc");
    r->ledger = o->ledger;
    r->cfg = o->cfg;
    r->run_tests = o->run_tests;
    r->quiet = o->quiet;
    r->instr_budget = o->instr_budget > 0 ? o->instr_budget : FW_RULES_DEFAULT_INSTR;
    r->mem_budget = o->mem_budget > 0 ? o->mem_budget : FW_RULES_DEFAULT_MEM;
    r->state_mem_budget =
        o->state_mem_budget > 0 ? o->state_mem_budget : FW_RULES_STATE_MEM_FACTOR * r->mem_budget;
    if (r->state_mem_budget < r->mem_budget)
        r->state_mem_budget = r->mem_budget;
    r->memo = fw_memo_new();
    if (o->ledger && !o->no_history_cache)
        r->vcache = fw_vcache_new(o->ledger); /* NULL: SQL answers */
    int problems = load_generation(r, NULL, 0, &r->rules, &r->n, err, errlen);
    if (problems < 0) {
        fw_rules_free(r);
        return NULL;
    }
    compute_version(r);
    if (!r->quiet)
        FW_INFO("rules.loaded", "dir=%s rules=%d problems=%d version=%s", r->dir, r->n, problems,
                r->version);
    return r;
}

int fw_rules_reload(fw_rules *r, char *err, int errlen)
{
    if (err && errlen > 0)
        err[0] = '\0';
    fw_rule **old = r->rules;
    int nold = r->n;
    char before[17];
    memcpy(before, r->version, sizeof before);
    fw_rule **rules = NULL;
    int n = 0;
    int problems = load_generation(r, old, nold, &rules, &n, err, errlen);
    if (problems < 0)
        return 1; /* nothing changed */
    for (int i = 0; i < nold; i++)
        fw_rule_free(old[i]); /* NULL where carried over */
    free(old);
    r->rules = rules;
    r->n = n;
    compute_version(r);
    if (!r->quiet)
        FW_INFO("rules.reloaded", "rules=%d problems=%d version=%s previous=%s", r->n, problems,
                r->version, before);
    return problems;
}

void fw_rules_free(fw_rules *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n; i++)
        fw_rule_free(r->rules[i]);
    free(r->rules);
    fw_memo_free(r->memo);
    fw_vcache_free(r->vcache);
    free(r->dir);
    free(r->etc_dir);
    free(r);
}

const char *fw_rules_version(const fw_rules *r)
{
    return r->version;
}

int fw_rules_count(const fw_rules *r)
{
    return r->n;
}

const char *fw_rules_id(const fw_rules *r, int i)
{
    return i >= 0 && i < r->n ? r->rules[i]->id : NULL;
}

int fw_rules_eval(fw_rules *r, const fw_event *ev, fw_hit_list *hits)
{
    int added = 0;
    fw_payroll_info pi = {0, 0};
    /* The ledger may have changed since the last evaluation. */
    fw_memo_clear(r->memo);
    fw_rule_eval_begin();
    if (ev->kind == FW_KIND_PAYROLL) {
        int need = 0;
        for (int i = 0; i < r->n; i++)
            need |= (r->rules[i]->on >> FW_ON_PAYROLL_RUN) & 1;
        if (need && fw_payroll_info_get(r->ledger, ev, &pi) != 0)
            FW_WARN("rules.run_progress_failed", "event=%s", ev->id ? ev->id : "");
    }
    for (int i = 0; i < r->n; i++)
        added += fw_rule_eval(r->rules[i], ev, &pi, hits);
    return added;
}

int fw_rules_tick(fw_rules *r, int64_t now, fw_hit_list *hits)
{
    int added = 0;
    fw_memo_clear(r->memo);
    fw_rule_eval_begin();
    for (int i = 0; i < r->n; i++)
        added += fw_rule_tick(r->rules[i], now, hits);
    return added;
}

int fw_rules_record_version(const fw_rules *r, fw_store *st, int64_t now)
{
    json_t *list = json_array();
    for (int i = 0; i < r->n; i++) {
        char hex[65];
        for (int k = 0; k < 32; k++)
            snprintf(hex + 2 * k, 3, "%02x", r->rules[i]->sha[k]);
        json_array_append_new(list,
                              json_pack("{s:s, s:s, s:s}", "id", r->rules[i]->id, "sha256", hex,
                                        "mode", r->rules[i]->shadow ? "shadow" : "live"));
    }
    char *text = json_dumps(list, JSON_COMPACT);
    json_decref(list);
    sqlite3_stmt *s = fw_store_stmt(
        st, "INSERT OR IGNORE INTO rule_versions(version, first_loaded, rules) VALUES (?, ?, ?)");
    sqlite3_bind_text(s, 1, r->version, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 2, now);
    sqlite3_bind_text(s, 3, text ? text : "[]", -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : -1;
    fw_store_done(s);
    free(text);
    return rc;
}
