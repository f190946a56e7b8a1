#!/usr/bin/env python3
"""Live-reload benchmark (issue 17): calls with RTP both ways through
`reload mod_sofia` and `reload mod_dptools`.

The switch runs the load-test configuration of tests/sipp/bench-conf.sh.
sipp places calls at --rate per second to 9196 (echo), each --call-seconds
long with RTP both ways (tests/sipp/uac_stream_reinvite.xml: RTP streamed
at 50 packets/s, a re-INVITE half-way, then BYE), so about rate x seconds
calls are up at once. Beside it, --probes calls placed by this script
itself (same shape: INVITE, RTP at 50 packets/s, re-INVITE half-way, BYE)
time every echoed packet, which sipp cannot. Once the load is up, the
switch runs `reload mod_sofia` every --interval seconds, --reloads times,
and `reload mod_dptools` half an interval after each.

Reported: sipp's failed calls (and why: timeouts and retransmission
limits are unanswered requests, INVITE or in-dialog), the probes' failed
calls, unanswered in-dialog requests (re-INVITE, BYE), RTP loss and the
longest gap between echoed packets, the reload replies that were not +OK
and how long reloads took, the module copies still mapped once every call
has ended, and the switch's RSS idle before and after the run.

Run from the repository root, release build:

    cargo build --release --workspace
    bench/sofia_reload.py                       # 200/s, 10 s calls, 100 + 100 reloads
    bench/sofia_reload.py --smoke               # a few seconds at 5 calls/s

Needs sipp (3.6 with RTP streaming) on PATH; ports 5060 (SIP), 5070
(sipp), 40000 up (sipp's RTP) and 8021 (event socket) free, or others
given with --port, --sipp-port, --sipp-media-port, --esl-port.
"""

import argparse
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

# Linux's SO_TIMESTAMPNS (the socket module does not name it).
SO_TIMESTAMPNS = 35

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Esl:
    """A minimal event-socket client: api commands, one at a time."""

    def __init__(self, port, password="ClueCon"):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.buf = b""
        self._read()  # auth/request
        self.s.sendall(f"auth {password}\n\n".encode())
        head, _ = self._read()
        if "+OK" not in head:
            raise RuntimeError(f"event socket auth refused: {head}")

    def _read(self):
        while b"\n\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise RuntimeError("event socket closed")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\n\n", 1)
        head = head.decode(errors="replace")
        m = re.search(r"Content-Length: (\d+)", head)
        body = b""
        if m:
            n = int(m.group(1))
            while len(self.buf) < n:
                chunk = self.s.recv(65536)
                if not chunk:
                    raise RuntimeError("event socket closed")
                self.buf += chunk
            body, self.buf = self.buf[:n], self.buf[n:]
        return head, body.decode(errors="replace")

    def api(self, cmd):
        self.s.sendall(f"api {cmd}\n\n".encode())
        while True:
            head, body = self._read()
            if "api/response" in head:
                return body


