#!/usr/bin/env python3
"""The check of "works with Home Assistant": the real Home Assistant core against a
real `meterkast run`, everything on loopback.

meterkast reads a simulated DSMR 5 meter through a TCP source whose bytes arrive in
pieces (one byte per write by default: a read boundary at every position), publishes
to the local Mosquitto (its own base topic and discovery prefix), answers the
HomeWizard API on its HTTP port and serves the raw telegrams on --tcp-bridge.
Home Assistant gets a fresh config directory, is onboarded through its REST API, and
its MQTT, HomeWizard and DSMR integrations are added through their config flows, as
a user would. Then:

- every expected entity exists, with the unit, device class and state class the
  Energy dashboard needs, and its value equals meterkast's /api/v1/now;
- DSMR through the bridge receives every telegram fed while reads are split;
- energy/validate finds no issue with import/export per tariff and gas;
- Home Assistant's log has no error mentioning the three integrations.

Run by run.sh (which makes the cached venv); prints the entities it checked and its
duration; exits non-zero with the reasons on any failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone

import aiohttp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Failures:
    """Collects failed checks instead of stopping at the first."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def check(self, ok: bool, what: str) -> bool:
        if not ok:
            self.items.append(what)
            log(f"FAIL {what}")
        return ok


# ------------------------------------------------------------------ the meter feed

TELEGRAM = re.compile(rb"/[^!]*![0-9A-Fa-f]{4}\r\n", re.S)
STAMP = re.compile(rb"0-0:1\.0\.0\((\d{12})([SW])\)")


def telegram_time(t: bytes) -> str | None:
    """The telegram's 0-0:1.0.0 time as Home Assistant shows a timestamp: UTC ISO."""
    m = STAMP.search(t)
    if not m:
        return None
    d = m.group(1).decode()
    local = datetime(2000 + int(d[0:2]), int(d[2:4]), int(d[4:6]), int(d[6:8]), int(d[8:10]), int(d[10:12]))
    offset = timedelta(hours=2 if m.group(2) == b"S" else 1)
    return (local - offset).replace(tzinfo=timezone.utc).isoformat()


