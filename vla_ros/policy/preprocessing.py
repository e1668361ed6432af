"""Camera images -> model input, on the policy's device.

Each HxWx3 uint8 image is uploaded once as uint8 (a quarter of the bytes of float32), then on the
device: resized preserving the aspect ratio so it fits the model's square resolution, and padded
with black, centred (a stretched image would distort the geometry the policy learned). The result
stays uint8 [3, S, S]; the model normalises it with its own mean/std in its compute dtype, so a
training batch can hold thousands of images compactly.

Pretrained openpi / LeRobot checkpoints saw images resized differently (config
``io.image_resize: bilinear``): float [0, 1] pixels, bilinear without antialias, sizes truncated
(``int(h / ratio)``), clamped to [0, 1], zero-padded centred with the odd pixel at the bottom/right
(`resize_with_pad_float`, a copy of their ``resize_with_pad_torch``). SmolVLA pads on the top and
left instead and does not clamp (``bilinear_top_left``, `resize_with_pad_top_left`). Those images
stay float32, because rounding them back to uint8 would lose the reference's numbers.
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
    ratio = max(w / size, h / size)  # openpi / tf.image.resize_with_pad: sizes truncated, not rounded
    nh, nw = max(1, int(h / ratio)), max(1, int(w / ratio))
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


def resize_with_pad_top_left(images: torch.Tensor, size: int) -> torch.Tensor:
    """float [..., 3, H, W] in [0, 1] -> float32 [..., 3, size, size], SmolVLA's resize-with-pad.

    The same sizes as `resize_with_pad_float` (ratio = max(W / size, H / size), truncated), bilinear
    without antialias, NOT clamped, and the padding (zeros) all on the top and the left: the image
    sits in the bottom-right corner. An image already at size x size is returned as it is.
    """
    if images.dim() < 3 or images.shape[-3] != 3:
        raise ValueError(f"resize_with_pad_top_left: expected [..., 3, H, W], got {tuple(images.shape)}")
    lead = images.shape[:-3]
    x = images.reshape(-1, *images.shape[-3:]).to(torch.float32)
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x.reshape(*lead, 3, size, size)
    ratio = max(w / size, h / size)
    nh, nw = int(h / ratio), int(w / ratio)
    x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False)
    x = F.pad(x, (max(0, size - nw), 0, max(0, size - nh), 0), mode="constant", value=0.0)
    return x.reshape(*lead, 3, size, size)


def resize_with_pad_float(images: torch.Tensor, size: int) -> torch.Tensor:
    """float [..., 3, H, W] in [0, 1] -> float32 [..., 3, size, size], openpi/LeRobot's resize-with-pad.

    ratio = max(W / size, H / size); the image becomes int(H / ratio) x int(W / ratio) by bilinear
    interpolation without antialias (align_corners False), is clamped to [0, 1] and zero-padded,
    centred, the odd pixel going to the bottom / right.
    """
    if images.dim() < 3 or images.shape[-3] != 3:
        raise ValueError(f"resize_with_pad_float: expected [..., 3, H, W], got {tuple(images.shape)}")
    lead = images.shape[:-3]
    x = images.reshape(-1, *images.shape[-3:]).to(torch.float32)
    h, w = x.shape[-2:]
    ratio = max(w / size, h / size)
    nh, nw = int(h / ratio), int(w / ratio)
    x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False).clamp(0.0, 1.0)
    top, extra_h = divmod(size - nh, 2)
    left, extra_w = divmod(size - nw, 2)
    x = F.pad(x, (left, left + extra_w, top, top + extra_h), mode="constant", value=0.0)
    return x.reshape(*lead, 3, size, size)


_FLOAT_RESIZES = {"bilinear": resize_with_pad_float, "bilinear_top_left": resize_with_pad_top_left}


class ImagePreprocessor:
    """Observation images -> ([C, 3, S, S], present mask [C]) on `device`, cameras in `cameras` order.

    resize 'antialias' gives uint8 images (this package's own checkpoints); 'bilinear' gives float32
    [0, 1] images resized as openpi / LeRobot do (`resize_with_pad_float`).
    """

    def __init__(self, cameras: Sequence[str], size: int, device: str | torch.device = "cpu",
                 resize: str = "antialias"):
        if resize not in _FLOAT_RESIZES and resize != "antialias":
            raise ValueError(f"image_resize: expected 'antialias', 'bilinear' or 'bilinear_top_left', got {resize!r}")
        self.cameras = tuple(cameras)
        self.size = int(size)
        self.device = torch.device(device)
        self.resize = resize
        self.dtype = torch.uint8 if resize == "antialias" else torch.float32
        self._float_resize = _FLOAT_RESIZES.get(resize)

    def image(self, rgb: np.ndarray) -> torch.Tensor:
        """One HxWx3 uint8 RGB image -> [3, S, S] on the device (uint8, or float32 for 'bilinear')."""
        if not (isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3):
            raise ValueError(f"image: expected HxWx3 uint8 RGB, got {getattr(rgb, 'shape', None)} "
                             f"{getattr(rgb, 'dtype', type(rgb))}")
        t = torch.from_numpy(np.ascontiguousarray(rgb)).to(self.device, non_blocking=True)  # one uint8 upload
        if self._float_resize is not None:
            return self._float_resize(t.permute(2, 0, 1).to(torch.float32) / 255.0, self.size)
        return resize_with_pad(t.permute(2, 0, 1), self.size)

    def batch(self, images: Mapping[str, torch.Tensor], batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Float [B, 3, H, W] tensors in [0, 1] per camera (a dataset batch, as LeRobot feeds its policy)
        -> ([B, C, 3, S, S], present [B, C]); a camera absent from `images` is masked out."""
        out = torch.zeros((batch_size, len(self.cameras), 3, self.size, self.size), dtype=self.dtype,
                          device=self.device)
        present = torch.zeros((batch_size, len(self.cameras)), dtype=torch.bool, device=self.device)
        for i, name in enumerate(self.cameras):
            img = images.get(name)
            if img is None:
                continue
            if img.dim() != 4 or img.shape[0] != batch_size or img.shape[1] != 3 or not img.is_floating_point():
                raise ValueError(f"images[{name!r}]: expected float [{batch_size}, 3, H, W] in [0, 1], got "
                                 f"{tuple(img.shape)} {img.dtype}")
            img = img.to(self.device)
            if self._float_resize is not None:
                out[:, i] = self._float_resize(img, self.size)
            else:
                u8 = (img.clamp(0, 1) * 255.0).round().to(torch.uint8)
                out[:, i] = torch.stack([resize_with_pad(x, self.size) for x in u8])
            present[:, i] = True
        return out, present

    def __call__(self, images: Mapping[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        out = torch.zeros((len(self.cameras), 3, self.size, self.size), dtype=self.dtype, device=self.device)
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
