"""common.log_summary: DLLogger logs -> the recipe's loss, throughput, speed-up and scaling tables."""

import json

import pytest

from common import log_summary as ls
from common.logger import Logger


def write_run(path, *, model="Tacotron2", fp16=False, bf16=False, world_size=1, batch_size=48,
              epoch_rates=(), epoch_mels=None, train_losses=(), val_losses=(), run_time=12.5):
    """A log as train.py writes it, through the project's Logger."""
    with Logger(str(path), stdout=False) as logger:
        logger.parameters({"model_name": f"{model}_PyT", "fp16_run": fp16, "bf16": bf16,
                           "world_size": world_size, "batch_size": batch_size, "epochs": len(epoch_rates)})
        logger.metadata("val_loss", None)
        for epoch, rate in enumerate(epoch_rates):
            logger.log((epoch, 0), {"train_iter_loss": train_losses[epoch], "train_iter_items/sec": rate})
            data = {"train_epoch_avg_loss": train_losses[epoch], "train_epoch_items/sec": rate,
                    "epoch_time": 1.0}
            if epoch_mels is not None:
                data["train_epoch_mels/sec"] = epoch_mels[epoch]
            logger.log((epoch,), data)
            logger.log((epoch,), {"val_loss": val_losses[epoch]})
        logger.log((), {"run_time": run_time})
    return str(path)


def test_parse_logger_output_and_label(tmp_path):
    path = write_run(tmp_path / "a.json", fp16=True, world_size=4, batch_size=104,
                     epoch_rates=[10.0, 200.0, 300.0], train_losses=[5.0, 2.0, 1.0], val_losses=[6.0, 3.0, 2.5])
    run = ls.read_run(path)
    assert ls.run_label(run) == ls.RunLabel("Tacotron2", "FP16", 4, 104)
    assert str(ls.run_label(run)) == "Tacotron2 FP16 (bs 104, 4 GPUs)"
    assert run.summary["run_time"] == 12.5
    assert ls.loss_at(run, [0, 2, 7], "train_epoch_avg_loss") == [5.0, 1.0, None]
    assert ls.loss_at(run, [1], "val_loss") == [3.0]
    # epoch 0 is warm-up: mean of epochs 1 and 2 only
    assert ls.mean_throughput(run) == pytest.approx((200.0 + 300.0) / 2)


def test_precision_labels():
    run = ls.Run("x", params={"model_name": "WaveGlow_PyT", "bf16": True, "batch_size": 10})
    assert ls.run_label(run) == ls.RunLabel("WaveGlow", "BF16", 1, 10)
    run = ls.Run("x", params={"model_name": "WaveGlow", "fp16_run": False, "batch_size": 4})
    assert ls.run_label(run).precision == "FP32"


def test_single_epoch_and_iteration_fallback():
    lines = ['DLLL {"type": "LOG", "step": "PARAMETER", "data": {"model_name": "WaveGlow_PyT"}}',
             'DLLL {"type": "LOG", "step": [0], "data": {"train_epoch_items/sec": 42.0}}']
    assert ls.mean_throughput(ls.parse_lines(lines)) == 42.0
    # stopped inside epoch 1: per-iteration rates of the epochs after the first
    lines = ['DLLL {"type": "LOG", "step": [0, 0], "data": {"train_iter_items/sec": 1.0}}',
             'DLLL {"type": "LOG", "step": [1, 0], "data": {"train_iter_items/sec": 4.0}}',
             'DLLL {"type": "LOG", "step": [1, 1], "data": {"train_iter_items/sec": 6.0}}']
    assert ls.mean_throughput(ls.parse_lines(lines)) == 5.0
    # a step that captured CUDA graphs is left out, unless there is nothing else
    capture = ('DLLL {"type": "LOG", "step": [1, 2], '
               '"data": {"train_iter_items/sec": 0.5, "train_iter_one_time_work": 1}}')
    assert ls.mean_throughput(ls.parse_lines(lines + [capture])) == 5.0
    assert ls.mean_throughput(ls.parse_lines([capture])) == 0.5


def seed_style_runs(tmp_path):
    """NVIDIA's table shape: AMP at batch 104 vs FP32 at batch 48, on 1 and 8 GPUs."""
    rates = {(True, 1): 15891.0, (False, 1): 9174.0, (True, 8): 115032.0, (False, 8): 58703.0}
    paths = []
    for (fp16, gpus), rate in rates.items():
        paths.append(write_run(tmp_path / f"{fp16}_{gpus}.json", fp16=fp16, world_size=gpus,
                               batch_size=104 if fp16 else 48, epoch_rates=[1.0, rate / 10, rate / 10],
                               epoch_mels=[1.0, rate, rate], train_losses=[9.0, 1.0, 0.5],
                               val_losses=[9.5, 1.5, 0.75]))
    return [ls.read_run(p) for p in paths], rates


