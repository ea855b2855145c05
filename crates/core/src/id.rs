//! Identifiers.

use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use ulid::{Generator, Ulid};

/// The id of one execution (one run of a workflow): a ULID, so ids sort by creation time.
///
/// On the wire and in storage it is the 26-character Crockford base32 string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExecutionId(Ulid);

impl ExecutionId {
    /// A new, unique id. Within one process, each id sorts after the ones created before it,
    /// even within the same millisecond (a monotonic ULID generator).
    pub fn new() -> Self {
        static GENERATOR: Mutex<Generator> = Mutex::new(Generator::new());
        let mut generator = GENERATOR.lock().unwrap_or_else(PoisonError::into_inner);
        // `generate` fails only if the random part overflows within one millisecond.
        Self(generator.generate().unwrap_or_else(|_| Ulid::new()))
    }

    /// The underlying ULID.
    pub fn as_ulid(&self) -> Ulid {
        self.0
    }
}

impl Default for ExecutionId {
    fn default() -> Self {
        Self::new()
    }
}

impl From<Ulid> for ExecutionId {
    fn from(value: Ulid) -> Self {
        Self(value)
    }
}

impl fmt::Display for ExecutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The text given to [`ExecutionId::from_str`] is not a ULID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid execution id {value:?}: expected a 26-character ULID")]
pub struct InvalidExecutionId {
    /// The rejected text.
    pub value: String,
}

impl FromStr for ExecutionId {
    type Err = InvalidExecutionId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ulid::from_string(s)
            .map(Self)
            .map_err(|_| InvalidExecutionId {
                value: s.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_id_round_trips_through_text_and_json() {
        let id = ExecutionId::new();
        let text = id.to_string();
        assert_eq!(text.len(), 26);
        assert_eq!(text.parse::<ExecutionId>().unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<ExecutionId>(&json).unwrap(), id);
    }

    #[test]
    fn invalid_execution_id_names_the_value() {
        let err = "not-a-ulid".parse::<ExecutionId>().unwrap_err();
        assert!(err.to_string().contains("not-a-ulid"));
    }

    #[test]
    fn later_ids_sort_after_earlier_ones() {
        let ids: Vec<ExecutionId> = (0..1000).map(|_| ExecutionId::new()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }
}
