/*
 * test_ledger_ops.c - every ledger operation and every refusal, the views
 * and the `ledger show|trace` CLI, on real decoded events.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <unistd.h>

#include "test_ledger_util.h"

typedef struct fixture {
    fw_store *st;
    fw_ledger *l;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->st = lt_open(NULL);
    f->l = fw_ledger_new(f->st);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    fw_ledger_free(f->l);
    fw_store_close(f->st);
    free(f);
    return 0;
}

static int64_t count_refusals(fixture *f, const char *ind)
{
    return lt_sql_int(f->st, "SELECT count(*) FROM refusals WHERE indicator_id = ?1", ind);
}

static void test_allocate_creates_then_adds(void **state)
{
    fixture *f = *state;
    fw_ledger_result r;
    assert_int_equal(
        lt_allocate(f->l, "e1", "101001", "IND-A", 50000000, "[\"sangong\"]", LT_T0, &r),
        FW_LEDGER_APPLIED);
    lt_expect_indicator(f->l, "IND-A", 50000000, 0, 0);
    assert_int_equal(
        lt_allocate(f->l, "e2", "101001", "IND-A", 1000, "[\"sangong\"]", LT_T0 + 1, &r),
        FW_LEDGER_APPLIED);
    lt_expect_indicator(f->l, "IND-A", 50001000, 0, 0);
    /* Without flags in the add: the stored flags stay. */
    assert_int_equal(lt_allocate(f->l, "e3", "101001", "IND-A", 1, NULL, LT_T0 + 2, &r),
                     FW_LEDGER_APPLIED);
    fw_indicator ind;
    assert_int_equal(fw_ledger_get_indicator(f->l, "IND-A", &ind), 1);
    assert_int_equal(ind.flags, FW_FLAG_SANGONG);
    assert_string_equal(ind.unit_code, "101001");
    assert_int_equal(ind.year, 2024);
    assert_string_equal(ind.fund_source, "一般公共预算");
    assert_int_equal(ind.allocated, 50001001);
    assert_int_equal(
        lt_sql_int(f->st, "SELECT count(*) FROM ledger_entries WHERE kind = ?1", "allocate"), 3);
    int64_t a = 0;
    assert_int_equal(fw_ledger_allocated_by_flag(f->l, "101001", 2024, FW_FLAG_SANGONG, &a), 0);
    assert_int_equal(a, 50001001);
    assert_int_equal(fw_ledger_allocated_by_flag(f->l, "101001", 2024, FW_FLAG_SALARY, &a), 0);
    assert_int_equal(a, 0);
    assert_int_equal(fw_ledger_allocated_by_flag(f->l, "101001", 2025, FW_FLAG_SANGONG, &a), 0);
    assert_int_equal(a, 0);
}

static void test_allocate_mismatch_refused(void **state)
{
    fixture *f = *state;
    fw_ledger_result r;
    lt_allocate(f->l, "e1", "101001", "IND-A", 100000, "[\"salary\"]", LT_T0, NULL);
    /* Different econ_class on an add: refused, nothing changes. */
    fw_event ev;
    lt_decode(&ev, "fiscal.indicator.101001",
              "{\"id\":\"e2\",\"op\":\"allocate\",\"occurred_at\":\"2024-06-03T10:15:00+08:00\","
              "\"doc_no\":\"D2\",\"indicator_id\":\"IND-A\",\"year\":2024,\"unit_code\":\"101001\","
              "\"func_class\":\"2050201\",\"econ_class\":\"30202\",\"amount\":\"5.00\"}");
    assert_int_equal(lt_apply_ev(f->l, &ev, &r), FW_LEDGER_REFUSED);
    assert_non_null(strstr(r.reason, "econ_class"));
    lt_expect_indicator(f->l, "IND-A", 100000, 0, 0);
    /* Different flags: refused too. */
    assert_int_equal(lt_allocate(f->l, "e3", "101001", "IND-A", 500, "[\"sangong\"]", LT_T0, &r),
                     FW_LEDGER_REFUSED);
    assert_non_null(strstr(r.reason, "flags"));
    /* Another unit's allocate to the same id. */
    assert_int_equal(lt_allocate(f->l, "e4", "101002", "IND-A", 500, NULL, LT_T0, &r),
                     FW_LEDGER_REFUSED);
    assert_non_null(strstr(r.reason, "unit_code"));
    lt_expect_indicator(f->l, "IND-A", 100000, 0, 0);
    assert_int_equal(count_refusals(f, "IND-A"), 3);
    assert_int_equal(
        lt_sql_int(f->st, "SELECT count(*) FROM ledger_entries WHERE kind = ?1", "refused"), 3);
    int64_t a = 0;
    fw_ledger_allocated_by_flag(f->l, "101001", 2024, FW_FLAG_SALARY, &a);
    assert_int_equal(a, 100000);
}

