"""Self-check of the benchmark harness's Python peer runner (src/python.rs).

Every peer script takes `--loop asyncio|uvloop|evloop_py` and prints `metric value`
lines; this one sums its integer arguments in callbacks scheduled with
call_soon and prints `sum` and `count`, so a test can check what came back.
"""
import argparse
import asyncio


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loop", choices=["asyncio", "uvloop", "evloop_py"], default="asyncio")
    parser.add_argument("numbers", nargs="*", type=int)
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    elif args.loop == "evloop_py":
        import evloop

        loop = evloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    total = 0

    def add(n: int) -> None:
        nonlocal total
        total += n

    for n in args.numbers:
        loop.call_soon(add, n)
    loop.call_soon(loop.stop)
    loop.run_forever()
    loop.close()
    print(f"sum {total}")
    print(f"count {len(args.numbers)}")


if __name__ == "__main__":
    main()
