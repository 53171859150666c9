"""The evaluation engine in plain torch: run a suite of named attacks on any model that maps
[0, 1] images to logits, and keep every result per sample.

    result = AttackSuite({"apgd_ce": APGD(eps=0.3)}).run(model, x, y, index=idx)
    result.robust_accuracy

Per-sample results never depend on batching or the number of processes: attacks get each
sample's dataset ``index`` (randomness keyed per sample) and leave the global RNG alone, so
evaluating shards and concatenating (:meth:`SuiteResult.cat`) equals one run on everything.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from advlit.attacks import Attack, FixedBudgetAttack, MinNormAttack
from advlit.attacks.base import check_images, model_state_guard
from advlit.attacks.losses import adversarial
from advlit.attacks.norms import NORMS, lp_norm
from advlit.evaluation import checks as _checks
from advlit.evaluation.eot import ExpectationOverTransformation, deployed_accuracy
from advlit.evaluation.result import Examples, SuiteResult, empty_radius
from advlit.evaluation.resume import ResultStore, model_fingerprint

__all__ = ["AttackSuite", "CountingModel", "SuiteResult", "check_batch", "check_labels",
           "min_norm_statistics"]


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
    deployed_passes : int, optional
        Single passes per image that judge the deployed model (default: ``eot_samples``).
    checks : bool, default True
        Run the model-probing honesty checks on the first batch (``docs/flags.md``).
    progress : bool, default False
        Progress bars: images done, robust so far and the time left over the batches, and the
        attacks of each batch.
    batch_size : int or None, default 256
        Images evaluated at a time (None: all at once).
    results_dir : str, optional
        Resumable evaluation: each finished batch's results are written to this folder
        (:mod:`advlit.evaluation.resume`) and a later run of the same evaluation (suite, model,
        target, images) loads them instead of attacking again; its result is identical, wall
        times (``seconds``) aside, which are those of the run that computed each batch.
    threads : int, optional
        On CPU, torch's intra-op threads while the suite runs (default: torch's setting, which
        it warns about when the CPU is already busy; 1 per process is fastest on a shared
        machine).
    """

    def __init__(self, attacks: dict[str, Attack], eps_grid: dict[str, list[float]] | None = None,
                 cascade: bool = True, seed: int = 0, eot_samples: int = 1, checks: bool = True,
                 progress: bool = False, batch_size: int | None = 256, results_dir: str | None = None,
                 threads: int | None = None, deployed_passes: int | None = None) -> None:
        if not attacks:
            raise ValueError("an AttackSuite needs at least one attack")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 or None (everything at once), got {batch_size!r}")
        if eot_samples < 1:
            raise ValueError(f"eot_samples must be >= 1, got {eot_samples}")
        if deployed_passes is not None and deployed_passes < 1:
            raise ValueError(f"deployed_passes must be >= 1 or None (eot_samples), got {deployed_passes}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1 or None (torch's setting), got {threads!r}")
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
        self.deployed_passes = deployed_passes or eot_samples
        self.checks, self.progress, self.batch_size = checks, progress, batch_size
        self.results_dir, self.threads = results_dir, threads

    def fingerprint(self, model: nn.Module, target: int | None) -> str:
        """What decides every per-sample result besides the images: the attacks and their
        hyper-parameters, the suite's settings, the target and the model's class and weights."""
        settings = (list(self.attacks.items()), sorted(self.eps_grid.items()), self.cascade, self.seed,
                    self.eot_samples, self.deployed_passes, self.batch_size, target, model_fingerprint(model))
        return repr(settings)

    def grid(self, name: str) -> list[float]:
        """The eps values attack ``name`` is evaluated at."""
        attack = self.attacks[name]
        if name in self.eps_grid:
            return self.eps_grid[name]
        if isinstance(attack, MinNormAttack):
            return self.eps_grid.get(attack.norm, [])
        return self.eps_grid.get(attack.norm, [float(attack.eps)])

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor | None = None,
            target: int | None = None, checks: bool | None = None, examples: int = 0) -> SuiteResult:
        """Evaluate ``model`` on images ``x`` in [0, 1] with labels ``y``. ``index``: each
        sample's index in the dataset (default 0..N-1; pass it when evaluating a subset or a
        shard, so randomness follows the sample). ``target``: make every attack targeted to
        that class (a point stays robust while it is classified correctly). ``checks``
        overrides the suite's setting for the model-probing checks (e.g. first batch only); they
        probe the first images. ``examples``: keep each attack's first ``examples`` adversarial
        examples (at its largest eps) in :attr:`SuiteResult.examples`."""
        check_batch(x, y, index)
        index = torch.arange(x.shape[0], device=x.device) if index is None else index.to(x.device)
        checks = self.checks if checks is None else checks
        size = self.batch_size or max(1, x.shape[0])
        store = (None if self.results_dir is None
                 else ResultStore(self.results_dir, self.fingerprint(model, target)))
        bar = _progress(x.shape[0], self.progress and x.shape[0] > size, "images", "img", keep=True)
        results = []
        # Lightning evaluates under inference mode; the engine needs ordinary tensors
        with torch.inference_mode(False), _threads(self.threads, x.device):
            for i in range(0, max(1, x.shape[0]), size):
                part = (x[i:i + size].clone(), y[i:i + size].clone(), index[i:i + size].clone())
                probe, keep = checks and i == 0, examples if i == 0 else 0
                key = None if store is None else store.key(*part) + f"-{int(probe)}-{keep}"
                result = None if store is None else store.load(key)
                if result is None:
                    result = self._run(model, *part, target, probe, keep)
                    if store is not None:
                        store.save(key, result)
                results.append(result.to(x.device))
                if bar.bar is not None:  # robust so far: a host sync per batch, only for the bar
                    robust = sum(int(r.robust.sum()) for r in results) if any(result.grids.values()) else None
                    bar.update(part[0].shape[0], "" if robust is None else f"{robust} robust")
        bar.close()
        return results[0] if len(results) == 1 else SuiteResult.cat(results)

    def _run(self, model, x, y, index, target, probe, examples) -> SuiteResult:
        base = (ExpectationOverTransformation(model, self.eot_samples, max_batch=self.batch_size)
                if self.eot_samples > 1 else model)
        batch = _Batch(model, base, CountingModel(base), x, y, index, target, examples)
        attacks = ({n: a.replace(targeted=True) for n, a in self.attacks.items()} if batch.targeted
                   else self.attacks)
        with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
            # a randomized model's own noise: seeded per batch, so two runs give the same numbers
            torch.manual_seed(self.seed * 1_000_003 + int(index[0]))
            logits = _predict(base, x)
            check_labels(y if target is None else torch.cat([y, batch.goal[:1]]), logits.shape[1],
                         "y" if target is None else "y or target")
            nonfinite = ~logits.isfinite().all(dim=1)
            result = SuiteResult(
                {n: a.norm for n, a in attacks.items()}, {n: self.grid(n) for n in attacks}, list(attacks),
                self.cascade, index, (logits.argmax(dim=1) == y) & ~nonfinite, nonfinite,
                gradient_free={n for n, a in attacks.items() if a.gradient_free},
                single_step={n for n, a in attacks.items() if a.single_step})
            if self.eot_samples > 1 and target is None and any(result.grids.values()):
                batch.deployed = result.main
                result.deployed_passes = self.deployed_passes
                result.deployed_clean = deployed_accuracy(model, x, y, self.deployed_passes, self.batch_size)
                result.deployed_robust = result.deployed_clean.clone()
            bar = _progress(len(attacks), self.progress, "attacks", "attack", keep=False)
            last_probe = None  # points the last gradient attack left standing
            for name, attack in attacks.items():
                start = time.perf_counter()
                result.forward[name] = result.backward[name] = 0
                if isinstance(attack, MinNormAttack):
                    self._run_min_norm(batch, name, attack, result)
                else:
                    last_probe = self._run_fixed_budget(batch, name, attack, result) or last_probe
                result.seconds[name] = time.perf_counter() - start
                if bar.bar is not None:
                    robust = f", {int(result.robust.sum())} robust" if any(result.grids.values()) else ""
                    bar.update(1, f"{name} done{robust}")
            bar.close()
            if probe:
                head = slice(0, _checks.PROBE_IMAGES)
                result.probed = _checks.probe_model(_checks.ProbeContext(
                    base, model, x[head], batch.goal[head], last_probe, batch.targeted))
        return result

    def _attack(self, batch: _Batch, name: str, attack: Attack, idx: torch.Tensor, result: SuiteResult,
                keep_examples: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Run ``attack`` (as ``name``) on the points ``idx`` and count its passes; returns
        (x_adv, broken?) per point, a non-finite logit counting as broken."""
        x_adv = attack(batch.counted, batch.x[idx], batch.goal[idx], index=batch.index[idx], seed=self.seed)
        result.forward[name] += batch.counted.forward_count
        result.backward[name] += batch.counted.backward_count
        logits = _predict(batch.base, x_adv)
        bad = ~logits.isfinite().all(dim=1)
        result.nonfinite[idx] |= bad
        broke = adversarial(logits, batch.goal[idx] if batch.targeted else batch.y[idx], batch.targeted) | bad
        if keep_examples and batch.examples and name not in result.examples:
            k = batch.examples
            result.examples[name] = Examples(batch.index[idx][:k], x_adv[:k].detach(),
                                             logits[:k].argmax(dim=1), batch.y[idx][:k])
        return x_adv, broke

    def _run_min_norm(self, batch: _Batch, name: str, attack: MinNormAttack, result: SuiteResult) -> None:
        """Every correct point, even in a cascade (radius statistics need them all): a radius each."""
        radius = empty_radius(result.correct, batch.x.dtype)
        idx = result.correct.nonzero().squeeze(1)
        if idx.numel():
            batch.counted.reset(None, None)
            x_adv, broke = self._attack(batch, name, attack, idx, result)
            radius[idx] = torch.where(broke, lp_norm(x_adv - batch.x[idx], attack.norm), radius[idx])
        result.radius[name] = radius
        result.relative[name] = radius / lp_norm(batch.x, attack.norm).clamp_min(1e-12)

    def _run_fixed_budget(self, batch: _Batch, name: str, attack: FixedBudgetAttack,
                          result: SuiteResult) -> _checks.Probe | None:
        """At each eps of its grid, on the points still robust (cascade) or all correct ones:
        broken and silent-success flags per point; the probe of the points it left standing."""
        result.broken[name], result.silent[name] = {}, {}
        probe = None
        for eps in result.grids[name]:
            still = result.robust_to(name, eps) if self.cascade else result.correct.clone()
            broken, silent = torch.zeros_like(result.correct), torch.zeros_like(result.correct)
            idx = still.nonzero().squeeze(1)
            if idx.numel():
                batch.counted.reset(batch.y[idx], batch.goal[idx], batch.targeted)
                at_eps = attack.replace(eps=eps) if eps != attack.eps else attack
                x_adv, broke = self._attack(batch, name, at_eps, idx, result,
                                            keep_examples=eps == max(result.grids[name]))
                broken[idx] = broke
                if batch.deployed == (attack.norm, eps):
                    judged = deployed_accuracy(batch.model, x_adv, batch.y[idx], self.deployed_passes,
                                               self.batch_size)
                    result.deployed_robust[idx] = result.deployed_robust[idx].minimum(judged)
                keep = ~broke
                if at_eps.stays_in_ball:  # else its path leaves the ball
                    silent[idx] = batch.counted.path & keep
                if name not in result.gradient_free and at_eps.returns_search_end and keep.any():
                    probe = _checks.Probe(at_eps, batch.x[idx][keep][:32], batch.goal[idx][keep][:32],
                                          x_adv[keep][:32])
            result.broken[name][eps], result.silent[name][eps] = broken, silent
        return probe


@dataclass
class _Batch:
    """One evaluation batch: the user's ``model``, the ``base`` the attacks see (its EOT wrapper
    on a randomized model) and its counting wrapper, the images, labels, attack goals, dataset
    indices; ``deployed``: the (norm, eps) the deployed model is judged at, if any."""

    model: nn.Module
    base: nn.Module
    counted: CountingModel
    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor
    target: int | None
    examples: int
    deployed: tuple[str, float] | None = None

    def __post_init__(self) -> None:
        self.targeted = self.target is not None
        self.goal = self.y if self.target is None else torch.full_like(self.y, self.target)


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
    """A tqdm bar (``enabled``), or nothing; ``keep``: left on screen when done."""

    def __init__(self, total: int, enabled: bool, desc: str, unit: str, keep: bool) -> None:
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, leave=keep, unit=unit)

    def update(self, done: int, status: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(status)
            self.bar.update(done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


_warned_busy = False


@contextlib.contextmanager
def _threads(threads: int | None, device: torch.device):
    """On CPU: torch's intra-op threads set to ``threads`` for the duration; without a setting,
    one warning per process when the machine is already busier than its cores."""
    global _warned_busy
    if device.type != "cpu":
        yield
        return
    if threads is None:
        cores, load = os.cpu_count() or 1, os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        if not _warned_busy and torch.get_num_threads() > 1 and load > cores + 0.5:
            _warned_busy = True
            warnings.warn(f"the CPU is busy (load {load:.1f} on {cores} cores) and torch runs "
                          f"{torch.get_num_threads()} threads per process: oversubscribed threads can make "
                          "the evaluation 10x slower; set threads=1 (AttackSuite, standard_suite, the "
                          "callback) or OMP_NUM_THREADS=1", stacklevel=4)
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def min_norm_statistics(attack: MinNormAttack, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                        index: torch.Tensor | None = None) -> dict[str, float]:
    """One min-norm attack through the engine (no checks): its ``success_rate`` over the
    correctly classified points and, over those it broke, ``median_norm``, ``mean_norm`` and
    ``rho_adv`` (see :meth:`SuiteResult.norm_statistics`).

    Parameters
    ----------
    attack : MinNormAttack
        The attack.
    model : nn.Module
        Maps [0, 1] images to logits.
    x, y : torch.Tensor
        Images in [0, 1] and labels.
    index : torch.Tensor, optional
        The images' dataset indices (keys the attack's randomness).

    Returns
    -------
    dict of str to float
    """
    result = AttackSuite({"attack": attack}, checks=False).run(model, x, y, index=index)
    return result.norm_statistics("attack")
