"""``evalstream view OUTPUT_DIR``: the live view (``view/``) served by uvicorn on this machine.

It lists the folder's runs, streams the progress of those running in other processes from their
files, and browses saved runs' samples. It binds to 127.0.0.1 unless ``--host`` says otherwise:
the view shows prompts and outputs, and has no login.
"""

from __future__ import annotations

import argparse
import socket
from typing import Any

from evalstream._errors import ConfigError

_HELP = "a local web app: runs, live progress and estimates, a sample browser"


def add_view_parser(sub: Any) -> None:
    """The ``view`` subcommand."""
    p = sub.add_parser(
        "view",
        help=_HELP,
        description=_HELP + " (the view extra: pip install 'evalstream[view]')",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("output_dir", help="the output folder (a path or an fsspec URL)")
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    p.add_argument("--port", type=int, default=8000, help="the port (0: any free one)")
    p.add_argument(
        "--interval", type=float, default=0.5, help="seconds between a live run's updates"
    )
    p.set_defaults(func=view)


def view(args: argparse.Namespace) -> int:
    """Serve the view until interrupted."""
    try:
        import uvicorn

        from evalstream.view.app import view_app
    except ImportError as exc:  # an optional extra
        raise ConfigError(
            f"the live view needs Starlette and uvicorn ({exc.name} is missing): "
            "pip install 'evalstream[view]'"
        ) from None
    from evalstream.runs.catalog import filesystem

    fs, root = filesystem(args.output_dir)
    if not fs.isdir(root):
        raise ConfigError(f"{args.output_dir} is not a folder (an evalstream output folder)")
    app = view_app(args.output_dir, interval=args.interval)
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family)  # bound here, so the address printed is the one served
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    print(
        f"evalstream view: http://{shown}:{port}/ ({args.output_dir}); Ctrl-C stops it", flush=True
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    with sock:
        server.run(sockets=[sock])
    return 0
