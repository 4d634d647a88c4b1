/**
 * A uPlot chart created once per mount and fed from the store's animation-frame flush
 * (`setData` at most once per frame, only when its channel changed): React renders the empty
 * <div> and never touches the chart again. Remount (change `key`) to change its series.
 */

import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { usePainter } from '../data/hooks';
import { clock } from '../data/format';
import { AXIS, GRID } from '../palette';

export interface UPlotChartProps {
  /** uPlot options without width/height (read once, at mount) */
  options: Omit<uPlot.Options, 'width' | 'height'>;
  /** the store channels whose change repaints this chart */
  mask: number;
  /** the data to draw now (reusable arrays); null: leave the chart as it is */
  data: () => uPlot.AlignedData | null;
  height: number;
  label: string;
  className?: string;
}

export function UPlotChart({ options, mask, data, height, label, className }: UPlotChartProps) {
  const host = useRef<HTMLDivElement>(null);
  const chart = useRef<uPlot | null>(null);
  const init = useRef({ options, height });

  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const { options: o, height: h } = init.current;
    const width = Math.max(120, Math.floor(el.clientWidth));
    const empty = o.series.map(() => []) as unknown as uPlot.AlignedData;
    const u = new uPlot({ ...o, width, height: h }, empty, el);
    chart.current = u;
    let ro: ResizeObserver | null = null;
    if (typeof ResizeObserver === 'function') {
      ro = new ResizeObserver(() => {
        const w = Math.max(120, Math.floor(el.clientWidth));
        if (w !== u.width) u.setSize({ width: w, height: h });
      });
      ro.observe(el);
    }
    return () => {
      ro?.disconnect();
      u.destroy();
      chart.current = null;
    };
  }, []);

  usePainter(mask, () => {
    const u = chart.current;
    if (!u) return;
    const d = data();
    if (d) u.setData(d);
  });

  return <div ref={host} className={`chart ${className ?? ''}`} role="img" aria-label={label} />;
}

/** Axis styling for the dark theme. */
export function axis(extra: Partial<uPlot.Axis> = {}): uPlot.Axis {
  return {
    stroke: AXIS,
    grid: { stroke: GRID, width: 1 },
    ticks: { stroke: GRID, width: 1, size: 4 },
    font: '11px system-ui, sans-serif',
    size: 36,
    gap: 3,
    ...extra,
  };
}

/** Seconds of history the time charts show (the rings hold 25 Hz x 120 s). */
export const WINDOW_S = 120;

/** A rolling x scale: the last WINDOW_S seconds up to the newest point (a lone point too). */
export function timeScale(): uPlot.Scale {
  return {
    time: true,
    range: (_u, _min, max) => {
      const end = max === null || !Number.isFinite(max) ? Date.now() / 1000 : max + 0.5;
      return [end - WINDOW_S, end];
    },
  };
}

/** A time x-axis showing HH:MM:SS. */
export function timeAxis(): uPlot.Axis {
  return axis({
    size: 24,
    space: 64,
    values: (_u, splits) => splits.map((s) => clock(s * 1000)),
  });
}

export const CURSOR: uPlot.Cursor = { drag: { x: false, y: false }, points: { size: 5 } };

/** Draw a labelled horizontal line at y (in the y scale's units) with a dash pattern. */
export function hline(
  u: uPlot,
  y: number,
  colour: string,
  label: string,
  dash: number[] = [6, 4],
  labelBelow = false,
  scale = 'y',
): void {
  if (!Number.isFinite(y)) return;
  const py = u.valToPos(y, scale, true);
  const { left, top, width, height } = u.bbox;
  if (py < top || py > top + height) return;
  const ctx = u.ctx;
  const dpr = uPlot.pxRatio;
  ctx.save();
  ctx.strokeStyle = colour;
  ctx.lineWidth = 1.5 * dpr;
  ctx.setLineDash(dash.map((d) => d * dpr));
  ctx.beginPath();
  ctx.moveTo(left, py);
  ctx.lineTo(left + width, py);
  ctx.stroke();
  ctx.setLineDash([]);
  ctx.fillStyle = colour;
  ctx.font = `${11 * dpr}px system-ui, sans-serif`;
  ctx.textAlign = 'right';
  ctx.textBaseline = labelBelow ? 'top' : 'bottom';
  ctx.fillText(label, left + width - 4 * dpr, labelBelow ? py + 2 * dpr : py - 2 * dpr);
  ctx.restore();
}
