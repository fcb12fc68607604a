"""The training run, top to bottom: ``main(config)``.

Laid out like torchvision's reference trainer (references/segmentation/train.py):

1. ``setup`` builds a :class:`Run` from a TrainConfig: the data (``build_data``), the
   model (``build_model_for``), loss (``build_criterion``), optimizer
   (``build_optimizer``), the state of a resumed run (``restore``) and the LR
   schedule, built for this run's ``--iters`` at the step it starts from
   (``train.schedules.build_scheduler``).
2. ``train_until_done`` runs ``train_one_epoch`` until ``--iters`` steps. After each
   step (``train_one_step``), ``evaluate_and_checkpoint`` evaluates every
   ``eval_every`` steps (keeping best.pt) and saves last.pt every ``ckpt_every``
   steps (``save_checkpoint``).
3. ``finish`` reports how the run ended and returns the exit status.

A SIGTERM/SIGINT stops at the next step boundary after saving; a non-finite
loss stops with an error and leaves the last good checkpoint in place.
"""

from __future__ import annotations

import json
import math
import random
import signal
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from segment.errors import UserError
from train import checkpointing
from train.checkpointing import load_training_checkpoint, set_rng_state, training_checkpoint
from train.config import TrainConfig
from train.distributed import DistInfo, all_reduce_sum, cleanup, init_distributed, param_divergence, resolve_device
from train.engine import evaluate, recalibrate_bn, train_step
from train.logs import RunLog, echo, progress_bar
from train.metrics import format_table
from train.sampling import EpochSampler, SeededDataset, ShardSampler
from train.schedules import build_scheduler


class TrainingDiverged(UserError):
    """The loss became NaN or Inf."""


# --- what a run holds


@dataclass
class Data:
    """The training and validation sets and their loaders."""

    train_set: Any
    val_set: Any  # None without --val-split
    sampler: EpochSampler  # the training order; set_epoch(epoch, first_batch) before each pass over `loader`
    loader: Any  # a DataLoader, or a train.device_data.DeviceLoader with --data-on-device
    val_loader: DataLoader | None

    @property
    def space(self):
        """The label space: classes, palette, scored classes."""
        return self.train_set.label_space


@dataclass
class Run:
    """Everything a training run holds: built by ``setup``, advanced by ``train_one_epoch``.

    The last four fields are the progress a checkpoint stores besides weights,
    optimizer and RNG states.
    """

    cfg: TrainConfig
    device: torch.device
    info: DistInfo
    command: str  # the command line, stored in every checkpoint
    data: Data
    model_config: Any  # segment.config.ModelConfig
    model: torch.nn.Module  # the plain model: saved, evaluated, compared across ranks
    net: torch.nn.Module  # what the steps call: the model, wrapped in DDP and/or torch.compile
    criterion: torch.nn.Module
    distill: Any  # train.distill.Distillation, or None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler | None  # fp16 only
    log: RunLog
    iteration: int = 0  # optimizer steps taken
    best: dict = field(default_factory=lambda: {"miou": -1.0, "iter": 0})
    last_eval: dict = field(default_factory=dict)  # the latest evaluation's summary
    last_good: Path | None = None  # the latest last.pt written (or resumed from), named if the loss diverges

    @property
    def out(self) -> Path:
        return Path(self.cfg.out)


# --- the run, top to bottom


def main(cfg: TrainConfig, *, resume: str | None = None, stop_at: int | None = None, command: str = "") -> int:
    """Train; return the process exit status (0 done, 128+signal when stopped by a signal)."""
    device = resolve_device(cfg.device)
    info = init_distributed(device)
    try:
        return run_training(cfg, device=device, info=info, resume=resume, stop_at=stop_at, command=command)
    finally:
        cleanup(info)


def run_training(cfg: TrainConfig, *, device, info: DistInfo, resume, stop_at, command) -> int:
    """Setup, the loop, the end. The signal handlers are ours only while the loop runs."""
    run = setup(cfg, device=device, info=info, resume=resume, command=command)
    announce(run)
    with StopRequest() as stop:
        stopped = train_until_done(run, stop=stop, stop_at=stop_at)
    return finish(run, stopped=stopped, signum=stop.signum, stop_at=stop_at)


# --- setup


