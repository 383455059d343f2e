#!/usr/bin/env python3
"""tests/helpers/http_server.py: a small asyncio HTTP/1.1 server for the http and
exec tests, the examples' tests and bench/http.lua.

usage: http_server.py [--ports N] [--status I=CODE]... [--health-delay MS]
                      [--tls CERT KEY] [--max-life SECONDS]

Listens on N free ports of 127.0.0.1 (default 1) and prints one line,
"PORTS p1 p2 ... REFUSED r PID <pid>", once they accept connections (r is a
port held bound but not listening: connecting to it is refused). It exits when its
parent process goes away, on SIGTERM, or after --max-life seconds (default 600),
so a crashed test never leaves it behind. Thousands of concurrent connections are
fine (one asyncio task each, listen backlog 4096).

Routes (any method):
  /health          200 "OK"; with --status I=CODE the I-th port (1-based) answers CODE;
                   each answer comes after --health-delay MS (default 0)
  /delay/MS        waits MS milliseconds, then 200 "slept MS"
  /status/CODE     answers CODE with body "status CODE"
  /echo[?query]    200, JSON {method, path, query, headers (lower-case names), body}
  /headers         200 with X-Custom: one, two X-Multi headers, Content-Type text/plain
  /redirect        302 to /echo
  /big/N           200 with N bytes of "x"
  /data/NAME       200 JSON {"api": NAME, "items": [1, 2, 3]}
  /hold/TAG        holds the request up to 30 s, noting whether the client hung up;
  /seen/TAG        answers that note: "none", "open", "closed" (client hung up) or "done"
"""
import argparse
import asyncio
import json
import os
import signal
import socket
import ssl
import sys
import urllib.parse

REASONS = {200: "OK", 201: "Created", 204: "No Content", 302: "Found", 400: "Bad Request",
           404: "Not Found", 418: "I'm a teapot", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Service Unavailable"}

held = {}  # /hold tags -> "open" | "closed" | "done"


def response(code, body=b"", headers=()):
    if isinstance(body, str):
        body = body.encode()
    head = ["HTTP/1.1 %d %s" % (code, REASONS.get(code, "Status")),
            "Content-Length: %d" % len(body), "Connection: close"]
    head += ["%s: %s" % kv for kv in headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def read_request(reader):
    line = await reader.readline()
    if not line:
        return None
    method, target, _ = line.decode("latin-1").split(" ", 2)
    headers = {}
    while True:
        h = await reader.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        name, _, value = h.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = b""
    n = int(headers.get("content-length", "0") or 0)
    if n:
        body = await reader.readexactly(n)
    return method, target, headers, body


def make_handler(index, statuses, health_delay):
    async def handle(reader, writer):
        try:
            req = await read_request(reader)
            if req is None:
                return
            method, target, headers, body = req
            url = urllib.parse.urlsplit(target)
            parts = [p for p in url.path.split("/") if p]
            route = parts[0] if parts else ""
            arg = parts[1] if len(parts) > 1 else ""
            if route == "health":
                await asyncio.sleep(health_delay)
                code = statuses.get(index, 200)
                out = response(code, "OK" if code == 200 else "unhealthy")
            elif route == "delay":
                await asyncio.sleep(float(arg) / 1000.0)
                out = response(200, "slept " + arg)
            elif route == "status":
                out = response(int(arg), "status " + arg)
            elif route == "echo":
                out = response(200, json.dumps({
                    "method": method, "path": url.path, "query": url.query,
                    "headers": headers, "body": body.decode("utf-8", "replace")}),
                    [("Content-Type", "application/json")])
            elif route == "headers":
                out = response(200, "with headers", [("Content-Type", "text/plain"),
                                                     ("X-Custom", "one"), ("X-Multi", "a"),
                                                     ("X-Multi", "b")])
            elif route == "redirect":
                out = response(302, "", [("Location", "/echo")])
            elif route == "big":
                out = response(200, b"x" * int(arg))
            elif route == "data":
                out = response(200, json.dumps({"api": arg, "items": [1, 2, 3]}),
                               [("Content-Type", "application/json")])
            elif route == "hold":
                held[arg] = "open"
                try:
                    got = await asyncio.wait_for(reader.read(1), 30)
                    held[arg] = "closed" if not got else "open"
                except asyncio.TimeoutError:
                    held[arg] = "done"
                out = response(200, "held") if held[arg] != "closed" else b""
            elif route == "seen":
                out = response(200, held.get(arg, "none"))
            else:
                out = response(404, "no route " + url.path)
            if out:
                writer.write(out)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            try:
                writer.close()
            except Exception:
                pass
    return handle


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ports", type=int, default=1)
    ap.add_argument("--status", action="append", default=[])
    ap.add_argument("--health-delay", type=float, default=0)
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--max-life", type=float, default=600)
    a = ap.parse_args()
    statuses = {}
    for s in a.status:
        i, _, c = s.partition("=")
        statuses[int(i)] = int(c)
    ctx = None
    if a.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.tls[0], a.tls[1])
    servers, ports = [], []
    for i in range(1, a.ports + 1):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        srv = await asyncio.start_server(make_handler(i, statuses, a.health_delay / 1000.0), sock=sock, ssl=ctx,
                                         backlog=4096)
        servers.append(srv)
        ports.append(sock.getsockname()[1])
    # a bound socket that never listens: connections to it are refused
    refused = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    refused.bind(("127.0.0.1", 0))
    print("PORTS %s REFUSED %d PID %d" % (" ".join(map(str, ports)), refused.getsockname()[1],
                                           os.getpid()), flush=True)
    parent = os.getppid()
    asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: None)  # quiet exit
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + a.max_life
    while not stop.is_set() and os.getppid() == parent and loop.time() < deadline:
        try:
            await asyncio.wait_for(stop.wait(), 0.5)
        except asyncio.TimeoutError:
            pass
    for s in servers:
        s.close()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    sys.exit(0)
