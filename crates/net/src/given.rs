//! A socket handed to an options value: shared by the value's clones, taken by the first call
//! that uses it.
//!
//! The option types are `Clone` so that one configured value can open many connections. A
//! socket is not a value that can be copied (duplicating its descriptor is a syscall that can
//! fail, and a transport whose socket has a twin would not end the connection on close), so the
//! clones share it instead: the first `create_*` call that uses any of them takes it, and a
//! later call with another clone fails with a clear error rather than use a socket that a
//! transport already owns.

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use socket2::Socket;

/// The `sock` of an options value (see the module docs).
#[derive(Clone)]
pub(crate) struct GivenSocket(Arc<Mutex<Option<Socket>>>);

impl GivenSocket {
    pub(crate) fn new(sock: Socket) -> GivenSocket {
        GivenSocket(Arc::new(Mutex::new(Some(sock))))
    }

    /// The socket, which this call now owns.
    ///
    /// # Errors
    ///
    /// `InvalidInput` when a call made with a clone of the same options took it first.
    pub(crate) fn take(&self) -> io::Result<Socket> {
        // Nothing panics while the lock is held, so a poisoned lock still holds a sound value.
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        slot.take().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "sock: already used by an earlier call made with a clone of these options",
            )
        })
    }
}

impl fmt::Debug for GivenSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match &*slot {
            Some(sock) => sock.fmt(f),
            None => f.write_str("(taken)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::{Domain, Type};

    #[test]
    fn the_first_taker_owns_the_socket_and_a_clone_then_errors() -> io::Result<()> {
        let given = GivenSocket::new(Socket::new(Domain::IPV4, Type::STREAM, None)?);
        let twin = given.clone();
        assert!(format!("{twin:?}").contains("Socket"));
        let sock = twin.take()?;
        assert_eq!(sock.r#type()?, Type::STREAM);
        let err = given
            .take()
            .err()
            .ok_or_else(|| io::Error::other("taken twice"))?;
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().starts_with("sock: already used"));
        assert_eq!(format!("{given:?}"), "(taken)");
        Ok(())
    }
}
