"""The batcher's policy with a decode function written here (no model, no HTTP): what
accumulates while the decoder is busy goes in one batch, only equal options share one, a lone
request never waits, a failing request fails alone, and the queue's bounds hold."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from nmt.serve.batcher import Batcher, QueueFull, RequestTimeout, ShuttingDown


class Decoder:
    """Upper-cases sentences, records each batch, and can be held until released."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, list[str], list[str | None] | None]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, key: Any, sentences: list[str],
                 prefixes: list[str | None] | None) -> list[str]:  # fmt: skip
        self.calls.append((key, list(sentences), prefixes))
        self.entered.set()
        self.gate.wait(10)
        if any("BOOM" in s for s in sentences):
            raise RuntimeError("the decoder broke")
        return [f"{key}:{s.upper()}" + (f"+{p}" if p else "")
                for s, p in zip(sentences, prefixes or [None] * len(sentences), strict=True)]

    def hold(self) -> None:
        self.gate.clear()
        self.entered.clear()

    async def until_decoding(self) -> None:
        while not self.entered.is_set():
            await asyncio.sleep(0.001)


def run(test: Callable[[Batcher[Any, str], Decoder], Awaitable[None]], **settings: Any) -> None:
    async def main() -> None:
        decoder = Decoder()
        options = {"max_batch": 8, "max_wait": 0.005, "max_queue": 64, **settings}
        batcher: Batcher[Any, str] = Batcher(decoder, **options)
        await batcher.start()
        try:
            await test(batcher, decoder)
        finally:
            decoder.gate.set()
            await batcher.close()

    asyncio.run(main())


async def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.001)


def test_a_lone_request_is_decoded_at_once() -> None:
    async def test(batcher: Batcher[Any, str], decoder: Decoder) -> None:
        started = time.perf_counter()
        assert await batcher.submit("k", ["a", "b"]) == ["k:A", "k:B"]
        assert time.perf_counter() - started < 0.5  # not max_wait (1 s): nothing to wait for
        await asyncio.sleep(1.1)  # past max_wait after the last batch: no client coming back
        started = time.perf_counter()
        assert await batcher.submit("k", ["c"]) == ["k:C"]
        assert time.perf_counter() - started < 0.5

    run(test, max_wait=1.0)


def test_what_accumulates_while_busy_is_one_batch_and_results_go_back_to_their_requests() -> None:
    async def test(batcher: Batcher[Any, str], decoder: Decoder) -> None:
        decoder.hold()
        first = asyncio.ensure_future(batcher.submit("k", ["first"]))
        await decoder.until_decoding()
        waiting = [asyncio.ensure_future(batcher.submit("k", [f"s{i}", f"t{i}"]))
                   for i in range(3)]  # fmt: skip
        await until(lambda: batcher.queued == 6)
        decoder.gate.set()
        assert await first == ["k:FIRST"]
        assert [await w for w in waiting] == [[f"k:S{i}", f"k:T{i}"] for i in range(3)]
        assert [call[1] for call in decoder.calls] == [
            ["first"], ["s0", "t0", "s1", "t1", "s2", "t2"]]

    run(test)


def test_only_requests_with_equal_options_share_a_batch_and_order_is_kept() -> None:
    async def test(batcher: Batcher[Any, str], decoder: Decoder) -> None:
        decoder.hold()
        head = asyncio.ensure_future(batcher.submit("a", ["0"]))
        await decoder.until_decoding()
        jobs = [asyncio.ensure_future(batcher.submit(key, [text]))
                for key, text in [("a", "1"), ("b", "2"), ("a", "3"), ("b", "4")]]  # fmt: skip
        await until(lambda: batcher.queued == 4)
        decoder.gate.set()
        await head
        assert [await j for j in jobs] == [["a:1"], ["b:2"], ["a:3"], ["b:4"]]
        assert [(key, sentences) for key, sentences, _ in decoder.calls] == [
            ("a", ["0"]), ("a", ["1", "3"]), ("b", ["2", "4"])]

    run(test)


def test_a_batch_holds_at_most_max_batch_sentences() -> None:
    async def test(batcher: Batcher[Any, str], decoder: Decoder) -> None:
        decoder.hold()
        head = asyncio.ensure_future(batcher.submit("k", ["x"]))
        await decoder.until_decoding()
        jobs = [asyncio.ensure_future(batcher.submit("k", ["a", "b"])) for _ in range(5)]
        big = asyncio.ensure_future(batcher.submit("k", list("abcdefg")))  # 7 > 4: alone
        await until(lambda: batcher.queued == 17)
        decoder.gate.set()
        await asyncio.gather(head, big, *jobs)
        sizes = [len(sentences) for _, sentences, _ in decoder.calls]
        assert sizes == [1, 4, 4, 2, 7]

    run(test, max_batch=4)


