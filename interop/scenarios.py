"""The interop scenarios. Each is a function `s_<name>(t)` registered with the protocol versions it
applies to (3 = MQTT v3.1.1, 5 = MQTT v5); `t` is the run's context (see suite.Ctx): `t.version`,
`t.client()`, `t.raw()`, `t.topic()`, `t.retain()`, `t.session()`, `t.note()`, `t.deviation()`.

Assertions follow the specifications (OASIS MQTT 3.1.1 and 5.0). Where the spec leaves a choice
to the server (how many copies for overlapping subscriptions, whether to use topic aliases...),
the scenario accepts every allowed choice and checks only the MUSTs.
"""

from __future__ import annotations

import select
import struct
import time

from paho.mqtt.packettypes import PacketTypes as PT
from paho.mqtt.properties import VariableByteIntegers
from paho.mqtt.subscribeoptions import SubscribeOptions

from harness import (DISCONNECT, PINGRESP, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBACK,
                     Client, Closed, Fail, Transport, check, props)

REGISTRY: list = []
BOTH = (3, 5)
V5 = (5,)


def scenario(*versions: int):
    def register(fn):
        REGISTRY.append((fn, versions or BOTH))
        return fn
    return register


def persist(c: Client, *, resume: bool, expiry: int = 60, **kw):
    """Connects with a session that outlives the connection: v3.1.1 clean session 0; v5 session
    expiry `expiry` s, clean start 1 for a fresh session (resume=False) or 0 to resume one."""
    c.ctx.session(c.cid)
    if c.version == 5:
        return c.connect(clean=not resume, props_=props(PT.CONNECT, SessionExpiryInterval=expiry),
                         **kw)
    return c.connect(clean=False, **kw)


def connected(t, **kw) -> Client:
    c = t.client(**kw)
    c.connect()
    return c


def payloads(msgs) -> list[bytes]:
    return [m.payload for m in msgs]


# ---------------------------------------------------------------------------------------------
# Basic publish / subscribe


def _pubsub(t, qos: int) -> None:
    topic = t.topic()
    sub = connected(t)
    codes = sub.subscribe(topic, qos)
    check(codes == [qos], f"SUBACK {codes}, expected [{qos}]")
    pub = connected(t)
    sent = [f"qos{qos}-{i}".encode() for i in range(5)]
    for p in sent:
        rc = pub.publish(topic, p, qos)
        check(rc < 0x80, f"publish acknowledged with failure {rc:#04x}")
    got = sub.expect_n(len(sent), lambda m: m.topic == topic)
    # Messages on one topic at one QoS arrive in the order published (ordered topic, 4.6).
    check(payloads(got) == sent, f"received {payloads(got)}, expected {sent} in order")
    for m in got:
        check(m.qos == qos, f"delivered at QoS {m.qos}, expected {qos}")
        check(not m.retain, "live message delivered with RETAIN 1")
        check(not m.dup, "first delivery has DUP 1")
    if qos == 2:
        sub.expect_none(lambda m: m.topic == topic, 0.5, "duplicate of a QoS 2 message")


@scenario()
def s_pubsub_qos0(t):
    _pubsub(t, 0)


@scenario()
def s_pubsub_qos1(t):
    _pubsub(t, 1)


@scenario()
def s_pubsub_qos2(t):
    _pubsub(t, 2)


@scenario()
def s_qos2_duplicate_publish(t):
    """A QoS 2 PUBLISH resent with DUP 1 (same packet id) before PUBREL is delivered once
    (exactly once, 4.3.3): the server must not forward it again."""
    topic = t.topic()
    sub = connected(t)
    sub.subscribe(topic, 2)
    r = t.raw()
    check(r.connect(t.new_cid()).rc == 0, "raw connect refused")
    r.publish(topic, b"once", 2, pid=42)
    p = r.recv()
    check(p is not None and p.type == PUBREC and p.pid == 42, f"expected PUBREC 42, got {p!r}")
    r.publish(topic, b"once", 2, pid=42, dup=True)
    p = r.recv()
    check(p is not None and p.type == PUBREC and p.pid == 42,
          f"expected PUBREC 42 for the resent PUBLISH, got {p!r}")
    r.ack(PUBREL, 42)
    p = r.recv()
    check(p is not None and p.type == PUBCOMP and p.pid == 42, f"expected PUBCOMP 42, got {p!r}")
    m = sub.expect_topic(topic)
    check(m.payload == b"once" and m.qos == 2, f"delivered {m!r}")
    sub.expect_none(lambda m: m.topic == topic, 0.8, "second delivery of one QoS 2 message")
    r.disconnect()


@scenario()
def s_qos_downgrade(t):
    """Delivery QoS is the minimum of the publish QoS and the subscription's granted QoS."""
    topic = t.topic()
    sub = connected(t)
    check(sub.subscribe(topic, 1) == [1], "SUBACK did not grant QoS 1")
    pub = connected(t)
    pub.publish(topic, b"down", 2)
    m = sub.expect_topic(topic)
    check(m.qos == 1, f"QoS 2 publish to a QoS 1 subscription delivered at QoS {m.qos}")
    pub.publish(topic, b"stay", 0)
    m = sub.expect_topic(topic)
    check(m.qos == 0, f"QoS 0 publish delivered at QoS {m.qos} (must not be upgraded)")


@scenario()
def s_wildcards(t):
    p = t.topic
    sub = connected(t)
    sub.subscribe([(p("+/x"), 1), (p("s/#"), 1)])
    pub = connected(t)
    should = [p("a/x"), p("s"), p("s/t/u"), p("b/x")]
    should_not = [p("a/y"), p("a/b/x"), p("x"), p("sx/t")]
    for topic in should_not + should:
        pub.publish(topic, topic.encode(), 1)
    got = sub.expect_n(len(should), timeout=4, what="wildcard matches")
    sub.expect_none(duration=0.5, what="message on a non-matching topic")
    check(sorted(m.topic for m in got) == sorted(should),
          f"received {sorted(m.topic for m in got)}, expected {sorted(should)}")


# ---------------------------------------------------------------------------------------------
# Retained messages


@scenario()
def s_retained(t):
    topic = t.retain(t.topic())
    pub = connected(t)
    pub.publish(topic, b"r1", 1, retain=True)
    s1 = connected(t)
    s1.subscribe(topic, 1)
    m = s1.expect_topic(topic)
    check(m.payload == b"r1" and m.retain, f"on subscribe got {m!r}, expected retained r1")

    pub.publish(topic, b"r2", 1, retain=True)
    m = s1.expect_topic(topic)
    # 3.1.1 [MQTT-3.3.1-9], v5 3.3.1.3 (Retain As Published 0): established subscription -> 0.
    check(m.payload == b"r2" and not m.retain,
          f"live retained publish arrived as {m!r}, expected r2 with RETAIN 0")

    s2 = connected(t)
    s2.subscribe(topic, 1)
    m = s2.expect_topic(topic)
    check(m.payload == b"r2" and m.retain, f"new subscriber got {m!r}, expected retained r2")
    s2.expect_none(lambda m: m.topic == topic, 0.3, "second retained message")

    pub.publish(topic, b"", 1, retain=True)  # clears the retained message
    m = s1.expect_topic(topic)  # ... and is delivered as normal to current subscribers
    check(m.payload == b"", f"clearing publish arrived as {m!r}")
    s3 = connected(t)
    s3.subscribe(topic, 1)
    s3.expect_none(lambda m: m.topic == topic, 1.0, "retained message after it was cleared")


