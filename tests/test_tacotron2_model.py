"""Tacotron 2 model, loss and flags: reference state dict, step-by-step parity, masking, batched
inference with per-utterance stopping, mixed precision, checkpoint prefixes, and a real overfit."""

import argparse
import inspect
import math
import shutil
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import tacotron2
from tacotron2.arguments import CONFIG_KEYS
from tacotron2.data import TextMelCollate, batch_to_device
from tacotron2.loss import Tacotron2Loss
from tacotron2.model import Tacotron2

REFERENCE_STATE_DICT = Path(__file__).parent / "reference" / "tacotron2_state_dict.txt"

pytestmark = pytest.mark.usefixtures("one_thread")


SMALL = dict(symbols_embedding_dim=32, encoder_embedding_dim=32, attention_rnn_dim=48, attention_dim=16,
             attention_location_n_filters=4, attention_location_kernel_size=7, decoder_rnn_dim=48,
             prenet_dim=24, postnet_embedding_dim=32, n_mel_channels=20, max_decoder_steps=40)


def small_model(**overrides) -> Tacotron2:
    torch.manual_seed(0)
    return Tacotron2(**{**SMALL, **overrides})


def make_batch(text_lengths, mel_lengths, n_mel=20, seed=1):
    """Collated batch of random items (sorted by the collate, as in training)."""
    gen = torch.Generator().manual_seed(seed)
    items = [(torch.randint(1, 148, (n,), generator=gen), torch.randn(n_mel, t, generator=gen))
             for n, t in zip(text_lengths, mel_lengths)]
    return TextMelCollate()(items)


def without_prenet_dropout(model: Tacotron2) -> Tacotron2:
    """The prenet's dropout is on even in eval mode; tests comparing two runs switch it off."""
    model.decoder.prenet.dropout = 0.0
    return model


def scripted_gate(model: Tacotron2, stop_steps: list[int]) -> None:
    """Make row b's gate fire from decoder step stop_steps[b] (1-based) on, in the gate layer (the
    step-by-step reference) and in the merged mel + gate projection of free running."""
    stop = torch.tensor(stop_steps)
    calls = {"n": 0}

    def scripted(dtype):
        calls["n"] += 1
        return torch.where(calls["n"] >= stop, 10.0, -10.0).unsqueeze(1).to(dtype)

    model.decoder.gate_layer.register_forward_hook(lambda module, inputs, output: scripted(output.dtype))
    step_and_project = model.decoder.step_and_project

    def scripted_step_and_project(prenet_output, state, buffers, output, alignment):
        state, prenet_hidden = step_and_project(prenet_output, state, buffers, output, alignment)
        output[:, -1:] = scripted(output.dtype)
        return state, prenet_hidden

    model.decoder.step_and_project = scripted_step_and_project


# --- structure -------------------------------------------------------------------------------

def test_state_dict_matches_nvidia_reference():
    expected = [line.rstrip("\n").split("\t") for line in REFERENCE_STATE_DICT.read_text().splitlines(True)
                if not line.startswith("#")]
    model = Tacotron2()
    got = [[name, str(list(t.shape))] for name, t in model.state_dict().items()]
    assert len(got) == 84
    assert got == expected
    assert sum(p.numel() for p in model.parameters()) == 28_193_153


def test_initialisation_follows_recipe():
    model = small_model()
    bn_weights = torch.cat([m.weight for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)])
    assert 0.0 <= bn_weights.min() and bn_weights.max() < 1.0 and bn_weights.std() > 0.1
    plain = small_model(uniform_initialize_bn_weight=False)
    assert all(torch.equal(m.weight, torch.ones_like(m.weight))
               for m in plain.modules() if isinstance(m, torch.nn.BatchNorm1d))
    bound = (3 ** 0.5) * (2 / (148 + 32)) ** 0.5
    assert model.embedding.weight.abs().max() <= bound
    assert model.embedding.weight.abs().max() > 0.9 * bound


def test_prenet_dropout_stays_on_in_eval():
    model = small_model().eval()
    x = torch.randn(4, 20)
    assert not torch.equal(model.decoder.prenet(x), model.decoder.prenet(x))


def kept_fraction_and_scales(dropped: torch.Tensor, before: torch.Tensor) -> tuple[float, set]:
    """Where ``before`` is not 0: the fraction that dropout kept and the scales it kept them with."""
    live = before != 0
    ratio = (dropped[live] / before[live]).detach()
    kept = ratio != 0
    return float(kept.float().mean()), {round(float(r), 4) for r in ratio[kept].unique()}


def test_prenet_drops_half_its_units_in_train_and_eval():
    from tacotron2.model import Prenet
    torch.manual_seed(0)
    prenet = Prenet(16, [4000])  # one layer: its output is dropout(relu(linear(x)))
    x = torch.rand(2, 16)
    before = F.relu(prenet.layers[0](x))
    for mode in (prenet.train(), prenet.eval()):
        kept, scales = kept_fraction_and_scales(mode(x), before)
        assert abs(kept - 0.5) < 0.05 and scales == {2.0}  # p = 0.5, survivors scaled by 1 / (1 - p)


