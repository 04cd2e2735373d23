"""Real ROS 2 recordings (../shared/data): CDR round trips and recorded type hashes."""

from __future__ import annotations

from pathlib import Path

import pytest

from mm_ros.interfaces import InterfaceStore
from mm_ros.interfaces.mcap import McapError, McapReader
from tests.cdr_layout import assert_same_cdr

BAGS = {
    "talker/talker.mcap": 20,
    "topics_and_services/topics_and_services.mcap": 13,
    "cdr_test/cdr_test_0.mcap": 7,
}


@pytest.mark.parametrize(("name", "count"), sorted(BAGS.items()))
def test_every_message_decodes_and_reencodes(shared_bags: Path, name: str, count: int) -> None:
    store = InterfaceStore()  # fresh: the bag's schemas add test_msgs types
    reader = McapReader(shared_bags / name)
    messages = list(reader.messages())
    assert len(messages) == count  # metadata.yaml's count (rosbags' Reader yields 0 for talker)
    for schema in reader.schemas.values():
        store.add_schema(schema.data.decode(), schema.name)
    for message in messages:
        assert message.schema is not None
        typename = message.schema.name
        decoded = store.deserialize(message.data, typename)
        again = store.serialize(decoded, typename)
        assert_same_cdr(store._store.fielddefs, typename, again, message.data)


def test_talker_strings_are_the_recorded_text(shared_bags: Path) -> None:
    store = InterfaceStore()
    texts = [
        store.deserialize(m.data, "std_msgs/msg/String").data
        for m in McapReader(shared_bags / "talker/talker.mcap").messages()
        if m.channel.topic == "/topic"
    ]
    assert texts == [f"Hello, world! {i}" for i in range(10)]


def test_recorded_type_hashes_equal_ours(shared_bags: Path) -> None:
    store = InterfaceStore()
    checked = 0
    for name in BAGS:
        reader = McapReader(shared_bags / name)
        list(reader.messages())
        for channel in reader.channels.values():
            recorded = channel.metadata.get("topic_type_hash")
            if not recorded:
                continue  # recorded before Jazzy: no hash in the file
            schema = reader.schemas[channel.schema_id]
            assert store.schema_hash(schema.data.decode(), schema.name) == recorded, channel.topic
            checked += 1
    assert checked >= 5


def test_truncated_mcap_is_a_clear_error(shared_bags: Path, tmp_path: Path) -> None:
    data = (shared_bags / "talker/talker.mcap").read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(McapError, match=r"expected \d+ more bytes"):
        list(McapReader(cut).messages())
    bad = tmp_path / "bad.mcap"
    bad.write_bytes(b"not an mcap file")
    with pytest.raises(McapError, match="magic"):
        list(McapReader(bad).messages())
