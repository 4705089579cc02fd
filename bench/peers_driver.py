"""Runs whole commands side by side for bench/peers.ts and reports each run's wall and CPU time.

Input (argv[1], JSON): {"cases": {name: argv}, "n": N, "cwd": dir, "env": {...}}. The cases take
turns run by run, the order rotated every round, so load from other processes hits them alike.
Each run is posix_spawn + wait4: wall time from spawn to reaped, and the CPU time (user + system)
of the process and every descendant it waited for, from wait4's rusage. Output (stdout, JSON):
{name: [[wall_ms, cpu_ms, exit_status], ...]}.
"""

import json
import os
import sys
import time


def main() -> None:
    spec = json.loads(sys.argv[1])
    names = list(spec["cases"])
    out = {name: [] for name in names}
    env = spec["env"]
    devnull = os.open(os.devnull, os.O_WRONLY)
    actions = [(os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2)]
    os.chdir(spec["cwd"])
    for i in range(spec["n"]):
        for j in range(len(names)):
            name = names[(i + j) % len(names)]
            argv = spec["cases"][name]
            t0 = time.perf_counter()
            pid = os.posix_spawn(argv[0], argv, env, file_actions=actions)
            _, status, usage = os.wait4(pid, 0)
            wall = (time.perf_counter() - t0) * 1000
            out[name].append([wall, (usage.ru_utime + usage.ru_stime) * 1000, os.waitstatus_to_exitcode(status)])
    print(json.dumps(out))


main()