def wait_port(port, kind, within=30):
    deadline = time.time() + within
    while time.time() < deadline:
        try:
            if kind == "tcp":
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return  # bound by the switch
            finally:
                s.close()
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"nothing on {kind} port {port}")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def status_field(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split()[1]
    return "?"


def mapped_copies(pid, module):
    """Distinct mapped shadow copies of `module`'s library."""
    paths = set()
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and module in parts[5] and "hotswitch-shadow-" in parts[5]:
                paths.add(parts[5])
    return len(paths)


# --- probe calls: this script's own UAC, timing every echoed packet ---------

class Probe(threading.Thread):
    """Places calls one after another until told to stop."""

    def __init__(self, n, args, stats, lock, stop):
        super().__init__(daemon=True)
        self.n, self.args, self.stats, self.lock, self.stop = n, args, stats, lock, stop

    def run(self):
        k = 0
        while not self.stop.is_set():
            k += 1
            try:
                self.call(f"probe-{self.n}-{k}-{random.getrandbits(32):08x}")
            except Exception as e:  # a probe bug must not hide the others' figures
                with self.lock:
                    self.stats["errors"].append(repr(e))

    def sip(self, sock, msg, want_method, cseq, retrans=True):
        """Sends `msg` again on timer A/E (from 500 ms, doubling to 4 s, 32 s in
        all) until a final response for `cseq` comes; returns its code (None:
        no answer) and keeps the To tag and the SDP's media address."""
        t1, deadline, wait = 0.5, time.time() + 32, 0.5
        sock.sendto(msg, self.target)
        next_send = time.time() + t1
        while time.time() < deadline:
            sock.settimeout(max(0.01, min(next_send, deadline) - time.time()))
            try:
                data, _ = sock.recvfrom(65536)
            except socket.timeout:
                if retrans:
                    sock.sendto(msg, self.target)
                wait = min(wait * 2, 4.0)
                next_send = time.time() + wait
                continue
            text = data.decode(errors="replace")
            if not text.startswith("SIP/2.0 "):
                if text.split(" ", 1)[0] in ("BYE", "OPTIONS", "INFO", "UPDATE"):
                    sock.sendto(self.answer(text), self.target)
                continue
            code = int(text[8:11])
            m = re.search(r"\r\nCSeq:\s*(\d+)\s+(\w+)", text, re.I)
            if not m or int(m.group(1)) != cseq or m.group(2) != want_method:
                continue
            if code >= 200:
                tag = re.search(r"\r\nTo:[^\r]*;tag=([^;\r\s>]+)", text, re.I)
                if tag:
                    self.to_tag = tag.group(1)
                target = parse_sdp_target(text)
                if target:
                    self._media = target
                return code
        return None


    def answer(self, req):
        heads = [l for l in req.split("\r\n") if re.match(r"(Via|From|To|Call-ID|CSeq):", l, re.I)]
        return ("SIP/2.0 200 OK\r\n" + "\r\n".join(heads) + "\r\nContent-Length: 0\r\n\r\n").encode()

    def request(self, method, cseq, call_id, sdp=None, cseq_method=None):
        a = self.args
        to_tag = f";tag={self.to_tag}" if self.to_tag else ""
        body = sdp or ""
        lines = [
            f"{method} sip:9196@127.0.0.1:{a.port} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.sip_port};branch=z9hG4bK{random.getrandbits(64):016x};rport",
            f"From: <sip:probe@127.0.0.1:{self.sip_port}>;tag={self.from_tag}",
            f"To: <sip:9196@127.0.0.1:{a.port}>{to_tag}",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} {cseq_method or method}",
            f"Contact: <sip:probe@127.0.0.1:{self.sip_port}>",
            "Max-Forwards: 70",
        ]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()

    def stream(self, rtp, to, seconds, state):
        """50 packets/s to `to` for `seconds`, collecting echoes."""
        end = time.time() + seconds
        while time.time() < end:
            pkt = struct.pack("!BBHII", 0x80, 0, state["seq"] & 0xFFFF, (state["seq"] * 160) & 0xFFFFFFFF, self.ssrc)
            # The payload carries the packet's number, which the echo app
            # sends back unchanged (PCMU both ways): each echo is matched
            # with the time its packet left.
            state["sent_at"][state["seq"]] = time.time()
            rtp.sendto(pkt + struct.pack("!I", state["seq"]) + bytes([0xFF]) * 156, to)
            state["seq"] += 1
            state["sent"] += 1
            next_at = state["t0"] + state["seq"] * 0.02
            self.collect(rtp, state, next_at)
            if time.time() >= end:
                break

    def collect(self, rtp, state, until):
        while True:
            left = until - time.time()
            if left <= 0:
                return
            rtp.settimeout(left)
            try:
                data, anc, _, _ = rtp.recvmsg(2048, 64)
            except socket.timeout:
                return
            if len(data) > 12:
                # The kernel's receive time (SO_TIMESTAMPNS): what this
                # script's own scheduling does not move.
                now = time.time()
                for level, kind, value in anc:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
                        sec, nsec = struct.unpack("qq", value[:16])
                        now = sec + nsec / 1e9
                if len(data) >= 16:
                    left_at = state["sent_at"].pop(struct.unpack("!I", data[12:16])[0], None)
                    if left_at is None:
                        state["dup"] += 1
                    else:
                        delay = now - left_at
                        state["delay"] = max(state["delay"], delay)
                        if delay > 0.1:
                            state.setdefault("delays", []).append((delay, left_at))
                if state["last"] is not None:
                    gap = now - state["last"]
                    state["gap"] = max(state["gap"], gap)
                    if gap > 0.1:
                        state.setdefault("gaps", []).append((gap, now))
                state["last"] = now
                state["got"] += 1

    def call(self, call_id):
        a = self.args
        self._media = None
        self.to_tag, self.from_tag = None, f"{random.getrandbits(32):08x}"
        self.ssrc = random.getrandbits(32)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind(("127.0.0.1", 0))
            rtp.bind(("127.0.0.1", 0))
            self.sip_port = sock.getsockname()[1]
            self.target = ("127.0.0.1", a.port)
            sdp = (
                "v=0\r\no=probe 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                f"m=audio {rtp.getsockname()[1]} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
            )
            code = self.sip(sock, self.request("INVITE", 1, call_id, sdp), "INVITE", 1)
            if code != 200:
                with self.lock:
                    self.stats["failed"] += 1
                return
            sock.sendto(self.request("ACK", 1, call_id), self.target)
            with self.lock:
                self.stats["calls"] += 1
            # The switch's media address: from the 200's SDP.
            state = {"seq": 0, "sent": 0, "got": 0, "gap": 0.0, "delay": 0.0, "last": None,
                     "sent_at": {}, "dup": 0, "t0": time.time()}
            rtp.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            # RTP goes on during the re-INVITE, as a phone's does: a thread
            # of its own streams for the whole call.
            streamer = threading.Thread(target=self.stream, args=(rtp, self._media, a.call_seconds, state),
                                        daemon=True)
            streamer.start()
            time.sleep(a.call_seconds / 2)
            code = self.sip(sock, self.request("INVITE", 2, call_id, sdp), "INVITE", 2)
            if code is None:
                with self.lock:
                    self.stats["unanswered"] += 1
            else:
                sock.sendto(self.request("ACK", 2, call_id, cseq_method="ACK"), self.target)
            streamer.join()
            # The last packets' echoes.
            self.collect(rtp, state, time.time() + 0.3)
            code = self.sip(sock, self.request("BYE", 3, call_id), "BYE", 3)
            if code is None:
                with self.lock:
                    self.stats["unanswered"] += 1
            with self.lock:
                self.stats["sent"] += state["sent"]
                self.stats["got"] += state["got"]
                self.stats["gap"] = max(self.stats["gap"], state["gap"])
                self.stats.setdefault("gaps", []).extend(state.get("gaps", []))
                self.stats["delay"] = max(self.stats["delay"], state["delay"])
                self.stats["dup"] += state["dup"]
                self.stats.setdefault("delays", []).extend(state.get("delays", []))
        finally:
            sock.close()
            rtp.close()


