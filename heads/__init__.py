"""Segmentation heads as plain ``nn.Module``s (torch only).

Each head takes the two backbone outputs ``low`` (1/8) and ``high`` (1/16 or
1/32) and returns class logits at the resolution of ``low``; the model
resizes them to the input size.
"""

from heads.lraspp import LRASPP
from heads.raspp import RASPP

__all__ = ["LRASPP", "RASPP"]
