//! Peer faults: peers that reset mid-write with megabytes buffered, half-close either way, or
//! never read from a protocol that follows asyncio's flow-control idiom; the server must end
//! each connection with exactly one `connection_lost`, keep writing bounded, and go on serving
//! others.

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::rc::Rc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use evloop::prelude::*;
use evloop::socket2::SockRef;
use evloop::{Protocol, Server, ServerOptions, Transport};

use crate::Scale;
use crate::echo;
use crate::line::Line;
use crate::sys;

const MIB: usize = 1 << 20;
/// Where a runaway writer is stopped and reported.
const RUNAWAY: usize = 64 * MIB;
const CHUNK: usize = 64 * 1024;

/// The test's line.
pub(crate) fn run(scale: &Scale) -> Line {
    sys::measured(
        "peer-faults",
        "resets mid-write, half-close both ways, a peer that never reads (flow-control idiom)",
        |line| faults(scale, line),
    )
}

/// Runs the loop until `done()` or `limit`; false on the limit.
pub(crate) fn drive(
    lp: &EventLoop,
    limit: Duration,
    done: impl Fn() -> bool,
) -> Result<bool, String> {
    let until = Instant::now() + limit;
    lp.run_forever_setup().map_err(|e| e.to_string())?;
    while !done() && Instant::now() < until {
        lp.run_once_timeout(Duration::from_millis(10))
            .map_err(|e| e.to_string())?;
    }
    lp.run_forever_cleanup().map_err(|e| e.to_string())?;
    Ok(done())
}

/// Runs the loop until the thread ends (or `limit`) and returns its result.
fn drive_thread<T>(
    lp: &EventLoop,
    limit: Duration,
    t: JoinHandle<io::Result<T>>,
) -> Result<T, String> {
    drive(lp, limit, || t.is_finished())?;
    if !t.is_finished() {
        return Err(format!("a client thread did not finish in {limit:?}"));
    }
    match t.join() {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("a client thread panicked".into()),
    }
}

/// Every `connection_lost` a server's protocols got: `Some(err_text)` or `None`.
type Losses = Rc<RefCell<Vec<Option<String>>>>;

/// A protocol for the fault servers: what it does on each event is in `mode`.
struct Faulty {
    mode: Mode,
    transport: Option<Transport>,
    losses: Losses,
    received: Rc<RefCell<Vec<u8>>>,
    flow: Rc<Flow>,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Writes 4 MiB at once on connection_made (most of it stays buffered).
    Flood,
    /// Keeps the connection half-open on EOF, then answers and closes.
    AnswerAfterEof,
    /// Writes and `write_eof`s at once, then reads until the peer's EOF.
    EofFirst,
    /// The flow-control idiom, the loop in `connection_made` and `resume_writing`.
    Idiom,
    /// The idiom with one 8 MiB write in `connection_made`, the loop in `resume_writing` only.
    IdiomResume,
}

/// What the flow-control idiom saw.
#[derive(Default)]
struct Flow {
    paused: Cell<bool>,
    max_buffered: Cell<usize>,
    runaway: Cell<bool>,
    pauses: Cell<usize>,
    resumes: Cell<usize>,
}

impl Faulty {
    /// asyncio's idiom as evloop documents it (`Transport`'s "Flow control"): write while the
    /// `paused` flag set by `pause_writing` is false and `is_writing_paused()` is false. The
    /// second is what stops a loop running inside a protocol method: the `pause_writing` of a
    /// write made there is delivered only after the method returns, while `is_writing_paused()`
    /// turns true inside the write that crossed the mark. Stopped and reported at [`RUNAWAY`].
    fn write_while_not_paused(&mut self) {
        let Some(t) = self.transport.clone() else {
            return;
        };
        let chunk = vec![b'x'; CHUNK];
        while !self.flow.paused.get() && !t.is_writing_paused() && !t.is_closing() {
            t.write(&chunk);
            let buffered = t.get_write_buffer_size();
            self.flow
                .max_buffered
                .set(self.flow.max_buffered.get().max(buffered));
            if buffered >= RUNAWAY {
                self.flow.runaway.set(true);
                t.abort();
                return;
            }
        }
    }
}

impl Protocol for Faulty {
    fn connection_made(&mut self, transport: &Transport) {
        self.transport = Some(transport.clone());
        match self.mode {
            Mode::Flood => transport.write(&vec![b'f'; 4 * MIB]),
            Mode::EofFirst => {
                transport.write(b"hello");
                transport.write_eof();
            }
            Mode::Idiom => self.write_while_not_paused(),
            Mode::IdiomResume => transport.write(&vec![b'x'; 8 * MIB]),
            Mode::AnswerAfterEof => {}
        }
    }

    fn data_received(&mut self, data: &[u8]) {
        self.received.borrow_mut().extend_from_slice(data);
    }

