"""What a training run is: one dataclass, plus the named recipes that fill it.

A run's TrainConfig is stored in every checkpoint (as a plain dict), so
``segment train --resume last.pt`` needs no other argument.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace


@dataclass(frozen=True)
class TrainConfig:
    # --- data
    dataset: str = "synthetic"  # cityscapes | camvid | synthetic | folder (data.build.build_dataset)
    data_root: str = ""  # dataset root folder
    train_split: str = "train"  # split trained on
    val_split: str = "val"  # split evaluated every eval_every iterations ("" = no evaluation)
    crop: tuple[int, int] = (769, 769)  # (H, W) training crop; DeepLab's Cityscapes crop
    scale: tuple[float, float] = (0.5, 2.0)  # random scale range before cropping
    log_scale: bool = False  # draw the scale log-uniformly (False: uniformly, DeepLab's)
    hflip: bool = True  # random horizontal flip
    photometric: bool = False  # random exposure, contrast, saturation, white balance (data.transforms)
    pad_fill: str = "mean"  # what pads crops of small scales: mean (DeepLab's mean pixel) | black (data.transforms)
    eval_size: str = "native"  # image size the model sees at evaluation: native | half | full | HxW
    workers: int = 4  # DataLoader worker processes per rank
    data_on_device: bool = False  # hold the training set on the device, augment it there (train.device_data)
    extra_train: tuple[str, ...] = ()  # more training sets "NAME:ROOT" (their train_split), concatenated to the main one
    # --- model
    preset: str = "default"  # segment.presets name ("default" = Table 7 row 8)
    init_weights: str = ""  # checkpoint whose model weights start the run (a fine-tune; fresh optimizer/schedule)
    # --- optimisation
    batch: int = 16  # GLOBAL batch (all ranks together); must divide by the number of ranks
    iters: int = 120_000  # optimizer steps
    optimizer: str = "sgd"  # sgd (momentum) | adamw
    lr: float = 0.02  # peak learning rate (after warm-up)
    momentum: float = 0.9  # SGD momentum
    weight_decay: float = 4e-5  # L2 for SGD (DeepLab's 4e-5), decoupled for AdamW
    lr_schedule: str = "poly"  # poly | cosine | onecycle | constant
    poly_power: float = 0.9  # exponent of the poly schedule (DeepLab)
    warmup_iters: int = 1000  # linear warm-up from lr/100 (helps BN from scratch at high lr)
    loss: str = "ce"  # ce | lovasz | dice | focal | ce+lovasz (smp losses, ignore 255)
    class_weighting: str = "none"  # none | enet (1/ln(1.02 + p_c), from train label frequencies)
    distill_from: str = ""  # teacher checkpoint: its per-pixel probabilities join the loss (train.distill)
    distill_weight: float = 1.0  # weight of the teacher's term
    distill_temperature: float = 1.0  # softmax temperature of both sides of that term
    # --- speed
    amp: str = "none"  # none | bf16 | fp16 (fp16 on GPU only)
    channels_last: bool = False  # NHWC activations (faster convs on recent CPUs/GPUs)
    compile: bool = False  # torch.compile the model
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # torch CPU threads per rank (0 = torch's default)
    # --- bookkeeping
    seed: int = 0  # seeds model init, data order and every augmentation
    out: str = "runs/train"  # output folder: checkpoints, metrics.jsonl, TensorBoard events
    eval_every: int = 2000  # evaluate (and save best.pt) every N iterations, and at the end
    ckpt_every: int = 1000  # save last.pt every N iterations (and on eval, stop, signal)
    log_every: int = 20  # JSON-lines/TensorBoard training log every N iterations
    val_limit: int = 0  # evaluate on the first N val images only (0 = all)
    bn_recalib_batches: int = 0  # before each evaluation, recompute BN statistics on N training batches (0 = off)

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ValueError(f"train config has unknown fields {unknown}")
        # Runs saved before pad_fill existed padded with black: resuming one keeps its data as it was.
        d = {"pad_fill": "black", **d}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def override(self, **changes) -> "TrainConfig":
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


# The paper's protocol (docs/train.md, "Recipes"): Cityscapes fine, from scratch,
# 769x769 crops, scale 0.5-2.0, flip, SGD momentum 0.9, poly 0.9, wd 4e-5,
# batch 16. Chosen, not given by the paper: lr 0.02 = DeepLab's Cityscapes
# 0.01 at batch 8 scaled linearly to batch 16; 120k iterations (~645 epochs of
# 2975 images), longer than DeepLab's ImageNet-initialised 90k because the
# paper trains from scratch and from-scratch models keep improving long after
# (mmsegmentation needed 320k at 512x1024 for 69.5); 1k warm-up iterations so
# BN statistics settle before the peak lr.
PAPER = TrainConfig(
    dataset="cityscapes", crop=(769, 769), scale=(0.5, 2.0), batch=16, iters=120_000,
    optimizer="sgd", lr=0.02, momentum=0.9, weight_decay=4e-5, lr_schedule="poly",
    warmup_iters=1000, eval_every=5000, ckpt_every=1000, eval_size="native",
)

# A few minutes on 2 CPU cores: the default model on `segment synth` scenes at
# 256x512, 192x192 crops, AdamW with a one-cycle schedule (fast learning from
# scratch in a short run). One torch thread + one loader worker fill the two
# cores; two torch threads beside a worker oversubscribe them, and on a shared
# machine OpenMP's spin-waiting made two threads 3-40x slower than one.
CPU = TrainConfig(
    dataset="synthetic", crop=(192, 192), scale=(0.5, 1.5), batch=8, iters=300,
    optimizer="adamw", lr=3e-3, weight_decay=1e-2, lr_schedule="onecycle",
    warmup_iters=0, eval_every=100, ckpt_every=100, workers=1, threads=1, log_every=10,
    # MobileNetV3's BN momentum (0.01) is too slow for 300 steps: recompute the
    # statistics before evaluating (train.engine.recalibrate_bn).
    bn_recalib_batches=12,
)

# CamVid 360x480 on a shared 2-core CPU (the shipped demo weights). Measured here
# under load: one torch thread per process ran 3-4x faster than two (OpenMP threads
# stall when the cores are shared), and fp32 + channels_last matched bf16 autocast
# (~5-7 images/s at 256x320), so fp32. 256x320 crops (about half a frame); the scale
# is drawn log-uniformly from 0.75-4.0 so the model sees objects at the sizes they
# have at native size (1x), at "half" (a 4:3 frame runs at 512x683: 1.4x) and at
# "full" (1024x1365: 2.8x) and beyond, as many enlargements as shrinks of each factor; flip;
# AdamW + poly with warm-up; ENet class weighting for the small classes (pole, sign,
# rider). The reference BN momentum (0.003 backbone, 0.0003 head) is too slow for a
# few thousand steps: the statistics are recomputed before each evaluation.
CAMVID = TrainConfig(
    dataset="camvid", crop=(256, 320), scale=(0.75, 4.0), log_scale=True, batch=8, iters=2400,
    optimizer="adamw", lr=3e-3, weight_decay=1e-2, lr_schedule="poly", warmup_iters=100,
    class_weighting="enet", eval_every=250, ckpt_every=50, workers=1, threads=1, log_every=10,
    channels_last=True, amp="none", bn_recalib_batches=16,
)

RECIPES: dict[str, TrainConfig] = {"paper": PAPER, "cpu": CPU, "camvid": CAMVID}


def get_recipe(name: str) -> TrainConfig:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of: {', '.join(RECIPES)}")
    return RECIPES[name]
