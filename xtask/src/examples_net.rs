//! Checks of the networking examples, driven by clients nobody on this team wrote: CPython's
//! own asyncio streams, `redis-benchmark`, `curl`, `socat` and `openssl` (`provision.rs` installs
//! them when missing).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::Run;
use crate::cmd::Result;

/// What a finished client printed.
struct Output {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: String,
}

impl Output {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Runs `cmd` with `input` on stdin, killed after `timeout`.
fn output_within(cmd: &mut Command, input: &[u8], timeout: Duration) -> Result<Output> {
    let shown = format!("{cmd:?}");
    println!("+ {}", shown.chars().take(160).collect::<String>());
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {shown}: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("no stdin pipe")?;
    let input = input.to_vec();
    let writer = thread::spawn(move || {
        // A client that exits early closes its stdin: not our failure.
        let _ = stdin.write_all(&input);
    });
    let mut stdout = child.stdout.take().ok_or("no stdout pipe")?;
    let mut stderr = child.stderr.take().ok_or("no stderr pipe")?;
    let out = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err = thread::spawn(move || {
        let mut buf = String::new();
        let _ = stderr.read_to_string(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{shown} timed out after {timeout:?} and was killed"
                ));
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("cannot wait for {shown}: {e}")),
        }
    };
    let _ = writer.join();
    let stdout = out.join().map_err(|_| "stdout reader panicked")?;
    let stderr = err.join().map_err(|_| "stderr reader panicked")?;
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// The address after `prefix` on the example's first line.
fn announced(run: &mut Run, prefix: &str) -> Result<String> {
    let line = run.expect_line()?;
    line.strip_prefix(prefix)
        .map(|s| s.trim_end_matches('/').to_string())
        .ok_or_else(|| format!("expected \"{prefix}…\", got {line:?}"))
}

/// Another example's binary, built beside this one.
fn example_bin(name: &str) -> Result<PathBuf> {
    Ok(super::target_dir()?
        .join("debug")
        .join("examples")
        .join(name))
}

/// SIGINT, then the line `Server closed` and a clean exit.
fn interrupt_and_close(run: &mut Run) -> Result {
    run.interrupt()?;
    let out = run.rest()?;
    if !out.iter().any(|l| l.text() == "Server closed") {
        return Err("no line \"Server closed\" after SIGINT".to_string());
    }
    run.exits_ok()
}

/// CPython's asyncio streams exchange 1 MB with the server; every byte must come back.
const PY_EXCHANGE: &str = r#"
import asyncio, sys
async def main(host, port):
    r, w = await asyncio.open_connection(host, int(port))
    data = bytes((i * 7) % 251 for i in range(1_000_000))
    async def send():
        w.write(data)
        await w.drain()
    t = asyncio.create_task(send())
    got = await asyncio.wait_for(r.readexactly(len(data)), 30)
    await t
    w.close()
    await w.wait_closed()
    assert got == data, "the echo differs"
    print("ok", len(got))
host, port = sys.argv[1].rsplit(":", 1)
asyncio.run(main(host, port))
"#;

/// `echo_server`: our `echo_client`, CPython's asyncio (1 MB, byte-exact) and
/// `redis-benchmark` (20,000 ECHO commands of 1 KiB from 10 connections, no error).
pub(super) fn echo_server(run: &mut Run) -> Result {
    let addr = announced(run, "Serving on ")?;
    let client = output_within(
        Command::new(example_bin("echo_client")?).args([&addr, "hello evloop"]),
        b"",
        Duration::from_secs(20),
    )?;
    if !client.status.success() || !client.text().contains("Data received: hello evloop") {
        return Err(format!(
            "echo_client: {} {:?} {}",
            client.status,
            client.text(),
            client.stderr
        ));
    }
    let py = output_within(
        Command::new("python3").args(["-c", PY_EXCHANGE, &addr]),
        b"",
        Duration::from_secs(60),
    )?;
    if !py.status.success() || py.text().trim() != "ok 1000000" {
        return Err(format!(
            "asyncio client: {} {:?} {}",
            py.status,
            py.text(),
            py.stderr
        ));
    }
    let (host, port) = addr.rsplit_once(':').ok_or("no port")?;
    let arg = "x".repeat(1024);
    let bench = output_within(
        Command::new("redis-benchmark").args([
            "-h", host, "-p", port, "-c", "10", "-n", "20000", "-q", "ECHO", &arg,
        ]),
        b"",
        Duration::from_secs(120),
    )?;
    let text = bench.text();
    let summary = text
        .rsplit('\r')
        .next()
        .unwrap_or("")
        .trim()
        .chars()
        .skip_while(|c| *c != ':')
        .collect::<String>();
    if !bench.status.success()
        || !text.contains("requests per second")
        || text.to_ascii_lowercase().contains("error")
        || !bench.stderr.trim().is_empty()
    {
        return Err(format!(
            "redis-benchmark: {} {summary} {}",
            bench.status, bench.stderr
        ));
    }
    println!("redis-benchmark against echo_server{summary}");
    interrupt_and_close(run)
}

