//! Feeds arbitrary bytes to the streaming decoder for every protocol version (and to one
//! that starts with no version, as a server does); every packet that decodes is re-encoded
//! and decoded again, and must come back equal.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use moco_codec::{decode_packet, Decoder, ProtocolVersion};

fn run(mut decoder: Decoder, data: &[u8]) {
    let mut buf = BytesMut::from(data);
    // Feed in two parts to exercise "need more" on a prefix.
    let split = data.first().map_or(0, |&b| b as usize % (data.len() + 1));
    let mut rest = buf.split_off(split);
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(packet)) => {
                let v = decoder.version().expect("a decoded packet implies a version");
                let mut out = BytesMut::new();
                if let Ok(n) = packet.encode(v, &mut out) {
                    assert_eq!(n, out.len());
                    assert_eq!(packet.encoded_len(v), Ok(n));
                    let again = decode_packet(out.freeze(), v).expect("re-encoded packet decodes");
                    assert_eq!(again, packet);
                }
            }
            Ok(None) => {
                if rest.is_empty() {
                    return;
                }
                buf.unsplit(std::mem::take(&mut rest));
            }
            Err(_) => return,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    run(Decoder::new(1 << 20), data);
    for v in [ProtocolVersion::V3, ProtocolVersion::V311, ProtocolVersion::V5] {
        run(Decoder::with_version(1 << 20, v), data);
    }
});
