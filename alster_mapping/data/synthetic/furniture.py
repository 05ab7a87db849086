"""Builders of the furniture of a synthetic room: bed, nightstand, desk, chair, sofa, tables,
bookshelf, wardrobe / dresser, floor lamp, ottoman and shelf unit.

Each builder returns (name, label, main colour, _Parts[, extent]) in a local frame whose
origin is the back centre at floor level (x along the wall, y into the room, z up).
"""

from __future__ import annotations

import numpy as np

from .classes import BED, BOOKSHELF, CABINET, CHAIR, DESK, OTHERFURNITURE, SOFA, TABLE
from .fixtures import _cabinet_unit
from .shapes import _Parts
from .textures import BOOKS, FABRIC, PLAIN, WOOD, _color, _fabric, _plain, _wood


def _bed(rng, H, small=False):
    w, L = (rng.uniform(0.9, 1.05), rng.uniform(1.9, 2.0)) if small else (rng.uniform(1.0, 1.8), rng.uniform(1.95, 2.15))
    fh, mh = rng.uniform(0.22, 0.35), rng.uniform(0.16, 0.25)
    hh = rng.uniform(0.85, 1.15)
    wood, wp = _color(rng, "wood"), _wood(rng)
    sheet, blanket = _color(rng, "bed_sheet"), _color(rng, "blanket")
    p = _Parts()
    p.box((-w / 2, 0, 0), (w / 2, 0.06, hh), wood, WOOD, wp)  # headboard
    p.box((-w / 2, 0.06, 0), (w / 2, L, fh), wood, WOOD, wp)  # frame
    p.box((-w / 2 + 0.02, 0.06, fh), (w / 2 - 0.02, L - 0.02, fh + mh), sheet, FABRIC, _fabric(rng))  # mattress
    by = 0.06 + rng.uniform(0.45, 0.7)
    p.box((-w / 2 + 0.005, by, fh + mh), (w / 2 - 0.005, L - 0.005, fh + mh + 0.03), blanket, FABRIC, _fabric(rng))
    p.box((-w / 2 - 0.01, by, fh + 0.05), (-w / 2 + 0.005, L - 0.005, fh + mh + 0.03), blanket * 0.9, FABRIC, _fabric(rng))
    p.box((w / 2 - 0.005, by, fh + 0.05), (w / 2 + 0.01, L - 0.005, fh + mh + 0.03), blanket * 0.9, FABRIC, _fabric(rng))
    npill = 1 if w < 1.3 else 2
    pw = (w - 0.1) / npill - 0.04
    pcol = _color(rng, "bed_sheet")
    for i in range(npill):
        x0 = -w / 2 + 0.05 + i * (pw + 0.04) + 0.02
        p.box((x0, 0.1, fh + mh), (x0 + pw, 0.1 + rng.uniform(0.3, 0.4), fh + mh + rng.uniform(0.1, 0.16)), pcol, FABRIC, _fabric(rng))
    return "bed", BED, sheet, p, (w, L)


def _nightstand(rng, H):
    w, d, h = rng.uniform(0.4, 0.55), rng.uniform(0.35, 0.45), rng.uniform(0.45, 0.65)
    col = _color(rng, "cabinet")
    tex = WOOD if rng.random() < 0.6 else PLAIN
    p = _cabinet_unit(rng, -w / 2, w / 2, d, 0.0, h, col, tex, _wood(rng) if tex == WOOD else _plain(rng), toe=0.05)
    if rng.random() < 0.5:  # a table lamp on top (part of the nightstand in the labels)
        shade = _color(rng, "lamp_shade")
        p.cyl((0, d / 2, h + 0.02), 0.07, 0.04, _color(rng, "dark"))
        p.cyl((0, d / 2, h + 0.15), 0.012, 0.22, _color(rng, "metal"))
        p.cyl((0, d / 2, h + 0.33), 0.11, 0.16, shade, emissive=True)
    return "nightstand", OTHERFURNITURE, col, p, (w, d)


