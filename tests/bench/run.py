"""The steadyws benchmark: steadyws and the libraries users would pick
instead, on this machine, in one run, against the same servers.

    ./build.sh bench            (or: python tests/bench/run.py [--quick])

Every client runs in its best mode for each case: picows on uvloop with its
callback API; steadyws with the API a user would pick -- threaded
recv_batch for a flood, the Group for many feeds (steadyws.aio and the
asyncio Group shown too). Every measurement runs in a fresh process. The
servers run in their own processes and are never the bottleneck: the flood
server writes pre-encoded frames in 1 MiB chunks (about 3 GB/s here). Echo
runs three times: on a quiet machine, with one core kept busy by another
process, and with both busy (the benchmark starts and ends those processes).
Results are ratios within one run: machines are noisy, absolute numbers are
not the point. Writes results.md, results.json and chart.png next to this file.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
FAST = ("steadyws", "steadyws (bytes)", "steadyws (text as bytes)", "picows+uvloop")
LOADS = {"quiet": 0, "one core busy": 1, "both cores busy": 2}
PICOWS = "picows+uvloop"


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


@contextmanager
def busy(cores: int) -> Iterator[None]:
    """Keep ``cores`` cores busy with other processes (``yes``), as a
    trading host always does something else."""
    hogs = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(cores)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


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
        r = {"msgs_per_s": median_of(runs, "msgs_per_s"), "cpu_us_per_msg": median_of(runs, "cpu_us_per_msg")}
        results[client] = {**r, "runs": runs}
        print(
            f"  flood {client:26} {r['msgs_per_s'] or 0:>12,.0f} msg/s  CPU {r['cpu_us_per_msg'] or 0:5.2f} us/msg",
            flush=True,
        )
    return results


def echo(port: int, n: int, reps: int) -> dict[str, Any]:
    """Each load, each client: the median of ``reps`` runs of each percentile."""
    from clients import ECHO

    results: dict[str, Any] = {}
    for load, cores in LOADS.items():
        results[load] = {}
        with busy(cores):
            for client in ECHO:
                runs = [measure("echo", client, f"ws://127.0.0.1:{port}/echo", str(n)) for _ in range(reps)]
                r = {k: median_of(runs, k) for k in ("p50", "p99", "p999")}
                results[load][client] = {**r, "runs": runs}
                if r["p50"] is not None:
                    print(
                        f"  echo  {load:15} {client:26} p50 {r['p50']:7.1f} us  p99 {r['p99']:7.1f}  "
                        f"p99.9 {r['p999']:7.1f}",
                        flush=True,
                    )
    return results


def stall(port: int, secs: float) -> dict[str, Any]:
    from clients import STALL

    results = {}
    for client in STALL:
        results[client] = measure("stall", client, f"ws://127.0.0.1:{port}/stall?bytes={1 << 30}&size=1000", str(secs))
        print(f"  stall {client:26} peak RSS {results[client].get('peak_rss_mib', 0):7.1f} MiB", flush=True)
    return results


def fanin(port: int, conns: int, secs: float) -> dict[str, Any]:
    from clients import MANY

    results = {}
    for client in MANY:
        url = f"ws://127.0.0.1:{port}/rate?per_tick=5&size=100"
        results[client] = measure("fanin", client, url, str(conns), str(secs), timeout=600)
        r = results[client]
        print(
            f"  fanin {client:26} {r.get('msgs_per_s', 0):>10,.0f} msg/s  CPU {r.get('cpu_pct', 0):5.1f}%  "
            f"{r.get('cpu_us_per_msg', 0):5.2f} us/msg",
            flush=True,
        )
    return results


def idle(port: int, conns: int, secs: float) -> dict[str, Any]:
    r = measure("idle", "steadyws.Group", f"ws://127.0.0.1:{port}/idle", str(conns), str(secs), timeout=900)
    print(
        f"  idle  {conns} Group members: RSS {r.get('rss_mib', 0):.0f} MiB, CPU {r.get('cpu_pct', 0):.1f}%, "
        f"{r.get('goroutines', 0)} goroutines, {r.get('threads', 0)} threads, {r.get('pings', 0)} pings",
        flush=True,
    )
    return r


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _fmt(v: float | None, spec: str, suffix: str = "") -> str:
    return format(v, spec) + suffix if isinstance(v, (int, float)) else "n/a"


def goals(res: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(goal, measured, met) for each goal of the benchmark (issue 10)."""
    fl, fan, out = res["flood"], res["fanin"], []
    for load in LOADS:
        ours, theirs = res["echo"][load]["steadyws"], res["echo"][load][PICOWS]
        r50, r99 = ratio(ours["p50"], theirs["p50"]), ratio(ours["p99"], theirs["p99"])
        out.append((f"echo p50 <= picows p50 ({load})", _fmt(r50, ".2f", "x"), bool(r50 and r50 <= 1)))
        out.append((f"echo p99 <= 1.5x picows p99 ({load})", _fmt(r99, ".2f", "x"), bool(r99 and r99 <= 1.5)))
    group_cpu = fan["steadyws.Group"].get("cpu_us_per_msg")
    picows_cpu = fan[PICOWS].get("cpu_us_per_msg")
    fan_ratio = ratio(group_cpu, picows_cpu)
    out.append(("fan-in CPU/msg <= picows (Group)", _fmt(fan_ratio, ".2f", "x"), bool(fan_ratio and fan_ratio <= 1)))
    aio_ratio = ratio(fan["steadyws.aio.Group+uvloop"].get("cpu_us_per_msg"), picows_cpu)
    out.append(
        ("fan-in CPU/msg <= picows (aio Group)", _fmt(aio_ratio, ".2f", "x"), bool(aio_ratio and aio_ratio <= 1))
    )
    rate = ratio(fl["steadyws"]["msgs_per_s"], fl[PICOWS]["msgs_per_s"])
    out.append(("flood >= 2.5x picows", _fmt(rate, ".2f", "x"), bool(rate and rate >= 2.5)))
    cpu = ratio(fl["steadyws"]["cpu_us_per_msg"], fl[PICOWS]["cpu_us_per_msg"])
    out.append(("flood CPU/msg < picows", _fmt(cpu, ".2f", "x"), bool(cpu and cpu < 1)))
    stall_rss = res["stall"]["steadyws"].get("peak_rss_mib")
    out.append(("stalled consumer RSS < 100 MB", _fmt(stall_rss, ".0f", " MiB"), bool(stall_rss and stall_rss < 100)))
    idle_r = res["idle"]
    rss, pct = idle_r.get("rss_mib"), idle_r.get("cpu_pct")
    out.append(
        (
            f"{idle_r.get('connections', 0):,} idle Group members < 1 GB, < 5% CPU",
            f"{_fmt(rss, '.0f', ' MiB')}, {_fmt(pct, '.1f', '%')}",
            bool(rss and pct is not None and rss < 1024 and pct < 5),
        )
    )
    return out


