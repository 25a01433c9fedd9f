"""inference.py end to end on tiny random models saved in our, v1.0 and NGC checkpoint formats."""

import json
import os

import numpy as np
import pytest
import soundfile
import torch

import inference
import tacotron2
import waveglow
from common.audio import load_wav
from tacotron2.text import clean_text, text_to_sequence
from tacotron2 import text_split
from tacotron2.text_split import max_chunk_chars, split_text

HOP = 256
MAX_STEPS = 16
TINY_TACOTRON2 = {
    "mask_padding": False, "n_mel_channels": 80, "n_symbols": len(tacotron2.symbols),
    "symbols_embedding_dim": 32, "encoder_kernel_size": 3, "encoder_n_convolutions": 1,
    "encoder_embedding_dim": 32, "attention_rnn_dim": 32, "attention_dim": 16,
    "attention_location_n_filters": 4, "attention_location_kernel_size": 5, "n_frames_per_step": 1,
    "decoder_rnn_dim": 32, "prenet_dim": 16, "max_decoder_steps": MAX_STEPS, "gate_threshold": 0.5,
    "p_attention_dropout": 0.1, "p_decoder_dropout": 0.1, "postnet_embedding_dim": 16,
    "postnet_kernel_size": 3, "postnet_n_convolutions": 2, "decoder_no_early_stopping": False,
}
TINY_WAVEGLOW = {"n_mel_channels": 80, "n_flows": 4, "n_group": 8, "n_early_every": 2, "n_early_size": 2,
                 "WN_config": {"n_layers": 2, "kernel_size": 3, "n_channels": 16}}
AUDIO = {"max_wav_value": 32768.0, "sampling_rate": 22050, "filter_length": 1024, "hop_length": HOP,
         "win_length": 1024, "mel_fmin": 0.0, "mel_fmax": 8000.0, "n_mel_channels": 80}
LINES = ["Hello world.", "A much longer second line, with more words."]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def no_split(monkeypatch):
    """MAX_STEPS is tiny for speed, which would split every line; only the split test splits."""
    monkeypatch.setattr(inference, "max_chunk_chars", lambda *args, **kwargs: 10_000)


def tiny_tacotron2(run_to_limit: bool = True, seed: int = 0) -> torch.nn.Module:
    """A random model; untrained it stops after one frame, so a negative gate bias keeps it going."""
    torch.manual_seed(seed)
    model = tacotron2.build_model(TINY_TACOTRON2)
    if run_to_limit:
        with torch.no_grad():
            model.decoder.gate_layer.linear_layer.bias.fill_(-20.0)
    return model


def tiny_waveglow(seed: int = 0) -> torch.nn.Module:
    """A random model; WN's last layer starts at zero, so give it weights to make audio depend on mels."""
    torch.manual_seed(seed)
    model = waveglow.build_model(TINY_WAVEGLOW)
    with torch.no_grad():
        for wn in model.WN:
            wn.end.weight.normal_(0.0, 0.05)
    return model


def save_ours(path, model, name, config):
    state = {"format_version": 1, "model_name": name, "epoch": 3, "iteration": 30, "config": config,
             "state_dict": model.state_dict(), "optimizer": {}, "scaler": {}, "audio": dict(AUDIO)}
    if name == "Tacotron2":
        state["symbols"] = list(tacotron2.symbols)
    torch.save(state, path)
    return str(path)


def save_v1(path, model, name, config):
    """v1.0: exactly epoch/config/state_dict, FP16 tensors (as --fp16-run saved them), no extension."""
    state_dict = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    torch.save({"epoch": 3, "config": config, "state_dict": state_dict}, path)
    return str(path)


def save_ngc(path, model, name, config):
    """NGC / later DLE: DDP prefixes and training state beside the weights."""
    state_dict = {"module." + k: v for k, v in model.state_dict().items()}
    torch.save({"epoch": 3, "config": config, "state_dict": state_dict, "optimizer": {"state": {}},
                "amp": {"loss_scaler0": {"loss_scale": 65536.0}},
                "cuda_rng_state_all": torch.zeros(1, 8, dtype=torch.uint8)}, path)
    return str(path)