# ---------------------------------------------------------------------------------------------
# Will messages


@scenario()
def s_will(t):
    wt = t.topic("will")
    w = connected(t)
    w.subscribe(wt + "/#", 1)
    wprops = props(PT.WILLMESSAGE, UserProperty=[("why", "crash")], ContentType="text/plain") \
        if t.version == 5 else None
    a = t.client()
    a.connect(will=(wt + "/a", b"a-gone", 1, False, wprops) if wprops else
              (wt + "/a", b"a-gone", 1, False))
    b = t.client()
    b.connect(will=(wt + "/b", b"b-gone", 1, False))
    b.disconnect()  # a normal DISCONNECT discards the will
    a.kill()  # losing the connection publishes it
    m = w.expect_topic(wt + "/a")
    check(m.payload == b"a-gone" and m.qos == 1, f"will arrived as {m!r}")
    if t.version == 5:
        check(m.p("UserProperty") == [("why", "crash")],
              f"will user properties {m.p('UserProperty')}, expected [('why', 'crash')]")
        check(m.p("ContentType") == "text/plain", f"will content type {m.p('ContentType')!r}")
    w.expect_none(lambda m: m.topic == wt + "/b", 1.0, "will of a cleanly disconnected client")


@scenario()
def s_will_retained(t):
    wt = t.retain(t.topic("will"))
    a = t.client()
    a.connect(will=(wt, b"last words", 1, True))
    a.kill()
    time.sleep(0.5)
    s = connected(t)
    s.subscribe(wt, 1)
    m = s.expect_topic(wt)
    check(m.payload == b"last words" and m.retain, f"retained will arrived as {m!r}")


@scenario(5)
def s_disconnect_with_will(t):
    """v5 DISCONNECT with reason 0x04 asks the server to publish the will anyway."""
    wt = t.topic("will")
    w = connected(t)
    w.subscribe(wt + "/#", 1)
    a = t.client()
    a.connect(will=(wt + "/a", b"a", 1, False))
    b = t.client()
    b.connect(will=(wt + "/b", b"b", 1, False))
    a.disconnect(rc=0x04)
    b.disconnect(rc=0x00)
    w.expect_topic(wt + "/a")
    w.expect_none(lambda m: m.topic == wt + "/b", 1.0, "will after DISCONNECT 0x00")


@scenario(5)
def s_will_delay(t):
    wt = t.topic("will")
    w = connected(t)
    w.subscribe(wt + "/#", 1)

    def with_will(name: str, delay: int, expiry: int) -> Client:
        c = t.client()
        t.session(c.cid)
        c.connect(will=(f"{wt}/{name}", name.encode(), 1, False,
                        props(PT.WILLMESSAGE, WillDelayInterval=delay)),
                  props_=props(PT.CONNECT, SessionExpiryInterval=expiry))
        return c

    a = with_will("delayed", 2, 10)  # published ~2 s after the connection drops
    b = with_will("resumed", 2, 10)  # its session is resumed before the delay: never published
    c = with_will("expired", 30, 1)  # session ends (1 s) before the delay (30 s): published then
    t0 = time.monotonic()
    for x in (a, b, c):
        x.kill()
    time.sleep(0.3)
    b2 = t.client(b.cid)
    ack = b2.connect(clean=False, props_=props(PT.CONNECT, SessionExpiryInterval=10))
    check(ack.session_present, "resumed session not present")

    m = w.expect_topic(f"{wt}/expired", timeout=4)
    dt = m.at - t0
    check(dt >= 0.7, f"will published {dt:.1f}s after the drop, before the 1 s session expiry")
    m = w.expect_topic(f"{wt}/delayed", timeout=4)
    dt = m.at - t0
    check(1.7 <= dt <= 4.0, f"will with delay 2 s published after {dt:.1f}s")
    left = t0 + 3.3 - time.monotonic()
    w.expect_none(lambda m: m.topic == f"{wt}/resumed", max(left, 0.2),
                  "will of a session resumed within the will delay")


# ---------------------------------------------------------------------------------------------
# Client identifiers and sessions


@scenario()
def s_zero_length_client_id(t):
    topic = t.topic()
    c = t.client("")
    ack = c.connect()
    if t.version == 5:
        aid = ack.p("AssignedClientIdentifier")
        check(aid, "v5 CONNACK for an empty client id has no Assigned Client Identifier")
    c.subscribe(topic, 1)
    c.publish(topic, b"me", 1)
    check(c.expect_topic(topic).payload == b"me", "round trip failed")
    if t.version == 3:
        # [MQTT-3.1.3-8]: empty client id with CleanSession 0 -> CONNACK 0x02, then close.
        r = t.raw()
        ack = r.connect("", clean=False)
        check(ack.rc == 0x02, f"empty client id with clean session 0: CONNACK {ack.rc:#04x}, "
                              "expected 0x02 (identifier rejected)")
        _, closed = r.recv_until_closed(3)
        check(closed, "connection not closed after CONNACK 0x02")


@scenario(5)
def s_assigned_client_id(t):
    a = t.client("")
    ack = a.connect(props_=props(PT.CONNECT, SessionExpiryInterval=30))
    aid = ack.p("AssignedClientIdentifier")
    check(aid, "no Assigned Client Identifier in CONNACK")
    t.session(aid)
    b = t.client("")
    aid2 = b.connect().p("AssignedClientIdentifier")
    check(aid2 and aid2 != aid, f"two clients got the same assigned id {aid!r}")
    topic = t.topic()
    a.subscribe(topic, 1)
    a.disconnect()
    c = t.client(aid)
    ack = c.connect(clean=False, props_=props(PT.CONNECT, SessionExpiryInterval=30))
    check(ack.session_present, "session of the assigned client id not present on reconnect")
    check(ack.p("AssignedClientIdentifier") is None,
          "Assigned Client Identifier sent for a non-empty client id")
    b.publish(topic, b"to-assigned", 1)
    check(c.expect_topic(topic).payload == b"to-assigned", "message not delivered")


@scenario()
def s_session_present(t):
    topic = t.topic()
    c = t.client()
    ack = persist(c, resume=False)
    check(not ack.session_present, "session present for a brand-new client id")
    c.subscribe(topic, 1)
    c.disconnect()
    ack = persist(c, resume=True)
    check(ack.session_present, "session not present on reconnect")
    pub = connected(t)
    pub.publish(topic, b"kept", 1)
    check(c.expect_topic(topic).payload == b"kept", "subscription did not survive reconnect")
    c.disconnect()
    ack = c.connect(clean=True)  # v3 clean session 1 / v5 clean start 1, expiry 0
    check(not ack.session_present, "session present with a clean session / clean start")
    c.disconnect()
    ack = persist(c, resume=True)
    check(not ack.session_present, "session present after it was cleaned")
    pub.publish(topic, b"gone", 1)
    c.expect_none(lambda m: m.topic == topic, 1.0, "message for a discarded subscription")


