"""Router metrics (exported with prometheus-client) and the access log.

The hot path pays one dict update and one bisect per request: counts and latency buckets are
plain Python numbers (the router is one event loop, so no locks), and a collector turns them and
the live admission state (in-flight, queue depth, replicas) into Prometheus families when
``/metrics`` is scraped.
"""

from __future__ import annotations

import sys
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from typing import IO

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from modelhost.router.table import ServiceLoad

__all__ = ["BUCKETS", "AccessLog", "RouterMetrics"]

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class RouterMetrics(Collector):
    """Request counts by service and status, latency histogram by service, load gauges."""

    def __init__(
        self,
        sample_load: Callable[[], Mapping[str, ServiceLoad]],
        desired: Callable[[], Mapping[str, int | None]] = dict,
    ) -> None:
        self._sample = sample_load
        self._desired = desired
        self._counts: dict[tuple[str, int], int] = {}
        self._buckets: dict[str, list[int]] = {}
        self._sums: dict[str, float] = {}
        self.registry = CollectorRegistry()
        self.registry.register(self)

    def observe(self, service: str, status: int, seconds: float) -> None:
        """Count one finished request (called once per request, on the event loop)."""
        key = (service, status)
        self._counts[key] = self._counts.get(key, 0) + 1
        buckets = self._buckets.get(service)
        if buckets is None:
            buckets = self._buckets[service] = [0] * (len(BUCKETS) + 1)
            self._sums[service] = 0.0
        buckets[bisect_left(BUCKETS, seconds)] += 1
        self._sums[service] += seconds

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def collect(self) -> Iterable[Metric]:
        requests = CounterMetricFamily("modelhost_router_requests", "Requests answered by the router",
                                       labels=["service", "status"])
        for (service, status), count in sorted(self._counts.items()):
            requests.add_metric([service, str(status)], count)
        latency = HistogramMetricFamily("modelhost_router_request_duration_seconds",
                                        "Time from request headers to the end of the response",
                                        labels=["service"])
        for service, counts in sorted(self._buckets.items()):
            cumulative, running = [], 0
            for bound, count in zip((*map(str, BUCKETS), "+Inf"), counts, strict=True):
                running += count
                cumulative.append((bound, running))
            latency.add_metric([service], cumulative, self._sums[service])
        return [requests, latency, *self._load_families()]

    def _load_families(self) -> list[Metric]:
        families = {
            "in_flight": GaugeMetricFamily("modelhost_router_in_flight_requests",
                                           "Requests forwarded and not yet answered", labels=["service"]),
            "queued": GaugeMetricFamily("modelhost_router_queue_depth",
                                        "Requests waiting for a replica slot", labels=["service"]),
            "replicas": GaugeMetricFamily("modelhost_router_ready_replicas",
                                          "Ready replicas in the routing table", labels=["service"]),
            "busy": GaugeMetricFamily("modelhost_router_busy_replicas",
                                      "Busy replica-equivalents (in-flight / per-replica limit)",
                                      labels=["service"]),
            "utilization": GaugeMetricFamily("modelhost_router_utilization",
                                             "(busy replicas + queued requests) / ready replicas",
                                             labels=["service"]),
            "desired": GaugeMetricFamily("modelhost_router_desired_replicas",
                                         "Replicas the control plane wants (the autoscaler's decision)",
                                         labels=["service"]),
        }
        desired = self._desired()
        for name, load in sorted(self._sample().items()):
            families["in_flight"].add_metric([name], load.in_flight)
            families["queued"].add_metric([name], load.queued)
            families["replicas"].add_metric([name], load.replicas)
            families["busy"].add_metric([name], load.busy)
            if load.replicas:
                families["utilization"].add_metric([name], (load.busy + load.queued) / load.replicas)
            if desired.get(name) is not None:
                families["desired"].add_metric([name], float(desired[name] or 0))
        return list(families.values())


class AccessLog:
    """One line per request, buffered and flushed by :meth:`flush` (the router calls it every 0.25 s).

    Line: ``<UTC time> <service> <method> <path> <status> <ms>ms replica=<id> in=<bytes> out=<bytes>``.
    """

    def __init__(self, stream: IO[str] | None) -> None:
        self._stream = stream
        self._lines: list[str] = []
        self._second = -1
        self._stamp = ""

    @classmethod
    def open(cls, target: str) -> AccessLog:
        """``-`` for stdout, ``off`` for none, else a file path opened for appending."""
        if target == "off":
            return cls(None)
        if target == "-":
            return cls(sys.stdout)
        return cls(open(target, "a", encoding="utf-8"))

    @property
    def enabled(self) -> bool:
        return self._stream is not None

    def write(self, service: str, method: str, path: str, status: int, seconds: float,
              replica: str, bytes_in: int, bytes_out: int) -> None:
        if self._stream is None:
            return
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        self._lines.append(
            f"{self._stamp}.{int((now - second) * 1000):03d}Z {service or '-'} {method} {path} {status} "
            f"{seconds * 1000:.3f}ms replica={replica or '-'} in={bytes_in} out={bytes_out}\n"
        )

    def flush(self) -> None:
        if self._stream is None or not self._lines:
            return
        lines, self._lines = self._lines, []
        self._stream.write("".join(lines))
        self._stream.flush()

    def close(self) -> None:
        self.flush()
        if self._stream is not None and self._stream is not sys.stdout:
            self._stream.close()
