"""Shared by train.py, evaluate.py and check_outputs.py.

The feature set, reading a weir input folder of Parquet files, the design
matrix, L2-regularised logistic regression, the metrics, and the model file
format with its strict validation live here, so that training, evaluation
and the CI checker cannot drift apart.

Nothing here prints an environment variable's value: messages name the
variable, the dataset and file names relative to the input folder, never
the folders weir passes in.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

# One BLAS thread, set before numpy loads: results then do not depend on the
# machine's core count, and the job does not compete with weir for cores.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

MODEL_FORMAT = "weir-example/logistic-regression"
MODEL_FORMAT_VERSION = 1

ID = "customer_id"
LABEL = "label_paid"
CATEGORICAL = "country"
NUMERIC_FEATURES = (
    "age",
    "order_count",
    "total_spend",
    "avg_order_value",
    "refund_count",
    "days_since_last_order",
)
THRESHOLD = 0.5

# Bounds on what a model file may hold; anything larger is refused unread.
MAX_MODEL_BYTES = 1024 * 1024
MAX_CATEGORIES = 1000
MAX_CATEGORY_CHARS = 64
MAX_RUN_ID_CHARS = 128


class JobError(Exception):
    """A problem with the job's input or environment, reported without a traceback."""


def run_main(prog: str, main: Callable[[], None]) -> NoReturn:
    """Runs `main`; a JobError becomes one line on stderr and exit status 1."""
    try:
        main()
    except JobError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        sys.exit(1)
    sys.exit(0)


def progress(prog: str, message: str) -> None:
    print(f"{prog}: {message}", flush=True)


# --- the environment weir gives a command stage ------------------------------


def env_value(var: str, hint: str) -> str:
    value = os.environ.get(var)
    if not value:
        raise JobError(
            f"environment variable {var} is not set; {hint} (see examples/training/README.md)"
        )
    return value


def require_materialized() -> None:
    """Refuses `access: presigned`, where WEIR_INPUT_*/WEIR_OUTPUT_* name URL files, not folders."""
    if os.environ.get("WEIR_ACCESS", "materialized") != "materialized":
        raise JobError(
            "WEIR_ACCESS is not `materialized`: this job reads and writes local files; "
            "remove `access:` from the stage (the default is `materialized`)"
        )


def env_folder(var: str, hint: str) -> Path:
    folder = Path(env_value(var, hint))
    if not folder.is_dir():
        raise JobError(f"{var} does not name an existing folder; {hint}")
    return folder


# --- reading an input dataset -------------------------------------------------


def parquet_files(folder: Path, dataset: str) -> list[Path]:
    """Every regular `*.parquet` file under `folder`, in a stable order."""
    files = sorted(
        (p for p in folder.rglob("*.parquet") if p.is_file()),
        key=lambda p: p.relative_to(folder).as_posix(),
    )
    if not files:
        raise JobError(
            f"input `{dataset}` holds no Parquet files; expected the current version's "
            f"files (e.g. part-00000.parquet). Has the pipeline that writes `{dataset}` run?"
        )
    return files


def read_input(folder: Path, dataset: str, columns: dict[str, pa.DataType]) -> pa.Table:
    """Reads `columns` (cast to the given types) from every Parquet file in `folder`.

    Refuses a file without one of the columns, a value that cannot be cast
    exactly, and nulls anywhere but in the categorical column.
    """
    tables = []
    for path in parquet_files(folder, dataset):
        rel = path.relative_to(folder).as_posix()
        try:
            names = pq.read_schema(path).names
        except (pa.ArrowException, OSError) as e:
            raise JobError(
                f"input `{dataset}`: {rel} is not a readable Parquet file ({e})"
            ) from None
        missing = [c for c in columns if c not in names]
        if missing:
            raise JobError(
                f"input `{dataset}`: {rel} has no column {', '.join(f'`{c}`' for c in missing)} "
                f"(it has: {', '.join(names)})"
            )
        try:
            table = pq.read_table(path, columns=list(columns))
        except (pa.ArrowException, OSError) as e:
            raise JobError(f"input `{dataset}`: cannot read {rel} ({e})") from None
        cast = []
        for name, dtype in columns.items():
            try:
                cast.append(table.column(name).cast(dtype, safe=True))
            except (pa.ArrowException, ValueError) as e:
                raise JobError(
                    f"input `{dataset}`: column `{name}` in {rel} cannot be read as {dtype} ({e})"
                ) from None
        tables.append(pa.table(cast, names=list(columns)))
    table = pa.concat_tables(tables)
    for name in columns:
        if name != CATEGORICAL and table.column(name).null_count:
            raise JobError(
                f"input `{dataset}`: column `{name}` has {table.column(name).null_count} null value(s)"
            )
    if table.num_rows == 0:
        raise JobError(f"input `{dataset}` has no rows")
    return table


