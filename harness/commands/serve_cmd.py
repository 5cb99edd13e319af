"""``s2s-bench serve``: serve one backend over the ``s2s-ws/1`` WebSocket protocol (FastAPI + uvicorn)."""

from __future__ import annotations

import sys

from . import add_against_argument


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "serve",
        help="serve a backend over WebSocket (protocol s2s-ws/1), with a browser demo at /",
        description="Load BACKEND once, warm it up, and serve it to many concurrent WebSocket sessions. "
        "Endpoints: / (browser demo), /ws (protocol s2s-ws/1, docs/protocol.md), /health, /metrics (Prometheus).",
    )
    p.add_argument("--backend", required=True, metavar="SPEC", help="backend to serve, NAME[:key=value,...]")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    p.add_argument("--port", type=int, default=8765, help="TCP port (default 8765)")
    p.add_argument(
        "--token", default=None, help="require this bearer token (header or ?token=); env S2S_BENCH_TOKEN"
    )
    p.add_argument(
        "--max-sessions", type=int, default=64, help="concurrent sessions (started connections) allowed (64)"
    )
    p.add_argument(
        "--start-timeout-s",
        type=float,
        default=10.0,
        help="close a connection with no 'start' after this (10)",
    )
    p.add_argument(
        "--idle-timeout-s",
        type=float,
        default=300.0,
        help="close a session idle between turns after this (300)",
    )
    p.add_argument(
        "--max-turn-audio-s", type=float, default=300.0, help="input audio one turn may send, in s (300)"
    )
    p.add_argument(
        "--max-connection-audio-s",
        type=float,
        default=3600.0,
        help="input audio one connection may send over all its turns, in s (3600)",
    )
    p.add_argument(
        "--max-session-s", type=float, default=300.0, help="longest turn, start to done, in s (300)"
    )
    p.add_argument(
        "--max-frame-bytes", type=int, default=1 << 20, help="largest frame accepted, bytes (1 MiB)"
    )
    p.add_argument(
        "--send-queue-frames", type=int, default=256, help="output frames buffered per client (256)"
    )
    p.add_argument(
        "--send-timeout-s", type=float, default=5.0, help="close a client that reads nothing for this long"
    )
    p.add_argument("--no-warmup", action="store_true", help="skip the backend's warm-up turn")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    p.set_defaults(func=run)
    add_load_parser(subparsers)


