"""The training run, top to bottom: ``main(config)``.

Builds data, model, optimizer and schedule from a TrainConfig, optionally
resumes from a training checkpoint, then loops over optimizer steps:
train step -> (every eval_every) evaluate -> (every ckpt_every) save last.pt.
A SIGTERM/SIGINT stops at the next step boundary after saving; a non-finite
loss stops with an error and leaves the last good checkpoint in place.
"""

from __future__ import annotations

import json
import math
import random
import signal
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from segment.errors import UserError
from train.checkpointing import load_training_checkpoint, save_checkpoint, set_rng_state, training_checkpoint
from train.config import TrainConfig
from train.distributed import DistInfo, all_reduce_sum, cleanup, init_distributed, param_divergence, resolve_device
from train.engine import evaluate, recalibrate_bn, train_step
from train.logs import RunLog, echo, progress_bar
from train.metrics import format_table
from train.sampling import EpochSampler, SeededDataset, ShardSampler
from train.schedules import build_scheduler


class TrainingDiverged(UserError):
    """The loss became NaN or Inf."""


def eval_size(text: str) -> str | tuple[int, int]:
    """The evaluation size option: "native", "half", "full" (pixel budgets, see segment.sizes) or (H, W)."""
    from segment.sizes import parse_size

    return parse_size(text, error=f"size {text!r}: expected native, half, full or HxW such as 512x1024")


def build_datasets(cfg: TrainConfig):
    from data.build import build_dataset
    from data.transforms import eval_transform, train_transform

    if not cfg.data_root:
        raise UserError("--data-root is required: the folder of the dataset to train on "
                        "(for synthetic data, write one with 'segment synth --out DIR')")
    train_set = build_dataset(name=cfg.dataset, root=cfg.data_root, split=cfg.train_split,
                              transform=train_transform(crop=tuple(cfg.crop), scale=tuple(cfg.scale), hflip=cfg.hflip,
                                                        log_scale=cfg.log_scale))
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


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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


def main(cfg: TrainConfig, *, resume: str | None = None, stop_at: int | None = None, command: str = "") -> int:
    """Train; return the process exit status (0 done, 128+signal when stopped by a signal)."""
    device = resolve_device(cfg.device)
    info = init_distributed(device)
    try:
        return _run(cfg, device=device, info=info, resume=resume, stop_at=stop_at, command=command)
    finally:
        cleanup(info)