def input_columns(with_id: bool) -> dict[str, pa.DataType]:
    cols: dict[str, pa.DataType] = {}
    if with_id:
        cols[ID] = pa.string()
    cols.update({name: pa.float64() for name in NUMERIC_FEATURES})
    cols[CATEGORICAL] = pa.string()
    cols[LABEL] = pa.int64()
    return cols


def labels(table: pa.Table, dataset: str) -> np.ndarray:
    y = table.column(LABEL).to_numpy()
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        raise JobError(
            f"input `{dataset}`: `{LABEL}` must be 0 or 1; {int(bad.sum())} row(s) hold other values"
        )
    return y.astype(np.float64)


def numeric_matrix(table: pa.Table, dataset: str) -> np.ndarray:
    cols = []
    for name in NUMERIC_FEATURES:
        values = table.column(name).to_numpy()
        if not np.isfinite(values).all():
            raise JobError(f"input `{dataset}`: column `{name}` holds NaN or infinite values")
        cols.append(values)
    return np.column_stack(cols)


def country_onehot(table: pa.Table, categories: list[str]) -> tuple[np.ndarray, int]:
    """One column per known country; an unknown or null country is all zeros.

    Returns the matrix and how many rows had an unknown or null country.
    """
    index = pc.index_in(table.column(CATEGORICAL), value_set=pa.array(categories, pa.string()))
    index = pc.fill_null(index, -1).to_numpy().astype(np.int64)
    onehot = np.zeros((table.num_rows, len(categories)))
    known = index >= 0
    onehot[np.flatnonzero(known), index[known]] = 1.0
    return onehot, int((~known).sum())


def feature_names(categories: list[str]) -> list[str]:
    return list(NUMERIC_FEATURES) + [f"{CATEGORICAL}={c}" for c in categories]


# --- the model ------------------------------------------------------------------


def sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))


def objective(X1: np.ndarray, y: np.ndarray, beta: np.ndarray, penalty: np.ndarray) -> float:
    z = X1 @ beta
    return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * np.sum(penalty * beta * beta))


@dataclass
class Fit:
    coefficients: np.ndarray
    intercept: float
    iterations: int


def fit_logistic(X: np.ndarray, y: np.ndarray, l2: float, max_iter: int) -> Fit:
    """L2-regularised logistic regression by Newton's method with a backtracking line search.

    Minimises sum(log loss) + l2/2 * ||coefficients||^2 (the intercept is not
    penalised). With l2 > 0 the objective is strictly convex, so the minimum
    is unique and the result is deterministic for a given input order.
    """
    n, k = X.shape
    X1 = np.hstack([np.ones((n, 1)), X])
    penalty = np.concatenate([[0.0], np.full(k, l2)])
    beta = np.zeros(k + 1)
    # Start the intercept at the log odds of the base rate: fewer iterations.
    rate = float(y.mean())
    if not 0.0 < rate < 1.0:
        raise JobError("the label has a single class; there is nothing to learn")
    beta[0] = math.log(rate / (1.0 - rate))
    value = objective(X1, y, beta, penalty)
    for iteration in range(1, max_iter + 1):
        p = sigmoid(X1 @ beta)
        grad = X1.T @ (p - y) + penalty * beta
        hess = (X1 * (p * (1.0 - p))[:, None]).T @ X1 + np.diag(penalty)
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            raise JobError(
                "the Hessian is singular (a feature may be constant and unregularised); "
                "use --l2 > 0"
            ) from None
        decrement = float(grad @ step)  # the squared Newton decrement, >= 0
        if decrement / 2.0 <= 1e-12 * (1.0 + abs(value)):
            return Fit(beta[1:].copy(), float(beta[0]), iteration - 1)
        t = 1.0
        while True:
            candidate = beta - t * step
            new_value = objective(X1, y, candidate, penalty)
            if new_value <= value - 1e-4 * t * decrement:
                break
            t /= 2.0
            if t < 1e-12:
                raise JobError("the line search failed; the data may be degenerate")
        beta, value = candidate, new_value
    raise JobError(f"training did not converge in {max_iter} iterations; raise --max-iter")


