"""WaveGlow model, loss and denoiser: reference state dicts, invertibility, training, denoising."""

import copy
import os
import shutil

import numpy as np
import pytest
import torch

from common.stft import STFT
import waveglow
from waveglow.data import MelAudioDataset
from waveglow.denoiser import Denoiser
from waveglow.loss import WaveGlowLoss
from waveglow.model import WN, Invertible1x1Conv, WaveGlow, remove_weightnorm

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE_DIR = os.path.join(REPO_ROOT, "tests", "reference")  # NVIDIA's parameter lists


def reference_list(name: str) -> list[tuple[str, list[int]]]:
    with open(os.path.join(REFERENCE_DIR, name)) as f:
        rows = [line.split("\t") for line in f.read().splitlines()[1:] if line]
    return [(key, [int(n) for n in shape.strip("[]").split(",")]) for key, shape in rows]


pytestmark = pytest.mark.usefixtures("one_thread")


def config(n_channels: int = 32, n_layers: int = 2) -> dict:
    return {"n_mel_channels": 80, "n_flows": 12, "n_group": 8, "n_early_every": 4,
            "n_early_size": 2,
            "WN_config": {"n_layers": n_layers, "kernel_size": 3, "n_channels": n_channels}}


def small_model(seed: int = 0, n_layers: int = 2) -> WaveGlow:
    """A small WaveGlow whose couplings are not the identity (the zero-initialised `end` is set)."""
    torch.manual_seed(seed)
    model = WaveGlow(**config(n_layers=n_layers))
    with torch.no_grad():
        for wn in model.WN:
            wn.end.weight.normal_(0.0, 0.05)
            wn.end.bias.normal_(0.0, 0.05)
    return model


@pytest.mark.parametrize("n_channels,name", [(512, "waveglow_state_dict.txt"),
                                             (256, "waveglow256_state_dict.txt")])
def test_state_dict_equals_reference(n_channels, name):
    reference = reference_list(name)
    with torch.device("meta"):
        model = WaveGlow(**config(n_channels=n_channels, n_layers=8))
    ours = [(key, list(value.shape)) for key, value in model.state_dict().items()]
    assert ours == reference
    assert len(ours) == 938
    model.remove_weightnorm()
    folded = model.state_dict()
    assert len(folded) == 638
    assert not any(key.endswith(("weight_g", "weight_v")) for key in folded)
    assert list(folded["WN.0.in_layers.0.weight"].shape) == [2 * n_channels, n_channels, 3]


def test_package_surface_builds_the_recipe_config():
    import argparse
    parser = argparse.ArgumentParser()
    waveglow.add_model_args(parser)
    args = parser.parse_args([])
    assert (args.segment_length, args.wn_channels, args.wn_layers) == (4000, 512, 8)
    assert args.sigma == 1.0
    assert waveglow.config_from_args(args) == config(n_channels=512, n_layers=8)
    args = parser.parse_args(["--wn-channels", "256", "--segment-length", "8000"])
    assert waveglow.config_from_args(args)["WN_config"]["n_channels"] == 256
    assert waveglow.NAME == "WaveGlow"
    assert isinstance(waveglow.build_model(config()), WaveGlow)
    assert waveglow.build_loss(args).sigma == 1.0


def test_forward_then_reverse_gives_back_the_audio():
    model = small_model().eval()
    torch.manual_seed(1)
    mel = torch.randn(2, 80, 10)
    audio = 0.5 * torch.randn(2, 256 * 10).clamp(-2, 2)
    with torch.no_grad():
        z, log_s_list, log_det_w_list = model((mel, audio))
        assert z.shape == (2, 8, 320) and z.dtype == torch.float32
        assert [log_s.size(1) for log_s in log_s_list] == [4] * 4 + [3] * 4 + [2] * 4
        # The couplings really act (otherwise the round trip would prove little).
        assert max(float(log_s.abs().max()) for log_s in log_s_list) > 1e-3
        assert torch.allclose(model.infer(mel, sigma=1.0, z=z), audio, atol=1e-4)
        assert torch.allclose(model.reverse(mel, z), audio, atol=1e-4)
    for conv, log_det_w in zip(model.convinv, log_det_w_list):
        expected = torch.slogdet(conv.conv.weight.detach().squeeze(-1).double())[1] * 2 * 320
        assert log_det_w.dtype == torch.float32
        assert float(log_det_w.detach()) == pytest.approx(float(expected), abs=1e-3)


