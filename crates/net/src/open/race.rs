//! The staggered race of connection attempts (RFC 8305 Happy Eyeballs, asyncio's
//! `staggered_race`), and the family interleaving that orders the addresses first.
//!
//! # Ground rules
//!
//! - Attempt *i + 1* starts when attempt *i* (the latest started) fails, or `delay` after
//!   attempt *i* started, whichever comes first; without a delay only the failure starts it,
//!   which is the plain "one address after the other" of asyncio without Happy Eyeballs.
//! - Every running attempt is polled on every wake-up of the race: each is a separate socket
//!   with its own writer registration, and there are only a handful of them.
//! - The first attempt to connect wins. The race then drops every other attempt at once: its
//!   `sock_connect` removes its writer, then its socket closes.
//! - Errors are kept per attempt, in the order the attempts started (the address order), as
//!   asyncio's list of lists.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use evloop_task::{Sleep, sleep};
use socket2::Socket;

/// One connection attempt: the connected socket, or every error it met (binds, then connect).
pub(crate) type Attempt = Pin<Box<dyn Future<Output = Result<Socket, Vec<io::Error>>>>>;

/// asyncio's `_interleave_addrinfos`: groups `items` by family (in order of first
/// appearance), puts `first_family_count - 1` items of the first family first, then takes one
/// of each family in turn.
pub(crate) fn interleave<T>(
    items: Vec<T>,
    first_family_count: usize,
    family: impl Fn(&T) -> i32,
) -> Vec<T> {
    let mut groups: Vec<(i32, std::collections::VecDeque<T>)> = Vec::new();
    for item in items {
        let f = family(&item);
        match groups.iter_mut().find(|(g, _)| *g == f) {
            Some((_, group)) => group.push_back(item),
            None => groups.push((f, std::collections::VecDeque::from([item]))),
        }
    }
    let mut out = Vec::new();
    if let Some((_, first)) = groups.first_mut() {
        let head = first_family_count.saturating_sub(1).min(first.len());
        out.extend(first.drain(..head));
    }
    while groups.iter().any(|(_, g)| !g.is_empty()) {
        for (_, group) in &mut groups {
            if let Some(item) = group.pop_front() {
                out.push(item);
            }
        }
    }
    out
}

/// The race: attempts made on demand by `start(index)`, run as the ground rules say.
pub(crate) struct StaggeredRace<F> {
    start: F,
    count: usize,
    delay: Option<Duration>,
    /// The running attempts, by index; `None` once finished (or not started).
    running: Vec<Option<Attempt>>,
    errors: Vec<Vec<io::Error>>,
    /// The delay timer of the latest started attempt, while another one remains to start.
    timer: Option<Sleep>,
}

impl<F: FnMut(usize) -> Attempt> StaggeredRace<F> {
    /// A race over `count` attempts; nothing starts before the first poll.
    pub(crate) fn new(count: usize, delay: Option<Duration>, start: F) -> StaggeredRace<F> {
        StaggeredRace {
            start,
            count,
            delay,
            running: Vec::with_capacity(count),
            errors: Vec::with_capacity(count),
            timer: None,
        }
    }

    fn start_next(&mut self) {
        let index = self.running.len();
        if index >= self.count {
            return;
        }
        self.running.push(Some((self.start)(index)));
        self.errors.push(Vec::new());
        self.timer = match self.delay {
            Some(delay) if index + 1 < self.count => Some(sleep(delay)),
            _ => None,
        };
    }
}

// Nothing is pinned in place: the attempts are boxed, the timer is `Unpin`, and `F` is only
// called, never polled.
impl<F> Unpin for StaggeredRace<F> {}

impl<F: FnMut(usize) -> Attempt> Future for StaggeredRace<F> {
    /// The winning socket, or the errors of every attempt, in address order.
    type Output = Result<Socket, Vec<Vec<io::Error>>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.running.is_empty() {
            this.start_next();
        }
        loop {
            let mut start_next = false;
            let latest = this.running.len().saturating_sub(1);
            for index in 0..this.running.len() {
                let Some(attempt) = &mut this.running[index] else {
                    continue;
                };
                match attempt.as_mut().poll(cx) {
                    Poll::Pending => {}
                    Poll::Ready(Ok(sock)) => {
                        // The losers are dropped here: writers removed, sockets closed.
                        this.running.clear();
                        this.timer = None;
                        return Poll::Ready(Ok(sock));
                    }
                    Poll::Ready(Err(errors)) => {
                        this.running[index] = None;
                        this.errors[index] = errors;
                        start_next |= index == latest;
                    }
                }
            }
            if let Some(timer) = &mut this.timer {
                if let Poll::Ready(outcome) = Pin::new(timer).poll(cx) {
                    this.timer = None;
                    if let Err(err) = outcome {
                        // The loop is closing or not running: no attempt can finish either.
                        this.running.clear();
                        return Poll::Ready(Err(vec![vec![err.into()]]));
                    }
                    start_next = true;
                }
            }
            if start_next && this.running.len() < this.count {
                this.start_next();
                continue;
            }
            break;
        }
        if this.running.len() == this.count && this.running.iter().all(Option::is_none) {
            return Poll::Ready(Err(std::mem::take(&mut this.errors)));
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fam(x: &(i32, u8)) -> i32 {
        x.0
    }

    // base::BaseEventLoopTests::test_interleave_addrinfos, with asyncio's own addresses: the
    // IPv6 ones (family 10) numbered 1-4, the IPv4 ones (family 2) 5-8.
    #[test]
    fn interleave_alternates_families() {
        let infos = vec![
            (10, 1),
            (10, 2),
            (10, 3),
            (2, 5),
            (2, 6),
            (2, 7),
            (2, 8),
            (10, 4),
        ];
        assert_eq!(
            interleave(infos.clone(), 1, fam),
            [
                (10, 1),
                (2, 5),
                (10, 2),
                (2, 6),
                (10, 3),
                (2, 7),
                (10, 4),
                (2, 8)
            ]
        );
        assert_eq!(
            interleave(infos, 2, fam),
            [
                (10, 1),
                (10, 2),
                (2, 5),
                (10, 3),
                (2, 6),
                (10, 4),
                (2, 7),
                (2, 8)
            ]
        );
    }

    #[test]
    fn interleave_of_one_family_keeps_the_order() {
        let infos = vec![(4, 3), (4, 1), (4, 2)];
        assert_eq!(interleave(infos.clone(), 1, fam), infos);
        assert_eq!(interleave(infos.clone(), 9, fam), infos);
        assert_eq!(interleave(infos.clone(), usize::MAX, fam), infos);
        assert!(interleave(Vec::<(i32, u8)>::new(), 1, fam).is_empty());
    }
}
