/* test_alerts_audit.c - the hash-chained audit log: verify passes on a real
 * history, then fails (naming the row) after rows are edited or deleted with
 * the sqlite3 shell, as an operator with file access could. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <unistd.h>

#include "tests/unit/test_alerts_util.h"

/* A store with a little history: two alerts, transitions, a silence and an
 * application entry (rule reload).  7 audit rows. */
static at_fx *with_history(void)
{
    at_fx *f = at_open(NULL);
    char id[32], sid[16], err[256];
    fw_hit h = at_hit("over_balance", "red", "101001", "ZF1", "e1");
    assert_int_equal(at_raise(f, &h, id), 1);                                 /* 1 */
    assert_int_equal(at_transition(f, id, "acknowledged", NULL), 0);          /* 2 */
    assert_int_equal(at_transition(f, id, "confirmed", "超指标支付属实"), 0); /* 3 */
    assert_int_equal(fw_alerts_silence_add(f->a, "*", "102", AT_T0, AT_T0 + 3600, "li", "维护", sid,
                                           err, sizeof err),
                     0); /* 4 */
    assert_int_equal(
        fw_audit_append(f->st, "fundwatch", "rules.reload", "rules", "{\"version\":\"3f9a\"}"),
        0);                                                                /* 5 */
    assert_int_equal(at_transition(f, id, "resolved", "已拦截并退回"), 0); /* 6 */
    h = at_hit("vague_purpose", "yellow", "101001", "ZF2", "e2");
    assert_int_equal(at_raise(f, &h, NULL), 1); /* 7 */
    assert_int_equal(at_sql(f, "SELECT count(*) FROM audit"), 7);
    return f;
}

static void shell(at_fx *f, const char *sql)
{
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "sqlite3 '%s' \"%s\"", f->db, sql);
    int rc = system(cmd);
    if (rc != 0)
        fail_msg("sqlite3 failed (%d): %s", rc, cmd);
}

static void expect_broken(at_fx *f, const char *needle)
{
    char err[512];
    int rc = fw_audit_verify(f->st, err, sizeof err);
    if (rc != 1 || !strstr(err, needle))
        fail_msg("verify: rc %d \"%s\", expected 1 and \"%s\"", rc, err, needle);
}

/* Run the CLI with stdout captured; returns the exit status. */
static int run_cli(at_fx *f, char **out, int argc, char **argv)
{
    char path[700];
    snprintf(path, sizeof path, "%s/stdout.txt", f->dir);
    fflush(stdout);
    int saved = dup(1);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 1);
    close(fd);
    int rc = fw_alerts_cli_main(f->a, argc, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    *out = fw_t_read_file(path, NULL);
    assert_non_null(*out);
    return rc;
}

static void test_verify_intact_chain(void **state)
{
    (void)state;
    at_fx *f = with_history();
    char err[512];
    assert_int_equal(fw_audit_verify(f->st, err, sizeof err), 0);
    assert_non_null(strstr(err, "7 rows"));
    /* each row links to the one before, and the head to the last */
    assert_int_equal(at_sql(f, "SELECT count(*) FROM audit a JOIN audit b ON b.seq = a.seq + 1"
                               " WHERE b.prev_hash = a.hash"),
                     6);
    assert_int_equal(at_sql(f, "SELECT count(*) FROM audit_head h JOIN audit a ON a.seq = h.seq"
                               " AND a.hash = h.hash WHERE h.seq = 7"),
                     1);
    /* the actors and actions a supervisor will look for */
    assert_int_equal(at_sql(f, "SELECT count(*) FROM audit WHERE actor = 'sam' AND action ="
                               " 'alert.transition' AND object = 'AL-000001'"),
                     3);
    char *out = NULL;
    char *argv[] = {"audit", "verify"};
    assert_int_equal(run_cli(f, &out, 2, argv), 0);
    assert_non_null(strstr(out, "intact"));
    free(out);
    /* an empty log is intact too */
    at_fx *g = at_open(NULL);
    assert_int_equal(fw_audit_verify(g->st, err, sizeof err), 0);
    at_close(g);
    at_close(f);
}

