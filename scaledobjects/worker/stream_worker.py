#!/usr/bin/env python3
"""A batch worker for scaledjob-batch.yaml: takes entries from a Redis stream's consumer group,
does the work, acknowledges each, and exits when it has done --max-items or the stream has had
nothing for it for --idle-exit seconds (one KEDA Job = one worker run).

The protocol that makes Spot preemption safe, and that llm-scaler's `workCount: waiting` counts:
  * take new entries with XREADGROUP ... > (delivered to this consumer, pending until acked);
  * XACK each entry only when its work is done;
  * before new entries, XAUTOCLAIM entries idle for --claim-timeout seconds: their worker was
    preempted (or crashed) and never acknowledged them, and the scaler has counted them as
    waiting work again since that timeout;
  * on SIGTERM (a Spot node's ~2-minute notice, or the Job's deadline) stop taking entries, finish
    or abandon the current one, and exit: unacknowledged entries are claimed by the next worker.

Dependency-free (a minimal RESP2 client over a socket) so the example runs anywhere Python 3 does.
Environment: REDIS_ADDRESS (host:port, default 127.0.0.1:6379), REDIS_PASSWORD (optional).
"""

import argparse
import os
import signal
import socket
import sys
import time


class Redis:
    """Just enough RESP2 for streams."""

    def __init__(self, address, password=None, timeout=10.0):
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.buf = b""
        if password:
            self.call("AUTH", password)

    def call(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        return self._reply()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n).decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RuntimeError("unexpected reply %r" % line)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--stream", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--consumer", default=os.environ.get("HOSTNAME", "worker-%d" % os.getpid()))
    p.add_argument("--claim-timeout", type=float, default=300.0, help="seconds an entry may sit unacknowledged before it is claimed")
    p.add_argument("--max-items", type=int, default=50, help="entries one run takes before it exits")
    p.add_argument("--batch", type=int, default=1, help="entries taken per read")
    p.add_argument("--idle-exit", type=float, default=10.0, help="exit after this many seconds without an entry")
    p.add_argument("--work-seconds", type=float, default=0.0, help="stand-in for the real work of one entry")
    a = p.parse_args()

    stopping = False

    def on_term(_sig, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    r = Redis(os.environ.get("REDIS_ADDRESS", "127.0.0.1:6379"), os.environ.get("REDIS_PASSWORD"))
    done = 0
    idle_since = time.monotonic()
    while not stopping and done < a.max_items:
        want = min(a.batch, a.max_items - done)
        # Entries a preempted worker left: claimed first, so lost work is redone before new work.
        claimed = r.call("XAUTOCLAIM", a.stream, a.group, a.consumer, int(a.claim_timeout * 1000), "0-0", "COUNT", want)
        entries = [e for e in claimed[1] if e is not None]
        if not entries:
            reply = r.call("XREADGROUP", "GROUP", a.group, a.consumer, "COUNT", want, "BLOCK", 500, "STREAMS", a.stream, ">")
            entries = reply[0][1] if reply else []
        if not entries:
            if time.monotonic() - idle_since > a.idle_exit:
                break
            continue
        idle_since = time.monotonic()
        for entry_id, _fields in entries:
            if stopping:
                break  # left unacknowledged: claimed again after the timeout
            time.sleep(a.work_seconds)
            r.call("XACK", a.stream, a.group, entry_id)
            done += 1
    print("done %d" % done, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
