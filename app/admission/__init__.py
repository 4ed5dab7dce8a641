"""Admission: which providers could run a spec, where it goes, at what price, and refusals.

Below jobs, batches, templates, the providers API and the engine; imports none of them.
"""

from app.admission.admission import Admission, admit, ask_health
from app.admission.placement import Candidate, Verdict, candidate_names, compare, summary
from app.admission.providers import ProviderSet
from app.admission.workload import workload_spec

__all__ = [
    "Admission",
    "Candidate",
    "ProviderSet",
    "Verdict",
    "admit",
    "ask_health",
    "candidate_names",
    "compare",
    "summary",
    "workload_spec",
]
