import { beforeEach, describe, expect, it, vi } from 'vitest';
import { KillSwitch, sessionTokenStore, TOKEN_KEY } from '../../src/data/control';

const ACK = {
  action: 'kill',
  seq: 1,
  acknowledged: true,
  state: 'KILLED',
  engine_ack_us: 412.5,
  cancels_sent: true,
  cancels_sent_us: 1800.2,
  monitor_ms: 1.9,
};

type Call = { url: string; init: RequestInit };

function mockFetch(...answers: ({ status: number; body: unknown } | Error)[]) {
  const calls: Call[] = [];
  const fetch = vi.fn(async (url: string, init: RequestInit) => {
    calls.push({ url, init });
    const a = answers.shift();
    if (!a) throw new Error('unexpected fetch');
    if (a instanceof Error) throw a;
    return { status: a.status, json: async () => a.body } as Response;
  });
  return { fetch, calls };
}

function auth(c: Call): string {
  return (c.init.headers as Record<string, string>).Authorization;
}

beforeEach(() => {
  sessionStorage.clear();
  localStorage.clear();
});

describe('kill switch: request', () => {
  it('confirm -> token prompt -> POST /api/kill with the bearer token -> latched KILLED', async () => {
    const { fetch, calls } = mockFetch({ status: 200, body: ACK });
    const k = new KillSwitch({ fetch });
    k.requestKill();
    expect(k.state.phase).toBe('confirm-kill');
    await k.confirmKill();
    expect(k.state.phase).toBe('need-token');
    expect(fetch).not.toHaveBeenCalled();
    await k.provideToken('  s3cret-token  ');
    expect(calls).toHaveLength(1);
    expect(calls[0].url).toBe('/api/kill');
    expect(calls[0].init.method).toBe('POST');
    expect(auth(calls[0])).toBe('Bearer s3cret-token');
    expect(calls[0].url).not.toContain('s3cret');
    expect(k.state.phase).toBe('killed');
    expect(k.state.ack).toMatchObject({ engine_ack_us: 412.5, cancels_sent: true });
    expect(k.state.roundTripMs).not.toBeNull();
  });

  it('keeps the token in sessionStorage only, and asks once', async () => {
    const { fetch, calls } = mockFetch({ status: 200, body: ACK }, { status: 200, body: ACK });
    const k = new KillSwitch({ fetch });
    k.requestKill();
    await k.confirmKill();
    await k.provideToken('tok-1');
    expect(sessionStorage.getItem(TOKEN_KEY)).toBe('tok-1');
    expect(localStorage.length).toBe(0);
    // a second kill goes straight out with the kept token
    k.requestKill();
    await k.confirmKill();
    expect(calls).toHaveLength(2);
    expect(auth(calls[1])).toBe('Bearer tok-1');
  });

  it('401 forgets the token and asks again; the new one is used', async () => {
    sessionStorage.setItem(TOKEN_KEY, 'stale-token');
    const { fetch, calls } = mockFetch(
      { status: 401, body: { error: 'missing or wrong bearer token' } },
      { status: 200, body: ACK },
    );
    const k = new KillSwitch({ fetch });
    k.requestKill();
    await k.confirmKill();
    expect(auth(calls[0])).toBe('Bearer stale-token');
    expect(sessionStorage.getItem(TOKEN_KEY)).toBeNull();
    expect(k.state).toMatchObject({ phase: 'need-token', pending: 'kill', tokenRejected: true });
    await k.provideToken('good-token');
    expect(auth(calls[1])).toBe('Bearer good-token');
    expect(k.state.phase).toBe('killed');
  });

  it('stays KILLED while the engine still reports ACTIVE (latched), until a re-arm succeeds', async () => {
    sessionStorage.setItem(TOKEN_KEY, 't');
    const { fetch, calls } = mockFetch(
      { status: 200, body: ACK },
      { status: 409, body: { action: 'rearm', acknowledged: true, result: 'REFUSED', state: 'KILLED', seq: 2, monitor_ms: 1 } },
      { status: 200, body: { action: 'rearm', acknowledged: true, result: 'OK', state: 'ACTIVE', seq: 3, monitor_ms: 1 } },
    );
    const k = new KillSwitch({ fetch });
    k.syncEngine('run-1', false);
    k.requestKill();
    await k.confirmKill();
    k.syncEngine('run-1', false); // the stream has not caught up yet
    expect(k.state.phase).toBe('killed');
    // re-arm has its own confirm, and Escape leaves it KILLED
    k.requestRearm();
    expect(k.state.phase).toBe('confirm-rearm');
    k.cancel();
    expect(k.state.phase).toBe('killed');
    k.requestRearm();
    await k.confirmRearm();
    expect(calls[1].url).toBe('/api/rearm');
    expect(k.state.phase).toBe('killed');
    expect(k.state.error).toContain('REFUSED');
    k.requestRearm();
    await k.confirmRearm();
    expect(k.state.phase).toBe('armed');
    expect(k.state.ack).toBeNull();
  });

  it('an unacknowledged kill is not shown as KILLED; the engine channel confirms it later', async () => {
    sessionStorage.setItem(TOKEN_KEY, 't');
    const { fetch } = mockFetch({
      status: 200,
      body: { ...ACK, acknowledged: false, engine_ack_us: null, cancels_sent: false, cancels_sent_us: null },
    });
    const k = new KillSwitch({ fetch });
    k.syncEngine('run-1', false);
    k.requestKill();
    await k.confirmKill();
    expect(k.state.phase).toBe('unacknowledged');
    k.syncEngine('run-1', true);
    expect(k.state.phase).toBe('killed');
  });

  it('cancel in the confirm step sends nothing', async () => {
    const { fetch } = mockFetch();
    const k = new KillSwitch({ fetch });
    k.requestKill();
    k.cancel();
    expect(k.state.phase).toBe('armed');
    await k.confirmKill(); // not in a confirm any more: ignored
    expect(fetch).not.toHaveBeenCalled();
  });

  it('a refusal or a network failure leaves it armed, with the reason', async () => {
    sessionStorage.setItem(TOKEN_KEY, 't');
    const { fetch } = mockFetch({ status: 403, body: { error: 'origin not allowed' } }, new TypeError('Failed to fetch'));
    const k = new KillSwitch({ fetch });
    k.requestKill();
    await k.confirmKill();
    expect(k.state).toMatchObject({ phase: 'armed', error: 'kill refused: origin not allowed' });
    expect(sessionStorage.getItem(TOKEN_KEY)).toBe('t'); // a 403 is not a token problem
    k.requestKill();
    await k.confirmKill();
    expect(k.state.phase).toBe('armed');
    expect(k.state.error).toContain('Failed to fetch');
  });

  it('KILLED from elsewhere latches; a new run starts armed', () => {
    const k = new KillSwitch({ fetch: mockFetch().fetch });
    k.syncEngine('run-1', false);
    k.syncEngine('run-1', true);
    expect(k.state).toMatchObject({ phase: 'killed', killedElsewhere: true });
    k.syncEngine('run-1', false);
    expect(k.state.phase).toBe('killed');
    k.syncEngine('run-2', false);
    expect(k.state.phase).toBe('armed');
  });
});

describe('token store', () => {
  it('uses sessionStorage, never localStorage, and clears', () => {
    const t = sessionTokenStore(sessionStorage);
    t.set('abc');
    expect(sessionStorage.getItem(TOKEN_KEY)).toBe('abc');
    expect(localStorage.getItem(TOKEN_KEY)).toBeNull();
    t.clear();
    expect(t.get()).toBeNull();
  });

  it('falls back to memory when storage throws', () => {
    const broken = {
      getItem: () => {
        throw new Error('denied');
      },
      setItem: () => {
        throw new Error('denied');
      },
      removeItem: () => {
        throw new Error('denied');
      },
    } as unknown as Storage;
    const t = sessionTokenStore(broken);
    t.set('mem');
    expect(t.get()).toBe('mem');
  });
});
