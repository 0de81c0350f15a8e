"""`nasengine audit`: how far a supernet's inherited accuracies can be trusted, against the same archs trained
alone (Kendall tau with a bootstrap interval, the MACs and params proxies beside it, the accuracy gap)."""

from nasengine.auditing.audit import AuditRequest, run_audit
from nasengine.auditing.picks import spread_archs
from nasengine.auditing.summary import AuditSummary, summarize

__all__ = ["AuditRequest", "AuditSummary", "run_audit", "spread_archs", "summarize"]
