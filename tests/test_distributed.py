"""Multi-process training on CPU (gloo, 127.0.0.1): DDP equals one process, world-size-free
checkpoints, clean stop on SIGTERM, and a dying rank ending the job."""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import multiproc
import train
from common import run_state
from common.checkpoint import load_checkpoint
from training_helpers import (REPO, env_without_gpu, read_log, tacotron2_args, tiny_filelist, values, waveglow_args,
                              write_noise_clips)

SEGMENT = 2048


def launch(args: list[str], nproc: int, **popen) -> subprocess.Popen:
    command = [sys.executable, "-m", "multiproc", "--nproc", str(nproc), "train.py", *args]
    return subprocess.Popen(command, cwd=REPO, env=env_without_gpu(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **popen)


def run(args: list[str], nproc: int) -> str:
    process = launch(args, nproc)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    return output


def final_weights(output: Path) -> dict:
    return load_checkpoint(str(output / "checkpoint_WaveGlow_last.pt"))["state_dict"]


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5, msg=name)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    return folder, write_noise_clips(folder, n_clips=8, n_samples=SEGMENT)


@pytest.fixture(scope="module")
def odd_validation_list(clips) -> Path:
    """3 validation clips, loud to nearly silent (their losses differ): not a multiple of 2 processes."""
    folder, _ = clips
    rng = np.random.default_rng(1)
    for i, amplitude in enumerate((0.5, 0.01, 0.2)):
        sf.write(folder / f"val{i}.wav", (amplitude * rng.standard_normal(SEGMENT)).astype(np.float32), 22050,
                 subtype="PCM_16")
    filelist = folder / "val.txt"
    filelist.write_text("".join(f"val{i}.wav|val {i}\n" for i in range(3)), encoding="utf-8")
    return filelist


@pytest.fixture(scope="module")
def single_process_run(clips, odd_validation_list, tmp_path_factory):
    output = tmp_path_factory.mktemp("single")
    assert train.main(waveglow_args(output, *clips, 2, 4, SEGMENT,
                                    "--validation-files", str(odd_validation_list))) == 0
    return output


@pytest.fixture(scope="module")
def two_process_run(clips, odd_validation_list, tmp_path_factory):
    output = tmp_path_factory.mktemp("ddp")
    run(waveglow_args(output, *clips, 2, 2, SEGMENT, "--validation-files", str(odd_validation_list)), nproc=2)
    return output


