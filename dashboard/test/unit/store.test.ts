import { describe, expect, it } from 'vitest';
import type { ClientStatus } from '../../src/data/client';
import { DIRTY, Store } from '../../src/data/store';
import { manualRaf, msg } from './helpers';

function liveConn(patch: Partial<ClientStatus> = {}): ClientStatus {
  return {
    state: 'live',
    since: 0,
    stale: false,
    staleSince: null,
    attempt: 0,
    nextRetryAt: null,
    gaps: 0,
    decodeErrors: 0,
    snapshotsRequested: 0,
    ...patch,
  };
}

function setup() {
  const f = manualRaf();
  let now = 1_000_000;
  const s = new Store({ raf: f.raf, capacity: 8, heatCapacity: 6, now: () => now });
  return { s, f, advance: (ms: number) => (now += ms) };
}

describe('latest state and conflation', () => {
  it('two messages before a frame: the painter runs once and sees the newer', () => {
    const { s, f } = setup();
    const seen: number[] = [];
    s.scheduler.add(DIRTY.sentinel, () => seen.push(s.latest.sentinel?.order_rtt.count ?? -1));
    f.frame(); // the initial paint of a new painter
    seen.length = 0;
    s.ingest(msg('sentinel', 1, (d) => (d.order_rtt.count = 10)));
    s.ingest(msg('sentinel', 2, (d) => (d.order_rtt.count = 11)));
    expect(f.pending()).toBe(1); // one frame requested, not two
    f.frame();
    expect(seen).toEqual([11]);
    // but the time series keeps both samples
    expect(s.series.rtt.length).toBe(2);
  });

  it('only painters of a dirty channel run', () => {
    const { s, f } = setup();
    let sonar = 0;
    let oracle = 0;
    s.scheduler.add(DIRTY.sonar, () => sonar++);
    s.scheduler.add(DIRTY.oracle, () => oracle++);
    f.frame();
    s.ingest(msg('oracle', 1));
    f.frame();
    expect([sonar, oracle]).toEqual([1, 2]);
    expect(f.frame()).toBe(0); // nothing dirty: no frame requested at all
  });

  it('a new painter paints once with what is there', () => {
    const { s, f } = setup();
    s.ingest(msg('execution', 1));
    f.frame();
    let got: unknown = null;
    s.scheduler.add(DIRTY.execution, () => (got = s.latest.execution?.placed));
    f.frame();
    expect(got).toBe(s.latest.execution!.placed);
  });

  it('the engine state comes from the engine channel and from sentinel.engine, newest wins', () => {
    const { s } = setup();
    s.setConn(liveConn());
    s.ingest(msg('engine', 1, (d) => (d.state = 'ACTIVE')));
    expect(s.getUi().engineState).toBe('ACTIVE');
    s.ingest(msg('sentinel', 2, (d) => (d.engine.state = 'KILLED')));
    expect(s.getUi().engineState).toBe('KILLED');
    expect(s.getUi().killed).toBe(true);
    expect(s.getUi().killSource).toBe('engine');
  });

  it('Sentinel latched KILLED counts as killed, and says who', () => {
    const { s } = setup();
    s.ingest(msg('sentinel', 1));
    expect(s.getUi().killed).toBe(false);
    s.ingest(msg('sentinel', 2, (d) => ((d.state = 'KILLED'), (d.reason = 'DAILY_LOSS'))));
    expect(s.getUi()).toMatchObject({ killed: true, killSource: 'Sentinel (DAILY_LOSS)' });
  });

  it('React state changes only on structural changes, not per tick', () => {
    const { s } = setup();
    s.setConn(liveConn());
    s.ingest(msg('engine', 1));
    s.ingest(msg('sentinel', 1));
    s.ingest(msg('oracle', 1));
    let renders = 0;
    s.subscribe(() => renders++);
    for (let i = 0; i < 50; i++)
      s.ingest(msg('sentinel', 2 + i, (d) => ((d.order_rtt.count = i), (d.engine.heartbeat_age_ms = i))));
    for (let i = 0; i < 50; i++) s.ingest(msg('oracle', 60 + i, (d) => (d.wobi = i / 100)));
    expect(renders).toBe(0);
    s.ingest(msg('sentinel', 200, (d) => (d.engine.status = 'DEAD')));
    expect(renders).toBe(1);
    const before = s.getUi();
    s.ingest(msg('latency', 201, (d) => (d.brand_new = { count: 0 })));
    expect(s.getUi()).not.toBe(before);
    expect(s.getUi().latencyNames).toContain('brand_new');
  });

  it('time series rings stay bounded', () => {
    const { s } = setup();
    for (let i = 0; i < 100; i++) s.ingest(msg('sonar', i + 1, undefined, { t: 1000 + i }));
    expect(s.series.entropy.length).toBe(8);
    const [x] = s.series.entropy.unrollAll();
    expect(x).toEqual([1092, 1093, 1094, 1095, 1096, 1097, 1098, 1099]);
  });

  it('x never goes backwards when the monitor clock steps back', () => {
    const { s } = setup();
    s.ingest(msg('sonar', 1, undefined, { t: 1000 }));
    s.ingest(msg('sonar', 2, undefined, { t: 990 }));
    const [x] = s.series.entropy.unrollAll();
    expect(x).toEqual([1000, 1000]);
  });

  it('a reconnect breaks the lines (a gap, not a segment across the outage)', () => {
    const { s } = setup();
    s.ingest(msg('sonar', 1, (d) => (d.entropy = 0.5), { t: 1000 }));
    s.onOpen();
    s.ingest(msg('sonar', 1, (d) => (d.entropy = 0.7), { t: 1010 }));
    const [x, y] = s.series.entropy.unrollAll();
    expect(x).toEqual([1000, 1010, 1010]);
    expect(y).toEqual([0.5, null, 0.7]);
  });

  it('unavailable data keeps the last numbers and marks the channel', () => {
    const { s } = setup();
    s.ingest(msg('sonar', 1));
    const before = s.latest.sonar;
    s.ingest(msg('sonar', 2, undefined, { data: { unavailable: 'torn read' } }));
    expect(s.latest.sonar).toBe(before);
    expect(s.getUi().unavailable).toEqual(['sonar']);
    s.ingest(msg('sonar', 3));
    expect(s.getUi().unavailable).toEqual([]);
  });

  it('a new run clears the series and the heatmap', () => {
    const { s } = setup();
    s.ingest(msg('hello', 1, (d) => (d.run = 'run-a')));
    s.ingest(msg('sonar', 2));
    s.ingest(msg('heatmap', 3));
    expect(s.series.entropy.length).toBe(1);
    s.ingest(msg('engine', 4, (d) => (d.run = 'run-b')));
    expect(s.series.entropy.length).toBe(0);
    expect(s.heat.length).toBe(0);
    expect(s.latest.sonar).toBeNull();
  });
});

