"""Fourier targets of patches, rebuilding a patch from amplitude and phase, and the spectral loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch

EPS = 1e-3


@dataclass
class SpectralTargets:
    """rFFT of each patch: log-amplitude, unit phase (cos, sin) and amplitude weights."""

    log_amp: torch.Tensor   # (..., F)
    cos: torch.Tensor       # (..., F)
    sin: torch.Tensor       # (..., F)
    amp: torch.Tensor       # (..., F)

    @classmethod
    def of(cls, patches: torch.Tensor) -> SpectralTargets:
        spec = torch.fft.rfft(patches.float(), dim=-1, norm="ortho")
        amp = spec.abs()
        phase = torch.angle(spec)
        return cls(torch.log(amp + EPS), phase.cos(), phase.sin(), amp)


def rebuild_patch(log_amp: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, n_times: int) -> torch.Tensor:
    """Inverse rFFT of ``exp(log_amp) · (cos + i sin)/|(cos, sin)|`` → (..., n_times)."""
    norm = torch.sqrt(cos**2 + sin**2 + 1e-8)
    amp = (torch.exp(log_amp) - EPS).clamp_min(0.0)
    spec = torch.complex(amp * cos / norm, amp * sin / norm)
    return torch.fft.irfft(spec, n=n_times, dim=-1, norm="ortho")


def spectral_loss(pred_log_amp: torch.Tensor, pred_cos: torch.Tensor, pred_sin: torch.Tensor, target: SpectralTargets,
                  valid: torch.Tensor | None = None, phase_weighting: str = "amplitude") -> dict[str, torch.Tensor]:
    """Amplitude MSE, phase (1 − cosine) and the unit-circle penalty, averaged over valid tokens.

    ``phase_weighting="amplitude"`` weights each bin's phase error by its share of the patch's
    amplitude, so bins that hold only noise floor do not dominate; ``"uniform"`` averages bins equally.
    """
    def mean(t: torch.Tensor) -> torch.Tensor:
        if valid is None:
            return t.mean()
        w = valid.to(t.dtype)
        return (t * w).sum() / w.sum().clamp_min(1.0)

    amp_loss = mean(((pred_log_amp - target.log_amp) ** 2).mean(-1))
    norm = torch.sqrt(pred_cos**2 + pred_sin**2 + 1e-8)
    cos_sim = (pred_cos * target.cos + pred_sin * target.sin) / norm
    if phase_weighting == "amplitude":
        w = target.amp / target.amp.sum(-1, keepdim=True).clamp_min(1e-8)
        phase = ((1 - cos_sim) * w).sum(-1)
    else:
        phase = (1 - cos_sim).mean(-1)
    unit = ((pred_cos**2 + pred_sin**2 - 1) ** 2).mean(-1)
    return dict(amp=amp_loss, phase=mean(phase), unit=mean(unit))


def multi_resolution_stft_loss(pred: torch.Tensor, target: torch.Tensor, n_ffts: tuple[int, ...] = (16, 32, 64, 128),
                               eps: float = 1e-3) -> torch.Tensor:
    """Mean over resolutions of the L1 distance of log STFT magnitudes (SoundStream / EnCodec / DAC).

    ``pred`` and ``target`` are (N, T) signals (e.g. z-scored channel-windows); each resolution uses a Hann
    window of ``n_fft`` samples and a hop of ``n_fft // 4``. Zero for identical signals; grows with any
    change of the spectrogram, and on the log scale low-power (high) bands count as much as strong ones.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    total = pred.new_zeros(())
    used = [n for n in n_ffts if n <= pred.shape[-1]]
    for n_fft in used:
        win = torch.hann_window(n_fft, device=pred.device, dtype=pred.dtype)
        spec = torch.stft(torch.cat([pred, target]), n_fft, hop_length=max(n_fft // 4, 1), window=win,
                          center=False, return_complex=True).abs()
        p, t = spec.chunk(2)
        total = total + (torch.log(p + eps) - torch.log(t + eps)).abs().mean()
    return total / max(len(used), 1)