def test_speedup_and_weak_scaling(tmp_path):
    runs, rates = seed_style_runs(tmp_path)
    (table,) = ls.throughput_tables(runs)
    assert table.unit == "mels/s"  # Tacotron 2 with mel frames logged: NVIDIA's latest unit
    assert table.columns == [("FP16", 104), ("FP32", 48)]
    assert table.speedup_pairs() == [(("FP16", 104), ("FP32", 48))]
    for gpus in (1, 8):
        assert table.speedup(gpus, ("FP16", 104), ("FP32", 48)) == pytest.approx(rates[True, gpus] / rates[False, gpus])
    assert table.weak_scaling(8, ("FP16", 104)) == pytest.approx(115032 / 15891)
    assert table.weak_scaling(8, ("FP32", 48)) == pytest.approx(58703 / 9174)
    assert table.weak_scaling(1, ("FP32", 48)) == pytest.approx(1.0)

    text = ls.summarize(runs)
    # the numbers NVIDIA published for DGX-1 (f.3), recomputed from the logs
    assert "| 1 | 15,891 | 9,174 | 1.73 | 1.00 | 1.00 |" in text
    assert "| 8 | 115,032 | 58,703 | 1.96 | 7.24 | 6.40 |" in text


def test_speedup_prefers_same_batch(tmp_path):
    runs = [ls.read_run(write_run(tmp_path / f"{i}.json", fp16=fp16, batch_size=bs, epoch_rates=[1.0, rate],
                                  train_losses=[1.0, 1.0], val_losses=[1.0, 1.0]))
            for i, (fp16, bs, rate) in enumerate([(True, 10, 300.0), (False, 10, 100.0), (False, 4, 50.0)])]
    for run in runs:
        run.params["model_name"] = "WaveGlow_PyT"
    (table,) = ls.throughput_tables(runs)
    assert table.unit == "samples/s"
    assert table.speedup_pairs() == [(("FP16", 10), ("FP32", 10))]
    assert table.speedup(1, ("FP16", 10), ("FP32", 10)) == pytest.approx(3.0)


def test_loss_tables_use_chosen_epochs(tmp_path):
    runs, _ = seed_style_runs(tmp_path)
    text = ls.summarize(runs, epochs=[0, 2])
    assert "| Loss (Model/Epoch) | 0 | 2 |" in text
    assert "| Tacotron2 FP32 (bs 48, 8 GPUs) | 9.0000 | 0.5000 |" in text  # train
    assert "| Tacotron2 FP32 (bs 48, 8 GPUs) | 9.5000 | 0.7500 |" in text  # validation


def test_default_epochs():
    run = ls.Run("x", epochs={e: {} for e in range(0, 1501)})
    assert ls.default_epochs([run]) == [1, 250, 500, 750, 1000]
    short = ls.Run("x", epochs={e: {} for e in range(9)})
    assert ls.default_epochs([short]) == [0, 2, 4, 6, 8]


def test_bad_logs(tmp_path):
    with pytest.raises(ls.LogError, match="not found"):
        ls.read_run(str(tmp_path / "missing.json"))
    empty = tmp_path / "empty.json"
    empty.write_text("hello\n")
    with pytest.raises(ls.LogError, match="no DLLogger lines"):
        ls.read_run(str(empty))
    broken = tmp_path / "broken.json"
    broken.write_text('DLLL {"type": "LOG", "step": [0], "data": {}}\nDLLL {not json}\nDLLL {}\n')
    with pytest.raises(ls.LogError, match=r"broken.json:2: not a JSON record"):
        ls.read_run(str(broken))
    # a log still being written may end in half a line: tolerated
    live = tmp_path / "live.json"
    record = {"type": "LOG", "step": [0], "data": {"val_loss": 1.5}}
    live.write_text("DLLL " + json.dumps(record) + '\nDLLL {"type": "LO')
    assert ls.read_run(str(live)).epochs[0]["val_loss"] == 1.5


