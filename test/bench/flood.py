#!/usr/bin/python3
"""flood.py: hostile connection floods against the shim, and what a legitimate client sees.

Each flood comes from source addresses 127.0.0.2 and up (one per --per-ip connections, so
the per-address cap does not stop it alone); the legitimate client is 127.0.0.1 and opens a
new connection for each request, as VICIdial's PHP file() does. Standard library only.

  flood.py HOST PORT onebyte N         N connections that each send "G" and close
  flood.py HOST PORT connclose N       N connections that connect and close
  flood.py HOST PORT idle N SECONDS    N idle connections held SECONDS (from 127.0.0.2..)
  flood.py HOST PORT halfheaders N SECONDS
                                       N connections each sending a request line and half a
                                       header, then holding SECONDS
  flood.py HOST PORT bench --pid PID [--per-ip N] [--seconds S]
        the benchmark: for each flood above, the legitimate client's p50/p99/max latency of
        GET /healthz during the flood and in the S seconds after it, its failures, and the
        shim's VmRSS before and after (PID); the floods run twice (--rounds), and memory must
        not grow from the first round's end to the second's. Prints a Markdown table.
"""
import argparse
import socket
import threading
import time

FLOOD_SOURCES = ["127.0.0.%d" % i for i in range(2, 60)]


def connect(host, port, src=None, timeout=5.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    if src:
        s.bind((src, 0))
    s.connect((host, port))
    return s


class Sources:
    """Round-robin source addresses, per_ip connections each before moving on."""

    def __init__(self, per_ip):
        self.per_ip = max(per_ip, 1)
        self.n = 0

    def next(self):
        src = FLOOD_SOURCES[(self.n // self.per_ip) % len(FLOOD_SOURCES)]
        self.n += 1
        return src


def open_sending(host, port, srcs, first_bytes, timeout):
    """A new connection from the next source that has sent first_bytes (maybe none); None
    when it could not be made."""
    try:
        s = connect(host, port, srcs.next(), timeout=timeout)
        if first_bytes:
            s.send(first_bytes)
        return s
    except OSError:
        return None


def flood_connect(host, port, n, first_bytes, per_ip=64):
    """n connections that each send first_bytes (maybe none) and close at once."""
    srcs = Sources(per_ip)
    for _ in range(n):
        s = open_sending(host, port, srcs, first_bytes, 1)
        if s is not None:
            s.close()


def flood_hold(host, port, n, seconds, first_bytes, per_ip=64):
    """n connections that send first_bytes (maybe none) and hold; reopened when closed."""
    srcs = Sources(per_ip)
    held = [s for s in (open_sending(host, port, srcs, first_bytes, 1) for _ in range(n)) if s]
    for s in held:
        s.setblocking(False)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.05)
        alive = []
        for s in held:  # a connection the server closed is opened again, as an attacker would
            try:
                if s.recv(1, socket.MSG_PEEK) == b"":
                    raise OSError
                alive.append(s)
            except BlockingIOError:
                alive.append(s)
            except OSError:
                s.close()
                r = open_sending(host, port, srcs, first_bytes, 0.2)
                if r is not None:
                    r.setblocking(False)
                    alive.append(r)
        held = alive
    for s in held:
        s.close()


def legit_request(host, port, timeout=5.0):
    """Seconds for one GET /healthz on a new connection; None when it failed."""
    t0 = time.monotonic()
    try:
        s = connect(host, port, "127.0.0.1", timeout=timeout)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
        if not data.startswith(b"HTTP/1.1 200"):
            return None
    except OSError:
        return None
    return time.monotonic() - t0


def vmrss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))]


def measure(host, port, stop, interval=0.01):
    """Legitimate requests every interval until stop: (latencies, failures)."""
    lat, failed = [], 0
    while not stop.is_set():
        t0 = time.monotonic()
        t = legit_request(host, port)
        if t is None:  # a failure counts with the time it took, in the percentiles too
            failed += 1
            t = time.monotonic() - t0
        lat.append(t)
        time.sleep(interval)
    return lat, failed