def test_a_batch_waits_briefly_for_the_clients_it_just_answered() -> None:
    async def test(batcher: Batcher[Any, str], decoder: Decoder) -> None:
        decoder.hold()
        head = asyncio.ensure_future(batcher.submit("k", ["x"]))
        await decoder.until_decoding()
        first = [asyncio.ensure_future(batcher.submit("k", [f"a{i}"])) for i in range(4)]
        await until(lambda: batcher.queued == 4)
        decoder.gate.set()
        await asyncio.gather(head, *first)
        # Its four clients come back one by one; the next batch waits (max_wait 2 s) until
        # the four are queued instead of starting on the first.
        second = []
        for i in range(4):
            second.append(asyncio.ensure_future(batcher.submit("k", [f"b{i}"])))
            await asyncio.sleep(0.02)
        await asyncio.gather(*second)
        assert [len(s) for _, s, _ in decoder.calls] == [1, 4, 4]

    run(test, max_wait=2.0)


def test_the_wait_counts_what_was_queued_when_the_batch_ended() -> None:
    async def test(batcher: Batcher[Any, str], decoder: Decoder) -> None:
        decoder.hold()
        head = asyncio.ensure_future(batcher.submit("k", ["x"]))
        await decoder.until_decoding()
        queued = [asyncio.ensure_future(batcher.submit("k", [f"a{i}"])) for i in range(3)]
        await until(lambda: batcher.queued == 3)
        decoder.gate.set()
        await head
        # Three waited through the batch of one; its client comes back, and the next batch
        # takes the four (waiting for one, the batch's size, would have left it out).
        back = asyncio.ensure_future(batcher.submit("k", ["y"]))
        await asyncio.gather(back, *queued)
        assert [s for _, s, _ in decoder.calls] == [["x"], ["a0", "a1", "a2", "y"]]

    run(test, max_wait=2.0)


def test_two_decoders_decode_two_batches_at_once() -> None:
    async def test(batcher: Batcher[Any, str], decoder: Decoder) -> None:
        decoder.hold()
        first = asyncio.ensure_future(batcher.submit("k", ["a"]))
        await decoder.until_decoding()
        second = asyncio.ensure_future(batcher.submit("k", ["b"]))
        await until(lambda: len(decoder.calls) == 2)  # both inside decode, the gate shut
        assert batcher.queued == 0
        third = asyncio.ensure_future(batcher.submit("k", ["c"]))
        await until(lambda: batcher.queued == 1)  # no third decoder
        decoder.gate.set()
        assert await asyncio.gather(first, second, third) == [["k:A"], ["k:B"], ["k:C"]]

    run(test, workers=2)


def test_free_decoders_share_the_queue() -> None:
    async def test(batcher: Batcher[Any, str], decoder: Decoder) -> None:
        # Queued in one go, before either decoder wakes: each takes its half.
        decoder.hold()
        jobs = [asyncio.ensure_future(batcher.submit("k", [f"s{i}"])) for i in range(6)]
        await until(lambda: len(decoder.calls) == 2)
        decoder.gate.set()
        assert [await j for j in jobs] == [[f"k:S{i}"] for i in range(6)]
        assert sorted(s for _, s, _ in decoder.calls) == [["s0", "s1", "s2"], ["s3", "s4", "s5"]]

    run(test, workers=2)


def test_workers_must_be_positive() -> None:
    with pytest.raises(ValueError, match="workers"):
        Batcher(Decoder(), max_batch=1, max_wait=0.0, max_queue=1, workers=0)


def test_prefixes_travel_with_their_sentences() -> None:
    async def test(batcher: Batcher[Any, str], decoder: Decoder) -> None:
        decoder.hold()
        head = asyncio.ensure_future(batcher.submit("k", ["x"]))
        await decoder.until_decoding()
        plain = asyncio.ensure_future(batcher.submit("k", ["a"]))
        prefixed = asyncio.ensure_future(batcher.submit("k", ["b", "c"], [None, "P"]))
        await until(lambda: batcher.queued == 3)
        decoder.gate.set()
        await head
        assert await plain == ["k:A"]
        assert await prefixed == ["k:B", "k:C+P"]
        assert decoder.calls[-1][2] == [None, None, "P"]

    run(test)


