"""Shared helpers for the event-socket scripts: they drive hotswitch through
greenswitch (pip install greenswitch), the published FreeSWITCH event-socket
client, and exit non-zero with a FAIL line when something is not as
FreeSWITCH would have it."""

import sys
import time

import gevent
from greenswitch.esl import InboundESL, NotConnectedError  # noqa: F401

HOST = "127.0.0.1"
WAIT = 15.0


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def say(msg):
    print(msg, flush=True)


class Recorder:
    """Every event greenswitch hands over, in order."""

    def __init__(self, con):
        self.events = []
        con.register_handle("*", self.events.append)

    def wait(self, what, pred, timeout=WAIT):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for e in self.events:
                if pred(e):
                    return e
            gevent.sleep(0.02)
        names = [(e.headers.get("Event-Name"), e.headers.get("Unique-ID")) for e in self.events]
        fail("no %s within %ss; saw %s" % (what, timeout, names[-40:]))

    def named(self, name, uuid=None):
        return [
            e
            for e in self.events
            if e.headers.get("Event-Name") == name
            and (uuid is None or e.headers.get("Unique-ID") == uuid)
        ]


def connect(port, password="ClueCon"):
    con = InboundESL(HOST, int(port), password, timeout=5)
    con.connect()
    return con


def reply_text(resp):
    return resp.headers.get("Reply-Text", "")


def body(event):
    """greenswitch folds an event's body into its Content-Length header."""
    value = event.headers.get("Content-Length", "")
    parts = value.split("\n", 1)
    return parts[1].lstrip("\n") if len(parts) > 1 else ""


def originate(con, uuid, dest="answer\\,park"):
    r = con.send(
        "api originate {origination_uuid=%s}loopback/%s/default/inline &park()" % (uuid, dest)
    )
    check(r.data.strip() == "+OK " + uuid, "originate replied %r" % r.data)
    return r
