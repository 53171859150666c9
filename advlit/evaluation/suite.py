"""The evaluation engine in plain torch: run a suite of named attacks on any model that maps
[0, 1] images to logits, and keep every result per sample.

    result = AttackSuite({"apgd_ce": APGD(eps=0.3)}).run(model, x, y, index=idx)
    result.robust_accuracy

Per-sample results never depend on batching or the number of processes: attacks get each
sample's dataset ``index`` (randomness keyed per sample) and leave the global RNG alone, so
evaluating shards and concatenating (:meth:`SuiteResult.cat`) equals one run on everything.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from advlit.attacks import Attack, MinNormAttack
from advlit.attacks.base import check_images, model_state_guard
from advlit.attacks.losses import adversarial
from advlit.attacks.norms import NORMS, lp_norm
from advlit.evaluation import checks as _checks
from advlit.evaluation.eot import ExpectationOverTransformation, deployed_accuracy


class CountingModel(nn.Module):
    """Counts the images a model is run on (``forward``) and the input gradients taken
    (``backward``: one per image whose input gradient reaches it), and records, per row of
    full-size batches, whether any forward pass saw the row misclassified (``path``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.reset(None, None)

    def reset(self, y: torch.Tensor | None, goal: torch.Tensor | None, targeted: bool = False) -> None:
        self.forward_count, self.backward_count = 0, 0
        self.y, self.goal, self.targeted = y, goal, targeted
        self.path = None if y is None else torch.zeros_like(y, dtype=torch.bool)

    def _count_backward(self, grad: torch.Tensor) -> None:
        self.backward_count += grad.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.forward_count += x.shape[0]
        if x.requires_grad:
            x.register_hook(self._count_backward)
        logits = self.model(x).float()  # fp32 losses and margins under mixed precision
        if self.path is not None and x.shape[0] == self.y.shape[0]:
            with torch.no_grad():
                self.path |= adversarial(logits, self.goal if self.targeted else self.y, self.targeted)
        return logits


@dataclass
class SuiteResult:
    """Per-sample results of one suite run (or of several, concatenated).

    ``correct``: clean prediction right (and finite). ``broken[name][eps]``: this attack
    broke the point at eps (False where it did not run on it). ``radius[name]``: min-norm
    radius (0 misclassified, +inf unbroken). ``nonfinite``: a non-finite logit anywhere.
    ``silent[name][eps]``: the attack's path crossed the boundary but its result did not.
    Costs per attack: ``forward``/``backward`` image passes, ``seconds``. ``flags``: named
    messages from the honesty checks (:mod:`advlit.evaluation.checks`).

    Randomized models (a suite with ``eot_samples`` > 1): the attacks and ``correct``/``broken``
    use the EOT-averaged classifier, a smoother classifier than the one deployed.
    ``deployed_clean`` and ``deployed_robust`` judge the clean points and the suite's adversarial
    examples with the deployed model instead: per sample, the fraction of ``deployed_passes``
    single forward passes that classify it correctly (robust: at the worst of the clean point and
    every attack's example at :attr:`main`). Their means are :attr:`clean_accuracy` and
    :attr:`robust_accuracy`, the headline; the averaged classifier's figures are
    :attr:`averaged_clean_accuracy` and :attr:`averaged_robust_accuracy`.
    """

    norms: dict[str, str]
    grids: dict[str, list[float]]
    order: list[str]
    cascade: bool
    correct: torch.Tensor
    nonfinite: torch.Tensor
    broken: dict[str, dict[float, torch.Tensor]] = field(default_factory=dict)
    silent: dict[str, dict[float, torch.Tensor]] = field(default_factory=dict)
    radius: dict[str, torch.Tensor] = field(default_factory=dict)
    relative: dict[str, torch.Tensor] = field(default_factory=dict)
    forward: dict[str, int] = field(default_factory=dict)
    backward: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    flags: dict[str, str] = field(default_factory=dict)
    gradient_free: set[str] = field(default_factory=set)
    deployed_clean: torch.Tensor | None = None
    deployed_robust: torch.Tensor | None = None
    deployed_passes: int = 0

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

    # -- summaries ----------------------------------------------------------------------
    def per_sample(self, prefix: str = "", tag: str = "") -> dict[str, torch.Tensor]:
        """Metric name -> per-sample float values whose mean is the metric (clean accuracy,
        robust accuracy per attack and eps, pointwise worst case per norm and eps, and the
        per-sample indicators the honesty checks read); means of shards reduce exactly.
        ``tag`` (e.g. ``_eot8``) is appended to attack names and ``clean_acc``."""
        out = {f"{prefix}clean_acc{tag}": self.correct.float()}
        for name in self.order:
            for eps in self.grids[name]:
                out[f"{prefix}robust_acc/{name}{tag}/eps={eps:g}"] = self.robust_to(name, eps).float()
        for norm in dict.fromkeys(self.norms[n] for n in self.order):
            for eps in sorted({e for n in self.order if self.norms[n] == norm for e in self.grids[n]}):
                out[f"{prefix}robust_acc/worst_{norm}{tag}/eps={eps:g}"] = self.worst(norm, eps).float()
        if self.deployed_robust is not None:
            out[f"{prefix}deployed/clean_acc{tag}"] = self.deployed_clean.float()
            out[f"{prefix}deployed/robust_acc{tag}"] = self.deployed_robust.float()
        out[f"{prefix}indicator/nonfinite_logits"] = self.nonfinite.float()
        out[f"{prefix}indicator/silent_success"] = self._any(self.silent).float()
        out[f"{prefix}indicator/black_box_beats_white_box"] = self._black_box_wins().float()
        return out

    def _any(self, table: dict[str, dict[float, torch.Tensor]]) -> torch.Tensor:
        found = torch.zeros_like(self.correct)
        for per_eps in table.values():
            for flags in per_eps.values():
                found = found | flags
        return found

    def _black_box_wins(self) -> torch.Tensor:
        """Points a gradient-free attack broke at some eps that every gradient attack of its
        norm left standing there."""
        wins = torch.zeros_like(self.correct)
        for name in self.gradient_free:
            for eps, broken in self.broken.get(name, {}).items():
                standing = self.correct.clone()
                for other in self.order:
                    if other not in self.gradient_free and self.norms[other] == self.norms[name]:
                        standing &= ~self.broken.get(other, {}).get(eps, torch.zeros_like(standing))
                wins |= broken & standing
        return wins

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

    def metrics(self, prefix: str = "") -> dict[str, float]:
        values = {k: v.mean().item() for k, v in self.per_sample(prefix).items()}
        for name in self.radius:
            values.update({f"{prefix}{k}/{name}": v for k, v in self.norm_statistics(name).items()})
        n = max(1, self.correct.shape[0])
        for name in self.order:
            values[f"{prefix}grads_per_image/{name}"] = self.backward.get(name, 0) / n
            values[f"{prefix}forwards_per_image/{name}"] = self.forward.get(name, 0) / n
            values[f"{prefix}seconds/{name}"] = self.seconds.get(name, 0.0)
        return values

    @classmethod
    def cat(cls, results: list[SuiteResult]) -> SuiteResult:
        """Concatenate the results of several batches (or shards) of the same suite."""
        first = results[0]

        def join(attr):
            return {name: {eps: torch.cat([getattr(r, attr)[name][eps] for r in results])
                           for eps in per_eps} for name, per_eps in getattr(first, attr).items()}

        out = cls(first.norms, first.grids, first.order, first.cascade,
                  torch.cat([r.correct for r in results]), torch.cat([r.nonfinite for r in results]),
                  join("broken"), join("silent"),
                  {name: torch.cat([r.radius[name] for r in results]) for name in first.radius},
                  {name: torch.cat([r.relative[name] for r in results]) for name in first.relative},
                  {k: sum(r.forward.get(k, 0) for r in results) for k in first.order},
                  {k: sum(r.backward.get(k, 0) for r in results) for k in first.order},
                  {k: sum(r.seconds.get(k, 0.0) for r in results) for k in first.order},
                  gradient_free=first.gradient_free, deployed_passes=first.deployed_passes)
        if first.deployed_robust is not None:
            out.deployed_clean = torch.cat([r.deployed_clean for r in results])
            out.deployed_robust = torch.cat([r.deployed_robust for r in results])
        for r in results:
            out.flags.update(r.flags)
        out.flags.update(_checks.indicator_flags(out.metrics()))
        out.flags = _checks.explain_by_randomness(out.flags)
        return out

    def table(self) -> str:
        """A plain-text summary (80 columns): robust accuracy per attack and eps, costs, flags."""
        lines = [f"clean accuracy {self.averaged_clean_accuracy:.4f} on {self.correct.shape[0]} images"]
        if self.deployed_robust is not None:
            low, high = self.deployed_interval()
            lines = [f"deployed model ({self.deployed_passes} single passes per image): clean accuracy "
                     f"{self.clean_accuracy:.4f}, robust accuracy {self.robust_accuracy:.4f} "
                     f"(95% interval {low:.4f}-{high:.4f}) on {self.correct.shape[0]} images",
                     "below: the EOT-averaged classifier the attacks used "
                     f"(clean {self.averaged_clean_accuracy:.4f})"]
        for norm in dict.fromkeys(self.norms[n] for n in self.order):
            names = [n for n in self.order if self.norms[n] == norm]
            grid = sorted({e for n in names for e in self.grids[n]})
            header = "".join(f"{'eps=' + format(e, 'g'):>10}" for e in grid)
            lines.append(f"{'attack (' + norm + ')':<18}{header}{'grads/img':>10}{'s':>7}")
            for name in names + [f"worst_{norm}"]:
                cells = []
                for eps in grid:
                    if name.startswith("worst_"):
                        cells.append(f"{self.worst(norm, eps).float().mean().item():>10.4f}")
                    elif eps in self.grids[name]:
                        cells.append(f"{self.robust_to(name, eps).float().mean().item():>10.4f}")
                    else:
                        cells.append(f"{'':>10}")
                cost = "" if name.startswith("worst_") else (
                    f"{self.backward.get(name, 0) / max(1, len(self.correct)):>10.0f}"
                    f"{self.seconds.get(name, 0.0):>7.1f}")
                lines.append(f"{name[:18]:<18}" + "".join(cells) + cost)
        lines += [f"flag {key}: {message}" for key, message in self.flags.items()]
        if self.flags:
            lines.append(f"what each flag means and what to do next: {_checks.FLAGS_GUIDE}")
        return "\n".join(lines)


class AttackSuite:
    """Named attacks run in order on a model, at the eps of ``eps_grid[name]`` or else
    ``eps_grid[norm]`` (or at a fixed-budget attack's own eps when neither is given); min-norm
    attacks run once and give a radius per point. With ``cascade`` (AutoAttack's recipe) an
    attack only attacks the points still robust after the attacks before it (per norm and
    eps), so the suite costs
    what its robust points cost (min-norm attacks still see every correctly classified point,
    so their radius statistics stay whole). ``eot_samples`` > 1 attacks and predicts through an
    expectation over that many passes (randomized models). ``seed`` keys the attacks'
    per-sample randomness together with each sample's dataset index. ``batch_size``: :meth:`run`
    evaluates at most that many images at a time (memory, and on CPU speed: a forward+backward of
    the benchmark BatchNorm CNN costs about 3x more per image at 1024 images than at 256) and
    concatenates the results, which are the same per sample for any batch size.

    Parameters
    ----------
    attacks : dict of str to Attack
        The attacks by name, run in this order.
    eps_grid : dict of str to list of float, optional
        Budgets per norm (``{"linf": [0.1, 0.3]}``) or per attack name, in [0, 1] pixel scale.
    cascade : bool, default True
        Attack only the points still robust after the attacks before (AutoAttack's recipe).
    seed : int, default 0
        Keys the per-sample randomness with each image's dataset index.
    eot_samples : int, default 1
        Passes averaged by expectation over transformation (randomized models); above 1 the
        headline accuracies judge the deployed model (see :class:`SuiteResult`).
    checks : bool, default True
        Run the model-probing honesty checks on the first batch (``docs/flags.md``).
    progress : bool, default False
        A progress bar over the attacks of each batch.
    batch_size : int or None, default 256
        Images evaluated at a time (None: all at once).
    """

    def __init__(self, attacks: dict[str, Attack], eps_grid: dict[str, list[float]] | None = None,
                 cascade: bool = True, seed: int = 0, eot_samples: int = 1, checks: bool = True,
                 progress: bool = False, batch_size: int | None = 256) -> None:
        if not attacks:
            raise ValueError("an AttackSuite needs at least one attack")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 or None (everything at once), got {batch_size!r}")
        if eot_samples < 1:
            raise ValueError(f"eot_samples must be >= 1, got {eot_samples}")
        self.eps_grid = {k if k in attacks else k.lower(): sorted(float(e) for e in v)
                         for k, v in (eps_grid or {}).items()}
        for key, grid in self.eps_grid.items():
            if key not in NORMS and key not in attacks:
                raise ValueError(f"eps_grid has an unknown norm {key!r}; use one of {NORMS} or an "
                                 f"attack's name ({', '.join(attacks)})")
            if any(e < 0 for e in grid):
                raise ValueError(f"eps_grid[{key!r}] has a negative eps: {grid}")
        self.attacks = dict(attacks)
        self.cascade, self.seed, self.eot_samples = cascade, seed, eot_samples
        self.checks, self.progress, self.batch_size = checks, progress, batch_size

    def grid(self, name: str) -> list[float]:
        """The eps values attack ``name`` is evaluated at."""
        attack = self.attacks[name]
        if name in self.eps_grid:
            return self.eps_grid[name]
        if isinstance(attack, MinNormAttack):
            return self.eps_grid.get(attack.norm, [])
        return self.eps_grid.get(attack.norm, [float(attack.eps)])

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor | None = None,
            target: int | None = None, checks: bool | None = None) -> SuiteResult:
        """Evaluate ``model`` on images ``x`` in [0, 1] with labels ``y``. ``index``: each
        sample's index in the dataset (default 0..N-1; pass it when evaluating a subset or a
        shard, so randomness follows the sample). ``target``: make every attack targeted to
        that class (a point stays robust while it is classified correctly). ``checks``
        overrides the suite's setting for the model-probing checks (e.g. first batch only); they
        probe the first ``batch_size`` images."""
        check_batch(x, y, index)
        index = torch.arange(x.shape[0], device=x.device) if index is None else index.to(x.device)
        checks = self.checks if checks is None else checks
        size = self.batch_size or max(1, x.shape[0])
        # Lightning evaluates under inference mode; the engine needs ordinary tensors
        with torch.inference_mode(False):
            results = [self._run(model, x[i:i + size].clone(), y[i:i + size].clone(),
                                 index[i:i + size].clone(), target, checks and i == 0)
                       for i in range(0, max(1, x.shape[0]), size)]
        return results[0] if len(results) == 1 else SuiteResult.cat(results)

    def _run(self, model, x, y, index, target, run_model_checks) -> SuiteResult:
        base = (ExpectationOverTransformation(model, self.eot_samples, max_batch=self.batch_size)
                if self.eot_samples > 1 else model)
        counted = CountingModel(base)
        goal = y if target is None else torch.full_like(y, target)
        attacks = ({n: a.replace(targeted=True) for n, a in self.attacks.items()} if target is not None
                   else self.attacks)
        with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
            # a randomized model's own noise: seeded per batch, so two runs give the same numbers
            torch.manual_seed(self.seed * 1_000_003 + int(index[0]))
            logits = _predict(base, x)
            check_labels(y if target is None else torch.cat([y, goal[:1]]), logits.shape[1],
                         "y" if target is None else "y or target")
            nonfinite = ~logits.isfinite().all(dim=1)
            correct = (logits.argmax(dim=1) == y) & ~nonfinite
            result = SuiteResult({n: a.norm for n, a in attacks.items()},
                                 {n: self.grid(n) for n in attacks}, list(attacks), self.cascade,
                                 correct, nonfinite, gradient_free={
                                     n for n, a in attacks.items() if getattr(a, "gradient_free", False)})
            deployed = self.eot_samples > 1 and target is None and any(result.grids.values())
            if deployed:
                main = result.main
                result.deployed_passes = self.eot_samples
                result.deployed_clean = deployed_accuracy(model, x, y, self.eot_samples, self.batch_size)
                result.deployed_robust = result.deployed_clean.clone()
            bar = _progress(len(attacks), self.progress)
            probe = None  # points the last gradient attack left standing
            for name, attack in attacks.items():
                start = time.perf_counter()
                result.forward[name] = result.backward[name] = 0
                if isinstance(attack, MinNormAttack):
                    # every correct point, even in a cascade: radii statistics need them all
                    radius = torch.where(correct, math.inf, 0.0).to(x.dtype)
                    idx = correct.nonzero().squeeze(1)
                    if idx.numel():
                        counted.reset(None, None)
                        x_adv = attack(counted, x[idx], goal[idx], index=index[idx], seed=self.seed)
                        result.forward[name] += counted.forward_count
                        result.backward[name] += counted.backward_count
                        broke, bad = self._broken(base, x_adv, y[idx], goal[idx], target is not None)
                        result.nonfinite[idx] |= bad
                        radius[idx] = torch.where(broke, lp_norm(x_adv - x[idx], attack.norm), radius[idx])
                    result.radius[name] = radius
                    result.relative[name] = radius / lp_norm(x, attack.norm).clamp_min(1e-12)
                else:
                    result.broken[name], result.silent[name] = {}, {}
                    for eps in result.grids[name]:
                        still = (result.robust_to(name, eps) if self.cascade else correct.clone())
                        broken = torch.zeros_like(correct)
                        silent = torch.zeros_like(correct)
                        idx = still.nonzero().squeeze(1)
                        if idx.numel():
                            counted.reset(y[idx], goal[idx], target is not None)
                            at_eps = attack.replace(eps=eps) if eps != attack.eps else attack
                            x_adv = at_eps(counted, x[idx], goal[idx], index=index[idx], seed=self.seed)
                            result.forward[name] += counted.forward_count
                            result.backward[name] += counted.backward_count
                            broke, bad = self._broken(base, x_adv, y[idx], goal[idx], target is not None)
                            result.nonfinite[idx] |= bad
                            broken[idx] = broke
                            if deployed and (attack.norm, eps) == main:
                                judged = deployed_accuracy(model, x_adv, y[idx], self.eot_samples,
                                                           self.batch_size)
                                result.deployed_robust[idx] = result.deployed_robust[idx].minimum(judged)
                            keep = ~broke
                            if at_eps.stays_in_ball:  # else its path leaves the ball
                                silent[idx] = counted.path & keep
                            if name not in result.gradient_free and at_eps.returns_search_end and keep.any():
                                probe = _checks.Probe(at_eps, x[idx][keep][:32], goal[idx][keep][:32],
                                                      x_adv[keep][:32])
                        result.broken[name][eps], result.silent[name][eps] = broken, silent
                result.seconds[name] = time.perf_counter() - start
                bar.update(name, int(result.robust.sum()) if any(result.grids.values()) else None)
            bar.close()
            if run_model_checks:
                result.flags.update(_checks.run_checks(base, x, goal, probe, target is not None,
                                                      raw=model if self.eot_samples > 1 else None))
        result.flags.update(_checks.indicator_flags(result.metrics()))
        result.flags = _checks.explain_by_randomness(result.flags)
        return result

    @staticmethod
    def _broken(model, x_adv, y, goal, targeted):
        """(broken, non-finite) per sample: a point is broken when it is no longer classified
        correctly (targeted: when it reaches the target) or any logit is non-finite."""
        logits = _predict(model, x_adv)
        bad = ~logits.isfinite().all(dim=1)
        return adversarial(logits, goal if targeted else y, targeted) | bad, bad


