"""Reliability at volume: 10 000 malformed samples against a model_service process, and faults.

Real processes over the real zenoh bus (tests/reliability/graph.py): ``mm-ros router``, a
model_service with the embedded mm-tiny, a constant scene streamed at sensor rates.

- Fuzz: ``BURSTS`` bursts of ``BURST`` malformed samples (tests/reliability/fuzz.py: random,
  truncated, huge declared lengths, 0xff runs, empty, broken attachments, absurd values and
  stamps) over every subscribed topic. After each burst: the process is alive, the same normal
  question gets the same answer as before any fuzzing, and its RSS is sampled.
- Faults: the router killed (kill -9) and restarted ``ROUTER_KILLS`` times with 4 questions in
  flight each (lost = a goal that never ended, neither result nor error); model_service killed
  and restarted once. Reconnect = from the kill to the first answered question.

Budgets: lost goals 0; every burst survived; RSS growth over the whole run within
``RSS_GROWTH_BOUND_MIB`` (after a first burst has warmed the allocator and caches).

    python bench/run.py reliability      (make fuzz)
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mm_ros.bus.protocol import BusError, GoalStatus
from mm_ros.nodes.convert import answer_value
from mm_ros.nodes.lifecycle import wait_until_active
from tests.reliability.fuzz import KINDS, TOPICS, Fuzzer, Sender
from tests.reliability.graph import (
    QUESTION,
    READY_S,
    SERVICE_PARAMS,
    Graph,
    SensorStream,
    ask,
    rss_mib,
)

SEED = 24
BURSTS = 20
BURST = 500  # 20 x 500 = 10 000 malformed samples
ROUTER_KILLS = 3
IN_FLIGHT = 4
RSS_GROWTH_BOUND_MIB = 50.0  # after warm-up; a leak of 5 KiB per bad sample would exceed it


def ask_answered(client: Any, deadline_s: float, why: list[str] | None = None) -> tuple[Any, float]:
    """Ask until answered without error (queue full, reconnecting); return it and the wait.

    ``why`` collects the errors of the attempts that failed.
    """
    started = time.monotonic()
    while True:
        try:
            status, answer = ask(client, {"question": QUESTION}, timeout_s=10)
            if status == GoalStatus.SUCCEEDED:
                return answer, time.monotonic() - started
            error = answer.error
        except BusError as err:
            error = str(err)
        if why is not None:
            why.append(error[:160])
        if time.monotonic() - started > deadline_s:
            return None, time.monotonic() - started
        time.sleep(0.1)


def fuzz(graph: Graph, client: Any, baseline: Any) -> dict[str, Any]:
    proc = graph.processes["model_service"]
    sender = Sender(graph.endpoint, client.store)
    fuzzer = Fuzzer(client.store, SEED)
    topics = list(TOPICS)
    sent = survived = same = 0
    rss: list[float] = []
    waits: list[float] = []
    failures: dict[str, int] = {}
    by_kind = dict.fromkeys(KINDS, 0)
    started = time.monotonic()
    try:
        for burst in range(BURSTS):
            for i in range(BURST):
                topic = topics[(burst * BURST + i) % len(topics)]
                kind = fuzzer.rng.choice(KINDS)
                sender.put(topic, TOPICS[topic], *fuzzer.malformed(TOPICS[topic], kind))
                by_kind[kind] += 1
                sent += 1
            time.sleep(0.5)  # the stream's frames are the newest again
            why: list[str] = []
            answer, waited = ask_answered(client, 60, why)
            waits.append(round(waited, 2))
            for error in why:
                failures[error] = failures.get(error, 0) + 1
            alive = proc.poll() is None
            survived += alive and answer is not None
            same += answer is not None and answer.text == baseline.text
            rss.append(rss_mib(proc.pid) if alive else float("nan"))
    finally:
        sender.close()
    log = graph.log_full("model_service")
    return {
        "sent": sent,
        "by_kind": by_kind,
        "bursts": BURSTS,
        "bursts_survived": survived,
        "same_answer_after_burst": same,
        "rss_mib_after_each_burst": [round(r, 1) for r in rss],
        "rss_growth_mib": round(rss[-1] - rss[0], 1),
        "answer_wait_s_after_each_burst": waits,
        "failed_attempts_by_error": failures,
        "drop_log_lines": sum("dropped" in line for line in log.splitlines()),
        "fuzz_s": round(time.monotonic() - started, 1),
    }


def router_kills(graph: Graph, client: Any) -> dict[str, Any]:
    action = client.create_action_client("/mm/ask", "mm_ros/action/Ask")
    ended: list[str] = []
    lost = 0
    reconnect_s: list[float] = []
    for kill in range(ROUTER_KILLS):
        handles = [
            action.send_goal({"question": f"{QUESTION} {kill}.{i}"}) for i in range(IN_FLIGHT)
        ]
        killed_at = time.monotonic()
        graph.kill("router")
        outcome: list[str] = []

        def wait(handle: Any, outcome: list[str] = outcome) -> None:
            try:
                status, result = handle.result(30)
                error = answer_value(result.answer).error
                outcome.append("answered" if status == GoalStatus.SUCCEEDED else f"error: {error}")
            except BusError as err:
                outcome.append(f"error: {err}")

        waiters = [threading.Thread(target=wait, args=(h,)) for h in handles]
        for waiter in waiters:
            waiter.start()
        graph.start_router()
        for waiter in waiters:
            waiter.join(45)
        lost += IN_FLIGHT - len(outcome)
        ended += outcome
        answer, _ = ask_answered(client, 60)
        reconnect_s.append(round(time.monotonic() - killed_at, 2) if answer else float("nan"))
    return {
        "router_kills": ROUTER_KILLS,
        "goals_in_flight": ROUTER_KILLS * IN_FLIGHT,
        "goals_answered": sum(e == "answered" for e in ended),
        "goals_ended_with_error": sum(e.startswith("error") for e in ended),
        "goals_lost": lost,
        "router_reconnect_s": reconnect_s,
        "errors_seen": sorted({e[:120] for e in ended if e.startswith("error")}),
    }


def service_restart(graph: Graph, client: Any) -> dict[str, Any]:
    action = client.create_action_client("/mm/ask", "mm_ros/action/Ask")
    handle = action.send_goal({"question": QUESTION})
    killed_at = time.monotonic()
    graph.kill("model_service")
    try:
        handle.result(10)
        ending = "answered before the kill"
    except BusError:
        ending = "error within its 10 s deadline"
    heard_s = time.monotonic() - killed_at
    graph.start_node("model_service", *SERVICE_PARAMS)
    wait_until_active(client, "/mm", READY_S)
    answer, _ = ask_answered(client, 60)
    return {
        "waiting_client": ending,
        "waiting_client_heard_s": round(heard_s, 2),
        "service_back_s": round(time.monotonic() - killed_at, 2) if answer else float("nan"),
    }


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mm-reliability-") as folder:
        graph = Graph(Path(folder))
        graph.start_router()
        client = graph.client("reliability_bench")
        stream = SensorStream(client)
        graph.start_node("model_service", *SERVICE_PARAMS)
        try:
            if not wait_until_active(client, "/mm", READY_S):
                raise RuntimeError(graph.log("model_service"))
            baseline = None
            deadline = time.monotonic() + 60
            while baseline is None or len(baseline.modalities) < 3:
                baseline, _ = ask_answered(client, 60)
                if time.monotonic() > deadline:
                    raise RuntimeError("no answer using all three modalities")
            fuzzed = fuzz(graph, client, baseline)
            faults = router_kills(graph, client)
            restart = service_restart(graph, client)
        finally:
            stream.close()
            client.close()
            graph.stop()
    growth = fuzzed["rss_growth_mib"]
    budgets = [
        {
            "what": "goals lost (router kill -9 with goals in flight)",
            "value": faults["goals_lost"],
            "limit": 0,
            "met": faults["goals_lost"] == 0,
        },
        {
            "what": "bursts survived (alive, answered)",
            "value": fuzzed["bursts_survived"],
            "limit": BURSTS,
            "met": fuzzed["bursts_survived"] == BURSTS,
        },
        {
            "what": "model_service RSS growth over the fuzz run, MiB",
            "value": growth,
            "limit": RSS_GROWTH_BOUND_MIB,
            "met": growth <= RSS_GROWTH_BOUND_MIB,
        },
    ]
    rows = [
        ["malformed samples sent", fuzzed["sent"]],
        ["bursts survived (alive + answered)", f"{fuzzed['bursts_survived']}/{BURSTS}"],
        ["same answer as before fuzzing", f"{fuzzed['same_answer_after_burst']}/{BURSTS}"],
        ["drop log lines for them", fuzzed["drop_log_lines"]],
        [
            "RSS after burst 1 -> 20, MiB",
            f"{fuzzed['rss_mib_after_each_burst'][0]} -> {fuzzed['rss_mib_after_each_burst'][-1]}",
        ],
        ["goals in flight at router kill -9", faults["goals_in_flight"]],
        [
            "  answered / error result / lost",
            f"{faults['goals_answered']} / "
            f"{faults['goals_ended_with_error']} / {faults['goals_lost']}",
        ],
        ["router kill -> next answer, s", ", ".join(map(str, faults["router_reconnect_s"]))],
        ["model_service kill -> waiting client hears, s", restart["waiting_client_heard_s"]],
        ["model_service kill -> answering again, s", restart["service_back_s"]],
    ]
    summary = (
        f"{fuzzed['sent']} malformed samples in {BURSTS} bursts on all {len(TOPICS)} topics of a "
        f"model_service process: {fuzzed['bursts_survived']}/{BURSTS} bursts survived, the same "
        f"answer {fuzzed['same_answer_after_burst']}/{BURSTS} times, {fuzzed['drop_log_lines']} "
        f"log lines, RSS {growth:+.1f} MiB. Router killed {ROUTER_KILLS}x with {IN_FLIGHT} "
        f"questions in flight: {faults['goals_lost']} lost; answering again "
        f"{faults['router_reconnect_s']} s after each kill."
    )
    return {
        "title": "Reliability: fuzzed inputs and injected faults (real processes, zenoh bus)",
        "summary": summary,
        "columns": ["figure", "value"],
        "rows": rows,
        "budgets": budgets,
        "figures": {"fuzz": fuzzed, "router": faults, "service_restart": restart},
    }