    fn eof_received(&mut self) -> bool {
        if self.mode == Mode::AnswerAfterEof {
            if let Some(t) = &self.transport {
                let answer = format!("got {}", self.received.borrow().len());
                t.write(answer.as_bytes());
                t.close();
            }
            return true;
        }
        false
    }

    fn pause_writing(&mut self) {
        self.flow.paused.set(true);
        self.flow.pauses.set(self.flow.pauses.get() + 1);
    }

    fn resume_writing(&mut self) {
        self.flow.paused.set(false);
        self.flow.resumes.set(self.flow.resumes.get() + 1);
        if matches!(self.mode, Mode::Idiom | Mode::IdiomResume) {
            self.write_while_not_paused();
        }
    }

    fn connection_lost(&mut self, err: Option<io::Error>) {
        self.transport = None;
        self.losses.borrow_mut().push(err.map(|e| e.to_string()));
    }
}

/// A server whose connections run `mode`.
struct FaultServer {
    server: Server,
    addr: SocketAddr,
    losses: Losses,
    received: Rc<RefCell<Vec<u8>>>,
    flow: Rc<Flow>,
}

fn fault_server(lp: &EventLoop, mode: Mode) -> Result<FaultServer, String> {
    let losses = Losses::default();
    let received = Rc::new(RefCell::new(Vec::new()));
    let flow = Rc::new(Flow::default());
    let (l2, r2, f2) = (losses.clone(), received.clone(), flow.clone());
    let fut = lp.create_server(
        move || Faulty {
            mode,
            transport: None,
            losses: l2.clone(),
            received: r2.clone(),
            flow: f2.clone(),
        },
        ServerOptions::new().host("127.0.0.1").port(0),
    );
    let server = lp
        .run_until_complete(fut)
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("create_server: {e}"))?;
    let addr = server
        .sockets()
        .first()
        .and_then(|s| s.local_addr().ok())
        .and_then(|a| a.as_socket())
        .ok_or("no inet address")?;
    Ok(FaultServer {
        server,
        addr,
        losses,
        received,
        flow,
    })
}

fn faults(scale: &Scale, line: &mut Line) -> Result<(), String> {
    let resets = scale.pick(50, 10);
    line.amount = format!(
        "{resets} resets with 4 MiB buffered, 2 half-closes, 2 never-reading peers, \
         runaway bound 64 MiB"
    );
    if scale.quick {
        line.amount.push_str(" (quick run; full run 50 resets)");
    }
    let lp = EventLoop::new().map_err(|e| format!("EventLoop::new: {e}"))?;
    let (echo_server, echo_addr, _) = echo::serve(&lp, 128)?;
    resets_mid_write(&lp, resets, line)?;
    check_others(&lp, echo_addr, line, "after the resets")?;
    half_closes(&lp, line)?;
    never_reads(&lp, Mode::Idiom, "connection_made", line)?;
    never_reads(&lp, Mode::IdiomResume, "resume_writing", line)?;
    check_others(&lp, echo_addr, line, "at the end")?;
    echo::shut(&lp, &echo_server)?;
    lp.close().map_err(|e| format!("close: {e}"))?;
    Ok(())
}

/// An echo exchange with the echo server: it must still serve.
fn check_others(
    lp: &EventLoop,
    addr: SocketAddr,
    line: &mut Line,
    when: &str,
) -> Result<(), String> {
    let t = thread::spawn(move || -> io::Result<Vec<u8>> {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"still there?")?;
        let mut got = vec![0; 12];
        s.read_exact(&mut got)?;
        Ok(got)
    });
    let got = drive_thread(lp, Duration::from_secs(10), t);
    if !matches!(&got, Ok(g) if g == b"still there?") {
        line.lost += 1;
        line.fail(format!(
            "the echo server did not serve another client {when}: {got:?}"
        ));
    }
    Ok(())
}

fn resets_mid_write(lp: &EventLoop, count: usize, line: &mut Line) -> Result<(), String> {
    let fs = fault_server(lp, Mode::Flood)?;
    for _ in 0..count {
        let addr = fs.addr;
        let t = thread::spawn(move || -> io::Result<()> {
            let mut s = TcpStream::connect(addr)?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            let mut first = vec![0; CHUNK];
            s.read_exact(&mut first)?;
            // SO_LINGER 0: close sends RST, with megabytes still buffered on the other side.
            SockRef::from(&s).set_linger(Some(Duration::ZERO))?;
            Ok(())
        });
        drive_thread(lp, Duration::from_secs(10), t)?;
    }
    let losses = fs.losses.clone();
    drive(lp, Duration::from_secs(10), || {
        losses.borrow().len() >= count
    })?;
    let losses = fs.losses.borrow();
    let with_err = losses.iter().filter(|l| l.is_some()).count();
    if losses.len() != count || with_err != count {
        line.lost += count.abs_diff(with_err) as u64;
        line.fail(format!(
            "{count} resets gave {} connection_lost calls, {with_err} with an error (want \
             exactly one each, with the error)",
            losses.len()
        ));
    }
    fs.server.close();
    Ok(())
}

