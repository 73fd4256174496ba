#!/usr/bin/env python3
"""test/ha/load.py: a bounded, open-loop load of distinct leads on the shim, for make test-ha.

load.py URL KEY RATE STOPFILE OUT: starts RATE requests a second (each its own connection and
thread, at most 200 in flight), a new lead each (lead_id HA<n>, its own phone), until STOPFILE
exists; then waits for every answer and writes one line per request to OUT:
lead_id, start, end (time.time()), HTTP status (0: no answer, with the error after it).
"""
import http.client
import json
import os
import sys
import threading
import time
from urllib.parse import urlsplit

url, key, rate, stopfile, out = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5]
u = urlsplit(url)
results = []
lock = threading.Lock()
slots = threading.BoundedSemaphore(200)


def one(n):
    lead = "HA%06d" % n
    body = json.dumps({"user": "agent1", "lead_id": lead, "first_name": "Ha",
                       "last_name": "Test%d" % n, "phone_number": "07700 %06d" % n})
    t0 = time.time()
    status, err = 0, ""
    try:
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
        c.request("POST", u.path, body, {"X-Dialer-Api-Key": key,
                                         "Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        status = r.status
        c.close()
    except Exception as e:  # noqa: BLE001 - recorded, the test counts it
        err = repr(e)
    t1 = time.time()
    with lock:
        results.append((lead, t0, t1, status, err))
    slots.release()


threads = []
n = 0
start = time.time()
while not os.path.exists(stopfile):
    n += 1
    slots.acquire()
    t = threading.Thread(target=one, args=(n,))
    t.start()
    threads.append(t)
    delay = start + n / rate - time.time()
    if delay > 0:
        time.sleep(delay)
for t in threads:
    t.join()
with open(out, "w") as f:
    for lead, t0, t1, status, err in sorted(results):
        f.write("%s %.6f %.6f %d %s\n" % (lead, t0, t1, status, err))
