import type uPlot from 'uplot';
import { axis, CURSOR, hline, timeAxis, timeScale, UPlotChart } from '../charts/UPlotChart';
import { duration, fixed, int, setAttr, setText } from '../data/format';
import { usePainter, useSlots, useStore, useUi } from '../data/hooks';
import { DIRTY } from '../data/store';
import { OI } from '../palette';
import { Panel } from './Panel';

/** The gate's conditions, as people read them. */
const CONDITION_TEXT: Record<string, string> = {
  FEED_FRESH: 'feed fresh',
  NO_GAP: 'no sequence gap',
  BOOK_SANE: 'book sane (not crossed/locked)',
  CLOCK_STABLE: 'clock stable',
  REGIME_ATTACK: 'regime is Attack',
  SENTINEL_OK: 'Sentinel OK',
  KILL_CLEAR: 'kill word clear',
};

export function SonarPanel() {
  const s = useStore();
  const ui = useUi();
  const $ = useSlots();

  usePainter(DIRTY.sonar, () => {
    const d = s.latest.sonar;
    if (!d) return;
    const attack = d.regime === 'ATTACK';
    setText($.el('regime'), attack ? '▶ ATTACK' : d.regime === 'VETO' ? '‖ VETO' : `? ${d.regime}`);
    setAttr($.el('regime'), 'data-level', attack ? 'ok' : 'warn');
    setText($.el('inRegime'), duration(d.in_regime_s));
    setText($.el('gate'), d.open ? '✓ OPEN' : '✗ CLOSED');
    setAttr($.el('gate'), 'data-level', d.open ? 'ok' : 'alarm');
    setText($.el('veto'), d.veto.length ? d.veto.join(', ') : 'none');
    setText($.el('entropy'), fixed(d.entropy, 3));
    setText($.el('moves'), int(d.moves));
    setText($.el('phase'), d.phase ? String(d.phase) : '—');
    for (const name in d.conditions) {
      const ok = d.conditions[name];
      const el = $.el(`cond.${name}`);
      setText(el, ok ? '✓ pass' : '✗ FAIL');
      setAttr(el, 'data-level', ok ? 'ok' : 'alarm');
    }
  });

  return (
    <Panel id="sonar" title="Sonar" channels={['sonar']}>
      <div className="state-row">
        <span className="state-badge big" ref={$.slot('regime')} data-level="warn" aria-live="polite">
          —
        </span>
        <dl className="kv">
          <dt>in regime (market time)</dt>
          <dd ref={$.slot('inRegime')}>—</dd>
          <dt>gate</dt>
          <dd ref={$.slot('gate')}>—</dd>
          <dt>veto reasons</dt>
          <dd ref={$.slot('veto')}>—</dd>
          <dt>entropy</dt>
          <dd ref={$.slot('entropy')}>—</dd>
          <dt>mid moves seen</dt>
          <dd ref={$.slot('moves')}>—</dd>
          <dt title="the synthetic market's ground-truth phase (0 on a real feed)">market phase</dt>
          <dd ref={$.slot('phase')}>—</dd>
        </dl>
      </div>
      <h3 className="sub">Zero-trust gate</h3>
      <ul className="conditions">
        {ui.conditions.length === 0 && <li className="muted">no gate data yet</li>}
        {ui.conditions.map((c) => (
          <li key={c}>
            <span className="cond-name" title={c}>
              {CONDITION_TEXT[c] ?? c}
            </span>
            <span className="flag" ref={$.slot(`cond.${c}`)} data-level="ok">
              —
            </span>
          </li>
        ))}
      </ul>
      <UPlotChart
        label="Sonar's normalised entropy over the last 2 minutes, with the veto thresholds"
        height={130}
        mask={DIRTY.sonar}
        data={() => s.series.entropy.unrollAll() as uPlot.AlignedData}
        options={{
          cursor: CURSOR,
          legend: { show: false },
          scales: { x: timeScale(), y: { range: [0, 1.02] } },
          axes: [timeAxis(), axis({ label: 'entropy', labelSize: 14, size: 40 })],
          series: [{}, { label: 'entropy', stroke: OI.sky, width: 1.5 }],
          hooks: {
            draw: [
              (u) => {
                const c = s.config?.sonar;
                if (!c || c.enter_veto === undefined || c.exit_veto === undefined) return;
                hline(u, c.enter_veto, OI.vermillion, `→ Veto ${fixed(c.enter_veto, 2)}`, [8, 4]);
                hline(u, c.exit_veto, OI.green, `→ Attack ${fixed(c.exit_veto, 2)}`, [2, 3], true);
              },
            ],
          },
        }}
      />
    </Panel>
  );
}
