"""Counters, gauges and histograms kept in this process, exposed through one collector.

prometheus_client's own metric objects check their arguments and take a lock through
several layers on every increment: about 0.7 µs an increment and 1.4 µs an
observation, which is most of what metrics cost a guarded call (`python -m bench
telemetry_overhead`). These keep the same figures with one small lock each and are
read when scraped. They are used in a single process; in multiprocess mode the
metrics are prometheus_client's own, whose values live in the shared directory.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["LocalCollector", "LocalFamily"]


class _Counter:
    __slots__ = ("_lock", "value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        with self._lock:
            self.value += amount


class _Gauge:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def set(self, value: float) -> None:
        self.value = float(value)  # one store: atomic under the GIL


class _Histogram:
    __slots__ = ("_bounds", "_lock", "buckets", "count", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self._bounds = bounds
        self._lock = threading.Lock()
        self.buckets = [0] * (len(bounds) + 1)  # the last one: above every bound (+Inf)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(self._bounds, value)
        with self._lock:
            self.buckets[index] += 1
            self.count += 1
            self.sum += value


class LocalFamily:
    """One metric with labels: `family(*label_values)` is the child to update."""

    __slots__ = ("_children", "_lock", "buckets", "doc", "kind", "labels", "name")

    def __init__(
        self,
        kind: str,
        name: str,
        doc: str,
        labels: Sequence[str],
        *,
        buckets: Sequence[float] = (),
    ) -> None:
        self.kind, self.name, self.doc = kind, name, doc
        self.labels = list(labels)
        self.buckets = tuple(float(b) for b in buckets)
        self._children: dict[tuple[str, ...], Any] = {}
        self._lock = threading.Lock()

    def __call__(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            with self._lock:
                child = self._children.get(values)
                if child is None:
                    child = self._children[values] = self._new()
        return child

    def _new(self) -> Any:
        if self.kind == "counter":
            return _Counter()
        if self.kind == "gauge":
            return _Gauge()
        return _Histogram(self.buckets)

    def metric(self) -> Any:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        children = list(self._children.items())
        if self.kind == "counter":
            counter = CounterMetricFamily(self.name, self.doc, labels=self.labels)
            for values, child in children:
                counter.add_metric(list(values), child.value)
            return counter
        if self.kind == "gauge":
            gauge = GaugeMetricFamily(self.name, self.doc, labels=self.labels)
            for values, child in children:
                gauge.add_metric(list(values), child.value)
            return gauge
        histogram = HistogramMetricFamily(self.name, self.doc, labels=self.labels)
        for values, child in children:
            with child._lock:
                counts, total = list(child.buckets), child.sum
            running, cumulative = 0, []
            for bound, n in zip((*self.buckets, float("inf")), counts, strict=True):
                running += n
                cumulative.append((_bound_text(bound), running))
            histogram.add_metric(list(values), cumulative, total)
        return histogram


def _bound_text(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


class LocalCollector:
    """Exposes a set of `LocalFamily` metrics to a prometheus_client registry."""

    def __init__(self, families: Sequence[LocalFamily]) -> None:
        self._families = families

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        for family in self._families:
            yield family.metric()
