/**
 * Okabe-Ito, the colour-blind-safe qualitative palette (Okabe & Ito 2008), with the black
 * replaced by light grey for a dark background and the blue lifted a little for contrast.
 * Series also differ by dash pattern and every state carries a symbol and a word, so no
 * meaning rests on hue alone.
 */
export const OI = {
  orange: '#E69F00',
  sky: '#56B4E9',
  green: '#009E73',
  yellow: '#F0E442',
  blue: '#3A8FD9',
  vermillion: '#D55E00',
  purple: '#CC79A7',
  grey: '#D0D0D0',
} as const;

export const SERIES = [OI.sky, OI.orange, OI.green, OI.yellow, OI.purple, OI.vermillion, OI.blue, OI.grey];
export const DASHES: (number[] | undefined)[] = [undefined, [6, 3], [2, 2], [8, 3, 2, 3], undefined, [4, 4], [1, 3], [10, 4]];

export const AXIS = '#9aa4ad';
export const GRID = 'rgba(255,255,255,0.07)';