/// `echo_streams`: its own client (`--client`) and CPython's asyncio streams (1 MB,
/// byte-exact) against its server.
pub(super) fn echo_streams(run: &mut Run) -> Result {
    let addr = announced(run, "Serving on ")?;
    let client = output_within(
        Command::new(example_bin("echo_streams")?).args(["--client", &addr, "hello streams"]),
        b"",
        Duration::from_secs(20),
    )?;
    if !client.status.success() || !client.text().contains("Received: hello streams") {
        return Err(format!(
            "echo_streams --client: {} {:?} {}",
            client.status,
            client.text(),
            client.stderr
        ));
    }
    let py = output_within(
        Command::new("python3").args(["-c", PY_EXCHANGE, &addr]),
        b"",
        Duration::from_secs(60),
    )?;
    if !py.status.success() || py.text().trim() != "ok 1000000" {
        return Err(format!(
            "asyncio client: {} {:?} {}",
            py.status,
            py.text(),
            py.stderr
        ));
    }
    interrupt_and_close(run)?;
    echo_streams_tls()
}

/// `echo_streams --tls`: CPython's `ssl` and asyncio streams trust the printed certificate,
/// see TLS 1.3, and exchange 1 MB byte-exact; without the certificate they are refused.
fn echo_streams_tls() -> Result {
    let mut run = Run::spawn(
        {
            let mut command = Command::new(example_bin("echo_streams")?);
            command.arg("--tls");
            command
        },
        "echo_streams --tls",
        Duration::from_secs(90),
    )?;
    let cert = announced(&mut run, "Certificate: ")?;
    let addr = announced(&mut run, "Serving on ")?;
    let py = output_within(
        Command::new("python3").args(["-c", PY_EXCHANGE_TLS, &addr, &cert]),
        b"",
        Duration::from_secs(60),
    )?;
    let expected = "refused: CERTIFICATE_VERIFY_FAILED\nTLSv1.3 ok 1000000";
    if !py.status.success() || py.text().trim() != expected {
        return Err(format!(
            "asyncio TLS client: {} {:?} (expected {expected:?}) {}",
            py.status,
            py.text(),
            py.stderr
        ));
    }
    interrupt_and_close(&mut run)
}

/// CPython's `ssl` with asyncio streams against `echo_streams --tls`: an untrusting context is
/// refused, then one that trusts the certificate exchanges 1 MB.
const PY_EXCHANGE_TLS: &str = r#"
import asyncio, ssl, sys
async def main(host, port, cafile):
    try:
        await asyncio.open_connection(host, int(port), ssl=ssl.create_default_context())
        print("an untrusting client connected")
    except ssl.SSLCertVerificationError as e:
        print("refused:", e.reason)
    ctx = ssl.create_default_context(cafile=cafile)
    r, w = await asyncio.open_connection(host, int(port), ssl=ctx)
    version = w.get_extra_info("ssl_object").version()
    data = bytes((i * 7) % 251 for i in range(1_000_000))
    async def send():
        w.write(data)
        await w.drain()
    t = asyncio.create_task(send())
    got = await asyncio.wait_for(r.readexactly(len(data)), 30)
    await t
    w.close()
    await w.wait_closed()
    assert got == data, "the echo differs"
    print(version, "ok", len(got))
host, port = sys.argv[1].rsplit(":", 1)
asyncio.run(main(host, port, sys.argv[2]))
"#;

