"""Test harness for the interop suite: a bounded-wait wrapper around paho-mqtt, and a tiny raw
MQTT client for the few checks where paho hides the wire (DUP flags, PUBREL resends, deliberately
broken flows, connection refusals that paho retries around).

Every wait here is bounded; nothing blocks forever.
"""

from __future__ import annotations

import base64
import os
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties, VariableByteIntegers
from paho.mqtt.subscribeoptions import SubscribeOptions

DEFAULT_WAIT = 4.0


class Transport:
    """How every client of a run connects (suite.py --transport): tcp, tls, ws, wss or unix."""

    name = "tcp"
    cafile: str | None = None
    ws_path = "/mqtt"
    unix_path: str | None = None

    @classmethod
    def configure(cls, name: str, cafile: str | None, ws_path: str, unix_path: str | None) -> None:
        cls.name, cls.cafile, cls.ws_path, cls.unix_path = name, cafile, ws_path, unix_path

    @classmethod
    def paho(cls, c: mqtt.Client) -> None:
        """Sets up a paho client made with paho_kwargs() for the transport."""
        if cls.name in ("tls", "wss"):
            c.tls_set(ca_certs=cls.cafile)
        if cls.name in ("ws", "wss"):
            c.ws_set_options(path=cls.ws_path)

    @classmethod
    def paho_kwargs(cls) -> dict[str, Any]:
        return {"transport": {"ws": "websockets", "wss": "websockets",
                              "unix": "unix"}.get(cls.name, "tcp")}

    @classmethod
    def address(cls, host: str, port: int) -> tuple[str, int]:
        # paho wants a valid port even for a Unix socket, and ignores it.
        return (cls.unix_path, 1) if cls.name == "unix" else (host, port)

    @classmethod
    def open(cls, host: str, port: int) -> Any:
        """A blocking socket-like object carrying MQTT's bytes to the broker."""
        if cls.name == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(DEFAULT_WAIT)
            sock.connect(cls.unix_path)
            return sock
        sock = socket.create_connection((host, port), timeout=DEFAULT_WAIT)
        if cls.name in ("tls", "wss"):
            ctx = ssl.create_default_context(cafile=cls.cafile)
            sock = ctx.wrap_socket(sock, server_hostname="localhost")
        if cls.name in ("ws", "wss"):
            sock = WsSocket(sock, host, cls.ws_path)
        return sock


def _shutdown(sock: Any) -> None:
    """Shuts a paho client's socket down both ways (under its WebSocket wrapper, if any)."""
    sock = getattr(sock, "_socket", sock)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _Paho(mqtt.Client):
    """paho 2.1 sets the socket's timeout to the keep-alive for the TLS and WebSocket
    handshakes, so a keep-alive of 0 makes them non-blocking and they fail: handshake with a
    timeout, then send the CONNECT's real keep-alive."""

    def _create_socket(self):  # type: ignore[override]
        keepalive = self._keepalive
        if keepalive == 0:
            self._keepalive = int(DEFAULT_WAIT)
        try:
            return super()._create_socket()
        finally:
            self._keepalive = keepalive


class WsSocket:
    """A socket-like WebSocket client (RFC 6455) for the raw client: what is sent goes out as
    one masked binary frame, and binary frames read come back as bytes."""

    def __init__(self, sock: Any, host: str, path: str):
        self.sock = sock
        self.raw = b""
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n")
                     .encode())
        while b"\r\n\r\n" not in self.raw:
            data = sock.recv(4096)
            if not data:
                raise OSError("closed during the WebSocket upgrade")
            self.raw += data
        head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise OSError(f"WebSocket upgrade refused: {head.splitlines()[0]!r}")

    def _frame(self, opcode: int, data: bytes) -> bytes:
        n = len(data)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        mask = os.urandom(4)
        return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(self._frame(0x2, data))

    def send(self, data: bytes) -> int:
        self.sendall(data)
        return len(data)

    def _parse(self) -> tuple[int, bytes] | None:
        b = self.raw
        if len(b) < 2:
            return None
        opcode, n, pos = b[0] & 0x0F, b[1] & 0x7F, 2
        if n == 126:
            if len(b) < 4:
                return None
            n, pos = struct.unpack("!H", b[2:4])[0], 4
        elif n == 127:
            if len(b) < 10:
                return None
            n, pos = struct.unpack("!Q", b[2:10])[0], 10
        if len(b) < pos + n:
            return None
        self.raw = b[pos + n:]
        return opcode, b[pos:pos + n]

    def recv(self, _n: int) -> bytes:
        while True:
            frame = self._parse()
            if frame is not None:
                opcode, data = frame
                if opcode == 0x8:
                    return b""
                if opcode == 0x9:
                    self.sock.sendall(self._frame(0xA, data))
                elif opcode in (0x0, 0x2) and data:
                    return data
                continue
            data = self.sock.recv(65536)
            if not data:
                return b""
            self.raw += data

    def settimeout(self, t: float | None) -> None:
        self.sock.settimeout(t)

    def setblocking(self, flag: bool) -> None:
        self.sock.setblocking(flag)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()


