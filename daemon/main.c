/*
 * main.c - the `fundwatch` binary: one subcommand per job.
 *
 *   run        the daemon (contract §7)
 *   rules      check | test  [DIR]
 *   replay     offline run of a JSON Lines file through a fresh ledger
 *   ledger     show INDICATOR | trace VOUCHER_NO
 *   alerts     list | show | transition
 *   silences   add | list | expire
 *   audit      verify
 *   sms        list
 *   publish    push a JSON Lines file into JetStream (demo, benchmarks)
 *   check      ask the running daemon's pre-payment check about a voucher
 *   report     a supervisor's summary of what is in the store
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alerts/alerts.h"
#include "daemon/app.h"
#include "daemon/cli.h"
#include "daemon/ledger.h"
#include "daemon/log.h"
#include "daemon/schema.h"
#include "daemon/store.h"
#include "lua/rules.h"
#include "sms/sms.h"

static void usage(FILE *f)
{
    fputs("usage: fundwatch COMMAND [-c FILE] [-o section.key=value ...] [ARGS]\n"
          "\n"
          "  run                               run the daemon in the foreground\n"
          "  rules check [DIR]                 load and validate every rule\n"
          "  rules test [DIR]                  run the rules' test cases\n"
          "  replay [--rules DIR] [--compare DIR2] INPUT.jsonl\n"
          "                                    offline: feed events, print alerts\n"
          "  ledger show INDICATOR_ID [--json] an indicator, its balances and entries\n"
          "  ledger trace VOUCHER_NO [--json]  voucher -> indicator -> funding documents\n"
          "  alerts list|show|transition ...   read and act on alerts\n"
          "  silences add|list|expire ...      silence notifications\n"
          "  audit verify                      check the audit hash chain\n"
          "  sms list [--status --kind --phone-tail]\n"
          "  publish INPUT.jsonl               publish events to JetStream\n"
          "  check BODY.json|-                 pre-payment check of a voucher (exit 3: block)\n"
          "  report                            summary: alerts, SMS, balances\n",
          f);
}

/* Open the store and the modules a CLI subcommand works on.  The store is
 * opened read-write (migrations applied) so that `alerts transition` works
 * against a stopped daemon's database, and beside a running one (WAL). */
typedef struct cli_ctx {
    fw_store *store;
    fw_ledger *ledger;
    fw_alerts *alerts;
    fw_sms *sms;
} cli_ctx;

static int open_ctx(fw_cli *c, cli_ctx *x, int want_alerts, int want_sms)
{
    char err[1024];
    memset(x, 0, sizeof *x);
    x->store = fw_store_open(fw_config_get(c->cfg, "store.path"), fw_migrations, fw_nmigrations, 0,
                             FW_SYNC_FULL, err, sizeof err);
    if (!x->store)
        goto fail;
    x->ledger = fw_ledger_new(x->store);
    if (want_alerts && !(x->alerts = fw_alerts_new(x->store, c->cfg, err, sizeof err)))
        goto fail;
    if (want_sms && !(x->sms = fw_sms_new(x->store, c->cfg, NULL, err, sizeof err)))
        goto fail;
    return 0;
fail:
    fprintf(stderr, "fundwatch: %s\n", err);
    return -1;
}

static void close_ctx(cli_ctx *x)
{
    if (x->sms)
        fw_sms_free(x->sms);
    if (x->alerts)
        fw_alerts_free(x->alerts);
    if (x->ledger)
        fw_ledger_free(x->ledger);
    if (x->store)
        fw_store_close(x->store);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        puts("fundwatch 0.1.0");
        return 0;
    }
    fw_cli c;
    int rc = fw_cli_parse_common(argc - 2, argv + 2, &c);
    if (rc != 0)
        return rc;
    cli_ctx x;
    if (strcmp(cmd, "run") == 0) {
        rc = c.argc ? (fprintf(stderr, "fundwatch run: unexpected argument %s\n", c.argv[0]), 2)
                    : fw_app_run(c.cfg);
    } else if (strcmp(cmd, "rules") == 0) {
        rc = c.argc < 1 ? (usage(stderr), 2) : fw_rules_cli_main(c.argc, c.argv, c.cfg);
    } else if (strcmp(cmd, "replay") == 0) {
        rc = fw_cli_replay(&c);
    } else if (strcmp(cmd, "publish") == 0) {
        rc = fw_cli_publish(&c);
    } else if (strcmp(cmd, "check") == 0) {
        rc = fw_cli_check(&c);
    } else if (strcmp(cmd, "report") == 0) {
        rc = fw_cli_report(&c);
    } else if (strcmp(cmd, "ledger") == 0) {
        if (c.argc < 1) {
            usage(stderr);
            rc = 2;
        } else if ((rc = open_ctx(&c, &x, 0, 0)) == 0) {
            rc = fw_ledger_cli_main(x.ledger, c.argc, c.argv);
            close_ctx(&x);
        } else {
            rc = 1;
        }
    } else if (strcmp(cmd, "alerts") == 0 || strcmp(cmd, "silences") == 0 ||
               strcmp(cmd, "audit") == 0) {
        /* fw_alerts_cli_main sees argv[0] = the command name. */
        char **av = calloc((size_t)c.argc + 2, sizeof *av);
        av[0] = (char *)cmd;
        for (int i = 0; i < c.argc; i++)
            av[i + 1] = c.argv[i];
        if (open_ctx(&c, &x, 1, 0) == 0) {
            rc = fw_alerts_cli_main(x.alerts, c.argc + 1, av);
            close_ctx(&x);
        } else {
            rc = 1;
        }
        free(av);
    } else if (strcmp(cmd, "sms") == 0) {
        char **av = calloc((size_t)c.argc + 2, sizeof *av);
        av[0] = (char *)cmd;
        for (int i = 0; i < c.argc; i++)
            av[i + 1] = c.argv[i];
        if (open_ctx(&c, &x, 0, 1) == 0) {
            rc = fw_sms_cli_main(x.sms, c.argc + 1, av);
            close_ctx(&x);
        } else {
            rc = 1;
        }
        free(av);
    } else {
        fprintf(stderr, "fundwatch: unknown command %s\n", cmd);
        usage(stderr);
        rc = 2;
    }
    fw_cli_free(&c);
    return rc;
}