def reference_forward(model: WaveGlow, mel: torch.Tensor, audio: torch.Tensor):
    """WaveGlow's forward written out from reference-dle c.2, index by index, so that a checkpoint of
    NVIDIA's computes what it computed there: conditioning channel mel_channel * n_group + position,
    the early outputs are the first channels, the shift b is WN's first half and log_s its second."""
    n_group, n_samples = model.n_group, audio.size(1)
    upsampled = model.upsample(mel)[:, :, :n_samples]
    cond = torch.stack([upsampled[:, c, j::n_group] for c in range(mel.size(1)) for j in range(n_group)], dim=1)
    x = torch.stack([audio[:, j::n_group] for j in range(n_group)], dim=1)
    early, log_s_list, log_det_list = [], [], []
    for k in range(model.n_flows):
        if k > 0 and k % model.n_early_every == 0:
            early.append(x[:, :model.n_early_size])
            x = x[:, model.n_early_size:]
        weight = model.convinv[k].conv.weight.squeeze(-1)
        x = torch.einsum("ij,bjt->bit", weight, x)
        log_det_list.append(x.size(0) * x.size(2) * torch.linalg.slogdet(weight.double())[1])
        half = x.size(1) // 2
        output = model.WN[k](x[:, :half], cond)
        shift, log_s = output[:, :half], output[:, half:]
        x = torch.cat([x[:, :half], torch.exp(log_s) * x[:, half:] + shift], dim=1)
        log_s_list.append(log_s)
    return torch.cat(early + [x], dim=1), log_s_list, log_det_list


def test_forward_equals_the_recipes_flow_written_out():
    model = small_model().eval()
    gen = torch.Generator().manual_seed(4)
    mel, audio = torch.randn(2, 80, 5, generator=gen), 0.3 * torch.randn(2, 256 * 5, generator=gen)
    with torch.no_grad():
        z, log_s_list, log_det_w_list = model((mel, audio))
        expected_z, expected_log_s, expected_log_det = reference_forward(model, mel, audio)
    torch.testing.assert_close(z, expected_z, rtol=1e-4, atol=1e-5)
    for log_s, expected in zip(log_s_list, expected_log_s, strict=True):
        torch.testing.assert_close(log_s, expected, rtol=1e-4, atol=1e-5)
    for log_det, expected in zip(log_det_w_list, expected_log_det, strict=True):
        assert float(log_det) == pytest.approx(float(expected), abs=1e-3)
    # the conditioning matters (a wrong channel order would otherwise go unseen)
    assert not torch.allclose(z, model((mel.roll(1, dims=1), audio))[0], atol=1e-3)


def test_fused_wn_equals_the_layer_by_layer_computation():
    """WN runs all cond_layers as one convolution with the in_layer biases folded in."""
    torch.manual_seed(0)
    wn = WN(3, 640, n_layers=3, n_channels=16, kernel_size=3)
    with torch.no_grad():
        wn.end.weight.normal_(0.0, 0.1)
        for conv in list(wn.in_layers) + list(wn.cond_layers) + list(wn.res_skip_layers):
            conv.bias.normal_(0.0, 0.1)
    audio, cond = torch.randn(2, 3, 50), torch.randn(2, 640, 50)
    x, skip = wn.start(audio), 0
    for i in range(3):
        a = wn.in_layers[i](x) + wn.cond_layers[i](cond)
        res_skip = wn.res_skip_layers[i](torch.tanh(a[:, :16]) * torch.sigmoid(a[:, 16:]))
        if i < 2:
            x = x + res_skip[:, :16]
            res_skip = res_skip[:, 16:]
        skip = skip + res_skip
    with torch.no_grad():
        assert torch.allclose(wn(audio, cond), wn.end(skip), atol=1e-5)
        # The weight-normed conv computes g * v / ||v|| (norm per output channel).
        conv = wn.in_layers[1]
        expected = conv.weight_g * conv.weight_v / conv.weight_v.norm(dim=(1, 2), keepdim=True)
        assert torch.allclose(conv.effective_weight(), expected, atol=1e-6)