def test_two_processes_match_one_process_on_the_same_global_batch(single_process_run, two_process_run):
    output = two_process_run
    assert_same_weights(final_weights(output), final_weights(single_process_run))
    # Only rank 0 logs: one record per step, with the loss averaged and items summed over ranks.
    log = read_log(output / "nvlog.json")
    params = {k: v for r in log if r.get("step") == "PARAMETER" for k, v in r["data"].items()}
    assert params["world_size"] == 2  # the real world size, as the log tables need for scaling
    assert [step for step, _ in values(log, "train_iter_loss")] == [(e, i) for e in (0, 1) for i in (0, 1)]
    single_log = read_log(single_process_run / "nvlog.json")
    ddp_losses = [v for _, v in values(log, "train_iter_loss")]
    single_losses = [v for _, v in values(single_log, "train_iter_loss")]
    assert ddp_losses == pytest.approx(single_losses, rel=1e-4, abs=1e-5)
    items = [v * t for (_, v), (_, t) in zip(values(log, "train_iter_items/sec"), values(log, "train_iter_time"))]
    assert items == pytest.approx([4 * SEGMENT] * 4)
    assert sorted(p.name for p in output.glob("checkpoint_*")) == [
        "checkpoint_WaveGlow_0.pt", "checkpoint_WaveGlow_1.pt", "checkpoint_WaveGlow_last.pt"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile on the CPU needs a C++ compiler")
def test_tacotron2_compiled_on_two_processes_trains_like_eager(tmp_path):
    """--torch-compile under DDP: the compiled steps' parameter gradients reach DDP's all-reduce as
    eager's do (the decoder's dropouts off, whose compiled masks come from another generator)."""
    common = (tiny_filelist(tmp_path, 4), 1, "--p-attention-dropout", "0", "--p-decoder-dropout", "0")
    run(tacotron2_args(tmp_path / "eager", *common), nproc=2)
    run(tacotron2_args(tmp_path / "compiled", *common, "--torch-compile"), nproc=2)
    eager, compiled = (values(read_log(tmp_path / name / "nvlog.json"), "train_iter_loss")
                       for name in ("eager", "compiled"))
    assert len(compiled) == len(eager) == 1
    assert [loss for _, loss in compiled] == pytest.approx([loss for _, loss in eager], rel=1e-4, abs=1e-5)
    weights = [load_checkpoint(str(tmp_path / name / "checkpoint_Tacotron2_last.pt"))["state_dict"]
               for name in ("eager", "compiled")]
    # a convolution's bias before a batch norm has a gradient of rounding noise only (the norm takes the
    # mean out), which Adam scales up to a full step: those differ in the noise's sign
    eager_weights, compiled_weights = ({name: weight for name, weight in state.items()
                                        if not re.fullmatch(r"(encoder|postnet)\.convolutions\.\d+\.0\.conv\.bias", name)}
                                       for state in weights)
    assert len(eager_weights) == len(weights[0]) - 3  # SMALL_TACOTRON2: 1 encoder and 2 postnet convolutions
    assert_same_weights(eager_weights, compiled_weights)


def test_validation_counts_every_utterance_once_on_two_processes(single_process_run, two_process_run):
    """3 validation clips on 2 processes: no clip repeated to even out the ranks' shares, so
    val_loss is the mean over the validation set, as on one process."""
    single = values(read_log(single_process_run / "nvlog.json"), "val_loss")
    ddp = values(read_log(two_process_run / "nvlog.json"), "val_loss")
    assert [step for step, _ in ddp] == [step for step, _ in single] == [(0,), (1,)]
    assert [v for _, v in ddp] == pytest.approx([v for _, v in single], rel=1e-4, abs=1e-6)


def test_a_two_process_checkpoint_resumes_in_one_process_and_back(clips, single_process_run, tmp_path):
    two_then_one, one_then_two = tmp_path / "two_then_one", tmp_path / "one_then_two"
    run(waveglow_args(two_then_one, *clips, 1, 2, SEGMENT), nproc=2)
    assert train.main(waveglow_args(two_then_one, *clips, 2, 4, SEGMENT, "--resume-from-last")) == 0
    assert_same_weights(final_weights(two_then_one), final_weights(single_process_run))

    assert train.main(waveglow_args(one_then_two, *clips, 1, 4, SEGMENT)) == 0
    run(waveglow_args(one_then_two, *clips, 2, 2, SEGMENT, "--resume-from-last"), nproc=2)
    assert_same_weights(final_weights(one_then_two), final_weights(single_process_run))


class StopAtStep:
    """StopRequest stand-in: the stop is requested from the `step`-th step on (train.py looks once a step)."""

    def __init__(self, step: int):
        self.step, self.looks = step, 0

    @property
    def requested(self) -> bool:
        self.looks += 1
        return self.looks >= self.step


def consumed_utterances(output: Path) -> int:
    return load_checkpoint(str(output / "checkpoint_WaveGlow_last.pt"))["sampler"]["consumed"]


def test_a_run_resumed_with_another_global_batch_records_where_it_stops(clips, tmp_path, monkeypatch):
    """Stopped after one step of 2 utterances, resumed with a global batch of 4 (2 processes of 2, or
    -bs 4 here: the same count) and stopped again after one step: 6 utterances of the epoch are done,
    not 4, which would train 2 of them twice."""
    monkeypatch.setattr(train, "StopRequest", lambda: StopAtStep(1))
    output = tmp_path / "stopped_twice"
    assert train.main(waveglow_args(output, *clips, 1, 2, SEGMENT)) == 0
    assert consumed_utterances(output) == 2
    assert train.main(waveglow_args(output, *clips, 1, 4, SEGMENT, "--resume-from-last")) == 0
    assert consumed_utterances(output) == 6


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_nodes_that_see_different_checkpoints_stop_with_an_error_instead_of_waiting(clips, single_process_run,
                                                                                    tmp_path):
    """Two nodes (scripts/train_multinode.sh twice on this machine), each with an -o of its own as on
    disks that are not shared: one finds a last checkpoint, the other none. They would train different
    epochs and wait forever in collectives the other never makes; both must stop and say why."""
    node_outputs = [tmp_path / "node0", tmp_path / "node1"]
    node_outputs[0].mkdir()
    shutil.copy(single_process_run / "checkpoint_WaveGlow_last.pt", node_outputs[0])
    env = {**env_without_gpu(), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "NNODES": "2",
           "GPUS_PER_NODE": "1", "MAX_RESTARTS": "0", "PYTHON": sys.executable, "JOB_ID": f"split-{os.getpid()}"}
    nodes = [subprocess.Popen(["bash", "scripts/train_multinode.sh", *waveglow_args(output, *clips, 4, 2, SEGMENT)],
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
             for output in node_outputs]
    try:
        outputs = [node.communicate(timeout=120)[0] for node in nodes]
    finally:
        for node in nodes:  # hung ranks ignore SIGTERM (it only asks for a stop after the step)
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGKILL)
    for node, output in zip(nodes, outputs):
        assert node.returncode != 0, output
        assert "would resume from different states" in output and "no checkpoint" in output, output


def wait_for_log_key(log_file: Path, key: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log_file.exists() and key in log_file.read_text(encoding="utf-8"):
            return
        assert process.poll() is None, process.communicate()[0]
        time.sleep(0.2)
    raise AssertionError(f"{key} never appeared in {log_file}")


def test_sigterm_mid_epoch_writes_a_checkpoint_and_resume_continues(clips, tmp_path):
    output = tmp_path / "preempted"
    # Data-loader workers, and the signal sent to the whole process group as timeout, SLURM and
    # Ctrl-C do: a worker killed by it must not abort the step before the stop checkpoint.
    args = waveglow_args(output, *clips, 50, 1, SEGMENT, "--num-workers", "2")
    process = subprocess.Popen([sys.executable, "train.py", *args], cwd=REPO, env=env_without_gpu(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    wait_for_log_key(output / "nvlog.json", '"train_iter_loss"', process)
    os.killpg(process.pid, signal.SIGTERM)
    stdout, _ = process.communicate(timeout=120)
    assert process.returncode == 0, stdout
    assert "Stopped by signal" in stdout
    stopped = load_checkpoint(str(output / "checkpoint_WaveGlow_last.pt"))
    done_steps = stopped["iteration"]
    assert 0 < done_steps < 50 * 8

    resumed = waveglow_args(output, *clips, stopped["epoch"] + 2, 1, SEGMENT, "--resume-from-last")
    assert train.main(resumed) == 0
    steps = [step for step, _ in values(read_log(output / "nvlog.json"), "train_iter_loss")]
    # Every step of the interrupted epoch and the next one ran exactly once.
    epoch = stopped["epoch"]
    assert sorted(s for s in steps if s[0] == epoch) == [(epoch, i) for i in range(8)]
    assert sorted(s for s in steps if s[0] == epoch + 1) == [(epoch + 1, i) for i in range(8)]
    assert load_checkpoint(str(output / "checkpoint_WaveGlow_last.pt"))["iteration"] == 8 * (epoch + 2)


def test_a_launchers_forwarded_ctrl_c_does_not_cut_the_stop_short():
    """Ctrl-C reaches torchrun and its workers, and torchrun forwards its copy: the workers' second
    SIGINT right after the first still means a clean stop; one a while later stops at once."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    now = [100.0]
    try:
        stop = run_state.StopRequest(clock=lambda: now[0])
        stop._handle(signal.SIGINT, None)
        assert stop.requested
        now[0] += 0.1
        stop._handle(signal.SIGINT, None)  # the launcher's copy
        stop._handle(signal.SIGTERM, None)
        now[0] += run_state.FORWARDED_SIGNAL_SECONDS
        with pytest.raises(KeyboardInterrupt):
            stop._handle(signal.SIGINT, None)  # the user insists
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def test_sigterm_to_a_multiproc_job_stops_it_cleanly(clips, tmp_path):
    """SIGTERM to the launcher's process group (SLURM, timeout): the ranks finish their step, rank 0
    writes the stop checkpoint, and the launcher exits 0 without a traceback."""
    output = tmp_path / "preempted"
    process = launch(waveglow_args(output, *clips, 50, 1, SEGMENT), nproc=2, start_new_session=True)
    wait_for_log_key(output / "nvlog.json", '"train_iter_loss"', process)
    os.killpg(process.pid, signal.SIGTERM)
    stdout, _ = process.communicate(timeout=120)
    assert process.returncode == 0, stdout
    assert "Stopped by signal" in stdout and "multiproc: stopped by SIGTERM" in stdout
    assert "Traceback" not in stdout
    assert load_checkpoint(str(output / "checkpoint_WaveGlow_last.pt"))["sampler"]["consumed"] > 0


def test_multiproc_gives_stopped_workers_time_for_their_checkpoint(monkeypatch):
    launched = []
    monkeypatch.setattr(multiproc.torchrun, "main", launched.append)
    monkeypatch.delenv("TORCH_ELASTIC_SHUTDOWN_TIMEOUT", raising=False)
    multiproc.main(["--nproc", "2", "train.py", "-m", "WaveGlow"])
    assert os.environ["TORCH_ELASTIC_SHUTDOWN_TIMEOUT"] == str(multiproc.STOP_GRACE_SECONDS)
    monkeypatch.setenv("TORCH_ELASTIC_SHUTDOWN_TIMEOUT", "45")  # the user's own setting wins
    multiproc.main(["--nproc", "2", "train.py", "-m", "WaveGlow"])
    assert os.environ["TORCH_ELASTIC_SHUTDOWN_TIMEOUT"] == "45" and len(launched) == 2


# Workers that stop as train.py does (SIGTERM, exit 0), too slowly, by failing, or not at all.
STOP_WORKER = """
import os, signal, sys, time
behaviour = sys.argv[1]
if behaviour == "clean":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
elif behaviour == "slow":
    signal.signal(signal.SIGTERM, lambda *_: (time.sleep(60), sys.exit(0)))
elif behaviour == "failing":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
open(os.path.join(sys.argv[2], "ready" + os.environ["RANK"]), "w").close()
while True:
    time.sleep(0.05)
"""


@pytest.mark.parametrize("behaviour, sig, returncode", [
    ("clean", signal.SIGTERM, 0), ("slow", signal.SIGTERM, 128 + signal.SIGTERM),
    ("failing", signal.SIGTERM, 128 + signal.SIGTERM), ("clean", signal.SIGHUP, 128 + signal.SIGHUP)],
    ids=["clean", "killed-at-grace-end", "failing", "sighup"])
def test_multiproc_exits_0_on_a_stop_only_when_every_worker_stopped_cleanly(behaviour, sig, returncode, tmp_path):
    """torchrun raises the same SignalException whatever became of its workers: a stop whose workers
    were killed at the end of the grace time, failed, or died of a signal train.py does not stop on
    (SIGHUP) wrote no stop checkpoint, and a job script must not take it for one that did."""
    worker = tmp_path / "worker.py"
    worker.write_text(STOP_WORKER)
    env = {**env_without_gpu(), "TORCH_ELASTIC_SHUTDOWN_TIMEOUT": "2"}
    process = subprocess.Popen([sys.executable, "-m", "multiproc", "--nproc", "2", str(worker), behaviour,
                                str(tmp_path)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready{rank}").exists() for rank in range(2)):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    process.send_signal(sig)  # to the launcher only: torchrun passes it on to its workers
    output, _ = process.communicate(timeout=60)
    assert process.returncode == returncode, output
    assert f"multiproc: stopped by {sig.name}" in output
    assert ("not cleanly" in output) == (returncode != 0), output


def child_with_rank(parent_pid: int, rank: int) -> int | None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
        if ppid == parent_pid and f"RANK={rank}".encode() in environ:
            return int(entry.name)
    return None


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc to find a worker")
def test_a_dying_rank_ends_the_whole_job_with_the_rank_named(clips, tmp_path):
    output = tmp_path / "crash"
    process = launch(waveglow_args(output, *clips, 500, 1, SEGMENT), nproc=2)
    wait_for_log_key(output / "nvlog.json", '"train_iter_loss"', process)
    victim = child_with_rank(process.pid, 1)
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    stdout, _ = process.communicate(timeout=120)
    assert process.returncode != 0
    # torchrun's failure report names the rank that died and how.
    assert re.search(r"rank\s*:\s*1\b", stdout) and "SIGKILL" in stdout, stdout


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc to find a worker")
def test_torchrun_restarts_a_killed_worker_which_resumes_from_the_last_checkpoint(clips, tmp_path):
    output = tmp_path / "restarted"
    args = waveglow_args(output, *clips, 6, 2, SEGMENT, "--epochs-per-checkpoint", "1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=1",
               "--max-restarts=1", "train.py", *args]
    process = subprocess.Popen(command, cwd=REPO, env=env_without_gpu(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    last = output / "checkpoint_WaveGlow_last.pt"
    deadline = time.monotonic() + 120
    while not last.exists():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[0]
        time.sleep(0.1)
    victim = child_with_rank(process.pid, 0)
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    stdout, _ = process.communicate(timeout=180)
    assert process.returncode == 0, stdout
    assert "Resumed from" in stdout and str(last) in stdout
    assert load_checkpoint(str(last))["epoch"] == 5


@pytest.mark.parametrize("argv, env", [(["--nproc", "0"], {}), (["--nproc=two"], {}), (["--nproc"], {}),
                                       ([], {"MULTIPROC_NPROC": "0"}), ([], {"MULTIPROC_NPROC": "x"})],
                         ids=["zero", "word", "no-value", "env-zero", "env-word"])
def test_multiproc_refuses_a_process_count_that_is_not_positive(argv, env, monkeypatch, capsys):
    """One `error:` line and exit 2, before anything starts: not one process per GPU for 0, nor a traceback."""
    launched = []
    monkeypatch.setattr(multiproc.torchrun, "main", launched.append)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_info:
        multiproc.main([*argv, "train.py", "-m", "WaveGlow", "--rank", "1", "--world-size=4"])
    assert exit_info.value.code == 2 and not launched
    assert "expected a number of processes" in capsys.readouterr().err
