/* service: the batcher's rpc face. SubmitRequest → batcher_submit → SubmitReply;
 * Ping → Pong{role "batcher", ready}; any other message → SubmitReply BAD_REQUEST.
 *
 *   batcher_options.reply = batcher_service_reply;            (tokens are rpc_reply_token *)
 *   rpc_server_open(listen, &opts, batcher_service_handle, the_batcher, &err);
 */
#ifndef TEGULA_BATCHER_SERVICE_H
#define TEGULA_BATCHER_SERVICE_H

#include "batching.h"
#include "rpc.h"

/* A batcher_reply_fn: answers the rpc_reply_token with a SubmitReply. arg is unused. */
void batcher_service_reply(void *arg, void *token, const batcher_result *result);
/* An rpc_handler_fn; arg is the batcher. Takes ownership of request (frees it). */
void batcher_service_handle(void *arg, Tegula__Envelope *request, rpc_reply_token *token);

#endif