describe('staleness in the UI state', () => {
  it('grey when the connection is stale, down, or the engine DEAD/NONE', () => {
    const { s } = setup();
    expect(s.getUi().stale).toBe(true); // nothing yet
    s.setConn(liveConn());
    s.ingest(msg('engine', 1, (d) => (d.status = 'LIVE')));
    expect(s.getUi().stale).toBe(false);
    s.setConn(liveConn({ stale: true, staleSince: 123 }));
    expect(s.getUi()).toMatchObject({ stale: true, staleSince: 123, staleReason: 'no data for over 1.5 s' });
    s.setConn(liveConn());
    s.ingest(msg('engine', 2, (d) => ((d.status = 'DEAD'), (d.heartbeat_age_ms = 4500)), { t: 2000 }));
    // since the engine's last heartbeat (monitor's t minus the heartbeat age), not page time
    expect(s.getUi()).toMatchObject({ stale: true, staleReason: 'engine DEAD', staleSince: 2000 * 1000 - 4500 });
    s.ingest(msg('engine', 3, (d) => ((d.status = 'NONE'), (d.run = null))));
    expect(s.getUi()).toMatchObject({ stale: true, staleReason: 'no engine run' });
    // a DEAD/NONE engine sends nothing, so the socket goes quiet too: the engine is the reason
    s.setConn(liveConn({ stale: true, staleSince: 5 }));
    expect(s.getUi().staleReason).toBe('no engine run');
    s.setConn(liveConn({ state: 'reconnecting', stale: true }));
    expect(s.getUi().staleReason).toBe('disconnected');
  });
});

describe('heatmap rows', () => {
  const rows = (from: number, n: number) =>
    Array.from({ length: n }, (_, i) => [from + i, (from + i) * 1e8, Array(10).fill((from + i) / 100)]);

  it('full replaces the picture; deltas append only unseen rows', () => {
    const { s } = setup();
    s.ingest(msg('heatmap', 1, (d) => (d.rows = rows(10, 3)), { full: true }));
    expect(s.heat.length).toBe(3);
    expect(s.heat.lastRow).toBe(12);
    const epoch = s.heat.epoch;
    // a delta repeating row 12 and adding 13, 14
    s.ingest(msg('heatmap', 2, (d) => (d.rows = rows(12, 3)), { full: false }));
    expect(s.heat.length).toBe(5);
    expect(s.heat.written).toBe(5);
    expect(s.heat.epoch).toBe(epoch);
    // a full message (e.g. after a snapshot request) starts over
    s.ingest(msg('heatmap', 3, (d) => (d.rows = rows(40, 2)), { full: true }));
    expect(s.heat.epoch).toBe(epoch + 1);
    expect(s.heat.length).toBe(2);
    expect(s.heat.rows[s.heat.slot(0)]).toBe(40);
  });

  it('a hole in the row numbers without `full` becomes blank columns (time stays honest)', () => {
    const { s } = setup();
    s.ingest(msg('heatmap', 1, (d) => (d.rows = rows(0, 1)), { full: true }));
    s.ingest(msg('heatmap', 2, (d) => (d.rows = rows(3, 1)), { full: false }));
    expect(s.heatGaps).toBe(1);
    expect(s.heat.length).toBe(4);
    expect(s.heat.value(s.heat.slot(1), 0)).toBeNaN();
    expect(s.heat.value(s.heat.slot(3), 0)).toBeCloseTo(0.03);
  });

  it('the heatmap ring is bounded', () => {
    const { s } = setup();
    s.ingest(msg('heatmap', 1, (d) => (d.rows = rows(0, 50)), { full: true }));
    expect(s.heat.length).toBe(6);
    expect(s.heat.rows[s.heat.slot(0)]).toBe(44);
  });
});
