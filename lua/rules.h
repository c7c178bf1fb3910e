/*
 * rules.h - the Lua 5.4 rule engine: load, sandbox, evaluate, test, reload.
 *
 * A rule is one file rules/<id>.lua returning a table (id, name, level, on,
 * params, mode, check, description; see lua/README.md).  The rules of one
 * generation (one load or reload) share one sandboxed lua_State: each rule
 * has its own environment and ctx, shared values (libraries, the event,
 * ctx.list sets) are read-only, and no rule can reach another's globals or
 * upvalues.  Budgets are per call: instructions, and the growth of the
 * state's memory while the call runs (plus a cap on the whole state).  A
 * rule that errors or exceeds a budget produces a "rule_error" hit (orange,
 * subject {rule, <id>}) and the other rules carry on.
 *
 * Usage from the pipeline (one thread per fw_rules: the loop, or the check
 * thread with an instance of its own, daemon/precheck.h):
 *
 *   fw_rules_opts o = {.dir = "rules", .etc_dir = "etc", .ledger = lg, .cfg = cfg};
 *   fw_rules *r = fw_rules_new(&o, err, sizeof err);
 *   fw_rules_eval(r, &ev, &hits);      // before fw_ledger_apply: rules see pre-state
 *   fw_rules_tick(r, now, &hits);      // every rules.tick seconds
 *   fw_rules_reload(r, err, sizeof err); // SIGHUP / directory change
 *   fw_rules_version(r);               // the ruleset id stored with alerts
 *
 * Rule test cases (rules/<id>.test.lua) are run by fw_rules_test_file(), by
 * `fundwatch rules test` (fw_rules_cli_main) and, with run_tests, by reload
 * before a changed rule is accepted.
 *
 * Metrics per rule: fundwatch_rule_evaluations_total{rule=}, _hits_total,
 * _errors_total, _seconds_total.
 */
#ifndef FW_RULES_H
#define FW_RULES_H

#include <stdint.h>
#include <stdio.h>

#include "daemon/config.h"
#include "daemon/event.h"
#include "daemon/hit.h"
#include "daemon/ledger.h"
#include "daemon/store.h"

typedef struct fw_rules fw_rules;

typedef struct fw_rules_opts {
    const char *dir;         /* rules directory */
    const char *etc_dir;     /* dir holding calendar/ and lists/ (default "etc") */
    fw_ledger *ledger;       /* reads for ctx (daemon/ledger.h) */
    const fw_config *cfg;    /* [rule.<id>] param overrides; may be NULL */
    int run_tests;           /* run each rule's .test.lua before accepting it */
    int64_t instr_budget;    /* per call; default 1,000,000 instructions */
    size_t mem_budget;       /* per call: growth of the state's bytes; default 32 MiB */
    size_t state_mem_budget; /* the shared state's bytes; default 4 x mem_budget */
    int no_history_cache;    /* answer ctx.history by SQL only (no daemon/voucher_cache) */
    int quiet; /* do not log load/reload outcomes: a second instance of a rule set that is
                  logged elsewhere (the check thread's, daemon/precheck.h) */
} fw_rules_opts;

#define FW_RULES_DEFAULT_INSTR 1000000
#define FW_RULES_DEFAULT_MEM ((size_t)32 << 20)
#define FW_RULES_STATE_MEM_FACTOR 4

/* Load every rules/<id>.lua of o->dir.  A broken file is logged, named in
 * err (problems joined by "; "), and skipped.  NULL only when the directory
 * cannot be read or etc/ data is malformed. */
fw_rules *fw_rules_new(const fw_rules_opts *o, char *err, int errlen);
/* Compile a new generation in fresh states (re-reading etc/), run tests when
 * run_tests, swap.  A file that fails keeps its rule's previous version.
 * Returns the number of problems (0 = all files accepted). */
int fw_rules_reload(fw_rules *r, char *err, int errlen);
void fw_rules_free(fw_rules *r);

/* Hex content hash (16 chars) of the active rule set. */
const char *fw_rules_version(const fw_rules *r);
int fw_rules_count(const fw_rules *r);
/* Id of the i-th active rule (sorted), or NULL. */
const char *fw_rules_id(const fw_rules *r, int i);

/* Evaluate every rule whose `on` names ev->type (payroll: "payroll.run" once
 * then "payroll.line" per line).  Hits are appended.  Returns the number of
 * hits appended. */
int fw_rules_eval(fw_rules *r, const fw_event *ev, fw_hit_list *hits);
/* Evaluate the `tick` rules at `now` (unix seconds). */
int fw_rules_tick(fw_rules *r, int64_t now, fw_hit_list *hits);

/* Run the test cases of one rule file (<dir>/<id>.test.lua next to it), each
 * in a fresh in-memory ledger, printing one line per case to `out` (may be
 * NULL).  Adds to *passed / *failed.  Returns 0 when every case passed (a
 * rule without a test file passes with no cases), 1 when a case failed, -1
 * when the rule or its test file does not load (message in err). */
int fw_rules_test_file(const char *rule_path, const char *etc_dir, FILE *out, int *passed,
                       int *failed, char *err, int errlen);

/* `fundwatch rules check|test [DIR]`: argv[0] is "check" or "test".  Exit
 * codes 0 ok, 1 failure, 2 usage.  Errors name the file and line. */
int fw_rules_cli_main(int argc, char **argv, const fw_config *cfg);

/* Remember the active rule-set version in the store (table rule_versions,
 * schema fw_rules_schema); a no-op when it is already there. 0 or -1. */
int fw_rules_record_version(const fw_rules *r, fw_store *st, int64_t now);

#endif
