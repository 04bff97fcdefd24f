#!/usr/bin/env python3
"""CPU time of a running fleet's firmchain processes, sampled every 100 ms.

    python3 bench/cpu-sample.py SECONDS OUT &  firmchain demo --devices 20 ...

Writes one line per sample to OUT: unix time, then the summed user + system CPU seconds of the device
processes (`firmchain run --data .../device-*`) and of the repository (`.../repository`). The difference
of the device column across an install window is what the fleet spent on that release
(bench/results/fleet-scale.md).
"""
import os
import sys
import time

hz = os.sysconf("SC_CLK_TCK")
end = time.time() + float(sys.argv[1])
with open(sys.argv[2], "w") as out:
    while time.time() < end:
        dev = rep = 0.0
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
                if b"run" not in cmd or not cmd[0].endswith(b"firmchain"):
                    continue
                fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
                cpu = (int(fields[11]) + int(fields[12])) / hz
            except OSError:
                continue  # the process ended between the listing and the read
            if any(b"/repository" in c for c in cmd):
                rep += cpu
            elif any(b"/device-" in c for c in cmd):
                dev += cpu
        out.write(f"{time.time():.2f} {dev:.2f} {rep:.2f}\n")
        out.flush()
        time.sleep(0.1)
