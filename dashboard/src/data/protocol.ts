/**
 * The monitor's WebSocket contract (docs/monitor.md, src/vajra/monitor/{protocol,view}.py),
 * schema version 1, as TypeScript types plus a validating `decode`.
 *
 * Every server message: {"seq": n, "ch": <channel>, "t": <unix s>, "full": bool, "data": {...}}.
 * `decode` checks the envelope and the fields of `data` that the cockpit reads (extra fields
 * are allowed: the engine's `exec` block grows); it never throws. Floats the engine may hold
 * as NaN/inf arrive as null (`_finite` on the Python side) and are typed `number | null`.
 */

export const SCHEMA_VERSION = 1;

/** Data channels a client can subscribe to, in the order the cockpit lays them out. */
export const DATA_CHANNELS = [
  'sentinel',
  'sonar',
  'oracle',
  'execution',
  'latency',
  'heatmap',
  'cores',
] as const;
export type DataChannel = (typeof DATA_CHANNELS)[number];
export type Channel = 'hello' | 'engine' | 'pong' | DataChannel;

export const ENGINE_STATUSES = ['LIVE', 'STARTING', 'DEAD', 'NONE'] as const;
export type EngineStatus = (typeof ENGINE_STATUSES)[number];

/** Percentile keys of a latency summary, in order (view.PERCENTILES). */
export const PERCENTILE_KEYS = ['p50_us', 'p90_us', 'p99_us', 'p99.9_us', 'p99.99_us'] as const;
export const PERCENTILES = [50, 90, 99, 99.9, 99.99] as const;
export type PercentileKey = (typeof PERCENTILE_KEYS)[number];

export interface HelloData {
  schema: number;
  channels: string[];
  rate_hz: number;
  run: string | null;
}

export interface EngineData {
  run: string | null;
  status: EngineStatus;
  pid?: number;
  /** EngineState name: STARTING, ACTIVE, REDUCING, HALTED, KILLED, STOPPED */
  state?: string;
  heartbeat_age_ms?: number;
  kill?: number;
  kill_halted?: number;
  kill_ack?: number;
  kill_halted_us?: number | null;
  kill_ack_latency_us?: number | null;
}

export interface Rtt {
  last_ms: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
  count: number;
  breaches: number;
  inflight_age_ms: number;
}

export interface SentinelData {
  engine: EngineData;
  /** NORMAL / DEGRADED / LOCKDOWN / KILLED */
  state: string;
  reason: string;
  since_ns: number;
  in_state_s: number | null;
  transitions: number;
  cancel_alls: number;
  halted: boolean;
  rearm_in_s: number | null;
  lockdown_ms: number;
  degraded_ms: number;
  order_rtt: Rtt;
  cancel_rtt: Rtt;
}

export interface SonarData {
  open: boolean;
  /** ATTACK / VETO */
  regime: string;
  in_regime_s: number | null;
  veto: string[];
  entropy: number | null;
  moves: number;
  conditions: Record<string, boolean>;
  phase: number;
}

export interface BookData {
  token: number;
  updates: number;
  tick: number;
  state: number;
  bids: [number, number][];
  asks: [number, number][];
}

export interface OracleData {
  signals: number;
  recv_ns: number;
  wobi: number | null;
  liq_imb_pct: number | null;
  strength: number | null;
  edge_ticks: number | null;
  edge_bps: number | null;
  zscore: number | null;
  spread_ticks: number;
  book: BookData;
}

export interface ExecutionData {
  state: string;
  emergency: string;
  signals: number;
  placed: number;
  fills: number;
  filled_orders: number;
  cancels_sent: number;
  open_orders: number;
  refused: number;
  position: number;
  pnl_paise: number;
  costs_paise: number;
  otr_trades: number;
  otr_penalty_orders: number;
  otr_slab_paise: number;
  otr_ceiling: number;
  limiter_1s: number;
  limiter_1m: number;
  nev_value: number | null;
  nev_p_fill: number | null;
  nev_edge: number | null;
  nev_costs: number | null;
  nev_stt: number | null;
  nev_adverse: number | null;
  otr_pressure: number | null;
  fill_rate_pct: number | null;
  cancel_rate_pct: number | null;
  otr: number | null;
  venue_open: number;
  [extra: string]: unknown;
}

export interface HistSummary {
  count: number;
  mean_us?: number;
  max_us?: number;
  p50_us?: number;
  p90_us?: number;
  p99_us?: number;
  'p99.9_us'?: number;
  'p99.99_us'?: number;
}
export type LatencyData = Record<string, HistSummary>;

/** [row number, t_ns (the engine's event clock, not unix time), value per depth level] */
export type HeatRow = [number, number, (number | null)[]];
export interface HeatmapData {
  rows: HeatRow[];
  written?: number;
}

