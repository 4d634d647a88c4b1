/**
 * The cockpit's state, outside React.
 *
 * - `latest`: the newest data of each channel (conflation: a message replaces the one before;
 *   what is painted is whatever is newest when the frame comes).
 * - `series`: typed-array rings of the time series the charts draw (one row per message).
 * - `heat`: the WOBI heatmap's ring of columns.
 * - `ui`: a small immutable object for React (connection, engine status, staleness, the
 *   structure of the panels), replaced only when one of those changes; `subscribe` tells
 *   React (useSyncExternalStore). Per-tick numbers never go through it.
 * - `scheduler`: painters registered per channel mask; at most one flush per animation frame,
 *   and only when something they draw is dirty.
 */

import type { ClientStatus } from './client';
import {
  isUnavailable,
  type CoresData,
  type DataChannel,
  type EngineData,
  type EngineStatus,
  type ExecutionData,
  type HeatmapData,
  type HelloData,
  type LatencyData,
  type Message,
  type OracleData,
  type SentinelData,
  type SonarData,
} from './protocol';
import { ColumnRing, Ring, Rings } from './ring';

export const DIRTY = {
  sentinel: 1 << 0,
  sonar: 1 << 1,
  oracle: 1 << 2,
  execution: 1 << 3,
  latency: 1 << 4,
  heatmap: 1 << 5,
  cores: 1 << 6,
  engine: 1 << 7,
  status: 1 << 8,
  all: 0x1ff,
} as const;

export type Painter = (dirty: number, now: number) => void;
type Raf = (cb: (ts: number) => void) => unknown;

/** One flush per animation frame, only when something is dirty. */
export class FrameScheduler {
  private painters = new Map<Painter, number>();
  private forced = new Set<Painter>();
  private dirty = 0;
  private scheduled = false;
  /** flushes run (for tests and the frame-pacing check) */
  frames = 0;
  /** how long the last flushes took (ms), for the browser tests' budget checks */
  readonly flushMs = new Ring(240);

  constructor(private readonly raf: Raf = defaultRaf) {}

  add(mask: number, p: Painter): () => void {
    this.painters.set(p, mask);
    this.forced.add(p); // paint once with what is there now
    this.schedule();
    return () => {
      this.painters.delete(p);
      this.forced.delete(p);
    };
  }

  markDirty(bits: number): void {
    this.dirty |= bits;
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    this.raf(this.flush);
  }

  flush = (now: number): void => {
    this.scheduled = false;
    const d = this.dirty;
    this.dirty = 0;
    const forced = this.forced;
    this.forced = new Set();
    this.frames++;
    const t0 = performance.now();
    for (const [p, mask] of this.painters) {
      if (d & mask || forced.has(p)) {
        try {
          p(forced.has(p) ? DIRTY.all : d, now);
        } catch (e) {
          console.error('painter failed', e);
        }
      }
    }
    this.flushMs.push(performance.now() - t0);
  };
}

function defaultRaf(cb: (ts: number) => void): unknown {
  if (typeof requestAnimationFrame === 'function') return requestAnimationFrame(cb);
  return setTimeout(() => cb(performance.now()), 16);
}

export interface CoreLayout {
  module: string;
  cpu: number;
}

export interface UiState {
  conn: Readonly<ClientStatus> | null;
  hello: HelloData | null;
  engineStatus: EngineStatus | null;
  engineState: string | null;
  run: string | null;
  pid: number | null;
  /** ms (client clock) when engineStatus last changed */
  engineStatusSince: number | null;
  /** the data on screen is not live: greyed out, never shown as current */
  stale: boolean;
  staleReason: string | null;
  /** ms (client clock) of the last live data, when stale; null: never had any */
  staleSince: number | null;
  /** the engine says it is KILLED (by anyone: this cockpit, the CLI, Sentinel) */
  killed: boolean;
  /** who says so: "engine" (its control state) or "Sentinel (<reason>)" */
  killSource: string | null;
  killAckLatencyUs: number | null;
  killHaltedUs: number | null;
  /** structure of the panels (changes rarely: a new run, a new histogram) */
  latencyNames: string[];
  cores: CoreLayout[];
  conditions: string[];
  heatLevels: number;
  unavailable: string[];
}

const EMPTY_UI: UiState = {
  conn: null,
  hello: null,
  engineStatus: null,
  engineState: null,
  run: null,
  pid: null,
  engineStatusSince: null,
  stale: true,
  staleReason: 'not connected',
  staleSince: null,
  killed: false,
  killSource: null,
  killAckLatencyUs: null,
  killHaltedUs: null,
  latencyNames: [],
  cores: [],
  conditions: [],
  heatLevels: 10,
  unavailable: [],
};

