//! [`Failure`]: the type-erased error that travels a Deferred's errback path.

use std::any::Any;
use std::backtrace::Backtrace;
use std::error::Error;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

static DEBUGGING: AtomicBool = AtomicBool::new(false);

/// Switches debugging on or off for the whole process (Twisted's `defer.setDebugging`).
///
/// While debugging is on, every new [`Failure`] captures a [`Backtrace`] where it was
/// made. While it is off (the default) no backtrace is captured and a `Failure` costs one
/// allocation. Switching it mid-run is safe: it affects only failures made afterwards.
///
/// # Examples
///
/// ```
/// use ropewalk_deferred::{set_debugging, is_debugging, Failure};
///
/// set_debugging(true);
/// let f = Failure::msg("boom");
/// assert!(f.backtrace().is_some());
/// set_debugging(false);
/// assert!(!is_debugging());
/// assert!(Failure::msg("boom").backtrace().is_none());
/// ```
pub fn set_debugging(on: bool) {
    DEBUGGING.store(on, Ordering::Relaxed);
}

/// Tells whether debugging is on (see [`set_debugging`]).
///
/// # Examples
///
/// ```
/// assert!(!ropewalk_deferred::is_debugging());
/// ```
pub fn is_debugging() -> bool {
    DEBUGGING.load(Ordering::Relaxed)
}

/// An error on a Deferred's errback path, as Twisted's `Failure`.
///
/// It wraps any `Box<dyn Error + Send + Sync>`, so a callback can turn any error into a
/// `Failure` with `?`. It is cheap to clone (one reference count), and `Send + Sync`, so a
/// worker thread can hand one to the reactor thread.
///
/// Ask it what it holds with [`is`](Failure::is), [`downcast_ref`](Failure::downcast_ref),
/// [`find`](Failure::find) (which searches the cause chain) and
/// [`trap`](Failure::trap) (Twisted's `failure.trap`, for errbacks). `Display` prints the
/// error and its cause chain, `a: b: c`; `{:?}` adds the backtrace when
/// [debugging](set_debugging) was on when the failure was made.
///
/// `Failure` does not implement [`std::error::Error`] itself (as with `anyhow::Error`, that
/// would conflict with the blanket `From<E: Error>`), but it converts into
/// `Box<dyn Error + Send + Sync>` with `?` or [`into_boxed_error`](Failure::into_boxed_error).
///
/// # Examples
///
/// ```
/// use ropewalk_deferred::Failure;
///
/// let f: Failure = "x".parse::<u32>().unwrap_err().into();
/// assert!(f.is::<std::num::ParseIntError>());
/// assert_eq!(f.to_string(), "invalid digit found in string");
/// ```
#[derive(Clone)]
pub struct Failure(Arc<FailureInner<dyn AsDynError>>);

/// The error is stored inline, so a `Failure` is one allocation.
struct FailureInner<E: ?Sized> {
    backtrace: Option<Backtrace>,
    error: E,
}

/// Reaches the error inside, seeing through an already boxed one.
trait AsDynError: Send + Sync + 'static {
    fn get(&self) -> &(dyn Error + Send + Sync + 'static);
}

impl<E: Error + Send + Sync + 'static> AsDynError for E {
    fn get(&self) -> &(dyn Error + Send + Sync + 'static) {
        self
    }
}

