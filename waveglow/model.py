"""WaveGlow (Prenger et al., 2019) as in NVIDIA's DLE recipe (reference-dle c.2).

State-dict names, order and shapes equal NVIDIA's checkpoints: per-layer ``cond_layers`` and the
legacy weight-norm parameters ``weight_g``/``weight_v``. The audio path (z, the 1x1 convolutions,
the affine coupling) always runs in float32; only the mel upsampler and the WaveNet-like ``WN``
blocks follow autocast or the module dtype, which keeps log-determinants and the inverse exact
under mixed precision.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

# The recipe hard-codes the upsampler: kernel 1024, stride = hop 256.
UPSAMPLE_KERNEL = 1024
UPSAMPLE_STRIDE = 256


def _norm_per_output(weight: torch.Tensor) -> torch.Tensor:
    """L2 norm over all dims but the first, shaped ``[out, 1, 1]`` (legacy ``weight_g``)."""
    return weight.float().norm(dim=tuple(range(1, weight.dim())), keepdim=True).to(weight.dtype)


class WeightNormConv1d(nn.Conv1d):
    """``Conv1d`` with weight norm under the legacy names ``weight_g`` [out,1,1] and ``weight_v``.

    Equivalent to ``torch.nn.utils.weight_norm(conv)`` (same parameters, same registration order
    ``bias, weight_g, weight_v``) without its deprecation warning. :meth:`fold` turns the pair into
    a plain ``weight``. Either form loads a state dict saved by the other.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        weight = self.weight.detach()
        del self._parameters["weight"]
        self.weight_g = nn.Parameter(_norm_per_output(weight))
        self.weight_v = nn.Parameter(weight.clone())
        self.folded = False

    def effective_weight(self) -> torch.Tensor:
        """``g * v / ||v||`` (or the folded weight)."""
        if self.folded:
            return self.weight
        return torch._weight_norm(self.weight_v, self.weight_g, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.effective_weight(), self.bias)

    @torch.no_grad()
    def fold(self) -> None:
        """Replace ``weight_g``/``weight_v`` by the ``weight`` they define (for inference)."""
        if self.folded:
            return
        weight = torch._weight_norm(self.weight_v.float(), self.weight_g.float(), 0)
        weight = weight.to(self.weight_v.dtype)
        del self._parameters["weight_g"], self._parameters["weight_v"]
        self.weight = nn.Parameter(weight)
        self.folded = True

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        w, g, v = prefix + "weight", prefix + "weight_g", prefix + "weight_v"
        # Module.load_state_dict passes a copy, so rewriting the keys here is safe.
        if self.folded and g in state_dict and v in state_dict and w not in state_dict:
            g_value, v_value = state_dict.pop(g), state_dict.pop(v)
            state_dict[w] = torch._weight_norm(v_value.float(), g_value.float(), 0)
        elif not self.folded and w in state_dict and g not in state_dict and v not in state_dict:
            weight = state_dict.pop(w)
            state_dict[v] = weight
            state_dict[g] = _norm_per_output(weight.float())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class Invertible1x1Conv(nn.Module):
    """Channel mixing ``z -> W z``, W initially a rotation (orthogonal, det > 0); float32."""

    def __init__(self, n_channels: int):
        super().__init__()
        self.conv = nn.Conv1d(n_channels, n_channels, kernel_size=1, bias=False)
        with torch.no_grad():
            weight = torch.linalg.qr(torch.randn(n_channels, n_channels, device="cpu"))[0]
            if torch.det(weight) < 0:
                weight[:, 0] = -weight[:, 0]
            self.conv.weight.copy_(weight.unsqueeze(-1))
        self._inverse_key: tuple | None = None
        self._inverse: torch.Tensor | None = None

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``z [B, c, T] -> (W z [B, c, T] float32, B * T * log|det W| float32 scalar)``."""
        batch_size, _, n_steps = z.shape
        with torch.autocast(device_type=z.device.type, enabled=False):
            weight = self.conv.weight.squeeze(-1).float()
            # matmul, not conv1d: cuDNN may run float32 convolutions in TF32.
            z = torch.matmul(weight, z.float())
            log_det_w = torch.linalg.slogdet(weight)[1] * (batch_size * n_steps)
        return z, log_det_w

    def inverse_weight(self) -> torch.Tensor:
        """``W^-1`` in float32; in eval mode cached until the weight changes.

        A change is seen through the weight's version counter (in-place updates, load_state_dict)
        and its storage (``.to()``). Fused optimizers update in place without bumping the counter,
        so training mode never caches and ``train()``/``eval()`` drop the cache.
        """
        weight = self.conv.weight
        key = (weight._version, weight.data_ptr(), weight.device, weight.dtype)
        if self.training or key != self._inverse_key or self._inverse is None:
            # A normal (not inference-mode) tensor, so later autograd-enabled calls may use it.
            with torch.inference_mode(False), torch.no_grad():
                inverse = torch.linalg.inv_ex(weight.detach().squeeze(-1).float())[0]
            if self.training:
                return inverse
            self._inverse, self._inverse_key = inverse, key
        return self._inverse

    def train(self, mode: bool = True) -> "Invertible1x1Conv":
        self._inverse_key, self._inverse = None, None
        return super().train(mode)

    def reverse(self, z: torch.Tensor) -> torch.Tensor:
        """``W^-1 z`` in float32."""
        with torch.autocast(device_type=z.device.type, enabled=False):
            return torch.matmul(self.inverse_weight(), z.float())


def gated_activation(in_act: torch.Tensor, conditioning: torch.Tensor, n_channels: int,
                     dim: int = 1) -> torch.Tensor:
    """WaveNet's gate ``tanh(a[:, :C]) * sigmoid(a[:, C:])`` of ``a = in_act + conditioning``
    (channels along ``dim``: 1 for ``[B, 2C, T]``, -1 for time-major ``[B, T, 2C]``)."""
    acts = in_act + conditioning
    return torch.tanh(acts.narrow(dim, 0, n_channels)) * torch.sigmoid(acts.narrow(dim, n_channels, n_channels))


@functools.cache
def compiled_gated_activation():
    """:func:`gated_activation` through ``torch.compile``: one kernel that reads the two inputs once
    and writes the half-size output, instead of four that each go through memory (for 512 channels at
    batch 1 that is ~150 MB less traffic per layer of a 7-second utterance). Compiled on first use,
    shared by every WN block; dynamic shapes, so new lengths do not recompile."""
    return torch.compile(gated_activation, dynamic=True)


@functools.cache
def compiled_block():
    """:meth:`WN.layers` through ``torch.compile`` (WaveGlow.compile_blocks): the whole block, so that
    between its convolutions (cuBLAS/cuDNN) each layer's elementwise work, the conditioning add and
    gate, the residual and skip sums with their biases, and in training the weight norms and the
    backward of all of it, runs as a few fused kernels. Made once and shared by every block (modules
    are inlined, their weights inputs): one graph per input channel count (the weights' shapes fix
    it: 4, 3 and 2 in the recipe's model). Synthesis has symbolic lengths, so a new length does not
    recompile; training's backward specialises on the length, which its fixed segments keep."""
    return torch.compile(WN.layers, dynamic=True)


class WN(nn.Module):
    """WaveNet-like coupling net: ``(audio [B, n_in, T], cond [B, n_cond, T]) -> [B, 2 n_in, T]``.

    Output channels ``[:n_in]`` are the shift b, ``[n_in:]`` the log-scale log_s.
    """

    def __init__(self, n_in_channels: int, n_cond_channels: int, n_layers: int, n_channels: int,
                 kernel_size: int):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"WN kernel_size must be odd, got {kernel_size}")
        self.n_layers = n_layers
        self.n_channels = n_channels
        self.compile_gate = False  # WaveGlow.compile_gates()
        self.compile_block = False  # WaveGlow.compile_blocks()
        self.time_major = False  # WaveGlow.use_time_major()
        # Registration order fixes the state-dict order: in, res_skip, cond, start, end.
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        self.cond_layers = nn.ModuleList()
        self.start = WeightNormConv1d(n_in_channels, n_channels, 1)
        # Zero init: every coupling starts as the identity.
        self.end = nn.Conv1d(n_channels, 2 * n_in_channels, 1)
        nn.init.zeros_(self.end.weight)
        nn.init.zeros_(self.end.bias)
        for i in range(n_layers):
            dilation = 2 ** i
            padding = (kernel_size * dilation - dilation) // 2
            self.in_layers.append(WeightNormConv1d(n_channels, 2 * n_channels, kernel_size,
                                                   dilation=dilation, padding=padding))
            self.cond_layers.append(WeightNormConv1d(n_cond_channels, 2 * n_channels, 1))
            res_skip_channels = 2 * n_channels if i < n_layers - 1 else n_channels
            self.res_skip_layers.append(WeightNormConv1d(n_channels, res_skip_channels, 1))

    def _all_conditioning_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every layer's ``cond_layer`` as one convolution ``[L*2C, n_cond, 1]``, and its bias plus the
        ``in_layer`` biases: one wide GEMM instead of n_layers narrow ones, few kernel launches (the
        norm is per output channel, so normalising the concatenation equals concatenating the
        normalised weights)."""
        layers = self.cond_layers
        if any(layer.folded for layer in layers):
            weight = torch.cat([layer.effective_weight() for layer in layers])
        else:
            weight = torch._weight_norm(torch.cat([layer.weight_v for layer in layers]),
                                        torch.cat([layer.weight_g for layer in layers]), 0)
        bias = (torch.cat([layer.bias for layer in self.cond_layers])
                + torch.cat([layer.bias for layer in self.in_layers]))
        return weight, bias

    def forward(self, audio: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """With ``time_major`` (WaveGlow.use_time_major) the activations are ``[B, T, C]`` and every
        convolution a GEMM over the channels (:func:`convolve`): the same parameters and the same
        numbers up to summation order. ``cond`` is then fastest stored as ``[B, T, n_cond]`` (WaveGlow
        passes it that way, transposed), and the result is a transposed view of a time-major tensor."""
        if self.compile_block:
            return compiled_block()(self, audio, cond, self.time_major, gated_activation)
        gate = compiled_gated_activation() if self.compile_gate else gated_activation
        return self.layers(audio, cond, self.time_major, gate)

    def layers(self, audio: torch.Tensor, cond: torch.Tensor, time_major: bool, gate) -> torch.Tensor:
        """:meth:`forward` with its layout and gate function given."""
        n_channels = self.n_channels
        channel_dim = -1 if time_major else 1
        if time_major:
            audio, cond = audio.transpose(1, 2), cond.transpose(1, 2)
        x = convolve(audio, self.start.effective_weight(), self.start.bias, 1, time_major)
        conditioning = convolve(cond, *self._all_conditioning_weights(), 1, time_major)
        conditioning = conditioning.split(2 * n_channels, dim=channel_dim)
        skip = None
        for i in range(self.n_layers):
            in_layer, res_skip_layer = self.in_layers[i], self.res_skip_layers[i]
            # in_layer's bias is already in `conditioning`.
            in_act = convolve(x, in_layer.effective_weight(), None, in_layer.dilation[0], time_major)
            acts = gate(in_act, conditioning[i], n_channels, channel_dim)
            res_skip = convolve(acts, res_skip_layer.effective_weight(), res_skip_layer.bias, 1, time_major)
            if i < self.n_layers - 1:
                x = x + res_skip.narrow(channel_dim, 0, n_channels)
                res_skip = res_skip.narrow(channel_dim, n_channels, n_channels)
            skip = res_skip if skip is None else skip + res_skip
        output = convolve(skip, self.end.weight, self.end.bias, 1, time_major)
        return output.transpose(1, 2) if time_major else output


def convolve(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dilation: int,
             time_major: bool) -> torch.Tensor:
    """'Same'-padded dilated convolution of ``x [B, C, T]`` by ``weight [O, C, K]``; with
    ``time_major``, of ``x [B, T, C]`` as a GEMM -> ``[B, T, O]`` (a 1x1 is a linear layer, a wider
    kernel a GEMM over the K shifted copies of x side by side)."""
    kernel_size = weight.size(2)
    if not time_major:
        return F.conv1d(x, weight, bias, padding=dilation * (kernel_size - 1) // 2, dilation=dilation)
    if kernel_size == 1:
        return F.linear(x, weight.squeeze(-1), bias)
    output = shifted_taps(x, kernel_size, dilation) @ tap_major(weight)
    return output if bias is None else output + bias


def tap_major(weight: torch.Tensor) -> torch.Tensor:
    """A convolution weight ``[O, C, K]`` as ``[K*C, O]``, tap k's rows at ``k*C .. (k+1)*C``."""
    out_channels, in_channels, kernel_size = weight.shape
    return weight.permute(2, 1, 0).reshape(kernel_size * in_channels, out_channels)