def parse_sdp_target(text):
    c = re.search(r"\r\nc=IN IP4 ([\d.]+)", text)
    m = re.search(r"\r\nm=audio (\d+)", text)
    if c and m:
        return (c.group(1), int(m.group(1)))
    return None




# --- sipp ---------------------------------------------------------------------

def sipp_totals(stat_file):
    """The last row of sipp's -trace_stat file, by column name."""
    try:
        with open(stat_file) as f:
            rows = [l.rstrip("\n").split(";") for l in f if l.strip()]
    except OSError:
        return {}
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1]))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", default=os.path.join(ROOT, "target/release/hotswitch"))
    p.add_argument("--port", type=int, default=5060)
    p.add_argument("--esl-port", type=int, default=8021)
    p.add_argument("--sipp-port", type=int, default=5070)
    p.add_argument("--sipp-media-port", type=int, default=40000)
    p.add_argument("--rate", type=float, default=200)
    p.add_argument("--call-seconds", type=float, default=10)
    p.add_argument("--reloads", type=int, default=100)
    p.add_argument("--interval", type=float, default=2.0)
    p.add_argument("--probes", type=int, default=20, help="concurrent probe calls")
    p.add_argument("--settle", type=float, default=60, help="seconds to wait for old copies to go")
    p.add_argument("--loglevel", default="warning", help="the switch's (its log: switch.log in the conf dir)")
    p.add_argument("--baseline", action="store_true",
                   help="the same load for the same time, without reloading: what the load alone costs")
    p.add_argument("--watch", action="store_true",
                   help="run the switch with -watch and replace the modules' files instead of typing reload; "
                        "reports the time from a file landing to its MODULE_LOAD event (the new copy current)")
    p.add_argument("--malloc-stats", action="store_true",
                   help="at the end, have gdb call glibc's malloc_stats() in the switch (printed to its log)")
    p.add_argument("--smoke", action="store_true", help="5 calls/s, 4 s calls, 3 reloads, 2 probes")
    a = p.parse_args()
    if a.smoke:
        a.rate, a.call_seconds, a.reloads, a.probes, a.settle = 5, 4, 3, 2, 20
    os.chdir(ROOT)

    conf = subprocess.check_output([os.path.join(ROOT, "tests/sipp/bench-conf.sh"),
                                    tempfile.mkdtemp(prefix="hotswitch-reload-bench-")], text=True).strip()
    # The ports asked for.
    subprocess.check_call(["sed", "-i", f's/"sip-port" value="[^"]*"/"sip-port" value="{a.port}"/',
                           os.path.join(conf, "sip_profiles/internal.xml")])
    subprocess.check_call(["sed", "-i", f's/"listen-port" value="[^"]*"/"listen-port" value="{a.esl_port}"/',
                           os.path.join(conf, "autoload_configs/event_socket.conf.xml")])
    switch_log = open(os.path.join(conf, "switch.log"), "w")
    extra = []
    if a.watch:
        # The modules from a directory of their own, so that replacing a
        # file there is a rebuild landing; the build tree stays untouched.
        mod_dir = os.path.join(conf, "mod")
        os.makedirs(mod_dir)
        built = os.path.dirname(a.binary)
        for f in os.listdir(built):
            if f.startswith("libmod_") and f.endswith(".so"):
                subprocess.check_call(["cp", os.path.join(built, f), mod_dir])
        extra = ["-watch", "-mod", mod_dir]
    sw = subprocess.Popen([a.binary, "-conf", conf, "-nc", "-loglevel", a.loglevel] + extra,
                          stdout=switch_log, stderr=subprocess.STDOUT)
    results = {}
    sipp = None
    stop = threading.Event()
    try:
        wait_port(a.port, "udp")
        wait_port(a.esl_port, "tcp")
        esl = Esl(a.esl_port)
        loads = []  # (time, body) of each MODULE_LOAD event
        if a.watch:
            events = Esl(a.esl_port)
            events.s.sendall(b"event plain MODULE_LOAD\n\n")
            events.s.settimeout(None)

            def listen():
                try:
                    while True:
                        head, body = events._read()
                        if "text/event-plain" in head:
                            loads.append((time.time(), body))
                except (OSError, RuntimeError):
                    pass
            threading.Thread(target=listen, daemon=True).start()
        time.sleep(1)
        rss_before = rss_kib(sw.pid)
        log(f"switch pid {sw.pid}, RSS idle {rss_before} KiB; conf {conf}")

        # The load: sipp at the rate, for the whole reload run plus one
        # call length of warm-up.
        load_seconds = a.call_seconds + a.reloads * a.interval
        calls = int(a.rate * load_seconds)
        stat = os.path.join(conf, "sipp_stat.csv")
        sipp = subprocess.Popen([
            "sipp", "-sf", "tests/sipp/uac_stream_reinvite.xml", f"127.0.0.1:{a.port}",
            "-s", "9196", "-r", str(a.rate), "-m", str(calls), "-d", str(int(a.call_seconds * 500)),
            "-i", "127.0.0.1", "-p", str(a.sipp_port), "-mp", str(a.sipp_media_port), "-buff_size", "8388608", "-nostdin",
            # Fewer RTP threads: sipp 3.6's clock is not thread-safe and,
            # under load, aborts "expected wheel_base to be less than or
            # equal to clock_tick" (SIPp issue #280, fixed in 3.7).
            "-rtp_threadtasks", "100",
            "-timeout", f"{int(load_seconds + a.call_seconds + 90)}s",
            "-trace_stat", "-stf", stat, "-fd", "1",
            "-trace_err", "-error_file", os.path.join(conf, "sipp_errors.log"),
        ], stdout=subprocess.DEVNULL, stderr=open(os.path.join(conf, "sipp.stderr"), "w"))
        stats = {"calls": 0, "failed": 0, "unanswered": 0, "sent": 0, "got": 0, "gap": 0.0, "delay": 0.0, "dup": 0, "errors": []}
        lock = threading.Lock()
        probes = [Probe(i, a, stats, lock, stop) for i in range(a.probes)]
        for pr in probes:
            pr.start()
        log(f"sipp: {a.rate}/s, {a.call_seconds} s calls, {calls} calls; {a.probes} probe calls at a time")
        time.sleep(a.call_seconds)  # warm-up: the calls up at once

        refused, took, reload_times = [], {"mod_sofia": [], "mod_dptools": []}, []
        rss_trend = []  # (reloads, RSS KiB) under load, every 10 reloads
        for i in range(a.reloads):
            t0 = time.time()
            for module, at in (("mod_sofia", 0.0), ("mod_dptools", a.interval / 2)):
                wait = t0 + at - time.time()
                if wait > 0:
                    time.sleep(wait)
                if a.baseline:
                    continue
                s = time.time()
                reload_times.append((s, module))
                if a.watch:
                    # A rebuild lands: a new file renamed over the old one,
                    # as cargo and install do.
                    target = os.path.join(mod_dir, f"lib{module}.so")
                    subprocess.check_call(["cp", target, target + ".new"])
                    seen = len(loads)
                    s = time.time()
                    os.rename(target + ".new", target)
                    deadline = s + 10
                    while time.time() < deadline and not any(
                            f"lib{module}" in b for _, b in loads[seen:]):
                        time.sleep(0.002)
                    got = [t for t, b in loads[seen:] if f"lib{module}" in b]
                    if got:
                        took[module].append(got[0] - s)
                    else:
                        refused.append(f"{module} #{i + 1}: no MODULE_LOAD within 10 s of the file landing")
                    continue
                out = esl.api(f"reload {module}")
                took[module].append(time.time() - s)
                if "+OK" not in out:
                    refused.append(f"{module} #{i + 1}: {out.strip()}")
            wait = t0 + a.interval - time.time()
            if wait > 0:
                time.sleep(wait)
            if (i + 1) % 10 == 0 or a.smoke:
                rss_trend.append((i + 1, rss_kib(sw.pid)))
                log(f"{i + 1} reloads of each; {len(refused)} refused; "
                    f"{esl.api('show channels count').strip()}; RSS {rss_trend[-1][1]} KiB")
        stop.set()
        log("reloads done; waiting for the calls to end")
        sipp.wait(timeout=a.call_seconds + 120)
        for pr in probes:
            pr.join(timeout=a.call_seconds + 40)
        deadline = time.time() + a.call_seconds + 60
        while time.time() < deadline and "0 total" not in esl.api("show channels count"):
            time.sleep(0.5)
        # Old copies go once their last call ended.
        deadline = time.time() + a.settle
        while time.time() < deadline:
            if mapped_copies(sw.pid, "mod_sofia") <= 1 and mapped_copies(sw.pid, "mod_dptools") <= 1:
                break
            time.sleep(1)
        time.sleep(1)
        tot = sipp_totals(stat)
        sipp_rc = sipp.poll()
        try:
            with open(os.path.join(conf, "sipp.stderr")) as f:
                aborted = [l.split(": ", 1)[-1].strip() for l in f if "wheel_base" in l]
        except OSError:
            aborted = []
        sent, got = stats["sent"], stats["got"]
        results = {
            "sipp exit (0: all calls passed, 1: some failed; else aborted)":
                f"{sipp_rc}" + (f" ({aborted[0]})" if aborted else ""),
            "sipp calls (created / successful / failed; the rest in flight when sipp ended)":
                f"{tot.get('TotalCallCreated', '?')} / {tot.get('SuccessfulCall(C)', '?')} / {tot.get('FailedCall(C)', '?')}",
            "sipp failures: timeouts, retransmission limit, unexpected": " / ".join(
                tot.get(k, "?") for k in ("FailedTimeoutOnRecv(C)", "FailedMaxUDPRetrans(C)", "FailedUnexpectedMessage(C)")),
            "probe calls (answered / failed)": f"{stats['calls']} / {stats['failed']}",
            "unanswered in-dialog requests (probes: re-INVITE, BYE)": stats["unanswered"],
            "RTP (probes): sent / echoed / loss": f"{sent} / {got - stats['dup']} / {100.0 * (sent - got + stats['dup']) / sent if sent else 0:.3f} %"
            + (f" (and {stats['dup']} echoed twice)" if stats["dup"] else ""),
            "longest gap between echoed packets (probes)": f"{stats['gap'] * 1000:.0f} ms",
            "longest echo delay, sent -> echo received (probes)": f"{stats['delay'] * 1000:.0f} ms",
            "echoes delayed over 100 ms (probes)": len(stats.get("delays", [])),
            "reloads not +OK": len(refused),
            **{(f"file landed -> {m} current (median / max)" if a.watch else f"reload {m} time (median / max)"): (
                f"{sorted(t)[len(t) // 2] * 1000:.0f} ms / {max(t) * 1000:.0f} ms" if t else "-")
               for m, t in took.items()},
            "module copies mapped at the end (mod_sofia, mod_dptools; 1 = current only)":
                f"{mapped_copies(sw.pid, 'mod_sofia')}, {mapped_copies(sw.pid, 'mod_dptools')}",
            "RSS idle before / after": f"{rss_before} KiB / {rss_kib(sw.pid)} KiB",
            "RSS under load after 10 reloads / half-way / the last (flat: no growth with reloads)":
                " / ".join(f"{k} KiB" for _, k in (rss_trend[0], rss_trend[len(rss_trend) // 2], rss_trend[-1]))
                if rss_trend else "-",
            "after: anonymous / file-backed RSS, threads": "{} KiB / {} KiB, {}".format(
                *(status_field(sw.pid, k) for k in ("RssAnon", "RssFile", "Threads"))),
        }
        if a.malloc_stats:
            subprocess.run(["gdb", "-p", str(sw.pid), "-batch", "-ex", "call (void) malloc_stats()"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
            log(f"malloc_stats: in {os.path.join(conf, 'switch.log')}")
        gaps = sorted(stats.get("gaps", []), reverse=True)
        log(f"echo gaps over 100 ms (probes): {len(gaps)}")
        for gap, at in gaps[:8]:
            before = [(at - gap - t, m) for t, m in reload_times if t <= at]
            near = min(before, default=None)
            began = at - gap
            log(f"  {gap * 1000:.0f} ms gap from {time.strftime('%H:%M:%S', time.localtime(began))}.{int(began * 1000) % 1000:03d}"
                + (f"; began {near[0] * 1000:+.0f} ms after reload {near[1]}" if near else ""))
        delays = sorted(stats.get("delays", []), reverse=True)
        log(f"echoes delayed over 100 ms (probes): {len(delays)}")
        for delay, left in delays[:8]:
            before = [(left - t, m) for t, m in reload_times if t <= left]
            near = min(before, default=None)
            log(f"  {delay * 1000:.0f} ms for the packet sent at {time.strftime('%H:%M:%S', time.localtime(left))}.{int(left * 1000) % 1000:03d}"
                + (f"; {near[0] * 1000:+.0f} ms after reload {near[1]}" if near else ""))
        for r in refused[:5]:
            log(f"refused: {r}")
        for e in stats["errors"][:5]:
            log(f"probe error: {e}")
    finally:
        stop.set()
        if sipp and sipp.poll() is None:
            sipp.send_signal(signal.SIGTERM)
            sipp.wait(timeout=10)
        sw.terminate()
        try:
            sw.wait(timeout=20)
        except subprocess.TimeoutExpired:
            sw.kill()
    print()
    for k, v in results.items():
        print(f"{k:<80} {v}")
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
