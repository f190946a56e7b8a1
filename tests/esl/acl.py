"""acl.py PORT: from 127.0.0.1 the switch says text/rude-rejection; from
127.0.0.2 (which the test's ACL allows) it is served."""

import sys

from greenswitch.esl import InboundESL, NotConnectedError
import gevent.socket as socket

from esl_common import HOST, check, say


class FromAddress(InboundESL):
    """greenswitch's client, connecting from a chosen source address and
    remembering each packet's Content-Type."""

    def __init__(self, source, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.source = source
        self.content_types = []

    def connect(self):
        real = socket.socket

        def bound(*a, **kw):
            s = real(*a, **kw)
            s.bind((self.source, 0))
            return s

        socket.socket = bound
        try:
            super().connect()
        finally:
            socket.socket = real

    def handle_event(self, event):
        self.content_types.append(event.headers.get("Content-Type"))
        super().handle_event(event)


port = int(sys.argv[1])
refused = FromAddress("127.0.0.1", HOST, port, "ClueCon", timeout=5)
try:
    refused.connect()
    check(False, "127.0.0.1 was let in")
except NotConnectedError as e:
    check(refused.content_types == ["text/rude-rejection"], "saw %r" % refused.content_types)
    say("127.0.0.1 rejected: %s" % e)

allowed = FromAddress("127.0.0.2", HOST, port, "ClueCon", timeout=5)
allowed.connect()
check(allowed.send("api version").data.startswith("FreeSWITCH Version 1.10.12-hotswitch-"), "127.0.0.2 is served")
say("127.0.0.2 served")
allowed.stop()
