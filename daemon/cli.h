/*
 * cli.h - the `fundwatch` command line: option parsing shared by every
 * subcommand, and the subcommands that belong to the daemon itself.
 *
 * Every subcommand accepts `-c FILE` (default etc/fundwatch.conf when it
 * exists) and `-o section.key=value` (repeatable) anywhere before its own
 * arguments; fw_cli_parse_common() strips them and loads the configuration.
 * Exit status: 0 success, 1 a failed check, 2 bad usage (contract §7).
 */
#ifndef FW_CLI_H
#define FW_CLI_H

#include "daemon/config.h"

typedef struct fw_cli {
    fw_config *cfg;
    int argc;    /* remaining arguments (subcommand's own) */
    char **argv; /* owned array of borrowed strings */
} fw_cli;

/* Parse -c/-o out of argv (argv[0] is the first argument after the
 * subcommand name).  Returns 0, or 2 with a message on stderr. */
int fw_cli_parse_common(int argc, char **argv, fw_cli *out);
void fw_cli_free(fw_cli *c);

/* `fundwatch publish [-c FILE] INPUT.jsonl`: publish each line's
 * {"subject","data"} to JetStream (creating the stream when absent) and wait
 * for the acks; prints a summary. */
int fw_cli_publish(fw_cli *c);
/* `fundwatch check [-c FILE] [--timeout MS] BODY.json|-`: send a voucher
 * `created` body to the running daemon's pre-payment check
 * (fundwatch.check, contract §3) and print the reply.  Exit 0 for allow or
 * warn, 3 for block (so a script can stop the payment), 1 when there is no
 * answer or the reply is an error, 2 for bad usage. */
int fw_cli_check(fw_cli *c);
/* `fundwatch replay [-c FILE] [--rules DIR] [--compare DIR2] INPUT.jsonl` */
int fw_cli_replay(fw_cli *c);
/* `fundwatch report [-c FILE]`: a supervisor's summary of the store. */
int fw_cli_report(fw_cli *c);

#endif
