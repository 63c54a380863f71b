//! [`Address`]: a socket address as a program reads it (`127.0.0.1:8080`, `/tmp/app.sock`),
//! where `socket2::SockAddr` prints `SockAddr { ss_family: 2, len: 16 }`.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use socket2::SockAddr;

/// A socket's address, as `peername` and `sockname` give it: an IP address and port, a Unix
/// path, an unnamed or abstract Unix address, or another family's raw address.
///
/// `Display` and `Debug` read as the address itself: `127.0.0.1:8080`, `[::1]:443`,
/// `/tmp/app.sock`, `(unnamed)`, `@name` for a Linux abstract address. The accessors mirror
/// `SockAddr`'s ([`as_socket`](Address::as_socket), [`as_pathname`](Address::as_pathname),
/// [`is_unnamed`](Address::is_unnamed)), and [`as_sockaddr`](Address::as_sockaddr) gives the
/// raw form for `socket2` calls.
///
/// # Examples
///
/// ```
/// use std::net::SocketAddr;
/// use evloop::Address;
/// use evloop::socket2::SockAddr;
///
/// let inet: SocketAddr = "127.0.0.1:8080".parse()?;
/// let a = Address::from(SockAddr::from(inet));
/// assert_eq!(a.to_string(), "127.0.0.1:8080");
/// assert_eq!(format!("{a:?}"), "127.0.0.1:8080");
/// assert_eq!(a.as_socket(), Some(inet));
/// let unix = Address::from(SockAddr::unix("/tmp/app.sock")?);
/// assert_eq!(unix.to_string(), "/tmp/app.sock");
/// assert_eq!(Address::from(inet), a);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Address(SockAddr);

impl Address {
    /// The IP address and port, for an inet address.
    pub fn as_socket(&self) -> Option<SocketAddr> {
        self.0.as_socket()
    }

    /// The path, for a named Unix address.
    pub fn as_pathname(&self) -> Option<&Path> {
        self.0.as_pathname()
    }

    /// True for a Unix address with no name (a client's end, a `socketpair`'s).
    pub fn is_unnamed(&self) -> bool {
        self.0.is_unnamed()
    }

    /// The name of a Linux abstract Unix address, without its leading NUL.
    pub fn as_abstract_name(&self) -> Option<&[u8]> {
        self.0.as_abstract_namespace()
    }

    /// The raw address, for `socket2` calls.
    pub fn as_sockaddr(&self) -> &SockAddr {
        &self.0
    }
}

impl From<SockAddr> for Address {
    fn from(raw: SockAddr) -> Address {
        Address(raw)
    }
}

impl From<SocketAddr> for Address {
    fn from(addr: SocketAddr) -> Address {
        Address(SockAddr::from(addr))
    }
}

impl From<Address> for SockAddr {
    fn from(addr: Address) -> SockAddr {
        addr.0
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(inet) = self.0.as_socket() {
            fmt::Display::fmt(&inet, f)
        } else if let Some(path) = self.0.as_pathname() {
            fmt::Display::fmt(&path.display(), f)
        } else if let Some(name) = self.0.as_abstract_namespace() {
            write!(f, "@{}", String::from_utf8_lossy(name))
        } else if self.0.is_unnamed() {
            f.write_str("(unnamed)")
        } else {
            write!(f, "(address of family {})", self.0.family())
        }
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_as_itself() -> Result<(), Box<dyn std::error::Error>> {
        let v6: SocketAddr = "[::1]:443".parse()?;
        assert_eq!(Address::from(v6).to_string(), "[::1]:443");
        let (a, _b) = std::os::unix::net::UnixStream::pair()?;
        let unnamed = Address::from(socket2::SockRef::from(&a).local_addr()?);
        assert!(unnamed.is_unnamed());
        assert_eq!(format!("{unnamed:?}"), "(unnamed)");
        let path = Address::from(SockAddr::unix("/run/x.sock")?);
        assert_eq!(path.as_pathname(), Some(Path::new("/run/x.sock")));
        assert_eq!(path.as_socket(), None);
        Ok(())
    }
}
