//! Certificates and TLS configurations for the TLS tests: a test CA, leaf certificates for
//! the right host, the wrong host, or expired, made with rcgen at run time.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use evloop_net::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use evloop_net::rustls::{
    self, ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion,
};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

pub type BoxError = Box<dyn std::error::Error>;

/// A certificate authority of our own.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf certificate and its key.
pub struct Leaf {
    pub cert: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
}

impl Ca {
    pub fn new() -> Result<Ca, BoxError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("evloop test CA {}", unique()),
        );
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        Ok(Ca { issuer })
    }

    pub fn cert(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// A leaf for `names` (DNS names or IP addresses); expired in 2020 if `expired`.
    pub fn leaf(&self, names: &[&str], expired: bool) -> Result<Leaf, BoxError> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names)?;
        if expired {
            params.not_before = rcgen::date_time_ymd(2019, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 1, 1);
        }
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Leaf {
            cert: cert.der().clone(),
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
    }

    /// A server configuration presenting `leaf` (and our CA), TLS 1.3 and 1.2 unless
    /// `versions` narrows it; ALPN `alpn` offered.
    pub fn server_config(
        &self,
        leaf: &Leaf,
        versions: &[&'static SupportedProtocolVersion],
        alpn: &[&[u8]],
    ) -> Result<Arc<ServerConfig>, BoxError> {
        // rustls' process-wide provider: `ring`, the only one built in.
        let builder = if versions.is_empty() {
            ServerConfig::builder()
        } else {
            ServerConfig::builder_with_protocol_versions(versions)
        };
        let mut config = builder
            .with_no_client_auth()
            .with_single_cert(vec![leaf.cert.clone(), self.cert()], leaf.key.clone_key())?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }

    /// A client configuration that trusts this CA only.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, BoxError> {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert())?;
        let mut config = ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

/// A CA, its client configuration and a server configuration for "localhost" and 127.0.0.1.
pub fn pki() -> Result<(Ca, Arc<ClientConfig>, Arc<ServerConfig>, Leaf), BoxError> {
    let ca = Ca::new()?;
    let leaf = ca.leaf(&["localhost", "127.0.0.1"], false)?;
    let server = ca.server_config(&leaf, &[], &[])?;
    let client = ca.client_config(&[])?;
    Ok((ca, client, server, leaf))
}

pub const TLS12: &rustls::SupportedProtocolVersion = &rustls::version::TLS12;
pub const TLS13: &rustls::SupportedProtocolVersion = &rustls::version::TLS13;

/// A number no other CA of this process has: each CA's name is its own, so one cannot pass
/// for another.
fn unique() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