def check_batch(x: torch.Tensor, y: torch.Tensor, index: torch.Tensor | None) -> None:
    """What :meth:`AttackSuite.run` accepts, checked before any attack runs: ``x`` a non-empty
    4-D float batch in [0, 1], ``y`` 1-D integer labels, one per image, and ``index`` (if
    given) 1-D unique integers, one per image. Raises a one-line ``ValueError``."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a 4-D (N, C, H, W) tensor of images, got {shape}; add the "
                         "channel dimension of grey images with x.unsqueeze(1)")
    if x.shape[0] == 0:
        raise ValueError("x is an empty batch (0 images); pass at least one image")
    check_images(x)
    for name, value in (("y", y), ("index", index)):
        if value is None:
            continue
        if not isinstance(value, torch.Tensor) or value.dim() != 1 or value.is_floating_point() \
                or value.is_complex() or value.dtype == torch.bool:
            what = (f"{value.dtype} tensor of shape {tuple(value.shape)}" if isinstance(value, torch.Tensor)
                    else type(value).__name__)
            raise ValueError(f"{name} must be a 1-D integer tensor (one entry per image), got a {what}; "
                             f"pass torch.as_tensor({name}).long()")
        if value.shape[0] != x.shape[0]:
            raise ValueError(f"{name} has {value.shape[0]} entries for {x.shape[0]} images; "
                             "pass one per image")
    if index is not None and index.unique().numel() != index.numel():
        raise ValueError("index has repeated entries; each image needs its own dataset index "
                         "(per-sample randomness is keyed by it)")


def check_labels(y: torch.Tensor, num_classes: int, name: str = "y") -> None:
    """Labels must be classes of the model's output: integers in [0, ``num_classes``)."""
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= num_classes:
        bad = low if low < 0 else high
        raise ValueError(f"{name} has label {bad} but the model outputs {num_classes} classes; "
                         f"labels must be in [0, {num_classes})")


def _predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Logits of the eval-mode model, every module's own training flag restored after."""
    with torch.no_grad(), model_state_guard(model, "eval", freeze=False):
        return model(x)


class _progress:
    """A tqdm bar over the attacks of one evaluation batch (``enabled``), or nothing."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="attacks", leave=False, unit="attack")

    def update(self, name: str, robust: int | None) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"{name} done, {robust} robust")
            self.bar.update()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def min_norm_statistics(attack: MinNormAttack, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                        index: torch.Tensor | None = None) -> dict[str, float]:
    """One min-norm attack through the engine (no checks): its ``success_rate`` over the
    correctly classified points and, over those it broke, ``median_norm``, ``mean_norm`` and
    ``rho_adv`` (see :meth:`SuiteResult.norm_statistics`)."""
    result = AttackSuite({"attack": attack}, checks=False).run(model, x, y, index=index)
    return result.norm_statistics("attack")
