/**
 * The WOBI heatmap's diverging colour map, −1 .. +1, readable with the common colour-vision
 * deficiencies: blue for bid-heavy (+), orange for ask-heavy (−), a dark neutral at 0 (the
 * blue/orange axis survives protan-, deutan- and tritanopia far better than red/green), and
 * lightness rising with |value| on both sides, so the picture also reads in greyscale.
 */

export type RGB = readonly [number, number, number];

/** value -> colour anchors, interpolated linearly in sRGB */
export const ANCHORS: readonly (readonly [number, RGB])[] = [
  [-1, [246, 178, 64]],
  [-0.5, [176, 98, 18]],
  [0, [26, 29, 34]],
  [0.5, [24, 98, 168]],
  [1, [122, 196, 250]],
];

/** no value (a level without depth on both sides, or a missing row) */
export const NO_VALUE: RGB = [92, 58, 84];

export const LUT_SIZE = 256;

export function colourOf(v: number): RGB {
  if (!Number.isFinite(v)) return NO_VALUE;
  const x = Math.max(-1, Math.min(1, v));
  for (let i = 1; i < ANCHORS.length; i++) {
    const [x1, c1] = ANCHORS[i];
    if (x <= x1) {
      const [x0, c0] = ANCHORS[i - 1];
      const f = (x - x0) / (x1 - x0);
      return [
        Math.round(c0[0] + f * (c1[0] - c0[0])),
        Math.round(c0[1] + f * (c1[1] - c0[1])),
        Math.round(c0[2] + f * (c1[2] - c0[2])),
      ];
    }
  }
  return ANCHORS[ANCHORS.length - 1][1];
}

const littleEndian = new Uint8Array(new Uint32Array([0x01020304]).buffer)[0] === 0x04;

export function pack([r, g, b]: RGB): number {
  return littleEndian
    ? ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0
    : ((r << 24) | (g << 16) | (b << 8) | 255) >>> 0;
}

/** A lookup table of packed RGBA pixels (for a Uint32Array view over ImageData), plus the
 * no-value colour at index LUT_SIZE. */
export function buildLut(): Uint32Array {
  const lut = new Uint32Array(LUT_SIZE + 1);
  for (let i = 0; i < LUT_SIZE; i++) lut[i] = pack(colourOf((i / (LUT_SIZE - 1)) * 2 - 1));
  lut[LUT_SIZE] = pack(NO_VALUE);
  return lut;
}

export function lutIndex(v: number): number {
  if (!Number.isFinite(v)) return LUT_SIZE;
  const x = v < -1 ? -1 : v > 1 ? 1 : v;
  return Math.round(((x + 1) / 2) * (LUT_SIZE - 1));
}

/** Relative luminance (WCAG), for the tests' "lightness rises with |v|" check. */
export function luminance([r, g, b]: RGB): number {
  const lin = (c: number) => {
    const s = c / 255;
    return s <= 0.04045 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
}
