"""Tables of the recipe's README from DLLogger training logs: loss at epochs, throughput, speed-up.

    python -m common.log_summary LOG [LOG ...] [--epochs 1 250 500 ...] [--plot losses.png]

Reads the ``DLLL {json}`` lines train.py writes (reference-dle d.8) and prints markdown tables in
the shape of NVIDIA's: the training and validation loss of each run at chosen epochs, training
throughput per GPU count and precision, the mixed-precision speed-up and the weak scaling
(throughput on N GPUs / on 1 GPU, batch size per GPU fixed).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from statistics import mean
from typing import Iterable, NamedTuple, Sequence

from common.errors import UserError

PREFIX = "DLLL "
SEED_EPOCHS = (1, 250, 500, 750, 1000)
MIXED = ("FP16", "BF16")
# What "items" count per model (train.py): Tacotron 2 input tokens, WaveGlow audio samples.
ITEM_UNITS = {"Tacotron2": "tokens/s", "WaveGlow": "samples/s"}


class LogError(UserError):
    """A log file is missing or holds no DLLogger lines."""


class RunLabel(NamedTuple):
    model: str
    precision: str  # FP16, BF16 or FP32
    world_size: int
    batch_size: int
    device: str = "cuda"

    def __str__(self) -> str:
        one, many = ("GPU", "GPUs") if self.device == "cuda" else ("CPU process", "CPU processes")
        workers = f"1 {one}" if self.world_size == 1 else f"{self.world_size} {many}"
        return f"{self.model} {self.precision} (bs {self.batch_size}, {workers})"


@dataclass
class Run:
    """What one log says: the run's parameters and its per-epoch values."""
    source: str
    params: dict = field(default_factory=dict)
    epochs: dict[int, dict[str, float]] = field(default_factory=dict)
    iterations: list[tuple[int, int, dict]] = field(default_factory=list)
    summary: dict = field(default_factory=dict)


def parse_lines(lines: Iterable[str], source: str = "<log>") -> Run:
    """Collect PARAMETER, ``[epoch]``, ``[epoch, i]`` and ``[]`` records of one log.

    Lines without the ``DLLL`` prefix (stdout mixed into the file) and METADATA records are
    skipped; a resumed run that appended to the same file overwrites repeated epochs.
    """
    run = Run(source)
    found = False
    for number, line in enumerate(lines, start=1):
        if not line.startswith(PREFIX):
            continue
        try:
            record = json.loads(line[len(PREFIX):])
        except json.JSONDecodeError as err:
            # The last line of a log still being written may be cut off.
            if line.endswith("\n"):
                raise LogError(f"{source}:{number}: not a JSON record after 'DLLL ' ({err.msg})") from None
            continue
        found = True
        if record.get("type") != "LOG":
            continue
        step, data = record.get("step"), record.get("data") or {}
        if step == "PARAMETER":
            run.params.update(data)
        elif isinstance(step, list) and len(step) == 1:
            run.epochs.setdefault(int(step[0]), {}).update(_numbers(data))
        elif isinstance(step, list) and len(step) == 2:
            run.iterations.append((int(step[0]), int(step[1]), _numbers(data)))
        elif step == []:
            run.summary.update(_numbers(data))
    if not found:
        raise LogError(f"{source}: no DLLogger lines (expected lines starting with 'DLLL {{')")
    return run


def _numbers(data: dict) -> dict[str, float]:
    return {key: float(value) for key, value in data.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}


def read_run(path: str) -> Run:
    try:
        with open(path, encoding="utf-8") as f:
            return parse_lines(f, source=path)
    except FileNotFoundError:
        raise LogError(f"{path}: log file not found") from None


def run_label(run: Run) -> RunLabel:
    """Model, precision, GPU count and per-GPU batch from the PARAMETER records."""
    params = run.params
    model = str(params.get("model_name", "?")).removesuffix("_PyT")
    if params.get("precision"):  # what train.py really ran (--fp16-run falls back to FP32 on a CPU)
        precision = str(params["precision"]).upper()
    elif params.get("bf16"):
        precision = "BF16"
    elif params.get("fp16_run") or params.get("amp") or params.get("amp_run"):
        precision = "FP16"
    else:
        precision = "FP32"
    return RunLabel(model, precision, int(params.get("world_size", 1) or 1),
                    int(params.get("batch_size", 0) or 0), str(params.get("device", "cuda")))


