"""Tacotron 2 (NVIDIA DeepLearningExamples variant): dropout instead of zoneout, location-sensitive attention.

Module names and registration order reproduce NVIDIA's state dict (84 entries), so their checkpoints
load unchanged. The decoder loop is written for speed on GPUs: everything that does not depend on the
previous step (prenet of the teacher-forced frames, memory projection, the merged location filters,
the mel/gate projections of training) runs once outside the loop, and nothing in the loop reads a
value back to the host.
"""
import functools
import math
import warnings
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from common.errors import InputWarning
from common.timing import note_one_time_work
from tacotron2.layers import ConvNorm, LinearNorm

# Free running asks the device "all stopped?" every this many steps (inference.py --gate-check-interval)
GATE_CHECK_INTERVAL = 8


# Where a CUDA graph or a compiled training step must see few shapes, token counts are zero-padded to
# a multiple of this (tacotron2/cuda_graphs.py, Decoder.teacher_forcing): the attention masks the
# padding, so no output changes
TOKEN_BUCKET = 32
# Teacher-forced steps per compiled graph (train.py --torch-compile): each call of a compiled graph
# costs the host guards and wrappers, so a chunk of steps pays them once (on the CPU, forward and
# backward, 8 steps a graph took ~1.5x less host time a step than one, docs/performance.md)
COMPILED_STEPS = 8


@functools.cache
def compiled(function, dynamic: bool = True):
    """``torch.compile`` of a Decoder method, made once and shared by every decoder (modules are
    inlined, so their weights are inputs, not constants, and another model does not recompile).
    A decoder step is a chain of small GEMMs joined by elementwise work (LSTM cells, the additive
    attention's adds and tanh, the mask, the concatenations); compiled, each chain between two GEMMs
    becomes one kernel.

    Free running (inference.py --torch-compile) has symbolic sizes from the start, so new token counts
    do not recompile (batch 1 and larger batches are one graph each). Training (train.py
    --torch-compile) compiles chunks of COMPILED_STEPS steps with static shapes: under autograd the
    backward specialises on the token count anyway (inductor's convolution backward, torch 2.13), so
    the tokens are padded to TOKEN_BUCKET and each bucket is one graph. The steps are launch-bound,
    so the generated code's size asserts (a few dozen host checks a call) are left out."""
    return torch.compile(function, dynamic=dynamic, options={"size_asserts": False})


def compiled_graph_count() -> int:
    """Graphs torch.compile has made in this process so far."""
    from torch._dynamo.utils import counters
    return counters["stats"]["unique_graphs"]


def pad_tokens(memory: Tensor, bucket: int = TOKEN_BUCKET) -> Tensor:
    """Zero-pad memory [B, N, E] to a multiple of ``bucket`` tokens."""
    return F.pad(memory, (0, 0, 0, -memory.size(1) % bucket))


def lengths_to_mask(lengths: Tensor, max_len: int) -> Tensor:
    """Bool mask [B, max_len], True on real (unpadded) positions; no host sync."""
    return torch.arange(max_len, device=lengths.device) < lengths.unsqueeze(1)


class Prenet(nn.Module):
    """Two ReLU layers whose dropout (0.5) stays on in eval mode too, as the Tacotron 2 paper asks.

    Comparisons of two decoding paths set ``dropout = 0`` so that both see the same frames."""

    def __init__(self, in_dim: int, sizes: list[int]):
        super().__init__()
        in_sizes = [in_dim] + sizes[:-1]
        self.layers = nn.ModuleList(
            LinearNorm(n_in, n_out, bias=False) for n_in, n_out in zip(in_sizes, sizes)
        )
        self.dropout = 0.5

    def forward(self, x: Tensor) -> Tensor:
        for linear in self.layers:
            x = self._dropout(F.relu(linear(x)))
        return x

    def _dropout(self, x: Tensor) -> Tensor:
        return F.dropout(x, p=self.dropout, training=True) if self.dropout else x

    def after_first_layer(self, hidden: Tensor) -> Tensor:
        """The prenet from its first layer's ReLU output on, as free running splits it: the first layer
        rides on the decoder's projection GEMM (Decoder.free_run_buffers) and the last ReLU is left to
        the caller, whose compiled step fuses it. Dropout and ReLU commute (the mask and its scale are
        >= 0), and the dropout calls come in the order forward() makes them: the same masks, the same
        frames."""
        x = self._dropout(hidden)
        for index, linear in enumerate(self.layers[1:], start=2):
            x = linear(x)
            x = self._dropout(x if index == len(self.layers) else F.relu(x))
        return x


