"""The echo server of the echo benchmarks, run by evloop-bench on asyncio, uvloop or evloop_py (evloop as CPython's loop).

usage: echo_server.py --loop asyncio|uvloop|evloop_py [--host 127.0.0.1] [--port 0]

A Protocol-based echo server, the shape asyncio's and uvloop's own echo benchmarks use: every
`data_received` writes the data straight back. It raises RLIMIT_NOFILE to its hard limit, sets
TCP_NODELAY on every connection (asyncio does so already; it is repeated here so that every
subject is alike), prints the port it listens on as one stdout line, and serves until it is
killed or its stdin closes, so that it never outlives the benchmark that started it.
"""
import argparse
import asyncio
import os
import resource
import socket
import sys

# The listen backlog every echo server uses (the kernel caps it at net.core.somaxconn).
BACKLOG = 4096


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--loop", choices=["asyncio", "uvloop", "evloop_py"], default="asyncio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    raise_nofile()
    if args.loop == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    elif args.loop == "evloop_py":
        import evloop

        loop = evloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(Echo, args.host, args.port, backlog=BACKLOG)
    )
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)

    stdin = sys.stdin.fileno()

    def on_stdin():
        # End of input (or an error) means the benchmark is gone: so is this server.
        try:
            data = os.read(stdin, 4096)
        except OSError:
            data = b""
        if not data:
            loop.stop()

    loop.add_reader(stdin, on_stdin)
    loop.run_forever()
    os._exit(0)


if __name__ == "__main__":
    main()
