"""evloop's own tests of the Python module: what CPython's test_asyncio does not pin, and the
regressions found running it. Run by `cargo xtask pytest` (``python -m unittest``) before
CPython's suite; each test names the CPython test or source it follows."""

import asyncio
import contextvars
import os
import re
import signal
import socket
import sys
import tempfile
import threading
import time
import unittest

import evloop


class LoopTestCase(unittest.TestCase):
    def setUp(self):
        self.loop = evloop.new_event_loop()
        self.addCleanup(self.loop.close)


class SchedulingTests(LoopTestCase):
    # CPython: test_events.py::EventLoopTestsMixin::test_call_soon
    def test_callbacks_run_in_order_with_their_arguments(self):
        seen = []
        for i in range(5):
            self.loop.call_soon(seen.append, i)
        self.loop.call_soon(self.loop.stop)
        self.loop.run_forever()
        self.assertEqual(seen, [0, 1, 2, 3, 4])

    # CPython: test_events.py::EventLoopTestsMixin::test_call_soon_threadsafe: a callback sent
    # from another thread before a call_soon runs before it (one FIFO, as asyncio's under the GIL).
    def test_a_callback_sent_from_another_thread_first_runs_first(self):
        seen = []
        t = threading.Thread(target=self.loop.call_soon_threadsafe, args=(seen.append, "thread"))
        t.start()
        t.join()
        self.loop.call_soon(seen.append, "loop")
        self.loop.call_soon(self.loop.stop)
        self.loop.run_forever()
        self.assertEqual(seen, ["thread", "loop"])

    # CPython: test_events.py::EventLoopTestsMixin::test_call_later
    def test_timers_fire_in_deadline_order_and_not_early(self):
        seen = []
        start = self.loop.time()
        h = self.loop.call_later(0.03, seen.append, "b")
        self.loop.call_later(0.01, seen.append, "a")
        self.loop.call_later(0.05, self.loop.stop)
        self.loop.run_forever()
        self.assertEqual(seen, ["a", "b"])
        self.assertGreaterEqual(self.loop.time() - start, 0.05)
        self.assertAlmostEqual(h.when(), start + 0.03, delta=0.01)

    # CPython: asyncio/events.py::Handle.cancel, TimerHandle.__repr__
    def test_cancelled_handles_do_not_run_and_say_so(self):
        seen = []
        h = self.loop.call_soon(seen.append, 1)
        t = self.loop.call_later(0.001, seen.append, 2)
        # asyncio's own handles, for the same callback, give the same text on every version.
        self.assertEqual(repr(h), repr(asyncio.Handle(seen.append, (1,), self.loop)))
        self.assertEqual(repr(t), repr(asyncio.TimerHandle(t.when(), seen.append, (2,),
                                                           self.loop)))
        h.cancel()
        t.cancel()
        self.assertTrue(h.cancelled() and t.cancelled())
        self.assertEqual(repr(h), "<Handle cancelled>")
        self.assertEqual(repr(t), f"<TimerHandle cancelled when={t.when()}>")
        self.loop.call_later(0.02, self.loop.stop)
        self.loop.run_forever()
        self.assertEqual(seen, [])

    # CPython: test_context.py / asyncio/events.py::Handle._run: a callback runs in the context
    # copied when it was scheduled, or the one given.
    def test_callbacks_run_in_their_context(self):
        var = contextvars.ContextVar("var", default="unset")
        seen = []
        var.set("scheduled")
        self.loop.call_soon(lambda: seen.append(var.get()))
        ctx = contextvars.Context()
        ctx.run(var.set, "given")
        h = self.loop.call_soon(lambda: seen.append(var.get()), context=ctx)
        var.set("later")
        self.loop.call_soon(self.loop.stop)
        self.loop.run_forever()
        self.assertEqual(seen, ["scheduled", "given"])
        self.assertIs(h.get_context(), ctx)

    # CPython: asyncio/events.py::Handle._run: the exception handler gets message, exception
    # and handle.
    def test_an_exception_goes_to_the_exception_handler_with_asyncio_keys(self):
        contexts = []
        self.loop.set_exception_handler(lambda loop, ctx: contexts.append(ctx))

        def boom():
            raise ZeroDivisionError("boom")

        h = self.loop.call_soon(boom)
        self.loop.call_soon(self.loop.stop)
        self.loop.run_forever()
        self.assertEqual(len(contexts), 1)
        self.assertEqual(set(contexts[0]), {"message", "exception", "handle"})
        self.assertTrue(contexts[0]["message"].startswith("Exception in callback "))
        self.assertIsInstance(contexts[0]["exception"], ZeroDivisionError)
        self.assertIs(contexts[0]["handle"], h)

    # CPython: test_base_events.py::BaseEventLoopTests::test_log_slow_callbacks: debug mode
    # names the slow Python callback.
    def test_debug_mode_names_a_slow_callback(self):
        self.loop.set_debug(True)
        self.loop.slow_callback_duration = 0.01

        def slow():
            time.sleep(0.03)

        self.loop.call_soon(slow)
        self.loop.call_soon(self.loop.stop)
        with self.assertLogs("asyncio", "WARNING") as logs:
            self.loop.run_forever()
        self.assertTrue(
            any(re.search(r"Executing <Handle .*slow\(\) at .*> took 0\.\d{3} seconds", line)
                for line in logs.output), logs.output)

    # CPython: test_events.py::HandleTests::test_handle_source_traceback
    def test_debug_mode_records_where_a_handle_was_made(self):
        self.assertIsNone(self.loop.call_soon(print)._source_traceback)
        self.loop.set_debug(True)
        line = sys._getframe().f_lineno + 1
        h = self.loop.call_later(1, print)
        self.assertEqual(h._source_traceback[-1][:3],
                         (__file__, line, "test_debug_mode_records_where_a_handle_was_made"))
        self.assertTrue(repr(h).endswith(f" created at {__file__}:{line}>"), repr(h))
        h.cancel()

    # CPython: test_base_events.py::BaseEventLoopTests::test_run_until_complete_baseexception
    def test_keyboard_interrupt_leaves_run_forever(self):
        def interrupt():
            raise KeyboardInterrupt

        self.loop.call_soon(interrupt)
        with self.assertRaises(KeyboardInterrupt):
            self.loop.run_forever()
        self.assertFalse(self.loop.is_running())

    # asyncio's handles take part in garbage collection: a handle kept by the object its
    # callback holds is a cycle the collector frees once the loop is done with the handle.
    def test_a_cycle_through_a_handle_is_collected(self):
        import gc
        import weakref

        class Holder:
            def method(self):
                pass

        holder = Holder()
        holder.handle = self.loop.call_soon(holder.method)
        self.loop.call_soon(self.loop.stop)
        self.loop.run_forever()  # run: the loop no longer holds the handle, the holder does
        gone = weakref.ref(holder)
        del holder
        gc.collect()
        self.assertIsNone(gone())

    def test_the_loop_refuses_other_threads(self):
        errors = []

        def other():
            try:
                self.loop.call_soon(print)
            except RuntimeError as e:
                errors.append(str(e))

        t = threading.Thread(target=other)
        t.start()
        t.join()
        self.assertEqual(len(errors), 1)
        self.assertIn("thread that created it", errors[0])

    def test_a_closed_loop_refuses_callbacks(self):
        self.loop.close()
        with self.assertRaisesRegex(RuntimeError, "Event loop is closed"):
            self.loop.call_soon(print)
        with self.assertRaisesRegex(RuntimeError, "Event loop is closed"):
            self.loop.call_soon_threadsafe(print)


