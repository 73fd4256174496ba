#!/usr/bin/python3
"""rawhttp.py: what a client sees when it sends exact bytes to the shim (test/e2e/edge.sh).

  rawhttp.py HOST PORT BYTES   BYTES with Python escapes (\\r\\n, \\x00); {KEY} is replaced
                               by $KEY. Prints "<first status> <responses> <closed|open>",
                               e.g. "400 1 closed": reads until the server closes, or for
                               1 s after the last byte.
  rawhttp.py HOST PORT -       the same, the bytes read from standard input as they are.
  rawhttp.py HOST PORT hold N SECONDS
                               opens N idle connections, prints how many the server closed
                               within 0.5 s, holds the rest SECONDS.
  RAWHTTP_SRC=ADDR binds the client to ADDR (127.0.0.2, say) first.
"""
import os
import re
import socket
import sys
import time


def connect(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    if os.environ.get("RAWHTTP_SRC"):
        s.bind((os.environ["RAWHTTP_SRC"], 0))
    s.connect((host, port))
    return s


def hold(host, port, n, seconds):
    held = [connect(host, port) for _ in range(n)]
    time.sleep(0.5)
    closed = 0
    for s in held:
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    print(closed, flush=True)
    time.sleep(seconds)


def exchange(host, port, data, idle=1.0):
    s = connect(host, port)
    s.sendall(data)
    s.settimeout(idle)
    got, closed = b"", False
    while True:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        got += chunk
    s.close()
    statuses = re.findall(rb"(?:^|\r\n)HTTP/1\.[01] (\d{3}) ", got)
    first = statuses[0].decode() if statuses else "none"
    return "%s %d %s" % (first, len(statuses), "closed" if closed else "open")


def main():
    host, port, spec = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if spec == "hold":
        hold(host, port, int(sys.argv[4]), float(sys.argv[5]))
        return
    if spec == "-":
        data = sys.stdin.buffer.read()
    else:
        text = spec.replace("{KEY}", os.environ.get("KEY", ""))
        data = text.encode("latin-1").decode("unicode_escape").encode("latin-1")
    print(exchange(host, port, data))


if __name__ == "__main__":
    main()