def output_and_next_input(model: Tacotron2, modules, i: int, inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """What ``modules[i]`` gave and what ``modules[i + 1]`` got in one forward."""
    seen = {}
    hooks = [modules[i].register_forward_hook(lambda m, args, out: seen.setdefault("out", out)),
             modules[i + 1].register_forward_pre_hook(lambda m, args: seen.setdefault("in", args[0]))]
    with torch.no_grad():
        model(inputs)
    for hook in hooks:
        hook.remove()
    return seen["out"], seen["in"]


def test_encoder_and_postnet_dropout_is_half_in_training_and_off_in_eval():
    """The recipe's F.dropout(x, 0.5, self.training) after every encoder and postnet convolution
    (after the ReLU / tanh, and after the postnet's last, linear one too)."""
    model = small_model()
    inputs, _, _ = batch_to_device(make_batch([60, 55, 50, 45], [70, 60, 50, 40]), "cpu")
    for training in (True, False):
        model.train(training)
        torch.manual_seed(1)
        for modules, activation in ((model.encoder.convolutions, F.relu), (model.postnet.convolutions, torch.tanh)):
            out, next_in = output_and_next_input(model, modules, 0, inputs)
            kept, scales = kept_fraction_and_scales(next_in, activation(out))
            assert (abs(kept - 0.5) < 0.05 and scales == {2.0}) if training else (kept == 1 and scales == {1.0})
        seen = {}
        hooks = [module.register_forward_hook(lambda m, args, out, name=name: seen.setdefault(name, out))
                 for name, module in (("last", model.postnet.convolutions[-1]), ("postnet", model.postnet))]
        with torch.no_grad():
            model(inputs)
        for hook in hooks:
            hook.remove()
        kept, scales = kept_fraction_and_scales(seen["postnet"], seen["last"])
        assert (abs(kept - 0.5) < 0.05 and scales == {2.0}) if training else (kept == 1 and scales == {1.0})


def test_postnet_is_tanh_convolutions_then_a_linear_one_added_to_the_decoder_output():
    """reference-dle c.1: conv + batch norm + tanh for all but the last layer, which stays linear."""
    model = small_model().eval()
    inputs, _, _ = batch_to_device(make_batch([6, 4], [9, 7]), "cpu")
    x = torch.randn(2, 20, 9, generator=torch.Generator().manual_seed(3))
    expected = x
    with torch.no_grad():
        for i, (conv, norm) in enumerate(model.postnet.convolutions):
            expected = norm(conv(expected))
            if i < len(model.postnet.convolutions) - 1:
                expected = torch.tanh(expected)
        torch.testing.assert_close(model.postnet(x), expected)
        assert (torch.tanh(expected) - expected).abs().max() > 1e-3  # a tanh on the last layer would show
        mel, mel_postnet, _, _ = model(inputs)
        torch.testing.assert_close(mel_postnet, mel + model.postnet(mel))


# --- teacher-forced forward --------------------------------------------------------------------

def test_forward_shapes_and_loss():
    model = small_model()
    inputs, targets, counts = batch_to_device(make_batch([5, 9, 3], [7, 12, 4]), "cpu")
    mel, mel_postnet, gate, alignments = model(inputs)
    assert mel.shape == mel_postnet.shape == (3, 20, 12)
    assert gate.shape == (3, 12)
    assert alignments.shape == (3, 12, 9)
    # attention weights are a distribution over each utterance's own tokens only
    torch.testing.assert_close(alignments.sum(-1), torch.ones(3, 12))
    assert alignments[1, :, 5:].abs().max() == 0  # sorted order: row 1 has 5 tokens
    loss, terms = Tacotron2Loss()((mel, mel_postnet, gate, alignments), targets)
    expected = (F.mse_loss(mel, targets[0]) + F.mse_loss(mel_postnet, targets[0])
                + F.binary_cross_entropy_with_logits(gate, targets[1]))
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(terms["mel_loss"] + terms["gate_loss"], loss.detach())
    assert not terms["mel_loss"].requires_grad
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def reference_teacher_forced(model: Tacotron2, text, lengths, mels):
    """Step-by-step decoder written straight from reference-dle c.1 (unmerged location layer,
    projections inside the loop), as an independent check of the fast path."""
    dec, att = model.decoder, model.decoder.attention_layer
    memory = model.encoder(model.embedding(text).transpose(1, 2), lengths)
    batch, n_tokens, _ = memory.shape
    padded = torch.arange(n_tokens)[None] >= lengths[:, None]
    att_h = att_c = torch.zeros(batch, dec.attention_rnn.hidden_size)
    dec_h = dec_c = torch.zeros(batch, dec.decoder_rnn.hidden_size)
    weights = weights_cum = torch.zeros(batch, n_tokens)
    context = torch.zeros(batch, memory.size(2))
    processed_memory = att.memory_layer(memory)
    frame = torch.zeros(batch, mels.size(1))
    outs, gates, aligns = [], [], []
    for t in range(mels.size(2)):
        att_h, att_c = dec.attention_rnn(torch.cat((dec.prenet(frame), context), -1), (att_h, att_c))
        loc = att.location_layer
        location = loc.location_dense(loc.location_conv(torch.stack((weights, weights_cum), 1)).transpose(1, 2))
        energies = att.v(torch.tanh(att.query_layer(att_h)[:, None] + location + processed_memory)).squeeze(-1)
        weights = torch.softmax(energies.masked_fill(padded, float("-inf")), dim=1)
        context = torch.bmm(weights[:, None], memory)[:, 0]
        weights_cum = weights_cum + weights
        dec_h, dec_c = dec.decoder_rnn(torch.cat((att_h, context), -1), (dec_h, dec_c))
        hidden_context = torch.cat((dec_h, context), -1)
        outs.append(dec.linear_projection(hidden_context))
        gates.append(dec.gate_layer(hidden_context)[:, 0])
        aligns.append(weights)
        frame = mels[:, :, t]
    mel = torch.stack(outs, 2)
    return mel, mel + model.postnet(mel), torch.stack(gates, 1), torch.stack(aligns, 1)


def test_forward_matches_step_by_step_reference():
    model = without_prenet_dropout(small_model()).eval()
    inputs, _, _ = batch_to_device(make_batch([6, 11, 4], [9, 14, 5]), "cpu")
    with torch.no_grad():
        fast = model(inputs)
        slow = reference_teacher_forced(model, inputs[0], inputs[1], inputs[2])
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_batch_order_does_not_change_an_utterance():
    # (padding width does: like NVIDIA's, the encoder convolutions see the pad embeddings)
    model = without_prenet_dropout(small_model()).eval()
    text, lengths, mels, max_len, out_lengths = batch_to_device(make_batch([6, 11, 4], [9, 14, 5]), "cpu")[0]
    order = torch.tensor([2, 0, 1])  # unsorted lengths: the packed encoder must cope
    with torch.no_grad():
        in_order = model((text, lengths, mels, max_len, out_lengths))
        shuffled = model((text[order], lengths[order], mels[order], max_len, out_lengths[order]))
    for a, b in zip(in_order, shuffled):
        torch.testing.assert_close(a[order], b, rtol=1e-4, atol=1e-5)


def test_mask_padding_masks_padded_frames_only():
    inputs, _, _ = batch_to_device(make_batch([5, 9, 3], [7, 12, 4]), "cpu")
    out_lengths = inputs[4]
    masked = small_model(mask_padding=True)(inputs)
    unmasked = small_model(mask_padding=False)(inputs)
    padded = torch.arange(12)[None] >= out_lengths[:, None]
    for tensor in masked[:2]:
        assert tensor.transpose(1, 2)[padded].abs().max() == 0
    assert torch.all(masked[2][padded] == 1e3)
    assert torch.all(unmasked[2][padded] != 1e3)
    real = ~padded
    torch.testing.assert_close(masked[2][real], unmasked[2][real])  # same seed: same weights


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_keeps_attention_in_float32(dtype):
    model = small_model()
    inputs, targets, _ = batch_to_device(make_batch([5, 9, 3], [7, 12, 4]), "cpu")
    with torch.autocast("cpu", dtype=dtype):
        outputs = model(inputs)
        loss, _ = Tacotron2Loss()(outputs, targets)
        mel, mel_lengths, _ = model.eval().infer(inputs[0], inputs[1])
    assert outputs[0].dtype == dtype
    assert torch.isfinite(mel).all() and mel_lengths.min() >= 1
    assert outputs[3].dtype == torch.float32
    torch.testing.assert_close(outputs[3].sum(-1), torch.ones(3, 12))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


# --- inference -------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_weights_cast_once_decode_like_float32_and_like_autocast(dtype):
    """cast_for_inference (inference --fp16/--bf16): the same frames as float32 up to rounding and as
    autocast in the same dtype; attention still float32 and a distribution over the real tokens."""
    model = without_prenet_dropout(small_model(max_decoder_steps=24, decoder_no_early_stopping=True)).eval()
    text, lengths = torch.randint(1, 148, (2, 9), generator=torch.Generator().manual_seed(2)), torch.tensor([9, 6])
    reference, _, _ = model.infer(text, lengths)
    with torch.autocast("cpu", dtype=dtype):
        autocast_mel, _, _ = model.infer(text, lengths)
    mel, _, alignments = model.cast_for_inference(dtype).infer(text, lengths)
    assert {p.dtype for p in model.parameters()} == {dtype} and mel.dtype == dtype
    assert alignments.dtype == torch.float32 and mel.shape == (2, 20, 24)
    torch.testing.assert_close(alignments.sum(-1), torch.ones(2, 24))
    assert float(alignments[1, :, 6:].abs().max()) == 0.0
    scale = float(reference.abs().max())
    tolerance = 0.02 if dtype == torch.float16 else 0.1
    assert 0 < float((mel.float() - reference).abs().max()) < tolerance * scale
    assert float((mel.float() - autocast_mel.float()).abs().max()) < tolerance * scale


def test_infer_stops_each_utterance_on_its_own_gate_in_caller_order():
    text_lengths, stops = [4, 11, 7], [5, 2, 11]  # unsorted on purpose
    gen = torch.Generator().manual_seed(3)
    text = torch.zeros(3, 11, dtype=torch.long)
    for row, n in enumerate(text_lengths):
        text[row, :n] = torch.randint(1, 148, (n,), generator=gen)
    model = without_prenet_dropout(small_model()).eval()
    scripted_gate(model, stops)
    mel, mel_lengths, alignments = model.infer(text, torch.tensor(text_lengths))
    assert mel_lengths.tolist() == stops  # the stop frame itself is counted
    assert mel_lengths.dtype == torch.long
    assert mel.shape == (3, 20, 11) and alignments.shape == (3, 11, 11)
    for row, n in enumerate(text_lengths):  # each row attends to its own tokens only
        assert alignments[row, :, n:].abs().sum() == 0 and alignments[row, :, n - 1].max() > 0

    # the same utterances in another order come back in that order
    order = [1, 2, 0]
    other = without_prenet_dropout(small_model()).eval()
    scripted_gate(other, [stops[i] for i in order])
    mel_o, mel_lengths_o, alignments_o = other.infer(text[order], torch.tensor(text_lengths)[order])
    assert mel_lengths_o.tolist() == [stops[i] for i in order]
    # row order changes BLAS blocking, so allow float rounding accumulated over the decoder steps
    torch.testing.assert_close(mel_o, mel[order], rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(alignments_o, alignments[order], rtol=1e-3, atol=1e-4)


def step_by_step_infer(model: Tacotron2, text, text_lengths):
    """Free running as the recipe writes it: one step at a time, the gate read after every step."""
    decoder = model.decoder
    memory = model._encode(text, text_lengths)
    pad_mask, processed_memory, location_weight = decoder._prepare(memory, text_lengths)
    state, frame = decoder.initial_state(memory), memory.new_zeros(memory.size(0), decoder.n_mel_channels)
    not_finished = torch.ones(memory.size(0), dtype=torch.bool)
    lengths = torch.zeros(memory.size(0), dtype=torch.long)
    frames, weights = [], []
    for _ in range(decoder.max_decoder_steps):
        state = decoder.step(decoder.prenet(frame), state, memory, processed_memory, location_weight, pad_mask)
        projection_input = torch.cat((state.decoder_hidden, state.attention_context), dim=-1)
        frame = decoder.linear_projection(projection_input)
        frames.append(frame)
        weights.append(state.attention_weights)
        lengths += not_finished
        not_finished &= torch.sigmoid(decoder.gate_layer(projection_input).squeeze(1)) <= decoder.gate_threshold
        if decoder.early_stopping and not not_finished.any():
            break
    mel = torch.stack(frames, dim=2)
    return mel + model.postnet(mel), lengths, torch.stack(weights, dim=1)


@pytest.mark.parametrize("early_stopping", [True, False])
@pytest.mark.parametrize("interval", [8, 1, 5, 16])
def test_chunked_free_running_equals_step_by_step(early_stopping, interval):
    # 13 steps: with 8 a step a chunk of 8 and a shorter last one, stops at 3 and 10 (after the first
    # check); with 16 one chunk of 13, decoded past both stops and cut back to the later one
    reference, model = (small_model(max_decoder_steps=13, decoder_no_early_stopping=not early_stopping).eval()
                        for _ in range(2))
    model.decoder.gate_check_interval = interval
    for each in (reference, model):
        scripted_gate(each, [3, 10] if early_stopping else [3, 20])
    text, lengths = torch.randint(1, 148, (2, 6), generator=torch.Generator().manual_seed(5)), torch.tensor([6, 4])
    torch.manual_seed(7)  # the prenet's dropout draws the same masks in both
    with torch.no_grad():
        expected = step_by_step_infer(reference, text, lengths)
    torch.manual_seed(7)
    with warnings.catch_warnings(record=True):
        mel, mel_lengths, alignments = model.infer(text, lengths)
    assert mel_lengths.tolist() == expected[1].tolist() == ([3, 10] if early_stopping else [3, 13])
    assert mel.shape[2] == (10 if early_stopping else 13)
    # the mel and gate projections run as one GEMM there: BLAS may sum in another order
    torch.testing.assert_close(mel, expected[0][:, :, :mel.shape[2]], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(alignments, expected[2][:, :mel.shape[2]], rtol=1e-5, atol=1e-6)


def test_reading_the_stop_flags_a_chunk_late_decodes_one_more_chunk_and_the_same_frames(monkeypatch):
    """On a GPU the host reads a chunk's stop flag while the next chunk runs (tacotron2.model.stop_check_lag):
    one more chunk is decoded past the last stop and dropped; lengths, mels and alignments are unchanged."""
    results, chunk_counts = [], []
    for lag in (0, 1):
        monkeypatch.setattr(tacotron2.model, "stop_check_lag", lambda device, lag=lag: lag)
        model = without_prenet_dropout(small_model(max_decoder_steps=40)).eval()
        scripted_gate(model, [3, 10])
        decode_chunk = model.decoder.decode_chunk
        calls = []
        model.decoder.decode_chunk = lambda buffers, n_steps: calls.append(n_steps) or decode_chunk(buffers, n_steps)
        text, lengths = torch.randint(1, 148, (2, 6), generator=torch.Generator().manual_seed(5)), torch.tensor([6, 4])
        with torch.no_grad():
            results.append(model.infer(text, lengths))
        chunk_counts.append(len(calls))
    assert chunk_counts == [2, 3]  # both stopped in the second chunk of 8; read late, a third ran
    (mel, mel_lengths, alignments), (late_mel, late_lengths, late_alignments) = results
    assert mel_lengths.tolist() == late_lengths.tolist() == [3, 10]
    torch.testing.assert_close(late_mel, mel)
    torch.testing.assert_close(late_alignments, alignments)


COMPILE = pytest.param(True, marks=[pytest.mark.slow, pytest.mark.skipif(
    shutil.which("g++") is None, reason="torch.compile on the CPU needs a C++ compiler")])


@pytest.mark.parametrize("compiled", [False, COMPILE], ids=["eager", "compiled"])
def test_training_on_shape_buckets_keeps_outputs_and_gradients(compiled):
    """What train.py --cuda-graphs does to give the training loop fixed shapes, run on the CPU
    without graphs: the batch padded to (32-token, 64-frame) buckets and the outputs cut back give
    the same outputs and the same gradients (the decoder is causal; padded tokens are masked), also
    with --torch-compile, whose chunks of steps pad the frames once more."""
    from tacotron2.cuda_graphs import cut_to_batch, pad_to_bucket
    model = without_prenet_dropout(small_model(p_attention_dropout=0.0, p_decoder_dropout=0.0)).train()
    tacotron2.use_torch_compile(model, compiled)
    inputs, targets, _ = batch_to_device(make_batch([9, 5, 7], [37, 20, 29]), "cpu")
    text, text_lengths, mels = inputs[0], inputs[1], inputs[2]
    results = []
    for run in (model.decoder.teacher_forcing,
                lambda memory, mels, lengths: cut_to_batch(model.decoder.teacher_forcing(
                    *pad_to_bucket(memory, mels), lengths), memory.size(1), mels.size(2))):
        model.zero_grad()
        torch.manual_seed(0)  # the encoder's dropout
        memory = model._encode(text, text_lengths)
        memory.retain_grad()
        mel_outputs, gate_outputs, alignments = run(memory, mels, text_lengths)
        assert mel_outputs.shape == (3, 20, 37) and alignments.shape == (3, 37, 9)
        loss = (mel_outputs - mels).pow(2).mean() + gate_outputs.sigmoid().mean() + alignments[:, :, -1].mean()
        loss.backward()
        results.append(([mel_outputs, gate_outputs, alignments, memory.grad],
                        [p.grad.clone() for p in model.decoder.parameters()]))
    (plain, plain_grads), (bucketed, bucketed_grads) = results
    for expected, actual in zip(plain + plain_grads, bucketed + bucketed_grads, strict=True):
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)


@pytest.fixture
def fake_gpu_captures(monkeypatch):
    """Stand-ins for the CUDA calls of --cuda-graphs training, on the CPU: a capture 'keeps' 10 bytes
    a padded cell, its warm-up leaves 7 more cached that empty_cache releases, and its 'replay'
    doubles the eager outputs (tells replays from eager runs).
    -> (gpu state {"free", "reserved", "cached"}, the (tokens, frames) of each capture, step(n_frames) ->
    (graphed outputs, eager outputs) of a batch of 2 x 9 tokens)."""
    from tacotron2 import cuda_graphs
    gpu = {"reserved": 0, "free": 10**9, "cached": 0}
    captures = []

    def fake_capture(module, sample, pool=None):
        memory, mels, _ = sample
        captures.append((memory.shape[1], mels.shape[2]))
        cells = memory.shape[0] * memory.shape[1] * mels.shape[2]
        gpu["reserved"] += 10 * cells + 7 * cells
        gpu["cached"] += 7 * cells
        return lambda *args: tuple(2 * out for out in module(*args))

    def fake_empty_cache():
        gpu["reserved"] -= gpu["cached"]
        gpu["cached"] = 0

    monkeypatch.setattr(torch.cuda, "graph_pool_handle", lambda: None)
    monkeypatch.setattr(torch.cuda, "make_graphed_callables", fake_capture)
    monkeypatch.setattr(torch.cuda, "empty_cache", fake_empty_cache)
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda: gpu["reserved"])
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda: gpu["reserved"])
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (gpu["free"], 2 * 10**9))
    model = without_prenet_dropout(small_model(p_attention_dropout=0.0, p_decoder_dropout=0.0)).train()
    decoder = model.decoder
    memory = torch.randn(2, 9, 32)
    lengths = torch.tensor([9, 6])

    def step(n_frames):
        mels = torch.randn(2, 20, n_frames)
        return cuda_graphs.graphed_teacher_forcing(decoder, memory, mels, lengths), \
            decoder.teacher_forcing(memory, mels, lengths)
    return gpu, captures, step