def test_1x1_log_det_counts_every_column_of_the_batch():
    """log|det W| enters the likelihood once per (utterance, time step): B * T' * log|det W|
    (reference-dle d.1). Fresh weights are rotations (log|det| 0), so scale them to see it."""
    torch.manual_seed(0)
    conv = Invertible1x1Conv(8)
    with torch.no_grad():
        conv.conv.weight.mul_(1.3)
    z = torch.randn(3, 8, 5)
    out, log_det = conv(z)
    assert float(log_det.detach()) == pytest.approx(3 * 5 * 8 * np.log(1.3), rel=1e-5)
    torch.testing.assert_close(out, 1.3 * torch.einsum("ij,bjt->bit", conv.conv.weight[:, :, 0] / 1.3, z))


def test_initial_1x1_weights_are_rotations():
    for n_channels in (8, 6, 4):
        weight = Invertible1x1Conv(n_channels).conv.weight.squeeze(-1).double()
        assert torch.det(weight) > 0
        identity = torch.eye(n_channels, dtype=torch.double)
        assert torch.allclose(weight @ weight.T, identity, atol=1e-5)


def test_infer_length_and_noise_scale():
    model = WaveGlow(**config())  # identity couplings: audio = rotated noise
    mel = torch.zeros(1, 80, 20)
    torch.manual_seed(0)
    with torch.no_grad():
        audio = model.infer(mel, sigma=0.5)
        assert audio.shape == (1, 256 * 20)
        assert float(audio.std()) == pytest.approx(0.5, rel=0.1)
        assert float(model.infer(mel, sigma=0.0).abs().max()) == 0.0


def test_folding_weight_norm_keeps_outputs():
    model = small_model().eval()
    mel = torch.randn(1, 80, 12)
    with torch.no_grad():
        torch.manual_seed(5)
        before = model.infer(mel, sigma=0.8)
        remove_weightnorm(model)
        torch.manual_seed(5)
        after = model.infer(mel, sigma=0.8)
    assert len(model.state_dict()) == 2 + 12 * (3 * 2 * 2 + 2 + 2) + 12
    assert (before - after).abs().max() < 1e-5
    # NVIDIA's spelling works too and is idempotent.
    assert WaveGlow.remove_weightnorm(model) is model


def test_state_dicts_load_across_weight_norm_forms():
    normed = small_model(seed=3).eval()
    folded = copy.deepcopy(normed).remove_weightnorm()
    mel = torch.randn(1, 80, 4)
    z = torch.randn(1, 8, 128)
    with torch.no_grad():
        expected = normed.infer(mel, z=z)
        normed_target = WaveGlow(**config()).eval()
        folded_target = WaveGlow(**config()).remove_weightnorm().eval()
        for target, source in ((normed_target, folded), (folded_target, normed)):
            target.load_state_dict(source.state_dict())  # strict
            assert torch.allclose(target.infer(mel, z=z), expected, atol=1e-5)
        # Same-form loading (the usual case) keeps the keys as they are.
        folded_target.load_state_dict(folded.state_dict())
        assert torch.allclose(folded_target.infer(mel, z=z), expected, atol=1e-5)


@pytest.mark.parametrize("optimizer_kwargs", [{"foreach": False}, {"foreach": True}])
def test_cached_inverse_follows_in_place_updates(optimizer_kwargs):
    model = small_model().eval()
    conv = model.convinv[0]
    first = conv.inverse_weight()
    assert conv.inverse_weight() is first  # cached in eval mode
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, **optimizer_kwargs)
    loss, _ = WaveGlowLoss()(model((torch.randn(1, 80, 4), 0.1 * torch.randn(1, 1024))))
    loss.backward()
    optimizer.step()  # still in eval mode: the version counter must reveal the change
    fresh = torch.linalg.inv(conv.conv.weight.detach().squeeze(-1))
    assert not torch.allclose(fresh, first, atol=1e-4)
    assert torch.allclose(conv.inverse_weight(), fresh, atol=1e-5)
    # Loading other weights also invalidates the cache.
    other = small_model(seed=7)
    model.load_state_dict(other.state_dict())
    assert torch.allclose(conv.inverse_weight(),
                          torch.linalg.inv(other.convinv[0].conv.weight.detach().squeeze(-1)),
                          atol=1e-5)