class Feeder(threading.Thread):
    """A TCP server meterkast's tcp:// source reads: the simulated meter's telegrams
    (`meterkast simulate --dialect dsmr5`, one a second), each written in pieces."""

    def __init__(self, binary: str, split: bool) -> None:
        super().__init__(daemon=True)
        self.split = split
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(1)
        self.port = self.server.getsockname()[1]
        self.sim = subprocess.Popen(
            [binary, "simulate", "--dialect", "dsmr5", "--seed", "7"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.client: socket.socket | None = None
        self.sent: list[tuple[float, str]] = []  # (time written, telegram time)
        self.paused = threading.Event()
        self.stopped = threading.Event()

    def run(self) -> None:
        threading.Thread(target=self._accept, daemon=True).start()
        buf = b""
        while not self.stopped.is_set():
            chunk = self.sim.stdout.read1(65536) if self.sim.stdout else b""
            if not chunk:
                return
            buf += chunk
            while (m := TELEGRAM.search(buf)) is not None:
                t = m.group(0)
                buf = buf[m.end():]
                if not self.paused.is_set() and self.client is not None:
                    self._write(t)

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                c, _ = self.server.accept()
            except OSError:
                return
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.client = c

    def _write(self, t: bytes) -> None:
        c = self.client
        try:
            if self.split:
                # One byte per write, a pause between: the reader sees every boundary.
                for i in range(len(t)):
                    c.sendall(t[i:i + 1])
                    time.sleep(0.0004)
            else:
                c.sendall(t)
            self.sent.append((time.time(), telegram_time(t) or "?"))
        except OSError:
            self.client = None

    def stop(self) -> None:
        self.stopped.set()
        self.sim.terminate()
        self.server.close()


# ------------------------------------------------------------------ Home Assistant

CONFIGURATION = """\
# A minimal Home Assistant for the meterkast suite: no default_config (its
# integrations would reach the internet), only what the checks use.
homeassistant:
  name: meterkast-e2e
  latitude: 52.09
  longitude: 5.12
  elevation: 0
  unit_system: metric
  time_zone: Europe/Amsterdam
  currency: EUR
  country: NL
  internal_url: "http://127.0.0.1:{port}"
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
config:
onboarding:
websocket_api:
recorder:
  commit_interval: 1
history:
energy:
logger:
  default: info
"""


class HomeAssistant:
    def __init__(self, python: str, cfg: str) -> None:
        self.cfg = cfg
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        os.makedirs(cfg, exist_ok=True)
        with open(os.path.join(cfg, "configuration.yaml"), "w") as f:
            f.write(CONFIGURATION.format(port=self.port))
        self.python = python
        self.proc: subprocess.Popen | None = None
        self.token = ""
        self.session: aiohttp.ClientSession | None = None
        self.ws = None
        self.ws_id = 0
        self.ws_lock = asyncio.Lock()
        self.events: asyncio.Queue = asyncio.Queue()
        self.pending: dict[int, asyncio.Future] = {}

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.python, "-m", "homeassistant", "--config", self.cfg, "--skip-pip", "--log-no-color"],
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.cfg, "stderr.log"), "a"),
        )

    async def restart(self, timeout: float) -> None:
        """Stops and starts again with the same configuration (and token); the log of
        the run before is kept as setup.log."""
        await self.stop()
        self.pending.clear()
        os.replace(os.path.join(self.cfg, "home-assistant.log"), os.path.join(self.cfg, "setup.log"))
        self.start()
        await self.wait_up(timeout)
        await self.connect_ws()

    def log_text(self) -> str:
        try:
            with open(os.path.join(self.cfg, "home-assistant.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    async def wait_up(self, timeout: float) -> None:
        self.session = aiohttp.ClientSession()
        if self.proc is None:
            self.start()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Home Assistant exited ({self.proc.returncode}); see {self.cfg}")
            try:
                async with self.session.get(f"{self.base}/api/onboarding") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("Home Assistant did not answer in time")
            await asyncio.sleep(1)

    async def onboard(self) -> None:
        client_id = f"{self.base}/"
        async with self.session.post(
            f"{self.base}/api/onboarding/users",
            json={"client_id": client_id, "name": "Owner", "username": "owner",
                  "password": "meterkast-e2e", "language": "en"},
        ) as r:
            body = await r.json()
            assert r.status == 200, f"onboarding: {r.status} {body}"
        async with self.session.post(
            f"{self.base}/auth/token",
            data={"grant_type": "authorization_code", "code": body["auth_code"], "client_id": client_id},
        ) as r:
            tok = await r.json()
            assert r.status == 200, f"token: {r.status} {tok}"
        self.token = tok["access_token"]
        await self.connect_ws()

    async def connect_ws(self) -> None:
        self.ws = await self.session.ws_connect(f"{self.base}/api/websocket")
        assert (await self.ws.receive_json())["type"] == "auth_required"
        await self.ws.send_json({"type": "auth", "access_token": self.token})
        assert (await self.ws.receive_json())["type"] == "auth_ok"
        asyncio.get_running_loop().create_task(self._ws_reader())

    async def _ws_reader(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            m = json.loads(msg.data)
            if m.get("type") == "event":
                await self.events.put(m["event"])
            elif (f := self.pending.pop(m.get("id"), None)) is not None and not f.done():
                f.set_result(m)

    async def call(self, msg: dict) -> object:
        async with self.ws_lock:
            self.ws_id += 1
            i = self.ws_id
            f = asyncio.get_running_loop().create_future()
            self.pending[i] = f
            await self.ws.send_json({**msg, "id": i})
        m = await asyncio.wait_for(f, 60)
        if not m.get("success", False):
            raise RuntimeError(f"websocket {msg['type']}: {m.get('error')}")
        return m.get("result")

    async def rest(self, method: str, path: str, body: object = None) -> object:
        async with self.session.request(
            method, f"{self.base}{path}", json=body,
            headers={"Authorization": f"Bearer {self.token}"},
        ) as r:
            text = await r.text()
            if r.status >= 400:
                raise RuntimeError(f"{method} {path}: {r.status} {text}")
            return json.loads(text) if text else None

    async def flow(self, handler: str, *steps: dict, options: bool = False) -> dict:
        """A config (or options) flow through the REST API, one form per step."""
        url = "/api/config/config_entries/" + ("options/flow" if options else "flow")
        r = await self.rest("POST", url, {"handler": handler, "show_advanced_options": False})
        for data in steps:
            if r.get("type") != "form":
                raise RuntimeError(f"{handler} flow: expected a form, got {r}")
            if r.get("errors"):
                raise RuntimeError(f"{handler} flow: errors {r['errors']}")
            r = await self.rest("POST", f"{url}/{r['flow_id']}", data)
        if r.get("type") != "create_entry":
            raise RuntimeError(f"{handler} flow did not create an entry: {r}")
        return r

    async def states(self) -> dict[str, dict]:
        return {s["entity_id"]: s for s in await self.rest("GET", "/api/states")}

    async def stop(self) -> None:
        if self.session:
            await self.session.close()
            self.session = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# ------------------------------------------------------------------ expectations

ENERGY = ("kWh", "energy", "total_increasing")
GAS = ("m³", "gas", "total_increasing")
POWER = ("W", "power", "measurement")
POWER_KW = ("kW", "power", "measurement")
VOLTAGE = ("V", "voltage", "measurement")
CURRENT = ("A", "current", "measurement")


def mqtt_kind(field: str):
    if re.fullmatch(r"total_power_(import|export)(_t\d)?_kwh", field):
        return ENERGY
    if field in ("total_gas_m3", "gas_meter"):
        return GAS
    if re.fullmatch(r"active_power(_l\d)?_w", field):
        return POWER
    if field.startswith("active_voltage_"):
        return VOLTAGE
    if field.startswith("active_current_"):
        return CURRENT
    if field.endswith("_count"):
        return (None, None, "total_increasing")
    return None


PHASE_FIELDS = [f"active_{q}_l{i}_{u}" for q, u in (("power", "w"), ("voltage", "v"), ("current", "a")) for i in (1, 2, 3)]
ENERGY_FIELDS = [f"total_power_{d}{t}_kwh" for d in ("import", "export") for t in ("", "_t1", "_t2")]
# What each integration must show for this meter (its own key names).
MQTT_REQUIRED = ENERGY_FIELDS + ["active_power_w"] + PHASE_FIELDS + ["gas_meter"]
HW_REQUIRED = ENERGY_FIELDS + ["active_power_w", "active_tariff"] + PHASE_FIELDS + ["gas"]
# DSMR's keys, the OBIS code each shows, and their kind.
DSMR_OBIS = {
    "electricity_used_tariff_1": ("1-0:1.8.1", ENERGY),
    "electricity_used_tariff_2": ("1-0:1.8.2", ENERGY),
    "electricity_delivered_tariff_1": ("1-0:2.8.1", ENERGY),
    "electricity_delivered_tariff_2": ("1-0:2.8.2", ENERGY),
    "current_electricity_usage": ("1-0:1.7.0", POWER_KW),
    "current_electricity_delivery": ("1-0:2.7.0", POWER_KW),
    "instantaneous_voltage_l1": ("1-0:32.7.0", VOLTAGE),
    "instantaneous_voltage_l2": ("1-0:52.7.0", VOLTAGE),
    "instantaneous_voltage_l3": ("1-0:72.7.0", VOLTAGE),
    "instantaneous_current_l1": ("1-0:31.7.0", CURRENT),
    "instantaneous_current_l2": ("1-0:51.7.0", CURRENT),
    "instantaneous_current_l3": ("1-0:71.7.0", CURRENT),
    "instantaneous_active_power_l1_positive": ("1-0:21.7.0", POWER_KW),
    "instantaneous_active_power_l2_positive": ("1-0:41.7.0", POWER_KW),
    "instantaneous_active_power_l3_positive": ("1-0:61.7.0", POWER_KW),
    "gas": ("0-1:24.2.1", GAS),
}


def same_number(a: object, b: object) -> bool:
    try:
        return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(b)))
    except (TypeError, ValueError):
        return False


def check_entity(fail: Failures, checked: list, integration: str, key: str, st: dict | None,
                 kind, expected) -> None:
    name = f"{integration}:{key}"
    if not fail.check(st is not None, f"{name}: no entity with a state"):
        return
    a = st["attributes"]
    unit, dc, sc = kind
    got = (a.get("unit_of_measurement"), a.get("device_class"), a.get("state_class"))
    fail.check(got == (unit, dc, sc), f"{name} ({st['entity_id']}): unit/device/state class {got}, expected {kind}")
    if expected is not None:
        fail.check(same_number(st["state"], expected),
                   f"{name} ({st['entity_id']}): {st['state']} != {expected} from /api/v1/now")
    checked.append((integration, st["entity_id"], st["state"], unit or ""))


# ------------------------------------------------------------------ the suite

async def http_json(session: aiohttp.ClientSession, url: str) -> object:
    async with session.get(url) as r:
        return await r.json(content_type=None)


async def suite(args, work: str, fail: Failures, checked: list) -> None:
    feeder = Feeder(args.bin, split=args.feed == "split")
    feeder.start()
    tag = f"mk-e2e-{os.getpid()}"
    mk_port, bridge = free_port(), free_port()
    mk_log = open(os.path.join(work, "meterkast.log"), "w")
    mk = subprocess.Popen(
        [args.bin, "run", "--db", os.path.join(work, "meterkast.db"),
         "--http", f"127.0.0.1:{mk_port}", "--tcp-bridge", f"127.0.0.1:{bridge}",
         "--source", f"tcp://127.0.0.1:{feeder.port}",
         "--mqtt", f"mqtt://127.0.0.1:{args.mqtt_port}", "--mqtt-base-topic", tag,
         "--mqtt-discovery-prefix", f"{tag}-discovery", "--mqtt-instance", "e2e", "--no-mdns"],
        stdout=subprocess.DEVNULL, stderr=mk_log,
    )
    ha = HomeAssistant(args.python, os.path.join(work, "ha-config"))
    mk_base = f"http://127.0.0.1:{mk_port}"
    try:
        async with aiohttp.ClientSession() as s:
            for _ in range(120):
                try:
                    now = await http_json(s, f"{mk_base}/api/v1/now")
                    if now:
                        break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.5)
            else:
                raise RuntimeError("meterkast served no reading within 60 s")
        log(f"meterkast reads the simulated meter; Home Assistant starting in {ha.cfg}")
        await ha.wait_up(args.ha_start_timeout)
        await ha.onboard()
        log("onboarded through the REST API")

        # The three integrations, as a user adds them.
        mqtt = await ha.flow("mqtt", {"broker": "127.0.0.1", "port": args.mqtt_port})
        await ha.flow(mqtt["result"]["entry_id"], {
            "discovery": True, "discovery_prefix": f"{tag}-discovery",
            "birth_enable": True, "birth_topic": f"{tag}-discovery/status",
            "will_enable": True, "will_topic": f"{tag}-ha/status",
        }, options=True)
        hw = await ha.flow("homewizard", {"ip_address": f"127.0.0.1:{mk_port}"})
        try:
            dsmr = await ha.flow("dsmr", {"type": "Network"},
                                 {"host": "127.0.0.1", "port": bridge, "dsmr_version": "5"})
            await ha.flow(dsmr["result"]["entry_id"], {"time_between_update": 0}, options=True)
        except RuntimeError as e:
            # Reported, and the other integrations are still checked.
            fail.check(False, f"dsmr through the bridge ({args.feed} reads): {e}")
            dsmr = None
        log("MQTT, HomeWizard and DSMR config flows done")

        # Entities disabled by default (voltages, currents, DSMR's telegram time) on,
        # then a restart, so that every integration starts as a user's would after
        # setting up (reloading them at run time is not what is under test here).
        wanted = {"mqtt", "homewizard"} | ({"dsmr"} if dsmr else set())
        for _ in range(60):
            reg = await ha.call({"type": "config/entity_registry/list"})
            if {e["platform"] for e in reg} >= wanted:
                break
            await asyncio.sleep(1)
        for e in reg:
            if e["platform"] in ("homewizard", "dsmr") and e.get("disabled_by") == "integration":
                await ha.call({"type": "config/entity_registry/update", "entity_id": e["entity_id"],
                               "disabled_by": None})
        await ha.restart(args.ha_start_timeout)
        log("Home Assistant restarted with the integrations set up")
        reg = await ha.call({"type": "config/entity_registry/list"})
        for _ in range(60):
            states = await ha.states()
            ours = [e for e in reg if e["platform"] in wanted and not e.get("disabled_by")]
            if ours and all(states.get(e["entity_id"], {}).get("state") not in (None, "unavailable", "unknown")
                            for e in ours if e["platform"] != "mqtt"):
                break
            await asyncio.sleep(1)
        by_uid = {(e["platform"], e["unique_id"]): e["entity_id"] for e in reg}

        # DSMR through the bridge: every telegram fed while reads are split.
        stamp_eid = next((eid for (p, uid), eid in by_uid.items() if p == "dsmr" and uid.endswith("_timestamp")), None)
        if dsmr and fail.check(stamp_eid is not None, "dsmr: no telegram-time entity"):
            await ha.call({"type": "subscribe_events", "event_type": "state_changed"})
            t0 = time.time()
            await asyncio.sleep(args.dsmr_seconds)
            feeder.paused.set()
            t1 = time.time()
            await asyncio.sleep(args.settle)
            seen = set()
            while not ha.events.empty():
                ev = ha.events.get_nowait()
                d = ev.get("data", {})
                if d.get("entity_id") == stamp_eid and d.get("new_state"):
                    seen.add(d["new_state"]["state"])
            # Telegrams written wholly inside the window (one second of margin at its start).
            fed = [ts for at, ts in feeder.sent if t0 + 1 < at <= t1]
            missing = [ts for ts in fed if ts not in seen]
            log(f"DSMR through the bridge ({args.feed} reads): {len(fed) - len(missing)} of {len(fed)} telegrams")
            fail.check(len(fed) >= args.dsmr_seconds // 2, f"dsmr: only {len(fed)} telegrams fed in {args.dsmr_seconds} s")
            fail.check(not missing, f"dsmr: {len(missing)} of {len(fed)} telegrams never reached Home Assistant "
                                    f"(first missing {missing[:3]})")
        else:
            feeder.paused.set()
            await asyncio.sleep(args.settle)

        # Values: the meter is quiet now; every integration shows the last reading.
        async with aiohttp.ClientSession() as s:
            now = (await http_json(s, f"{mk_base}/api/v1/now"))[0]
        reading, objects = now["reading"], now["objects"]
        states = await ha.states()
        meter = now["meter"]
        node = "meterkast_" + re.sub(r"[^A-Za-z0-9]", "_", meter)
        gas_ext = next(x for x in reading["external"] if x["type"] == "gas_meter")
        gas_node = "meterkast_" + re.sub(r"[^A-Za-z0-9]", "_", gas_ext["unique_id"])

        # MQTT discovery: every field meterkast offers.
        mqtt_fields = {}
        for (p, uid), eid in by_uid.items():
            if p != "mqtt":
                continue
            if uid.startswith(node + "_"):
                mqtt_fields[uid[len(node) + 1:]] = eid
            elif uid.startswith(gas_node + "_"):
                mqtt_fields["gas_meter"] = eid
        for f in MQTT_REQUIRED:
            fail.check(f in mqtt_fields, f"mqtt:{f}: no entity")
        for f, eid in sorted(mqtt_fields.items()):
            kind = mqtt_kind(f)
            if not fail.check(kind is not None, f"mqtt:{f}: unexpected entity {eid}"):
                continue
            expected = gas_ext["value"] if f == "gas_meter" else reading.get(f)
            check_entity(fail, checked, "mqtt", f, states.get(eid), kind, expected)

        # HomeWizard: the dongle's keys are meterkast's field names.
        hw_keys = {}
        for (p, uid), eid in by_uid.items():
            if p != "homewizard":
                continue
            # Its unique ids are PRODUCT-TYPE_SERIAL_KEY.
            m = re.match(r"^[A-Za-z0-9-]+_[0-9a-f]{12}_(.+)$", uid)
            key = m.group(1) if m else uid
            if states.get(eid, {}).get("attributes", {}).get("device_class") == "gas":
                key = "gas"
            hw_keys[key] = eid
        for k in HW_REQUIRED:
            if not fail.check(k in hw_keys, f"homewizard:{k}: no entity (has {sorted(hw_keys)})"):
                continue
            st = states.get(hw_keys[k])
            if k == "active_tariff":
                if fail.check(st is not None, "homewizard:active_tariff: no state"):
                    fail.check(st["state"] == str(reading["active_tariff"]),
                               f"homewizard:active_tariff {st['state']} != {reading['active_tariff']}")
                    checked.append(("homewizard", st["entity_id"], st["state"], ""))
                continue
            if k == "gas":
                check_entity(fail, checked, "homewizard", k, st, GAS, gas_ext["value"])
                continue
            check_entity(fail, checked, "homewizard", k, st, mqtt_kind(k), reading.get(k))

        # DSMR: the raw registers, as the telegram carries them.
        dsmr_keys = {}
        for (p, uid), eid in by_uid.items():
            if p != "dsmr":
                continue
            if states.get(eid, {}).get("attributes", {}).get("device_class") == "gas":
                dsmr_keys["gas"] = eid
            else:
                dsmr_keys[uid.split("_", 1)[1] if "_" in uid else uid] = eid
        for k, (obis, kind) in DSMR_OBIS.items() if dsmr else ():
            if not fail.check(k in dsmr_keys, f"dsmr:{k}: no entity (has {sorted(dsmr_keys)})"):
                continue
            check_entity(fail, checked, "dsmr", k, states.get(dsmr_keys[k]), kind,
                         (objects.get(obis) or {}).get("value"))

        # The values are checked: the meter talks again, as a real one does. DSMR's reader
        # drops a connection that has been silent for two minutes (its keep-alive check),
        # and waiting for the recorder's statistics below can take five.
        feeder.paused.clear()

        # The Energy dashboard: import/export per tariff and gas, from all three.
        def eid(integration, key):
            return {"mqtt": mqtt_fields, "homewizard": hw_keys, "dsmr": dsmr_keys}[integration].get(key)
        flow_from, flow_to, gas = [], [], []
        for integ, imp, exp, g in (
            ("mqtt", ("total_power_import_t1_kwh", "total_power_import_t2_kwh"),
             ("total_power_export_t1_kwh", "total_power_export_t2_kwh"), "gas_meter"),
            ("homewizard", ("total_power_import_t1_kwh", "total_power_import_t2_kwh"),
             ("total_power_export_t1_kwh", "total_power_export_t2_kwh"), "gas"),
            ("dsmr", ("electricity_used_tariff_1", "electricity_used_tariff_2"),
             ("electricity_delivered_tariff_1", "electricity_delivered_tariff_2"), "gas"),
        ):
            flow_from += [{"stat_energy_from": eid(integ, k), "stat_cost": None, "entity_energy_price": None,
                           "number_energy_price": None} for k in imp if eid(integ, k)]
            flow_to += [{"stat_energy_to": eid(integ, k), "stat_compensation": None, "entity_energy_price": None,
                         "number_energy_price": None} for k in exp if eid(integ, k)]
            if eid(integ, g):
                gas.append({"type": "gas", "stat_energy_from": eid(integ, g), "stat_cost": None,
                            "entity_energy_price": None, "number_energy_price": None})
        await ha.call({"type": "energy/save_prefs", "energy_sources": [
            {"type": "grid", "flow_from": flow_from, "flow_to": flow_to, "cost_adjustment_day": 0},
            *gas], "device_consumption": []})
        # The recorder compiles statistics every 5 minutes, and the Energy dashboard needs
        # them: until then energy/validate says statistics_not_defined, so wait for that
        # (and only that) to go; any other issue fails at once.
        deadline = time.monotonic() + args.stats_timeout
        while True:
            v = await ha.call({"type": "energy/validate"})
            issues = [i for src in v.get("energy_sources", []) for i in src] + \
                     [i for d in v.get("device_consumption", []) for i in d]
            waiting = issues and all(i["type"] == "statistics_not_defined" for i in issues)
            if not waiting or time.monotonic() > deadline:
                break
            await asyncio.sleep(10)
        n = 3 if dsmr else 2
        fail.check(len(flow_from) == 2 * n and len(flow_to) == 2 * n and len(gas) == n,
                   f"energy: {len(flow_from)} import, {len(flow_to)} export, {len(gas)} gas sources "
                   f"({2 * n}, {2 * n}, {n} expected)")
        fail.check(not issues, f"energy/validate: {json.dumps(issues)}")
        log(f"energy/validate: {len(issues)} issues for {len(flow_from) + len(flow_to) + len(gas)} sources")

        # Home Assistant's log since the restart: no error about the three integrations.
        errors = [line for line in ha.log_text().splitlines()
                  if re.search(r"\b(ERROR|CRITICAL)\b", line)
                  and re.search(r"mqtt|homewizard|dsmr", line, re.I)]
        fail.check(not errors, "Home Assistant logged errors:\n  " + "\n  ".join(errors[:20]))
    finally:
        await ha.stop()
        mk.send_signal(signal.SIGTERM)
        try:
            mk.wait(20)
        except subprocess.TimeoutExpired:
            mk.kill()
        feeder.stop()
        clear_retained(args.mqtt_port, [f"{tag}/#", f"{tag}-discovery/#", f"{tag}-ha/#"])


def clear_retained(port: int, filters: list[str]) -> None:
    """Removes the retained messages this run left on the shared broker."""
    import paho.mqtt.client as mqtt

    topics: set[str] = set()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.on_message = lambda _c, _u, m: topics.add(m.topic) if m.retain and m.payload else None
    try:
        c.connect("127.0.0.1", port)
    except OSError:
        return
    c.loop_start()
    for f in filters:
        c.subscribe(f)
    time.sleep(1.5)
    for t in topics:
        c.publish(t, b"", retain=True, qos=1).wait_for_publish(5)
    c.loop_stop()
    c.disconnect()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="the meterkast binary")
    ap.add_argument("--python", default=sys.executable, help="the venv's Python with Home Assistant")
    ap.add_argument("--mqtt-port", type=int, default=1883, help="the local Mosquitto's port")
    ap.add_argument("--feed", choices=("split", "whole"), default="split",
                    help="split: one byte per write (default); whole: a telegram per write")
    ap.add_argument("--dsmr-seconds", type=int, default=60, help="how long to count DSMR telegrams")
    ap.add_argument("--settle", type=float, default=8, help="seconds for the last values to arrive")
    ap.add_argument("--ha-start-timeout", type=float, default=300)
    ap.add_argument("--stats-timeout", type=float, default=400,
                    help="seconds to wait for the recorder's first 5-minute statistics")
    ap.add_argument("--timeout", type=float, default=900, help="the whole suite's time box, seconds")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (HA config and logs)")
    args = ap.parse_args()

    started = time.monotonic()
    work = tempfile.mkdtemp(prefix="meterkast-ha-e2e-")
    fail, checked = Failures(), []
    try:
        asyncio.run(asyncio.wait_for(suite(args, work, fail, checked), args.timeout))
    except TimeoutError:
        fail.check(False, f"time box of {args.timeout:.0f} s exceeded")
    except Exception as e:  # noqa: BLE001 - every failure is reported, then the exit code says it
        fail.check(False, f"{type(e).__name__}: {e}")
    print(f"\nHome Assistant entities checked ({len(checked)}):")
    for integ, eid, state, unit in sorted(checked):
        print(f"  {integ:<11} {eid:<60} {state} {unit}")
    took = time.monotonic() - started
    if fail.items:
        print(f"\n{len(fail.items)} failures (work folder kept: {work}):")
        for f in fail.items:
            print(f"  - {f}")
        print(f"Home Assistant end-to-end: FAILED in {took:.0f} s")
        print(f"0 passed, 1 failed")
        return 1
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(f"Home Assistant end-to-end: passed in {took:.0f} s")
    print("1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
