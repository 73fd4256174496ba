#!/usr/bin/env python3
"""test/bench/procstat.py: CPU and memory figures from /proc, for run.sh.

  procstat.py children PGDATA     the postmaster's pid and its children's, comma-separated.
  procstat.py hwm PID             the peak resident set (VmHWM) of process PID, in KiB.
  procstat.py ticks PID           the CPU seconds (utime+stime) process PID has used so far.
  procstat.py snap PGDATA SHELL [SHIM|0]
                                  one reading of, in CPU seconds: the whole machine's busy
                                  time (/proc/stat); the whole PostgreSQL server: postmaster
                                  and live children (utime+stime) plus the children it has
                                  reaped (cutime+cstime), so that backends that came and went
                                  between two readings count too; the children SHELL has
                                  reaped (pgbench, wrk: the load generators); SHIM (0: none);
                                  the wall clock; differences of two readings
                                  tell what ran during a measure, and what others used.
  procstat.py busy SECONDS        the machine's busy share over SECONDS (all cores, 0-100)
                                  and the processes that used the most CPU meanwhile.
"""
import os
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")


def stat_fields(pid):
    """Fields of /proc/PID/stat after the command name (field 3 is index 0)."""
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    return data[data.rindex(")") + 2:].split()


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def own_ticks(pid, reaped=False):
    f = stat_fields(pid)
    t = int(f[11]) + int(f[12])            # utime, stime
    if reaped:
        t += int(f[13]) + int(f[14])       # cutime, cstime
    return t


def children(pid):
    kids = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids += [int(k) for k in f.read().split()]
        except OSError:
            pass
    return kids


def postmaster(pgdata):
    with open(os.path.join(pgdata, "postmaster.pid")) as f:
        return int(f.readline())


def server_cpu(pgdata):
    pm = postmaster(pgdata)
    ticks = own_ticks(pm, reaped=True)
    for kid in children(pm):
        try:
            ticks += own_ticks(kid)
        except (OSError, ValueError):
            pass                            # it just exited: counted as reaped next time
    return ticks / HZ


def all_ticks():
    ticks = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ticks[int(d)] = own_ticks(d)
            except (OSError, ValueError, IndexError):
                pass
    return ticks


def machine_busy():
    with open("/proc/stat") as f:
        t = [int(x) for x in f.readline().split()[1:]]
    return (sum(t[:8]) - t[3] - t[4]) / HZ     # without idle, iowait; guest is in user


def snap(pgdata, shell, shim):
    f = stat_fields(shell)
    client = (int(f[13]) + int(f[14])) / HZ
    shim_cpu = own_ticks(shim) / HZ if shim else 0.0
    print(f"{machine_busy():.2f} {server_cpu(pgdata):.2f} {client:.2f} {shim_cpu:.2f} "
          f"{time.time():.3f}")


def busy(seconds):
    with open("/proc/stat") as f:
        a = [int(x) for x in f.readline().split()[1:]]
    p0 = all_ticks()
    time.sleep(seconds)
    with open("/proc/stat") as f:
        b = [int(x) for x in f.readline().split()[1:]]
    p1 = all_ticks()
    d = [y - x for x, y in zip(a, b)]
    idle = d[3] + d[4]                      # idle, iowait
    share = 100.0 * (sum(d) - idle) / max(sum(d), 1)
    top = sorted(((p1[p] - p0.get(p, 0), p) for p in p1), reverse=True)[:5]
    procs = ", ".join(f"{comm(p)}[{p}] {100.0 * t / HZ / seconds:.0f}%"
                      for t, p in top if t > 0)
    print(f"{share:.0f}% busy over {seconds:g} s; top: {procs or 'none'}")


def main():
    cmd, arg = sys.argv[1], sys.argv[2]
    if cmd == "snap":
        snap(arg, int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 0)   # 0: no shim
    elif cmd == "children":
        pm = postmaster(arg)
        print(",".join(str(p) for p in [pm] + children(pm)))
    elif cmd == "hwm":
        with open(f"/proc/{arg}/status") as f:
            print(next(l.split()[1] for l in f if l.startswith("VmHWM:")))
    elif cmd == "ticks":
        print(f"{own_ticks(int(arg)) / HZ:.2f}")
    elif cmd == "busy":
        busy(float(arg))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