static void test_adjust_up_down_and_refusals(void **state)
{
    fixture *f = *state;
    fw_ledger_result r;
    lt_allocate(f->l, "e1", "101001", "IND-A", 100000, "[\"direct\"]", LT_T0, NULL);
    assert_int_equal(lt_adjust(f->l, "e2", "101001", "IND-A", 50000, LT_T0, &r), FW_LEDGER_APPLIED);
    lt_expect_indicator(f->l, "IND-A", 150000, 0, 0);
    /* Freeze 100000 and pay 30000 of it, leaving 20000 free. */
    lt_voucher v = {
        .unit = "101001", .no = "V1", .indicator = "IND-A", .amount = 100000, .at = LT_T0};
    assert_int_equal(lt_created(f->l, "e3", &v, &r), FW_LEDGER_APPLIED);
    lt_voucher v2 = {
        .unit = "101001", .no = "V2", .indicator = "IND-A", .amount = 30000, .at = LT_T0};
    lt_created(f->l, "e4", &v2, NULL);
    lt_vevent(f->l, "e5", "101001", "V2", "signed", LT_T0 + 10, NULL);
    lt_vevent(f->l, "e6", "101001", "V2", "sent", LT_T0 + 20, NULL);
    lt_vevent(f->l, "e7", "101001", "V2", "paid", LT_T0 + 30, NULL);
    lt_expect_indicator(f->l, "IND-A", 150000, 100000, 30000);
    /* A reduction of exactly the free part is fine. */
    assert_int_equal(lt_adjust(f->l, "e8", "101001", "IND-A", -15000, LT_T0, &r),
                     FW_LEDGER_APPLIED);
    lt_expect_indicator(f->l, "IND-A", 135000, 100000, 30000);
    /* One fen more than is free: refused, nothing changes, the refusal is kept. */
    assert_int_equal(lt_adjust(f->l, "e9", "101001", "IND-A", -5001, LT_T0, &r), FW_LEDGER_REFUSED);
    assert_non_null(strstr(r.reason, "IND-A"));
    lt_expect_indicator(f->l, "IND-A", 135000, 100000, 30000);
    assert_int_equal(count_refusals(f, "IND-A"), 1);
    assert_int_equal(lt_sql_int(f->st, "SELECT amount FROM refusals WHERE event_id = ?1", "e9"),
                     -5001);
    assert_int_equal(lt_adjust(f->l, "e10", "101001", "IND-A", -5000, LT_T0, &r),
                     FW_LEDGER_APPLIED);
    lt_expect_indicator(f->l, "IND-A", 130000, 100000, 30000);
    /* Unknown indicator; another unit's indicator. */
    assert_int_equal(lt_adjust(f->l, "e11", "101001", "NOPE", 100, LT_T0, &r), FW_LEDGER_REFUSED);
    assert_int_equal(count_refusals(f, "NOPE"), 1);
    assert_int_equal(lt_adjust(f->l, "e12", "101002", "IND-A", 100, LT_T0, &r), FW_LEDGER_REFUSED);
    lt_expect_indicator(f->l, "IND-A", 130000, 100000, 30000);
    int64_t a = 0;
    fw_ledger_allocated_by_flag(f->l, "101001", 2024, FW_FLAG_DIRECT, &a);
    assert_int_equal(a, 130000);
}

static void test_transfer_pair_and_refusals(void **state)
{
    fixture *f = *state;
    fw_ledger_result r;
    lt_allocate(f->l, "e1", "101001", "SRC", 100000, "[\"salary\"]", LT_T0, NULL);
    lt_allocate(f->l, "e2", "101001", "DST", 1000, NULL, LT_T0, NULL);
    assert_int_equal(lt_transfer(f->l, "e3", "101001", "SRC", "DST", 40000, LT_T0 + 5, &r),
                     FW_LEDGER_APPLIED);
    lt_expect_indicator(f->l, "SRC", 60000, 0, 0);
    lt_expect_indicator(f->l, "DST", 41000, 0, 0);
    /* One atomic pair: two entries sharing the pair id, naming each other. */
    assert_int_equal(
        lt_sql_int(f->st, "SELECT count(*) FROM ledger_entries WHERE pair_id = ?1", "e3"), 2);
    assert_int_equal(lt_sql_int(f->st,
                                "SELECT amount FROM ledger_entries WHERE kind = 'transfer_out'"
                                " AND counterparty = ?1",
                                "DST"),
                     -40000);
    assert_int_equal(lt_sql_int(f->st,
                                "SELECT d_allocated FROM ledger_entries WHERE kind = 'transfer_in'"
                                " AND counterparty = ?1",
                                "SRC"),
                     40000);
    int64_t a = 0;
    fw_ledger_allocated_by_flag(f->l, "101001", 2024, FW_FLAG_SALARY, &a);
    assert_int_equal(a, 60000);

    /* Freeze most of SRC; a transfer past frozen+paid names the source. */
    lt_voucher v = {.unit = "101001", .no = "V1", .indicator = "SRC", .amount = 50000, .at = LT_T0};
    lt_created(f->l, "e4", &v, NULL);
    assert_int_equal(lt_transfer(f->l, "e5", "101001", "SRC", "DST", 10001, LT_T0 + 6, &r),
                     FW_LEDGER_REFUSED);
    assert_non_null(strstr(r.reason, "SRC"));
    assert_int_equal(count_refusals(f, "SRC"), 1);
    assert_int_equal(count_refusals(f, "DST"), 0);
    lt_expect_indicator(f->l, "SRC", 60000, 50000, 0);
    lt_expect_indicator(f->l, "DST", 41000, 0, 0);
    assert_int_equal(lt_transfer(f->l, "e6", "101001", "SRC", "DST", 10000, LT_T0 + 7, &r),
                     FW_LEDGER_APPLIED);
    lt_expect_indicator(f->l, "SRC", 50000, 50000, 0);
    /* Unknown source, unknown destination, same indicator. */
    assert_int_equal(lt_transfer(f->l, "e7", "101001", "GHOST", "DST", 1, LT_T0, &r),
                     FW_LEDGER_REFUSED);
    assert_int_equal(count_refusals(f, "GHOST"), 1);
    assert_int_equal(lt_transfer(f->l, "e8", "101001", "DST", "GHOST2", 1, LT_T0, &r),
                     FW_LEDGER_REFUSED);
    assert_int_equal(count_refusals(f, "GHOST2"), 1);
    /* The decoder rejects a transfer to itself; the ledger refuses it too. */
    fw_event ev;
    lt_decode(&ev, "fiscal.indicator.101001",
              "{\"id\":\"e9\",\"op\":\"transfer\",\"occurred_at\":\"2024-06-03T10:15:00+08:00\","
              "\"doc_no\":\"D9\",\"indicator_id\":\"DST\",\"from_indicator_id\":\"SRC\","
              "\"unit_code\":\"101001\",\"amount\":\"0.01\"}");
    json_object_set_new(ev.body, "from_indicator_id", json_string("DST"));
    assert_int_equal(lt_apply_ev(f->l, &ev, &r), FW_LEDGER_REFUSED);
    assert_non_null(strstr(r.reason, "itself"));
    lt_expect_indicator(f->l, "DST", 51000, 0, 0);
}

