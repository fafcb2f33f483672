"""A standalone tlog-witness HTTP server using only the standard library.

Serves ``POST /add-checkpoint`` (c2sp.org/tlog-witness) over a
:class:`.witness.WitnessState`::

    python -m tocsin.engines.ledger.witness_server genkey witness.example/w1 > witness.key
    python -m tocsin.engines.ledger.witness_server add-log --state w.db --key witness.key LOG_VKEY
    python -m tocsin.engines.ledger.witness_server serve --state w.db --key witness.key --port 7380

Plain HTTP: put it behind a TLS terminator (or a c2sp.org/https-bastion) when
it leaves the machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .witness import MAX_BODY, WitnessState, generate_witness_key, handle_add_checkpoint

__all__ = ["load_key", "make_server", "serve", "serve_in_thread"]


def load_key(key_path: str | os.PathLike[str]) -> str:
    """Read a witness signer key (``PRIVATE+KEY+...`` with type 0x04) from a file."""
    with open(key_path, encoding="utf-8") as fh:
        return fh.read().strip()


class _Handler(BaseHTTPRequestHandler):
    server_version = "tocsin-witness/1"
    protocol_version = "HTTP/1.1"  # keep-alive, as the spec recommends
    state: WitnessState  # set on the subclass made by make_server

    def log_message(self, format: str, *args: object) -> None:
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _text(self, status: int, message: str, **headers: str) -> None:
        self._send(status, {"Content-Type": "text/plain; charset=utf-8", **headers},
                   (message + "\n").encode())

    def do_POST(self) -> None:
        if self.path.split("?")[0] != "/add-checkpoint":
            self._text(404, "not found")
            return
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            self._text(411, "Content-Length required")
            return
        if int(length) > MAX_BODY:
            self.close_connection = True
            self._text(413, f"request body over {MAX_BODY} bytes")
            return
        body = self.rfile.read(int(length))
        status, headers, payload = handle_add_checkpoint(self.state, body)
        self._send(status, headers, payload)

    def do_GET(self) -> None:
        if self.path.split("?")[0] == "/add-checkpoint":
            self._text(405, "use POST", Allow="POST")
        else:
            self._text(404, "not found")


def make_server(host: str, port: int, state: WitnessState, *,
                verbose: bool = False) -> ThreadingHTTPServer:
    """A bound, not yet serving, threaded server (``port=0``: ephemeral)."""
    handler = type("WitnessHandler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    server.verbose = verbose  # type: ignore[attr-defined]
    return server


def serve_in_thread(state: WitnessState, host: str = "127.0.0.1",
                    port: int = 0) -> tuple[ThreadingHTTPServer, str]:
    """Start a server on a background thread; returns it and its base URL."""
    server = make_server(host, port, state)
    threading.Thread(target=server.serve_forever, daemon=True, name="witness-http").start()
    h, p = server.server_address[:2]
    return server, f"http://{h}:{p}"


def serve(host: str, port: int, state_path: str | os.PathLike[str],
          key_path: str | os.PathLike[str], *, verbose: bool = True) -> None:
    """Serve the witness at ``state_path`` with the key in ``key_path`` until interrupted."""
    state = WitnessState(state_path, load_key(key_path))
    server = make_server(host, port, state, verbose=verbose)
    h, p = server.server_address[:2]
    print(f"witness {state.signer.name} listening on http://{h}:{p}/add-checkpoint", flush=True)
    print(f"witness vkey: {state.vkey}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tocsin.engines.ledger.witness_server",
                                 description="tlog-witness server (stdlib only)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("genkey", help="print a new witness signer key; its vkey goes to stderr")
    g.add_argument("name")
    a = sub.add_parser("add-log", help="trust a log verifier key")
    a.add_argument("--state", required=True)
    a.add_argument("--key", required=True)
    a.add_argument("vkey")
    a.add_argument("--origin")
    s = sub.add_parser("serve", help="serve POST /add-checkpoint")
    s.add_argument("--state", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=7380)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "genkey":
            skey, vkey = generate_witness_key(args.name)
            print(skey)
            print(f"vkey: {vkey}", file=sys.stderr)
        elif args.cmd == "add-log":
            origin = WitnessState(args.state, load_key(args.key)).add_log(args.vkey, args.origin)
            print(f"trusting {args.vkey} for origin {origin}")
        else:
            serve(args.host, args.port, args.state, args.key)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
