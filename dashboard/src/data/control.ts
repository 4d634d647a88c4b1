/**
 * The global kill switch's logic, outside React: confirm step, bearer token, the POST, the
 * engine's acknowledgement, the latched KILLED state, and the separate re-arm.
 *
 * The monitor's token is asked for once and kept in sessionStorage only (gone with the tab;
 * never localStorage, never the URL). A 401 forgets it and asks again.
 */

export const TOKEN_KEY = 'vajra.monitor.token';

export interface TokenStore {
  get(): string | null;
  set(token: string): void;
  clear(): void;
}

/** The token in sessionStorage (per tab, cleared when the tab closes). */
export function sessionTokenStore(storage: Storage | undefined = globalThis.sessionStorage): TokenStore {
  let mem: string | null = null; // when storage is unavailable (privacy modes): this page only
  return {
    get: () => {
      try {
        return storage?.getItem(TOKEN_KEY) ?? mem;
      } catch {
        return mem;
      }
    },
    set: (t) => {
      mem = t;
      try {
        storage?.setItem(TOKEN_KEY, t);
      } catch {
        /* memory only */
      }
    },
    clear: () => {
      mem = null;
      try {
        storage?.removeItem(TOKEN_KEY);
      } catch {
        /* nothing kept */
      }
    },
  };
}

/** POST /api/kill's answer (docs/monitor.md). */
export interface KillAck {
  acknowledged: boolean;
  state: string;
  seq: number;
  engine_ack_us: number | null;
  cancels_sent: boolean;
  cancels_sent_us: number | null;
  monitor_ms: number;
}

export interface RearmResult {
  acknowledged: boolean;
  result: string;
  state: string;
  seq: number;
  monitor_ms: number;
}

export type KillPhase =
  | 'armed'
  | 'confirm-kill'
  | 'need-token'
  | 'sending'
  /** the engine acknowledged (or reports KILLED): latched until a successful re-arm */
  | 'killed'
  /** the kill word is set but the engine did not confirm within the monitor's 2 s */
  | 'unacknowledged'
  | 'confirm-rearm'
  | 'rearming';

export interface KillState {
  phase: KillPhase;
  /** the action a token prompt will continue */
  pending: 'kill' | 'rearm' | null;
  error: string | null;
  tokenRejected: boolean;
  ack: KillAck | null;
  /** click on confirm -> response, measured here (ms) */
  roundTripMs: number | null;
  /** KILLED seen on the engine channel without an answer of ours (another operator, the CLI) */
  killedElsewhere: boolean;
  rearm: RearmResult | null;
  run: string | null;
}

type Fetch = (input: string, init: RequestInit) => Promise<Response>;

export interface KillSwitchOptions {
  fetch?: Fetch;
  tokens?: TokenStore;
  now?: () => number;
  base?: string;
  timeoutMs?: number;
}

const INITIAL: KillState = {
  phase: 'armed',
  pending: null,
  error: null,
  tokenRejected: false,
  ack: null,
  roundTripMs: null,
  killedElsewhere: false,
  rearm: null,
  run: null,
};

export class KillSwitch {
  private st: KillState = INITIAL;
  private listeners = new Set<() => void>();
  private readonly fetch: Fetch;
  readonly tokens: TokenStore;
  private readonly now: () => number;
  private readonly base: string;
  private readonly timeoutMs: number;
  /** the phase a cancelled confirm or token prompt returns to */
  private resting: 'armed' | 'killed' | 'unacknowledged' = 'armed';

  constructor(o: KillSwitchOptions = {}) {
    this.fetch = o.fetch ?? ((i, init) => globalThis.fetch(i, init));
    this.tokens = o.tokens ?? sessionTokenStore();
    this.now = o.now ?? (() => performance.now());
    this.base = o.base ?? '';
    this.timeoutMs = o.timeoutMs ?? 5000;
  }

  get state(): KillState {
    return this.st;
  }

  getState = (): KillState => this.st;

  subscribe = (fn: () => void): (() => void) => {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  };

  private set(patch: Partial<KillState>): void {
    this.st = { ...this.st, ...patch };
    if (patch.phase === 'armed' || patch.phase === 'killed' || patch.phase === 'unacknowledged')
      this.resting = patch.phase;
    for (const fn of this.listeners) fn();
  }

  get hasToken(): boolean {
    return !!this.tokens.get();
  }

  /** The big button: open the confirm step. */
  requestKill(): void {
    const p = this.st.phase;
    if (p === 'armed' || p === 'unacknowledged' || p === 'killed')
      this.set({ phase: 'confirm-kill', error: null });
  }

  requestRearm(): void {
    if (this.st.phase === 'killed' || this.st.phase === 'unacknowledged')
      this.set({ phase: 'confirm-rearm', error: null });
  }

  /** Escape / Cancel in a confirm or token prompt. */
  cancel(): void {
    const p = this.st.phase;
    if (p === 'confirm-kill' || p === 'confirm-rearm' || p === 'need-token')
      this.set({ phase: this.resting, pending: null });
  }

  async confirmKill(): Promise<void> {
    if (this.st.phase !== 'confirm-kill' && this.st.phase !== 'need-token') return;
    if (!this.hasToken) {
      this.set({ phase: 'need-token', pending: 'kill' });
      return;
    }
    await this.sendKill();
  }

