import raw from './fixtures/messages.json';
import { decode, type Message } from '../../src/data/protocol';

/** Messages captured from a real `vajra monitor` (seq zeroed; tests number them). */
export type FixtureKey = keyof typeof raw;

export function clone<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

/** The raw object of a fixture message with `seq` set and `data` patched. */
export function rawMsg(key: FixtureKey, seq: number, patch: (data: any) => void = () => {}, extra: object = {}) {
  const m = clone(raw[key]) as { seq: number; data: any; [k: string]: unknown };
  m.seq = seq;
  patch(m.data);
  return { ...m, ...extra };
}

export function frame(key: FixtureKey, seq: number, patch?: (data: any) => void, extra?: object): string {
  return JSON.stringify(rawMsg(key, seq, patch, extra));
}

export function msg(key: FixtureKey, seq = 1, patch?: (data: any) => void, extra?: object): Message {
  const d = decode(frame(key, seq, patch, extra));
  if (!d.ok) throw new Error(`fixture ${key} does not decode: ${d.error}`);
  return d.msg;
}

/** A requestAnimationFrame stand-in the test runs by hand. */
export function manualRaf() {
  const queue: ((ts: number) => void)[] = [];
  let t = 0;
  return {
    raf: (cb: (ts: number) => void) => {
      queue.push(cb);
      return queue.length;
    },
    pending: () => queue.length,
    /** run the callbacks queued so far (one animation frame) */
    frame: () => {
      t += 16.7;
      const run = queue.splice(0);
      for (const cb of run) cb(t);
      return run.length;
    },
  };
}
