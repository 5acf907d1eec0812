/* metrics_http: the /metrics endpoint every process serves, kept apart from metrics.c so the
 * registry itself does not depend on the HTTP server. */
#ifndef TEGULA_METRICS_HTTP_H
#define TEGULA_METRICS_HTTP_H

#include "http_server.h"

/* An http_handler: ctx is the metrics_registry (NULL when metrics are disabled → 404). */
void metrics_http_handle(http_request *req, void *registry);

#endif
