"""The echo server of the echo benchmarks, run by evloop-bench on asyncio, uvloop or evloop_py (evloop as CPython's loop).

usage: echo_server.py --loop asyncio|uvloop|evloop_py[_sock] [--host 127.0.0.1] [--port 0]

A Protocol-based echo server, the shape asyncio's and uvloop's own echo benchmarks use: every
`data_received` writes the data straight back. With a `_sock` loop name (`asyncio_sock`, ...),
the same loop serves asyncio's low-level shape instead (uvloop's `echoserver.py`): `sock_accept`
in a loop, and a task per connection doing `sock_recv(65536)` then `sock_sendall`. It raises RLIMIT_NOFILE to its hard limit, sets
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


async def serve_sock(loop, listener):
    """The `_sock` shape: accepts forever, a task per connection."""
    tasks = set()
    while True:
        conn, _ = await loop.sock_accept(listener)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        task = loop.create_task(echo_sock(loop, conn))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


async def echo_sock(loop, conn):
    with conn:
        try:
            while True:
                data = await loop.sock_recv(conn, 65536)
                if not data:
                    return
                await loop.sock_sendall(conn, data)
        except OSError:
            return


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def new_loop(name):
    """A new event loop of `name`: asyncio, uvloop or evloop_py (evloop as CPython's loop)."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    if name == "evloop_py":
        import evloop

        return evloop.new_event_loop()
    return asyncio.new_event_loop()


def serve_until_stdin_closes(loop):
    """Runs `loop` until stdin reaches its end, then exits the process at once."""
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


def main():
    parser = argparse.ArgumentParser()
    loops = ["asyncio", "uvloop", "evloop_py"]
    parser.add_argument("--loop", choices=loops + [f"{name}_sock" for name in loops],
                        default="asyncio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    raise_nofile()
    sock_shape = args.loop.endswith("_sock")
    loop = new_loop(args.loop.removesuffix("_sock"))
    asyncio.set_event_loop(loop)
    if sock_shape:
        listener = socket.create_server((args.host, args.port), backlog=BACKLOG)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        serving = loop.create_task(serve_sock(loop, listener))
    else:
        server = loop.run_until_complete(
            loop.create_server(Echo, args.host, args.port, backlog=BACKLOG)
        )
        port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    serve_until_stdin_closes(loop)


if __name__ == "__main__":
    main()
