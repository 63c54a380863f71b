"""The callback-loop benchmarks, run by evloop-bench on asyncio, uvloop or evloop_py (evloop as CPython's loop).

usage: callbacks.py --loop asyncio|uvloop|evloop_py --shape chained|batched|timers N

Prints `metric value` lines: `total <ms>` for chained/batched, `cpu <ms>` for timers. The shapes
are the same as evloop's own (crates/bench/src/callbacks.rs), and every run checks its result.
"""
import argparse
import asyncio
import random
import sys
import time


def new_loop(kind):
    if kind == "uvloop":
        import uvloop
        return uvloop.new_event_loop()
    if kind == "evloop_py":
        import evloop
        return evloop.new_event_loop()
    return asyncio.new_event_loop()


def chained(loop, n):
    count = 0

    def step():
        nonlocal count
        count += 1
        if count < n:
            loop.call_soon(step)
        else:
            loop.stop()

    t0 = time.perf_counter()
    loop.call_soon(step)
    loop.run_forever()
    took = time.perf_counter() - t0
    assert count == n, count
    print(f"total {took * 1e3:.3f}")


def batched(loop, n):
    count = 0

    def tick():
        nonlocal count
        count += 1

    def fan_out():
        for _ in range(n):
            loop.call_soon(tick)
        loop.call_soon(loop.stop)

    t0 = time.perf_counter()
    loop.call_soon(fan_out)
    loop.run_forever()
    # the stop callback runs in the same batch as the ticks; one more iteration finishes any rest
    took = time.perf_counter() - t0
    assert count == n, count
    print(f"total {took * 1e3:.3f}")


def timers(loop, n):
    rng = random.Random(0x5EED)
    fired = 0
    live = 0

    def fire():
        nonlocal fired
        fired += 1
        if fired == live:
            loop.stop()

    c0 = time.process_time()
    handles = [loop.call_later(rng.random() * 0.1, fire) for _ in range(n)]
    idx = list(range(n))
    rng.shuffle(idx)
    for i in idx[: n // 2]:
        handles[i].cancel()
    live = n - n // 2
    loop.run_forever()
    took = time.process_time() - c0
    assert fired == live, (fired, live)
    print(f"cpu {took * 1e3:.3f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loop", choices=["asyncio", "uvloop", "evloop_py"], required=True)
    ap.add_argument("--shape", choices=["chained", "batched", "timers"], required=True)
    ap.add_argument("n", type=int)
    args = ap.parse_args()
    loop = new_loop(args.loop)
    try:
        {"chained": chained, "batched": batched, "timers": timers}[args.shape](loop, args.n)
    finally:
        loop.close()


if __name__ == "__main__":
    sys.exit(main())
