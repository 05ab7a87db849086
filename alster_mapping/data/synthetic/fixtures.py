"""Builders of the built-in fixtures of a synthetic room: doors, windows with curtains,
pictures, the bathroom corner (bathtub, shower curtain, toilet, basins, pedestal sink) and
the kitchen corner (refrigerator, cabinet units, counter with a sink).

Each builder returns (name, label, main colour, _Parts[, extent]) in a local frame whose
origin is the back centre at floor level (x along the wall, y into the room, z up).
"""

from __future__ import annotations

import numpy as np

from .classes import BATHTUB, CABINET, COUNTER, CURTAIN, DOOR, PICTURE, REFRIGERATOR, SHOWER_CURTAIN, SINK, TOILET, WINDOW
from .shapes import _Parts
from .textures import ART, FABRIC, GLASS, PLAIN, SPECKLE, WOOD, _color, _fabric, _plain, _speckle, _wood

# ---------------------------------------------------------------------------------------
# Object builders: each returns (name, label, main colour, _Parts) in a local frame whose
# origin is the back centre at floor level (x along the wall, y into the room, z up).
# ---------------------------------------------------------------------------------------


def _door(rng, H):
    w, h, cw = rng.uniform(0.8, 0.95), rng.uniform(1.98, 2.1), rng.uniform(0.06, 0.09)
    col = _color(rng, "door")
    tex = WOOD if rng.random() < 0.5 else PLAIN
    frame = np.clip(col * rng.uniform(0.8, 1.15), 0, 1)
    p = _Parts()
    p.box((-w / 2, 0, 0.01), (w / 2, 0.03, h), col, tex, _wood(rng) if tex == WOOD else _plain(rng))
    p.box((-w / 2 - cw, 0, 0), (-w / 2, 0.045, h), frame, PLAIN, _plain(rng))
    p.box((w / 2, 0, 0), (w / 2 + cw, 0.045, h), frame, PLAIN, _plain(rng))
    p.box((-w / 2 - cw, 0, h), (w / 2 + cw, 0.045, h + cw), frame, PLAIN, _plain(rng))
    if rng.random() < 0.6:  # raised panels
        rows = 2 if rng.random() < 0.5 else 3
        m = 0.12
        zs = np.linspace(0.15, h - 0.15, rows + 1)
        for i in range(rows):
            p.box((-w / 2 + m, 0.03, zs[i] + 0.04), (w / 2 - m, 0.038, zs[i + 1] - 0.04), col * 0.93, PLAIN, _plain(rng))
    side = 1 if rng.random() < 0.5 else -1
    metal = _color(rng, "metal")
    xk = side * (w / 2 - 0.08)
    p.box((xk - 0.025, 0.03, 0.95), (xk + 0.025, 0.05, 1.05), metal)
    p.box((min(xk, xk - side * 0.12), 0.05, 0.99), (max(xk, xk - side * 0.12), 0.07, 1.015), metal)
    return "door", DOOR, col, p, w + 2 * cw


def _window(rng, H):
    w = rng.uniform(0.8, 1.6)
    sill = rng.uniform(0.8, 1.0)
    top = min(sill + rng.uniform(1.0, 1.5), H - 0.25)
    fw, fd = rng.uniform(0.05, 0.08), rng.uniform(0.05, 0.07)
    frame = _color(rng, "window_frame")
    glass = _color(rng, "glass", ds=0.2, dv=0.05)
    p = _Parts()
    p.box((-w / 2 + fw, 0, sill + fw), (w / 2 - fw, 0.012, top - fw), glass, GLASS, (rng.uniform(0, 6.28), 0, 0, 0), emissive=True)
    p.box((-w / 2, 0, sill), (-w / 2 + fw, fd, top), frame)
    p.box((w / 2 - fw, 0, sill), (w / 2, fd, top), frame)
    p.box((-w / 2 + fw, 0, sill), (w / 2 - fw, fd, sill + fw), frame)
    p.box((-w / 2 + fw, 0, top - fw), (w / 2 - fw, fd, top), frame)
    if rng.random() < 0.6:  # mullion
        p.box((-0.3 * fw, 0.012, sill + fw), (0.3 * fw, 0.8 * fd, top - fw), frame)
    p.box((-w / 2 - 0.05, 0, sill - 0.03), (w / 2 + 0.05, rng.uniform(0.1, 0.18), sill), frame * 0.97)
    return "window", WINDOW, frame, p, (w, sill, top)


