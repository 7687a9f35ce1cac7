"""Sending: drain the delivery queue with sending threads, each with a transport of its own.

The queue (:class:`digest.deliver.DeliveryQueue`) stays the only owner of the delivery table:
this module claims, hands messages to a transport and records results only through it. A
batch in flight is always finished and recorded before a sending thread stops.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC

from digest.deliver import (Claimed, DeliveryQueue, DeliveryStats, MessageFactory,
                            ProgressListener, Transport)
from digest.errors import DigestError, TransportError
from digest.outbound import OutgoingMessage, Outcome, SendResult
from digest.ratelimit import ProviderPause, RateLimiter

log = logging.getLogger(__name__)


class Deliverer:
    """Drains the queue with ``concurrency`` sending threads, each with a transport of its own
    (for SMTP, a pool of persistent connections), sharing one rate limiter and one pause.

    A pause the provider asks for (429 with Retry-After) stops every thread from sending until
    it is over; the throttled batch goes back to pending, due when the pause ends, and the run
    waits for it when that is at most ``max_wait`` seconds away. Longer ones are left to
    `digest worker` / the scheduler (the command says when they are due)."""

    def __init__(self, queue: DeliveryQueue, transports: Callable[[], Transport],
                 make_message: MessageFactory, *, batch_size: int = 100, concurrency: int = 1,
                 rate_limiter: RateLimiter | None = None,
                 progress: ProgressListener | None = None, max_wait: float = 120.0) -> None:
        self.queue = queue
        self.transports = transports
        self.make_message = make_message
        self.batch_size = max(1, batch_size)
        self.concurrency = max(1, concurrency)
        self.rate_limiter = rate_limiter
        self.progress = progress
        self.max_wait = max_wait
        self.pause = ProviderPause()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._refills: dict[str, tuple[int, dict]] = {}   # per thread's worker id

    def run(self, *, edition_ids: Sequence[int] | None = None, list_id: int | None = None,
            stop: threading.Event | None = None) -> DeliveryStats:
        """Send until nothing due is left or ``stop`` is set; return the totals.

        A batch in flight is always finished and recorded before returning."""
        stop = self._stop = stop or threading.Event()
        scope = {"edition_ids": edition_ids, "list_id": list_id}
        total = DeliveryStats()
        errors: list[BaseException] = []
        total.recovered = self.queue.recover_stale()
        if self.progress:
            self.progress.started(self.queue.count_due(**scope))
        threads = [threading.Thread(target=self._drain, name=f"sender-{n}",
                                    args=(n, scope, stop, total, errors))
                   for n in range(self.concurrency)]
        if len(threads) == 1:
            threads[0].run()              # no thread needed; keeps tracebacks simple
        else:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        if errors:
            raise errors[0]
        return total

    def _drain(self, number: int, scope: dict, stop: threading.Event, total: DeliveryStats,
               errors: list[BaseException]) -> None:
        queue = self.queue if self.concurrency == 1 else self.queue.for_thread(number)
        try:
            transport = self.transports()
        except BaseException as exc:
            errors.append(exc)
            stop.set()
            return
        size = min(self.batch_size, transport.max_batch)
        if self.rate_limiter is not None and self.rate_limiter.max_burst is not None:
            size = min(size, self.rate_limiter.max_burst)
        self._refills[queue.worker_id] = (size, scope)
        try:
            while not stop.is_set():
                if self.pause.remaining() > self.max_wait:
                    break                     # too long to wait: left to worker/scheduler
                self.pause.wait(stop)
                if stop.is_set():
                    break
                # The next group was claimed with the last results, in one transaction.
                claimed = queue.take_prefetched() or queue.claim(size, **scope)
                if not claimed:
                    if self.pause.seen and self._wait_for_next_due(queue, scope, stop):
                        continue
                    break
                if self.rate_limiter is not None:
                    self.rate_limiter.acquire(len(claimed))
                stats = self.send_batch(queue, transport, claimed)
                with self._lock:
                    total.add(stats)
                    if self.progress:
                        self.progress.advanced(stats)
        except BaseException as exc:
            errors.append(exc)
            stop.set()
        finally:
            leftover = queue.take_prefetched()
            if leftover:                      # claimed with the last results, never sent
                queue.release(leftover, "stopped before it was sent")
            try:
                transport.close()
            except Exception as exc:  # what was sent is recorded; say what could not close
                log.error("transport close failed: %s", exc)
                errors.append(exc)

    def _wait_for_next_due(self, queue: DeliveryQueue, scope: dict,
                           stop: threading.Event) -> bool:
        """After a pause: wait for the deliveries it put off if they are due within
        ``max_wait``; False when there is nothing to wait for (or too long to wait)."""
        due = queue.next_due(**scope)
        if due is None:
            return False
        if due.tzinfo is None:
            due = due.replace(tzinfo=UTC)
        seconds = (due - queue.clock()).total_seconds()
        if seconds > self.max_wait:
            return False
        stop.wait(max(seconds, 0.0) + 0.01)
        return not stop.is_set()

    def send_batch(self, queue: DeliveryQueue, transport: Transport,
                   claimed: Sequence[Claimed]) -> DeliveryStats:
        messages: list[OutgoingMessage] = []
        for item in claimed:
            try:
                messages.append(self.make_message(item))
            except Exception as exc:
                # A template or a setting of ours, not the reader: every message would fail
                # alike. Nothing was handed over; give the claims back and stop the run.
                log.exception("build delivery=%d failed", item.delivery_id)
                queue.release(claimed, f"could not build the message: {exc}")
                raise DigestError(f"could not build the message for delivery "
                                  f"{item.delivery_id}: {type(exc).__name__}: {exc}",
                                  hint="fix the template (templates/email/) or the setting "
                                       "the error names, then run `digest send` again: the "
                                       "deliveries stay pending") from exc
        results: list[SendResult] = []
        if self.pause.remaining() > 0:
            # Another thread was told to pause while this one built its batch: give it back.
            queue.release(claimed, "paused: the provider asked us to wait")
            return DeliveryStats()
        try:
            results.extend(transport.send(messages) if messages else [])
        except TransportError as exc:
            if not exc.retry:
                # The sender's side: record what was handed over, give back the rest, stop.
                results = list(exc.handed_over)
                done = {r.delivery_id for r in results}
                queue.record(claimed, results)
                queue.release([c for c in claimed if c.delivery_id not in done], str(exc))
                raise
            if exc.retry_after is not None and not exc.maybe_sent:
                # The provider throttles the account: pause every thread, give the batch
                # back (the attempt does not count), due again when the pause ends.
                log.warning("paused transport=%s seconds=%.1f: %s", transport.name,
                            exc.retry_after, exc)
                self.pause.hold(exc.retry_after)
                queue.release(claimed, str(exc), after=exc.retry_after)
                return DeliveryStats(retried=len(claimed),
                                     editions={c.edition_id for c in claimed})
            # A request that may have been processed is uncertain, like a lost SMTP reply:
            # the uncertain policy decides whether it is sent again.
            outcome = Outcome.UNCERTAIN if exc.maybe_sent else Outcome.RETRY
            results.extend(SendResult(m.delivery_id, outcome, error=str(exc),
                                      retry_after=exc.retry_after) for m in messages)
        # Unless stopping or paused, the next group is claimed in the same transaction.
        refill = (None if self._stop.is_set() or self.pause.remaining() > 0
                  else self._refills.get(queue.worker_id))
        stats = queue.record(claimed, results, refill=refill)
        log.debug("batch worker=%s sent=%d retried=%d failed=%d", queue.worker_id,
                  stats.sent, stats.retried, stats.failed)
        return stats
