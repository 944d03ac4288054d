"""The steadyws benchmark: steadyws and the libraries users would pick
instead, on this machine, in one run, against the same servers.

    ./build.sh bench            (or: python tests/bench/run.py [--quick])

Every measurement runs in a fresh process. The servers run in their own
processes and are never the bottleneck: the flood server writes pre-encoded
frames in 1 MiB chunks (about 3 GB/s here). Results are ratios within one
run: machines are noisy, absolute numbers are not the point.
Writes results.md, results.json and chart.png next to this file.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
FAST = ("steadyws", "steadyws (bytes)", "picows+uvloop")


def start(script: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, str(HERE / script)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def measure(*args: str, timeout: float = 300) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(HERE / "clients.py"), *args], capture_output=True, text=True, timeout=timeout
    )
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if key in r]
    return statistics.median(values) if values else None


def flood(port: int, n: int, reps: int) -> dict[str, Any]:
    from clients import FLOOD

    results = {}
    for client in FLOOD:
        count = n if client in FAST else max(n // 4, 10_000)
        binary = "1" if client == "steadyws (bytes)" else "0"
        url = f"ws://127.0.0.1:{port}/flood?n={count}&size=100&binary={binary}"
        runs = [measure("flood", client, url, str(count)) for _ in range(reps)]
        results[client] = {"msgs_per_s": median_of(runs, "msgs_per_s"), "runs": runs}
        print(f"  flood {client:22} {results[client]['msgs_per_s'] or 0:>12,.0f} msg/s", flush=True)
    return results


def echo(port: int, n: int) -> dict[str, Any]:
    from clients import ECHO

    results = {}
    for client in ECHO:
        r = measure("echo", client, f"ws://127.0.0.1:{port}/echo", str(n))
        results[client] = r
        if "p50" in r:
            print(
                f"  echo  {client:22} p50 {r['p50']:7.1f} us  p99 {r['p99']:7.1f}  p99.9 {r['p999']:7.1f}", flush=True
            )
    return results


def stall(port: int, secs: float) -> dict[str, Any]:
    from clients import STALL

    results = {}
    for client in STALL:
        results[client] = measure("stall", client, f"ws://127.0.0.1:{port}/stall?bytes={1 << 30}&size=1000", str(secs))
        print(f"  stall {client:22} peak RSS {results[client].get('peak_rss_mib', 0):7.1f} MiB", flush=True)
    return results


def fanin(port: int, conns: int, secs: float) -> dict[str, Any]:
    from clients import MANY

    results = {}
    for client in MANY:
        url = f"ws://127.0.0.1:{port}/rate?per_tick=5&size=100"
        results[client] = measure("fanin", client, url, str(conns), str(secs), timeout=600)
        r = results[client]
        print(
            f"  fanin {client:22} {r.get('msgs_per_s', 0):>10,.0f} msg/s  CPU {r.get('cpu_pct', 0):5.1f}%", flush=True
        )
    return results


def idle(port: int, conns: int, secs: float) -> dict[str, Any]:
    r = measure("idle", "steadyws", f"ws://127.0.0.1:{port}/idle", str(conns), str(secs), timeout=900)
    print(
        f"  idle  {conns} connections: RSS {r.get('rss_mib', 0):.0f} MiB, CPU {r.get('cpu_pct', 0):.1f}%, "
        f"{r.get('goroutines', 0)} goroutines, {r.get('pings', 0)} pings",
        flush=True,
    )
    return r


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def goals(res: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(goal, measured, met) for each goal of the benchmark."""
    fl, ec = res["flood"], res["echo"]
    ours = fl["steadyws"]["msgs_per_s"]
    vs_picows = ratio(ours, fl["picows+uvloop"]["msgs_per_s"])
    vs_websockets = ratio(ours, fl["websockets"]["msgs_per_s"])
    p50, p99 = ec["steadyws"].get("p50"), ec["steadyws"].get("p99")
    picows_p50 = ec["picows+uvloop"].get("p50")
    stall_rss = res["stall"]["steadyws"].get("peak_rss_mib")
    idle_r = res["idle"]
    out = [
        ("flood >= 2x picows", f"{vs_picows:.2f}x" if vs_picows else "n/a", bool(vs_picows and vs_picows >= 2)),
        (
            "flood >= 8x websockets",
            f"{vs_websockets:.2f}x" if vs_websockets else "n/a",
            bool(vs_websockets and vs_websockets >= 8),
        ),
        (
            "echo p50 <= picows p50",
            f"{p50:.1f} vs {picows_p50:.1f} us" if p50 and picows_p50 else "n/a",
            bool(p50 and picows_p50 and p50 <= picows_p50),
        ),
        ("echo p99 <= 2x own p50", f"{p99 / p50:.2f}x" if p50 and p99 else "n/a", bool(p50 and p99 and p99 <= 2 * p50)),
        (
            "stalled consumer RSS < 100 MB",
            f"{stall_rss:.0f} MiB" if stall_rss else "n/a",
            bool(stall_rss and stall_rss < 100),
        ),
        (
            f"{idle_r.get('connections', 0):,} idle connections < 1 GB, < 10% CPU",
            f"{idle_r.get('rss_mib', 0):.0f} MiB, {idle_r.get('cpu_pct', 0):.1f}%",
            bool(idle_r.get("rss_mib") and idle_r["rss_mib"] < 1024 and idle_r["cpu_pct"] < 10),
        ),
    ]
    return out


