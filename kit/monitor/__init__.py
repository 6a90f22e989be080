"""Watch a deployed routing: re-test the verdict's questions on each window of its log, and say what to do.

:func:`read_log` reads the router's request log and shadow log (the files ``replay:`` reads) and a labelled
sample; :func:`watch` cuts them into windows and re-tests agreement with the reference, the bar and the floor on
labels, latency and input drift with always-valid intervals whose error budget is spent across windows, ending
each window with an :class:`Advice`.

>>> report = watch(route, read_log(Path("deploy/requests.jsonl")), Windows(by_month=True))   # doctest: +SKIP
"""

from kit.monitor.drift import DriftTest, c2st, length_test
from kit.monitor.logs import Windows, read_log, windowed
from kit.monitor.watch import Advice, Look, MonitorReport, Question, WindowAdvice, spent, watch

__all__ = ["Advice", "DriftTest", "Look", "MonitorReport", "Question", "WindowAdvice", "Windows", "c2st",
           "length_test", "read_log", "spent", "watch", "windowed"]