def test_alone_requests_are_never_batched_with_others() -> None:
    async def test(batcher: Batcher[Any, str], decoder: Decoder) -> None:
        decoder.hold()
        head = asyncio.ensure_future(batcher.submit("k", ["x"]))
        await decoder.until_decoding()
        jobs = [asyncio.ensure_future(batcher.submit("k", ["a"], alone=True)),
                asyncio.ensure_future(batcher.submit("k", ["b"])),
                asyncio.ensure_future(batcher.submit("k", ["c"]))]  # fmt: skip
        await until(lambda: batcher.queued == 3)
        decoder.gate.set()
        await asyncio.gather(head, *jobs)
        assert [s for _, s, _ in decoder.calls] == [["x"], ["a"], ["b", "c"]]

    run(test)


def test_a_request_that_breaks_decoding_fails_alone_and_the_batcher_goes_on() -> None:
    async def test(batcher: Batcher[Any, str], decoder: Decoder) -> None:
        decoder.hold()
        head = asyncio.ensure_future(batcher.submit("k", ["x"]))
        await decoder.until_decoding()
        good = asyncio.ensure_future(batcher.submit("k", ["good"]))
        bad = asyncio.ensure_future(batcher.submit("k", ["BOOM"]))
        other = asyncio.ensure_future(batcher.submit("k", ["fine"]))
        await until(lambda: batcher.queued == 3)
        decoder.gate.set()
        await head
        assert await good == ["k:GOOD"]
        with pytest.raises(RuntimeError, match="the decoder broke"):
            await bad
        assert await other == ["k:FINE"]
        # The batch of three failed, then each was decoded alone.
        assert [s for _, s, _ in decoder.calls][1:] == [
            ["good", "BOOM", "fine"], ["good"], ["BOOM"], ["fine"]]
        assert await batcher.submit("k", ["later"]) == ["k:LATER"]

    run(test)


def test_a_full_queue_refuses_with_a_retry_time() -> None:
    async def test(batcher: Batcher[Any, str], decoder: Decoder) -> None:
        decoder.hold()
        head = asyncio.ensure_future(batcher.submit("k", ["x"]))
        await decoder.until_decoding()
        queued = asyncio.ensure_future(batcher.submit("k", ["a", "b", "c"]))
        await until(lambda: batcher.queued == 3)
        with pytest.raises(QueueFull) as refused:
            await batcher.submit("k", ["d", "e"])
        assert refused.value.retry_after >= 1
        assert batcher.queued == 3
        decoder.gate.set()
        await asyncio.gather(head, queued)

    run(test, max_queue=4)


def test_a_timed_out_request_leaves_the_queue() -> None:
    async def test(batcher: Batcher[Any, str], decoder: Decoder) -> None:
        decoder.hold()
        head = asyncio.ensure_future(batcher.submit("k", ["x"]))
        await decoder.until_decoding()
        with pytest.raises(RequestTimeout, match="0.05 s"):
            await batcher.submit("k", ["late"], timeout=0.05)
        assert batcher.queued == 0
        decoder.gate.set()
        await head
        await batcher.submit("k", ["after"])
        assert ["late"] not in [s for _, s, _ in decoder.calls]

    run(test)


def test_close_drains_the_queue_and_then_refuses() -> None:
    async def main() -> None:
        decoder = Decoder()
        batcher: Batcher[Any, str] = Batcher(decoder, max_batch=2, max_wait=0.0, max_queue=64)
        await batcher.start()
        decoder.hold()
        jobs = [asyncio.ensure_future(batcher.submit("k", [f"s{i}"])) for i in range(5)]
        await decoder.until_decoding()
        closing = asyncio.ensure_future(batcher.close())
        await asyncio.sleep(0.01)
        with pytest.raises(ShuttingDown):
            await batcher.submit("k", ["new"])
        decoder.gate.set()
        await closing
        assert [await j for j in jobs] == [[f"k:S{i}"] for i in range(5)]

    asyncio.run(main())


# --------------------------------------------------------------------------- continuous batching