export interface Latest {
  hello: HelloData | null;
  engine: EngineData | null;
  sentinel: SentinelData | null;
  sonar: SonarData | null;
  oracle: OracleData | null;
  execution: ExecutionData | null;
  latency: LatencyData | null;
  cores: CoresData | null;
}

/** The parts of the run's configuration (GET /api/config) the cockpit draws. */
export interface RunConfig {
  sonar?: { enter_veto?: number; exit_veto?: number };
  broker?: { profile?: string; otr_ceiling?: number };
  [table: string]: unknown;
}

export interface StoreOptions {
  raf?: Raf;
  /** points kept per time series (25 Hz x 120 s) */
  capacity?: number;
  /** heatmap columns kept (10 rows/s x 60 s) */
  heatCapacity?: number;
  now?: () => number;
}

export class Store {
  readonly scheduler: FrameScheduler;
  readonly latest: Latest = {
    hello: null,
    engine: null,
    sentinel: null,
    sonar: null,
    oracle: null,
    execution: null,
    latency: null,
    cores: null,
  };
  /** the monitor's `t` (unix s) of each channel's latest message */
  readonly t: Partial<Record<DataChannel | 'engine', number>> = {};
  readonly unavailable: Partial<Record<DataChannel, string>> = {};
  readonly series: {
    /** t, order RTT last, cancel RTT last, order p99, in-flight age (max of order/cancel), ms */
    rtt: Rings;
    /** t, entropy 0..1 */
    entropy: Rings;
    /** t, strength, WOBI, liquidity imbalance / 100 */
    oracle: Rings;
    /** t, NEV value in rupees */
    nev: Rings;
    /** t, P&L in rupees (costs included), position in units */
    pnl: Rings;
    /** t, cpu_pct per module in ui.cores order */
    cores: Rings;
  };
  readonly heat: ColumnRing;
  heatGaps = 0;
  messages = 0;
  /** the run's configuration, when fetched (null until then, and again on a new run) */
  config: RunConfig | null = null;
  private readonly capacity: number;
  private readonly now: () => number;
  private ui: UiState = EMPTY_UI;
  private listeners = new Set<() => void>();
  private conn: Readonly<ClientStatus> | null = null;
  private statusSince: number | null = null;
  private lastStatus: EngineStatus | null = null;
  /** series that get a gap before their next point (after a reconnect) */
  private breakPending = new Set<Rings>();
  private lastX = -Infinity;
  private coreOrder: string[] = [];
  private run: string | null = null;

  constructor(opts: StoreOptions = {}) {
    this.capacity = opts.capacity ?? 3000;
    this.now = opts.now ?? (() => Date.now());
    this.scheduler = new FrameScheduler(opts.raf);
    this.series = {
      rtt: new Rings(this.capacity, 5),
      entropy: new Rings(this.capacity, 2),
      oracle: new Rings(this.capacity, 4),
      nev: new Rings(this.capacity, 2),
      pnl: new Rings(this.capacity, 3),
      cores: new Rings(this.capacity, 1),
    };
    this.heat = new ColumnRing(opts.heatCapacity ?? 600, 10);
  }

  // -- React side (low rate) -------------------------------------------------------------------

  getUi = (): UiState => this.ui;

  subscribe = (fn: () => void): (() => void) => {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  };

  // -- inputs ----------------------------------------------------------------------------------

  /** The client's status changed (connect, close, stale, gaps). */
  setConn(s: Readonly<ClientStatus>): void {
    this.conn = s;
    this.scheduler.markDirty(DIRTY.status);
    this.refreshUi();
  }

  setConfig(run: string, c: RunConfig | null): void {
    if (run !== this.run) return; // an answer for a run we left
    this.config = c;
    this.scheduler.markDirty(DIRTY.all);
  }

  /** A new connection is open: the lines get a break (no segment across the outage). */
  onOpen(): void {
    for (const s of Object.values(this.series)) if (s.length) this.breakPending.add(s);
  }