@scenario()
def s_session_takeover(t):
    # The old connection is a raw one so the DISCONNECT reason code is seen as sent (paho 2.1
    # drops a DISCONNECT reason code that comes without properties).
    a = t.raw()
    cid = t.new_cid()
    check(a.connect(cid).rc == 0, "first connection refused")
    b = t.client(cid)
    b.connect()
    pkts, closed = a.recv_until_closed(3)
    check(closed, "old connection still open after the client id connected again")
    if t.version == 5:
        # 3.1.4: the server sends DISCONNECT 0x8E (session taken over) to the existing client and
        # MUST close its connection [MQTT-3.1.4-3].
        discs = [p for p in pkts if p.type == DISCONNECT]
        if not (discs and discs[0].rc == 0x8E):
            # Mosquitto 2.0.11 closes the old connection without any DISCONNECT packet.
            t.deviation("mosquitto", "old connection closed without DISCONNECT 0x8E "
                                     f"(got {discs or 'no DISCONNECT'})")
    topic = t.topic()
    b.subscribe(topic, 1)
    b.publish(topic, b"new", 1)
    check(b.expect_topic(topic).payload == b"new", "new connection not usable")


@scenario(5)
def s_session_expiry(t):
    ta, tb, tc = t.topic("a"), t.topic("b"), t.topic("c")

    def make(topic: str, expiry: int) -> Client:
        c = t.client()
        persist(c, resume=False, expiry=expiry)
        c.subscribe(topic, 1)
        return c

    a, b, c = make(ta, 2), make(tb, 10), make(tc, 10)
    a.disconnect()
    b.disconnect()
    # A DISCONNECT may shorten the expiry to 0: the session ends at once.
    c.disconnect(props_=props(PT.DISCONNECT, SessionExpiryInterval=0))
    t0 = time.monotonic()
    pub = connected(t)
    for topic in (ta, tb, tc):
        pub.publish(topic, b"while away", 1)
    ack = persist(c, resume=True, expiry=10)
    check(not ack.session_present, "session present after DISCONNECT set its expiry to 0")
    c.expect_none(lambda m: m.topic == tc, 0.5, "message for an ended session")
    time.sleep(max(0.0, t0 + 1.0 - time.monotonic()))
    ack = persist(b, resume=True, expiry=10)
    check(ack.session_present, "session with expiry 10 s not present after 1 s")
    b.expect_topic(tb)
    time.sleep(max(0.0, t0 + 3.5 - time.monotonic()))
    ack = persist(a, resume=True, expiry=10)
    check(not ack.session_present, "session with expiry 2 s still present after 3.5 s")
    a.expect_none(lambda m: m.topic == ta, 0.7, "message for an expired session")


@scenario()
def s_offline_queueing(t):
    topic = t.topic()
    s = t.client()
    persist(s, resume=False)
    s.subscribe(topic, 1)
    s.disconnect()
    pub = connected(t)
    sent = [b"q0", b"q1", b"q2"]
    pub.publish(topic, sent[0], 1)
    pub.publish(topic, sent[1], 1)
    pub.publish(topic, sent[2], 2)
    ack = persist(s, resume=True)
    check(ack.session_present, "session not present")
    got = s.expect_n(3, lambda m: m.topic == topic, what="queued messages")
    check(payloads(got) == sent, f"queued messages {payloads(got)}, expected {sent}")
    check(all(m.qos == 1 for m in got), f"queued messages at QoS {[m.qos for m in got]}")


@scenario()
def s_redelivery_on_reconnect(t):
    """Unacknowledged PUBLISH (QoS 1 and 2) and PUBREL are resent on reconnect with their
    original packet identifiers, PUBLISH with DUP 1 [MQTT-4.4.0-1], [MQTT-3.3.1-1]."""
    t1, t2 = t.topic("q1"), t.topic("q2")
    cid = t.session(t.new_cid())
    cprops = props(PT.CONNECT, SessionExpiryInterval=60) if t.version == 5 else None
    s = t.raw()
    ack = s.connect(cid, clean=t.version == 5, props_=cprops)
    check(ack.rc == 0, f"CONNACK {ack.rc:#04x}")
    s.subscribe(1, [(t1, 1), (t2, 2)])
    p = s.recv()
    check(p is not None and p.type == SUBACK and p.codes == [1, 2], f"SUBACK {p!r}")
    pub = connected(t)
    pub.publish(t1, b"one", 1)
    pub.publish(t2, b"two", 2)
    pub.publish(t2, b"three", 2)
    first = {}
    while len(first) < 3:
        p = s.recv()
        check(p is not None, f"only {sorted(first)} delivered")
        if p.type == PUBLISH:
            first[p.payload] = p
    check(not any(p.dup for p in first.values()), "first delivery has DUP 1")
    s.ack(PUBREC, first[b"two"].pid)
    p = s.recv()
    check(p is not None and p.type == PUBREL and p.pid == first[b"two"].pid,
          f"expected PUBREL for 'two', got {p!r}")
    s.close()  # without acknowledging 'one', completing 'two', or receiving 'three'

    s2 = t.raw()
    ack = s2.connect(cid, clean=False, props_=cprops)
    check(ack.session_present, "session not present on reconnect")
    again = []
    deadline = time.monotonic() + 3
    while len(again) < 3 and time.monotonic() < deadline:
        p = s2.recv(max(0.0, deadline - time.monotonic()))
        if p is None:
            break
        again.append(p)
    pubs = {p.payload: p for p in again if p.type == PUBLISH}
    rels = [p for p in again if p.type == PUBREL]
    check(b"two" not in pubs, "QoS 2 message resent as PUBLISH after PUBREC (exactly once broken)")
    for name in (b"one", b"three"):
        check(name in pubs, f"unacknowledged {name!r} not resent; got {again}")
        q = pubs[name]
        check(q.pid == first[name].pid, f"{name!r} resent with packet id {q.pid}, "
                                         f"originally {first[name].pid}")
        check(q.dup, f"{name!r} resent with DUP 0")
    check(len(rels) == 1 and rels[0].pid == first[b"two"].pid, f"PUBREL not resent: {again}")
    s2.ack(PUBACK, pubs[b"one"].pid)
    s2.ack(PUBCOMP, first[b"two"].pid)
    s2.ack(PUBREC, pubs[b"three"].pid)
    p = s2.recv()
    check(p is not None and p.type == PUBREL and p.pid == pubs[b"three"].pid,
          f"expected PUBREL for 'three', got {p!r}")
    s2.ack(PUBCOMP, p.pid)
    p = s2.recv(0.7)
    check(p is None, f"unexpected {p!r} after all flows completed")
    s2.disconnect()


