"""python -m steadyws URL: a small interactive client.

(``python -m steadyws demo [--seconds N]`` runs the demo instead: a feed
surviving resets, blackholes, bursts, refusals and closes on loopback.)

Prints every message received; sends every line typed on stdin (without its
newline). At the end of input it waits until the replies stop (QUIET seconds
without a message), then closes the connection normally.
"""

from __future__ import annotations

import argparse
import sys
import threading

import steadyws

QUIET = 0.5


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m steadyws", description=__doc__.splitlines()[0])
    p.add_argument("url", help="ws:// or wss:// URL")
    p.add_argument("--header", action="append", default=[], metavar="NAME:VALUE", help="extra handshake header")
    p.add_argument("--subprotocol", action="append", default=[], help="subprotocol to offer")
    p.add_argument("--ca-file", help="PEM CA bundle for wss://")
    p.add_argument("--insecure", action="store_true", help="skip TLS certificate verification")
    return p.parse_args(argv)


def _headers(raw: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for h in raw:
        name, sep, value = h.partition(":")
        if not sep:
            raise SystemExit(f"--header must be NAME:VALUE, got {h!r}")
        pairs.append((name.strip(), value.strip()))
    return pairs


def _send_stdin(ws: steadyws.WebSocket, eof: threading.Event) -> None:
    try:
        for line in sys.stdin:
            ws.send(line.rstrip("\r\n"))
    except steadyws.WebSocketError:
        return
    finally:
        eof.set()


def _print(message: str | bytes) -> None:
    print(message if isinstance(message, str) else f"<{len(message)} bytes: {message[:32].hex()}>", flush=True)


def _receive(ws: steadyws.WebSocket, eof: threading.Event) -> None:
    """Print messages until the server closes, or input ended and replies stopped."""
    while True:
        try:
            _print(ws.recv(timeout=QUIET))
        except TimeoutError:
            if eof.is_set():
                ws.close()
                return
        except steadyws.ConnectionClosedOK:
            return


def _demo(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m steadyws demo", description="a feed surviving a bad day, on loopback")
    p.add_argument("--seconds", type=float, default=20.0, help="how long to run (default 20)")
    args = p.parse_args(argv)
    if not 1 <= args.seconds <= 3600:
        p.error("--seconds must be between 1 and 3600")
    from ._demo import run

    return run(args.seconds, sys.stdout)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["demo"]:
        return _demo(argv[1:])
    args = _parse(argv)
    try:
        ws = steadyws.connect(
            args.url,
            headers=_headers(args.header),
            subprotocols=args.subprotocol or None,
            ca_file=args.ca_file,
            insecure_skip_verify=args.insecure,
            reconnect=False,  # an interactive session ends when the server closes
        )
    except (steadyws.WebSocketError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    eof = threading.Event()
    threading.Thread(target=_send_stdin, args=(ws, eof), daemon=True).start()
    try:
        _receive(ws, eof)
    except steadyws.ConnectionClosedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        ws.close()
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
