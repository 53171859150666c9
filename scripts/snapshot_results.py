"""Per-sample results of every attack and of the standard suites on the benchmark zoo, saved
to a file or compared bit for bit with one saved before (a refactor must not change a single
adversarial example, radius, broken point or cost).

    python scripts/snapshot_results.py --out before.pt               # on the old commit
    python scripts/snapshot_results.py --out after.pt --compare before.pt

The zoo's networks come from ``configs/bench`` (trained once, cached under ``--zoo``).
"""

from __future__ import annotations

import argparse

import torch

from advlit import attacks as A
from advlit.atomic import atomic_write
from advlit.data import MNISTDataModule
from advlit.data.root import data_root
from advlit.evaluation import standard_suite
from advlit.models import ScrambledGradient
from advlit.runs import bench_network

MODELS = ("erm", "bn_erm", "mlp_pgd_at", "noisy_lenet")
ATTACKS = {  # every attack family, short budgets
    "fgsm": A.FGSM(eps=0.1), "pgd": A.PGD(eps=0.1, steps=10), "pgd_l2": A.PGD(norm="l2", eps=1.0, steps=10),
    "pgd_l1": A.PGD(norm="l1", eps=5.0, steps=10),
    "apgd": A.APGD(eps=0.1, steps=20), "apgd_l2": A.APGD(norm="l2", eps=1.0, steps=20),
    "apgd_l1": A.APGD(norm="l1", eps=5.0, steps=20, large_eps=True),
    "apgd_dlr": A.APGD(eps=0.1, steps=20, loss="dlr"),
    "apgdt": A.APGDT(eps=0.1, steps=20, target_classes=3, restarts=2, retry_above=-0.1),
    "square": A.Square(eps=0.1, queries=100), "square_l2": A.Square(norm="l2", eps=1.0, queries=100),
    "square_l1": A.Square(norm="l1", eps=5.0, queries=100),
    "deepfool": A.DeepFool(steps=20), "cw": A.CarliniWagnerL2(steps=20, binary_search_steps=3),
    "ddn": A.DDN(steps=20), "fmn": A.FMN(steps=20), "fab": A.FABT(steps=20, target_classes=3),
    "pdgd": A.PDGD(steps=30), "pdpgd": A.PDPGD(steps=30), "confidence": A.HighConfidenceAttack(steps=3),
    "kl_pgd": A.KLPGD(eps=0.1, steps=5), "vat": A.VirtualAdversarial(eps=1.0),
}
SUITES = {"linf": dict(norm="linf", eps=0.1), "l2": dict(norm="l2", eps=1.5), "l1": dict(norm="l1", eps=5.0),
          "fast": dict(norm="linf", eps=0.1, version="fast")}


def snapshot(model, x, y, suites: dict, attacks: dict) -> dict[str, object]:
    out: dict[str, object] = {}
    index = torch.arange(x.shape[0])
    for name, attack in attacks.items():
        out[f"attack/{name}"] = attack(model, x, y, index=index)
    for name, options in suites.items():
        result = standard_suite(batch_size=64, **options).run(model, x, y, index=index)
        fields = {"correct": result.correct, "nonfinite": result.nonfinite, "robust": result.robust,
                  "flags": sorted(result.flags), "forward": result.forward, "backward": result.backward,
                  "deployed_robust": result.deployed_robust, "deployed_clean": result.deployed_clean}
        for attack in result.order:
            fields[f"radius/{attack}"] = result.radius.get(attack)
            for eps, broken in result.broken.get(attack, {}).items():
                fields[f"broken/{attack}/{eps}"] = broken
                fields[f"silent/{attack}/{eps}"] = result.silent[attack][eps]
        out.update({f"suite/{name}/{k}": v for k, v in fields.items()})
    return out


def same(a, b) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and a.dtype == b.dtype and torch.equal(a.isnan(), b.isnan()) \
            and torch.equal(a[~a.isnan()], b[~b.isnan()])
    return a == b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--compare", default=None)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--zoo", default="logs/bench_zoo")
    args = parser.parse_args()
    x, y = MNISTDataModule(root=str(data_root())).split_tensors("test", args.samples)
    results = {}
    for name in MODELS:
        net = bench_network(name, str(data_root()), args.zoo)
        if name == "noisy_lenet":
            results[name] = snapshot(net, x, y, {"rand": dict(norm="linf", eps=0.1, version="rand")}, {})
            continue
        results[name] = snapshot(net, x, y, SUITES if name == "erm" else {"linf": SUITES["linf"]}, ATTACKS)
        if name == "erm":
            results["scrambled_erm"] = snapshot(ScrambledGradient(net, (1, 28, 28)).eval(), x, y,
                                                {"linf": SUITES["linf"]}, {})
        print(f"{name}: {len(results[name])} results", flush=True)
    atomic_write(args.out, lambda tmp: torch.save(results, tmp))
    if args.compare:
        before = torch.load(args.compare, weights_only=False)
        differ = [f"{m}/{k}" for m in before for k in before[m]
                  if k not in results.get(m, {}) or not same(before[m][k], results[m][k])]
        print(f"{sum(len(v) for v in before.values())} results compared, {len(differ)} differ"
              + "".join(f"\n  {d}" for d in differ))
        raise SystemExit(1 if differ else 0)


if __name__ == "__main__":
    main()
