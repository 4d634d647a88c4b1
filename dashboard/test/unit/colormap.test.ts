import { describe, expect, it } from 'vitest';
import { buildLut, colourOf, LUT_SIZE, lutIndex, luminance, NO_VALUE, pack } from '../../src/charts/colormap';

describe('WOBI colour map', () => {
  it('is dark at 0, blue for bid-heavy (+), orange for ask-heavy (−)', () => {
    const [r0, g0, b0] = colourOf(0);
    expect(Math.max(r0, g0, b0)).toBeLessThan(50);
    const [r1, , b1] = colourOf(1);
    expect(b1).toBeGreaterThan(r1); // blue
    const [rm, , bm] = colourOf(-1);
    expect(rm).toBeGreaterThan(bm); // orange
  });

  it('gets lighter with |value| on both sides (reads in greyscale too)', () => {
    for (const sign of [1, -1]) {
      let prev = -1;
      for (let v = 0; v <= 1.0001; v += 0.1) {
        const l = luminance(colourOf(sign * v));
        expect(l).toBeGreaterThan(prev);
        prev = l;
      }
    }
  });

  it('clamps outside −1..1, marks non-finite as no value', () => {
    expect(colourOf(3)).toEqual(colourOf(1));
    expect(colourOf(-3)).toEqual(colourOf(-1));
    expect(colourOf(NaN)).toEqual(NO_VALUE);
    expect(lutIndex(NaN)).toBe(LUT_SIZE);
    expect(lutIndex(-1)).toBe(0);
    expect(lutIndex(1)).toBe(LUT_SIZE - 1);
  });

  it('packs RGBA for a Uint32 view over ImageData (bytes r, g, b, 255)', () => {
    const lut = buildLut();
    const bytes = new Uint8Array(new Uint32Array([lut[lutIndex(1)]]).buffer);
    expect([...bytes]).toEqual([...colourOf(1), 255]);
    expect(lut[LUT_SIZE]).toBe(pack(NO_VALUE));
  });
});
