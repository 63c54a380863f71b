"""The futures-and-tasks benchmarks, run by evloop-bench on asyncio, uvloop or evloop_py (evloop as CPython's loop).

usage: tasks.py --loop asyncio|uvloop|evloop_py --shape tasks|sleep0|future_roundtrip|executor N

Prints `metric value` lines: `total <ms>` for every shape, and `p50_us <us>` for executor. The
shapes are the same as evloop's own (crates/bench/src/tasks.rs), and every run checks its result.
"""
import argparse
import asyncio
import time


def new_loop(kind):
    if kind == "uvloop":
        import uvloop
        return uvloop.new_event_loop()
    if kind == "evloop_py":
        import evloop
        return evloop.new_event_loop()
    return asyncio.new_event_loop()


async def tasks(n):
    count = 0

    async def bump():
        nonlocal count
        count += 1

    loop = asyncio.get_running_loop()
    ts = [loop.create_task(bump()) for _ in range(n)]
    for t in ts:
        await t
    assert count == n, count


async def sleep0(n):
    count = 0
    for _ in range(n):
        await asyncio.sleep(0)
        count += 1
    assert count == n, count


async def future_roundtrip(n):
    loop = asyncio.get_running_loop()
    total = 0
    for i in range(n):
        fut = loop.create_future()
        loop.call_soon(fut.set_result, i)
        total += await fut - i + 1
    assert total == n, total


async def executor(n):
    loop = asyncio.get_running_loop()
    lat = []
    for _ in range(n):
        sent = time.perf_counter()
        await loop.run_in_executor(None, lambda: None)
        lat.append((time.perf_counter() - sent) * 1e6)
    assert len(lat) == n
    lat.sort()
    return lat


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--loop", choices=["asyncio", "uvloop", "evloop_py"], required=True)
    parser.add_argument("--shape", choices=["tasks", "sleep0", "future_roundtrip", "executor"], required=True)
    parser.add_argument("n", type=int)
    args = parser.parse_args()
    loop = new_loop(args.loop)
    shape = {"tasks": tasks, "sleep0": sleep0, "future_roundtrip": future_roundtrip, "executor": executor}[args.shape]
    t0 = time.perf_counter()
    out = loop.run_until_complete(shape(args.n))
    took = time.perf_counter() - t0
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()
    print(f"total {took * 1e3:.3f}")
    if args.shape == "executor":
        print(f"p50_us {out[len(out) // 2]:.3f}")


if __name__ == "__main__":
    main()