class FakeStream:
    """A stream whose sentence ``s`` takes ``len(s)`` steps and ends as ``key:S``; records the
    rows of every step. ``BOOM`` makes the step it is in fail; a gate can hold the steps."""

    def __init__(self, key: Any, log: list[tuple[Any, int]], gate: threading.Event,
                 adds: list[int] | None = None) -> None:  # fmt: skip
        self.key, self.log, self.gate = key, log, gate
        self.adds = adds if adds is not None else []  # sentences of each add call
        self.rows: list[tuple[Any, str, int]] = []  # ticket, sentence, steps left

    @property
    def live(self) -> int:
        return len(self.rows)

    def add(self, sentences: list[str], tickets: list[Any]) -> list[tuple[Any, str]]:
        self.adds.append(len(sentences))
        done = [(t, f"{self.key}:") for s, t in zip(sentences, tickets, strict=True) if not s]
        self.rows += [(t, s, len(s)) for s, t in zip(sentences, tickets, strict=True) if s]
        return done

    def step(self) -> list[tuple[Any, str]]:
        self.gate.wait(10)
        time.sleep(0.002)  # a step takes time: requests can arrive during a batch
        self.log.append((self.key, len(self.rows)))
        if any("BOOM" in s for _, s, _ in self.rows):
            raise RuntimeError("the step broke")
        self.rows = [(t, s, n - 1) for t, s, n in self.rows]
        ended = [(t, f"{self.key}:{s.upper()}") for t, s, n in self.rows if n == 0]
        self.rows = [row for row in self.rows if row[2] > 0]
        return ended


def run_streaming(test: Callable[[Batcher[Any, str], list[tuple[Any, int]], threading.Event],
                                 Awaitable[None]], streams: Callable[[Any], bool] = lambda k: True,
                  adds: list[int] | None = None, **settings: Any) -> Decoder:  # fmt: skip
    decoder = Decoder()
    log: list[tuple[Any, int]] = []
    gate = threading.Event()
    gate.set()

    def stream(key: Any) -> FakeStream | None:
        return FakeStream(key, log, gate, adds) if streams(key) else None

    async def main() -> None:
        options = {"max_batch": 8, "max_wait": 0.005, "max_queue": 64, **settings}
        batcher: Batcher[Any, str] = Batcher(decoder, stream=stream, **options)
        await batcher.start()
        try:
            await test(batcher, log, gate)
        finally:
            gate.set()
            await batcher.close()

    asyncio.run(main())
    return decoder


def test_streamed_requests_join_a_running_batch_and_leave_it_as_they_end() -> None:
    async def test(batcher: Batcher[Any, str], log: list[tuple[Any, int]],
                   gate: threading.Event) -> None:  # fmt: skip
        long = asyncio.create_task(batcher.submit("k", ["x" * 30]))
        await until(lambda: len(log) >= 2)  # decoding, alone
        short = await batcher.submit("k", ["ab", "c"])  # joins it; answered while it goes on
        assert short == ["k:AB", "k:C"] and not long.done()
        assert await long == ["k:" + "X" * 30]
        assert max(rows for _, rows in log) == 3 and log[-1] == ("k", 1)
        assert len(log) == 30  # the long sentence's steps: the others ran inside them

    decoder = run_streaming(test)
    assert decoder.calls == []  # nothing went batch by batch


def test_requests_queued_during_a_step_join_in_one_add() -> None:
    # A join encodes the newcomers and copies the batch's cache: one-sentence requests must not
    # pay it one by one.
    adds: list[int] = []

    async def test(batcher: Batcher[Any, str], log: list[tuple[Any, int]],
                   gate: threading.Event) -> None:  # fmt: skip
        long = asyncio.create_task(batcher.submit("k", ["x" * 40]))
        await until(lambda: len(log) >= 1)
        gate.clear()  # the next step is held while six one-sentence requests queue
        short = [asyncio.create_task(batcher.submit("k", [f"s{i}"])) for i in range(6)]
        await until(lambda: batcher.queued == 6)
        gate.set()
        assert [await task for task in short] == [[f"k:S{i}"] for i in range(6)]
        assert await long == ["k:" + "X" * 40]

    run_streaming(test, adds=adds, max_batch=16)
    assert adds == [1, 6]


