"""Import 1,000 / 10,000 / 50,000 Webitel users into the sandbox, sync their licences, print the cost.

Phases per size: the users import, a no-op re-run, a re-run after 1% of the users changed, the
first licence sync (3 grants per user), and a no-op licence re-run. Figures per phase: wall time,
the product's own CPU time and peak memory (the product runs in a child process), requests and
writes per system as counted by the sandbox servers, and the ratio of requests to the lower
bound: pages to read + lookups in chunks + ceil(Creatio writes / 100) + Webitel writes (Webitel
has no batch endpoint: one PATCH per changed user).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox.harness import start_sandbox  # noqa: E402


def run_product(config_path: Path, job: str) -> tuple[dict, float, float, float]:
    """Run one job in a child process; return its report, wall s, CPU s and peak RSS in MB."""
    measured = config_path.parent / "measure.json"
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "measure_run.py"),
            "--config",
            str(config_path),
            "run",
            "--job",
            job,
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
        env={**os.environ, "WCSYNC_MEASURE_OUT": str(measured)},
    )
    wall = time.perf_counter() - started
    if result.returncode not in (0, 3):
        raise SystemExit(f"run failed ({result.returncode}): {result.stderr[-2000:]}")
    own = json.loads(measured.read_text())
    return json.loads(result.stdout), wall, own["cpu_s"], own["peak_mb"]


def lower_bound(report: dict, creatio_writes: int, webitel_writes: int) -> int:
    floor = report.get("read_floor", {})
    return sum(floor.values()) + math.ceil(creatio_writes / 100) + webitel_writes


def change_one_percent(box, rng: random.Random) -> int:
    users = [u for u in box.webitel_app.all_users() if u["extension"]]
    chosen = rng.sample(users, max(1, len(users) // 100))
    import requests

    headers = {"X-Webitel-Access": box.data.credentials.webitel_token}
    for user in chosen:
        body = {"name": f"{user['name']} Jr."}
        response = requests.patch(
            f"{box.webitel_url}/users/{user['id']}", json=body, headers=headers, timeout=10
        )
        response.raise_for_status()
    return len(chosen)


def phase(name: str, box, config_path: Path, job: str = "users") -> dict:
    box.webitel.stats.reset()
    box.creatio.stats.reset()
    report, wall, cpu, rss = run_product(config_path, job)
    w_req, c_req = box.webitel.stats.total(), box.creatio.stats.total()
    writes, w_writes = box.creatio.stats.writes, box.webitel.stats.writes
    bound = lower_bound(report, writes, w_writes)
    return {
        "phase": name,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "peak_mb": round(rss, 1),
        "webitel_requests": w_req,
        "creatio_requests": c_req,
        "creatio_writes": writes,
        "webitel_writes": w_writes,
        "lower_bound": bound,
        "ratio": round((w_req + c_req) / bound, 3) if bound else None,
        "outcome": report["outcome"],
        "conflicts": report["counts"].get("conflicts", 0),
    }


def bench(users: int, seed: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="wcsync-bench-") as folder:
        made = time.perf_counter()
        with start_sandbox(users, seed=seed, match_share=0.5, grants_per_user=3) as box:
            setup = time.perf_counter() - made
            config_path = Path(folder) / "config.toml"
            config_path.write_text(
                box.config_toml(state_url=f"sqlite:///{Path(folder) / 'state.sqlite'}"), encoding="utf-8"
            )
            rows.append(phase("import", box, config_path))
            rows.append(phase("no-op re-run", box, config_path))
            changed = change_one_percent(box, random.Random(seed))
            rows.append(phase(f"re-run, {changed} changed", box, config_path))
            rows.append(phase("licences, first sync", box, config_path, "licenses"))
            rows.append(phase("licences, no-op", box, config_path, "licenses"))
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
    header = (
        f"{'users':>6} {'phase':<22} {'wall s':>7} {'cpu s':>6} {'peak MB':>8} {'webitel req':>11} "
        f"{'creatio req':>11} {'writes C/W':>12} {'bound':>6} {'ratio':>6}  outcome"
    )
    if not args.json:
        print(header)
    for users in args.users:
        for row in bench(users, args.seed):
            all_rows.append(row)
            if not args.json:
                print(
                    f"{row['users']:>6} {row['phase']:<22} {row['wall_s']:>7} {row['cpu_s']:>6} "
                    f"{row['peak_mb']:>8} "
                    f"{row['webitel_requests']:>11} {row['creatio_requests']:>11} "
                    f"{str(row['creatio_writes']) + '/' + str(row['webitel_writes']):>12} "
                    f"{row['lower_bound']:>6} {row['ratio']:>6}  {row['outcome']}",
                    flush=True,
                )
    if args.json:
        print(json.dumps(all_rows, indent=2))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores", file=sys.stderr)


if __name__ == "__main__":
    main()
