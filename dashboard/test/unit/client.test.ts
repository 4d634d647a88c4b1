import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { backoffDelay, defaultUrl, MonitorClient, type SocketLike } from '../../src/data/client';
import type { Message } from '../../src/data/protocol';
import { frame } from './helpers';

class FakeSocket implements SocketLike {
  static all: FakeSocket[] = [];
  readyState = 0;
  sent: string[] = [];
  closed: { code?: number; reason?: string } | null = null;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  constructor(public url: string) {
    FakeSocket.all.push(this);
  }
  send(d: string) {
    this.sent.push(d);
  }
  close(code?: number, reason?: string) {
    this.closed = { code, reason };
    this.readyState = 3;
  }
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  deliver(text: string | ArrayBuffer) {
    this.onmessage?.({ data: text });
  }
  serverClose(code = 1006) {
    this.readyState = 3;
    this.onclose?.({ code, reason: '' });
  }
  ops() {
    return this.sent.map((s) => JSON.parse(s).op as string);
  }
}

const last = () => FakeSocket.all[FakeSocket.all.length - 1];

function make(random = () => 0.5) {
  const got: Message[] = [];
  const c = new MonitorClient({
    url: 'ws://monitor/ws',
    socket: (u) => new FakeSocket(u),
    random,
    onMessage: (m) => got.push(m),
  });
  c.start();
  return { c, got };
}

beforeEach(() => {
  FakeSocket.all = [];
  vi.useFakeTimers();
  vi.setSystemTime(1_000_000);
});
afterEach(() => {
  vi.useRealTimers();
});

describe('sequence numbers', () => {
  it('contiguous seq: no snapshot request', () => {
    const { c, got } = make();
    last().open();
    last().deliver(frame('hello', 1));
    last().deliver(frame('engine', 2));
    last().deliver(frame('sentinel', 3));
    expect(got.map((m) => m.seq)).toEqual([1, 2, 3]);
    expect(last().ops()).not.toContain('snapshot');
    expect(c.status.gaps).toBe(0);
  });

  it('a hole sends {"op":"snapshot"} once and still applies the newer message', () => {
    const { c, got } = make();
    last().open();
    last().deliver(frame('hello', 1));
    last().deliver(frame('engine', 2));
    last().deliver(frame('sonar', 4));
    last().deliver(frame('oracle', 5));
    expect(last().sent.filter((s) => s === '{"op":"snapshot"}')).toHaveLength(1);
    expect(c.status.gaps).toBe(1);
    expect(c.status.snapshotsRequested).toBe(1);
    expect(got.map((m) => m.seq)).toEqual([1, 2, 4, 5]);
  });

  it('a first message other than seq 1 is a hole', () => {
    const { c } = make();
    last().open();
    last().deliver(frame('engine', 3));
    expect(last().ops()).toContain('snapshot');
    expect(c.status.gaps).toBe(1);
  });

  it('a repeated or older seq is dropped (never applied over newer state)', () => {
    const { got } = make();
    last().open();
    last().deliver(frame('hello', 1));
    last().deliver(frame('sentinel', 2));
    last().deliver(frame('sentinel', 2));
    last().deliver(frame('sentinel', 1));
    expect(got.map((m) => m.seq)).toEqual([1, 2]);
    expect(last().ops().filter((o) => o === 'snapshot')).toHaveLength(2);
  });

  it('a numbered message that fails validation counts for seq, and asks for a snapshot', () => {
    const errors: string[] = [];
    const c = new MonitorClient({
      url: 'ws://x/ws',
      socket: (u) => new FakeSocket(u),
      onMessage: () => {},
      onDecodeError: (e) => errors.push(e),
    });
    c.start();
    last().open();
    last().deliver(frame('hello', 1));
    last().deliver(frame('sentinel', 2, (d) => (d.order_rtt = 'x')));
    last().deliver(frame('sentinel', 3));
    expect(c.status.decodeErrors).toBe(1);
    expect(c.status.gaps).toBe(0); // 3 follows 2: no hole
    expect(last().ops()).toEqual(['snapshot']);
    expect(errors[0]).toContain('order_rtt');
  });

  it('garbage without a seq: the next message shows up as a hole', () => {
    const { c } = make();
    last().open();
    last().deliver(frame('hello', 1));
    last().deliver('{oops');
    last().deliver(frame('engine', 3));
    expect(c.status.decodeErrors).toBe(1);
    expect(c.status.gaps).toBe(1);
    expect(last().ops()).toEqual(['snapshot']);
  });

  it('a binary frame is refused (the monitor sends text only)', () => {
    const { c, got } = make();
    last().open();
    last().deliver(new ArrayBuffer(4));
    expect(c.status.decodeErrors).toBe(1);
    expect(got).toHaveLength(0);
  });

  it('each connection numbers from 1 again', () => {
    const { c, got } = make(() => 0);
    last().open();
    last().deliver(frame('hello', 1));
    last().deliver(frame('engine', 2));
    last().serverClose();
    vi.advanceTimersByTime(200);
    expect(FakeSocket.all).toHaveLength(2);
    last().open();
    last().deliver(frame('hello', 1));
    expect(c.status.gaps).toBe(0);
    expect(got).toHaveLength(3);
  });
});

