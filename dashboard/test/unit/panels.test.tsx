import { act, Profiler, type ReactNode } from 'react';
import { createRoot, type Root } from 'react-dom/client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { KillSwitch as KillLogic, TOKEN_KEY } from '../../src/data/control';
import { KillContext, StoreContext } from '../../src/data/hooks';
import { Store } from '../../src/data/store';
import { KillSwitch } from '../../src/panels/KillSwitch';
import { SentinelPanel } from '../../src/panels/SentinelPanel';
import { manualRaf, msg } from './helpers';

// uPlot needs a real canvas (the browser layer tests it); here a stand-in counts setData
const setData = vi.fn();
vi.mock('uplot', () => {
  class FakePlot {
    static paths = { stepped: () => () => null };
    static pxRatio = 1;
    width = 300;
    setData = setData;
    setSize() {}
    destroy() {}
  }
  return { default: FakePlot };
});

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

let host: HTMLDivElement;
let root: Root;

beforeEach(() => {
  host = document.createElement('div');
  document.body.appendChild(host);
  root = createRoot(host);
  sessionStorage.clear();
  setData.mockClear();
});
afterEach(() => {
  act(() => root.unmount());
  host.remove();
});

function render(node: ReactNode, store: Store, kill?: KillLogic) {
  act(() =>
    root.render(
      <StoreContext.Provider value={store}>
        <KillContext.Provider value={kill ?? new KillLogic()}>{node}</KillContext.Provider>
      </StoreContext.Provider>,
    ),
  );
}

const key = (el: Element, k: string) =>
  act(() => {
    el.dispatchEvent(new KeyboardEvent('keydown', { key: k, bubbles: true }));
  });

describe('panels: numbers without React renders', () => {
  it('50 sentinel ticks update the DOM from the frame flush, with no React render', () => {
    const f = manualRaf();
    const s = new Store({ raf: f.raf });
    s.setConn({
      state: 'live',
      since: 0,
      stale: false,
      staleSince: null,
      attempt: 0,
      nextRetryAt: null,
      gaps: 0,
      decodeErrors: 0,
      snapshotsRequested: 0,
    });
    s.ingest(msg('engine', 1));
    s.ingest(msg('sentinel', 2));
    let renders = 0;
    render(
      <Profiler id="s" onRender={() => renders++}>
        <SentinelPanel />
      </Profiler>,
      s,
    );
    act(() => void f.frame());
    const before = renders;
    setData.mockClear();
    for (let i = 0; i < 50; i++) {
      s.ingest(msg('sentinel', 3 + i, (d) => ((d.order_rtt.last_ms = 2 + i / 10), (d.order_rtt.count = 100 + i))));
      if (i % 5 === 4) f.frame(); // ten frames for fifty messages
    }
    expect(renders).toBe(before);
    expect(setData).toHaveBeenCalledTimes(10); // once per frame, not per message
    expect(host.textContent).toContain('6.90 ms'); // the last message's RTT
    expect(host.textContent).toContain('● NORMAL');
  });

  it('greys out with the reason when the engine is DEAD', () => {
    const f = manualRaf();
    const s = new Store({ raf: f.raf });
    render(<SentinelPanel />, s);
    act(() => s.ingest(msg('engine', 1, (d) => (d.status = 'DEAD'))));
    act(() => void f.frame());
    const panel = host.querySelector('section.panel')!;
    expect(panel.getAttribute('data-stale')).toBe('true');
    expect(panel.textContent).toContain('STALE');
  });
});

describe('kill switch: keyboard', () => {
  it('Escape cancels the confirm and returns focus; Enter confirms; the token is asked once', async () => {
    const calls: RequestInit[] = [];
    const fetch = vi.fn(async (_u: string, init: RequestInit) => {
      calls.push(init);
      return {
        status: 200,
        json: async () => ({
          acknowledged: true,
          state: 'KILLED',
          seq: 1,
          engine_ack_us: 412.5,
          cancels_sent: true,
          cancels_sent_us: 1800,
          monitor_ms: 2,
        }),
      } as Response;
    });
    const kill = new KillLogic({ fetch });
    render(<KillSwitch />, new Store({ raf: manualRaf().raf }), kill);
    const btn = () => host.querySelector<HTMLButtonElement>('button.kill.big')!;
    act(() => btn().click());
    const dialog = host.querySelector('[role="alertdialog"]')!;
    expect(dialog).not.toBeNull();
    expect(document.activeElement?.textContent).toBe('KILL NOW');
    key(dialog, 'Escape');
    expect(host.querySelector('[role="alertdialog"]')).toBeNull();
    expect(document.activeElement).toBe(btn());
    expect(fetch).not.toHaveBeenCalled();

    act(() => btn().click());
    key(host.querySelector('[role="alertdialog"]')!, 'Enter');
    // no token yet: the prompt, with the input focused
    const input = host.querySelector<HTMLInputElement>('#token-input')!;
    expect(document.activeElement).toBe(input);
    act(() => {
      const set = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value')!.set!;
      set.call(input, 'tok-xyz');
      input.dispatchEvent(new Event('input', { bubbles: true }));
    });
    await act(async () => {
      input.form!.requestSubmit();
    });
    expect((calls[0].headers as Record<string, string>).Authorization).toBe('Bearer tok-xyz');
    expect(sessionStorage.getItem(TOKEN_KEY)).toBe('tok-xyz');
    expect(host.textContent).toContain('✕ KILLED');
    expect(host.textContent).toContain('engine ack 413 µs');
    // latched: the re-arm button, not the kill button
    expect(host.querySelector('button.kill.big')).toBeNull();
    expect(host.querySelector('button.rearm')).not.toBeNull();
  });
});
