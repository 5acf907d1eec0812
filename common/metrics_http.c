#include "metrics_http.h"

#include "buffer.h"
#include "metrics.h"

void metrics_http_handle(http_request *req, void *registry)
{
    static const http_header headers[] = {{"Content-Type", METRICS_CONTENT_TYPE}, {NULL, NULL}};
    if (!registry) {
        http_respond_text(req, 404, "metrics are disabled (metrics.enabled: false)\n");
        return;
    }
    buffer out = {0};
    if (metrics_render(registry, &out) != 0) {
        buffer_free(&out);
        http_respond_text(req, 500, "out of memory\n");
        return;
    }
    size_t len = 0;
    uint8_t *body = buffer_steal(&out, &len);
    http_respond_owned(req, 200, headers, body, len);
}
