"""inference_benchmark.py on tiny models, and the latency statistics of common/timing.py."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import inference
import inference_benchmark
import tacotron2
import waveglow
from common.timing import DeviceTimer, latency_summary, percentile
from test_inference import TINY_TACOTRON2, TINY_WAVEGLOW, save_ours, tiny_tacotron2, tiny_waveglow

pytestmark = pytest.mark.usefixtures("one_thread")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUMMARY_KEYS = {"latency_avg", "latency_std", "latency_p50", "latency_p90", "latency_p95", "latency_p99",
                "tacotron2_items_per_sec", "waveglow_items_per_sec", "num_mels_per_audio", "audio_seconds",
                "real_time_factor"}


def read_log(path):
    return [json.loads(line[5:]) for line in open(path) if line.startswith("DLLL ")]


@pytest.fixture(scope="module")
def tiny_ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench_ckpts")
    return (save_ours(root / "t2.pt", tiny_tacotron2(run_to_limit=False), "Tacotron2", TINY_TACOTRON2),
            save_ours(root / "wg.pt", tiny_waveglow(), "WaveGlow", TINY_WAVEGLOW))


def test_benchmark_with_checkpoints(tiny_ckpts, tmp_path, capsys):
    log = str(tmp_path / "bench.json")
    steps = 12
    rc = inference_benchmark.main(["--tacotron2", tiny_ckpts[0], "--waveglow", tiny_ckpts[1], "--cpu",
                                   "--num-iters", "2", "--warmup", "1", "-bs", "2", "-il", "40",
                                   "--decoder-steps", str(steps), "--log-file", log])
    assert rc == 0
    out = capsys.readouterr().out
    for label in ("latency average", "latency p99", "frames/s", "samples/s", "real-time factor"):
        assert label in out
    records = read_log(log)
    iterations = [r for r in records if r["type"] == "LOG" and r["step"] in ([0], [1])]
    assert len(iterations) == 2
    for record in iterations:
        data = record["data"]
        # --decoder-steps forces the length even though this model's gate stops at once.
        assert data["num_mels_per_audio"] == steps
        assert data["audio_seconds"] == pytest.approx(steps * 256 / 22050)
        assert data["latency"] == pytest.approx(data["tacotron2_latency"] + data["waveglow_latency"]
                                                + data["denoiser_latency"])
        assert data["real_time_factor"] == pytest.approx(2 * data["audio_seconds"] / data["latency"])
        assert data["tacotron2_items_per_sec"] == pytest.approx(2 * steps / data["tacotron2_latency"])
    summary = next(r["data"] for r in records if r["type"] == "LOG" and r["step"] == [])
    assert SUMMARY_KEYS <= set(summary)
    latencies = [r["data"]["latency"] for r in iterations]
    assert summary["latency_avg"] == pytest.approx(np.mean(latencies))
    assert summary["latency_p99"] == pytest.approx(max(latencies))


def test_benchmark_random_weights(tmp_path, capsys, monkeypatch):
    # The default config is 28M + 268M parameters; shrink it to keep the test fast.
    tiny = {tacotron2: TINY_TACOTRON2, waveglow: TINY_WAVEGLOW}
    seen = {}

    def tiny_default_config(package, wn_channels=None):
        seen[package.NAME] = wn_channels
        return dict(tiny[package])

    monkeypatch.setattr(inference, "default_config", tiny_default_config)
    log = str(tmp_path / "bench.json")
    rc = inference_benchmark.main(["--random-weights", "--wn-channels", "256", "--cpu", "--num-iters", "2",
                                   "--warmup", "0", "-il", "20", "--random-ids", "--log-file", log])
    assert rc == 0
    assert seen == {"Tacotron2": None, "WaveGlow": 256}
    err = capsys.readouterr().err
    assert "--decoder-steps" in err  # an untrained gate stops at once: the user is told
    summary = next(r["data"] for r in read_log(log) if r["type"] == "LOG" and r["step"] == [])
    assert summary["num_mels_per_audio"] == 1


@pytest.mark.parametrize("argv", [[], ["--random-weights", "--tacotron2", "x.pt"], ["--tacotron2", "x.pt"],
                                  ["--random-weights", "--num-iters", "0"],
                                  ["--random-weights", "--gate-check-interval", "0"]])
def test_benchmark_bad_flags(argv, capsys):
    assert inference_benchmark.main(argv + ["--cpu"]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_benchmark_script_passes_defaults_and_extra_args(tmp_path):
    # A stand-in python records the command line the script builds.
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$ARGS_OUT"\n')
    fake.chmod(0o755)
    env = {**os.environ, "PYTHON": str(fake), "ARGS_OUT": str(tmp_path / "args"), "PRECISION": "fp16",
           "TACOTRON2": "t2.pt", "WAVEGLOW": "wg.pt"}
    subprocess.run(["bash", os.path.join(REPO_ROOT, "scripts", "inference_benchmark.sh"), "--num-iters", "5"],
                   check=True, env=env)
    args = (tmp_path / "args").read_text().split("\n")
    assert args[0].endswith("inference_benchmark.py")
    joined = " ".join(args)
    assert "-bs 1 -il 128 --num-iters 1003" in joined and "--fp16" in joined
    assert "--tacotron2 t2.pt --waveglow wg.pt --num-iters 5" in joined  # extra args last: they win


# -- common/timing.py ---------------------------------------------------------------------------------

def test_percentile_is_nearest_rank():
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 7, 10, 101):
        values = rng.random(n).tolist()
        for p in (0, 1, 50, 90, 95, 99, 100):
            assert percentile(values, p) == np.percentile(values, p, method="inverted_cdf")


def test_percentile_matches_the_reference_when_the_rank_is_whole():
    values = list(np.random.default_rng(1).random(100))
    for p in (50, 90, 95, 99, 100):
        reference = max(sorted(values)[:int(len(values) * p / 100)])  # test_infer.py's formula
        assert percentile(values, p) == reference


def test_percentile_errors():
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_latency_summary():
    values = [0.3, 0.1, 0.2, 0.5, 0.4]
    summary = latency_summary(values)
    assert summary["latency_avg"] == pytest.approx(np.mean(values))
    assert summary["latency_std"] == pytest.approx(np.std(values))
    assert summary["latency_p50"] == 0.3 and summary["latency_p90"] == 0.5 and summary["latency_max"] == 0.5
    assert set(latency_summary(values, prefix="t2")) == {"t2_" + k[len("latency_"):] for k in summary}


def test_device_timer_measures_wall_time():
    with DeviceTimer(torch.device("cpu")) as timer:
        time.sleep(0.02)
    assert 0.02 <= timer.elapsed < 1.0
    with DeviceTimer() as timer:  # no device: synchronises CUDA only if it is in use
        pass
    assert 0 <= timer.elapsed < 0.5


def test_speed_table_runs_each_variant_and_reports_a_failing_one(tiny_ckpts, tmp_path):
    """scripts/inference_speed_table.py: one process and one log per variant, a row each, the
    speed-up over the first row; a variant that fails (a missing checkpoint) gets a row saying so
    and exit status 1."""
    script = os.path.join(REPO_ROOT, "scripts", "inference_speed_table.py")
    t2, wg = tiny_ckpts
    common = [sys.executable, script, "--num-iters", "2", "--warmup", "0", "--decoder-steps", "6",
              "--out-dir", str(tmp_path), "--cpu", "-il", "20", "--tacotron2", t2]
    result = subprocess.run(common + ["--waveglow", wg], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    table = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert [row.split("|")[1].strip() for row in table[1:]] == ["fp32", "bf16-autocast", "bf16"]
    assert table[1].rstrip().endswith("| 1.00x |")
    assert sorted(os.listdir(tmp_path)) == ["bf16-autocast.json", "bf16.json", "fp32.json"]
    for name in ("fp32", "bf16"):
        summary = next(r["data"] for r in read_log(tmp_path / f"{name}.json") if r.get("step") == [])
        assert summary["num_mels_per_audio"] == 6
    result = subprocess.run(common + ["--waveglow", str(tmp_path / "missing.pt"), "--variants", "fp32"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 1
    failed = [line for line in result.stdout.splitlines() if line.startswith("| fp32 |")]
    assert len(failed) == 1 and "failed (exit 2)" in failed[0] and "missing.pt" in failed[0]
