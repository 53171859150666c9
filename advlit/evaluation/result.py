"""``SuiteResult``: everything an evaluation found, per sample, and every number computed from
it (robust accuracy per attack and eps, radius statistics, costs, flags, the table)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import NamedTuple

import torch

from advlit.evaluation import checks as _checks
from advlit.evaluation.keys import Key


class Examples(NamedTuple):
    """The first adversarial examples of one attack: dataset ``index``, ``x_adv``, the model's
    prediction ``pred`` on them and the true ``label``."""

    index: torch.Tensor
    x_adv: torch.Tensor
    pred: torch.Tensor
    label: torch.Tensor


@dataclass
class SuiteResult:
    """Per-sample results of one suite run (or of several, concatenated).

    ``index``: each sample's dataset index. ``correct``: clean prediction right (and finite).
    ``broken[name][eps]``: this attack broke the point at eps (False where it did not run on
    it). ``radius[name]``: min-norm radius (0 misclassified, +inf unbroken), ``relative[name]``
    that radius over ||x||. ``nonfinite``: a non-finite logit anywhere. ``silent[name][eps]``:
    the attack's path crossed the boundary but its result did not. Costs per attack:
    ``forward``/``backward`` image passes, ``seconds``. ``probed``: the messages of the model
    probes; :attr:`flags` has every check's (:mod:`advlit.evaluation.checks`). ``examples``:
    the first adversarial examples per attack, when the suite was asked for them.

    Randomized models (a suite with ``eot_samples`` > 1): the attacks and ``correct``/``broken``
    use the EOT-averaged classifier, a smoother classifier than the one deployed.
    ``deployed_clean`` and ``deployed_robust`` judge the clean points and the suite's adversarial
    examples with the deployed model instead: per sample, the fraction of ``deployed_passes``
    single forward passes that classify it correctly (robust: at the worst of the clean point and
    every attack's example at :attr:`main`). Their means are :attr:`clean_accuracy` and
    :attr:`robust_accuracy`, the headline; the averaged classifier's figures are
    :attr:`averaged_clean_accuracy` and :attr:`averaged_robust_accuracy`.

    Parameters
    ----------
    norms, grids, order, cascade
        Per attack name its norm and eps values; the attacks in the order they ran; whether
        the suite cascaded.
    index, correct, nonfinite : torch.Tensor
        Per sample (N,): dataset index, clean prediction right, a non-finite logit seen.
    broken, silent : dict of str to dict of float to torch.Tensor
        Per fixed-budget attack and eps, (N,) bool.
    radius, relative : dict of str to torch.Tensor
        Per min-norm attack, (N,) radii and radii over ||x||.
    forward, backward, seconds : dict of str to number
        Per attack, image forward passes, input gradients and wall time.
    probed : dict of str to str
        The model probes' flags.
    gradient_free, single_step : set of str
        The attacks with these capabilities (the checks read them).
    deployed_clean, deployed_robust : torch.Tensor, optional
        A randomized model's per-sample accuracies over ``deployed_passes`` single passes.
    deployed_passes : int, default 0
        Those passes.
    examples : dict of str to Examples
        The first adversarial examples per attack, when asked for.
    """

    norms: dict[str, str]
    grids: dict[str, list[float]]
    order: list[str]
    cascade: bool
    index: torch.Tensor
    correct: torch.Tensor
    nonfinite: torch.Tensor
    broken: dict[str, dict[float, torch.Tensor]] = field(default_factory=dict)
    silent: dict[str, dict[float, torch.Tensor]] = field(default_factory=dict)
    radius: dict[str, torch.Tensor] = field(default_factory=dict)
    relative: dict[str, torch.Tensor] = field(default_factory=dict)
    forward: dict[str, int] = field(default_factory=dict)
    backward: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    probed: dict[str, str] = field(default_factory=dict)
    gradient_free: set[str] = field(default_factory=set)
    single_step: set[str] = field(default_factory=set)
    deployed_clean: torch.Tensor | None = None
    deployed_robust: torch.Tensor | None = None
    deployed_passes: int = 0
    examples: dict[str, Examples] = field(default_factory=dict)

    # -- per-sample robustness --------------------------------------------------------
    def worst(self, norm: str, eps: float) -> torch.Tensor:
        """Robust against every attack of ``norm`` at ``eps`` (pointwise worst case)."""
        robust = self.correct & ~self.nonfinite
        for name in self.order:
            if self.norms[name] != norm:
                continue
            if name in self.radius:
                robust = robust & (self.radius[name] > eps)
            elif eps in self.broken.get(name, {}):
                robust = robust & ~self.broken[name][eps]
        return robust

    def robust_to(self, name: str, eps: float) -> torch.Tensor:
        """Robust to attack ``name`` at eps; in a cascade, to it and every attack before it."""
        if name in self.radius:
            return self.correct & ~self.nonfinite & (self.radius[name] > eps)
        robust = self.correct & ~self.nonfinite
        for other in self.order[: self.order.index(name) + 1] if self.cascade else [name]:
            if self.norms[other] == self.norms[name] and eps in self.broken.get(other, {}):
                robust = robust & ~self.broken[other][eps]
        return robust

    @property
    def main(self) -> tuple[str, float]:
        """The (norm, eps) that ``robust`` reports: the largest eps of the first norm."""
        norm = self.norms[self.order[0]]
        return norm, max(e for n, g in self.grids.items() if self.norms[n] == norm for e in g)

    @property
    def robust(self) -> torch.Tensor:
        """(N,) bool: correct and unbroken by every attack at :attr:`main`."""
        return self.worst(*self.main)

    @property
    def averaged_robust_accuracy(self) -> float:
        """Share of :attr:`robust` points: of the EOT-averaged classifier on a randomized model."""
        return self.robust.float().mean().item()

    @property
    def averaged_clean_accuracy(self) -> float:
        return self.correct.float().mean().item()

    @property
    def robust_accuracy(self) -> float:
        """The deployed model's expected robust accuracy on a randomized model, else the share of
        :attr:`robust` points."""
        if self.deployed_robust is not None:
            return self.deployed_robust.double().mean().item()
        return self.averaged_robust_accuracy

    @property
    def clean_accuracy(self) -> float:
        if self.deployed_clean is not None:
            return self.deployed_clean.double().mean().item()
        return self.averaged_clean_accuracy

    def deployed_interval(self, z: float = 1.96) -> tuple[float, float]:
        """A normal-approximation confidence interval (95% by default) for the deployed model's
        expected robust accuracy, over images and passes: mean +- z * std / sqrt(N)."""
        values = self.deployed_robust.double()
        half = z * values.std().item() / max(1, values.numel()) ** 0.5 if values.numel() > 1 else 0.0
        return max(0.0, values.mean().item() - half), min(1.0, values.mean().item() + half)

    @property
    def flags(self) -> dict[str, str]:
        """Name -> message of every honesty check that fired (``docs/flags.md``)."""
        return _checks.result_flags(self, self.probed)

    # -- numbers ----------------------------------------------------------------------
    def eps_values(self, norm: str) -> list[float]:
        return sorted({e for n in self.order if self.norms[n] == norm for e in self.grids[n]})

    def per_sample(self) -> dict[Key, torch.Tensor]:
        """Per-sample float values whose mean is the number: clean accuracy, robust accuracy
        per attack and eps, the pointwise worst case per norm and eps, the deployed model's
        accuracies, and the per-sample checks' indicators."""
        out = {Key("clean_acc"): self.correct.float()}
        for name in self.order:
            for eps in self.grids[name]:
                out[Key("robust_acc", name, self.norms[name], eps)] = self.robust_to(name, eps).float()
        for norm in dict.fromkeys(self.norms[n] for n in self.order):
            for eps in self.eps_values(norm):
                out[Key("robust_acc", None, norm, eps)] = self.worst(norm, eps).float()
        if self.deployed_robust is not None:
            out[Key("deployed_clean_acc")] = self.deployed_clean.float()
            out[Key("deployed_robust_acc")] = self.deployed_robust.float()
        for check in _checks.CHECKS:
            if check.when == "sample":
                out[Key("indicator", check=check.name)] = check.run(self).float()
        return out

    def norm_statistics(self, name: str) -> dict[str, float]:
        """Of a min-norm attack, over correctly classified points: ``success_rate``, and over
        those it broke ``median_norm``, ``mean_norm`` and ``rho_adv`` = mean ||r|| / ||x||
        (thesis eq. 3.20 / 4.9)."""
        radius, relative = self.radius[name], self.relative[name]
        correct = radius > 0
        attacked = correct & radius.isfinite()
        out = {"success_rate": (attacked.sum() / correct.sum().clamp_min(1)).item()}
        if attacked.any():
            out["median_norm"] = radius[attacked].median().item()
            out["mean_norm"] = radius[attacked].double().mean().item()
            out["rho_adv"] = relative[attacked].double().mean().item()
        return out

    def metrics(self) -> dict[Key, float]:
        """Every number: the means of :meth:`per_sample`, each min-norm attack's
        :meth:`norm_statistics`, each attack's costs per image and seconds, and each check's
        ``sanity`` value (1 fired, 0 not)."""
        values = {k: v.mean().item() for k, v in self.per_sample().items()}
        for name in self.radius:
            stats = self.norm_statistics(name)
            values.update({Key(stat, name, self.norms[name]): value for stat, value in stats.items()})
        n = max(1, self.correct.shape[0])
        for name in self.order:
            values[Key("grads_per_image", name, self.norms[name])] = self.backward.get(name, 0) / n
            values[Key("forwards_per_image", name, self.norms[name])] = self.forward.get(name, 0) / n
            values[Key("seconds", name, self.norms[name])] = self.seconds.get(name, 0.0)
        flags = self.flags
        values.update({Key("sanity", check=c.name): float(c.name in flags) for c in _checks.CHECKS})
        return values

    # -- shards ---------------------------------------------------------------------------
    def _map(self, fn) -> SuiteResult:
        """A copy with ``fn`` applied to every per-sample tensor."""
        def per_eps(table):
            return {name: {eps: fn(t) for eps, t in row.items()} for name, row in table.items()}

        return replace(self, index=fn(self.index), correct=fn(self.correct), nonfinite=fn(self.nonfinite),
                       broken=per_eps(self.broken), silent=per_eps(self.silent),
                       radius={k: fn(v) for k, v in self.radius.items()},
                       relative={k: fn(v) for k, v in self.relative.items()},
                       deployed_clean=None if self.deployed_clean is None else fn(self.deployed_clean),
                       deployed_robust=None if self.deployed_robust is None else fn(self.deployed_robust))

    def select(self, positions: torch.Tensor) -> SuiteResult:
        """The samples at ``positions`` (e.g. ``result.index.argsort()``: in dataset order)."""
        return self._map(lambda t: t[positions.to(t.device)])

    def to(self, device) -> SuiteResult:
        out = self._map(lambda t: t.to(device))
        out.examples = {k: Examples(*(t.to(device) for t in v)) for k, v in self.examples.items()}
        return out

    @classmethod
    def cat(cls, results: list[SuiteResult]) -> SuiteResult:
        """Concatenate the results of several batches (or shards) of the same suite: per-sample
        values side by side, costs summed, the first probes' flags and examples kept."""
        first = results[0]
        out = replace(first, **{name: None if getattr(first, name) is None else
                                torch.cat([getattr(r, name) for r in results])
                                for name in ("index", "correct", "nonfinite", "deployed_clean",
                                             "deployed_robust")})
        for attr in ("broken", "silent"):
            setattr(out, attr, {name: {eps: torch.cat([getattr(r, attr)[name][eps] for r in results])
                                       for eps in per_eps} for name, per_eps in getattr(first, attr).items()})
        out.radius = {name: torch.cat([r.radius[name] for r in results]) for name in first.radius}
        out.relative = {name: torch.cat([r.relative[name] for r in results]) for name in first.relative}
        for attr, zero in (("forward", 0), ("backward", 0), ("seconds", 0.0)):
            setattr(out, attr, {k: sum(getattr(r, attr).get(k, zero) for r in results) for k in first.order})
        out.probed, out.examples = {}, {}
        for r in results:
            out.probed = {**r.probed, **out.probed}
            out.examples = {**r.examples, **out.examples}
        return out

    # -- files --------------------------------------------------------------------------------
    def state(self) -> dict:
        """The result as plain dicts, lists, numbers, strings and tensors: what ``torch.save``
        writes and ``torch.load(..., weights_only=True)`` reads back (:meth:`from_state`)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["gradient_free"], out["single_step"] = sorted(self.gradient_free), sorted(self.single_step)
        out["examples"] = {name: tuple(examples) for name, examples in self.examples.items()}
        return out

    @classmethod
    def from_state(cls, state: dict) -> SuiteResult:
        state = dict(state, gradient_free=set(state["gradient_free"]), single_step=set(state["single_step"]))
        state["examples"] = {name: Examples(*examples) for name, examples in state["examples"].items()}
        return cls(**state)

    # -- the table --------------------------------------------------------------------------
    def table(self, title: str = "") -> str:
        """A plain-text summary: robust accuracy per attack (rows) and eps (columns) per norm,
        min-norm statistics, costs, then the flags."""
        n = self.correct.shape[0]
        lines = [title] if title else []
        lines.append(f"clean accuracy {self.averaged_clean_accuracy:.4f} on {n} images")
        if self.deployed_robust is not None:
            low, high = self.deployed_interval()
            lines = lines[:-1] + [
                f"deployed model ({self.deployed_passes} single passes per image): clean accuracy "
                f"{self.clean_accuracy:.4f}, robust accuracy {self.robust_accuracy:.4f} "
                f"(95% interval {low:.4f}-{high:.4f}) on {n} images",
                "below: the EOT-averaged classifier the attacks used "
                f"(clean {self.averaged_clean_accuracy:.4f})"]
        values = self.metrics()
        for norm in dict.fromkeys(self.norms[name] for name in self.order):
            names = [name for name in self.order if self.norms[name] == norm]
            grid = self.eps_values(norm)
            stats = [s for s in ("median_norm", "rho_adv") if any(Key(s, a, norm) in values for a in names)]
            header = "".join(f"{'eps=' + format(e, 'g'):>10}" for e in grid)
            header += "".join(f"{s:>12}" for s in stats)
            lines.append(f"{'attack (' + norm + ')':<18}{header}{'grads/img':>10}{'s':>7}")
            for name in names + [None]:
                cells = [values.get(Key("robust_acc", name, norm, eps)) for eps in grid]
                row = "".join(f"{v:>10.4f}" if v is not None else f"{'':>10}" for v in cells)
                row += "".join(f"{values[Key(s, name, norm)]:>12.4f}" if Key(s, name, norm) in values
                               else f"{'':>12}" for s in stats)
                if name is not None:
                    row += f"{values[Key('grads_per_image', name, norm)]:>10.0f}"
                    row += f"{values[Key('seconds', name, norm)]:>7.1f}"
                label = name if name is not None else f"worst_{norm}"
                lines.append(f"{label[:18]:<18}{row}")
        if self.cascade:
            lines.append("cascade: each row is robust against that attack and every one above it")
        flags = self.flags
        lines += [f"flag {key}: {message}" for key, message in flags.items()]
        if flags:
            lines.append(f"what each flag means and what to do next: {_checks.FLAGS_GUIDE}")
        return "\n".join(lines)


def empty_radius(correct: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Radii before a min-norm attack: 0 where misclassified, +inf where still unbroken."""
    return torch.where(correct, math.inf, 0.0).to(dtype)
