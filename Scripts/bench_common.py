"""Helpers for Scripts/bench: run a command, return wall time and peak RSS (wait4's ru_maxrss of the child)."""
import json, os, shutil, statistics, subprocess, sys, time

def run(cmd, env=None):
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode(errors="replace")
    if status != 0:
        raise SystemExit(f"command failed ({status}): {' '.join(cmd)}\n{err}")
    return wall, ru.ru_maxrss * 1024  # bytes

def median_run(cmd, repeats=3, env=None, before=None):
    walls, rss = [], []
    for _ in range(repeats):
        if before:
            before()
        w, r = run(cmd, env)
        walls.append(w); rss.append(r)
    return statistics.median(walls), max(rss)

def table(rows, header):
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths))
    print(line(header)); print(line(["-" * w for w in widths]))
    for r in rows: print(line(r))