SAVERS = {"ours": save_ours, "v1.0": save_v1, "ngc": save_ngc}


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """Checkpoint paths: ckpts[(model, format)], plus 'Tacotron2-stop' that stops after one frame."""
    root = tmp_path_factory.mktemp("ckpts")
    paths = {}
    for fmt, save in SAVERS.items():
        ext = "" if fmt == "v1.0" else ".pt"
        paths["Tacotron2", fmt] = save(root / f"t2_{fmt}{ext}", tiny_tacotron2(), "Tacotron2", TINY_TACOTRON2)
        paths["WaveGlow", fmt] = save(root / f"wg_{fmt}{ext}", tiny_waveglow(), "WaveGlow", TINY_WAVEGLOW)
    paths["Tacotron2-stop"] = save_ours(root / "t2_stop.pt", tiny_tacotron2(run_to_limit=False), "Tacotron2",
                                        TINY_TACOTRON2)
    not_ckpt = root / "notes.pt"
    not_ckpt.write_text("not a checkpoint\n")
    paths["not-a-checkpoint"] = str(not_ckpt)
    return paths


def write_text(tmp_path, lines, name="text.txt") -> str:
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


def run(ckpts, tmp_path, lines=LINES, out="out", t2="ours", wg="ours", extra=()):
    text = write_text(tmp_path, lines)
    out = str(tmp_path / out)
    argv = ["-i", text, "-o", out, "--cpu", "--tacotron2", ckpts["Tacotron2", t2]]
    if wg is not None:
        argv += ["--waveglow", ckpts["WaveGlow", wg]]
    return inference.main(argv + list(extra)), out


def wav_files(out):
    return sorted(f for f in os.listdir(out) if f.endswith(".wav"))


@pytest.mark.parametrize("t2,wg", [("ours", "ours"), ("v1.0", "ngc"), ("ngc", "v1.0")])
def test_end_to_end_all_checkpoint_formats(ckpts, tmp_path, t2, wg):
    rc, out = run(ckpts, tmp_path, t2=t2, wg=wg)
    assert rc == 0
    assert wav_files(out) == ["audio_0.wav", "audio_1.wav"]
    for name in wav_files(out):
        info = soundfile.info(os.path.join(out, name))
        assert info.samplerate == 22050 and info.subtype == "PCM_16" and info.channels == 1
        # The gate never fires, so every line runs to the limit: MAX_STEPS frames of HOP samples.
        assert info.frames == MAX_STEPS * HOP
    audio = load_wav(os.path.join(out, "audio_0.wav"))
    assert 0 < float(audio.abs().max()) <= 1.0


def test_log_has_the_reference_keys(ckpts, tmp_path):
    rc, out = run(ckpts, tmp_path, extra=["--log-file", "run.json"])
    assert rc == 0
    records = [json.loads(line[5:]) for line in open(os.path.join(out, "run.json")) if line.startswith("DLLL ")]
    data = next(r["data"] for r in records if r["type"] == "LOG" and r["step"] == 0)
    assert set(inference.LOG_UNITS) <= set(data)
    assert data["latency"] == pytest.approx(data["tacotron2_latency"] + data["waveglow_latency"]
                                            + data["denoiser_latency"])
    # Two lines decoded together: 2 x MAX_STEPS frames, 2 x MAX_STEPS x HOP samples.
    assert data["tacotron2_items_per_sec"] == pytest.approx(2 * MAX_STEPS / data["tacotron2_latency"])
    assert data["waveglow_items_per_sec"] == pytest.approx(2 * MAX_STEPS * HOP / data["waveglow_latency"])


def test_files_follow_input_order_with_batching(ckpts, tmp_path, monkeypatch):
    """Lines of different lengths, sorted for batching, still land in their own files."""
    original = inference.text_to_mel

    def mel_length_from_text(pipe, text, lengths):
        mel, mel_lengths, alignments, seconds = original(pipe, text, lengths)
        return mel, torch.minimum(lengths, mel_lengths), alignments, seconds  # frames = symbols

    monkeypatch.setattr(inference, "text_to_mel", mel_length_from_text)
    lines = ["Hi.", "Somewhat longer.", "Okay.", "The longer one."]
    lengths = [len(text_to_sequence(line)) for line in lines]
    assert len(set(lengths)) == 4 and max(lengths) <= MAX_STEPS
    rc, out = run(ckpts, tmp_path, lines=lines, extra=["--batch-size", "2"])
    assert rc == 0
    for i, n_symbols in enumerate(lengths):
        assert soundfile.info(os.path.join(out, f"audio_{i}.wav")).frames == n_symbols * HOP


