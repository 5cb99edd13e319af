"""``s2s-bench serve``: serve one backend over the ``s2s-ws/1`` WebSocket protocol (FastAPI + uvicorn)."""

from __future__ import annotations

import sys


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
    p.add_argument("--max-sessions", type=int, default=64, help="concurrent connections allowed (default 64)")
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


def run(args) -> int:
    import os

    from ..backend import BackendError
    from ..server.limits import ServerLimits

    try:
        limits = ServerLimits(
            max_frame_bytes=args.max_frame_bytes,
            max_session_s=args.max_session_s,
            max_sessions=args.max_sessions,
            send_queue_frames=args.send_queue_frames,
            send_timeout_s=args.send_timeout_s,
        )
    except ValueError as exc:
        print(f"s2s-bench serve: {exc}", file=sys.stderr)
        return 2
    try:
        import uvicorn

        from ..server.app import create_app
        from ..server.serving import _uvicorn_config, load_backend
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
    print(
        f"s2s-bench serve: {args.backend} on ws://{args.host}:{args.port}/ws "
        f"(demo http://{args.host}:{args.port}/, auth {'on' if token else 'off'})",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.run()
    finally:
        backend.shutdown()
    return 0
