//! The content hash of a definition: what decides whether a saved definition changed.

use serde_json::Value;
use sha2::{Digest, Sha256};
use spane_core::WorkflowDefinition;

/// The SHA-256 (lowercase hex) of `definition`'s canonical JSON: object keys sorted at every
/// level, no whitespace. Two definitions that differ only in the order of object keys have the
/// same hash, like they compare equal; any other difference changes it.
pub fn content_hash(definition: &WorkflowDefinition) -> String {
    let canonical = canonical_json(definition);
    let digest = Sha256::digest(canonical.as_bytes());
    let mut hex = String::with_capacity(digest.len() * 2);
    for byte in digest.iter() {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    hex
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn canonical_json(definition: &WorkflowDefinition) -> String {
    // A definition always serializes (string keys, no non-finite floats in a `Value`).
    let value = serde_json::to_value(definition).unwrap_or(Value::Null);
    sorted(value).to_string()
}

fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use spane_core::{NodeDefinition, WorkflowDefinition};

    use super::content_hash;

    fn with_config(config: serde_json::Value) -> WorkflowDefinition {
        WorkflowDefinition::new("wf", "W").node(NodeDefinition::new("a", "t").with_config(config))
    }

    #[test]
    fn key_order_does_not_change_the_hash() {
        let a = with_config(json!({ "x": 1, "y": { "p": true, "q": [1, 2] } }));
        let b = with_config(json!({ "y": { "q": [1, 2], "p": true }, "x": 1 }));
        assert_eq!(content_hash(&a), content_hash(&b));
        assert_eq!(content_hash(&a).len(), 64);
    }

    #[test]
    fn any_value_change_changes_the_hash() {
        let base = content_hash(&with_config(json!({ "x": 0 })));
        for other in [
            json!({ "x": false }),
            json!({ "x": "" }),
            json!({ "x": null }),
            json!({}),
        ] {
            assert_ne!(content_hash(&with_config(other)), base);
        }
        let order = |a: &str, b: &str| content_hash(&with_config(json!({ "list": [a, b] })));
        assert_ne!(order("a", "b"), order("b", "a"), "array order matters");
    }
}
