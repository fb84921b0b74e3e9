"""The CPU trajectory-locking study behind ``trafl demo``: analyses, checks, plots and report.

:mod:`trafl.demo` runs the pipeline (base -> every method x seed with checkpoints -> held-out and
frontier evaluations); this package turns the evaluations' ``results.json`` files into the study's
numbers (:mod:`.analysis`), its figures (:mod:`.plots`) and its Markdown report (:mod:`.report`).
"""

from trafl.study.analysis import analyse, study_checks

__all__ = ["analyse", "study_checks"]