  ingest(msg: Message, _receivedAt: number = this.now()): void {
    this.messages++;
    switch (msg.ch) {
      case 'hello':
        this.latest.hello = msg.data;
        this.newRun(msg.data.run);
        this.refreshUi();
        return;
      case 'pong':
        return;
      case 'engine':
        this.setEngine(msg.data, msg.t);
        return;
      default:
        break;
    }
    const ch = msg.ch;
    if (isUnavailable(msg.data)) {
      this.unavailable[ch] = msg.data.unavailable;
      this.scheduler.markDirty(DIRTY[ch]);
      this.refreshUi();
      return;
    }
    if (this.unavailable[ch] !== undefined) {
      delete this.unavailable[ch];
      this.refreshUi();
    }
    this.t[ch] = msg.t;
    const x = this.x(msg.t);
    switch (msg.ch) {
      case 'sentinel': {
        const d = msg.data as SentinelData;
        this.latest.sentinel = d;
        this.setEngine(d.engine, msg.t);
        const o = d.order_rtt;
        const c = d.cancel_rtt;
        this.push(this.series.rtt, [
          x,
          o.count ? o.last_ms : NaN,
          c.count ? c.last_ms : NaN,
          o.count ? o.p99_ms : NaN,
          Math.max(o.inflight_age_ms, c.inflight_age_ms) || NaN, // 0: nothing in flight
        ]);
        break;
      }
      case 'sonar': {
        const d = msg.data as SonarData;
        const structural = !sameKeys(this.latest.sonar?.conditions, d.conditions);
        this.latest.sonar = d;
        this.push(this.series.entropy, [x, d.entropy ?? NaN]);
        if (structural) this.refreshUi();
        break;
      }
      case 'oracle': {
        const d = msg.data as OracleData;
        this.latest.oracle = d;
        this.push(this.series.oracle, [
          x,
          d.strength ?? NaN,
          d.wobi ?? NaN,
          d.liq_imb_pct === null ? NaN : d.liq_imb_pct / 100,
        ]);
        break;
      }
      case 'execution': {
        const d = msg.data as ExecutionData;
        this.latest.execution = d;
        this.push(this.series.nev, [x, d.nev_value === null ? NaN : d.nev_value / 100]);
        this.push(this.series.pnl, [x, d.pnl_paise / 100, d.position]);
        break;
      }
      case 'latency': {
        const d = msg.data as LatencyData;
        const structural = !sameKeys(this.latest.latency, d);
        this.latest.latency = d;
        if (structural) this.refreshUi();
        break;
      }
      case 'cores': {
        const d = msg.data as CoresData;
        const order = Object.keys(d);
        const layoutChanged =
          order.join() !== this.coreOrder.join() ||
          !this.latest.cores ||
          order.some((m) => this.latest.cores![m]?.cpu !== d[m].cpu);
        if (order.join() !== this.coreOrder.join()) {
          this.coreOrder = order;
          (this.series as { cores: Rings }).cores = new Rings(this.capacity, 1 + order.length);
        }
        this.latest.cores = d;
        const row = [x];
        for (const m of order) row.push(d[m].cpu_pct);
        this.push(this.series.cores, row);
        if (layoutChanged) this.refreshUi();
        break;
      }
      case 'heatmap':
        this.ingestHeat(msg.data as HeatmapData, msg.full);
        break;
    }
    this.scheduler.markDirty(DIRTY[ch]);
  }

  /** Heatmap rows: `full` starts the picture over; otherwise only rows newer than the last. */
  ingestHeat(d: HeatmapData, full: boolean): void {
    const h = this.heat;
    const levels = d.rows.length ? d.rows[0][2].length : h.levels;
    if (full || (levels !== h.levels && levels > 0)) {
      h.reset(levels > 0 ? levels : h.levels);
      if (levels !== this.ui.heatLevels) this.refreshUi();
    }
    for (const [row, t, vals] of d.rows) {
      if (row <= h.lastRow) continue; // seen already
      if (h.lastRow >= 0 && row > h.lastRow + 1) {
        // rows missing without a `full`: keep time honest with blank columns
        this.heatGaps++;
        const missing = Math.min(row - h.lastRow - 1, h.capacity);
        const blank: number[] = [];
        for (let i = 0; i < missing; i++) h.push(row - missing + i, NaN, blank);
      }
      h.push(row, t, vals);
    }
  }

  // -- internals -------------------------------------------------------------------------------

  private x(t: number): number {
    // monotonic x for uPlot (the monitor's wall clock could step back)
    const x = t > this.lastX ? t : this.lastX;
    this.lastX = x;
    return x;
  }

  private push(r: Rings, row: number[]): void {
    if (this.breakPending.delete(r)) r.pushRow([row[0]]); // x, then NaN: uPlot draws a gap
    r.pushRow(row);
  }

