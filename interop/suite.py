#!/usr/bin/env python3
"""moco interoperability suite: MQTT v3.1.1 and v5 scenarios run with paho-mqtt against a broker.

    python suite.py --host 127.0.0.1 --port 1883 --broker-name moco [-k FILTER] [--list]

Prints one line per scenario run, `[i/N] name (v5) ... ok | FAIL: reason`, and as its last line
`N passed, N failed`; exits 1 when anything failed. `cargo xtask interop` starts the broker and
runs this file; see interop/README.md.

What the suite expects of the broker's configuration (interop/mosquitto.conf, interop/moco.yaml):
anonymous clients allowed, subscriptions to `test/nosubscribe` refused, maximum keep-alive 60 s.
Everything else (receive maximum, topic alias maximum, maximum packet size...) is read from the
broker's CONNACK and tested against what it advertises.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import Client, Fail, Raw, Transport  # noqa: E402
import scenarios  # noqa: E402

SCENARIO_TIMEOUT = 30  # seconds; a safety net above the scenarios' own bounded waits


class Deviation(Exception):
    """Raised to end a scenario early as a documented deviation of the broker under test."""


class Ctx:
    """What a scenario run gets: unique names, client factories, and cleanup bookkeeping."""

    def __init__(self, host: str, port: int, broker: str, run_id: str, index: int, version: int):
        self.host = host
        self.port = port
        self.broker = broker
        self.run_id = run_id
        self.index = index
        self.version = version
        self.prefix = f"interop/{run_id}/{index}"
        self.clients: list[Client] = []
        self.raws: list[Raw] = []
        self.retained: set[str] = set()
        self.sessions: set[str] = set()
        self.notes: list[str] = []
        self._n = 0

    def new_cid(self) -> str:
        self._n += 1
        return f"ix{self.run_id}-{self.index}-{self._n}"

    def topic(self, name: str = "t") -> str:
        return f"{self.prefix}/{name}"

    def client(self, cid: str | None = None, **kw) -> Client:
        return Client(self, self.version, cid, **kw)

    def raw(self) -> Raw:
        return Raw(self, self.version)

    def retain(self, topic: str) -> str:
        """Registers a topic whose retained message must be cleared after the scenario."""
        self.retained.add(topic)
        return topic

    def session(self, cid: str) -> str:
        """Registers a client id whose persistent session must be discarded after the scenario."""
        self.sessions.add(cid)
        return cid

    def note(self, text: str) -> None:
        self.notes.append(text)

    def deviation(self, broker: str, text: str, *, stop: bool = False) -> None:
        """The broker did something the spec does not allow. When the broker under test is
        `broker` and this is a known, documented deviation of it, record it (and end the
        scenario when stop); otherwise it is a failure."""
        if self.broker != broker:
            raise Fail(text)
        self.notes.append(f"known {broker} deviation: {text}")
        if stop:
            raise Deviation(text)

    def cleanup(self) -> None:
        for c in self.clients:
            try:
                c.close_quietly()
            except Exception:
                pass
        for r in self.raws:
            r.close()
        if not self.retained and not self.sessions:
            return
        try:
            if self.retained:
                c = Client(self, self.version, self.new_cid())
                c.connect()
                for t in sorted(self.retained):
                    c.publish(t, b"", qos=1, retain=True)
                c.disconnect()
            for cid in sorted(self.sessions):
                # Reconnecting with a clean session (v5: clean start, expiry 0) discards it.
                c = Client(self, self.version, cid, clean=True)
                c.connect()
                c.disconnect()
        except Exception as e:  # cleanup must not hide the scenario's own result
            print(f"    (cleanup: {e})", flush=True)
        finally:
            for c in self.clients:
                c.close_quietly()


def _alarm(_signum, _frame):
    raise Fail(f"scenario exceeded {SCENARIO_TIMEOUT}s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=1883)
    ap.add_argument("--broker-name", default="moco",
                    help="which broker is under test: moco or mosquitto (selects known deviations)")
    ap.add_argument("-k", dest="filter", default=None,
                    help="run only scenarios whose name (or `name (vN)`) contains this text")
    ap.add_argument("--list", action="store_true", help="list the scenario runs and exit")
    ap.add_argument("--transport", default="tcp", choices=["tcp", "tls", "ws", "wss", "unix"],
                    help="how every client connects (tls/wss need --cafile, unix --unix-path)")
    ap.add_argument("--cafile", default=None, help="the CA that signs the broker's certificate")
    ap.add_argument("--ws-path", default="/mqtt", help="the WebSocket path")
    ap.add_argument("--unix-path", default=None, help="the broker's Unix socket")
    args = ap.parse_args()
    Transport.configure(args.transport, args.cafile, args.ws_path, args.unix_path)

    runs = []
    for fn, versions in scenarios.REGISTRY:
        for v in versions:
            label = f"{fn.__name__.removeprefix('s_')} (v{'5' if v == 5 else '3.1.1'})"
            if args.filter and args.filter not in label:
                continue
            runs.append((label, fn, v))
    if args.list:
        for label, _, _ in runs:
            print(label)
        return 0

    if not runs:
        print(f"no scenario matches -k {args.filter!r}", flush=True)
        print("0 passed, 0 failed", flush=True)
        return 1

    run_id = uuid.uuid4().hex[:6]
    where = args.unix_path if args.transport == "unix" else f"{args.host}:{args.port}"
    print(f"interop suite against {args.broker_name} over {args.transport} at {where}, "
          f"run id {run_id}, {len(runs)} scenario runs", flush=True)
    signal.signal(signal.SIGALRM, _alarm)
    passed = failed = 0
    started = time.monotonic()
    for i, (label, fn, v) in enumerate(runs, 1):
        ctx = Ctx(args.host, args.port, args.broker_name, run_id, i, v)
        t0 = time.monotonic()
        result = "ok"
        ok = True
        signal.alarm(SCENARIO_TIMEOUT)
        try:
            fn(ctx)
        except Deviation:
            pass
        except Fail as e:
            ok, result = False, f"FAIL: {e}"
        except Exception as e:
            ok, result = False, f"FAIL: {type(e).__name__}: {e}"
            traceback.print_exc(limit=4, file=sys.stdout)
        finally:
            signal.alarm(SCENARIO_TIMEOUT)
            try:
                ctx.cleanup()
            except Fail:
                pass
            signal.alarm(0)
        if ok and ctx.notes:
            result = f"ok ({'; '.join(ctx.notes)})"
        elif not ok and ctx.notes:
            result += f" ({'; '.join(ctx.notes)})"
        passed += ok
        failed += not ok
        print(f"[{i}/{len(runs)}] {label} ... {result} [{time.monotonic() - t0:.1f}s]", flush=True)
    print(f"suite finished in {time.monotonic() - started:.0f}s", flush=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
