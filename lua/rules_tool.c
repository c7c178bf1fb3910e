/* rules_tool.c - `fundwatch-rules check|test [DIR]`: the same as
 * `fundwatch rules check|test`, linked against fw_lua alone so rule authors
 * can run their cases without building the daemon. */
#include "lua/rules.h"

int main(int argc, char **argv)
{
    return fw_rules_cli_main(argc - 1, argv + 1, NULL);
}
