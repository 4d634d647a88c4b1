import { describe, expect, it } from 'vitest';
import { ColumnRing, Ring, Rings } from '../../src/data/ring';

describe('Ring', () => {
  it('keeps insertion order before it fills', () => {
    const r = new Ring(4);
    r.push(1);
    r.push(2);
    const out = new Float64Array(4);
    expect(r.unroll(out)).toBe(2);
    expect([...out.subarray(0, 2)]).toEqual([1, 2]);
    expect(r.at(0)).toBe(1);
    expect(r.last()).toBe(2);
  });

  it('wraps around: the oldest are overwritten, unroll is oldest -> newest', () => {
    const r = new Ring(3);
    for (let i = 1; i <= 7; i++) r.push(i);
    expect(r.length).toBe(3);
    const out: (number | null)[] = [];
    r.unroll(out);
    expect(out).toEqual([5, 6, 7]);
    expect(r.at(0)).toBe(5);
    expect(r.at(3)).toBeNaN();
    const typed = new Float64Array(3);
    r.unroll(typed);
    expect([...typed]).toEqual([5, 6, 7]);
  });

  it('wraps exactly at capacity and at every offset', () => {
    for (let n = 0; n < 12; n++) {
      const r = new Ring(5);
      for (let i = 0; i < n; i++) r.push(i);
      const out: (number | null)[] = [];
      r.unroll(out);
      const want = Array.from({ length: Math.min(n, 5) }, (_, k) => n - Math.min(n, 5) + k);
      expect(out).toEqual(want);
    }
  });

  it('is bounded: a million pushes hold capacity values', () => {
    const r = new Ring(1000);
    for (let i = 0; i < 1_000_000; i++) r.push(i);
    expect(r.length).toBe(1000);
    expect(r.at(0)).toBe(999_000);
    expect(r.last()).toBe(999_999);
  });

  it('reuses the target array: same object, length set, NaN -> null on request', () => {
    const r = new Ring(4);
    r.push(1);
    r.push(NaN);
    r.push(3);
    const out: (number | null)[] = [9, 9, 9, 9, 9, 9];
    expect(r.unroll(out, true)).toBe(3);
    expect(out).toEqual([1, null, 3]);
    r.unroll(out, false);
    expect(out[1]).toBeNaN();
  });

  it('refuses a typed target that is too small, and a capacity < 1', () => {
    const r = new Ring(4);
    for (let i = 0; i < 4; i++) r.push(i);
    expect(() => r.unroll(new Float64Array(3))).toThrow(RangeError);
    expect(() => new Ring(0)).toThrow(RangeError);
  });

  it('clear empties it', () => {
    const r = new Ring(2);
    r.push(1);
    r.clear();
    expect(r.length).toBe(0);
    expect(r.last()).toBeNaN();
  });
});

describe('Rings (aligned columns)', () => {
  it('pushes rows whole; missing values are NaN (null in y columns, never in x)', () => {
    const rs = new Rings(3, 3);
    rs.push(1, 10, 100);
    rs.pushRow([2]);
    rs.push(3, 30, 300);
    rs.push(4, 40, 400);
    const [x, a, b] = rs.unrollAll();
    expect(x).toEqual([2, 3, 4]);
    expect(a).toEqual([null, 30, 40]);
    expect(b).toEqual([null, 300, 400]);
  });

  it('returns the same arrays every call (no allocation per frame)', () => {
    const rs = new Rings(3, 2);
    rs.push(1, 1);
    const first = rs.unrollAll();
    const a0 = first[0];
    rs.push(2, 2);
    const second = rs.unrollAll();
    expect(second).toBe(first);
    expect(second[0]).toBe(a0);
    expect(a0).toEqual([1, 2]);
  });
});

describe('ColumnRing (heatmap)', () => {
  it('stores columns by slot, wraps, and counts writes', () => {
    const h = new ColumnRing(3, 2);
    for (let r = 0; r < 5; r++) h.push(r, r * 100, [r / 10, -r / 10]);
    expect(h.length).toBe(3);
    expect(h.written).toBe(5);
    expect(h.lastRow).toBe(4);
    // oldest is row 2, at slot (start + 0)
    const oldest = h.slot(0);
    expect(h.rows[oldest]).toBe(2);
    expect(h.value(oldest, 0)).toBeCloseTo(0.2);
    expect(h.value(h.slot(2), 1)).toBeCloseTo(-0.4);
    expect(h.rows[h.slot(2)]).toBe(4);
  });

  it('null and missing values are NaN; reset starts over and bumps the epoch', () => {
    const h = new ColumnRing(4, 3);
    h.push(7, 1, [0.5, null]);
    expect(h.value(0, 1)).toBeNaN();
    expect(h.value(0, 2)).toBeNaN();
    const e = h.epoch;
    h.reset(5);
    expect(h.epoch).toBe(e + 1);
    expect(h.length).toBe(0);
    expect(h.written).toBe(0);
    expect(h.lastRow).toBe(-1);
    expect(h.levels).toBe(5);
    expect(h.values.length).toBe(20);
  });
});
