//! SUBSCRIBE and UNSUBSCRIBE: ACL checks, the router, retained messages on subscribe.

use super::*;

impl Broker {
    /// Handles a SUBSCRIBE from `handle`: queues the SUBACK and the retained messages.
    pub fn subscribe(&self, now: Instant, handle: &ClientHandle, mut sub: Subscribe) {
        let caps = &self.options.capabilities;
        let info = &handle.info;
        self.hooks.on_subscribe(info, &mut sub);
        // No Local on a shared subscription is a protocol error (MQTT-3.8.3-4).
        if sub.filters.iter().any(|(f, o)| {
            o.no_local && f.starts_with(moco_topic::SHARE_PREFIX) && info.protocol.is_v5()
        }) {
            handle.close(ProtocolViolation::NoLocalOnSharedSubscription);
            return;
        }
        if sub.filters.iter().any(|(f, _)| f.starts_with("$SYS")) {
            self.refresh_sys_info(now);
        }
        let sub_id = sub.properties.subscription_identifier;
        let mut codes = Vec::with_capacity(sub.filters.len());
        let mut retained: Vec<Delivery> = Vec::new();
        let mut added: Vec<(ByteString, moco_topic::SubscriptionOptions, bool)> = Vec::new();
        for (filter, opts) in &sub.filters {
            let code = (|| {
                let Ok(f) = moco_topic::parse_filter(filter) else {
                    return ReasonCode::TopicFilterInvalid;
                };
                if f.is_shared() && !caps.shared_sub_available {
                    return ReasonCode::SharedSubscriptionsNotSupported;
                }
                if f.filter.contains(['+', '#']) && !caps.wildcard_sub_available {
                    return ReasonCode::WildcardSubscriptionsNotSupported;
                }
                if sub_id.is_some() && !caps.sub_id_available {
                    return ReasonCode::SubscriptionIdentifiersNotSupported;
                }
                if !self.hooks.on_acl_check(info, filter, Access::Read) {
                    return obscure(&self.options, ReasonCode::NotAuthorized);
                }
                // Whether each delivery on it must be checked: known before the router has
                // it, so that no message slips through unchecked.
                let check_reads = self.hooks.acl_may_deny_within(info, filter);
                if check_reads {
                    handle.acl_read.store(true, Ordering::Relaxed);
                }
                let granted = (opts.qos as u8).min(caps.maximum_qos);
                let topts = moco_topic::SubscriptionOptions {
                    qos: granted,
                    no_local: opts.no_local && !f.is_shared(),
                    retain_as_published: opts.retain_as_published,
                    retain_handling: match opts.retain_handling {
                        RetainHandling::SendAtSubscribe => {
                            moco_topic::RetainHandling::SendAtSubscribe
                        }
                        RetainHandling::SendAtSubscribeIfNew => {
                            moco_topic::RetainHandling::SendIfNew
                        }
                        _ => moco_topic::RetainHandling::DoNotSend,
                    },
                    identifier: sub_id.and_then(std::num::NonZeroU32::new),
                };
                let is_new = match self.router.subscribe(&info.id, filter, topts) {
                    Ok(n) => n,
                    Err(_) => return ReasonCode::TopicFilterInvalid,
                };
                self.routes_changed();
                // A copy: a slice would pin the connection's read buffer (see connect_with).
                added.push((ByteString::from(&**filter), topts, check_reads));
                let send_retained = !f.is_shared()
                    && caps.retain_available
                    && match topts.retain_handling {
                        moco_topic::RetainHandling::SendAtSubscribe => true,
                        moco_topic::RetainHandling::SendIfNew => is_new,
                        moco_topic::RetainHandling::DoNotSend => false,
                    };
                if send_retained {
                    let from = retained.len();
                    self.retained.for_each_match(f.filter, &mut |m| {
                        if !m.is_expired(now) {
                            retained.push(Delivery {
                                msg: m.clone(),
                                qos: m.qos.min(limits_qos(granted)),
                                retain: true,
                                sub_ids: sub_id.into_iter().collect(),
                            });
                        }
                    });
                    if check_reads {
                        // The same per-topic check as live messages, outside the lock.
                        let matched = retained.split_off(from);
                        retained.extend(
                            matched
                                .into_iter()
                                .filter(|d| self.may_read(handle, &d.msg)),
                        );
                    }
                }
                match granted {
                    0 => ReasonCode::GrantedQoS0,
                    1 => ReasonCode::GrantedQoS1,
                    _ => ReasonCode::GrantedQoS2,
                }
            })();
            codes.push(code);
        }
        if let Some(sink) = &self.sink {
            for (filter, options, _) in &added {
                sink.record(SessionEvent::Subscribed {
                    client_id: &info.id,
                    filter,
                    options: *options,
                });
            }
        }
        {
            let mut st = handle.state.lock();
            for (f, o, check_reads) in added {
                if check_reads {
                    st.session.acl_checked.insert(f.clone());
                } else {
                    st.session.acl_checked.remove(&f);
                }
                st.session.subscriptions.insert(f, o);
            }
            handle
                .acl_read
                .store(!st.session.acl_checked.is_empty(), Ordering::Relaxed);
            st.send(Packet::SubAck(SubAck {
                packet_id: sub.packet_id,
                reason_codes: codes.clone(),
                properties: Default::default(),
            }));
            let published: Vec<Publish> =
                if self.hooks.provides(crate::hooks::Event::OnRetainPublished) {
                    retained
                        .iter()
                        .map(|d| {
                            d.msg.to_publish(
                                &crate::message::DeliveryParams {
                                    qos: d.qos,
                                    retain: true,
                                    dup: false,
                                    packet_id: None,
                                    sub_ids: &d.sub_ids,
                                    alias: None,
                                },
                                now,
                            )
                        })
                        .collect()
                } else {
                    Vec::new()
                };
            // Retained messages go to the backlog, not the bounded queue: all of them are
            // sent, as fast as the client takes them (see the queue policy in `state`).
            st.deliver_retained(retained);
            let notes = st.take_notes();
            drop(st);
            for p in &published {
                self.hooks.on_retain_published(info, p);
            }
            report_notes(self, &info.id, notes);
        }
        handle.notify.notify_one();
        self.hooks.on_subscribed(info, &sub, &codes);
    }

    /// Handles an UNSUBSCRIBE from `handle`: queues the UNSUBACK.
    pub fn unsubscribe(&self, handle: &ClientHandle, mut unsub: Unsubscribe) {
        let info = &handle.info;
        self.hooks.on_unsubscribe(info, &mut unsub);
        let mut codes = Vec::with_capacity(unsub.filters.len());
        for f in &unsub.filters {
            let existed = self.router.unsubscribe(&info.id, f);
            self.routes_changed();
            handle.forget_subscription(f);
            self.record_unsubscribed(&info.id, f, existed);
            codes.push(if existed {
                ReasonCode::Success
            } else {
                ReasonCode::NoSubscriptionExisted
            });
        }
        handle.state.lock().send(Packet::UnsubAck(UnsubAck {
            packet_id: unsub.packet_id,
            reason_codes: codes,
            properties: Default::default(),
        }));
        handle.notify.notify_one();
        self.hooks.on_unsubscribed(info, &unsub);
    }

    pub(super) fn record_unsubscribed(&self, client_id: &str, filter: &str, existed: bool) {
        if let (Some(sink), true) = (&self.sink, existed) {
            sink.record(SessionEvent::Unsubscribed { client_id, filter });
        }
    }
}
