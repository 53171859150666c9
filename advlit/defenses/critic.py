"""The adversary-critic defense (Matyasko & Chau, NeurIPS 2018; thesis ch. 4): the classifier
is trained so that its own high-confidence adversarial examples look, to a class-conditional
critic, like real data of the target class."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import WandbLogger
from torch import nn

from advlit.attacks.confidence import HighConfidenceAttack
from advlit.defenses.base import RobustClassifier
from advlit.images import to_uint8
from advlit.models.critic import Critic


class AdversaryCritic(RobustClassifier):
    """Two players with manual optimization (Adam, beta1 0.5; learning rates halved every
    ``lr_halving_epochs``, the critic's counted from its first epoch), after
    ``pretrain_epochs`` of plain cross-entropy:

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
    """

    def __init__(self, model: nn.Module, critic: Critic, attack: HighConfidenceAttack | None = None,
                 adv_weight: float = 0.1, cycle_weight: float = 1e-2, gradient_penalty: float = 10.0,
                 target: Literal["closest", "uniform"] = "closest", pretrain_epochs: int = 1,
                 confidence_momentum: float = 0.9, lr: float = 5e-4, critic_lr: float = 1e-3,
                 beta1: float = 0.5, lr_halving_epochs: int = 40) -> None:
        super().__init__(model)
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
        heads = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if heads and heads[-1].out_features != critic.num_classes:
            raise ValueError(f"the critic has {critic.num_classes} outputs but the classifier "
                             f"{heads[-1].out_features}; set critic num_classes to match")
        self.critic, self.attack = critic, attack
        self.adv_weight, self.cycle_weight, self.gradient_penalty = adv_weight, cycle_weight, gradient_penalty
        self.target, self.pretrain_epochs = target, pretrain_epochs
        self.confidence_momentum = confidence_momentum
        self.lr, self.critic_lr, self.beta1, self.lr_halving_epochs = lr, critic_lr, beta1, lr_halving_epochs
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
            x_back = self.attack.run(self.model, x_adv, y, self.class_confidence[y])
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
        x_adv = self.attack.run(self.model, x, t, self.class_confidence[t])

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
        betas = (self.beta1, 0.999)
        opt_f = torch.optim.Adam(self.model.parameters(), lr=self.lr, betas=betas)
        opt_d = torch.optim.Adam(self.critic.parameters(), lr=self.critic_lr, betas=betas)
        schedulers = [torch.optim.lr_scheduler.StepLR(o, self.lr_halving_epochs, 0.5) for o in (opt_f, opt_d)]
        return [opt_f, opt_d], schedulers

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
        loggers = [lg for lg in self.loggers if isinstance(lg, WandbLogger)]
        if batch is None or not loggers or not self.trainer.is_global_zero:
            return
        grid = confidence_grid(self.model, *batch, self.critic.num_classes)
        if grid is not None:
            for logger in loggers:
                logger.log_image(key="test/confidence_grid", images=[to_uint8(grid)],
                                 caption=["rows: source class, columns: target class (95% confidence)"])


def confidence_grid(model: nn.Module, x: torch.Tensor, y: torch.Tensor, k: int,
                    confidence: float = 0.95, steps: int = 50) -> torch.Tensor | None:
    """A (C, k*H, k*W) image: row i is the first image of class i attacked to every target j
    at ``confidence`` (the diagonal is the original), thesis Figure 4.2; None if a class is
    missing from the batch."""
    first = [(y == c).nonzero() for c in range(k)]
    if any(len(f) == 0 for f in first):
        return None
    sources = x[torch.cat([f[0] for f in first])]
    attack = HighConfidenceAttack(steps=steps, confidence=confidence, targeted=True, step_clip=0.5)
    rows = []
    for i in range(k):
        images = sources[i].expand(k, *sources.shape[1:]).clone()
        adv = attack(model, images, torch.arange(k, device=x.device))
        adv[i] = sources[i]
        rows.append(torch.cat(list(adv), dim=2))
    return torch.cat(rows, dim=1)