static void test_voucher_two_phase_flows(void **state)
{
    fixture *f = *state;
    fw_ledger_result r;
    lt_allocate(f->l, "a1", "101001", "IND", 1000000, NULL, LT_T0, NULL);
    lt_voucher v = {.unit = "101001", .indicator = "IND", .amount = 1000, .at = LT_T0};
    const char *nos[] = {"P", "C1", "C2", "C3", "R1", "R2"};
    for (int i = 0; i < 6; i++) {
        char eid[16];
        snprintf(eid, sizeof eid, "c%d", i);
        v.no = nos[i];
        assert_int_equal(lt_created(f->l, eid, &v, &r), FW_LEDGER_APPLIED);
    }
    lt_expect_indicator(f->l, "IND", 1000000, 6000, 0);
    /* P: the normal flow; signed and sent change only the state. */
    assert_int_equal(lt_vevent(f->l, "p1", "101001", "P", "signed", LT_T0 + 1, &r), FW_LEDGER_NOOP);
    assert_int_equal(lt_vevent(f->l, "p2", "101001", "P", "sent", LT_T0 + 2, &r), FW_LEDGER_NOOP);
    lt_expect_indicator(f->l, "IND", 1000000, 6000, 0);
    assert_int_equal(lt_vevent(f->l, "p3", "101001", "P", "paid", LT_T0 + 3, &r),
                     FW_LEDGER_APPLIED);
    lt_expect_indicator(f->l, "IND", 1000000, 5000, 1000);
    /* Cancelled from created, signed and sent: released. */
    assert_int_equal(lt_vevent(f->l, "x1", "101001", "C1", "cancelled", LT_T0, &r),
                     FW_LEDGER_APPLIED);
    lt_vevent(f->l, "x2", "101001", "C2", "signed", LT_T0, NULL);
    assert_int_equal(lt_vevent(f->l, "x3", "101001", "C2", "cancelled", LT_T0, &r),
                     FW_LEDGER_APPLIED);
    lt_vevent(f->l, "x4", "101001", "C3", "signed", LT_T0, NULL);
    lt_vevent(f->l, "x5", "101001", "C3", "sent", LT_T0, NULL);
    assert_int_equal(lt_vevent(f->l, "x6", "101001", "C3", "cancelled", LT_T0, &r),
                     FW_LEDGER_APPLIED);
    lt_expect_indicator(f->l, "IND", 1000000, 2000, 1000);
    /* Returned before payment: released; after payment: refunded. */
    lt_vevent(f->l, "r1", "101001", "R1", "signed", LT_T0, NULL);
    lt_vevent(f->l, "r2", "101001", "R1", "sent", LT_T0, NULL);
    assert_int_equal(lt_vevent(f->l, "r3", "101001", "R1", "returned", LT_T0, &r),
                     FW_LEDGER_APPLIED);
    lt_expect_indicator(f->l, "IND", 1000000, 1000, 1000);
    lt_vevent(f->l, "r4", "101001", "R2", "signed", LT_T0, NULL);
    lt_vevent(f->l, "r5", "101001", "R2", "sent", LT_T0, NULL);
    lt_vevent(f->l, "r6", "101001", "R2", "paid", LT_T0, NULL);
    lt_expect_indicator(f->l, "IND", 1000000, 0, 2000);
    assert_int_equal(lt_vevent(f->l, "r7", "101001", "R2", "returned", LT_T0 + 9, &r),
                     FW_LEDGER_APPLIED);
    lt_expect_indicator(f->l, "IND", 1000000, 0, 1000);
    assert_int_equal(
        lt_sql_int(f->st, "SELECT count(*) FROM reservations WHERE state = ?1", "refunded"), 1);
    assert_int_equal(
        lt_sql_int(f->st, "SELECT count(*) FROM reservations WHERE state = ?1", "voided"), 4);
    /* Entries name the voucher. */
    assert_int_equal(lt_sql_int(f->st,
                                "SELECT count(*) FROM ledger_entries WHERE cause_type = 'voucher'"
                                " AND cause_id = ?1",
                                "R2"),
                     3);
    json_t *vj = fw_ledger_voucher_json(f->l, "R2");
    assert_non_null(vj);
    assert_string_equal(json_string_value(json_object_get(vj, "state")), "returned");
    assert_int_equal(json_integer_value(json_object_get(vj, "amount")), 1000);
    assert_int_equal(json_integer_value(json_object_get(vj, "created_at")), LT_T0);
    assert_int_equal(json_integer_value(json_object_get(vj, "returned_at")), LT_T0 + 9);
    assert_int_equal(json_array_size(json_object_get(vj, "events")), 5);
    assert_string_equal(json_string_value(json_object_get(vj, "settle_method")), "transfer");
    json_decref(vj);
}

