"""W&B media for an evaluation: a robustness table, robust-accuracy-vs-eps plots, a grid of
adversarial examples with predicted labels, and perturbation-norm histograms."""

from __future__ import annotations

from lightning.pytorch.loggers import WandbLogger

from advlit.evaluation.result import SuiteResult
from advlit.images import log_images


def log_wandb_media(loggers, stage: str, rows: list[list], result: SuiteResult, suffix: str = "",
                    guide: str = "") -> None:
    """``rows``: [attack, norm, eps, robust_acc] per logged robust accuracy; from ``result``
    its flags (written to the run summary with a pointer to ``guide``), its examples and its
    min-norm radii (finite, positive ones are histogrammed); ``suffix`` tells suites apart in
    the keys (e.g. ``_eot8``)."""
    wandb_loggers = [logger for logger in loggers if isinstance(logger, WandbLogger)]
    if not wandb_loggers:
        return
    import wandb

    columns = ["attack", "norm", "eps", "robust_acc"]
    flags = result.flags
    for logger in wandb_loggers:
        logger.log_table(key=f"{stage}/robustness{suffix}", columns=columns, data=rows)
        media = {}
        for norm in sorted({row[1] for row in rows}):
            subset = wandb.Table(columns=columns, data=[r for r in rows if r[1] == norm])
            media[f"{stage}/robust_acc_curve/{norm}{suffix}"] = wandb.plot.line(
                subset, "eps", "robust_acc", stroke="attack", title=f"{stage} robust accuracy ({norm})")
        for name, values in result.radius.items():
            finite = values[values.isfinite() & (values > 0)]
            if finite.numel():
                media[f"{stage}/norm_histogram/{name}{suffix}"] = wandb.Histogram(finite.cpu().numpy())
        logger.experiment.log(media)
        if flags:
            logger.experiment.summary[f"{stage}/sanity_flags{suffix}"] = (
                "; ".join(f"{k}: {v}" for k, v in flags.items()) + f" (see {guide})")
        for name, examples in result.examples.items():
            captions = [f"pred {p} (true {t})" for p, t in zip(examples.pred.tolist(),
                                                                examples.label.tolist())]
            log_images([logger], f"{stage}/adversarial_examples/{name}{suffix}", list(examples.x_adv),
                       captions)