class Fail(Exception):
    """A scenario assertion failed."""


def check(cond: Any, msg: str) -> None:
    if not cond:
        raise Fail(msg)


def props(packet_type: int, **values: Any) -> Properties:
    """Builds a paho Properties object: props(PacketTypes.PUBLISH, UserProperty=[("a", "b")])."""
    p = Properties(packet_type)
    for k, v in values.items():
        setattr(p, k, v)
    return p


def prop(p: Properties | None, name: str, default: Any = None) -> Any:
    if p is None:
        return default
    return getattr(p, name, default)


@dataclass
class Msg:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool
    mid: int
    props: Properties | None
    at: float
    alias: int | None = None

    def p(self, name: str, default: Any = None) -> Any:
        return prop(self.props, name, default)

    def __repr__(self) -> str:
        return (f"Msg({self.topic!r}, {self.payload[:40]!r}, q{self.qos}"
                f"{' r' if self.retain else ''}{' d' if self.dup else ''})")


@dataclass
class Connack:
    rc: int
    session_present: bool
    props: Properties | None

    def p(self, name: str, default: Any = None) -> Any:
        return prop(self.props, name, default)


@dataclass
class Disconnected:
    rc: int
    from_server: bool
    props: Properties | None
    at: float


class Client:
    """One MQTT connection through paho-mqtt, with its events recorded for bounded waits.

    Each connect() makes a fresh paho client, so no client-side session state (paho's own resends)
    leaks from one connection to the next: what a reconnect receives comes from the broker.

    Do not assert on `disconnected.rc` for a server's DISCONNECT: paho-mqtt 2.1 ignores the
    reason code of a DISCONNECT that carries no properties (remaining length 1) and reports 0.
    Scenarios that check a DISCONNECT reason code use the Raw client.
    """

    def __init__(self, ctx: Any, version: int, cid: str | None = None, *, clean: bool = True,
                 manual_ack: bool = False):
        self.ctx = ctx
        self.version = version
        self.cid = ctx.new_cid() if cid is None else cid
        self.clean = clean
        self.manual_ack = manual_ack
        self.cond = threading.Condition()
        self.messages: list[Msg] = []
        self.all_messages: list[Msg] = []
        self.subacks: dict[int, tuple[list[int], Properties | None]] = {}
        self.unsubacks: dict[int, list[int]] = {}
        self.published: dict[int, int] = {}
        self.connack: Connack | None = None
        self.disconnected: Disconnected | None = None
        self.aliases: dict[int, str] = {}
        self.alias_errors: list[str] = []
        self.c: mqtt.Client | None = None
        ctx.clients.append(self)

    # ---- paho callbacks (network thread) ----

    def _on_connect(self, _c, _u, flags, rc, properties) -> None:
        with self.cond:
            self.connack = Connack(rc.value, bool(flags.session_present),
                                   properties if self.version == 5 else None)
            self.cond.notify_all()

    def _on_message(self, _c, _u, m) -> None:
        topic = m._topic.decode("utf-8", "replace")
        alias = None
        if self.version == 5 and m.properties is not None:
            alias = getattr(m.properties, "TopicAlias", None)
        with self.cond:
            if alias is not None:
                if topic:
                    self.aliases[alias] = topic
                elif alias in self.aliases:
                    topic = self.aliases[alias]
                else:
                    self.alias_errors.append(f"unknown topic alias {alias} with empty topic")
            msg = Msg(topic, bytes(m.payload), m.qos, bool(m.retain), bool(m.dup), m.mid,
                      m.properties if self.version == 5 else None, time.monotonic(), alias)
            self.messages.append(msg)
            self.all_messages.append(msg)
            self.cond.notify_all()

    def _on_subscribe(self, _c, _u, mid, rcs, properties) -> None:
        with self.cond:
            self.subacks[mid] = ([r.value for r in rcs], properties)
            self.cond.notify_all()

    def _on_unsubscribe(self, _c, _u, mid, rcs, _properties) -> None:
        with self.cond:
            self.unsubacks[mid] = [r.value for r in rcs] if isinstance(rcs, list) else []
            self.cond.notify_all()

    def _on_publish(self, _c, _u, mid, rc, _properties) -> None:
        with self.cond:
            self.published[mid] = rc.value
            self.cond.notify_all()

    def _on_disconnect(self, _c, _u, flags, rc, properties) -> None:
        with self.cond:
            self.disconnected = Disconnected(rc.value, flags.is_disconnect_packet_from_server,
                                             properties, time.monotonic())
            self.cond.notify_all()

    # ---- waiting ----

    def _wait(self, pred: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                r = pred()
                if r:
                    return r
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Fail(f"{self.cid}: timed out after {timeout:.1f}s waiting for {what}")
                self.cond.wait(left)

    # ---- actions ----

    def connect(self, *, keepalive: int = 30, props_: Properties | None = None,
                will: tuple | None = None, clean: bool | None = None, expect_ok: bool = True,
                timeout: float = DEFAULT_WAIT) -> Connack:
        """Connects; will = (topic, payload, qos, retain[, Properties]). Returns the CONNACK."""
        if clean is not None:
            self.clean = clean
        self.close_quietly()
        proto = mqtt.MQTTv5 if self.version == 5 else mqtt.MQTTv311
        kw: dict[str, Any] = {}
        if self.version != 5:
            kw["clean_session"] = self.clean
        c = _Paho(mqtt.CallbackAPIVersion.VERSION2, client_id=self.cid, protocol=proto,
                        reconnect_on_failure=False, manual_ack=self.manual_ack,
                        **Transport.paho_kwargs(), **kw)
        Transport.paho(c)
        c.max_inflight_messages_set(0)  # never hold publishes back client-side
        c.max_queued_messages_set(0)
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        c.on_unsubscribe = self._on_unsubscribe
        c.on_publish = self._on_publish
        c.on_disconnect = self._on_disconnect
        if will is not None:
            wt, wp, wq, wr = will[:4]
            wprops = will[4] if len(will) > 4 else None
            c.will_set(wt, wp, wq, wr, properties=wprops)
        with self.cond:
            self.connack = None
            self.disconnected = None
            self.aliases = {}
        self.c = c
        host, port = Transport.address(self.ctx.host, self.ctx.port)
        if self.version == 5:
            c.connect(host, port, keepalive, clean_start=self.clean, properties=props_)
        else:
            c.connect(host, port, keepalive)
        c.loop_start()
        self._wait(lambda: self.connack or self.disconnected, timeout, "CONNACK")
        ack = self.connack
        if ack is None:
            raise Fail(f"{self.cid}: connection closed before CONNACK ({self.disconnected})")
        if expect_ok and ack.rc != 0:
            raise Fail(f"{self.cid}: CONNACK refused with {ack.rc:#04x}")
        return ack

    def subscribe(self, subs: list[tuple[str, Any]] | str, qos: Any = 0,
                  props_: Properties | None = None, timeout: float = DEFAULT_WAIT) -> list[int]:
        """Subscribes and waits for the SUBACK; returns its codes (v3: granted QoS or 0x80)."""
        if isinstance(subs, str):
            subs = [(subs, qos)]
        arg = [(f, o if self.version == 5 or isinstance(o, int) else o.QoS) for f, o in subs]
        if self.version == 5:
            arg = [(f, o if isinstance(o, SubscribeOptions) else SubscribeOptions(qos=o))
                   for f, o in arg]
        rc, mid = self.c.subscribe(arg, properties=props_)
        check(rc == 0, f"{self.cid}: subscribe() returned {rc}")
        codes, _ = self._wait(lambda: self.subacks.get(mid), timeout, "SUBACK")
        return codes

    def unsubscribe(self, filters: list[str] | str, props_: Properties | None = None,
                    timeout: float = DEFAULT_WAIT) -> list[int]:
        if isinstance(filters, str):
            filters = [filters]
        rc, mid = self.c.unsubscribe(filters, properties=props_)
        check(rc == 0, f"{self.cid}: unsubscribe() returned {rc}")
        return self._wait(lambda: self.unsubacks.get(mid) is not None and [self.unsubacks[mid]],
                          timeout, "UNSUBACK")[0]

    def publish(self, topic: str, payload: bytes | str = b"", qos: int = 0, retain: bool = False,
                props_: Properties | None = None, wait: bool = True,
                timeout: float = DEFAULT_WAIT) -> int:
        """Publishes; with wait, waits until the flow completes (written for QoS 0, PUBACK for 1,
        PUBCOMP for 2) and returns the reason code of the PUBACK/PUBREC (0 for v3)."""
        info = self.c.publish(topic, payload, qos, retain, properties=props_)
        check(info.rc == 0, f"{self.cid}: publish() returned {info.rc}")
        if not wait:
            return 0
        return self._wait(lambda: info.mid in self.published and [self.published[info.mid]],
                          timeout, f"completion of publish to {topic}")[0]

    def ack(self, m: Msg) -> None:
        self.c.ack(m.mid, m.qos)

    def wait_written(self, timeout: float = DEFAULT_WAIT) -> None:
        """Waits until paho's network thread has written every queued packet to the socket:
        subscribe() and publish() return before that, so without it two clients' packets leave
        in an order the broker cannot know."""
        self._wait(lambda: not self.c._out_packet, timeout, "queued packets written")

    def expect(self, pred: Callable[[Msg], bool] | None = None, timeout: float = DEFAULT_WAIT,
               what: str = "a message") -> Msg:
        """Takes the first received message that matches pred, waiting up to timeout."""
        def find():
            for i, m in enumerate(self.messages):
                if pred is None or pred(m):
                    return [self.messages.pop(i)]
            return None
        return self._wait(find, timeout, what)[0]

    def expect_topic(self, topic: str, timeout: float = DEFAULT_WAIT) -> Msg:
        return self.expect(lambda m: m.topic == topic, timeout, f"a message on {topic}")

    def expect_n(self, n: int, pred: Callable[[Msg], bool] | None = None,
                 timeout: float = DEFAULT_WAIT, what: str = "messages") -> list[Msg]:
        deadline = time.monotonic() + timeout
        got = []
        for _ in range(n):
            got.append(self.expect(pred, max(0.0, deadline - time.monotonic()),
                                   f"{what} ({len(got)} of {n} received)"))
        return got

    def expect_none(self, pred: Callable[[Msg], bool] | None = None, duration: float = 1.0,
                    what: str = "message") -> None:
        """Fails if a message matching pred arrives (or is already queued) within duration."""
        deadline = time.monotonic() + duration
        with self.cond:
            while True:
                for m in self.messages:
                    if pred is None or pred(m):
                        raise Fail(f"{self.cid}: unexpected {what}: {m!r}")
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self.cond.wait(left)

    def collect(self, duration: float, pred: Callable[[Msg], bool] | None = None) -> list[Msg]:
        """Waits duration, then takes every queued message that matches pred."""
        time.sleep(duration)
        with self.cond:
            got = [m for m in self.messages if pred is None or pred(m)]
            self.messages = [m for m in self.messages if not (pred is None or pred(m))]
        return got

    def wait_disconnected(self, timeout: float) -> Disconnected:
        return self._wait(lambda: self.disconnected, timeout, "the connection to close")

    def disconnect(self, rc: int | None = None, props_: Properties | None = None) -> None:
        """Clean DISCONNECT (v5: with reason code rc), then stops the network thread."""
        if self.c is None:
            return
        if rc is not None:
            reason = mqtt.ReasonCode(PacketTypes.DISCONNECT, identifier=rc)
            self.c.disconnect(reasoncode=reason, properties=props_)
        else:
            self.c.disconnect(properties=props_)
        try:
            self._wait(lambda: self.disconnected, 3.0, "DISCONNECT to be written")
        finally:
            self._stop_loop()

    def kill(self) -> None:
        """Drops the TCP connection without a DISCONNECT packet (as a crashed client would)."""
        if self.c is None:
            return
        _shutdown(self.c.socket())
        try:
            self._wait(lambda: self.disconnected, 3.0, "the killed connection to close")
        except Fail:
            pass
        self._stop_loop()

    def _stop_loop(self) -> None:
        c = self.c
        if c is None:
            return
        # loop_stop() only returns once paho's thread sees the socket gone, so make sure it is.
        _shutdown(c.socket())
        c._thread_terminate = True
        t = c._thread
        if t is not None:
            t.join(3.0)
        try:
            c._sock_close()
        except Exception:
            pass
        self.c = None

    def close_quietly(self) -> None:
        if self.c is not None:
            if self.disconnected is None:
                try:
                    self.c.disconnect()
                    self._wait(lambda: self.disconnected, 1.0, "disconnect")
                except Exception:
                    pass
            self._stop_loop()


# ---------------------------------------------------------------------------------------------
# Raw client


CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = (
    8, 9, 10, 11, 12, 13, 14)
NAMES = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL",
         7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK",
         12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH"}


def _s(b: bytes | str) -> bytes:
    if isinstance(b, str):
        b = b.encode()
    return struct.pack("!H", len(b)) + b


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + VariableByteIntegers.encode(len(body)) + body


@dataclass
class Packet:
    type: int
    flags: int
    pid: int = 0
    rc: int = 0
    props: Properties | None = None
    topic: str = ""
    payload: bytes = b""
    codes: list[int] = field(default_factory=list)
    session_present: bool = False

    @property
    def qos(self) -> int:
        return (self.flags >> 1) & 3

    @property
    def dup(self) -> bool:
        return bool(self.flags & 8)

    @property
    def retain(self) -> bool:
        return bool(self.flags & 1)

    def p(self, name: str, default: Any = None) -> Any:
        return prop(self.props, name, default)

    def __repr__(self) -> str:
        s = f"{NAMES.get(self.type, self.type)}(pid={self.pid}, rc={self.rc:#04x}"
        if self.type == PUBLISH:
            s += f", {self.topic!r}, q{self.qos}{' dup' if self.dup else ''}"
        return s + ")"


class Closed(Exception):
    pass


class Raw:
    """A minimal blocking MQTT client over a plain socket, for wire-level checks."""

    def __init__(self, ctx: Any, version: int):
        self.ctx = ctx
        self.version = version
        self.sock = Transport.open(ctx.host, ctx.port)
        self.buf = b""
        self.closed = False
        ctx.raws.append(self)

    def _props(self, ptype: int, p: Properties | None) -> bytes:
        if self.version != 5:
            return b""
        return p.pack() if p is not None else b"\x00"

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def connect(self, cid: str, *, clean: bool = True, keepalive: int = 30,
                props_: Properties | None = None, will: tuple | None = None,
                timeout: float = DEFAULT_WAIT) -> Packet:
        """Sends CONNECT; will = (topic, payload, qos, retain[, Properties]). Returns CONNACK."""
        flags = 0x02 if clean else 0
        will_part = b""
        if will is not None:
            wt, wp, wq, wr = will[:4]
            flags |= 0x04 | (wq << 3) | (0x20 if wr else 0)
            if self.version == 5:
                will_part += self._props(PacketTypes.WILLMESSAGE, will[4] if len(will) > 4
                                         else None)
            will_part += _s(wt) + _s(wp)
        level = 5 if self.version == 5 else 4
        body = (_s("MQTT") + bytes([level, flags]) + struct.pack("!H", keepalive)
                + self._props(PacketTypes.CONNECT, props_) + _s(cid) + will_part)
        self.send(_packet(0x10, body))
        p = self.recv(timeout)
        check(p is not None and p.type == CONNACK, f"raw {cid}: expected CONNACK, got {p!r}")
        return p

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, pid: int = 0,
                retain: bool = False, dup: bool = False, props_: Properties | None = None) -> None:
        if isinstance(payload, str):
            payload = payload.encode()
        first = 0x30 | (qos << 1) | (0x08 if dup else 0) | (0x01 if retain else 0)
        body = _s(topic) + (struct.pack("!H", pid) if qos else b"")
        body += self._props(PacketTypes.PUBLISH, props_) + payload
        self.send(_packet(first, body))

    def ack(self, ptype: int, pid: int) -> None:
        first = {PUBACK: 0x40, PUBREC: 0x50, PUBREL: 0x62, PUBCOMP: 0x70}[ptype]
        self.send(_packet(first, struct.pack("!H", pid)))

    def subscribe(self, pid: int, subs: list[tuple[str, int]],
                  props_: Properties | None = None) -> None:
        body = struct.pack("!H", pid) + self._props(PacketTypes.SUBSCRIBE, props_)
        for f, opts in subs:
            body += _s(f) + bytes([opts])
        self.send(_packet(0x82, body))

    def ping(self) -> None:
        self.send(b"\xc0\x00")

    def disconnect(self, rc: int = 0) -> None:
        if self.version == 5 and rc:
            self.send(_packet(0xE0, bytes([rc])))
        else:
            self.send(b"\xe0\x00")

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass

    def _fill(self, deadline: float) -> bool:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except OSError as e:
            raise Closed(str(e)) from e
        if not data:
            raise Closed("EOF")
        self.buf += data
        return True

    def recv(self, timeout: float = DEFAULT_WAIT) -> Packet | None:
        """The next packet, or None on timeout. Raises Closed when the broker closes."""
        deadline = time.monotonic() + timeout
        while True:
            pkt = self._parse()
            if pkt is not None:
                return pkt
            if not self._fill(deadline):
                return None

    def recv_until_closed(self, timeout: float) -> tuple[list[Packet], bool]:
        """Reads packets until the broker closes the connection or timeout passes."""
        got = []
        deadline = time.monotonic() + timeout
        try:
            while True:
                p = self.recv(max(0.0, deadline - time.monotonic()))
                if p is None:
                    return got, False
                got.append(p)
        except Closed:
            return got, True

    def _parse(self) -> Packet | None:
        b = self.buf
        if len(b) < 2:
            return None
        length, mult, i = 0, 1, 1
        while True:
            if i >= len(b):
                return None
            length += (b[i] & 0x7F) * mult
            mult *= 128
            i += 1
            if not b[i - 1] & 0x80:
                break
        if len(b) < i + length:
            return None
        first, body = b[0], b[i:i + length]
        self.buf = b[i + length:]
        t, flags = first >> 4, first & 0x0F
        p = Packet(t, flags)
        v5 = self.version == 5

        def unprops(ptype: int, data: bytes) -> tuple[Properties, int]:
            pr = Properties(ptype)
            _, n = pr.unpack(data)
            return pr, n

        if t == CONNACK:
            p.session_present = bool(body[0] & 1)
            p.rc = body[1]
            if v5 and len(body) > 2:
                p.props, _ = unprops(PacketTypes.CONNACK, body[2:])
        elif t == PUBLISH:
            n = struct.unpack("!H", body[:2])[0]
            p.topic = body[2:2 + n].decode("utf-8", "replace")
            pos = 2 + n
            if p.qos:
                p.pid = struct.unpack("!H", body[pos:pos + 2])[0]
                pos += 2
            if v5:
                p.props, k = unprops(PacketTypes.PUBLISH, body[pos:])
                pos += k
            p.payload = bytes(body[pos:])
        elif t in (PUBACK, PUBREC, PUBREL, PUBCOMP):
            p.pid = struct.unpack("!H", body[:2])[0]
            if len(body) > 2:
                p.rc = body[2]
        elif t in (SUBACK, UNSUBACK):
            p.pid = struct.unpack("!H", body[:2])[0]
            pos = 2
            if v5:
                p.props, k = unprops(t, body[2:])
                pos += k
            p.codes = list(body[pos:])
        elif t == DISCONNECT:
            if body:
                p.rc = body[0]
            if len(body) > 1:
                p.props, _ = unprops(PacketTypes.DISCONNECT, body[1:])
        return p
