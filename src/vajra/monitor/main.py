"""`vajra monitor`: start the monitoring service (see `vajra.monitor.server`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path

from vajra.monitor.server import Monitor, MonitorConfig, load_token

DEFAULT_STATIC = Path(__file__).resolve().parents[3] / "dashboard" / "dist"


def _pin(cpu: int | None) -> str:
    """The monitor belongs on the core plan's housekeeping CPU when no engine module runs there.
    On a 2-vCPU machine the housekeeping CPU also carries the feed and the venue, whose
    spin-yield loops starve a thread pinned beside them (measured: 100 WebSocket clients took
    up to 24 s to connect), so there the kernel places the monitor instead."""
    from vajra.runtime.coreplan import Machine, plan_auto
    from vajra.runtime.pinning import pin_current_thread

    if cpu is not None and cpu < 0:
        return "unpinned (--cpu -1)"
    try:
        if cpu is None:
            plan = plan_auto(Machine.detect())
            if plan.modules_on(plan.housekeeping):
                busy = ", ".join(plan.modules_on(plan.housekeeping))
                return f"unpinned: the housekeeping CPU {plan.housekeeping} runs {busy}"
            cpu = plan.housekeeping
        pin_current_thread(cpu)
        return f"cpu {cpu}"
    except (OSError, ValueError) as e:
        return f"unpinned ({e})"


def main(args: argparse.Namespace) -> int:
    runs = Path(args.run_dir)
    try:
        token, source = load_token(args.token_file, runs)
    except (OSError, ValueError) as e:
        print(f"vajra monitor: {e}", file=sys.stderr)
        return 2
    if args.rate <= 0 or args.rate > 120:
        print("vajra monitor: --rate must be in (0, 120]", file=sys.stderr)
        return 2
    static = Path(args.static) if args.static else DEFAULT_STATIC
    cfg = MonitorConfig(
        host=args.host,
        port=args.port,
        rate_hz=args.rate,
        runs_dir=runs,
        run=args.run,
        token=token,
        static_dir=static,
        extra_origins=tuple(args.origin),
    )
    where = _pin(args.cpu)
    mon = Monitor(cfg)

    async def run() -> None:
        ready = asyncio.Event()
        task = asyncio.create_task(mon.serve(ready))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        await ready.wait()
        print(
            f"monitor on http://{cfg.host}:{mon.port} ({where}); WebSocket /ws, API /api/*, "
            f"/metrics; kill token from {source}"
            + (f": {token}" if source.endswith("monitor.token") else ""),
            flush=True,
        )
        with contextlib.suppress(asyncio.CancelledError):
            await task

    try:
        asyncio.run(run())
    except OSError as e:
        print(f"vajra monitor: cannot listen on {cfg.host}:{cfg.port}: {e}", file=sys.stderr)
        return 2
    return 0