def setup(cfg: TrainConfig, *, device, info: DistInfo, resume: str | None, command: str) -> Run:
    """Everything the loop needs, from a fresh start or from the training checkpoint ``resume``.

    The order matters for exact resume: everything that draws random numbers
    (model init) runs after the seed and before ``restore`` puts the RNG states
    back where the interrupted run left them.
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    check_amp(cfg, device)
    ckpt = load_training_checkpoint(resume) if resume else None
    _seed_everything(cfg.seed)  # model init, and any other draw, follows the seed
    data = build_data(cfg, device=device, info=info)
    # A resumed run has its own weights: --init-weights only starts a fresh one.
    model_config, model = build_model_for(cfg, data.space, device=device, info=info, fine_tune=ckpt is None)
    criterion = build_criterion(cfg, data, device=device)
    distill = build_distillation(cfg, data, device=device)
    optimizer = build_optimizer(cfg, model)
    scaler = torch.amp.GradScaler("cuda") if cfg.amp == "fp16" else None
    progress = {"last_good": Path(resume)} if resume else {}
    if ckpt is not None:
        progress.update(restore(ckpt, model=model, optimizer=optimizer, scaler=scaler))
    # After restore: a schedule over this run's --iters (a resume may extend it), at the step it starts from.
    try:
        scheduler = build_scheduler(cfg, optimizer, last_iteration=progress.get("iteration", 0))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return Run(cfg=cfg, device=device, info=info, command=command, data=data, model_config=model_config, model=model,
               net=wrap_for_training(model, cfg=cfg, device=device, info=info), criterion=criterion,
               distill=distill, optimizer=optimizer, scheduler=scheduler, scaler=scaler, log=open_log(cfg, info),
               **progress)


def build_distillation(cfg: TrainConfig, data: Data, *, device):
    """The teacher of ``--distill-from``, or None."""
    if not cfg.distill_from:
        return None
    from data.transforms import MEAN, STD
    from train.distill import load_distillation

    return load_distillation(path=cfg.distill_from, weight=cfg.distill_weight, temperature=cfg.distill_temperature,
                             classes=data.space.classes, mean=list(MEAN), std=list(STD), device=device)


def check_amp(cfg: TrainConfig, device) -> None:
    if cfg.amp == "fp16" and device.type != "cuda":
        raise UserError("--amp fp16 needs a GPU; on the CPU use --amp bf16 or none")
    if cfg.amp not in ("none", "bf16", "fp16"):
        raise UserError(f"--amp {cfg.amp!r}: choose none, bf16 or fp16")


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_data(cfg: TrainConfig, *, device, info: DistInfo) -> Data:
    from data.base import worker_init_fn

    train_set, val_set = build_datasets(cfg)
    # Every rank takes its share of the same global batches, in an order fixed by (seed, epoch).
    sampler = EpochSampler(size=len(train_set), global_batch=cfg.batch, rank=info.rank,
                           world_size=info.world_size, seed=cfg.seed)
    if cfg.data_on_device:
        if cfg.photometric:
            raise UserError("--photometric runs in the CPU data pipeline only: drop --data-on-device "
                            "or --photometric")
        from train.device_data import device_loader

        loader = device_loader(cfg, train_set, sampler=sampler, device=device, main_rank=info.is_main)
    else:
        loader = DataLoader(
            SeededDataset(train_set), batch_size=sampler.local_batch, sampler=sampler, num_workers=cfg.workers,
            pin_memory=device.type == "cuda", drop_last=True, persistent_workers=cfg.workers > 0,
            worker_init_fn=worker_init_fn,
            # Our augmentation is seeded per sample (train.sampling); a private generator
            # keeps the loader from drawing on the global torch RNG.
            generator=torch.Generator().manual_seed(cfg.seed),
        )
    val_loader = None
    if val_set is not None:  # evaluation is sharded over ranks and the confusion matrices summed
        val_loader = DataLoader(val_set, batch_size=1, num_workers=min(cfg.workers, 2), worker_init_fn=worker_init_fn,
                                sampler=ShardSampler(size=len(val_set), rank=info.rank, world_size=info.world_size))
    return Data(train_set=train_set, val_set=val_set, sampler=sampler, loader=loader, val_loader=val_loader)


def build_datasets(cfg: TrainConfig):
    from data.build import build_dataset
    from data.transforms import eval_transform, train_transform

    if not cfg.data_root:
        raise UserError("--data-root is required: the folder of the dataset to train on "
                        "(for synthetic data, write one with 'segment synth --out DIR')")
    train_set = build_dataset(name=cfg.dataset, root=cfg.data_root, split=cfg.train_split,
                              transform=train_transform(crop=tuple(cfg.crop), scale=tuple(cfg.scale), hflip=cfg.hflip,
                                                        log_scale=cfg.log_scale, photometric=cfg.photometric,
                                                        pad_fill=cfg.pad_fill))
    if cfg.extra_train:
        from train.concat import ConcatTrainSet, parse_extra

        # One transform object for all parts: SeededDataset reseeds it per sample.
        extras = [build_dataset(name=name, root=root, split=cfg.train_split, transform=train_set.transform)
                  for name, root in map(parse_extra, cfg.extra_train)]
        train_set = ConcatTrainSet(parts=[train_set, *extras])
    val_set = None
    if cfg.val_split:
        val_set = build_dataset(name=cfg.dataset, root=cfg.data_root, split=cfg.val_split,
                                transform=eval_transform(size=eval_size(cfg.eval_size)))
        if cfg.val_limit:
            val_set.files = val_set.files[: cfg.val_limit]
    return train_set, val_set


def eval_size(text: str) -> str | tuple[int, int]:
    """The evaluation size option: "native", "half", "full" (the paper's frames, see segment.sizes) or (H, W)."""
    from segment.sizes import parse_size

    return parse_size(text, error=f"size {text!r}: expected native, half, full or HxW such as 512x1024")


def build_model_for(cfg: TrainConfig, space, *, device, info: DistInfo, fine_tune: bool):
    """(model config, model) on the device, from --init-weights when ``fine_tune`` and it is given."""
    from segment.model import build_model

    model_config = build_model_config(cfg, space.num_classes)
    model = build_model(model_config)
    if cfg.init_weights and fine_tune:
        load_init_weights(model, path=cfg.init_weights, model_config=model_config, classes=space.classes)
    model = model.to(device)
    if info.enabled and device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model_config, model


def build_model_config(cfg: TrainConfig, num_classes: int):
    from segment.presets import get_preset

    try:
        preset = get_preset(cfg.preset)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    # The LR-ASPP pooling window is the training crop / output stride (the paper's
    # 769 -> 49): at training time it pools the whole crop.
    return replace(preset.config, num_classes=num_classes, train_crop=max(cfg.crop))


# Fields that change no parameter's shape: a fine-tune may start from weights trained
# with other values (the LR-ASPP window follows this run's crop; older checkpoints carry
# torchvision's conventions, segment.config.legacy_fields).
_ADAPTABLE = ("train_crop", "pool_stride", "first_atrous_rate", "first_atrous_residual", "gate", "gate_bias",
              "pool_cover", "backbone_bn_momentum", "backbone_bn_eps", "head_bn_momentum", "head_bn_eps")


def load_init_weights(model: torch.nn.Module, *, path: str, model_config, classes) -> None:
    """Start from another run's weights (a fine-tune); refuse a different model or label set.

    Where the two differ only in ``_ADAPTABLE`` fields the weights load into this run's
    architecture; a parameter the source lacks (the gate's bias) keeps its initial value.
    """
    from segment.checkpoint import load_checkpoint
    from segment.config import ModelConfig

    ckpt = load_checkpoint(path)
    ours = {k: v for k, v in model_config.to_dict().items() if k not in _ADAPTABLE}
    theirs = {k: v for k, v in ModelConfig.from_dict(ckpt["model_config"]).to_dict().items() if k not in _ADAPTABLE}
    diff = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
    if diff:
        raise UserError(f"--init-weights {path}: its model differs from this run's in "
                        + ", ".join(f"{k} ({theirs.get(k)!r} there, {ours.get(k)!r} here)" for k in diff)
                        + "; use the same --preset and dataset classes")
    if list(ckpt["classes"]) != list(classes):
        raise UserError(f"--init-weights {path}: its classes {list(ckpt['classes'])} differ from this "
                        f"dataset's {list(classes)}")
    result = model.load_state_dict(ckpt["model"], strict=False)
    if result.unexpected_keys or any(not k.endswith(".bias") for k in result.missing_keys):
        raise UserError(f"--init-weights {path}: its weights do not fit this model (missing "
                        f"{result.missing_keys}, unexpected {result.unexpected_keys})")
    if result.missing_keys:
        echo(f"--init-weights: {', '.join(result.missing_keys)} not in {path}; left at their initial values")


def build_criterion(cfg: TrainConfig, data: Data, *, device) -> torch.nn.Module:
    from train import losses

    class_weights = None
    if cfg.class_weighting == "enet":
        class_weights = losses.enet_class_weights(data.train_set, num_classes=data.space.num_classes).to(device)
    elif cfg.class_weighting != "none":
        raise UserError(f"--class-weighting {cfg.class_weighting!r}: choose none or enet")
    try:
        return losses.build_loss(cfg.loss, class_weights=class_weights)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def build_optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    # No weight decay on BN parameters and biases (standard practice; DeepLab's slim
    # code also leaves BN out of the L2 loss).
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    raise UserError(f"unknown optimizer {cfg.optimizer!r}; choose sgd or adamw")


def restore(ckpt: dict, *, model, optimizer, scaler) -> dict:
    """Load a training checkpoint's state; return its progress (the ``Run`` fields it sets).

    The optimizer's param groups carry ``initial_lr``, the run's peak lr, which
    the rebuilt schedule scales. The scheduler's own stored state is not read:
    ``build_scheduler`` positions a fresh one at the checkpoint's iteration.
    """
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    if scaler is not None and ckpt["scaler"]:
        scaler.load_state_dict(ckpt["scaler"])
    set_rng_state(ckpt["rng"])  # last: model init above drew from the seeded RNG
    return {"iteration": int(ckpt["iteration"]), "best": dict(ckpt.get("best", {"miou": -1.0, "iter": 0})),
            "last_eval": dict(ckpt.get("metrics", {}))}


def wrap_for_training(model, *, cfg: TrainConfig, device, info: DistInfo) -> torch.nn.Module:
    """DDP over ranks and/or torch.compile; the plain ``model`` stays the one saved and evaluated."""
    net = model
    if info.enabled:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        net = torch.compile(net)
    return net


def open_log(cfg: TrainConfig, info: DistInfo) -> RunLog:
    """The run's logs; rank 0 alone writes them (and train_config.json) under --out."""
    out = Path(cfg.out)
    log = RunLog(out=out, enabled=info.is_main)
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    return log


def announce(run: Run) -> None:
    cfg, info = run.cfg, run.info
    extra = "".join(" + " + e for e in cfg.extra_train)
    echo(f"training {cfg.preset} ({sum(p.numel() for p in run.model.parameters()) / 1e6:.2f}M params) on "
         f"{cfg.dataset} {cfg.train_split}{extra} ({len(run.data.train_set)} images), {info.world_size} process(es) "
         f"on {run.device}, global batch {cfg.batch}, {cfg.iters} iterations"
         + (f", resuming at {run.iteration}" if run.iteration else "")
         + (f", starting from the weights of {cfg.init_weights}" if cfg.init_weights and not run.iteration else "")
         + (f", taught by {cfg.distill_from} (weight {cfg.distill_weight:g}, temperature "
            f"{cfg.distill_temperature:g})" if run.distill is not None else ""),
         enabled=info.is_main)


# --- the loop


class StopRequest:
    """Records SIGTERM/SIGINT; the loop saves and exits at the next step boundary."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old = {}

    def __enter__(self):
        for s in (signal.SIGTERM, signal.SIGINT):
            self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now, without saving
        self.signum = signum

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


class LogWindow:
    """Mean loss and images/s since the last training log record."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.t0, self.images, self.loss_sum, self.steps = time.perf_counter(), 0, 0.0, 0

    def add(self, *, images: int, loss: float) -> None:
        self.images, self.loss_sum, self.steps = self.images + images, self.loss_sum + loss, self.steps + 1

    def read(self) -> tuple[float, float]:
        dt = time.perf_counter() - self.t0
        return self.loss_sum / self.steps, self.images / dt if dt > 0 else 0.0


def train_until_done(run: Run, *, stop: StopRequest, stop_at: int | None) -> str | None:
    """Epochs until ``--iters`` steps; returns why the run stopped early ("signal", "stop_at") or None."""
    bar = progress_bar(total=run.cfg.iters, initial=run.iteration, enabled=run.info.is_main)
    window = LogWindow()
    run.net.train()
    try:
        while run.iteration < run.cfg.iters:
            stopped = train_one_epoch(run, bar=bar, window=window, stop=stop, stop_at=stop_at)
            if stopped:
                return stopped
        return None
    finally:
        bar.close()
        run.log.close()


def train_one_epoch(run: Run, *, bar, window: LogWindow, stop: StopRequest, stop_at: int | None) -> str | None:
    """Steps from ``run.iteration`` to the end of its epoch or of the run; "signal"/"stop_at" if asked to stop."""
    cfg = run.cfg
    # Position the order at this step's epoch and batch: a resumed run continues mid-epoch exactly.
    epoch, first_batch = divmod(run.iteration, run.data.sampler.batches_per_epoch)
    run.data.sampler.set_epoch(epoch, first_batch)
    for images, masks in run.data.loader:
        lr = run.optimizer.param_groups[0]["lr"]  # this step's lr (the scheduler moves it after the step)
        loss, signalled = train_one_step(run, images, masks, lr=lr, stop=stop)
        window.add(images=images.shape[0] * run.info.world_size, loss=loss)
        bar.update(1)
        if run.iteration % cfg.log_every == 0 or run.iteration == cfg.iters:
            log_training(run, bar=bar, window=window, lr=lr, epoch=epoch)
        stopping = signalled or (stop_at is not None and run.iteration >= stop_at)
        evaluate_and_checkpoint(run, stopping=stopping)
        if stopping:
            return "signal" if signalled else "stop_at"
        if run.iteration >= cfg.iters:
            break
    return None


def train_one_step(run: Run, images, masks, *, lr: float, stop: StopRequest) -> tuple[float, bool]:
    """One optimizer step; returns the loss averaged over ranks and whether any rank was signalled.

    Raises TrainingDiverged on a NaN/Inf loss, before anything of this state is saved.
    """
    loss = train_step(model=run.net, images=images, masks=masks, criterion=run.criterion, optimizer=run.optimizer,
                      scheduler=run.scheduler, scaler=run.scaler, device=run.device, amp=run.cfg.amp,
                      channels_last=run.cfg.channels_last, distill=run.distill)
    run.iteration += 1
    # One small all-reduce: the mean loss, and whether any rank was asked to stop
    # (all ranks must stop at the same step; a signal may reach only some).
    flags = torch.stack([loss.float(), torch.tensor(float(stop.signum is not None), device=run.device)])
    loss_sum, stop_votes = all_reduce_sum(flags, run.info).tolist()
    loss_value = loss_sum / run.info.world_size
    if not math.isfinite(loss_value):
        kept = f"the last good checkpoint is {run.last_good}" if run.last_good else "no checkpoint was written yet"
        raise TrainingDiverged(
            f"loss became {loss_value} at iteration {run.iteration} (lr {lr:.3g}); "
            f"stopped without saving this state; {kept}. Lower --lr, raise --warmup-iters, "
            "or train with --amp none")
    return loss_value, stop_votes > 0


def log_training(run: Run, *, bar, window: LogWindow, lr: float, epoch: int) -> None:
    loss, images_per_s = window.read()
    bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.2e}", img_s=f"{images_per_s:.1f}")
    run.log.write("train", run.iteration, loss=loss, lr=lr, images_per_s=images_per_s, epoch=epoch)
    window.reset()