def test_cached_inverse_after_fused_optimizer_steps():
    """Fused Adam does not bump version counters: training mode must not serve a cached inverse."""
    model = small_model().eval()
    conv = model.convinv[0]
    first = conv.inverse_weight()
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, fused=True)
    loss, _ = WaveGlowLoss()(model((torch.randn(1, 80, 4), 0.1 * torch.randn(1, 1024))))
    loss.backward()
    optimizer.step()
    fresh = torch.linalg.inv(conv.conv.weight.detach().squeeze(-1))
    assert not torch.allclose(fresh, first, atol=1e-4)
    assert torch.allclose(conv.inverse_weight(), fresh, atol=1e-5)
    model.eval()
    assert torch.allclose(conv.inverse_weight(), fresh, atol=1e-5)


def test_loss_matches_the_formula():
    torch.manual_seed(0)
    z = torch.randn(2, 8, 50)
    log_s_list = [torch.randn(2, 4, 50) * 0.1, torch.randn(2, 2, 50) * 0.1]
    log_det_w_list = [torch.tensor(3.0), torch.tensor(-1.5)]
    sigma = 0.7
    loss, terms = WaveGlowLoss(sigma)((z, log_s_list, log_det_w_list))
    z64 = z.double()
    expected = ((z64 ** 2).sum() / (2 * sigma ** 2)
                - sum(log_s.double().sum() for log_s in log_s_list) - 1.5) / z.numel()
    assert loss.dtype == torch.float32
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    assert float(terms["z_term"] - terms["log_s"] - terms["log_det_W"]) == pytest.approx(
        float(loss), rel=1e-5)
    # the recipe's default sigma is 1.0 (reference-dle d.1)
    default_loss, _ = WaveGlowLoss()((z, log_s_list, log_det_w_list))
    expected = ((z64 ** 2).sum() / 2 - sum(log_s.double().sum() for log_s in log_s_list) - 1.5) / z.numel()
    assert float(default_loss) == pytest.approx(float(expected), rel=1e-5)


def test_autocast_keeps_flow_terms_in_float32():
    model = small_model()
    mel = torch.randn(1, 80, 4)
    audio = 0.1 * torch.randn(1, 1024)
    reference, _ = WaveGlowLoss()(model((mel, audio)))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z, log_s_list, log_det_w_list = model((mel, audio))
        loss, _ = WaveGlowLoss()((z, log_s_list, log_det_w_list))
    assert z.dtype == torch.float32 and loss.dtype == torch.float32
    assert all(d.dtype == torch.float32 for d in log_det_w_list)
    assert all(log_s.dtype == torch.float32 for log_s in log_s_list)
    assert float(loss.detach()) == pytest.approx(float(reference.detach()), abs=0.05)
    loss.backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_weights_cast_once_synthesise_like_float32(dtype):
    """cast_for_inference (inference --fp16/--bf16): WN and upsampler in `dtype`, the 1x1 convolutions
    and the audio path float32; the same audio as float32 up to rounding, from a float32 mel."""
    model = small_model().remove_weightnorm().eval()
    mel, z = torch.randn(1, 80, 6) - 5, 0.6 * torch.randn(1, 8, 6 * 32)
    with torch.no_grad():
        reference = model.infer(mel, z=z)
        audio = model.cast_for_inference(dtype).infer(mel, z=z)
    assert model.WN[0].in_layers[0].weight.dtype == model.upsample.weight.dtype == dtype
    assert {p.dtype for p in model.convinv.parameters()} == {torch.float32}
    assert audio.dtype == torch.float32
    error = float((audio - reference).abs().max() / reference.abs().max())
    assert 0 < error < (0.01 if dtype == torch.float16 else 0.05)


