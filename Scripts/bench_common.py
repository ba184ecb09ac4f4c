"""Helpers for Scripts/bench: run a command, return wall time and peak RSS (wait4's ru_maxrss of the child)."""
import json, os, shutil, statistics, subprocess, sys, tempfile, time

def run(cmd, env=None, capture=False):
    """Wall seconds and peak RSS bytes of `cmd` (and its stdout when `capture`). Its output goes to temporary files,
    not pipes, so a chatty command cannot block on a full pipe while we wait for it."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out if capture else subprocess.DEVNULL, stderr=err, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        err.seek(0)
        if status != 0:
            raise SystemExit(f"command failed ({status}): {' '.join(cmd)}\n{err.read().decode(errors='replace')}")
        if not capture:
            return wall, ru.ru_maxrss * 1024  # bytes
        out.seek(0)
        return wall, ru.ru_maxrss * 1024, out.read().decode(errors="replace")

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