def test_training_graphs_capture_buckets_only_while_gpu_memory_allows(fake_gpu_captures, capsys):
    """A bucket is captured while free memory covers 2x what the next one would take at the rate
    earlier captures kept (their warm-up's cache let go); past that, batches of new shapes that no
    captured bucket covers run the plain eager loop, unpadded, while the buckets already captured keep
    replaying; with memory freed, new buckets are captured again."""
    gpu, captures, step = fake_gpu_captures

    graphed, eager = step(30)  # the first bucket (32 tokens, 64 frames) is always tried
    assert captures == [(32, 64)]
    assert "captured batch 2 x 32 tokens x 64 frames, 0.00 GB more reserved" in capsys.readouterr().out
    assert gpu["reserved"] == 10 * 2 * 32 * 64 and gpu["cached"] == 0
    torch.testing.assert_close(graphed[0], 2 * eager[0])
    assert graphed[0].shape == eager[0].shape == (2, 20, 30) and graphed[2].shape == (2, 30, 9)
    # 10 bytes a cell so far; (32, 128) would take 2 x 32 x 128 x 10 = 81,920 bytes, 163,840 with headroom
    gpu["free"] = 163_839
    graphed, eager = step(100)
    assert captures == [(32, 64)]
    torch.testing.assert_close(graphed[0], eager[0])  # eager, not a replay
    assert "GPU memory holds 1 captured shape buckets" in capsys.readouterr().out
    graphed, eager = step(50)  # the captured bucket still replays
    torch.testing.assert_close(graphed[0], 2 * eager[0])
    gpu["free"] = 163_840
    graphed, eager = step(100)
    assert captures == [(32, 64), (32, 128)]
    torch.testing.assert_close(graphed[0], 2 * eager[0])


