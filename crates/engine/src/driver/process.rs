//! One packet from a client through its state and the broker (and packets injected as if a
//! client had sent them).

use super::*;

/// Injects `packet` as if the connected client `client_id` had sent it (mochi's
/// `InjectPacket`); returns whether the connection is still open.
pub fn inject_packet(broker: &Arc<Broker>, client_id: &str, packet: Packet) -> Result<bool, Error> {
    let handle = broker.client(client_id).ok_or(Error::NoSuchClient)?;
    broker.info.packets_received.fetch_add(1, Ordering::Relaxed);
    if let Packet::Publish(_) = packet {
        broker
            .info
            .messages_received
            .fetch_add(1, Ordering::Relaxed);
    }
    Ok(process(broker, &handle, packet))
}

/// Feeds one packet to the client's state and acts on the outcome; false once the
/// connection is closing.
pub(crate) fn process(broker: &Arc<Broker>, handle: &Arc<ClientHandle>, packet: Packet) -> bool {
    process_at(broker, handle, packet, Instant::now())
}

/// [`process`] for a packet received at `now`.
pub(crate) fn process_at(
    broker: &Arc<Broker>,
    handle: &Arc<ClientHandle>,
    mut packet: Packet,
    now: Instant,
) -> bool {
    let ptype = packet.packet_type();
    trace!(client = %handle.info.id, packet = %ptype, "received");
    let hooks = broker.hooks();
    if hooks.provides(Event::OnPacketRead) {
        if let Err(code) = hooks.on_packet_read(&handle.info, &mut packet) {
            handle.close(PolicyRefusal::Hook(code));
            return false;
        }
    }
    // The writer needs a wake-up only when this packet gives it something to do that it had
    // not (`idle` is read under the same lock as the change): each change that makes work
    // for it notifies, so work that was already there has had its notification.
    let mut st = handle.state.lock();
    let mut idle = !st.wants_transmit();
    let event = st.handle_packet(now, packet);
    if let Some(event) = event {
        drop(st);
        match event {
            AppEvent::Publish(p) => {
                let (qos, pid) = (p.qos, p.packet_id.unwrap_or(0));
                let code = broker.publish_counted(now, &handle.info, p);
                st = handle.state.lock();
                idle = !st.wants_transmit();
                st.publish_done(qos, pid, code);
            }
            AppEvent::Subscribe(s) => {
                broker.subscribe(now, handle, s);
                st = handle.state.lock();
                idle = true;
            }
            AppEvent::Unsubscribe(u) => {
                broker.unsubscribe(handle, u);
                st = handle.state.lock();
                idle = true;
            }
            AppEvent::Auth(a) => {
                let reply = broker.hooks().on_auth_packet(&handle.info, &a);
                st = handle.state.lock();
                idle = true;
                match reply {
                    Ok(mut r) => {
                        if r.properties.authentication_method.is_none() {
                            r.properties.authentication_method =
                                a.properties.authentication_method.clone();
                        }
                        st.send(Packet::Auth(r));
                    }
                    Err(code) => st.close(PolicyRefusal::Hook(code)),
                }
            }
            AppEvent::Disconnect { .. } => {
                st = handle.state.lock();
                idle = true;
            }
        }
    }
    let open = st.is_connected();
    let wake = idle && st.wants_transmit();
    let notes = st.take_notes();
    drop(st);
    if wake {
        handle.notify.notify_one();
    }
    if !notes.is_empty() {
        report_notes(broker, &handle.info.id, notes);
    }
    hooks.on_packet_processed(&handle.info, ptype);
    open
}
