"""adserve's benchmark: ``python -m bench`` (``make bench``) measures the performance budget of docs/performance.md.

Importing the package sets the Powertools variables the handler needs outside Lambda (a metrics namespace,
tracing off: there is no X-Ray daemon here) unless the environment already sets them. They must be in place
before ``adserve.core.observability`` is imported, which is why this happens here and not in ``__main__``.
"""

import os

POWERTOOLS_DEFAULTS = {
    "POWERTOOLS_METRICS_NAMESPACE": "Adserve",
    "POWERTOOLS_SERVICE_NAME": "decide",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "AWS_DEFAULT_REGION": "us-east-1",
}

for _name, _value in POWERTOOLS_DEFAULTS.items():
    os.environ.setdefault(_name, _value)