def test_progress_counts_lines_not_chunks(ckpts, tmp_path, monkeypatch):
    """The progress bar advances once per written line, also when a line is decoded in chunks."""
    monkeypatch.setattr(inference, "max_chunk_chars", lambda *_: 12)
    bars = []

    class Bar:
        write = staticmethod(print)

        def __init__(self, total, **_):
            self.total, self.done, self.closed = total, 0, False
            bars.append(self)

        def update(self, n):
            self.done += n

        def close(self):
            self.closed = True

    monkeypatch.setattr(inference, "tqdm", Bar)
    lines = ["Hi.", "A line long enough, to be split in chunks.", "Okay."]
    assert len(text_split.line_to_chunks(lines[1], 12)) > 1
    rc, out = run(ckpts, tmp_path, lines=lines, extra=["--batch-size", "2"])
    assert rc == 0 and len(wav_files(out)) == 3
    assert [(bar.total, bar.done, bar.closed) for bar in bars] == [(3, 3, True)]


def test_blank_lines_keep_input_numbering(ckpts, tmp_path, capsys):
    rc, out = run(ckpts, tmp_path, lines=["", "First.", "   ", "Second."], extra=["--suffix", "_x"])
    assert rc == 0
    assert wav_files(out) == ["audio_1_x.wav", "audio_3_x.wav"]
    err = capsys.readouterr().err
    assert err.count("blank line") == 1 and "1, 3" in err


@pytest.mark.parametrize("vocoder", ["waveglow", "griffin-lim"])
def test_one_frame_utterances(ckpts, tmp_path, vocoder):
    """The random gate fires at the first frame: one frame per line, too short for a plain STFT."""
    text = write_text(tmp_path, LINES)
    out = str(tmp_path / "out")
    rc = inference.main(["-i", text, "-o", out, "--cpu", "--tacotron2", ckpts["Tacotron2-stop"],
                         "--waveglow", ckpts["WaveGlow", "ours"], "--vocoder", vocoder,
                         "--griffin-lim-iters", "1"])
    assert rc == 0
    assert [soundfile.info(os.path.join(out, f)).frames for f in wav_files(out)] == [HOP, HOP]


def test_same_seed_same_audio(ckpts, tmp_path, capsys):
    """Seeding follows the warm-up, so warming up does not change the audio; an old command line's
    --wn-channels is ignored when the checkpoint has a config."""
    runs = [["--seed", "7"], ["--seed", "7", "--include-warmup", "--wn-channels", "256"], ["--seed", "8"]]
    outs = [run(ckpts, tmp_path, out=f"out{i}", extra=extra)[1] for i, extra in enumerate(runs)]
    audio = [load_wav(os.path.join(out, "audio_1.wav")) for out in outs]
    assert torch.equal(audio[0], audio[1])
    assert not torch.equal(audio[0], audio[2])
    assert "--wn-channels ignored" in capsys.readouterr().out


def test_warm_up_decodes_the_first_timed_batch(ckpts, tmp_path, monkeypatch):
    """Warm-up runs the shapes the timed run starts with (a graph capture or compile of them is done
    before timing), whichever model makes the mels."""
    shapes = []
    original = inference.mel_to_audio

    def record(pipe, mel):
        shapes.append(tuple(mel.shape))
        return original(pipe, mel)

    monkeypatch.setattr(inference, "mel_to_audio", record)
    lines = ["Hi.", "A somewhat longer line.", "Okay."]
    assert run(ckpts, tmp_path, lines=lines, extra=["--batch-size", "2", "--include-warmup"])[0] == 0
    timed = shapes[inference.WARMUP_RUNS:]
    assert len(timed) == 2 and shapes[:inference.WARMUP_RUNS] == [timed[0]] * inference.WARMUP_RUNS

    shapes.clear()
    mel_files = []
    for n_frames in (9, 5, 7):
        mel_files.append(str(tmp_path / f"m{n_frames}.pt"))
        torch.save(torch.randn(80, n_frames) - 5, mel_files[-1])
    rc = inference.main(["--mel-files", *mel_files, "-o", str(tmp_path / "mels"), "--cpu", "--batch-size", "2",
                         "--waveglow", ckpts["WaveGlow", "ours"], "--include-warmup"])
    assert rc == 0
    assert shapes == [(2, 80, 9)] * (inference.WARMUP_RUNS + 1) + [(1, 80, 5)]


