//! Decoding Redis replies into this crate's types. Malformed replies
//! become [`QueueError::Protocol`] and never a panic; the reply itself is
//! not quoted (it may hold payload bytes).

use bytes::Bytes;
use redis::Value;

use crate::error::{QueueError, Result};
use crate::task::{DeadLetter, Delivery, TaskId};

pub(crate) fn items(operation: &'static str, v: Value) -> Result<Vec<Value>> {
    match v {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        _ => Err(QueueError::protocol(operation, "expected an array")),
    }
}

pub(crate) fn bytes(operation: &'static str, v: Value) -> Result<Bytes> {
    match v {
        Value::BulkString(b) => Ok(Bytes::from(b)),
        Value::SimpleString(s) => Ok(Bytes::from(s)),
        _ => Err(QueueError::protocol(operation, "expected a string")),
    }
}

pub(crate) fn int(operation: &'static str, v: &Value) -> Result<i64> {
    match v {
        Value::Int(n) => Ok(*n),
        Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| QueueError::protocol(operation, "expected an integer")),
        _ => Err(QueueError::protocol(operation, "expected an integer")),
    }
}

pub(crate) fn count(operation: &'static str, v: &Value) -> Result<u64> {
    u64::try_from(int(operation, v)?).map_err(|_| QueueError::protocol(operation, "negative count"))
}

pub(crate) fn task_id(operation: &'static str, v: &Value) -> Result<TaskId> {
    match v {
        Value::BulkString(b) => TaskId::from_bytes(b),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| QueueError::protocol(operation, "malformed stream entry id"))
}

fn deliveries(operation: &'static str, v: &Value) -> Result<u32> {
    u32::try_from(int(operation, v)?)
        .map_err(|_| QueueError::protocol(operation, "delivery count out of range"))
}

/// The flat `id, payload, deliveries, ...` array of the receive script.
pub(crate) fn deliveries_flat(operation: &'static str, v: Value) -> Result<Vec<Delivery>> {
    let items = items(operation, v)?;
    if items.len() % 3 != 0 {
        return Err(QueueError::protocol(operation, "truncated delivery list"));
    }
    let mut out = Vec::with_capacity(items.len() / 3);
    let mut it = items.into_iter();
    while let (Some(id), Some(payload), Some(n)) = (it.next(), it.next(), it.next()) {
        out.push(Delivery {
            id: task_id(operation, &id)?,
            payload: bytes(operation, payload)?,
            deliveries: deliveries(operation, &n)?,
        });
    }
    Ok(out)
}

/// A stream entry's field-value pairs.
type Fields = Vec<(Value, Value)>;

/// `[[id, [field, value, ...]], ...]` (or a map of fields in RESP3).
pub(crate) fn entries(operation: &'static str, v: Value) -> Result<Vec<(TaskId, Fields)>> {
    items(operation, v)?
        .into_iter()
        .map(|entry| {
            let mut parts = items(operation, entry)?.into_iter();
            let (Some(id), Some(fields)) = (parts.next(), parts.next()) else {
                return Err(QueueError::protocol(operation, "malformed stream entry"));
            };
            let fields = match fields {
                Value::Map(pairs) => pairs,
                other => {
                    let flat = items(operation, other)?;
                    let mut pairs = Vec::with_capacity(flat.len() / 2);
                    let mut it = flat.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((k, v));
                    }
                    pairs
                }
            };
            Ok((task_id(operation, &id)?, fields))
        })
        .collect()
}

fn field(fields: &mut [(Value, Value)], name: &[u8]) -> Option<Value> {
    fields.iter_mut().find_map(|(k, v)| {
        let hit = match k {
            Value::BulkString(b) => b.as_slice() == name,
            Value::SimpleString(s) => s.as_bytes() == name,
            _ => false,
        };
        hit.then(|| std::mem::take(v))
    })
}

