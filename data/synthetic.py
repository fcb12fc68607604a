"""Synthetic street scenes written as a real Cityscapes tree.

Every fresh machine (CI included) can make its own training data: ``segment
synth`` draws street scenes procedurally and writes them in the official layout
(``leftImg8bit/{split}/{city}/*_leftImg8bit.png`` and
``gtFine/{split}/{city}/*_gtFine_labelIds.png`` and ``*_gtFine_instanceIds.png``),
so they are read by the same
Cityscapes reader, and scored by the same official evaluator, as real data.

A scene is a one-point perspective street: sky with clouds, a road converging
to a vanishing point with lane markings, sidewalks, a terrain strip, rows of
building facades with windows, trees, poles with traffic signs and lights,
cars, pedestrians and cyclists (riders on bicycles), sometimes the ego
vehicle's hood (void, ignored) at the bottom. Objects are painted back to front
so near ones occlude far ones; textures, per-object colour variation, cast
shadows, global lighting, blur and sensor noise keep the task from being a
colour lookup. Labels are labelIds of the official table (cityscapesscripts),
written pixel-exact with the image (no anti-aliasing on label edges).

Scenes are deterministic: image ``i`` of split ``s`` depends only on
(seed, s, i, size), not on how many images are written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from cityscapesscripts.helpers.labels import labels as _CS_LABELS

from segment.atomic import write_bytes

from .errors import DatasetError
from .labels import LABEL_ID

MAX_SIZE = (1024, 2048)  # Cityscapes' own frame size, the largest we draw
CITIES = {"train": ("synthburg", "pixelstadt"), "val": ("valhausen",), "test": ("testdorf",)}
_SPLIT_CODE = {"train": 0, "val": 1, "test": 2}

L = LABEL_ID  # labelIds by class name, from cityscapesscripts
# labelIds whose objects are counted as instances in *_gtFine_instanceIds.png (car, person, ...)
_INSTANCE_IDS = frozenset(lab.id for lab in _CS_LABELS if lab.hasInstances and lab.id >= 0)


def _noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Smooth noise in about [-1, 1], features of ~``cell`` pixels (cheap: upsampled)."""
    gh, gw = max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)
    small = rng.standard_normal((gh, gw)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


@dataclass
class _Canvas:
    img: np.ndarray  # HxWx3 float32 RGB, 0..255
    lab: np.ndarray  # HxW uint8 labelIds
    rng: np.random.Generator
    inst: np.ndarray | None = None  # HxW int32 instanceIds (Cityscapes: labelId * 1000 + k for "thing" classes)
    instance: int = 0  # k of the object being drawn (0: none)

    def paint(
        self,
        label_id: int,
        color,
        *,
        polys=(),
        circles=(),
        texture: float = 6.0,
        grain: float = 4.0,
        cell: float = 12.0,
        label: bool = True,
    ) -> None:
        """Fill polygons/circles with a textured colour (and their label).

        Works inside the shapes' bounding box only, so small objects cost little
        even at 1024x2048. ``label=False`` paints the image only (details such
        as windows that keep their parent's class).
        """
        H, W = self.lab.shape
        pts = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in polys]
        xs = [p[:, 0] for p in pts] + [np.array([c[0] - c[2], c[0] + c[2]]) for c in circles]
        ys = [p[:, 1] for p in pts] + [np.array([c[1] - c[2], c[1] + c[2]]) for c in circles]
        if not xs:
            return
        x0 = max(0, int(np.floor(min(x.min() for x in xs))) - 1)
        x1 = min(W, int(np.ceil(max(x.max() for x in xs))) + 2)
        y0 = max(0, int(np.floor(min(y.min() for y in ys))) - 1)
        y1 = min(H, int(np.ceil(max(y.max() for y in ys))) + 2)
        if x1 <= x0 or y1 <= y0:
            return
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        if pts:
            cv2.fillPoly(mask, [np.round(p).astype(np.int32) for p in pts], 1, offset=(-x0, -y0))
        for cx, cy, r in circles:
            cv2.circle(mask, (int(round(cx - x0)), int(round(cy - y0))), max(1, int(round(r))), 1, -1)
        m = mask.astype(bool)
        if not m.any():
            return
        h, w = m.shape
        shade = texture * _noise(self.rng, h, w, cell)[..., None] if texture else 0.0
        px = np.asarray(color, np.float32) + shade
        if grain:
            px = px + grain * self.rng.standard_normal((h, w, 1)).astype(np.float32)
        roi = self.img[y0:y1, x0:x1]
        roi[m] = np.broadcast_to(px, (h, w, 3))[m]
        if label:
            self.lab[y0:y1, x0:x1][m] = label_id
            if self.inst is not None:
                has = label_id in _INSTANCE_IDS and self.instance > 0
                self.inst[y0:y1, x0:x1][m] = label_id * 1000 + self.instance if has else label_id