def _run(cfg: TrainConfig, *, device, info: DistInfo, resume, stop_at, command) -> int:
    from data.base import worker_init_fn
    from data.transforms import MEAN, STD
    from segment.model import build_model

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.amp == "fp16" and device.type != "cuda":
        raise UserError("--amp fp16 needs a GPU; on the CPU use --amp bf16 or none")
    if cfg.amp not in ("none", "bf16", "fp16"):
        raise UserError(f"--amp {cfg.amp!r}: choose none, bf16 or fp16")
    out = Path(cfg.out)
    main_rank = info.is_main
    ckpt = load_training_checkpoint(resume) if resume else None
    _seed_everything(cfg.seed)

    # --- data
    train_set, val_set = build_datasets(cfg)
    space = train_set.label_space
    sampler = EpochSampler(size=len(train_set), global_batch=cfg.batch, rank=info.rank,
                           world_size=info.world_size, seed=cfg.seed)
    if cfg.data_on_device:
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
    if val_set is not None:
        val_loader = DataLoader(val_set, batch_size=1, num_workers=min(cfg.workers, 2), worker_init_fn=worker_init_fn,
                                sampler=ShardSampler(size=len(val_set), rank=info.rank, world_size=info.world_size))

    # --- model, loss, optimizer, schedule
    model_config = build_model_config(cfg, space.num_classes)
    model = build_model(model_config)
    if cfg.init_weights and ckpt is None:  # a resumed run has its own weights
        load_init_weights(model, path=cfg.init_weights, model_config=model_config, classes=space.classes)
    model = model.to(device)
    if info.enabled and device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    class_weights = None
    if cfg.class_weighting == "enet":
        from train.losses import enet_class_weights

        class_weights = enet_class_weights(train_set, num_classes=space.num_classes).to(device)
    elif cfg.class_weighting != "none":
        raise UserError(f"--class-weighting {cfg.class_weighting!r}: choose none or enet")
    from train.losses import build_loss

    try:
        criterion = build_loss(cfg.loss, class_weights=class_weights)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    optimizer = build_optimizer(cfg, model)
    try:
        scheduler = build_scheduler(optimizer, schedule=cfg.lr_schedule, iters=cfg.iters, warmup=cfg.warmup_iters,
                                    power=cfg.poly_power)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    scaler = torch.amp.GradScaler("cuda") if cfg.amp == "fp16" else None

    start, best, last_eval = 0, {"miou": -1.0, "iter": 0}, {}
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if scaler is not None and ckpt["scaler"]:
            scaler.load_state_dict(ckpt["scaler"])
        start, best, last_eval = int(ckpt["iteration"]), dict(ckpt.get("best", best)), dict(ckpt.get("metrics", {}))
        set_rng_state(ckpt["rng"])
        # The schedule length may have been extended on the command line (--iters).
        scheduler.lr_lambdas[0].keywords["iters"] = cfg.iters
    net = model
    if info.enabled:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        net = torch.compile(net)

    log = RunLog(out=out, enabled=main_rank)
    if main_rank:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
        echo(f"training {cfg.preset} ({sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params) on "
             f"{cfg.dataset} {cfg.train_split}{''.join(' + ' + e for e in cfg.extra_train)} ({len(train_set)} images), {info.world_size} process(es) on {device}, "
             f"global batch {cfg.batch}, {cfg.iters} iterations" + (f", resuming at {start}" if start else "")
             + (f", starting from the weights of {cfg.init_weights}" if cfg.init_weights and not start else ""))

    def save(name: str, iteration: int) -> Path:
        path = out / name
        if main_rank:
            save_checkpoint(path, training_checkpoint(
                model=model, model_config=model_config, label_space=space, mean=MEAN, std=STD,
                optimizer=optimizer, scheduler=scheduler, scaler=scaler, iteration=iteration,
                train_config=cfg.to_dict(), metrics=last_eval, best=best, command=command))
        return path

    def run_eval(iteration: int) -> dict:
        if cfg.bn_recalib_batches:
            recalibrate_bn(model=model, batches=bn_batches(iteration), device=device,
                           channels_last=cfg.channels_last, info=info)
        cm = evaluate(model=model, loader=val_loader, num_classes=space.num_classes, device=device, amp=cfg.amp,
                      channels_last=cfg.channels_last, info=info, size=eval_size(cfg.eval_size))
        summary = cm.summary(classes=space.classes, eval_ids=space.eval_train_ids)
        log.write("val", iteration, miou=summary["miou"], pixel_acc=summary["pixel_acc"],
                  per_class=summary["per_class"], images=len(val_set))
        echo(f"iter {iteration}: val mIoU {100 * summary['miou']:.2f}  pixel acc {100 * summary['pixel_acc']:.2f}",
             enabled=main_rank)
        return summary

    def bn_batches(iteration: int):
        """The first bn_recalib_batches training batches of a fixed, iteration-keyed order (deterministic)."""
        bn_sampler = EpochSampler(size=len(train_set), global_batch=cfg.batch, rank=info.rank,
                                  world_size=info.world_size, seed=cfg.seed + 1)
        bn_sampler.set_epoch(iteration)
        bn_loader = loader.with_sampler(bn_sampler) if cfg.data_on_device else DataLoader(
            SeededDataset(train_set), batch_size=bn_sampler.local_batch, sampler=bn_sampler, num_workers=0,
            drop_last=True)
        for i, batch in enumerate(bn_loader):
            if i >= cfg.bn_recalib_batches:
                break
            yield batch

    last_good = Path(resume) if resume else None
    bpe = sampler.batches_per_epoch
    it = start
    bar = progress_bar(total=cfg.iters, initial=start, enabled=main_rank)
    t0, images_seen, loss_sum, loss_n = time.perf_counter(), 0, 0.0, 0
    net.train()
    stopping = signalled = False
    with StopRequest() as stop:
        while it < cfg.iters:
            epoch, offset = divmod(it, bpe)
            sampler.set_epoch(epoch, offset)
            for images, masks in loader:
                lr = optimizer.param_groups[0]["lr"]  # the lr of this step (the scheduler moves it after)
                loss = train_step(model=net, images=images, masks=masks, criterion=criterion, optimizer=optimizer,
                                  scheduler=scheduler, scaler=scaler, device=device, amp=cfg.amp,
                                  channels_last=cfg.channels_last)
                it += 1
                # One small all-reduce: the mean loss and whether any rank was asked to stop.
                flags = torch.stack([loss.float(), torch.tensor(float(stop.signum is not None), device=device)])
                flags = all_reduce_sum(flags, info).tolist()
                loss_value = flags[0] / info.world_size
                if not math.isfinite(loss_value):
                    bar.close()
                    kept = f"the last good checkpoint is {last_good}" if last_good else "no checkpoint was written yet"
                    raise TrainingDiverged(
                        f"loss became {loss_value} at iteration {it} (lr {lr:.3g}); "
                        f"stopped without saving this state; {kept}. Lower --lr, raise --warmup-iters, "
                        "or train with --amp none")
                images_seen += images.shape[0] * info.world_size
                loss_sum, loss_n = loss_sum + loss_value, loss_n + 1
                bar.update(1)
                if it % cfg.log_every == 0 or it == cfg.iters:
                    dt = time.perf_counter() - t0
                    ips = images_seen / dt if dt > 0 else 0.0
                    bar.set_postfix(loss=f"{loss_sum / loss_n:.3f}", lr=f"{lr:.2e}", img_s=f"{ips:.1f}")
                    log.write("train", it, loss=loss_sum / loss_n, lr=lr, images_per_s=ips, epoch=epoch)
                    t0, images_seen, loss_sum, loss_n = time.perf_counter(), 0, 0.0, 0
                signalled = flags[1] > 0
                stopping = signalled or (stop_at is not None and it >= stop_at)
                evaluate_now = val_loader is not None and (it % cfg.eval_every == 0 or it == cfg.iters)
                if evaluate_now:
                    last_eval = run_eval(it)
                    if last_eval["miou"] > best["miou"]:
                        best = {"miou": last_eval["miou"], "iter": it}
                        save("best.pt", it)
                if evaluate_now or stopping or it % cfg.ckpt_every == 0 or it == cfg.iters:
                    last_good = save("last.pt", it)
                if stopping or it >= cfg.iters:
                    break
            if stopping:
                break
    bar.close()
    log.close()
    if stopping:
        # In a multi-process run only some ranks may have received the signal.
        signum = stop.signum or signal.SIGTERM
        why = signal.Signals(signum).name if signalled else f"--stop-at {stop_at}"
        echo(f"stopped by {why} at iteration {it}; saved {out / 'last.pt'}; continue with "
             f"'segment train --resume {out / 'last.pt'}'", enabled=main_rank)
        return 128 + signum if signalled else 0
    divergence = param_divergence(model, info)
    if main_rank:
        if last_eval:
            echo(format_table(last_eval, title=f"{cfg.dataset} {cfg.val_split} after {it} iterations "
                                                 f"(best mIoU {100 * best['miou']:.2f} at {best['iter']})"))
        with open(out / "final.json", "w") as f:
            json.dump({"iter": it, "best": best, "world_size": info.world_size,
                       "param_max_abs_diff_across_ranks": divergence, **last_eval}, f, indent=2)
    if divergence > 0:
        raise RuntimeError(f"model replicas diverged across ranks (max |diff| {divergence:g}): a DDP bug")
    return 0
