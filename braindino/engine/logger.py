"""Run logging: TensorBoard scalars/images plus a plain-text log, on the main process only."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import torch


class RunLogger:
    """Writes scalars and images to TensorBoard (``run_dir/tb``) and lines to ``run_dir/log.txt``.

    Every method is a no-op on processes other than the main one (``enabled=False``).
    """

    def __init__(self, run_dir: str | Path, enabled: bool = True):
        self.enabled = enabled
        self.run_dir = Path(run_dir)
        self._writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._writer = SummaryWriter(log_dir=str(self.run_dir / "tb"))
            self._text = open(self.run_dir / "log.txt", "a", buffering=1, encoding="utf-8")  # noqa: SIM115

    def scalars(self, values: Mapping[str, float | torch.Tensor], step: int) -> None:
        """Log a mapping of scalar values (tensors are converted) at ``step``."""
        if not self.enabled:
            return
        for name, value in values.items():
            self._writer.add_scalar(name, float(value), step)

    def images(self, name: str, images: torch.Tensor, step: int) -> None:
        """Log a ``[N, 1, H, W]`` batch as one grid image, each image min-max scaled."""
        if not self.enabled:
            return
        from torchvision.utils import make_grid

        grid = make_grid(images.detach().float().cpu(), nrow=8, normalize=True, scale_each=True)
        self._writer.add_image(name, grid, step)

    def line(self, text: str) -> None:
        """Append a time-stamped line to log.txt."""
        if self.enabled:
            self._text.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")

    def close(self) -> None:
        """Flush and close the files."""
        if self.enabled:
            self._writer.close()
            self._text.close()
            self.enabled = False
