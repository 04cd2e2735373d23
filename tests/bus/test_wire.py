"""An independent raw Zenoh peer, written from REFERENCE.md section 1 without mm_ros.bus.

It checks what our nodes put on the wire, and that rmw_zenoh-format samples reach our nodes.
Also: bad input on the wire is counted and the subscriber keeps working.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mm_ros.bus import RELIABLE
from mm_ros.bus.zenoh_bus import wait_until
from mm_ros.interfaces import get_store

STRING_KEY = (
    "0/chatter/std_msgs::msg::dds_::String_/RIHS01_df668c740482bbd48fb39d76a70dfd4b"
    "d59db1288021743503259e948f6b1a18"
)
RAW_PEER = Path(__file__).with_name("raw_peer.py")


def raw_session(endpoint: str):
    import zenoh

    config = zenoh.Config()
    config.insert_json5("mode", '"peer"')
    config.insert_json5("connect/endpoints", json.dumps([endpoint]))
    config.insert_json5("scouting/multicast/enabled", "false")
    return zenoh.open(config)


def cdr_string(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return b"\x00\x01\x00\x00" + struct.pack("<I", len(raw)) + raw


def attachment(seq: int, gid: bytes) -> bytes:
    return struct.pack("<qq", seq, time.time_ns()) + b"\x10" + gid


def test_our_publisher_on_the_wire(router: str, make_zenoh) -> None:
    samples: list = []
    tokens: list[str] = []
    with raw_session(router) as raw:
        raw.declare_subscriber(
            STRING_KEY,
            lambda s: samples.append(
                (str(s.key_expr), s.payload.to_bytes(), s.attachment.to_bytes())
            ),
        )
        raw.liveliness().declare_subscriber(
            "@ros2_lv/0/**", lambda s: tokens.append(str(s.key_expr))
        )
        talker = make_zenoh("talker")
        pub = talker.create_publisher("/chatter", "std_msgs/msg/String", RELIABLE)
        expected_token = (
            f"@ros2_lv/0/{talker.zid}/0/1/MP/%/%/talker/%chatter/"
            "std_msgs::msg::dds_::String_/RIHS01_df668c740482bbd48fb39d76a70dfd4b"
            "d59db1288021743503259e948f6b1a18/::,10:,:,:,,"
        )
        wait_until(lambda: expected_token in tokens, 10, "the publisher's token")
        assert f"@ros2_lv/0/{talker.zid}/0/0/NN/%/%/talker" in tokens
        deadline = time.monotonic() + 10
        while len(samples) < 3:
            assert time.monotonic() < deadline
            pub.publish({"data": f"n{len(samples)}"})
            time.sleep(0.05)
    keys, payloads, attachments = zip(*samples[:3], strict=True)
    assert set(keys) == {STRING_KEY}
    assert all(len(a) == 33 for a in attachments)
    sequences = [struct.unpack_from("<q", a)[0] for a in attachments]
    assert sequences == list(range(sequences[0], sequences[0] + 3))
    assert all(a[16] == 0x10 for a in attachments)
    assert len({a[17:] for a in attachments}) == 1  # one stable GID
    stamps = [struct.unpack_from("<q", a, 8)[0] for a in attachments]
    assert abs(stamps[0] - time.time_ns()) < 60e9
    text = get_store().deserialize(payloads[-1], "std_msgs/msg/String").data
    assert text.startswith("n")


def test_rmw_zenoh_sample_reaches_our_subscription(router: str, make_zenoh) -> None:
    listener = make_zenoh("listener")
    got: list[str] = []
    sub = listener.create_subscription(
        "/chatter", "std_msgs/msg/String", lambda m: got.append(m.data), RELIABLE
    )
    gid = hashlib.sha256(b"raw").digest()[:16]
    with raw_session(router) as raw:
        pub = raw.declare_publisher(STRING_KEY)
        seq = 0
        deadline = time.monotonic() + 10
        while not got:
            assert time.monotonic() < deadline
            seq += 1
            pub.put(cdr_string("from a robot"), attachment=attachment(seq, gid))
            time.sleep(0.05)
        # bad input: each is counted by reason and the subscription keeps working
        pub.put(cdr_string("no attachment"))
        pub.put(cdr_string("short attachment"), attachment=attachment(seq, gid)[:20])
        pub.put(b"\x00\x01\x00\x00\xff\xff\xff\x7f", attachment=attachment(seq + 1, gid))
        listener.max_payload_bytes = 64
        pub.put(cdr_string("x" * 100), attachment=attachment(seq + 2, gid))
        wait_until(lambda: sum(sub.stats.rejected.values()) == 4, 10, "4 rejects")
        listener.max_payload_bytes = 1 << 20
        before = len(got)
        pub.put(cdr_string("still alive"), attachment=attachment(seq + 3, gid))
        wait_until(lambda: len(got) > before, 10, "a good sample after the bad ones")
    assert got[0] == "from a robot"
    assert got[-1] == "still alive"
    assert sub.stats.rejected == {"attachment": 2, "cdr": 1, "oversize": 1}


def test_exact_zenoh_of_rmw_zenoh_jazzy(router: str, make_zenoh, tmp_path: Path) -> None:
    """The peer runs eclipse-zenoh 1.6.2 (what rmw_zenoh Jazzy bundles) in its own venv."""
    venv = Path(
        os.environ.get("MM_ROS_ZENOH_162_VENV", Path(__file__).parents[2] / ".ros" / "zenoh-1.6.2")
    )
    python = venv / "bin" / "python"
    if not python.exists():
        proc = subprocess.run(
            [sys.executable, "-m", "venv", str(venv)], check=False, capture_output=True, text=True
        )
        proc = (
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", "eclipse-zenoh==1.6.2"],
                check=False,
                capture_output=True,
                text=True,
                timeout=600,
            )
            if proc.returncode == 0
            else proc
        )
        if proc.returncode:
            pytest.skip(f"cannot install eclipse-zenoh==1.6.2 here: {proc.stderr[-300:]}")
    listener = make_zenoh("listener")
    got: list[str] = []
    listener.create_subscription(
        "/chatter", "std_msgs/msg/String", lambda m: got.append(m.data), RELIABLE
    )
    talker = make_zenoh("talker")
    pub = talker.create_publisher("/robot_says", "std_msgs/msg/String", RELIABLE)
    peer = subprocess.Popen(
        [str(python), str(RAW_PEER), router, STRING_KEY], stdout=subprocess.PIPE, text=True
    )
    try:
        assert peer.stdout is not None
        deadline = time.monotonic() + 30
        while not got:
            assert time.monotonic() < deadline, "no sample from the 1.6.2 peer"
            time.sleep(0.05)
        for _ in range(50):
            pub.publish({"data": "to the old peer"})
            time.sleep(0.02)
        out, _ = peer.communicate(timeout=60)  # 20 s of exchange + 15 s for the tokens, at most
    finally:
        peer.kill()
    report = json.loads(out.strip().splitlines()[-1])
    assert report["zenoh"].startswith("1.6.2")
    assert report["received"] > 0
    assert report["attachment_len"] == 33
    assert report["text"] == "to the old peer"
    assert any(t.endswith("/NN/%/%/talker") for t in report["tokens"])
    assert got[0] == "hello from zenoh 1.6.2"


def test_a_result_that_does_not_fit_its_type_still_ends_the_goal(make_zenoh) -> None:
    """An execute returning an out-of-range value: the goal ends ABORTED, never hangs."""
    from mm_ros.bus.protocol import GoalStatus

    server, caller = make_zenoh("server"), make_zenoh("caller")
    server.create_action_server(
        "/fib", "example_interfaces/action/Fibonacci", lambda goal: {"sequence": [2**40]}
    )
    client = caller.create_action_client("/fib", "example_interfaces/action/Fibonacci")
    assert client.wait_for_server(10)
    status, result = client.send_goal({"order": 3}).result(10)
    assert status == GoalStatus.ABORTED
    assert list(result.sequence) == []
