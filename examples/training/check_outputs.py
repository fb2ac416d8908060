"""Checks what pipelines/customer_features.yaml and pipelines/conversion_model.yaml wrote.

For every output dataset of both pipelines it reads `_weir/manifest.json`,
opens each file of the current version, reads every Parquet file in full and
parses every JSON file, compares sizes and row counts with the manifest, and
then checks that the datasets agree with each other. It prints a table and
the checks, and exits 1 if anything is wrong (2 for a usage error).

    .venv/bin/python check_outputs.py --lake ../data
    .venv/bin/python check_outputs.py --s3 s3://bucket/prefix --endpoint http://127.0.0.1:9000

With --s3, credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
(and AWS_SESSION_TOKEN if set); requests use path-style addressing, which
pyarrow uses whenever an endpoint is given. The checker only reads.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

import common
from common import JobError

PROG = "check_outputs.py"

# (path in the store, dataset name in its pipeline, files it must hold)
DATASETS = [
    ("curated/customers", "customers", ()),
    ("curated/orders", "orders", ()),
    ("features/customer_features", "customer_features", ()),
    ("splits/train", "train", ()),
    ("splits/test", "test", ()),
    ("models/conversion", "model", ("model.json", "metrics.json")),
    ("evaluations/conversion", "evaluation", ("metrics.json", "predictions.parquet")),
]

MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # as weir-engine's dataset.rs
MAX_JSON_BYTES = 16 * 1024 * 1024
MANIFEST_KEYS = {
    "format_version",
    "dataset",
    "version",
    "files",
    "rows",
    "run_id",
    "stage",
    "attempt",
    "committed_at",
    "previous",
}
VERSION_NAME = re.compile(r"v-[A-Za-z0-9_-]{1,94}")


@dataclass
class Dataset:
    path: str
    name: str
    version: str = "-"
    files: int = 0
    rows: int = 0
    run_id: str = "-"
    problem: str | None = None
    tables: dict[str, pa.Table] = field(default_factory=dict)
    json: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, bytes] = field(default_factory=dict)

    def has(self, *names: str) -> bool:
        return all(n in self.tables or n in self.json for n in names)


class Report:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.failures = 0

    def check(self, ok: bool, message: str) -> bool:
        self.lines.append(f"  {'ok  ' if ok else 'FAIL'}  {message}")
        self.failures += not ok
        return ok

    def skip(self, message: str) -> None:
        # The dataset's own failure is already counted.
        self.lines.append(f"  skip  {message}")


def open_store(args: argparse.Namespace) -> tuple[pafs.FileSystem, str]:
    """The store as a pyarrow filesystem rooted at the lake, and a label for messages."""
    if args.lake:
        root = Path(args.lake).resolve()
        if not root.is_dir():
            raise JobError(f"--lake {args.lake}: no such folder")
        return pafs.SubTreeFileSystem(str(root), pafs.LocalFileSystem()), str(root)
    url = urlsplit(args.s3)
    bucket, prefix = url.netloc, url.path.strip("/")
    if url.scheme != "s3" or not bucket or url.query or url.fragment:
        raise JobError("--s3 must look like s3://bucket or s3://bucket/prefix")
    keys = {}
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        value = os.environ.get(var)
        if not value:
            raise JobError(f"--s3 needs the environment variable {var}")
        keys[var] = value
    options: dict[str, Any] = {
        "access_key": keys["AWS_ACCESS_KEY_ID"],
        "secret_key": keys["AWS_SECRET_ACCESS_KEY"],
        "session_token": os.environ.get("AWS_SESSION_TOKEN") or None,
        "region": args.region,
        # Path-style requests (http://host:port/bucket/key): with an endpoint
        # given and this False, pyarrow never uses virtual-hosted addressing.
        "force_virtual_addressing": False,
        "connect_timeout": 10,
        "request_timeout": 60,
    }
    if args.endpoint:
        endpoint = urlsplit(args.endpoint)
        if (
            endpoint.scheme not in ("http", "https")
            or not endpoint.netloc
            or endpoint.path not in ("", "/")
        ):
            raise JobError(
                "--endpoint must look like http://127.0.0.1:9000 (a scheme, a host and a port, no path)"
            )
        if "@" in endpoint.netloc:
            raise JobError(
                "--endpoint must not hold credentials; use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        options["endpoint_override"] = endpoint.netloc
        options["scheme"] = endpoint.scheme
    fs = pafs.S3FileSystem(**options)
    base = f"{bucket}/{prefix}" if prefix else bucket
    return pafs.SubTreeFileSystem(base, fs), f"s3://{base}"


def read_bytes(fs: pafs.FileSystem, path: str, limit: int) -> bytes:
    with fs.open_input_file(path) as f:
        if f.size() > limit:
            raise JobError(f"{path} is {f.size()} bytes, more than {limit}")
        return f.read()


def safe_name(name: Any) -> bool:
    if not isinstance(name, str) or not name or name.startswith("/"):
        return False
    return all(part not in ("", ".", "..") and "\\" not in part for part in name.split("/"))


def load_dataset(fs: pafs.FileSystem, path: str, name: str) -> Dataset:
    ds = Dataset(path, name)
    location = f"{path}/_weir/manifest.json"
    try:
        info = fs.get_file_info(location)
        if info.type == pafs.FileType.NotFound:
            raise JobError("no _weir/manifest.json (has the pipeline that writes it run?)")
        m = common.parse_json(read_bytes(fs, location, MAX_MANIFEST_BYTES), "_weir/manifest.json")
        if (
            not isinstance(m, dict)
            or not (MANIFEST_KEYS - {"previous"}) <= m.keys() <= MANIFEST_KEYS
        ):
            raise JobError("the manifest does not have the fields weir writes")
        if (
            m["format_version"] != 1
            or not isinstance(m["version"], str)
            or not VERSION_NAME.fullmatch(m["version"])
        ):
            raise JobError("unsupported manifest format or invalid version name")
        if m["dataset"] != name:
            raise JobError(f"the manifest is for dataset `{m['dataset']}`, expected `{name}`")
        files = m["files"]
        if not isinstance(files, list) or not files:
            raise JobError("the manifest lists no files")
        ds.version, ds.run_id, ds.files = m["version"], str(m["run_id"]), len(files)
        total = 0
        for entry in files:
            if (
                not isinstance(entry, dict)
                or set(entry) != {"name", "size", "rows"}
                or not safe_name(entry["name"])
            ):
                raise JobError(f"invalid file entry in the manifest: {entry!r:.120}")
            file_path = f"{path}/{ds.version}/{entry['name']}"
            info = fs.get_file_info(file_path)
            if info.type != pafs.FileType.File:
                raise JobError(f"{entry['name']} is listed in the manifest but missing")
            if info.size != entry["size"]:
                raise JobError(
                    f"{entry['name']} is {info.size} bytes; the manifest says {entry['size']}"
                )
            if entry["name"].endswith(".parquet"):
                with fs.open_input_file(file_path) as f:
                    table = pq.read_table(f)
                if table.num_rows != entry["rows"]:
                    raise JobError(
                        f"{entry['name']} has {table.num_rows} rows; the manifest says {entry['rows']}"
                    )
                ds.tables[entry["name"]] = table
            elif entry["name"].endswith(".json"):
                data = read_bytes(fs, file_path, MAX_JSON_BYTES)
                ds.json[entry["name"]] = common.parse_json(data, entry["name"])
                ds.raw[entry["name"]] = data
                if entry["rows"] != 0:
                    raise JobError(
                        f"{entry['name']}: the manifest gives a JSON file {entry['rows']} rows"
                    )
            total += entry["rows"]
        if total != m["rows"]:
            raise JobError(f"the files hold {total} rows; the manifest says {m['rows']}")
        ds.rows = total
    except JobError as e:
        ds.problem = str(e)
    except (OSError, pa.ArrowException) as e:
        ds.problem = f"cannot read: {e}"
    return ds


def column(ds: Dataset, name: str) -> pa.ChunkedArray:
    tables = [t for n, t in sorted(ds.tables.items()) if n.endswith(".parquet")]
    return pa.chunked_array(
        [c for t in tables for c in t.column(name).cast(pa.string()).chunks], pa.string()
    )


def in_unit(v: Any) -> bool:
    return common.is_number(v) and 0.0 <= v <= 1.0


def cross_checks(d: dict[str, Dataset], report: Report) -> None:
    def ready(*paths: str) -> bool:
        broken = [p for p in paths if d[p].problem]
        if broken:
            report.skip(f"a check that needs {', '.join(broken)}")
        return not broken

    cust, feats = d["curated/customers"], d["features/customer_features"]
    train, test = d["splits/train"], d["splits/test"]
    model, evaluation = d["models/conversion"], d["evaluations/conversion"]

    for ds in d.values():
        if not ds.problem and ds.tables:
            report.check(ds.rows > 0, f"{ds.path} has rows ({ds.rows})")
    if ready(cust.path, feats.path):
        report.check(
            feats.rows == cust.rows,
            f"customer_features rows ({feats.rows}) == curated/customers rows ({cust.rows}), one row per customer",
        )
    if ready(train.path, test.path, feats.path):
        report.check(
            train.rows + test.rows == feats.rows,
            f"train + test rows ({train.rows} + {test.rows}) == customer_features rows ({feats.rows})",
        )
        overlap = len(
            set(column(train, common.ID).to_pylist()) & set(column(test, common.ID).to_pylist())
        )
        report.check(overlap == 0, f"train and test share no customer ({overlap} shared)")

    if ready(model.path) and model.has("model.json", "metrics.json"):
        check_model(model, train, report)
    if ready(evaluation.path) and evaluation.has("metrics.json", "predictions.parquet"):
        check_evaluation(evaluation, test, model, report)


def check_model(model: Dataset, train: Dataset, report: Report) -> None:
    try:
        m = common.parse_model(model.raw["model.json"])
    except JobError as e:
        report.check(False, str(e))
    else:
        report.check(
            True, f"model.json is a valid {common.MODEL_FORMAT} v{common.MODEL_FORMAT_VERSION}"
        )
        if not train.problem:
            report.check(
                m.training_rows == train.rows,
                f"the model was trained on {m.training_rows} rows == train rows ({train.rows})",
            )
        report.check(m.run_id == model.run_id, "model.json names the run that committed it")
    tm = model.json["metrics.json"]
    report.check(
        isinstance(tm, dict) and in_unit(tm.get("accuracy")) and in_unit(tm.get("roc_auc")),
        f"training accuracy and ROC AUC in [0, 1] ({_get(tm, 'accuracy')}, {_get(tm, 'roc_auc')})",
    )


def check_evaluation(evaluation: Dataset, test: Dataset, model: Dataset, report: Report) -> None:
    em = evaluation.json["metrics.json"]
    if not report.check(isinstance(em, dict), "evaluation metrics.json holds an object"):
        return
    predictions = evaluation.tables["predictions.parquet"]
    expected = ["customer_id", "probability", "predicted", "label"]
    if not report.check(
        predictions.column_names == expected,
        f"predictions columns are {', '.join(expected)} ({', '.join(predictions.column_names)})",
    ):
        return
    if not test.problem:
        report.check(
            predictions.num_rows == test.rows,
            f"predictions rows ({predictions.num_rows}) == test rows ({test.rows})",
        )
        same = sorted(column(evaluation, common.ID).to_pylist()) == sorted(
            column(test, common.ID).to_pylist()
        )
        report.check(same, "predictions cover exactly the test customers")
        report.check(
            em.get("rows") == test.rows,
            f"evaluation rows ({em.get('rows')}) == test rows ({test.rows})",
        )
    prob = predictions.column("probability").to_numpy()
    report.check(
        predictions.column("probability").type == pa.float64()
        and bool(np.all((prob >= 0) & (prob <= 1))),
        "every probability is a float64 in [0, 1]",
    )
    report.check(in_unit(em.get("roc_auc")), f"0 <= test ROC AUC <= 1 ({em.get('roc_auc')})")
    report.check(in_unit(em.get("accuracy")), f"0 <= test accuracy <= 1 ({em.get('accuracy')})")
    cm = em.get("confusion_matrix")
    report.check(
        isinstance(cm, dict)
        and len(cm) == 4
        and all(common.is_int(v) and v >= 0 for v in cm.values())
        and sum(cm.values()) == em.get("rows"),
        "the confusion matrix adds up to the rows",
    )
    if not model.problem:
        report.check(
            em.get("model_run_id") == model.run_id,
            "the evaluation used the current model version",
        )


def upload_raw(fs: pafs.FileSystem, folder: Path, label: str) -> None:
    """Copies folder/*.csv to raw/ in the store."""
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise JobError(f"--upload-raw {folder}: no .csv files there")
    for f in files:
        with fs.open_output_stream(f"raw/{f.name}") as out:
            out.write(f.read_bytes())
        print(f"{PROG}: uploaded {f.name} to {label}/raw/")


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else None


def main() -> None:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--lake", metavar="DIR", help="the local store's folder (e.g. examples/data)"
    )
    where.add_argument("--s3", metavar="URL", help="the S3 store, s3://bucket/prefix")
    parser.add_argument(
        "--endpoint", metavar="URL", help="S3 endpoint, e.g. http://127.0.0.1:9000 (with --s3)"
    )
    parser.add_argument("--region", default="us-east-1", help="S3 region (default us-east-1)")
    parser.add_argument(
        "--upload-raw",
        metavar="DIR",
        help="instead of checking: copy DIR/*.csv to raw/ in the store (seeds an S3 lake)",
    )
    args = parser.parse_args()
    if args.endpoint and not args.s3:
        parser.error("--endpoint goes with --s3")

    fs, label = open_store(args)
    if args.upload_raw:
        upload_raw(fs, Path(args.upload_raw), label)
        return
    datasets = {path: load_dataset(fs, path, name) for path, name, _ in DATASETS}

    print(f"{PROG}: {label}")
    header = f"  {'dataset':<28} {'version':<40} {'files':>5} {'rows':>8}  status"
    print(header)
    print("  " + "-" * (len(header) - 2))
    for ds in datasets.values():
        status = "ok" if ds.problem is None else f"FAIL: {ds.problem}"
        rows = ds.rows if ds.problem is None else "-"
        print(f"  {ds.path:<28} {ds.version:<40} {ds.files:>5} {rows:>8}  {status}")

    report = Report()
    report.failures += sum(ds.problem is not None for ds in datasets.values())
    for path, _, required in DATASETS:
        ds = datasets[path]
        if ds.problem is None and required:
            missing = [r for r in required if not ds.has(r)]
            report.check(not missing, f"{path} holds {' and '.join(required)}")
    cross_checks(datasets, report)
    print("\nchecks")
    print("\n".join(report.lines))
    if report.failures:
        raise JobError(f"{report.failures} problem(s); see FAIL above")
    print(f"\n{PROG}: all {len(report.lines)} checks passed")


if __name__ == "__main__":
    common.run_main(PROG, main)