  async confirmRearm(): Promise<void> {
    if (this.st.phase !== 'confirm-rearm' && this.st.phase !== 'need-token') return;
    if (!this.hasToken) {
      this.set({ phase: 'need-token', pending: 'rearm' });
      return;
    }
    await this.sendRearm();
  }

  /** The token prompt was answered: keep it (this tab only) and go on with what was asked. */
  async provideToken(token: string): Promise<void> {
    const t = token.trim();
    if (!t) return;
    this.tokens.set(t);
    const pending = this.st.pending;
    this.set({ tokenRejected: false, pending: null });
    if (pending === 'kill') await this.sendKill();
    else if (pending === 'rearm') await this.sendRearm();
    else this.set({ phase: this.resting });
  }

  forgetToken(): void {
    this.tokens.clear();
    this.set({});
  }

  /**
   * What the engine says, from the data stream: KILLED latches here even when someone else
   * killed it; a new run (another engine process) starts armed.
   */
  syncEngine(run: string | null, killed: boolean): void {
    if (run !== null && this.st.run !== null && run !== this.st.run) {
      this.resting = 'armed';
      this.st = { ...INITIAL, run, phase: 'armed' };
      if (killed) this.set({ phase: 'killed', killedElsewhere: true });
      else this.set({});
      return;
    }
    if (run !== null && this.st.run === null) this.st = { ...this.st, run };
    if (!killed) return;
    const p = this.st.phase;
    if (p === 'armed' || p === 'unacknowledged') this.set({ phase: 'killed', killedElsewhere: this.st.ack === null });
    else if (this.resting !== 'killed' && (p === 'confirm-kill' || p === 'need-token'))
      this.resting = 'killed';
  }

  private async post(path: string): Promise<{ status: number; body: unknown } | { error: string }> {
    const token = this.tokens.get();
    const ctl = typeof AbortController === 'function' ? new AbortController() : null;
    const timer = ctl ? setTimeout(() => ctl.abort(), this.timeoutMs) : null;
    try {
      const r = await this.fetch(`${this.base}${path}`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${token ?? ''}` },
        cache: 'no-store',
        credentials: 'omit',
        signal: ctl?.signal,
      });
      let body: unknown = null;
      try {
        body = await r.json();
      } catch {
        body = null;
      }
      return { status: r.status, body };
    } catch (e) {
      return { error: e instanceof Error && e.name === 'AbortError' ? 'no answer within 5 s' : String(e) };
    } finally {
      if (timer !== null) clearTimeout(timer);
    }
  }

  private async sendKill(): Promise<void> {
    this.set({ phase: 'sending', pending: null, error: null });
    const t0 = this.now();
    const r = await this.post('/api/kill');
    const rt = this.now() - t0;
    if ('error' in r) {
      this.set({ phase: this.resting, error: `kill not sent: ${r.error}` });
      return;
    }
    if (r.status === 401) {
      this.tokens.clear();
      this.set({ phase: 'need-token', pending: 'kill', tokenRejected: true, error: 'token rejected (401)' });
      return;
    }
    if (r.status !== 200 || !isKillAck(r.body)) {
      const why = errorText(r.body) ?? `HTTP ${r.status}`;
      this.set({ phase: this.resting, error: `kill refused: ${why}` });
      return;
    }
    const ack = r.body;
    this.set({
      phase: ack.acknowledged ? 'killed' : 'unacknowledged',
      ack,
      roundTripMs: rt,
      killedElsewhere: false,
      rearm: null,
      error: ack.acknowledged ? null : 'the engine did not acknowledge within 2 s',
    });
  }

  private async sendRearm(): Promise<void> {
    this.set({ phase: 'rearming', pending: null, error: null });
    const r = await this.post('/api/rearm');
    if ('error' in r) {
      this.set({ phase: this.resting, error: `re-arm not sent: ${r.error}` });
      return;
    }
    if (r.status === 401) {
      this.tokens.clear();
      this.set({ phase: 'need-token', pending: 'rearm', tokenRejected: true, error: 'token rejected (401)' });
      return;
    }
    const res = isRearm(r.body) ? r.body : null;
    if (r.status === 200 && res && res.result === 'OK') {
      this.set({ phase: 'armed', rearm: res, ack: null, killedElsewhere: false, error: null });
      return;
    }
    const why = res ? `engine answered ${res.result}` : (errorText(r.body) ?? `HTTP ${r.status}`);
    this.set({ phase: this.resting, rearm: res, error: `re-arm refused: ${why}` });
  }
}

function isKillAck(b: unknown): b is KillAck {
  if (typeof b !== 'object' || b === null) return false;
  const o = b as Record<string, unknown>;
  return typeof o.acknowledged === 'boolean' && typeof o.monitor_ms === 'number';
}

function isRearm(b: unknown): b is RearmResult {
  if (typeof b !== 'object' || b === null) return false;
  const o = b as Record<string, unknown>;
  return typeof o.result === 'string';
}

function errorText(b: unknown): string | null {
  if (typeof b === 'object' && b !== null && typeof (b as { error?: unknown }).error === 'string')
    return (b as { error: string }).error;
  return null;
}