static void test_edited_row_is_detected(void **state)
{
    (void)state;
    at_fx *f = with_history();
    /* Someone rewrites who resolved the alert. */
    shell(f, "UPDATE audit SET actor = 'nobody' WHERE seq = 6");
    expect_broken(f, "audit row 6: hash does not match its content");
    char *out = NULL;
    char *argv[] = {"audit", "verify"};
    assert_int_equal(run_cli(f, &out, 2, argv), 1);
    assert_non_null(strstr(out, "row 6"));
    free(out);
    at_close(f);

    /* An edited note (detail), an edited time. */
    f = with_history();
    shell(f, "UPDATE audit SET detail = replace(detail, '属实', '不属实') WHERE seq = 3");
    expect_broken(f, "audit row 3: hash");
    at_close(f);
    f = with_history();
    shell(f, "UPDATE audit SET at = at - 3600 WHERE seq = 2");
    expect_broken(f, "audit row 2: hash");
    at_close(f);
}

static void test_recomputed_hash_breaks_the_link(void **state)
{
    (void)state;
    at_fx *f = with_history();
    /* Edit a row and overwrite its hash with some other value: the next row's
     * prev_hash no longer matches. */
    shell(f, "UPDATE audit SET detail = '{}', hash = (SELECT hash FROM audit WHERE seq = 1)"
             " WHERE seq = 4");
    char err[512];
    assert_int_equal(fw_audit_verify(f->st, err, sizeof err), 1);
    assert_non_null(strstr(err, "audit row 4"));
    at_close(f);
}

static void test_deleted_rows_are_detected(void **state)
{
    (void)state;
    at_fx *f = with_history();
    shell(f, "DELETE FROM audit WHERE seq = 4");
    expect_broken(f, "audit row 4 is missing");
    at_close(f);

    f = with_history();
    shell(f, "DELETE FROM audit WHERE seq = 1");
    expect_broken(f, "audit row 1 is missing");
    at_close(f);

    /* the last row: only the head knows it existed */
    f = with_history();
    shell(f, "DELETE FROM audit WHERE seq = (SELECT max(seq) FROM audit)");
    expect_broken(f, "audit row 7 is missing");
    char *out = NULL;
    char *argv[] = {"audit", "verify"};
    assert_int_equal(run_cli(f, &out, 2, argv), 1);
    assert_non_null(strstr(out, "row 7"));
    free(out);
    at_close(f);

    /* the head itself, or everything */
    f = with_history();
    shell(f, "DELETE FROM audit_head");
    expect_broken(f, "head is missing");
    at_close(f);
    f = with_history();
    shell(f, "DELETE FROM audit");
    expect_broken(f, "audit row 1 is missing");
    at_close(f);
}

static void test_appends_continue_the_chain_after_reopen(void **state)
{
    (void)state;
    at_fx *f = with_history();
    char err[512], merr[256];
    /* Close and reopen the store: the chain continues from the head. */
    fw_alerts_free(f->a);
    fw_store_close(f->st);
    f->st = fw_store_open(f->db, fw_alerts_migrations, fw_alerts_nmigrations, 0, FW_SYNC_NORMAL,
                          merr, sizeof merr);
    assert_non_null(f->st);
    f->a = fw_alerts_new(f->st, f->cfg, merr, sizeof merr);
    assert_non_null(f->a);
    assert_int_equal(fw_audit_append(f->st, "ops", "config.change", "alerts.group_window",
                                     "{\"from\":\"60s\",\"to\":\"120s\"}"),
                     0);
    assert_int_equal(fw_audit_verify(f->st, err, sizeof err), 0);
    assert_non_null(strstr(err, "8 rows"));
    /* inside a caller's transaction, rolled back: no row, chain intact */
    assert_int_equal(fw_store_begin(f->st), 0);
    assert_int_equal(fw_audit_append(f->st, "ops", "x", "y", NULL), 0);
    fw_store_rollback(f->st);
    assert_int_equal(fw_audit_verify(f->st, err, sizeof err), 0);
    assert_non_null(strstr(err, "8 rows"));
    at_close(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verify_intact_chain),
        cmocka_unit_test(test_edited_row_is_detected),
        cmocka_unit_test(test_recomputed_hash_breaks_the_link),
        cmocka_unit_test(test_deleted_rows_are_detected),
        cmocka_unit_test(test_appends_continue_the_chain_after_reopen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
