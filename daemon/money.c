/*
 * money.c - exact money: yuan strings <-> int64 fen (contract §1).
 *
 * The parser walks the string once, digit by digit, and never touches a
 * double.  Accepted grammar (after an optional '-' when the caller allows
 * negatives):
 *
 *     digits [ '.' digit [ digit ] ]
 *
 * Decisions where the contract is silent:
 * - Leading zeros ("007", "00.50") are accepted: they are unambiguous.
 * - A leading '.' (".5") and a trailing '.' ("5.") are rejected: upstream
 *   systems format amounts with a whole part, and a dangling point more
 *   likely signals a truncated or hand-edited value than a real amount.
 * - "-0" and "-0.00" are accepted (when negatives are allowed) and are 0.
 * - Exactly 10^13 yuan is accepted; anything greater is rejected ("over"
 *   10^13 yuan is the contract's wording).
 */
#include "daemon/money.h"

#include <stdio.h>
#include <string.h>

static int fail(const char **reason, const char *why)
{
    if (reason)
        *reason = why;
    return -1;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

int fw_money_parse(const char *s, size_t len, int allow_negative, int64_t *fen, const char **reason)
{
    size_t i = 0;
    int negative = 0;
    /* Accumulated in fen as uint64; bounded by FW_MONEY_MAX_FEN long before
     * it could wrap, because we stop as soon as the bound is passed. */
    uint64_t whole = 0;
    int64_t cents = 0;

    if (s == NULL || len == 0)
        return fail(reason, "empty");
    if (s[0] == '+')
        return fail(reason, "leading '+' not allowed");
    if (s[0] == '-') {
        if (!allow_negative)
            return fail(reason, "must not be negative");
        negative = 1;
        i = 1;
        if (i == len)
            return fail(reason, "no digits");
    }
    if (s[i] == '.')
        return fail(reason, "no digits before '.'");

    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        whole = whole * 10 + (uint64_t)(s[i] - '0');
        if (whole > (uint64_t)FW_MONEY_MAX_YUAN)
            return fail(reason, "over 10^13 yuan");
    }
    if (i < len && s[i] == '.') {
        i++;
        if (i == len)
            return fail(reason, "trailing '.' not allowed");
        int ndec = 0;
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
            if (++ndec > 2)
                return fail(reason, "more than two decimals");
            cents = cents * 10 + (s[i] - '0');
        }
        if (ndec == 0)
            return fail(reason, "not a decimal number");
        if (ndec == 1)
            cents *= 10;
    }
    if (i < len) {
        char c = s[i];
        if (c == 'e' || c == 'E')
            return fail(reason, "exponent not allowed");
        if (is_space(c))
            return fail(reason, "whitespace not allowed");
        if (c == '.')
            return fail(reason, "not a decimal number");
        return fail(reason, "not a decimal number");
    }

    int64_t v = (int64_t)whole * 100 + cents;
    if (v > FW_MONEY_MAX_FEN)
        return fail(reason, "over 10^13 yuan");
    if (fen)
        *fen = negative ? -v : v;
    return 0;
}

/* Magnitude of fen as unsigned, safe for INT64_MIN. */
static uint64_t magnitude(int64_t fen)
{
    return fen < 0 ? (uint64_t)0 - (uint64_t)fen : (uint64_t)fen;
}

char *fw_money_format(int64_t fen, char *buf, size_t buflen)
{
    uint64_t m = magnitude(fen);
    snprintf(buf, buflen, "%s%llu.%02llu", fen < 0 ? "-" : "", (unsigned long long)(m / 100),
             (unsigned long long)(m % 100));
    return buf;
}

char *fw_money_format_grouped(int64_t fen, char *buf, size_t buflen)
{
    uint64_t m = magnitude(fen);
    char digits[24];
    char out[48];
    size_t o = 0;

    int nd = snprintf(digits, sizeof digits, "%llu", (unsigned long long)(m / 100));
    if (fen < 0)
        out[o++] = '-';
    for (int k = 0; k < nd; k++) {
        if (k > 0 && (nd - k) % 3 == 0)
            out[o++] = ',';
        out[o++] = digits[k];
    }
    snprintf(out + o, sizeof out - o, ".%02llu", (unsigned long long)(m % 100));
    snprintf(buf, buflen, "%s", out);
    return buf;
}