def markdown(res: dict[str, Any]) -> str:
    lines = [
        "| client | flood (msg/s, 100 B) | echo p50 (us) | echo p99 (us) | echo p99.9 (us) | stalled RSS (MiB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    names = list(res["flood"])
    for name in names:
        f = res["flood"][name].get("msgs_per_s")
        e = res["echo"].get(name, {})
        s = res["stall"].get(name.split("+")[0], {}) if name != "steadyws (bytes)" else {}
        cell = lambda v, fmt: format(v, fmt) if isinstance(v, (int, float)) else "-"  # noqa: E731
        lines.append(
            f"| {name} | {cell(f, ',.0f')} | {cell(e.get('p50'), '.1f')} | {cell(e.get('p99'), '.1f')} "
            f"| {cell(e.get('p999'), '.1f')} | {cell(s.get('peak_rss_mib'), '.0f')} |"
        )
    lines += ["", "| fan-in (1,000 connections) | msg/s | CPU % |", "|---|---:|---:|"]
    for name, r in res["fanin"].items():
        lines.append(f"| {name} | {r.get('msgs_per_s', 0):,.0f} | {r.get('cpu_pct', 0):.1f} |")
    lines += ["", "| goal | measured | met |", "|---|---|---|"]
    for goal, measured, met in goals(res):
        lines.append(f"| {goal} | {measured} | {'yes' if met else '**no**'} |")
    return "\n".join(lines) + "\n"


def chart(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = [n for n in res["flood"] if res["flood"][n].get("msgs_per_s")]
    values = [res["flood"][n]["msgs_per_s"] / 1000 for n in names]
    colors = ["#d62728" if n.startswith("steadyws") else "#7f7f7f" for n in names]
    a.barh(names, values, color=colors)
    a.invert_yaxis()
    a.set_xlabel("thousand messages/s delivered to Python (100-byte text)")
    a.set_title("Flood receive (higher is better)")
    for y, v in enumerate(values):
        a.text(v, y, f" {v:,.0f}k", va="center", fontsize=8)
    enames = [n for n in res["echo"] if "p50" in res["echo"][n]]
    x = range(len(enames))
    b.bar([i - 0.2 for i in x], [res["echo"][n]["p50"] for n in enames], width=0.4, label="p50")
    b.bar([i + 0.2 for i in x], [res["echo"][n]["p99"] for n in enames], width=0.4, label="p99")
    b.set_xticks(list(x))
    b.set_xticklabels(enames, rotation=20, ha="right", fontsize=8)
    b.set_ylabel("microseconds")
    b.set_title("Echo round trip, 64 bytes (lower is better)")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts, one repetition")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    n, reps = (200_000, 1) if args.quick else (1_000_000, 3)
    fast_server, fast_port = start("floodserver.py")
    many_server, many_port = start("manyserver.py")
    try:
        print("benchmark (servers on 127.0.0.1)", flush=True)
        res = {
            "flood": flood(fast_port, n, reps),
            "echo": echo(fast_port, 2000 if args.quick else 10_000),
            "stall": stall(fast_port, 4 if args.quick else 8),
            "fanin": fanin(many_port, 1000, 5 if args.quick else 10),
            "idle": idle(many_port, 2000 if args.quick else 10_000, 25),
        }
    finally:
        fast_server.terminate()
        many_server.terminate()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(res, indent=1))
    table = markdown(res)
    (args.out / "results.md").write_text(table)
    chart(res, args.out / "chart.png")
    print()
    print(table)


if __name__ == "__main__":
    main()
