"""evloop beside asyncio and uvloop on callback work, in one run.

    python loops.py [--n 1000000] [--repeat 3] [--loops asyncio,uvloop,evloop]

Shapes (as `cargo xtask bench`'s callbacks group, crates/bench/python/callbacks.py):
- chained: N callbacks, each scheduling the next with call_soon (wall time);
- batched: one callback schedules N with call_soon, then they all run (wall time);
- timers: N/10 call_later with random delays under 0.1 s, half cancelled (CPU time).

Each figure is the best of --repeat runs; each run checks its result. Ratios are against
evloop (higher: evloop faster). uvloop is left out, and said so, when it does not import.
"""

import argparse
import asyncio
import random
import time


def new_loop(kind):
    if kind == "uvloop":
        import uvloop
        return uvloop.new_event_loop()
    if kind == "evloop":
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
    return took


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
    loop.call_soon(loop.stop)
    loop.run_forever()
    took = time.perf_counter() - t0
    assert count == n, count
    return took


def timers(loop, n):
    n //= 10
    rng = random.Random(0x5EED)
    fired = 0
    live = n - n // 2

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
    loop.run_forever()
    took = time.process_time() - c0
    assert fired == live, (fired, live)
    return took


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--loops", default="asyncio,uvloop,evloop")
    args = parser.parse_args()
    kinds = []
    for kind in args.loops.split(","):
        try:
            new_loop(kind).close()
            kinds.append(kind)
        except ImportError as e:
            print(f"{kind}: skipped ({e})")
    shapes = [("chained", chained), ("batched", batched), ("timers", timers)]
    best = {}
    for name, shape in shapes:
        for _ in range(args.repeat):
            for kind in kinds:  # interleaved, so that a slow moment hits every loop alike
                loop = new_loop(kind)
                try:
                    took = shape(loop, args.n)
                finally:
                    loop.close()
                key = (name, kind)
                best[key] = min(best.get(key, took), took)
    print(f"n = {args.n:,}, best of {args.repeat}, ms (timers: CPU ms, n/10 timers)")
    print(f"{'shape':<8}" + "".join(f"{k:>10}" for k in kinds) + "   evloop ratio")
    for name, _ in shapes:
        row = f"{name:<8}" + "".join(f"{best[(name, k)] * 1e3:>10.1f}" for k in kinds)
        if "evloop" in kinds:
            ev = best[(name, "evloop")]
            row += "   " + ", ".join(
                f"{best[(name, k)] / ev:.2f}x vs {k}" for k in kinds if k != "evloop")
        print(row)


if __name__ == "__main__":
    main()
