"""A raw rmw_zenoh-format peer for any eclipse-zenoh version (run in its own venv).

    python raw_peer.py ENDPOINT STRING_KEY

Publishes std_msgs/String with the 33-byte attachment on STRING_KEY, listens on /robot_says,
collects liveliness tokens (until the test's node "talker" is among them, 15 s at most), and
prints one JSON report line.
"""

import json
import struct
import sys
import time
from importlib.metadata import version

import zenoh

endpoint, key = sys.argv[1], sys.argv[2]
config = zenoh.Config()
config.insert_json5("mode", '"peer"')
config.insert_json5("connect/endpoints", json.dumps([endpoint]))
config.insert_json5("scouting/multicast/enabled", "false")
report = {"zenoh": version("eclipse-zenoh"), "received": 0, "tokens": []}
listen_key = key.replace("/chatter/", "/robot_says/")


def on_sample(sample):
    report["received"] += 1
    payload = sample.payload.to_bytes()
    (length,) = struct.unpack_from("<I", payload, 4)
    report["text"] = payload[8 : 8 + length - 1].decode()
    report["attachment_len"] = len(sample.attachment.to_bytes())


def tokens(session):
    """Liveliness tokens the router knows; a session just opened may get a partial answer."""
    return {
        str(reply.ok.key_expr)
        for reply in session.liveliness().get("@ros2_lv/0/**", timeout=2)
        if reply.ok is not None
    }


with zenoh.open(config) as session:
    session.declare_subscriber(listen_key, on_sample)
    pub = session.declare_publisher(key)
    text = b"hello from zenoh 1.6.2\0"
    payload = b"\x00\x01\x00\x00" + struct.pack("<I", len(text)) + text
    deadline = time.monotonic() + 20
    seq = 0
    while time.monotonic() < deadline and report["received"] < 3:
        seq += 1
        attachment = struct.pack("<qq", seq, time.time_ns()) + b"\x10" + b"\x07" * 16
        pub.put(payload, attachment=attachment)
        time.sleep(0.05)
    # asked once the exchange has worked, until the talker's node token is among them (a
    # loaded router can answer a query only in part), the union kept as ZenohBus.graph does
    seen: set[str] = set()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not any(t.endswith("/talker") for t in seen):
        seen |= tokens(session)
    report["tokens"] = sorted(seen)
print(json.dumps(report), flush=True)
