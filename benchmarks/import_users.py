"""Import 1,000 / 10,000 / 50,000 Webitel users into the sandbox, sync their licences, print the cost.

Phases per size: the users import, an idle re-run (nothing changed), a re-run after 1% of the
users changed in Webitel, the first licence sync (3 grants per user), a no-op licence re-run, and
a licence sync after the grants of 1% of the users were removed in Creatio (one Webitel PATCH per
such user). Each phase is the product's own ``run --job ...`` in a child process, so a re-run is
whatever the product makes of it (a full read today; an incremental one once ``[sync]
full_every`` lands): the phases only change the data between runs.

Figures per phase: the wall time at each latency asked for (every answer of both sandbox servers
delayed that long, a fresh sandbox per latency), the product's own CPU time and peak memory (the
product runs in a child process), requests and writes per system as counted by the sandbox
servers, and the ratio of requests to the lower bound: pages to read + lookups in chunks +
ceil(Creatio writes / 100) + Webitel writes (Webitel has no batch endpoint: one PATCH per changed
user). At a latency above 0, the floor is ``requests x latency / concurrency``: the time the
requests take on the wire if ``max_concurrency`` of them are always in flight and nothing else
takes any time; ``x floor`` is the wall time over it.
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

from sandbox.faults import Faults  # noqa: E402
from sandbox.harness import start_sandbox, to_toml  # noqa: E402

PHASES = ("import", "first re-run", "idle re-run", "1% changed re-run", "licences, first sync",
          "licences, no-op", "licences, 1% changed")


PRODUCT = ROOT  # the product measured: this tree, or another checkout (--product)


def run_product(config_path: Path, job: str) -> tuple[dict, float, float, float]:
    """Run one job in a child process; return its report, wall s, CPU s and peak RSS in MB."""
    measured = config_path.parent / "measure.json"
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "measure_run.py"),
            "--product",
            str(PRODUCT),
            "--config",
            str(config_path),
            "run",
            "--job",
            job,
            "--json",
        ],
        cwd=PRODUCT,
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
    """1% of the users renamed in Webitel (as its admin would: over HTTP)."""
    import requests

    users = [u for u in box.webitel_app.all_users() if u["extension"]]
    chosen = rng.sample(users, max(1, len(users) // 100))
    headers = {"X-Webitel-Access": box.data.credentials.webitel_token}
    with requests.Session() as session:
        for user in chosen:
            body = {"name": f"{user['name']} Jr."}
            response = session.patch(f"{box.webitel_url}/users/{user['id']}", json=body, headers=headers,
                                     timeout=10)
            response.raise_for_status()
    return len(chosen)


def revoke_one_percent(box, config: dict, rng: random.Random) -> int:
    """Every grant of 1% of the users removed in Creatio (as an administrator would: over OData);
    the next licence sync revokes them in Webitel."""
    from jobs.config import load_config
    from jobs.wiring import creatio_client

    rows = box.creatio_app.rows("WebitelUserLicense")
    holders = sorted({r["UserId"] for r in rows})
    chosen = set(rng.sample(holders, max(1, len(holders) // 100)))
    client = creatio_client(load_config(data=config))
    client.batch([_delete(r["Id"]) for r in rows if r["UserId"] in chosen])
    return len(chosen)


def _delete(row_id: str):
    from connector.creatio.batch import BatchOp

    return BatchOp("DELETE", "WebitelUserLicense", id=row_id)


def phase(name: str, box, config_path: Path, job: str = "users", *, latency_ms: float,
          concurrency: int) -> dict:
    box.webitel.stats.reset()
    box.creatio.stats.reset()
    report, wall, cpu, rss = run_product(config_path, job)
    w_req, c_req = box.webitel.stats.total(), box.creatio.stats.total()
    writes, w_writes = box.creatio.stats.writes, box.webitel.stats.writes
    bound = lower_bound(report, writes, w_writes)
    floor = (w_req + c_req) * latency_ms / 1000 / concurrency
    return {
        "phase": name,
        "latency_ms": latency_ms,
        "wall_s": round(wall, 2),
        "floor_s": round(floor, 3),
        "x_floor": round(wall / floor, 2) if floor else None,
        "cpu_s": round(cpu, 2),
        "peak_mb": round(rss, 1),
        "webitel_requests": w_req,
        "creatio_requests": c_req,
        "creatio_writes": writes,
        "webitel_writes": w_writes,
        "lower_bound": bound,
        "ratio": round((w_req + c_req) / bound, 3) if bound else None,
        "outcome": report["outcome"],
        "mode": report.get("mode", "full"),
        "conflicts": report["counts"].get("conflicts", 0),
    }


def bench(users: int, seed: int, latency_ms: float, concurrency: int, settings: list[str]) -> list[dict]:
    """Every phase on a fresh sandbox whose answers all take ``latency_ms`` longer."""
    rows = []
    faults = Faults(latency_ms=latency_ms)
    with tempfile.TemporaryDirectory(prefix="wcsync-bench-") as folder:
        made = time.perf_counter()
        with start_sandbox(users, seed=seed, match_share=0.5, grants_per_user=3, faults_webitel=faults,
                           faults_creatio=faults) as box:
            setup = time.perf_counter() - made
            config = box.config(state_url=f"sqlite:///{Path(folder) / 'state.sqlite'}")
            if PRODUCT == ROOT:  # an older checkout may not know these settings
                config["creatio"]["max_concurrency"] = concurrency
                config["webitel"]["max_concurrency"] = concurrency
            # The 1% revoked in Creatio must not stop at the revocation brake: it is not measured here.
            config["licenses"] = {"max_revocations": 10 * users, "max_revocation_share": 1.0}
            # The phases come seconds apart; real cycles come minutes apart, past the margin (a
            # cycle within it reads again what the one before wrote). --set puts it back.
            if PRODUCT == ROOT:
                config.setdefault("sync", {})["watermark_margin_s"] = 0
            for setting in settings:
                name, _, value = setting.partition("=")
                section, _, key = name.partition(".")
                config.setdefault(section, {})[key] = _value(value)
            config_path = Path(folder) / "config.toml"
            config_path.write_text(to_toml(config), encoding="utf-8")
            run = {"latency_ms": latency_ms, "concurrency": concurrency}
            rng = random.Random(seed)
            rows.append(phase(PHASES[0], box, config_path, **run))
            rows.append(phase(PHASES[1], box, config_path, **run))
            rows.append(phase(PHASES[2], box, config_path, **run))
            changed = change_one_percent(box, rng)
            rows.append(phase(PHASES[3], box, config_path, **run) | {"changed": changed})
            rows.append(phase(PHASES[4], box, config_path, "licenses", **run))
            rows.append(phase(PHASES[5], box, config_path, "licenses", **run))
            changed = revoke_one_percent(box, config, rng)
            rows.append(phase(PHASES[6], box, config_path, "licenses", **run) | {"changed": changed})
    for row in rows:
        row["users"] = users
        row["sandbox_setup_s"] = round(setup, 1)
    return rows


def _value(text: str):
    """A --set value as TOML would read it: a boolean, a number, else a string."""
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def columns(latencies: list[float]) -> list[tuple[str, int, str]]:
    """(heading, width, key) of the table; a wall time per latency, a floor, ``x floor`` and
    (with 0 among the latencies) ``added x`` per latency above 0."""
    out = [("users", 6, "users"), ("phase", 22, "phase"), ("read", 5, "read")]
    for latency in latencies:
        out.append((f"wall@{latency:g}ms", 10, f"wall_s@{latency:g}"))
    for latency in latencies:
        if latency > 0:
            out += [(f"floor@{latency:g}ms", 11, f"floor_s@{latency:g}"),
                    ("x floor", 7, f"x_floor@{latency:g}")]
            if 0 in latencies:
                out.append(("added x", 7, f"added_x@{latency:g}"))
    out += [("cpu s", 6, "cpu_s"), ("peak MB", 8, "peak_mb"), ("webitel req", 11, "webitel_requests"),
            ("creatio req", 11, "creatio_requests"), ("writes C/W", 12, "writes"),
            ("bound", 6, "lower_bound"), ("ratio", 6, "ratio")]
    return out


def merge(runs: list[list[dict]]) -> list[dict]:
    """One row per phase from the runs at each latency: the wall times, floors and ``x floor`` of
    each, the rest from the first (the requests and writes do not depend on the latency)."""
    merged = []
    for rows in zip(*runs):
        row = dict(rows[0])
        for each in rows:
            latency = f"{each['latency_ms']:g}"
            row[f"wall_s@{latency}"], row[f"floor_s@{latency}"] = each["wall_s"], each["floor_s"]
            row[f"x_floor@{latency}"] = each["x_floor"]
            if (each["webitel_requests"], each["creatio_requests"]) != (
                    rows[0]["webitel_requests"], rows[0]["creatio_requests"]):
                row["note"] = "requests differ between latencies"
        for each in rows:
            latency = f"{each['latency_ms']:g}"
            if each["floor_s"] and "wall_s@0" in row:
                # What the latency added to the wall time, over the floor: 1 when the requests'
                # round trips cost no more than max_concurrency of them always in flight would.
                row[f"added_x@{latency}"] = round((each["wall_s"] - row["wall_s@0"]) / each["floor_s"], 2)
        row["writes"] = f"{row['creatio_writes']}/{row['webitel_writes']}"
        row["read"] = {"full": "full", "incremental": "incr"}.get(row["mode"], row["mode"])
        merged.append(row)
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, nargs="+", default=[1000, 10000, 50000])
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[0.0],
                        help="the delay of every answer; one sandbox per value (default 0)")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="[webitel] and [creatio] max_concurrency of the product (default 4)")
    parser.add_argument("--set", metavar="SECTION.KEY=VALUE", action="append", default=[],
                        help="a setting of the product's config, e.g. sync.full_every=0s (repeatable)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--product", type=Path, default=ROOT,
                        help="the checkout of the product to measure (default: this one), e.g. a "
                             "git worktree of an older commit for before/after figures")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    global PRODUCT
    PRODUCT = args.product.resolve()
    table = columns(args.latency_ms)
    all_rows = []
    if not args.json:
        heads = [f"{head:<{width}}" if key == "phase" else f"{head:>{width}}" for head, width, key in table]
        print(" ".join(heads) + "  outcome", flush=True)
    for users in args.users:
        runs = [bench(users, args.seed, latency, args.concurrency, args.set) for latency in args.latency_ms]
        for row in merge(runs):
            all_rows.append(row)
            if not args.json:
                cells = [
                    f"{row[key]!s:<{width}}" if key == "phase" else f"{row.get(key)!s:>{width}}"
                    for _, width, key in table
                ]
                note = f" ({row['note']})" if "note" in row else ""
                print(" ".join(cells) + f"  {row['outcome']}{note}", flush=True)
    if args.json:
        print(json.dumps(all_rows, indent=2))
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores, max_concurrency {args.concurrency}",
        *args.set,
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
