import { useEffect, useRef } from 'react';
import { clock, setText } from '../data/format';
import { useUi } from '../data/hooks';
import { SCHEMA_VERSION } from '../data/protocol';

const ENGINE_LEVEL: Record<string, string> = { LIVE: 'ok', STARTING: 'warn', DEAD: 'alarm', NONE: 'alarm' };

/** Connection and engine status: symbol + word (+ colour), and what "stale" means right now. */
export function ConnectionBadge() {
  const ui = useUi();
  const conn = ui.conn;
  const countdown = useRef<HTMLSpanElement>(null);

  // the retry countdown ticks without React renders
  useEffect(() => {
    if (conn?.state !== 'reconnecting' || conn.nextRetryAt === null) return;
    const at = conn.nextRetryAt;
    const tick = () => {
      const left = Math.max(0, at - Date.now());
      setText(countdown.current, left > 0 ? ` · retry in ${(left / 1000).toFixed(1)} s` : ' · connecting…');
    };
    tick();
    const id = setInterval(tick, 200);
    const el = countdown.current;
    return () => {
      clearInterval(id);
      setText(el, '');
    };
  }, [conn?.state, conn?.nextRetryAt]);

  let sym = '◌';
  let word = 'CONNECTING';
  let level = 'warn';
  // with a DEAD/NONE engine nothing changes and the monitor sends nothing: that is the
  // engine's state (its own badge), not the socket's; the socket is STALE when an engine that
  // should be producing data is not heard from
  const engineQuiet = ui.engineStatus === 'DEAD' || ui.engineStatus === 'NONE';
  if (conn?.state === 'live' && (!conn.stale || engineQuiet)) {
    sym = '●';
    word = 'LIVE';
    level = 'ok';
  } else if (conn?.state === 'live' && conn.stale) {
    sym = '◐';
    word = 'STALE';
    level = 'alarm';
  } else if (conn?.state === 'reconnecting') {
    sym = '↻';
    word = 'RECONNECTING';
    level = 'alarm';
  } else if (conn?.state === 'closed') {
    sym = '○';
    word = 'CLOSED';
    level = 'alarm';
  }
  const es = ui.engineStatus;

  return (
    <div className="conn" role="status" aria-live="polite">
      <span className="state-badge" data-level={level}>
        {sym} {word}
        {conn && conn.state !== 'live' && conn.attempt > 0 && (
          <span className="small"> (attempt {conn.attempt})</span>
        )}
        <span ref={countdown} className="small" />
      </span>
      {ui.stale && (
        <span className="stale-since">
          {ui.staleSince !== null ? `stale since ${clock(ui.staleSince)}` : 'no live data yet'}
          {ui.staleReason ? ` — ${ui.staleReason}` : ''}
        </span>
      )}
      <span className="state-badge" data-level={es ? ENGINE_LEVEL[es] : 'warn'}>
        engine {es ?? '—'}
        {ui.engineState ? ` · ${ui.engineState}` : ''}
      </span>
      <span className="muted small run" title={ui.pid ? `engine pid ${ui.pid}` : undefined}>
        {ui.run ?? 'no run'}
      </span>
      {ui.hello && ui.hello.schema !== SCHEMA_VERSION && (
        <span className="state-badge" data-level="alarm" role="alert">
          ▲ monitor schema {ui.hello.schema}, cockpit built for {SCHEMA_VERSION}
        </span>
      )}
      {conn && conn.gaps > 0 && (
        <span className="muted small" title="sequence holes seen; each one asked the monitor for a snapshot">
          gaps {conn.gaps}
        </span>
      )}
    </div>
  );
}
