"""`vajra` command line: run, kill, ctl, doctor, ping, signals, bench, journal, shm.

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


def cmd_run(args: argparse.Namespace) -> int:
    from vajra.engine.config import ConfigError, load

    overrides = list(args.set or [])
    for key, value in (
        ("engine.duration_s", args.duration),
        ("feed.speed", args.speed),
        ("feed.seed", args.seed),
        ("engine.run_dir", None if args.run_dir is None else f'"{args.run_dir}"'),
        ("feed.source", None if args.feed is None else f'"{args.feed}"'),
    ):
        if value is not None:
            overrides.append(f"{key}={value}")
    try:
        cfg = load(args.config, overrides)
    except ConfigError as e:
        print(f"vajra run: bad configuration: {e}", file=sys.stderr)
        return 2
    _guard(args, "vajra run")
    from vajra.engine.engine import Engine

    try:
        engine = Engine(cfg)
    except ValueError as e:  # a feed that cannot be opened, a core plan that cannot be met
        print(f"vajra run: {e}", file=sys.stderr)
        return 2
    code = engine.run()
    if args.json_summary:
        import json

        text = json.dumps(engine.summary, indent=1)
        if args.json_summary == "-":
            print(text)
        else:
            with open(args.json_summary, "w") as f:
                f.write(text + "\n")
    return code


def cmd_ctl(args: argparse.Namespace) -> int:
    """Act on a running engine through its control block (what the monitor's API does)."""
    from vajra.shm.control import Command, Control, KillOrigin
    from vajra.shm.segment import SegmentError, list_segments

    run = args.run
    if run is None:
        live = [h for h in list_segments() if h.layout_name == "control" and h.ready]
        if not live:
            print("vajra: no running engine (no control segment in /dev/shm)", file=sys.stderr)
            return 2
        run = max(live, key=lambda h: h.created_ns).run_id
    try:
        control = Control.attach(run)
    except (SegmentError, FileNotFoundError) as e:
        print(f"vajra: cannot attach to run {run}: {e}", file=sys.stderr)
        return 2
    w = control.writer()
    try:
        if args.cmd == "kill":
            seq = w.request_kill(origin=KillOrigin.CLI)
            ns = w.wait_kill_ack(seq, args.timeout)
            if ns is None:
                print(f"run {run}: kill {seq} requested, no acknowledgement in {args.timeout} s")
                return 1
            print(f"run {run}: KILLED, acknowledged {ns / 1e6:.3f} ms after the flag was set")
            return 0
        cmd = Command[args.action.upper()]
        seq = w.send(cmd, int(args.arg))
        ack = w.wait_ack(seq, args.timeout)
        if ack is None:
            print(f"run {run}: {cmd.name} sent, no acknowledgement in {args.timeout} s")
            return 1
        print(f"run {run}: {cmd.name} -> {ack.result.name} in {ack.latency_ns / 1e6:.3f} ms")
        return 0 if ack.result.name == "OK" else 1
    finally:
        w.close()
        control.close()


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
    if args.what == "e2e":
        from vajra.bench import e2e

        return e2e.main(rest)
    if args.what == "monitor":
        from vajra.bench import monitor

        return monitor.main(rest)
    if args.what == "render":
        import json

        from vajra.bench import ipc

        if not rest:
            print("usage: vajra bench render FILE.json", file=sys.stderr)
            return 2
        with open(rest[0]) as f:
            data = json.load(f)
        if data.get("bench") == "monitor":  # a `vajra bench monitor --json` result
            from vajra.bench import monitor

            print(monitor.render(data))
        elif "variants" in data:  # a `vajra bench e2e --json` result
            from vajra.bench import e2e

            print(e2e.render(data))
        elif "capture" in data:  # a `vajra bench signals --json` result
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

    r = sub.add_parser("run", help="the engine: feed, Oracle, Sonar, Execution, Sentinel")
    r.add_argument("--config", help="a TOML file over config/default.toml")
    r.add_argument(
        "--set",
        action="append",
        metavar="TABLE.KEY=VALUE",
        help="override one setting (repeatable), e.g. --set risk.max_position=500",
    )
    r.add_argument("--duration", type=float, help="seconds to run (default: until Ctrl-C)")
    r.add_argument("--feed", help="synthetic, binance:PATH or lobster:PATH")
    r.add_argument("--speed", type=float, help="x the recorded pace; 0 = as fast as possible")
    r.add_argument("--seed", type=int, help="the synthetic market's seed")
    r.add_argument("--run-dir", help="where runs/<run>/ and the journal go (default runs)")
    r.add_argument("--json-summary", metavar="PATH", help="write the summary as JSON (- = stdout)")
    r.add_argument("--allow-gil", action="store_true", help=argparse.SUPPRESS)

    k = sub.add_parser("kill", help="kill a running engine: no new orders, cancel all resting")
    k.add_argument("--run", help="run id (default: the newest running engine)")
    k.add_argument("--timeout", type=float, default=2.0)

    c = sub.add_parser("ctl", help="send a command to a running engine")
    c.add_argument("action", choices=["rearm", "halt", "resume", "spike"])
    c.add_argument("--run", help="run id (default: the newest running engine)")
    c.add_argument("--arg", type=int, default=0, help="spike: duration in ns (default: config)")
    c.add_argument("--timeout", type=float, default=2.0)

    m = sub.add_parser(
        "monitor", help="telemetry over WebSocket/HTTP, the kill switch, /metrics (docs/monitor.md)"
    )
    m.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    m.add_argument("--port", type=int, default=8787, help="0: any free port (printed)")
    m.add_argument("--rate", type=float, default=25.0, help="WebSocket snapshots per second")
    m.add_argument("--run", help="follow this run only (default: the newest live run)")
    m.add_argument("--run-dir", default="runs", help="the engine's run directory (configs)")
    m.add_argument("--token-file", help="the kill switch's bearer token (else env or generated)")
    m.add_argument("--static", help="the built cockpit (default dashboard/dist)")
    m.add_argument("--cpu", type=int, help="pin the monitor here (default: housekeeping CPU)")
    m.add_argument("--origin", action="append", default=[], help="another allowed Origin")

    b = sub.add_parser(
        "bench", help="benchmarks: `vajra bench ipc [--quick] [--json]`", add_help=False
    )
    b.add_argument("what", choices=["ipc", "signals", "execution", "e2e", "monitor", "render"])

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
        if args.cmd == "run":
            return cmd_run(args)
        if args.cmd in ("kill", "ctl"):
            return cmd_ctl(args)
        if args.cmd == "monitor":
            from vajra.monitor.main import main as monitor_main

            return monitor_main(args)
    except (gil.GilEnabledError, gil.PlatformError) as e:
        print(f"vajra: refusing to start: {e}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130
    parser.error(f"unknown command {args.cmd!r}")
    return 2