def evaluate_and_checkpoint(run: Run, *, stopping: bool) -> None:
    """After a step: evaluate every eval_every steps and at the end (a new best mIoU -> best.pt);
    save last.pt every ckpt_every steps, at each evaluation, at the end and when stopping."""
    it, cfg = run.iteration, run.cfg
    at_end = it == cfg.iters
    evaluate_now = run.data.val_loader is not None and (it % cfg.eval_every == 0 or at_end)
    if evaluate_now:
        run.last_eval = run_evaluation(run)
        if run.last_eval["miou"] > run.best["miou"]:
            run.best = {"miou": run.last_eval["miou"], "iter": it}
            save_checkpoint(run, "best.pt")
    elif at_end and cfg.bn_recalib_batches:
        # No validation set: the final weights still get the statistics an evaluation would give them.
        recalibrate_bn(model=run.model, batches=bn_batches(run), device=run.device,
                       channels_last=cfg.channels_last, info=run.info)
    if evaluate_now or stopping or it % cfg.ckpt_every == 0 or at_end:
        run.last_good = save_checkpoint(run, "last.pt")


def run_evaluation(run: Run) -> dict:
    """Validation mIoU of the current weights (after BN recalibration if asked), logged; the summary."""
    cfg, space = run.cfg, run.data.space
    if cfg.bn_recalib_batches:
        recalibrate_bn(model=run.model, batches=bn_batches(run), device=run.device,
                       channels_last=cfg.channels_last, info=run.info)
    cm = evaluate(model=run.model, loader=run.data.val_loader, num_classes=space.num_classes, device=run.device,
                  amp=cfg.amp, channels_last=cfg.channels_last, info=run.info, size=eval_size(cfg.eval_size))
    summary = cm.summary(classes=space.classes, eval_ids=space.eval_train_ids)
    run.log.write("val", run.iteration, miou=summary["miou"], pixel_acc=summary["pixel_acc"],
                  per_class=summary["per_class"], images=len(run.data.val_set))
    echo(f"iter {run.iteration}: val mIoU {100 * summary['miou']:.2f}  pixel acc {100 * summary['pixel_acc']:.2f}",
         enabled=run.info.is_main)
    return summary