static void test_voucher_flow_errors_kept(void **state)
{
    fixture *f = *state;
    fw_ledger_result r;
    lt_allocate(f->l, "a1", "101001", "IND", 100000, NULL, LT_T0, NULL);
    lt_voucher v = {.unit = "101001", .no = "V", .indicator = "IND", .amount = 700, .at = LT_T0};
    lt_created(f->l, "c1", &v, NULL);
    /* paid before sent, sent before signed, returned from created. */
    assert_int_equal(lt_vevent(f->l, "f1", "101001", "V", "paid", LT_T0, &r), FW_LEDGER_FLOW_ERROR);
    assert_non_null(strstr(r.reason, "paid"));
    assert_int_equal(lt_vevent(f->l, "f2", "101001", "V", "sent", LT_T0, &r), FW_LEDGER_FLOW_ERROR);
    assert_int_equal(lt_vevent(f->l, "f3", "101001", "V", "returned", LT_T0, &r),
                     FW_LEDGER_FLOW_ERROR);
    /* Duplicate created (another event id). */
    v.amount = 900;
    assert_int_equal(lt_created(f->l, "c2", &v, &r), FW_LEDGER_FLOW_ERROR);
    lt_expect_indicator(f->l, "IND", 100000, 700, 0);
    /* Anything after cancelled. */
    assert_int_equal(lt_vevent(f->l, "f4", "101001", "V", "cancelled", LT_T0, &r),
                     FW_LEDGER_APPLIED);
    assert_int_equal(lt_vevent(f->l, "f5", "101001", "V", "signed", LT_T0, &r),
                     FW_LEDGER_FLOW_ERROR);
    assert_int_equal(lt_vevent(f->l, "f6", "101001", "V", "cancelled", LT_T0, &r),
                     FW_LEDGER_FLOW_ERROR);
    lt_expect_indicator(f->l, "IND", 100000, 0, 0);
    assert_int_equal(lt_sql_int(f->st,
                                "SELECT count(*) FROM voucher_events WHERE voucher_no = ?1"
                                " AND outcome = 'flow_error'",
                                "V"),
                     6);
    /* The duplicate created's body is kept. */
    assert_int_equal(lt_sql_int(f->st,
                                "SELECT json_extract(body, '$.amount') FROM voucher_events"
                                " WHERE event_id = ?1",
                                "c2"),
                     900);
    /* Unknown voucher: kept, no balance change, visible in the voucher view. */
    assert_int_equal(lt_vevent(f->l, "u1", "101001", "GHOST", "paid", LT_T0, &r),
                     FW_LEDGER_FLOW_ERROR);
    assert_non_null(strstr(r.reason, "unknown"));
    assert_null(fw_ledger_voucher_json(f->l, "GHOST"));
    json_t *vv = fw_ledger_voucher_view(f->l, "GHOST");
    assert_non_null(vv);
    assert_true(json_is_false(json_object_get(vv, "known")));
    assert_true(json_is_null(json_object_get(vv, "state")));
    assert_int_equal(json_array_size(json_object_get(vv, "events")), 1);
    json_decref(vv);
    assert_null(fw_ledger_voucher_view(f->l, "NEVER-SEEN"));
}

