"""show_version.py PORT: `version` and `show modules` through greenswitch, parsed
the way scripts written for FreeSWITCH parse them — the version numbers by
regular expression, the module rows as CSV by column name, the JSON and XML
forms with the standard library."""

import csv
import io
import json
import re
import sys
import xml.etree.ElementTree as ET

from esl_common import check, connect, say

con = connect(sys.argv[1])

version = con.send("api version").data
m = re.match(r"FreeSWITCH Version (\d+)\.(\d+)\.(\d+)\S* \((.*)\)\n$", version)
check(m is not None, "version %r" % version)
check((int(m.group(1)), int(m.group(2)), int(m.group(3))) >= (1, 10, 0), "version numbers %r" % version)
check("hotswitch" in version, "the version names hotswitch %r" % version)
short = con.send("api version short").data
check(re.match(r"^\d+\.\d+\.\d+", short) is not None, "version short %r" % short)
status = con.send("api status").data
check(re.search(r"^FreeSWITCH \(Version [^)]+\) is ready$", status, re.M) is not None, "status %r" % status)

text = con.send("api show modules").data
body, total = text.rsplit("\n\n", 1)
rows = list(csv.DictReader(io.StringIO(body)))
check(total.strip() == "%d total." % len(rows), "total line %r for %d rows" % (total, len(rows)))
check(list(rows[0].keys()) == ["type", "name", "ikey", "filename"], "columns %r" % list(rows[0].keys()))
loopback = {(r["type"], r["name"]) for r in rows if r["ikey"] == "mod_loopback"}
check(loopback == {("endpoint", "loopback"), ("endpoint", "null")}, "mod_loopback's rows %r" % loopback)
check(all(r["filename"].endswith(".so") for r in rows if r["ikey"] == "mod_loopback"), "filenames")

js = json.loads(con.send("api show modules as json").data)
check(js["row_count"] == len(rows), "json row_count %r" % js["row_count"])
check(js["rows"] == rows, "the JSON rows are the CSV rows")

root = ET.fromstring(con.send("api show modules as xml").data)
check(root.tag == "result" and int(root.get("row_count")) == len(rows), "xml root %r" % root.attrib)
xml_rows = [{c.tag: (c.text or "") for c in row} for row in root.findall("row")]
check(xml_rows == rows, "the XML rows are the CSV rows")

piped = con.send("api show modules as delim |").data
check(piped.splitlines()[0] == "type|name|ikey|filename", "delim | title %r" % piped.splitlines()[0])

say("OK %d rows" % len(rows))
con.stop()
