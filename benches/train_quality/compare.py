#!/usr/bin/env python3
"""Train quality: `batch run train` with its default settings against scikit-learn's
`LogisticRegression()` on the small public datasets shipped inside scikit-learn's package.

Each dataset is split once (75% train, 25% test, stratified, `random_state=0`) and written to CSV;
`batch run train --eval-input test.csv` trains on the first file and scores the second, and
scikit-learn fits the same training rows:

- `LogisticRegression()` on the raw features (its defaults: L2, C=1, lbfgs, at most 100 iterations);
- `StandardScaler()` then `LogisticRegression()`: the very objective `train` minimises with its
  defaults (standardised features, mean log-loss + ||W||^2 / (2n), biases not penalised), fitted to
  convergence, so "agreement" (the share of test rows on which `train`'s model predicts what this
  one predicts) says how close to that optimum `train` ends.

Usage (from the repository root, after `cargo build --release -p batch-cli`):

    pip install scikit-learn
    python3 benches/train_quality/compare.py [--batch target/release/batch] [--work DIR]

Prints a Markdown table (the one in docs/BENCHMARKS.md, "train quality").
"""

import argparse
import json
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
from sklearn import datasets
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

DATASETS = ["iris", "wine", "breast_cancer", "digits"]


def write_csv(path, features, labels, names):
    header = ",".join([f"f{idx}" for idx in range(features.shape[1])] + ["label"])
    with open(path, "w") as out:
        out.write(header + "\n")
        for row, label in zip(features, labels):
            out.write(",".join(repr(float(value)) for value in row) + "," + names[label] + "\n")


def predict(model, features):
    """The classes `train`'s model file predicts for raw features (as TrainedModel::predict does)."""
    scaler = model["scaler"]
    x = (features - np.array(scaler["means"])) / np.array(scaler["stds"])
    scores = x @ np.array(model["weights"]).T + np.array(model["bias"])
    if model["model"] == "logistic":
        picked = (scores[:, 0] > 0).astype(int)
    else:
        picked = scores.argmax(axis=1)
    return np.array(model["classes"])[picked]


def run_train(batch, work, name):
    model_out = work / f"{name}.model.json"
    command = [
        str(batch), "--db", str(work / "batch.db"), "run", "train",
        "--input", str(work / f"{name}.train.csv"), "--eval-input", str(work / f"{name}.test.csv"),
        "--label", "label", "--model-out", str(model_out), "--json",
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"batch run train failed on {name}: {done.stderr.strip()}")
    document = json.loads(done.stdout)
    return document["result"], json.loads(model_out.read_text())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", default="target/release/batch", help="the batch binary")
    parser.add_argument("--work", help="a folder for the CSV files and models (default: a temporary one)")
    args = parser.parse_args()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="train-quality-"))
    work.mkdir(parents=True, exist_ok=True)

    rows = []
    for name in DATASETS:
        bunch = getattr(datasets, f"load_{name}")()
        names = [str(target).replace(",", " ") for target in bunch.target_names]
        x_train, x_test, y_train, y_test = train_test_split(
            bunch.data, bunch.target, test_size=0.25, random_state=0, stratify=bunch.target
        )
        write_csv(work / f"{name}.train.csv", x_train, y_train, names)
        write_csv(work / f"{name}.test.csv", x_test, y_test, names)
        result, model = run_train(args.batch, work, name)
        ours = predict(model, x_test)
        truth = np.array(names)[y_test]

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            raw = LogisticRegression().fit(x_train, y_train)
        raw_converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        scaled = make_pipeline(StandardScaler(), LogisticRegression(tol=1e-8, max_iter=10_000))
        scaled.fit(x_train, y_train)
        scaled_predictions = np.array(names)[scaled.predict(x_test)]
        rows.append({
            "dataset": name,
            "shape": f"{len(y_train)}+{len(y_test)} rows × {bunch.data.shape[1]} features, "
            f"{len(names)} classes",
            "train": result["eval_accuracy"],
            "epochs": f"{result['epochs_run']}" + (" (stopped)" if result["stopped_early"] else ""),
            "raw": raw.score(x_test, y_test),
            "raw_converged": raw_converged,
            "scaled": float((scaled_predictions == truth).mean()),
            "agreement": float((ours == scaled_predictions).mean()),
        })

    print("| dataset | shape | `train` (defaults) | epochs | `LogisticRegression()` | "
          "`StandardScaler` + `LogisticRegression()` | agreement with it |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        raw = f"{row['raw']:.4f}" + ("" if row["raw_converged"] else " (not converged)")
        print(f"| {row['dataset']} | {row['shape']} | {row['train']:.4f} | {row['epochs']} | {raw} | "
              f"{row['scaled']:.4f} | {row['agreement']:.4f} |")


if __name__ == "__main__":
    main()
