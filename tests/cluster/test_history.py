"""The history checker on synthetic histories (no broker, a fake clock)."""

from __future__ import annotations

import threading

import pytest

from tests.cluster.history import CONFIRM, DELIVER, History


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def h(clock: Clock) -> History:
    return History(clock=clock)


def served(h: History, msg_id: str, node: str = "node1", redelivered: bool = False) -> None:
    """Published, confirmed, delivered and acked."""
    h.publish(msg_id, "p0", node)
    h.confirm(msg_id, "p0", node)
    h.deliver(msg_id, "c0", node, redelivered)
    h.ack(msg_id, "c0", node)


def test_a_clean_history_passes_with_its_figures(h: History) -> None:
    for i in range(5):
        served(h, f"m{i}")
    h.publish("u-gone", "p0", "node1")
    h.unknown("u-gone", "p0", "node1", reason="StreamLostError")
    h.publish("u-came", "p1", "node2")
    h.unknown("u-came", "p1", "node2")
    h.deliver("u-came", "c1", "node3", redelivered=False)
    h.ack("u-came", "c1", "node3")
    h.publish("pending", "p1", "node2")  # the run ended before its confirm
    verdict = h.check()
    verdict.assert_ok()
    f = verdict.figures
    assert (f["published"], f["confirmed"], f["unknown"], f["pending"]) == (8, 5, 2, 1)
    assert (f["delivered"], f["delivered_ids"], f["acked_ids"], f["unconfirmed_delivered"]) == (6, 6, 6, 1)
    assert "published 8: confirmed 5" in verdict.summary()


def test_redeliveries_are_allowed_any_number_of_times(h: History) -> None:
    served(h, "m")
    h.deliver("m", "c1", "node2", redelivered=True)
    h.deliver("m", "c2", "node3", redelivered=True)
    h.ack("m", "c2", "node3")
    verdict = h.check()
    assert verdict.ok, verdict.report()
    assert verdict.figures["redeliveries"] == 2


def test_a_confirmed_message_never_delivered_is_lost(h: History, clock: Clock) -> None:
    served(h, "fine")
    h.publish("gone", "p0", "node1")
    clock.now += 1.5
    h.confirm("gone", "p0", "node1")
    verdict = h.check()
    assert not verdict.ok
    assert verdict.lost == ["gone"]
    report = verdict.report()
    assert "LOST: confirmed but never delivered and acked: 1" in report
    assert "gone: publish by p0 via node1 at 0.000s; confirm by p0 via node1 at 1.500s" in report
    with pytest.raises(AssertionError, match="LOST"):
        verdict.assert_ok()


def test_a_confirmed_message_delivered_but_never_acked_is_lost(h: History) -> None:
    h.publish("m", "p0")
    h.confirm("m", "p0")
    h.deliver("m", "c0", "node2", redelivered=False)
    verdict = h.check()
    assert verdict.lost == ["m"]
    assert "deliver by c0 via node2" in verdict.report()


def test_a_nacked_or_returned_message_may_be_missing(h: History) -> None:
    h.publish("n", "p0")
    h.nack("n", "p0")
    h.publish("r", "p0")
    h.returned("r", "p0")
    verdict = h.check()
    assert verdict.ok, verdict.report()
    assert (verdict.figures["nacked"], verdict.figures["returned"]) == (1, 1)


def test_two_deliveries_as_new_are_a_double_delivery(h: History) -> None:
    served(h, "m")
    h.deliver("m", "c1", "node3", redelivered=False)
    verdict = h.check()
    assert verdict.doubles == ["m"]
    assert "DOUBLE: delivered with redelivered=false more than once: 1" in verdict.report()


def test_an_unconfirmed_message_may_arrive_only_once_as_new(h: History) -> None:
    h.publish("u", "p0")
    h.unknown("u", "p0")
    h.deliver("u", "c0", "node1", redelivered=False)
    h.deliver("u", "c1", "node2", redelivered=False)
    assert h.check().doubles == ["u"]


def test_a_delivery_nobody_published_is_a_phantom(h: History) -> None:
    served(h, "m")
    h.deliver("ghost", "c0", "node2", redelivered=False)
    verdict = h.check()
    assert verdict.phantoms == ["ghost"]
    assert "PHANTOM" in verdict.report()


