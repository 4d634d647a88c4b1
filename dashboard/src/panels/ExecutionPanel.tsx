import uPlot from 'uplot';
import { axis, CURSOR, hline, timeAxis, timeScale, UPlotChart } from '../charts/UPlotChart';
import { fixed, int, pct, rupees, setAttr, setFill, setText } from '../data/format';
import { usePainter, useSlots, useStore } from '../data/hooks';
import { DIRTY } from '../data/store';
import { OI } from '../palette';
import { Panel } from './Panel';

/** Zerodha Kite Connect's order-rate limits (the engine's `broker.profile = "kite"`). */
export const KITE_PER_SECOND = 10;
export const KITE_PER_MINUTE = 400;

const EXEC_STATE: Record<string, { sym: string; level: string }> = {
  ACTIVE: { sym: '▶', level: 'ok' },
  REDUCING: { sym: '▼', level: 'warn' },
  HALTED: { sym: '■', level: 'alarm' },
};

const stepped = uPlot.paths.stepped!({ align: 1 });

export function ExecutionPanel() {
  const s = useStore();
  const $ = useSlots();

  usePainter(DIRTY.execution, () => {
    const d = s.latest.execution;
    if (!d) return;
    const st = EXEC_STATE[d.state] ?? { sym: '?', level: 'warn' };
    setText($.el('state'), `${st.sym} ${d.state}`);
    setAttr($.el('state'), 'data-level', st.level);
    setText($.el('venue'), d.venue_open ? 'open' : 'closed');
    // NEV and its parts (paise)
    setText($.el('nev'), rupees(d.nev_value));
    setAttr($.el('nev'), 'data-level', d.nev_value !== null && d.nev_value > 0 ? 'ok' : 'warn');
    setText($.el('pfill'), fixed(d.nev_p_fill, 3));
    setText($.el('edge'), rupees(d.nev_edge));
    setText($.el('costs'), rupees(d.nev_costs));
    setText($.el('adverse'), rupees(d.nev_adverse));
    const sttShare = d.nev_costs && d.nev_stt !== null ? (100 * d.nev_stt) / d.nev_costs : null;
    setText($.el('stt'), `${rupees(d.nev_stt)} (${pct(sttShare, 0)} of costs)`);
    // bars: edge against what it has to pay for, on one scale
    const big = Math.max(
      Math.abs(d.nev_edge ?? 0),
      (d.nev_costs ?? 0) + Math.abs(d.nev_adverse ?? 0),
      1,
    );
    setFill($.el('bar.edge'), Math.abs(d.nev_edge ?? 0) / big);
    setFill($.el('bar.stt'), (d.nev_stt ?? 0) / big);
    setFill($.el('bar.other'), ((d.nev_costs ?? 0) - (d.nev_stt ?? 0)) / big);
    setFill($.el('bar.adverse'), Math.abs(d.nev_adverse ?? 0) / big);
    // rates
    setText($.el('fill'), pct(d.fill_rate_pct));
    setText($.el('cancel'), pct(d.cancel_rate_pct));
    setText($.el('orders'), `${int(d.placed)} placed · ${int(d.filled_orders)} filled · ${int(d.cancels_sent)} cancels`);
    // OTR
    setText($.el('otr'), d.otr === null ? '— (no trade yet)' : fixed(d.otr, 2));
    setText($.el('otrCounts'), `${int(d.otr_penalty_orders)} orders / ${int(d.otr_trades)} trades`);
    setText($.el('slab'), d.otr_slab_paise ? `${int(d.otr_slab_paise)} paise / order` : 'none (0 paise)');
    setAttr($.el('slab'), 'data-level', d.otr_slab_paise ? 'warn' : 'ok');
    setText($.el('pressure'), `${pct(d.otr_pressure === null ? null : d.otr_pressure * 100, 0)} of ceiling ${int(d.otr_ceiling)}`);
    setFill($.el('pressureBar'), d.otr_pressure);
    setAttr($.el('pressureBar'), 'data-level', level(d.otr_pressure ?? 0, 0.75, 0.9));
    // the broker's limits
    setText($.el('l1s'), `${int(d.limiter_1s)} / ${KITE_PER_SECOND}`);
    setFill($.el('l1sBar'), d.limiter_1s / KITE_PER_SECOND);
    setAttr($.el('l1sBar'), 'data-level', level(d.limiter_1s / KITE_PER_SECOND, 0.7, 0.9));
    setText($.el('l1m'), `${int(d.limiter_1m)} / ${KITE_PER_MINUTE}`);
    setFill($.el('l1mBar'), d.limiter_1m / KITE_PER_MINUTE);
    setAttr($.el('l1mBar'), 'data-level', level(d.limiter_1m / KITE_PER_MINUTE, 0.7, 0.9));
    // book of the strategy
    setText($.el('open'), int(d.open_orders));
    setText($.el('position'), int(d.position));
    setText($.el('pnl'), rupees(d.pnl_paise));
    setText($.el('paid'), rupees(d.costs_paise));
    setText($.el('refused'), int(d.refused));
  });

  return (
    <Panel id="execution" title="Execution" channels={['execution']}>
      <div className="state-row">
        <span className="state-badge" ref={$.slot('state')} data-level="ok">
          —
        </span>
        <span className="muted">
          venue <span ref={$.slot('venue')}>—</span>
        </span>
      </div>
      <div className="nev">
        <div className="nev-head">
          <span className="muted">Net Expected Value (best candidate)</span>
          <span className="nev-value" ref={$.slot('nev')} data-level="warn">
            —
          </span>
        </div>
        <p className="formula muted">NEV = P(fill) × (edge − costs − adverse)</p>
        <dl className="kv nev-parts">
          <dt>P(fill)</dt>
          <dd ref={$.slot('pfill')}>—</dd>
          <dt>
            <span className="key-swatch edge" aria-hidden="true" />
            edge
          </dt>
          <dd ref={$.slot('edge')}>—</dd>
          <dt>costs (round trip)</dt>
          <dd ref={$.slot('costs')}>—</dd>
          <dt>
            <span className="key-swatch stt" aria-hidden="true" />
            of which STT
          </dt>
          <dd ref={$.slot('stt')}>—</dd>
          <dt>
            <span className="key-swatch adverse" aria-hidden="true" />
            adverse selection
          </dt>
          <dd ref={$.slot('adverse')}>—</dd>
        </dl>
        <div className="nev-bars" aria-hidden="true">
          <div className="bar-row">
            <span className="bar-label">edge</span>
            <span className="hbar">
              <span className="seg edge" ref={$.slot('bar.edge')} />
            </span>
          </div>
          <div className="bar-row">
            <span className="bar-label">cost</span>
            <span className="hbar">
              <span className="seg stt" ref={$.slot('bar.stt')} />
              <span className="seg other" ref={$.slot('bar.other')} />
              <span className="seg adverse" ref={$.slot('bar.adverse')} />
            </span>
          </div>
        </div>
      </div>
      <UPlotChart
        label="Net expected value of the best candidate over the last 2 minutes, rupees"
        height={110}
        mask={DIRTY.execution}
        data={() => s.series.nev.unrollAll() as uPlot.AlignedData}
        options={{
          cursor: CURSOR,
          legend: { show: false },
          scales: { x: timeScale() },
          axes: [timeAxis(), axis({ label: 'NEV ₹', labelSize: 14, size: 48 })],
          series: [{}, { label: 'NEV ₹', stroke: OI.sky, width: 1.5 }],
          hooks: { draw: [(u) => hline(u, 0, OI.grey, '0', [2, 3])] },
        }}
      />
      <dl className="kv two-col">
        <dt>fill rate</dt>
        <dd ref={$.slot('fill')}>—</dd>
        <dt>cancel rate</dt>
        <dd ref={$.slot('cancel')}>—</dd>
        <dt>open orders</dt>
        <dd ref={$.slot('open')}>—</dd>
        <dt>position (units)</dt>
        <dd ref={$.slot('position')}>—</dd>
        <dt>P&amp;L (costs incl.)</dt>
        <dd ref={$.slot('pnl')}>—</dd>
        <dt>charges paid</dt>
        <dd ref={$.slot('paid')}>—</dd>
        <dt>writes refused</dt>
        <dd ref={$.slot('refused')}>—</dd>
      </dl>
      <p className="orders-line small" ref={$.slot('orders')} />
      <UPlotChart
        label="Profit and loss in rupees and position in units over the last 2 minutes"
        height={120}
        mask={DIRTY.execution}
        data={() => s.series.pnl.unrollAll() as uPlot.AlignedData}
        options={{
          cursor: CURSOR,
          legend: { show: true, live: false },
          scales: { x: timeScale(), pos: {} },
          axes: [
            timeAxis(),
            axis({ label: 'P&L ₹', labelSize: 14, size: 48 }),
            axis({ scale: 'pos', side: 1, grid: { show: false }, size: 44 }),
          ],
          series: [
            {},
            { label: 'P&L ₹', stroke: OI.sky, width: 1.5 },
            { label: 'position', stroke: OI.orange, width: 1, dash: [6, 3], scale: 'pos', paths: stepped },
          ],
        }}
      />
      <h3 className="sub">Order-to-trade ratio</h3>
      <dl className="kv">
        <dt>OTR (penalty-relevant)</dt>
        <dd>
          <span ref={$.slot('otr')}>—</span> <span className="muted small" ref={$.slot('otrCounts')} />
        </dd>
        <dt>exchange slab now</dt>
        <dd ref={$.slot('slab')}>—</dd>
        <dt title="(penalty-relevant writes + reserved cancels + spare) / (ceiling × max(trades, 1)): the engine's own ceiling, not the exchange's next slab">
          pressure (own ceiling)
        </dt>
        <dd>
          <span ref={$.slot('pressure')}>—</span>
        </dd>
      </dl>
      <span className="meter wide" ref={$.slot('pressureBar')} aria-hidden="true" />
      <p className="note muted small">
        Pressure is against the engine's own OTR ceiling; the distance to the exchange's next penalty
        slab is not in the data.
      </p>
      <h3 className="sub">Order rate vs broker limits (Kite)</h3>
      <div className="limits">
        <span>per second</span>
        <span className="meter" ref={$.slot('l1sBar')} aria-hidden="true" />
        <span className="num" ref={$.slot('l1s')}>
          —
        </span>
        <span>per minute</span>
        <span className="meter" ref={$.slot('l1mBar')} aria-hidden="true" />
        <span className="num" ref={$.slot('l1m')}>
          —
        </span>
      </div>
    </Panel>
  );
}

function level(f: number, warn: number, alarm: number): string {
  return f >= alarm ? 'alarm' : f >= warn ? 'warn' : 'ok';
}