class LocationLayer(nn.Module):
    """Convolution over [previous; cumulative] attention weights followed by a dense projection."""

    def __init__(self, n_filters: int, kernel_size: int, attention_dim: int):
        super().__init__()
        self.location_conv = ConvNorm(2, n_filters, kernel_size, padding=(kernel_size - 1) // 2, bias=False)
        self.location_dense = LinearNorm(n_filters, attention_dim, bias=False, w_init_gain="tanh")

    def merged_weight(self) -> Tensor:
        """Conv and dense are both linear and bias-free, so they merge into one conv 2 -> attention_dim.

        Computing this once per utterance batch saves a matmul and a transpose in every decoder step.
        """
        conv_w = self.location_conv.conv.weight  # [F, 2, K]
        dense_w = self.location_dense.linear_layer.weight  # [D, F]
        return (dense_w @ conv_w.flatten(1)).view(dense_w.size(0), conv_w.size(1), conv_w.size(2))

    def forward(self, weights_cat: Tensor, merged_weight: Tensor | None = None) -> Tensor:
        """weights_cat [B, 2, N] -> location features [B, N, attention_dim]."""
        weight = self.merged_weight() if merged_weight is None else merged_weight
        padding = self.location_conv.conv.padding
        return F.conv1d(weights_cat.to(weight.dtype), weight, padding=padding).transpose(1, 2)


class Attention(nn.Module):
    """Location-sensitive additive attention; energies and softmax are kept in float32."""

    def __init__(self, attention_rnn_dim: int, embedding_dim: int, attention_dim: int,
                 attention_location_n_filters: int, attention_location_kernel_size: int):
        super().__init__()
        self.query_layer = LinearNorm(attention_rnn_dim, attention_dim, bias=False, w_init_gain="tanh")
        self.memory_layer = LinearNorm(embedding_dim, attention_dim, bias=False, w_init_gain="tanh")
        self.v = LinearNorm(attention_dim, 1, bias=False)
        self.location_layer = LocationLayer(
            attention_location_n_filters, attention_location_kernel_size, attention_dim
        )

    def forward(self, query: Tensor, memory: Tensor, processed_memory: Tensor, weights_cat: Tensor,
                pad_mask: Tensor, location_weight: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Returns (context [B, embedding_dim], weights [B, N] float32)."""
        processed_query = self.query_layer(query).unsqueeze(1)
        location = self.location_layer(weights_cat, location_weight)
        energies = self.v(torch.tanh(processed_memory + location + processed_query)).squeeze(-1)
        # -inf is exact in fp16/bf16, and softmax(dtype=float32) computes in float32: for fp16 on CUDA
        # one kernel reads the fp16 energies (no separate cast kernel in a decoder step)
        energies = energies.masked_fill(pad_mask, float("-inf"))
        weights = torch.softmax(energies, dim=1, dtype=torch.float32)
        context = torch.bmm(weights.unsqueeze(1).to(memory.dtype), memory).squeeze(1)
        return context, weights


class Encoder(nn.Module):
    """3 x (conv, batch norm, ReLU, dropout) then a bidirectional LSTM over the unpadded tokens."""

    def __init__(self, encoder_n_convolutions: int, encoder_embedding_dim: int, encoder_kernel_size: int):
        super().__init__()
        dim = encoder_embedding_dim
        self.convolutions = nn.ModuleList(
            nn.Sequential(
                ConvNorm(dim, dim, encoder_kernel_size, padding=(encoder_kernel_size - 1) // 2,
                         w_init_gain="relu"),
                nn.BatchNorm1d(dim),
            )
            for _ in range(encoder_n_convolutions)
        )
        self.lstm = nn.LSTM(dim, dim // 2, num_layers=1, batch_first=True, bidirectional=True)

    def forward(self, x: Tensor, input_lengths: Tensor) -> Tensor:
        """x [B, dim, N] -> memory [B, N, dim]; any length order (outputs keep the batch order)."""
        for conv in self.convolutions:
            x = F.dropout(F.relu(conv(x)), 0.5, self.training)
        x = x.transpose(1, 2)
        # pack_padded_sequence wants CPU lengths: the one host sync of the forward, outside the loop
        packed = pack_padded_sequence(x, input_lengths.cpu().long(), batch_first=True, enforce_sorted=False)
        self.lstm.flatten_parameters()
        outputs, _ = self.lstm(packed)
        outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=x.size(1))
        return outputs


class DecoderState(NamedTuple):
    attention_hidden: Tensor
    attention_cell: Tensor
    decoder_hidden: Tensor
    decoder_cell: Tensor
    attention_weights: Tensor  # float32
    attention_weights_cum: Tensor  # float32
    # both of them stacked [B, 2, N], as the next step's location layer reads them: made where the
    # weights are, so a compiled step writes them in the softmax's kernel, not in a kernel of its own
    attention_weights_cat: Tensor
    attention_context: Tensor


class MergedLSTMCell(NamedTuple):
    """An nn.LSTMCell's two GEMMs as one, [W_ih | W_hh] on [inputs; h] with the biases summed, for the
    compiled free-running step: two launches fewer a step, and the gates' elementwise work fuses into
    one kernel there (eagerly it would be several; the eager step keeps nn.LSTMCell's fused cell)."""
    weight: Tensor  # [4 H, inputs + H]
    bias: Tensor  # [4 H]

    @classmethod
    def of(cls, cell: nn.LSTMCell, dtype: torch.dtype) -> "MergedLSTMCell":
        bias = cell.bias_ih.float() + cell.bias_hh.float()  # summed before rounding to a half precision
        return cls(cls.trained(cell).weight.to(dtype), bias.to(dtype))

    @classmethod
    def trained(cls, cell: nn.LSTMCell) -> "MergedLSTMCell":
        """:meth:`of` in the parameters' dtype, differentiable (compiled teacher forcing)."""
        return cls(torch.cat((cell.weight_ih, cell.weight_hh), 1), cell.bias_ih + cell.bias_hh)

    def __call__(self, inputs: tuple[Tensor, ...], hidden: Tensor, cell: Tensor) -> tuple[Tensor, Tensor]:
        return lstm_update(F.linear(torch.cat((*inputs, hidden), -1), self.weight, self.bias), cell)


class InputGatesLSTMCell(NamedTuple):
    """An nn.LSTMCell given its first input's share of the gates, W_ih's columns of that input times it
    plus both biases, made beforehand (teacher forcing: the prenet frames are known before the loop,
    so one GEMM outside it makes that share for every step); the rest, [W_ih's other columns | W_hh]
    on [other inputs; h], is one GEMM a step."""
    weight: Tensor  # [4 H, other inputs + H]

    @classmethod
    def trained(cls, cell: nn.LSTMCell, n_given: int) -> "InputGatesLSTMCell":
        """The cell whose first ``n_given`` input features come as gates (:meth:`input_gates`)."""
        return cls(torch.cat((cell.weight_ih[:, n_given:], cell.weight_hh), 1))

    @staticmethod
    def input_gates(cell: nn.LSTMCell, first_input: Tensor) -> Tensor:
        """The gates' share of ``first_input`` [..., n_given] (all steps at once), biases included."""
        return F.linear(first_input, cell.weight_ih[:, :first_input.size(-1)], cell.bias_ih + cell.bias_hh)

    def __call__(self, inputs: tuple[Tensor, ...], hidden: Tensor, cell: Tensor) -> tuple[Tensor, Tensor]:
        """``inputs[0]`` is the first input's gates (:meth:`input_gates`), the others inputs."""
        return lstm_update(inputs[0] + F.linear(torch.cat((*inputs[1:], hidden), -1), self.weight), cell)


def lstm_update(gates: Tensor, cell: Tensor) -> tuple[Tensor, Tensor]:
    """An LSTM cell's step from its gates [B, 4 H] (nn.LSTMCell's order: in, forget, cell, out) -> (h, c)."""
    in_gate, forget_gate, cell_gate, out_gate = gates.chunk(4, -1)
    cell = torch.sigmoid(forget_gate) * cell + torch.sigmoid(in_gate) * torch.tanh(cell_gate)
    return torch.sigmoid(out_gate) * torch.tanh(cell), cell


class FreeRunBuffers(NamedTuple):
    memory: Tensor  # [B, N, E]
    processed_memory: Tensor
    location_weight: Tensor
    # [n_mel + 1 + prenet_dim, H + E]: the mel and gate projections and the next step's first prenet
    # layer (linear and bias-free, so it folds into the mel projection) as one GEMM
    projection_weight: Tensor
    projection_bias: Tensor
    pad_mask: Tensor  # [B, N] bool, True on padding
    # both LSTM cells merged (MergedLSTMCell) when the steps are compiled; None: nn.LSTMCell
    cells: tuple[MergedLSTMCell, MergedLSTMCell] | None
    state: DecoderState
    prenet_hidden: Tensor  # [B, prenet_dim]: the next step's first prenet layer, after its ReLU
    not_finished: Tensor  # [B] bool: no gate has fired yet
    frames: Tensor  # [chunk, B, n_mel + 1]: each step's mel frame and gate logit
    alignments: Tensor  # [chunk, B, N] float32


def run_cell(cell: nn.LSTMCell, merged: MergedLSTMCell | None, inputs: tuple[Tensor, ...], hidden: Tensor,
             cell_state: Tensor) -> tuple[Tensor, Tensor]:
    """One LSTM cell step on the concatenated inputs, through ``merged`` where given."""
    if merged is None:
        return cell(torch.cat(inputs, -1), (hidden, cell_state))
    return merged(inputs, hidden, cell_state)


def stop_check_lag(device: torch.device) -> int:
    """How many chunks behind the host reads the stop flags. On a GPU one: it reads a chunk's flag
    while the next chunk runs, so the GPU never waits for the host between chunks, and at most one
    chunk past the last stop is decoded (and dropped). On the CPU, which does the decoding itself, none."""
    return 1 if device.type == "cuda" else 0


class AnyRunning:
    """Whether any utterance of ``not_finished`` still runs, as the host reads it later: on a GPU
    copied to pinned memory behind an event, so reading waits for the chunk that set it and not for
    the work queued after it."""

    def __init__(self, not_finished: Tensor):
        running = not_finished.any()
        self.event = None
        if running.is_cuda:
            self.value = torch.empty((), dtype=torch.bool, pin_memory=True)
            self.value.copy_(running, non_blocking=True)
            self.event = torch.cuda.Event()
            self.event.record()
        else:
            self.value = running

    def __bool__(self) -> bool:
        if self.event is not None:
            self.event.synchronize()
        return bool(self.value)


class Decoder(nn.Module):
    """Autoregressive decoder: prenet -> attention LSTM -> attention -> decoder LSTM -> mel frame + gate."""

    def __init__(self, n_mel_channels: int, n_frames_per_step: int, encoder_embedding_dim: int,
                 attention_dim: int, attention_location_n_filters: int,
                 attention_location_kernel_size: int, attention_rnn_dim: int, decoder_rnn_dim: int,
                 prenet_dim: int, max_decoder_steps: int, gate_threshold: float,
                 p_attention_dropout: float, p_decoder_dropout: float, early_stopping: bool):
        super().__init__()
        self.n_mel_channels = n_mel_channels
        self.max_decoder_steps = max_decoder_steps
        self.gate_threshold = gate_threshold
        self.p_attention_dropout = p_attention_dropout
        self.p_decoder_dropout = p_decoder_dropout
        self.early_stopping = early_stopping
        # infer() asks the device "all stopped?" only every this many steps (each ask is a host sync)
        self.gate_check_interval = GATE_CHECK_INTERVAL
        # free running and the training loop through CUDA graphs (tacotron2/cuda_graphs.py):
        # inference.py --cuda-graphs, train.py --cuda-graphs
        self.cuda_graphs = False
        # decoder steps through torch.compile (:func:`compiled`): inference.py and train.py --torch-compile
        self.torch_compile = False

        self.prenet = Prenet(n_mel_channels * n_frames_per_step, [prenet_dim, prenet_dim])
        self.attention_rnn = nn.LSTMCell(prenet_dim + encoder_embedding_dim, attention_rnn_dim)
        self.attention_layer = Attention(attention_rnn_dim, encoder_embedding_dim, attention_dim,
                                         attention_location_n_filters, attention_location_kernel_size)
        self.decoder_rnn = nn.LSTMCell(attention_rnn_dim + encoder_embedding_dim, decoder_rnn_dim)
        self.linear_projection = LinearNorm(decoder_rnn_dim + encoder_embedding_dim,
                                            n_mel_channels * n_frames_per_step)
        self.gate_layer = LinearNorm(decoder_rnn_dim + encoder_embedding_dim, 1, w_init_gain="sigmoid")

    @property
    def gate_logit_threshold(self) -> float:
        """sigmoid(gate) > gate_threshold  <=>  gate > logit(gate_threshold): no sigmoid kernel per step."""
        if not 0 < self.gate_threshold < 1:
            return math.inf if self.gate_threshold >= 1 else -math.inf
        return math.log(self.gate_threshold / (1 - self.gate_threshold))

    def initial_state(self, memory: Tensor) -> DecoderState:
        batch, n_tokens, _ = memory.shape
        att_h = memory.new_zeros(batch, self.attention_rnn.hidden_size)
        dec_h = memory.new_zeros(batch, self.decoder_rnn.hidden_size)
        weights = torch.zeros(batch, n_tokens, device=memory.device, dtype=torch.float32)
        return DecoderState(att_h, torch.zeros_like(att_h), dec_h, torch.zeros_like(dec_h), weights,
                            torch.zeros_like(weights), weights.new_zeros(batch, 2, n_tokens),
                            memory.new_zeros(batch, memory.size(2)))

    def step(self, prenet_frame: Tensor, state: DecoderState, memory: Tensor, processed_memory: Tensor,
             location_weight: Tensor, pad_mask: Tensor, cells: tuple | None = None) -> DecoderState:
        """One decoder step; the mel/gate projections are left to the caller. ``cells``: the LSTM cells
        as single GEMMs (MergedLSTMCell), the attention cell's maybe an InputGatesLSTMCell, which takes
        for ``prenet_frame`` the gates made of it."""
        attention_cell, decoder_cell = cells or (None, None)
        att_h, att_c = run_cell(self.attention_rnn, attention_cell, (prenet_frame, state.attention_context),
                                state.attention_hidden, state.attention_cell)
        att_h = F.dropout(att_h, self.p_attention_dropout, self.training)
        context, weights = self.attention_layer(att_h, memory, processed_memory, state.attention_weights_cat,
                                                pad_mask, location_weight)
        dec_h, dec_c = run_cell(self.decoder_rnn, decoder_cell, (att_h, context),
                                state.decoder_hidden, state.decoder_cell)
        dec_h = F.dropout(dec_h, self.p_decoder_dropout, self.training)
        weights_cum = state.attention_weights_cum + weights
        return DecoderState(att_h, att_c, dec_h, dec_c, weights, weights_cum,
                            torch.stack((weights, weights_cum), dim=1), context)

    def _prepare(self, memory: Tensor, memory_lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        pad_mask = ~lengths_to_mask(memory_lengths.to(memory.device), memory.size(1))
        processed_memory = self.attention_layer.memory_layer(memory)
        location_weight = self.attention_layer.location_layer.merged_weight()
        return pad_mask, processed_memory, location_weight

    def forward(self, memory: Tensor, mels: Tensor, memory_lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Teacher forcing: mels [B, 80, T] -> (mel_outputs [B, 80, T], gate [B, T], alignments [B, T, N]).

        With ``cuda_graphs`` on, in training and on a GPU, the loop's forward and backward replay as
        CUDA graphs of padded shape buckets (tacotron2/cuda_graphs.py); the outputs are the same."""
        if self.cuda_graphs and self.training and memory.is_cuda:
            from tacotron2.cuda_graphs import graphed_teacher_forcing
            return graphed_teacher_forcing(self, memory, mels, memory_lengths)
        return self.teacher_forcing(memory, mels, memory_lengths)

    def teacher_forcing(self, memory: Tensor, mels: Tensor, memory_lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`forward` without CUDA graphs. With ``torch_compile`` on and gradients enabled (training),
        chunks of COMPILED_STEPS steps through torch.compile (:func:`compiled`), the tokens padded to a
        multiple of TOKEN_BUCKET and the steps to a multiple of the chunk."""
        compile_steps = self.torch_compile and torch.is_grad_enabled()
        n_tokens = memory.size(1)
        if compile_steps:
            memory = pad_tokens(memory)
        pad_mask, processed_memory, location_weight = self._prepare(memory, memory_lengths)
        go_frame = mels.new_zeros(mels.size(0), mels.size(1), 1)
        previous_frames = torch.cat((go_frame, mels[:, :, :-1]), dim=2).permute(2, 0, 1)  # [T, B, 80]
        prenet_frames = self.prenet(previous_frames)
        inputs = (self.initial_state(memory), memory, processed_memory, location_weight, pad_mask)
        run = self.compiled_teacher_forced_steps if compile_steps else self.teacher_forced_steps
        _, projection_input, alignments = run(prenet_frames, *inputs)
        alignments = alignments[:, :, :n_tokens]
        mel_outputs = self.linear_projection(projection_input).permute(1, 2, 0)
        gate_outputs = self.gate_layer(projection_input).squeeze(-1).transpose(0, 1)
        return mel_outputs, gate_outputs, alignments

    def compiled_teacher_forced_steps(self, prenet_frames: Tensor, state: DecoderState,
                                      *inputs: Tensor) -> tuple[DecoderState, Tensor, Tensor]:
        """:meth:`teacher_forced_steps`, chunks of COMPILED_STEPS through torch.compile (the tokens of
        ``inputs`` padded to TOKEN_BUCKET). The first step's state holds no gradient, which compiled would
        be a graph of its own: it runs eagerly. The rest go in whole chunks; the decoder is causal, so
        the padded steps at the end change no earlier output, and they are cut off. Each LSTM cell is
        one GEMM a step; the attention cell's share of the prenet frames is one GEMM for all steps, here
        (the steps take its gates for their frames)."""
        n_frames, n_graphs = prenet_frames.size(0), compiled_graph_count()
        state, *first = self.teacher_forced_steps(prenet_frames[:1], state, *inputs)
        gates = InputGatesLSTMCell.input_gates(self.attention_rnn, prenet_frames[1:])
        gates = F.pad(gates, (0, 0, 0, 0, 0, -(n_frames - 1) % COMPILED_STEPS))
        cells = (InputGatesLSTMCell.trained(self.attention_rnn, prenet_frames.size(-1)),
                 MergedLSTMCell.trained(self.decoder_rnn))
        steps = functools.partial(compiled(type(self).teacher_forced_steps, dynamic=False), self)
        chunks = [first]
        for start in range(0, gates.size(0), COMPILED_STEPS):
            state, *chunk = steps(gates[start:start + COMPILED_STEPS], state, *inputs, cells)
            chunks.append(chunk)
        if compiled_graph_count() > n_graphs:
            note_one_time_work()  # a compile: train.py reports this step's time apart from the throughput
        projection_input = torch.cat([projection for projection, _ in chunks])[:n_frames]
        return state, projection_input, torch.cat([alignment for _, alignment in chunks], dim=1)[:, :n_frames]

    def teacher_forced_steps(self, prenet_frames: Tensor, state: DecoderState, memory: Tensor,
                             processed_memory: Tensor, location_weight: Tensor, pad_mask: Tensor,
                             cells: tuple | None = None) -> tuple[DecoderState, Tensor, Tensor]:
        """One step per teacher-forced frame of prenet_frames [n, B, prenet_dim] (or, with ``cells``, of
        their attention-cell gates: :meth:`step`) from ``state`` -> (the last state, the projections'
        input [n, B, H + E]: each step's decoder output and context, alignments [B, n, N])."""
        hiddens, contexts, alignments = [], [], []
        for prenet_frame in prenet_frames:
            state = self.step(prenet_frame, state, memory, processed_memory, location_weight, pad_mask, cells)
            hiddens.append(state.decoder_hidden)
            contexts.append(state.attention_context)
            alignments.append(state.attention_weights)
        projection_input = torch.cat((torch.stack(hiddens), torch.stack(contexts)), dim=-1)
        return state, projection_input, torch.stack(alignments, dim=1)

    def free_run_buffers(self, memory: Tensor, memory_lengths: Tensor, chunk_steps: int) -> FreeRunBuffers:
        """Everything a chunk of free-running steps reads and writes, in fixed tensors (CUDA graphs
        replay on fixed addresses); the state starts as the first step expects it."""
        pad_mask, processed_memory, location_weight = self._prepare(memory, memory_lengths)
        mel, gate = self.linear_projection.linear_layer, self.gate_layer.linear_layer
        prenet_first = self.prenet.layers[0].linear_layer.weight.float()
        # in the memory's dtype: under autocast a per-step cast of these (not cached) would cost a kernel;
        # the folded prenet layer is multiplied out in float32 (autocast off) first, then rounded once
        with torch.autocast(memory.device.type, enabled=False):
            projection_weight = torch.cat((mel.weight.float(), gate.weight.float(), prenet_first @ mel.weight.float()))
            projection_bias = torch.cat((mel.bias.float(), gate.bias.float(), prenet_first @ mel.bias.float()))
        projection_weight, projection_bias = projection_weight.to(memory.dtype), projection_bias.to(memory.dtype)
        cells = None
        if self.torch_compile:
            cells = tuple(MergedLSTMCell.of(cell, memory.dtype) for cell in (self.attention_rnn, self.decoder_rnn))
        batch = memory.size(0)
        return FreeRunBuffers(
            memory=memory, processed_memory=processed_memory, location_weight=location_weight,
            projection_weight=projection_weight, projection_bias=projection_bias,
            pad_mask=pad_mask, cells=cells, state=self.initial_state(memory),
            prenet_hidden=memory.new_zeros(batch, prenet_first.size(0)),  # of the go frame, all zeros
            not_finished=torch.ones(batch, dtype=torch.bool, device=memory.device),
            frames=memory.new_zeros(chunk_steps, batch, self.n_mel_channels + 1),
            alignments=torch.zeros(chunk_steps, batch, memory.size(1), device=memory.device))

    def step_and_project(self, prenet_output: Tensor, state: DecoderState, buffers: FreeRunBuffers,
                         output: Tensor, alignment: Tensor) -> tuple[DecoderState, Tensor]:
        """A free-running step from the prenet's output before its last ReLU (Prenet.after_first_layer)
        -> (state, the next step's prenet_hidden). Writes ``output`` [B, n_mel + 1] (the mel frame and
        the gate logit) and ``alignment`` [B, N], views into the chunk buffers: compiled, those writes
        happen in the kernels that make the values."""
        state = self.step(F.relu(prenet_output), state, buffers.memory, buffers.processed_memory,
                          buffers.location_weight, buffers.pad_mask, buffers.cells)
        projection_input = torch.cat((state.decoder_hidden, state.attention_context), dim=-1)
        projected = F.linear(projection_input, buffers.projection_weight, buffers.projection_bias)
        output.copy_(projected[:, :output.size(1)])
        alignment.copy_(state.attention_weights)
        return state, F.relu(projected[:, output.size(1):])

    def decode_chunk(self, buffers: FreeRunBuffers, n_steps: int) -> None:
        """n_steps free-running steps, in place: frames, gate logits and attention go to
        buffers.frames/alignments[:n_steps]; the state, the next step's prenet input and the "not finished" flags
        (no gate fired yet: sigmoid(gate) > gate_threshold) are updated. Nothing but the steps
        themselves runs per step; the gates are checked once per chunk."""
        state, prenet_hidden = buffers.state, buffers.prenet_hidden
        step_and_project = (functools.partial(compiled(type(self).step_and_project), self) if self.torch_compile
                            else self.step_and_project)
        for step in range(n_steps):
            # the prenet's dropout stays eager: its random numbers are then the eager path's, in and
            # out of CUDA graphs
            state, prenet_hidden = step_and_project(self.prenet.after_first_layer(prenet_hidden), state, buffers,
                                                    buffers.frames[step], buffers.alignments[step])
        gate_fired = (buffers.frames[:n_steps, :, -1] > self.gate_logit_threshold).any(dim=0)
        buffers.not_finished.logical_and_(~gate_fired)
        for fixed, new in zip(buffers.state, state):
            fixed.copy_(new)
        buffers.prenet_hidden.copy_(prenet_hidden)

    def infer(self, memory: Tensor, memory_lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Free running: -> (mel_outputs [B, 80, T], mel_lengths [B] long, alignments [B, T, N]).

        Steps run in chunks of gate_check_interval, after each of which the host asks the device
        whether every utterance has stopped (one sync per chunk, none inside it; on a GPU the answer
        is read while the next chunk runs, :func:`stop_check_lag`). With
        ``cuda_graphs`` on and the memory on a GPU each chunk is one CUDA graph replay
        (tacotron2/cuda_graphs.py).
        """
        if self.cuda_graphs and memory.is_cuda:
            from tacotron2.cuda_graphs import graphed_free_run
            chunks, mel_lengths, not_finished = graphed_free_run(self, memory, memory_lengths)
        else:
            chunks, mel_lengths, not_finished = self.free_run(memory, memory_lengths)
        n_unfinished = int(not_finished.sum())
        if n_unfinished:
            warnings.warn(f"Reached max decoder steps ({self.max_decoder_steps}) before {n_unfinished} "
                          f"of {memory.size(0)} utterance(s) predicted a stop; their mels are cut off",
                          InputWarning, stacklevel=2)
        mel_outputs = torch.cat([mels for mels, _ in chunks]).permute(1, 2, 0)
        alignments = torch.cat([weights for _, weights in chunks]).transpose(0, 1)[:, :, :memory.size(1)]
        if self.early_stopping:
            # frames decoded after the last stop but before the next check are dropped
            n_frames = int(mel_lengths.max())
            mel_outputs, alignments = mel_outputs[:, :, :n_frames], alignments[:, :n_frames]
        return mel_outputs, mel_lengths, alignments

    def chunk_sizes(self) -> list[int]:
        """Steps per chunk up to max_decoder_steps: gate_check_interval each, the last one shorter."""
        k = self.gate_check_interval
        return [min(k, self.max_decoder_steps - start) for start in range(0, self.max_decoder_steps, k)]

    def run_chunks(self, buffers: FreeRunBuffers, run_chunk) -> tuple[list, Tensor, Tensor]:
        """``run_chunk(n_steps)`` fills ``buffers`` chunk after chunk up to max_decoder_steps, stopping
        early once every utterance has -> ([(mels [n, B, 80], alignments [n, B, N]) per chunk],
        mel_lengths, not_finished), copies that outlive the buffers.

        An utterance's length counts its frames up to and including the first whose gate fired
        (the frame the gate target marks as last in training); all of them if none did."""
        chunks, gates, running = [], [], []
        lag = stop_check_lag(buffers.not_finished.device)
        for n_steps in self.chunk_sizes():
            run_chunk(n_steps)
            frames = buffers.frames[:n_steps]
            chunks.append((frames[:, :, :-1].clone(), buffers.alignments[:n_steps].clone()))
            gates.append(frames[:, :, -1].clone())
            if self.early_stopping:
                running.append(AnyRunning(buffers.not_finished))
                if len(running) > lag and not running[-1 - lag]:
                    break
        fired = torch.cat(gates) > self.gate_logit_threshold  # [T, B]
        n_steps = fired.size(0)
        first_fired = torch.where(fired.any(dim=0), fired.int().argmax(dim=0), n_steps - 1)
        return chunks, first_fired.long() + 1, buffers.not_finished.clone()

    def free_run(self, memory: Tensor, memory_lengths: Tensor) -> tuple[list, Tensor, Tensor]:
        """Eager chunks: :meth:`run_chunks` with :meth:`decode_chunk`."""
        buffers = self.free_run_buffers(memory, memory_lengths, self.gate_check_interval)
        return self.run_chunks(buffers, lambda n_steps: self.decode_chunk(buffers, n_steps))


class Postnet(nn.Module):
    """5 convolutions predicting a residual that refines the decoder's mel frames."""

    def __init__(self, n_mel_channels: int, postnet_embedding_dim: int, postnet_kernel_size: int,
                 postnet_n_convolutions: int):
        super().__init__()
        padding = (postnet_kernel_size - 1) // 2
        layers = []
        for i in range(postnet_n_convolutions):
            last = i == postnet_n_convolutions - 1
            in_dim = n_mel_channels if i == 0 else postnet_embedding_dim
            out_dim = n_mel_channels if last else postnet_embedding_dim
            layers.append(nn.Sequential(
                ConvNorm(in_dim, out_dim, postnet_kernel_size, padding=padding,
                         w_init_gain="linear" if last else "tanh"),
                nn.BatchNorm1d(out_dim),
            ))
        self.convolutions = nn.ModuleList(layers)

    def forward(self, x: Tensor) -> Tensor:
        last = len(self.convolutions) - 1
        for i, conv in enumerate(self.convolutions):
            x = conv(x)
            if i < last:
                x = torch.tanh(x)
            x = F.dropout(x, 0.5, self.training)
        return x


class Tacotron2(nn.Module):
    """Text ids -> mel spectrogram. Constructor kwargs are the recipe's config dict keys (reference c.1)."""

    def __init__(self, mask_padding: bool = False, n_mel_channels: int = 80, n_symbols: int = 148,
                 symbols_embedding_dim: int = 512, encoder_kernel_size: int = 5,
                 encoder_n_convolutions: int = 3, encoder_embedding_dim: int = 512,
                 attention_rnn_dim: int = 1024, attention_dim: int = 128,
                 attention_location_n_filters: int = 32, attention_location_kernel_size: int = 31,
                 n_frames_per_step: int = 1, decoder_rnn_dim: int = 1024, prenet_dim: int = 256,
                 max_decoder_steps: int = 2000, gate_threshold: float = 0.5,
                 p_attention_dropout: float = 0.1, p_decoder_dropout: float = 0.1,
                 postnet_embedding_dim: int = 512, postnet_kernel_size: int = 5,
                 postnet_n_convolutions: int = 5, decoder_no_early_stopping: bool = False,
                 uniform_initialize_bn_weight: bool = True):
        super().__init__()
        if n_frames_per_step != 1:
            raise ValueError(f"n_frames_per_step={n_frames_per_step}: only 1 is supported (as in the recipe)")
        if symbols_embedding_dim != encoder_embedding_dim:
            raise ValueError(f"symbols_embedding_dim ({symbols_embedding_dim}) must equal "
                             f"encoder_embedding_dim ({encoder_embedding_dim})")
        self.mask_padding = mask_padding
        self.n_mel_channels = n_mel_channels
        self.n_frames_per_step = n_frames_per_step

        self.embedding = nn.Embedding(n_symbols, symbols_embedding_dim)
        bound = math.sqrt(3.0) * math.sqrt(2.0 / (n_symbols + symbols_embedding_dim))
        nn.init.uniform_(self.embedding.weight, -bound, bound)
        self.encoder = Encoder(encoder_n_convolutions, encoder_embedding_dim, encoder_kernel_size)
        self.decoder = Decoder(
            n_mel_channels, n_frames_per_step, encoder_embedding_dim, attention_dim,
            attention_location_n_filters, attention_location_kernel_size, attention_rnn_dim,
            decoder_rnn_dim, prenet_dim, max_decoder_steps, gate_threshold, p_attention_dropout,
            p_decoder_dropout, early_stopping=not decoder_no_early_stopping,
        )
        self.postnet = Postnet(n_mel_channels, postnet_embedding_dim, postnet_kernel_size,
                               postnet_n_convolutions)
        if uniform_initialize_bn_weight:
            # PyTorch < 1.2 drew BatchNorm weights from U(0, 1); the recipe restores that init
            for module in self.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
                    nn.init.uniform_(module.weight, 0.0, 1.0)

    def _encode(self, text: Tensor, input_lengths: Tensor) -> Tensor:
        return self.encoder(self.embedding(text).transpose(1, 2), input_lengths)

    def forward(self, inputs: tuple) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """inputs = (text_padded, input_lengths, mel_padded, max_len, output_lengths) ->
        (mel_outputs [B,80,T], mel_outputs_postnet [B,80,T], gate_outputs [B,T], alignments [B,T,N])."""
        text, input_lengths, mels, _max_len, output_lengths = inputs
        memory = self._encode(text, input_lengths)
        mel_outputs, gate_outputs, alignments = self.decoder(memory, mels, input_lengths)
        mel_outputs_postnet = mel_outputs + self.postnet(mel_outputs)
        if self.mask_padding:
            padded = ~lengths_to_mask(output_lengths, mel_outputs.size(2))
            mel_outputs = mel_outputs.masked_fill(padded.unsqueeze(1), 0.0)
            mel_outputs_postnet = mel_outputs_postnet.masked_fill(padded.unsqueeze(1), 0.0)
            gate_outputs = gate_outputs.masked_fill(padded, 1e3)  # sigmoid -> 1: "stopped"
        return mel_outputs, mel_outputs_postnet, gate_outputs, alignments

    def cast_for_inference(self, dtype: torch.dtype) -> "Tacotron2":
        """Weights cast once to ``dtype`` (fp16/bf16), the recipe's inference ``--fp16``.

        Unlike autocast this adds no cast kernels to a decoder step (a step is ~40 small launches at
        batch 1, so casts cost time) and nothing to re-cast inside a CUDA graph. What must stay
        float32 already does whatever the weights' dtype: the attention softmax and its weights
        (plain and cumulative); the stop decision compares gate logits with logit(threshold).
        """
        return self.to(dtype)

    @torch.no_grad()
    def infer(self, text: Tensor, input_lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Batched synthesis in the caller's order ->
        (mel_outputs_postnet [B,80,T], mel_lengths [B] long, alignments [B,T,N])."""
        memory = self._encode(text, input_lengths)
        mel_outputs, mel_lengths, alignments = self.decoder.infer(memory, input_lengths)
        mel_outputs_postnet = mel_outputs + self.postnet(mel_outputs)
        return mel_outputs_postnet, mel_lengths, alignments
