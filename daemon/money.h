/*
 * money.h - exact money: yuan strings on the wire, int64 fen inside.
 *
 * Contract §1: money is a JSON string of yuan with at most two decimals
 * ("12345.67", "0.5", "100").  It is parsed digit by digit into an int64
 * count of fen, never through a double.  Rejected: empty, a leading '+',
 * exponents, more than two decimals, a bare "." or trailing ".", spaces,
 * anything but ASCII digits, and values over 10^13 yuan.  A leading '-' is
 * accepted only when the caller allows negatives.
 */
#ifndef FW_MONEY_H
#define FW_MONEY_H

#include <stddef.h>
#include <stdint.h>

#define FW_MONEY_MAX_YUAN 10000000000000LL /* 10^13 yuan */
#define FW_MONEY_MAX_FEN (FW_MONEY_MAX_YUAN * 100)

/* Parse s[0..len) into *fen.  Returns 0, or -1 with *reason set to a
 * static human-readable reason ("more than two decimals", ...). */
int fw_money_parse(const char *s, size_t len, int allow_negative, int64_t *fen,
                   const char **reason);

/* "12345.67" (no grouping; "-0.50" for negatives).  buf >= 32. */
char *fw_money_format(int64_t fen, char *buf, size_t buflen);
/* "12,345.67" with thousands separators (for SMS).  buf >= 40. */
char *fw_money_format_grouped(int64_t fen, char *buf, size_t buflen);

#endif