@dataclass
class Model:
    categories: list[str]
    means: np.ndarray
    scales: np.ndarray
    coefficients: np.ndarray
    intercept: float
    l2: float
    iterations: int
    training_rows: int
    run_id: str

    def design_matrix(self, table: pa.Table, dataset: str) -> tuple[np.ndarray, int]:
        numeric = (numeric_matrix(table, dataset) - self.means) / self.scales
        onehot, unknown = country_onehot(table, self.categories)
        return np.hstack([numeric, onehot]), unknown

    def logits(self, X: np.ndarray) -> np.ndarray:
        return X @ self.coefficients + self.intercept

    def to_json(self) -> dict[str, Any]:
        return {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "label": LABEL,
            "numeric_features": list(NUMERIC_FEATURES),
            "categorical_feature": CATEGORICAL,
            "country_categories": list(self.categories),
            "feature_names": feature_names(self.categories),
            "means": [float(v) for v in self.means],
            "scales": [float(v) for v in self.scales],
            "coefficients": [float(v) for v in self.coefficients],
            "intercept": float(self.intercept),
            "regularisation": {"kind": "l2", "strength": float(self.l2)},
            "iterations": int(self.iterations),
            "training_rows": int(self.training_rows),
            "run_id": self.run_id,
            "software": software(),
        }


def software() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pyarrow": pa.__version__,
    }


MODEL_KEYS = frozenset(
    {
        "format",
        "format_version",
        "label",
        "numeric_features",
        "categorical_feature",
        "country_categories",
        "feature_names",
        "means",
        "scales",
        "coefficients",
        "intercept",
        "regularisation",
        "iterations",
        "training_rows",
        "run_id",
        "software",
    }
)