def test_cuda_graphs_on_the_cpu_warn_and_decode_the_same_audio(ckpts, tmp_path, capsys):
    outs = [run(ckpts, tmp_path, out=f"out{i}", extra=extra)[1]
            for i, extra in enumerate([["--seed", "7"], ["--seed", "7", "--cuda-graphs"]])]
    assert "--cuda-graphs needs a GPU" in capsys.readouterr().err
    assert torch.equal(load_wav(os.path.join(outs[0], "audio_1.wav")), load_wav(os.path.join(outs[1], "audio_1.wav")))


def test_gate_check_interval_reaches_the_decoder_and_keeps_the_audio(ckpts, tmp_path):
    # the same frames whether the host looks every 8 steps, every 5 (a shorter last chunk) or every step
    outs = [run(ckpts, tmp_path, out=f"out{i}", extra=["--seed", "7", "--gate-check-interval", interval])[1]
            for i, interval in enumerate(["8", "5", "1"])]
    assert len(wav_files(outs[0])) == len(LINES)
    for out in outs[1:]:
        assert wav_files(out) == wav_files(outs[0])
        for name in wav_files(out):
            # float rounding may flip the last bit of a 16-bit sample
            torch.testing.assert_close(load_wav(os.path.join(out, name)), load_wav(os.path.join(outs[0], name)),
                                       rtol=0, atol=1.5 / 32768)
    args = inference.build_parser().parse_args(["-i", "t.txt", "-o", "o", "--gate-check-interval", "3"])
    model = tacotron2.build_model(inference.default_config(tacotron2))
    inference.use_speed_options(args, torch.device("cpu"), model)
    assert model.decoder.gate_check_interval == 3


def test_cudnn_benchmark_mode_follows_the_flag_on_a_gpu_only(monkeypatch):
    # the switch is set for the run, not left as an earlier run (or torch's default) had it
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", torch.backends.cudnn.benchmark)
    parse = inference.build_parser().parse_args
    for flags, device, expected in (([], "cuda", False), (["--cudnn-benchmark"], "cuda", True),
                                    (["--cudnn-benchmark"], "cpu", False)):
        torch.backends.cudnn.benchmark = not expected
        inference.use_speed_options(parse(["-i", "text.txt", "-o", "out", *flags]), torch.device(device))
        assert torch.backends.cudnn.benchmark is expected, (flags, device)


def model_dtypes(ckpts, tmp_path, extra):
    args = inference.build_parser().parse_args(
        ["-i", write_text(tmp_path, LINES), "-o", str(tmp_path / "o"), "--cpu", "--tacotron2",
         ckpts["Tacotron2", "ours"], "--waveglow", ckpts["WaveGlow", "ours"]] + extra)
    pipe, _ = inference.setup(args, torch.device("cpu"))
    t2_dtypes = {p.dtype for p in pipe.tacotron2.parameters()}
    convinv = {p.dtype for p in pipe.vocoder.convinv.parameters()}
    rest = {p.dtype for name, p in pipe.vocoder.named_parameters() if not name.startswith("convinv.")}
    return t2_dtypes, rest, convinv, pipe


def test_half_precision_casts_the_weights_once_or_autocasts(ckpts, tmp_path):
    """--bf16 casts both models (the 1x1 convolutions stay float32); --bf16 --autocast keeps float32;
    --torch-compile switches on WaveGlow's compiled gates and Tacotron 2's compiled decoder step."""
    t2_dtypes, wg_dtypes, convinv, pipe = model_dtypes(ckpts, tmp_path, ["--bf16"])
    assert t2_dtypes == wg_dtypes == {torch.bfloat16} and convinv == {torch.float32}
    assert not isinstance(pipe.autocast(), torch.autocast)
    assert not any(wn.compile_gate for wn in pipe.vocoder.WN) and not pipe.tacotron2.decoder.torch_compile
    t2_dtypes, wg_dtypes, convinv, pipe = model_dtypes(ckpts, tmp_path, ["--bf16", "--autocast", "--torch-compile",
                                                                         "-d", "0"])
    assert t2_dtypes == wg_dtypes == convinv == {torch.float32}
    assert isinstance(pipe.autocast(), torch.autocast)
    assert all(wn.compile_gate for wn in pipe.vocoder.WN)  # compiled on first use (not here: no denoiser)
    assert pipe.tacotron2.decoder.torch_compile


