"""Run the product's command line and report its own CPU time and peak memory.

``ru_maxrss`` of a child can include its parent's memory (a vforked child borrows the parent's
address space until exec), so the benchmark asks the product process itself: ``VmHWM`` in
/proc/self/status is the high-water mark of its own address space since exec.
"""

from __future__ import annotations

import json
import os
import resource
import sys



def own_peak_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    # --product DIR: the checkout whose product runs (the benchmark may measure another one's).
    args = sys.argv[1:]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if args[:1] == ["--product"]:
        root, args = args[1], args[2:]
    sys.path.insert(0, root)
    from jobs.cli import main

    code = main(args)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with open(os.environ["WCSYNC_MEASURE_OUT"], "w", encoding="utf-8") as out:
        json.dump({"cpu_s": usage.ru_utime + usage.ru_stime, "peak_mb": own_peak_mb()}, out)
    sys.stdout.flush()
    os._exit(code)