@scenario()
def s_keepalive_expiry(t):
    """The server closes a connection silent for 1.5 x keep-alive [MQTT-3.1.2-24] and then
    publishes its will; a connection that pings stays up."""
    wt = t.topic("will")
    w = connected(t)
    w.subscribe(wt, 1)
    silent = t.raw()
    ack = silent.connect(t.new_cid(), keepalive=2, will=(wt, b"timed out", 1, False))
    check(ack.rc == 0, f"CONNACK {ack.rc:#04x}")
    ka = ack.p("ServerKeepAlive", 2) if t.version == 5 else 2
    pinger = t.raw()
    check(pinger.connect(t.new_cid(), keepalive=2).rc == 0, "pinger refused")
    t0 = time.monotonic()
    closed_at = None
    reason = None
    next_ping = t0 + 1.0
    while time.monotonic() < t0 + 1.5 * ka + 7.5 and closed_at is None:
        try:
            p = silent.recv(0.1)
            if p is not None and p.type == DISCONNECT:
                reason = p.rc
        except Closed:
            closed_at = time.monotonic()
        if time.monotonic() >= next_ping:
            pinger.ping()
            p = pinger.recv(1.0)
            check(p is not None and p.type == PINGRESP, f"pinger got {p!r} instead of PINGRESP")
            next_ping += 1.0
    check(closed_at is not None, f"silent connection still open {1.5 * ka + 7.5:.1f}s after "
                                 f"connecting with keep-alive {ka}s")
    dt = closed_at - t0
    check(dt >= ka - 0.25, f"silent connection closed after {dt:.1f}s, before keep-alive {ka}s")
    if dt > 1.5 * ka + 1.0:  # 1 s of slack for timer granularity
        # Mosquitto 2.0.11 closes a connection with keep-alive 2 s after 5.5-8.5 s, not 3 s.
        t.deviation("mosquitto", f"silent connection closed after {dt:.1f}s, "
                                 f"not within 1.5 x keep-alive = {1.5 * ka:.0f}s")
    if t.version == 5 and reason is not None:
        check(reason == 0x8D, f"DISCONNECT before closing has reason {reason:#04x}, expected 0x8D")
    m = w.expect_topic(wt, timeout=2)
    check(m.payload == b"timed out", f"will {m!r}")
    pinger.ping()
    p = pinger.recv(1.0)
    check(p is not None and p.type == PINGRESP, "pinging connection was dropped")
    pinger.disconnect()


@scenario(5)
def s_server_keepalive(t):
    """The suite's broker configuration caps keep-alive at 60 s: a v5 client asking for 120 gets
    Server Keep Alive 60 in CONNACK."""
    c = t.client()
    ack = c.connect(keepalive=120)
    ska = ack.p("ServerKeepAlive")
    check(ska == 60, f"keep-alive 120 requested: Server Keep Alive {ska}, expected 60")
    d = t.client()
    ack = d.connect(keepalive=30)
    ska = ack.p("ServerKeepAlive")
    check(ska is None or ska <= 60, f"keep-alive 30 requested: Server Keep Alive {ska}")


# ---------------------------------------------------------------------------------------------
# Subscriptions


@scenario()
def s_overlapping_subscriptions(t):
    """A message matching several of a client's subscriptions is delivered at the maximum QoS of
    them [MQTT-3.3.5-1] / [MQTT-3.3.4-2]; further copies (one per subscription) are allowed."""
    topic = t.topic("a/b")
    s = connected(t)
    codes = s.subscribe([(t.topic("a/#"), 2), (t.topic("a/+"), 1)])
    check(codes == [2, 1], f"SUBACK {codes}")
    pub = connected(t)
    pub.publish(topic, b"ov", 2)
    got = [s.expect_topic(topic)] + s.collect(1.0, lambda m: m.topic == topic)
    check(1 <= len(got) <= 2, f"{len(got)} copies for two matching subscriptions")
    if max(m.qos for m in got) != 2:
        # Mosquitto 2.0.11 sends v3.1.1 clients a single copy at the QoS of one subscription
        # (here 1), not the maximum (2) that [MQTT-3.3.5-1] requires; for v5 it sends 2 copies.
        t.deviation("mosquitto", f"{len(got)} cop{'y' if len(got) == 1 else 'ies'} at QoS "
                                 f"{[m.qos for m in got]}, none at the maximum QoS 2")
        return
    t.note(f"{len(got)} cop{'y' if len(got) == 1 else 'ies'}")


@scenario()
def s_subscribe_failure(t):
    """The suite's broker configuration refuses subscriptions to test/nosubscribe. v3.1.1 says
    0x80; v5 allows any failure code (0x80 unspecified, 0x87 not authorized...), so >= 0x80."""
    ok = t.topic()
    c = connected(t)
    codes = c.subscribe([(ok, 1), ("test/nosubscribe", 1)])
    check(len(codes) == 2 and codes[0] == 1, f"SUBACK {codes}")
    if t.version == 3:
        check(codes[1] == 0x80, f"refused subscription got {codes[1]:#04x}, expected 0x80")
    else:
        check(codes[1] >= 0x80, f"refused subscription got {codes[1]:#04x}, expected >= 0x80")
    c.publish(ok, b"still here", 1)
    check(c.expect_topic(ok).payload == b"still here", "connection unusable after refusal")


@scenario()
def s_dollar_topics(t):
    """Filters starting with a wildcard never match topics starting with $ [MQTT-4.7.2-1]."""
    w = connected(t)
    w.subscribe([("#", 0), ("+/#", 0), ("+", 0)])
    ctl = connected(t)
    dollar = f"$interop/{t.run_id}/{t.index}"
    ctl.subscribe([("$SYS/#", 0), (dollar + "/#", 0)])
    pub = connected(t)
    pub.publish(dollar + "/x", b"dollar", 1)
    pub.publish(t.topic(), b"plain", 1)
    w.expect(lambda m: m.topic == t.topic(), what="the plain control message")
    seen = ctl.collect(2.0)
    check(seen, "no $ message reached an explicit $ subscription (neither $SYS nor a client "
                "publish to $interop/...), so nothing could be checked")
    bad = [m for m in w.collect(0.2) if m.topic.startswith("$")]
    check(not bad, f"wildcard subscription received $ topics: {sorted({m.topic for m in bad})}")
    t.note(f"{len(seen)} $ messages checked")


@scenario()
def s_unsubscribe(t):
    a, b = t.topic("a"), t.topic("b")
    c = connected(t)
    c.subscribe([(a, 1), (b, 1)])
    pub = connected(t)
    pub.publish(a, b"1", 1)
    pub.publish(b, b"1", 1)
    c.expect_topic(a)
    c.expect_topic(b)
    codes = c.unsubscribe(a)
    if t.version == 5:
        check(codes == [0], f"UNSUBACK {codes}, expected [0]")
        codes = c.unsubscribe(t.topic("never"))
        check(codes in ([0x00], [0x11]), f"UNSUBACK for an unknown filter {codes}")
    pub.publish(a, b"2", 1)
    pub.publish(b, b"2", 1)
    c.expect_topic(b)
    c.expect_none(lambda m: m.topic == a, 0.7, "message after unsubscribe")


@scenario(5)
def s_no_local(t):
    topic = t.topic()
    a = connected(t)
    a.subscribe(topic, SubscribeOptions(qos=1, noLocal=True))
    b = connected(t)
    b.subscribe(topic, SubscribeOptions(qos=1, noLocal=False))
    a.publish(topic, b"from-a", 1)
    b.publish(topic, b"from-b", 1)
    check(a.expect_topic(topic).payload == b"from-b", "no-local subscriber missed other's message")
    got = sorted(payloads(b.expect_n(2, lambda m: m.topic == topic)))
    check(got == [b"from-a", b"from-b"], f"subscriber without no-local got {got}")
    a.expect_none(lambda m: m.topic == topic, 0.7, "own message despite no-local")