fn half_closes(lp: &EventLoop, line: &mut Line) -> Result<(), String> {
    // The client closes its side first; the server answers on its half-open connection.
    let fs = fault_server(lp, Mode::AnswerAfterEof)?;
    let addr = fs.addr;
    let t = thread::spawn(move || -> io::Result<Vec<u8>> {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(&[7; 1000])?;
        s.shutdown(Shutdown::Write)?;
        let mut got = Vec::new();
        s.read_to_end(&mut got)?;
        Ok(got)
    });
    let got = drive_thread(lp, Duration::from_secs(10), t);
    let losses = fs.losses.clone();
    drive(lp, Duration::from_secs(5), || !losses.borrow().is_empty())?;
    if !matches!(&got, Ok(g) if g == b"got 1000") || *fs.losses.borrow() != [None] {
        line.lost += 1;
        line.fail(format!(
            "client-first half-close: answer {got:?}, connection_lost {:?}",
            fs.losses.borrow()
        ));
    }
    fs.server.close();
    // The server closes its side first; the client still sends, and the server reads it.
    let fs = fault_server(lp, Mode::EofFirst)?;
    let addr = fs.addr;
    let t = thread::spawn(move || -> io::Result<Vec<u8>> {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut got = Vec::new();
        s.read_to_end(&mut got)?;
        s.write_all(b"after your eof")?;
        s.shutdown(Shutdown::Write)?;
        Ok(got)
    });
    let got = drive_thread(lp, Duration::from_secs(10), t);
    let losses = fs.losses.clone();
    drive(lp, Duration::from_secs(5), || !losses.borrow().is_empty())?;
    if !matches!(&got, Ok(g) if g == b"hello")
        || *fs.received.borrow() != b"after your eof"
        || *fs.losses.borrow() != [None]
    {
        line.lost += 1;
        line.fail(format!(
            "server-first half-close: client got {got:?}, server got {:?}, connection_lost {:?}",
            String::from_utf8_lossy(&fs.received.borrow()),
            fs.losses.borrow()
        ));
    }
    fs.server.close();
    Ok(())
}

/// A peer that reads 12 MiB (so `resume_writing` comes) and then never again, against a
/// protocol writing while its `paused` flag is false: the buffer must stay near the
/// high-water mark, not grow to [`RUNAWAY`].
fn never_reads(lp: &EventLoop, mode: Mode, idiom: &str, line: &mut Line) -> Result<(), String> {
    let fs = fault_server(lp, mode)?;
    let addr = fs.addr;
    let t = thread::spawn(move || -> io::Result<()> {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_millis(300)))?;
        thread::sleep(Duration::from_millis(100));
        // Reads 12 MiB or until nothing came for 0.3 s, then never again; gone after a while.
        let mut sink = vec![0; CHUNK];
        let mut total = 0;
        while total < 12 * MIB {
            match s.read(&mut sink) {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
        thread::sleep(Duration::from_millis(300));
        SockRef::from(&s).set_linger(Some(Duration::ZERO))?;
        Ok(())
    });
    // The client's own read may fail once the server stopped a runaway: that is reported below.
    let _ = drive_thread(lp, Duration::from_secs(15), t);
    let losses = fs.losses.clone();
    drive(lp, Duration::from_secs(5), || !losses.borrow().is_empty())?;
    let flow = &fs.flow;
    // The default high-water mark is 64 KiB; one chunk may cross it.
    let bound = 64 * 1024 + CHUNK;
    if flow.runaway.get() || flow.max_buffered.get() > bound {
        line.fail(format!(
            "flow-control idiom looping in {idiom}: buffered {:.1} MiB against a peer that does \
             not read{} (bound {} KiB; {} pause_writing, {} resume_writing)",
            flow.max_buffered.get() as f64 / MIB as f64,
            if flow.runaway.get() {
                ", stopped at the 64 MiB runaway limit"
            } else {
                ""
            },
            bound / 1024,
            flow.pauses.get(),
            flow.resumes.get()
        ));
    } else {
        line.note(format!(
            "idiom in {idiom}: at most {} KiB buffered",
            flow.max_buffered.get() / 1024
        ));
    }
    if fs.losses.borrow().len() != 1 {
        line.fail(format!(
            "never-reading peer ({idiom}): connection_lost {:?}, want exactly once",
            fs.losses.borrow()
        ));
    }
    fs.server.close();
    Ok(())
}
