/** React bindings to the store: low-rate UI state, painters, and DOM slots for readouts. */

import { createContext, useContext, useEffect, useRef, useSyncExternalStore } from 'react';
import { KillSwitch } from './control';
import { store as defaultStore, type Painter, type Store, type UiState } from './store';

export const StoreContext = createContext<Store>(defaultStore);
export const KillContext = createContext<KillSwitch | null>(null);

export function useStore(): Store {
  return useContext(StoreContext);
}

/** Renders on structural changes only (connection, engine status, panel structure). */
export function useUi(): UiState {
  const s = useStore();
  return useSyncExternalStore(s.subscribe, s.getUi, s.getUi);
}

export function useKillSwitch(): KillSwitch {
  const k = useContext(KillContext);
  if (!k) throw new Error('KillContext missing');
  return k;
}

export function useKillState() {
  const k = useKillSwitch();
  return useSyncExternalStore(k.subscribe, k.getState, k.getState);
}

/**
 * Register a painter for the store's animation-frame flush (called when a channel in `mask`
 * changed since the last frame). The latest closure is used; registration happens once.
 */
export function usePainter(mask: number, painter: Painter): void {
  const s = useStore();
  const ref = useRef(painter);
  ref.current = painter;
  useEffect(() => s.scheduler.add(mask, (d, now) => ref.current(d, now)), [s, mask]);
}

/**
 * Named DOM slots for per-tick readouts: `slot('rtt')` is a stable callback ref, `el('rtt')`
 * the node. Painters write text into them directly; React never re-renders for a number.
 */
export function useSlots<K extends string = string>() {
  const nodes = useRef(new Map<K, HTMLElement | null>());
  const refs = useRef(new Map<K, (el: HTMLElement | null) => void>());
  const api = useRef({
    slot(k: K) {
      let f = refs.current.get(k);
      if (!f) {
        f = (el: HTMLElement | null) => {
          nodes.current.set(k, el);
        };
        refs.current.set(k, f);
      }
      return f;
    },
    el(k: K): HTMLElement | null {
      return nodes.current.get(k) ?? null;
    },
  });
  return api.current;
}