class ThreadTests(LoopTestCase):
    # The GIL is given up while the loop sleeps: a Python thread reaches a loop blocked with
    # nothing to do (asyncio's selector releases it in select()).
    def test_another_thread_wakes_a_sleeping_loop(self):
        def later():
            time.sleep(0.05)
            self.loop.call_soon_threadsafe(self.loop.stop)

        fallback = self.loop.call_later(10, self.loop.stop)
        t = threading.Thread(target=later)
        start = time.monotonic()
        t.start()
        self.loop.run_forever()
        t.join()
        fallback.cancel()
        self.assertLess(time.monotonic() - start, 5)

    # CPython: test_events.py::EventLoopTestsMixin::test_run_in_executor
    def test_run_in_executor(self):
        async def main():
            return await self.loop.run_in_executor(None, sum, [1, 2, 3])

        self.assertEqual(self.loop.run_until_complete(main()), 6)
        self.loop.run_until_complete(self.loop.shutdown_default_executor())


class FdTests(LoopTestCase):
    # CPython: test_sock_lowlevel.py::BaseSockTestsMixin::test_sock_client_connect_racing:
    # replacing a watch cancels the old handle, so a clean-up that checks it leaves the new one.
    def test_replacing_a_reader_cancels_its_handle(self):
        a, b = socket.socketpair()
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        first = self.loop._add_reader(a, print)
        second = self.loop._add_reader(a.fileno(), print)
        self.assertTrue(first.cancelled())
        self.assertFalse(second.cancelled())
        self.assertTrue(self.loop._remove_reader(a))
        self.assertTrue(second.cancelled())
        self.assertFalse(self.loop.remove_reader(a))

    def test_bad_fds_are_value_errors(self):
        with self.assertRaisesRegex(ValueError, "Invalid file descriptor: -1"):
            self.loop.add_reader(-1, print)
        with self.assertRaisesRegex(ValueError, "Invalid file object"):
            self.loop.add_reader(object(), print)

    # CPython: test_sendfile.py::SendfileMixin::test_sendfile_close_peer_in_the_middle_of_receiving:
    # every run polls I/O on its first iteration, as each of asyncio's iterations does, so a
    # short run sees an fd that is ready.
    def test_a_short_run_sees_a_ready_fd(self):
        a, b = socket.socketpair()
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        seen = []
        self.loop.add_reader(a, lambda: (seen.append(a.recv(10)), self.loop.remove_reader(a)))
        done = self.loop.create_future()
        done.set_result(None)
        for _ in range(70):  # more iterations than evloop ever skips polls for
            self.loop.call_soon(lambda: None)
        self.loop.run_until_complete(done)
        self.loop.run_until_complete(done)
        b.send(b"x")
        self.loop.run_until_complete(done)
        self.assertEqual(seen, [b"x"])

    # CPython: test_events.py::EventLoopTestsMixin::test_sock_client_ops (repr of transports
    # reads the loop's `_selector`).
    def test_a_transport_repr_shows_its_polling_state(self):
        accepted = self.loop.create_future()

        class Accept(asyncio.Protocol):
            def connection_made(self, transport):
                accepted.set_result(transport)

        async def main():
            server = await self.loop.create_server(Accept, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            transport, _ = await self.loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
            text = repr(transport)
            transport.close()
            (await accepted).close()
            server.close()
            await server.wait_closed()
            return text

        self.assertIn("read=polling", self.loop.run_until_complete(main()))


    # CPython: test_server.py::UnixServerCleanupTests::test_unix_server_addr_cleanup (3.13
    # removes a Unix server's path when it closes; 3.11 and 3.12 leave it).
    def test_a_unix_server_serves_and_its_path_follows_asyncio(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "sock")

            async def main():
                async def echo(reader, writer):
                    writer.write(await reader.readline())
                    await writer.drain()
                    writer.close()

                server = await asyncio.start_unix_server(echo, path)
                reader, writer = await asyncio.open_unix_connection(path)
                writer.write(b"ping\n")
                line = await reader.readline()
                writer.close()
                await writer.wait_closed()
                server.close()
                await server.wait_closed()
                return line

            self.assertEqual(self.loop.run_until_complete(main()), b"ping\n")
            self.assertEqual(os.path.exists(path), sys.version_info < (3, 13))


class SockTests(LoopTestCase):
    """The native sock_* methods (src/sock.rs)."""

    def pair(self):
        a, b = socket.socketpair()
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        a.setblocking(False)
        b.setblocking(False)
        return a, b

    # CPython: asyncio/base_events.py (coroutines.iscoroutine in ensure_future/create_task): a
    # native sock_* call is a coroutine asyncio accepts, for a task as for run_until_complete.
    def test_sock_calls_are_native_coroutines_tasks_accept(self):
        a, b = self.pair()
        call = self.loop.sock_recv(a, 10)
        self.assertEqual(type(call).__module__, "evloop._core")
        self.assertTrue(asyncio.iscoroutine(call))

        async def main():
            task = asyncio.create_task(call)
            await asyncio.sleep(0)
            self.assertFalse(task.done())
            await self.loop.sock_sendall(b, b"ping")
            return await task

        self.assertEqual(self.loop.run_until_complete(main()), b"ping")
        # A call never awaited does no I/O: the byte stays for the next reader.
        b.send(b"!")
        self.loop.sock_recv(a, 1).close()
        self.assertEqual(self.loop.run_until_complete(self.loop.sock_recv(a, 1)), b"!")

    # CPython: test_sock_lowlevel.py::test_huge_content: sock_sendall keeps sending what a
    # partial send left, in order, while the peer reads.
    def test_sendall_of_more_than_the_buffers_hold_arrives_whole(self):
        a, b = self.pair()
        data = bytes(range(256)) * 16 * 1024  # 4 MiB
        view = bytearray(data)

        async def main():
            sender = asyncio.create_task(self.loop.sock_sendall(b, data))
            sender2 = None
            got = bytearray()
            while len(got) < 2 * len(data):
                chunk = await self.loop.sock_recv(a, 1 << 16)
                self.assertTrue(chunk)
                got += chunk
                if sender2 is None and sender.done():
                    # A bytearray goes through the socket's own send and a memoryview.
                    sender2 = asyncio.create_task(self.loop.sock_sendall(b, view))
            await sender
            await sender2
            return bytes(got)

        got = self.loop.run_until_complete(asyncio.wait_for(main(), 60))
        self.assertEqual(got, data + data)

    # CPython: test_sock_lowlevel.py::test_cancel_sock_accept and asyncio/selector_events.py::
    # _sock_read_done: cancelling a waiting call removes its watch; a watch that replaced it
    # stays.
    def test_cancelled_call_removes_its_watch_but_not_one_that_replaced_it(self):
        a, b = self.pair()

        async def main():
            task = asyncio.create_task(self.loop.sock_recv(a, 10))
            await asyncio.sleep(0)
            self.assertEqual(self.loop._selector.get_key(a).events, 1)
            task.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await task
            with self.assertRaises(KeyError):
                self.loop._selector.get_key(a)

            task = asyncio.create_task(self.loop.sock_recv(a, 10))
            await asyncio.sleep(0)
            seen = asyncio.Event()
            self.loop.add_reader(a, seen.set)
            task.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await task
            b.send(b"x")
            await asyncio.wait_for(seen.wait(), 10)
            self.assertTrue(self.loop.remove_reader(a))

        self.loop.run_until_complete(main())

    # CPython: test_unix_events.py::TestFunctional::test_add_reader_or_writer_transport_fd
    # (asyncio/selector_events.py::_ensure_fd_no_transport): a call that would wait on an fd a
    # live transport uses is refused.
    def test_a_call_on_a_transports_fd_is_refused_while_it_lives(self):
        a, b = self.pair()

        async def main():
            transport, _ = await self.loop.create_connection(asyncio.Protocol, sock=a)
            with self.assertRaisesRegex(RuntimeError, "is used by transport"):
                await asyncio.wait_for(self.loop.sock_recv(a, 1), 10)
            with self.assertRaisesRegex(RuntimeError, "is used by transport"):
                await asyncio.wait_for(self.loop.sock_recv_into(a, bytearray(1)), 10)
            transport.abort()

        self.loop.run_until_complete(main())

    # CPython: test_sock_lowlevel.py::test_sock_accept, test_sock_client_fail
    def test_accept_connect_and_a_refused_connect(self):
        listener = socket.socket()
        self.addCleanup(listener.close)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        client = socket.socket()
        self.addCleanup(client.close)
        client.setblocking(False)

        async def main():
            accepting = asyncio.create_task(self.loop.sock_accept(listener))
            await self.loop.sock_connect(client, listener.getsockname())
            conn, address = await accepting
            with conn:
                self.assertEqual(conn.gettimeout(), 0)
                self.assertEqual(address, client.getsockname())
                await self.loop.sock_sendall(client, b"hi")
                self.assertEqual(await self.loop.sock_recv(conn, 10), b"hi")

            # "localhost" is resolved first (asyncio's _ensure_resolved), then refused.
            closed = socket.socket()
            closed.bind(("127.0.0.1", 0))
            port = closed.getsockname()[1]
            closed.close()
            for host in ("127.0.0.1", "localhost"):
                refused = socket.socket()
                refused.setblocking(False)
                with refused, self.assertRaises(ConnectionRefusedError) as caught:
                    await self.loop.sock_connect(refused, (host, port))
                self.assertIn("Connect call failed", str(caught.exception))

        self.loop.run_until_complete(main())

    # CPython: test_sock_lowlevel.py::test_recvfrom, test_recvfrom_into, test_sock_recv_into
    def test_datagrams_and_receiving_into_a_buffer(self):
        server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for s in (server, client):
            self.addCleanup(s.close)
            s.setblocking(False)
        server.bind(("127.0.0.1", 0))
        client.bind(("127.0.0.1", 0))
        a, b = self.pair()

        async def main():
            receiving = asyncio.create_task(self.loop.sock_recvfrom(server, 100))
            await asyncio.sleep(0)
            self.assertEqual(await self.loop.sock_sendto(client, b"one", server.getsockname()), 3)
            data, sender = await receiving
            self.assertEqual((data, sender), (b"one", client.getsockname()))
            buf = bytearray(10)
            receiving = asyncio.create_task(self.loop.sock_recvfrom_into(server, buf))
            await asyncio.sleep(0)
            await self.loop.sock_sendto(client, b"two", server.getsockname())
            self.assertEqual(await receiving, (3, client.getsockname()))
            self.assertEqual(buf[:3], b"two")
            receiving = asyncio.create_task(self.loop.sock_recv_into(a, buf))
            await asyncio.sleep(0)
            await self.loop.sock_sendall(b, b"three")
            self.assertEqual(await receiving, 5)
            self.assertEqual(buf[:5], b"three")

        self.loop.run_until_complete(main())

    # CPython: test_sock_lowlevel.py::_basetest_sock_client_ops (debug mode refuses a socket
    # that is not non-blocking) and asyncio/base_events.py::_check_ssl_socket.
    def test_debug_mode_and_ssl_sockets_are_refused_as_asyncio_does(self):
        a, b = self.pair()
        a.setblocking(True)
        self.loop.set_debug(True)
        with self.assertRaisesRegex(ValueError, "must be non-blocking"):
            self.loop.run_until_complete(asyncio.wait_for(self.loop.sock_recv(a, 1), 10))
        with self.assertRaisesRegex(ValueError, "must be non-blocking"):
            self.loop.run_until_complete(asyncio.wait_for(self.loop.sock_sendall(a, b"x"), 10))
        self.loop.set_debug(False)
        # PYTHONASYNCIODEBUG=1 turns debug mode on when the loop is made, without set_debug().
        os.environ["PYTHONASYNCIODEBUG"] = "1"
        try:
            loop = evloop.new_event_loop()
        finally:
            del os.environ["PYTHONASYNCIODEBUG"]
        self.addCleanup(loop.close)
        with self.assertRaisesRegex(ValueError, "must be non-blocking"):
            loop.run_until_complete(asyncio.wait_for(loop.sock_recv(a, 1), 10))
        try:
            import ssl
        except ImportError:
            return
        wrapped = ssl.create_default_context().wrap_socket(
            socket.socket(), server_hostname="x", do_handshake_on_connect=False)
        with wrapped, self.assertRaisesRegex(TypeError, "SSLSocket"):
            self.loop.run_until_complete(asyncio.wait_for(self.loop.sock_recv(wrapped, 1), 10))

    # Deliberately not asyncio's (docs/architecture.md, "The Python module"): sock_recv and
    # sock_sendall of bytes on a plain socket never block the loop, even on a socket with a
    # timeout, where asyncio's (outside debug mode) would block in recv() until the timeout.
    def test_recv_on_a_socket_with_a_timeout_waits_on_the_loop(self):
        a, b = self.pair()
        a.settimeout(2.0)
        self.loop.call_later(0.05, b.send, b"late")
        started = time.monotonic()
        got = self.loop.run_until_complete(asyncio.wait_for(self.loop.sock_recv(a, 10), 10))
        self.assertEqual(got, b"late")
        self.assertLess(time.monotonic() - started, 1.9)


class SignalTests(unittest.TestCase):
    # CPython: test_runners.py::RunTests::test_asyncio_run_sigint_cancels_main (3.11's Runner
    # handles SIGINT with signal.signal; the loop must wake and run Python's handler).
    def test_sigint_cancels_main_under_asyncio_run(self):
        cancelled = []

        async def main():
            asyncio.get_running_loop().call_later(0.05, signal.raise_signal, signal.SIGINT)
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled.append(True)
                raise

        asyncio.set_event_loop_policy(evloop.EventLoopPolicy())
        self.addCleanup(asyncio.set_event_loop_policy, None)
        # asyncio.run's Runner installs its SIGINT handler only over Python's default one; a
        # handler left by an earlier test would turn the signal into a no-op and the sleep into
        # a 10 s wait, so the precondition is set here, not assumed.
        self.addCleanup(signal.signal, signal.SIGINT, signal.getsignal(signal.SIGINT))
        signal.signal(signal.SIGINT, signal.default_int_handler)
        start = time.monotonic()
        with self.assertRaises(KeyboardInterrupt):
            asyncio.run(main())
        self.assertEqual(cancelled, [True])
        self.assertLess(time.monotonic() - start, 5)

    # CPython: test_events.py::UnixEventLoopTestsMixin::test_add_signal_handler
    def test_add_signal_handler_runs_the_callback_on_the_loop(self):
        loop = evloop.new_event_loop()
        self.addCleanup(loop.close)
        seen = []
        loop.add_signal_handler(signal.SIGUSR1, lambda: (seen.append("usr1"), loop.stop()))
        loop.call_later(0.01, os.kill, os.getpid(), signal.SIGUSR1)
        loop.call_later(10, loop.stop)
        loop.run_forever()
        self.assertEqual(seen, ["usr1"])
        self.assertTrue(loop.remove_signal_handler(signal.SIGUSR1))
        self.assertIs(signal.getsignal(signal.SIGUSR1), signal.SIG_DFL)


class ForkTests(LoopTestCase):
    # CPython: test_events.py::GetEventLoopTestsMixin::test_get_event_loop_new_process: a child
    # forked inside a running loop's callback runs a loop of its own.
    def test_a_child_forked_in_a_callback_runs_its_own_loop(self):
        status = []

        def fork():
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    child = evloop.new_event_loop()
                    child.call_soon(child.stop)
                    child.run_forever()
                    child.close()
                    code = 0
                finally:
                    os._exit(code)
            status.append(os.waitpid(pid, 0)[1])
            self.loop.stop()

        self.loop.call_soon(fork)
        self.loop.run_forever()
        self.assertEqual(status, [0])


class SuiteRunnerTests(unittest.TestCase):
    """asyncio_suite.py, the runner of CPython's test_asyncio: a hang is killed and counted as
    a failure, the rest of the module still runs, and the closing line counts what ran."""

    def test_a_hang_is_a_failure_and_the_module_goes_on(self):
        import subprocess

        with tempfile.TemporaryDirectory() as tmp:
            os.mkdir(os.path.join(tmp, "suitecheck"))
            open(os.path.join(tmp, "suitecheck", "__init__.py"), "w").close()
            with open(os.path.join(tmp, "suitecheck", "test_cases.py"), "w") as f:
                f.write(
                    "import asyncio, unittest\n"
                    "class T(unittest.IsolatedAsyncioTestCase):\n"
                    "    async def test_a_passes(self):\n"
                    "        await asyncio.sleep(0)\n"
                    "    async def test_b_hangs(self):\n"
                    "        await asyncio.Event().wait()\n"
                    "    async def test_c_fails(self):\n"
                    "        self.assertEqual(1, 2)\n"
                    "class U(unittest.TestCase):\n"
                    "    def test_d_no_loop(self):\n"
                    "        pass\n")
            runner = os.path.join(os.path.dirname(os.path.abspath(__file__)), "asyncio_suite.py")
            env = dict(os.environ, PYTHONPATH=tmp + os.pathsep + os.environ.get("PYTHONPATH", ""))
            done = subprocess.run(
                [sys.executable, runner, "--package", "suitecheck", "--timeout", "2",
                 "--workdir", tmp, "test_cases"],
                capture_output=True, text=True, env=env, timeout=60)
        lines = done.stdout.splitlines()
        self.assertEqual(done.returncode, 1, done.stdout + done.stderr)
        self.assertEqual(lines[-1], "1 passed, 2 failed")
        self.assertIn("FAILED (not a known failure): suitecheck.test_cases.T.test_b_hangs", lines)
        self.assertIn("FAILED (not a known failure): suitecheck.test_cases.T.test_c_fails", lines)


if __name__ == "__main__":
    unittest.main()
