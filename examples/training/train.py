"""Trains the conversion model: will a customer be on a paid plan?

Run by weir as the `train` stage of pipelines/conversion_model.yaml. It reads
the Parquet files of the `train` dataset from $WEIR_INPUT_TRAIN, fits an
L2-regularised logistic regression with numpy, and writes to
$WEIR_OUTPUT_MODEL:

  model.json     the model (JSON, format "weir-example/logistic-regression" v1; no pickle)
  metrics.json   metrics on the training rows

It needs no credential and no network: weir copies the input in and uploads
the outputs. Errors go to stderr with exit status 1.
"""

from __future__ import annotations

import argparse
import json

# common first: it limits numpy to one BLAS thread, which only works before numpy loads.
import common  # isort: skip
import numpy as np
from common import JobError, progress

PROG = "train.py"
HINT_TRAIN = "run this as a weir command stage with input `train`"


def main() -> None:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument(
        "--l2",
        type=float,
        default=1.0,
        help="L2 strength on the standardised coefficients (default 1.0)",
    )
    parser.add_argument(
        "--max-iter", type=int, default=100, help="Newton iterations at most (default 100)"
    )
    args = parser.parse_args()
    if not args.l2 > 0 or not np.isfinite(args.l2):
        raise JobError("--l2 must be a positive number")
    if args.max_iter < 1:
        raise JobError("--max-iter must be at least 1")

    common.require_materialized()
    inputs = common.env_folder("WEIR_INPUT_TRAIN", HINT_TRAIN)
    out = common.env_folder(
        "WEIR_OUTPUT_MODEL", "run this as a weir command stage with output `model`"
    )
    run_id = common.env_value("WEIR_RUN_ID", "weir sets it for every command stage")
    if len(run_id) > common.MAX_RUN_ID_CHARS or not run_id.isprintable():
        raise JobError("WEIR_RUN_ID is not a printable id of at most 128 characters")

    files = common.parquet_files(inputs, "train")
    table = common.read_input(inputs, "train", common.input_columns(with_id=False))
    progress(PROG, f"read {table.num_rows} rows from {len(files)} Parquet file(s) of `train`")

    y = common.labels(table, "train")
    positives = int(y.sum())
    if positives in (0, len(y)):
        raise JobError(
            f"`{common.LABEL}` is {int(y[0])} in every training row; a classifier needs both classes"
        )

    numeric = common.numeric_matrix(table, "train")
    means = numeric.mean(axis=0)
    scales = numeric.std(axis=0)
    # A constant column carries no signal; scale 1 keeps it finite (it standardises to 0).
    scales[scales == 0] = 1.0
    countries = table.column(common.CATEGORICAL).drop_null().unique().to_pylist()
    categories = sorted(countries)
    if len(categories) > common.MAX_CATEGORIES:
        raise JobError(
            f"`{common.CATEGORICAL}` has {len(categories)} values; at most {common.MAX_CATEGORIES} are supported"
        )
    bad = [
        c for c in categories if not 0 < len(c) <= common.MAX_CATEGORY_CHARS or not c.isprintable()
    ]
    if bad:
        raise JobError(
            f"`{common.CATEGORICAL}` holds {len(bad)} value(s) that are empty, too long or not printable"
        )
    progress(
        PROG,
        f"{len(common.NUMERIC_FEATURES)} numeric features, {len(categories)} countries, "
        f"positive rate {positives / len(y):.3f}",
    )

    model = common.Model(
        categories=categories,
        means=means,
        scales=scales,
        coefficients=np.zeros(len(common.NUMERIC_FEATURES) + len(categories)),
        intercept=0.0,
        l2=args.l2,
        iterations=0,
        training_rows=table.num_rows,
        run_id=run_id,
    )
    X, _ = model.design_matrix(table, "train")
    fit = common.fit_logistic(X, y, l2=args.l2, max_iter=args.max_iter)
    model.coefficients = fit.coefficients
    model.intercept = fit.intercept
    model.iterations = fit.iterations
    progress(PROG, f"converged after {fit.iterations} Newton iteration(s), l2 {args.l2:g}")

    # Round trip through the validator: never write a model evaluate.py would refuse.
    doc = model.to_json()
    common.parse_model(json.dumps(doc).encode("utf-8"))

    z = model.logits(X)
    p = common.sigmoid(z)
    auc = common.roc_auc(y, p)
    metrics = {
        "split": "train",
        "rows": table.num_rows,
        "positives": positives,
        "positive_rate": round(positives / len(y), 6),
        "threshold": common.THRESHOLD,
        "accuracy": round(float(np.mean((p >= common.THRESHOLD) == (y == 1))), 6),
        "log_loss": round(common.log_loss(y, z), 6),
        "roc_auc": None if auc is None else round(auc, 6),
        "iterations": fit.iterations,
        "run_id": run_id,
    }
    common.write_json(out / "model.json", doc)
    common.write_json(out / "metrics.json", metrics)
    progress(
        PROG,
        f"train accuracy {metrics['accuracy']:.4f}, log loss {metrics['log_loss']:.4f}, "
        f"ROC AUC {metrics['roc_auc']:.4f}; wrote model.json and metrics.json",
    )


if __name__ == "__main__":
    common.run_main(PROG, main)
