/*
 * fuzz_decode.c - libFuzzer target for the inbound decoders.
 *
 * Every input is decoded as a body on each of the five subjects and as a
 * pre-payment check request.  Beyond "no crash, no leak, no UB" (the
 * sanitizers' job), a successful decode must honour event.h's promises,
 * which are checked here and abort on violation:
 *   - ev->type is set, ev->unit_code is the subject's unit, ev->id is set
 *     (except for a check), ev->body is an object;
 *   - every money field of the kind is a JSON integer of fen within
 *     +-FW_MONEY_MAX_FEN.
 * The raw bytes are also fed to fw_money_parse / fw_time_parse, whose
 * results must survive a format -> parse round trip.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/event.h"
#include "daemon/money.h"
#include "daemon/timeutil.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

static void check_fen(const json_t *v)
{
    CHECK(json_is_integer(v));
    json_int_t fen = json_integer_value(v);
    CHECK(fen >= -FW_MONEY_MAX_FEN && fen <= FW_MONEY_MAX_FEN);
}

static void check_items(const json_t *items)
{
    size_t i;
    const json_t *item;
    CHECK(json_is_array(items));
    json_array_foreach(items, i, item) check_fen(json_object_get(item, "amount"));
}

static void check_decoded(const fw_event *ev, int is_check)
{
    const json_t *body = ev->body;
    CHECK(json_is_object(body));
    CHECK(ev->type[0] != '\0');
    CHECK(ev->unit_code != NULL);
    CHECK(is_check || ev->id != NULL);
    if (!is_check)
        CHECK(strcmp(ev->unit_code, "101001") == 0);
    switch (ev->kind) {
    case FW_KIND_VOUCHER:
        CHECK(strncmp(ev->type, "voucher.", 8) == 0);
        if (json_object_get(body, "amount") || strcmp(ev->type, "voucher.created") == 0)
            check_fen(json_object_get(body, "amount"));
        break;
    case FW_KIND_INDICATOR:
    case FW_KIND_REIMBURSE:
    case FW_KIND_SUBSIDY:
        check_fen(json_object_get(body, "amount"));
        CHECK(json_integer_value(json_object_get(body, "amount")) != 0);
        break;
    case FW_KIND_PAYROLL: {
        size_t i;
        const json_t *line;
        const json_t *lines = json_object_get(body, "lines");
        CHECK(json_array_size(lines) > 0);
        json_array_foreach(lines, i, line)
        {
            check_fen(json_object_get(line, "gross"));
            check_fen(json_object_get(line, "net"));
            check_items(json_object_get(line, "earnings"));
            check_items(json_object_get(line, "deductions"));
            (void)fw_payroll_line_arith_ok(line);
        }
        break;
    }
    default:
        abort();
    }
    /* The decoded body must serialise (what the rules and the store do). */
    char *s = json_dumps(body, JSON_COMPACT);
    CHECK(s != NULL);
    free(s);
}

static void fuzz_scalars(const uint8_t *data, size_t size)
{
    int64_t fen = 0, back = 0, epoch = 0;
    char buf[48];
    if (fw_money_parse((const char *)data, size, 1, &fen, NULL) == 0) {
        CHECK(fen >= -FW_MONEY_MAX_FEN && fen <= FW_MONEY_MAX_FEN);
        CHECK(fw_money_parse(fw_money_format(fen, buf, sizeof buf), strlen(buf), 1, &back, NULL) ==
              0);
        CHECK(back == fen);
        fw_money_format_grouped(fen, buf, sizeof buf);
    }
    if (size < 64) {
        char s[64];
        memcpy(s, data, size);
        s[size] = '\0';
        /* Away from the ends of years 0000..9999, where the business zone
         * could carry the formatted year out of four digits. */
        if (fw_time_parse(s, &epoch, NULL) == 0 && epoch > fw_days_from_civil(1, 1, 1) * 86400 &&
            epoch < fw_days_from_civil(9999, 1, 1) * 86400) {
            fw_time_format(epoch, buf, sizeof buf);
            CHECK(fw_time_parse(buf, &back, NULL) == 0 && back == epoch);
        }
        fw_date_parse(s, NULL, NULL, NULL, NULL);
        fw_period_parse(s, NULL, NULL, NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const subjects[] = {
        "fiscal.voucher.101001",   "fiscal.indicator.101001", "fiscal.payroll.101001",
        "fiscal.reimburse.101001", "fiscal.subsidy.101001",
    };
    fw_event ev;
    fw_decode_error err;

    for (size_t i = 0; i < sizeof subjects / sizeof subjects[0]; i++) {
        if (fw_event_decode(subjects[i], (const char *)data, size, &ev, &err) == 0) {
            CHECK(ev.kind == (fw_kind)i);
            check_decoded(&ev, 0);
            fw_event_clear(&ev);
        } else {
            CHECK(ev.body == NULL && err.field[0] != '\0' && err.reason[0] != '\0');
        }
    }
    if (fw_event_decode_check((const char *)data, size, &ev, &err) == 0) {
        CHECK(ev.kind == FW_KIND_VOUCHER);
        check_decoded(&ev, 1);
        fw_event_clear(&ev);
    } else {
        CHECK(ev.body == NULL && err.field[0] != '\0');
    }
    fuzz_scalars(data, size);
    return 0;
}