def test_a_batch_whose_bucket_does_not_fit_replays_a_larger_captured_bucket(fake_gpu_captures, capsys):
    """With no room for its own bucket, a batch replays the smallest captured bucket that covers it
    (padded further; outputs cut back to its own frames), not the eager loop."""
    gpu, captures, step = fake_gpu_captures
    for n_frames in (150, 100):  # buckets of 192 and 128 frames
        step(n_frames)
    gpu["free"] = 0
    graphed, eager = step(30)  # its bucket, 64 frames, does not fit: the 128-frame one covers it
    assert captures == [(32, 192), (32, 128)]
    assert "replay a larger captured bucket" in capsys.readouterr().out
    assert graphed[0].shape == eager[0].shape == (2, 20, 30) and graphed[2].shape == (2, 30, 9)
    for replayed, plain in zip(graphed, eager):
        torch.testing.assert_close(replayed, 2 * plain)
    graphed, eager = step(200)  # 256 frames: nothing captured covers it, so eager
    assert captures == [(32, 192), (32, 128)]
    torch.testing.assert_close(graphed[0], eager[0])


def test_room_for_capture_scales_what_earlier_captures_took():
    from tacotron2.cuda_graphs import room_for_capture
    assert room_for_capture(0, 0.0, 10**6)  # nothing measured yet: try
    assert room_for_capture(2000, 10.0, 100) and not room_for_capture(1999, 10.0, 100)
    assert not room_for_capture(2000, 10.0, 101)


