//! Prints the in-memory sizes of the packet types.
use moco_codec::*;
fn main() {
    macro_rules! p { ($($t:ty),*) => { $( println!("{:>28} {}", stringify!($t), std::mem::size_of::<$t>()); )* } }
    p!(
        Packet,
        Connect,
        LastWill,
        ConnectProperties,
        WillProperties,
        ConnAck,
        ConnAckProperties,
        Publish,
        PublishProperties,
        PubAck,
        Subscribe,
        SubAck,
        Disconnect,
        Auth,
        Result<Option<Packet>, DecodeError>,
        DecodeError,
        ByteString,
        Bytes
    );
}
