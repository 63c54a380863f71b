//! The exception handler: where failures that have no caller to return to end up.
//!
//! A panic in a callback, an error a transport cannot hand to anyone, a task dropped while
//! pending: each becomes a [`Context`] passed to the loop's handler (asyncio's context dict). The
//! default handler logs it through the `log` crate at error level, or writes it to stderr when
//! the program installed no logger ([`log_report`]). A custom handler that panics
//! falls back to the default one; the loop keeps running either way.

use std::any::Any;
use std::fmt;
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};

use log::{Level, LevelFilter, Metadata};

use crate::Handle;

/// What went wrong: a panic payload or an error value (asyncio's `exception` key).
pub struct Exception {
    repr: Repr,
}

enum Repr {
    Panic(Box<dyn Any + Send>),
    Error(Box<dyn std::error::Error + Send + Sync>),
}

impl Exception {
    /// Wraps the payload of a caught panic (from `std::panic::catch_unwind`).
    pub fn from_panic(payload: Box<dyn Any + Send>) -> Exception {
        Exception {
            repr: Repr::Panic(payload),
        }
    }

    /// Wraps an error value.
    pub fn from_error(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Exception {
        Exception {
            repr: Repr::Error(err.into()),
        }
    }

    /// True if this is a caught panic.
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panic(_))
    }

    /// The panic message (for `&str` and `String` payloads) or the error's `Display`.
    pub fn message(&self) -> String {
        match &self.repr {
            Repr::Panic(payload) => panic_message(payload.as_ref()),
            Repr::Error(err) => err.to_string(),
        }
    }

    /// The panic payload, if this is a panic whose payload is a `T` (for an error value, use
    /// [`as_error`](Exception::as_error) and downcast that).
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        match &self.repr {
            Repr::Panic(payload) => payload.downcast_ref::<T>(),
            Repr::Error(_) => None,
        }
    }

    /// The error value, if this wraps one rather than a panic.
    pub fn as_error(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        match &self.repr {
            Repr::Panic(_) => None,
            Repr::Error(err) => Some(err.as_ref()),
        }
    }

    /// Gives the panic payload back (to resume unwinding with `std::panic::resume_unwind`), or
    /// `Err(self)` for an error value.
    pub fn into_panic(self) -> Result<Box<dyn Any + Send>, Exception> {
        match self.repr {
            Repr::Panic(payload) => Ok(payload),
            Repr::Error(_) => Err(self),
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_owned()
    }
}

impl fmt::Display for Exception {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Panic(payload) => write!(f, "panic: {}", panic_message(payload.as_ref())),
            Repr::Error(err) => fmt::Display::fmt(err, f),
        }
    }
}

impl fmt::Debug for Exception {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Panic(payload) => write!(f, "Panic({:?})", panic_message(payload.as_ref())),
            Repr::Error(err) => write!(f, "Error({err:?})"),
        }
    }
}

/// A value stored under a key of a [`Context`].
pub trait ContextValue: Any + fmt::Debug {
    /// `self` as `&dyn Any`, for downcasting.
    fn as_any(&self) -> &dyn Any;
}

impl<T: Any + fmt::Debug> ContextValue for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// What the exception handler is told: asyncio's context dict.
///
/// It always has a message; other keys, where they apply, are `exception`, `handle`, `future`,
/// `task`, `protocol`, `transport`, `socket` and `context`.
///
/// # Examples
///
/// ```
/// use evloop::{Context, Exception};
///
/// let ctx = Context::new("something broke")
///     .with_exception(Exception::from_error("disk full"))
///     .with("socket", 7_i32);
/// assert_eq!(ctx.message(), "something broke");
/// assert_eq!(ctx.keys().collect::<Vec<_>>(), ["message", "exception", "socket"]);
/// assert_eq!(ctx.get::<i32>("socket"), Some(&7));
/// ```
pub struct Context {
    message: String,
    exception: Option<Exception>,
    values: Vec<(&'static str, Box<dyn ContextValue>)>,
}

impl Context {
    /// A context with only a message.
    pub fn new(message: impl Into<String>) -> Context {
        Context {
            message: message.into(),
            exception: None,
            values: Vec::new(),
        }
    }

    /// Adds the `exception` key.
    pub fn with_exception(mut self, exception: Exception) -> Context {
        self.exception = Some(exception);
        self
    }

    /// Adds (or replaces) a key.
    pub fn with(mut self, key: &'static str, value: impl ContextValue) -> Context {
        self.values.retain(|(k, _)| *k != key);
        self.values.push((key, Box::new(value)));
        self
    }

    /// The message (may be empty; the default handler then says
    /// "Unhandled exception in event loop").
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The `exception` key.
    pub fn exception(&self) -> Option<&Exception> {
        self.exception.as_ref()
    }

    /// Takes the `exception` out (e.g. to resume a panic).
    pub fn take_exception(&mut self) -> Option<Exception> {
        self.exception.take()
    }

