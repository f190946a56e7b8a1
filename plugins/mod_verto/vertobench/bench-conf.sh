#!/bin/sh
# Makes a configuration for verto load tests from conf/: mod_verto loaded
# (profile "ws" on 127.0.0.1:<port>, default 8081, its wss listener on
# <port>+1), no mod_sofia and no mod_cdr_csv (the bench is WebRTC only, and
# leaves 5060 to others), no session-rate limit, 9196 (echo) as in conf/;
# db and certificates inside <dir>. Usage:
#   plugins/mod_verto/vertobench/bench-conf.sh [dir] [port]   (default /tmp/hotswitch-verto-bench-conf 8081)
# then
#   ./target/release/hotswitch -conf <dir> -nc
set -e
root=$(cd "$(dirname "$0")/../../.." && pwd)
dir=${1:-/tmp/hotswitch-verto-bench-conf}
port=${2:-8081}
rm -rf "$dir"
cp -r "$root/conf" "$dir"
sed -i 's|<load module="mod_cdr_csv"/>||; s|<load module="mod_sofia"/>||; s|<load module="mod_dptools"/>|<load module="mod_dptools"/>\n    <load module="mod_verto"/>|' \
  "$dir/autoload_configs/modules.conf.xml"
sed -i "s|\"bind-local\" value=\"127.0.0.1:8081\"|\"bind-local\" value=\"127.0.0.1:$port\"|; s|\"bind-local\" value=\"127.0.0.1:8082\"|\"bind-local\" value=\"127.0.0.1:$((port + 1))\"|" \
  "$dir/autoload_configs/verto.conf.xml"
sed -i 's/"max-sessions" value="[0-9]*"/"max-sessions" value="50000"/; s/"sessions-per-second" value="[0-9]*"/"sessions-per-second" value="20000"/' \
  "$dir/autoload_configs/switch.conf.xml"
sed -i "s|</include>|  <X-PRE-PROCESS cmd=\"set\" data=\"db_dir=$dir/db\"/>\n  <X-PRE-PROCESS cmd=\"set\" data=\"certs_dir=$dir/certs\"/>\n</include>|" "$dir/vars.xml"
echo "$dir"