def bn_batches(run: Run):
    """The first bn_recalib_batches training batches of an order keyed by the iteration.

    Its own seed (seed + 1) and the iteration as its epoch: the statistics, so the
    evaluation, are the same whether or not the run was interrupted.
    """
    cfg, data = run.cfg, run.data
    sampler = EpochSampler(size=len(data.train_set), global_batch=cfg.batch, rank=run.info.rank,
                           world_size=run.info.world_size, seed=cfg.seed + 1)
    sampler.set_epoch(run.iteration)
    loader = data.loader.with_sampler(sampler) if cfg.data_on_device else DataLoader(
        SeededDataset(data.train_set), batch_size=sampler.local_batch, sampler=sampler, num_workers=0,
        drop_last=True)
    for i, batch in enumerate(loader):
        if i >= cfg.bn_recalib_batches:
            break
        yield batch


def save_checkpoint(run: Run, name: str) -> Path:
    """Write ``--out/name`` atomically (rank 0 only); return its path on every rank."""
    from data.transforms import MEAN, STD

    path = run.out / name
    if run.info.is_main:
        checkpointing.save_checkpoint(path, training_checkpoint(
            model=run.model, model_config=run.model_config, label_space=run.data.space, mean=MEAN, std=STD,
            optimizer=run.optimizer, scheduler=run.scheduler, scaler=run.scaler, iteration=run.iteration,
            train_config=run.cfg.to_dict(), metrics=run.last_eval, best=run.best, command=run.command))
    return path