def test_half_precision_audio_matches_float32(ckpts, tmp_path):
    """Same seed: cast-once bf16 and bf16 autocast give float32's audio up to bf16 rounding."""
    runs = {"fp32": [], "bf16": ["--bf16"], "bf16 autocast": ["--bf16", "--autocast"]}
    audio = {}
    for i, (name, extra) in enumerate(runs.items()):
        rc, out = run(ckpts, tmp_path, out=f"out{i}", extra=["--seed", "7", "-d", "0"] + extra)
        assert rc == 0
        audio[name] = load_wav(os.path.join(out, "audio_1.wav"))
    reference = audio.pop("fp32")
    for name, other in audio.items():
        assert other.shape == reference.shape
        error = float((other - reference).abs().max() / reference.abs().max())
        assert 0 < error < 0.1, (name, error)  # 0: the precision did not change anything


def test_wn_compile_block_reaches_every_block_and_only_when_asked(ckpts, tmp_path):
    # (the compiled block's numbers are tests/test_waveglow.py's; -d 0: no denoiser, nothing compiles here)
    assert all(wn.compile_block for wn in model_dtypes(ckpts, tmp_path, ["--wn-compile-block", "-d", "0"])[3].vocoder.WN)
    assert not any(wn.compile_block for wn in model_dtypes(ckpts, tmp_path, ["-d", "0"])[3].vocoder.WN)


def test_wn_time_major_synthesises_the_same_audio(ckpts, tmp_path):
    audio = []
    for i, extra in enumerate([[], ["--wn-time-major"]]):
        rc, out = run(ckpts, tmp_path, out=f"out{i}", extra=["--seed", "7"] + extra)
        assert rc == 0
        audio.append(load_wav(os.path.join(out, "audio_1.wav")))
    assert audio[1].shape == audio[0].shape
    assert all(wn.time_major for wn in model_dtypes(ckpts, tmp_path, ["--wn-time-major"])[3].vocoder.WN)
    # 16-bit files: the two summation orders may round a sample to the neighbouring step
    assert float((audio[1] - audio[0]).abs().max()) <= 2 / 32768


def test_autocast_needs_a_half_precision(ckpts, tmp_path, capsys):
    rc, _ = run(ckpts, tmp_path, extra=["--autocast"])
    assert rc == 2 and "--autocast needs --fp16 or --bf16" in capsys.readouterr().err


def test_griffin_lim_needs_no_waveglow(ckpts, tmp_path):
    rc, out = run(ckpts, tmp_path, wg=None,
                  extra=["--vocoder", "griffin-lim", "--griffin-lim-iters", "2", "--save-alignments"])
    assert rc == 0
    assert wav_files(out) == ["audio_0.wav", "audio_1.wav"]
    assert soundfile.info(os.path.join(out, "audio_0.wav")).frames == MAX_STEPS * HOP
    assert os.path.getsize(os.path.join(out, "alignment_1.png")) > 0


def test_mel_files_are_vocoded(ckpts, tmp_path):
    mel_pt, mel_npy = tmp_path / "a.pt", tmp_path / "b.npy"
    torch.save(torch.randn(80, 7) - 5, mel_pt)
    np.save(mel_npy, (torch.randn(1, 80, 12) - 5).numpy())
    out = str(tmp_path / "out")
    rc = inference.main(["--mel-files", str(mel_pt), str(mel_npy), "-o", out, "--cpu",
                         "--waveglow", ckpts["WaveGlow", "v1.0"], "--batch-size", "2"])
    assert rc == 0
    assert [soundfile.info(os.path.join(out, f)).frames for f in wav_files(out)] == [7 * HOP, 12 * HOP]


