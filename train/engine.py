"""One training step and one evaluation pass: the two things a trainer repeats."""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from segment.batchnorm import recalibrate_batchnorm
from train.distributed import DistInfo, all_reduce_sum
from train.metrics import ConfusionMatrix


def autocast(device: torch.device, amp: str):
    """bf16/fp16 autocast, or nothing. fp16 needs a GradScaler and a GPU."""
    if amp == "none":
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    return torch.autocast(device_type=device.type, dtype=dtype)


def train_step(*, model, images, masks, criterion, optimizer, scheduler, scaler, device, amp: str,
               channels_last: bool, distill=None) -> torch.Tensor:
    """Forward, backward, step; returns the loss (a 0-d tensor, not synchronised).

    ``distill`` (a ``train.distill.Distillation``) adds its teacher's term to the loss."""
    images = images.to(device, non_blocking=True)
    masks = masks.to(device, non_blocking=True)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    with autocast(device, amp):
        logits = model(images)
    # The loss in fp32: bf16 log-softmax over 19 classes loses precision we need.
    loss = criterion(logits.float(), masks)
    if distill is not None:
        loss = loss + distill.loss(images, logits.float())
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    scheduler.step()
    return loss.detach()


def scoring_logits(logits: torch.Tensor, mask_hw: tuple[int, int], size="native") -> torch.Tensor:
    """Logits as they are scored: at "half"/"full" the padding of the image's shape bucket
    cropped off (``segment.sizes``, as ``data.transforms.eval_transform`` padded it), then
    upsampled bilinearly to the label's size."""
    mask_hw = tuple(int(v) for v in mask_hw)
    if isinstance(size, str) and size != "native":
        from segment.sizes import plan_run

        plan = plan_run(mask_hw, size)  # the image and its label have one size
        if plan.padded and tuple(logits.shape[-2:]) == plan.run_hw:
            logits = logits[..., : plan.valid_hw[0], : plan.valid_hw[1]]
    if tuple(logits.shape[-2:]) != mask_hw:
        logits = F.interpolate(logits.float(), size=mask_hw, mode="bilinear", align_corners=False)
    return logits


@torch.inference_mode()
def evaluate(*, model, loader, num_classes: int, device, amp: str = "none", channels_last: bool = False,
             info: DistInfo = DistInfo(), progress=None, size="native") -> ConfusionMatrix:
    """Confusion matrix over the loader (summed over ranks).

    Logits are upsampled bilinearly to the *label's* size before the argmax, so
    a half-size run is scored at full label resolution. ``size``: what the
    loader's ``eval_transform`` resized to ("native", "half", "full" or (H, W));
    at "half"/"full" the bucket's padding is cropped off first (``scoring_logits``).
    """
    was_training = model.training
    model.eval()
    cm = ConfusionMatrix(num_classes=num_classes)
    for images, masks in loader:
        images = images.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            logits = model(images)
        logits = scoring_logits(logits, masks.shape[-2:], size)
        cm.update(logits.argmax(1).cpu(), masks)
        if progress is not None:
            progress.update(images.shape[0])
    mat = cm.mat.to(device)
    cm.mat = all_reduce_sum(mat, info).cpu()
    model.train(was_training)
    return cm


@torch.no_grad()
def recalibrate_bn(*, model, batches, device, channels_last: bool = False, info: DistInfo = DistInfo()) -> None:
    """Recompute BatchNorm running statistics with the current weights ("precise BN").

    torchvision's MobileNetV3 blocks use BN momentum 0.01, so the running
    statistics average over the last ~100-300 steps. In a short run the weights
    change a lot over that span and the stale statistics wreck eval-mode
    accuracy (measured: 57% -> 92% pixel accuracy after recalibrating a
    300-step run). Long runs are not hurt, so this is opt-in (``bn_recalib_batches``).
    The statistics are computed by ``segment.batchnorm.recalibrate_batchnorm``.
    """

    def inputs():
        for images, _ in batches:
            images = images.to(device, non_blocking=True)
            yield images.contiguous(memory_format=torch.channels_last) if channels_last else images

    def mean_over_ranks(buf: torch.Tensor) -> None:  # every rank saw different batches
        all_reduce_sum(buf, info).div_(info.world_size)

    recalibrate_batchnorm(model, inputs(), reduce=mean_over_ranks if info.enabled else None)
