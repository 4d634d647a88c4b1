import uPlot from 'uplot';
import { axis, CURSOR, hline, timeAxis, timeScale, UPlotChart } from '../charts/UPlotChart';
import { clock, duration, fixed, int, ms, pct, setAttr, setFill, setText } from '../data/format';
import { usePainter, useSlots, useStore, useUi } from '../data/hooks';
import { DIRTY, type CoreLayout } from '../data/store';
import { GRID, OI } from '../palette';
import { Panel } from './Panel';

/** Symbol + word + colour for each emergency state: never colour alone. */
export const EMERGENCY: Record<string, { sym: string; level: string }> = {
  NORMAL: { sym: '●', level: 'ok' },
  DEGRADED: { sym: '▲', level: 'warn' },
  LOCKDOWN: { sym: '■', level: 'alarm' },
  KILLED: { sym: '✕', level: 'alarm' },
};

export function SentinelPanel() {
  const s = useStore();
  const ui = useUi();
  const $ = useSlots();

  usePainter(DIRTY.sentinel, () => {
    const d = s.latest.sentinel;
    if (!d) return;
    const e = EMERGENCY[d.state] ?? { sym: '?', level: 'warn' };
    setText($.el('state'), `${e.sym} ${d.state}`);
    setAttr($.el('state'), 'data-level', e.level);
    setText($.el('reason'), d.reason);
    const t = s.t.sentinel;
    const since = d.in_state_s !== null && t !== undefined ? (t - d.in_state_s) * 1000 : null;
    setText($.el('since'), since === null ? '—' : `${clock(since)} (${duration(d.in_state_s)})`);
    setText($.el('halted'), d.halted ? 'HALTED' : 'no');
    setAttr($.el('halted'), 'data-level', d.halted ? 'alarm' : 'ok');
    setText($.el('rearm'), d.rearm_in_s === null ? '—' : duration(d.rearm_in_s));
    setText($.el('transitions'), `${int(d.transitions)} / ${int(d.cancel_alls)}`);
    setText($.el('lines'), `${fixed(d.degraded_ms, 1)} / ${fixed(d.lockdown_ms, 1)} ms`);
    for (const k of ['order', 'cancel'] as const) {
      const r = d[`${k}_rtt`];
      const has = r.count > 0;
      setText($.el(`${k}.last`), has ? ms(r.last_ms) : '—');
      setText($.el(`${k}.p50`), has ? ms(r.p50_ms) : '—');
      setText($.el(`${k}.p99`), has ? ms(r.p99_ms) : '—');
      setText($.el(`${k}.max`), has ? ms(r.max_ms) : '—');
      setText($.el(`${k}.count`), int(r.count));
      setText($.el(`${k}.breaches`), int(r.breaches));
      setAttr($.el(`${k}.breaches`), 'data-level', r.breaches > 0 ? 'warn' : 'ok');
      setText($.el(`${k}.inflight`), r.inflight_age_ms > 0 ? ms(r.inflight_age_ms, 1) : '—');
      setAttr(
        $.el(`${k}.inflight`),
        'data-level',
        r.inflight_age_ms >= d.lockdown_ms ? 'alarm' : r.inflight_age_ms >= d.degraded_ms ? 'warn' : 'ok',
      );
    }
  });

  usePainter(DIRTY.cores, () => {
    const c = s.latest.cores;
    if (!c) return;
    const perCpu = new Map<number, number>();
    for (const m in c) {
      const v = c[m];
      perCpu.set(v.cpu, (perCpu.get(v.cpu) ?? 0) + v.cpu_pct);
      setText($.el(`core.${m}.pct`), pct(v.cpu_pct));
      setFill($.el(`core.${m}.bar`), v.cpu_pct / 100);
      setText($.el(`core.${m}.alive`), v.alive ? '✓' : '✗ dead');
      setAttr($.el(`core.${m}.alive`), 'data-level', v.alive ? 'ok' : 'alarm');
      setText(
        $.el(`core.${m}.hb`),
        v.heartbeat_age_ms === null
          ? 'no beat'
          : v.heartbeat_age_ms < 1000
            ? `${fixed(Math.max(0, v.heartbeat_age_ms), 1)} ms`
            : duration(v.heartbeat_age_ms / 1000),
      );
    }
    for (const [cpu, sum] of perCpu) setText($.el(`cpu.${cpu}`), pct(sum));
  });

  const byCpu = groupByCpu(ui.cores);

  return (
    <Panel id="sentinel" title="Sentinel" channels={['sentinel', 'cores']}>
      <div className="state-row">
        <span className="state-badge big" ref={$.slot('state')} data-level="ok" aria-live="polite">
          —
        </span>
        <dl className="kv">
          <dt>reason</dt>
          <dd ref={$.slot('reason')}>—</dd>
          <dt>since</dt>
          <dd ref={$.slot('since')}>—</dd>
          <dt>halted</dt>
          <dd ref={$.slot('halted')}>—</dd>
          <dt>re-arm in</dt>
          <dd ref={$.slot('rearm')}>—</dd>
          <dt>transitions / cancel-alls</dt>
          <dd ref={$.slot('transitions')}>—</dd>
          <dt>degraded / lockdown</dt>
          <dd ref={$.slot('lines')}>—</dd>
        </dl>
      </div>
      <table className="num-table">
        <thead>
          <tr>
            <th scope="col">RTT</th>
            <th scope="col">last</th>
            <th scope="col">p50</th>
            <th scope="col">p99</th>
            <th scope="col">max</th>
            <th scope="col">n</th>
            <th scope="col">
              <abbr title="RTTs over the lockdown line">over</abbr>
            </th>
            <th scope="col">
              <abbr title="age of the oldest unanswered request">open</abbr>
            </th>
          </tr>
        </thead>
        <tbody>
          {(['order', 'cancel'] as const).map((k) => (
            <tr key={k}>
              <th scope="row">
                <span className={`key-swatch ${k}`} aria-hidden="true" />
                {k}
              </th>
              <td ref={$.slot(`${k}.last`)}>—</td>
              <td ref={$.slot(`${k}.p50`)}>—</td>
              <td ref={$.slot(`${k}.p99`)}>—</td>
              <td ref={$.slot(`${k}.max`)}>—</td>
              <td ref={$.slot(`${k}.count`)}>—</td>
              <td ref={$.slot(`${k}.breaches`)}>—</td>
              <td ref={$.slot(`${k}.inflight`)}>—</td>
            </tr>
          ))}
        </tbody>
      </table>
      <UPlotChart
        label="Order and cancel round-trip time, last 2 minutes, with the degraded and lockdown lines"
        height={150}
        mask={DIRTY.sentinel}
        data={() => s.series.rtt.unrollAll() as uPlot.AlignedData}
        options={rttOptions(() => s.latest.sentinel)}
      />
      <h3 className="sub">CPU per core (pinned module threads · alive · heartbeat age)</h3>
      <div className="cores">
        {byCpu.length === 0 && <p className="muted">no core data yet</p>}
        {byCpu.map(([cpu, mods]) => (
          <div className="core" key={cpu}>
            <div className="core-head">
              <span>CPU {cpu}</span>
              <span className="num" ref={$.slot(`cpu.${cpu}`)}>
                —
              </span>
            </div>
            {mods.map((m) => (
              <div className="core-mod" key={m}>
                <span className="mod-name">{m}</span>
                <span className="meter" ref={$.slot(`core.${m}.bar`)} aria-hidden="true" />
                <span className="num" ref={$.slot(`core.${m}.pct`)}>
                  —
                </span>
                <span className="flag" ref={$.slot(`core.${m}.alive`)} data-level="ok">
                  —
                </span>
                <span className="muted small" ref={$.slot(`core.${m}.hb`)} />
              </div>
            ))}
          </div>
        ))}
      </div>
    </Panel>
  );
}