def _desk(rng, H, small=False):
    w, d = (rng.uniform(0.8, 1.0), rng.uniform(0.5, 0.6)) if small else (rng.uniform(1.0, 1.6), rng.uniform(0.55, 0.75))
    h = rng.uniform(0.72, 0.78)
    col = _color(rng, "cabinet")
    tex = WOOD if rng.random() < 0.6 else PLAIN
    par = _wood(rng) if tex == WOOD else _plain(rng)
    th = rng.uniform(0.025, 0.04)
    p = _Parts()
    p.box((-w / 2, 0, h - th), (w / 2, d, h), col, tex, par)
    side = 1 if rng.random() < 0.5 else -1
    pw = rng.uniform(0.38, 0.45)
    px0, px1 = (w / 2 - pw, w / 2) if side > 0 else (-w / 2, -w / 2 + pw)
    p.box((px0, 0, 0), (px1, d - 0.03, h - th), col * 0.95, tex, par)
    zs = np.linspace(0.03, h - th - 0.02, 4)
    handle = _color(rng, "metal")
    for i in range(3):
        p.box((px0 + 0.005, d - 0.03, zs[i] + 0.004), (px1 - 0.005, d - 0.005, zs[i + 1] - 0.004), col * 0.9, tex, par)
        zc, xc = (zs[i] + zs[i + 1]) / 2, (px0 + px1) / 2
        p.box((xc - 0.05, d - 0.005, zc - 0.008), (xc + 0.05, d + 0.015, zc + 0.008), handle)
    lx = -w / 2 + 0.02 if side > 0 else w / 2 - 0.07
    if rng.random() < 0.5:
        p.box((lx, 0.02, 0), (lx + 0.05, d - 0.02, h - th), col * 0.95, tex, par)  # side panel
    else:
        for ly in (0.03, d - 0.08):
            p.box((lx, ly, 0), (lx + 0.05, ly + 0.05, h - th), col * 0.95, tex, par)
    return "desk", DESK, col, p, (w, d)


def _chair(rng, H):
    col = _color(rng, "chair")
    w, d = rng.uniform(0.42, 0.5), rng.uniform(0.42, 0.5)
    sh, st = rng.uniform(0.43, 0.48), rng.uniform(0.04, 0.07)
    bh = rng.uniform(0.35, 0.5)
    p = _Parts()
    if rng.random() < 0.4:  # office chair: pedestal and star base
        dark = _color(rng, "dark")
        p.cyl((0, d / 2, 0.06), 0.03, 0.12, dark)
        p.box((-0.3, d / 2 - 0.025, 0.02), (0.3, d / 2 + 0.025, 0.06), dark)
        p.box((-0.025, d / 2 - 0.3, 0.02), (0.025, d / 2 + 0.3, 0.06), dark)
        p.cyl((0, d / 2, (0.12 + sh - st) / 2), 0.025, sh - st - 0.12, _color(rng, "metal"))
        p.box((-w / 2, 0, sh - st), (w / 2, d, sh), col, FABRIC, _fabric(rng))
        p.box((-w / 2 + 0.02, 0.0, sh + 0.05), (w / 2 - 0.02, 0.06, sh + bh + 0.1), col, FABRIC, _fabric(rng))
        p.box((-0.03, 0.02, sh), (0.03, 0.05, sh + 0.05), dark)
        return "chair", CHAIR, col, p, (0.6, 0.6)
    tex = WOOD if col.mean() > 0.3 and rng.random() < 0.6 else PLAIN
    par = _wood(rng) if tex == WOOD else _plain(rng)
    lg = rng.uniform(0.03, 0.045)
    for x in (-w / 2, w / 2 - lg):
        for y in (0.0, d - lg):
            p.box((x, y, 0), (x + lg, y + lg, sh - st), col * 0.9, tex, par)
    p.box((-w / 2, 0, sh - st), (w / 2, d, sh), col, tex, par)
    p.box((-w / 2, 0, sh), (-w / 2 + lg, lg, sh + bh), col * 0.9, tex, par)
    p.box((w / 2 - lg, 0, sh), (w / 2, lg, sh + bh), col * 0.9, tex, par)
    p.box((-w / 2 + lg, 0.005, sh + bh * rng.uniform(0.35, 0.6)), (w / 2 - lg, lg - 0.005, sh + bh), col, tex, par)
    if rng.random() < 0.3:  # upholstered seat cushion
        p.box((-w / 2 + 0.02, lg + 0.01, sh), (w / 2 - 0.02, d - 0.02, sh + 0.04), _color(rng, "sofa"), FABRIC, _fabric(rng))
    return "chair", CHAIR, col, p, (w, d)


