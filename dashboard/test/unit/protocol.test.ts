import { describe, expect, it } from 'vitest';
import raw from './fixtures/messages.json';
import { checkData, decode, encodeOp, isUnavailable } from '../../src/data/protocol';
import { frame, rawMsg, type FixtureKey } from './helpers';

describe('decode: valid messages (captured from a real monitor)', () => {
  for (const key of Object.keys(raw) as FixtureKey[]) {
    it(`accepts ${key}`, () => {
      const d = decode(frame(key, 7));
      expect(d.ok, d.ok ? '' : d.error).toBe(true);
      if (d.ok) {
        expect(d.msg.seq).toBe(7);
        expect(d.msg.ch).toBe(key.replace('_delta', ''));
      }
    });
  }

  it('types the data by channel', () => {
    const d = decode(frame('sentinel', 1));
    if (!d.ok || d.msg.ch !== 'sentinel' || isUnavailable(d.msg.data)) throw new Error('no');
    expect(typeof d.msg.data.lockdown_ms).toBe('number');
    expect(d.msg.data.order_rtt.count).toBeGreaterThanOrEqual(0);
  });

  it('accepts null where the engine had a non-finite float', () => {
    const d = decode(frame('oracle', 1, (x) => ((x.wobi = null), (x.strength = null))));
    expect(d.ok).toBe(true);
    const e = decode(frame('execution', 1, (x) => ((x.nev_value = null), (x.otr = null))));
    expect(e.ok).toBe(true);
  });

  it('accepts an engine message for "no run" ({status: NONE, run: null})', () => {
    const d = decode(JSON.stringify({ seq: 2, ch: 'engine', t: 1, full: true, data: { status: 'NONE', run: null } }));
    expect(d.ok).toBe(true);
  });

  it('accepts {unavailable} on a data channel, not on engine', () => {
    expect(decode(frame('sonar', 3, () => {}, { data: { unavailable: 'torn read' } })).ok).toBe(true);
    expect(decode(frame('engine', 3, () => {}, { data: { unavailable: 'x' } })).ok).toBe(false);
  });

  it('ignores extra fields (the exec block grows)', () => {
    expect(decode(frame('execution', 1, (x) => (x.some_new_counter = 5))).ok).toBe(true);
  });

  it('accepts a histogram that has no samples yet ({count: 0})', () => {
    expect(decode(frame('latency', 1, (x) => (x['kill.blocked'] = { count: 0 }))).ok).toBe(true);
  });
});

describe('decode: malformed input', () => {
  const bad: [string, string][] = [
    ['not JSON', '{"seq": 1, "ch": '],
    ['an array', '[1, 2]'],
    ['a number', '42'],
    ['null', 'null'],
    ['no seq', JSON.stringify({ ch: 'engine', t: 1, full: true, data: { status: 'LIVE', run: 'r' } })],
    ['seq 0', JSON.stringify(rawMsg('engine', 0))],
    ['seq as string', JSON.stringify({ ...rawMsg('engine', 1), seq: '1' })],
    ['fractional seq', JSON.stringify({ ...rawMsg('engine', 1), seq: 1.5 })],
  ];
  for (const [name, text] of bad) {
    it(`refuses ${name}`, () => {
      const d = decode(text);
      expect(d.ok).toBe(false);
      if (!d.ok) expect(d.seq).toBeUndefined();
    });
  }

  it('keeps the seq of a numbered message it refuses (no false gap)', () => {
    const d = decode(frame('sentinel', 9, (x) => (x.order_rtt.last_ms = 'fast')));
    expect(d.ok).toBe(false);
    if (!d.ok) {
      expect(d.seq).toBe(9);
      expect(d.error).toContain('data.order_rtt.last_ms');
    }
  });
});

describe('decode: wrong types', () => {
  const cases: [FixtureKey, (d: any) => void, string][] = [
    ['engine', (d) => (d.status = 'ALIVE'), 'data.status'],
    ['engine', (d) => (d.pid = '123'), 'data.pid'],
    ['sentinel', (d) => (d.halted = 0), 'data.halted'],
    ['sentinel', (d) => delete d.lockdown_ms, 'data.lockdown_ms'],
    ['sentinel', (d) => (d.engine = null), 'data.engine'],
    ['sonar', (d) => (d.conditions.FEED_FRESH = 'yes'), 'data.conditions.FEED_FRESH'],
    ['sonar', (d) => (d.veto = 'ENTROPY'), 'data.veto'],
    ['oracle', (d) => (d.book.bids = [[1, 2, 3]]), 'data.book.bids[0]'],
    ['execution', (d) => (d.limiter_1s = 2.5), 'data.limiter_1s'],
    ['execution', (d) => (d.nev_value = 'NaN'), 'data.nev_value'],
    ['latency', (d) => (d.order_rtt.p99_us = null), 'data.order_rtt.p99_us'],
    ['heatmap', (d) => (d.rows = [[1, 2]]), 'data.rows[0]'],
    ['heatmap', (d) => (d.rows[0][2][0] = 'x'), 'data.rows[0][2][0]'],
    ['heatmap', (d) => (d.rows[0][0] = 1.5), 'data.rows[0][0]'],
    ['cores', (d) => (d.feed.alive = 1), 'data.feed.alive'],
    ['hello', (d) => (d.channels = 'all'), 'data.channels'],
  ];
  for (const [key, patch, path] of cases) {
    it(`${key}: ${path}`, () => {
      const d = decode(frame(key, 1, patch));
      expect(d.ok).toBe(false);
      if (!d.ok) expect(d.error).toContain(path);
    });
  }

  it('refuses an unknown channel, a wrong t or full, a non-object data', () => {
    expect(decode(JSON.stringify({ ...rawMsg('engine', 1), ch: 'orders' })).ok).toBe(false);
    expect(decode(JSON.stringify({ ...rawMsg('engine', 1), t: 'now' })).ok).toBe(false);
    expect(decode(JSON.stringify({ ...rawMsg('engine', 1), full: 1 })).ok).toBe(false);
    expect(checkData('cores', [])).toMatch(/expected an object/);
  });
});

describe('client ops', () => {
  it('encodes the four ops as the monitor parses them', () => {
    expect(JSON.parse(encodeOp({ op: 'snapshot' }))).toEqual({ op: 'snapshot' });
    expect(JSON.parse(encodeOp({ op: 'subscribe', channels: ['heatmap'] }))).toEqual({
      op: 'subscribe',
      channels: ['heatmap'],
    });
  });
});
