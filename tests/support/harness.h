/*
 * harness.h - shared helpers for fundwatch's tests and benchmarks.
 *
 * - fw_t_tmpdir(): a fresh directory under $TMPDIR, removed by
 *   fw_t_rmtree() (tests call it at the end).
 * - fw_t_nats_start(): a real nats-server with JetStream on a free loopback
 *   port, its store in a temp dir; fw_t_nats_stop() kills it (the store
 *   stays, so a restart on the same port and dir keeps the stream).
 * - fw_t_daemon_start(): `fundwatch run` as a child process with a generated
 *   config (store, http port, nats url, rules dir...) and extra -o overrides;
 *   fw_t_daemon_kill() sends a signal and reaps it.
 * - fw_t_http(): a tiny blocking HTTP/1.0 client for the daemon's API.
 * - fw_t_wait_until(): poll a predicate with a deadline.
 *
 * The daemon binary is $FW_BIN and the source tree $FW_SRC (set by ctest).
 */
#ifndef FW_TEST_HARNESS_H
#define FW_TEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Source tree root ($FW_SRC or "."). */
const char *fw_t_src(void);
/* Path of the fundwatch binary ($FW_BIN or build/daemon/fundwatch). */
const char *fw_t_bin(void);

/* mkdtemp under TMPDIR; returns malloc'd path. */
char *fw_t_tmpdir(const char *tag);
void fw_t_rmtree(const char *path);
/* A free TCP port on 127.0.0.1. */
int fw_t_free_port(void);
/* Write a whole file. 0 or -1. */
int fw_t_write_file(const char *path, const char *text);
/* Read a whole file (malloc'd, NUL-terminated) or NULL. */
char *fw_t_read_file(const char *path, size_t *len);

typedef struct fw_t_nats {
    pid_t pid;
    int port;
    char dir[512]; /* JetStream store dir */
    char url[64];  /* nats://127.0.0.1:PORT */
} fw_t_nats;

/* Start nats-server -js on a free port (or n->port if already set, for
 * restarts), wait until it accepts connections.  0 or -1. */
int fw_t_nats_start(fw_t_nats *n, const char *tmpdir);
void fw_t_nats_stop(fw_t_nats *n); /* SIGTERM + wait */

typedef struct fw_t_daemon {
    pid_t pid;
    int http_port;
    char dir[512];  /* working dir for this daemon (db, config) */
    char conf[600]; /* generated config path */
    char db[600];   /* store path */
    char log[600];  /* stderr of the daemon goes here */
} fw_t_daemon;

/* Write <dir>/fundwatch.conf with the given nats url, a fresh http port,
 * store <dir>/fundwatch.db, rules dir (NULL: $FW_SRC/rules), tokens file
 * with "viewer-token viewer vera" and "super-token supervisor sam", and
 * `extra_ini` appended verbatim (may be NULL); then start the daemon and
 * wait for /healthz (up to 20 s).  0 or -1. */
int fw_t_daemon_start(fw_t_daemon *d, const char *dir, const char *nats_url, const char *rules_dir,
                      const char *extra_ini);
/* Start again with the same config (after a kill). */
int fw_t_daemon_restart(fw_t_daemon *d);
/* kill(sig), then waitpid; returns the exit status (or 128+signal). */
int fw_t_daemon_kill(fw_t_daemon *d, int sig);

/* The usual integration-test fixture: a temp dir, a nats-server in it, and
 * room for one daemon.  fw_t_env_new starts nats-server (NULL on failure);
 * fw_t_env_free SIGKILLs a daemon still running, stops nats-server and
 * removes the dir. */
typedef struct fw_t_env {
    char *tmp;
    fw_t_nats nats;
    fw_t_daemon d;
} fw_t_env;
fw_t_env *fw_t_env_new(const char *tag);
void fw_t_env_free(fw_t_env *e);

/* HTTP request to 127.0.0.1:port.  Returns the status code (or -1) and the
 * body (malloc'd) in *body if body != NULL.  token may be NULL. */
int fw_t_http(int port, const char *method, const char *path, const char *token,
              const char *req_body, char **body);

/* Poll pred(ud) every 20 ms until it returns nonzero or timeout_ms passes.
 * Returns 1 if it became true. */
int fw_t_wait_until(int (*pred)(void *ud), void *ud, int timeout_ms);

/* Poll `sql` (a single integer) on db_path until it is >= want, or
 * timeout_ms passes.  Returns 1 if it got there. */
int fw_t_wait_sql(const char *db_path, const char *sql, int64_t want, int timeout_ms);

/* Count rows: "SELECT count(*) FROM ..." on a database file (read-only
 * connection); -1 on error. */
int64_t fw_t_sql_int(const char *db_path, const char *sql);

/* Publish to JetStream and wait for each ack (cnats, own connection).
 * subjects[i]/bodies[i] for i < n.  Returns number acked. */
int fw_t_js_publish(const char *url, int n, const char *const *subjects, const char *const *bodies);

/* A list of messages for a test to publish: fw_t_msgs_add formats a body
 * (printf) for a subject and counts it as valid or malformed. */
typedef struct fw_t_msgs {
    char **subjects, **bodies;
    int n, cap;
    int valid, malformed;
} fw_t_msgs;
void fw_t_msgs_add(fw_t_msgs *m, const char *subject, int valid, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void fw_t_msgs_free(fw_t_msgs *m);
/* Publish them all (fw_t_js_publish); returns the number acked. */
int fw_t_msgs_publish(const fw_t_msgs *m, const char *url);

#endif
