"""Evaluates the conversion model on the held-out customers.

Run by weir as the `evaluate` stage of pipelines/conversion_model.yaml. It
reads model.json from $WEIR_INPUT_MODEL (validated strictly: an unknown
format, version, field or shape is refused) and the Parquet files of the
`test` dataset from $WEIR_INPUT_TEST, and writes to $WEIR_OUTPUT_EVALUATION:

  metrics.json          rows, accuracy, precision, recall, log loss, ROC AUC,
                        confusion matrix, at threshold 0.5
  predictions.parquet   customer_id, probability (float64), predicted (int8), label (int8)

Errors go to stderr with exit status 1.
"""

from __future__ import annotations

# common first: it limits numpy to one BLAS thread, which only works before numpy loads.
import common  # isort: skip
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from common import JobError, progress

PROG = "evaluate.py"


def ratio(numerator: int, denominator: int) -> float | None:
    return None if denominator == 0 else round(numerator / denominator, 6)


def main() -> None:
    common.require_materialized()
    model_dir = common.env_folder(
        "WEIR_INPUT_MODEL", "run this as a weir command stage with input `model`"
    )
    test_dir = common.env_folder(
        "WEIR_INPUT_TEST", "run this as a weir command stage with input `test`"
    )
    out = common.env_folder(
        "WEIR_OUTPUT_EVALUATION", "run this as a weir command stage with output `evaluation`"
    )
    run_id = common.env_value("WEIR_RUN_ID", "weir sets it for every command stage")

    model_file = model_dir / "model.json"
    if not model_file.is_file():
        raise JobError("input `model` has no model.json; has the `train` stage run?")
    model = common.load_model(model_file)
    progress(
        PROG,
        f"loaded model.json ({len(model.coefficients)} features, trained on "
        f"{model.training_rows} rows)",
    )

    files = common.parquet_files(test_dir, "test")
    table = common.read_input(test_dir, "test", common.input_columns(with_id=True))
    progress(PROG, f"read {table.num_rows} rows from {len(files)} Parquet file(s) of `test`")

    y = common.labels(table, "test")
    X, unknown = model.design_matrix(table, "test")
    if unknown:
        progress(
            PROG, f"{unknown} row(s) have a country the model has not seen (all country features 0)"
        )
    z = model.logits(X)
    p = common.sigmoid(z)
    predicted = p >= common.THRESHOLD
    actual = y == 1

    tp = int(np.sum(predicted & actual))
    fp = int(np.sum(predicted & ~actual))
    tn = int(np.sum(~predicted & ~actual))
    fn = int(np.sum(~predicted & actual))
    auc = common.roc_auc(y, p)
    if auc is None:
        progress(PROG, "warning: the test rows hold one class only; ROC AUC is undefined (null)")
    metrics = {
        "split": "test",
        "rows": table.num_rows,
        "positives": tp + fn,
        "positive_rate": round((tp + fn) / table.num_rows, 6),
        "threshold": common.THRESHOLD,
        "accuracy": round((tp + tn) / table.num_rows, 6),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "log_loss": round(common.log_loss(y, z), 6),
        "roc_auc": None if auc is None else round(auc, 6),
        "confusion_matrix": {
            "true_positive": tp,
            "false_positive": fp,
            "true_negative": tn,
            "false_negative": fn,
        },
        "rows_with_unknown_country": unknown,
        "model_run_id": model.run_id,
        "run_id": run_id,
    }

    predictions = pa.table(
        {
            "customer_id": table.column(common.ID),
            "probability": pa.array(p, pa.float64()),
            "predicted": pa.array(predicted.astype(np.int8), pa.int8()),
            "label": pa.array(y.astype(np.int8), pa.int8()),
        }
    )
    pq.write_table(predictions, out / "predictions.parquet")
    common.write_json(out / "metrics.json", metrics)
    shown = "n/a" if auc is None else f"{auc:.4f}"
    progress(
        PROG,
        f"test accuracy {metrics['accuracy']:.4f}, log loss {metrics['log_loss']:.4f}, ROC AUC {shown}; "
        "wrote metrics.json and predictions.parquet",
    )


if __name__ == "__main__":
    common.run_main(PROG, main)
