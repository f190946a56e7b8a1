"""auth.py PORT PASSWORD: prints 'accepted' (exit 0) or 'rejected: …' (exit 3)."""

import sys

from esl_common import connect, say

port, password = sys.argv[1], sys.argv[2]
try:
    con = connect(port, password)
except ValueError as e:  # greenswitch: '-ERR invalid' → ValueError('Invalid password.')
    say("rejected: %s" % e)
    sys.exit(3)
say("accepted")
con.stop()