def _jitter(rng, color, amount=20.0):
    return np.clip(np.asarray(color, np.float32) + rng.uniform(-amount, amount, 3), 0, 255)


class _Street:
    """Geometry of one scene: horizon, vanishing point and the ground lines."""

    def __init__(self, rng: np.random.Generator, H: int, W: int):
        self.H, self.W = H, W
        self.yh = H * rng.uniform(0.36, 0.5)  # horizon row
        self.xv = W * rng.uniform(0.4, 0.6)  # vanishing point column
        half = W * rng.uniform(0.3, 0.55)  # half road width at the bottom row
        shift = W * rng.uniform(-0.1, 0.1)
        side = W * rng.uniform(0.12, 0.3)  # sidewalk width at the bottom row
        grass = W * rng.uniform(0.0, 0.15)  # terrain strip (often none)
        c = self.xv + shift
        # x at the bottom row of each line (left/right): road edge, sidewalk edge, facade line
        self.road = (c - half, c + half)
        self.walk = (c - half - side, c + half + side)
        self.facade = (c - half - side - grass, c + half + side + grass)

    def depth(self, y: float) -> float:
        """Perspective scale at ground row y: 1 at the bottom, 0 at the horizon."""
        return max(0.0, (y - self.yh) / (self.H - self.yh))

    def x_on(self, x_bottom: float, t: float) -> float:
        """Column of the ground line through ``x_bottom`` at depth t."""
        return self.xv + (x_bottom - self.xv) * t

    def y_at(self, t: float) -> float:
        return self.yh + t * (self.H - self.yh)

    def ground_poly(self, xa: float, xb: float) -> list:
        """Ground region between two lines through the vanishing point, extended past the frame."""
        far = 4.0  # extend below the bottom row so wide lines still cover the frame
        return [(self.xv, self.yh), (self.x_on(xa, far), self.y_at(far)), (self.x_on(xb, far), self.y_at(far))]


def _sky(cv: _Canvas, st: _Street) -> None:
    H, W = cv.lab.shape
    rng = cv.rng
    top = _jitter(rng, (70, 120, 190), 25)
    bottom = _jitter(rng, (185, 205, 225), 20)
    a = np.linspace(0, 1, H, dtype=np.float32)[:, None, None]
    cv.img[:] = top * (1 - a) + bottom * a
    clouds = np.clip(_noise(rng, H, W, H / 6) * 0.8 + rng.uniform(-0.6, 0.3), 0, 1)[..., None]
    cv.img[:] = cv.img * (1 - 0.7 * clouds) + 235 * 0.7 * clouds
    cv.lab[:] = L["sky"]
    if cv.inst is not None:
        cv.inst[:] = L["sky"]