@scenario(5)
def s_retain_as_published(t):
    topic = t.retain(t.topic())
    keep = connected(t)
    keep.subscribe(topic, SubscribeOptions(qos=1, retainAsPublished=True))
    clear = connected(t)
    clear.subscribe(topic, SubscribeOptions(qos=1, retainAsPublished=False))
    pub = connected(t)
    pub.publish(topic, b"live", 1, retain=True)
    m = keep.expect_topic(topic)
    check(m.retain, "retain-as-published subscription got RETAIN 0")
    m = clear.expect_topic(topic)
    check(not m.retain, "subscription without retain-as-published got RETAIN 1")
    late = connected(t)
    late.subscribe(topic, SubscribeOptions(qos=1, retainAsPublished=False))
    check(late.expect_topic(topic).retain, "retained message sent on subscribe has RETAIN 0")


@scenario(5)
def s_retain_handling(t):
    topic = t.retain(t.topic())
    pub = connected(t)
    pub.publish(topic, b"kept", 1, retain=True)
    subs = {}
    for rh in (0, 1, 2):
        c = connected(t)
        c.subscribe(topic, SubscribeOptions(qos=1, retainHandling=rh))
        subs[rh] = c
    subs[0].expect_topic(topic)
    subs[1].expect_topic(topic)
    for rh in (0, 1):  # subscribe again to the same filter
        subs[rh].subscribe(topic, SubscribeOptions(qos=1, retainHandling=rh))
    subs[0].expect_topic(topic)  # 0: sent on every subscribe
    subs[1].expect_none(lambda m: m.topic == topic, 0.8,
                        "retained message on re-subscribe with retain handling 1")
    subs[2].expect_none(lambda m: m.topic == topic, 0.1,
                        "retained message with retain handling 2")


@scenario(5)
def s_subscription_identifiers(t):
    s = t.client()
    ack = s.connect()
    p = t.topic
    if not ack.p("SubscriptionIdentifierAvailable", 1):
        codes = s.subscribe(p("x"), 1, props(PT.SUBSCRIBE, SubscriptionIdentifier=5))
        check(codes == [0xA1], f"identifiers unavailable, yet SUBACK {codes} (expected 0xA1)")
        t.note("broker does not support subscription identifiers")
        return
    s.subscribe(p("a/#"), 1, props(PT.SUBSCRIBE, SubscriptionIdentifier=5))
    s.subscribe(p("a/+"), 1, props(PT.SUBSCRIBE, SubscriptionIdentifier=7))
    s.subscribe(p("a/b"), 1)
    pub = connected(t)

    def ids_for(topic: str, expect_union: set[int]) -> None:
        pub.publish(topic, b"x", 1)
        got = [s.expect_topic(topic)] + s.collect(0.8, lambda m: m.topic == topic)
        ids = [list(m.p("SubscriptionIdentifier", [])) for m in got]
        union = {i for x in ids for i in x}
        check(union == expect_union, f"{topic}: identifiers {ids}, expected {expect_union}")
        if len(got) == 1:  # a single copy carries all of them [MQTT-3.3.4-4]
            check(sorted(ids[0]) == sorted(expect_union), f"single copy carries {ids[0]}")
        else:  # one copy per subscription: each carries its own [MQTT-3.3.4-5]
            check(all(len(x) <= 1 for x in ids), f"{topic}: copies carry {ids}")

    ids_for(p("a/b"), {5, 7})
    ids_for(p("a/c"), {5, 7})
    s.subscribe(p("a/#"), 1, props(PT.SUBSCRIBE, SubscriptionIdentifier=9))  # replaces 5
    ids_for(p("a/z/w"), {9})
    rt = t.retain(p("r/x"))
    pub.publish(rt, b"ret", 1, retain=True)
    s.subscribe(p("r/#"), 1, props(PT.SUBSCRIBE, SubscriptionIdentifier=11))
    m = s.expect_topic(rt)
    check(list(m.p("SubscriptionIdentifier", [])) == [11],
          f"retained message on subscribe carries {m.p('SubscriptionIdentifier')}")


@scenario(5)
def s_shared_subscriptions(t):
    m1 = t.client()
    ack = m1.connect()
    topic = t.topic("work")
    share = f"$share/g{t.run_id}{t.index}/{topic}"
    if not ack.p("SharedSubscriptionAvailable", 1):
        codes = m1.subscribe(share, 1)
        check(codes == [0x9E], f"shared subscriptions unavailable, yet SUBACK {codes}")
        t.note("broker does not support shared subscriptions")
        return
    m2 = connected(t)
    plain = connected(t)
    check(m1.subscribe(share, 1) == [1], "shared SUBACK")
    check(m2.subscribe(share, 1) == [1], "shared SUBACK")
    plain.subscribe(topic, 1)
    pub = connected(t)
    sent = [f"w{i}".encode() for i in range(20)]
    for x in sent:
        pub.publish(topic, x, 1)
    got_plain = plain.expect_n(20, lambda m: m.topic == topic, what="plain subscriber messages")
    check(payloads(got_plain) == sent, "plain subscriber missed messages or got them out of order")
    deadline = time.monotonic() + 4
    got1, got2 = [], []
    while len(got1) + len(got2) < 20 and time.monotonic() < deadline:
        got1 += m1.collect(0.1, lambda m: m.topic == topic)
        got2 += m2.collect(0.0, lambda m: m.topic == topic)
    got1 += m1.collect(0.5, lambda m: m.topic == topic)
    got2 += m2.collect(0.0, lambda m: m.topic == topic)
    all_got = payloads(got1) + payloads(got2)
    check(sorted(all_got) == sorted(sent),
          f"group received {len(all_got)} messages ({len(set(all_got))} distinct) for 20 sent")
    t.note(f"split {len(got1)}/{len(got2)}")
    m1.disconnect()
    for x in (b"after-0", b"after-1", b"after-2"):
        pub.publish(topic, x, 1)
    got = m2.expect_n(3, lambda m: m.topic == topic, what="messages for the last group member")
    check(sorted(payloads(got)) == [b"after-0", b"after-1", b"after-2"],
          f"remaining member got {payloads(got)}")


# ---------------------------------------------------------------------------------------------
# v5 properties


@scenario(5)
def s_user_properties(t):
    """User properties are forwarded unaltered, in order, duplicates kept [MQTT-3.3.2-17/18]."""
    up = [("k1", "v1"), ("k2", "v2"), ("k1", "v3"), ("unicode", "h\u00e9llo \u2713"), ("e", "")]
    topic = t.retain(t.topic())
    s = connected(t)
    s.subscribe(topic, 1)
    pub = connected(t)
    for qos in (0, 1, 2):
        pub.publish(topic, f"q{qos}", qos, props_=props(PT.PUBLISH, UserProperty=list(up)))
        m = s.expect_topic(topic)
        check(m.p("UserProperty") == up, f"QoS {qos}: user properties {m.p('UserProperty')}")
    pub.publish(topic, b"ret", 1, retain=True, props_=props(PT.PUBLISH, UserProperty=list(up)))
    s.expect_topic(topic)
    late = connected(t)
    late.subscribe(topic, 1)
    m = late.expect_topic(topic)
    check(m.p("UserProperty") == up, f"retained: user properties {m.p('UserProperty')}")