def _curtain(rng, H, x0, x1, top, bottom, col):
    """A folded curtain panel spanning local x in [x0, x1], hanging from a rod at ``top``."""
    pitch, amp, off = rng.uniform(0.07, 0.13), rng.uniform(0.04, 0.07), rng.uniform(0.07, 0.1)
    n = max(2, int(round(abs(x1 - x0) / pitch)) * 2)
    xs = np.linspace(x0, x1, n + 1)
    ys = off + amp * (np.arange(n + 1) % 2)
    p = _Parts()
    p.sheet(xs, ys, bottom, top, col, FABRIC, _fabric(rng))
    p.cyl(((x0 + x1) / 2, off + amp / 2, top + 0.02), 0.012, abs(x1 - x0) + 0.04, _color(rng, "metal"), axis="x")
    return "curtain", CURTAIN, col, p


def _picture(rng, H):
    w, h = rng.uniform(0.3, 1.0), rng.uniform(0.25, 0.8)
    zc = min(rng.uniform(1.35, 1.75), H - 0.2 - h / 2)
    th, fw = rng.uniform(0.02, 0.04), rng.uniform(0.015, 0.05)
    z0, z1 = zc - h / 2, zc + h / 2
    frame = _color(rng, "picture_frame")
    p = _Parts()
    art = (rng.uniform(2, 9), rng.uniform(2, 9), rng.uniform(0, 6.28), rng.uniform(1, 6))
    p.box((-w / 2 + fw, 0, z0 + fw), (w / 2 - fw, th - 0.008, z1 - fw), _color(rng, "art"), ART, art)
    p.box((-w / 2, 0, z0), (-w / 2 + fw, th, z1), frame)
    p.box((w / 2 - fw, 0, z0), (w / 2, th, z1), frame)
    p.box((-w / 2 + fw, 0, z0), (w / 2 - fw, th, z0 + fw), frame)
    p.box((-w / 2 + fw, 0, z1 - fw), (w / 2 - fw, th, z1), frame)
    return "picture", PICTURE, frame, p


def _bathtub(rng, H):
    L, W, h, t = rng.uniform(1.5, 1.75), rng.uniform(0.7, 0.8), rng.uniform(0.5, 0.6), rng.uniform(0.06, 0.1)
    col = _color(rng, "ceramic", ds=0.3, dv=0.04)
    p = _Parts()
    p.box((-L / 2 + t, t, 0), (L / 2 - t, W - t, rng.uniform(0.1, 0.16)), col * 0.96)
    p.box((-L / 2, 0, 0), (L / 2, t, h), col)
    p.box((-L / 2, W - t, 0), (L / 2, W, h), col)
    p.box((-L / 2, t, 0), (-L / 2 + t, W - t, h), col)
    p.box((L / 2 - t, t, 0), (L / 2, W - t, h), col)
    return "bathtub", BATHTUB, col, p, (L, W, h)


def _shower_curtain(rng, H, L, W, h):
    col = _color(rng, "shower_curtain")
    rod_z = min(rng.uniform(1.85, 2.0), H - 0.1)
    frac = rng.uniform(0.35, 0.85)
    left = rng.random() < 0.5
    x0, x1 = (-L / 2 + 0.02, -L / 2 + 0.02 + frac * (L - 0.04)) if left else (L / 2 - 0.02 - frac * (L - 0.04), L / 2 - 0.02)
    amp = rng.uniform(0.03, 0.06) / max(frac, 0.4)
    n = max(2, int(round((x1 - x0) / rng.uniform(0.06, 0.1))) * 2)
    y = W - 0.06
    xs = np.linspace(x0, x1, n + 1)
    ys = y - amp * (np.arange(n + 1) % 2)
    p = _Parts()
    p.sheet(xs, ys, h + rng.uniform(0.08, 0.2), rod_z - 0.03, col, FABRIC, _fabric(rng))
    p.cyl((0, y - amp / 2, rod_z), 0.013, L, _color(rng, "metal"), axis="x")
    return "shower curtain", SHOWER_CURTAIN, col, p


