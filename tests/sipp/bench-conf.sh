#!/bin/sh
# Makes a configuration for SIP load tests from conf/: the internal profile
# without auth-calls (sipp does not authenticate) and trusting loopback, no session-rate limit,
# extension 7000 (answer, park) for signalling-only calls, 9196 (echo) for
# calls with media. Usage: tests/sipp/bench-conf.sh [dir] (default
# /tmp/hotswitch-bench-conf), then
#   ./target/release/hotswitch -conf <dir>
set -e
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${1:-/tmp/hotswitch-bench-conf}
rm -rf "$dir"
cp -r "$root/conf" "$dir"
sed -i 's/name="auth-calls" value="true"/name="auth-calls" value="false"/' "$dir/sip_profiles/internal.xml"
# Without auth-calls a caller apply-inbound-acl does not match is refused:
# trust the machine itself, where sipp runs.
sed -i 's/name="apply-inbound-acl" value="[^"]*"/name="apply-inbound-acl" value="loopback.auto"/' "$dir/sip_profiles/internal.xml"
sed -i 's/"max-sessions" value="[0-9]*"/"max-sessions" value="50000"/; s/"sessions-per-second" value="[0-9]*"/"sessions-per-second" value="20000"/' \
  "$dir/autoload_configs/switch.conf.xml"
# MEDIA_LOOPS=N: switch.conf's media-loops (default: one per core).
if [ -n "$MEDIA_LOOPS" ]; then
  sed -i "s|<!-- <param name=\"media-loops\" value=\"0\"/> -->|<param name=\"media-loops\" value=\"$MEDIA_LOOPS\"/>|" \
    "$dir/autoload_configs/switch.conf.xml"
  grep -q "\"media-loops\" value=\"$MEDIA_LOOPS\"" "$dir/autoload_configs/switch.conf.xml" ||
    { echo "cannot set media-loops in $dir/autoload_configs/switch.conf.xml" >&2; exit 1; }
fi
sed -i "s|</include>|  <X-PRE-PROCESS cmd=\"set\" data=\"db_dir=$dir/db\"/>\n</include>|" "$dir/vars.xml"
sed -i 's|<load module="mod_cdr_csv"/>||' "$dir/autoload_configs/modules.conf.xml"
sed -i 's|<context name="default">|<context name="default">\n    <extension name="load-test"><condition field="destination_number" expression="^7000$"><action application="answer"/><action application="park"/></condition></extension>|' \
  "$dir/dialplan/default.xml"
echo "$dir"