def test_every_streamed_step_reaches_on_batch_once_its_request_is_answered() -> None:
    # Steps that answer nothing do not wake the event loop; their figures come with the next.
    seen: list[tuple[int, float]] = []

    async def test(batcher: Batcher[Any, str], log: list[tuple[Any, int]],
                   gate: threading.Event) -> None:  # fmt: skip
        long = asyncio.create_task(batcher.submit("k", ["x" * 10]))
        await until(lambda: len(log) >= 1)
        assert await batcher.submit("k", ["ab"]) == ["k:AB"]
        assert await long == ["k:" + "X" * 10]
        await until(lambda: len(seen) == len(log))
        assert [rows for rows, _ in seen] == [rows for _, rows in log]
        assert all(seconds > 0 for _, seconds in seen)

    run_streaming(test, on_batch=lambda rows, seconds: seen.append((rows, seconds)))


def test_many_streamed_clients_each_get_their_own_sentences() -> None:
    async def test(batcher: Batcher[Any, str], log: list[tuple[Any, int]],
                   gate: threading.Event) -> None:  # fmt: skip
        async def client(i: int) -> None:
            for r in range(5):
                words = [f"c{i}r{r}" + "z" * (i % 7), f"w{i}"]
                assert await batcher.submit("k", words) == [f"k:{w.upper()}" for w in words]

        await asyncio.gather(*(client(i) for i in range(24)))
        assert max(rows for _, rows in log) <= 8  # max_batch

    run_streaming(test)


def test_a_request_of_other_options_waits_for_the_stream_to_drain_then_goes() -> None:
    async def test(batcher: Batcher[Any, str], log: list[tuple[Any, int]],
                   gate: threading.Event) -> None:  # fmt: skip
        gate.clear()
        first = asyncio.create_task(batcher.submit("k", ["aaaa"]))
        await until(lambda: batcher.queued == 0)
        other = asyncio.create_task(batcher.submit("beam", ["b"]))  # decoded batch by batch
        later = asyncio.create_task(batcher.submit("k", ["c"]))  # behind it: not joining
        await asyncio.sleep(0.02)
        gate.set()
        assert await first == ["k:AAAA"] and await other == ["beam:B"] and await later == ["k:C"]
        assert max(rows for key, rows in log if key == "k") == 1

    decoder = run_streaming(test, streams=lambda key: key == "k")
    assert [call[0] for call in decoder.calls] == ["beam"]


def test_prefixed_requests_go_batch_by_batch_and_empty_sentences_at_once() -> None:
    async def test(batcher: Batcher[Any, str], log: list[tuple[Any, int]],
                   gate: threading.Event) -> None:  # fmt: skip
        assert await batcher.submit("k", ["ab"], ["P"]) == ["k:AB+P"]
        assert await batcher.submit("k", ["", "ab", ""]) == ["k:", "k:AB", "k:"]

    decoder = run_streaming(test)
    assert [call[1] for call in decoder.calls] == [["ab"]]


def test_a_failing_step_fails_its_requests_and_the_next_batch_goes_on() -> None:
    async def test(batcher: Batcher[Any, str], log: list[tuple[Any, int]],
                   gate: threading.Event) -> None:  # fmt: skip
        gate.clear()
        broken = asyncio.create_task(batcher.submit("k", ["xBOOMx"]))
        await until(lambda: batcher.queued == 0)
        with_it = asyncio.create_task(batcher.submit("k", ["ok"]))
        await asyncio.sleep(0.02)
        gate.set()
        for task in (broken, with_it):
            with pytest.raises(RuntimeError, match="the step broke"):
                await task
        assert await batcher.submit("k", ["fine"]) == ["k:FINE"]

    run_streaming(test)


def test_two_streaming_decoders_share_the_sentences() -> None:
    async def test(batcher: Batcher[Any, str], log: list[tuple[Any, int]],
                   gate: threading.Event) -> None:  # fmt: skip
        gate.clear()
        tasks = [asyncio.create_task(batcher.submit("k", ["x" * 20])) for _ in range(8)]
        await until(lambda: batcher.queued == 0)
        gate.set()
        assert [await t for t in tasks] == [["k:" + "X" * 20]] * 8
        assert max(rows for _, rows in log) == 4  # 8 sentences, 2 decoders: 4 each

    run_streaming(test, workers=2, max_batch=64)


def test_a_request_larger_than_max_batch_streams_alone() -> None:
    async def test(batcher: Batcher[Any, str], log: list[tuple[Any, int]],
                   gate: threading.Event) -> None:  # fmt: skip
        words = [f"w{i}" for i in range(12)]
        assert await batcher.submit("k", words) == [f"k:{w.upper()}" for w in words]
        assert max(rows for _, rows in log) == 12

    run_streaming(test, max_batch=8)