def assert_trains_like(eager: WaveGlow, others, n_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each of ``others`` has ``eager``'s loss and gradients on one random batch -> (mel, audio)."""
    mel, audio = torch.randn(1, 80, n_frames), 0.1 * torch.randn(1, 256 * n_frames)
    losses = []
    for model in (eager, *others):
        model.zero_grad()
        loss, _ = WaveGlowLoss()(model((mel, audio)))
        loss.backward()
        losses.append(loss)
    for other, loss in zip(others, losses[1:]):
        torch.testing.assert_close(loss, losses[0], rtol=1e-5, atol=1e-5)
        for p_eager, p_other in zip(eager.parameters(), other.parameters()):
            torch.testing.assert_close(p_other.grad, p_eager.grad, rtol=1e-4, atol=1e-5)
    return mel, audio


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile on the CPU needs a C++ compiler")
def test_compiled_gates_give_the_eager_outputs_and_gradients():
    """inference --torch-compile: the fused gate (torch.compile) is the eager gate, forward and backward,
    at two lengths (dynamic shapes) and in synthesis; switching it off goes back to eager."""
    eager, compiled = small_model(), small_model().compile_gates()
    compiled_time_major = small_model().use_time_major().compile_gates()  # the gate over the last dim
    for n_frames in (4, 7):
        mel, audio = assert_trains_like(eager, (compiled, compiled_time_major), n_frames)
    z = torch.randn(1, 8, 4 * 32)
    with torch.no_grad():
        torch.testing.assert_close(compiled.eval().infer(mel[:, :, :4], z=z), eager.eval().infer(mel[:, :, :4], z=z),
                                   rtol=1e-4, atol=1e-5)
    assert not any(wn.compile_gate for wn in compiled.compile_gates(False).WN)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile on the CPU needs a C++ compiler")
def test_compiled_blocks_give_the_eager_outputs_and_gradients_without_recompiling():
    """--wn-compile-block: each WN block compiled whole (weight norms, gates, residual and skip sums)
    is the eager block, forward and backward, channels-first and time-major. Synthesis (folded
    weights) too, where a second length reuses the compiled graphs (training's backward specialises
    on the length: its segments have one)."""
    eager, compiled = small_model(), small_model().compile_blocks()
    compiled_time_major = small_model().use_time_major().compile_blocks()
    counters = torch._dynamo.utils.counters
    graphs_at_start = counters["stats"]["unique_graphs"]
    for n_frames in (4, 7):
        mel, audio = assert_trains_like(eager, (compiled, compiled_time_major), n_frames)
    assert counters["stats"]["unique_graphs"] > graphs_at_start  # the blocks did go through torch.compile
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as train.py --amp runs them (bf16: the CPU's)
        mixed = [WaveGlowLoss()(model((mel, audio)))[0] for model in (eager, compiled)]
    torch.testing.assert_close(mixed[1], mixed[0], rtol=0.02, atol=0.02)
    mixed[1].backward()
    assert all(torch.isfinite(p.grad).all() for p in compiled.parameters())
    for model in (eager, compiled, compiled_time_major):
        model.eval().remove_weightnorm()
    for n_frames in (4, 7):
        mel, z = torch.randn(1, 80, n_frames), torch.randn(1, 8, n_frames * 32)
        graphs_before = counters["stats"]["unique_graphs"]
        with torch.no_grad():
            expected = eager.infer(mel, z=z)
            for model in (compiled, compiled_time_major):
                torch.testing.assert_close(model.infer(mel, z=z), expected, rtol=1e-4, atol=1e-5)
        if n_frames == 7:
            assert counters["stats"]["unique_graphs"] == graphs_before
    assert not any(wn.compile_block for wn in compiled.compile_blocks(False).WN)


def test_time_major_wn_computes_the_channels_first_wn():
    """--wn-time-major: the GEMM formulation is the same function of the same parameters, forward
    and backward, also where a dilation reaches past both ends of a short input."""
    torch.manual_seed(0)
    channels_first = WN(n_in_channels=4, n_cond_channels=16, n_layers=5, n_channels=8, kernel_size=3)
    with torch.no_grad():
        channels_first.end.weight.normal_(0.0, 0.1)
    time_major = copy.deepcopy(channels_first)
    time_major.time_major = True
    for n_steps in (5, 40):  # dilations 1..16: 16 reaches past both ends of 5 steps
        audio, cond = torch.randn(2, 4, n_steps), torch.randn(2, 16, n_steps)
        outputs = []
        for wn in (channels_first, time_major):
            wn.zero_grad()
            output = wn(audio, cond)
            (output * torch.linspace(-1, 1, n_steps)).sum().backward()
            outputs.append(output)
        assert outputs[1].shape == outputs[0].shape == (2, 8, n_steps)
        torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-5, atol=1e-6)
        for (name, p_first), p_major in zip(channels_first.named_parameters(), time_major.parameters()):
            torch.testing.assert_close(p_major.grad, p_first.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_time_major_waveglow_trains_and_synthesises_like_channels_first():
    eager, time_major = small_model(), small_model().use_time_major()
    mel, audio = torch.randn(2, 80, 6), 0.1 * torch.randn(2, 256 * 6)
    losses = [WaveGlowLoss()(model((mel, audio)))[0] for model in (eager, time_major)]
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-5)
    z = torch.randn(2, 8, 6 * 32)
    with torch.no_grad():
        reference = eager.eval().infer(mel, z=z)
        torch.testing.assert_close(time_major.eval().infer(mel, z=z), reference, rtol=1e-4, atol=1e-5)
        # folded weights (inference.py) and weights cast once to bf16 take the same path
        folded = copy.deepcopy(time_major).remove_weightnorm()
        torch.testing.assert_close(folded.infer(mel, z=z), reference, rtol=1e-4, atol=1e-5)
        bf16 = folded.cast_for_inference(torch.bfloat16).infer(mel.bfloat16(), z=z)
        assert bf16.dtype == torch.float32
        assert (bf16 - reference).abs().max() / reference.abs().max() < 0.05
    assert not any(wn.time_major for wn in time_major.use_time_major(False).WN)


@pytest.fixture(scope="module")
def speech_batch():
    """Two 1024-sample crops of LJSpeech-tiny clips and their mels."""
    filelist = os.path.join(REPO_ROOT, "filelists", "tiny_audio_text_train_filelist.txt")
    dataset = MelAudioDataset(filelist, os.path.join(REPO_ROOT, "data"), segment_length=1024)
    torch.manual_seed(0)
    return waveglow.collate_fn([dataset[i] for i in range(2)])


def test_training_lowers_the_loss(speech_batch):
    torch.manual_seed(0)
    model = WaveGlow(**config(n_channels=16, n_layers=2))
    loss_fn = WaveGlowLoss(sigma=1.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    inputs, targets, counts = waveglow.batch_to_device(speech_batch, "cpu")
    assert counts == {"items": 2 * 1024}
    losses = []
    for _ in range(40):
        loss, _ = loss_fn(model(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert np.isfinite(losses).all()
    assert losses[-1] < losses[0] - 0.5
    assert losses[-1] < 0


def test_denoiser_bias_is_the_first_frame_of_the_vocoders_silence():
    """reference-dle e.3: the bias is |STFT| (1024/256/1024) of the first frame of
    waveglow.infer(zeros [1, 80, 88], sigma=0.0); the same whatever the random state."""
    model = small_model(seed=2, n_layers=2).eval()
    torch.manual_seed(1)
    denoiser = Denoiser(model)
    torch.manual_seed(2)
    again = Denoiser(model)
    with torch.no_grad():
        silence = model.infer(torch.zeros(1, 80, 88), sigma=0.0)
    magnitude, _ = STFT(1024, 256, 1024).transform(silence)
    assert denoiser.bias_spec.shape == (1, 513, 1)
    torch.testing.assert_close(denoiser.bias_spec, magnitude[:, :, :1])
    torch.testing.assert_close(again.bias_spec, denoiser.bias_spec)
    assert not torch.allclose(magnitude[:, :, :1], magnitude[:, :, 1:2])  # the frame chosen matters


def test_denoiser_removes_the_bias_tone():
    model = small_model(seed=2, n_layers=2).eval()
    denoiser = Denoiser(model)
    assert "bias_spec" not in denoiser.state_dict()
    bias = denoiser.bias_spec[0, :, 0]
    assert bias.shape == (513,)
    peaks = torch.topk(bias, 5).indices
    torch.manual_seed(0)
    with torch.no_grad():
        audio = model.infer(torch.zeros(1, 80, 40), sigma=0.1)
        denoised = denoiser(audio, strength=1.0)
    assert denoised.shape == (1, 1, 40 * 256)
    stft = denoiser.stft
    energy_before = stft.transform(audio)[0][0, peaks, 2:-2].pow(2).sum()
    energy_after = stft.transform(denoised[:, 0])[0][0, peaks, 2:-2].pow(2).sum()
    assert energy_after < 0.2 * energy_before
    # With strength 0 the STFT round trip leaves the audio (away from the edges) as it was.
    untouched = denoiser(audio, strength=0.0)[0, 0]
    assert torch.allclose(untouched[1024:-1024], audio[0, 1024:-1024], atol=1e-4)
