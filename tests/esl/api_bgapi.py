"""api_bgapi.py PORT: api and bgapi replies, and bgapi's BACKGROUND_JOB."""

import sys

from esl_common import Recorder, body, check, connect, reply_text, say

con = connect(sys.argv[1])
rec = Recorder(con)

r = con.send("api version")
check(r.headers.get("Content-Type") == "api/response", "api content type %r" % r.headers)
check(r.data.startswith("FreeSWITCH Version 1.10.12-hotswitch-"), "api version replied %r" % r.data)
check(int(r.headers["Content-Length"]) == len(r.data), "Content-Length matches the body")

r = con.send("api no_such_command with args")
check(r.data == "-ERR no_such_command Command not found!\n", "unknown api replied %r" % r.data)

r = con.send("event plain BACKGROUND_JOB")
check(reply_text(r) == "+OK event listener enabled plain", "event replied %r" % reply_text(r))

r = con.send("bgapi version")
text = reply_text(r)
check(text.startswith("+OK Job-UUID: "), "bgapi replied %r" % text)
job = text[len("+OK Job-UUID: "):]
check(r.headers.get("Job-UUID") == job, "Job-UUID header %r" % r.headers)
ev = rec.wait("BACKGROUND_JOB " + job, lambda e: e.headers.get("Job-UUID") == job)
check(ev.headers.get("Job-Command") == "version", "Job-Command %r" % ev.headers)
check(body(ev).startswith("FreeSWITCH Version 1.10.12-hotswitch-"), "job output %r" % body(ev))

r = con.send("bgapi echo hello there\nJob-UUID: client-chosen-job-1")
check(reply_text(r) == "+OK Job-UUID: client-chosen-job-1", "bgapi replied %r" % reply_text(r))
ev = rec.wait("the client's job", lambda e: e.headers.get("Job-UUID") == "client-chosen-job-1")
check(ev.headers.get("Job-Command-Arg") == "hello there", "Job-Command-Arg %r" % ev.headers)
# greenswitch strips header values, and so the body folded into one.
check(body(ev).strip() == "hello there", "echo output %r" % body(ev))

say("ok")
con.stop()