@scenario(5)
def s_payload_format_indicator(t):
    """Payload Format Indicator and Content Type are forwarded unaltered [MQTT-3.3.2-4],
    [MQTT-3.3.2-20], also with retained messages."""
    topic = t.retain(t.topic())
    s = connected(t)
    s.subscribe(topic, 1)
    pub = connected(t)
    text = "h\u00e9llo \u2713".encode()
    ct = "text/plain; charset=utf-8"
    pub.publish(topic, text, 1, retain=True,
                props_=props(PT.PUBLISH, PayloadFormatIndicator=1, ContentType=ct))
    m = s.expect_topic(topic)
    check(m.payload == text and m.p("PayloadFormatIndicator") == 1 and m.p("ContentType") == ct,
          f"got PFI {m.p('PayloadFormatIndicator')}, content type {m.p('ContentType')!r}")
    late = connected(t)
    late.subscribe(topic, 1)
    m = late.expect_topic(topic)
    check(m.p("PayloadFormatIndicator") == 1 and m.p("ContentType") == ct,
          f"retained: PFI {m.p('PayloadFormatIndicator')}, content type {m.p('ContentType')!r}")
    pub.publish(topic, b"\xff\x00\xfe", 1, props_=props(PT.PUBLISH, PayloadFormatIndicator=0))
    m = s.expect_topic(topic)
    check(m.payload == b"\xff\x00\xfe" and m.p("PayloadFormatIndicator", 0) == 0,
          f"binary payload arrived as {m!r} with PFI {m.p('PayloadFormatIndicator')}")


@scenario(5)
def s_message_expiry(t):
    """Expired messages are not delivered; a delivered message carries its remaining lifetime
    [MQTT-3.3.2-5], [MQTT-3.3.2-6]."""
    rt = t.retain(t.topic("retained"))
    qt = t.topic("queued")
    s = t.client()
    persist(s, resume=False)
    s.subscribe(qt, 1)
    s.disconnect()
    pub = connected(t)
    pub.publish(rt, b"short", 1, retain=True, props_=props(PT.PUBLISH, MessageExpiryInterval=2))
    pub.publish(qt, b"dies", 1, props_=props(PT.PUBLISH, MessageExpiryInterval=1))
    pub.publish(qt, b"lives", 1, props_=props(PT.PUBLISH, MessageExpiryInterval=20))
    t0 = time.monotonic()
    early = connected(t)
    early.subscribe(rt, 1)
    m = early.expect_topic(rt)
    mei = m.p("MessageExpiryInterval")
    check(mei is not None and 1 <= mei <= 2, f"retained message expiry interval {mei}")
    time.sleep(max(0.0, t0 + 3.0 - time.monotonic()))
    ack = persist(s, resume=True)
    check(ack.session_present, "session not present")
    m = s.expect_topic(qt)
    check(m.payload == b"lives", f"queued message {m!r}, expected 'lives' ('dies' expired)")
    mei = m.p("MessageExpiryInterval")
    check(mei is not None and 10 <= mei <= 18,
          f"message expiry 20 s after 3 s in the queue arrived with {mei}, expected <= 18")
    s.expect_none(lambda m: m.topic == qt, 0.7, "expired queued message")
    late = connected(t)
    late.subscribe(rt, 1)
    late.expect_none(lambda m: m.topic == rt, 1.0, "expired retained message")


@scenario(5)
def s_request_response(t):
    req = t.client()
    ack = req.connect(props_=props(PT.CONNECT, RequestResponseInformation=1))
    info = ack.p("ResponseInformation")
    if info:
        t.note(f"response information {info!r}")
    rt = t.topic("response")
    req.subscribe(rt, 1)
    srv = connected(t)
    srv.subscribe(t.topic("request"), 1)
    corr = b"\x00\x01corr\xff"
    req.publish(t.topic("request"), b"question", 1,
                props_=props(PT.PUBLISH, ResponseTopic=rt, CorrelationData=corr))
    m = srv.expect_topic(t.topic("request"))
    check(m.p("ResponseTopic") == rt, f"response topic {m.p('ResponseTopic')!r}")
    check(m.p("CorrelationData") == corr, f"correlation data {m.p('CorrelationData')!r}")
    srv.publish(m.p("ResponseTopic"), b"answer", 1,
                props_=props(PT.PUBLISH, CorrelationData=m.p("CorrelationData")))
    r = req.expect_topic(rt)
    check(r.payload == b"answer" and r.p("CorrelationData") == corr, f"response {r!r}")


# ---------------------------------------------------------------------------------------------
# v5 limits: topic aliases, packet size, flow control


@scenario(5)
def s_client_topic_aliases(t):
    """Aliases the client sets up are resolved by the server; an alias above the server's Topic
    Alias Maximum (alias 0 when that maximum is 65535) is refused with DISCONNECT 0x94 (topic
    alias invalid), 3.3.2.3.4.
    The publisher is a raw client, so the DISCONNECT reason code is seen as sent."""
    s = connected(t)  # advertises no Topic Alias Maximum: must get full topic names
    s.subscribe(t.topic("#"), 1)
    c = t.raw()
    ack = c.connect(t.new_cid())
    check(ack.rc == 0, f"CONNACK {ack.rc:#04x}")
    tam = ack.p("TopicAliasMaximum", 0)
    t1, t2 = t.topic("one"), t.topic("two")
    pid = 0

    def publish(topic: str, payload: bytes, alias: int) -> None:
        nonlocal pid
        pid += 1
        c.publish(topic, payload, 1, pid=pid, props_=props(PT.PUBLISH, TopicAlias=alias))
        p = c.recv()
        check(p is not None and p.type == PUBACK and p.pid == pid and p.rc < 0x80,
              f"publish {payload!r} with alias {alias}: got {p!r}, expected PUBACK")

    if tam >= 1:
        publish(t1, b"a1", 1)
        publish("", b"a2", 1)
        publish(t2, b"a3", 1)  # re-maps alias 1
        publish("", b"a4", 1)
        want = [(t1, b"a1"), (t1, b"a2"), (t2, b"a3"), (t2, b"a4")]
        if tam >= 2:
            publish(t1, b"a5", tam)
            publish("", b"a6", tam)
            want += [(t1, b"a5"), (t1, b"a6")]
        got = s.expect_n(len(want), what="aliased publishes")
        check([(m.topic, m.payload) for m in got] == want,
              f"received {[(m.topic, m.payload) for m in got]}, expected {want}")
        check(all(m.alias is None for m in got),
              "server sent a topic alias to a client that allows none")
    if tam < 0xFFFF:
        bad, why = tam + 1, f"alias {tam + 1} > maximum {tam}"
        c.publish("", b"bad", 1, pid=pid + 1, props_=props(PT.PUBLISH, TopicAlias=bad))
    else:
        # The Topic Alias is a Two Byte Integer (3.3.2.3.4): with a maximum of 65535 no alias
        # above it exists, so send the other invalid value, 0 [MQTT-3.3.2-8]. paho refuses to
        # encode it, so the property section is written by hand: length 3, id 0x23, value 0.
        # 0x94's definition names only "greater than the maximum", so for 0 the general
        # Protocol Error (0x82, 4.13) is accepted too.
        why = "alias 0 (maximum 65535)"

        class AliasZero:
            @staticmethod
            def pack() -> bytes:
                return b"\x03\x23\x00\x00"

        c.publish("", b"bad", 1, pid=pid + 1, props_=AliasZero())  # type: ignore[arg-type]
    pkts, closed = c.recv_until_closed(3)
    discs = [p for p in pkts if p.type == DISCONNECT]
    allowed = (0x94,) if tam < 0xFFFF else (0x94, 0x82)
    check(closed and discs and discs[0].rc in allowed,
          f"{why}: got {pkts}, closed {closed}; expected DISCONNECT {allowed} and close")
    s.expect_none(duration=0.5, what="message published with an invalid alias")
    t.note(f"server Topic Alias Maximum {tam}")


