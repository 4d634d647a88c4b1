/**
 * One WebSocket per page to the monitor's /ws (no React here).
 *
 * - Reconnects with exponential backoff and jitter (`backoffDelay`).
 * - Checks `seq` (1, 2, 3 ... per connection, no holes): a hole, a repeat or a decode failure
 *   of a numbered message makes it ask for {"op":"snapshot"} (the server then resends every
 *   subscribed channel in full, the heatmap included); a message older than one already seen
 *   is dropped.
 * - Tracks staleness: no data message for `staleAfterMs` (1.5 s) means stale. When the socket
 *   is quiet it sends {"op":"ping"}; no message at all for `deadAfterMs` (a half-open TCP
 *   connection) closes it and reconnects.
 */

import { decode, encodeOp, DATA_CHANNELS, type ClientOp, type DataChannel, type Message } from './protocol';

export type ConnState = 'connecting' | 'live' | 'reconnecting' | 'closed';

export interface ClientStatus {
  state: ConnState;
  /** when `state` last changed (ms on the client's clock) */
  since: number;
  /** no data message for staleAfterMs, or not connected */
  stale: boolean;
  /** the last data message's time when stale (null: no data ever) */
  staleSince: number | null;
  /** failed connection attempts in a row */
  attempt: number;
  nextRetryAt: number | null;
  gaps: number;
  decodeErrors: number;
  snapshotsRequested: number;
}

export interface SocketLike {
  readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}
export type SocketFactory = (url: string) => SocketLike;

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(id: unknown): void;
}

export interface ClientOptions {
  url: string;
  onMessage: (msg: Message, receivedAt: number) => void;
  onStatus?: (s: Readonly<ClientStatus>) => void;
  onOpen?: () => void;
  onDecodeError?: (error: string) => void;
  socket?: SocketFactory;
  now?: () => number;
  random?: () => number;
  timers?: Timers;
  staleAfterMs?: number;
  pingAfterMs?: number;
  deadAfterMs?: number;
  checkEveryMs?: number;
  backoffBaseMs?: number;
  backoffCapMs?: number;
}

const OPEN = 1;

/**
 * Delay before reconnect attempt `attempt` (0-based): exponential, capped, with "equal jitter"
 * (half fixed, half random) so a monitor restart is not met by every cockpit at once.
 */
export function backoffDelay(
  attempt: number,
  random: () => number = Math.random,
  baseMs = 250,
  capMs = 10_000,
): number {
  const d = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(d / 2 + random() * (d / 2));
}

/** ws://host/ws or wss://host/ws for the page's own origin. */
export function defaultUrl(loc: Pick<Location, 'protocol' | 'host'> = location): string {
  return `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}/ws`;
}

const defaultTimers: Timers = {
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (id) => globalThis.clearTimeout(id as ReturnType<typeof setTimeout>),
  setInterval: (fn, ms) => globalThis.setInterval(fn, ms),
  clearInterval: (id) => globalThis.clearInterval(id as ReturnType<typeof setInterval>),
};

export class MonitorClient {
  private readonly o: Required<
    Omit<ClientOptions, 'onStatus' | 'onOpen' | 'onDecodeError'>
  > &
    Pick<ClientOptions, 'onStatus' | 'onOpen' | 'onDecodeError'>;
  private ws: SocketLike | null = null;
  private lastSeq = 0;
  private lastMessageAt: number | null = null;
  private lastDataAt: number | null = null;
  private lastPingAt = 0;
  private openedAt = 0;
  private retryTimer: unknown = null;
  private checkTimer: unknown = null;
  private stopped = true;
  private subs: Set<DataChannel> = new Set(DATA_CHANNELS);
  private st: ClientStatus;

  constructor(opts: ClientOptions) {
    this.o = {
      socket: (url) => new WebSocket(url) as unknown as SocketLike,
      now: () => Date.now(),
      random: Math.random,
      timers: defaultTimers,
      staleAfterMs: 1500,
      pingAfterMs: 1000,
      deadAfterMs: 6000,
      checkEveryMs: 100,
      backoffBaseMs: 250,
      backoffCapMs: 10_000,
      ...opts,
    };
    this.st = {
      state: 'closed',
      since: this.o.now(),
      stale: true,
      staleSince: null,
      attempt: 0,
      nextRetryAt: null,
      gaps: 0,
      decodeErrors: 0,
      snapshotsRequested: 0,
    };
  }

  get status(): Readonly<ClientStatus> {
    return this.st;
  }

  /** ms since the last message of any kind (null: none on this connection yet). */
  get lastMessageAgeMs(): number | null {
    return this.lastMessageAt === null ? null : this.o.now() - this.lastMessageAt;
  }

  get lastDataTime(): number | null {
    return this.lastDataAt;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.checkTimer = this.o.timers.setInterval(() => this.check(), this.o.checkEveryMs);
    this.connect('connecting');
  }

  stop(): void {
    this.stopped = true;
    if (this.retryTimer !== null) this.o.timers.clearTimeout(this.retryTimer);
    if (this.checkTimer !== null) this.o.timers.clearInterval(this.checkTimer);
    this.retryTimer = this.checkTimer = null;
    this.drop(1000, 'client stopped');
    this.update({ state: 'closed', nextRetryAt: null, stale: true, staleSince: this.lastDataAt });
  }

  send(op: ClientOp): boolean {
    if (!this.ws || this.ws.readyState !== OPEN) return false;
    this.ws.send(encodeOp(op));
    return true;
  }