    /// The `handle` key: the callback that failed.
    pub fn handle(&self) -> Option<&Handle> {
        self.get::<Handle>("handle")
    }

    /// The value under `key`, if it is present and a `T`.
    pub fn get<T: Any>(&self, key: &str) -> Option<&T> {
        self.get_value(key)?.as_any().downcast_ref::<T>()
    }

    /// The value under `key` as a debuggable value (not `message` or `exception`).
    pub fn get_value(&self, key: &str) -> Option<&dyn ContextValue> {
        self.values
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_ref())
    }

    /// The keys present, `message` first, then `exception` if set, then the others in the
    /// order they were added.
    pub fn keys(&self) -> impl Iterator<Item = &'static str> + '_ {
        std::iter::once("message")
            .chain(self.exception.as_ref().map(|_| "exception"))
            .chain(self.values.iter().map(|(k, _)| *k))
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        map.entry(&"message", &self.message);
        if let Some(exc) = &self.exception {
            map.entry(&"exception", exc);
        }
        for (k, v) in &self.values {
            map.entry(k, v);
        }
        map.finish()
    }
}

/// The text the default handler logs for `ctx`: the message (or "Unhandled exception in event
/// loop"), then every other key as `key: value` sorted by key.
pub(crate) fn format_context(ctx: &Context) -> String {
    let mut out = if ctx.message.is_empty() {
        "Unhandled exception in event loop".to_owned()
    } else {
        ctx.message.clone()
    };
    let mut lines: Vec<(&str, String)> = ctx
        .values
        .iter()
        .map(|(k, v)| (*k, format!("{v:?}")))
        .collect();
    if let Some(exc) = &ctx.exception {
        lines.push(("exception", exc.to_string()));
    }
    lines.sort_by(|a, b| a.0.cmp(b.0));
    for (k, v) in lines {
        out.push('\n');
        out.push_str(k);
        out.push_str(": ");
        out.push_str(&v);
    }
    out
}

/// asyncio's `default_exception_handler`: reports the context at error level through
/// [`log_report`] (the program's `log` logger, or stderr when it installed none). A logger that
/// panics is contained: "Exception in default exception handler" is reported instead.
pub fn default_exception_handler(ctx: &Context) {
    let text = format_context(ctx);
    if catch_unwind(AssertUnwindSafe(|| log_report(Level::Error, &text))).is_err() {
        let _ = catch_unwind(|| log_report(Level::Error, "Exception in default exception handler"));
    }
}

/// True when the program installed no `log` logger, so that a record would reach nobody.
///
/// `log` offers no direct test. Until a logger is installed, `log::max_level()` is `Off` and
/// `log::logger()` is a no-op logger whose `enabled` is always false; installing one (`env_logger`,
/// `simple_logger`…) raises the max level. Both are checked: the max level alone would also take
/// a program that installed a logger and silenced everything with `set_max_level(Off)` for one
/// with none, and that program asked for silence, not for stderr.
fn no_logger() -> bool {
    log::max_level() == LevelFilter::Off
        && !log::logger().enabled(
            &Metadata::builder()
                .level(Level::Error)
                .target(TARGET)
                .build(),
        )
}

/// How evloop writes its own reports (the default exception handler, debug mode's slow-callback
/// warnings, the executor's shutdown warning): through the `log` crate, target `evloop`, when the
/// program installed a logger; to stderr, as `LEVEL evloop: text`, when it installed none, so
/// that errors are never invisible by default (asyncio's reports reach stderr the same way,
/// through `logging`'s last-resort handler, when logging is not configured).
///
/// # Examples
///
/// ```
/// evloop::log_report(log::Level::Warn, "something odd happened");
/// ```
pub fn log_report(level: Level, text: &str) {
    if no_logger() {
        // A closed or full stderr is no reason to fail: the report is dropped.
        let _ = writeln!(std::io::stderr().lock(), "{level} {TARGET}: {text}");
    } else {
        log::log!(target: TARGET, level, "{text}");
    }
}

/// The `log` target of evloop's reports.
const TARGET: &str = "evloop";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_text_sorts_keys_and_fills_in_an_empty_message() {
        let ctx = Context::new("")
            .with("transport", "t")
            .with_exception(Exception::from_error("boom"))
            .with("handle", 3);
        assert_eq!(
            format_context(&ctx),
            "Unhandled exception in event loop\nexception: boom\nhandle: 3\ntransport: \"t\""
        );
    }

    #[test]
    fn panic_payloads_give_their_message() {
        let exc = Exception::from_panic(Box::new("static"));
        assert_eq!(exc.message(), "static");
        let exc = Exception::from_panic(Box::new(String::from("owned")));
        assert_eq!(exc.message(), "owned");
        assert!(exc.is_panic());
        assert_eq!(
            exc.downcast_ref::<String>().map(String::as_str),
            Some("owned")
        );
    }
}
