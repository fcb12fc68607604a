"""The model's configuration: everything needed to rebuild it, stored in every checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class ModelConfig:
    backbone: str = "mobilenet_v3_large"  # mobilenet_v3_large | mobilenet_v3_small | mobilenet_v2
    width_mult: float = 1.0  # channel multiplier of the backbone (paper: 1.0; V2 rows also 0.5, 0.35)
    output_stride: int = 16  # 16 = atrous last stage (paper default), 32 = none
    rf2: bool = True  # halve the whole last stage ("reduce the filters of the last block")
    head: str = "lraspp"  # lraspp | raspp
    head_channels: int = 128  # F in Table 7 (128 or 256)
    num_classes: int = 19  # Cityscapes train classes
    train_crop: int = 769  # LR-ASPP pooling window = train_crop // output_stride (49 for 769 / 16)
    pool_stride: tuple[int, int] = (16, 20)  # LR-ASPP pooling stride (H, W), Fig. 10 as public code reads it

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
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"model config has unknown fields {unknown}; known fields: {sorted(known)}")
        d = dict(d)
        if "pool_stride" in d:
            d["pool_stride"] = tuple(int(v) for v in d["pool_stride"])
        return cls(**d)