/// `echo_sock`: 200 kB through one connection, byte-exact.
pub(super) fn echo_sock(run: &mut Run) -> Result {
    let addr = announced(run, "Serving on ")?;
    let mut conn = TcpStream::connect(&addr).map_err(|e| format!("connect {addr}: {e}"))?;
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let mut writer = conn.try_clone().map_err(|e| e.to_string())?;
    let sent = data.clone();
    let w = thread::spawn(move || writer.write_all(&sent));
    let mut got = vec![0; data.len()];
    conn.read_exact(&mut got)
        .map_err(|e| format!("reading the echo: {e}"))?;
    w.join()
        .map_err(|_| "writer panicked")?
        .map_err(|e| e.to_string())?;
    if got != data {
        return Err("the echo differs".to_string());
    }
    drop(conn);
    run.interrupt()?;
    let out = run.rest()?;
    if !out.iter().any(|l| l.text() == "Server closed") {
        return Err("no line \"Server closed\" after SIGINT".to_string());
    }
    run.exits_ok()
}

/// `http_hello`: `curl` fetches twice over one kept-alive connection.
pub(super) fn http_hello(run: &mut Run) -> Result {
    let url = format!("{}/", announced(run, "Serving on ")?);
    let curl = output_within(
        Command::new("curl").args([
            "-sS",
            "--http1.1",
            "--max-time",
            "20",
            "-w",
            "[%{http_code} %{num_connects}]\n",
            &url,
            &url,
        ]),
        b"",
        Duration::from_secs(30),
    )?;
    let expected = "Hello, World!\n[200 1]\nHello, World!\n[200 0]\n";
    if !curl.status.success() || curl.text() != expected {
        return Err(format!(
            "curl: {} {:?} (expected {expected:?}: the second request on the same connection) {}",
            curl.status,
            curl.text(),
            curl.stderr
        ));
    }
    interrupt_and_close(run)
}

/// `file_server`: `curl` fetches the file twice over one kept-alive connection; both bodies
/// equal the file on disk, byte for byte.
pub(super) fn file_server(run: &mut Run) -> Result {
    let line = run.expect_line()?;
    let path = line
        .strip_prefix("File: ")
        .and_then(|rest| rest.rsplit_once(" ("))
        .map(|(path, _)| path.to_string())
        .ok_or_else(|| format!("expected \"File: PATH (N bytes)\", got {line:?}"))?;
    let url = format!("{}/", announced(run, "Serving on ")?);
    let file = std::fs::read(&path).map_err(|e| format!("reading {path}: {e}"))?;
    let curl = output_within(
        Command::new("curl").args([
            "-sS",
            "--http1.1",
            "--max-time",
            "20",
            "-w",
            "[%{http_code} %{num_connects}]",
            &url,
            &url,
        ]),
        b"",
        Duration::from_secs(30),
    )?;
    let mut expected = file.clone();
    expected.extend_from_slice(b"[200 1]");
    expected.extend_from_slice(&file);
    expected.extend_from_slice(b"[200 0]");
    if !curl.status.success() || curl.stdout != expected {
        return Err(format!(
            "curl: {} ({} bytes, expected {}: the file twice, on one connection) {}",
            curl.status,
            curl.stdout.len(),
            expected.len(),
            curl.stderr
        ));
    }
    interrupt_and_close(run)
}

/// CPython's `ssl` with asyncio's streams: two requests over one TLS connection that trusts the
/// certificate file, the host name checked; then the version and ALPN it negotiated.
const PY_HTTPS: &str = r#"
import asyncio, ssl, sys
async def main(url, cafile):
    host, port = url.removeprefix("https://").rstrip("/").rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.set_alpn_protocols(["http/1.1"])
    r, w = await asyncio.open_connection(host, int(port), ssl=ctx, server_hostname="localhost")
    bodies = []
    for close in (False, True):
        w.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n"
                + (b"Connection: close\r\n" if close else b"") + b"\r\n")
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 20)
        length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0].split(b":")[1])
        bodies.append(await asyncio.wait_for(r.readexactly(length), 20))
    obj = w.get_extra_info("ssl_object")
    print(obj.version(), obj.selected_alpn_protocol(), b"".join(bodies).decode().replace("\n", "|"))
    w.close()
    try:
        await w.wait_closed()
    except (ConnectionError, ssl.SSLError):
        pass
