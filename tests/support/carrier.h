/*
 * carrier.h - a fake SMS carrier endpoint for tests and benchmarks.
 *
 * An evhttp server on 127.0.0.1 in its own thread with its own event_base,
 * so the code under test can drive its own loop.  By default it speaks the
 * generic-json protocol of contract §6 like a real carrier: it checks the
 * bearer token (when one is set), answers 200 {"code":"OK","message_id"}
 * and dedups by out_id (a repeated out_id gets the first message_id and is
 * not "sent" again).  In aliyun mode it parses the form body of SendSms,
 * verifies the RPC v1 signature with the given secret, and never dedups
 * (SendSms is not idempotent).
 *
 * Scripts (thread-safe, take effect for the next requests): answer the next
 * N requests with an HTTP status; delay every answer; answer THROTTLED for
 * one phone N times.  Every request is recorded.
 *
 * "Down then up": fw_t_carrier_stop() closes the port; start again on the
 * same port with fw_t_carrier_start(port).
 *
 * Build: this file has no library; a test or bench includes carrier.c.
 */
#ifndef FW_TEST_CARRIER_H
#define FW_TEST_CARRIER_H

#include <stddef.h>
#include <stdint.h>

typedef struct fw_t_carrier fw_t_carrier;

typedef struct fw_t_carrier_req {
    char out_id[128];
    char phone[32];
    char template_name[64];
    char content[2048];
    int64_t at_ms; /* CLOCK_MONOTONIC ms when received */
    int status;    /* HTTP status answered */
    char code[48]; /* "OK", "THROTTLED", "isv.…", "" */
    int duplicate; /* out_id seen and accepted before */
    int sig_ok;    /* aliyun mode: signature verified */
} fw_t_carrier_req;

/* port 0: a free port.  NULL on failure. */
fw_t_carrier *fw_t_carrier_start(int port);
/* Close the port, answer nothing more, free everything. */
void fw_t_carrier_stop(fw_t_carrier *c);
int fw_t_carrier_port(const fw_t_carrier *c);
/* "http://127.0.0.1:PORT/sms" */
void fw_t_carrier_url(int port, char *buf, size_t n);

void fw_t_carrier_set_token(fw_t_carrier *c, const char *token);
void fw_t_carrier_set_aliyun(fw_t_carrier *c, const char *access_key_secret);
void fw_t_carrier_fail_next(fw_t_carrier *c, int n, int status);
void fw_t_carrier_set_delay_ms(fw_t_carrier *c, int ms);
void fw_t_carrier_throttle(fw_t_carrier *c, const char *phone, int n); /* n < 0: always */

int fw_t_carrier_count(fw_t_carrier *c);                            /* requests received */
int fw_t_carrier_unique(fw_t_carrier *c);                           /* distinct out_ids accepted */
int fw_t_carrier_count_out_id(fw_t_carrier *c, const char *out_id); /* requests with it */
/* Requests answered "OK" (a deduped repeat is not counted) in the busiest
 * 1-second window. */
int fw_t_carrier_max_per_second(fw_t_carrier *c);
/* Copy of request i (0-based); 0 or -1. */
int fw_t_carrier_get(fw_t_carrier *c, int i, fw_t_carrier_req *out);

#endif