def test_an_id_published_twice_is_reported_as_the_tests_own_bug(h: History) -> None:
    served(h, "m")
    h.publish("m", "p1")
    assert h.check().reused_ids == ["m"]


def test_the_report_lists_a_bounded_number_of_ids(h: History) -> None:
    for i in range(30):
        h.publish(f"m{i:02d}", "p0")
        h.confirm(f"m{i:02d}", "p0")
    report = h.check().report()
    assert "LOST: confirmed but never delivered and acked: 30" in report
    assert "... and 10 more" in report


def steady(h: History, clock: Clock, start: float, end: float, step: float = 0.1, queue: str = "q") -> None:
    """A confirm and a delivery every ``step`` seconds from ``start`` to ``end`` (relative)."""
    t = start
    while t <= end + 1e-9:
        clock.now = 100.0 + t
        msg_id = f"m{t:.3f}"
        h.publish(msg_id, "p0", queue=queue)
        h.confirm(msg_id, "p0", queue=queue)
        h.deliver(msg_id, "c0", "node1", False, queue=queue)
        h.ack(msg_id, "c0", queue=queue)
        t += step


def test_outage_is_the_gap_around_the_fault(h: History, clock: Clock) -> None:
    steady(h, clock, 0.0, 10.0)
    clock.now = 110.05
    fault = h.mark("kill node2")
    steady(h, clock, 13.0, 20.0)
    out = h.outage(fault)
    assert out.served_again_after == pytest.approx(2.95)
    assert out.gap == pytest.approx(3.0)
    assert out.describe() == "queue served again after 2.950 s (longest gap 3.000 s, from -0.050 s)"


def test_outage_takes_a_later_longer_gap_within_the_horizon(h: History, clock: Clock) -> None:
    steady(h, clock, 0.0, 10.0)
    steady(h, clock, 11.0, 12.0)  # a short comeback, then a longer stall while things settle
    steady(h, clock, 15.0, 25.0)
    steady(h, clock, 40.0, 41.0)  # a stall starting beyond the horizon is another story
    out = h.outage(100.0 + 10.0, horizon=10.0)
    assert out.gap == pytest.approx(3.0)
    assert out.start == pytest.approx(112.0)


def test_outage_when_the_service_never_comes_back(h: History, clock: Clock) -> None:
    steady(h, clock, 0.0, 5.0)
    out = h.outage(100.0 + 6.0)
    assert out.end is None and out.served_again_after is None
    assert out.describe() == "queue never served again after the fault (last success -1.000 s from the fault)"


def test_outage_by_kind_and_queue(h: History, clock: Clock) -> None:
    steady(h, clock, 0.0, 10.0, queue="a")
    steady(h, clock, 12.0, 14.0, queue="a")
    steady(h, clock, 0.0, 14.0, queue="b")  # another queue never stopped
    assert h.outage(105.0, queue="b").gap == pytest.approx(0.1)
    assert h.outage(110.0, queue="a").gap == pytest.approx(2.0)
    assert h.outage(110.0, kinds=(CONFIRM,), queue="a").describe().startswith("queue a served again after 2.000 s")
    assert h.outage(110.0, kinds=(DELIVER,)).gap == pytest.approx(0.1)


def test_wait_settled_wakes_on_the_last_ack(h: History) -> None:
    h.publish("m", "p0")
    h.confirm("m", "p0")
    assert h.unsettled() == {"m"}
    assert not h.wait_settled(0.05)

    def consume() -> None:
        h.deliver("m", "c0", "node1", False)
        h.ack("m", "c0")

    acker = threading.Thread(target=consume)
    acker.start()
    assert h.wait_settled(10)
    acker.join()
    assert h.unsettled() == set()


def test_recording_from_many_threads_loses_nothing() -> None:
    h = History()

    def work(k: int) -> None:
        for i in range(2000):
            served(h, f"t{k}-{i}")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    verdict = h.check()
    assert verdict.ok
    assert verdict.figures["acked_ids"] == 8000
    assert h.count("publish") == 8000