def loss_at(run: Run, epochs: Sequence[int], key: str) -> list[float | None]:
    """``key`` (e.g. train_epoch_avg_loss, val_loss) at each epoch; None where not logged."""
    return [run.epochs.get(epoch, {}).get(key) for epoch in epochs]


def mean_throughput(run: Run, key: str = "train_epoch_items/sec") -> float | None:
    """Mean of an epoch metric over the epochs, epoch 0 left out as warm-up when there are more.

    Falls back to the per-iteration values (``train_iter_*``) for a run stopped inside its
    first epoch.
    """
    per_epoch = {epoch: values[key] for epoch, values in sorted(run.epochs.items()) if key in values}
    if per_epoch:
        first = min(per_epoch)
        kept = [v for e, v in per_epoch.items() if e != first] if len(per_epoch) > 1 else list(per_epoch.values())
        return mean(kept)
    iter_key = key.replace("train_epoch_", "train_iter_")
    records = [(epoch, values) for epoch, _, values in run.iterations if iter_key in values]
    # steps that captured CUDA graphs are not throughput, unless they are all there is
    records = [r for r in records if "train_iter_one_time_work" not in r[1]] or records
    per_iter = [(epoch, values[iter_key]) for epoch, values in records]
    if not per_iter:
        return None
    first = min(epoch for epoch, _ in per_iter)
    kept = [v for e, v in per_iter if e != first] or [v for _, v in per_iter]
    return mean(kept)


def primary_metric(model: str, runs: Sequence[Run]) -> tuple[str, str]:
    """(log key, unit) of the throughput NVIDIA's latest tables use: mel frames/s for Tacotron 2."""
    if model == "Tacotron2" and any(mean_throughput(r, "train_epoch_mels/sec") is not None for r in runs):
        return "train_epoch_mels/sec", "mels/s"
    return "train_epoch_items/sec", ITEM_UNITS.get(model, "items/s")


def default_epochs(runs: Sequence[Run], count: int = 5) -> list[int]:
    """The seed's columns (1, 250, ... 1000) that any run reached; else evenly spread epochs."""
    logged = sorted({epoch for run in runs for epoch in run.epochs})
    if not logged:
        return []
    seed = [epoch for epoch in SEED_EPOCHS if epoch in logged]
    if len(seed) >= 2:
        return seed
    if len(logged) <= count:
        return logged
    step = (len(logged) - 1) / (count - 1)
    return sorted({logged[round(i * step)] for i in range(count)})


@dataclass
class ThroughputTable:
    """One model's throughput: rows = GPU counts, one column per (precision, batch size)."""
    model: str
    unit: str
    columns: list[tuple[str, int]]
    values: dict[tuple[int, str, int], float]  # (world_size, precision, batch) -> items/s

    @property
    def world_sizes(self) -> list[int]:
        return sorted({ws for ws, _, _ in self.values})

    def speedup_pairs(self) -> list[tuple[tuple[str, int], tuple[str, int]]]:
        """(mixed column, FP32 column) pairs: same batch size if possible, else the only FP32 one.

        NVIDIA's tables compare e.g. AMP at batch 104 with FP32 at batch 48 (the largest batch
        each precision fits), so a differing batch size is allowed when the choice is unambiguous.
        """
        fp32 = [col for col in self.columns if col[0] == "FP32"]
        pairs = []
        for col in self.columns:
            if col[0] not in MIXED:
                continue
            same_batch = [ref for ref in fp32 if ref[1] == col[1]]
            if same_batch:
                pairs.append((col, same_batch[0]))
            elif len(fp32) == 1:
                pairs.append((col, fp32[0]))
        return pairs

    def speedup(self, world_size: int, mixed: tuple[str, int], fp32: tuple[str, int]) -> float | None:
        return _ratio(self.values.get((world_size, *mixed)), self.values.get((world_size, *fp32)))

    def weak_scaling(self, world_size: int, column: tuple[str, int]) -> float | None:
        return _ratio(self.values.get((world_size, *column)), self.values.get((1, *column)))


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def throughput_tables(runs: Sequence[Run]) -> list[ThroughputTable]:
    """Group runs by model; repeated runs of the same configuration are averaged."""
    tables = []
    models = sorted({run_label(run).model for run in runs})
    for model in models:
        model_runs = [run for run in runs if run_label(run).model == model]
        key, unit = primary_metric(model, model_runs)
        samples: dict[tuple[int, str, int], list[float]] = {}
        for run in model_runs:
            label = run_label(run)
            value = mean_throughput(run, key)
            if value is not None:
                samples.setdefault((label.world_size, label.precision, label.batch_size), []).append(value)
        if not samples:
            continue
        order = {"FP16": 0, "BF16": 1, "FP32": 2}
        columns = sorted({(p, b) for _, p, b in samples}, key=lambda c: (order.get(c[0], 3), c[1]))
        tables.append(ThroughputTable(model, unit, columns, {k: mean(v) for k, v in samples.items()}))
    return tables


