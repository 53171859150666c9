"""The adversary-critic defense (Matyasko & Chau, NeurIPS 2018; thesis ch. 4): the classifier
is trained so that its own high-confidence adversarial examples look, to a class-conditional
critic, like real data of the target class."""

from __future__ import annotations

import functools
from typing import Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from advlit.attacks.confidence import HighConfidenceAttack
from advlit.defenses.base import RobustClassifier, output_classes
from advlit.images import confidence_grid, log_images
from advlit.models.critic import Critic


def paper_adam(lr: float) -> OptimizerCallable:
    """The thesis's optimizer: Adam with beta1 0.5 (a partial, so the module stays picklable)."""
    return functools.partial(torch.optim.Adam, lr=lr, betas=(0.5, 0.999))


def paper_halving(optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    """The thesis's schedule: the learning rate halves every 40 epochs."""
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=40, gamma=0.5)


class AdversaryCritic(RobustClassifier):
    """Two players with manual optimization, after ``pretrain_epochs`` of plain cross-entropy.
    The classifier takes ``optimizer`` and ``scheduler`` and the critic ``critic_optimizer``
    and ``critic_scheduler`` from the config (schedulers step per epoch, the critic's counted
    from its first epoch); left out, they are the thesis's Adam (beta1 0.5, lr 5e-4 for the
    classifier, 1e-3 for the critic) halved every 40 epochs:

    - target class t: the most likely other class (a logit-gap proxy for the class with the
      closest decision boundary; exact linearized distances would cost k backward passes),
      or uniform over the other classes; target confidence C_t = running mean (momentum
      ``confidence_momentum``) of the classifier's clean-data confidence on class t;
    - x_adv = differentiable high-confidence attack (Algorithm 1) from x to t;
    - critic (eq. 4.3): logistic loss, real points of class y scored by output y are real,
      x_adv scored by output t are adversarial, plus ``gradient_penalty`` * (E||grad D||^2 at
      the real points + E||grad D||^2 at the adversarial points), computed separately;
    - classifier (eq. 4.4-4.5): NLL(x, y) + ``adv_weight`` * logistic loss of the critic
      calling x_adv real for t + ``cycle_weight`` * ||A(x_adv -> y) - x||_2^2, the gradient
      flowing through the attack into the classifier's parameters (the way back is not
      attacked when ``cycle_weight`` is 0).

    At test time, with a W&B logger, a grid of adversarial examples for every source/target
    pair at 95% target confidence is logged (thesis Figure 4.2).

    Parameters
    ----------
    model : nn.Module
        The classifier.
    critic : Critic
        The critic (its ``num_classes`` must match the classifier's outputs).
    attack : HighConfidenceAttack, optional
        The differentiable attack (default 5 steps, ``differentiable=True``).
    adv_weight : float, default 0.1
        Weight of the critic's loss in the classifier's objective.
    cycle_weight : float, default 0.01
        Weight of the cycle term (0: the way back is not attacked).
    gradient_penalty : float, default 10.0
        Weight of the critic's gradient penalty.
    target : {"closest", "uniform"}, default "closest"
        How the target class is chosen.
    pretrain_epochs : int, default 1
        Epochs of plain cross-entropy first.
    confidence_momentum : float, default 0.9
        Momentum of the per-class target confidence, in [0, 1).
    optimizer, scheduler, critic_optimizer, critic_scheduler : callable, optional
        The two players' optimizers and schedulers (default: the thesis's, see above).
    **kwargs
        The speed options of :class:`RobustClassifier`.
    """

    def __init__(self, model: nn.Module, critic: Critic, attack: HighConfidenceAttack | None = None,
                 adv_weight: float = 0.1, cycle_weight: float = 1e-2, gradient_penalty: float = 10.0,
                 target: Literal["closest", "uniform"] = "closest", pretrain_epochs: int = 1,
                 confidence_momentum: float = 0.9, optimizer: OptimizerCallable | None = None,
                 scheduler: LRSchedulerCallable | None = None,
                 critic_optimizer: OptimizerCallable | None = None,
                 critic_scheduler: LRSchedulerCallable | None = None, **kwargs) -> None:
        super().__init__(model, optimizer=optimizer or paper_adam(5e-4),
                         scheduler=scheduler or paper_halving, **kwargs)
        self.critic_optimizer = critic_optimizer or paper_adam(1e-3)
        self.critic_scheduler = critic_scheduler or paper_halving
        self.automatic_optimization = False
        attack = attack or HighConfidenceAttack(steps=5, differentiable=True)
        if not attack.differentiable:
            raise ValueError("the critic defense back-propagates through its attack: "
                             "set differentiable: true")
        if target not in ("closest", "uniform"):
            raise ValueError(f"target must be 'closest' or 'uniform', got {target!r}")
        for name, value in (("adv_weight", adv_weight), ("cycle_weight", cycle_weight),
                            ("gradient_penalty", gradient_penalty), ("pretrain_epochs", pretrain_epochs)):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        if not 0 <= confidence_momentum < 1:
            raise ValueError(f"confidence_momentum must be in [0, 1), got {confidence_momentum!r}")
        outputs = output_classes(model, critic.input_shape)
        if outputs != critic.num_classes:
            raise ValueError(f"the critic has {critic.num_classes} outputs but the classifier {outputs}; "
                             f"set the critic's num_classes to {outputs}")
        self.critic, self.attack = critic, attack
        self.adv_weight, self.cycle_weight, self.gradient_penalty = adv_weight, cycle_weight, gradient_penalty
        self.target, self.pretrain_epochs = target, pretrain_epochs
        self.confidence_momentum = confidence_momentum
        self.register_buffer("class_confidence", torch.full((critic.num_classes,), 0.9))
        self._grid_batch: tuple[torch.Tensor, torch.Tensor] | None = None

    # -- pieces ---------------------------------------------------------------------------
    def targets(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.target == "uniform":
            k = logits.shape[1]
            return (y + torch.randint(1, k, y.shape, device=y.device)) % k
        return logits.detach().scatter(1, y[:, None], -float("inf")).argmax(dim=1)

    @torch.no_grad()
    def update_confidence(self, logits: torch.Tensor, y: torch.Tensor) -> None:
        """Running mean, per class, of p_y(x) on clean training data."""
        p = logits.softmax(dim=1).gather(1, y[:, None]).squeeze(1)
        k = self.class_confidence.shape[0]
        total = torch.zeros(k, device=p.device).index_add_(0, y, p)
        count = torch.zeros(k, device=p.device).index_add_(0, y, torch.ones_like(p))
        present = count > 0
        batch_mean = total / count.clamp_min(1)
        m = self.confidence_momentum
        self.class_confidence.copy_(torch.where(present, m * self.class_confidence + (1 - m) * batch_mean,
                                                self.class_confidence))

    def _grad_norm_sq(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.detach().requires_grad_(True)
        scores = self.critic(x, labels)
        (grad,) = torch.autograd.grad(scores.sum(), x, create_graph=True)
        return scores, grad.flatten(1).pow(2).sum(1).mean()

    def critic_loss(self, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor,
                    t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(critic loss, critic accuracy) on real points of class y and adversarial ones of t."""
        real, penalty_real = self._grad_norm_sq(x, y)
        fake, penalty_fake = self._grad_norm_sq(x_adv, t)
        loss = (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
                + self.gradient_penalty * (penalty_real + penalty_fake))
        accuracy = torch.cat([real > 0, fake < 0]).float().mean()
        return loss, accuracy

    def classifier_loss(self, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor,
                        x_adv: torch.Tensor, t: torch.Tensor) -> dict[str, torch.Tensor]:
        nll = F.cross_entropy(logits, y)
        scores = self.critic(x_adv, t)
        adversarial = F.binary_cross_entropy_with_logits(scores, torch.ones_like(scores))
        parts = {"nll": nll, "adversarial": adversarial}
        total = nll + self.adv_weight * adversarial
        if self.cycle_weight > 0:  # the way back is a second differentiable attack: skip it when unused
            x_back = self.attack.toward(self.model, x_adv, y, self.class_confidence[y])
            parts["cycle"] = (x_back - x).flatten(1).pow(2).sum(1).mean()
            total = total + self.cycle_weight * parts["cycle"]
        return {"loss": total, **parts}

    # -- Lightning ------------------------------------------------------------------------
    def training_step(self, batch, batch_idx: int) -> None:
        opt_f, opt_d = self.optimizers()
        x, y = batch
        logits = self(x)
        self.update_confidence(logits, y)
        self.train_acc.update((logits.argmax(dim=1) == y).float())
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)
        if self.current_epoch < self.pretrain_epochs:
            loss = F.cross_entropy(logits, y)
            opt_f.zero_grad()
            self.manual_backward(loss)
            opt_f.step()
            self.log("train/loss", loss, prog_bar=True)
            return
        t = self.targets(logits, y)
        x_adv = self.attack.toward(self.model, x, t, self.class_confidence[t])

        d_loss, d_acc = self.critic_loss(x, y, x_adv.detach(), t)
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()

        parts = self.classifier_loss(x, y, logits, x_adv, t)
        opt_f.zero_grad()
        self.manual_backward(parts["loss"])
        opt_f.step()
        self.log("train/loss", parts["loss"], prog_bar=True)
        self.log_dict({"train/nll": parts["nll"], "train/adversarial_loss": parts["adversarial"],
                       **({"train/cycle": parts["cycle"]} if "cycle" in parts else {}),
                       "train/critic_loss": d_loss, "train/critic_acc": d_acc,
                       "train/adv_l2": (x_adv - x).detach().flatten(1).norm(dim=1).mean()}, prog_bar=False)

    def configure_optimizers(self):
        opt_f = self.optimizer(self.model.parameters())
        opt_d = self.critic_optimizer(self.critic.parameters())
        return [opt_f, opt_d], [self.scheduler(opt_f), self.critic_scheduler(opt_d)]

    def on_train_epoch_end(self) -> None:
        schedulers = self.lr_schedulers()
        # the critic's schedule counts its own epochs: it has not stepped during pre-training
        for scheduler in schedulers if self.current_epoch >= self.pretrain_epochs else schedulers[:1]:
            scheduler.step()

    def test_step(self, batch, batch_idx: int) -> None:
        super().test_step(batch, batch_idx)
        if self._grid_batch is None:
            self._grid_batch = tuple(t.detach() for t in batch)

    def on_test_epoch_end(self) -> None:
        batch, self._grid_batch = self._grid_batch, None
        loggers = [lg for lg in self.loggers if hasattr(lg, "log_image")]
        if batch is None or not loggers or not self.trainer.is_global_zero:
            return
        grid = confidence_grid(self.model, *batch, self.critic.num_classes)
        if grid is not None:
            log_images(loggers, "test/confidence_grid", [grid],
                       ["rows: source class, columns: target class (95% confidence)"])
