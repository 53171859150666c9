"""W&B media for an evaluation: a robustness table, robust-accuracy-vs-eps plots, a grid of
adversarial examples with predicted labels, and perturbation-norm histograms."""

from __future__ import annotations

import torch
from lightning.pytorch.loggers import WandbLogger

from advlit.images import log_images


def log_wandb_media(loggers, stage: str, rows: list[list], examples: dict[str, tuple],
                    radii: dict[str, torch.Tensor], suffix: str = "", flags: dict[str, str] | None = None,
                    guide: str = "") -> None:
    """``flags``: the honesty checks that fired (name -> message), written to the run summary
    with a pointer to ``guide``. ``rows``: [attack, norm, eps, robust_acc];
    ``examples[name]`` = (x_adv, pred, label);
    ``radii[name]`` = per-sample min-norm radii (finite, positive ones are histogrammed);
    ``suffix`` tells suites apart in the keys (e.g. ``_eot8``)."""
    wandb_loggers = [logger for logger in loggers if isinstance(logger, WandbLogger)]
    if not wandb_loggers:
        return
    import wandb

    columns = ["attack", "norm", "eps", "robust_acc"]
    for logger in wandb_loggers:
        logger.log_table(key=f"{stage}/robustness{suffix}", columns=columns, data=rows)
        media = {}
        for norm in sorted({row[1] for row in rows}):
            subset = wandb.Table(columns=columns, data=[r for r in rows if r[1] == norm])
            media[f"{stage}/robust_acc_curve/{norm}{suffix}"] = wandb.plot.line(
                subset, "eps", "robust_acc", stroke="attack", title=f"{stage} robust accuracy ({norm})")
        for name, values in radii.items():
            finite = values[values.isfinite() & (values > 0)]
            if finite.numel():
                media[f"{stage}/norm_histogram/{name}"] = wandb.Histogram(finite.cpu().numpy())
        logger.experiment.log(media)
        if flags:
            logger.experiment.summary[f"{stage}/sanity_flags{suffix}"] = (
                "; ".join(f"{k}: {v}" for k, v in flags.items()) + f" (see {guide})")
        for name, (x_adv, pred, label) in examples.items():
            log_images([logger], f"{stage}/adversarial_examples/{name}", list(x_adv),
                       [f"pred {p} (true {t})" for p, t in zip(pred.tolist(), label.tolist())])