def shifted_taps(x: torch.Tensor, kernel_size: int, dilation: int) -> torch.Tensor:
    """``x [B, T, C]`` -> ``[B, T, K*C]``: tap k holds x shifted by ``(k - K//2) * dilation`` steps
    (zeros past the ends), so ``shifted_taps(x) @ tap_major(w)`` is the 'same'-padded dilated
    convolution of x by w."""
    half = dilation * (kernel_size - 1) // 2
    n_steps = x.size(1)
    padded = F.pad(x, (0, 0, half, half))
    return torch.cat([padded[:, k * dilation:k * dilation + n_steps] for k in range(kernel_size)], dim=2)


class WaveGlow(nn.Module):
    """Flow from audio to Gaussian noise conditioned on a log-mel spectrogram."""

    def __init__(self, n_mel_channels: int, n_flows: int, n_group: int, n_early_every: int,
                 n_early_size: int, WN_config: dict):
        super().__init__()
        if n_group % 2 != 0:
            raise ValueError(f"n_group must be even, got {n_group}")
        self.upsample = nn.ConvTranspose1d(n_mel_channels, n_mel_channels, UPSAMPLE_KERNEL,
                                           stride=UPSAMPLE_STRIDE)
        self.n_flows = n_flows
        self.n_group = n_group
        self.n_early_every = n_early_every
        self.n_early_size = n_early_size
        self.WN = nn.ModuleList()
        self.convinv = nn.ModuleList()
        n_remaining = n_group
        for k in range(n_flows):
            if self._splits_before(k):
                n_remaining -= n_early_size
            self.convinv.append(Invertible1x1Conv(n_remaining))
            self.WN.append(WN(n_remaining // 2, n_mel_channels * n_group, **WN_config))
        self.n_remaining_channels = n_remaining
        self.time_major = False  # use_time_major()

    def _splits_before(self, k: int) -> bool:
        return k > 0 and k % self.n_early_every == 0

    def _conditioning(self, mel: torch.Tensor, n_samples: int | None) -> torch.Tensor:
        """``mel [B, n_mel, F]`` -> grouped upsampled mel ``[B, n_mel * n_group, T']`` (contiguous).

        ``n_samples``: crop to the training audio length; None: cut the transposed convolution's
        tail (kernel - stride samples) so F frames give ``stride * F`` samples.
        """
        upsampled = self.upsample(mel.to(self.upsample.weight.dtype))
        if n_samples is None:
            upsampled = upsampled[:, :, :upsampled.size(2) - (UPSAMPLE_KERNEL - UPSAMPLE_STRIDE)]
        else:
            if upsampled.size(2) < n_samples:
                raise ValueError(f"{mel.size(2)} mel frames upsample to {upsampled.size(2)} "
                                 f"samples, fewer than the {n_samples} audio samples")
            upsampled = upsampled[:, :, :n_samples]
        batch_size, n_mel, _ = upsampled.shape
        grouped = upsampled.unfold(2, self.n_group, self.n_group)  # [B, n_mel, T', group]
        # Channel index = mel_channel * n_group + position, as NVIDIA's weights expect.
        if self.time_major:  # stored [B, T', channels]: what every time-major WN reads
            return grouped.permute(0, 2, 1, 3).reshape(batch_size, -1, n_mel * self.n_group).transpose(1, 2)
        grouped = grouped.permute(0, 1, 3, 2).reshape(batch_size, n_mel * self.n_group, -1)
        return grouped.contiguous()

    def forward(self, inputs: tuple[torch.Tensor, torch.Tensor]
                ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """``(mel [B, n_mel, F], audio [B, L])`` -> ``(z, log_s_list, log_det_W_list)``.

        z ``[B, n_group, L / n_group]`` is float32 and holds the early outputs first (in split
        order), then the remaining channels. log_s and log-determinants are float32 as well.
        """
        mel, audio = inputs
        n_samples = audio.size(1) - audio.size(1) % self.n_group
        cond = self._conditioning(mel, n_samples)
        audio = audio[:, :n_samples].float().unfold(1, self.n_group, self.n_group).permute(0, 2, 1)
        early_outputs, log_s_list, log_det_w_list = [], [], []
        for k in range(self.n_flows):
            if self._splits_before(k):
                early_outputs.append(audio[:, :self.n_early_size])
                audio = audio[:, self.n_early_size:]
            audio, log_det_w = self.convinv[k](audio)
            log_det_w_list.append(log_det_w)
            n_half = audio.size(1) // 2
            audio_0, audio_1 = audio[:, :n_half], audio[:, n_half:]
            output = self.WN[k](audio_0.to(cond.dtype), cond).float()
            shift, log_s = output[:, :n_half], output[:, n_half:]
            audio_1 = torch.exp(log_s) * audio_1 + shift
            log_s_list.append(log_s)
            audio = torch.cat([audio_0, audio_1], dim=1)
        early_outputs.append(audio)
        return torch.cat(early_outputs, dim=1), log_s_list, log_det_w_list

    def reverse(self, mel: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Invert the flow: ``(mel [B, n_mel, F], z [B, n_group, 256 F / n_group]) -> [B, 256 F]``.

        z is laid out as :meth:`forward` returns it, so ``reverse(mel, forward((mel, audio))[0])``
        gives back ``audio`` (for audio of ``stride * F`` samples).
        """
        cond = self._conditioning(mel, None)
        if z.shape != (cond.size(0), self.n_group, cond.size(2)):
            raise ValueError(f"z must have shape {(cond.size(0), self.n_group, cond.size(2))} "
                             f"for this mel, got {tuple(z.shape)}")
        z = z.float()
        n_taken = self.n_group - self.n_remaining_channels
        audio = z[:, n_taken:]
        for k in reversed(range(self.n_flows)):
            n_half = audio.size(1) // 2
            audio_0, audio_1 = audio[:, :n_half], audio[:, n_half:]
            output = self.WN[k](audio_0.to(cond.dtype), cond).float()
            shift, log_s = output[:, :n_half], output[:, n_half:]
            audio_1 = (audio_1 - shift) * torch.exp(-log_s)
            audio = self.convinv[k].reverse(torch.cat([audio_0, audio_1], dim=1))
            if self._splits_before(k):
                audio = torch.cat([z[:, n_taken - self.n_early_size:n_taken], audio], dim=1)
                n_taken -= self.n_early_size
        return audio.permute(0, 2, 1).reshape(audio.size(0), -1)

    def infer(self, mel: torch.Tensor, sigma: float = 1.0, z: torch.Tensor | None = None
              ) -> torch.Tensor:
        """Synthesise audio ``[B, stride * F]`` (float32) from ``mel [B, n_mel, F]``.

        z defaults to ``sigma * N(0, 1)``; pass it to make the output deterministic.
        """
        if z is None:
            n_steps = mel.size(2) * UPSAMPLE_STRIDE // self.n_group
            z = sigma * torch.randn(mel.size(0), self.n_group, n_steps, device=mel.device)
        return self.reverse(mel, z)

    def use_time_major(self, enabled: bool = True) -> "WaveGlow":
        """Run the WN blocks on time-major activations ``[B, T, C]``, their convolutions as GEMMs
        (experimental, for GPUs whose convolution kernels want channels last; scripts/wn_conv_layouts.py
        measures it). Same parameters and checkpoints; same outputs up to summation order."""
        self.time_major = enabled
        for coupling in self.WN:
            coupling.time_major = enabled
        return self

    def compile_gates(self, enabled: bool = True) -> "WaveGlow":
        """Run every WN block's gate through :func:`compiled_gated_activation` (torch.compile; needs
        Triton on a GPU or a C++ compiler on the CPU). Same outputs up to float rounding."""
        for coupling in self.WN:
            coupling.compile_gate = enabled
        return self

    def compile_blocks(self, enabled: bool = True) -> "WaveGlow":
        """Run every WN block whole through :func:`compiled_block` (torch.compile; needs Triton on a GPU
        or a C++ compiler on the CPU): --wn-compile-block. Same outputs up to float rounding."""
        for coupling in self.WN:
            coupling.compile_block = enabled
        return self

    def cast_for_inference(self, dtype: torch.dtype) -> "WaveGlow":
        """Upsampler and WN blocks cast once to ``dtype`` (fp16/bf16), the recipe's inference ``--fp16``;
        the 1x1 convolutions stay float32 (their inverses are computed and applied in float32)."""
        self.to(dtype)
        for conv in self.convinv:
            conv.float()
        return self

    def remove_weightnorm(self) -> "WaveGlow":
        """Fold each weight norm into a plain ``weight`` (638 state-dict entries); same outputs.

        Also callable NVIDIA's way, ``WaveGlow.remove_weightnorm(model)``.
        """
        for module in self.modules():
            if isinstance(module, WeightNormConv1d):
                module.fold()
        return self


def remove_weightnorm(model: WaveGlow) -> WaveGlow:
    """Function form of :meth:`WaveGlow.remove_weightnorm`."""
    return model.remove_weightnorm()
