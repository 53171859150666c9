"""RobustClassifier: the LightningModule every defense subclasses (ERM by default)."""

from __future__ import annotations

import warnings
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torchmetrics import MeanMetric

from advlit.attacks.base import model_state_guard
from advlit.models.acceleration import accelerate

RNG_KEY = "advlit_rng_states"


def _plain(value: Any) -> bool:
    """Data a checkpoint may hold and ``weights_only=True`` may load: no objects, no callables."""
    if isinstance(value, dict):
        return all(_plain(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


def output_classes(model: nn.Module, input_shape) -> int:
    """The number of outputs of ``model`` on one blank image of ``input_shape``, leaving the RNG
    and every module's state as they were."""
    device = next(iter(model.parameters()), torch.zeros(())).device
    with torch.no_grad(), torch.random.fork_rng(devices=[]), model_state_guard(model, "eval", freeze=False):
        return model(torch.zeros(1, *input_shape, device=device)).shape[-1]


class RobustClassifier(LightningModule):
    """Empirical risk minimization with cross-entropy around a plain ``nn.Module`` classifier.

    Subclasses change only :meth:`training_loss`. Logs ``{stage}/loss`` and ``{stage}/acc``
    with one torchmetrics object per stage (exact under DDP). The global torch RNG states
    (dropout, random starts, natural-batch draws) are stored in every checkpoint and
    restored at the start of the resumed epoch, so a resumed run matches an uninterrupted one.

    Speed options (training, the attacks inside it and the evaluation all go through
    :meth:`forward`): ``channels_last`` stores the network's weights and feeds its inputs in
    NHWC order; ``compile`` runs the network through ``torch.compile`` (``True`` or a
    backend name), keeping parameter names, so checkpoints are unchanged. Mixed precision is
    Lightning's ``trainer.precision``.

    Built by ``advlit``'s CLI, the module's hyper-parameters are its config (plain data), so
    the defense's ``load_from_checkpoint(path)`` (e.g. ``AdversarialTraining``'s) rebuilds it
    with its network and attack (the checkpoint still loads with ``weights_only=True``). Built
    in Python, only plain values are kept: pass the objects again (``model=...``).

    Parameters
    ----------
    model : nn.Module
        The network: [0, 1] images to logits, normalization inside.
    optimizer : callable, default torch.optim.Adam
        Builds the optimizer from the parameters (``class_path``/``init_args`` in YAML).
    scheduler : callable, optional
        Builds a learning-rate scheduler from the optimizer.
    scheduler_interval : {"epoch", "step"}, default "epoch"
        When the scheduler steps.
    channels_last : bool, default False
        NHWC weights and inputs.
    compile : bool or str, default False
        ``torch.compile`` the network (True or a backend name).
    """

    def __init__(self, model: nn.Module, optimizer: OptimizerCallable = torch.optim.Adam,
                 scheduler: LRSchedulerCallable | None = None,
                 scheduler_interval: Literal["epoch", "step"] = "epoch",
                 channels_last: bool = False, compile: bool | str = False) -> None:
        super().__init__()
        with warnings.catch_warnings():  # objects are dropped below, not pickled
            warnings.filterwarnings("ignore", message=".*is an instance of `nn.Module`")
            self.save_hyperparameters(logger=False)  # the resolved config is logged by the CLI
        for key in [k for k, v in self._hparams.items() if not _plain(v)]:
            del self._hparams[key]
        self.model = accelerate(model, channels_last=channels_last, compile=compile)
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.scheduler_interval = scheduler_interval
        self.train_acc, self.val_acc, self.test_acc = MeanMetric(), MeanMetric(), MeanMetric()
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        self._pending_rng_states: dict[str, Any] | None = None

    def setup(self, stage: str) -> None:
        self.check_classes(getattr(self._trainer, "datamodule", None) if self._trainer is not None else None)

    def check_classes(self, data) -> None:
        """Fail before training when the network's outputs do not match the data's classes
        (e.g. 11th-class poisoning with a head fixed at 10): one forward pass of a blank image,
        leaving the RNG and every module's state as they were."""
        num_classes, shape = getattr(data, "num_classes", None), getattr(data, "input_shape", None)
        if num_classes is None or shape is None:
            return
        outputs = output_classes(self.model, shape)
        if outputs != num_classes:
            raise ValueError(f"the network outputs {outputs} classes but the data has {num_classes}; set "
                             f"the model's num_classes to {num_classes} (the CLI links it from the data "
                             f"unless the config fixes it)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (loss, logits used for the training accuracy). ERM: cross-entropy on x."""
        logits = self(x)
        return F.cross_entropy(logits, y), logits

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss, logits = self.training_loss(x, y)
        self.train_acc.update((logits.argmax(dim=1) == y).float())
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def _evaluation_step(self, batch, stage: str, accuracy: MeanMetric, loss: MeanMetric) -> None:
        x, y = batch
        logits = self(x)
        accuracy.update((logits.argmax(dim=1) == y).float())
        loss.update(F.cross_entropy(logits, y, reduction="none"))
        self.log(f"{stage}/loss", loss, on_epoch=True)
        self.log(f"{stage}/acc", accuracy, on_epoch=True, prog_bar=True)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluation_step(batch, "val", self.val_acc, self.val_loss)

    def test_step(self, batch, batch_idx: int) -> None:
        self._evaluation_step(batch, "test", self.test_acc, self.test_loss)

    def configure_optimizers(self):
        optimizer = self.optimizer(self.parameters())
        if self.scheduler is None:
            return optimizer
        scheduler = self.scheduler(optimizer)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        states = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available():
            states["cuda"] = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        checkpoint[RNG_KEY] = states

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._pending_rng_states = checkpoint.get(RNG_KEY)

    def on_train_epoch_start(self) -> None:
        states, self._pending_rng_states = self._pending_rng_states, None
        if states is None:
            return
        torch.set_rng_state(states["cpu"])
        if states.get("cuda") is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(states["cuda"], self.device)
