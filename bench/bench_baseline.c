/*
 * bench_baseline.c - the ceilings the daemon's figures are compared with.
 *
 *   bench_baseline [MESSAGES] [ROWS] [LUA_CALLS]
 *   (defaults: 200000 messages, 100000 rows, 10000000 calls)
 *
 * 1. JetStream on this machine: a nats-server (JetStream, file storage) on
 *    a free loopback port; MESSAGES voucher-sized messages published with
 *    async publish (the publish ceiling), then consumed by a plain push
 *    consumer with explicit ack that only acks (the consume+ack ceiling;
 *    the same approach as bench_intake).
 * 2. Lua: lua_pcall of an empty function in a fresh lua_State, ns per call
 *    (the floor under any rule call, before the sandbox adds anything).
 * 3. SQLite: ROWS inserts into a table shaped like the daemon's `events`
 *    table (TEXT primary key, WITHOUT ROWID, a 600-byte body), prepared
 *    once, in transactions of 500 rows, WAL, with synchronous=FULL and
 *    with synchronous=NORMAL: rows/s and the mean COMMIT time; once with
 *    ids that grow (appends to the key b-tree) and once with random ids
 *    (UUID-like: every row dirties a random leaf page).
 *
 * Every figure is also printed as a machine-readable line for bench/run:
 *   RESULT name=<key> value=<number> unit=<unit>
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <nats/nats.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_util.h"
#include "tests/support/harness.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A voucher `created` body of the size the daemon sees (about 600 bytes). */
static char *voucher_body(int v)
{
    char buf[2048];
    snprintf(
        buf, sizeof buf,
        "{\"id\":\"v%d\",\"event\":\"created\",\"occurred_at\":\"2024-06-12T10:%02d:%02d+08:00\","
        "\"voucher_no\":\"ZF2024%08d\",\"year\":2024,\"unit_code\":\"101%03d\","
        "\"unit_name\":\"三门峡市某单位\",\"indicator_id\":\"ZB2024-101%03d-0001\","
        "\"func_class\":\"2050201\",\"econ_class\":\"30201\",\"pay_method\":\"direct\","
        "\"settle_method\":\"transfer\",\"payee_name\":\"三门峡市某某有限公司%d\","
        "\"payee_account\":\"41050166%012d\",\"payee_bank\":\"中国建设银行三门峡分行\","
        "\"payee_type\":\"company\",\"amount\":\"%d.%02d\",\"purpose\":\"办公用品采购\"}",
        v, (v / 60) % 60, v % 60, v, v % 100, v % 100, v % 5000, v, 1000 + v % 9000, v % 100);
    return strdup(buf);
}

/* ---- 1. JetStream ---- */

static atomic_int acked;

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)sub, (void)closure;
    const char *reply = natsMsg_GetReply(msg);
    if (reply)
        natsConnection_Publish(nc, reply, "+ACK", 4);
    natsMsg_Destroy(msg);
    atomic_fetch_add(&acked, 1);
}

static int jetstream_ceilings(int n)
{
    char *tmp = fw_t_tmpdir("bench-baseline-js");
    fw_t_nats nats = {0};
    if (fw_t_nats_start(&nats, tmp) != 0) {
        fprintf(stderr, "cannot start nats-server\n");
        return -1;
    }
    char **subjects = calloc((size_t)n, sizeof *subjects);
    char **bodies = calloc((size_t)n, sizeof *bodies);
    size_t bytes = 0;
    for (int i = 0; i < n; i++) {
        char s[64];
        snprintf(s, sizeof s, "fiscal.voucher.101%03d", i % 100);
        subjects[i] = strdup(s);
        bodies[i] = voucher_body(i);
        bytes += strlen(bodies[i]);
    }
    double t0 = now_s();
    int pub =
        fw_t_js_publish(nats.url, n, (const char *const *)subjects, (const char *const *)bodies);
    double dt = now_s() - t0;
    printf("jetstream publish (async, acked by the server): %d messages of %zu bytes mean in "
           "%.2f s = %.0f msg/s\n",
           pub, bytes / (size_t)n, dt, pub / dt);
    result("jetstream_publish", pub / dt, "msg/s");

    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    natsSubscription *sub = NULL;
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr;
    natsConnection_ConnectTo(&nc, nats.url);
    natsConnection_JetStream(&js, nc, NULL);
    natsConnection_Subscribe(&sub, nc, "_bench.ceiling", on_msg, NULL);
    natsSubscription_SetPendingLimits(sub, -1, -1);
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = "ceiling";
    cc.DeliverSubject = "_bench.ceiling";
    cc.AckPolicy = js_AckExplicit;
    cc.MaxAckPending = 20000; /* the daemon's default nats.max_ack_pending */
    t0 = now_s();
    int rc = 0;
    if (js_AddConsumer(&ci, js, "FISCAL", &cc, NULL, &jerr) != NATS_OK) {
        fprintf(stderr, "cannot add consumer: %s\n", nats_GetLastError(NULL));
        rc = -1;
    } else {
        double deadline = now_s() + 120;
        while (atomic_load(&acked) < pub && now_s() < deadline)
            usleep(1000);
        natsConnection_Flush(nc);
        dt = now_s() - t0;
        printf("jetstream consume+ack (push consumer, explicit ack, MaxAckPending 20000): %d in "
               "%.2f s = %.0f msg/s\n",
               atomic_load(&acked), dt, atomic_load(&acked) / dt);
        result("jetstream_consume_ack", atomic_load(&acked) / dt, "msg/s");
    }
    jsConsumerInfo_Destroy(ci);
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    fw_t_nats_stop(&nats);
    fw_t_rmtree(tmp);
    free(tmp);
    for (int i = 0; i < n; i++)
        free(subjects[i]), free(bodies[i]);
    free(subjects);
    free(bodies);
    return rc;
}

