import type uPlot from 'uplot';
import { ANCHORS, NO_VALUE } from '../charts/colormap';
import { Heatmap } from '../charts/Heatmap';
import { axis, CURSOR, timeAxis, timeScale, UPlotChart } from '../charts/UPlotChart';
import { fixed, int, pct, setAttr, setFill, setText } from '../data/format';
import { usePainter, useSlots, useStore } from '../data/hooks';
import { DIRTY } from '../data/store';
import { OI } from '../palette';
import { Panel } from './Panel';

const LADDER = 5;

function rgb(c: readonly number[]): string {
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

const GRADIENT = `linear-gradient(to right, ${ANCHORS.map(
  ([v, c]) => `${rgb(c)} ${((v + 1) / 2) * 100}%`,
).join(', ')})`;

export function OraclePanel() {
  const s = useStore();
  const $ = useSlots();

  usePainter(DIRTY.oracle, () => {
    const d = s.latest.oracle;
    if (!d) return;
    setText($.el('wobi'), signed(d.wobi, 3));
    setText($.el('liq'), d.liq_imb_pct === null ? '—' : `${d.liq_imb_pct > 0 ? '+' : ''}${pct(d.liq_imb_pct)}`);
    setText($.el('liqSide'), `${side(d.liq_imb_pct)}`);
    // the diverging meter: half width = 100 %
    const f = d.liq_imb_pct === null ? 0 : Math.max(-1, Math.min(1, d.liq_imb_pct / 100));
    setFill($.el('liqBar'), Math.abs(f));
    setAttr($.el('liqBar'), 'data-side', f >= 0 ? 'bid' : 'ask');
    setText($.el('strength'), `${signed(d.strength, 3)} ${arrow(d.strength)}`);
    setText($.el('edge'), `${signed(d.edge_ticks, 2)} ticks · ${signed(d.edge_bps, 2)} bps`);
    setText($.el('z'), signed(d.zscore, 2));
    setText($.el('spread'), `${int(d.spread_ticks)} ticks`);
    setText($.el('signals'), int(d.signals));
    for (let i = 0; i < LADDER; i++) {
      const b = d.book.bids[i];
      const a = d.book.asks[i];
      setText($.el(`bid.${i}.px`), b ? (b[0] / 100).toFixed(2) : '');
      setText($.el(`bid.${i}.qty`), b ? int(b[1]) : '');
      setText($.el(`ask.${i}.px`), a ? (a[0] / 100).toFixed(2) : '');
      setText($.el(`ask.${i}.qty`), a ? int(a[1]) : '');
    }
  });

  return (
    <Panel id="oracle" title="Oracle" channels={['oracle', 'heatmap']} className="wide">
      <div className="oracle-top">
        <div className="heat-wrap">
          <h3 className="sub">WOBI per depth level × time (event clock)</h3>
          <Heatmap
            height={190}
            label="Weighted order-book imbalance per depth level over the last minute: blue bid-heavy, orange ask-heavy"
          />
          <div className="legend-bar" aria-hidden="true">
            <span>−1 ask-heavy ▼</span>
            <span className="gradient" style={{ background: GRADIENT }} />
            <span>bid-heavy ▲ +1</span>
            <span className="swatch" style={{ background: rgb(NO_VALUE) }} />
            <span>no value</span>
          </div>
        </div>
        <div className="oracle-side">
          <dl className="kv">
            <dt>WOBI</dt>
            <dd ref={$.slot('wobi')}>—</dd>
            <dt>liq. imbalance</dt>
            <dd ref={$.slot('liq')}>—</dd>
            <dt>strength</dt>
            <dd ref={$.slot('strength')}>—</dd>
            <dt>edge</dt>
            <dd ref={$.slot('edge')}>—</dd>
            <dt>z-score</dt>
            <dd ref={$.slot('z')}>—</dd>
            <dt>spread</dt>
            <dd ref={$.slot('spread')}>—</dd>
            <dt>signals</dt>
            <dd ref={$.slot('signals')}>—</dd>
          </dl>
          <div className="imb">
            <span className="muted small">liquidity imbalance</span>
            <span className="small" ref={$.slot('liqSide')} />
          </div>
          <span className="dmeter" aria-hidden="true">
            <span ref={$.slot('liqBar')} data-side="bid" />
          </span>
          <table className="ladder" aria-label="top of book">
            <thead>
              <tr>
                <th scope="col">bid qty</th>
                <th scope="col">bid ₹</th>
                <th scope="col">ask ₹</th>
                <th scope="col">ask qty</th>
              </tr>
            </thead>
            <tbody>
              {Array.from({ length: LADDER }, (_, i) => (
                <tr key={i}>
                  <td ref={$.slot(`bid.${i}.qty`)} />
                  <td className="bid" ref={$.slot(`bid.${i}.px`)} />
                  <td className="ask" ref={$.slot(`ask.${i}.px`)} />
                  <td ref={$.slot(`ask.${i}.qty`)} />
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </div>
      <UPlotChart
        label="Signal strength, WOBI and liquidity imbalance over the last 2 minutes"
        height={140}
        mask={DIRTY.oracle}
        data={() => s.series.oracle.unrollAll() as uPlot.AlignedData}
        options={{
          cursor: CURSOR,
          legend: { show: true, live: false },
          scales: { x: timeScale(), y: { range: [-1.05, 1.05] } },
          axes: [timeAxis(), axis({ size: 40 })],
          series: [
            {},
            { label: 'strength', stroke: OI.sky, width: 1.5 },
            { label: 'WOBI', stroke: OI.orange, width: 1, dash: [6, 3] },
            { label: 'liq. imbalance ÷100', stroke: OI.green, width: 1, dash: [2, 2] },
          ],
        }}
      />
    </Panel>
  );
}

function signed(v: number | null, d: number): string {
  if (v === null) return '—';
  return `${v > 0 ? '+' : v < 0 ? '−' : ''}${fixed(Math.abs(v), d)}`;
}

function arrow(v: number | null): string {
  return v === null || v === 0 ? '' : v > 0 ? '▲' : '▼';
}

function side(v: number | null): string {
  if (v === null || v === 0) return '';
  return v > 0 ? '▲ bid side' : '▼ ask side';
}
