//! One loop per core: a TCP echo server on protocols with one event loop per CPU, each on its
//! own thread with its own listener on the same port (`reuse_port`), the kernel spreading the
//! connections over them. Serves until SIGINT or SIGTERM, then stops every loop and says how
//! many connections each one served.
//!
//! Usage: `echo_multicore [ADDR [LOOPS]]` (default `127.0.0.1:0`, a port the kernel picks, and
//! one loop per CPU); it prints `Serving on 127.0.0.1:PORT` once every loop listens, then
//! `LOOPS loops`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use evloop::prelude::*;
use evloop::{LoopGroup, LoopGroupOptions, Protocol, ServerOptions, Transport};

/// Writes every chunk straight back.
#[derive(Default)]
struct Echo {
    transport: Option<Transport>,
}

impl Protocol for Echo {
    fn connection_made(&mut self, transport: &Transport) {
        self.transport = Some(transport.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        if let Some(t) = &self.transport {
            t.write(data);
        }
    }

    fn connection_lost(&mut self, _err: Option<std::io::Error>) {
        self.transport = None;
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:0").parse()?;
    let loops = match args.next() {
        Some(loops) => loops.parse()?,
        None => std::thread::available_parallelism()?.get(),
    };
    // One counter per loop: the connections it accepted.
    let served: Arc<Vec<AtomicUsize>> = Arc::new((0..loops).map(|_| AtomicUsize::new(0)).collect());
    let counters = served.clone();
    let options = LoopGroupOptions::new().loops(loops).thread_name("echo");
    let group = LoopGroup::spawn(options, move |lp, seat| {
        // Loop 0 binds ADDR (port 0: the kernel picks one); the others bind the port it got.
        let port = seat
            .first()
            .map_or(addr.port(), |first: &SocketAddr| first.port());
        let counters = counters.clone();
        let index = seat.index();
        let factory = move || {
            if let Some(count) = counters.get(index) {
                count.fetch_add(1, Ordering::Relaxed);
            }
            Echo::default()
        };
        let options = ServerOptions::new()
            .host(addr.ip().to_string())
            .port(port)
            .reuse_port(true);
        let server = lp.run_until_complete(lp.create_server(factory, options))??;
        let bound = server.sockets()[0].local_addr()?.as_socket();
        seat.keep(server);
        bound.ok_or_else(|| std::io::Error::other("not an inet address"))
    })?;
    println!("Serving on {}", group.values()[0]);
    println!("{} loops", group.len());

    // The main thread waits for a signal on a loop of its own, then stops the group.
    let main_loop = EventLoop::new()?;
    for signum in [evloop::signal::SIGINT, evloop::signal::SIGTERM] {
        let (stopper, l2) = (group.stopper(), main_loop.clone());
        main_loop.add_signal_handler(signum, move || {
            stopper.stop();
            l2.stop();
        })?;
    }
    main_loop.run_forever()?;
    main_loop.close()?;
    group.join()?;
    for (index, served) in served.iter().enumerate() {
        println!(
            "loop {index}: {} connections",
            served.load(Ordering::Relaxed)
        );
    }
    println!("Server closed");
    Ok(())
}
