"""Import 1,000 / 10,000 / 50,000 Webitel users into the sandbox and print what it cost.

Figures per phase: wall time, the product's own CPU time and peak memory (the product runs in a
child process), requests and writes per system as counted by the sandbox servers, and the ratio
of requests to the lower bound (pages to read + lookups in chunks + ceil(writes / 100)).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox.harness import start_sandbox  # noqa: E402


def run_product(config_path: Path) -> tuple[dict, float, float, float]:
    """Run one sync in a child process; return its report, wall s, CPU s and peak RSS in MB."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "jobs", "--config", str(config_path), "run", "--json"],
                            cwd=ROOT, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode not in (0, 3):
        raise SystemExit(f"run failed ({result.returncode}): {result.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # ru_maxrss of children is the largest child so far (KiB on Linux): each phase runs alone in
    # its own benchmark process step, so report the running maximum.
    return json.loads(result.stdout), wall, cpu, after.ru_maxrss / 1024


def lower_bound(report: dict, writes: int) -> int:
    floor = report.get("read_floor", {})
    return sum(floor.values()) + math.ceil(writes / 100)


def change_one_percent(box, rng: random.Random) -> int:
    users = [u for u in box.webitel_app.all_users() if u["extension"]]
    chosen = rng.sample(users, max(1, len(users) // 100))
    import requests

    headers = {"X-Webitel-Access": box.data.credentials.webitel_token}
    for user in chosen:
        body = {"name": f"{user['name']} Jr."}
        response = requests.patch(f"{box.webitel_url}/users/{user['id']}", json=body, headers=headers, timeout=10)
        response.raise_for_status()
    return len(chosen)


def phase(name: str, box, config_path: Path) -> dict:
    box.webitel.stats.reset()
    box.creatio.stats.reset()
    report, wall, cpu, rss = run_product(config_path)
    w_req, c_req = box.webitel.stats.total(), box.creatio.stats.total()
    writes = box.creatio.stats.writes
    bound = lower_bound(report, writes)
    return {"phase": name, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "peak_mb": round(rss, 1),
            "webitel_requests": w_req, "creatio_requests": c_req, "creatio_writes": writes,
            "lower_bound": bound, "ratio": round((w_req + c_req) / bound, 3) if bound else None,
            "outcome": report["outcome"], "conflicts": report["counts"].get("conflicts", 0)}


def bench(users: int, seed: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="wcsync-bench-") as folder:
        made = time.perf_counter()
        with start_sandbox(users, seed=seed, match_share=0.5) as box:
            setup = time.perf_counter() - made
            config_path = Path(folder) / "config.toml"
            config_path.write_text(box.config_toml(state_url=f"sqlite:///{Path(folder) / 'state.sqlite'}"),
                                   encoding="utf-8")
            rows.append(phase("import", box, config_path))
            rows.append(phase("no-op re-run", box, config_path))
            changed = change_one_percent(box, random.Random(seed))
            rows.append(phase(f"re-run, {changed} changed", box, config_path))
    for row in rows:
        row["users"] = users
        row["sandbox_setup_s"] = round(setup, 1)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, nargs="+", default=[1000, 10000, 50000])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    all_rows = []
    header = (f"{'users':>6} {'phase':<22} {'wall s':>7} {'cpu s':>6} {'peak MB':>8} {'webitel req':>11} "
              f"{'creatio req':>11} {'writes':>7} {'bound':>6} {'ratio':>6}  outcome")
    if not args.json:
        print(header)
    for users in args.users:
        for row in bench(users, args.seed):
            all_rows.append(row)
            if not args.json:
                print(f"{row['users']:>6} {row['phase']:<22} {row['wall_s']:>7} {row['cpu_s']:>6} {row['peak_mb']:>8} "
                      f"{row['webitel_requests']:>11} {row['creatio_requests']:>11} {row['creatio_writes']:>7} "
                      f"{row['lower_bound']:>6} {row['ratio']:>6}  {row['outcome']}", flush=True)
    if args.json:
        print(json.dumps(all_rows, indent=2))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores", file=sys.stderr)


if __name__ == "__main__":
    main()
