"""Dynamic batching: concurrent requests decoded together, in one worker thread.

Requests wait in one FIFO queue on the event loop; decoding runs on worker threads (one by
default), so one model is in memory and the event loop never blocks on arithmetic. The policy,
in order:

- **Never wait for company when idle.** A request that finds the decoder idle, with nothing
  else queued and no batch just finished, is decoded at once: a lone client pays only the
  decoding (the latency target: p99 at one client within 2x one ``Translator.translate``).
- **Batch what accumulated while the decoder was busy.** When a batch ends, the next takes
  every queued request with the head's decoding options (FIFO, up to ``max_batch``
  sentences); requests with other options wait for a later batch, in order.
- **Briefly wait for the clients just answered.** The clients of a batch that just ended come
  back with their next request within a round trip; starting on the first one back would
  split them into a small batch and a large one, and keep them split. So after a batch of
  ``n`` sentences, with ``q`` queued when it ends, that decoder's next batch waits until
  ``min(q + n, max_batch)`` sentences are queued, but never past ``max_wait`` after the
  previous batch ended (5 ms by default). (Waiting for ``n`` alone would never let a batch
  grow past the last one, with several decoders: the rest of the clients would wait in the
  queue for the next decoder to come free.)
- **Several decoders, each its own batch.** With ``workers`` > 1 (on a CPU, one per core, each
  on one intra-op thread) a decoder that is free takes the next batch while another still
  decodes, and takes at most its share of the queue (``queued / free decoders``), so that the
  clients spread over the decoders instead of all landing in one batch. A batch of unsorted
  lengths spends its last steps on a few long sentences, which keep one core barely busy;
  the other decoder's batch fills the machine meanwhile (random 48- and 64-sentence chunks of
  the cmn-eng test set, zh->en recipe, 2 cores: 291-349 sentences/s on two decoders of one
  thread against 159-216 on one decoder of two threads, 1.5-2.2x at equal chunk sizes, side by
  side in one process).
- A batch that fails is decoded again one request at a time, so that a request which breaks
  decoding fails alone; the others in its batch are answered.
- **Continuous batching where the decoding allows it.** For keys that ``stream`` opens a
  :class:`Stream` for (``nmt serve --continuous``: plain greedy search of a Transformer), a
  decoder does not decode batch by batch: its batch keeps decoding, in its worker thread,
  while sentences join it between two steps and leave it as they end, each request answered
  as soon as its last sentence ends (:mod:`nmt.decoding.continuous`). Queued sentences join
  once they are a quarter of the batch or after 4 steps (a join costs about a step), at most
  the decoder's share of what is decoding and queued (``(queued + decoding) / decoders``, and
  ``max_batch``), so the decoders stay equally full; an empty decoder never waits for
  company. A step that fails fails the requests decoding in it.

Requests with ``alone=True`` (seeded sampling, whose samples depend on the batch) are never
batched with another.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, cast

__all__ = ["Batcher", "DecodeFn", "QueueFull", "RequestTimeout", "ShuttingDown", "Stream",
           "StreamFn"]

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
Prefixes = Sequence[str | None] | None
# decode(key, sentences, prefixes) -> one result per sentence, in order
DecodeFn = Callable[[K, list[str], list[str | None] | None], Sequence[T]]


class Stream(Protocol[T_co]):
    """A batch that sentences join and leave while it decodes (one thread drives it)."""

    @property
    def live(self) -> int:
        """Sentences decoding."""
        ...

    def add(self, sentences: list[str], tickets: list[Hashable]) -> Sequence[tuple[Hashable, T_co]]:
        """Start decoding ``sentences``; the results of those that need no decoding."""
        ...

    def step(self) -> Sequence[tuple[Hashable, T_co]]:
        """One decoding step; the results of the sentences that ended."""
        ...


# stream(key) -> a Stream for requests with that key, or None: decode them batch by batch
StreamFn = Callable[[K], "Stream[T] | None"]


def _join_now(live: int, queued: int, since_join: int) -> bool:
    """Whether queued sentences join a running batch before this step: joining costs about a
    step (encoding the newcomers and copying the batch's key/value cache), so the newcomers
    wait until they are a quarter of the batch, or for at most 4 steps."""
    return live == 0 or (queued > 0 and (4 * queued >= live or since_join >= 4))


# A streaming decoder reports its steps' figures (metrics, rate) at least this often.
_REPORT_EVERY = 32


class QueueFull(Exception):
    """The queue holds ``max_queue`` sentences already; ``retry_after`` seconds is the time
    the decoder needs, at its recent rate, to get through them."""

    def __init__(self, queued: int, retry_after: int) -> None:
        super().__init__(f"the server is busy: {queued} sentences are waiting; retry in "
                         f"{retry_after} s")
        self.retry_after = retry_after


class ShuttingDown(Exception):
    """The server is draining its queue before it exits and takes no new work."""


class RequestTimeout(Exception):
    """A request was not decoded within its timeout (it is dropped from the queue)."""


@dataclass(eq=False)
class _Job(Generic[K]):
    key: K
    sentences: list[str]
    prefixes: Prefixes
    alone: bool
    future: asyncio.Future[list[Any]]
    taken: bool = False  # out of the queue: decoding, or done
    results: list[Any] = field(default_factory=list)  # streamed: per sentence, once it ends
    pending: int = 0  # streamed: sentences not ended yet

    @property
    def streamable(self) -> bool:
        """Whether it may join a running batch: not alone, no forced prefixes."""
        return not self.alone and (self.prefixes is None or all(p is None for p in self.prefixes))


@dataclass
class _Lane:
    """One decoder: what it decoded last, for the wait after it."""

    expected: int = 0  # sentences to wait for: its last batch's, and those queued meanwhile
    last_end: float = -math.inf  # when its last batch ended (time.perf_counter)
    live: int = 0  # streaming: sentences in its running batch


@dataclass
class _Rate:
    """Sentences per second of recent batches (an exponential moving average)."""

    per_second: float = 0.0
    weight: float = field(default=0.2, repr=False)

    def update(self, sentences: int, seconds: float) -> None:
        if seconds <= 0:
            return
        rate = sentences / seconds
        self.per_second = rate if not self.per_second else (
            (1 - self.weight) * self.per_second + self.weight * rate)


class Batcher(Generic[K, T]):
    """The queue in front of ``decode``; :meth:`start` it on the event loop that submits.

    Args:
        decode: ``decode(key, sentences, prefixes)`` -> one result per sentence; runs in the
            worker thread, once per batch of requests with equal keys.
        max_batch: sentences per batch (a single larger request is decoded alone, whole).
        max_wait: seconds a batch may wait for company after the previous one (see above).
        max_queue: sentences that may wait; beyond it :meth:`submit` raises QueueFull.
        on_batch: called on the event loop with each batch's sentences and decoding seconds.
        workers: batches decoded at once, each on a thread of its own (see above); ``decode``
            must then be safe to call from several threads.
        stream: ``stream(key)`` -> a :class:`Stream` that decodes requests with that key by
            continuous batching, or None (see above); None: every key batch by batch.
            ``on_batch`` then sees each step (the sentences in it and its seconds).
    """

    def __init__(self, decode: DecodeFn[K, T], *, max_batch: int, max_wait: float,
                 max_queue: int, on_batch: Callable[[int, float], None] | None = None,
                 workers: int = 1, stream: StreamFn[K, T] | None = None) -> None:  # fmt: skip
        if workers < 1:
            raise ValueError(f"workers: expected at least 1, got {workers}")
        self._decode = decode
        self._max_batch = max_batch
        self._max_wait = max_wait
        self._max_queue = max_queue
        self._on_batch = on_batch
        self._jobs: deque[_Job[K]] = deque()
        self._queued = 0  # sentences in self._jobs
        self._arrival = asyncio.Event()
        self._closing = False
        self._tasks: list[asyncio.Task[None]] = []
        self._workers = workers
        self._free = workers  # decoders not decoding
        self._threads = ThreadPoolExecutor(workers, thread_name_prefix="nmt-serve-decode")
        self._rate = _Rate()  # of one decoder
        self._stream = stream
        self._streams: dict[K, bool] = {}  # False: stream(key) was None (not asked again)
        self._streaming = 0  # sentences in the running batches of all decoders
        # Streaming decoders take jobs from their worker thread, between steps: the queue's
        # changes (and the job's taken flag) are made under this lock on either side.
        self._lock = threading.Lock()

    @property
    def queued(self) -> int:
        """Sentences waiting for the decoder (not counting the batch being decoded)."""
        return self._queued

    async def start(self) -> None:
        """Start taking work; call from the event loop the requests arrive on."""
        if not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self._run(_Lane())) for _ in range(self._workers)]

    async def close(self) -> None:
        """Stop taking new work, decode everything queued, then stop the worker thread."""
        self._closing = True
        self._arrival.set()
        if self._tasks:
            await asyncio.gather(*self._tasks)
        self._threads.shutdown(wait=True)

    async def submit(self, key: K, sentences: list[str], prefixes: Prefixes = None, *,
                     alone: bool = False, timeout: float | None = None) -> list[T]:  # fmt: skip
        """Queue ``sentences`` and wait for their results (one each, in order).

        Raises:
            ShuttingDown: the batcher is closing.
            QueueFull: the queue has no room for ``len(sentences)`` more sentences.
            RequestTimeout: no result within ``timeout`` seconds.
            Exception: what ``decode`` raised for this request.
        """
        if self._closing:
            raise ShuttingDown("the server is shutting down")
        if self._queued + len(sentences) > self._max_queue:
            raise QueueFull(self._queued, self._retry_after())
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        job = _Job(key, sentences, prefixes, alone, future)
        with self._lock:
            self._jobs.append(job)
            self._queued += len(sentences)
        self._arrival.set()
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise RequestTimeout(f"not translated within {timeout:g} s") from None
        finally:
            with self._lock:
                if not job.taken:  # timed out or cancelled while queued: never decoded
                    self._jobs.remove(job)
                    self._queued -= len(sentences)

    # ------------------------------------------------------------------ the event-loop side

    async def _run(self, lane: _Lane) -> None:
        """One decoder's loop (``workers`` of them share the queue)."""
        loop = asyncio.get_running_loop()
        while True:
            if not self._jobs:
                if self._closing:
                    return
                self._arrival.clear()
                await self._arrival.wait()
                continue
            head = self._jobs[0]
            session = self._open_stream(head.key) if head.streamable else None
            if session is not None:
                await self._run_stream(lane, head.key, session)
                continue
            await self._wait_for_company(lane)
            if not self._jobs:  # another decoder took them meanwhile
                continue
            with self._lock:
                batch = self._take(math.ceil(self._queued / self._free))
            size = sum(len(job.sentences) for job in batch)
            self._free -= 1
            started = time.perf_counter()
            try:
                outcomes = await loop.run_in_executor(self._threads, self._decode_batch, batch)
            finally:
                self._free += 1
            lane.last_end = time.perf_counter()
            lane.expected = self._queued + size
            self._rate.update(size, lane.last_end - started)
            if self._on_batch is not None:
                self._on_batch(size, lane.last_end - started)
            for job, outcome in zip(batch, outcomes, strict=True):
                if job.future.done():  # timed out while it was decoding
                    continue
                if isinstance(outcome, BaseException):
                    job.future.set_exception(outcome)
                else:
                    job.future.set_result(outcome)

    def _open_stream(self, key: K) -> Stream[T] | None:
        if self._stream is None or self._streams.get(key) is False:
            return None
        session = self._stream(key)
        if len(self._streams) > 1024:  # option sets seen: keep the memo bounded
            self._streams.clear()
        self._streams[key] = session is not None
        return session

    async def _run_stream(self, lane: _Lane, key: K, session: Stream[T]) -> None:
        """Decode requests with ``key`` by continuous batching until none is left decoding or
        queued. The worker thread steps on its own (a round trip through the event loop per
        step would leave it idle whenever the loop is busy with HTTP): before a step it takes
        queued requests with that key up to this decoder's share, after it hands the ended
        sentences to the event loop, which answers each request once all of its have ended."""
        loop = asyncio.get_running_loop()
        self._free -= 1
        try:
            await loop.run_in_executor(self._threads, self._stream_steps, lane, key, session, loop)
        finally:
            self._free += 1

    def _stream_steps(self, lane: _Lane, key: K, session: Stream[T],
                      loop: asyncio.AbstractEventLoop) -> None:  # fmt: skip
        """In the worker thread: the steps of one running batch (see :meth:`_run_stream`)."""
        decoding: list[_Job[K]] = []  # jobs with sentences in the running batch
        since_join = 0  # steps since sentences last joined
        # (rows, ended, seconds) of the steps not yet reported to the event loop: a step that
        # answers no request does not wake the loop (each wake-up takes the GIL from the
        # other decoders), its figures go with the next one that does.
        steps: list[tuple[int, int, float]] = []
        try:
            while True:
                with self._lock:
                    joining: list[_Job[K]] = []
                    if _join_now(lane.live, self._queued, since_join):
                        share = math.ceil((self._queued + self._streaming) / self._workers)
                        joining = self._take_key(key, min(share, self._max_batch), lane.live)
                    if not joining and not lane.live:
                        return
                    added = sum(len(job.sentences) for job in joining)
                    lane.live += added
                    self._streaming += added
                since_join = 0 if joining else since_join + 1
                decoding.extend(joining)
                started = time.perf_counter()
                try:
                    ended = _advance(session, joining)
                except Exception as e:  # the batch is gone with it: fail what was in it
                    log.warning("a decoding step of %d sentences failed (%s: %s)",
                                lane.live, type(e).__name__, e)
                    failed = [job for job in decoding if job.pending]
                    loop.call_soon_threadsafe(_fail, failed, e)
                    with self._lock:
                        self._streaming -= lane.live
                        lane.live = 0
                    return
                seconds = time.perf_counter() - started
                rows = lane.live
                answered = []
                for (job, index), result in ended:
                    job.results[index] = result
                    job.pending -= 1
                    if not job.pending:
                        answered.append(job)
                with self._lock:
                    lane.live -= len(ended)
                    self._streaming -= len(ended)
                if ended:
                    decoding = [job for job in decoding if job.pending]
                steps.append((rows, len(ended), seconds))
                if answered or len(steps) >= _REPORT_EVERY:
                    loop.call_soon_threadsafe(self._stepped, answered, steps)
                    steps = []
        finally:  # the steps since the last report, however the batch ended
            if steps:
                loop.call_soon_threadsafe(self._stepped, [], steps)

    def _stepped(self, answered: list[_Job[K]], steps: list[tuple[int, int, float]]) -> None:
        """On the event loop, after streaming steps (rows, ended, seconds each): record them
        and answer the requests they completed."""
        for rows, ended, seconds in steps:
            self._rate.update(ended, seconds)
            if self._on_batch is not None:
                self._on_batch(rows, seconds)
        for job in answered:
            if not job.future.done():  # (done: it timed out)
                job.future.set_result(job.results)

    def _take_key(self, key: K, limit: int, live: int) -> list[_Job[K]]:
        """The jobs at the head of the queue with ``key`` (not alone), in order, while the
        running batch of ``live`` sentences stays within ``limit``; a job larger than that
        goes alone into an empty batch. A job of another key (or with prefixes) at the head
        stops the taking:
        the batch then drains and the decoder turns to it (first come, first served)."""
        taken: list[_Job[K]] = []
        size = 0
        while self._jobs and live + size < limit:
            job = self._jobs[0]
            n = len(job.sentences)
            if job.key != key or not job.streamable or (live + size + n > limit
                                                         and (size or live)):  # fmt: skip
                break
            self._jobs.popleft()
            job.taken, job.results, job.pending = True, [None] * n, n
            taken.append(job)
            size += n
        self._queued -= size
        return taken

    async def _wait_for_company(self, lane: _Lane) -> None:
        """Wait, at most until ``max_wait`` after this decoder's previous batch ended, for the
        sentences queued then and as many as it had (the clients it answered are on their way
        back), or ``max_batch``."""
        target = min(lane.expected, self._max_batch)
        deadline = lane.last_end + self._max_wait
        while self._queued < target and not self._closing:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            self._arrival.clear()
            try:
                await asyncio.wait_for(self._arrival.wait(), remaining)
            except TimeoutError:
                return

    def _take(self, share: int) -> list[_Job[K]]:
        """The next batch: the head of the queue and, unless it decodes alone, every later
        job with its key that fits in ``min(share, max_batch)`` sentences; the rest keep their
        order."""
        limit = min(share, self._max_batch)
        head = self._jobs.popleft()
        batch, size = [head], len(head.sentences)
        if not head.alone:
            kept: deque[_Job[K]] = deque()
            while self._jobs and size < limit:
                job = self._jobs.popleft()
                if job.key == head.key and not job.alone and size + len(job.sentences) <= \
                        limit:  # fmt: skip
                    batch.append(job)
                    size += len(job.sentences)
                else:
                    kept.append(job)
            kept.extend(self._jobs)
            self._jobs = kept
        for job in batch:
            job.taken = True
        self._queued -= size
        return batch

    def _retry_after(self) -> int:
        """Seconds until the queue has room, at the recent rate (at least 1)."""
        if self._rate.per_second <= 0:
            return 1
        rate = self._rate.per_second * self._workers
        return max(1, min(3600, math.ceil(self._queued / rate)))

    # ------------------------------------------------------------------ the worker thread

    def _decode_batch(self, batch: list[_Job[K]]) -> list[list[T] | BaseException]:
        try:
            return self._decode_jobs(batch)
        except Exception as e:
            if len(batch) == 1:
                return [e]
            log.warning("a batch of %d requests failed (%s: %s); decoding them one at a time",
                        len(batch), type(e).__name__, e)
        outcomes: list[list[T] | BaseException] = []
        for job in batch:
            try:
                outcomes.extend(self._decode_jobs([job]))
            except Exception as e:
                outcomes.append(e)
        return outcomes

    def _decode_jobs(self, batch: list[_Job[K]]) -> list[list[T] | BaseException]:
        sentences = [s for job in batch for s in job.sentences]
        prefixes: list[str | None] | None = None
        if any(job.prefixes is not None for job in batch):
            prefixes = [p for job in batch
                        for p in (job.prefixes or [None] * len(job.sentences))]  # fmt: skip
        results = list(self._decode(batch[0].key, sentences, prefixes))
        if len(results) != len(sentences):
            raise RuntimeError(f"decode returned {len(results)} results for "
                               f"{len(sentences)} sentences")
        outcomes: list[list[T] | BaseException] = []
        start = 0
        for job in batch:
            outcomes.append(results[start:start + len(job.sentences)])
            start += len(job.sentences)
        return outcomes


def _advance(session: Stream[T], joining: list[_Job[Any]]
             ) -> list[tuple[tuple[_Job[Any], int], T]]:  # fmt: skip
    """In the worker thread: the ``joining`` jobs' sentences join ``session``, which then
    decodes one step; the sentences that ended (ticket: job and sentence index).

    The jobs join in one ``add``: each join encodes the newcomers and copies the running
    batch's key/value cache, so one-sentence requests joining one by one would pay that once
    per request."""
    ended: list[tuple[Hashable, T]] = []
    if joining:
        sentences = [s for job in joining for s in job.sentences]
        tickets: list[Hashable] = [(job, i) for job in joining for i in range(len(job.sentences))]
        ended.extend(session.add(sentences, tickets))
    if session.live:
        ended.extend(session.step())
    return [(cast(tuple[_Job[Any], int], ticket), result) for ticket, result in ended]


def _fail(jobs: list[_Job[Any]], error: Exception) -> None:
    for job in jobs:
        if not job.future.done():
            job.future.set_exception(error)