def test_main_prints_tables_and_plots(tmp_path, capsys):
    runs, _ = seed_style_runs(tmp_path)
    png = tmp_path / "loss.png"
    assert ls.main([run.source for run in runs] + ["--epochs", "1", "2", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "## Training throughput: Tacotron2" in out and "| Loss (Model/Epoch) | 1 | 2 |" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert ls.main([str(tmp_path / "nope.json")]) == 2
    assert "error:" in capsys.readouterr().err


def write_alignment_run(path, focus_per_epoch, steps_per_epoch, guided_weight, walk_per_epoch=None):
    with Logger(str(path), stdout=False) as logger:
        logger.parameters({"model_name": "Tacotron2_PyT", "guided_attn_weight": guided_weight, "world_size": 1,
                           "batch_size": 32})
        for epoch, focus in enumerate(focus_per_epoch):
            for i in range(steps_per_epoch):
                logger.log((epoch, i), {"train_iter_loss": 1.0, "train_iter_items/sec": 10.0})
            logger.log((epoch,), {"train_epoch_avg_loss": 1.0, "train_epoch_items/sec": 10.0})
            walk = {} if walk_per_epoch is None else {"val_walk": walk_per_epoch[epoch]}
            logger.log((epoch,), {"val_loss": 2.0 - epoch / 10, "val_focus": focus, "val_reached_end": 0.5, **walk})
    return str(path)


def test_attention_table_tells_when_focus_passed_the_threshold(tmp_path):
    write_alignment_run(tmp_path / "plain.json", [0.03, 0.1], 39, 0.0)  # then resumed from epoch 0:
    plain = ls.read_run(write_alignment_run(tmp_path / "plain.json", [0.03, 0.1, 0.2], 39, 0.0))  # appended
    guided = ls.read_run(write_alignment_run(tmp_path / "guided.json", [0.05, 0.4, 0.62, 0.7], 39, 1.0,
                                             walk_per_epoch=[0.04, 0.55, 0.8, 0.9]))
    assert ls.first_epoch_above(plain) is None
    assert ls.first_epoch_above(guided) == (2, 3 * 39)
    assert ls.first_epoch_above(guided, "val_walk") == (1, 2 * 39)
    table = ls.alignment_table([plain, guided])
    plain_row, guided_row = [line for line in table.splitlines() if ".json" in line]
    assert "not within 117 steps" in plain_row and "0.200" in plain_row
    assert plain_row.count("| - |") == 2  # a log from before val_walk: no walk columns
    assert "epoch 2, step 117" in guided_row and "0.700" in guided_row and "1.7" in guided_row
    assert "epoch 1, step 78" in guided_row and "0.900" in guided_row
    assert "## Attention" in ls.summarize([plain, guided])


def test_label_tells_what_really_ran(tmp_path):
    path = tmp_path / "cpu.json"
    with Logger(str(path), stdout=False) as logger:
        # --fp16-run on a CPU machine trains in float32; train.py logs what ran
        logger.parameters({"model_name": "WaveGlow_PyT", "fp16_run": True, "precision": "fp32", "device": "cpu",
                           "world_size": 2, "batch_size": 4})
        logger.log((0,), {"train_epoch_avg_loss": -1.0})
    label = ls.run_label(ls.read_run(str(path)))
    assert label.precision == "FP32" and str(label) == "WaveGlow FP32 (bs 4, 2 CPU processes)"


def test_runs_table_shows_one_time_work_only_when_a_run_did_some(tmp_path):
    plain = ls.read_run(write_run(tmp_path / "plain.json", epoch_rates=[10.0, 20.0], train_losses=[2.0, 1.0],
                                  val_losses=[2.0, 1.0]))
    assert "one-time work" not in ls.runs_table([plain])
    graphed_path = tmp_path / "graphed.json"
    with Logger(str(graphed_path), stdout=False) as logger:
        logger.parameters({"model_name": "Tacotron2_PyT", "world_size": 1, "batch_size": 128})
        for epoch, (steps, seconds) in enumerate([(3, 4.5), (1, 1.25), (0, 0.0)]):
            data = {"train_epoch_avg_loss": 1.0, "train_epoch_items/sec": 10.0}
            if steps:
                data.update({"train_epoch_one_time_work_steps": steps, "train_epoch_one_time_work_time": seconds})
            logger.log((epoch,), data)
    graphed = ls.read_run(str(graphed_path))
    assert ls.one_time_work(graphed) == (4, pytest.approx(5.75))
    table = ls.runs_table([plain, graphed])
    assert "one-time work (steps, s)" in table.splitlines()[0]
    assert table.splitlines()[2].rstrip().endswith("|  |")  # the plain run: an empty cell
    assert table.splitlines()[3].rstrip().endswith("| 4, 5.8 |")
