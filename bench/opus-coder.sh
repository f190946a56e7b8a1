#!/bin/bash
# libopus alone, on this machine (BENCHMARKS.md, "Opus transcoding"): the
# codec's share of a transcoded call, to set beside bench/opus-transcode.sh.
# Builds bench/opus_coder.c against the system's libopus (Debian's
# libopus-dev, the library mod_sofia links) and runs it.
#
#   bench/opus-coder.sh [PAIRS=200] [COMPLEXITY=5] [FRAMES=500] [RATE=8000]
set -e
here=$(dirname "$0")
bin=$(mktemp /tmp/hotswitch-opus-coder.XXXXXX)
trap 'rm -f "$bin"' EXIT
cc -O2 -o "$bin" "$here/opus_coder.c" $(pkg-config --cflags --libs opus) -lm
"$bin" "$@"