asyncio.run(main(sys.argv[1], sys.argv[2]))
"#;

/// `https_hello`: `curl --cacert` fetches twice over one kept-alive TLS connection; `curl`
/// without the certificate refuses it (exit 60, an unknown issuer); `openssl s_client`
/// completes a TLS 1.3 handshake and verifies the certificate; CPython's `ssl` and asyncio
/// streams fetch twice and see TLS 1.3 and ALPN `http/1.1`; the certificate file is gone
/// after close.
pub(super) fn https_hello(run: &mut Run) -> Result {
    let cert = announced(run, "Certificate: ")?;
    let url = format!("{}/", announced(run, "Serving on ")?);
    let curl = output_within(
        Command::new("curl").args([
            "-sS",
            "--http1.1",
            "--max-time",
            "20",
            "--cacert",
            &cert,
            "-w",
            "[%{http_code} %{num_connects}]\n",
            &url,
            &url,
        ]),
        b"",
        Duration::from_secs(30),
    )?;
    let expected = "Hello, World!\n[200 1]\nHello, World!\n[200 0]\n";
    if !curl.status.success() || curl.text() != expected {
        return Err(format!(
            "curl --cacert: {} {:?} (expected {expected:?}) {}",
            curl.status,
            curl.text(),
            curl.stderr
        ));
    }
    let untrusting = output_within(
        Command::new("curl").args(["-sS", "--max-time", "20", &url]),
        b"",
        Duration::from_secs(30),
    )?;
    if untrusting.status.code() != Some(60) || !untrusting.stderr.contains("self-signed") {
        return Err(format!(
            "curl without --cacert should refuse the self-signed certificate (exit 60): {} {}",
            untrusting.status, untrusting.stderr
        ));
    }
    let host_port = url
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_string();
    let s_client = output_within(
        Command::new("openssl").args([
            "s_client",
            "-brief",
            "-connect",
            &host_port,
            "-CAfile",
            &cert,
            "-verify_return_error",
            "-servername",
            "localhost",
        ]),
        b"",
        Duration::from_secs(30),
    )?;
    let said = format!("{}{}", s_client.text(), s_client.stderr);
    if !s_client.status.success()
        || !said.contains("Protocol version: TLSv1.3")
        || !said.contains("Verification: OK")
    {
        return Err(format!(
            "openssl s_client: {} (expected a verified TLSv1.3 handshake) {said}",
            s_client.status
        ));
    }
    let py = output_within(
        Command::new("python3").args(["-c", PY_HTTPS, &url, &cert]),
        b"",
        Duration::from_secs(60),
    )?;
    let expected = "TLSv1.3 http/1.1 Hello, World!|Hello, World!|";
    if !py.status.success() || py.text().trim() != expected {
        return Err(format!(
            "asyncio ssl client: {} {:?} (expected {expected:?}) {}",
            py.status,
            py.text(),
            py.stderr
        ));
    }
    interrupt_and_close(run)?;
    if std::path::Path::new(&cert).exists() {
        return Err(format!("{cert} is still there after the server closed"));
    }
    Ok(())
}

/// `unix_echo`: `socat` talks to it; the socket file is gone after close.
pub(super) fn unix_echo(run: &mut Run) -> Result {
    let path = announced(run, "Serving on ")?;
    let socat = output_within(
        Command::new("socat").args(["-t", "5", "-", &format!("UNIX-CONNECT:{path}")]),
        b"hello over a unix socket\n",
        Duration::from_secs(20),
    )?;
    if !socat.status.success() || socat.text() != "hello over a unix socket\n" {
        return Err(format!(
            "socat: {} {:?} {}",
            socat.status,
            socat.text(),
            socat.stderr
        ));
    }
    interrupt_and_close(run)?;
    if std::path::Path::new(&path).exists() {
        return Err(format!("{path} is still there after the server closed"));
    }
    Ok(())
}

