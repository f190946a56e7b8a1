#!/bin/bash
# Makes a configuration for SIP-over-TLS load tests: tests/sipp/bench-conf.sh
# (no auth-calls, loopback trusted, no session-rate limit, 7000 = answer +
# park, 9196 = echo) with TLS on the internal profile, a self-signed
# certificate for 127.0.0.1 as agent.pem (and cafile.pem) in <dir>/certs,
# and the profile's ports moved when SIP_PORT / TLS_PORT say so (default
# 5060 / 5061). Usage: bench/sip-tls-conf.sh [dir]
set -e
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$("$root/tests/sipp/bench-conf.sh" "${1:-/tmp/hotswitch-bench-tls-conf}")
sip_port=${SIP_PORT:-5060}
tls_port=${TLS_PORT:-5061}
mkdir -p "$dir/certs"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout "$dir/certs/key.pem" -out "$dir/certs/cert.pem" -days 30 \
  -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>/dev/null
cat "$dir/certs/cert.pem" "$dir/certs/key.pem" >"$dir/certs/agent.pem"
cp "$dir/certs/cert.pem" "$dir/certs/cafile.pem"
sed -i "s/internal_ssl_enable=false/internal_ssl_enable=true/; \
s/internal_tls_port=5061/internal_tls_port=$tls_port/; \
s/internal_sip_port=5060/internal_sip_port=$sip_port/; \
s|</include>|  <X-PRE-PROCESS cmd=\"set\" data=\"certs_dir=$dir/certs\"/>\n</include>|" "$dir/vars.xml"
echo "$dir"
