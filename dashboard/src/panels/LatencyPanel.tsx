import type uPlot from 'uplot';
import { axis, CURSOR, UPlotChart } from '../charts/UPlotChart';
import { int, micros, microsShort, setText } from '../data/format';
import { usePainter, useSlots, useStore, useUi } from '../data/hooks';
import { PERCENTILE_KEYS, PERCENTILES, type LatencyData } from '../data/protocol';
import { DIRTY } from '../data/store';
import { DASHES, GRID, SERIES } from '../palette';
import { Panel } from './Panel';

/** The order path, drawn together; everything else is a per-module time. */
export const CRITICAL = ['tick_to_order', 'order_rtt', 'cancel_rtt', 'ring_hop', 'tick_to_signal'];
const TABLE_KEYS = ['mean_us', 'p50_us', 'p90_us', 'p99_us', 'p99.9_us', 'p99.99_us', 'max_us'] as const;

/** x position of a percentile on a "nines" axis: 90 -> 1, 99 -> 2, 99.9 -> 3 ... */
export function nines(p: number): number {
  return -Math.log10(1 - p / 100);
}
const XS = PERCENTILES.map(nines);

function isDecade(v: number | null): boolean {
  if (v === null || v <= 0) return false;
  const l = Math.log10(v);
  return Math.abs(l - Math.round(l)) < 1e-6;
}

/** [x, y per histogram] for uPlot; y in µs, null where absent (a log axis has no 0). */
export function percentileData(lat: LatencyData | null, names: string[], out: (number | null)[][]): void {
  out[0] = XS;
  for (let i = 0; i < names.length; i++) {
    const h = lat?.[names[i]];
    const row = (out[i + 1] ??= new Array(PERCENTILE_KEYS.length).fill(null));
    for (let j = 0; j < PERCENTILE_KEYS.length; j++) {
      const v = h?.[PERCENTILE_KEYS[j]];
      row[j] = v !== undefined && v > 0 ? v : null;
    }
  }
  out.length = names.length + 1;
}

function percentileOptions(names: string[]): Omit<uPlot.Options, 'width' | 'height'> {
  return {
    cursor: CURSOR,
    legend: { show: true, live: false },
    scales: { x: { time: false, range: [0, 4.15] }, y: { distr: 3, log: 10 } },
    axes: [
      axis({
        size: 24,
        splits: () => XS,
        values: () => PERCENTILES.map((p) => `p${p}`),
      }),
      axis({
        size: 50,
        // a log axis: labels, ticks and grid at the decades only
        filter: (_u, splits) => splits.map((v) => (isDecade(v) ? v : null)),
        grid: { stroke: GRID, width: 1, filter: (_u, splits) => splits.map((v) => (isDecade(v) ? v : null)) },
        ticks: { show: false },
        values: (_u, splits) => splits.map((v) => (v === null ? '' : microsShort(v))),
      }),
    ],
    series: [
      {},
      ...names.map((n, i) => ({
        label: n,
        stroke: SERIES[i % SERIES.length],
        width: 1.5,
        dash: DASHES[(i + Math.floor(i / SERIES.length)) % DASHES.length],
        points: { show: true, size: 5 },
      })),
    ],
  };
}

export function LatencyPanel() {
  const s = useStore();
  const ui = useUi();
  const $ = useSlots();
  const names = ui.latencyNames;
  const critical = CRITICAL.filter((n) => names.includes(n));
  const modules = names.filter((n) => !CRITICAL.includes(n) && !n.startsWith('kill.'));
  const bufA: (number | null)[][] = [];
  const bufB: (number | null)[][] = [];

  usePainter(DIRTY.latency, () => {
    const lat = s.latest.latency;
    if (!lat) return;
    for (const n of names) {
      const h = lat[n];
      setText($.el(`${n}.count`), h ? int(h.count) : '—');
      for (const k of TABLE_KEYS) setText($.el(`${n}.${k}`), h && h.count ? micros(h[k]) : '—');
    }
  });

  return (
    <Panel id="latency" title="Latency distributions" channels={['latency']} className="wide">
      <div className="latency-charts">
        <div>
          <h3 className="sub">Order path (percentiles, log scale)</h3>
          <UPlotChart
            key={`crit:${critical.join()}`}
            label={`Latency percentiles of ${critical.join(', ')}`}
            height={200}
            mask={DIRTY.latency}
            data={() => {
              percentileData(s.latest.latency, critical, bufA);
              return bufA as uPlot.AlignedData;
            }}
            options={percentileOptions(critical)}
          />
        </div>
        <div>
          <h3 className="sub">Per module</h3>
          <UPlotChart
            key={`mod:${modules.join()}`}
            label={`Latency percentiles of ${modules.join(', ')}`}
            height={200}
            mask={DIRTY.latency}
            data={() => {
              percentileData(s.latest.latency, modules, bufB);
              return bufB as uPlot.AlignedData;
            }}
            options={percentileOptions(modules)}
          />
        </div>
      </div>
      <div className="table-scroll">
        <table className="num-table latency-table">
          <thead>
            <tr>
              <th scope="col">histogram</th>
              <th scope="col">count</th>
              <th scope="col">mean</th>
              <th scope="col">p50</th>
              <th scope="col">p90</th>
              <th scope="col">p99</th>
              <th scope="col">p99.9</th>
              <th scope="col">p99.99</th>
              <th scope="col">max</th>
            </tr>
          </thead>
          <tbody>
            {names.map((n) => (
              <tr key={n} className={CRITICAL.includes(n) ? 'critical' : undefined}>
                <th scope="row">{n}</th>
                <td ref={$.slot(`${n}.count`)}>—</td>
                {TABLE_KEYS.map((k) => (
                  <td key={k} ref={$.slot(`${n}.${k}`)}>
                    —
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <p className="note muted small">
        Recomputed by the monitor about once a second from the engine's HdrHistograms (whole run).
      </p>
    </Panel>
  );
}