def _sofa(rng, H, small=False):
    w, d = (rng.uniform(1.2, 1.5), rng.uniform(0.75, 0.85)) if small else (rng.uniform(1.6, 2.4), rng.uniform(0.8, 1.0))
    sh, bh = rng.uniform(0.4, 0.48), rng.uniform(0.75, 0.95)
    aw, ah = rng.uniform(0.12, 0.25), rng.uniform(0.55, 0.68)
    bt = rng.uniform(0.18, 0.26)
    col = _color(rng, "sofa")
    fp = _fabric(rng)
    p = _Parts()
    foot = 0.06
    feet = _color(rng, "dark")
    for x in (-w / 2 + 0.03, w / 2 - 0.07):
        for y in (0.03, d - 0.07):
            p.box((x, y, 0), (x + 0.04, y + 0.04, foot), feet)
    p.box((-w / 2, 0, foot), (-w / 2 + aw, d, ah), col, FABRIC, fp)
    p.box((w / 2 - aw, 0, foot), (w / 2, d, ah), col, FABRIC, fp)
    p.box((-w / 2 + aw, 0, foot), (w / 2 - aw, bt, bh), col, FABRIC, fp)
    p.box((-w / 2 + aw, bt, foot), (w / 2 - aw, d, sh - 0.12), col * 0.92, FABRIC, fp)
    n = 2 if w - 2 * aw < 1.5 else 3
    xs = np.linspace(-w / 2 + aw, w / 2 - aw, n + 1)
    for i in range(n):
        p.box((xs[i] + 0.005, bt, sh - 0.12), (xs[i + 1] - 0.005, d - 0.01, sh), col * 1.03, FABRIC, fp)
        if rng.random() < 0.6:  # back cushions
            p.box((xs[i] + 0.01, bt, sh), (xs[i + 1] - 0.01, bt + 0.12, bh - 0.05), col * 0.97, FABRIC, fp)
    return "sofa", SOFA, col, p, (w, d)


def _table(rng, H, coffee=False, small=False):
    if small:  # side or wall table
        w, d, h = rng.uniform(0.6, 0.9), rng.uniform(0.45, 0.6), rng.uniform(0.6, 0.76)
    elif coffee:
        w, d, h = rng.uniform(0.8, 1.2), rng.uniform(0.5, 0.7), rng.uniform(0.38, 0.48)
    else:
        w, d, h = rng.uniform(0.9, 1.6), rng.uniform(0.7, 0.95), rng.uniform(0.72, 0.77)
    col = _color(rng, "wood") if rng.random() < 0.65 else _color(rng, "white" if rng.random() < 0.5 else "dark")
    tex = WOOD if rng.random() < 0.7 else PLAIN
    par = _wood(rng) if tex == WOOD else _plain(rng)
    th = rng.uniform(0.03, 0.05)
    p = _Parts()
    if not coffee and not small and rng.random() < 0.2:  # round pedestal table
        r = min(w, d + 0.2) / 2
        p.cyl((0, r, h - th / 2), r, th, col, tex, par)
        p.cyl((0, r, (h - th) / 2), 0.05, h - th, col * 0.9, tex, par)
        p.cyl((0, r, 0.015), 0.25, 0.03, col * 0.85, tex, par)
        return "table", TABLE, col, p, (2 * r, 2 * r)
    p.box((-w / 2, 0, h - th), (w / 2, d, h), col, tex, par)
    lg = rng.uniform(0.04, 0.07)
    inset = rng.uniform(0.02, 0.08)
    for x in (-w / 2 + inset, w / 2 - inset - lg):
        for y in (inset, d - inset - lg):
            p.box((x, y, 0), (x + lg, y + lg, h - th), col * 0.9, tex, par)
    if coffee and rng.random() < 0.5:  # lower shelf
        p.box((-w / 2 + inset + lg, inset, 0.1), (w / 2 - inset - lg, d - inset, 0.12), col * 0.9, tex, par)
    return "table", TABLE, col, p, (w, d)