/* ---- 2. Lua ---- */

static int lua_empty_call(long calls)
{
    lua_State *L = luaL_newstate();
    if (!L)
        return -1;
    if (luaL_loadstring(L, "return function() end") != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
        lua_close(L);
        return -1;
    }
    double t0 = now_s();
    for (long i = 0; i < calls; i++) {
        lua_pushvalue(L, -1);
        if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
            lua_close(L);
            return -1;
        }
    }
    double ns = (now_s() - t0) / (double)calls * 1e9;
    lua_close(L);
    printf("lua: lua_pcall of an empty function, fresh state: %.1f ns/call (%ld calls)\n", ns,
           calls);
    result("lua_empty_pcall", ns, "ns/call");
    return 0;
}

/* ---- 3. SQLite ---- */

static int exec(sqlite3 *db, const char *sql)
{
    char *e = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &e) != SQLITE_OK) {
        fprintf(stderr, "sqlite: %s: %s\n", sql, e ? e : "?");
        sqlite3_free(e);
        return -1;
    }
    return 0;
}

static int sqlite_inserts(const char *dir, const char *sync, int random_ids, int rows, int batch)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/bare-%s-%d.db", dir, sync, random_ids);
    sqlite3 *db = NULL;
    if (sqlite3_open(path, &db) != SQLITE_OK)
        return -1;
    char pragmas[128];
    snprintf(pragmas, sizeof pragmas, "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s;", sync);
    sqlite3_stmt *ins = NULL;
    int rc = -1;
    if (exec(db, pragmas) != 0 ||
        exec(db, "CREATE TABLE events (id TEXT PRIMARY KEY, kind TEXT NOT NULL, "
                 "subject TEXT NOT NULL, stream_seq INTEGER, body TEXT NOT NULL) "
                 "STRICT, WITHOUT ROWID") != 0)
        goto cleanup;
    if (sqlite3_prepare_v3(db, "INSERT INTO events VALUES (?1, 'voucher', ?2, ?3, ?4)", -1,
                           SQLITE_PREPARE_PERSISTENT, &ins, NULL) != SQLITE_OK)
        goto cleanup;
    char *body = voucher_body(1);
    double t0 = now_s(), t_commit = 0;
    int commits = 0;
    for (int i = 0; i < rows; i += batch) {
        if (exec(db, "BEGIN") != 0)
            goto cleanup_body;
        for (int k = i; k < i + batch && k < rows; k++) {
            char id[32];
            /* Ids that grow (as the city's evt-NNNNNNN) append to the key
             * b-tree; random ids (UUIDs) land each row on a random leaf. */
            if (random_ids)
                snprintf(id, sizeof id, "%08x-%09d", (unsigned)(k * 2654435761u), k);
            else
                snprintf(id, sizeof id, "evt-%09d", k);
            sqlite3_bind_text(ins, 1, id, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(ins, 2, "fiscal.voucher.101001", -1, SQLITE_STATIC);
            sqlite3_bind_int64(ins, 3, k + 1);
            sqlite3_bind_text(ins, 4, body, -1, SQLITE_STATIC);
            int s = sqlite3_step(ins);
            sqlite3_reset(ins);
            if (s != SQLITE_DONE) {
                fprintf(stderr, "insert: %s\n", sqlite3_errmsg(db));
                goto cleanup_body;
            }
        }
        double tc = now_s();
        if (exec(db, "COMMIT") != 0)
            goto cleanup_body;
        t_commit += now_s() - tc;
        commits++;
    }
    double dt = now_s() - t0;
    printf("sqlite: %d inserts (600-byte body, %s TEXT key, WITHOUT ROWID) in batches of %d, "
           "WAL, synchronous=%s: %.0f rows/s, mean COMMIT %.2f ms\n",
           rows, random_ids ? "random" : "growing", batch, sync, rows / dt,
           t_commit / commits * 1000);
    char name[64];
    snprintf(name, sizeof name, "sqlite_insert_%s%s", sync, random_ids ? "_random_ids" : "");
    result(name, rows / dt, "rows/s");
    snprintf(name, sizeof name, "sqlite_commit_ms_%s%s", sync, random_ids ? "_random_ids" : "");
    result(name, t_commit / commits * 1000, "ms");
    rc = 0;
cleanup_body:
    free(body);
cleanup:
    sqlite3_finalize(ins);
    sqlite3_close(db);
    return rc;
}

int main(int argc, char **argv)
{
    int msgs = argc > 1 ? atoi(argv[1]) : 200000;
    int rows = argc > 2 ? atoi(argv[2]) : 100000;
    long calls = argc > 3 ? atol(argv[3]) : 10000000;
    if (msgs < 1 || rows < 1 || calls < 1) {
        fprintf(stderr, "usage: bench_baseline [MESSAGES] [ROWS] [LUA_CALLS]\n");
        return 2;
    }
    int rc = 0;
    if (lua_empty_call(calls) != 0)
        rc = 1;
    char *dir = fw_t_tmpdir("bench-baseline-sql");
    for (int random_ids = 0; random_ids < 2; random_ids++)
        if (sqlite_inserts(dir, "FULL", random_ids, rows, 500) != 0 ||
            sqlite_inserts(dir, "NORMAL", random_ids, rows, 500) != 0)
            rc = 1;
    fw_t_rmtree(dir);
    free(dir);
    if (jetstream_ceilings(msgs) != 0)
        rc = 1;
    return rc;
}
