/**
 * The WOBI heatmap: depth level (rows, level 1 = the touch, at the top) x time (columns, newest
 * at the right), Canvas2D.
 *
 * An offscreen canvas `capacity` columns wide mirrors the store's ColumnRing slot for slot:
 * a new heatmap row is one `putImageData` of a 1 x levels column from a packed-colour lookup
 * table; a frame then composites the ring onto the screen with at most two scaled
 * `drawImage` calls (the wrapped halves), smoothing off. A `full` message (or more new rows
 * than the ring holds) repaints the offscreen picture from the ring.
 */

import { useEffect, useRef } from 'react';
import { usePainter, useStore } from '../data/hooks';
import { DIRTY } from '../data/store';
import { AXIS } from '../palette';
import { buildLut, lutIndex } from './colormap';

const LEFT = 34; // level labels
const BOTTOM = 16; // time labels
const TOP = 2;

export interface HeatmapProps {
  height: number;
  label: string;
}

export function Heatmap({ height, label }: HeatmapProps) {
  const s = useStore();
  const canvas = useRef<HTMLCanvasElement>(null);
  const st = useRef({
    off: null as HTMLCanvasElement | null,
    offCtx: null as CanvasRenderingContext2D | null,
    col: null as ImageData | null,
    col32: null as Uint32Array | null,
    lut: buildLut(),
    epoch: -1,
    written: 0,
    levels: 0,
    cssW: 0,
    cssH: 0,
    resized: true,
    draws: 0,
  });

  useEffect(() => {
    const c = canvas.current;
    if (!c || typeof ResizeObserver !== 'function') return;
    const ro = new ResizeObserver(() => {
      st.current.resized = true;
      s.scheduler.markDirty(DIRTY.heatmap);
    });
    ro.observe(c);
    return () => ro.disconnect();
  }, [s]);

  usePainter(DIRTY.heatmap, () => {
    const c = canvas.current;
    if (!c) return;
    const ctx = c.getContext('2d');
    if (!ctx) return;
    const h = s.heat;
    const z = st.current;
    // offscreen ring picture
    if (!z.off || z.levels !== h.levels) {
      z.off = document.createElement('canvas');
      z.off.width = h.capacity;
      z.off.height = h.levels;
      z.offCtx = z.off.getContext('2d');
      z.levels = h.levels;
      z.col = z.offCtx ? z.offCtx.createImageData(1, h.levels) : null;
      z.col32 = z.col ? new Uint32Array(z.col.data.buffer) : null;
      z.epoch = -1;
    }
    const octx = z.offCtx;
    if (!octx || !z.col || !z.col32) return;
    const paintSlot = (slot: number) => {
      const base = slot * h.levels;
      for (let l = 0; l < h.levels; l++) z.col32![l] = z.lut[lutIndex(h.values[base + l])];
      octx.putImageData(z.col!, slot, 0);
    };
    const fresh = h.written - z.written;
    if (z.epoch !== h.epoch || fresh >= h.capacity || fresh < 0) {
      octx.clearRect(0, 0, h.capacity, h.levels);
      for (let i = 0; i < h.length; i++) paintSlot(h.slot(i));
      z.epoch = h.epoch;
    } else {
      for (let i = h.length - fresh; i < h.length; i++) paintSlot(h.slot(i));
    }
    z.written = h.written;

    // screen
    const dpr = window.devicePixelRatio || 1;
    const cssW = c.clientWidth || 300;
    const cssH = height;
    if (z.resized || cssW !== z.cssW || cssH !== z.cssH) {
      c.width = Math.round(cssW * dpr);
      c.height = Math.round(cssH * dpr);
      z.cssW = cssW;
      z.cssH = cssH;
      z.resized = false;
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);
    const plotW = cssW - LEFT - 2;
    const plotH = cssH - BOTTOM - TOP;
    const cap = h.capacity;
    const n = h.length;
    const colW = plotW / cap;
    ctx.imageSmoothingEnabled = false;
    ctx.fillStyle = '#111418';
    ctx.fillRect(LEFT, TOP, plotW, plotH);
    if (n > 0) {
      const start = h.slot(0);
      const first = Math.min(n, cap - start); // slots start..start+first-1
      const x0 = LEFT + (cap - n) * colW;
      ctx.drawImage(z.off!, start, 0, first, h.levels, x0, TOP, first * colW, plotH);
      if (first < n)
        ctx.drawImage(z.off!, 0, 0, n - first, h.levels, x0 + first * colW, TOP, (n - first) * colW, plotH);
    }
    // level labels
    ctx.fillStyle = AXIS;
    ctx.font = '10px system-ui, sans-serif';
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    const rowH = plotH / h.levels;
    const every = rowH < 11 ? 2 : 1;
    for (let l = 0; l < h.levels; l += every) ctx.fillText(`L${l + 1}`, LEFT - 4, TOP + (l + 0.5) * rowH);
    // time labels: seconds before the newest row, on the engine's event clock
    if (n > 1) {
      const tNew = h.times[h.slot(n - 1)];
      ctx.textAlign = 'center';
      ctx.textBaseline = 'top';
      let next = 0; // seconds ago of the next label
      for (let i = n - 1; i >= 0; i--) {
        const t = h.times[h.slot(i)];
        if (!Number.isFinite(t) || t === 0) continue;
        const ago = (tNew - t) / 1e9;
        if (ago >= next) {
          const x = LEFT + (cap - n + i + 0.5) * colW;
          if (next === 0) {
            ctx.textAlign = 'right';
            ctx.fillText('now', LEFT + plotW, TOP + plotH + 3);
            ctx.textAlign = 'center';
          } else if (x > LEFT + 12 && x < LEFT + plotW - 30) ctx.fillText(`−${next}s`, x, TOP + plotH + 3);
          next += 10;
        }
      }
    }
    z.draws++;
    c.dataset.draws = String(z.draws);
  });

  return (
    <canvas
      ref={canvas}
      className="heatmap"
      style={{ height: `${height}px` }}
      role="img"
      aria-label={label}
    />
  );
}