def test_padding_the_memory_to_a_token_bucket_keeps_every_output():
    # What the CUDA-graph path does to give graphs fixed shapes, run eagerly on the CPU.
    from tacotron2.cuda_graphs import pad_tokens
    model = without_prenet_dropout(small_model(max_decoder_steps=12, decoder_no_early_stopping=True)).eval()
    text, lengths = torch.randint(1, 148, (2, 7), generator=torch.Generator().manual_seed(2)), torch.tensor([7, 5])
    with torch.no_grad():
        memory = model._encode(text, lengths)
        padded = pad_tokens(memory, bucket=32)
        assert padded.shape == (2, 32, memory.size(2)) and pad_tokens(padded, bucket=32).shape == padded.shape
        chunks, mel_lengths, _ = model.decoder.free_run(memory, lengths)
        padded_chunks, padded_lengths, _ = model.decoder.free_run(padded, lengths)
    assert torch.equal(mel_lengths, padded_lengths)
    for (mels, weights), (padded_mels, padded_weights) in zip(chunks, padded_chunks, strict=True):
        torch.testing.assert_close(padded_mels, mels, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(padded_weights[..., :7], weights, rtol=1e-5, atol=1e-6)
        assert padded_weights[..., 7:].abs().sum() == 0


def test_merged_lstm_cell_is_the_lstm_cell():
    """The compiled step's LSTM cell: one GEMM on [inputs; h] with both weights side by side."""
    torch.manual_seed(0)
    cell = torch.nn.LSTMCell(12, 16)
    inputs, hidden, cell_state = (torch.randn(3, 5), torch.randn(3, 7)), torch.randn(3, 16), torch.randn(3, 16)
    expected = cell(torch.cat(inputs, -1), (hidden, cell_state))
    merged = tacotron2.model.MergedLSTMCell.of(cell, torch.float32)
    assert merged.weight.shape == (64, 28)
    for got, want in zip(merged(inputs, hidden, cell_state), expected):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    half = tacotron2.model.MergedLSTMCell.of(cell, torch.bfloat16)
    assert half.weight.dtype == half.bias.dtype == torch.bfloat16


def test_lstm_cells_of_the_compiled_teacher_forcing_are_the_lstm_cell_with_its_gradients():
    """MergedLSTMCell.trained, and InputGatesLSTMCell given the gates of the first input made
    beforehand (for all steps at once): nn.LSTMCell's outputs and its parameters' gradients."""
    from tacotron2.model import InputGatesLSTMCell, MergedLSTMCell
    torch.manual_seed(0)
    cell = torch.nn.LSTMCell(12, 16)
    first, other = torch.randn(4, 3, 5), torch.randn(4, 3, 7)  # [steps, B, features]
    hidden, cell_state = torch.randn(3, 16), torch.randn(3, 16)

    def run(step):
        cell.zero_grad()
        outputs = [step(t) for t in range(4)]
        sum((h * h.detach().sign()).sum() + c.sum() for h, c in outputs).backward()
        return [t.detach() for pair in outputs for t in pair], [p.grad.clone() for p in cell.parameters()]

    expected = run(lambda t: cell(torch.cat((first[t], other[t]), -1), (hidden, cell_state)))
    merged = run(lambda t: MergedLSTMCell.trained(cell)((first[t], other[t]), hidden, cell_state))
    gates = InputGatesLSTMCell.input_gates(cell, first)  # one GEMM for the 4 steps
    given = run(lambda t: InputGatesLSTMCell.trained(cell, 5)((gates[t], other[t]), hidden, cell_state))
    for got in (merged, given):
        for value, want in zip(got[0] + got[1], expected[0] + expected[1], strict=True):
            torch.testing.assert_close(value, want, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile on the CPU needs a C++ compiler")
def test_compiled_free_running_gives_the_eager_outputs_without_recompiling():
    """inference --torch-compile: free-running steps through torch.compile (elementwise work fused, each
    LSTM cell one GEMM) give the eager outputs (the prenet's dropout stays eager, so seeded runs draw the
    same masks), and another token count reuses the compiled step."""
    eager, compiled = (small_model(max_decoder_steps=13, decoder_no_early_stopping=True).eval() for _ in range(2))
    tacotron2.use_torch_compile(compiled)
    counters = torch._dynamo.utils.counters
    for n_tokens in (6, 9):
        text = torch.randint(1, 148, (2, n_tokens), generator=torch.Generator().manual_seed(n_tokens))
        lengths = torch.tensor([n_tokens, 4])
        results = []
        for model in (eager, compiled):
            torch.manual_seed(7)
            graphs_before = counters["stats"]["unique_graphs"]
            with torch.no_grad():
                results.append(model.infer(text, lengths))
        new_graphs = counters["stats"]["unique_graphs"] - graphs_before
        # compiled once (unless an earlier test of this process did), then reused
        assert new_graphs <= 1 if n_tokens == 6 else new_graphs == 0
        assert counters["frames"]["ok"] > 0
        (mel, mel_lengths, alignments), (compiled_mel, compiled_lengths, compiled_alignments) = results
        assert torch.equal(compiled_lengths, mel_lengths) and compiled_mel.shape == mel.shape == (2, 20, 13)
        torch.testing.assert_close(compiled_mel, mel, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(compiled_alignments, alignments, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile on the CPU needs a C++ compiler")
def test_compiled_teacher_forcing_gives_the_eager_outputs_and_gradients_per_token_bucket():
    """train.py --torch-compile: the teacher-forced steps through torch.compile in chunks of 8, forward
    and backward, give the eager outputs and gradients (the decoder's dropouts off: compiled, they
    draw from inductor's generator), one graph per 32-token bucket: 9 and 30 tokens share one, 33
    compiles anew; 20 frames are 1 eager step and 3 chunks, the last padded; the outputs keep the
    batch's own tokens and frames. With its dropouts on, they act, and a seed fixes their masks."""
    from common.timing import one_time_work_count
    counters = torch._dynamo.utils.counters
    eager, compiled = (small_model(p_attention_dropout=0.0, p_decoder_dropout=0.0).train() for _ in range(2))
    tacotron2.use_torch_compile(compiled)

    def loss_and_gradients(model, text_lengths):
        model.zero_grad()
        inputs, (mel, gate, *_), _ = batch_to_device(make_batch(text_lengths, [20, 10, 13]), "cpu")
        torch.manual_seed(3)  # the prenet's, the encoder's and the postnet's dropout masks
        mel_outputs, postnet_outputs, gate_outputs, alignments = model(inputs)
        assert alignments.shape == (3, 20, max(text_lengths)) and gate_outputs.shape == (3, 20)
        loss = F.mse_loss(postnet_outputs, mel) + F.binary_cross_entropy_with_logits(gate_outputs, gate)
        loss = loss + (alignments * torch.linspace(0, 1, alignments.size(-1))).mean()
        loss.backward()
        return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}

    for text_lengths, new_graphs in (([9, 5, 7], {0, 1}), ([30, 5, 7], {0}), ([33, 5, 7], {1})):
        graphs_before, work_before = counters["stats"]["unique_graphs"], one_time_work_count()
        loss, gradients = loss_and_gradients(compiled, text_lengths)
        # a new graph (none if an earlier test of this process made it) is a step's one-time work
        assert counters["stats"]["unique_graphs"] - graphs_before in new_graphs
        assert one_time_work_count() - work_before == counters["stats"]["unique_graphs"] - graphs_before
        eager_loss, eager_gradients = loss_and_gradients(eager, text_lengths)
        torch.testing.assert_close(loss, eager_loss, rtol=1e-5, atol=1e-6)
        for name, gradient in eager_gradients.items():
            torch.testing.assert_close(gradients[name], gradient, rtol=1e-4, atol=1e-6, msg=name)

    inputs, _, _ = batch_to_device(make_batch([9, 5, 7], [17, 10, 13]), "cpu")
    outputs = []
    for dropout in (0.5, 0.5, 0.0):
        compiled.decoder.p_attention_dropout = compiled.decoder.p_decoder_dropout = dropout
        torch.manual_seed(4)
        with torch.no_grad():
            outputs.append(compiled(inputs)[0])
    assert torch.equal(outputs[0], outputs[1]) and not torch.allclose(outputs[0], outputs[2])


@pytest.mark.parametrize("threshold", [0.0, 0.2, 0.5, 0.9, 1.0])
def test_gate_check_on_logits_equals_the_sigmoid_rule(threshold):
    """decode_chunk compares the gate logit with logit(threshold) instead of sigmoid(gate) with it."""
    decoder = small_model(gate_threshold=threshold).decoder
    gates = torch.tensor([-30.0, -2.0, -1.3862944, -0.1, 0.0, 0.1, 1.3862944, 2.2, 30.0])
    gates = gates[(gates - decoder.gate_logit_threshold).abs() > 1e-4]  # rounding at the boundary aside
    assert torch.equal(gates <= decoder.gate_logit_threshold, torch.sigmoid(gates) <= threshold)


def test_infer_warns_at_max_decoder_steps():
    model = small_model(max_decoder_steps=6).eval()
    with torch.no_grad():
        model.decoder.gate_layer.linear_layer.weight.zero_()
        model.decoder.gate_layer.linear_layer.bias.fill_(-20.0)  # never stops
    with pytest.warns(UserWarning, match=r"Reached max decoder steps \(6\)"):
        mel, mel_lengths, _ = model.infer(torch.randint(1, 148, (2, 5)), torch.tensor([5, 3]))
    assert mel.shape == (2, 20, 6) and mel_lengths.tolist() == [6, 6]


def test_infer_with_firing_gate_gives_one_frame_and_no_warning():
    model = small_model().eval()
    with torch.no_grad():
        model.decoder.gate_layer.linear_layer.weight.zero_()
        model.decoder.gate_layer.linear_layer.bias.fill_(20.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mel, mel_lengths, alignments = model.infer(torch.randint(1, 148, (2, 5)), torch.tensor([5, 3]))
    assert mel_lengths.tolist() == [1, 1] and mel.shape == (2, 20, 1) and alignments.shape == (2, 1, 5)


@pytest.mark.parametrize("threshold", [0.5, 0.9])
def test_a_gate_just_over_its_threshold_stops_decoding_and_one_just_under_does_not(threshold):
    """The stop decision itself (not only the reported lengths) uses sigmoid(gate) > gate_threshold."""
    logit = math.log(threshold / (1 - threshold))
    for margin, fires in ((0.05, True), (-0.05, False)):
        model = small_model(gate_threshold=threshold, max_decoder_steps=12).eval()
        with torch.no_grad():
            model.decoder.gate_layer.linear_layer.weight.zero_()
            model.decoder.gate_layer.linear_layer.bias.fill_(logit + margin)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mel, mel_lengths, _ = model.infer(torch.randint(1, 148, (2, 5)), torch.tensor([5, 3]))
        hit_limit = any("Reached max decoder steps" in str(w.message) for w in caught)
        assert hit_limit is not fires
        assert mel_lengths.tolist() == ([1, 1] if fires else [12, 12])


def test_the_constructors_defaults_are_the_flags_defaults():
    """Code that builds Tacotron2() directly gets the recipe's model, as train.py's flags give it."""
    signature = inspect.signature(Tacotron2)
    for key, value in tacotron2.config_from_args(parse([])).items():
        assert signature.parameters[key].default == value, key


def test_no_early_stopping_decodes_max_steps():
    model = small_model(max_decoder_steps=10, decoder_no_early_stopping=True).eval()
    scripted_gate(model, [3, 4])
    mel, mel_lengths, _ = model.infer(torch.randint(1, 148, (2, 5)), torch.tensor([5, 5]))
    assert mel.shape == (2, 20, 10) and mel_lengths.tolist() == [3, 4]


# --- checkpoints and flags ---------------------------------------------------------------------

def test_ddp_prefixed_state_dict_loads_after_stripping():
    from common.checkpoint import strip_module_prefix
    source = small_model()
    torch.manual_seed(1)
    target = Tacotron2(**SMALL)
    prefixed = {"module." + k: v for k, v in source.state_dict().items()}
    with pytest.raises(RuntimeError):
        target.load_state_dict(prefixed)
    target.load_state_dict(strip_module_prefix(prefixed))
    for (name, a), b in zip(source.state_dict().items(), target.state_dict().values()):
        assert torch.equal(a, b), name


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--text-cleaners", nargs="*", default=["basic_cleaners"])  # train.py owns it
    tacotron2.add_model_args(parser)
    return parser.parse_args(argv)


def test_flags_defaults_and_config():
    args = parse([])
    assert args.text_cleaners == ["basic_cleaners"]  # not re-added
    assert args.load_mel_from_disk is False
    config = tacotron2.config_from_args(args)
    assert tuple(config) == CONFIG_KEYS
    assert config == dict(
        mask_padding=False, n_mel_channels=80, n_symbols=148, symbols_embedding_dim=512,
        encoder_kernel_size=5, encoder_n_convolutions=3, encoder_embedding_dim=512,
        attention_rnn_dim=1024, attention_dim=128, attention_location_n_filters=32,
        attention_location_kernel_size=31, n_frames_per_step=1, decoder_rnn_dim=1024, prenet_dim=256,
        max_decoder_steps=2000, gate_threshold=0.5, p_attention_dropout=0.1, p_decoder_dropout=0.1,
        postnet_embedding_dim=512, postnet_kernel_size=5, postnet_n_convolutions=5,
        decoder_no_early_stopping=False)


def test_flags_parse_booleans_and_build_a_model():
    args = parse(["--mask-padding", "False", "--decoder-no-early-stopping", "--load-mel-from-disk",
                  "--disable-uniform-initialize-bn-weight", "--encoder-embedding-dim", "16",
                  "--symbols-embedding-dim", "16", "--decoder-rnn-dim", "8", "--attention-rnn-dim", "8",
                  "--postnet-embedding-dim", "8", "--prenet-dim", "8", "--n-symbols", "40"])
    assert args.mask_padding is False and args.load_mel_from_disk is True
    config = tacotron2.config_from_args(args)
    assert config["decoder_no_early_stopping"] is True and config["n_symbols"] == 40
    model = tacotron2.build_model(config)
    assert model.embedding.weight.shape == (40, 16)
    assert all(torch.equal(m.weight, torch.ones_like(m.weight))
               for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d))
    assert parse(["--mask-padding"]).mask_padding is True


# --- learning ----------------------------------------------------------------------------------

def test_overfits_four_short_utterances(tmp_path, tmp_wav, speech_like):
    texts = ["Hi there.", "A cat sat.", "Go now!", "It is late."]
    lines = []
    for i, (text, seconds) in enumerate(zip(texts, [0.25, 0.4, 0.3, 0.35])):
        tmp_wav(f"wavs/u{i}.wav", audio=speech_like(int(22050 * seconds), seed=i))
        lines.append(f"wavs/u{i}.wav|{text}\n")
    (tmp_path / "list.txt").write_text("".join(lines))
    dataset = tacotron2.TextMelDataset(str(tmp_path / "list.txt"), str(tmp_path))
    inputs, targets, _ = batch_to_device(tacotron2.collate_fn([dataset[i] for i in range(4)]), "cpu")

    torch.manual_seed(0)
    model = Tacotron2(**{**SMALL, "n_mel_channels": 80, "p_attention_dropout": 0.0, "p_decoder_dropout": 0.0})
    loss_fn = tacotron2.build_loss(None)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        loss, terms = loss_fn(model(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.5 * first, (first, last)
    # more than the level: both mel terms beat predicting each utterance's mean spectrum
    mel = targets[0]
    mean_spectrum_mse = 2 * ((mel - mel.mean(dim=2, keepdim=True)) ** 2).mean()
    assert terms["mel_loss"] < 0.5 * mean_spectrum_mse, (terms["mel_loss"], mean_spectrum_mse)
    gate_rate = targets[1].mean()
    constant_gate_bce = F.binary_cross_entropy(gate_rate.expand_as(targets[1]), targets[1])
    assert terms["gate_loss"] < 0.5 * constant_gate_bce
