//! The underlying error of a backend failure, kept as the source of SPANE's own errors.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// The error a Redis client or a database driver returned, kept as the
/// [`source`](Error::source) of the SPANE error that reports it, so that a caller can walk the
/// chain, log it, or downcast it with [`ErrorSource::get`]. The SPANE error's own message
/// already includes this one's text.
///
/// Cloning is cheap (shared). Two sources compare equal when their messages are equal.
///
/// ```
/// use std::error::Error;
/// use spane_core::ErrorSource;
///
/// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
/// let source = ErrorSource::new(io);
/// assert_eq!(source.to_string(), "refused");
/// assert!(source.get().downcast_ref::<std::io::Error>().is_some());
/// ```
#[derive(Clone)]
pub struct ErrorSource(Arc<dyn Error + Send + Sync + 'static>);

impl ErrorSource {
    /// Keeps `error`.
    pub fn new(error: impl Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(error))
    }

    /// The underlying error, to inspect or downcast.
    pub fn get(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl fmt::Debug for ErrorSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for ErrorSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl Error for ErrorSource {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for ErrorSource {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl Eq for ErrorSource {}
