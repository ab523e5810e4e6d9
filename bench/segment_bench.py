"""Segmentation speed: training and inference slices/s of the decoder and linear-probe heads
over a frozen encoder, against the bare frozen encoder forward (the floor) in the same run.

    python bench/segment_bench.py --arch vit_tiny_patch16_dinov3 --size 64 --modalities 4

One training step = augmentation + mixer + frozen encoder (gradient through it to the mixer
when there are several modalities) + head + Dice/CE loss + backward + AdamW step, on
``--batch`` random slices (random weights and data: speed does not depend on them). Inference =
``predict_proba`` (no gradient). Prints one JSON line per figure: the median of ``--repeats``
timed runs of ``--steps`` batches each (after one warm-up run), in slices/s, and its ratio to the
encoder-forward floor.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F


def _median_rate(fn, steps: int, repeats: int, batch: int, device: str) -> float:
    fn()
    rates = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        rates.append(steps * batch / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--arch", default="vit_tiny_patch16_dinov3")
    parser.add_argument("--size", type=int, default=64, help="slice side in pixels")
    parser.add_argument("--modalities", type=int, default=4)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5, help="batches per timed run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs (median reported)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from braindino.downstream.segmentation.augment import augment_batch
    from braindino.downstream.segmentation.model import SegmentationModel
    from braindino.losses import dice_loss
    from braindino.models import load_encoder

    device = args.device
    encoder = load_encoder(f"random:{args.arch}", map_location=device)
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(args.batch, args.modalities, args.size, args.size, generator=gen)
    labels = torch.randint(0, args.classes, (args.batch, args.size, args.size), generator=gen)
    info = {
        "arch": args.arch,
        "size": args.size,
        "modalities": args.modalities,
        "batch": args.batch,
        "device": device,
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
    }
    x1 = images[:, :1].expand(-1, encoder.in_chans, -1, -1).contiguous().to(device)

    @torch.inference_mode()
    def floor() -> None:
        encoder.get_intermediate_layers(x1, encoder.depth)

    base = _median_rate(floor, args.steps, args.repeats, args.batch, device)
    print(json.dumps({**info, "figure": "encoder_forward", "slices_per_s": round(base, 1)}))
    for head in ("decoder", "linear"):
        model = SegmentationModel(encoder, args.modalities, args.classes, head=head).to(device)
        optimiser = torch.optim.AdamW(model.trainable_groups(1e-3, 1e-5))

        def train_step(model=model, optimiser=optimiser) -> None:
            x, y = augment_batch(images, labels, gen)
            x, y = x.to(device), y.to(device)
            model.train()
            logits = model(x)
            loss = F.cross_entropy(logits, y) + dice_loss(logits, y)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()

        @torch.inference_mode()
        def infer(model=model) -> None:
            model.eval()
            torch.softmax(model(images.to(device)), dim=1).cpu()

        for figure, fn in (("train", train_step), ("inference", infer)):
            rate = _median_rate(fn, args.steps, args.repeats, args.batch, device)
            params = sum(p.numel() for p in model.parameters() if p.requires_grad)
            print(
                json.dumps(
                    {
                        **info,
                        "figure": f"{figure}_{head}",
                        "trainable_params": params,
                        "slices_per_s": round(rate, 1),
                        "ratio_to_encoder_forward": round(rate / base, 3),
                    }
                )
            )


if __name__ == "__main__":
    main()
