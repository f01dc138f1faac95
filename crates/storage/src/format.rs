//! The record format header: every stored value starts with [`MAGIC`] and a format version
//! byte, so a later moco can read old records or refuse them clearly, and a value that is not
//! a moco record is never mistaken for one.
//!
//! ```
//! use moco_storage::{decode_value, encode_value, FORMAT_VERSION, MAGIC};
//!
//! let value = encode_value(&("client-1", 42u32)).unwrap();
//! assert_eq!(&value[..2], &[MAGIC, FORMAT_VERSION]);
//! let back: (String, u32) = decode_value(&value).unwrap();
//! assert_eq!(back, ("client-1".to_string(), 42));
//! ```
//!
//! Bodies are [postcard](https://docs.rs/postcard): a stable, documented wire format (its
//! specification is frozen at 1.0), compact (varints, no field names), serde-driven, and
//! maintained; bincode 2 was the alternative, but its wire format is not specified as a
//! stable contract and its maintenance has stopped. Payloads that are only bytes can skip
//! serde and its copy with [`encode_raw`] / [`decode_raw`].

use bytes::{BufMut, Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::StoreError;

/// The first byte of every stored value (ASCII `m`).
pub const MAGIC: u8 = 0x6d;

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;

/// How many bytes the header takes.
pub const HEADER_LEN: usize = 2;

/// Encodes `value` with postcard behind the header.
pub fn encode_value<T: Serialize + ?Sized>(value: &T) -> Result<Bytes, StoreError> {
    let out = postcard::to_extend(value, vec![MAGIC, FORMAT_VERSION]).map_err(|source| {
        StoreError::Encode {
            what: std::any::type_name::<T>(),
            source,
        }
    })?;
    Ok(Bytes::from(out))
}

/// Decodes a value written by [`encode_value`]: checks the header, then the body.
///
/// A value of another format version, a value without the header, or a body that does not
/// decode as `T` gives [`StoreError::Format`].
pub fn decode_value<T: DeserializeOwned>(value: &[u8]) -> Result<T, StoreError> {
    let body = check_header(value)?;
    postcard::from_bytes(body).map_err(|e| StoreError::Format {
        what: format!("record body ({})", std::any::type_name::<T>()),
        found: format!("bytes that do not decode ({e})"),
        expected: "a postcard-encoded record".into(),
    })
}

/// The header followed by `payload` as is (no serde): for values that are only bytes.
pub fn encode_raw(payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER_LEN + payload.len());
    out.put_u8(MAGIC);
    out.put_u8(FORMAT_VERSION);
    out.put_slice(payload);
    out.freeze()
}

/// The payload of a value written by [`encode_raw`], without a copy (a slice of `value`).
pub fn decode_raw(value: &Bytes) -> Result<Bytes, StoreError> {
    check_header(value)?;
    Ok(value.slice(HEADER_LEN..))
}

/// Checks the header and returns the body.
fn check_header(value: &[u8]) -> Result<&[u8], StoreError> {
    match value {
        [MAGIC, FORMAT_VERSION, body @ ..] => Ok(body),
        [MAGIC, version, ..] => Err(StoreError::Format {
            what: "record format version".into(),
            found: format!("version {version}"),
            expected: format!(
                "version {FORMAT_VERSION} (the store was written by {} moco; \
                 use that version or a fresh data directory / Redis prefix)",
                if *version > FORMAT_VERSION {
                    "a newer"
                } else {
                    "an older"
                }
            ),
        }),
        [MAGIC] => Err(StoreError::Format {
            what: "record header".into(),
            found: "a value cut after its magic byte".into(),
            expected: format!("format version {FORMAT_VERSION}"),
        }),
        [first, ..] => Err(StoreError::Format {
            what: "record header".into(),
            found: format!("first byte {first:#04x}"),
            expected: format!("magic byte {MAGIC:#04x} (not a moco record)"),
        }),
        [] => Err(StoreError::Format {
            what: "record header".into(),
            found: "an empty value".into(),
            expected: format!("magic byte {MAGIC:#04x} and format version {FORMAT_VERSION}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Rec {
        id: String,
        n: u64,
        payload: Vec<u8>,
    }

    #[test]
    fn round_trip() {
        let r = Rec {
            id: "c".into(),
            n: 7,
            payload: vec![0, 1, 255],
        };
        let v = encode_value(&r).unwrap();
        assert_eq!(&v[..2], &[MAGIC, FORMAT_VERSION]);
        assert_eq!(decode_value::<Rec>(&v).unwrap(), r);
    }

    #[test]
    fn other_version_is_refused_clearly() {
        let mut v = encode_value(&42u32).unwrap().to_vec();
        v[1] = FORMAT_VERSION + 1;
        let err = decode_value::<u32>(&v).unwrap_err();
        assert!(matches!(err, StoreError::Format { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("format version"), "{msg}");
        assert!(
            msg.contains(&format!("version {}", FORMAT_VERSION + 1)),
            "{msg}"
        );
        assert!(msg.contains("newer"), "{msg}");
        let raw = Bytes::from(v);
        assert!(matches!(decode_raw(&raw), Err(StoreError::Format { .. })));
    }

    #[test]
    fn foreign_and_empty_values_are_refused() {
        for v in [&b""[..], b"{\"json\":1}", &[MAGIC]] {
            let err = decode_value::<u32>(v).unwrap_err();
            assert!(matches!(err, StoreError::Format { .. }), "{err:?}");
        }
        // A good header over a body of the wrong shape.
        let err = decode_value::<Rec>(&encode_raw(&[0xff])).unwrap_err();
        assert!(err.to_string().contains("Rec"), "{err}");
    }

    #[test]
    fn raw_is_zero_copy() {
        let v = encode_raw(b"payload");
        let p = decode_raw(&v).unwrap();
        assert_eq!(&p[..], b"payload");
        assert_eq!(p.as_ptr(), v[HEADER_LEN..].as_ptr());
    }
}