# --- the end


def finish(run: Run, *, stopped: str | None, signum: int | None, stop_at: int | None) -> int:
    """Report how the run ended and return the exit status.

    Stopped (signal or --stop-at): how to resume; 128 + signal, or 0 for --stop-at.
    Done: the per-class table and final.json, after checking the replicas agree.
    """
    if stopped:
        signum = signum or signal.SIGTERM  # in a multi-process run only some ranks may have received the signal
        why = signal.Signals(signum).name if stopped == "signal" else f"--stop-at {stop_at}"
        echo(f"stopped by {why} at iteration {run.iteration}; saved {run.out / 'last.pt'}; continue with "
             f"'segment train --resume {run.out / 'last.pt'}'", enabled=run.info.is_main)
        return 128 + signum if stopped == "signal" else 0
    cfg, best = run.cfg, run.best
    divergence = param_divergence(run.model, run.info)
    if run.info.is_main:
        if run.last_eval:
            echo(format_table(run.last_eval, title=f"{cfg.dataset} {cfg.val_split} after {run.iteration} iterations "
                                                   f"(best mIoU {100 * best['miou']:.2f} at {best['iter']})"))
        with open(run.out / "final.json", "w") as f:
            json.dump({"iter": run.iteration, "best": best, "world_size": run.info.world_size,
                       "param_max_abs_diff_across_ranks": divergence, **run.last_eval}, f, indent=2)
    if divergence > 0:
        raise RuntimeError(f"model replicas diverged across ranks (max |diff| {divergence:g}): a DDP bug")
    return 0