# -- text output ---------------------------------------------------------------------------------

def _missing(value: float | None) -> bool:
    return value is None or math.isnan(value)


def fmt_loss(value: float | None) -> str:
    return "" if _missing(value) else f"{value:.4f}"


def fmt_rate(value: float | None) -> str:
    if _missing(value):
        return ""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def fmt_ratio(value: float | None) -> str:
    return "" if _missing(value) else f"{value:.2f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if r else "---" for r in right) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def loss_table(runs: Sequence[Run], epochs: Sequence[int], key: str) -> str:
    header = ["Loss (Model/Epoch)", *map(str, epochs)]
    rows = [[str(run_label(run)), *(fmt_loss(v) for v in loss_at(run, epochs, key))] for run in runs]
    return markdown_table(header, rows, [False] + [True] * len(epochs))


def one_time_work(run: Run) -> tuple[int, float]:
    """(steps, seconds) of one-time work (CUDA graph captures) over the run, which the throughput
    leaves out."""
    epochs = run.epochs.values()
    return (int(sum(e.get("train_epoch_one_time_work_steps", 0) for e in epochs)),
            sum(e.get("train_epoch_one_time_work_time", 0.0) for e in epochs))


def runs_table(runs: Sequence[Run]) -> str:
    header = ["run", "log", "epochs", "items/s", "mels/s", "run time s"]
    with_one_time_work = any(one_time_work(run)[0] for run in runs)
    if with_one_time_work:
        header.append("one-time work (steps, s)")
    rows = []
    for run in runs:
        label = run_label(run)
        items = mean_throughput(run, "train_epoch_items/sec")
        mels = mean_throughput(run, "train_epoch_mels/sec")
        unit = ITEM_UNITS.get(label.model, "items/s")
        rows.append([str(label), run.source, str(len(run.epochs)),
                     f"{fmt_rate(items)} {unit}" if items is not None else "", fmt_rate(mels),
                     fmt_rate(run.summary.get("run_time"))])
        if with_one_time_work:
            steps, seconds = one_time_work(run)
            rows[-1].append(f"{steps}, {seconds:.1f}" if steps else "")
    return markdown_table(header, rows, [False, False] + [True] * (len(header) - 2))


def throughput_table_text(table: ThroughputTable) -> str:
    def name(col):
        return f"{table.unit} {col[0]} (bs {col[1]})"
    pairs = table.speedup_pairs()
    header = ["GPUs", *map(name, table.columns)]
    header += [f"speed-up {m[0]}/FP32" + ("" if m[1] == f[1] else f" (bs {m[1]}/{f[1]})") for m, f in pairs]
    header += [f"weak scaling {c[0]} (bs {c[1]})" for c in table.columns]
    rows = []
    for ws in table.world_sizes:
        row = [str(ws)]
        row += [fmt_rate(table.values.get((ws, *col))) for col in table.columns]
        row += [fmt_ratio(table.speedup(ws, m, f)) for m, f in pairs]
        row += [fmt_ratio(table.weak_scaling(ws, col)) for col in table.columns]
        rows.append(row)
    return markdown_table(header, rows, [True] * len(header))


def distinct_steps(run: Run) -> set[tuple[int, int]]:
    """(epoch, iteration) pairs the log holds; a run resumed from an older checkpoint logs some twice."""
    return {(epoch, i) for epoch, i, _ in run.iterations}


