import { describe, expect, it } from 'vitest';
import { duration, int, micros, rupees } from '../../src/data/format';

describe('readout formatting', () => {
  it('paise as rupees with a real minus sign', () => {
    expect(rupees(-12227.88)).toBe('−₹122.28');
    expect(rupees(39552101)).toBe('₹395,521.01');
    expect(rupees(99.999)).toBe('₹1.00');
    expect(rupees(null)).toBe('—');
  });
  it('microseconds scaled to three significant digits', () => {
    expect(micros(6.256)).toBe('6.26 µs');
    expect(micros(305.663)).toBe('306 µs');
    expect(micros(3215.359)).toBe('3.22 ms');
    expect(micros(42926.079)).toBe('42.9 ms');
    expect(micros(1_200_000)).toBe('1.20 s');
  });
  it('integers with separators, durations', () => {
    expect(int(1234567)).toBe('1,234,567');
    expect(int(-250)).toBe('−250');
    expect(duration(4.23)).toBe('4.2 s');
    expect(duration(185)).toBe('3m 05s');
  });
});