/// An error that came boxed (`Failure::from_boxed`).
struct Boxed(Box<dyn Error + Send + Sync + 'static>);

impl AsDynError for Boxed {
    fn get(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.0
    }
}

/// A panic caught inside a callback, a canceller or a task, turned into an error.
///
/// # Examples
///
/// ```
/// use ropewalk_deferred::{Deferred, Panicked};
///
/// let d = Deferred::succeed(1).add_callback(|_| -> Result<i32, _> { panic!("oops") });
/// let f = d.wait().unwrap_err();
/// assert_eq!(f.downcast_ref::<Panicked>().unwrap().message(), "oops");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("panicked: {message}")]
pub struct Panicked {
    message: String,
}

impl Panicked {
    /// Builds one from a panic payload, as `catch_unwind` returns it.
    ///
    /// # Examples
    ///
    /// ```
    /// let payload = std::panic::catch_unwind(|| panic!("bad {}", 1)).unwrap_err();
    /// let p = ropewalk_deferred::Panicked::from_payload(payload);
    /// assert_eq!(p.message(), "bad 1");
    /// ```
    pub fn from_payload(payload: Box<dyn Any + Send>) -> Panicked {
        let message = if let Some(s) = payload.downcast_ref::<&'static str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "non-string panic payload".to_string()
        };
        Panicked { message }
    }

    /// The panic's message.
    ///
    /// # Examples
    ///
    /// ```
    /// let payload = std::panic::catch_unwind(|| panic!("why")).unwrap_err();
    /// assert_eq!(ropewalk_deferred::Panicked::from_payload(payload).message(), "why");
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// An error made from a message alone ([`Failure::msg`]).
#[derive(Debug)]
struct Message(String);

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for Message {}

impl Failure {
    /// Wraps an error.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_deferred::{Failure, Cancelled};
    ///
    /// let f = Failure::new(Cancelled);
    /// assert!(f.is::<Cancelled>());
    /// ```
    pub fn new<E: Error + Send + Sync + 'static>(error: E) -> Failure {
        Failure(Arc::new(FailureInner {
            backtrace: capture(),
            error,
        }))
    }

    /// Wraps an already boxed error.
    ///
    /// # Examples
    ///
    /// ```
    /// let e: Box<dyn std::error::Error + Send + Sync> = "bad".into();
    /// assert_eq!(ropewalk_deferred::Failure::from_boxed(e).to_string(), "bad");
    /// ```
    pub fn from_boxed(error: Box<dyn Error + Send + Sync + 'static>) -> Failure {
        Failure(Arc::new(FailureInner {
            backtrace: capture(),
            error: Boxed(error),
        }))
    }

    /// A failure that carries only a message.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(ropewalk_deferred::Failure::msg("no route").to_string(), "no route");
    /// ```
    pub fn msg(message: impl fmt::Display) -> Failure {
        Failure::new(Message(message.to_string()))
    }

    /// A failure from a caught panic's payload (see [`Panicked`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_deferred::{Failure, Panicked};
    ///
    /// let payload = std::panic::catch_unwind(|| panic!("x")).unwrap_err();
    /// assert!(Failure::from_panic(payload).is::<Panicked>());
    /// ```
    pub fn from_panic(payload: Box<dyn Any + Send>) -> Failure {
        Failure::new(Panicked::from_payload(payload))
    }

    /// Whether the error is of type `E` (the outermost error only; see [`find`](Self::find)).
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_deferred::{Failure, Cancelled, Timeout};
    ///
    /// let f = Failure::new(Cancelled);
    /// assert!(f.is::<Cancelled>());
    /// assert!(!f.is::<Timeout>());
    /// ```
    pub fn is<E: Error + 'static>(&self) -> bool {
        self.error().is::<E>()
    }

    /// The error as `E`, if it is one (the outermost error only).
    ///
    /// # Examples
    ///
    /// ```
    /// let f = ropewalk_deferred::Failure::new(std::io::Error::other("disk"));
    /// assert_eq!(f.downcast_ref::<std::io::Error>().unwrap().kind(), std::io::ErrorKind::Other);
    /// ```
    pub fn downcast_ref<E: Error + 'static>(&self) -> Option<&E> {
        self.error().downcast_ref::<E>()
    }

    /// The first error of type `E` along the cause chain, starting with this one.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_deferred::{Failure, FirstError, Cancelled};
    ///
    /// let f = Failure::new(FirstError::new(2, Failure::new(Cancelled)));
    /// assert!(f.find::<Cancelled>().is_some());
    /// assert!(!f.is::<Cancelled>());
    /// ```
    pub fn find<E: Error + 'static>(&self) -> Option<&E> {
        self.chain().find_map(|e| e.downcast_ref::<E>())
    }

    /// Twisted's `trap`: the error as `E`, or this failure again as the `Err`, so that an
    /// errback passes on what it does not handle with `?`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_deferred::{Deferred, Failure, Cancelled, Timeout};
    ///
    /// let d = Deferred::<i32>::fail(Failure::new(Cancelled))
    ///     .add_errback(|f| {
    ///         f.trap::<Timeout>()?; // not a timeout: handed on unchanged
    ///         Ok(0)
    ///     })
    ///     .add_errback(|f| {
    ///         f.trap::<Cancelled>()?;
    ///         Ok(-1)
    ///     });
    /// assert_eq!(d.wait().unwrap(), -1);
    /// ```
    pub fn trap<E: Error + 'static>(&self) -> Result<&E, Failure> {
        self.downcast_ref::<E>().ok_or_else(|| self.clone())
    }

    /// The wrapped error.
    ///
    /// # Examples
    ///
    /// ```
    /// let f = ropewalk_deferred::Failure::msg("m");
    /// assert_eq!(f.error().to_string(), "m");
    /// ```
    pub fn error(&self) -> &(dyn Error + Send + Sync + 'static) {
        self.0.error.get()
    }

    /// The error, then its `source()`s, outermost first.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_deferred::{Failure, FirstError};
    ///
    /// let f = Failure::new(FirstError::new(0, Failure::msg("inner")));
    /// assert_eq!(f.chain().count(), 2);
    /// ```
    pub fn chain(&self) -> impl Iterator<Item = &(dyn Error + 'static)> {
        let first: &(dyn Error + 'static) = self.error();
        std::iter::successors(Some(first), |e| (*e).source())
    }

    /// The backtrace captured when this failure was made, if [debugging](set_debugging)
    /// was on then.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(ropewalk_deferred::Failure::msg("m").backtrace().is_none());
    /// ```
    pub fn backtrace(&self) -> Option<&Backtrace> {
        self.0.backtrace.as_ref()
    }

    /// Whether this failure is a caught panic ([`Panicked`]).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!ropewalk_deferred::Failure::msg("m").is_panic());
    /// ```
    pub fn is_panic(&self) -> bool {
        self.is::<Panicked>()
    }

    /// Whether two failures are the same object (clones of one failure).
    ///
    /// # Examples
    ///
    /// ```
    /// let f = ropewalk_deferred::Failure::msg("m");
    /// assert!(f.ptr_eq(&f.clone()));
    /// assert!(!f.ptr_eq(&ropewalk_deferred::Failure::msg("m")));
    /// ```
    pub fn ptr_eq(&self, other: &Failure) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Converts into a boxed standard error (whose `source()` chain is this failure's).
    ///
    /// # Examples
    ///
    /// ```
    /// let e = ropewalk_deferred::Failure::msg("m").into_boxed_error();
    /// assert_eq!(e.to_string(), "m");
    /// ```
    pub fn into_boxed_error(self) -> Box<dyn Error + Send + Sync + 'static> {
        Box::new(AsError(self))
    }
}

fn capture() -> Option<Backtrace> {
    if is_debugging() {
        Some(Backtrace::force_capture())
    } else {
        None
    }
}

/// A `Failure` seen as a `std::error::Error`.
struct AsError(Failure);

impl fmt::Debug for AsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for AsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.0.error(), f)
    }
}

impl Error for AsError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.error().source()
    }
}

impl<E: Error + Send + Sync + 'static> From<E> for Failure {
    fn from(error: E) -> Failure {
        Failure::new(error)
    }
}

impl From<Failure> for Box<dyn Error + Send + Sync + 'static> {
    fn from(f: Failure) -> Self {
        f.into_boxed_error()
    }
}

impl From<Failure> for Box<dyn Error + 'static> {
    fn from(f: Failure) -> Self {
        f.into_boxed_error()
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.chain().enumerate() {
            if i > 0 {
                f.write_str(": ")?;
            }
            fmt::Display::fmt(e, f)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Failure({self})")?;
        if let Some(bt) = &self.0.backtrace {
            write!(f, "\nbacktrace:\n{bt}")?;
        }
        Ok(())
    }
}
