//! PINGREQ and PINGRESP (spec §3.12, §3.13): a fixed header and nothing else.

use crate::DecodeError;

/// Both ping packets have an empty body.
#[inline]
pub(crate) fn decode(body: &[u8]) -> Result<(), DecodeError> {
    if body.is_empty() {
        Ok(())
    } else {
        Err(DecodeError::Malformed("trailing bytes after packet"))
    }
}
