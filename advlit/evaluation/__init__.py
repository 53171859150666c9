"""Robustness evaluation as a Lightning callback."""

from advlit.evaluation.callback import RobustnessEvaluation

__all__ = ["RobustnessEvaluation"]
