/* harness.c - see harness.h */
#include "tests/support/harness.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <nats/nats.h>
#include <netinet/in.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *fw_t_src(void)
{
    const char *s = getenv("FW_SRC");
    return s ? s : ".";
}

const char *fw_t_bin(void)
{
    const char *s = getenv("FW_BIN");
    return s ? s : "build/daemon/fundwatch";
}

char *fw_t_tmpdir(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof tmpl, "%s/fw-%s-XXXXXX", base ? base : "/tmp", tag);
    if (!mkdtemp(tmpl))
        return NULL;
    return strdup(tmpl);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

void fw_t_rmtree(const char *path)
{
    if (path && getenv("FW_KEEP_TMP") == NULL)
        nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int fw_t_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    int port = ntohs(a.sin_port);
    close(fd);
    return port;
}

int fw_t_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f) == 0 ? 0 : -1;
}

char *fw_t_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = 0;
        if (len)
            *len = (size_t)n;
    }
    return buf;
}

static int port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int fw_t_wait_until(int (*pred)(void *ud), void *ud, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 20) {
        if (pred(ud))
            return 1;
        sleep_ms(20);
    }
    return pred(ud);
}

static int nats_up(void *ud)
{
    return port_open(*(int *)ud);
}

int fw_t_nats_start(fw_t_nats *n, const char *tmpdir)
{
    if (!n->port)
        n->port = fw_t_free_port();
    if (!n->dir[0])
        snprintf(n->dir, sizeof n->dir, "%s/nats", tmpdir);
    snprintf(n->url, sizeof n->url, "nats://127.0.0.1:%d", n->port);
    char port[16], log[600];
    snprintf(port, sizeof port, "%d", n->port);
    snprintf(log, sizeof log, "%s.log", n->dir);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        /* FW_NATS_DEBUG=1 makes the server log every connection event. */
        const char *dbg = getenv("FW_NATS_DEBUG") ? "-D" : "-js";
        execlp("nats-server", "nats-server", "-js", "-a", "127.0.0.1", "-p", port, "-sd", n->dir,
               dbg, (char *)NULL);
        _exit(127);
    }
    n->pid = pid;
    if (!fw_t_wait_until(nats_up, &n->port, 10000))
        return -1;
    sleep_ms(100); /* JetStream finishes starting just after the port opens */
    return 0;
}

void fw_t_nats_stop(fw_t_nats *n)
{
    if (n->pid > 0) {
        kill(n->pid, SIGTERM);
        waitpid(n->pid, NULL, 0);
        n->pid = 0;
    }
}

static int daemon_healthy(void *ud)
{
    fw_t_daemon *d = ud;
    return fw_t_http(d->http_port, "GET", "/healthz", NULL, NULL, NULL) == 200;
}

int fw_t_daemon_restart(fw_t_daemon *d)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0)
            dup2(fd, 2);
        if (chdir(fw_t_src()) != 0)
            _exit(126);
        execl(fw_t_bin(), "fundwatch", "run", "-c", d->conf, (char *)NULL);
        _exit(127);
    }
    d->pid = pid;
    if (!fw_t_wait_until(daemon_healthy, d, 20000)) {
        fprintf(stderr, "daemon did not become healthy; log %s\n", d->log);
        return -1;
    }
    return 0;
}

int fw_t_daemon_start(fw_t_daemon *d, const char *dir, const char *nats_url, const char *rules_dir,
                      const char *extra_ini)
{
    snprintf(d->dir, sizeof d->dir, "%s", dir);
    snprintf(d->conf, sizeof d->conf, "%s/fundwatch.conf", dir);
    snprintf(d->db, sizeof d->db, "%s/fundwatch.db", dir);
    snprintf(d->log, sizeof d->log, "%s/fundwatch.log", dir);
    d->http_port = fw_t_free_port();
    char tokens[600], rules[600];
    snprintf(tokens, sizeof tokens, "%s/tokens", dir);
    snprintf(rules, sizeof rules, "%s/rules", fw_t_src());
    if (fw_t_write_file(tokens, "viewer-token viewer vera\nsuper-token supervisor sam\n") != 0)
        return -1;
    size_t cap = 4096 + (extra_ini ? strlen(extra_ini) : 0);
    char *conf = malloc(cap);
    snprintf(conf, cap,
             "[nats]\nurl = %s\n[store]\npath = %s\n[http]\nlisten = 127.0.0.1:%d\n"
             "[auth]\ntokens = %s\n[rules]\ndir = %s\ntick = 1\n%s",
             nats_url, d->db, d->http_port, tokens, rules_dir ? rules_dir : rules,
             extra_ini ? extra_ini : "");
    int rc = fw_t_write_file(d->conf, conf);
    free(conf);
    if (rc != 0)
        return -1;
    return fw_t_daemon_restart(d);
}

int fw_t_daemon_kill(fw_t_daemon *d, int sig)
{
    if (d->pid <= 0)
        return -1;
    kill(d->pid, sig);
    int st = 0;
    waitpid(d->pid, &st, 0);
    d->pid = 0;
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    return 128 + WTERMSIG(st);
}

