import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './App';
import { defaultUrl, MonitorClient } from './data/client';
import { KillSwitch } from './data/control';
import { KillContext, StoreContext } from './data/hooks';
import { store, type RunConfig } from './data/store';
import './styles.css';

const kill = new KillSwitch();
const client = new MonitorClient({
  url: defaultUrl(),
  onMessage: (m, at) => store.ingest(m, at),
  onStatus: (s) => store.setConn(s),
  onOpen: () => store.onOpen(),
  onDecodeError: (e) => console.warn('monitor message refused:', e),
});

// the engine's word on KILLED latches the switch; a new run fetches its configuration once
let configRun: string | null = null;
store.subscribe(() => {
  const ui = store.getUi();
  kill.syncEngine(ui.run, ui.killed);
  if (ui.run && ui.run !== configRun && ui.engineStatus !== 'NONE') {
    const run = ui.run;
    configRun = run;
    fetch('/api/config', { cache: 'no-store' })
      .then((r) => (r.ok ? (r.json() as Promise<RunConfig>) : null))
      .then((c) => store.setConfig(run, c))
      .catch(() => undefined);
  }
});

client.start();

// for the browser tests and the console: frame counts, state (never the token)
(window as unknown as { __vajra: unknown }).__vajra = { store, client, kill };

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <StoreContext.Provider value={store}>
      <KillContext.Provider value={kill}>
        <App />
      </KillContext.Provider>
    </StoreContext.Provider>
  </StrictMode>,
);
