"""The hub's wake-ups (vault/messages/fanout.py): one flag per account, however many streams."""

from __future__ import annotations

import threading

from vault.messages.fanout import Hub

WAIT = 30.0


def test_one_wake_up_sets_one_flag_that_every_stream_of_the_account_sees_once() -> None:
    hub = Hub()
    pages = [hub.subscribe("a") for _ in range(3)]
    other = hub.subscribe("b")
    assert len({id(sub.beacon) for sub in pages}) == 1  # the account's streams share it
    assert other.beacon is not pages[0].beacon
    flag = pages[0].beacon.event()
    # Two pages already wait; a third looks later.
    answers: list[bool] = []
    waiting = [threading.Thread(target=lambda s=s: answers.append(s.wait(WAIT))) for s in pages[:2]]
    for thread in waiting:
        thread.start()
    hub.wake(["a"])
    for thread in waiting:
        thread.join(timeout=WAIT)
    assert flag.is_set()  # the one event the account's streams waited on
    assert answers == [True, True]
    assert pages[2].wait(0) is True  # woken while it was not waiting: it still sees it
    assert {sub.woken_by for sub in pages} == {hub.wakes}
    assert [sub.wait(0) for sub in pages] == [False, False, False]  # each wake-up once
    assert other.wait(0) is False and other.woken_by == 0


def test_a_stream_subscribed_after_a_wake_up_does_not_see_it_and_a_nudge_is_no_wake_up() -> None:
    hub = Hub()
    first = hub.subscribe("a")
    hub.wake(["a"])
    late = hub.subscribe("a")
    assert late.wait(0) is False
    assert first.wait(0) is True
    late.nudge()  # a stream's socket stirred: its siblings look, and find no news
    assert first.wait(0) is False and late.wait(0) is False
    hub.wake_all()
    assert first.wait(0) is True and late.wait(0) is True


def test_the_last_stream_of_an_account_takes_its_flag_with_it() -> None:
    hub = Hub()
    subs = [hub.subscribe("a"), hub.subscribe("a")]
    for sub in subs:
        sub.close()
    assert hub.count() == 0
    again = hub.subscribe("a")
    assert again.beacon is not subs[0].beacon
    hub.wake(["a"])
    assert again.wait(0) is True


def test_a_closed_redis_fanout_starts_no_thread_and_still_wakes_its_own_streams() -> None:
    """A request still answering when its app closes must not start a publisher thread
    and a Redis connection that nothing closes any more."""
    from vault.messages.fanout import RedisFanout

    fanout = RedisFanout("redis://127.0.0.1:9/0")  # never reached: nothing may connect
    sub = fanout.hub.subscribe("a")
    fanout.close()
    fanout.publish(["a"])
    assert sub.wait(0) is True
    assert not [t for t in threading.enumerate() if t.name == "haven-fanout-publish"]
