#!/bin/sh
# lb-entrypoint: waits until the frontends' name resolves, writes the upstream list and the
# TLS listener (only when /etc/tegula-lb/tls/tls.crt and tls.key exist), then runs nginx in
# the foreground. nginx resolves the name once, at start: after changing the number of
# frontends, restart the load balancer.
set -eu
frontend=${TEGULA_FRONTEND:-frontend:8080}
host=${frontend%:*}
tls=/etc/tegula-lb/tls
run=/run/tegula-lb

i=0
until getent hosts "$host" >/dev/null 2>&1; do
    i=$((i + 1))
    if [ $i -gt 600 ]; then
        echo "lb-entrypoint: $host does not resolve" >&2
        exit 1
    fi
    sleep 0.1
done
echo "server $frontend max_fails=1 fail_timeout=2s;" >"$run/upstream.conf"
if [ -f "$tls/tls.crt" ] && [ -f "$tls/tls.key" ]; then
    cat >"$run/tls.conf" <<EOT
listen 8443 ssl;
ssl_certificate $tls/tls.crt;
ssl_certificate_key $tls/tls.key;
ssl_protocols TLSv1.2 TLSv1.3;
ssl_session_cache shared:tls:10m;
EOT
    echo "lb-entrypoint: HTTPS on 8443 with $tls/tls.crt" >&2
else
    : >"$run/tls.conf"
fi
exec nginx -e stderr -g 'daemon off;'