/// `cat_pipe`: with stdin at /dev/null (which epoll cannot watch) it fails cleanly, printing
/// nothing; fed 1 MB through a pipe, it prints exactly that.
pub(super) fn cat_pipe(run: &mut Run) -> Result {
    if !run.rest()?.is_empty() {
        return Err("printed something for /dev/null".to_string());
    }
    let status = run.wait()?;
    if status.code() != Some(1) {
        return Err(format!(
            "on /dev/null: expected exit status 1, got {status}"
        ));
    }
    let data: Vec<u8> = (0..1_000_000u32)
        .map(|i| {
            if i % 64 == 63 {
                b'\n'
            } else {
                b'a' + (i % 26) as u8
            }
        })
        .collect();
    let out = output_within(
        &mut Command::new(example_bin("cat_pipe")?),
        &data,
        Duration::from_secs(30),
    )?;
    if !out.status.success() || out.stdout != data {
        return Err(format!(
            "cat_pipe: {} printed {} bytes of {} {}",
            out.status,
            out.stdout.len(),
            data.len(),
            out.stderr
        ));
    }
    Ok(())
}

/// `udp_echo`: echoes datagrams until SIGINT; then its self-test (1,000 datagrams to itself,
/// each echo checked) passes.
pub(super) fn udp_echo(run: &mut Run) -> Result {
    let addr = announced(run, "Serving on ")?;
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    for msg in [&b"ping"[..], b"", &[7u8; 60_000][..]] {
        sock.send_to(msg, &addr)
            .map_err(|e| format!("send_to {addr}: {e}"))?;
        let mut buf = vec![0; 65_536];
        let (n, from) = sock
            .recv_from(&mut buf)
            .map_err(|e| format!("no echo: {e}"))?;
        if &buf[..n] != msg || from.to_string() != addr {
            return Err(format!("bad echo of {} bytes from {from}", msg.len()));
        }
    }
    interrupt_and_close(run)?;
    let selftest = output_within(
        Command::new(example_bin("udp_echo")?).arg("--selftest"),
        b"",
        Duration::from_secs(20),
    )?;
    if !selftest.status.success() || !selftest.text().lines().any(|l| l.starts_with("selftest: ")) {
        return Err(format!(
            "udp_echo --selftest: {} {:?} {}",
            selftest.status,
            selftest.text(),
            selftest.stderr
        ));
    }
    Ok(())
}

/// `echo_multicore`: one loop per CPU on one port. 100 connections each get their bytes back;
/// after SIGINT every loop reports its connections, which add up to the 100 (on a machine with
/// more than one CPU the kernel spreads them, but a skewed hash may leave a loop without any,
/// so the spread itself is the net crate's test, not this check's).
pub(super) fn echo_multicore(run: &mut Run) -> Result {
    const CONNECTIONS: usize = 100;
    let addr = announced(run, "Serving on ")?;
    let loops_line = run.expect_line()?;
    let loops: usize = loops_line
        .strip_suffix(" loops")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("expected \"N loops\", got {loops_line:?}"))?;
    for i in 0..CONNECTIONS {
        let mut conn = TcpStream::connect(&addr).map_err(|e| format!("connect {addr}: {e}"))?;
        conn.set_read_timeout(Some(Duration::from_secs(20)))
            .map_err(|e| e.to_string())?;
        let sent = format!("hello {i}");
        conn.write_all(sent.as_bytes()).map_err(|e| e.to_string())?;
        let mut got = vec![0; sent.len()];
        conn.read_exact(&mut got)
            .map_err(|e| format!("reading the echo: {e}"))?;
        if got != sent.as_bytes() {
            return Err(format!(
                "sent {sent:?}, got {:?}",
                String::from_utf8_lossy(&got)
            ));
        }
    }
    run.interrupt()?;
    let out = run.rest()?;
    let counts: Vec<usize> = out
        .iter()
        .filter_map(|l| {
            let text = l.text();
            let rest = text.strip_prefix("loop ")?;
            let (_, count) = rest.split_once(": ")?;
            count.strip_suffix(" connections")?.parse().ok()
        })
        .collect();
    if counts.len() != loops || counts.iter().sum::<usize>() != CONNECTIONS {
        return Err(format!(
            "expected {loops} loops serving {CONNECTIONS} connections in all, got {counts:?}"
        ));
    }
    println!("echo_multicore: connections per loop {counts:?}");
    if !out.iter().any(|l| l.text() == "Server closed") {
        return Err("no line \"Server closed\" after SIGINT".to_string());
    }
    run.exits_ok()
}