def _toilet(rng, H):
    col = _color(rng, "ceramic", ds=0.3, dv=0.04)
    tw, td = rng.uniform(0.36, 0.45), rng.uniform(0.15, 0.2)
    z0 = rng.uniform(0.4, 0.44)
    z1 = z0 + rng.uniform(0.3, 0.38)
    r = rng.uniform(0.17, 0.2)
    cy = td + rng.uniform(0.22, 0.28)
    p = _Parts()
    p.box((-tw / 2, 0, z0), (tw / 2, td, z1), col)
    p.box((-tw / 2 - 0.01, 0, z1), (tw / 2 + 0.01, td + 0.01, z1 + 0.025), col * 0.98)
    p.box((-0.06, 0.03, 0.3), (0.06, td, z0), col * 0.97)  # pipe between tank and bowl
    p.box((-0.11, td, 0), (0.11, cy + 0.1, 0.3), col)  # pedestal
    p.cyl((0, cy, 0.35), r, 0.1, col)  # bowl
    p.cyl((0, cy, 0.41), r + 0.01, 0.02, col * rng.uniform(0.9, 1.0))  # seat
    if rng.random() < 0.5:  # lid up against the tank
        p.box((-r, td + 0.01, 0.42), (r, td + 0.03, 0.42 + 2 * r), col * 0.97)
    return "toilet", TOILET, col, p, (2 * max(r + 0.01, tw / 2 + 0.01), cy + r + 0.01)


def _basin(p: _Parts, x0, x1, y0, y1, z, depth, col, rng):
    """A hollow basin (bottom plate and four rim walls) standing on the plane ``z``, with a faucet."""
    t = 0.025
    p.box((x0 + t, y0 + t, z), (x1 - t, y1 - t, z + 0.012), col * 0.93)
    p.box((x0, y0, z), (x1, y0 + t, z + depth), col)
    p.box((x0, y1 - t, z), (x1, y1, z + depth), col)
    p.box((x0, y0 + t, z), (x0 + t, y1 - t, z + depth), col)
    p.box((x1 - t, y0 + t, z), (x1, y1 - t, z + depth), col)
    metal = _color(rng, "metal")
    fx = (x0 + x1) / 2
    p.cyl((fx, y0 - 0.04, z + 0.1), 0.015, 0.2, metal)
    p.box((fx - 0.012, y0 - 0.04, z + 0.18), (fx + 0.012, y0 + 0.1, z + 0.2), metal)


def _pedestal_sink(rng, H):
    col = _color(rng, "ceramic", ds=0.3, dv=0.04)
    w, d = rng.uniform(0.45, 0.6), rng.uniform(0.4, 0.5)
    z = rng.uniform(0.7, 0.76)
    p = _Parts()
    p.cyl((0, 0.22, z / 2), rng.uniform(0.07, 0.1), z, col)
    p.box((-w / 2, 0, z - 0.04), (w / 2, d, z), col)  # basin underside
    p.box((-w / 2, 0, z), (w / 2, 0.07, z + 0.13), col)  # back rim carrying the faucet
    _basin(p, -w / 2, w / 2, 0.07, d, z, 0.13, col, rng)
    return "sink", SINK, col, p, (w, d)


def _fridge(rng, H):
    col = _color(rng, "fridge", dv=0.05)
    w, d, h = rng.uniform(0.6, 0.85), rng.uniform(0.65, 0.75), rng.uniform(1.65, 1.95)
    p = _Parts()
    p.box((-w / 2, 0, 0), (w / 2, d - 0.04, h), col * 0.96)
    handle = _color(rng, "metal") if rng.random() < 0.7 else col * 0.7
    side = 1 if rng.random() < 0.5 else -1
    hx = side * (w / 2 - 0.07)
    if rng.random() < 0.3 and w > 0.75:  # side by side
        p.box((-w / 2 + 0.003, d - 0.04, 0.01), (-0.004, d, h - 0.005), col)
        p.box((0.004, d - 0.04, 0.01), (w / 2 - 0.003, d, h - 0.005), col)
        for hx2 in (-0.05, 0.03):
            p.box((hx2, d, 0.6), (hx2 + 0.02, d + 0.04, 1.3), handle)
    else:
        hs = h * rng.uniform(0.28, 0.36)
        top_freezer = rng.random() < 0.5
        split = h - hs if top_freezer else hs
        p.box((-w / 2 + 0.003, d - 0.04, 0.01), (w / 2 - 0.003, d, split - 0.005), col)
        p.box((-w / 2 + 0.003, d - 0.04, split + 0.005), (w / 2 - 0.003, d, h - 0.005), col)
        p.box((hx - 0.01, d, split - 0.45), (hx + 0.01, d + 0.04, split - 0.1), handle)
        p.box((hx - 0.01, d, split + 0.1), (hx + 0.01, d + 0.04, min(split + 0.45, h - 0.05)), handle)
    return "refrigerator", REFRIGERATOR, col, p, (w, d)


