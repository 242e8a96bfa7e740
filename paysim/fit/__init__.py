"""``paysim fit``: from a request log (JMeter CSV results or any CSV) to rates, rate profiles,
fitted service-time distributions, error rates and concurrency per label, and to a scenario.

``logs`` reads, ``rates`` finds the profile, ``service`` fits distributions, ``concurrency``
measures requests in flight, ``model`` puts them together per label, ``scenario_writer``
writes YAML, ``plot`` draws the fits, ``table`` prints them.
"""

from paysim.fit.logs import JMETER, Columns, LogError, RequestLog, read_log
from paysim.fit.model import LabelFit, fit_log, to_json

__all__ = ["JMETER", "Columns", "LabelFit", "LogError", "RequestLog", "fit_log", "read_log", "to_json"]
