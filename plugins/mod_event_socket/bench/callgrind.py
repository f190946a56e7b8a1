#!/usr/bin/env python3
"""Instructions the switch executes per event delivered over the event socket.

Starts the real switch under `valgrind --tool=callgrind`, connects SUBS
subscribers of `event plain ALL` and one connection that sends EVENTS
`sendevent CUSTOM` packets (64 in flight), and counts the instructions of
the whole switch process (every thread, user space) between the first and
the last of them. Instruction counts do not depend on what else the
machine runs, so they compare builds on a busy machine where events/s do
not.

    python3 plugins/mod_event_socket/bench/callgrind.py target/release 20000 1
    python3 plugins/mod_event_socket/bench/callgrind.py target/release 5000 10

Prints `Ir per fired event` and `Ir per delivered event`; the profile of
the window stays in the work directory for `callgrind_annotate`.
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

bin_dir, events, subs = os.path.abspath(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
WARM = 2000
work = tempfile.mkdtemp(prefix="esl-callgrind-")
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
conf = os.path.join(work, "conf", "autoload_configs")
os.makedirs(conf)
files = {
    "modules.conf.xml": '<configuration name="modules.conf"><modules>'
    '<load module="mod_event_socket"/></modules></configuration>',
    "event_socket.conf.xml": '<configuration name="event_socket.conf"><settings>'
    '<param name="listen-ip" value="127.0.0.1"/>'
    f'<param name="listen-port" value="{port}"/>'
    '<param name="password" value="ClueCon"/></settings></configuration>',
}
for name, text in files.items():
    with open(os.path.join(conf, name), "w") as f:
        f.write(text + "\n")
out = os.path.join(work, "callgrind.out")
switch = subprocess.Popen(
    ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
     os.path.join(bin_dir, "hotswitch"), "-conf", os.path.join(work, "conf"),
     "-run", work, "-mod", bin_dir, "-nc", "-loglevel", "warning"],
    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
    stderr=open(os.path.join(work, "switch.log"), "w"))


def read_packet(f):
    head = b""
    while True:
        line = f.readline()
        if not line:
            raise EOFError("the switch closed the connection")
        if line == b"\n":
            if head:
                break
            continue
        head += line
    n = 0
    for line in head.split(b"\n"):
        if line.startswith(b"Content-Length: "):
            n = int(line[16:])
    return head, f.read(n) if n else b""


def connect():
    for _ in range(600):
        try:
            s = socket.create_connection(("127.0.0.1", port))
            break
        except OSError:
            time.sleep(0.1)
    else:
        raise SystemExit("the event socket never listened")
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = s.makefile("rb")
    read_packet(f)
    s.sendall(b"auth ClueCon\n\n")
    assert b"+OK accepted" in read_packet(f)[0]
    return s, f


counts = [0] * subs


def subscriber(i):
    s, f = connect()
    s.sendall(b"event plain ALL\n\n")
    try:
        while True:
            head, body = read_packet(f)
            if b"text/event-plain" in head and b"bench%3A%3Aload" in body:
                counts[i] += 1
    except EOFError:
        pass


for i in range(subs):
    threading.Thread(target=subscriber, args=(i,), daemon=True).start()
load, load_f = connect()
time.sleep(2)
PACKET = b"sendevent CUSTOM\nEvent-Subclass: bench::load\nBench-Header: some value\n\n"


def fire(n, window=64):
    sent = done = 0
    while done < n:
        burst = min(window - (sent - done), n - sent)
        if burst > 0:
            load.sendall(PACKET * burst)
            sent += burst
        read_packet(load_f)
        done += 1


def delivered(target):
    deadline = time.time() + 600
    while min(counts) < target and time.time() < deadline:
        time.sleep(0.2)


fire(WARM)
delivered(WARM)
subprocess.run(["callgrind_control", "-z", str(switch.pid)], stdout=subprocess.DEVNULL)
fire(events)
delivered(WARM + events)
subprocess.run(["callgrind_control", "-d", str(switch.pid)], stdout=subprocess.DEVNULL)
switch.send_signal(signal.SIGTERM)
switch.wait()
ir = 0
for name in os.listdir(work):
    if name.startswith("callgrind.out."):
        with open(os.path.join(work, name)) as f:
            for line in f:
                if line.startswith("summary:"):
                    ir += int(line.split()[1])
got = sum(counts) - WARM * subs
print(f"{events} events fired, {subs} subscriber(s), {got} delivered; "
      f"{ir / events:.0f} Ir per fired event, {ir / max(got, 1):.0f} Ir per delivered event "
      f"(profile: {work})")