@scenario(5)
def s_server_topic_aliases(t):
    """The server may use topic aliases up to the client's Topic Alias Maximum, never above it,
    and none for a client that advertises none [MQTT-3.3.2-11]."""
    none = t.client()
    none.connect()
    some = t.client()
    some.connect(props_=props(PT.CONNECT, TopicAliasMaximum=2))
    for c in (none, some):
        c.subscribe(t.topic("#"), 1)
    pub = connected(t)
    want = []
    for rnd in range(3):
        for name in ("x", "y", "z"):
            topic = t.topic(name)
            pub.publish(topic, f"{name}{rnd}".encode(), 1)
            want.append((topic, f"{name}{rnd}".encode()))
    for c in (none, some):
        got = c.expect_n(len(want), what="messages")
        check(not c.alias_errors, "; ".join(c.alias_errors))
        check(sorted((m.topic, m.payload) for m in got) == sorted(want),
              f"{c.cid} resolved {[(m.topic, m.payload) for m in got]}")
    check(all(m.alias is None for m in none.all_messages),
          "topic alias sent to a client with Topic Alias Maximum 0")
    used = {m.alias for m in some.all_messages if m.alias is not None}
    check(all(1 <= a <= 2 for a in used), f"aliases {sorted(used)} outside 1..2")
    t.note(f"server used aliases {sorted(used)}" if used else "server uses no topic aliases")


@scenario(5)
def s_maximum_packet_size(t):
    """The server never sends a packet above the client's Maximum Packet Size: it drops the
    message [MQTT-3.1.2-25]. A packet above the server's advertised maximum is refused with
    DISCONNECT 0x95."""
    topic = t.topic()
    s = t.client()
    s.connect(props_=props(PT.CONNECT, MaximumPacketSize=256))
    s.subscribe(topic, 1)
    pub = t.client()
    server_max = pub.connect().p("MaximumPacketSize")
    pub.publish(topic, b"small-1", 1)
    pub.publish(topic, b"L" * 1000, 1)
    pub.publish(topic, b"small-2", 1)
    got = s.expect_n(2, lambda m: m.topic == topic)
    check(payloads(got) == [b"small-1", b"small-2"], f"received {payloads(got)}")
    s.expect_none(lambda m: m.topic == topic, 0.5, "packet above the client's maximum size")
    if server_max is None or server_max > 16 * 1024 * 1024:
        t.note(f"server advertises Maximum Packet Size {server_max}; server side not exercised")
        return
    r = t.raw()
    check(r.connect(t.new_cid()).rc == 0, "raw connect refused")
    try:
        r.publish(topic, b"B" * server_max, 0)  # the whole packet exceeds server_max
    except OSError:
        pass
    pkts, closed = r.recv_until_closed(3)
    check(closed, f"connection kept open after a packet above Maximum Packet Size {server_max}")
    discs = [p for p in pkts if p.type == DISCONNECT]
    if discs:
        check(discs[0].rc == 0x95, f"DISCONNECT {discs[0].rc:#04x}, expected 0x95")
    s.expect_none(lambda m: m.topic == topic, 0.3, "oversized message")
    t.note(f"server maximum {server_max}")


@scenario(5)
def s_flow_control_server_to_client(t):
    """The server never has more unacknowledged QoS 1/2 PUBLISHes towards a client than the
    client's Receive Maximum [MQTT-3.3.4-9]; it sends the rest as acknowledgements free quota."""
    t1, t2 = t.topic("q1"), t.topic("q2")
    s = t.client(manual_ack=True)  # paho withholds PUBACK / PUBCOMP until s.ack()
    s.connect(props_=props(PT.CONNECT, ReceiveMaximum=2))
    s.subscribe([(t1, 1), (t2, 2)])
    pub = connected(t)
    worst = 0
    for qos, topic, n in ((1, t1, 6), (2, t2, 4)):
        sent = [f"{topic[-2:]}-{i}".encode() for i in range(n)]
        for x in sent:
            pub.publish(topic, x, qos)
        on_topic = (lambda tp: lambda m: m.topic == tp)(topic)
        got = s.expect_n(2, on_topic, what=f"QoS {qos} messages")
        extra = s.collect(0.8, on_topic)
        got += extra
        outstanding = got[:]
        worst = max(worst, len(outstanding))
        while len(got) < n:
            s.ack(outstanding.pop(0))  # acknowledge the oldest outstanding one
            got.append(s.expect(on_topic, 2, f"the next QoS {qos} message after an ack"))
            outstanding.append(got[-1])
            more = s.collect(0.3, on_topic)
            got += more
            outstanding += more
            worst = max(worst, len(outstanding))
        for m in outstanding:
            s.ack(m)
        check(payloads(got) == sent, f"QoS {qos}: received {payloads(got)}")
    if worst > 2:
        # Mosquitto 2.0.11 keeps the first 2 but, after the first PUBACK, sends 2 more
        # (3 unacknowledged), as seen on the wire with a raw client.
        t.deviation("mosquitto", f"up to {worst} unacknowledged QoS>0 PUBLISH packets towards a "
                                 "client with Receive Maximum 2")


