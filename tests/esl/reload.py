"""reload.py PORT: stays connected until `reload mod_event_socket` drops the
connection with a disconnect notice, then connects again and is served."""

import sys
import time

import gevent

from esl_common import check, connect, fail, say

port = sys.argv[1]
con = connect(port)
notices = []
con.register_handle("DISCONNECT", notices.append)
check(con.send("api version").data.startswith("FreeSWITCH Version 1.10.12-hotswitch-"), "served before the reload")
say("connected")

deadline = time.time() + 30
while not notices and time.time() < deadline:
    gevent.sleep(0.05)
check(notices, "no disconnect notice within 30 s")
check(notices[0].headers.get("Content-Type") == "text/disconnect-notice", "notice %r" % notices[0].headers)
say("disconnected")

deadline = time.time() + 30
while True:
    try:
        con = connect(port)
        break
    except Exception as e:  # refused while the module is reloading
        if time.time() > deadline:
            fail("could not reconnect: %s" % e)
        gevent.sleep(0.1)
check(con.send("api version").data.startswith("FreeSWITCH Version 1.10.12-hotswitch-"), "served after the reload")
say("reconnected")
con.stop()