def run_phase(host, port, attack):
    """Runs attack() in a thread while measuring; returns (latencies, failures)."""
    stop = threading.Event()
    result = {}

    def measurer():
        result["m"] = measure(host, port, stop)

    m = threading.Thread(target=measurer)
    m.start()
    attack()
    stop.set()
    m.join()
    return result["m"]


def run_after(host, port, seconds):
    stop = threading.Event()
    timer = threading.Timer(seconds, stop.set)
    timer.start()
    lat, failed = measure(host, port, stop)
    timer.join()
    return lat, failed


def fmt_ms(x):
    return "%.1f" % (x * 1000.0) if x == x else "-"


def bench(args):
    host, port = args.host, args.port
    per_ip = args.per_ip
    floods = [
        ("one-byte closes x 2,000", lambda: flood_connect(host, port, 2000, b"G", per_ip)),
        ("connect-and-close x 10,000", lambda: flood_connect(host, port, 10000, b"", per_ip)),
        ("half-sent headers x 300, held %g s" % args.seconds,
         lambda: flood_hold(host, port, 300, args.seconds,
                            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ", per_ip)),
        ("idle sockets x 300 (over the cap), held %g s" % args.seconds,
         lambda: flood_hold(host, port, 300, args.seconds, b"", per_ip)),
    ]
    base_lat, base_failed = run_after(host, port, 1.0)
    rss0 = vmrss_kib(args.pid)
    print("| flood | phase | requests | failed | p50 ms | p99 ms | max ms | shim VmRSS KiB |")
    print("|---|---|---|---|---|---|---|---|")
    print("| none | baseline 1 s | %d | %d | %s | %s | %s | %d |" % (
        len(base_lat), base_failed, fmt_ms(percentile(base_lat, 50)),
        fmt_ms(percentile(base_lat, 99)), fmt_ms(max(base_lat or [float("nan")])), rss0))
    worst = 0.0
    failures = 0
    rss_after = []
    for rnd in range(1, args.rounds + 1):
        for name, attack in floods:
            for phase, (lat, failed) in (
                    ("during", run_phase(host, port, attack)),
                    ("after %g s" % args.after, run_after(host, port, args.after))):
                p99 = percentile(lat, 99)
                worst = max(worst, p99 if p99 == p99 else 0.0)
                failures += failed
                print("| %s (round %d) | %s | %d | %d | %s | %s | %s | %d |" % (
                    name, rnd, phase, len(lat), failed, fmt_ms(percentile(lat, 50)),
                    fmt_ms(p99), fmt_ms(max(lat or [float("nan")])), vmrss_kib(args.pid)))
        time.sleep(args.after)
        rss_after.append(vmrss_kib(args.pid))
    print()
    # Memory comes back when a second round of the same floods leaves it where the first did:
    # what stays after the first is the allocator's high-water mark, not a leak.
    print("worst p99: %s ms (target <= %d ms); legitimate requests failed: %d; "
          "VmRSS before %d KiB, after each round %s KiB" % (
              fmt_ms(worst), args.target_ms, failures, rss0,
              ", ".join(str(r) for r in rss_after)))
    grew = len(rss_after) > 1 and rss_after[-1] - rss_after[0] > 512
    return 0 if worst * 1000.0 <= args.target_ms and failures == 0 and not grew else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("mode", choices=["onebyte", "connclose", "idle", "halfheaders", "bench"])
    ap.add_argument("n", type=int, nargs="?", default=1000)
    ap.add_argument("hold", type=float, nargs="?", default=5.0)
    ap.add_argument("--pid", type=int)
    ap.add_argument("--per-ip", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--after", type=float, default=2.0)
    ap.add_argument("--target-ms", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    if args.mode == "onebyte":
        flood_connect(args.host, args.port, args.n, b"G", args.per_ip)
    elif args.mode == "connclose":
        flood_connect(args.host, args.port, args.n, b"", args.per_ip)
    elif args.mode == "idle":
        flood_hold(args.host, args.port, args.n, args.hold, b"", args.per_ip)
    elif args.mode == "halfheaders":
        flood_hold(args.host, args.port, args.n, args.hold,
                   b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ", args.per_ip)
    else:
        return bench(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