int fw_t_http(int port, const char *method, const char *path, const char *token,
              const char *req_body, char **body)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (body)
        *body = NULL;
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    size_t blen = req_body ? strlen(req_body) : 0;
    char *req = malloc(blen + 1024);
    int n = snprintf(req, blen + 1024,
                     "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n%s%s%s\r\n",
                     method, path, blen, token ? "Authorization: Bearer " : "", token ? token : "",
                     token ? "\r\n" : "");
    memcpy(req + n, req_body ? req_body : "", blen);
    ssize_t w = write(fd, req, (size_t)n + blen);
    free(req);
    if (w < 0) {
        close(fd);
        return -1;
    }
    size_t cap = 8192, len = 0;
    char *resp = malloc(cap);
    for (;;) {
        if (len + 4096 > cap) {
            cap *= 2;
            resp = realloc(resp, cap);
        }
        ssize_t r = read(fd, resp + len, cap - len - 1);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    resp[len] = 0;
    int status = -1;
    if (sscanf(resp, "HTTP/%*s %d", &status) != 1)
        status = -1;
    if (body) {
        char *b = strstr(resp, "\r\n\r\n");
        *body = strdup(b ? b + 4 : "");
    }
    free(resp);
    return status;
}

int64_t fw_t_sql_int(const char *db_path, const char *sql)
{
    sqlite3 *db;
    int64_t v = -1;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return -1;
    }
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK) {
        if (sqlite3_step(s) == SQLITE_ROW)
            v = sqlite3_column_int64(s, 0);
        sqlite3_finalize(s);
    }
    sqlite3_close(db);
    return v;
}

static void on_pub_error(jsCtx *js, jsPubAckErr *pae, void *closure)
{
    (void)js, (void)pae;
    (*(int *)closure)++;
}

typedef struct sql_wait {
    const char *db, *sql;
    int64_t want;
} sql_wait;

static int sql_reaches(void *ud)
{
    sql_wait *w = ud;
    return fw_t_sql_int(w->db, w->sql) >= w->want;
}

int fw_t_wait_sql(const char *db_path, const char *sql, int64_t want, int timeout_ms)
{
    sql_wait w = {db_path, sql, want};
    return fw_t_wait_until(sql_reaches, &w, timeout_ms);
}

int fw_t_js_publish(const char *url, int n, const char *const *subjects, const char *const *bodies)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    int acked = 0, failed = 0;
    if (natsConnection_ConnectTo(&nc, url) != NATS_OK)
        return 0;
    jsOptions o;
    jsOptions_Init(&o);
    o.PublishAsync.MaxPending = 4096;
    o.PublishAsync.ErrHandler = on_pub_error;
    o.PublishAsync.ErrHandlerClosure = &failed;
    if (natsConnection_JetStream(&js, nc, &o) != NATS_OK)
        goto out;
    /* The stream the daemon would create: publishing before it exists would
     * lose messages to "no responders". */
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    if (js_GetStreamInfo(&si, js, "FISCAL", NULL, &jerr) != NATS_OK) {
        jsStreamConfig sc;
        jsStreamConfig_Init(&sc);
        sc.Name = "FISCAL";
        const char *subj[1] = {"fiscal.>"};
        sc.Subjects = subj;
        sc.SubjectsLen = 1;
        sc.Storage = js_FileStorage;
        if (js_AddStream(&si, js, &sc, NULL, &jerr) != NATS_OK)
            goto out;
    }
    jsStreamInfo_Destroy(si);
    for (int i = 0; i < n; i++) {
        if (js_PublishAsync(js, subjects[i], bodies[i], (int)strlen(bodies[i]), NULL) != NATS_OK)
            break;
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 60000;
    if (js_PublishAsyncComplete(js, &po) == NATS_OK)
        acked = n - failed;
    else {
        natsMsgList pending = {0};
        if (js_PublishAsyncGetPendingList(&pending, js) == NATS_OK) {
            acked = n - pending.Count;
            natsMsgList_Destroy(&pending);
        }
    }
out:
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return acked;
}

void fw_t_msgs_add(fw_t_msgs *m, const char *subject, int valid, const char *fmt, ...)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 1024;
        m->subjects = realloc(m->subjects, (size_t)m->cap * sizeof *m->subjects);
        m->bodies = realloc(m->bodies, (size_t)m->cap * sizeof *m->bodies);
        if (!m->subjects || !m->bodies)
            abort();
    }
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    m->subjects[m->n] = strdup(subject);
    m->bodies[m->n] = strdup(buf);
    m->n++;
    if (valid)
        m->valid++;
    else
        m->malformed++;
}

void fw_t_msgs_free(fw_t_msgs *m)
{
    for (int i = 0; i < m->n; i++) {
        free(m->subjects[i]);
        free(m->bodies[i]);
    }
    free(m->subjects);
    free(m->bodies);
}

int fw_t_msgs_publish(const fw_t_msgs *m, const char *url)
{
    return fw_t_js_publish(url, m->n, (const char *const *)m->subjects,
                           (const char *const *)m->bodies);
}

fw_t_env *fw_t_env_new(const char *tag)
{
    fw_t_env *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->tmp = fw_t_tmpdir(tag);
    if (!e->tmp || fw_t_nats_start(&e->nats, e->tmp) != 0) {
        if (e->tmp)
            fw_t_rmtree(e->tmp);
        free(e->tmp);
        free(e);
        return NULL;
    }
    return e;
}

void fw_t_env_free(fw_t_env *e)
{
    if (!e)
        return;
    if (e->d.pid)
        fw_t_daemon_kill(&e->d, SIGKILL);
    fw_t_nats_stop(&e->nats);
    fw_t_rmtree(e->tmp);
    free(e->tmp);
    free(e);
}