def _cell(v: object, spec: str) -> str:
    return format(v, spec) if isinstance(v, (int, float)) else "-"


def markdown(res: dict[str, Any]) -> str:
    lines = [
        "| client | flood (msg/s, 100 B) | CPU (us/msg) | stalled RSS (MiB) |",
        "|---|---:|---:|---:|",
    ]
    for name, f in res["flood"].items():
        s = res["stall"].get(name.split("+")[0], {}) if not name.startswith("steadyws (") else {}
        lines.append(
            f"| {name} | {_cell(f.get('msgs_per_s'), ',.0f')} | {_cell(f.get('cpu_us_per_msg'), '.2f')} "
            f"| {_cell(s.get('peak_rss_mib'), '.0f')} |"
        )
    loads = list(LOADS)
    lines += [
        "",
        "| echo 64 B, p50 / p99 / p99.9 (us) | " + " | ".join(loads) + " |",
        "|---|" + "---:|" * len(loads),
    ]
    for name in res["echo"][loads[0]]:
        cells = []
        for load in loads:
            e = res["echo"][load].get(name, {})
            cells.append(f"{_cell(e.get('p50'), '.1f')} / {_cell(e.get('p99'), '.1f')} / {_cell(e.get('p999'), '.1f')}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "| fan-in, 1,000 connections | msg/s | CPU % | CPU (us/msg) |", "|---|---:|---:|---:|"]
    for name, r in res["fanin"].items():
        lines.append(
            f"| {name} | {_cell(r.get('msgs_per_s'), ',.0f')} | {_cell(r.get('cpu_pct'), '.1f')} "
            f"| {_cell(r.get('cpu_us_per_msg'), '.2f')} |"
        )
    lines += ["", "| goal | measured | met |", "|---|---|---|"]
    for goal, measured, met in goals(res):
        lines.append(f"| {goal} | {measured} | {'yes' if met else '**no**'} |")
    return "\n".join(lines) + "\n"


def chart(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b, c) = plt.subplots(1, 3, figsize=(16, 4.8))
    red = lambda n: "#d62728" if n.startswith("steadyws") else "#7f7f7f"  # noqa: E731
    names = [n for n in res["flood"] if res["flood"][n].get("msgs_per_s")]
    values = [res["flood"][n]["msgs_per_s"] / 1000 for n in names]
    a.barh(names, values, color=[red(n) for n in names])
    a.invert_yaxis()
    a.set_xlabel("thousand messages/s delivered to Python (100-byte text)")
    a.set_title("Flood receive (higher is better)")
    for y, v in enumerate(values):
        a.text(v, y, f" {v:,.0f}k", va="center", fontsize=8)
    shown = [n for n in ("steadyws", "steadyws.aio+uvloop", PICOWS, "websockets+uvloop") if n in res["echo"]["quiet"]]
    loads = list(LOADS)
    width = 0.8 / len(shown)
    for i, name in enumerate(shown):
        xs = [j + i * width for j in range(len(loads))]
        p50 = [res["echo"][load][name].get("p50") or 0 for load in loads]
        p99 = [res["echo"][load][name].get("p99") or 0 for load in loads]
        b.bar(xs, p99, width=width * 0.9, color=red(name), alpha=0.35)
        b.bar(xs, p50, width=width * 0.9, color=red(name), alpha=0.45 + 0.5 * (i % 2), label=name)
    b.set_xticks([j + 0.4 - width / 2 for j in range(len(loads))])
    b.set_xticklabels(loads, fontsize=8)
    b.set_ylabel("microseconds (solid: p50, pale: p99)")
    b.set_title("Echo round trip, 64 bytes (lower is better)")
    b.legend(fontsize=7)
    fnames = [n for n in res["fanin"] if res["fanin"][n].get("cpu_us_per_msg")]
    fvalues = [res["fanin"][n]["cpu_us_per_msg"] for n in fnames]
    c.barh(fnames, fvalues, color=[red(n) for n in fnames])
    c.invert_yaxis()
    c.set_xlabel("CPU microseconds per message")
    c.set_title("Fan-in, 1,000 connections (lower is better)")
    for y, v in enumerate(fvalues):
        c.text(v, y, f" {v:.2f}", va="center", fontsize=8)
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
        print(f"benchmark (servers on 127.0.0.1, {os.cpu_count()} cores)", flush=True)
        res = {
            "flood": flood(fast_port, n, reps),
            "echo": echo(fast_port, 2000 if args.quick else 9600, 1 if args.quick else 2),
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
