#!/usr/bin/python3
"""load.py: a bounded load of distinct leads for the no-click-is-lost tests (nolost.sh).

  load.py URL KEY PREFIX N INTERVAL   N requests, one every INTERVAL seconds, each in its own
                                      thread (a dialer does not wait for the previous answer),
                                      lead ids PREFIX-0..PREFIX-(N-1); prints one line per
                                      request when all are answered: "<lead id> <status>"
                                      (status 0: no answer within 90 s).
"""
import json
import sys
import threading
import time
import urllib.error
import urllib.request


def one(url, key, lead_id, out):
    body = json.dumps({"user": "agent1", "lead_id": lead_id, "first_name": "Load",
                       "last_name": lead_id}).encode()
    req = urllib.request.Request(url + "/api/leads/from-dialer/", data=body, headers={
        "X-Dialer-Api-Key": key, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=90) as r:
            out[lead_id] = r.status
    except urllib.error.HTTPError as e:
        out[lead_id] = e.code
    except Exception:
        out[lead_id] = 0


def main():
    url, key, prefix, n, interval = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), \
        float(sys.argv[5])
    out, threads = {}, []
    for i in range(n):
        t = threading.Thread(target=one, args=(url, key, "%s-%d" % (prefix, i), out))
        t.start()
        threads.append(t)
        time.sleep(interval)
    for t in threads:
        t.join()
    for i in range(n):
        lead_id = "%s-%d" % (prefix, i)
        print(lead_id, out.get(lead_id, 0))


if __name__ == "__main__":
    main()