  requestSnapshot(): void {
    if (this.send({ op: 'snapshot' })) this.update({ snapshotsRequested: this.st.snapshotsRequested + 1 });
  }

  /** The channels wanted from now on (kept across reconnects). */
  setSubscriptions(channels: Iterable<DataChannel>): void {
    const want = new Set(channels);
    const add = [...want].filter((c) => !this.subs.has(c));
    const remove = [...this.subs].filter((c) => !want.has(c));
    this.subs = want;
    if (add.length) this.send({ op: 'subscribe', channels: add });
    if (remove.length) this.send({ op: 'unsubscribe', channels: remove });
  }

  get subscriptions(): ReadonlySet<DataChannel> {
    return this.subs;
  }

  // -- internals -------------------------------------------------------------------------------

  private update(patch: Partial<ClientStatus>): void {
    let changed = false;
    for (const k in patch) {
      const key = k as keyof ClientStatus;
      if (this.st[key] !== patch[key]) changed = true;
    }
    if (!changed) return;
    const next = { ...this.st, ...patch };
    if (patch.state !== undefined && patch.state !== this.st.state) next.since = this.o.now();
    this.st = next;
    this.o.onStatus?.(this.st);
  }

  private connect(state: ConnState): void {
    this.retryTimer = null;
    if (this.stopped) return;
    this.lastSeq = 0;
    this.lastMessageAt = null;
    this.openedAt = this.o.now();
    this.update({ state, nextRetryAt: null });
    let ws: SocketLike;
    try {
      ws = this.o.socket(this.o.url);
    } catch {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.openedAt = this.o.now();
      this.lastMessageAt = this.openedAt;
      // the server subscribes a new connection to everything: trim to what we want
      const remove = DATA_CHANNELS.filter((c) => !this.subs.has(c));
      if (remove.length) this.send({ op: 'unsubscribe', channels: remove });
      this.o.onOpen?.();
    };
    ws.onmessage = (ev) => {
      if (this.ws === ws) this.onFrame(ev.data);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.scheduleRetry();
    };
    ws.onerror = () => {
      /* onclose follows */
    };
  }

  private scheduleRetry(): void {
    if (this.stopped) return;
    const delay = backoffDelay(this.st.attempt, this.o.random, this.o.backoffBaseMs, this.o.backoffCapMs);
    const now = this.o.now();
    this.update({
      state: 'reconnecting',
      attempt: this.st.attempt + 1,
      nextRetryAt: now + delay,
      stale: true,
      staleSince: this.lastDataAt,
    });
    this.retryTimer = this.o.timers.setTimeout(() => this.connect('reconnecting'), delay);
  }

  /** Close the socket without waiting for its onclose (which may never come when half-open). */
  private drop(code: number, reason: string): void {
    const ws = this.ws;
    this.ws = null;
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    try {
      ws.close(code, reason);
    } catch {
      /* already closed */
    }
  }

  private onFrame(raw: unknown): void {
    const now = this.o.now();
    this.lastMessageAt = now;
    if (typeof raw !== 'string') {
      this.update({ decodeErrors: this.st.decodeErrors + 1 });
      this.o.onDecodeError?.('binary frame');
      return;
    }
    const d = decode(raw);
    const seq = d.ok ? d.msg.seq : d.seq;
    if (seq !== undefined) {
      if (seq <= this.lastSeq) {
        // older than (or the same as) what we have: never apply it over newer state
        this.update({ gaps: this.st.gaps + 1 });
        this.requestSnapshot();
        return;
      }
      const hole = seq !== this.lastSeq + 1;
      this.lastSeq = seq;
      if (hole) {
        this.update({ gaps: this.st.gaps + 1 });
        this.requestSnapshot();
      }
    }
    if (!d.ok) {
      this.update({ decodeErrors: this.st.decodeErrors + 1 });
      this.o.onDecodeError?.(d.error);
      // a message we could not use is as good as a hole: its state is missing here
      if (seq !== undefined) this.requestSnapshot();
      return;
    }
    const msg = d.msg;
    if (msg.ch !== 'pong') {
      this.lastDataAt = now;
      if (this.st.state !== 'live' || this.st.stale || this.st.attempt !== 0)
        this.update({ state: 'live', stale: false, staleSince: null, attempt: 0 });
    }
    this.o.onMessage(msg, now);
  }

  /** Runs every checkEveryMs: staleness, keep-alive ping, dead-socket detection. */
  check(): void {
    if (this.stopped) return;
    const now = this.o.now();
    const ws = this.ws;
    if (ws && ws.readyState === OPEN) {
      const quiet = now - (this.lastMessageAt ?? this.openedAt);
      if (quiet >= this.o.deadAfterMs) {
        this.drop(4000, 'no message');
        this.scheduleRetry();
        return;
      }
      if (quiet >= this.o.pingAfterMs && now - this.lastPingAt >= this.o.pingAfterMs) {
        this.lastPingAt = now;
        this.send({ op: 'ping' });
      }
    } else if (ws && now - this.openedAt >= this.o.deadAfterMs) {
      // a connect that neither opens nor fails
      this.drop(4000, 'connect timeout');
      this.scheduleRetry();
      return;
    }
    const stale = this.lastDataAt === null || now - this.lastDataAt > this.o.staleAfterMs;
    if (stale !== this.st.stale) this.update({ stale, staleSince: stale ? this.lastDataAt : null });
  }
}
