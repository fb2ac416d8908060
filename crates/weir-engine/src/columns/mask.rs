//! Masks: the per-pipeline key, and what `hash`, `redact` and `null` do to
//! an Arrow array.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringArray, StringBuilder, new_null_array};
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::{DataFusionError, Result};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use weir_auth::{Mask, SecretBytes};

type HmacSha256 = Hmac<Sha256>;

/// What a `redact` mask shows.
pub const REDACTED: &str = "[redacted]";
/// Domain separation for [`MaskKey::derive`].
const DERIVE_LABEL: &[u8] = b"weir mask key v1\0";

/// The 32-byte key a pipeline's `hash` masks use.
///
/// # Security
///
/// `Debug` prints `MaskKey(***)`; the bytes are zeroized on drop and never
/// appear in a plan, an error or a log.
#[derive(Clone, PartialEq, Eq)]
pub struct MaskKey(SecretBytes);

impl MaskKey {
    /// The key of `pipeline`: HMAC-SHA256(`master`, label ‖ `pipeline`), so
    /// each pipeline hashes differently under one master key.
    #[must_use]
    pub fn derive(master: &[u8; 32], pipeline: &str) -> Self {
        let mut mac = keyed(master);
        mac.update(DERIVE_LABEL);
        mac.update(pipeline.as_bytes());
        Self(SecretBytes::new(mac.finalize().into_bytes().to_vec()))
    }

    /// Wraps a key obtained elsewhere.
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(SecretBytes::new(bytes.to_vec()))
    }

    fn mac(&self) -> HmacSha256 {
        keyed(self.0.expose())
    }
}

fn keyed(key: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length; this cannot fail.
    HmacSha256::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"))
}

impl Hash for MaskKey {
    // Keys hash alike: a plan's hash must not depend on secret bytes.
    fn hash<H: Hasher>(&self, _: &mut H) {}
}

impl fmt::Debug for MaskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MaskKey(***)")
    }
}

/// `array` with `mask` applied; `data_type` is the masked column's type.
pub(super) fn apply(
    mask: Mask,
    array: &ArrayRef,
    data_type: &DataType,
    key: Option<&MaskKey>,
) -> Result<ArrayRef> {
    match mask {
        Mask::Null => Ok(new_null_array(data_type, array.len())),
        Mask::Redact => {
            let nulls = array.logical_nulls();
            let out: StringArray = (0..array.len())
                .map(|i| (!nulls.as_ref().is_some_and(|n| n.is_null(i))).then_some(REDACTED))
                .collect();
            Ok(Arc::new(out))
        }
        Mask::Hash => {
            let key =
                key.ok_or_else(|| DataFusionError::Internal("hash mask without a key".into()))?;
            hash(array, key)
        }
    }
}

/// Hex HMAC-SHA256 of each value's text: strings and binaries by their
/// bytes, anything else by Arrow's display form. Nulls stay null.
fn hash(array: &ArrayRef, key: &MaskKey) -> datafusion::common::Result<ArrayRef> {
    let array = match array.data_type() {
        DataType::Dictionary(_, values) => arrow::compute::cast(array, values)?,
        _ => array.clone(),
    };
    let nulls = array.logical_nulls();
    let base = key.mac();
    let mut out = StringBuilder::with_capacity(array.len(), array.len() * 64);
    let mut emit = |i: usize, bytes: &[u8]| {
        if nulls.as_ref().is_some_and(|n| n.is_null(i)) {
            out.append_null();
        } else {
            let mut mac = base.clone();
            mac.update(bytes);
            out.append_value(hex(&mac.finalize().into_bytes()));
        }
    };
    match array.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let text = arrow::compute::cast(&array, &DataType::Utf8)?;
            let text = text.as_string::<i32>();
            for i in 0..text.len() {
                emit(i, text.value(i).as_bytes());
            }
        }
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => {
            let bytes = arrow::compute::cast(&array, &DataType::Binary)?;
            let bytes = bytes.as_binary::<i32>();
            for i in 0..bytes.len() {
                emit(i, bytes.value(i));
            }
        }
        _ => {
            let formatter = ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default())?;
            for i in 0..array.len() {
                emit(i, formatter.value(i).to_string().as_bytes());
            }
        }
    }
    Ok(Arc::new(out.finish()))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_derive_per_pipeline_and_never_print() {
        let master = [7u8; 32];
        let a = MaskKey::derive(&master, "pipeline-a");
        let mut mac = HmacSha256::new_from_slice(&master).unwrap();
        mac.update(b"weir mask key v1\0pipeline-a");
        let expected: [u8; 32] = mac.finalize().into_bytes().into();
        assert_eq!(a, MaskKey::from_bytes(expected));
        assert_ne!(a, MaskKey::derive(&master, "pipeline-b"));
        assert_ne!(a, MaskKey::derive(&[8u8; 32], "pipeline-a"));
        assert_eq!(format!("{a:?}"), "MaskKey(***)");
    }

    #[test]
    fn hashes_follow_the_value_text_and_keep_nulls() {
        let key = MaskKey::from_bytes([1; 32]);
        let ints: ArrayRef = Arc::new(arrow::array::Int64Array::from(vec![Some(42), None]));
        let texts: ArrayRef = Arc::new(StringArray::from(vec![Some("42"), None]));
        let a = apply(Mask::Hash, &ints, &DataType::Utf8, Some(&key)).unwrap();
        let b = apply(Mask::Hash, &texts, &DataType::Utf8, Some(&key)).unwrap();
        assert_eq!(a.as_string::<i32>().value(0), b.as_string::<i32>().value(0));
        assert_eq!(a.as_string::<i32>().value(0).len(), 64);
        assert!(a.is_null(1) && b.is_null(1));
        assert!(apply(Mask::Hash, &ints, &DataType::Utf8, None).is_err());
        let other = apply(
            Mask::Hash,
            &texts,
            &DataType::Utf8,
            Some(&MaskKey::from_bytes([2; 32])),
        )
        .unwrap();
        assert_ne!(
            other.as_string::<i32>().value(0),
            b.as_string::<i32>().value(0)
        );
        let dict: ArrayRef = Arc::new(
            vec![Some("42"), None]
                .into_iter()
                .collect::<arrow::array::DictionaryArray<arrow::datatypes::Int32Type>>(),
        );
        let d = apply(Mask::Hash, &dict, &DataType::Utf8, Some(&key)).unwrap();
        assert_eq!(d.as_string::<i32>().value(0), b.as_string::<i32>().value(0));
        assert!(d.is_null(1));
    }

    #[test]
    fn redact_and_null_keep_nulls_and_types() {
        let ints: ArrayRef = Arc::new(arrow::array::Int64Array::from(vec![Some(1), None]));
        let r = apply(Mask::Redact, &ints, &DataType::Utf8, None).unwrap();
        assert_eq!(r.as_string::<i32>().value(0), REDACTED);
        assert!(r.is_null(1));
        let n = apply(Mask::Null, &ints, &DataType::Int64, None).unwrap();
        assert_eq!((n.data_type(), n.null_count()), (&DataType::Int64, 2));
    }
}
