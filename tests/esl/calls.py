"""calls.py PORT: plain subscriptions, filters, originate events, sendmsg
execute and hangup, uuid_kill."""

import sys
import uuid as uuidlib

import gevent

from esl_common import Recorder, check, connect, originate, reply_text, say

con = connect(sys.argv[1])
rec = Recorder(con)
a = str(uuidlib.uuid4())

r = con.send(
    "event plain CHANNEL_CREATE CHANNEL_ANSWER CHANNEL_PARK "
    "CHANNEL_EXECUTE_COMPLETE CHANNEL_HANGUP_COMPLETE"
)
check(reply_text(r) == "+OK event listener enabled plain", "event: %r" % reply_text(r))
r = con.send("filter Unique-ID " + a)
check(reply_text(r) == "+OK filter added. [Unique-ID]=[%s]" % a, "filter: %r" % reply_text(r))

originate(con, a)
for name in ("CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_PARK"):
    rec.wait(name + " of the A leg", lambda e, n=name: e.headers.get("Event-Name") == n
             and e.headers.get("Unique-ID") == a)
gevent.sleep(0.3)
others = [e for e in rec.events if e.headers.get("Unique-ID") != a]
check(not others, "the filter let through %s" % [e.headers.get("Unique-ID") for e in others])

# sendmsg execute: the application runs on the call.
r = con.send("sendmsg %s\ncall-command: execute\nexecute-app-name: set\nexecute-app-arg: esl_said=hello" % a)
check(reply_text(r) == "+OK", "sendmsg execute: %r" % reply_text(r))
rec.wait("set completing", lambda e: e.headers.get("Event-Name") == "CHANNEL_EXECUTE_COMPLETE"
         and e.headers.get("Application") == "set" and e.headers.get("Unique-ID") == a)
r = con.send("api uuid_getvar %s esl_said" % a)
check(r.data.strip() == "hello", "uuid_getvar after sendmsg: %r" % r.data)

r = con.send("sendmsg not-a-session\ncall-command: execute\nexecute-app-name: answer")
check(reply_text(r) == "-ERR invalid session id [not-a-session]", "bad uuid: %r" % reply_text(r))
r = con.send("sendmsg %s\ncall-command: nomedia" % a)
check(reply_text(r).startswith("-ERR"), "unsupported call-command: %r" % reply_text(r))

# uuid_kill ends the call: CHANNEL_HANGUP_COMPLETE.
r = con.send("api uuid_kill %s" % a)
check(r.data == "+OK\n", "uuid_kill: %r" % r.data)
ev = rec.wait("HANGUP_COMPLETE of the A leg", lambda e: e.headers.get("Event-Name") ==
              "CHANNEL_HANGUP_COMPLETE" and e.headers.get("Unique-ID") == a)
check(ev.headers.get("Hangup-Cause") == "NORMAL_CLEARING", "cause %r" % ev.headers.get("Hangup-Cause"))

# sendmsg hangup with a cause, on a second call.
r = con.send("filter delete Unique-ID " + a)
check(reply_text(r) == "+OK filter deleted. [Unique-ID][%s]" % a, "filter delete: %r" % reply_text(r))
b = str(uuidlib.uuid4())
con.send("filter Unique-ID " + b)
originate(con, b)
rec.wait("the second call parking", lambda e: e.headers.get("Event-Name") == "CHANNEL_PARK"
         and e.headers.get("Unique-ID") == b)
r = con.send("sendmsg %s\ncall-command: hangup\nhangup-cause: USER_BUSY" % b)
check(reply_text(r) == "+OK", "sendmsg hangup: %r" % reply_text(r))
ev = rec.wait("HANGUP_COMPLETE of the second call", lambda e: e.headers.get("Event-Name") ==
              "CHANNEL_HANGUP_COMPLETE" and e.headers.get("Unique-ID") == b)
check(ev.headers.get("Hangup-Cause") == "USER_BUSY", "cause %r" % ev.headers.get("Hangup-Cause"))

say("ok")
con.stop()