static void test_voucher_over_balance_and_unknown_indicator(void **state)
{
    fixture *f = *state;
    fw_ledger_result r;
    lt_allocate(f->l, "a1", "101001", "IND", 300000, NULL, LT_T0, NULL);
    lt_voucher v = {
        .unit = "101001", .no = "BIG", .indicator = "IND", .amount = 1234567, .at = LT_T0};
    /* Frozen in full, never clamped. */
    assert_int_equal(lt_created(f->l, "c1", &v, &r), FW_LEDGER_OVERDRAWN);
    lt_expect_indicator(f->l, "IND", 300000, 1234567, 0);
    json_t *iv = fw_ledger_indicator_view(f->l, "IND");
    assert_string_equal(json_string_value(json_object_get(iv, "available")), "-9345.67");
    assert_string_equal(json_string_value(json_object_get(iv, "frozen")), "12345.67");
    assert_true(json_is_true(json_object_get(iv, "overdrawn")));
    json_decref(iv);
    /* Indicator ops never make it worse: any reduction or transfer out is refused. */
    assert_int_equal(lt_adjust(f->l, "a2", "101001", "IND", -1, LT_T0, &r), FW_LEDGER_REFUSED);
    lt_allocate(f->l, "a3", "101001", "OTHER", 5000000, NULL, LT_T0, NULL);
    assert_int_equal(lt_transfer(f->l, "a4", "101001", "IND", "OTHER", 1, LT_T0, &r),
                     FW_LEDGER_REFUSED);
    /* Money in is welcome. */
    assert_int_equal(lt_transfer(f->l, "a5", "101001", "OTHER", "IND", 934567, LT_T0, &r),
                     FW_LEDGER_APPLIED);
    lt_expect_indicator(f->l, "IND", 1234567, 1234567, 0);
    iv = fw_ledger_indicator_view(f->l, "IND");
    assert_true(json_is_false(json_object_get(iv, "overdrawn")));
    json_decref(iv);
    /* Unknown indicator: the voucher is kept, nothing frozen, no reservation. */
    v.no = "ORPHAN";
    v.indicator = "NO-SUCH";
    assert_int_equal(lt_created(f->l, "c2", &v, &r), FW_LEDGER_NOOP);
    json_t *vj = fw_ledger_voucher_json(f->l, "ORPHAN");
    assert_true(json_is_null(json_object_get(vj, "reservation")));
    json_decref(vj);
    lt_vevent(f->l, "c3", "101001", "ORPHAN", "signed", LT_T0, NULL);
    lt_vevent(f->l, "c4", "101001", "ORPHAN", "sent", LT_T0, NULL);
    assert_int_equal(lt_vevent(f->l, "c5", "101001", "ORPHAN", "paid", LT_T0, &r), FW_LEDGER_NOOP);
    assert_int_equal(
        lt_sql_int(f->st, "SELECT count(*) FROM reservations WHERE voucher_no = ?1", "ORPHAN"), 0);
}

static void test_payroll_parts_and_queries(void **state)
{
    fixture *f = *state;
    fw_ledger_result r;
    lt_allocate(f->l, "a1", "101001", "SAL", 100000000, "[\"salary\"]", LT_T0, NULL);
    const char *ids[] = {"411202198001011236", "411202198501021234"};
    const char *accts[] = {"6222000000000001", "6222000000000002"};
    int64_t nets[] = {508400, 600000};
    /* Earlier period for person 0. */
    int64_t n0[] = {400000};
    assert_int_equal(lt_payroll(f->l, "p0", "101001", "RUN-05", 1, 1, "2024-05", "SAL", 1, ids,
                                accts, n0, LT_T0, &r),
                     FW_LEDGER_APPLIED);
    lt_expect_indicator(f->l, "SAL", 100000000, 0, 400000);
    /* Two-part run: nothing paid until both parts are in. */
    assert_int_equal(lt_payroll(f->l, "p1", "101001", "RUN-06", 2, 2, "2024-06", "SAL", 1, ids + 1,
                                accts + 1, nets + 1, LT_T0, &r),
                     FW_LEDGER_NOOP);
    lt_expect_indicator(f->l, "SAL", 100000000, 0, 400000);
    int seen = 0;
    int64_t so_far = 0;
    assert_int_equal(fw_ledger_run_progress(f->l, "RUN-06", &seen, &so_far), 0);
    assert_int_equal(seen, 1);
    assert_int_equal(so_far, 600000);
    /* The same part again (another event id): stored once. */
    assert_int_equal(lt_payroll(f->l, "p1b", "101001", "RUN-06", 2, 2, "2024-06", "SAL", 1, ids + 1,
                                accts + 1, nets + 1, LT_T0, &r),
                     FW_LEDGER_NOOP);
    assert_non_null(strstr(r.reason, "already"));
    assert_int_equal(lt_payroll(f->l, "p2", "101001", "RUN-06", 1, 2, "2024-06", "SAL", 1, ids,
                                accts, nets, LT_T0 + 60, &r),
                     FW_LEDGER_APPLIED);
    lt_expect_indicator(f->l, "SAL", 100000000, 0, 400000 + 508400 + 600000);
    assert_int_equal(lt_sql_int(f->st,
                                "SELECT amount FROM ledger_entries WHERE kind = 'payroll'"
                                " AND cause_id = ?1",
                                "RUN-06"),
                     1108400);
    fw_ledger_run_progress(f->l, "RUN-06", &seen, &so_far);
    assert_int_equal(seen, 2);

    json_t *emp = fw_ledger_employee_json(f->l, ids[0], "2024-06");
    assert_int_equal(json_array_size(emp), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(emp, 0), "period")),
                        "2024-05");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(emp, 0), "net")), 400000);
    json_decref(emp);
    emp = fw_ledger_employee_json(f->l, ids[0], NULL);
    assert_int_equal(json_array_size(emp), 2); /* newest first */
    assert_string_equal(json_string_value(json_object_get(json_array_get(emp, 0), "period")),
                        "2024-06");
    json_decref(emp);

    json_t *pl = fw_ledger_period_lines_json(f->l, "2024-06", ids[0], accts[1]);
    assert_int_equal(json_array_size(pl), 2);
    json_decref(pl);
    pl = fw_ledger_period_lines_json(f->l, "2024-06", NULL, accts[1]);
    assert_int_equal(json_array_size(pl), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(pl, 0), "id_no")), ids[1]);
    json_decref(pl);
    pl = fw_ledger_period_lines_json(f->l, "2024-04", ids[0], NULL);
    assert_int_equal(json_array_size(pl), 0);
    json_decref(pl);

    /* A run on an unknown indicator completes without a debit. */
    assert_int_equal(lt_payroll(f->l, "p3", "101001", "RUN-X", 1, 1, "2024-06", "NONE", 1, ids,
                                accts, nets, LT_T0, &r),
                     FW_LEDGER_NOOP);
    assert_non_null(strstr(r.reason, "not debited"));
}

