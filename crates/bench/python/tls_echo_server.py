"""The TLS echo server of the tls_echo benchmark, run by evloop-bench on asyncio, uvloop or
evloop_py (evloop as CPython's loop).

usage: tls_echo_server.py --loop asyncio|uvloop|evloop_py --cert CERT.pem --key KEY.pem
                          [--host 127.0.0.1] [--port 0]

The Protocol echo of echo_server.py behind `create_server(ssl=...)`: an `ssl.SSLContext` for
the server side, loaded from the PEM certificate and key the benchmark generated, TLS 1.3 only
(as the Rust subjects speak). Every `data_received` writes the data straight back. It prints the
port it listens on as one stdout line, and serves until it is killed or its stdin closes, so
that it never outlives the benchmark that started it.
"""
import argparse
import asyncio
import ssl

# The Protocol echo, the loops and the stdin watch are echo_server.py's (this script's
# directory is on sys.path when it runs).
from echo_server import BACKLOG, Echo, new_loop, serve_until_stdin_closes


def server_context(cert, key):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(cert, key)
    return context


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--loop", choices=["asyncio", "uvloop", "evloop_py"], default="asyncio")
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    context = server_context(args.cert, args.key)
    loop = new_loop(args.loop)
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(Echo, args.host, args.port, ssl=context, backlog=BACKLOG)
    )
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    serve_until_stdin_closes(loop)


if __name__ == "__main__":
    main()