/** 1, 2, 5 x a power of ten: the labelled lines of a log axis */
function leading125(v: number | null): boolean {
  if (v === null || v <= 0) return false;
  const m = v / 10 ** Math.floor(Math.log10(v) + 1e-9);
  return [1, 2, 5].some((k) => Math.abs(m - k) < 1e-6);
}

function groupByCpu(cores: CoreLayout[]): [number, string[]][] {
  const m = new Map<number, string[]>();
  for (const c of cores) {
    const l = m.get(c.cpu) ?? [];
    l.push(c.module);
    m.set(c.cpu, l);
  }
  return [...m.entries()].sort((a, b) => a[0] - b[0]);
}

function rttOptions(
  sentinel: () => { lockdown_ms: number; degraded_ms: number } | null,
): Omit<uPlot.Options, 'width' | 'height'> {
  const stepped = uPlot.paths.stepped!({ align: 1 });
  return {
    cursor: CURSOR,
    legend: { show: true, live: false },
    scales: {
      x: timeScale(),
      // log: a 3 ms RTT, the 10/20 ms lines and a 120 ms spike all readable at once
      y: {
        distr: 3,
        log: 10,
        range: (_u, min, max) => {
          const s = sentinel();
          const lo = Math.min(Number.isFinite(min) && min > 0 ? min * 0.8 : 1, 1);
          const hi = Math.max(Number.isFinite(max) ? max * 1.25 : 0, s ? s.lockdown_ms * 2 : 40);
          return [lo, hi];
        },
      },
    },
    axes: [
      timeAxis(),
      axis({
        label: 'ms',
        labelSize: 14,
        size: 40,
        filter: (_u, splits) => splits.map((v) => (leading125(v) ? v : null)),
        grid: { stroke: GRID, width: 1, filter: (_u, splits) => splits.map((v) => (leading125(v) ? v : null)) },
        ticks: { show: false },
        values: (_u, splits) => splits.map((v) => (v === null ? '' : String(+v.toPrecision(2)))),
      }),
    ],
    series: [
      {},
      { label: 'order RTT', stroke: OI.sky, width: 1.5, paths: stepped },
      { label: 'cancel RTT', stroke: OI.orange, width: 1.5, dash: [6, 3], paths: stepped },
      { label: 'order p99', stroke: OI.green, width: 1, dash: [2, 2], paths: stepped },
      { label: 'in-flight age', stroke: OI.purple, width: 1, dash: [8, 3, 2, 3] },
    ],
    hooks: {
      draw: [
        (u) => {
          const s = sentinel();
          if (!s) return;
          hline(u, s.lockdown_ms, OI.vermillion, `LOCKDOWN ${fixed(s.lockdown_ms, 0)} ms`, [8, 4]);
          hline(u, s.degraded_ms, OI.yellow, `degraded ${fixed(s.degraded_ms, 0)} ms`, [2, 3], true);
        },
      ],
    },
  };
}
