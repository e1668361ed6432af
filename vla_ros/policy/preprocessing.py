"""Camera images -> model input, on the policy's device.

Each HxWx3 uint8 image is uploaded once as uint8 (a quarter of the bytes of float32), then on the
device: resized preserving the aspect ratio so it fits the model's square resolution, and padded
with black, centred (a stretched image would distort the geometry the policy learned). The result
stays uint8 [3, S, S]; the model normalises it with its own mean/std in its compute dtype, so a
training batch can hold thousands of images compactly.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F


def resize_with_pad(image: torch.Tensor, size: int, pad_value: int = 0) -> torch.Tensor:
    """uint8 [3, H, W] -> uint8 [3, size, size]: scale by min(size/H, size/W), pad the rest evenly."""
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"resize_with_pad: expected [3, H, W], got {tuple(image.shape)}")
    _, h, w = image.shape
    if h == size and w == size:
        return image
    scale = min(size / h, size / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    x = image
    if (nh, nw) != (h, w):
        aa = nh < h or nw < w  # antialias when shrinking
        if image.device.type == "cpu":  # torch's uint8 bilinear kernel: no float round trip
            x = F.interpolate(image[None], size=(nh, nw), mode="bilinear", align_corners=False, antialias=aa)[0]
        else:
            x = F.interpolate(image[None].to(torch.float32), size=(nh, nw), mode="bilinear", align_corners=False,
                              antialias=aa)
            x = x.round_().clamp_(0, 255).to(torch.uint8)[0]
    top, left = (size - nh) // 2, (size - nw) // 2
    out = torch.full((3, size, size), pad_value, dtype=torch.uint8, device=image.device)
    out[:, top:top + nh, left:left + nw] = x
    return out


class ImagePreprocessor:
    """Observation images -> (uint8 [C, 3, S, S], present mask [C]) on `device`, cameras in `cameras` order."""

    def __init__(self, cameras: Sequence[str], size: int, device: str | torch.device = "cpu"):
        self.cameras = tuple(cameras)
        self.size = int(size)
        self.device = torch.device(device)

    def image(self, rgb: np.ndarray) -> torch.Tensor:
        """One HxWx3 uint8 RGB image -> uint8 [3, S, S] on the device."""
        if not (isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3):
            raise ValueError(f"image: expected HxWx3 uint8 RGB, got {getattr(rgb, 'shape', None)} {getattr(rgb, 'dtype', type(rgb))}")
        t = torch.from_numpy(np.ascontiguousarray(rgb)).to(self.device, non_blocking=True)  # one uint8 upload
        return resize_with_pad(t.permute(2, 0, 1), self.size)

    def __call__(self, images: Mapping[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        out = torch.zeros((len(self.cameras), 3, self.size, self.size), dtype=torch.uint8, device=self.device)
        present = torch.zeros(len(self.cameras), dtype=torch.bool)
        for i, name in enumerate(self.cameras):
            img = images.get(name)
            if img is not None:
                try:
                    out[i] = self.image(img)
                except ValueError as exc:
                    raise ValueError(f"observation.images[{name!r}]: {exc}") from None
                present[i] = True
        return out, present.to(self.device)