def parse_json(data: bytes, what: str) -> Any:
    """Strict JSON: UTF-8, no repeated keys, no NaN or Infinity."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise JobError(f"{what}: key `{key}` appears twice")
            out[key] = value
        return out

    def constant(name: str) -> NoReturn:
        raise JobError(f"{what}: `{name}` is not a JSON number")

    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=pairs, parse_constant=constant)
    except UnicodeDecodeError:
        raise JobError(f"{what} is not UTF-8") from None
    except json.JSONDecodeError as e:
        raise JobError(f"{what} is not valid JSON: {e}") from None


def load_model(path: Path) -> Model:
    what = path.name
    size = path.stat().st_size
    if size > MAX_MODEL_BYTES:
        raise JobError(f"{what} is {size} bytes; a model file is at most {MAX_MODEL_BYTES}")
    return parse_model(path.read_bytes(), what)


def parse_model(data: bytes, what: str = "model.json") -> Model:
    """Parses and validates a model file; anything unexpected is refused."""
    if len(data) > MAX_MODEL_BYTES:
        raise JobError(f"{what} is {len(data)} bytes; a model file is at most {MAX_MODEL_BYTES}")
    obj = parse_json(data, what)
    if not isinstance(obj, dict):
        raise JobError(f"{what} must hold a JSON object")

    def bad(message: str) -> NoReturn:
        raise JobError(f"{what}: {message}")

    missing = sorted(MODEL_KEYS - obj.keys())
    unknown = sorted(obj.keys() - MODEL_KEYS)
    if missing:
        bad(f"missing field(s): {', '.join(missing)}")
    if unknown:
        bad(f"unknown field(s): {', '.join(unknown)}")
    if obj["format"] != MODEL_FORMAT:
        bad(f"`format` is {obj['format']!r:.80}, expected {MODEL_FORMAT!r}")
    if not is_int(obj["format_version"]) or obj["format_version"] != MODEL_FORMAT_VERSION:
        bad(
            f"`format_version` is {obj['format_version']!r:.40}; this code reads {MODEL_FORMAT_VERSION} only"
        )
    if obj["label"] != LABEL:
        bad(f"`label` must be {LABEL!r}")
    if obj["numeric_features"] != list(NUMERIC_FEATURES):
        bad(f"`numeric_features` must be {list(NUMERIC_FEATURES)}")
    if obj["categorical_feature"] != CATEGORICAL:
        bad(f"`categorical_feature` must be {CATEGORICAL!r}")

    categories = obj["country_categories"]
    if not isinstance(categories, list) or len(categories) > MAX_CATEGORIES:
        bad(f"`country_categories` must be a list of at most {MAX_CATEGORIES} strings")
    for c in categories:
        if not isinstance(c, str) or not 0 < len(c) <= MAX_CATEGORY_CHARS or not c.isprintable():
            bad(f"`country_categories` holds an invalid entry {c!r:.80}")
    if categories != sorted(set(categories)):
        bad("`country_categories` must be sorted and without repeats")
    names = feature_names(categories)
    if obj["feature_names"] != names:
        bad("`feature_names` does not match `numeric_features` and `country_categories`")

    k = len(NUMERIC_FEATURES)
    means = number_list(obj["means"], k, "means", bad)
    scales = number_list(obj["scales"], k, "scales", bad)
    if (scales <= 0).any():
        bad("`scales` must be positive")
    coefficients = number_list(obj["coefficients"], len(names), "coefficients", bad)
    if not is_number(obj["intercept"]):
        bad("`intercept` must be a finite number")

    reg = obj["regularisation"]
    if (
        not isinstance(reg, dict)
        or set(reg) != {"kind", "strength"}
        or reg["kind"] != "l2"
        or not is_number(reg["strength"])
        or reg["strength"] < 0
    ):
        bad('`regularisation` must be {"kind": "l2", "strength": <number >= 0>}')
    if not is_int(obj["iterations"]) or obj["iterations"] < 0:
        bad("`iterations` must be a whole number >= 0")
    if not is_int(obj["training_rows"]) or obj["training_rows"] < 1:
        bad("`training_rows` must be a whole number >= 1")
    run_id = obj["run_id"]
    if (
        not isinstance(run_id, str)
        or not 0 < len(run_id) <= MAX_RUN_ID_CHARS
        or not run_id.isprintable()
    ):
        bad(f"`run_id` must be a printable string of 1 to {MAX_RUN_ID_CHARS} characters")
    sw = obj["software"]
    if (
        not isinstance(sw, dict)
        or set(sw) != {"python", "numpy", "pyarrow"}
        or not all(isinstance(v, str) and len(v) <= 64 for v in sw.values())
    ):
        bad("`software` must map python, numpy and pyarrow to version strings")

    return Model(
        categories=list(categories),
        means=means,
        scales=scales,
        coefficients=coefficients,
        intercept=float(obj["intercept"]),
        l2=float(reg["strength"]),
        iterations=obj["iterations"],
        training_rows=obj["training_rows"],
        run_id=run_id,
    )


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def number_list(v: Any, length: int, field: str, bad: Callable[[str], NoReturn]) -> np.ndarray:
    if not isinstance(v, list) or len(v) != length or not all(is_number(x) for x in v):
        bad(f"`{field}` must be a list of {length} finite numbers")
    return np.array(v, dtype=np.float64)


# --- metrics ---------------------------------------------------------------------


def log_loss(y: np.ndarray, z: np.ndarray) -> float:
    """Mean log loss, computed from the logits so that it never takes log(0)."""
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def roc_auc(y: np.ndarray, score: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney U, ties count one half); None if one class only."""
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return None
    order = np.argsort(score, kind="mergesort")
    sorted_score = score[order]
    # 1-based ranks, each run of tied scores sharing its average rank.
    new_run = np.r_[True, sorted_score[1:] != sorted_score[:-1]]
    starts = np.flatnonzero(new_run)
    ends = np.r_[starts[1:], len(score)]
    ranks = np.empty(len(score))
    ranks[order] = ((starts + ends + 1) / 2.0)[np.cumsum(new_run) - 1]
    u = ranks[y == 1].sum() - positives * (positives + 1) / 2.0
    return float(u / (positives * negatives))


def write_json(path: Path, obj: Any) -> None:
    """Writes `obj` as JSON; a NaN or infinity is an error, never written."""
    try:
        text = json.dumps(obj, indent=2, allow_nan=False)
    except ValueError as e:
        raise JobError(f"{path.name}: {e}") from None
    path.write_text(text + "\n", encoding="utf-8")