def test_long_line_is_split_and_joined(ckpts, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(inference, "max_chunk_chars", text_split.max_chunk_chars)
    steps = 100
    line = "One two, three four. Five six."
    max_chars = max_chunk_chars(steps)
    cleaned = lambda s: len(clean_text(s).strip())  # noqa: E731
    n_chunks = len(split_text(line, max_chars, cleaned))
    assert max_chars == 11 and n_chunks == 3  # "One two," "three four." "Five six."
    rc, out = run(ckpts, tmp_path, lines=[line], extra=["--max-decoder-steps", str(steps)])
    assert rc == 0
    # Every chunk runs to the limit; chunks are joined with 0.1 s pauses.
    pause = int(inference.PAUSE_SECONDS * 22050)
    assert soundfile.info(os.path.join(out, "audio_0.wav")).frames == n_chunks * steps * HOP + (n_chunks - 1) * pause
    err = capsys.readouterr()
    assert f"split into {n_chunks} chunks" in err.out
    assert f"in {n_chunks} of its {n_chunks} chunks" in err.err  # the untrained gate never stops


def bad_run(ckpts, tmp_path, capsys, argv):
    out = tmp_path / "out"
    out.mkdir()
    rc = inference.main(argv + ["-o", str(out), "--cpu"])
    err = capsys.readouterr().err
    assert rc == 2
    assert os.listdir(out) == []
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ")
    return last


def test_error_missing_checkpoint(ckpts, tmp_path, capsys):
    text = write_text(tmp_path, LINES)
    err = bad_run(ckpts, tmp_path, capsys, ["-i", text, "--tacotron2", str(tmp_path / "nope.pt"),
                                            "--waveglow", ckpts["WaveGlow", "ours"]])
    assert "nope.pt" in err and "not found" in err


def test_error_wrong_model(ckpts, tmp_path, capsys):
    text = write_text(tmp_path, LINES)
    err = bad_run(ckpts, tmp_path, capsys, ["-i", text, "--tacotron2", ckpts["WaveGlow", "ngc"],
                                            "--waveglow", ckpts["WaveGlow", "ours"]])
    assert "WaveGlow checkpoint, expected Tacotron2" in err


def test_error_not_a_checkpoint(ckpts, tmp_path, capsys):
    text = write_text(tmp_path, LINES)
    err = bad_run(ckpts, tmp_path, capsys, ["-i", text, "--tacotron2", ckpts["Tacotron2", "ours"],
                                            "--waveglow", ckpts["not-a-checkpoint"]])
    assert "notes.pt" in err and "not a PyTorch checkpoint" in err


@pytest.mark.parametrize("content", ["", "\n  \n\n"])
def test_error_empty_input(ckpts, tmp_path, capsys, content):
    text = tmp_path / "empty.txt"
    text.write_text(content)
    err = bad_run(ckpts, tmp_path, capsys, ["-i", str(text), "--tacotron2", ckpts["Tacotron2", "ours"],
                                            "--waveglow", ckpts["WaveGlow", "ours"]])
    assert "empty.txt" in err and "no text" in err


def test_error_line_empty_after_cleaning(ckpts, tmp_path, capsys):
    text = write_text(tmp_path, ["Fine.", "~~ ~"])
    err = bad_run(ckpts, tmp_path, capsys, ["-i", text, "--tacotron2", ckpts["Tacotron2", "ours"],
                                            "--waveglow", ckpts["WaveGlow", "ours"]])
    assert "text.txt:2" in err


def test_error_suffix_with_a_path_separator(ckpts, tmp_path, capsys):
    text = write_text(tmp_path, LINES)
    err = bad_run(ckpts, tmp_path, capsys, ["-i", text, "--tacotron2", ckpts["Tacotron2", "ours"],
                                            "--waveglow", ckpts["WaveGlow", "ours"], "--suffix", "/x"])
    assert "--suffix '/x'" in err and "path separators" in err


def test_error_alignments_of_saved_mels(ckpts, tmp_path, capsys):
    mel = tmp_path / "a.pt"
    torch.save(torch.randn(80, 7) - 5, mel)
    err = bad_run(ckpts, tmp_path, capsys, ["--mel-files", str(mel), "--waveglow", ckpts["WaveGlow", "ours"],
                                            "--save-alignments"])
    assert "--save-alignments" in err and "--mel-files" in err


def test_unknown_flag_is_an_error(ckpts, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        inference.main(["-i", "x.txt", "-o", str(tmp_path), "--no-such-flag"])
    assert exit_info.value.code == 2


def test_default_config_applies_wn_channels():
    config = inference.default_config(waveglow, wn_channels=256)
    assert config["WN_config"]["n_channels"] == 256
    assert inference.default_config(tacotron2)["max_decoder_steps"] == 2000


def test_the_recipes_flag_spellings_select_the_same_options():
    base = ["-i", "t.txt", "-o", "out", "--tacotron2", "t2.pt", "--waveglow", "wg.pt"]
    parse = inference.build_parser().parse_args
    assert parse(base + ["--cpu-run"]).cpu and not parse(base).cpu
    assert parse(base + ["--amp-run"]).fp16 and parse(base + ["--fp16-run"]).fp16


def test_sampling_defaults_are_the_recipes():
    """reference-dle b.4 (latest inference.py): -s/--sigma-infer 0.9, -d/--denoising-strength 0.01."""
    parse = inference.build_parser().parse_args
    args = parse(["-i", "t.txt", "-o", "out"])
    assert (args.sigma_infer, args.denoising_strength) == (0.9, 0.01)
    args = parse(["-i", "t.txt", "-o", "out", "-s", "0.6", "-d", "0"])
    assert (args.sigma_infer, args.denoising_strength) == (0.6, 0.0)


def vocoder_pipeline(sigma: float, strength: float) -> inference.Pipeline:
    model = tiny_waveglow().eval()
    model.remove_weightnorm()
    denoiser = inference.Denoiser(model) if strength > 0 else None
    return inference.Pipeline(torch.device("cpu"), None, None, model, denoiser, None, sigma, strength, 0,
                              torch.Generator())


def test_vocoder_uses_the_chosen_sigma_and_denoising_strength():
    """-s and -d reach WaveGlow and the denoiser: the audio is WaveGlow's sample at sigma, then
    max(|STFT| - strength * bias, 0) with the sample's own phase (reference-dle e.3)."""
    mel = torch.randn(1, 80, 6, generator=torch.Generator().manual_seed(0)) - 5
    plain = vocoder_pipeline(0.0, 0.0)
    raw = plain.vocoder.infer(mel, sigma=0.0)  # sigma 0: no noise, the same audio whatever the RNG
    audio, _, _ = inference.mel_to_audio(plain, mel)
    torch.testing.assert_close(audio, raw)
    for strength in (0.05, 0.5):
        pipe = vocoder_pipeline(0.0, strength)
        stft = pipe.denoiser.stft
        magnitude, phase = stft.transform(raw)
        expected = stft.inverse((magnitude - strength * pipe.denoiser.bias_spec).clamp(min=0), phase)[:, 0]
        audio, _, _ = inference.mel_to_audio(pipe, mel)
        assert audio.shape == raw.shape
        torch.testing.assert_close(audio, expected, atol=1e-6, rtol=1e-5)
    noisy = vocoder_pipeline(0.5, 0.0)
    torch.manual_seed(1)
    audio, _, _ = inference.mel_to_audio(noisy, mel)
    torch.manual_seed(1)
    torch.testing.assert_close(audio, noisy.vocoder.infer(mel, sigma=0.5))


def test_saved_mels_of_a_batch_are_padded_with_the_log_mel_of_silence():
    """The padding is what the front end makes of silence, log(1e-5), so it sounds like silence."""
    silence = float(inference.TacotronSTFT().mel_spectrogram(torch.zeros(2048)).max())
    assert silence == pytest.approx(float(np.log(1e-5)))
    long, short = torch.randn(80, 9) - 5, torch.randn(80, 5) - 5
    pipe = vocoder_pipeline(0.0, 0.0)
    mel, lengths, alignments, _ = inference.decode_batch(pipe, [inference.Item(0, mel=long),
                                                                inference.Item(1, mel=short)])
    assert lengths.tolist() == [9, 5] and alignments is None
    assert torch.equal(mel[0], long) and torch.equal(mel[1, :, :5], short)
    torch.testing.assert_close(mel[1, :, 5:], torch.full((80, 4), silence))


def test_compiling_without_a_compiler_is_a_one_line_error_before_any_wav(ckpts, tmp_path, capsys, monkeypatch):
    from torch._inductor import cpp_builder, exc

    def no_cpp_compiler():
        raise exc.InvalidCxxCompiler
    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", no_cpp_compiler)
    rc, out = run(ckpts, tmp_path, extra=["--torch-compile"])
    assert rc == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: --torch-compile on the CPU needs a C++ compiler (g++ or clang++, or CXX=path): none found")
    assert not os.path.exists(out) or not [name for name in os.listdir(out) if name.endswith(".wav")]
