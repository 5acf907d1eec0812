/* service: Batch and Ping over NNG, handed to the pool and the log. */
#include "service.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "rpc.h"

struct seq_service {
    seq_service_config cfg;
    rpc_server *server;
};

static void release_envelope(void *env)
{
    rpc_envelope_free(env);
}

static void send_batch_reply(rpc_reply_token *token, uint64_t batch_seq, Tegula__Status status,
                             const pool_result *results, size_t count, const char *message)
{
    Tegula__BatchReply reply = TEGULA__BATCH_REPLY__INIT;
    reply.batch_seq = batch_seq;
    reply.status = status;
    reply.message = (char *)(message ? message : "");
    Tegula__EntryResult *items = NULL;
    Tegula__EntryResult **ptrs = NULL;
    if (count > 0) {
        items = calloc(count, sizeof *items);
        ptrs = calloc(count, sizeof *ptrs);
        if (items == NULL || ptrs == NULL) {
            /* Without memory for the results, fail the batch as a whole. */
            reply.status = TEGULA__STATUS__STATUS_UNAVAILABLE;
            count = 0;
        }
        for (size_t i = 0; i < count; i++) {
            tegula__entry_result__init(&items[i]);
            items[i].status = (Tegula__Status)results[i].status;
            items[i].leaf_index = results[i].leaf_index;
            items[i].timestamp = results[i].timestamp;
            ptrs[i] = &items[i];
        }
    }
    reply.n_results = count;
    reply.results = ptrs;
    Tegula__Envelope env = TEGULA__ENVELOPE__INIT;
    env.body_case = TEGULA__ENVELOPE__BODY_BATCH_REPLY;
    env.batch_reply = &reply;
    if (rpc_reply(token, &env) != 0)
        log_warn("could not encode a batch reply", "batch_seq=%llu results=%zu",
                 (unsigned long long)batch_seq, count);
    free(items);
    free(ptrs);
}

static void pool_replied(void *token, uint64_t batch_seq, const pool_result *results,
                         size_t count)
{
    if (results == NULL && count == 0)
        send_batch_reply(token, batch_seq, TEGULA__STATUS__STATUS_UNAVAILABLE, NULL, 0,
                         "sequencer out of memory");
    else
        send_batch_reply(token, batch_seq, TEGULA__STATUS__STATUS_OK, results, count, NULL);
}

static void handle(void *arg, Tegula__Envelope *req, rpc_reply_token *token)
{
    seq_service *s = arg;
    if (req->body_case == TEGULA__ENVELOPE__BODY_BATCH && req->batch != NULL) {
        Tegula__Batch *b = req->batch;
        const char *why = NULL;
        if (b->log == NULL || strcmp(b->log, s->cfg.log_name) != 0)
            why = "this sequencer serves another log";
        else if (s->cfg.readonly)
            why = "the log is read-only";
        if (why != NULL) {
            send_batch_reply(token, b->batch_seq, TEGULA__STATUS__STATUS_BAD_REQUEST, NULL, 0,
                             why);
            rpc_envelope_free(req);
            return;
        }
        pool_request pr = {.batch = b, .release = release_envelope, .release_ctx = req,
                           .reply = pool_replied, .reply_ctx = token};
        pool_add(s->cfg.pool, &pr);
        return;
    }
    Tegula__Envelope env = TEGULA__ENVELOPE__INIT;
    Tegula__Pong pong = TEGULA__PONG__INIT;
    if (req->body_case == TEGULA__ENVELOPE__BODY_PING) {
        pong.role = "sequencer";
        pong.log = (char *)s->cfg.log_name;
        pong.tree_size = seq_log_public_size(s->cfg.log);
        pong.ready = seq_log_ready(s->cfg.log);
        env.body_case = TEGULA__ENVELOPE__BODY_PONG;
        env.pong = &pong;
    }
    rpc_reply(token, &env);
    rpc_envelope_free(req);
}

seq_service *seq_service_start(const seq_service_config *cfg, error *err)
{
    seq_service *s = calloc(1, sizeof *s);
    if (s == NULL) {
        error_set(err, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    s->server = rpc_server_open(cfg->url, NULL, handle, s, err);
    if (s->server == NULL) {
        error_wrap(err, "listening on %s", cfg->url);
        free(s);
        return NULL;
    }
    return s;
}

int seq_service_port(const seq_service *s)
{
    return rpc_server_port(s->server);
}

void seq_service_stop(seq_service *s, int wait_ms)
{
    if (s == NULL)
        return;
    rpc_server_close(s->server, wait_ms);
    free(s);
}