def _bookshelf(rng, H, small=False):
    w, d = (rng.uniform(0.45, 0.65), rng.uniform(0.25, 0.3)) if small else (rng.uniform(0.6, 1.2), rng.uniform(0.28, 0.38))
    h = min(rng.uniform(1.4, 2.1), H - 0.2)
    col = _color(rng, "cabinet")
    tex = WOOD if rng.random() < 0.6 else PLAIN
    par = _wood(rng) if tex == WOOD else _plain(rng)
    t = rng.uniform(0.018, 0.025)
    p = _Parts()
    p.box((-w / 2, 0, 0), (-w / 2 + t, d, h), col, tex, par)
    p.box((w / 2 - t, 0, 0), (w / 2, d, h), col, tex, par)
    p.box((-w / 2 + t, 0, h - t), (w / 2 - t, d, h), col, tex, par)
    p.box((-w / 2 + t, 0, 0), (w / 2 - t, d, 0.08), col * 0.9, tex, par)
    p.box((-w / 2 + t, 0, 0.08), (w / 2 - t, 0.012, h - t), col * 0.85, tex, par)
    n = max(3, int((h - 0.1) / rng.uniform(0.3, 0.38)))
    zs = np.linspace(0.08, h - t, n + 1)
    for i in range(n):
        z = zs[i]
        if i > 0:
            p.box((-w / 2 + t, 0.012, z - t / 2), (w / 2 - t, d, z + t / 2), col, tex, par)
        gap = zs[i + 1] - z - t
        x = -w / 2 + t + 0.005
        while x < w / 2 - t - 0.06:
            if rng.random() < 0.3:  # a gap on the shelf
                x += rng.uniform(0.05, 0.2)
                continue
            bw = min(rng.uniform(0.08, 0.25), w / 2 - t - 0.005 - x)
            bh = gap * rng.uniform(0.6, 0.9)
            bd = d * rng.uniform(0.6, 0.9)
            book = _color(rng, "books", dh=0.1, ds=0.3, dv=0.25)
            p.box((x, 0.012, z + t / 2), (x + bw, 0.012 + bd, z + t / 2 + bh), book, BOOKS, (rng.uniform(0.02, 0.04), rng.uniform(0, 100), 0, 0))
            x += bw + 0.002
    return "bookshelf", BOOKSHELF, col, p, (w, d)


def _wardrobe(rng, H):
    col = _color(rng, "cabinet")
    tex = WOOD if rng.random() < 0.5 else PLAIN
    par = _wood(rng) if tex == WOOD else _plain(rng)
    if rng.random() < 0.5:
        w, d, h = rng.uniform(0.8, 1.2), rng.uniform(0.5, 0.6), min(rng.uniform(1.8, 2.1), H - 0.15)
    else:  # dresser
        w, d, h = rng.uniform(0.8, 1.4), rng.uniform(0.4, 0.5), rng.uniform(0.7, 1.0)
    p = _cabinet_unit(rng, -w / 2, w / 2, d, 0.0, h, col, tex, par, toe=0.06)
    return "cabinet", CABINET, col, p, (w, d)


def _floor_lamp(rng, H):
    p = _Parts()
    dark, shade = _color(rng, "dark"), _color(rng, "lamp_shade")
    ph, r = rng.uniform(1.3, 1.6), rng.uniform(0.17, 0.25)
    p.cyl((0, r, 0.015), 0.15, 0.03, dark)
    p.cyl((0, r, 0.03 + ph / 2), 0.015, ph, _color(rng, "metal"))
    p.cyl((0, r, 0.03 + ph + 0.12), r, 0.26, shade, emissive=True)
    return "lamp", OTHERFURNITURE, shade, p, (2 * r, 2 * r)


def _ottoman(rng, H):
    col = _color(rng, "sofa")
    p = _Parts()
    s, h = rng.uniform(0.4, 0.65), rng.uniform(0.35, 0.45)
    if rng.random() < 0.4:
        p.cyl((0, s / 2, h / 2), s / 2, h, col, FABRIC, _fabric(rng))
    else:
        p.box((-s / 2, 0, 0.04), (s / 2, s, h), col, FABRIC, _fabric(rng))
        for x in (-s / 2 + 0.02, s / 2 - 0.05):
            for y in (0.02, s - 0.05):
                p.box((x, y, 0), (x + 0.03, y + 0.03, 0.04), _color(rng, "dark"))
    return "ottoman", OTHERFURNITURE, col, p, (s, s)


def _shelf_unit(rng, H):
    metal = rng.random() < 0.5
    col = _color(rng, "metal") if metal else _color(rng, "wood")
    w, d, h = rng.uniform(0.6, 1.0), rng.uniform(0.3, 0.45), rng.uniform(0.8, 1.6)
    p = _Parts()
    post = 0.03
    for x in (-w / 2, w / 2 - post):
        for y in (0.0, d - post):
            p.box((x, y, 0), (x + post, y + post, h), col * 0.85)
    n = int(rng.integers(3, 5))
    for z in np.linspace(0.1, h - 0.02, n):
        p.box((-w / 2 + post, 0.0, z), (w / 2 - post, d, z + 0.02), col, WOOD if not metal else PLAIN, _wood(rng) if not metal else _plain(rng))
    return "shelf unit", OTHERFURNITURE, col, p, (w, d)
