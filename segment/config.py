"""The model's configuration: everything needed to rebuild it, stored in every checkpoint.

The defaults follow the reference TF DeepLab / slim code; docs/model.md has the
fidelity table (each detail, the reference identifier it follows, and every
departure with its reason).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

# TF's BatchNorm "decay" d is PyTorch's momentum 1 - d.
_BACKBONE_BN_DECAY = 0.997  # slim mobilenet training_scope(bn_decay=0.997)
_HEAD_BN_DECAY = 0.9997  # deeplab model.py batch_norm_params for ASPP / decoder


@dataclass(frozen=True)
class ModelConfig:
    backbone: str = "mobilenet_v3_large"  # mobilenet_v3_large | mobilenet_v3_small | mobilenet_v2
    width_mult: float = 1.0  # channel multiplier of the backbone (paper: 1.0; V2 rows also 0.5, 0.35)
    output_stride: int = 16  # 16 = atrous last stage (paper default), 32 = none
    rf2: bool = True  # halve the whole last stage ("reduce the filters of the last block")
    head: str = "lraspp"  # lraspp | raspp
    head_channels: int = 128  # F in Table 7 (128 or 256)
    num_classes: int = 19  # Cityscapes train classes
    train_crop: int = 769  # LR-ASPP pooling window = ceil(train_crop / output_stride) (49 for 769 at OS 16, 25 at OS 32)
    pool_stride: tuple[int, int] = (16, 20)  # LR-ASPP pooling stride (H, W); release flags: (16, 20) at OS 16, (4, 5) at OS 32
    # Rate of the block whose stride 2 became 1 at OS 16. 1: slim mobilenet_base
    # ("layer_rate = rate; rate *= stride": only the blocks after it get rate 2).
    # 2: torchvision's dilated=True, which dilates that block too.
    first_atrous_rate: int = 1
    # That block adds its residual where its input and output channels match, as slim's
    # expanded_conv does for every stride-1 block (V3-Small RF2: 48 -> 48). False: torchvision's.
    first_atrous_residual: bool = True
    # LR-ASPP gate activation. hard_sigmoid = relu6(x + 3) / 6, the released Cityscapes
    # models' image_se_uses_qsigmoid=1; sigmoid = the logistic function the paper's Fig. 10 draws.
    gate: str = "hard_sigmoid"
    gate_bias: bool = True  # the gate's 1x1 conv has a bias (reference: normalizer_fn=None, so biases_initializer applies)
    # Pool in ceil mode (edge windows averaged over their in-map part) so every feature cell
    # lies in a window at any input size; at the reference sizes the windows are unchanged.
    pool_cover: bool = True
    backbone_bn_momentum: float = round(1 - _BACKBONE_BN_DECAY, 6)  # 0.003 (decay 0.997)
    backbone_bn_eps: float = 1e-3  # slim mobilenet training_scope (V2 and V3 alike)
    head_bn_momentum: float = round(1 - _HEAD_BN_DECAY, 6)  # 0.0003 (decay 0.9997)
    head_bn_eps: float = 1e-5  # deeplab model.py batch_norm_params

    @property
    def pool_window(self) -> tuple[int, int]:
        side = -(-self.train_crop // self.output_stride)  # ceil: a 769 crop gives a 49x49 map at OS 16
        return side, side

    def to_dict(self) -> dict:
        d = asdict(self)
        d["pool_stride"] = list(self.pool_stride)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        """Rebuild a stored config. A field the dict lacks takes the value the code had
        before that field existed (``legacy_fields``), so an older checkpoint rebuilds
        the network it was trained as and gives the same outputs."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"model config has unknown fields {unknown}; known fields: {sorted(known)}")
        d = dict(d)
        backbone = d.get("backbone", cls.backbone)
        for name, value in legacy_fields(backbone).items():
            d.setdefault(name, value)
        if "pool_stride" in d:
            d["pool_stride"] = tuple(int(v) for v in d["pool_stride"])
        return cls(**d)


def legacy_fields(backbone: str) -> dict:
    """The architecture of checkpoints written before the reference-fidelity fields existed.

    torchvision's conventions: the first atrous block dilated and without residual, a
    bias-free logistic gate, floor-mode pooling, torchvision's BN settings (V3: momentum
    0.01, eps 1e-3; V2: PyTorch's defaults) and PyTorch's default BN in the head.
    """
    v3 = backbone.startswith("mobilenet_v3")
    return {
        "first_atrous_rate": 2,
        "first_atrous_residual": False,
        "gate": "sigmoid",
        "gate_bias": False,
        "pool_cover": False,
        "backbone_bn_momentum": 0.01 if v3 else 0.1,
        "backbone_bn_eps": 1e-3 if v3 else 1e-5,
        "head_bn_momentum": 0.1,
        "head_bn_eps": 1e-5,
    }
