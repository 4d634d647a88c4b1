"""`vajra` command line: doctor, ping, bench, shm housekeeping.

The GIL watch is installed before anything heavy is imported, so a dependency that turns the GIL
back on is named, and every command except `doctor` (whose job is to report it) refuses to run
with the GIL on unless `--allow-gil` is given for a comparison benchmark.
"""

from __future__ import annotations

import argparse
import sys

from vajra.runtime import gil

gil.watch()


def _guard(args: argparse.Namespace, who: str) -> None:
    gil.check_platform()
    warning = gil.ensure_gil_disabled(allow_gil=getattr(args, "allow_gil", False), who=who)
    if warning:
        print(f"WARNING: {warning}", file=sys.stderr)


def cmd_doctor(args: argparse.Namespace) -> int:
    import json

    from vajra.runtime import doctor

    checks = doctor.run_checks()
    if args.json:
        print(json.dumps(doctor.to_json(checks), indent=1))
    else:
        print(doctor.render_text(checks))
    return 1 if any(c.status == "fail" for c in checks) else 0


def cmd_ping(args: argparse.Namespace) -> int:
    _guard(args, "vajra ping")
    from vajra.runtime.ping import run_ping

    return run_ping(seconds=args.seconds, cpus=args.cpus, hlog_dir=args.hlog_dir)


def cmd_signals(args: argparse.Namespace) -> int:
    _guard(args, "vajra signals")
    from vajra.runtime.signals_cli import run_signals

    try:
        return run_signals(feed=args.feed, seconds=args.seconds, speed=args.speed, seed=args.seed)
    except ValueError as e:
        print(f"vajra signals: {e}", file=sys.stderr)
        return 2


def cmd_bench(args: argparse.Namespace, rest: list[str]) -> int:
    if args.what == "ipc":
        from vajra.bench import ipc

        return ipc.main(rest)
    if args.what == "signals":
        from vajra.bench import signals

        return signals.main(rest)
    if args.what == "execution":
        from vajra.bench import execution

        return execution.main(rest)
    if args.what == "render":
        import json

        from vajra.bench import ipc

        if not rest:
            print("usage: vajra bench render FILE.json", file=sys.stderr)
            return 2
        with open(rest[0]) as f:
            data = json.load(f)
        if "capture" in data:  # a `vajra bench signals --json` result
            from vajra.bench import signals

            print(signals.render(data))
        elif "decision" in data:  # a `vajra bench execution --json` result
            from vajra.bench import execution

            print(execution.render(data))
        else:
            print(ipc.render_table(data))
        return 0
    print(f"unknown benchmark {args.what!r}", file=sys.stderr)
    return 2


def cmd_shm(args: argparse.Namespace) -> int:
    from vajra.shm import segment

    if args.action == "clean":
        removed = segment.remove_stale()
        for n in removed:
            print(f"removed stale segment /dev/shm/{n}")
        print(f"{len(removed)} stale segment(s) removed")
        return 0
    stale = {s.name for s in segment.find_stale()}
    rows = list(segment.list_segments(args.run))
    for h in rows:
        state = "STALE" if h.name in stale else ("ready" if h.ready else "init")
        print(
            f"{h.name:60} {h.layout_name:12} v{h.layout_version} pid {h.creator_pid:<8} "
            f"{h.total_size:>10} B  {state}"
        )
    if not rows:
        print("no Vajra segments in /dev/shm")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vajra", description="Vajra low-latency execution engine")
    sub = p.add_subparsers(dest="cmd", required=True)

    d = sub.add_parser("doctor", help="check this machine and interpreter for low-latency use")
    d.add_argument("--json", action="store_true", help="machine-readable output")

    pg = sub.add_parser("ping", help="live ring ping-pong between two pinned threads")
    pg.add_argument("--seconds", type=float, default=5.0)
    pg.add_argument("--cpus", help="two CPUs, e.g. 0,1 (default: the first two allowed)")
    pg.add_argument("--hlog-dir", default="runs", help="where to write the interval .hlog")
    pg.add_argument("--allow-gil", action="store_true", help=argparse.SUPPRESS)

    sg = sub.add_parser("signals", help="run a feed through book, Oracle and Sonar; live status")
    sg.add_argument(
        "--feed", default="synthetic", help="synthetic (default), binance:PATH or lobster:PATH"
    )
    sg.add_argument("--seconds", type=float, default=10.0)
    sg.add_argument(
        "--speed",
        type=float,
        default=0.0,
        help="x recorded/simulated pace; 0 = as fast as possible (default)",
    )
    sg.add_argument("--seed", type=int, default=7, help="synthetic feed seed")
    sg.add_argument("--allow-gil", action="store_true", help=argparse.SUPPRESS)

    b = sub.add_parser(
        "bench", help="benchmarks: `vajra bench ipc [--quick] [--json]`", add_help=False
    )
    b.add_argument("what", choices=["ipc", "signals", "execution", "render"])

    j = sub.add_parser(
        "journal", help="the order journal: `vajra journal export DB OUT.csv`", add_help=False
    )
    j.add_argument("action", choices=["export"])

    s = sub.add_parser("shm", help="list Vajra shared-memory segments or remove stale ones")
    s.add_argument("action", choices=["ls", "clean"], nargs="?", default="ls")
    s.add_argument("--run", help="only this run id")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    try:
        if args.cmd == "bench":
            return cmd_bench(args, rest)
        if args.cmd == "journal":
            from vajra.journal import export

            return export.main(rest)
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        if args.cmd == "doctor":
            return cmd_doctor(args)
        if args.cmd == "ping":
            return cmd_ping(args)
        if args.cmd == "shm":
            return cmd_shm(args)
        if args.cmd == "signals":
            return cmd_signals(args)
    except (gil.GilEnabledError, gil.PlatformError) as e:
        print(f"vajra: refusing to start: {e}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130
    parser.error(f"unknown command {args.cmd!r}")
    return 2