def _cabinet_unit(rng, x0, x1, d, z0, z1, col, tex, params, toe=0.0):
    """A cabinet box from x0 to x1 with a door or drawer front, optionally on a recessed plinth."""
    p = _Parts()
    if toe > 0:
        p.box((x0, 0, 0), (x1, d - 0.06, toe), col * 0.55)
    p.box((x0, 0, max(z0, toe)), (x1, d - 0.02, z1), col, tex, params)
    handle = _color(rng, "metal") if rng.random() < 0.7 else _color(rng, "dark")
    fz0, fz1 = max(z0, toe) + 0.01, z1 - 0.01
    if rng.random() < 0.35 and fz1 - fz0 < 1.0:  # drawers
        n = int(rng.integers(2, 4))
        zs = np.linspace(fz0, fz1, n + 1)
        for i in range(n):
            p.box((x0 + 0.004, d - 0.02, zs[i] + 0.003), (x1 - 0.004, d, zs[i + 1] - 0.003), col * 0.97, tex, params)
            zc = (zs[i] + zs[i + 1]) / 2
            xc = (x0 + x1) / 2
            p.box((xc - 0.06, d, zc - 0.01), (xc + 0.06, d + 0.025, zc + 0.01), handle)
    else:
        n = 2 if x1 - x0 > 0.7 else 1
        xs = np.linspace(x0, x1, n + 1)
        for i in range(n):
            p.box((xs[i] + 0.004, d - 0.02, fz0), (xs[i + 1] - 0.004, d, fz1), col * 0.97, tex, params)
            hxx = xs[i + 1] - 0.05 if i == 0 and n == 2 or rng.random() < 0.5 else xs[i] + 0.03
            hz = fz1 - 0.12 if z0 < 0.5 else fz0 + 0.05
            p.box((hxx, d, hz - 0.06), (hxx + 0.02, d + 0.025, hz + 0.06), handle)
    return p


def _kitchen(rng, H):
    """Base cabinets + counter (+ sink) + optional wall cabinets + refrigerator, in one local frame.

    Returns a list of (name, label, colour, parts, dx) members and the group's x extent.
    """
    L = rng.uniform(1.2, 2.2)
    hc, th, d = rng.uniform(0.88, 0.92), rng.uniform(0.03, 0.045), 0.6
    cab_col = _color(rng, "cabinet")
    cab_tex = WOOD if rng.random() < 0.4 else PLAIN
    cab_par = _wood(rng) if cab_tex == WOOD else _plain(rng)
    members = []
    n = max(2, int(round(L / rng.uniform(0.45, 0.65))))
    xs = np.linspace(-L / 2, L / 2, n + 1)
    for i in range(n):
        p = _cabinet_unit(rng, xs[i], xs[i + 1], d, 0.0, hc - th, cab_col, cab_tex, cab_par, toe=0.1)
        members.append(("cabinet", CABINET, cab_col, p, 0.0))
    top = _color(rng, "counter")
    p = _Parts()
    p.box((-L / 2, 0, hc - th), (L / 2, d + 0.025, hc), top, SPECKLE, _speckle(rng))
    members.append(("counter", COUNTER, top, p, 0.0))
    sw, sd = rng.uniform(0.45, 0.7), rng.uniform(0.36, 0.44)
    sx = rng.uniform(-L / 2 + sw / 2 + 0.05, L / 2 - sw / 2 - 0.05)
    p = _Parts()
    scol = _color(rng, "metal") if rng.random() < 0.6 else _color(rng, "ceramic")
    _basin(p, sx - sw / 2, sx + sw / 2, 0.12, 0.12 + sd, hc, rng.uniform(0.04, 0.07), scol, rng)
    members.append(("sink", SINK, scol, p, 0.0))
    if rng.random() < 0.65 and H > 2.45:  # wall cabinets
        z0 = rng.uniform(1.4, 1.5)
        z1 = min(z0 + rng.uniform(0.6, 0.75), H - 0.05)
        m = max(1, n - int(rng.integers(0, 2)))
        for i in range(m):
            p = _cabinet_unit(rng, xs[i], xs[i + 1], 0.33, z0, z1, cab_col, cab_tex, cab_par)
            members.append(("cabinet", CABINET, cab_col, p, 0.0))
    name, label, col, p, (fw, fd) = _fridge(rng, H)
    side = 1 if rng.random() < 0.5 else -1
    members.append((name, label, col, p, side * (L / 2 + 0.02 + fw / 2)))
    x0, x1 = (-L / 2, L / 2 + 0.02 + fw) if side > 0 else (-L / 2 - 0.02 - fw, L / 2)
    return members, (x0, x1)