static void test_reimburse_and_subsidy(void **state)
{
    fixture *f = *state;
    fw_ledger_result r;
    fw_event ev;
    lt_decode(
        &ev, "fiscal.reimburse.101001",
        "{\"id\":\"r1\",\"reimb_id\":\"BX-1\",\"occurred_at\":\"2024-06-05T10:00:00+08:00\","
        "\"unit_code\":\"101001\",\"emp_id\":\"E1\",\"name\":\"张三\",\"phone\":\"13800000000\","
        "\"amount\":\"1234.00\",\"card_last4\":\"1234\",\"spent_on\":\"2024-05-28\","
        "\"paid_at\":\"2024-06-05T10:00:00+08:00\",\"summary\":\"差旅费\"}");
    assert_int_equal(lt_apply_ev(f->l, &ev, &r), FW_LEDGER_NOOP);
    assert_int_equal(
        lt_sql_int(f->st, "SELECT amount FROM reimbursements WHERE reimb_id = ?1", "BX-1"), 123400);
    const char *sub = "{\"id\":\"%s\",\"payout_id\":\"%s\",\"occurred_at\":\"%s\","
                      "\"unit_code\":\"101001\",\"emp_id\":\"E1\",\"name\":\"张三\","
                      "\"phone\":\"13800000000\",\"kind\":\"取暖补贴\",\"amount\":\"1800.00\","
                      "\"paid_at\":\"%s\"}";
    /* 2024-06-30T23:30+08:00 is June in the business zone (UTC says the 30th too);
     * 2024-07-01T00:30+08:00 is July although UTC still says June. */
    lt_decode(&ev, "fiscal.subsidy.101001", sub, "s1", "BT-1", "2024-06-30T23:30:00+08:00",
              "2024-06-30T23:30:00+08:00");
    assert_int_equal(lt_apply_ev(f->l, &ev, &r), FW_LEDGER_NOOP);
    lt_decode(&ev, "fiscal.subsidy.101001", sub, "s2", "BT-2", "2024-07-01T00:30:00+08:00",
              "2024-07-01T00:30:00+08:00");
    lt_apply_ev(f->l, &ev, NULL);
    lt_decode(&ev, "fiscal.subsidy.101001", sub, "s3", "BT-1", "2024-06-30T23:30:00+08:00",
              "2024-06-30T23:30:00+08:00");
    assert_int_equal(lt_apply_ev(f->l, &ev, &r), FW_LEDGER_NOOP);
    assert_non_null(strstr(r.reason, "already"));
    int64_t n = -1;
    assert_int_equal(fw_ledger_subsidy_count(f->l, "E1", "101001", "取暖补贴", 2024, 6, NULL, &n),
                     0);
    assert_int_equal(n, 1);
    fw_ledger_subsidy_count(f->l, "E1", "101001", "取暖补贴", 2024, 6, "BT-1", &n);
    assert_int_equal(n, 0);
    fw_ledger_subsidy_count(f->l, "E1", NULL, "取暖补贴", 2024, 7, NULL, &n);
    assert_int_equal(n, 1);
    fw_ledger_subsidy_count(f->l, "E1", "101002", "取暖补贴", 2024, 7, NULL, &n);
    assert_int_equal(n, 0);
    fw_ledger_subsidy_count(f->l, "E1", "101001", "交通补贴", 2024, 6, NULL, &n);
    assert_int_equal(n, 0);
    /* No indicator moved. */
    assert_int_equal(lt_sql_int(f->st, "SELECT count(*) FROM ledger_entries", NULL), 0);
}