/// An `XREADGROUP` reply for one stream: `[[key, entries]]`, a map
/// `{key: entries}` in RESP3, or nil when the wait ran out.
pub(crate) fn read_group(operation: &'static str, v: Value) -> Result<Vec<Delivery>> {
    let streams = match v {
        Value::Map(pairs) => pairs.into_iter().map(|(_, entries)| entries).collect(),
        other => items(operation, other)?
            .into_iter()
            .map(|stream| {
                items(operation, stream)?
                    .into_iter()
                    .nth(1)
                    .ok_or_else(|| QueueError::protocol(operation, "malformed stream reply"))
            })
            .collect::<Result<Vec<_>>>()?,
    };
    let mut out = Vec::new();
    for stream in streams {
        for (id, mut fields) in entries(operation, stream)? {
            let payload = match field(&mut fields, b"p") {
                Some(p) => bytes(operation, p)?,
                None => Bytes::new(),
            };
            out.push(Delivery {
                id,
                payload,
                deliveries: 1,
            });
        }
    }
    Ok(out)
}

/// An `XRANGE` of the dead-letter stream.
pub(crate) fn dead_letters(operation: &'static str, v: Value) -> Result<Vec<DeadLetter>> {
    entries(operation, v)?
        .into_iter()
        .map(|(_, mut fields)| {
            let (Some(id), Some(payload), Some(n)) = (
                field(&mut fields, b"id"),
                field(&mut fields, b"p"),
                field(&mut fields, b"n"),
            ) else {
                return Err(QueueError::protocol(operation, "malformed dead letter"));
            };
            Ok(DeadLetter {
                id: task_id(operation, &id)?,
                payload: bytes(operation, payload)?,
                deliveries: deliveries(operation, &n)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn flat_deliveries_decode() {
        let v = Value::Array(vec![
            s("1-0"),
            s("a"),
            Value::Int(2),
            s("2-0"),
            s(""),
            Value::Int(1),
        ]);
        let got = deliveries_flat("t", v).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].id.to_string(), got[0].deliveries),
            ("1-0".into(), 2)
        );
        assert_eq!(got[1].payload, Bytes::new());
    }

    #[test]
    fn truncated_flat_list_is_a_protocol_error() {
        let v = Value::Array(vec![s("1-0"), s("a")]);
        assert!(matches!(
            deliveries_flat("t", v),
            Err(QueueError::Protocol { .. })
        ));
    }

    #[test]
    fn read_group_decodes_resp2_resp3_and_nil() {
        let entry = Value::Array(vec![s("5-1"), Value::Array(vec![s("p"), s("hi")])]);
        let resp2 = Value::Array(vec![Value::Array(vec![
            s("k"),
            Value::Array(vec![entry.clone()]),
        ])]);
        let resp3 = Value::Map(vec![(s("k"), Value::Array(vec![entry]))]);
        for v in [resp2, resp3] {
            let got = read_group("t", v).unwrap();
            assert_eq!(got[0].payload, Bytes::from_static(b"hi"));
            assert_eq!(got[0].id.to_string(), "5-1");
        }
        assert!(read_group("t", Value::Nil).unwrap().is_empty());
    }

    #[test]
    fn garbage_never_panics() {
        for v in [
            Value::Int(3),
            Value::Array(vec![Value::Int(1)]),
            Value::Array(vec![Value::Array(vec![])]),
            Value::Array(vec![Value::Array(vec![s("k"), Value::Int(1)])]),
            Value::Array(vec![Value::Array(vec![
                s("k"),
                Value::Array(vec![Value::Array(vec![s("x-y")])]),
            ])]),
        ] {
            assert!(read_group("t", v.clone()).is_err());
            assert!(dead_letters("t", v).is_err());
        }
    }

    #[test]
    fn dead_letter_needs_all_fields() {
        let entry = |fields: Vec<Value>| {
            Value::Array(vec![Value::Array(vec![s("9-0"), Value::Array(fields)])])
        };
        let ok = entry(vec![s("id"), s("1-0"), s("p"), s("x"), s("n"), s("5")]);
        assert_eq!(dead_letters("t", ok).unwrap()[0].deliveries, 5);
        let missing = entry(vec![s("id"), s("1-0"), s("p"), s("x")]);
        assert!(dead_letters("t", missing).is_err());
    }
}
