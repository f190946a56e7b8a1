"""json_events.py PORT: `event json`. greenswitch parses plain events only,
so this extends its packet handler to decode text/event-json bodies; the
connection, auth and commands are greenswitch's own."""

import json
import sys
import uuid as uuidlib

from greenswitch.esl import ESLEvent, InboundESL

from esl_common import HOST, Recorder, check, originate, reply_text, say


class JsonInboundESL(InboundESL):
    def handle_event(self, event):
        if event.headers.get("Content-Type") == "text/event-json":
            length = int(event.headers["Content-Length"])
            data = self._read_socket(self.sock_file, length)
            decoded = ESLEvent("")
            decoded.headers = json.loads(data)
            decoded.headers["Content-Type"] = "text/event-json"
            self._esl_event_queue.put(decoded)
            return
        super().handle_event(event)


con = JsonInboundESL(HOST, int(sys.argv[1]), "ClueCon", timeout=5)
con.connect()
rec = Recorder(con)
a = str(uuidlib.uuid4())
r = con.send("event json CHANNEL_CREATE CHANNEL_PARK")
check(reply_text(r) == "+OK event listener enabled json", "event json: %r" % reply_text(r))
originate(con, a)
ev = rec.wait("a JSON CHANNEL_PARK", lambda e: e.headers.get("Event-Name") == "CHANNEL_PARK"
              and e.headers.get("Unique-ID") == a)
check(ev.headers.get("Content-Type") == "text/event-json", "framed as json")
create = rec.named("CHANNEL_CREATE", a)
check(len(create) == 1, "one CHANNEL_CREATE for the A leg, got %d" % len(create))
con.send("api uuid_kill " + a)
say("ok")
con.stop()
