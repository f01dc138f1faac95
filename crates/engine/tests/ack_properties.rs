//! `Compatibilities::no_inherited_properties_on_ack`: by default (as mochi's `buildAck`) a v5
//! acknowledgement carries the user properties of the packet it answers; the option turns
//! that off.

use moco_codec::{Packet, ProtocolVersion, PubRel, ReasonCode};
use moco_engine::{Capabilities, Compatibilities, Options};
use moco_test_support::{connect_packet, publish, start, Raw};

fn user_props() -> moco_codec::UserProperties {
    vec![("trace".into(), "42".into())]
}

/// Publishes QoS 1 and QoS 2 with user properties, sends PUBREL with them too, and returns
/// the user properties of the PUBACK, PUBREC and PUBCOMP.
async fn ack_props(options: Options) -> [moco_codec::UserProperties; 3] {
    let (server, addr) = start(options).await;
    let (mut c, _) = Raw::connect(addr, connect_packet("c", ProtocolVersion::V5, 0, true)).await;
    let mut p1 = publish("t/1", 1, Some(1), b"x");
    p1.properties.user_properties = user_props();
    c.send_publish(p1).await;
    let Some(Packet::PubAck(ack)) = c.recv().await else {
        panic!("no PUBACK")
    };
    let mut p2 = publish("t/2", 2, Some(2), b"x");
    p2.properties.user_properties = user_props();
    c.send_publish(p2).await;
    let Some(Packet::PubRec(rec)) = c.recv().await else {
        panic!("no PUBREC")
    };
    let rel_props = moco_codec::AckProperties {
        user_properties: user_props(),
        ..Default::default()
    };
    c.send(Packet::PubRel(PubRel {
        packet_id: 2,
        reason_code: ReasonCode::Success,
        properties: rel_props,
    }))
    .await;
    let Some(Packet::PubComp(comp)) = c.recv().await else {
        panic!("no PUBCOMP")
    };
    server.shutdown().await;
    [
        ack.properties.user_properties,
        rec.properties.user_properties,
        comp.properties.user_properties,
    ]
}

#[tokio::test]
async fn acks_inherit_user_properties_by_default() {
    assert_eq!(
        ack_props(Options::default()).await,
        [user_props(), user_props(), user_props()]
    );
}

#[tokio::test]
async fn no_inherited_properties_on_ack_keeps_acks_bare() {
    let options = Options {
        capabilities: Capabilities {
            compatibilities: Compatibilities {
                no_inherited_properties_on_ack: true,
                ..Default::default()
            },
            ..Default::default()
        },
        ..Default::default()
    };
    assert_eq!(
        ack_props(options).await,
        [Vec::new(), Vec::new(), Vec::new()]
    );
}