def _ground(cv: _Canvas, st: _Street) -> None:
    rng = cv.rng
    H, W = cv.lab.shape
    big = [(-W, st.yh), (2 * W, st.yh), (2 * W, 4 * H), (-W, 4 * H)]
    cv.paint(L["terrain"], _jitter(rng, (95, 130, 60), 15), polys=[big], texture=18, cell=H / 60, grain=6)
    for i in (0, 1):
        cv.paint(L["sidewalk"], _jitter(rng, (165, 160, 150), 20),
                 polys=[st.ground_poly(st.walk[i], st.road[i])], texture=10, cell=H / 40, grain=5)
    # Paving joints: lines converging to the vanishing point (image only, still sidewalk).
    for i in (0, 1):
        for k in range(1, 4):
            xb = st.road[i] + (st.walk[i] - st.road[i]) * k / 4
            cv2.line(cv.img, (int(st.xv), int(st.yh)), (int(st.x_on(xb, 1.0)), H - 1),
                     (120, 118, 112), max(1, H // 400))
    cv.paint(L["road"], _jitter(rng, (90, 88, 92), 12), polys=[st.ground_poly(st.road[0], st.road[1])],
             texture=9, cell=H / 30, grain=7)
    # Lane markings: dashed centre line and solid edge lines, painted in perspective (still road).
    centre = (st.road[0] + st.road[1]) / 2 + (st.road[1] - st.road[0]) * rng.uniform(-0.1, 0.1)
    white = (225, 225, 220)
    n_dash = 14
    phase = rng.uniform(0, 1)
    for k in range(n_dash):
        ta, tb = ((k + phase) / n_dash) ** 2, ((k + phase + 0.5) / n_dash) ** 2
        if tb <= 0.01:
            continue
        wa, wb = W * 0.006 * ta, W * 0.006 * tb
        xa, xb = st.x_on(centre, ta), st.x_on(centre, tb)
        poly = [(xa - wa, st.y_at(ta)), (xa + wa, st.y_at(ta)), (xb + wb, st.y_at(tb)), (xb - wb, st.y_at(tb))]
        cv.paint(L["road"], white, polys=[poly], texture=4, grain=4)
    for i in (0, 1):
        inner = st.road[i] + (W * 0.02 if i == 0 else -W * 0.02)
        edge = st.ground_poly(inner, inner + (W * 0.01 if i == 0 else -W * 0.01))
        cv.paint(L["road"], white, polys=[edge], texture=4, grain=4)


def _buildings(cv: _Canvas, st: _Street) -> None:
    rng = cv.rng
    H, W = cv.lab.shape
    for side in (0, 1):
        xb = st.facade[side]
        t = rng.uniform(0.02, 0.06)
        while True:
            t_next = t * rng.uniform(1.25, 1.9)
            height = (H - st.yh) * rng.uniform(0.8, 3.2)  # facade height at depth 1
            xa_, xb_ = st.x_on(xb, t), st.x_on(xb, t_next)
            ya, yb = st.y_at(t), st.y_at(t_next)
            poly = [(xa_, ya), (xb_, yb), (xb_, yb - height * t_next), (xa_, ya - height * t)]
            base = _jitter(rng, rng.choice([(150, 120, 100), (180, 170, 150), (120, 110, 110), (200, 190, 170), (140, 90, 70)]), 25)
            cv.paint(L["building"], base, polys=[poly], texture=12, cell=H / 50, grain=5)
            # Windows: a grid in facade coordinates (u along the street, v up).
            rows, cols = rng.integers(3, 9), rng.integers(2, 7)
            wcol = _jitter(rng, (60, 70, 85), 20)
            wins = []
            for r in range(rows):
                for c in range(cols):
                    u0, u1 = (c + 0.25) / cols, (c + 0.75) / cols
                    v0, v1 = (r + 0.3) / rows, (r + 0.75) / rows
                    q = []
                    for u, v in ((u0, v0), (u1, v0), (u1, v1), (u0, v1)):
                        tt = t + (t_next - t) * u
                        q.append((st.x_on(xb, tt), st.y_at(tt) - height * tt * (0.08 + 0.9 * v)))
                    wins.append(q)
            cv.paint(L["building"], wcol, polys=wins, texture=8, grain=3, label=False)
            t = t_next
            x_edge = st.x_on(xb, t)
            if t > 3.0 or x_edge < -W * 0.05 or x_edge > W * 1.05:
                break


def _tree(cv: _Canvas, st: _Street, x: float, t: float) -> None:
    rng = cv.rng
    H = cv.lab.shape[0]
    y = st.y_at(t)
    s = t * H
    trunk_w, trunk_h = 0.025 * s, rng.uniform(0.25, 0.45) * s
    cv.paint(L["vegetation"], _jitter(rng, (90, 70, 50), 15),
             polys=[[(x - trunk_w, y), (x + trunk_w, y), (x + trunk_w, y - trunk_h), (x - trunk_w, y - trunk_h)]],
             texture=10, grain=6)
    green = _jitter(rng, (60, 110, 45), 25)
    r0 = rng.uniform(0.12, 0.22) * s
    blobs = [(x + rng.uniform(-1, 1) * r0, y - trunk_h - rng.uniform(0, 1.2) * r0, r0 * rng.uniform(0.5, 1.0))
             for _ in range(rng.integers(4, 9))]
    cv.paint(L["vegetation"], green, circles=blobs, texture=30, cell=max(2.0, r0 / 4), grain=12)


def _pole(cv: _Canvas, st: _Street, x: float, t: float) -> None:
    rng = cv.rng
    H = cv.lab.shape[0]
    y, s = st.y_at(t), t * H
    hw, ph = max(0.6, 0.008 * s), rng.uniform(0.6, 1.0) * s
    cv.paint(L["pole"], _jitter(rng, (130, 130, 135), 20),
             polys=[[(x - hw, y), (x + hw, y), (x + hw, y - ph), (x - hw, y - ph)]], texture=6, grain=4)
    top = y - ph
    kind = rng.integers(0, 3)
    r = 0.05 * s
    if kind == 0:  # round sign
        cv.paint(L["traffic sign"], _jitter(rng, (200, 30, 30), 20), circles=[(x, top, r)], texture=5, grain=4)
        cv.paint(L["traffic sign"], (235, 235, 235), circles=[(x, top, r * 0.65)], texture=3, grain=3, label=False)
    elif kind == 1:  # triangle / square sign
        if rng.random() < 0.5:
            poly = [(x - r, top + r * 0.8), (x + r, top + r * 0.8), (x, top - r)]
            col = (230, 200, 40)
        else:
            poly = [(x - r, top - r), (x + r, top - r), (x + r, top + r), (x - r, top + r)]
            col = (30, 70, 170)
        cv.paint(L["traffic sign"], _jitter(rng, col, 20), polys=[poly], texture=5, grain=4)
    else:  # traffic light: dark box with three lamps
        bw, bh = 0.03 * s, 0.09 * s
        cv.paint(L["traffic light"], _jitter(rng, (35, 35, 30), 8),
                 polys=[[(x - bw, top - bh), (x + bw, top - bh), (x + bw, top + bh), (x - bw, top + bh)]],
                 texture=3, grain=3)
        on = rng.integers(0, 3)
        for k, col in enumerate(((230, 40, 30), (240, 180, 30), (40, 210, 90))):
            c = col if k == on else (70, 70, 60)
            cv.paint(L["traffic light"], c, circles=[(x, top - bh * 0.6 + k * bh * 0.6, bw * 0.6)],
                     texture=0, grain=3, label=False)


def _car(cv: _Canvas, st: _Street, x: float, t: float) -> None:
    rng = cv.rng
    H = cv.lab.shape[0]
    y, s = st.y_at(t), t * H
    w, h = rng.uniform(0.45, 0.6) * s, rng.uniform(0.2, 0.26) * s
    body = _jitter(rng, rng.choice([(180, 20, 20), (20, 40, 120), (220, 220, 220), (30, 30, 30), (120, 120, 130), (200, 170, 40)]), 25)
    r_wheel = 0.22 * h
    lower = [(x - w / 2, y - r_wheel * 0.6), (x + w / 2, y - r_wheel * 0.6), (x + w / 2, y - h * 0.6), (x - w / 2, y - h * 0.6)]
    cabin = [(x - w * 0.38, y - h * 0.6), (x + w * 0.38, y - h * 0.6), (x + w * 0.28, y - h), (x - w * 0.28, y - h)]
    wheels = [(x - w * 0.32, y - r_wheel * 0.9, r_wheel), (x + w * 0.32, y - r_wheel * 0.9, r_wheel)]
    cv.paint(L["car"], (25, 25, 25), circles=wheels, texture=3, grain=3)
    cv.paint(L["car"], body, polys=[lower, cabin], texture=8, cell=max(2.0, w / 8), grain=4)
    glass = [(x - w * 0.32, y - h * 0.63), (x + w * 0.32, y - h * 0.63), (x + w * 0.24, y - h * 0.95), (x - w * 0.24, y - h * 0.95)]
    cv.paint(L["car"], _jitter(rng, (70, 90, 110), 15), polys=[glass], texture=10, grain=3, label=False)
    for sx in (-1, 1):  # rear lights
        cx = x + sx * w * 0.4
        cv.paint(L["car"], (200, 30, 30), polys=[[(cx - w * 0.05, y - h * 0.5), (cx + w * 0.05, y - h * 0.5),
                                                  (cx + w * 0.05, y - h * 0.42), (cx - w * 0.05, y - h * 0.42)]],
                 texture=0, grain=3, label=False)


def _person(cv: _Canvas, st: _Street, x: float, t: float, label_id: int, *, y_feet: float | None = None,
            scale: float = 1.0) -> None:
    rng = cv.rng
    H = cv.lab.shape[0]
    y = st.y_at(t) if y_feet is None else y_feet
    s = t * H * scale
    h = rng.uniform(0.42, 0.52) * s  # person height
    bw = 0.09 * h
    shirt = _jitter(rng, rng.choice([(200, 40, 40), (40, 60, 150), (230, 230, 230), (40, 40, 40), (60, 140, 70), (220, 180, 40)]), 30)
    pants = _jitter(rng, (50, 50, 70), 25)
    skin = _jitter(rng, (200, 160, 130), 35)
    step = rng.uniform(-1, 1) * bw * 0.6
    legs = [[(x - bw + step, y), (x - 0.1 * bw + step, y), (x, y - 0.48 * h), (x - bw, y - 0.48 * h)],
            [(x + 0.1 * bw - step, y), (x + bw - step, y), (x + bw, y - 0.48 * h), (x, y - 0.48 * h)]]
    torso = [(x - 1.1 * bw, y - 0.46 * h), (x + 1.1 * bw, y - 0.46 * h), (x + 1.2 * bw, y - 0.82 * h), (x - 1.2 * bw, y - 0.82 * h)]
    arms = [[(x - 1.5 * bw, y - 0.5 * h), (x - 1.1 * bw, y - 0.5 * h), (x - 1.1 * bw, y - 0.8 * h), (x - 1.5 * bw, y - 0.8 * h)],
            [(x + 1.1 * bw, y - 0.5 * h), (x + 1.5 * bw, y - 0.5 * h), (x + 1.5 * bw, y - 0.8 * h), (x + 1.1 * bw, y - 0.8 * h)]]
    cv.paint(label_id, pants, polys=legs, texture=6, grain=4)
    cv.paint(label_id, shirt, polys=[torso] + arms, texture=10, grain=5)
    cv.paint(label_id, skin, circles=[(x, y - 0.9 * h, 0.085 * h)], texture=5, grain=4)


def _cyclist(cv: _Canvas, st: _Street, x: float, t: float) -> None:
    rng = cv.rng
    H = cv.lab.shape[0]
    y, s = st.y_at(t), t * H
    r = 0.07 * s
    frame = _jitter(rng, (30, 30, 30), 20)
    # Bicycle seen from behind: a narrow wheel and handlebar (bicycle, trainId 18).
    cv.paint(L["bicycle"], frame, polys=[[(x - 0.15 * r, y), (x + 0.15 * r, y), (x + 0.15 * r, y - 2 * r), (x - 0.15 * r, y - 2 * r)],
                                         [(x - 1.2 * r, y - 2.4 * r), (x + 1.2 * r, y - 2.4 * r), (x + 1.2 * r, y - 2.2 * r), (x - 1.2 * r, y - 2.2 * r)]],
             texture=3, grain=3)
    _person(cv, st, x, t, L["rider"], y_feet=y - 0.6 * r, scale=0.95)


def _shadows_and_light(cv: _Canvas, st: _Street) -> None:
    rng = cv.rng
    H, W = cv.lab.shape
    # Cast shadows across the ground (a building's shade): darken, labels unchanged.
    shade = np.ones((H, W), np.float32)
    for _ in range(rng.integers(0, 3)):
        ta, tb = sorted(rng.uniform(0.05, 1.0, 2))
        side = rng.integers(0, 2)
        xa = st.facade[side]
        xb = st.road[1 - side] * rng.uniform(0.3, 1.0) + st.xv * 0.0
        poly = np.array([(st.x_on(xa, ta), st.y_at(ta)), (st.x_on(xb, ta), st.y_at(ta)),
                         (st.x_on(xb, tb), st.y_at(tb)), (st.x_on(xa, tb), st.y_at(tb))])
        cv2.fillPoly(shade, [np.round(poly).astype(np.int32)], float(rng.uniform(0.5, 0.75)))
    ground = np.zeros((H, W), bool)
    ground[int(np.ceil(st.yh)):] = True
    shade[~ground] = 1.0
    shade = cv2.GaussianBlur(shade, (0, 0), max(0.5, H / 300))
    gain = rng.uniform(0.65, 1.25)
    tint = rng.uniform(0.9, 1.1, 3).astype(np.float32)
    yy, xx = np.ogrid[:H, :W]
    vignette = 1.0 - 0.35 * (((xx - W / 2) / (W / 2)) ** 2 + ((yy - H / 2) / (H / 2)) ** 2).astype(np.float32) / 2
    cv.img *= (shade * vignette)[..., None] * gain * tint


def _ego_hood(cv: _Canvas, st: _Street) -> None:
    """The car's own bonnet at the bottom edge: 'ego vehicle', a void class (ignored)."""
    rng = cv.rng
    H, W = cv.lab.shape
    top = H * rng.uniform(0.88, 0.95)
    poly = [(-W * 0.05, H + 1), (-W * 0.05, H * 0.99), (W * 0.2, top), (W * 0.8, top), (W * 1.05, H * 0.99), (W * 1.05, H + 1)]
    cv.paint(L["ego vehicle"], _jitter(rng, (40, 40, 45), 15), polys=[poly], texture=8, grain=3)


def draw_scene(*, size: tuple[int, int], seed, instances: bool = False):
    """One street scene: (RGB uint8 HxWx3, labelIds uint8 HxW), plus Cityscapes instanceIds
    (uint16 HxW) as a third item when ``instances=True``. ``seed``: int or int sequence."""
    H, W = size
    rng = np.random.default_rng(seed)
    cv = _Canvas(np.zeros((H, W, 3), np.float32), np.zeros((H, W), np.uint8), rng,
                 np.zeros((H, W), np.int32) if instances else None)
    st = _Street(rng, H, W)
    _sky(cv, st)
    _ground(cv, st)
    _buildings(cv, st)

    # Objects on the ground, painted far to near so nearer ones occlude.
    objects = []
    for _ in range(rng.integers(2, 7)):  # trees on the outer sidewalk / terrain
        side, t = rng.integers(0, 2), rng.uniform(0.1, 1.1)
        x = st.x_on(st.walk[side] + (st.facade[side] - st.walk[side]) * rng.uniform(0.0, 0.8), t)
        objects.append((t, _tree, x))
    for _ in range(rng.integers(2, 7)):  # poles near the kerb
        side, t = rng.integers(0, 2), rng.uniform(0.08, 1.0)
        x = st.x_on(st.road[side] + (st.walk[side] - st.road[side]) * rng.uniform(0.1, 0.4), t)
        objects.append((t, _pole, x))
    for _ in range(rng.integers(1, 7)):  # cars in lanes or parked along the kerb
        t = rng.uniform(0.1, 1.0)
        x = st.x_on(st.road[0] + (st.road[1] - st.road[0]) * rng.uniform(0.12, 0.88), t)
        objects.append((t, _car, x))
    for _ in range(rng.integers(0, 9)):  # pedestrians on the sidewalks
        side, t = rng.integers(0, 2), rng.uniform(0.1, 1.0)
        x = st.x_on(st.walk[side] + (st.road[side] - st.walk[side]) * rng.uniform(0.1, 0.9), t)
        objects.append((t, lambda c, s, x, t: _person(c, s, x, t, L["person"]), x))
    for _ in range(rng.integers(0, 3)):  # cyclists near the road edge
        side, t = rng.integers(0, 2), rng.uniform(0.15, 1.0)
        x = st.x_on(st.road[side] + (st.road[1 - side] - st.road[side]) * rng.uniform(0.05, 0.15), t)
        objects.append((t, _cyclist, x))
    objects.sort(key=lambda o: o[0])
    for k, (t, draw, x) in enumerate(objects, start=1):
        cv.instance = k  # one instance number per object (a cyclist: rider k and bicycle k)
        draw(cv, st, x, t)
    cv.instance = 0

    _shadows_and_light(cv, st)
    if rng.random() < 0.3:
        _ego_hood(cv, st)
    # Camera: slight blur of the image only (labels stay sharp, as in hand annotation), sensor noise.
    img = cv2.GaussianBlur(cv.img, (0, 0), max(0.4, 0.6 * H / 1024))
    img += rng.normal(0.0, rng.uniform(2.0, 6.0), img.shape).astype(np.float32)
    image = np.clip(img, 0, 255).astype(np.uint8)
    if instances:
        return image, cv.lab, cv.inst.astype(np.uint16)
    return image, cv.lab


def _write_png(path: Path, array: np.ndarray, compression: int) -> None:
    """Encode with OpenCV and write atomically (``segment.atomic``): an interrupted run leaves no truncated PNG."""
    ok, buf = cv2.imencode(".png", array, [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise DatasetError(f"{path}: OpenCV could not encode this PNG")
    write_bytes(path, buf.tobytes())


def parse_size(text: str) -> tuple[int, int]:
    """'HxW' (or half / full: 512x1024 / 1024x2048) -> (H, W), checked against MAX_SIZE.

    The one size parser (``segment.sizes.parse_size``) with this command's message.
    """
    from segment.errors import UserError
    from segment.sizes import SIZES
    from segment.sizes import parse_size as parse

    try:
        size = parse(text, native=False, error=f"size {text!r}: expected HxW, e.g. 512x1024")
    except UserError as exc:
        raise DatasetError(str(exc)) from None
    return check_size(SIZES[size] if isinstance(size, str) else size)


def check_size(size) -> tuple[int, int]:
    h, w = (int(v) for v in size)
    if not (32 <= h <= MAX_SIZE[0] and 32 <= w <= MAX_SIZE[1]):
        raise DatasetError(
            f"size {h}x{w}: height must be 32..{MAX_SIZE[0]} and width 32..{MAX_SIZE[1]} (Cityscapes is 1024x2048)"
        )
    return h, w


def synthetic_paths(out: Path, split: str, index: int) -> tuple[Path, Path]:
    """Where image ``index`` of ``split`` and its labelIds go, in the Cityscapes naming scheme
    (the instanceIds file sits beside the labelIds file, "labelIds" -> "instanceIds")."""
    cities = CITIES[split]
    city = cities[index % len(cities)]
    stem = f"{city}_{index // len(cities):06d}_000019"  # frame 19: Cityscapes' annotated frame
    return (out / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png",
            out / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png")


def write_synthetic_cityscapes(
    *,
    out: str | Path,
    n: int,
    size: tuple[int, int] = (256, 512),
    seed: int = 0,
    splits: tuple[str, ...] = ("train", "val"),
    compression: int = 1,
) -> Path:
    """Write ``n`` scenes *per split* as a Cityscapes tree under ``out``; return ``out``.

    ``compression`` is the PNG zlib level (0-9). Level 1 writes fast and its
    files decode as fast as Cityscapes' own; see docs/data.md for measurements.
    """
    out = Path(out)
    if n < 1:
        raise DatasetError(f"--n {n}: the number of images per split must be at least 1")
    size = check_size(size)
    for split in splits:
        if split not in _SPLIT_CODE:
            raise DatasetError(f"split {split!r}: expected train, val or test")
        for i in range(n):
            img_path, lab_path = synthetic_paths(out, split, i)
            img_path.parent.mkdir(parents=True, exist_ok=True)
            lab_path.parent.mkdir(parents=True, exist_ok=True)
            image, labels, inst = draw_scene(size=size, seed=(seed, _SPLIT_CODE[split], i), instances=True)
            _write_png(img_path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), compression)
            _write_png(lab_path, labels, compression)
            # 16-bit instanceIds, as in gtFine: the official evaluator's instance-level
            # scores (iIoU) read them.
            _write_png(lab_path.with_name(lab_path.name.replace("labelIds", "instanceIds")), inst, compression)
    return out