@scenario(5)
def s_flow_control_client_to_server(t):
    """A client may have up to the server's Receive Maximum QoS 2 flows open; one more is
    answered with DISCONNECT 0x93 (receive maximum exceeded), 3.3.4."""
    topic = t.topic()
    s = connected(t)
    s.subscribe(topic, 2)
    if Transport.name not in ("tcp", "unix"):
        # The flood writes without blocking, which a TLS or WebSocket framing of the raw
        # client's socket cannot do halfway through a record or frame.
        t.note(f"flood not exercised over {Transport.name}")
        return
    r = t.raw()
    ack = r.connect(t.new_cid())
    rm = ack.p("ReceiveMaximum", 65535)
    n = min(rm, 200)
    for i in range(n):
        r.publish(topic, f"f{i}".encode(), 2, pid=i + 1)
    recs = []
    while len(recs) < n:
        p = r.recv(3)
        check(p is not None, f"{len(recs)} PUBREC for {n} QoS 2 publishes within receive maximum")
        check(p.type == PUBREC, f"got {p!r} while within receive maximum {rm}")
        check(p.rc < 0x80, f"PUBREC {p.rc:#04x} within receive maximum {rm}")
        recs.append(p)
    for p in recs:
        r.ack(PUBREL, p.pid)
    comps = 0
    while comps < n:
        p = r.recv(3)
        check(p is not None and p.type == PUBCOMP, f"expected PUBCOMP, got {p!r}")
        comps += 1
    got = s.expect_n(n, lambda m: m.topic == topic, timeout=6, what="flow-controlled messages")
    check(sorted(payloads(got)) == sorted(f"f{i}".encode() for i in range(n)), "payloads differ")
    if rm > 200:
        t.note(f"server Receive Maximum {rm}: overflow not exercised")
        return
    for i in range(rm + 1):
        r.publish(topic, f"g{i}".encode(), 2, pid=i + 1)
    pkts, closed = r.recv_until_closed(3)
    recs = [p for p in pkts if p.type == PUBREC]
    discs = [p for p in pkts if p.type == DISCONNECT]
    if discs and discs[0].rc == 0x93 and closed:
        t.note(f"receive maximum {rm}")
        return
    refused = [p for p in recs if p.rc >= 0x80]
    what = (f"{rm + 1} open QoS 2 flows with Receive Maximum {rm}: {len(recs)} PUBREC "
            f"({len(refused)} with failure {sorted({hex(p.rc) for p in refused})}), "
            f"DISCONNECT {[hex(p.rc) for p in discs]}, closed {closed}; expected DISCONNECT 0x93")
    # Mosquitto 2.0.11 answers the flow above its Receive Maximum with PUBREC 0x97 (quota
    # exceeded) and keeps the connection, instead of DISCONNECT 0x93.
    check(len(refused) == 1 and not discs, what)
    t.deviation("mosquitto", what)



# ---------------------------------------------------------------------------------------------
# The way third-party test suites drive a broker: clients reused from step to step, no wait
# for SUBACK before another client publishes, clients that flood without reading.


@scenario()
def s_subscribe_then_publish_without_suback(t):
    """Two quiet clients, reused for every try: B subscribes and does not wait for the SUBACK,
    A publishes 1 ms later. The SUBSCRIBE was read first, so it is in effect for the PUBLISH
    (request/response loses replies otherwise)."""
    a, b = connected(t), connected(t)
    tries = 8
    for i in range(tries):
        topic = t.topic(f"req{i}")
        if t.version == 5:
            # A is subscribed itself, with no-local, as a requester listening to its topic.
            a.subscribe([(topic, SubscribeOptions(qos=1, noLocal=True))])
        time.sleep(0.5)  # both connections quiet, the broker's workers asleep
        if t.version == 5:
            b.c.subscribe([(topic, SubscribeOptions(qos=2, noLocal=True))])
        else:
            b.c.subscribe(topic, 2)
        b.wait_written()  # in the socket, not acknowledged
        time.sleep(0.001)
        a.publish(topic, f"m{i}".encode(), 1, wait=False)
        b.expect(lambda m, topic=topic: m.topic == topic, timeout=3,
                 what=f"try {i + 1}/{tries}: message published 1 ms after the SUBSCRIBE")


@scenario()
def s_reused_clients_across_steps(t):
    """One publisher and one subscriber go through QoS 0/1/2, unsubscribe, resubscribe and a
    retained message without reconnecting, never waiting for SUBACK or UNSUBACK (only for
    paho's network thread to have written them)."""
    pub, sub = connected(t), connected(t)

    def settle():
        # moco orders packets across connections that were idle (docs/architecture.md, "Order
        # across connections"); between two busy ones the order is the workers' read order.
        time.sleep(0.05)

    for qos in (0, 1, 2):
        topic = t.topic(f"q{qos}")
        settle()
        sub.c.subscribe(topic, qos)
        sub.wait_written()
        pub.publish(topic, f"q{qos}".encode(), qos, wait=False)
        m = sub.expect_topic(topic)
        check(m.payload == f"q{qos}".encode() and m.qos == qos, f"step QoS {qos}: {m!r}")
    topic = t.topic("q1")
    settle()
    sub.c.unsubscribe(topic)
    sub.wait_written()
    pub.publish(topic, b"after unsubscribe", 1)
    sub.expect_none(lambda m: m.payload == b"after unsubscribe", 0.5,
                    "message after an UNSUBSCRIBE read before it")
    settle()
    sub.c.subscribe(topic, 1)
    sub.wait_written()
    pub.publish(topic, b"again", 1, wait=False)
    check(sub.expect_topic(topic).payload == b"again", "resubscribed client missed a message")
    rt = t.retain(t.topic("retained"))
    pub.publish(rt, b"kept", 1, retain=True)
    sub.c.subscribe(rt, 1)
    m = sub.expect_topic(rt)
    check(m.retain and m.payload == b"kept", f"retained message on a reused client: {m!r}")


@scenario(5)
def s_flood_reads_server_disconnect(t):
    """A client floods QoS 2 PUBLISHes past the Receive Maximum without reading, looking for
    what the broker sent only between two writes (as a single-threaded client does): it must
    read DISCONNECT 0x93, not have its writes fail with a reset first."""
    if Transport.name not in ("tcp", "unix"):
        # The flood writes without blocking, which a TLS or WebSocket framing of the raw
        # client's socket cannot do halfway through a record or frame.
        t.note(f"flood not exercised over {Transport.name}")
        return
    r = t.raw()
    ack = r.connect(t.new_cid())
    rm = ack.p("ReceiveMaximum", 65535)
    if rm > 5000:
        t.note(f"server Receive Maximum {rm}: flood not exercised")
        return
    topic = t.topic()
    r.sock.setblocking(False)
    deadline = time.monotonic() + 5
    pid, out, found = 0, b"", None
    try:
        while found is None and time.monotonic() < deadline:
            if not out:
                pid = pid % 65535 + 1
                body = (struct.pack("!H", len(topic)) + topic.encode() + struct.pack("!H", pid)
                        + b"\x00" + b"x" * 64)
                out = bytes([0x34]) + VariableByteIntegers.encode(len(body)) + body
            _, w, _ = select.select([], [r.sock], [], 0.01)
            if w:
                out = out[r.sock.send(out):]
            try:
                data = r.sock.recv(65536)
                if not data:
                    break
                r.buf += data
            except BlockingIOError:
                pass
            while (p := r._parse()) is not None:
                if p.type == DISCONNECT:
                    found = p
    except OSError as e:
        raise Fail(f"the flood's write or read failed before a DISCONNECT: {e!r}") from e
    finally:
        r.sock.setblocking(True)
    if found is None:
        what = f"no DISCONNECT within 5 s of flooding past Receive Maximum {rm}"
        # Mosquitto 2.0.11 answers with PUBREC 0x97 and keeps the connection (see
        # s_flow_control_client_to_server).
        t.deviation("mosquitto", what)
        return
    check(found.rc == 0x93, f"DISCONNECT {found.rc:#04x}, expected 0x93")


@scenario(3)
def s_v3_keepalive_above_maximum(t):
    """The suite's brokers cap keep-alive at 60 s. A v3.1.1 client cannot be told a server
    keep-alive; one asking for 0 (none) or 120 is accepted and held to the cap, as Mosquitto's
    max_keepalive does, not refused."""
    for ka in (0, 61, 120):
        c = t.client()
        ack = c.connect(keepalive=ka)
        check(ack.rc == 0, f"v3.1.1 CONNECT with keep-alive {ka}: refused with {ack.rc}")
        c.disconnect()
