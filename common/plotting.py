"""Training figures drawn off-screen with matplotlib's Agg canvas -> ``[H, W, 3]`` uint8 arrays.

Figures are built with ``matplotlib.figure.Figure`` directly, never through ``pyplot``: no global
figure registry to leak, no GUI backend chosen behind our back, safe on headless machines.
The arrays go to TensorBoard (``Logger.image``) and to PNG files (:func:`save_png`).
"""

from __future__ import annotations

import io
import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from common.checkpoint import atomic_write

FIGSIZE = (10, 4)
DPI = 80


def _to_numpy(values) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().float().cpu().numpy()
    # a diverging model must not crash training at validation; inf would also wreck colour scales
    return np.nan_to_num(np.asarray(values, dtype=np.float32), posinf=0.0, neginf=0.0)


def _new_figure(n_rows: int = 1, figsize=FIGSIZE) -> tuple[Figure, list]:
    figure = Figure(figsize=figsize, dpi=DPI)
    FigureCanvasAgg(figure)
    axes = [figure.add_subplot(n_rows, 1, row + 1) for row in range(n_rows)]
    return figure, axes


def figure_to_array(figure: Figure) -> np.ndarray:
    """Render a figure -> ``[H, W, 3]`` uint8 RGB."""
    canvas = figure.canvas if isinstance(figure.canvas, FigureCanvasAgg) else FigureCanvasAgg(figure)
    canvas.draw()
    return np.array(canvas.buffer_rgba(), dtype=np.uint8)[:, :, :3]


def _finish(figure: Figure) -> np.ndarray:
    figure.tight_layout()
    return figure_to_array(figure)


def plot_alignment(alignment, title: str | None = None) -> np.ndarray:
    """Attention ``[decoder steps, tokens]``: steps along x, tokens along y (origin lower left)."""
    alignment = _to_numpy(alignment)
    figure, (axes,) = _new_figure(figsize=(6, 4))
    image = axes.imshow(alignment.T, aspect="auto", origin="lower", interpolation="none",
                        vmin=0.0, vmax=max(float(alignment.max(initial=0.0)), 1e-6))
    figure.colorbar(image, ax=axes)
    axes.set_xlabel("decoder step")
    axes.set_ylabel("encoder token")
    if title:
        axes.set_title(title)
    return _finish(figure)


def _mel_axes(axes, mel: np.ndarray, title: str, figure: Figure) -> None:
    image = axes.imshow(mel, aspect="auto", origin="lower", interpolation="none")
    figure.colorbar(image, ax=axes)
    axes.set_title(title)
    axes.set_ylabel("mel channel")


def plot_mel_pair(predicted, target) -> np.ndarray:
    """Predicted above target, both ``[n_mel, frames]`` log-mels, on one colour scale."""
    predicted, target = _to_numpy(predicted), _to_numpy(target)
    figure, (top, bottom) = _new_figure(2, figsize=(10, 6))
    _mel_axes(top, predicted, "predicted mel", figure)
    _mel_axes(bottom, target, "target mel", figure)
    low, high = float(min(predicted.min(), target.min())), float(max(predicted.max(), target.max()))
    for axes in (top, bottom):
        axes.images[0].set_clim(low, high)
    bottom.set_xlabel("frame")
    return _finish(figure)


def plot_gate(predicted_probability, target) -> np.ndarray:
    """Stop-token probability per frame against its 0/1 target."""
    predicted, target = _to_numpy(predicted_probability), _to_numpy(target)
    figure, (axes,) = _new_figure()
    frames = np.arange(len(target))
    axes.scatter(frames, target, color="green", marker="+", s=8, label="target")
    axes.scatter(frames, predicted, color="red", marker=".", s=4, label="predicted")
    axes.set_ylim(-0.05, 1.05)
    axes.set_xlabel("frame")
    axes.set_ylabel("stop probability")
    axes.legend(loc="upper left")
    return _finish(figure)


def plot_waveform_and_mel(audio, mel, sampling_rate: int, title: str = "synthesis",
                          reference=None) -> np.ndarray:
    """A waveform (seconds on x; ``reference`` audio in grey behind it) above the
    ``[n_mel, frames]`` mel it was made from."""
    audio, mel = _to_numpy(audio).reshape(-1), _to_numpy(mel)
    figure, (top, bottom) = _new_figure(2, figsize=(10, 6))
    if reference is not None:
        reference = _to_numpy(reference).reshape(-1)
        top.plot(np.arange(len(reference)) / sampling_rate, reference, color="0.6", linewidth=0.5,
                 label="reference")
    top.plot(np.arange(len(audio)) / sampling_rate, audio, linewidth=0.5, label="synthesis")
    if reference is not None:
        top.legend(loc="upper right")
    top.set_xlim(0, max(len(audio), 1) / sampling_rate)
    top.set_xlabel("seconds")
    top.set_ylabel("amplitude")
    top.set_title(title)
    _mel_axes(bottom, mel, "input mel", figure)
    bottom.set_xlabel("frame")
    return _finish(figure)


def save_png(path: str, image) -> None:
    """Write an ``[H, W, 3]`` (or ``[H, W]``) uint8 array as a PNG, atomically."""
    from matplotlib import image as mpl_image

    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"save_png expects an [H, W(, C)] uint8 array, got {image.dtype} {image.shape}")
    buffer = io.BytesIO()
    mpl_image.imsave(buffer, image, format="png", cmap="gray" if image.ndim == 2 else None)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_write(path) as f:
        f.write(buffer.getvalue())