static void test_sent_before_and_projects(void **state)
{
    fixture *f = *state;
    fw_event ev;
    lt_decode(&ev, "fiscal.indicator.101001",
              "{\"id\":\"a1\",\"op\":\"allocate\",\"occurred_at\":\"2024-01-05T09:00:00+08:00\","
              "\"doc_no\":\"D1\",\"indicator_id\":\"PRJ\",\"year\":2024,\"unit_code\":\"101001\","
              "\"func_class\":\"2050201\",\"econ_class\":\"30201\",\"project_code\":\"P-1\","
              "\"amount\":\"100.00\"}");
    lt_apply_ev(f->l, &ev, NULL);
    lt_allocate(f->l, "a2", "101001", "PLAIN", 100000, NULL, LT_T0, NULL);
    json_t *p = fw_ledger_project_indicators(f->l);
    assert_int_equal(json_array_size(p), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(p, 0), "indicator_id")),
                        "PRJ");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(p, 0), "allocated")), 10000);
    json_decref(p);

    lt_voucher v = {.unit = "101001", .indicator = "PLAIN", .amount = 100, .at = LT_T0};
    const char *nos[] = {"S1", "S2", "S3"};
    for (int i = 0; i < 3; i++) {
        char e[16];
        v.no = nos[i];
        snprintf(e, sizeof e, "c%d", i);
        lt_created(f->l, e, &v, NULL);
        snprintf(e, sizeof e, "g%d", i);
        lt_vevent(f->l, e, "101001", nos[i], "signed", LT_T0 + 1, NULL);
        snprintf(e, sizeof e, "s%d", i);
        lt_vevent(f->l, e, "101001", nos[i], "sent", LT_T0 + 100 * (i + 1), NULL);
    }
    lt_vevent(f->l, "paid0", "101001", "S1", "paid", LT_T0 + 1000, NULL);
    json_t *s = fw_ledger_vouchers_sent_before(f->l, LT_T0 + 300);
    assert_int_equal(json_array_size(s), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(s, 0), "voucher_no")),
                        "S2");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(s, 0), "sent_at")),
                     LT_T0 + 200);
    json_decref(s);
}

static void test_views(void **state)
{
    fixture *f = *state;
    lt_allocate(f->l, "a1", "101001", "ROOT", 10000000, "[\"sangong\",\"direct\"]", LT_T0, NULL);
    lt_allocate(f->l, "a2", "101001", "MID", 500000, NULL, LT_T0 + 1, NULL);
    lt_allocate(f->l, "a3", "101001", "LEAF", 100000, NULL, LT_T0 + 2, NULL);
    lt_transfer(f->l, "t1", "101001", "ROOT", "MID", 300000, LT_T0 + 3, NULL);
    lt_transfer(f->l, "t2", "101001", "MID", "LEAF", 200000, LT_T0 + 4, NULL);
    lt_transfer(f->l, "t3", "101001", "LEAF", "MID", 1000, LT_T0 + 5, NULL); /* a cycle */
    lt_adjust(f->l, "j1", "101001", "LEAF", 5000, LT_T0 + 6, NULL);
    lt_voucher v = {
        .unit = "101001", .no = "ZF1", .indicator = "LEAF", .amount = 123456, .at = LT_T0 + 7};
    lt_created(f->l, "c1", &v, NULL);
    lt_vevent(f->l, "c2", "101001", "ZF1", "signed", LT_T0 + 8, NULL);
    lt_vevent(f->l, "c3", "101001", "ZF1", "sent", LT_T0 + 9, NULL);
    lt_vevent(f->l, "c4", "101001", "ZF1", "paid", LT_T0 + 10, NULL);

    json_t *iv = fw_ledger_indicator_view(f->l, "LEAF");
    assert_string_equal(json_string_value(json_object_get(iv, "allocated")), "3040.00");
    assert_string_equal(json_string_value(json_object_get(iv, "frozen")), "0.00");
    assert_string_equal(json_string_value(json_object_get(iv, "paid")), "1234.56");
    assert_string_equal(json_string_value(json_object_get(iv, "available")), "1805.44");
    assert_true(json_is_false(json_object_get(iv, "overdrawn")));
    json_decref(iv);
    iv = fw_ledger_indicator_view(f->l, "ROOT");
    json_t *fl = json_object_get(iv, "flags");
    assert_int_equal(json_array_size(fl), 2);
    assert_string_equal(json_string_value(json_array_get(fl, 0)), "sangong");
    assert_string_equal(json_string_value(json_array_get(fl, 1)), "direct");
    json_decref(iv);
    assert_null(fw_ledger_indicator_view(f->l, "NOPE"));

    json_t *en = fw_ledger_entries_view(f->l, "LEAF", 0);
    json_t *items = json_object_get(en, "items");
    /* allocate, transfer_in, transfer_out, adjust, freeze, post: oldest first */
    assert_int_equal(json_array_size(items), 6);
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 0), "kind")),
                        "allocate");
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 5), "kind")),
                        "post");
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 4), "frozen")),
                        "1234.56");
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 0), "occurred_at")),
                        "2024-06-03T10:15:02+08:00");
    json_decref(en);
    en = fw_ledger_entries_view(f->l, "LEAF", 2);
    items = json_object_get(en, "items");
    assert_int_equal(json_array_size(items), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 0), "kind")),
                        "freeze");
    json_decref(en);
    assert_null(fw_ledger_entries_view(f->l, "NOPE", 0));

    json_t *vv = fw_ledger_voucher_view(f->l, "ZF1");
    assert_string_equal(json_string_value(json_object_get(vv, "amount")), "1234.56");
    assert_string_equal(json_string_value(json_object_get(vv, "state")), "paid");
    assert_string_equal(json_string_value(json_object_get(vv, "paid_at")),
                        "2024-06-03T10:15:10+08:00");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(vv, "reservation"), "state")), "posted");
    assert_int_equal(json_array_size(json_object_get(vv, "events")), 4);
    json_decref(vv);

    json_t *t = fw_ledger_trace_view(f->l, "ZF1");
    assert_non_null(t);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(t, "reservation"), "state")), "posted");
    assert_int_equal(json_array_size(json_object_get(t, "entries")), 2);
    json_t *leaf = json_object_get(t, "indicator");
    assert_string_equal(json_string_value(json_object_get(leaf, "indicator_id")), "LEAF");
    json_t *docs = json_object_get(leaf, "funding");
    assert_int_equal(json_array_size(docs), 4); /* allocate, transfer_in, transfer_out, adjust */
    json_t *tin = json_array_get(docs, 1);
    assert_string_equal(json_string_value(json_object_get(tin, "kind")), "transfer_in");
    assert_string_equal(json_string_value(json_object_get(tin, "doc_no")), "DOC-t2");
    assert_string_equal(json_string_value(json_object_get(tin, "from")), "MID");
    json_t *mid = json_object_get(tin, "source");
    assert_string_equal(json_string_value(json_object_get(mid, "indicator_id")), "MID");
    /* MID's funding: allocate, transfer_in from ROOT, transfer_out to LEAF, transfer_in from LEAF
     */
    json_t *mdocs = json_object_get(mid, "funding");
    assert_int_equal(json_array_size(mdocs), 4);
    json_t *root = json_object_get(json_array_get(mdocs, 1), "source");
    assert_string_equal(json_string_value(json_object_get(root, "indicator_id")), "ROOT");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(root, "funding"), 0), "doc_no")),
                        "DOC-a1");
    /* The cycle back to LEAF is not followed again. */
    json_t *back = json_object_get(json_array_get(mdocs, 3), "source");
    assert_true(json_is_true(json_object_get(back, "see_above")));
    json_decref(t);
    assert_null(fw_ledger_trace_view(f->l, "NOPE"));
}