export interface CoreData {
  cpu: number;
  cpu_pct: number;
  tid: number;
  alive: boolean;
  heartbeat_age_ms: number | null;
  loops: number;
  events: number;
  ctx_voluntary: number;
  ctx_involuntary: number;
  migrations: number;
}
export type CoresData = Record<string, CoreData>;

export interface PongData {
  monitor_uptime_s: number;
}

/** A channel the monitor could not read this tick (a torn seqlock read). */
export interface Unavailable {
  unavailable: string;
}

interface Envelope<C extends Channel, D> {
  seq: number;
  ch: C;
  t: number;
  full: boolean;
  data: D;
}

export type Message =
  | Envelope<'hello', HelloData>
  | Envelope<'engine', EngineData>
  | Envelope<'pong', PongData>
  | Envelope<'sentinel', SentinelData | Unavailable>
  | Envelope<'sonar', SonarData | Unavailable>
  | Envelope<'oracle', OracleData | Unavailable>
  | Envelope<'execution', ExecutionData | Unavailable>
  | Envelope<'latency', LatencyData | Unavailable>
  | Envelope<'heatmap', HeatmapData | Unavailable>
  | Envelope<'cores', CoresData | Unavailable>;

export type MessageOf<C extends Channel> = Extract<Message, { ch: C }>;

export type Decoded =
  | { ok: true; msg: Message }
  /** `seq` is set when the envelope was readable: the client still counts it (no false gap). */
  | { ok: false; error: string; seq?: number; ch?: string };

export function isUnavailable(d: unknown): d is Unavailable {
  return typeof d === 'object' && d !== null && typeof (d as Unavailable).unavailable === 'string';
}

// -- validation ------------------------------------------------------------------------------

/** A check returns null when the value fits, else a message naming the path. */
type Check = (v: unknown, path: string) => string | null;

const num: Check = (v, p) =>
  typeof v === 'number' && Number.isFinite(v) ? null : `${p}: expected a number, got ${kind(v)}`;
const int: Check = (v, p) =>
  typeof v === 'number' && Number.isInteger(v) ? null : `${p}: expected an integer, got ${kind(v)}`;
const str: Check = (v, p) => (typeof v === 'string' ? null : `${p}: expected a string, got ${kind(v)}`);
const bool: Check = (v, p) =>
  typeof v === 'boolean' ? null : `${p}: expected a boolean, got ${kind(v)}`;
const nullable =
  (c: Check): Check =>
  (v, p) =>
    v === null ? null : c(v, p);
const optional =
  (c: Check): Check =>
  (v, p) =>
    v === undefined ? null : c(v, p);
const oneOf =
  (values: readonly string[]): Check =>
  (v, p) =>
    typeof v === 'string' && values.includes(v) ? null : `${p}: expected one of ${values.join('/')}`;
const arrayOf =
  (c: Check, maxLen = 100_000): Check =>
  (v, p) => {
    if (!Array.isArray(v)) return `${p}: expected an array, got ${kind(v)}`;
    if (v.length > maxLen) return `${p}: more than ${maxLen} items`;
    for (let i = 0; i < v.length; i++) {
      const e = c(v[i], `${p}[${i}]`);
      if (e) return e;
    }
    return null;
  };
const tuple =
  (...cs: Check[]): Check =>
  (v, p) => {
    if (!Array.isArray(v) || v.length !== cs.length)
      return `${p}: expected a ${cs.length}-tuple, got ${kind(v)}`;
    for (let i = 0; i < cs.length; i++) {
      const e = cs[i](v[i], `${p}[${i}]`);
      if (e) return e;
    }
    return null;
  };
const shape =
  (fields: Record<string, Check>): Check =>
  (v, p) => {
    if (!isObject(v)) return `${p}: expected an object, got ${kind(v)}`;
    for (const k in fields) {
      const e = fields[k](v[k], `${p}.${k}`);
      if (e) return e;
    }
    return null;
  };
const recordOf =
  (c: Check, maxKeys = 1000): Check =>
  (v, p) => {
    if (!isObject(v)) return `${p}: expected an object, got ${kind(v)}`;
    const keys = Object.keys(v);
    if (keys.length > maxKeys) return `${p}: more than ${maxKeys} keys`;
    for (const k of keys) {
      const e = c(v[k], `${p}.${k}`);
      if (e) return e;
    }
    return null;
  };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function kind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  return typeof v;
}

const numN = nullable(num);

const engineCheck = shape({
  run: nullable(str),
  status: oneOf(ENGINE_STATUSES),
  pid: optional(int),
  state: optional(str),
  heartbeat_age_ms: optional(num),
  kill: optional(int),
  kill_halted: optional(int),
  kill_ack: optional(int),
  kill_halted_us: optional(numN),
  kill_ack_latency_us: optional(numN),
});

const rttCheck = shape({
  last_ms: num,
  p50_ms: num,
  p99_ms: num,
  max_ms: num,
  count: int,
  breaches: int,
  inflight_age_ms: num,
});