describe('staleness', () => {
  it('stale after 1.5 s without data, with the last data time; live again on data', () => {
    const { c } = make();
    expect(c.status.stale).toBe(true); // nothing yet
    last().open();
    last().deliver(frame('hello', 1));
    expect(c.status).toMatchObject({ state: 'live', stale: false });
    const t0 = Date.now();
    vi.advanceTimersByTime(1400);
    expect(c.status.stale).toBe(false);
    vi.advanceTimersByTime(250);
    expect(c.status.stale).toBe(true);
    expect(c.status.staleSince).toBe(t0);
    last().deliver(frame('engine', 2));
    expect(c.status).toMatchObject({ stale: false, staleSince: null });
  });

  it('a quiet socket gets a ping; a pong is not data (still stale) but keeps it open', () => {
    const { c } = make();
    last().open();
    last().deliver(frame('hello', 1));
    vi.advanceTimersByTime(1100);
    expect(last().ops()).toEqual(['ping']);
    last().deliver(JSON.stringify({ seq: 2, ch: 'pong', t: 1, full: true, data: { monitor_uptime_s: 3 } }));
    vi.advanceTimersByTime(1000);
    expect(c.status.stale).toBe(true);
    expect(last().closed).toBeNull();
  });

  it('no message at all for 6 s: the socket is dropped and a reconnect scheduled', () => {
    const { c } = make();
    const first = last();
    first.open();
    first.deliver(frame('hello', 1));
    vi.advanceTimersByTime(6100);
    expect(first.closed?.code).toBe(4000);
    expect(c.status.state).toBe('reconnecting');
    vi.advanceTimersByTime(1000);
    expect(FakeSocket.all.length).toBe(2);
  });

  it('stop() closes and never reconnects', () => {
    const { c } = make();
    last().open();
    c.stop();
    expect(last().closed?.code).toBe(1000);
    vi.advanceTimersByTime(60_000);
    expect(FakeSocket.all).toHaveLength(1);
    expect(c.status.state).toBe('closed');
  });
});

describe('reconnect backoff', () => {
  it('doubles from 250 ms to a 10 s cap, with equal jitter', () => {
    const lo = [0, 1, 2, 3, 4, 5, 6, 7, 8].map((a) => backoffDelay(a, () => 0));
    const hi = [0, 1, 2, 3, 4, 5, 6, 7, 8].map((a) => backoffDelay(a, () => 1));
    expect(lo).toEqual([125, 250, 500, 1000, 2000, 4000, 5000, 5000, 5000]);
    expect(hi).toEqual([250, 500, 1000, 2000, 4000, 8000, 10000, 10000, 10000]);
    for (let a = 0; a < 20; a++) {
      const d = backoffDelay(a, Math.random);
      expect(d).toBeGreaterThanOrEqual(Math.min(10000, 250 * 2 ** a) / 2);
      expect(d).toBeLessThanOrEqual(10000);
    }
  });

  it('the client waits exactly that schedule between failed attempts, and resets on data', () => {
    const { c } = make(() => 0);
    const delays: number[] = [];
    for (let i = 0; i < 5; i++) {
      last().serverClose();
      delays.push(c.status.nextRetryAt! - Date.now());
      const n = FakeSocket.all.length;
      vi.advanceTimersByTime(delays[i] - 1);
      expect(FakeSocket.all.length).toBe(n); // not early
      vi.advanceTimersByTime(1);
      expect(FakeSocket.all.length).toBe(n + 1);
    }
    expect(delays).toEqual([125, 250, 500, 1000, 2000]);
    expect(c.status.attempt).toBe(5);
    last().open();
    last().deliver(frame('hello', 1));
    expect(c.status.attempt).toBe(0);
    last().serverClose();
    expect(c.status.nextRetryAt! - Date.now()).toBe(125);
  });

  it('a connect that neither opens nor fails is given up after 6 s', () => {
    make();
    const s = last();
    vi.advanceTimersByTime(6100);
    expect(s.closed?.reason).toBe('connect timeout');
  });
});

describe('subscriptions', () => {
  it('sends unsubscribe/subscribe for changes, and re-applies them after a reconnect', () => {
    const { c } = make(() => 0);
    last().open();
    c.setSubscriptions(['sentinel', 'sonar', 'oracle', 'execution', 'cores']);
    expect(JSON.parse(last().sent.at(-1)!)).toEqual({ op: 'unsubscribe', channels: ['latency', 'heatmap'] });
    last().serverClose();
    vi.advanceTimersByTime(200);
    last().open();
    expect(JSON.parse(last().sent[0])).toEqual({ op: 'unsubscribe', channels: ['latency', 'heatmap'] });
    c.setSubscriptions(['sentinel', 'sonar', 'oracle', 'execution', 'cores', 'heatmap']);
    expect(JSON.parse(last().sent.at(-1)!)).toEqual({ op: 'subscribe', channels: ['heatmap'] });
  });

  it('derives ws:// or wss:// from the page', () => {
    expect(defaultUrl({ protocol: 'http:', host: '127.0.0.1:8787' })).toBe('ws://127.0.0.1:8787/ws');
    expect(defaultUrl({ protocol: 'https:', host: 'cockpit.example' })).toBe('wss://cockpit.example/ws');
  });
});