def first_epoch_above(run: Run, key: str = "val_focus", threshold: float = 0.5) -> tuple[int, int] | None:
    """(epoch, optimizer steps done by its end) of the first validation whose `key` (val_focus,
    val_walk) exceeds `threshold`: when Tacotron 2's attention became diagonal. None if it never did."""
    steps_by_epoch: dict[int, int] = {}
    for epoch, _ in distinct_steps(run):
        steps_by_epoch[epoch] = steps_by_epoch.get(epoch, 0) + 1
    for epoch in sorted(run.epochs):
        if run.epochs[epoch].get(key, 0.0) > threshold:
            return epoch, sum(n for e, n in steps_by_epoch.items() if e <= epoch)
    return None


def alignment_table(runs: Sequence[Run], threshold: float = 0.5) -> str:
    """Per Tacotron 2 run: when val_focus and val_walk first exceeded `threshold`, and the last
    validation (logs from before val_walk existed show "-" there)."""
    rows = []
    for run in runs:
        validations = [run.epochs[e] for e in sorted(run.epochs) if "val_focus" in run.epochs[e]]
        if not validations:
            continue
        row = [run.source, str(run.params.get("guided_attn_weight", 0.0))]
        for key in ("val_focus", "val_walk"):
            first = first_epoch_above(run, key, threshold)
            if not any(key in v for v in validations):
                row.append("-")
            else:
                row.append(f"not within {len(distinct_steps(run))} steps" if first is None
                           else f"epoch {first[0]}, step {first[1]}")
        last = validations[-1]
        row += [f"{last['val_focus']:.3f}", f"{last['val_walk']:.3f}" if "val_walk" in last else "-",
                fmt_loss(last.get("val_loss"))]
        rows.append(row)
    if not rows:
        return ""
    return markdown_table(["log", "guided attn weight", f"first val_focus > {threshold}",
                           f"first val_walk > {threshold}", "last val_focus", "last val_walk", "last val_loss"],
                          rows, [False, True, False, False, True, True, True])


def summarize(runs: Sequence[Run], epochs: Sequence[int] | None = None) -> str:
    """All tables as one markdown text."""
    epochs = list(epochs) if epochs else default_epochs(runs)
    parts = ["## Runs", runs_table(runs)]
    if epochs:
        parts += ["## Training loss (train_epoch_avg_loss, epoch mean)",
                  loss_table(runs, epochs, "train_epoch_avg_loss"),
                  "## Validation loss (val_loss)", loss_table(runs, epochs, "val_loss")]
    for table in throughput_tables(runs):
        parts += [f"## Training throughput: {table.model} ({table.unit}, mean over epochs "
                  f"after the first)", throughput_table_text(table)]
    alignment = alignment_table(runs)
    if alignment:
        parts += ["## Attention (Tacotron 2 validation focus and walk)", alignment]
    return "\n\n".join(parts) + "\n"


def plot_losses(runs: Sequence[Run], path: str) -> None:
    """Train (solid) and validation (dashed) loss per epoch, one colour per run, as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for index, run in enumerate(runs):
        color = f"C{index % 10}"
        for key, style, what in (("train_epoch_avg_loss", "-", "train"), ("val_loss", "--", "val")):
            points = sorted((e, v[key]) for e, v in run.epochs.items() if key in v)
            if points:
                ax.plot(*zip(*points), style, color=color, label=f"{run_label(run)} {what}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m common.log_summary", description=__doc__.split("\n")[0])
    parser.add_argument("logs", nargs="+", metavar="LOG", help="DLLogger JSON-lines logs (nvlog.json)")
    parser.add_argument("--epochs", nargs="+", type=int, default=None,
                        help="epochs of the loss tables (default: 1 250 500 750 1000 where logged, "
                             "else five spread over the run)")
    parser.add_argument("--plot", metavar="PNG", help="also write loss curves to this PNG file")
    args = parser.parse_args(argv)
    try:
        runs = [read_run(path) for path in args.logs]
        sys.stdout.write(summarize(runs, args.epochs))
        if args.plot:
            plot_losses(runs, args.plot)
            print(f"\nLoss curves written to {args.plot}")
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