def run(args) -> int:
    import os

    from ..backend import BackendError
    from ..server.limits import ServerLimits

    try:
        limits = ServerLimits(
            max_frame_bytes=args.max_frame_bytes,
            max_session_s=args.max_session_s,
            max_sessions=args.max_sessions,
            start_timeout_s=args.start_timeout_s,
            idle_timeout_s=args.idle_timeout_s,
            max_turn_audio_s=args.max_turn_audio_s,
            max_connection_audio_s=args.max_connection_audio_s,
            send_queue_frames=args.send_queue_frames,
            send_timeout_s=args.send_timeout_s,
        )
    except ValueError as exc:
        print(f"s2s-bench serve: {exc}", file=sys.stderr)
        return 2
    try:
        import uvicorn

        from ..server.app import create_app
        from ..server.serving import _uvicorn_config, bind_socket, load_backend
    except ModuleNotFoundError as exc:
        print(
            f"s2s-bench serve: {exc.name} is missing; install the extra: pip install 's2s-bench[serve]'",
            file=sys.stderr,
        )
        return 2
    token = args.token or os.environ.get("S2S_BENCH_TOKEN") or None
    if args.host not in ("127.0.0.1", "localhost", "::1") and token is None:
        print(f"s2s-bench serve: warning: serving on {args.host} without --token", file=sys.stderr)
    try:
        backend = load_backend(args.backend, warmup=not args.no_warmup)
    except BackendError as exc:
        print(f"s2s-bench serve: {exc}", file=sys.stderr)
        return 2
    app = create_app(backend, limits, token)
    config = _uvicorn_config(app, args.host, args.port, limits, args.log_level)
    server = uvicorn.Server(config)
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:
        print(f"s2s-bench serve: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    print(
        f"s2s-bench serve: {args.backend} on ws://{args.host}:{args.port}/ws "
        f"(demo http://{args.host}:{args.port}/, auth {'on' if token else 'off'})",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.run(sockets=[sock])
    finally:
        backend.shutdown()
    return 0


def add_load_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "load",
        help="capacity and cost: ramp concurrent users on one or more backends side by side until each breaks",
        description="Serve each BACKEND on 127.0.0.1 (or measure --url), ramp concurrent sessions through the "
        "`remote` backend and report TTFA p50/p95, stalls and errors per level. A backend's ramp stops at its first "
        "level with p95 TTFA above --budget-ms, a stall or an error; its capacity is the last level within budget, "
        "and with --price-per-hour the cost per user-hour. Several --backend are measured in one run, level by "
        "level, taking turns. Bounded: it stops by itself.",
    )
    p.add_argument(
        "--backend",
        action="append",
        metavar="SPEC",
        help="backend to serve (repeat to compare, e.g. --backend custom:engine=per-session --backend custom); "
        "default loopback",
    )
    p.add_argument("--url", default=None, help="measure this running server instead (ws://HOST:PORT/ws)")
    p.add_argument("--token", default=None, help="bearer token for the server (with --url)")
    p.add_argument(
        "--levels",
        default=None,
        help="concurrency levels, comma-separated (1,2,4,8,16,24,32,48,64; --url: 1,2,4,8,16)",
    )
    p.add_argument("--rounds", type=int, default=2, help="utterances per session slot and level (default 2)")
    p.add_argument("--data", default="synthetic-clips", help="dataset name or manifest .jsonl path")
    p.add_argument("--split", default=None, help="only this split of the data (e.g. test)")
    p.add_argument("--budget-ms", type=float, default=500.0, help="p95 TTFA budget in ms (default 500)")
    p.add_argument(
        "--price-per-hour",
        type=float,
        default=None,
        help="dollars per machine-hour: prints the cost per user-hour",
    )
    p.add_argument("--pacing", choices=("realtime", "fast"), default="realtime")
    p.add_argument("--format", choices=("pcm16", "f32"), default="pcm16", help="audio encoding on the wire")
    p.add_argument(
        "--max-total-s", type=float, default=1800.0, help="stop ramping after this many seconds (per pass)"
    )
    p.add_argument(
        "--server",
        choices=("process", "thread"),
        default="process",
        help="serve each BACKEND with `s2s-bench serve` in its own process (default, as deployed) or in a "
        "thread of this one (server and load client then share one GIL)",
    )
    p.add_argument(
        "--keep-going",
        action="store_true",
        help="measure the levels above a backend's first one out of budget too (its capacity does not change); "
        "stop only where a level is clearly overloaded (p95 TTFA above 4x the budget or half the turns failed)",
    )
    p.add_argument(
        "--passes",
        type=int,
        default=1,
        help="ramp N times over the same servers and report the median capacity with its range (the first stall "
        "decides a pass, so one pass is noisy at the edge; default 1)",
    )
    add_against_argument(
        p,
        "also serve every BACKEND from git revision REV (a temporary worktree) and ramp it beside the working "
        "tree's, level by level",
    )
    p.add_argument(
        "--out", default="reports/runs/load", help="output folder (load.json, load.md, one run per level)"
    )
    p.set_defaults(func=run_load)


def run_load(args) -> int:
    from ..backend import BackendError

    try:
        levels = tuple(int(x) for x in args.levels.split(",") if x.strip()) if args.levels else None
        if args.url:
            if args.against is not None:
                raise ValueError("--against serves the backends itself: it cannot measure --url")
            if args.passes != 1:
                raise ValueError("--passes ramps backends served here: not with --url")
            from ..server.load import DEFAULT_LEVELS, run_load_suite

            report = run_load_suite(
                url=args.url,
                token=args.token,
                levels=levels or DEFAULT_LEVELS,
                rounds=args.rounds,
                data=args.data,
                budget_ms=args.budget_ms,
                pacing=args.pacing,
                wire_format=args.format,
                max_total_s=args.max_total_s,
                out=args.out,
                progress=True,
            )
            print(report.table())
            if args.price_per_hour and report.capacity:
                print(
                    f"cost: ${args.price_per_hour / report.capacity:.4f} per user-hour at ${args.price_per_hour:g}/h"
                )
        else:
            from ..server.capacity import DEFAULT_RAMP, run_capacity

            report = run_capacity(
                args.backend or ["loopback"],
                levels=levels or DEFAULT_RAMP,
                rounds=args.rounds,
                data=args.data,
                split=args.split,
                budget_ms=args.budget_ms,
                pacing=args.pacing,
                wire_format=args.format,
                max_total_s=args.max_total_s,
                price_per_hour=args.price_per_hour,
                out=args.out,
                progress=True,
                server=args.server,
                against=args.against,
                keep_going=args.keep_going,
                passes=args.passes,
            )
            print(report.table())
    except (ValueError, BackendError, ModuleNotFoundError) as exc:
        print(f"s2s-bench load: error: {exc}", file=sys.stderr)
        return 2
    print(f"\nwritten: {args.out}/load.md, {args.out}/load.json")
    return 0
