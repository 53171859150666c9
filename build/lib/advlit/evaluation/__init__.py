"""Robustness evaluation: the engine (:class:`AttackSuite`, any model), the standard suite,
honesty checks, and the Lightning callback over them."""

from advlit.evaluation.callback import RobustnessEvaluation
from advlit.evaluation.standard import standard_suite
from advlit.evaluation.suite import AttackSuite, SuiteResult, min_norm_statistics

__all__ = ["AttackSuite", "RobustnessEvaluation", "SuiteResult", "min_norm_statistics", "standard_suite"]
