//! `http_hello` over TLS: the same keep-alive HTTP/1.1 responder, behind `ssl=`. At start it
//! makes a self-signed certificate for `localhost` and `127.0.0.1` (with rcgen), writes it to a
//! file in the temp dir and prints the path, so a client can trust it:
//! `curl --cacert FILE https://127.0.0.1:PORT/`. Serves until SIGINT or SIGTERM; the file is
//! removed at exit.
//!
//! Usage: `https_hello [ADDR]` (default `127.0.0.1:0`); it prints `Certificate: FILE`, then
//! `Serving on https://ADDR/`.

#[path = "support/http.rs"]
mod http;

use std::sync::Arc;

use evloop::ServerOptions;
use evloop::prelude::*;
use evloop::rustls::ServerConfig;
use evloop::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use http::Http;

/// A self-signed certificate for this host, and the server configuration presenting it.
fn self_signed() -> Result<(String, Arc<ServerConfig>), Box<dyn std::error::Error>> {
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![made.cert.der().clone()], key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((made.cert.pem(), Arc::new(config)))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: std::net::SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_string())
        .parse()?;
    let (pem, config) = self_signed()?;
    let cert_file =
        std::env::temp_dir().join(format!("evloop-https-hello-{}.pem", std::process::id()));
    std::fs::write(&cert_file, pem)?;
    println!("Certificate: {}", cert_file.display());

    let lp = EventLoop::new()?;
    let server = lp.run_until_complete(
        lp.create_server(
            Http::default,
            ServerOptions::new()
                .host(addr.ip().to_string())
                .port(addr.port())
                .ssl(config),
        ),
    )??;
    let bound = server.sockets()[0].local_addr()?;
    println!(
        "Serving on https://{}/",
        bound.as_socket().ok_or("not inet")?
    );
    for signum in [evloop::signal::SIGINT, evloop::signal::SIGTERM] {
        let l2 = lp.clone();
        lp.add_signal_handler(signum, move || l2.stop())?;
    }
    lp.run_forever()?;
    server.close();
    server.abort_clients();
    lp.close()?;
    std::fs::remove_file(&cert_file)?;
    println!("Server closed");
    Ok(())
}
