"""The CPU trajectory-locking study behind ``trafl demo``: analyses, checks, plots and report.

:mod:`.pipeline` runs a study (:mod:`.runs`: base -> every method x seed with checkpoints;
:mod:`.evaluation`: held-out and frontier evaluations) and turns the evaluations' ``results.json``
files into the study's numbers (:mod:`.analysis`), its figures (:mod:`.plots`) and its Markdown
report (:mod:`.report`). :mod:`trafl.demo` describes the demo's study (its settings and base).
"""

from trafl.study.analysis import analyse, study_checks

__all__ = ["analyse", "study_checks"]