/* Run the CLI with stdout captured; returns the exit status. */
static int run_cli(fw_ledger *l, char **out, int argc, ...)
{
    char *argv[8];
    va_list ap;
    va_start(ap, argc);
    for (int i = 0; i < argc; i++)
        argv[i] = va_arg(ap, char *);
    va_end(ap);
    char path[] = "/tmp/fw_ledger_cli_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stdout);
    int saved = dup(1);
    dup2(fd, 1);
    int rc = fw_ledger_cli_main(l, argc, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    close(fd);
    size_t len = 0;
    FILE *fp = fopen(path, "r");
    char *buf = calloc(1, 1 << 20);
    len = fread(buf, 1, (1 << 20) - 1, fp);
    buf[len] = '\0';
    fclose(fp);
    unlink(path);
    *out = buf;
    return rc;
}

static void test_cli(void **state)
{
    fixture *f = *state;
    lt_allocate(f->l, "a1", "101001", "ROOT", 10000000, NULL, LT_T0, NULL);
    lt_allocate(f->l, "a2", "101001", "LEAF", 100000, NULL, LT_T0, NULL);
    lt_transfer(f->l, "t1", "101001", "ROOT", "LEAF", 300000, LT_T0 + 3, NULL);
    lt_voucher v = {
        .unit = "101001", .no = "ZF1", .indicator = "LEAF", .amount = 123456, .at = LT_T0};
    lt_created(f->l, "c1", &v, NULL);
    char *out = NULL;

    assert_int_equal(run_cli(f->l, &out, 2, "show", "LEAF"), 0);
    assert_non_null(strstr(out, "allocated"));
    assert_non_null(strstr(out, "4000.00"));
    assert_non_null(strstr(out, "2765.44")); /* available */
    assert_non_null(strstr(out, "transfer_in"));
    assert_non_null(strstr(out, "freeze"));
    free(out);

    assert_int_equal(run_cli(f->l, &out, 3, "show", "LEAF", "--json"), 0);
    json_t *j = json_loads(out, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "available")), "2765.44");
    json_decref(j);
    free(out);

    assert_int_equal(run_cli(f->l, &out, 2, "trace", "ZF1"), 0);
    assert_non_null(strstr(out, "pending"));
    assert_non_null(strstr(out, "DOC-t1"));
    assert_non_null(strstr(out, "ROOT"));
    free(out);

    assert_int_equal(run_cli(f->l, &out, 3, "trace", "--json", "ZF1"), 0);
    j = json_loads(out, 0, NULL);
    assert_non_null(j);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(j, "indicator"), "indicator_id")),
        "LEAF");
    json_decref(j);
    free(out);

    assert_int_equal(run_cli(f->l, &out, 2, "show", "MISSING"), 1);
    free(out);
    assert_int_equal(run_cli(f->l, &out, 2, "trace", "MISSING"), 1);
    free(out);
    assert_int_equal(run_cli(f->l, &out, 1, "show"), 2);
    free(out);
    assert_int_equal(run_cli(f->l, &out, 2, "frobnicate", "X"), 2);
    free(out);
    assert_int_equal(run_cli(f->l, &out, 3, "show", "LEAF", "--bogus"), 2);
    free(out);
    assert_int_equal(run_cli(f->l, &out, 3, "show", "A", "B"), 2);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_allocate_creates_then_adds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_allocate_mismatch_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adjust_up_down_and_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transfer_pair_and_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_voucher_two_phase_flows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_voucher_flow_errors_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_voucher_over_balance_and_unknown_indicator, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_payroll_parts_and_queries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reimburse_and_subsidy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sent_before_and_projects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_views, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
