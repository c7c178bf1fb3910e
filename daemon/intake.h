/*
 * intake.h - NATS JetStream intake on the libevent loop.
 *
 * One NATS connection, attached to the daemon's event_base with cnats's
 * libevent adapter, so its socket is read on the loop thread.  cnats still
 * delivers subscription callbacks on its own threads; those callbacks only
 * copy the message into a mutex-protected queue and wake the loop
 * (event_active).  Everything else - decoding, the store, Lua - happens on
 * the loop thread, in the handler given to fw_intake_new.
 *
 * Ordering and exactly-once.  The daemon keeps the stream sequence of the
 * last committed message in the store, in the same transaction as the
 * message's effects.  At start, and whenever the delivery may have a hole
 * (a reconnect, or a gap in the consumer's delivery sequence), a setup
 * thread (re)creates the durable push consumer with DeliverPolicy
 * by_start_sequence = last committed + 1 and a fresh deliver subject, so
 * messages always arrive in stream order and each is processed once:
 * blocking JetStream API calls never run on the loop thread (they would
 * time out: the loop is the one reading their replies).
 *
 * Messages from an older consumer generation are dropped unacked (the new
 * consumer delivers them again); a redelivery of a message at or below the
 * committed sequence is acked without processing.  The consumer's ack
 * policy is "all": an ack covers every earlier message, so the app acks
 * only the last message of what has become durable.
 *
 * The same connection publishes DLQ copies and alert changes.  The
 * pre-payment check (core NATS request/reply, queue group `fundwatch`) has
 * a connection of its own that writes each reply at once (no flusher
 * thread, no queueing behind acks).  With check.thread (the default) the
 * check thread owns that connection (daemon/precheck.h) and the intake has
 * none; else the intake has it and its requests reach the loop through the
 * same queue lock, served ahead of, and between, stream messages.
 */
#ifndef FW_INTAKE_H
#define FW_INTAKE_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/config.h"

/* The pre-payment check service (contract §3): core NATS request/reply. */
#define FW_CHECK_SUBJECT "fundwatch.check"
#define FW_CHECK_QUEUE "fundwatch"

struct event_base;
struct __natsConnection;
typedef struct fw_intake fw_intake;

typedef struct fw_intake_msg {
    char *subject;
    char *data;
    int len;
    char *reply;         /* $JS.ACK... for stream messages, the inbox for requests */
    uint64_t stream_seq; /* 0 for check requests */
    uint64_t consumer_seq;
    uint64_t pending; /* messages left in the stream for the consumer */
    int deliveries;
    int gen;      /* consumer generation */
    int is_check; /* a fundwatch.check request */
} fw_intake_msg;

/* Called on the loop thread with the messages that arrived, in order.
 * Check requests come in their own call (n may be 1) before stream
 * messages.  The intake frees the messages after the call; a handler that
 * acks later (once the batch is durable) takes the ack subject: it sets
 * m->reply to NULL and passes it to fw_intake_ack_reply later. */
typedef void (*fw_intake_handler)(void *ud, fw_intake_msg **msgs, int n);
/* Ask the app for the committed stream sequence (loop thread). */
typedef uint64_t (*fw_intake_committed_fn)(void *ud);

fw_intake *fw_intake_new(struct event_base *base, const fw_config *cfg, fw_intake_handler fn,
                         fw_intake_committed_fn committed, void *ud, char *err, int errlen);
/* Begin consuming after `committed` (0 = from the start of the stream). */
int fw_intake_start(fw_intake *in);
/* Stop new deliveries (SIGTERM): unsubscribe the consumer and the check
 * service.  Messages already queued are still handed to the handler. */
void fw_intake_stop(fw_intake *in);
/* Flush outgoing acks/publishes from a helper thread, then call done on
 * the loop thread. */
void fw_intake_flush_then(fw_intake *in, void (*done)(void *ud), void *ud);
void fw_intake_free(fw_intake *in);

/* Answer check requests that arrived while the handler is busy with a
 * batch: calls fn(ud, msg) for at most `max` queued requests (loop thread
 * only), so that a stream of checks cannot hold a batch back from its
 * commit.  Returns how many. */
int fw_intake_serve_checks(fw_intake *in, void (*fn)(void *ud, const fw_intake_msg *m), void *ud,
                           int max);

/* Connect a check-service connection (nats.url's servers, SendAsap,
 * reconnecting forever): the intake's own when check.thread is false, the
 * check thread's (daemon/precheck.h) otherwise.  A natsStatus. */
int fw_nats_connect_checks(const fw_config *cfg, struct __natsConnection **nc);

/* Max messages handed to the handler per call (the batch). */
void fw_intake_set_batch(fw_intake *in, int max);

void fw_intake_ack(fw_intake *in, const fw_intake_msg *m);
/* Ack by the reply subject taken from a message (see fw_intake_handler). */
void fw_intake_ack_reply(fw_intake *in, const char *reply);

/* Hold stream messages (hold = 1): the handler gets check requests only
 * until fw_intake_hold(in, 0).  The store uses it while a write
 * transaction must not start (a checkpoint's database fsync). */
void fw_intake_hold(fw_intake *in, int hold);
/* Publish with optional headers (hdr_keys/hdr_vals, nh entries). */
int fw_intake_publish(fw_intake *in, const char *subject, const char *data, int len,
                      const char *const *hdr_keys, const char *const *hdr_vals, int nh);
/* Reply to a check request. */
int fw_intake_reply(fw_intake *in, const fw_intake_msg *m, const char *data, int len);

/* Ready = connected, consumer in place and consuming.  Lag = the last
 * `pending` reported by the server. */
int fw_intake_ready(const fw_intake *in);
int fw_intake_connected(const fw_intake *in);
uint64_t fw_intake_lag(const fw_intake *in);
/* Queue depth (messages received, not yet handled). */
int fw_intake_queued(fw_intake *in);

#endif
