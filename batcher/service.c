#include "service.h"

#include <stdio.h>

void batcher_service_reply(void *arg, void *token, const batcher_result *result)
{
    (void)arg;
    Tegula__SubmitReply r = TEGULA__SUBMIT_REPLY__INIT;
    r.status = result->status;
    r.leaf_index = result->leaf_index;
    r.timestamp = result->timestamp;
    r.message = (char *)result->message;
    Tegula__Envelope env = TEGULA__ENVELOPE__INIT;
    env.body_case = TEGULA__ENVELOPE__BODY_SUBMIT_REPLY;
    env.submit_reply = &r;
    rpc_reply(token, &env);
}

void batcher_service_handle(void *arg, Tegula__Envelope *request, rpc_reply_token *token)
{
    batcher *b = arg;
    if (request->body_case == TEGULA__ENVELOPE__BODY_SUBMIT && request->submit) {
        /* batcher_submit copies what it keeps, so the request can go right after. */
        batcher_submit(b, request->submit, token);
    } else if (request->body_case == TEGULA__ENVELOPE__BODY_PING) {
        Tegula__Pong pong = TEGULA__PONG__INIT;
        pong.role = "batcher";
        pong.ready = batcher_ready(b, NULL);
        Tegula__Envelope env = TEGULA__ENVELOPE__INIT;
        env.body_case = TEGULA__ENVELOPE__BODY_PONG;
        env.pong = &pong;
        rpc_reply(token, &env);
    } else {
        char message[96];
        snprintf(message, sizeof message, "a batcher does not answer %s messages",
                 rpc_body_name(request));
        batcher_result r = {TEGULA__STATUS__STATUS_BAD_REQUEST, 0, 0, message};
        batcher_service_reply(NULL, token, &r);
    }
    rpc_envelope_free(request);
}