const CHECKS: Record<Channel, Check> = {
  hello: shape({ schema: int, channels: arrayOf(str, 64), rate_hz: num, run: nullable(str) }),
  engine: engineCheck,
  pong: shape({ monitor_uptime_s: num }),
  sentinel: shape({
    engine: engineCheck,
    state: str,
    reason: str,
    since_ns: num,
    in_state_s: numN,
    transitions: int,
    cancel_alls: int,
    halted: bool,
    rearm_in_s: numN,
    lockdown_ms: num,
    degraded_ms: num,
    order_rtt: rttCheck,
    cancel_rtt: rttCheck,
  }),
  sonar: shape({
    open: bool,
    regime: str,
    in_regime_s: numN,
    veto: arrayOf(str, 32),
    entropy: numN,
    moves: int,
    conditions: recordOf(bool, 64),
    phase: int,
  }),
  oracle: shape({
    signals: int,
    recv_ns: num,
    wobi: numN,
    liq_imb_pct: numN,
    strength: numN,
    edge_ticks: numN,
    edge_bps: numN,
    zscore: numN,
    spread_ticks: num,
    book: shape({
      token: int,
      updates: int,
      tick: num,
      state: int,
      bids: arrayOf(tuple(num, num), 64),
      asks: arrayOf(tuple(num, num), 64),
    }),
  }),
  execution: shape({
    state: str,
    emergency: str,
    signals: int,
    placed: int,
    fills: int,
    filled_orders: int,
    cancels_sent: int,
    open_orders: int,
    refused: int,
    position: int,
    pnl_paise: num,
    costs_paise: num,
    otr_trades: int,
    otr_penalty_orders: int,
    otr_slab_paise: num,
    otr_ceiling: num,
    limiter_1s: int,
    limiter_1m: int,
    nev_value: numN,
    nev_p_fill: numN,
    nev_edge: numN,
    nev_costs: numN,
    nev_stt: numN,
    nev_adverse: numN,
    otr_pressure: numN,
    fill_rate_pct: numN,
    cancel_rate_pct: numN,
    otr: numN,
    venue_open: int,
  }),
  latency: recordOf(
    shape({
      count: int,
      mean_us: optional(num),
      max_us: optional(num),
      p50_us: optional(num),
      p90_us: optional(num),
      p99_us: optional(num),
      'p99.9_us': optional(num),
      'p99.99_us': optional(num),
    }),
    256,
  ),
  heatmap: shape({
    rows: arrayOf(tuple(int, num, arrayOf(numN, 64)), 4096),
    written: optional(int),
  }),
  cores: recordOf(
    shape({
      cpu: int,
      cpu_pct: num,
      tid: int,
      alive: bool,
      heartbeat_age_ms: numN,
      loops: int,
      events: int,
      ctx_voluntary: int,
      ctx_involuntary: int,
      migrations: int,
    }),
    64,
  ),
};

const KNOWN = new Set<string>(Object.keys(CHECKS));

/** Validate the shape of `data` for channel `ch` (exported for tests and the HTTP snapshot). */
export function checkData(ch: Channel, data: unknown): string | null {
  if (ch !== 'hello' && ch !== 'engine' && ch !== 'pong' && isUnavailable(data)) return null;
  return CHECKS[ch](data, 'data');
}

/** One text frame -> a typed message, or an error saying why not. Never throws. */
export function decode(text: string): Decoded {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, error: 'not JSON' };
  }
  if (!isObject(raw)) return { ok: false, error: `message: expected an object, got ${kind(raw)}` };
  const { seq, ch, t, full, data } = raw;
  if (typeof seq !== 'number' || !Number.isInteger(seq) || seq < 1)
    return { ok: false, error: `seq: expected a positive integer, got ${kind(seq)}` };
  if (typeof ch !== 'string') return { ok: false, error: `ch: expected a string`, seq };
  if (!KNOWN.has(ch)) return { ok: false, error: `ch: unknown channel ${ch.slice(0, 32)}`, seq, ch };
  if (typeof t !== 'number' || !Number.isFinite(t))
    return { ok: false, error: `t: expected a number, got ${kind(t)}`, seq, ch };
  if (typeof full !== 'boolean')
    return { ok: false, error: `full: expected a boolean, got ${kind(full)}`, seq, ch };
  const err = checkData(ch as Channel, data);
  if (err) return { ok: false, error: `${ch}: ${err}`, seq, ch };
  return { ok: true, msg: { seq, ch, t, full, data } as Message };
}

/** Client -> server operations (docs/monitor.md). */
export type ClientOp =
  | { op: 'subscribe'; channels: DataChannel[] }
  | { op: 'unsubscribe'; channels: DataChannel[] }
  | { op: 'snapshot' }
  | { op: 'ping' };

export function encodeOp(op: ClientOp): string {
  return JSON.stringify(op);
}