  private newRun(run: string | null): void {
    if (run === this.run) return;
    const had = this.run !== null;
    this.run = run;
    if (!had) return;
    // another run: its numbers do not continue the last one's lines
    for (const s of Object.values(this.series)) s.clear();
    this.heat.reset();
    this.lastX = -Infinity;
    this.config = null;
    this.latest.sentinel = this.latest.sonar = this.latest.oracle = null;
    this.latest.execution = this.latest.latency = this.latest.cores = null;
    this.scheduler.markDirty(DIRTY.all);
  }

  private setEngine(e: EngineData, t: number): void {
    if (e.run !== null && e.run !== this.run) this.newRun(e.run);
    this.latest.engine = e;
    this.t.engine = t;
    if (e.status !== this.lastStatus) {
      this.lastStatus = e.status;
      // DEAD: the engine's last heartbeat (the monitor's clock), not when this page noticed
      const hb = e.heartbeat_age_ms;
      this.statusSince =
        e.status === 'DEAD' && hb !== undefined && hb >= 0 ? t * 1000 - hb : this.now();
    }
    this.scheduler.markDirty(DIRTY.engine);
    this.refreshUi();
  }

  private refreshUi(): void {
    const next = this.derive();
    if (!shallowEqualUi(this.ui, next)) {
      this.ui = next;
      for (const fn of this.listeners) fn();
    }
  }

  private derive(): UiState {
    const e = this.latest.engine;
    const conn = this.conn;
    const status = e?.status ?? null;
    let staleReason: string | null = null;
    let staleSince: number | null = null;
    if (!conn || conn.state !== 'live') {
      staleReason = conn?.state === 'reconnecting' ? 'disconnected' : 'not connected';
      staleSince = conn?.staleSince ?? null;
    } else if (status === 'DEAD') {
      staleReason = 'engine DEAD';
      staleSince = this.statusSince;
    } else if (status === 'NONE') {
      staleReason = 'no engine run';
      staleSince = this.statusSince;
    } else if (conn.stale) {
      staleReason = 'no data for over 1.5 s';
      staleSince = conn.staleSince;
    } else if (status === null) {
      staleReason = 'no engine status yet';
    }
    const sentinelKilled = this.latest.sentinel?.state === 'KILLED';
    const lat = this.latest.latency;
    const cores = this.latest.cores;
    return {
      conn,
      hello: this.latest.hello,
      engineStatus: status,
      engineState: e?.state ?? null,
      run: e?.run ?? this.latest.hello?.run ?? null,
      pid: e?.pid ?? null,
      engineStatusSince: this.statusSince,
      stale: staleReason !== null,
      staleReason,
      staleSince,
      killed: e?.state === 'KILLED' || sentinelKilled,
      killSource:
        e?.state === 'KILLED'
          ? 'engine'
          : sentinelKilled
            ? `Sentinel (${this.latest.sentinel?.reason ?? '?'})`
            : null,
      killAckLatencyUs: e?.kill_ack_latency_us ?? null,
      killHaltedUs: e?.kill_halted_us ?? null,
      latencyNames: lat ? reuse(this.ui.latencyNames, Object.keys(lat)) : this.ui.latencyNames,
      cores: cores
        ? reuseCores(
            this.ui.cores,
            Object.keys(cores).map((m) => ({ module: m, cpu: cores[m].cpu })),
          )
        : this.ui.cores,
      conditions: this.latest.sonar
        ? reuse(this.ui.conditions, Object.keys(this.latest.sonar.conditions))
        : this.ui.conditions,
      heatLevels: this.heat.levels,
      unavailable: reuse(this.ui.unavailable, Object.keys(this.unavailable).sort()),
    };
  }
}

function sameKeys(a: object | null | undefined, b: object): boolean {
  if (!a) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k, i) => k === kb[i]);
}

function reuse(prev: string[], next: string[]): string[] {
  return prev.length === next.length && prev.every((v, i) => v === next[i]) ? prev : next;
}

function reuseCores(prev: CoreLayout[], next: CoreLayout[]): CoreLayout[] {
  return prev.length === next.length &&
    prev.every((v, i) => v.module === next[i].module && v.cpu === next[i].cpu)
    ? prev
    : next;
}

function shallowEqualUi(a: UiState, b: UiState): boolean {
  for (const k in a) {
    const key = k as keyof UiState;
    if (a[key] !== b[key]) return false;
  }
  return true;
}

/** The page's store (tests make their own). */
export const store = new Store();
