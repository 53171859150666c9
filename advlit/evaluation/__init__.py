"""Robustness evaluation: the engine (:class:`AttackSuite`, any model), the standard suite,
honesty checks, and the Lightning callback over them."""

from advlit.evaluation.callback import RobustnessEvaluation
from advlit.evaluation.standard import standard_suite
from advlit.evaluation.suite import AttackSuite, SuiteResult

__all__ = ["AttackSuite", "RobustnessEvaluation", "SuiteResult", "standard_suite"]
